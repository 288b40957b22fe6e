"""HTTP routes: the public ingest API and the internal worker endpoint."""

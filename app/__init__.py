"""HTTP layer of kaboom-ingest: routes, authentication, settings and dispatch."""

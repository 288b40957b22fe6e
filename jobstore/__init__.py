"""Job state as an event log in Redis Streams, with a projection the status API reads."""

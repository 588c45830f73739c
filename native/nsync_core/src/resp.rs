//! Streaming RESP parser for the replication stream (filled in by the link work).

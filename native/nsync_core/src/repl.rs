//! Replica side of the replication protocol, sans I/O (filled in by the link work).

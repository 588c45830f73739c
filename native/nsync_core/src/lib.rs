//! nsync_core: the pure-Rust heart of nsync, usable without a VM.
//!
//! - [`big`]: compact values for big keys of a mirror, changed in place.
//! - [`cluster`]: Redis Cluster's key hash slots (CRC16, hash tags).
//! - [`digest`]: the XXH3 digest of a string value (Redis 8.4's DIGEST, IFDEQ).
//! - [`geo`]: the GEO searches that store their result, as Redis computes them.
//! - [`glob`]: glob-style key patterns as Redis matches them (`MATCH`).
//! - [`hll`]: Redis's HyperLogLog strings, byte for byte (PFADD, PFMERGE, PFCOUNT).
//! - [`rdb`]: a streaming RDB (snapshot) parser for Redis 2.x–8.x and Valkey.
//! - [`resp`]: a streaming parser for the replication command stream.
//! - [`repl`]: the replica side of the replication protocol, sans I/O.

pub mod big;
pub mod cluster;
pub mod digest;
pub mod geo;
pub mod glob;
pub mod hll;
pub mod rdb;
pub mod repl;
pub mod resp;

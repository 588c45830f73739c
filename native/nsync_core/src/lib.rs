//! nsync_core: the pure-Rust heart of nsync, usable without a VM.
//!
//! - [`rdb`]: a streaming RDB (snapshot) parser for Redis 2.x–8.x and Valkey.
//! - [`resp`]: a streaming parser for the replication command stream.
//! - [`repl`]: the replica side of the replication protocol, sans I/O.
//! - [`big`]: compact values for big keys of a mirror, changed in place.

pub mod big;
pub mod rdb;
pub mod repl;
pub mod resp;

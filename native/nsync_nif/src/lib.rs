//! nsync NIF: one replication link per resource; see src_erl/nsync_nif.erl
//! and the README's "How a link works".
//!
//! The pure modules come first; they are unit-tested without a VM. The
//! modules after them build or read Erlang terms, which needs the VM's
//! `enif_*` functions, so `cargo test` leaves them out.

// Used only by the VM-bound modules, which tests leave out.
#![cfg_attr(test, allow(dead_code))]

mod conn;
mod credit;
mod error;
mod filter;
mod locks;
mod status;
mod tls;

#[cfg(not(test))]
mod atoms;
#[cfg(not(test))]
mod batch;
#[cfg(not(test))]
mod big;
#[cfg(not(test))]
mod config;
#[cfg(not(test))]
mod dump;
#[cfg(not(test))]
mod encode;
#[cfg(not(test))]
mod file;
#[cfg(not(test))]
mod hll_geo;
#[cfg(not(test))]
mod link;
#[cfg(not(test))]
mod pump;
#[cfg(not(test))]
mod reason;
#[cfg(not(test))]
mod shared;
#[cfg(not(test))]
mod slot;

#[cfg(not(test))]
rustler::init!("nsync_nif");

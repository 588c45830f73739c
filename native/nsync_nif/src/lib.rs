//! nsync NIF: one replication link per resource; see src_erl/nsync_nif.erl.

mod atoms;
mod config;
mod dump;
mod encode;
mod error;
mod link;

rustler::init!("nsync_nif");

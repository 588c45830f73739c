//! nsync NIF: one replication link per resource; see src_erl/nsync_nif.erl.

mod atoms;
mod batch;
mod big;
mod config;
mod credit;
mod dump;
mod encode;
mod error;
mod link;
mod locks;
mod pump;
mod status;

rustler::init!("nsync_nif");

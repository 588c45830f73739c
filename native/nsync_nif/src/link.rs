//! The link resource and its NIF functions (see src_erl/nsync_nif.erl).
//!
//! A link keeps what outlives a connection (`shared.rs`): the replication
//! position, so the next session resumes with PSYNC wherever it connects.
//! `start/2` starts a session, run by a pump thread (`pump.rs`), with the
//! master (or the file, `file.rs`) given for that session; `ack/2` gives
//! the pump a credit back;
//! `info/1` reads the published status. No call waits for the pump:
//! `disconnect/1` and `close/1` shut the session's socket down through a
//! second handle (waking a pump blocked in `read`) and wake a pump waiting
//! for credit. Dropping the resource closes the link the same way.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use rustler::{Atom, Binary, Encoder, Env, ResourceArc, Term};

use crate::atoms;
use crate::config::{self, ConfigError, Source};
use crate::conn::Master;
use crate::encode::{atom_map, binary};
use crate::error::LinkError;
use crate::filter::Decision;
use crate::pump;
use crate::reason;
use crate::shared::{Refused, Shared};
use crate::status::{Facts, LinkState};

/// Session ids are unique in the VM, so a message of an older session (or
/// of another link's) is never taken for the current one's.
static NEXT_SESSION: AtomicU64 = AtomicU64::new(1);

pub struct Link {
    shared: Arc<Shared>,
}

#[rustler::resource_impl]
impl rustler::Resource for Link {}

impl Drop for Link {
    /// The owner is gone (or let go of the link): its pump must not go on.
    fn drop(&mut self) {
        self.shared.close();
    }
}

#[rustler::nif]
fn open<'a>(env: Env<'a>, config: Term<'a>) -> Term<'a> {
    match config::decode(config) {
        Ok(config) => {
            let link = Link {
                shared: Arc::new(Shared::new(config)),
            };
            (atoms::ok(), ResourceArc::new(link)).encode(env)
        }
        Err(ConfigError::BadKey(key)) => (atoms::error(), (atoms::badarg(), key)).encode(env),
        Err(ConfigError::Tls(err)) => {
            let reason = (atoms::tls(), reason::tls_setup_error(env, &err)).encode(env);
            (atoms::error(), reason).encode(env)
        }
    }
}

#[rustler::nif]
fn start<'a>(env: Env<'a>, link: ResourceArc<Link>, source: Term<'a>) -> Term<'a> {
    let source = match config::decode_source(source) {
        Ok(source) => source,
        Err(key) => return (atoms::error(), (atoms::badarg(), key)).encode(env),
    };
    let shared = &link.shared;
    let session = NEXT_SESSION.fetch_add(1, Ordering::Relaxed);
    let master = match &source {
        Source::Master(master) => Some(master.clone()),
        Source::File(_) => None,
    };
    match shared.begin_session(session, master) {
        Err(Refused::Closed) => return (atoms::error(), atoms::closed()).encode(env),
        Err(Refused::Running) => return (atoms::error(), atoms::running()).encode(env),
        Ok(()) => {}
    }
    match pump::spawn(Arc::clone(shared), env.pid(), session, source) {
        Ok(()) => (atoms::ok(), session).encode(env),
        Err(err) => {
            let err = err.to_string();
            shared.abandon_session(LinkError::Internal(err.clone()));
            let reason = (atoms::spawn(), err).encode(env);
            (atoms::error(), reason).encode(env)
        }
    }
}

#[rustler::nif]
fn ack(link: ResourceArc<Link>, session: u64) -> Atom {
    link.shared.status.handled(session);
    link.shared.credit.give_back(session);
    atoms::ok()
}

#[rustler::nif]
fn info<'a>(env: Env<'a>, link: ResourceArc<Link>) -> Term<'a> {
    let shared = &link.shared;
    facts_term(env, &shared.status.facts(), shared.credit.is_exhausted())
}

/// `filter_command/3`: what the link's key filter makes of a command.
#[rustler::nif]
fn filter_command<'a>(
    env: Env<'a>,
    link: ResourceArc<Link>,
    db: u64,
    command: Vec<Binary<'a>>,
) -> Term<'a> {
    let config = &link.shared.config;
    let Some(filter) = &config.keys else {
        return atoms::keep().encode(env);
    };
    let args: Vec<Bytes> = command
        .iter()
        .map(|arg| Bytes::copy_from_slice(arg.as_slice()))
        .collect();
    let list =
        |items: &[Bytes]| -> Vec<Term<'a>> { items.iter().map(|item| binary(env, item)).collect() };
    match filter.command(&config.dbs, db, &args) {
        Decision::Keep => atoms::keep().encode(env),
        Decision::Drop => atoms::drop().encode(env),
        Decision::Only(kept) => (atoms::only(), list(&kept)).encode(env),
        Decision::Straddles(out) => (atoms::straddles(), list(&out)).encode(env),
    }
}

/// `keeps/3`: whether the link mirrors a key.
#[rustler::nif]
fn keeps(link: ResourceArc<Link>, db: u64, key: Binary) -> bool {
    link.shared.config.keeps(db, key.as_slice())
}

#[rustler::nif]
fn disconnect(link: ResourceArc<Link>) -> Atom {
    link.shared.disconnect();
    atoms::ok()
}

#[rustler::nif]
fn close(link: ResourceArc<Link>) -> Atom {
    link.shared.close();
    atoms::ok()
}

fn state_atom(state: LinkState) -> Atom {
    match state {
        LinkState::Idle => atoms::idle(),
        LinkState::Connecting => atoms::connecting(),
        LinkState::Handshake => atoms::handshake(),
        LinkState::Loading => atoms::loading(),
        LinkState::Streaming => atoms::streaming(),
        LinkState::Disconnected => atoms::disconnected(),
        LinkState::Closed => atoms::closed(),
    }
}

fn facts_term<'a>(env: Env<'a>, facts: &Facts, credit_exhausted: bool) -> Term<'a> {
    let undefined = || atoms::undefined().encode(env);
    let optional = |n: Option<i64>| n.map_or_else(undefined, |n| n.encode(env));
    let master = |m: &Master| (binary(env, m.host.as_bytes()), m.port).encode(env);
    let fields = [
        (atoms::state(), state_atom(facts.state).encode(env)),
        (
            atoms::master(),
            facts.master.as_ref().map_or_else(undefined, master),
        ),
        (
            atoms::replid(),
            facts
                .replid
                .as_ref()
                .map_or_else(undefined, |id| binary(env, id)),
        ),
        (atoms::offset(), optional(facts.offset)),
        (atoms::master_offset(), optional(facts.master_offset)),
        (atoms::db(), facts.db.encode(env)),
        (atoms::keys_loaded(), facts.tally.keys_loaded.encode(env)),
        (atoms::snapshot_bytes(), facts.snapshot_bytes.encode(env)),
        (atoms::commands(), facts.tally.commands.encode(env)),
        (atoms::bytes(), facts.bytes.encode(env)),
        (atoms::last_read(), optional(facts.last_read_ms)),
        (atoms::credit_exhausted(), credit_exhausted.encode(env)),
        (
            atoms::last_error(),
            facts
                .last_error
                .as_ref()
                .map_or_else(undefined, |err| reason::term(env, err)),
        ),
    ];
    atom_map(env, &fields)
}

//! The link resource and its NIF functions.
//!
//! A link owns the replication state (replid, offset, db: it survives
//! reconnects, so the next session resumes with PSYNC). Each connection
//! attempt is a session run by a pump thread (`pump.rs`) started with
//! `start/2`; the pump sends batches to the process that started it and
//! `ack/2` gives it credit back (`credit.rs`). `info/1` reads atomics and
//! `close/1` never waits for the pump: it shuts the socket down through a
//! second handle (waking a pump blocked in `read`) and wakes a pump waiting
//! for credit. Dropping the resource closes the link the same way.

use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use nsync_core::repl::Replica;
use rustler::{Atom, Encoder, Env, ResourceArc, Term};

use crate::atoms;
use crate::batch::Delivery;
use crate::config::{self, LinkConfig};
use crate::credit::Credit;
use crate::locks::lock;
use crate::pump;
use crate::status::{LinkState, Status};

/// Session ids are unique in the VM, so a message of an older session (or
/// of another link's) is never taken for the current one's.
static NEXT_SESSION: AtomicU64 = AtomicU64::new(1);

/// What the resource and its pump share.
pub struct Shared {
    pub config: LinkConfig,
    pub status: Status,
    pub credit: Credit,
    /// The replication state; the pump of a session holds it throughout.
    pub replica: Mutex<Replica>,
    pump_running: AtomicBool,
    /// A clone of the session's socket, for `close/1` to shut it down.
    shutdown_handle: Mutex<Option<TcpStream>>,
    closed: AtomicBool,
}

impl Shared {
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// Records the session's socket for `close/1`; false if the link was
    /// closed meanwhile (the caller then drops the socket).
    pub fn set_shutdown_handle(&self, handle: Option<TcpStream>) -> bool {
        *lock(&self.shutdown_handle) = handle;
        !self.is_closed()
    }

    /// The pump's session is over: a new one may start.
    pub fn pump_ended(&self) {
        *lock(&self.shutdown_handle) = None;
        self.pump_running.store(false, Ordering::SeqCst);
    }

    fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.status.set_state(LinkState::Closed);
        self.credit.close();
        if let Some(socket) = lock(&self.shutdown_handle).take() {
            let _ = socket.shutdown(Shutdown::Both);
        }
    }
}

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

impl Link {
    fn new(config: LinkConfig) -> Link {
        let replica = Replica::new(config.replica.clone());
        Link {
            shared: Arc::new(Shared {
                config,
                status: Status::default(),
                credit: Credit::default(),
                replica: Mutex::new(replica),
                pump_running: AtomicBool::new(false),
                shutdown_handle: Mutex::new(None),
                closed: AtomicBool::new(false),
            }),
        }
    }
}

#[rustler::nif]
fn open<'a>(env: Env<'a>, config: Term<'a>) -> Term<'a> {
    match config::decode(config) {
        Ok(config) => (atoms::ok(), ResourceArc::new(Link::new(config))).encode(env),
        Err(key) => (atoms::error(), (atoms::badarg(), key)).encode(env),
    }
}

/// `events`, `{rows, all}` or `{rows, Db}`.
fn decode_delivery(term: Term) -> Option<Delivery> {
    if let Ok(atom) = term.decode::<Atom>() {
        return (atom == atoms::events()).then_some(Delivery::Events);
    }
    let (tag, db): (Atom, Term) = term.decode().ok()?;
    if tag != atoms::rows() {
        return None;
    }
    match db.decode::<Atom>() {
        Ok(all) => (all == atoms::all()).then_some(Delivery::Rows(None)),
        Err(_) => db.decode::<u64>().ok().map(|db| Delivery::Rows(Some(db))),
    }
}

#[rustler::nif]
fn start<'a>(env: Env<'a>, link: ResourceArc<Link>, delivery: Term<'a>) -> Term<'a> {
    let shared = &link.shared;
    let Some(delivery) = decode_delivery(delivery) else {
        return (atoms::error(), (atoms::badarg(), atoms::delivery())).encode(env);
    };
    if shared.is_closed() {
        return (atoms::error(), atoms::closed()).encode(env);
    }
    if shared.pump_running.swap(true, Ordering::SeqCst) {
        return (atoms::error(), atoms::running()).encode(env);
    }
    let session = NEXT_SESSION.fetch_add(1, Ordering::Relaxed);
    shared.credit.reset(session);
    shared.status.set_state(LinkState::Connecting);
    match pump::spawn(Arc::clone(shared), env.pid(), session, delivery) {
        Ok(()) => (atoms::ok(), session).encode(env),
        Err(err) => {
            shared.pump_ended();
            shared.status.set_state(LinkState::Idle);
            let reason = (atoms::spawn(), err.to_string()).encode(env);
            (atoms::error(), reason).encode(env)
        }
    }
}

#[rustler::nif]
fn ack(link: ResourceArc<Link>, session: u64) -> Atom {
    link.shared.credit.give_back(session);
    atoms::ok()
}

#[rustler::nif]
fn info<'a>(env: Env<'a>, link: ResourceArc<Link>) -> Term<'a> {
    link.shared.status.encode(env, &link.shared.config)
}

#[rustler::nif]
fn close(link: ResourceArc<Link>) -> Atom {
    link.shared.close();
    atoms::ok()
}

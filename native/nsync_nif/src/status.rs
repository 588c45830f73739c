//! What `info/1` reports: written by the pump, read at any time without
//! waiting for it (atomics, and a small mutex for the replid and last error).

use std::sync::atomic::{AtomicI64, AtomicU64, AtomicU8, Ordering};
use std::sync::{Mutex, MutexGuard};

use bytes::Bytes;
use nsync_core::repl::{Replica, State};
use rustler::{Atom, Encoder, Env, Term};

use crate::atoms;
use crate::config::LinkConfig;
use crate::encode::{self, binary};
use crate::error::LinkError;
use crate::locks::lock;

const NO_OFFSET: i64 = i64::MIN;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum LinkState {
    Idle = 0,
    Connecting = 1,
    Handshake = 2,
    Loading = 3,
    Streaming = 4,
    Closed = 5,
}

impl LinkState {
    /// In discriminant order, to read the state back from its atomic.
    const ALL: [LinkState; 6] = [
        LinkState::Idle,
        LinkState::Connecting,
        LinkState::Handshake,
        LinkState::Loading,
        LinkState::Streaming,
        LinkState::Closed,
    ];

    fn from_raw(raw: u8) -> LinkState {
        LinkState::ALL
            .get(usize::from(raw))
            .copied()
            .unwrap_or(LinkState::Idle)
    }

    fn atom(self) -> Atom {
        match self {
            LinkState::Idle => atoms::idle(),
            LinkState::Connecting => atoms::connecting(),
            LinkState::Handshake => atoms::handshake(),
            LinkState::Loading => atoms::loading(),
            LinkState::Streaming => atoms::streaming(),
            LinkState::Closed => atoms::closed(),
        }
    }

    fn of(replica: &Replica) -> LinkState {
        match replica.state() {
            State::Disconnected => LinkState::Idle,
            State::Handshake => LinkState::Handshake,
            State::Loading => LinkState::Loading,
            State::Streaming => LinkState::Streaming,
        }
    }
}

pub struct Status {
    state: AtomicU8,
    offset: AtomicI64,
    db: AtomicU64,
    keys_loaded: AtomicU64,
    commands: AtomicU64,
    details: Mutex<Details>,
}

#[derive(Default)]
struct Details {
    replid: Option<Bytes>,
    last_error: Option<LinkError>,
}

impl Default for Status {
    fn default() -> Status {
        Status {
            state: AtomicU8::new(LinkState::Idle as u8),
            offset: AtomicI64::new(NO_OFFSET),
            db: AtomicU64::new(0),
            keys_loaded: AtomicU64::new(0),
            commands: AtomicU64::new(0),
            details: Mutex::new(Details::default()),
        }
    }
}

impl Status {
    fn details(&self) -> MutexGuard<'_, Details> {
        lock(&self.details)
    }

    pub fn set_state(&self, state: LinkState) {
        self.state.store(state as u8, Ordering::Release);
    }

    pub fn set_last_error(&self, err: &LinkError) {
        self.details().last_error = Some(err.clone());
    }

    /// The replica's state and position, as they are now.
    pub fn publish(&self, replica: &Replica) {
        self.set_state(LinkState::of(replica));
        if let Some(position) = replica.position() {
            self.offset.store(position.offset, Ordering::Release);
            self.db.store(position.db, Ordering::Release);
            let mut details = self.details();
            if details.replid != position.replid {
                details.replid = position.replid.clone();
            }
        }
    }

    /// A batch with these many keys and commands was sent.
    pub fn count(&self, keys: u64, commands: u64) {
        self.keys_loaded.fetch_add(keys, Ordering::Relaxed);
        self.commands.fetch_add(commands, Ordering::Relaxed);
    }

    pub fn encode<'a>(&self, env: Env<'a>, config: &LinkConfig) -> Term<'a> {
        let state = LinkState::from_raw(self.state.load(Ordering::Acquire)).atom();
        let undefined = || atoms::undefined().encode(env);
        let (replid, last_error) = {
            let details = self.details();
            (
                details
                    .replid
                    .as_ref()
                    .map_or_else(undefined, |id| binary(env, id)),
                details
                    .last_error
                    .as_ref()
                    .map_or_else(undefined, |err| err.encode(env)),
            )
        };
        let offset = match self.offset.load(Ordering::Acquire) {
            NO_OFFSET => undefined(),
            offset => offset.encode(env),
        };
        let fields = [
            (atoms::state(), state.encode(env)),
            (atoms::host(), binary(env, config.host.as_bytes())),
            (atoms::port(), config.port.encode(env)),
            (atoms::replid(), replid),
            (atoms::offset(), offset),
            (atoms::db(), self.db.load(Ordering::Acquire).encode(env)),
            (
                atoms::keys_loaded(),
                self.keys_loaded.load(Ordering::Relaxed).encode(env),
            ),
            (
                atoms::commands(),
                self.commands.load(Ordering::Relaxed).encode(env),
            ),
            (atoms::last_error(), last_error),
        ];
        encode::atom_map(env, &fields)
    }
}

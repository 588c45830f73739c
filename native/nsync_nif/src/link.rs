//! The link resource (socket + replication state) and the NIF functions.
//!
//! `poll/2` runs on a dirty I/O scheduler and holds the session mutex while
//! it works; `info/1` and `close/1` never wait for it: the status lives in
//! atomics and a small mutex of its own, and `close/1` shuts the socket down
//! through a second handle, which wakes a poll blocked in `read`.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicU8, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use nsync_core::repl::{Event, Replica, State};
use rustler::{Atom, Encoder, Env, ResourceArc, Term};

use crate::atoms;
use crate::config::{self, LinkConfig};
use crate::encode::{self, binary, unix_now_ms};
use crate::error::{LinkError, Posix};

/// A poll with nothing to deliver returns after waiting this long (short:
/// calls to the link process, e.g. nsync:status/1, wait for the poll).
const IDLE_WAIT: Duration = Duration::from_millis(50);
/// A poll waits this long for a connection being made, then returns (the
/// next poll waits again: resolving and connecting may take longer).
const CONNECT_WAIT: Duration = Duration::from_millis(100);
/// A poll stops reading after this long even if data keeps coming.
const CALL_BUDGET: Duration = Duration::from_millis(900);
/// A blocked send gives up after this long (the master is not reading).
const WRITE_TIMEOUT: Duration = Duration::from_secs(1);
/// A master silent for this long is gone (Redis's `repl-timeout`; masters
/// send a PING every 10 s, and newlines while they prepare a snapshot).
const SILENCE_TIMEOUT: Duration = Duration::from_secs(60);
const READ_CHUNK: usize = 128 * 1024;

const STATE_IDLE: u8 = 0;
const STATE_CONNECTING: u8 = 1;
const STATE_HANDSHAKE: u8 = 2;
const STATE_LOADING: u8 = 3;
const STATE_STREAMING: u8 = 4;
const STATE_CLOSED: u8 = 5;
const NO_OFFSET: i64 = i64::MIN;

pub struct Link {
    config: LinkConfig,
    session: Mutex<Session>,
    status: Status,
    /// A clone of the session's socket, for `close/1` to shut it down.
    shutdown_handle: Mutex<Option<TcpStream>>,
    closed: AtomicBool,
}

#[rustler::resource_impl]
impl rustler::Resource for Link {}

/// What `info/1` reports, readable while a poll runs.
struct Status {
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

/// The outcome of a connection attempt made by a helper thread.
type PendingConnect = Receiver<Result<TcpStream, LinkError>>;

struct Session {
    replica: Replica,
    socket: Option<TcpStream>,
    connecting: Option<PendingConnect>,
    read_buf: Box<[u8]>,
    last_received: Instant,
    /// The socket's read timeout now set (it follows the next ACK due).
    read_timeout: Duration,
}

/// The events of one poll, as terms.
struct Batch<'a> {
    env: Env<'a>,
    max: usize,
    now_ms: i64,
    terms: Vec<Term<'a>>,
    keys: u64,
    commands: u64,
}

impl<'a> Batch<'a> {
    fn is_full(&self) -> bool {
        self.terms.len() >= self.max
    }

    fn push(&mut self, event: &Event) {
        let Some(term) = encode::event(self.env, event, self.now_ms) else {
            return;
        };
        match event {
            Event::Key(_) => self.keys += 1,
            Event::Command { .. } => self.commands += 1,
            _ => {}
        }
        self.terms.push(term);
    }
}

impl Link {
    fn new(config: LinkConfig) -> Link {
        let replica = Replica::new(config.replica.clone());
        Link {
            config,
            session: Mutex::new(Session {
                replica,
                socket: None,
                connecting: None,
                read_buf: vec![0; READ_CHUNK].into_boxed_slice(),
                last_received: Instant::now(),
                read_timeout: IDLE_WAIT,
            }),
            status: Status {
                state: AtomicU8::new(STATE_IDLE),
                offset: AtomicI64::new(NO_OFFSET),
                db: AtomicU64::new(0),
                keys_loaded: AtomicU64::new(0),
                commands: AtomicU64::new(0),
                details: Mutex::new(Details::default()),
            },
            shutdown_handle: Mutex::new(None),
            closed: AtomicBool::new(false),
        }
    }

    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Connects if needed, then runs the protocol until there are events,
    /// `max` of them, or the time is up. A failure ends the batch with
    /// `{closed, Reason}`; the next poll reconnects.
    fn poll<'a>(&self, env: Env<'a>, max: usize) -> Result<Vec<Term<'a>>, LinkError> {
        let started = Instant::now();
        let mut session = self.session.lock().map_err(|_| LinkError::Poisoned)?;
        if self.is_closed() {
            session.socket = None;
            session.connecting = None;
            return Err(LinkError::Closed);
        }
        let mut batch = Batch {
            env,
            max,
            now_ms: unix_now_ms(),
            terms: Vec::new(),
            keys: 0,
            commands: 0,
        };
        let connected = if session.socket.is_some() {
            Ok(true)
        } else {
            self.connect(&mut session)
        };
        let result = connected.and_then(|up| match up {
            true => session.run(&mut batch, started, &self.closed),
            false => Ok(()),
        });
        if let Err(err) = result {
            let err = if self.is_closed() {
                LinkError::Closed
            } else {
                err
            };
            session.socket = None;
            session.replica.disconnected();
            self.set_shutdown_handle(None);
            batch
                .terms
                .push((atoms::closed(), err.encode(env)).encode(env));
            if let Ok(mut details) = self.status.details.lock() {
                details.last_error = Some(err);
            }
        }
        self.publish(&session, &batch);
        Ok(batch.terms)
    }

    /// Starts or continues connecting; true once connected.
    fn connect(&self, session: &mut Session) -> Result<bool, LinkError> {
        self.status.state.store(STATE_CONNECTING, Ordering::Release);
        let pending = match session.connecting.take() {
            Some(pending) => pending,
            None => spawn_connect(&self.config)?,
        };
        match pending.recv_timeout(CONNECT_WAIT) {
            Ok(outcome) => {
                self.attach(session, outcome?)?;
                Ok(true)
            }
            Err(RecvTimeoutError::Timeout) => {
                session.connecting = Some(pending);
                Ok(false)
            }
            Err(RecvTimeoutError::Disconnected) => Err(LinkError::Connect(Posix::Message(
                "connecting thread ended without an answer".into(),
            ))),
        }
    }

    fn attach(&self, session: &mut Session, socket: TcpStream) -> Result<(), LinkError> {
        let setup = || -> io::Result<()> {
            socket.set_nodelay(true)?;
            socket.set_read_timeout(Some(IDLE_WAIT))?;
            socket.set_write_timeout(Some(WRITE_TIMEOUT))
        };
        setup().map_err(|err| LinkError::Connect(Posix::from(&err)))?;
        self.set_shutdown_handle(socket.try_clone().ok());
        session.socket = Some(socket);
        session.read_timeout = IDLE_WAIT;
        session.last_received = Instant::now();
        session.replica.connected();
        Ok(())
    }

    fn set_shutdown_handle(&self, handle: Option<TcpStream>) {
        if let Ok(mut slot) = self.shutdown_handle.lock() {
            *slot = handle;
        }
    }

    /// Makes the session's state visible to `info/1`.
    fn publish(&self, session: &Session, batch: &Batch) {
        let state = match (session.socket.is_some(), session.replica.state()) {
            _ if self.is_closed() => STATE_CLOSED,
            (false, _) if session.connecting.is_some() => STATE_CONNECTING,
            (false, _) | (true, State::Disconnected) => STATE_IDLE,
            (true, State::Handshake) => STATE_HANDSHAKE,
            (true, State::Loading) => STATE_LOADING,
            (true, State::Streaming) => STATE_STREAMING,
        };
        let status = &self.status;
        status.state.store(state, Ordering::Release);
        status.keys_loaded.fetch_add(batch.keys, Ordering::Relaxed);
        status.commands.fetch_add(batch.commands, Ordering::Relaxed);
        if let Some(position) = session.replica.position() {
            status.offset.store(position.offset, Ordering::Release);
            status.db.store(position.db, Ordering::Release);
            if let Ok(mut details) = status.details.lock() {
                if details.replid != position.replid {
                    details.replid = position.replid.clone();
                }
            }
        }
    }

    fn info<'a>(&self, env: Env<'a>) -> Term<'a> {
        let status = &self.status;
        let state = match status.state.load(Ordering::Acquire) {
            STATE_CONNECTING => atoms::connecting(),
            STATE_HANDSHAKE => atoms::handshake(),
            STATE_LOADING => atoms::loading(),
            STATE_STREAMING => atoms::streaming(),
            STATE_CLOSED => atoms::closed(),
            _ => atoms::idle(),
        };
        let undefined = || atoms::undefined().encode(env);
        let (replid, last_error) = match status.details.lock() {
            Ok(details) => (
                details
                    .replid
                    .as_ref()
                    .map_or_else(undefined, |id| binary(env, id)),
                details
                    .last_error
                    .as_ref()
                    .map_or_else(undefined, |err| err.encode(env)),
            ),
            Err(_) => (undefined(), LinkError::Poisoned.encode(env)),
        };
        let offset = match status.offset.load(Ordering::Acquire) {
            NO_OFFSET => undefined(),
            offset => offset.encode(env),
        };
        let fields = [
            (atoms::state(), state.encode(env)),
            (atoms::host(), binary(env, self.config.host.as_bytes())),
            (atoms::port(), self.config.port.encode(env)),
            (atoms::replid(), replid),
            (atoms::offset(), offset),
            (atoms::db(), status.db.load(Ordering::Acquire).encode(env)),
            (
                atoms::keys_loaded(),
                status.keys_loaded.load(Ordering::Relaxed).encode(env),
            ),
            (
                atoms::commands(),
                status.commands.load(Ordering::Relaxed).encode(env),
            ),
            (atoms::last_error(), last_error),
        ];
        encode::atom_map(env, &fields)
    }

    fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.status.state.store(STATE_CLOSED, Ordering::Release);
        if let Ok(mut slot) = self.shutdown_handle.lock() {
            if let Some(socket) = slot.take() {
                let _ = socket.shutdown(Shutdown::Both);
            }
        }
        // Release the socket now unless a poll holds the session; that poll
        // sees the shutdown and releases it itself.
        if let Ok(mut session) = self.session.try_lock() {
            session.socket = None;
        }
    }
}

impl Session {
    fn run(
        &mut self,
        batch: &mut Batch,
        started: Instant,
        closed: &AtomicBool,
    ) -> Result<(), LinkError> {
        loop {
            if closed.load(Ordering::Acquire) {
                return Err(LinkError::Closed);
            }
            self.replica.tick(Instant::now());
            self.flush()?;
            if !batch.is_full() {
                self.replica.next_events(|event| {
                    batch.push(&event);
                    if batch.is_full() {
                        ControlFlow::Break(())
                    } else {
                        ControlFlow::Continue(())
                    }
                })?;
            }
            // GETACK answers, and the first ACK right after a snapshot (a
            // diskless master sends nothing more until it gets one).
            self.replica.tick(Instant::now());
            self.flush()?;
            if !batch.terms.is_empty() || started.elapsed() >= CALL_BUDGET {
                return Ok(());
            }
            if !self.read()? && started.elapsed() >= IDLE_WAIT {
                return Ok(());
            }
        }
    }

    /// Reads once (waiting at most `IDLE_WAIT`, less when an ACK falls due
    /// sooner); false if nothing came.
    fn read(&mut self) -> Result<bool, LinkError> {
        let Session {
            replica,
            socket,
            read_buf,
            last_received,
            read_timeout,
            ..
        } = self;
        let socket = socket.as_mut().ok_or(LinkError::Eof)?;
        let wait = replica.ack_due_in(Instant::now()).map_or(IDLE_WAIT, |due| {
            due.clamp(Duration::from_millis(1), IDLE_WAIT)
        });
        if wait != *read_timeout {
            socket
                .set_read_timeout(Some(wait))
                .map_err(|err| LinkError::Recv(Posix::from(&err)))?;
            *read_timeout = wait;
        }
        match socket.read(read_buf) {
            Ok(0) => Err(LinkError::Eof),
            Ok(n) => {
                replica.feed(&read_buf[..n]);
                *last_received = Instant::now();
                Ok(true)
            }
            Err(err) if is_no_data(&err) => {
                if last_received.elapsed() >= SILENCE_TIMEOUT {
                    return Err(LinkError::Recv(Posix::Atom("timeout")));
                }
                Ok(false)
            }
            Err(err) => Err(LinkError::Recv(Posix::from(&err))),
        }
    }

    fn flush(&mut self) -> Result<(), LinkError> {
        if !self.replica.has_output() {
            return Ok(());
        }
        let output = self.replica.take_output();
        let socket = self.socket.as_mut().ok_or(LinkError::Eof)?;
        socket
            .write_all(&output)
            .map_err(|err| LinkError::Send(Posix::from(&err)))
    }
}

/// Resolves and connects in a thread of its own, so that neither a slow DNS
/// answer nor a long connect timeout blocks a poll.
fn spawn_connect(config: &LinkConfig) -> Result<PendingConnect, LinkError> {
    let (sender, receiver) = mpsc::sync_channel(1);
    let (host, port, timeout) = (config.host.clone(), config.port, config.connect_timeout);
    thread::Builder::new()
        .name("nsync-connect".into())
        .spawn(move || {
            // The link may be gone by now: then nobody listens, and the
            // socket is dropped.
            let _ = sender.send(connect_to(&host, port, timeout));
        })
        .map_err(|err| LinkError::Connect(Posix::from(&err)))?;
    Ok(receiver)
}

/// Tries each address of `host` in turn.
fn connect_to(host: &str, port: u16, timeout: Duration) -> Result<TcpStream, LinkError> {
    let addrs = (host, port)
        .to_socket_addrs()
        .map_err(|_| LinkError::Nxdomain)?;
    let mut failure = LinkError::Nxdomain;
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(socket) => return Ok(socket),
            Err(err) => failure = LinkError::Connect(Posix::from(&err)),
        }
    }
    Err(failure)
}

fn is_no_data(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}

#[rustler::nif]
fn open<'a>(env: Env<'a>, config: Term<'a>) -> Term<'a> {
    match config::decode(config) {
        Ok(config) => (atoms::ok(), ResourceArc::new(Link::new(config))).encode(env),
        Err(key) => (atoms::error(), (atoms::badarg(), key)).encode(env),
    }
}

#[rustler::nif(schedule = "DirtyIo")]
fn poll<'a>(env: Env<'a>, link: ResourceArc<Link>, max: u64) -> Term<'a> {
    let max = usize::try_from(max.max(1)).unwrap_or(usize::MAX);
    match link.poll(env, max) {
        Ok(events) => (atoms::ok(), events).encode(env),
        Err(err) => (atoms::error(), err.encode(env)).encode(env),
    }
}

#[rustler::nif]
fn info<'a>(env: Env<'a>, link: ResourceArc<Link>) -> Term<'a> {
    link.info(env)
}

#[rustler::nif]
fn close(link: ResourceArc<Link>) -> Atom {
    link.close();
    atoms::ok()
}

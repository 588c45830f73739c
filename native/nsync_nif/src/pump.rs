//! The pump: one thread per session (connection attempt) of a link.
//!
//! It connects, then owns the socket and the link's [`Replica`]: it reads,
//! parses, builds the terms of a batch in an [`OwnedEnv`] and sends it to
//! the link process, while that process handles (e.g. inserts into ETS) the
//! batches before. A batch goes when it is full ([`batch::MAX_EVENTS`],
//! [`batch::MAX_BYTES`]) or when the socket has nothing more right now, so a
//! live command is delivered at once. It writes the replica's output itself
//! (handshake, ACKs, GETACK answers); the read timeout follows the next ACK
//! due. Without credit (`credit.rs`) it waits and reads nothing.
//!
//! The session ends on any error, EOF, `close/1`, or when the link process
//! is gone; the pump then sends `{nsync_pump, Session, {closed, Reason}}` as
//! its last message and exits. The whole body runs under `catch_unwind`: a
//! panic ends the session with `{internal, Message}` and a replica that
//! starts over with a full sync, never an abort.

use std::any::Any;
use std::convert::Infallible;
use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::ops::ControlFlow;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use nsync_core::repl::{Replica, State};
use rustler::env::OwnedEnv;
use rustler::{Encoder, Env, LocalPid, Term};

use crate::atoms;
use crate::batch::{self, Batch, Delivery};
use crate::credit::Wait;
use crate::encode::unix_now_ms;
use crate::error::{LinkError, Posix};
use crate::link::Shared;
use crate::locks::lock;
use crate::status::LinkState;

const READ_CHUNK: usize = 128 * 1024;
/// A blocked send gives up after this long (the master is not reading).
const WRITE_TIMEOUT: Duration = Duration::from_secs(1);
/// A master silent for this long is gone (Redis's `repl-timeout`; masters
/// send a PING every 10 s, and newlines while they prepare a snapshot).
const SILENCE_TIMEOUT: Duration = Duration::from_secs(60);
/// The longest wait (for bytes or credit) before the pump looks at the
/// clock again; ACKs due sooner shorten it.
const MAX_WAIT: Duration = Duration::from_secs(1);

/// Starts the pump of session `session`, sending to `owner`.
pub fn spawn(
    shared: Arc<Shared>,
    owner: LocalPid,
    session: u64,
    delivery: Delivery,
) -> io::Result<()> {
    thread::Builder::new()
        .name("nsync-pump".into())
        .spawn(move || run(&shared, owner, session, delivery))
        .map(drop)
}

fn run(shared: &Shared, owner: LocalPid, session: u64, delivery: Delivery) {
    let mut env = OwnedEnv::new();
    let reason = {
        let mut replica = lock(&shared.replica);
        let outcome = panic::catch_unwind(AssertUnwindSafe(|| {
            let mut pump = Pump {
                shared,
                owner,
                session,
                delivery,
                env: &mut env,
            };
            match pump.session(&mut replica) {
                Err(err) => err,
                Ok(never) => match never {},
            }
        }));
        let reason = outcome.unwrap_or_else(|panic| {
            // Mid-event state cannot be trusted: resume from nothing.
            *replica = Replica::new(shared.config.replica.clone());
            LinkError::Internal(panic_message(&*panic))
        });
        replica.disconnected();
        reason
    };
    let closed = shared.is_closed();
    let reason = if closed { LinkError::Closed } else { reason };
    shared.status.set_last_error(&reason);
    shared.status.set_state(if closed {
        LinkState::Closed
    } else {
        LinkState::Idle
    });
    shared.pump_ended();
    // The last message of the session (nobody may be listening any more).
    let _ = panic::catch_unwind(AssertUnwindSafe(|| {
        env.clear();
        env.send_and_clear(&owner, |env| {
            let closed = (atoms::closed(), reason.encode(env)).encode(env);
            message(env, session, closed)
        })
    }));
}

/// `{nsync_pump, Session, Payload}`.
fn message<'a>(env: Env<'a>, session: u64, payload: Term<'a>) -> Term<'a> {
    (atoms::nsync_pump(), session, payload).encode(env)
}

fn panic_message(panic: &(dyn Any + Send)) -> String {
    if let Some(msg) = panic.downcast_ref::<&str>() {
        (*msg).to_owned()
    } else if let Some(msg) = panic.downcast_ref::<String>() {
        msg.clone()
    } else {
        "panic".to_owned()
    }
}

struct Pump<'s> {
    shared: &'s Shared,
    owner: LocalPid,
    session: u64,
    delivery: Delivery,
    env: &'s mut OwnedEnv,
}

impl Pump<'_> {
    /// Connects, then sends batches until something ends the session.
    fn session(&mut self, replica: &mut Replica) -> Result<Infallible, LinkError> {
        let config = &self.shared.config;
        let socket = connect(&config.host, config.port, config.connect_timeout)?;
        let mut conn = Conn::attach(self.shared, socket)?;
        replica.connected();
        self.shared.status.set_state(LinkState::Handshake);
        loop {
            if self.shared.is_closed() {
                return Err(LinkError::Closed);
            }
            conn.service(replica)?;
            match self.shared.credit.wait(conn.wait_time(replica)) {
                Wait::Granted => self.send_batch(&mut conn, replica)?,
                Wait::TimedOut => {}
                Wait::Closed => return Err(LinkError::Closed),
            }
        }
    }

    /// Fills a batch and sends it; a failure while filling ends the session
    /// after what came before it was sent (commands advanced the offset).
    fn send_batch(&mut self, conn: &mut Conn, replica: &mut Replica) -> Result<(), LinkError> {
        let now_ms = unix_now_ms();
        let env: &OwnedEnv = self.env;
        let (saved, keys, commands, failure) = env.run(|term_env| {
            let mut batch = Batch::new(term_env, self.delivery, now_ms);
            let failure = conn.fill(&mut batch, replica, self.shared).err();
            let (keys, commands) = (batch.keys, batch.commands);
            let saved = batch.has_items().then(|| env.save(batch.into_term()));
            (saved, keys, commands, failure)
        });
        match saved {
            Some(saved) => {
                let session = self.session;
                self.env
                    .send_and_clear(&self.owner, |env| {
                        let batch = (atoms::batch(), saved.load(env)).encode(env);
                        message(env, session, batch)
                    })
                    .map_err(|_| LinkError::OwnerGone)?;
                self.shared.credit.spend();
                self.shared.status.count(keys, commands);
            }
            None => self.env.clear(),
        }
        failure.map_or(Ok(()), Err)
    }
}

/// The session's socket.
struct Conn {
    socket: TcpStream,
    read_buf: Box<[u8]>,
    /// The read timeout now set.
    read_timeout: Option<Duration>,
    /// How long reads have found nothing, since the last byte.
    silence: Duration,
    /// The last read emptied the socket: nothing more right now.
    drained: bool,
}

impl Conn {
    fn attach(shared: &Shared, socket: TcpStream) -> Result<Conn, LinkError> {
        let setup = || -> io::Result<TcpStream> {
            socket.set_nodelay(true)?;
            socket.set_write_timeout(Some(WRITE_TIMEOUT))?;
            socket.try_clone()
        };
        let handle = setup().map_err(|err| LinkError::Connect(Posix::from(&err)))?;
        if !shared.set_shutdown_handle(Some(handle)) {
            return Err(LinkError::Closed);
        }
        Ok(Conn {
            socket,
            read_buf: vec![0; READ_CHUNK].into_boxed_slice(),
            read_timeout: None,
            silence: Duration::ZERO,
            drained: false,
        })
    }

    /// Reads and parses into `batch` until it is full, or it has something
    /// and the socket has nothing more right now (while streaming), or a wait
    /// found nothing.
    fn fill(
        &mut self,
        batch: &mut Batch,
        replica: &mut Replica,
        shared: &Shared,
    ) -> Result<(), LinkError> {
        let mut bytes = 0;
        loop {
            if !batch.is_full() {
                replica.next_events(|event| {
                    batch.push(&event);
                    if batch.is_full() {
                        ControlFlow::Break(())
                    } else {
                        ControlFlow::Continue(())
                    }
                })?;
            }
            shared.status.publish(replica);
            // GETACK answers, and the first ACK right after a snapshot (a
            // diskless master sends nothing more until it gets one).
            self.service(replica)?;
            // Snapshot keys are seen by nobody until the snapshot is
            // complete: they wait for a full batch (fewer, bigger messages:
            // the link process wakes up less). Anything else goes as soon as
            // the socket has nothing more.
            let eager = replica.state() != State::Loading;
            if batch.is_full()
                || (!batch.is_empty() && ((eager && self.drained) || bytes >= batch::MAX_BYTES))
            {
                return Ok(());
            }
            if shared.is_closed() {
                return Err(LinkError::Closed);
            }
            match self.read(replica)? {
                0 => return Ok(()),
                n => bytes += n,
            }
        }
    }

    /// Reads once, waiting at most [`Conn::wait_time`]; 0 if nothing came.
    fn read(&mut self, replica: &mut Replica) -> Result<usize, LinkError> {
        let wait = self.wait_time(replica);
        if self.read_timeout != Some(wait) {
            self.socket
                .set_read_timeout(Some(wait))
                .map_err(|err| LinkError::Recv(Posix::from(&err)))?;
            self.read_timeout = Some(wait);
        }
        let started = Instant::now();
        match self.socket.read(&mut self.read_buf) {
            Ok(0) => Err(LinkError::Eof),
            Ok(n) => {
                replica.feed(&self.read_buf[..n]);
                self.silence = Duration::ZERO;
                self.drained = n < self.read_buf.len();
                Ok(n)
            }
            Err(err) if is_no_data(&err) => {
                self.silence += started.elapsed();
                if self.silence >= SILENCE_TIMEOUT {
                    return Err(LinkError::Recv(Posix::Atom("timeout")));
                }
                self.drained = true;
                Ok(0)
            }
            Err(err) => Err(LinkError::Recv(Posix::from(&err))),
        }
    }

    /// How long the pump may wait for bytes or credit: until the next ACK
    /// is due, at most [`MAX_WAIT`].
    fn wait_time(&self, replica: &Replica) -> Duration {
        replica.ack_due_in(Instant::now()).map_or(MAX_WAIT, |due| {
            due.clamp(Duration::from_millis(1), MAX_WAIT)
        })
    }

    /// Queues an ACK if one is due and writes what the replica has to say.
    fn service(&mut self, replica: &mut Replica) -> Result<(), LinkError> {
        replica.tick(Instant::now());
        if !replica.has_output() {
            return Ok(());
        }
        let output = replica.take_output();
        self.socket
            .write_all(&output)
            .map_err(|err| LinkError::Send(Posix::from(&err)))
    }
}

/// Resolves `host` and tries each address in turn.
fn connect(host: &str, port: u16, timeout: Duration) -> Result<TcpStream, LinkError> {
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

//! The pump: one thread per session (connection attempt) of a link.
//!
//! It holds the link's replication state (`Resumable`: the replica and its
//! counts) for the whole session, connects to the session's master, then
//! owns the connection: it reads (`conn.rs`), parses (`nsync_core`'s
//! replica), builds the terms of a batch in an [`OwnedEnv`] (`batch.rs`)
//! and sends it to the link process, while that process handles (e.g.
//! inserts into ETS) the batches before. It writes the replica's output
//! itself (handshake, ACKs, GETACK answers); the read timeout follows the
//! next ACK due. Without credit (`credit.rs`) it waits and reads nothing.
//! A session whose source is a file (`file.rs`) reads the file instead,
//! through the same batches ([`Feed`], [`send_batch`]) and credit.
//!
//! The session ends on any error, EOF, `disconnect/1`, `close/1`, or when
//! the link process is gone; the pump then puts the replication state back
//! (`Shared::end_session`), sends `{nsync_pump, Session, {closed, Reason}}`
//! as its last message and exits. The whole body runs under
//! `catch_unwind`: a panic ends the session with `{internal, Message}` and a
//! replica that starts over with a full sync, never an abort.

use std::any::Any;
use std::convert::Infallible;
use std::io;
use std::ops::ControlFlow;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use nsync_core::repl::{ReplState, Replica};
use rustler::env::OwnedEnv;
use rustler::{Encoder, Env, LocalPid, Term};

use crate::atoms;
use crate::batch::Batch;
use crate::config::Source;
use crate::conn::{Conn, Master, Received};
use crate::credit::Wait;
use crate::encode::unix_now_ms;
use crate::error::{LinkError, Posix};
use crate::file;
use crate::reason;
use crate::shared::{Resumable, Shared};
use crate::status::{Progress, Tally};

/// The longest wait (for bytes or credit) before the pump looks at the
/// clock again; ACKs due sooner shorten it.
pub const MAX_WAIT: Duration = Duration::from_secs(1);

/// Starts the pump of session `session`, reading from `source` and sending
/// to `owner`.
pub fn spawn(shared: Arc<Shared>, owner: LocalPid, session: u64, source: Source) -> io::Result<()> {
    thread::Builder::new()
        .name("nsync-pump".into())
        .spawn(move || run(&shared, owner, session, &source))
        .map(drop)
}

/// The thread: takes the replication state, runs the session (a panic ends
/// it like an error), puts the state back, sends `{closed, Reason}`.
fn run(shared: &Shared, owner: LocalPid, session: u64, source: &Source) {
    let mut env = OwnedEnv::new();
    let mut resumable = shared.take_resumable();
    let outcome = panic::catch_unwind(AssertUnwindSafe(|| match source {
        Source::Master(master) => {
            connect_and_pump(shared, owner, session, master, &mut env, &mut resumable)
        }
        Source::File(file) => {
            file::load(shared, owner, session, file, &mut env, &mut resumable.tally)
        }
    }));
    let reason = outcome.unwrap_or_else(|panic| {
        // Mid-event state cannot be trusted: resume from nothing.
        resumable = Resumable::fresh(&shared.config, resumable.tally);
        LinkError::Internal(panic_message(&*panic))
    });
    resumable.replica.disconnected();
    let reason = shared.end_session(resumable, reason);
    // The last message of the session (nobody may be listening any more).
    let _ = panic::catch_unwind(AssertUnwindSafe(|| {
        env.clear();
        env.send_and_clear(&owner, |env| {
            let closed = (atoms::closed(), reason::term(env, &reason)).encode(env);
            message(env, session, closed)
        })
    }));
}

/// Connects, then pumps until something ends the session: why.
fn connect_and_pump(
    shared: &Shared,
    owner: LocalPid,
    session: u64,
    master: &Master,
    env: &mut OwnedEnv,
    resumable: &mut Resumable,
) -> LinkError {
    let config = &shared.config;
    let (conn, shutdown) = match Conn::connect(master, config.connect_timeout, config.tls.as_ref())
    {
        Ok(connected) => connected,
        Err(err) => return err,
    };
    if let Err(stopped) = shared.attach(shutdown) {
        return stopped;
    }
    let mut pump = Pump {
        shared,
        owner,
        session,
        conn,
        replica: &mut resumable.replica,
        tally: &mut resumable.tally,
        silence: Duration::ZERO,
        drained: false,
        heard: false,
    };
    match pump.run(env) {
        // Not a byte from the master: a peer that is not one.
        Err(err @ (LinkError::Eof | LinkError::Recv(_))) if !pump.heard => {
            LinkError::NoAnswer(Box::new(err))
        }
        Err(err) => err,
        Ok(never) => match never {},
    }
}

/// `{nsync_pump, Session, Payload}`.
fn message<'a>(env: Env<'a>, session: u64, payload: Term<'a>) -> Term<'a> {
    (atoms::nsync_pump(), session, payload).encode(env)
}

/// What a session reads from (a master's connection, a file): it fills
/// batches and says what it has reached.
pub trait Feed {
    /// Parses into `batch`, reading more as needed, until the batch is
    /// ready to go ([`Batch::is_ready`]) or nothing more came.
    fn fill(&mut self, batch: &mut Batch) -> Result<(), LinkError>;
    fn tally(&mut self) -> &mut Tally;
    fn progress(&self) -> Progress;
}

/// Fills a batch from `feed` and sends it to `owner`. A failure while
/// filling ends the session after what came before it was sent (commands
/// advanced the offset).
pub fn send_batch(
    shared: &Shared,
    owner: LocalPid,
    session: u64,
    env: &mut OwnedEnv,
    feed: &mut impl Feed,
) -> Result<(), LinkError> {
    let now_ms = unix_now_ms();
    let (saved, failure) = {
        let env: &OwnedEnv = env;
        env.run(|term_env| {
            let mut batch = Batch::new(term_env, &shared.config, now_ms);
            let failure = feed.fill(&mut batch).err();
            feed.tally().add_batch(
                batch.full_sync_started,
                batch.keys_delivered,
                batch.commands,
            );
            let saved = batch.has_items().then(|| env.save(batch.into_term()));
            (saved, failure)
        })
    };
    match saved {
        Some(saved) => {
            // Credit and status first: the link process may handle the
            // batch before this thread runs again.
            shared.credit.spend();
            shared.status.sent(feed.progress());
            env.send_and_clear(&owner, |env| {
                let batch = (atoms::batch(), saved.load(env)).encode(env);
                message(env, session, batch)
            })
            .map_err(|_| LinkError::OwnerGone)?;
        }
        None => env.clear(),
    }
    failure.map_or(Ok(()), Err)
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

/// A connected session.
struct Pump<'s> {
    shared: &'s Shared,
    owner: LocalPid,
    session: u64,
    conn: Conn,
    replica: &'s mut Replica,
    tally: &'s mut Tally,
    /// How long reads have found nothing, since the last byte.
    silence: Duration,
    /// The last read emptied the socket: nothing more right now.
    drained: bool,
    /// The master sent something in this session.
    heard: bool,
}

impl Pump<'_> {
    /// The handshake, then batch after batch as credit allows; ACKs go out
    /// on time even while the pump waits for credit.
    fn run(&mut self, env: &mut OwnedEnv) -> Result<Infallible, LinkError> {
        self.replica.connected();
        self.shared.status.reached(self.progress());
        loop {
            self.shared.check_running()?;
            self.write_output()?;
            match self.shared.credit.wait(self.wait_time()) {
                Wait::Granted => {
                    let (shared, owner, session) = (self.shared, self.owner, self.session);
                    send_batch(shared, owner, session, env, self)?;
                }
                // A stopped session ends at the top of the loop.
                Wait::TimedOut | Wait::Stopped => {}
            }
        }
    }

    /// Reads once into the replica, waiting at most [`Pump::wait_time`]; 0
    /// if nothing came.
    fn read(&mut self) -> Result<usize, LinkError> {
        let wait = self.wait_time();
        let started = Instant::now();
        match self.conn.receive(wait)? {
            Received::Data { bytes, drained } => {
                self.replica.feed(bytes);
                self.heard = true;
                self.shared.status.read(bytes.len(), unix_now_ms());
                self.silence = Duration::ZERO;
                self.drained = drained;
                Ok(bytes.len())
            }
            Received::Nothing => {
                self.silence += started.elapsed();
                // A master silent for `master_timeout` is gone (as for a
                // replica's `repl-timeout`: masters PING every 10 s, and
                // send newlines while they prepare a snapshot).
                if self.silence >= self.shared.config.master_timeout {
                    return Err(LinkError::Recv(Posix::Atom("timeout")));
                }
                self.drained = true;
                Ok(0)
            }
        }
    }

    /// Queues an ACK if one is due and writes what the replica has to say.
    fn write_output(&mut self) -> Result<(), LinkError> {
        self.replica.tick(Instant::now());
        if self.replica.has_output() {
            self.conn.send(&self.replica.take_output())?;
        }
        Ok(())
    }

    /// How long the pump may wait for bytes or credit: until the next ACK
    /// is due, at most [`MAX_WAIT`].
    fn wait_time(&self) -> Duration {
        self.replica
            .ack_due_in(Instant::now())
            .map_or(MAX_WAIT, |due| {
                due.clamp(Duration::from_millis(1), MAX_WAIT)
            })
    }
}

impl Feed for Pump<'_> {
    /// Parses what was read into `batch` and reads more, until the batch is
    /// ready to go (`Batch::is_ready`) or a wait found nothing.
    fn fill(&mut self, batch: &mut Batch) -> Result<(), LinkError> {
        let mut read = 0;
        loop {
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
            if !batch.has_items() {
                // What moves without items (the offset of PINGs and
                // GETACKs, bytes) is published all the same.
                self.shared.status.reached(self.progress());
            }
            // GETACK answers, and the first ACK right after a snapshot (a
            // diskless master sends nothing more until it gets one).
            self.write_output()?;
            let loading = self.replica.state() == ReplState::Loading;
            if batch.is_ready(loading, self.drained, read) {
                return Ok(());
            }
            self.shared.check_running()?;
            match self.read()? {
                0 => return Ok(()),
                n => read += n,
            }
        }
    }

    fn tally(&mut self) -> &mut Tally {
        self.tally
    }

    fn progress(&self) -> Progress {
        Progress::of(self.replica, *self.tally)
    }
}

//! What a link resource (`link.rs`) and the pump of its session
//! (`pump.rs`) share: the configuration, the status, the credit, the
//! replication state between sessions, and the session slot through which
//! a session is stopped from outside (`disconnect/1`, `close/1`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use nsync_core::repl::Replica;

use crate::config::LinkConfig;
use crate::conn::{Master, ShutdownHandle};
use crate::credit::Credit;
use crate::error::LinkError;
use crate::locks::lock;
use crate::status::{Progress, Status, Tally};

/// What carries over from one session to the next: the replica (its
/// replication position: replid, offset, db; so the next session resumes
/// with PSYNC, whichever master it connects to) and the running counts.
pub struct Resumable {
    pub replica: Replica,
    pub tally: Tally,
}

impl Resumable {
    /// Nothing to resume from: the next session makes a full sync.
    pub fn fresh(config: &LinkConfig, tally: Tally) -> Resumable {
        Resumable {
            replica: Replica::new(config.replica.clone()),
            tally,
        }
    }
}

/// Why a session cannot start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The link is closed.
    Closed,
    /// The previous session has not ended yet.
    Running,
}

#[derive(Default)]
struct SessionSlot {
    running: bool,
    /// `disconnect/1` asked the running session to end.
    stopping: bool,
    /// Shuts the running session's socket down.
    shutdown: Option<ShutdownHandle>,
}

pub struct Shared {
    pub config: LinkConfig,
    pub status: Status,
    pub credit: Credit,
    /// Between sessions; the running session's pump holds it.
    resumable: Mutex<Option<Resumable>>,
    slot: Mutex<SessionSlot>,
    closed: AtomicBool,
}

impl Shared {
    pub fn new(config: LinkConfig) -> Shared {
        let resumable = Resumable::fresh(&config, Tally::default());
        Shared {
            config,
            status: Status::default(),
            credit: Credit::default(),
            resumable: Mutex::new(Some(resumable)),
            slot: Mutex::new(SessionSlot::default()),
            closed: AtomicBool::new(false),
        }
    }

    /// Claims the slot for session `session`, connecting to `master` (none
    /// for a file).
    pub fn begin_session(&self, session: u64, master: Option<Master>) -> Result<(), Refused> {
        let mut slot = lock(&self.slot);
        if self.is_closed() {
            return Err(Refused::Closed);
        }
        if slot.running {
            return Err(Refused::Running);
        }
        *slot = SessionSlot {
            running: true,
            ..SessionSlot::default()
        };
        self.credit.reset(session);
        self.status.begin(session, master);
        Ok(())
    }

    /// The replication state, for the session's pump to hold while it runs.
    pub fn take_resumable(&self) -> Resumable {
        lock(&self.resumable)
            .take()
            .unwrap_or_else(|| Resumable::fresh(&self.config, Tally::default()))
    }

    /// Records the session's socket, so that it can be shut down from
    /// outside; if the session must already end, why.
    pub fn attach(&self, shutdown: ShutdownHandle) -> Result<(), LinkError> {
        let mut slot = lock(&self.slot);
        slot.shutdown = Some(shutdown);
        self.check_running_locked(&slot)
    }

    /// Whether the session may go on: not if `disconnect/1` or `close/1`
    /// was called.
    pub fn check_running(&self) -> Result<(), LinkError> {
        self.check_running_locked(&lock(&self.slot))
    }

    fn check_running_locked(&self, slot: &SessionSlot) -> Result<(), LinkError> {
        if self.is_closed() {
            Err(LinkError::Closed)
        } else if slot.stopping {
            Err(LinkError::Disconnected)
        } else {
            Ok(())
        }
    }

    /// The session is over because of `reason` (unless it was stopped from
    /// outside, which takes precedence): its state is put back for the
    /// next session and its last progress published. Returns the reason.
    pub fn end_session(&self, resumable: Resumable, reason: LinkError) -> LinkError {
        let mut slot = lock(&self.slot);
        let reason = self.check_running_locked(&slot).err().unwrap_or(reason);
        let mut last = Progress::of(&resumable.replica, resumable.tally);
        last.ended_by = Some(reason.clone());
        self.status.reached(last);
        *lock(&self.resumable) = Some(resumable);
        *slot = SessionSlot::default();
        reason
    }

    /// A session that could not start at all (no thread).
    pub fn abandon_session(&self, reason: LinkError) {
        let resumable = self.take_resumable();
        self.end_session(resumable, reason);
    }

    /// Ends the running session, if any: its pump sends
    /// `{closed, disconnected}`.
    pub fn disconnect(&self) {
        let mut slot = lock(&self.slot);
        if !slot.running {
            return;
        }
        slot.stopping = true;
        self.credit.stop();
        if let Some(shutdown) = &slot.shutdown {
            shutdown.shutdown();
        }
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// Ends the running session and every later one.
    pub fn close(&self) {
        let slot = lock(&self.slot);
        self.closed.store(true, Ordering::SeqCst);
        self.status.close();
        self.credit.close();
        if let Some(shutdown) = &slot.shutdown {
            shutdown.shutdown();
        }
    }
}

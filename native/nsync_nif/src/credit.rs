//! Credit-based flow control between a pump thread and the link process.
//!
//! The pump may have at most [`MAX_IN_FLIGHT`] batches sent and not yet
//! handled; the link process gives a credit back (`ack/2`) after handling
//! each one. Without credit the pump stops reading the socket, so a slow
//! consumer slows the master the way a slow replica does, and memory stays
//! bounded.

use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

use crate::locks::lock;
use std::time::Duration;

/// Batches sent to the link process and not yet handled, at most.
pub const MAX_IN_FLIGHT: usize = 4;

#[derive(Default)]
pub struct Credit {
    state: Mutex<State>,
    wakeup: Condvar,
}

#[derive(Default)]
struct State {
    /// The session the counts belong to; credits of other sessions are stale.
    session: u64,
    in_flight: usize,
    /// The pump is waiting: a credit given back must wake it.
    waiting: bool,
    closed: bool,
}

/// What a wait for credit ended with.
#[derive(Debug, PartialEq, Eq)]
pub enum Wait {
    /// The pump may send a batch.
    Granted,
    /// Still no credit after the timeout.
    TimedOut,
    /// The link was closed.
    Closed,
}

impl Credit {
    fn lock(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// A new session starts with every credit.
    pub fn reset(&self, session: u64) {
        let mut state = self.lock();
        state.session = session;
        state.in_flight = 0;
    }

    /// The link process handled a batch of `session`.
    pub fn give_back(&self, session: u64) {
        let mut state = self.lock();
        if state.session != session || state.in_flight == 0 {
            return;
        }
        state.in_flight -= 1;
        if state.waiting {
            self.wakeup.notify_one();
        }
    }

    /// The pump sent a batch.
    pub fn spend(&self) {
        self.lock().in_flight += 1;
    }

    /// Waits up to `timeout` until a batch may be sent.
    pub fn wait(&self, timeout: Duration) -> Wait {
        let mut state = self.lock();
        if state.in_flight >= MAX_IN_FLIGHT && !state.closed {
            state.waiting = true;
            state = self
                .wakeup
                .wait_timeout_while(state, timeout, |s| {
                    s.in_flight >= MAX_IN_FLIGHT && !s.closed
                })
                .unwrap_or_else(PoisonError::into_inner)
                .0;
            state.waiting = false;
        }
        if state.closed {
            Wait::Closed
        } else if state.in_flight < MAX_IN_FLIGHT {
            Wait::Granted
        } else {
            Wait::TimedOut
        }
    }

    /// Wakes a waiting pump for good: the link is closed.
    pub fn close(&self) {
        self.lock().closed = true;
        self.wakeup.notify_all();
    }
}

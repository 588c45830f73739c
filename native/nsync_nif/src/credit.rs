//! Credit-based flow control between a pump thread and the link process.
//!
//! The pump may have at most [`MAX_IN_FLIGHT`] batches sent and not yet
//! handled; the link process gives a credit back (`ack/2`) after handling
//! each one. Without credit the pump stops reading the socket, so a slow
//! consumer slows the master the way a slow replica does, and memory stays
//! bounded. A pump waiting for credit is woken when the session is stopped
//! (`disconnect/1`) or the link closed.

use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use crate::locks::lock;

/// Batches sent to the link process and not yet handled, at most.
pub const MAX_IN_FLIGHT: usize = 4;

#[derive(Default)]
pub struct Credit {
    ledger: Mutex<Ledger>,
    wakeup: Condvar,
}

#[derive(Default)]
struct Ledger {
    /// The session the counts belong to; credits of other sessions are stale.
    session: u64,
    in_flight: usize,
    /// The pump is waiting: a credit given back must wake it.
    waiting: bool,
    /// The session must end (until the next one starts).
    stopped: bool,
    /// The link is closed: every session must end, for good.
    closed: bool,
}

impl Ledger {
    fn blocked(&self) -> bool {
        self.in_flight >= MAX_IN_FLIGHT && !self.stopped
    }
}

/// What a wait for credit ended with.
#[derive(Debug, PartialEq, Eq)]
pub enum Wait {
    /// The pump may send a batch.
    Granted,
    /// Still no credit after the timeout.
    TimedOut,
    /// The session was stopped or the link closed.
    Stopped,
}

impl Credit {
    fn lock(&self) -> MutexGuard<'_, Ledger> {
        lock(&self.ledger)
    }

    /// A new session starts with every credit.
    pub fn reset(&self, session: u64) {
        let mut ledger = self.lock();
        ledger.session = session;
        ledger.in_flight = 0;
        ledger.stopped = ledger.closed;
    }

    /// The link process handled a batch of `session`.
    pub fn give_back(&self, session: u64) {
        let mut ledger = self.lock();
        if ledger.session != session || ledger.in_flight == 0 {
            return;
        }
        ledger.in_flight -= 1;
        if ledger.waiting {
            self.wakeup.notify_one();
        }
    }

    /// The pump is about to send a batch (taken before the send, so that a
    /// credit given back at once is never lost).
    pub fn spend(&self) {
        self.lock().in_flight += 1;
    }

    /// Waits up to `timeout` until a batch may be sent.
    pub fn wait(&self, timeout: Duration) -> Wait {
        let mut ledger = self.lock();
        if ledger.blocked() {
            ledger.waiting = true;
            ledger = self
                .wakeup
                .wait_timeout_while(ledger, timeout, |l| l.blocked())
                .unwrap_or_else(PoisonError::into_inner)
                .0;
            ledger.waiting = false;
        }
        if ledger.stopped {
            Wait::Stopped
        } else if ledger.in_flight < MAX_IN_FLIGHT {
            Wait::Granted
        } else {
            Wait::TimedOut
        }
    }

    /// Whether every credit is out: the pump reads nothing until the link
    /// process hands one back.
    pub fn is_exhausted(&self) -> bool {
        self.lock().blocked()
    }

    /// Wakes a waiting pump: its session must end.
    pub fn stop(&self) {
        self.lock().stopped = true;
        self.wakeup.notify_all();
    }

    /// Wakes a waiting pump for good: the link is closed.
    pub fn close(&self) {
        let mut ledger = self.lock();
        ledger.closed = true;
        ledger.stopped = true;
        drop(ledger);
        self.wakeup.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::thread;
    use std::time::Instant;

    const SHORT: Duration = Duration::from_millis(20);
    const LONG: Duration = Duration::from_secs(10);

    fn spent(session: u64, batches: usize) -> Credit {
        let credit = Credit::default();
        credit.reset(session);
        for _ in 0..batches {
            credit.spend();
        }
        credit
    }

    /// Runs `wait(LONG)` in a thread: its outcome and how long it took.
    fn wait_in_thread(credit: &Arc<Credit>) -> thread::JoinHandle<(Wait, Duration)> {
        let credit = Arc::clone(credit);
        thread::spawn(move || {
            let started = Instant::now();
            (credit.wait(LONG), started.elapsed())
        })
    }

    #[test]
    fn granted_until_every_credit_is_spent() {
        let credit = spent(1, 0);
        for _ in 0..MAX_IN_FLIGHT {
            assert_eq!(credit.wait(SHORT), Wait::Granted);
            credit.spend();
        }
        let started = Instant::now();
        assert_eq!(credit.wait(SHORT), Wait::TimedOut);
        assert!(started.elapsed() >= SHORT);
        credit.give_back(1);
        assert_eq!(credit.wait(SHORT), Wait::Granted);
    }

    #[test]
    fn credits_of_another_session_are_ignored() {
        let credit = spent(2, MAX_IN_FLIGHT);
        credit.give_back(1);
        credit.give_back(3);
        assert_eq!(credit.wait(SHORT), Wait::TimedOut);
        credit.give_back(2);
        assert_eq!(credit.wait(SHORT), Wait::Granted);
    }

    #[test]
    fn more_credits_than_spent_are_ignored() {
        let credit = spent(1, 1);
        credit.give_back(1);
        credit.give_back(1);
        for _ in 0..MAX_IN_FLIGHT {
            credit.spend();
        }
        assert_eq!(credit.wait(SHORT), Wait::TimedOut);
    }

    #[test]
    fn a_new_session_starts_with_every_credit() {
        let credit = spent(1, MAX_IN_FLIGHT);
        credit.reset(2);
        assert_eq!(credit.wait(SHORT), Wait::Granted);
    }

    #[test]
    fn a_credit_given_back_wakes_the_waiting_pump() {
        let credit = Arc::new(spent(1, MAX_IN_FLIGHT));
        let waiter = wait_in_thread(&credit);
        thread::sleep(SHORT);
        credit.give_back(1);
        let (outcome, waited) = waiter.join().unwrap();
        assert_eq!(outcome, Wait::Granted);
        assert!(waited < LONG);
    }

    #[test]
    fn stop_wakes_the_waiting_pump_until_the_next_session() {
        let credit = Arc::new(spent(1, MAX_IN_FLIGHT));
        let waiter = wait_in_thread(&credit);
        thread::sleep(SHORT);
        credit.stop();
        let (outcome, waited) = waiter.join().unwrap();
        assert_eq!(outcome, Wait::Stopped);
        assert!(waited < LONG);
        assert_eq!(credit.wait(SHORT), Wait::Stopped);
        credit.reset(2);
        assert_eq!(credit.wait(SHORT), Wait::Granted);
    }

    #[test]
    fn close_wakes_the_waiting_pump_for_good() {
        let credit = Arc::new(spent(1, MAX_IN_FLIGHT));
        let waiter = wait_in_thread(&credit);
        thread::sleep(SHORT);
        credit.close();
        let (outcome, waited) = waiter.join().unwrap();
        assert_eq!(outcome, Wait::Stopped);
        assert!(waited < LONG);
        credit.reset(2);
        assert_eq!(credit.wait(SHORT), Wait::Stopped);
    }
}

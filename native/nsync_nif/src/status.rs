//! The connection facts `info/1` reports (state, master, replid, offset,
//! db, counts, last error; bytes read, last read), read at any time
//! without waiting for the pump.
//!
//! Most describe what the link process has handled, not what the pump has
//! parsed: the facts a batch brings are published when the link process
//! gives its credit back (`ack/2`), and facts the pump reaches between
//! batches (the end of a session, offsets of pings) only after the batches
//! sent before them. So once `info/1` says `streaming` after a full sync,
//! the link process has published the new snapshot's tables. Three are
//! live instead, for an operator watching a busy or stalled link: the bytes
//! read and the time of the last read (as the pump reads), and the
//! master's offset as far as the pump has parsed the stream.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use bytes::Bytes;
use nsync_core::repl::{Position, ReplState, Replica};

use crate::conn::Master;
use crate::error::LinkError;
use crate::locks::lock;

/// Where a link is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkState {
    /// No session has started yet.
    Idle,
    /// A session resolves and connects.
    Connecting,
    /// Connected: the handshake, up to the master's answer to PSYNC.
    Handshake,
    /// A full sync is loading.
    Loading,
    /// Following the command stream.
    Streaming,
    /// The last session ended; the link process decides when the next one
    /// starts.
    Disconnected,
    /// `close/1` was called, or the link's owner is gone.
    Closed,
}

impl LinkState {
    /// The state of a session whose replica is in `state`.
    pub fn of(state: ReplState) -> LinkState {
        match state {
            ReplState::Disconnected => LinkState::Disconnected,
            ReplState::Handshake => LinkState::Handshake,
            ReplState::Loading => LinkState::Loading,
            ReplState::Streaming => LinkState::Streaming,
        }
    }
}

/// Running counts, kept across sessions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    /// Keys delivered since the last full sync started.
    pub keys_loaded: u64,
    /// Commands delivered since `open/1`.
    pub commands: u64,
}

impl Tally {
    /// A batch delivered `keys` snapshot keys (counted from the start of a
    /// full sync, when one `started` in it) and `commands` commands.
    pub fn add_batch(&mut self, started: bool, keys: u64, commands: u64) {
        if started {
            self.keys_loaded = 0;
        }
        self.keys_loaded += keys;
        self.commands += commands;
    }
}

/// What a session has reached at some point: published in order.
#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    pub state: LinkState,
    /// The committed replication position, if any.
    pub position: Option<Position>,
    pub tally: Tally,
    /// Bytes of the snapshot loading, or of the last one loaded.
    pub snapshot_bytes: u64,
    /// Why the session ended (with the session's last progress).
    pub ended_by: Option<LinkError>,
}

impl Progress {
    pub fn of(replica: &Replica, tally: Tally) -> Progress {
        Progress {
            state: LinkState::of(replica.state()),
            position: replica.position().cloned(),
            tally,
            snapshot_bytes: replica.snapshot_bytes(),
            ended_by: None,
        }
    }
}

/// The facts as published.
#[derive(Debug, Clone, PartialEq)]
pub struct Facts {
    pub state: LinkState,
    /// The master of the current or last session.
    pub master: Option<Master>,
    pub replid: Option<Bytes>,
    pub offset: Option<i64>,
    pub db: u64,
    pub tally: Tally,
    pub snapshot_bytes: u64,
    /// Why the last session ended.
    pub last_error: Option<LinkError>,
    /// Live: the master's offset as far as the pump has parsed the stream
    /// (`offset` is as far as the link process has handled it).
    pub master_offset: Option<i64>,
    /// Live: bytes read from masters since `open/1`.
    pub bytes: u64,
    /// Live: when bytes were last read (ms since the epoch), if ever.
    pub last_read_ms: Option<i64>,
}

impl Default for Facts {
    fn default() -> Facts {
        Facts {
            state: LinkState::Idle,
            master: None,
            replid: None,
            offset: None,
            db: 0,
            tally: Tally::default(),
            snapshot_bytes: 0,
            last_error: None,
            master_offset: None,
            bytes: 0,
            last_read_ms: None,
        }
    }
}

impl Facts {
    fn apply(&mut self, progress: Progress) {
        if self.state != LinkState::Closed {
            self.state = progress.state;
        }
        if let Some(position) = progress.position {
            self.replid = position.replid;
            self.offset = Some(position.offset);
            self.db = position.db;
        }
        self.tally = progress.tally;
        self.snapshot_bytes = progress.snapshot_bytes;
        if let Some(err) = progress.ended_by {
            self.last_error = Some(err);
        }
    }
}

/// Progress waiting to be published.
struct Pending {
    progress: Progress,
    /// Carried by a batch: published when the link process has handled it.
    /// Otherwise published right after the batch before it.
    by_batch: bool,
}

#[derive(Default)]
struct Board {
    facts: Facts,
    /// The session whose batches are counted.
    session: u64,
    pending: VecDeque<Pending>,
    /// The offset of the last progress the pump reached.
    parsed_offset: Option<i64>,
}

impl Board {
    fn push(&mut self, pending: Pending) {
        if let Some(position) = &pending.progress.position {
            self.parsed_offset = Some(position.offset);
        }
        self.pending.push_back(pending);
    }

    fn publish_all(&mut self) {
        while let Some(pending) = self.pending.pop_front() {
            self.facts.apply(pending.progress);
        }
    }

    /// Publishes the progress that waited for nothing but what is before it.
    fn publish_unblocked(&mut self) {
        while self.pending.front().is_some_and(|p| !p.by_batch) {
            if let Some(pending) = self.pending.pop_front() {
                self.facts.apply(pending.progress);
            }
        }
    }
}

#[derive(Default)]
pub struct Status {
    board: Mutex<Board>,
    /// Bytes read since `open/1`.
    bytes_read: AtomicU64,
    /// When bytes were last read, ms since the epoch; 0: never.
    last_read_ms: AtomicI64,
}

impl Status {
    fn board(&self) -> MutexGuard<'_, Board> {
        lock(&self.board)
    }

    /// Session `session` starts, connecting to `master` (none: it reads a
    /// file).
    pub fn begin(&self, session: u64, master: Option<Master>) {
        let mut board = self.board();
        board.publish_all();
        board.session = session;
        board.facts.master = master;
        if board.facts.state != LinkState::Closed {
            board.facts.state = LinkState::Connecting;
        }
    }

    /// `bytes` bytes were read at `now_ms` (ms since the epoch).
    pub fn read(&self, bytes: usize, now_ms: i64) {
        self.bytes_read.fetch_add(bytes as u64, Ordering::Relaxed);
        self.last_read_ms.store(now_ms, Ordering::Relaxed);
    }

    /// A batch carrying `progress` is about to be sent.
    pub fn sent(&self, progress: Progress) {
        self.board().push(Pending {
            progress,
            by_batch: true,
        });
    }

    /// The session reached `progress` without sending a batch.
    pub fn reached(&self, progress: Progress) {
        let mut board = self.board();
        board.push(Pending {
            progress,
            by_batch: false,
        });
        board.publish_unblocked();
    }

    /// The link process handled a batch of `session`.
    pub fn handled(&self, session: u64) {
        let mut board = self.board();
        if board.session != session {
            return;
        }
        if let Some(pending) = board.pending.pop_front() {
            board.facts.apply(pending.progress);
        }
        board.publish_unblocked();
    }

    /// The link is closed: what is known is published, the state stays
    /// `Closed`.
    pub fn close(&self) {
        let mut board = self.board();
        board.publish_all();
        board.facts.state = LinkState::Closed;
    }

    pub fn facts(&self) -> Facts {
        let board = self.board();
        let last_read_ms = self.last_read_ms.load(Ordering::Relaxed);
        Facts {
            master_offset: board.parsed_offset.or(board.facts.offset),
            bytes: self.bytes_read.load(Ordering::Relaxed),
            last_read_ms: (last_read_ms != 0).then_some(last_read_ms),
            ..board.facts.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn master() -> Master {
        Master {
            host: "127.0.0.1".into(),
            port: 6379,
        }
    }

    fn progress(state: LinkState, offset: i64, commands: u64) -> Progress {
        Progress {
            state,
            position: Some(Position {
                replid: Some(Bytes::from_static(b"r")),
                offset,
                db: 0,
            }),
            tally: Tally {
                commands,
                ..Tally::default()
            },
            snapshot_bytes: 0,
            ended_by: None,
        }
    }

    fn state(status: &Status) -> LinkState {
        status.facts().state
    }

    #[test]
    fn keys_are_counted_from_the_last_full_sync() {
        let mut tally = Tally::default();
        tally.add_batch(false, 5, 1);
        tally.add_batch(true, 3, 2);
        tally.add_batch(false, 4, 0);
        assert_eq!(tally.keys_loaded, 7);
        assert_eq!(tally.commands, 3);
    }

    #[test]
    fn starts_idle_and_connects() {
        let status = Status::default();
        assert_eq!(status.facts(), Facts::default());
        status.begin(1, Some(master()));
        assert_eq!(state(&status), LinkState::Connecting);
        assert_eq!(status.facts().master, Some(master()));
    }

    #[test]
    fn batches_publish_when_handled_in_order() {
        let status = Status::default();
        status.begin(1, Some(master()));
        status.sent(progress(LinkState::Loading, 0, 0));
        status.sent(progress(LinkState::Streaming, 10, 1));
        assert_eq!(state(&status), LinkState::Connecting);
        status.handled(1);
        assert_eq!(state(&status), LinkState::Loading);
        status.handled(1);
        let facts = status.facts();
        assert_eq!(facts.state, LinkState::Streaming);
        assert_eq!(facts.offset, Some(10));
        assert_eq!(facts.tally.commands, 1);
        assert_eq!(facts.replid, Some(Bytes::from_static(b"r")));
    }

    #[test]
    fn progress_between_batches_waits_for_the_batches_before_it() {
        let status = Status::default();
        status.begin(1, Some(master()));
        status.reached(progress(LinkState::Handshake, 0, 0));
        assert_eq!(state(&status), LinkState::Handshake);
        status.sent(progress(LinkState::Streaming, 10, 1));
        let mut end = progress(LinkState::Disconnected, 12, 1);
        end.ended_by = Some(LinkError::Eof);
        status.reached(end);
        assert_eq!(state(&status), LinkState::Handshake);
        assert_eq!(status.facts().last_error, None);
        status.handled(1);
        let facts = status.facts();
        assert_eq!(facts.state, LinkState::Disconnected);
        assert_eq!(facts.offset, Some(12));
        assert_eq!(facts.last_error, Some(LinkError::Eof));
    }

    #[test]
    fn live_facts_do_not_wait_for_the_link_process() {
        let status = Status::default();
        status.begin(1, Some(master()));
        assert_eq!(status.facts().last_read_ms, None);
        status.read(100, 1_700_000_000_000);
        status.read(20, 1_700_000_000_500);
        status.sent(progress(LinkState::Streaming, 10, 1));
        status.sent(progress(LinkState::Streaming, 25, 2));
        let facts = status.facts();
        assert_eq!(facts.bytes, 120);
        assert_eq!(facts.last_read_ms, Some(1_700_000_000_500));
        assert_eq!(facts.master_offset, Some(25));
        assert_eq!(facts.offset, None, "nothing handled yet");
        status.handled(1);
        assert_eq!(status.facts().offset, Some(10));
    }

    #[test]
    fn credits_of_another_session_publish_nothing() {
        let status = Status::default();
        status.begin(2, Some(master()));
        status.sent(progress(LinkState::Streaming, 10, 1));
        status.handled(1);
        assert_eq!(state(&status), LinkState::Connecting);
    }

    #[test]
    fn a_new_session_publishes_what_the_last_one_left() {
        let status = Status::default();
        status.begin(1, Some(master()));
        status.sent(progress(LinkState::Streaming, 10, 1));
        status.begin(2, Some(master()));
        let facts = status.facts();
        assert_eq!(facts.offset, Some(10));
        assert_eq!(facts.state, LinkState::Connecting);
    }

    #[test]
    fn closed_is_final() {
        let status = Status::default();
        status.begin(1, Some(master()));
        status.sent(progress(LinkState::Streaming, 10, 1));
        status.close();
        assert_eq!(status.facts().offset, Some(10));
        status.reached(progress(LinkState::Disconnected, 10, 1));
        status.begin(2, Some(master()));
        assert_eq!(state(&status), LinkState::Closed);
    }
}

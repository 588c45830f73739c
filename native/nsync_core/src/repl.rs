//! The replica side of the replication protocol, sans I/O.
//!
//! A [`Replica`] is fed the bytes read from the master ([`Replica::feed`]),
//! hands out events ([`Replica::next_events`], whose snapshot keys borrow
//! from the replica, or one owned event at a time with
//! [`Replica::next_event`]) and collects the
//! bytes to send ([`Replica::take_output`]); the caller owns the socket and
//! the clock ([`Replica::tick`] sends the periodic ACK). The replication
//! position (replid, offset, db) survives reconnects, so the next
//! [`Replica::connected`] resumes with `PSYNC replid offset+1`.

use std::ops::ControlFlow;
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use thiserror::Error;

use crate::rdb::{self, Entry, Item, Outcome, Raw, RdbError};
use crate::resp::{self, Args, CommandParser, Reply, RespError};

/// The Valkey version announced (`REPLCONF version`): 9.0 writes RDB 80,
/// the newest format nsync reads in full (9.2's RDB 81 adds a type).
pub const ANNOUNCED_VALKEY_VERSION: &[u8] = b"9.0.0";

/// How often `REPLCONF ACK` is sent while streaming.
pub const ACK_INTERVAL: Duration = Duration::from_secs(1);
/// After a full sync, a diskless master (7.0+) holds the command stream
/// until an ACK arrives after it has itself seen the transfer end, which can
/// be after the snapshot's last byte reached us. So until the stream's first
/// byte, ACK this often (for at most `EARLY_ACK_WINDOW`), not once a second:
/// the first write then arrives in milliseconds, not up to a second later.
pub const EARLY_ACK_INTERVAL: Duration = Duration::from_millis(10);
pub const EARLY_ACK_WINDOW: Duration = Duration::from_secs(2);
/// Length of the diskless end-of-snapshot mark.
const EOF_MARK_LEN: usize = 40;
/// How far back PSYNC may ask, over bytes that delivered nothing (PINGs,
/// GETACKs, Sentinel hellos): at most Redis's smallest backlog.
pub const MAX_REWIND: i64 = 16 * 1024;

/// What the replica tells the master about itself.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// ACL user (Redis 6+); sent as `AUTH user pass` when set with `pass`.
    pub user: Option<Bytes>,
    pub pass: Option<Bytes>,
    /// Shown in the master's `INFO replication`.
    pub listening_port: u16,
    /// The largest value accepted, in bytes: a snapshot key's value (a
    /// string, or a collection's elements together) or a command's
    /// arguments together; larger is [`ReplError::TooLarge`]. `None`: what
    /// the protocol allows (a master's link is exempt from Redis's own
    /// limits), still never costing more memory than the bytes received.
    pub max_value_bytes: Option<u64>,
}

/// Where the replica is in the master's replication stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    /// `None` after a legacy `SYNC` (masters before 2.8): not resumable.
    pub replid: Option<Bytes>,
    /// Offset of the last byte delivered.
    pub offset: i64,
    /// The db selected by the last `SELECT`.
    pub db: u64,
}

/// What the replica delivers, in stream order.
#[derive(Debug, Clone, PartialEq)]
pub enum Event<'a> {
    /// A full sync starts; its keys follow. `replid` is `None` for `SYNC`.
    FullResync { replid: Option<Bytes>, offset: i64 },
    /// A partial resync was accepted; commands follow from `offset + 1`.
    Continue { replid: Bytes, offset: i64 },
    /// One key of the snapshot.
    Key(Entry<'a>),
    /// A function library of the snapshot.
    Function(Raw<'a>),
    /// The snapshot is fully loaded; the position is now committed.
    LoadEof { replid: Option<Bytes>, offset: i64 },
    /// One command of the stream (never PING or REPLCONF), name first.
    Command { db: u64, args: Args },
}

impl Event<'_> {
    pub fn into_owned(self) -> Event<'static> {
        match self {
            Event::FullResync { replid, offset } => Event::FullResync { replid, offset },
            Event::Continue { replid, offset } => Event::Continue { replid, offset },
            Event::Key(entry) => Event::Key(entry.into_owned()),
            Event::Function(source) => Event::Function(source.into_owned()),
            Event::LoadEof { replid, offset } => Event::LoadEof { replid, offset },
            Event::Command { db, args } => Event::Command { db, args },
        }
    }
}

#[derive(Debug, Error, Clone, PartialEq)]
pub enum ReplError {
    /// The master refused us: a wrong password, or one that is missing.
    #[error("authentication failed: {0}")]
    Auth(String),
    /// The master's ACL does not let this user replicate (`-NOPERM` to
    /// PSYNC: the user lacks `+psync`): retrying will not help.
    #[error("not permitted: {0}")]
    NoPerm(String),
    /// An error line from the master (the whole line, `-` included):
    /// `-LOADING`/`-NOMASTERLINK` to PSYNC (retry later), or an aborted sync.
    #[error("master said: {0}")]
    Master(String),
    #[error("bad snapshot: {0}")]
    Rdb(RdbError),
    #[error("bad command stream: {0}")]
    Resp(RespError),
    #[error("protocol error: {0}")]
    Protocol(String),
    /// A value (snapshot key) or command over [`Config::max_value_bytes`],
    /// refused as soon as its declared lengths say so: `bytes` is how many
    /// it has at least, `key` its key when known.
    #[error("a value of at least {bytes} bytes (key {}) is over max_value_bytes ({limit})",
            .key.as_deref().map_or("unknown".into(), lossy))]
    TooLarge {
        key: Option<Bytes>,
        bytes: u64,
        limit: u64,
    },
}

impl From<RdbError> for ReplError {
    fn from(err: RdbError) -> ReplError {
        match err {
            RdbError::ValueTooLarge {
                key, len, limit, ..
            } => ReplError::TooLarge {
                key: Some(key),
                bytes: len,
                limit,
            },
            other => ReplError::Rdb(other),
        }
    }
}

impl From<RespError> for ReplError {
    fn from(err: RespError) -> ReplError {
        match err {
            RespError::OverLimit { key, bytes, limit } => ReplError::TooLarge { key, bytes, limit },
            other => ReplError::Resp(other),
        }
    }
}

/// The coarse state, for status reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplState {
    Disconnected,
    Handshake,
    Loading,
    Streaming,
}

/// The handshake command whose reply we are waiting for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Ping,
    Auth,
    ListeningPort,
    Capa,
    Version,
    Psync,
}

#[derive(Debug)]
enum Framing {
    /// `$<len>`: this many snapshot bytes are still to come.
    Sized { remaining: u64 },
    /// `$EOF:<mark>`: the snapshot ends where the parser says, then the mark.
    Diskless { mark: Bytes },
}

/// A full sync in progress; its position is committed only at the end.
#[derive(Debug)]
struct Load {
    replid: Option<Bytes>,
    offset: i64,
    parser: rdb::Parser,
    framing: Framing,
}

#[derive(Debug)]
enum Phase {
    Disconnected,
    Handshake(Step),
    /// Waiting for `$<len>` or `$EOF:<mark>` after FULLRESYNC or SYNC.
    AwaitPayload {
        replid: Option<Bytes>,
        offset: i64,
    },
    Loading(Box<Load>),
    Streaming,
}

/// What one step of the state machine produced.
enum Progress {
    Event(Event<'static>),
    /// The state changed: step again.
    Again,
    NeedBytes,
    /// The sink broke while taking the snapshot's keys.
    Paused,
}

#[derive(Debug)]
pub struct Replica {
    config: Config,
    phase: Phase,
    input: BytesMut,
    output: Vec<u8>,
    commands: CommandParser,
    /// Committed position; `None` until the first snapshot is loaded.
    position: Option<Position>,
    /// Size of the last snapshot loaded, in bytes.
    snapshot_bytes: u64,
    /// Whether ACKs are sent (not to pre-PSYNC masters).
    acking: bool,
    last_ack: Option<Instant>,
    /// Set by a full sync, cleared by the stream's first byte: ACK every
    /// `EARLY_ACK_INTERVAL` meanwhile. The instant is the first such ACK.
    early_acks: Option<Option<Instant>>,
    /// Where the stream may be resumed from as well as from the position
    /// (offset, and the db selected there): the end of the last event
    /// delivered, when only bytes that repeat harmlessly came after it
    /// (PINGs, GETACKs, Sentinel hellos, which deliver nothing, and
    /// SELECTs; at most [`MAX_REWIND`] of them). A promoted replica may lack
    /// the old master's last such bytes (the old master took them after the
    /// promotion; a SELECT goes out before the first command after a
    /// replica attached); asking from here, PSYNC continues where it would
    /// have to resync.
    rewind_to: Option<(i64, u64)>,
}

impl Replica {
    pub fn new(config: Config) -> Replica {
        Replica {
            config,
            phase: Phase::Disconnected,
            input: BytesMut::new(),
            output: Vec::new(),
            commands: CommandParser::new(),
            position: None,
            snapshot_bytes: 0,
            acking: false,
            last_ack: None,
            early_acks: None,
            rewind_to: None,
        }
    }

    /// A replica that resumes from a position saved earlier.
    pub fn resuming(config: Config, position: Position) -> Replica {
        Replica {
            position: Some(position),
            ..Replica::new(config)
        }
    }

    /// A new connection is up: forget the old one's bytes, start the
    /// handshake. The position is kept, so PSYNC resumes from it.
    pub fn connected(&mut self) {
        self.disconnected();
        self.send(&[&b"PING"[..]]);
        self.phase = Phase::Handshake(Step::Ping);
    }

    /// The connection is gone (or must be dropped after an error). A
    /// snapshot being loaded is abandoned; the committed position stays.
    pub fn disconnected(&mut self) {
        self.phase = Phase::Disconnected;
        self.input.clear();
        self.output.clear();
        self.commands = self.command_parser();
        self.acking = false;
        self.last_ack = None;
        self.early_acks = None;
    }

    /// Bytes read from the master.
    pub fn feed(&mut self, bytes: &[u8]) {
        self.input.extend_from_slice(bytes);
    }

    /// Bytes received but not yet turned into events.
    pub fn buffered(&self) -> usize {
        self.input.len()
    }

    /// Bytes to send to the master, emptied.
    pub fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.output)
    }

    pub fn has_output(&self) -> bool {
        !self.output.is_empty()
    }

    pub fn position(&self) -> Option<&Position> {
        self.position.as_ref()
    }

    /// Bytes of the snapshot loading, so far; between full syncs, the size
    /// of the last one loaded (0 before the first).
    pub fn snapshot_bytes(&self) -> u64 {
        match &self.phase {
            Phase::Loading(load) => load.parser.offset(),
            _ => self.snapshot_bytes,
        }
    }

    pub fn state(&self) -> ReplState {
        match self.phase {
            Phase::Disconnected => ReplState::Disconnected,
            Phase::Handshake(_) | Phase::AwaitPayload { .. } => ReplState::Handshake,
            Phase::Loading(_) => ReplState::Loading,
            Phase::Streaming => ReplState::Streaming,
        }
    }

    /// Queues `REPLCONF ACK <offset>` if one is due at `now`.
    pub fn tick(&mut self, now: Instant) {
        if self.ack_due_in(now) != Some(Duration::ZERO) {
            return;
        }
        if let Some(first @ None) = &mut self.early_acks {
            *first = Some(now);
        }
        self.last_ack = Some(now);
        let offset = self.position.as_ref().map_or(0, |p| p.offset);
        self.send_ack(offset);
    }

    /// How long until [`Replica::tick`] has an ACK to send (`None`: no ACKs
    /// on this connection). A caller waiting for bytes waits no longer.
    pub fn ack_due_in(&self, now: Instant) -> Option<Duration> {
        if !self.acking {
            return None;
        }
        let interval = match self.early_acks {
            Some(Some(first)) if now.saturating_duration_since(first) >= EARLY_ACK_WINDOW => {
                ACK_INTERVAL
            }
            Some(_) => EARLY_ACK_INTERVAL,
            None => ACK_INTERVAL,
        };
        Some(self.last_ack.map_or(Duration::ZERO, |last| {
            interval.saturating_sub(now.saturating_duration_since(last))
        }))
    }

    /// Hands the events of the bytes fed so far to `sink`, in order, until
    /// more bytes are needed or `sink` breaks. Snapshot keys borrow from the
    /// replica ([`Event::into_owned`] keeps one). After an error the
    /// connection must be dropped ([`Replica::disconnected`]).
    pub fn next_events<F>(&mut self, mut sink: F) -> Result<(), ReplError>
    where
        F: FnMut(Event<'_>) -> ControlFlow<()>,
    {
        loop {
            let progress = match self.step(&mut sink) {
                Ok(progress) => progress,
                Err(err) => {
                    self.disconnected();
                    return Err(err);
                }
            };
            match progress {
                Progress::Event(event) => {
                    if sink(event).is_break() {
                        return Ok(());
                    }
                }
                Progress::Again => continue,
                Progress::NeedBytes | Progress::Paused => return Ok(()),
            }
        }
    }

    /// The next event, owned, or `None` when more bytes are needed. After an
    /// error the connection must be dropped ([`Replica::disconnected`]).
    pub fn next_event(&mut self) -> Result<Option<Event<'static>>, ReplError> {
        let mut next = None;
        self.next_events(|event| {
            next = Some(event.into_owned());
            ControlFlow::Break(())
        })?;
        Ok(next)
    }

    fn step<F>(&mut self, sink: &mut F) -> Result<Progress, ReplError>
    where
        F: FnMut(Event<'_>) -> ControlFlow<()>,
    {
        match &mut self.phase {
            Phase::Disconnected => Ok(Progress::NeedBytes),
            Phase::Handshake(step) => {
                let step = *step;
                self.handshake(step)
            }
            Phase::AwaitPayload { .. } => self.payload_header(),
            Phase::Loading(_) => self.load(sink),
            Phase::Streaming => self.stream(),
        }
    }

    fn send<A: AsRef<[u8]>>(&mut self, args: &[A]) {
        resp::encode_command(args, &mut self.output);
    }

    /// A command parser with this replica's limit.
    fn command_parser(&self) -> CommandParser {
        CommandParser::with_max_bytes(self.config.max_value_bytes.unwrap_or(u64::MAX))
    }

    fn send_ack(&mut self, offset: i64) {
        let offset = offset.to_string();
        self.send(&[&b"REPLCONF"[..], b"ACK", offset.as_bytes()]);
    }

    /// Reads the reply to `step` and sends the next command.
    fn handshake(&mut self, step: Step) -> Result<Progress, ReplError> {
        // The master sends bare newlines as keepalives while it prepares.
        while self.input.first() == Some(&b'\n') {
            self.input.advance(1);
        }
        let Some((reply, len)) = resp::parse_reply(&self.input)? else {
            return Ok(Progress::NeedBytes);
        };
        self.input.advance(len);
        match step {
            Step::Ping => match reply {
                Reply::Error(msg) if !asks_for_auth(&msg) => {
                    return Err(ReplError::Master(format!("-{}", lossy(&msg))))
                }
                // Expected before AUTH; with no password to give, the
                // master is refusing us.
                Reply::Error(msg) if self.config.pass.is_none() => {
                    return Err(ReplError::Auth(lossy(&msg)))
                }
                _ if self.config.pass.is_some() => self.send_auth(),
                _ => self.send_listening_port(),
            },
            Step::Auth => match reply {
                Reply::Error(msg) => return Err(ReplError::Auth(lossy(&msg))),
                _ => self.send_listening_port(),
            },
            // Old masters do not know these; their errors are harmless.
            // Only what nsync handles is announced: EOF-marked diskless
            // snapshots and PSYNC2 (not dual-channel or RDB-channel sync).
            Step::ListeningPort => {
                self.send(&[&b"REPLCONF"[..], b"capa", b"eof", b"capa", b"psync2"]);
                self.phase = Phase::Handshake(Step::Capa);
            }
            // Valkey 9 sends a replica snapshots in the newest format the
            // version it announces reads, and none at all (the full sync is
            // aborted) if the data needs a newer one: nsync reads RDB 80.
            Step::Capa => {
                self.send(&[&b"REPLCONF"[..], b"version", ANNOUNCED_VALKEY_VERSION]);
                self.phase = Phase::Handshake(Step::Version);
            }
            Step::Version => self.send_psync(),
            Step::Psync => return self.psync_reply(reply),
        }
        Ok(Progress::Again)
    }

    fn send_auth(&mut self) {
        match (&self.config.user, &self.config.pass) {
            (Some(user), Some(pass)) => {
                let (user, pass) = (user.clone(), pass.clone());
                self.send(&[&b"AUTH"[..], &user, &pass]);
            }
            (None, Some(pass)) => {
                let pass = pass.clone();
                self.send(&[&b"AUTH"[..], &pass]);
            }
            (_, None) => {}
        }
        self.phase = Phase::Handshake(Step::Auth);
    }

    fn send_listening_port(&mut self) {
        let port = self.config.listening_port.to_string();
        self.send(&[&b"REPLCONF"[..], b"listening-port", port.as_bytes()]);
        self.phase = Phase::Handshake(Step::ListeningPort);
    }

    fn send_psync(&mut self) {
        let rewind_to = self.rewind_to;
        match self.position.as_mut().and_then(|p| {
            // The bytes in between repeat harmlessly: they may come again.
            if let Some((to, db)) = rewind_to
                .filter(|&(to, _)| to <= p.offset && p.offset.saturating_sub(to) <= MAX_REWIND)
            {
                p.offset = to;
                p.db = db;
            }
            p.replid.clone().map(|id| (id, p.offset))
        }) {
            Some((replid, offset)) => {
                let next = offset.saturating_add(1).to_string();
                self.send(&[&b"PSYNC"[..], &replid, next.as_bytes()]);
            }
            None => self.send(&[&b"PSYNC"[..], b"?", b"-1"]),
        }
        self.phase = Phase::Handshake(Step::Psync);
    }

    fn psync_reply(&mut self, reply: Reply) -> Result<Progress, ReplError> {
        match reply {
            Reply::Simple(line) => {
                let mut words = line.split(|&b| b == b' ').filter(|w| !w.is_empty());
                match words.next() {
                    Some(b"FULLRESYNC") => {
                        let replid = words.next().filter(|id| id.len() == 40);
                        let offset = words.next().and_then(resp::parse_integer);
                        let (Some(replid), Some(offset)) = (replid, offset) else {
                            return Err(protocol(format!(
                                "bad FULLRESYNC reply: {}",
                                lossy(&line)
                            )));
                        };
                        let replid = Some(Bytes::copy_from_slice(replid));
                        self.phase = Phase::AwaitPayload {
                            replid: replid.clone(),
                            offset,
                        };
                        Ok(Progress::Event(Event::FullResync { replid, offset }))
                    }
                    Some(b"CONTINUE") => self.resume(words.next()),
                    _ => Err(protocol(format!(
                        "unexpected PSYNC reply: {}",
                        lossy(&line)
                    ))),
                }
            }
            Reply::Error(msg) if msg.starts_with(b"NOPERM") => {
                Err(ReplError::NoPerm(format!("-{}", lossy(&msg))))
            }
            // A master older than 2.8: no PSYNC, so the inline SYNC of old.
            Reply::Error(msg) if msg.starts_with(b"ERR unknown command") => {
                self.output.extend_from_slice(b"SYNC\r\n");
                self.phase = Phase::AwaitPayload {
                    replid: None,
                    offset: 0,
                };
                Ok(Progress::Event(Event::FullResync {
                    replid: None,
                    offset: 0,
                }))
            }
            // -LOADING, -NOMASTERLINK, ...: retry later
            Reply::Error(msg) => Err(ReplError::Master(format!("-{}", lossy(&msg)))),
            other => Err(protocol(format!("unexpected PSYNC reply: {other:?}"))),
        }
    }

    /// `+CONTINUE [new replid]`: the backlog follows at once.
    fn resume(&mut self, new_replid: Option<&[u8]>) -> Result<Progress, ReplError> {
        let Some(position) = self.position.as_mut() else {
            return Err(protocol(
                "CONTINUE without a position to continue from".into(),
            ));
        };
        if let Some(id) = new_replid.filter(|id| id.len() == 40) {
            position.replid = Some(Bytes::copy_from_slice(id));
        }
        let Some(replid) = position.replid.clone() else {
            return Err(protocol("CONTINUE after a legacy SYNC".into()));
        };
        let offset = position.offset;
        self.rewind_to = Some((offset, position.db));
        self.start_streaming(true);
        Ok(Progress::Event(Event::Continue { replid, offset }))
    }

    fn start_streaming(&mut self, acking: bool) {
        self.phase = Phase::Streaming;
        self.commands = self.command_parser();
        self.acking = acking;
        self.last_ack = None;
        self.early_acks = None;
    }

    /// `$<len>` or `$EOF:<mark>`, after any keepalive newlines.
    fn payload_header(&mut self) -> Result<Progress, ReplError> {
        let Phase::AwaitPayload { replid, offset } = &self.phase else {
            return Ok(Progress::Again);
        };
        let (replid, offset) = (replid.clone(), *offset);
        while self.input.first() == Some(&b'\n') {
            self.input.advance(1);
        }
        let Some(line) = resp::take_line(&mut self.input)? else {
            return Ok(Progress::NeedBytes);
        };
        let framing = if line.starts_with(b"-") {
            return Err(ReplError::Master(lossy(&line)));
        } else if let Some(mark) = line.strip_prefix(b"$EOF:") {
            if mark.len() != EOF_MARK_LEN {
                return Err(protocol(format!("bad EOF mark length {}", mark.len())));
            }
            Framing::Diskless {
                mark: Bytes::copy_from_slice(mark),
            }
        } else if let Some(len) = line.strip_prefix(b"$").and_then(resp::parse_integer) {
            let remaining =
                u64::try_from(len).map_err(|_| protocol(format!("bad payload length {len}")))?;
            Framing::Sized { remaining }
        } else {
            return Err(protocol(format!("bad payload header: {}", lossy(&line))));
        };
        self.phase = Phase::Loading(Box::new(Load {
            replid,
            offset,
            parser: rdb::Parser::with_max_value(self.config.max_value_bytes.unwrap_or(u64::MAX)),
            framing,
        }));
        Ok(Progress::Again)
    }

    /// Hands the snapshot's bytes to the parser and its keys to `sink`.
    fn load<F>(&mut self, sink: &mut F) -> Result<Progress, ReplError>
    where
        F: FnMut(Event<'_>) -> ControlFlow<()>,
    {
        let Phase::Loading(load) = &mut self.phase else {
            return Ok(Progress::Again);
        };
        match &mut load.framing {
            Framing::Sized { remaining } => {
                let take = self
                    .input
                    .len()
                    .min(usize::try_from(*remaining).unwrap_or(usize::MAX));
                if take > 0 {
                    load.parser.feed_bytes(self.input.split_to(take).freeze());
                    *remaining -= take as u64;
                }
            }
            Framing::Diskless { .. } => {
                if !load.parser.is_done() && !self.input.is_empty() {
                    load.parser.feed_bytes(self.input.split().freeze());
                }
            }
        }
        let outcome = load.parser.parse(|item| match item {
            Item::Key(entry) => sink(Event::Key(entry)),
            Item::Function(source) => sink(Event::Function(source)),
            _ => ControlFlow::Continue(()),
        })?;
        match outcome {
            Outcome::Paused => Ok(Progress::Paused),
            Outcome::Incomplete => match load.framing {
                Framing::Sized { remaining: 0 } => {
                    Err(protocol("snapshot shorter than announced".into()))
                }
                _ => Ok(Progress::NeedBytes),
            },
            Outcome::Done => self.finish_load(),
        }
    }

    /// The parser saw the end of the snapshot: check the framing, commit.
    fn finish_load(&mut self) -> Result<Progress, ReplError> {
        let Phase::Loading(load) = &mut self.phase else {
            return Ok(Progress::Again);
        };
        let rest = load.parser.take_rest();
        if !rest.is_empty() {
            let mut input = BytesMut::with_capacity(rest.len() + self.input.len());
            input.extend_from_slice(&rest);
            input.extend_from_slice(&self.input);
            self.input = input;
        }
        match &load.framing {
            Framing::Sized { remaining: 0 } => {}
            Framing::Sized { .. } => {
                return Err(protocol(
                    "snapshot ended before its announced length".into(),
                ))
            }
            Framing::Diskless { mark } => {
                if self.input.len() < EOF_MARK_LEN {
                    return Ok(Progress::NeedBytes);
                }
                if self.input[..EOF_MARK_LEN] != mark[..] {
                    return Err(protocol(
                        "diskless snapshot not followed by its EOF mark".into(),
                    ));
                }
                self.input.advance(EOF_MARK_LEN);
            }
        }
        let (replid, offset) = (load.replid.clone(), load.offset);
        self.snapshot_bytes = load.parser.offset();
        self.position = Some(Position {
            replid: replid.clone(),
            offset,
            db: 0,
        });
        self.rewind_to = Some((offset, 0));
        // A master before 2.8 (no replid) knows no REPLCONF ACK.
        self.start_streaming(replid.is_some());
        self.early_acks = Some(None);
        Ok(Progress::Event(Event::LoadEof { replid, offset }))
    }

    /// One command of the stream; the offset counts every byte.
    fn stream(&mut self) -> Result<Progress, ReplError> {
        if !self.input.is_empty() {
            self.early_acks = None;
        }
        let Some(command) = self.commands.next(&mut self.input)? else {
            return Ok(Progress::NeedBytes);
        };
        // Checked before the offset moves: a session dropped here resumes
        // from the last command that made sense.
        if let Some(name) = command.args.get(0).filter(|name| !is_command_name(name)) {
            return Err(protocol(format!(
                "not a command name: \"{}\"",
                name.get(..MAX_COMMAND_NAME).unwrap_or(name).escape_ascii()
            )));
        }
        let Some(position) = self.position.as_mut() else {
            return Err(protocol("command stream without a position".into()));
        };
        let offset_before = position.offset;
        // Saturating: a lying master must not make us overflow (and panic in debug).
        position.offset = position
            .offset
            .saturating_add(i64::try_from(command.wire_len).unwrap_or(i64::MAX));
        let quiet = command.args.is_empty()
            || command.arg_is(0, b"ping")
            || command.arg_is(0, b"replconf")
            || (command.arg_is(0, b"publish") && command.arg_is(1, b"__sentinel__:hello"));
        let select = command.arg_is(0, b"select");
        if select {
            let db = command
                .args
                .get(1)
                .and_then(resp::parse_integer)
                .and_then(|db| u64::try_from(db).ok())
                .ok_or_else(|| protocol("bad SELECT".into()))?;
            position.db = db;
        }
        // Anything else is resumed after, never asked again.
        if !(quiet || select)
            || self
                .rewind_to
                .is_none_or(|(to, _)| position.offset.saturating_sub(to) > MAX_REWIND)
        {
            self.rewind_to = Some((position.offset, position.db));
        }
        if command.arg_is(0, b"replconf") {
            if command.arg_is(1, b"getack") && self.acking {
                self.send_ack(offset_before);
            }
            return Ok(Progress::Again);
        }
        if quiet {
            return Ok(Progress::Again);
        }
        Ok(Progress::Event(Event::Command {
            db: position.db,
            args: command.args,
        }))
    }
}

/// Longer than any command name Redis, Valkey or a module defines.
const MAX_COMMAND_NAME: usize = 64;

/// Whether a command's first argument can be a command name (printable
/// ASCII, no space): random bytes that happen to form an array are garbage,
/// not commands unknown to the mirror.
fn is_command_name(name: &[u8]) -> bool {
    !name.is_empty() && name.len() <= MAX_COMMAND_NAME && name.iter().all(|b| b.is_ascii_graphic())
}

/// The errors a master answers PING with when it wants AUTH first.
fn asks_for_auth(msg: &[u8]) -> bool {
    msg.starts_with(b"NOAUTH")
        || msg.starts_with(b"NOPERM")
        || msg.starts_with(b"ERR operation not permitted")
}

fn protocol(detail: String) -> ReplError {
    ReplError::Protocol(detail)
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const REPLID: &str = "0123456789abcdef0123456789abcdef01234567";
    const MARK: &str = "MARKmarkMARKmarkMARKmarkMARKmarkMARKmark";
    /// An RDB v9 with one key, `foo` = `bar`, in db 0; checksum disabled.
    const SMALL_RDB: &[u8] = b"REDIS0009\xfe\x00\x00\x03foo\x03bar\xff\0\0\0\0\0\0\0\0";
    const GETACK: &[u8] = b"*3\r\n$8\r\nREPLCONF\r\n$6\r\nGETACK\r\n$1\r\n*\r\n";

    fn cmd(args: &[&str]) -> Vec<u8> {
        let mut out = Vec::new();
        resp::encode_command(args, &mut out);
        out
    }

    /// `cmd`'s bytes as the text `sent` returns.
    fn cmd_text(args: &[&str]) -> String {
        String::from_utf8(cmd(args)).unwrap()
    }

    fn sent(replica: &mut Replica) -> String {
        String::from_utf8_lossy(&replica.take_output()).into_owned()
    }

    /// Feeds `bytes` one at a time, collecting every event.
    fn feed_slowly(replica: &mut Replica, bytes: &[u8]) -> Result<Vec<Event<'static>>, ReplError> {
        let mut events = Vec::new();
        for &b in bytes {
            replica.feed(&[b]);
            while let Some(event) = replica.next_event()? {
                events.push(event);
            }
        }
        Ok(events)
    }

    /// Runs the handshake up to the PSYNC command; returns what PSYNC sent.
    fn handshake(replica: &mut Replica) -> String {
        replica.connected();
        assert_eq!(sent(replica), "*1\r\n$4\r\nPING\r\n");
        let replies = ["+PONG\r\n", "+OK\r\n", "-ERR unknown option\r\n", "+OK\r\n"];
        for reply in replies {
            replica.feed(reply.as_bytes());
            assert_eq!(replica.next_event().unwrap(), None);
            let out = sent(replica);
            assert!(out.starts_with("*"), "one command per reply: {out:?}");
            if out.contains("PSYNC") {
                return out;
            }
        }
        panic!("no PSYNC sent");
    }

    /// A new replica (default config) whose handshake has sent PSYNC.
    fn at_psync() -> Replica {
        let mut replica = Replica::new(Config::default());
        handshake(&mut replica);
        replica
    }

    /// A new replica's first event once `reply` answers its PING.
    fn after_ping(config: Config, reply: &[u8]) -> Result<Option<Event<'static>>, ReplError> {
        let mut replica = Replica::new(config);
        replica.connected();
        replica.feed(reply);
        replica.next_event()
    }

    fn resumed_at(offset: i64, db: u64) -> Replica {
        let position = Position {
            replid: Some(Bytes::from(REPLID)),
            offset,
            db,
        };
        let mut replica = Replica::resuming(Config::default(), position);
        let next = (offset + 1).to_string();
        assert_eq!(handshake(&mut replica), cmd_text(&["PSYNC", REPLID, &next]));
        replica
    }

    /// `resumed_at` whose master has answered `+CONTINUE` with its replid.
    fn continued_at(offset: i64) -> Replica {
        let mut replica = resumed_at(offset, 0);
        replica.feed(format!("+CONTINUE {REPLID}\r\n").as_bytes());
        assert!(matches!(
            replica.next_event().unwrap(),
            Some(Event::Continue { offset: o, .. }) if o == offset
        ));
        replica
    }

    /// The bytes of a diskless full sync of `rdb` at `offset`, followed by
    /// `stream`.
    fn diskless_full_sync(offset: i64, rdb: &[u8], stream: &[u8]) -> Vec<u8> {
        let mut wire = format!("+FULLRESYNC {REPLID} {offset}\r\n$EOF:{MARK}\r\n").into_bytes();
        wire.extend_from_slice(rdb);
        wire.extend_from_slice(MARK.as_bytes());
        wire.extend_from_slice(stream);
        wire
    }

    /// A diskless full sync at offset 100 of `SMALL_RDB`, then `stream`.
    fn full_sync_then(stream: &[u8]) -> Vec<u8> {
        diskless_full_sync(100, SMALL_RDB, stream)
    }

    /// `SELECT 0` and `SET a 1`: the stream after a snapshot, as
    /// `assert_full_sync` expects it.
    fn select_and_set() -> Vec<u8> {
        [cmd(&["SELECT", "0"]), cmd(&["SET", "a", "1"])].concat()
    }

    #[test]
    fn handshake_sends_one_command_per_reply() {
        let config = Config {
            user: Some(Bytes::from("repl")),
            pass: Some(Bytes::from("secret")),
            listening_port: 6380,
            max_value_bytes: None,
        };
        let mut replica = Replica::new(config);
        replica.connected();
        assert_eq!(sent(&mut replica), "*1\r\n$4\r\nPING\r\n");
        assert_eq!(replica.next_event().unwrap(), None);
        assert_eq!(sent(&mut replica), "", "nothing is pipelined behind PING");
        // Each reply sends the next command, and only it.
        let steps = [
            (
                "-NOAUTH Authentication required.\r\n",
                "*3\r\n$4\r\nAUTH\r\n$4\r\nrepl\r\n$6\r\nsecret\r\n".to_string(),
            ),
            (
                "+OK\r\n",
                "*3\r\n$8\r\nREPLCONF\r\n$14\r\nlistening-port\r\n$4\r\n6380\r\n".to_string(),
            ),
            (
                "+OK\r\n",
                cmd_text(&["REPLCONF", "capa", "eof", "capa", "psync2"]),
            ),
            ("+OK\r\n", cmd_text(&["REPLCONF", "version", "9.0.0"])),
            // A master that knows no such option answers an error: harmless.
            (
                "-ERR Unrecognized REPLCONF option: version\r\n",
                cmd_text(&["PSYNC", "?", "-1"]),
            ),
        ];
        for (reply, command) in steps {
            replica.feed(reply.as_bytes());
            assert_eq!(replica.next_event().unwrap(), None, "{reply:?}");
            assert_eq!(sent(&mut replica), command, "after {reply:?}");
        }
        assert_eq!(replica.state(), ReplState::Handshake);
        let events = feed_slowly(
            &mut replica,
            format!("\n\n+FULLRESYNC {REPLID} 1234\r\n\n$EOF:{MARK}\r\n").as_bytes(),
        )
        .unwrap();
        assert_eq!(
            events,
            vec![Event::FullResync {
                replid: Some(Bytes::from(REPLID)),
                offset: 1234
            }]
        );
        assert_eq!(replica.state(), ReplState::Loading);
        assert_eq!(
            replica.position(),
            None,
            "nothing committed before the snapshot is loaded"
        );
    }

    #[test]
    fn auth_errors() {
        let mut replica = Replica::new(Config::default());
        replica.connected();
        replica.feed(b"-NOAUTH Authentication required.\r\n");
        assert_eq!(
            replica.next_event(),
            Err(ReplError::Auth("NOAUTH Authentication required.".into()))
        );
        assert_eq!(replica.state(), ReplState::Disconnected);

        let config = Config {
            pass: Some(Bytes::from("bad")),
            ..Config::default()
        };
        assert_eq!(
            after_ping(
                config,
                b"+PONG\r\n-WRONGPASS invalid username-password pair\r\n"
            ),
            Err(ReplError::Auth(
                "WRONGPASS invalid username-password pair".into()
            ))
        );
    }

    #[test]
    fn a_loading_master_is_not_an_auth_failure() {
        assert_eq!(
            after_ping(
                Config::default(),
                b"-LOADING Redis is loading the dataset in memory\r\n"
            ),
            Err(ReplError::Master(
                "-LOADING Redis is loading the dataset in memory".into()
            ))
        );
        assert!(
            matches!(
                after_ping(Config::default(), b"-ERR operation not permitted\r\n"),
                Err(ReplError::Auth(_))
            ),
            "2.x masters say this for NOAUTH"
        );
    }

    #[test]
    fn temporary_psync_errors_are_reported() {
        let mut replica = at_psync();
        replica.feed(b"-LOADING Redis is loading the dataset in memory\r\n");
        assert_eq!(
            replica.next_event(),
            Err(ReplError::Master(
                "-LOADING Redis is loading the dataset in memory".into()
            ))
        );
        let mut replica = at_psync();
        replica.feed(b"-NOMASTERLINK Can't SYNC while not connected with my master\r\n");
        assert!(
            matches!(replica.next_event(), Err(ReplError::Master(m)) if m.starts_with("-NOMASTERLINK"))
        );
    }

    /// The next PSYNC of a replica that streamed `bytes` after `replica`'s
    /// position, then reconnected.
    fn psync_after(replica: &mut Replica, bytes: &[u8]) -> (Vec<Event<'static>>, String) {
        replica.feed(bytes);
        let mut events = Vec::new();
        while let Some(event) = replica.next_event().unwrap() {
            events.push(event);
        }
        replica.disconnected();
        (events, handshake(replica))
    }

    #[test]
    fn psync_asks_again_for_bytes_that_delivered_nothing() {
        let mut replica = continued_at(100);
        let set = cmd(&["SET", "k", "v"]);
        let hello = cmd(&["PUBLISH", "__sentinel__:hello", "127.0.0.1,26379,id,1,m"]);
        let mut quiet = cmd(&["PING"]);
        quiet.extend_from_slice(&cmd(&["SELECT", "3"]));
        quiet.extend_from_slice(&hello);
        quiet.extend_from_slice(GETACK);
        let mut stream = set.clone();
        stream.extend_from_slice(&quiet);
        let (events, psync) = psync_after(&mut replica, &stream);
        // The hello is not delivered (the SELECT is); PSYNC asks from the
        // end of the SET, in the db selected there.
        assert_eq!(events.len(), 2);
        let after_set = 100 + set.len() as i64;
        assert_eq!(
            psync,
            cmd_text(&["PSYNC", REPLID, &(after_set + 1).to_string()])
        );
        assert_eq!(
            replica.position().map(|p| (p.offset, p.db)),
            Some((after_set, 0))
        );
        // Other PUBLISHes are data: delivered, and never asked again.
        let mut replica = continued_at(100);
        let publish = cmd(&["PUBLISH", "news", "x"]);
        let (events, psync) = psync_after(&mut replica, &publish);
        assert_eq!(events.len(), 1);
        let next = (100 + publish.len() as i64 + 1).to_string();
        assert_eq!(psync, cmd_text(&["PSYNC", REPLID, &next]));
    }

    #[test]
    fn psync_asks_again_for_at_most_max_rewind_bytes() {
        let mut replica = continued_at(0);
        let ping = cmd(&["PING"]);
        let pings = ping.repeat(MAX_REWIND as usize / ping.len() + 10);
        let (_, psync) = psync_after(&mut replica, &pings);
        let asked: i64 = psync.rsplit("\r\n").nth(1).unwrap().parse().unwrap();
        let offset = pings.len() as i64;
        assert!(
            asked <= offset + 1 && offset + 1 - asked <= MAX_REWIND,
            "{asked} {offset}"
        );
        assert!(asked > 1);
    }

    #[test]
    fn noperm_is_not_an_old_master() {
        let mut replica = at_psync();
        replica.feed(b"-NOPERM this user has no permissions to run the 'psync' command\r\n");
        assert!(
            matches!(replica.next_event(), Err(ReplError::NoPerm(m)) if m.starts_with("-NOPERM"))
        );
        assert!(!sent(&mut replica).contains("SYNC"));
        // Other errors are the master's, to retry: never SYNC.
        let mut replica = at_psync();
        replica.feed(b"-ERR Can't SYNC while not connected with my master\r\n");
        assert!(matches!(replica.next_event(), Err(ReplError::Master(_))));
        assert!(!sent(&mut replica).contains("SYNC"));
    }

    #[test]
    fn old_master_falls_back_to_sync() {
        let mut replica = at_psync();
        replica.feed(b"-ERR unknown command 'PSYNC'\r\n");
        assert_eq!(
            replica.next_event().unwrap(),
            Some(Event::FullResync {
                replid: None,
                offset: 0
            })
        );
        assert_eq!(sent(&mut replica), "SYNC\r\n");
        replica.feed(b"\n\n$18\r\n");
        assert_eq!(replica.next_event().unwrap(), None);
        assert_eq!(replica.state(), ReplState::Loading);
    }

    #[test]
    fn master_abort_before_payload() {
        let mut replica = at_psync();
        let result = feed_slowly(
            &mut replica,
            format!("+FULLRESYNC {REPLID} 0\r\n\n-ERR BGSAVE failed\r\n").as_bytes(),
        );
        assert_eq!(result, Err(ReplError::Master("-ERR BGSAVE failed".into())));
    }

    #[test]
    fn bad_replies_are_protocol_errors() {
        for reply in ["+FULLRESYNC short 1\r\n", "+WHAT\r\n", ":1\r\n", "*1\r\n"] {
            let mut replica = at_psync();
            replica.feed(reply.as_bytes());
            assert!(replica.next_event().is_err(), "{reply:?}");
        }
        let mut replica = at_psync();
        replica.feed(b"+CONTINUE\r\n");
        assert!(
            matches!(replica.next_event(), Err(ReplError::Protocol(_))),
            "CONTINUE needs a position"
        );
        let mut replica = at_psync();
        let header = format!("+FULLRESYNC {REPLID} 0\r\n$EOF:short\r\n");
        assert!(matches!(
            feed_slowly(&mut replica, header.as_bytes()),
            Err(ReplError::Protocol(_))
        ));
    }

    #[test]
    fn partial_resync_streams_commands_with_exact_offsets() {
        let mut replica = resumed_at(1000, 3);
        let set = cmd(&["SET", "k", "v"]);
        let ping = cmd(&["PING"]);
        let select = cmd(&["SELECT", "5"]);
        let multi = cmd(&["MULTI"]);
        let incr = cmd(&["incr", "n"]);
        let exec = cmd(&["EXEC"]);
        let del = cmd(&["del", "a", "b"]);
        let mut wire = b"+CONTINUE\r\n".to_vec();
        for part in [
            &set[..],
            &ping,
            GETACK,
            &multi,
            &select,
            &incr,
            &exec,
            b"\r\n",
            &del,
        ] {
            wire.extend_from_slice(part);
        }
        let events = feed_slowly(&mut replica, &wire).unwrap();
        let commands: Vec<(u64, Vec<&[u8]>)> = events[1..]
            .iter()
            .map(|e| match e {
                Event::Command { db, args } => (*db, args.iter().collect()),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            events[0],
            Event::Continue {
                replid: Bytes::from(REPLID),
                offset: 1000
            }
        );
        assert_eq!(
            commands,
            vec![
                (3, vec![&b"SET"[..], b"k", b"v"]),
                (3, vec![&b"MULTI"[..]]),
                (5, vec![&b"SELECT"[..], b"5"]),
                (5, vec![&b"incr"[..], b"n"]),
                (5, vec![&b"EXEC"[..]]),
                (5, vec![&b"del"[..], b"a", b"b"]),
            ]
        );
        assert_eq!(GETACK.len(), 37);
        let before_getack = 1000 + set.len() + ping.len();
        assert_eq!(
            sent(&mut replica),
            cmd_text(&["REPLCONF", "ACK", &before_getack.to_string()])
        );
        let end = 1000 + wire.len() - b"+CONTINUE\r\n".len();
        let position = replica.position().unwrap();
        assert_eq!((position.offset, position.db), (end as i64, 5));
    }

    #[test]
    fn continue_adopts_a_new_replid_and_keeps_the_db() {
        let mut replica = resumed_at(1000, 2);
        let new_id = "ffffffffffffffffffffffffffffffffffffffff";
        replica.feed(format!("+CONTINUE {new_id}\r\n").as_bytes());
        assert_eq!(
            replica.next_event().unwrap(),
            Some(Event::Continue {
                replid: Bytes::from(new_id),
                offset: 1000
            })
        );
        replica.feed(&cmd(&["del", "x"]));
        assert!(matches!(
            replica.next_event().unwrap(),
            Some(Event::Command { db: 2, .. })
        ));
        // After a drop, PSYNC resumes with the new replid, one past the offset.
        let position = replica.position().unwrap().clone();
        assert_eq!(position.replid.as_deref(), Some(new_id.as_bytes()));
        let psync = handshake(&mut replica);
        let next = (position.offset + 1).to_string();
        assert_eq!(psync, cmd_text(&["PSYNC", new_id, &next]));
    }

    #[test]
    fn acks_every_second_while_streaming() {
        let mut replica = resumed_at(10, 0);
        let start = Instant::now();
        replica.tick(start);
        assert_eq!(sent(&mut replica), "", "no ACK before streaming");
        replica.feed(b"+CONTINUE\r\n");
        replica.next_event().unwrap();
        replica.tick(start);
        assert_eq!(sent(&mut replica), cmd_text(&["REPLCONF", "ACK", "10"]));
        replica.tick(start + Duration::from_millis(500));
        assert_eq!(sent(&mut replica), "");
        replica.tick(start + Duration::from_millis(1000));
        assert_eq!(sent(&mut replica), cmd_text(&["REPLCONF", "ACK", "10"]));
    }

    /// One `next_events` call hands out everything at hand, keys borrowed;
    /// a sink that breaks stops it, and the next call goes on from there.
    #[test]
    fn next_events_stops_where_the_sink_breaks() {
        let mut replica = at_psync();
        replica.feed(&diskless_full_sync(
            500,
            b"REDIS0009\xfe\x00\x00\x01a\x011\x00\x01b\x012\x00\x01c\x013\xff\0\0\0\0\0\0\0\0",
            &cmd(&["SET", "d", "4"]),
        ));
        let mut batches = Vec::new();
        loop {
            let mut batch = Vec::new();
            replica
                .next_events(|event| {
                    batch.push(event.into_owned());
                    if batch.len() == 2 {
                        ControlFlow::Break(())
                    } else {
                        ControlFlow::Continue(())
                    }
                })
                .unwrap();
            if batch.is_empty() {
                break;
            }
            batches.push(batch);
        }
        let sizes: Vec<usize> = batches.iter().map(Vec::len).collect();
        assert_eq!(sizes, [2, 2, 2]);
        let events: Vec<Event> = batches.into_iter().flatten().collect();
        let keys: Vec<&[u8]> = events
            .iter()
            .filter_map(|e| match e {
                Event::Key(entry) => Some(&entry.key[..]),
                _ => None,
            })
            .collect();
        assert_eq!(keys, [b"a", b"b", b"c"]);
        assert!(matches!(events[4], Event::LoadEof { .. }));
        assert!(
            matches!(&events[5], Event::Command { args, .. } if args.get(1) == Some(&b"d"[..]))
        );
    }

    #[test]
    fn acks_often_after_a_full_sync_until_the_stream_starts() {
        let mut replica = at_psync();
        feed_slowly(&mut replica, &diskless_full_sync(500, SMALL_RDB, b"")).unwrap();
        let ack = cmd_text(&["REPLCONF", "ACK", "500"]);
        let start = Instant::now();
        replica.tick(start);
        assert_eq!(sent(&mut replica), ack, "first ACK at once");
        assert_eq!(replica.ack_due_in(start), Some(EARLY_ACK_INTERVAL));
        replica.tick(start + EARLY_ACK_INTERVAL / 2);
        assert_eq!(sent(&mut replica), "");
        replica.tick(start + EARLY_ACK_INTERVAL);
        assert_eq!(sent(&mut replica), ack, "again while the master is silent");
        // The stream's first byte ends the early ACKs.
        replica.feed(b"*1\r\n$4\r\nPING\r\n");
        replica.next_event().unwrap();
        let later = start + EARLY_ACK_INTERVAL * 2;
        assert_eq!(
            replica.ack_due_in(later),
            Some(ACK_INTERVAL - EARLY_ACK_INTERVAL)
        );
        replica.tick(later);
        assert_eq!(sent(&mut replica), "");
    }

    #[test]
    fn early_acks_stop_after_their_window() {
        let mut replica = at_psync();
        let mut wire = format!("+FULLRESYNC {REPLID} 500\r\n${}\r\n", SMALL_RDB.len()).into_bytes();
        wire.extend_from_slice(SMALL_RDB);
        feed_slowly(&mut replica, &wire).unwrap();
        let start = Instant::now();
        replica.tick(start);
        let end = start + EARLY_ACK_WINDOW;
        replica.tick(end);
        sent(&mut replica);
        assert_eq!(replica.ack_due_in(end), Some(ACK_INTERVAL));
    }

    #[test]
    fn garbage_in_the_stream_is_an_error() {
        let mut replica = resumed_at(0, 0);
        replica.feed(b"+CONTINUE\r\n*2\r\n:1\r\n");
        assert!(replica.next_event().unwrap().is_some());
        assert!(matches!(replica.next_event(), Err(ReplError::Resp(_))));
        assert_eq!(replica.state(), ReplState::Disconnected);
        let mut replica = continued_at(0);
        replica.feed(&cmd(&["SELECT", "x"]));
        assert!(matches!(replica.next_event(), Err(ReplError::Protocol(_))));
    }

    /// Feeds `wire` at once: the events, and the error that ended them.
    fn events_until_error(
        replica: &mut Replica,
        wire: &[u8],
    ) -> (Vec<Event<'static>>, Option<ReplError>) {
        replica.feed(wire);
        let mut events = Vec::new();
        loop {
            match replica.next_event() {
                Ok(Some(event)) => events.push(event),
                Ok(None) => return (events, None),
                Err(err) => return (events, Some(err)),
            }
        }
    }

    /// After a valid snapshot, garbage (an inline command, random bytes, an
    /// array whose first element is no command name) is an error at once,
    /// not a series of unknown commands; the offset stays after the last
    /// command, where the next session resumes.
    #[test]
    fn garbage_after_a_snapshot_is_a_protocol_error() {
        let set = cmd(&["SET", "k", "v"]);
        let binary_name = cmd(&["\x01SET", "k", "v"]);
        for garbage in [&b"set a b\r\n"[..], b"\x17\x80\x00garbage", &binary_name] {
            let mut replica = at_psync();
            let mut stream = set.clone();
            stream.extend_from_slice(garbage);
            let (events, err) = events_until_error(&mut replica, &full_sync_then(&stream));
            assert!(
                matches!(
                    err,
                    Some(
                        ReplError::Protocol(_) | ReplError::Resp(RespError::UnexpectedByte { .. })
                    )
                ),
                "{garbage:?}: {err:?}"
            );
            assert!(
                matches!(events.last(), Some(Event::Command { args, .. }) if args.get(0) == Some(&b"SET"[..]))
            );
            assert_eq!(
                replica.position().map(|p| p.offset),
                Some(100 + set.len() as i64)
            );
        }
    }

    /// `max_value_bytes`: a snapshot value or a command over it ends the
    /// session with `TooLarge`, naming the key; up to it, all is delivered.
    #[test]
    fn values_over_max_value_bytes_are_refused() {
        let config = Config {
            max_value_bytes: Some(8),
            ..Config::default()
        };
        let big_set = cmd(&["SET", "big", "123456789"]);
        let mut replica = Replica::new(config.clone());
        handshake(&mut replica);
        let (events, err) = events_until_error(&mut replica, &full_sync_then(&big_set));
        // SMALL_RDB's value (3 bytes) fits; the command's arguments do not.
        assert!(events.iter().any(|e| matches!(e, Event::LoadEof { .. })));
        assert_eq!(
            err,
            Some(ReplError::TooLarge {
                key: Some(Bytes::from("big")),
                bytes: 15,
                limit: 8
            })
        );
        let mut replica = Replica::new(Config {
            max_value_bytes: Some(2),
            ..config
        });
        handshake(&mut replica);
        let (_, err) = events_until_error(&mut replica, &full_sync_then(b""));
        assert_eq!(
            err,
            Some(ReplError::TooLarge {
                key: Some(Bytes::from("foo")),
                bytes: 3,
                limit: 2
            })
        );
    }

    #[test]
    fn disk_snapshot_byte_by_byte() {
        let mut replica = at_psync();
        let mut wire =
            format!("+FULLRESYNC {REPLID} 500\r\n\n${}\r\n", SMALL_RDB.len()).into_bytes();
        wire.extend_from_slice(SMALL_RDB);
        let stream = select_and_set();
        wire.extend_from_slice(&stream);
        let events = feed_slowly(&mut replica, &wire).unwrap();
        assert_full_sync(&events, 500);
        assert_eq!(replica.snapshot_bytes(), SMALL_RDB.len() as u64);
        assert_eq!(
            replica.position().unwrap().offset,
            (500 + stream.len()) as i64
        );
    }

    #[test]
    fn diskless_snapshot_byte_by_byte() {
        let mut replica = at_psync();
        let stream = select_and_set();
        let wire = diskless_full_sync(500, SMALL_RDB, &stream);
        assert_eq!(replica.snapshot_bytes(), 0);
        let events = feed_slowly(&mut replica, &wire).unwrap();
        assert_full_sync(&events, 500);
        assert_eq!(replica.snapshot_bytes(), SMALL_RDB.len() as u64);
        replica.tick(Instant::now());
        let expected = (500 + stream.len()).to_string();
        assert_eq!(
            sent(&mut replica),
            cmd_text(&["REPLCONF", "ACK", &expected])
        );
    }

    #[test]
    fn diskless_snapshot_with_a_wrong_mark() {
        let mut replica = at_psync();
        let mut wire = format!("+FULLRESYNC {REPLID} 500\r\n$EOF:{MARK}\r\n").into_bytes();
        wire.extend_from_slice(SMALL_RDB);
        wire.extend_from_slice(&[b'x'; 40]);
        replica.feed(&wire);
        let result = std::iter::from_fn(|| replica.next_event().transpose()).find_map(Result::err);
        assert!(matches!(result, Some(ReplError::Protocol(_))));
        assert_eq!(replica.position(), None);
    }

    #[test]
    fn offsets_near_the_limit_do_not_overflow() {
        let mut replica = continued_at(i64::MAX - 1);
        replica.feed(&cmd(&["SET", "k", "v"]));
        assert!(replica.next_event().unwrap().is_some());
        assert_eq!(replica.position().unwrap().offset, i64::MAX);
        let psync = handshake(&mut replica);
        assert!(psync.ends_with(&format!("{}\r\n", i64::MAX)));
    }

    #[test]
    fn random_bytes_in_any_phase_never_panic() {
        let prefixes = [
            String::new(),
            "+CONTINUE\r\n".to_string(),
            format!("+FULLRESYNC {REPLID} 7\r\n$EOF:{MARK}\r\n"),
            format!("+FULLRESYNC {REPLID} 7\r\n$30\r\nREDIS0009"),
        ];
        let alphabet = b"*$+-:\r\n0123456789REDISabc \xff\xfe\x00";
        let mut seed: u32 = 99;
        for prefix in &prefixes {
            for _ in 0..300 {
                let mut replica = resumed_at(5, 0);
                replica.feed(prefix.as_bytes());
                let mut input = Vec::new();
                for _ in 0..(seed % 200) {
                    seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
                    input.push(alphabet[(seed >> 16) as usize % alphabet.len()]);
                }
                for chunk in input.chunks(7) {
                    replica.feed(chunk);
                    // Each call consumes bytes or stops: bounded loop.
                    for _ in 0..1000 {
                        match replica.next_event() {
                            Ok(Some(_)) => continue,
                            _ => break,
                        }
                    }
                    replica.tick(Instant::now());
                    replica.take_output();
                }
            }
        }
    }

    fn assert_full_sync(events: &[Event], offset: i64) {
        let replid = Some(Bytes::from(REPLID));
        assert_eq!(
            events[0],
            Event::FullResync {
                replid: replid.clone(),
                offset
            }
        );
        assert!(matches!(&events[1], Event::Key(e) if e.key == "foo" && e.db == 0));
        assert_eq!(events[2], Event::LoadEof { replid, offset });
        assert!(
            matches!(&events[3], Event::Command { db: 0, args } if args.get(0) == Some(&b"SELECT"[..]))
        );
        assert!(
            matches!(&events[4], Event::Command { db: 0, args } if args.get(0) == Some(&b"SET"[..]))
        );
        assert_eq!(events.len(), 5);
    }
}

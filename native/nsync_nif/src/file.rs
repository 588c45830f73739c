//! A session whose source is a file instead of a master (`load_file`): an
//! RDB file (`dump.rdb`), or the `DUMP` payload of one key. It goes through
//! the same batches (`batch.rs`, so the same filters and terms), credit and
//! messages as a full sync from a master (`pump::send_batch`): items
//! `{fullresync, undefined, 0}`, the keys, `{load_eof, undefined, 0}`, then
//! `{closed, eof}`.
//!
//! An RDB file is read in chunks as credit allows, so memory stays flat
//! whatever its size (the parser keeps one record at a time). Its errors:
//! `{file, Posix}` when it cannot be opened or read, `{rdb, Kind, Offset}`
//! when it is not a valid snapshot, `{rdb, truncated, Offset}` when it ends
//! inside one. A `DUMP` payload (one value, its RDB version and CRC-64) is
//! read whole, checked as `RESTORE` checks it, and delivered as the key
//! the session names, in the first database mirrored.

use std::fs::File;
use std::io::{self, Read};
use std::ops::ControlFlow;
use std::path::PathBuf;

use bytes::{Bytes, BytesMut};
use nsync_core::rdb::{self, Entry, Item, Outcome, Parser, Raw, RdbError};
use nsync_core::repl::{Event, ReplError};
use rustler::env::OwnedEnv;
use rustler::LocalPid;

use crate::batch::{Batch, MAX_BYTES};
use crate::credit::Wait;
use crate::encode::unix_now_ms;
use crate::error::{LinkError, Posix};
use crate::filter::DbFilter;
use crate::pump::{self, Feed};
use crate::shared::Shared;
use crate::status::{LinkState, Progress, Status, Tally};

/// What `start/2` was given for a file session.
#[derive(Debug, Clone)]
pub struct FileSource {
    pub path: PathBuf,
    /// `Some`: the file is this key's `DUMP` payload; `None`: an RDB file.
    pub dump_key: Option<Bytes>,
}

/// Runs a file session to its end: why it ended (`Eof` once the whole file
/// was delivered).
pub fn load(
    shared: &Shared,
    owner: LocalPid,
    session: u64,
    source: &FileSource,
    env: &mut OwnedEnv,
    tally: &mut Tally,
) -> LinkError {
    let file = match File::open(&source.path) {
        Ok(file) => file,
        Err(err) => return file_error(&err),
    };
    let db = match &shared.config.dbs {
        DbFilter::All => 0,
        DbFilter::Only(db) => *db,
        DbFilter::Set(dbs) => dbs.first().copied().unwrap_or(0),
    };
    let mut feed = FileFeed {
        reader: Reader {
            file,
            status: &shared.status,
            read: 0,
        },
        tally,
        input: match &source.dump_key {
            Some(key) => Input::Dump {
                key: key.clone(),
                db,
            },
            None => Input::Rdb(Box::new(Parser::with_max_value(
                shared.config.replica.max_value_bytes.unwrap_or(u64::MAX),
            ))),
        },
        stage: Stage::Start,
    };
    shared.status.reached(feed.progress());
    loop {
        if let Err(err) = shared.check_running() {
            return err;
        }
        match shared.credit.wait(pump::MAX_WAIT) {
            Wait::Granted => {
                if let Err(err) = pump::send_batch(shared, owner, session, env, &mut feed) {
                    return err;
                }
                if feed.stage == Stage::Done {
                    return LinkError::Eof;
                }
            }
            Wait::TimedOut | Wait::Stopped => {}
        }
    }
}

fn file_error(err: &io::Error) -> LinkError {
    LinkError::File(Posix::from(err))
}

/// (A value over `max_value_bytes` is `{too_large, ...}`, as from a master.)
fn rdb_error(err: RdbError) -> LinkError {
    LinkError::Repl(ReplError::from(err))
}

enum Input {
    Rdb(Box<Parser>),
    Dump { key: Bytes, db: u64 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// `{fullresync, ...}` not delivered yet.
    Start,
    Keys,
    /// `{load_eof, ...}` delivered.
    Done,
}

struct FileFeed<'t> {
    reader: Reader<'t>,
    tally: &'t mut Tally,
    input: Input,
    stage: Stage,
}

/// The file, and the status its reads are told to.
struct Reader<'t> {
    file: File,
    status: &'t Status,
    /// Bytes read so far.
    read: u64,
}

impl Reader<'_> {
    /// The next chunk of the file; empty at its end.
    fn chunk(&mut self) -> Result<Bytes, LinkError> {
        let mut buf = BytesMut::zeroed(MAX_BYTES / 4);
        let n = loop {
            match self.file.read(&mut buf) {
                Ok(n) => break n,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => return Err(file_error(&err)),
            }
        };
        buf.truncate(n);
        self.counted(n);
        Ok(buf.freeze())
    }

    fn counted(&mut self, bytes: usize) {
        self.read += bytes as u64;
        self.status.read(bytes, unix_now_ms());
    }

    /// The whole file, if it is no larger than a `DUMP` payload can be.
    fn all(&mut self) -> Result<Vec<u8>, LinkError> {
        let too_large = |len: u64| {
            rdb_error(RdbError::TooLarge {
                what: "DUMP payload",
                len,
                offset: 0,
            })
        };
        let limit = rdb::DEFAULT_MAX_READ as u64;
        let len = self.file.metadata().map_err(|e| file_error(&e))?.len();
        if len > limit {
            return Err(too_large(len));
        }
        let mut payload = Vec::new();
        (&mut self.file)
            .take(limit + 1)
            .read_to_end(&mut payload)
            .map_err(|e| file_error(&e))?;
        self.counted(payload.len());
        if payload.len() as u64 > limit {
            return Err(too_large(payload.len() as u64));
        }
        Ok(payload)
    }
}

/// The keys of an RDB file, read as the batch needs them; `true` at its
/// end.
fn fill_rdb(
    reader: &mut Reader,
    parser: &mut Parser,
    batch: &mut Batch,
) -> Result<bool, LinkError> {
    let mut read = 0;
    loop {
        let outcome = parser
            .parse(|item| {
                if let Item::Key(entry) = item {
                    batch.push(&Event::Key(entry));
                }
                if batch.is_full() {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            })
            .map_err(rdb_error)?;
        match outcome {
            Outcome::Paused => return Ok(false),
            Outcome::Done => return Ok(true),
            Outcome::Incomplete if batch.is_ready(true, false, read) => return Ok(false),
            Outcome::Incomplete => {
                let chunk = reader.chunk()?;
                if chunk.is_empty() {
                    let offset = reader.read;
                    return Err(rdb_error(RdbError::Truncated { offset }));
                }
                read += chunk.len();
                parser.feed_bytes(chunk);
            }
        }
    }
}

/// The one key of a `DUMP` payload file.
fn fill_dump(
    reader: &mut Reader,
    key: &Bytes,
    db: u64,
    batch: &mut Batch,
) -> Result<(), LinkError> {
    let value = rdb::decode_dump(&reader.all()?).map_err(rdb_error)?;
    batch.push(&Event::Key(Entry {
        db,
        key: Raw::Shared(key.clone()),
        expire_at_ms: None,
        idle: None,
        freq: None,
        value,
    }));
    Ok(())
}

impl Feed for FileFeed<'_> {
    fn fill(&mut self, batch: &mut Batch) -> Result<(), LinkError> {
        if self.stage == Stage::Start {
            batch.push(&Event::FullResync {
                replid: None,
                offset: 0,
            });
            self.stage = Stage::Keys;
        }
        if self.stage == Stage::Done {
            return Ok(());
        }
        let done = match &mut self.input {
            Input::Rdb(parser) => fill_rdb(&mut self.reader, parser, batch)?,
            Input::Dump { key, db } => {
                fill_dump(&mut self.reader, key, *db, batch)?;
                true
            }
        };
        if done {
            batch.push(&Event::LoadEof {
                replid: None,
                offset: 0,
            });
            self.stage = Stage::Done;
        }
        Ok(())
    }

    fn tally(&mut self) -> &mut Tally {
        self.tally
    }

    fn progress(&self) -> Progress {
        Progress {
            state: LinkState::Loading,
            position: None,
            tally: *self.tally,
            snapshot_bytes: self.reader.read,
            ended_by: None,
        }
    }
}

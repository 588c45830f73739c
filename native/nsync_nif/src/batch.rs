//! One batch of items for the link process, built as terms by the pump
//! (the shapes are `nsync_nif:item()`).
//!
//! Snapshot keys of the databases the link mirrors (its [`DbFilter`]) whose
//! names its key filter keeps (`filter.rs`; checked before anything of the
//! key is built) and that have not expired are grouped, per run of one
//! database, into one item
//! `{keys, Db, DataRows, ExpiryRows, BigHashes}`: `DataRows` are the mirror's
//! `{Key, Value}` rows in snapshot order, `ExpiryRows` its
//! `{Key, ExpireAtMs | undefined, #{Field => Ms}}` rows of the keys that have
//! an expiry (a subsequence of `DataRows`), and `BigHashes` the hashes too
//! big for the pump to make a map of, which come after the item's data rows
//! (a key after a big hash starts a new item, so snapshot order is kept).
//! The default mirror inserts both row lists as they are. A list, set, zset
//! or hash of more elements than the big threshold (a string of more KiB)
//! is built as a big value
//! (`big::rows`): its data row is `{Key, Handle}` and it always has an
//! expiry row `{Key, ExpireAtMs | undefined, #{}, Handle}`, as the mirror
//! keeps them. Function libraries are not delivered. Everything else is one
//! item per event; the key filter drops the commands that touch no kept key
//! and cuts down or marks those that straddle it (`KeyFilter::command`).

use nsync_core::big::Big;
use nsync_core::rdb::{Entry, LiveValue};
use nsync_core::repl::Event;
use nsync_core::resp::Args;
use rustler::{Encoder, Env, Term};

use crate::atoms;
use crate::big;
use crate::config::LinkConfig;
use crate::encode;
#[cfg(doc)]
use crate::filter::DbFilter;
use crate::filter::Decision;

/// A batch is sent once it holds this many items ...
pub const MAX_EVENTS: usize = 1000;
/// ... or once this many bytes were read into it.
pub const MAX_BYTES: usize = 256 * 1024;

/// The snapshot keys of one database, in order.
struct Keys<'a> {
    db: u64,
    data: Vec<Term<'a>>,
    expiry: Vec<Term<'a>>,
    big_hashes: Vec<Term<'a>>,
}

pub struct Batch<'a, 'c> {
    env: Env<'a>,
    config: &'c LinkConfig,
    now_ms: i64,
    items: Vec<Term<'a>>,
    keys: Option<Keys<'a>>,
    /// Items delivered (snapshot keys counted one by one).
    events: usize,
    /// Snapshot keys delivered (since the full sync that started in this
    /// batch, if one did), and commands.
    pub keys_delivered: u64,
    pub full_sync_started: bool,
    pub commands: u64,
}

impl<'a, 'c> Batch<'a, 'c> {
    pub fn new(env: Env<'a>, config: &'c LinkConfig, now_ms: i64) -> Batch<'a, 'c> {
        Batch {
            env,
            config,
            now_ms,
            items: Vec::new(),
            keys: None,
            events: 0,
            keys_delivered: 0,
            full_sync_started: false,
            commands: 0,
        }
    }

    /// Whether there is anything to send (keys that had expired, or that
    /// the link does not mirror, are not).
    pub fn has_items(&self) -> bool {
        !self.items.is_empty() || self.keys.is_some()
    }

    pub fn is_full(&self) -> bool {
        self.events >= MAX_EVENTS
    }

    /// Whether the batch should go now, `read` bytes having been read into
    /// it, the socket `drained` by the last read. Snapshot keys are seen by
    /// nobody until the snapshot is complete: while `loading` they wait for
    /// a full batch (fewer, bigger messages: the link process wakes up
    /// less). Anything else goes as soon as the socket has nothing more, so
    /// a live write reaches the link process at once. Past [`MAX_BYTES`]
    /// read it goes in any case (if it is empty, say every key was filtered
    /// out, nothing is sent).
    pub fn is_ready(&self, loading: bool, drained: bool, read: usize) -> bool {
        self.is_full() || read >= MAX_BYTES || (self.events > 0 && !loading && drained)
    }

    pub fn push(&mut self, event: &Event) {
        let delivered = match event {
            Event::Key(entry) => self.push_key(entry),
            Event::Command { db, args } => self.push_command(*db, args),
            _ => match encode::item(self.env, event) {
                Some(term) => {
                    if let Event::FullResync { .. } = event {
                        self.full_sync_started = true;
                        self.keys_delivered = 0;
                    }
                    self.push_item(term);
                    true
                }
                None => false,
            },
        };
        if delivered {
            self.events += 1;
        }
    }

    fn push_item(&mut self, term: Term<'a>) {
        self.close_keys();
        self.items.push(term);
    }

    /// A command of the stream, as the key filter decides.
    fn push_command(&mut self, db: u64, args: &Args) -> bool {
        let decision = match &self.config.keys {
            Some(filter) => filter.command(&self.config.dbs, db, &args.to_bytes()),
            None => Decision::Keep,
        };
        let env = self.env;
        let term = match &decision {
            Decision::Drop => None,
            Decision::Keep => encode::command(env, db, args, None),
            Decision::Only(kept) => encode::command(env, db, kept.iter().map(|a| &a[..]), None),
            Decision::Straddles(out) => encode::command(env, db, args, Some(out)),
        };
        let Some(term) = term else {
            return false;
        };
        self.commands += 1;
        self.push_item(term);
        true
    }

    fn push_key(&mut self, entry: &Entry) -> bool {
        if !self.config.keeps(entry.db, &entry.key) {
            return false;
        }
        let Some(live) = LiveValue::of_entry(entry, self.now_ms) else {
            return false;
        };
        self.keys_delivered += 1;
        let env = self.env;
        // A value too big to build fails here only past 4 GiB a part: it
        // is then delivered as a term.
        let big = self
            .config
            .big_threshold
            .and_then(|threshold| Big::of_live(&live, threshold)?.ok());
        if big.is_none() && encode::is_big_hash(&live) {
            let term = encode::big_hash(env, entry, &live);
            self.keys_of(entry.db).big_hashes.push(term);
        } else {
            let (data, expiry) = match big {
                Some(big) => big::rows(env, entry, big),
                None => encode::key_rows(env, entry, &live),
            };
            if self.keys.as_ref().is_some_and(|k| !k.big_hashes.is_empty()) {
                // An item's data rows come before its big hashes: a new
                // item keeps the snapshot's order.
                self.close_keys();
            }
            let keys = self.keys_of(entry.db);
            keys.data.push(data);
            keys.expiry.extend(expiry);
        }
        true
    }

    /// The batch's items, in stream order.
    pub fn into_term(mut self) -> Term<'a> {
        self.close_keys();
        self.items.encode(self.env)
    }

    /// The keys item of `db` being filled (a new one after another db's).
    fn keys_of(&mut self, db: u64) -> &mut Keys<'a> {
        if self.keys.as_ref().is_some_and(|keys| keys.db != db) {
            self.close_keys();
        }
        self.keys.get_or_insert_with(|| Keys {
            db,
            data: Vec::with_capacity(MAX_EVENTS),
            expiry: Vec::new(),
            big_hashes: Vec::new(),
        })
    }

    fn close_keys(&mut self) {
        if let Some(keys) = self.keys.take() {
            let env = self.env;
            let item = (
                atoms::keys(),
                keys.db,
                keys.data,
                keys.expiry,
                keys.big_hashes,
            )
                .encode(env);
            self.items.push(item);
        }
    }
}

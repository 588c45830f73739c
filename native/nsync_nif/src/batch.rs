//! One batch of events for the link process, built as terms by the pump.
//!
//! With [`Delivery::Events`] every event is one term (`encode::event`), as a
//! user callback needs them. With [`Delivery::Rows`] (the default ETS
//! mirror) a run of snapshot keys of one database becomes
//! `{rows, Db, [{K, V}], [{K, ExpireAtMs | undefined, #{Field => Ms}}]}`:
//! the link process inserts both lists as they are, with no work per key.

use nsync_core::rdb::Entry;
use nsync_core::repl::Event;
use rustler::{Encoder, Env, Term};

use crate::atoms;
use crate::encode::{self, LiveValue};

/// A batch is sent once it holds this many events ...
pub const MAX_EVENTS: usize = 1000;
/// ... or once this many bytes were read into it.
pub const MAX_BYTES: usize = 256 * 1024;

/// How snapshot keys reach the link process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// `{key, Db, K, V, ExpireAtMs, FieldExpires}` events.
    Events,
    /// Mirror rows, for every database (`None`) or one.
    Rows(Option<u64>),
}

/// The keys of one database, as rows.
struct Rows<'a> {
    db: u64,
    data: Vec<Term<'a>>,
    expiry: Vec<Term<'a>>,
}

pub struct Batch<'a> {
    env: Env<'a>,
    delivery: Delivery,
    now_ms: i64,
    items: Vec<Term<'a>>,
    rows: Option<Rows<'a>>,
    events: usize,
    /// Snapshot keys delivered, and commands.
    pub keys: u64,
    pub commands: u64,
}

impl<'a> Batch<'a> {
    pub fn new(env: Env<'a>, delivery: Delivery, now_ms: i64) -> Batch<'a> {
        Batch {
            env,
            delivery,
            now_ms,
            items: Vec::new(),
            rows: None,
            events: 0,
            keys: 0,
            commands: 0,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.events == 0
    }

    /// Whether there is anything to send (keys that had expired are not).
    pub fn has_items(&self) -> bool {
        !self.items.is_empty() || self.rows.is_some()
    }

    pub fn is_full(&self) -> bool {
        self.events >= MAX_EVENTS
    }

    pub fn push(&mut self, event: &Event) {
        self.events += 1;
        match event {
            Event::Key(entry) => self.push_key(entry),
            _ => {
                if let Some(term) = encode::event(self.env, event, self.now_ms) {
                    if matches!(event, Event::Command { .. }) {
                        self.commands += 1;
                    }
                    self.push_item(term);
                }
            }
        }
    }

    /// A key of the snapshot; expired ones and, for rows, those of other
    /// databases are left out.
    fn push_key(&mut self, entry: &Entry) {
        if let Delivery::Rows(Some(db)) = self.delivery {
            if db != entry.db {
                return;
            }
        }
        let env = self.env;
        let Some(live) = LiveValue::of_entry(entry, self.now_ms) else {
            return;
        };
        self.keys += 1;
        if let Some(fields) = live.big_hash_fields() {
            return self.push_item(encode::big_hash(env, entry, &live, fields));
        }
        match self.delivery {
            Delivery::Rows(_) => {
                let (data, expiry) = encode::key_rows(env, entry, &live);
                let rows = self.rows_of(entry.db);
                rows.data.push(data);
                rows.expiry.extend(expiry);
            }
            Delivery::Events => self.push_item(encode::key(env, entry, &live)),
        }
    }

    /// An item after the rows before it.
    fn push_item(&mut self, term: Term<'a>) {
        self.close_rows();
        self.items.push(term);
    }

    /// The batch's items, in stream order.
    pub fn into_term(mut self) -> Term<'a> {
        self.close_rows();
        self.items.encode(self.env)
    }

    fn rows_of(&mut self, db: u64) -> &mut Rows<'a> {
        if self.rows.as_ref().is_some_and(|rows| rows.db != db) {
            self.close_rows();
        }
        self.rows.get_or_insert_with(|| Rows {
            db,
            data: Vec::with_capacity(MAX_EVENTS),
            expiry: Vec::new(),
        })
    }

    fn close_rows(&mut self) {
        if let Some(rows) = self.rows.take() {
            let env = self.env;
            let item = (atoms::rows(), rows.db, rows.data, rows.expiry).encode(env);
            self.items.push(item);
        }
    }
}

//! Shared by the integration tests and the `rdb_json` example: running the
//! parser over a file in chunks, the corpus's expected-contents JSON, and
//! (`server`) real servers to test against.
#![allow(dead_code)]

pub mod server;

use std::ops::ControlFlow;
use std::path::PathBuf;

use bytes::Bytes;

use nsync_core::rdb::{Item, Outcome, Parser, RdbError, Status, Str, StreamId, Value};
use serde_json::{json, Map, Value as Json};

/// Keys (and hash fields) that expired before this time are absent from the
/// corpus JSON: the oracle server dropped them on load. The oracle ran on
/// 2026-11-22 (the JSON files' date; 2025-01-01 is not late enough:
/// replicator/dump-ttlhash lacks fields that expired in June 2025).
pub const ORACLE_NOW_MS: i64 = 1_795_320_000_000;

/// `$RDB_CORPUS`, else `shared/rdb-corpus` beside the checkout (the layout
/// of /work and of CI).
pub fn corpus_dir() -> PathBuf {
    match std::env::var_os("RDB_CORPUS") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/rdb-corpus"),
    }
}

/// How a parse ended.
#[derive(Debug, Clone, PartialEq)]
pub enum End {
    Done,
    Incomplete,
    Error(RdbError),
}

/// How the parser is driven.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Api {
    /// `feed` copies, `next_item` gives one owned item at a time.
    NextItem,
    /// `feed_bytes` hands chunks over, `parse` lends every item to a sink.
    Sink,
}

/// Parses `data` fed in chunks of `chunk` bytes with `next_item`.
pub fn parse_chunked(data: &[u8], chunk: usize) -> (Vec<Item<'static>>, End) {
    parse_with(Api::NextItem, data, chunk)
}

/// Parses `data` fed in chunks of `chunk` bytes, pulling items after each.
pub fn parse_with(api: Api, data: &[u8], chunk: usize) -> (Vec<Item<'static>>, End) {
    let mut parser = Parser::new();
    let mut items = Vec::new();
    for piece in data.chunks(chunk.max(1)) {
        match api {
            Api::NextItem => parser.feed(piece),
            Api::Sink => parser.feed_bytes(Bytes::copy_from_slice(piece)),
        }
        match pull(api, &mut parser, &mut items) {
            Ok(Status::Incomplete) => {}
            Ok(_) => return (items, End::Done),
            Err(e) => return (items, End::Error(e)),
        }
    }
    let end = match pull(api, &mut parser, &mut items) {
        Ok(Status::Done) => End::Done,
        Ok(_) => End::Incomplete,
        Err(e) => End::Error(e),
    };
    (items, end)
}

/// Every item available; `Done` or `Incomplete` after them.
fn pull(api: Api, parser: &mut Parser, items: &mut Vec<Item<'static>>) -> Result<Status, RdbError> {
    match api {
        Api::NextItem => loop {
            match parser.next_item()? {
                Status::Ready(item) => items.push(item),
                end => return Ok(end),
            }
        },
        Api::Sink => {
            let outcome = parser.parse(|item| {
                items.push(item.into_owned());
                ControlFlow::Continue(())
            })?;
            Ok(if outcome == Outcome::Done {
                Status::Done
            } else {
                Status::Incomplete
            })
        }
    }
}

pub fn json_bytes(b: &[u8]) -> Json {
    match std::str::from_utf8(b) {
        Ok(s) => Json::String(s.to_string()),
        Err(_) => json!({ "base64": base64(b) }),
    }
}

pub fn json_key(b: &[u8]) -> String {
    match std::str::from_utf8(b) {
        Ok(s) => s.to_string(),
        Err(_) => format!("base64:{}", base64(b)),
    }
}

fn json_str(s: &Str) -> Json {
    json_bytes(&s.to_bytes())
}

pub fn json_score(score: f64) -> Json {
    if score == f64::INFINITY {
        json!("inf")
    } else if score == f64::NEG_INFINITY {
        json!("-inf")
    } else {
        serde_json::Number::from_f64(score).map_or(json!("nan"), Json::Number)
    }
}

fn id(id: &StreamId) -> Json {
    json!(format!("{}-{}", id.ms, id.seq))
}

/// The corpus JSON of a parse; keys and fields expired before `now_ms`
/// (when given) are left out, as a server loading the file would.
pub fn to_json(items: &[Item], now_ms: Option<i64>) -> Json {
    let expired = |at: Option<i64>| matches!((at, now_ms), (Some(at), Some(now)) if at < now);
    let mut version = 0;
    let mut functions = Vec::new();
    let mut dbs = Map::new();
    for item in items {
        match item {
            Item::Header { version: v, .. } => version = *v,
            Item::Function(source) => functions.push(json_bytes(source)),
            Item::Key(entry) if !expired(entry.expire_at_ms) => {
                let mut out = Map::new();
                let (ty, value) = match &entry.value {
                    Value::String(s) => ("string", json_str(s)),
                    Value::List(items) => ("list", items.iter().map(json_str).collect()),
                    Value::Set(items) => ("set", items.iter().map(json_str).collect()),
                    Value::ZSet(members) => (
                        "zset",
                        members
                            .iter()
                            .map(|(s, m)| json!([json_str(m), json_score(*s)]))
                            .collect(),
                    ),
                    Value::Hash(fields) => {
                        let mut values = Map::new();
                        let mut field_expiry = Map::new();
                        for f in fields.iter().filter(|f| !expired(f.expire_at_ms)) {
                            let name = json_key(&f.field.to_bytes());
                            if let Some(at) = f.expire_at_ms {
                                field_expiry.insert(name.clone(), json!(at));
                            }
                            values.insert(name, json_str(&f.value));
                        }
                        if values.is_empty() && !fields.is_empty() {
                            continue; // every field expired: the key is gone
                        }
                        if !field_expiry.is_empty() {
                            out.insert("field_expire_at_ms".into(), Json::Object(field_expiry));
                        }
                        ("hash", Json::Object(values))
                    }
                    Value::Stream(s) => {
                        let entries: Vec<Json> = s
                            .entries
                            .iter()
                            .map(|e| {
                                json!([
                                    id(&e.id),
                                    e.fields.iter().map(json_str).collect::<Vec<_>>()
                                ])
                            })
                            .collect();
                        let groups: Vec<Json> = s
                            .groups
                            .iter()
                            .map(|g| {
                                let consumers: Vec<Json> = g
                                    .consumers
                                    .iter()
                                    .map(|c| json!({"name": json_bytes(&c.name), "pending": c.pending.iter().map(id).collect::<Vec<_>>()}))
                                    .collect();
                                json!({
                                    "name": json_bytes(&g.name),
                                    "last_delivered_id": id(&g.last_delivered_id),
                                    "pending": g.pending.iter().map(|p| id(&p.id)).collect::<Vec<_>>(),
                                    "consumers": consumers,
                                })
                            })
                            .collect();
                        let value = json!({"entries": entries, "length": s.length, "last_id": id(&s.last_id), "groups": groups});
                        ("stream", value)
                    }
                    Value::Module {
                        type_name,
                        enc_version,
                        raw,
                    } => (
                        "module",
                        json!({"type_name": type_name, "enc_version": enc_version, "raw": json!({"base64": base64(raw)})}),
                    ),
                };
                out.insert("type".into(), json!(ty));
                out.insert("value".into(), value);
                out.insert("expire_at_ms".into(), json!(entry.expire_at_ms));
                let db = dbs.entry(entry.db.to_string()).or_insert_with(|| json!({}));
                if let Some(db) = db.as_object_mut() {
                    db.insert(json_key(&entry.key), Json::Object(out));
                }
            }
            _ => {}
        }
    }
    json!({"rdb_version": version, "functions": functions, "dbs": dbs})
}

/// Brings a key's JSON to a comparable form, undoing the oracle's artifacts:
/// no `encoding`; scores to 15 significant digits (the oracle's scores can
/// be 1–2 ulp off the double stored in the file: -60.41 for
/// -60.410000000000004); stream entry fields as a map (the oracle collapsed
/// `XADD s * k v k v` into `[k, v]`).
fn normalize_key(v: &Json) -> Json {
    let mut v = v.clone();
    let Some(obj) = v.as_object_mut() else {
        return v;
    };
    obj.remove("encoding");
    let ty = obj.get("type").cloned();
    let Some(value) = obj.get_mut("value") else {
        return v;
    };
    if ty == Some(json!("zset")) {
        for score in value
            .as_array_mut()
            .into_iter()
            .flatten()
            .filter_map(|m| m.get_mut(1))
        {
            if let Some(f) = score.as_f64() {
                // `+ 0.0`: the oracle wrote integral scores as integers, so -0 became 0.
                *score = json!(format!("{:.14e}", f + 0.0));
            }
        }
    }
    if ty == Some(json!("stream")) {
        let entries = value.get_mut("entries").and_then(Json::as_array_mut);
        for fields in entries.into_iter().flatten().filter_map(|e| e.get_mut(1)) {
            let mut map: Vec<(Json, Json)> = Vec::new();
            for pair in fields.as_array().cloned().unwrap_or_default().chunks(2) {
                let (f, val) = (pair[0].clone(), pair.get(1).cloned().unwrap_or(Json::Null));
                match map.iter_mut().find(|(k, _)| *k == f) {
                    Some(slot) => slot.1 = val,
                    None => map.push((f, val)),
                }
            }
            *fields = map.into_iter().flat_map(|(k, v)| [k, v]).collect();
        }
    }
    v
}

fn short(v: &Json) -> String {
    let s = v.to_string();
    if s.len() > 600 {
        format!(
            "{}…",
            &s[..s.char_indices().nth(600).map_or(s.len(), |(i, _)| i)]
        )
    } else {
        s
    }
}

/// Compares a parse with the expected JSON; returns the differences.
pub fn diff_with_expected(items: &[Item], expected: &Json) -> Vec<String> {
    let actual = to_json(items, Some(ORACLE_NOW_MS));
    let mut diffs = Vec::new();
    // FUNCTION LIST order is not the file's order.
    let sorted = |v: &Json| {
        let mut list = v.as_array().cloned().unwrap_or_default();
        list.sort_by_key(|f| f.to_string());
        Json::Array(list)
    };
    if sorted(&actual["functions"]) != sorted(&expected["functions"]) {
        diffs.push(format!(
            "functions: parsed {} expected {}",
            short(&actual["functions"]),
            short(&expected["functions"])
        ));
    }
    for field in ["rdb_version"] {
        if actual[field] != expected[field] {
            diffs.push(format!(
                "{field}: parsed {} expected {}",
                short(&actual[field]),
                short(&expected[field])
            ));
        }
    }
    let empty = Map::new();
    let actual_dbs = actual["dbs"].as_object().unwrap_or(&empty);
    let expected_dbs = expected["dbs"].as_object().unwrap_or(&empty);
    let mut db_names: Vec<&String> = actual_dbs.keys().chain(expected_dbs.keys()).collect();
    db_names.sort();
    db_names.dedup();
    for db in db_names {
        let a = actual_dbs
            .get(db)
            .and_then(Json::as_object)
            .unwrap_or(&empty);
        let e = expected_dbs
            .get(db)
            .and_then(Json::as_object)
            .unwrap_or(&empty);
        for (key, ev) in e {
            match a.get(key) {
                None => diffs.push(format!("db {db} key {key:?}: missing from the parse")),
                Some(av) => {
                    let (av, ev) = (normalize_key(av), normalize_key(ev));
                    if av != ev {
                        diffs.push(format!(
                            "db {db} key {key:?}: {}",
                            first_difference(&av, &ev)
                        ));
                    }
                }
            }
        }
        for key in a.keys().filter(|k| !e.contains_key(*k)) {
            diffs.push(format!("db {db} key {key:?}: parsed but not expected"));
        }
    }
    diffs
}

/// Where two JSON values first differ.
fn first_difference(a: &Json, e: &Json) -> String {
    match (a, e) {
        (Json::Array(a), Json::Array(e)) => match a.iter().zip(e).position(|(x, y)| x != y) {
            Some(i) => format!("[{i}]: {}", first_difference(&a[i], &e[i])),
            None => format!("parsed {} elements, expected {}", a.len(), e.len()),
        },
        (Json::Object(a), Json::Object(e)) => {
            for (k, ev) in e {
                match a.get(k) {
                    Some(av) if av == ev => {}
                    Some(av) => return format!(".{k}: {}", first_difference(av, ev)),
                    None => return format!(".{k}: missing from the parse"),
                }
            }
            let extra: Vec<&String> = a.keys().filter(|k| !e.contains_key(*k)).collect();
            format!("parsed but not expected: {extra:?}")
        }
        _ => format!("\n  parsed   {}\n  expected {}", short(a), short(e)),
    }
}

pub fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// SplitMix64, for reproducible inputs.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let z = (self.0 ^ (self.0 >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        let z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

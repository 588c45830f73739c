//! Which keys a link mirrors: its databases ([`DbFilter`], the `db` option)
//! and, with the `keys` option, a [`KeyFilter`] of key names (prefixes and
//! glob patterns) that also decides, before any term is built, what becomes
//! of each command of the stream ([`KeyFilter::command`]).
//!
//! A command's keys are found by its key spec from nsync_cmd's table (given
//! to `open/1`; a command it does not name has its first argument as its
//! key, as the mirror assumes). A command whose keys are all kept goes as it
//! is, one whose keys are all filtered out is dropped; one that straddles
//! the filter is cut down to its kept keys when each key is written on its
//! own (DEL, UNLINK, MSET, MSETNX, MSETEX), else it goes with the names of
//! its filtered-out keys, which the mirror then treats as unknown.

use std::collections::HashMap;

use bytes::Bytes;
use nsync_core::glob;

/// The databases whose keys are delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DbFilter {
    All,
    Only(u64),
    /// Sorted, without duplicates.
    Set(Vec<u64>),
}

impl DbFilter {
    pub fn admits(&self, db: u64) -> bool {
        match self {
            DbFilter::All => true,
            DbFilter::Only(wanted) => *wanted == db,
            DbFilter::Set(dbs) => dbs.binary_search(&db).is_ok(),
        }
    }
}

/// Which arguments of a command are keys (nsync_cmd's `keyspec()`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeySpec {
    None,
    First,
    Two,
    All,
    Pairs,
    AllButLast,
    Second,
    FromSecond,
    /// `numkeys key ...` after this many arguments.
    NumKeys(usize),
    /// `numkeys key value ...` after this many arguments.
    NumKeysPairs(usize),
    DestNumKeys,
    Sort,
    Eval,
    Xgroup,
    Georadius,
}

/// How a command's keys relate, as far as the filter cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Plain,
    /// Each key is written on its own: a straddling command is cut down.
    PerKey,
    /// MOVE: its key also lands in the database its second argument names.
    Move,
    /// COPY: with a DB option its destination is in that database.
    Copy,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    pub keys: KeySpec,
    pub role: Role,
}

/// What a command not in the table is taken for.
const DEFAULT_RULE: Rule = Rule {
    keys: KeySpec::First,
    role: Role::Plain,
};

/// Command names longer than this are not in the table.
const MAX_NAME: usize = 32;

/// What becomes of one command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Delivered as it is.
    Keep,
    /// Not delivered: it touches no kept key.
    Drop,
    /// Delivered with these arguments (name first): a per-key command cut
    /// down to its kept keys.
    Only(Vec<Bytes>),
    /// Delivered as it is, with the names of its filtered-out keys.
    Straddles(Vec<Bytes>),
}

#[derive(Debug, Clone, Default)]
pub struct KeyFilter {
    prefixes: Vec<Vec<u8>>,
    patterns: Vec<Vec<u8>>,
    /// Lowercase command name -> its rule, for the commands whose rule is
    /// not [`DEFAULT_RULE`].
    commands: HashMap<Vec<u8>, Rule>,
}

impl KeyFilter {
    /// Keys that start with one of `prefixes` or match one of `patterns`
    /// (every key when both are empty: a filter of databases only).
    pub fn new(
        prefixes: Vec<Vec<u8>>,
        patterns: Vec<Vec<u8>>,
        commands: HashMap<Vec<u8>, Rule>,
    ) -> KeyFilter {
        KeyFilter {
            prefixes,
            patterns,
            commands,
        }
    }

    /// Whether the key name `key` is kept.
    pub fn admits(&self, key: &[u8]) -> bool {
        (self.prefixes.is_empty() && self.patterns.is_empty())
            || self.prefixes.iter().any(|p| key.starts_with(p))
            || self.patterns.iter().any(|p| glob::matches(p, key))
    }

    fn rule(&self, name: &[u8]) -> Rule {
        let mut buf = [0u8; MAX_NAME];
        let Some(lower) = buf.get_mut(..name.len()) else {
            return DEFAULT_RULE;
        };
        for (dst, src) in lower.iter_mut().zip(name) {
            *dst = src.to_ascii_lowercase();
        }
        self.commands
            .get(&lower[..])
            .copied()
            .unwrap_or(DEFAULT_RULE)
    }

    /// What becomes of the command `args` (name first) run in database
    /// `db`, for a link that mirrors `dbs`. A key counts as kept when its
    /// name is kept and it is in a mirrored database (a moved or copied key
    /// in the database it lands in); only names make a command straddle
    /// (the mirror knows which databases it mirrors). A command whose keys
    /// cannot be read is kept: the mirror deals with it.
    pub fn command(&self, dbs: &DbFilter, db: u64, args: &[Bytes]) -> Decision {
        let Some((name, rest)) = args.split_first() else {
            return Decision::Keep;
        };
        let rule = self.rule(name);
        let Some(keys) = key_positions(rule.keys, rest) else {
            return Decision::Keep;
        };
        if keys.is_empty() {
            return Decision::Keep;
        }
        let other_db = match rule.role {
            Role::Move => rest.get(1).and_then(|t| parse_int(t)),
            Role::Copy => copy_target(rest),
            Role::Plain | Role::PerKey => None,
        };
        let landing = other_db.and_then(|t| u64::try_from(t).ok());
        let in_dbs = |nth: usize| match (rule.role, landing) {
            (Role::Move, Some(target)) => dbs.admits(db) || dbs.admits(target),
            (Role::Copy, Some(target)) if nth == 1 => dbs.admits(target),
            _ => dbs.admits(db),
        };
        let mut kept_any = false;
        let mut out = Vec::new();
        for (nth, &i) in keys.iter().enumerate() {
            let key = &rest[i];
            if !self.admits(key) {
                out.push(key.clone());
            } else if in_dbs(nth) {
                kept_any = true;
            }
        }
        if !kept_any {
            Decision::Drop
        } else if out.is_empty() {
            Decision::Keep
        } else if rule.role == Role::PerKey {
            cut_down(rule.keys, name, rest, |key| self.admits(key))
                .map_or(Decision::Straddles(dedup(out)), Decision::Only)
        } else {
            Decision::Straddles(dedup(out))
        }
    }
}

fn dedup(mut keys: Vec<Bytes>) -> Vec<Bytes> {
    keys.sort();
    keys.dedup();
    keys
}

/// An integer argument as Erlang's `binary_to_integer/1` reads it.
fn parse_int(arg: &[u8]) -> Option<i64> {
    std::str::from_utf8(arg).ok()?.parse().ok()
}

fn count(arg: Option<&Bytes>) -> Option<usize> {
    usize::try_from(parse_int(arg?)?).ok()
}

fn is_option(arg: &[u8], names: &[&[u8]]) -> bool {
    names.iter().any(|name| arg.eq_ignore_ascii_case(name))
}

/// COPY's `DB n` option.
fn copy_target(rest: &[Bytes]) -> Option<i64> {
    let at = (2..rest.len().saturating_sub(1)).find(|&i| is_option(&rest[i], &[b"db"]))?;
    parse_int(&rest[at + 1])
}

/// The positions (in the arguments after the name) of a command's keys, as
/// `nsync_cmd:keys/2` reads them; `None` when they cannot be read.
pub fn key_positions(spec: KeySpec, rest: &[Bytes]) -> Option<Vec<usize>> {
    let n = rest.len();
    let keys = match spec {
        KeySpec::None => Vec::new(),
        KeySpec::First => (0..n.min(1)).collect(),
        KeySpec::Two if n >= 2 => vec![0, 1],
        KeySpec::Second | KeySpec::Xgroup if n >= 2 => vec![1],
        KeySpec::Two | KeySpec::Second | KeySpec::Xgroup => Vec::new(),
        KeySpec::All => (0..n).collect(),
        KeySpec::Pairs => (0..n / 2).map(|i| 2 * i).collect(),
        KeySpec::AllButLast => (0..n.saturating_sub(1)).collect(),
        KeySpec::FromSecond => (1..n).collect(),
        KeySpec::NumKeys(skip) => {
            let numkeys = count(rest.get(skip))?;
            (skip + 1..n.min((skip + 1).saturating_add(numkeys))).collect()
        }
        KeySpec::NumKeysPairs(skip) => {
            let numkeys = count(rest.get(skip))?;
            let end = n.min((skip + 1).saturating_add(numkeys.saturating_mul(2)));
            pair_firsts(skip + 1, end)
        }
        KeySpec::DestNumKeys => {
            let numkeys = count(rest.get(1))?;
            std::iter::once(0)
                .chain(2..n.min(numkeys.saturating_add(2)))
                .collect()
        }
        KeySpec::Eval => {
            let numkeys = count(rest.get(1))?;
            (2..n.min(numkeys.saturating_add(2))).collect()
        }
        KeySpec::Sort if n == 0 => Vec::new(),
        KeySpec::Sort => {
            let store = (1..n.saturating_sub(1)).find(|&i| is_option(&rest[i], &[b"store"]));
            std::iter::once(0).chain(store.map(|i| i + 1)).collect()
        }
        KeySpec::Georadius if n == 0 => Vec::new(),
        KeySpec::Georadius => {
            let mut keys = vec![0];
            let mut i = 1;
            while i + 1 < n {
                if is_option(&rest[i], &[b"store", b"storedist"]) {
                    keys.push(i + 1);
                    i += 2;
                } else {
                    i += 1;
                }
            }
            keys
        }
    };
    Some(keys)
}

/// The first of each whole pair in `start..end`.
fn pair_firsts(start: usize, end: usize) -> Vec<usize> {
    (start..end).step_by(2).filter(|&i| i + 1 < end).collect()
}

/// A per-key command with only the keys `keep` admits (and their values),
/// name first; `None` for a key spec it does not know how to cut.
fn cut_down(
    spec: KeySpec,
    name: &Bytes,
    rest: &[Bytes],
    keep: impl Fn(&[u8]) -> bool,
) -> Option<Vec<Bytes>> {
    let mut args = vec![name.clone()];
    match spec {
        KeySpec::All => args.extend(rest.iter().filter(|k| keep(k)).cloned()),
        KeySpec::Pairs => {
            for pair in rest.chunks_exact(2) {
                if keep(&pair[0]) {
                    args.extend_from_slice(pair);
                }
            }
        }
        KeySpec::NumKeysPairs(skip) => {
            let numkeys = count(rest.get(skip))?;
            let end = rest
                .len()
                .min((skip + 1).saturating_add(numkeys.saturating_mul(2)));
            let pairs: Vec<&[Bytes]> = rest
                .get(skip + 1..end)?
                .chunks_exact(2)
                .filter(|pair| keep(&pair[0]))
                .collect();
            args.extend_from_slice(rest.get(..skip)?);
            args.push(Bytes::from(pairs.len().to_string()));
            args.extend(pairs.concat());
            args.extend_from_slice(rest.get(end..)?);
        }
        _ => return None,
    }
    Some(args)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(words: &[&str]) -> Vec<Bytes> {
        words
            .iter()
            .map(|w| Bytes::copy_from_slice(w.as_bytes()))
            .collect()
    }

    fn rule(keys: KeySpec, role: Role) -> Rule {
        Rule { keys, role }
    }

    /// Keeps `user:*` and keys starting with `k`; a table like nsync_cmd's.
    fn filter() -> KeyFilter {
        let commands = [
            ("del", rule(KeySpec::All, Role::PerKey)),
            ("mset", rule(KeySpec::Pairs, Role::PerKey)),
            ("msetex", rule(KeySpec::NumKeysPairs(0), Role::PerKey)),
            ("rename", rule(KeySpec::Two, Role::Plain)),
            ("sunionstore", rule(KeySpec::All, Role::Plain)),
            ("zunionstore", rule(KeySpec::DestNumKeys, Role::Plain)),
            ("move", rule(KeySpec::First, Role::Move)),
            ("copy", rule(KeySpec::Two, Role::Copy)),
            ("select", rule(KeySpec::None, Role::Plain)),
            ("sort", rule(KeySpec::Sort, Role::Plain)),
            ("georadius", rule(KeySpec::Georadius, Role::Plain)),
            ("eval", rule(KeySpec::Eval, Role::Plain)),
        ]
        .into_iter()
        .map(|(name, rule)| (name.as_bytes().to_vec(), rule))
        .collect();
        KeyFilter::new(vec![b"k".to_vec()], vec![b"user:*".to_vec()], commands)
    }

    fn decide(words: &[&str]) -> Decision {
        filter().command(&DbFilter::Only(0), 0, &args(words))
    }

    #[test]
    fn names() {
        let f = filter();
        assert!(f.admits(b"user:1"));
        assert!(f.admits(b"kx"));
        assert!(!f.admits(b"users"));
        assert!(!f.admits(b""));
        let every = KeyFilter::new(vec![], vec![], HashMap::new());
        assert!(every.admits(b"anything"));
    }

    #[test]
    fn single_key_commands() {
        assert_eq!(decide(&["SET", "user:1", "v"]), Decision::Keep);
        assert_eq!(decide(&["set", "other", "v"]), Decision::Drop);
        // a command the table does not name: its first argument
        assert_eq!(decide(&["frobnicate", "other", "user:1"]), Decision::Drop);
        assert_eq!(decide(&["SELECT", "3"]), Decision::Keep);
        assert_eq!(decide(&["multi"]), Decision::Keep);
        // another database
        let other = filter().command(&DbFilter::Only(0), 1, &args(&["set", "user:1", "v"]));
        assert_eq!(other, Decision::Drop);
        let set = DbFilter::Set(vec![0, 2]);
        let in_set = filter().command(&set, 2, &args(&["set", "user:1", "v"]));
        assert_eq!(in_set, Decision::Keep);
    }

    #[test]
    fn per_key_commands_are_cut_down() {
        assert_eq!(
            decide(&["DEL", "user:1", "x", "k2"]),
            Decision::Only(args(&["DEL", "user:1", "k2"]))
        );
        assert_eq!(decide(&["del", "x", "y"]), Decision::Drop);
        assert_eq!(
            decide(&["mset", "x", "1", "user:2", "2"]),
            Decision::Only(args(&["mset", "user:2", "2"]))
        );
        assert_eq!(
            decide(&["msetex", "3", "a", "1", "k", "2", "b", "3", "PXAT", "99"]),
            Decision::Only(args(&["msetex", "1", "k", "2", "PXAT", "99"]))
        );
    }

    #[test]
    fn straddling_commands_name_their_filtered_keys() {
        assert_eq!(
            decide(&["rename", "x", "user:1"]),
            Decision::Straddles(args(&["x"]))
        );
        assert_eq!(
            decide(&["SUNIONSTORE", "user:1", "a", "k1", "a"]),
            Decision::Straddles(args(&["a"]))
        );
        assert_eq!(
            decide(&["zunionstore", "out", "2", "k1", "k2", "WEIGHTS", "1", "2"]),
            Decision::Straddles(args(&["out"]))
        );
        assert_eq!(
            decide(&["sort", "k1", "ALPHA", "STORE", "dst"]),
            Decision::Straddles(args(&["dst"]))
        );
        assert_eq!(
            decide(&["georadius", "g", "1", "2", "3", "km", "STORE", "k9"]),
            Decision::Straddles(args(&["g"]))
        );
        assert_eq!(
            decide(&["eval", "return 1", "2", "x", "k", "arg"]),
            Decision::Straddles(args(&["x"]))
        );
        assert_eq!(decide(&["eval", "return 1", "0", "k"]), Decision::Keep);
    }

    #[test]
    fn across_databases() {
        let f = filter();
        let zero = DbFilter::Only(0);
        // a kept key moved into the mirrored database, or out of it
        assert_eq!(
            f.command(&zero, 3, &args(&["move", "k1", "0"])),
            Decision::Keep
        );
        assert_eq!(
            f.command(&zero, 0, &args(&["move", "k1", "3"])),
            Decision::Keep
        );
        assert_eq!(
            f.command(&zero, 3, &args(&["move", "k1", "4"])),
            Decision::Drop
        );
        assert_eq!(
            f.command(&zero, 0, &args(&["move", "x", "3"])),
            Decision::Drop
        );
        // COPY ... DB: the destination is in the other database
        assert_eq!(
            f.command(&zero, 3, &args(&["copy", "x", "k1", "DB", "0"])),
            Decision::Straddles(args(&["x"]))
        );
        assert_eq!(
            f.command(&zero, 0, &args(&["copy", "k1", "x", "db", "3"])),
            Decision::Straddles(args(&["x"]))
        );
        assert_eq!(
            f.command(&zero, 3, &args(&["copy", "k1", "k2", "DB", "4"])),
            Decision::Drop
        );
    }

    #[test]
    fn unreadable_keys_are_kept() {
        assert_eq!(decide(&["zunionstore", "out", "x", "k1"]), Decision::Keep);
        assert_eq!(decide(&["eval", "s"]), Decision::Keep);
        assert_eq!(decide(&[]), Decision::Keep);
    }

    #[test]
    fn positions() {
        let rest = args(&["a", "1", "b", "2", "c"]);
        assert_eq!(key_positions(KeySpec::Pairs, &rest), Some(vec![0, 2]));
        assert_eq!(
            key_positions(KeySpec::AllButLast, &rest),
            Some(vec![0, 1, 2, 3])
        );
        assert_eq!(
            key_positions(KeySpec::FromSecond, &rest),
            Some(vec![1, 2, 3, 4])
        );
        let lmpop = args(&["2", "a", "b", "LEFT"]);
        assert_eq!(key_positions(KeySpec::NumKeys(0), &lmpop), Some(vec![1, 2]));
        let blmpop = args(&["0.1", "5", "a", "LEFT"]);
        assert_eq!(
            key_positions(KeySpec::NumKeys(1), &blmpop),
            Some(vec![2, 3])
        );
        assert_eq!(key_positions(KeySpec::First, &[]), Some(vec![]));
        assert_eq!(key_positions(KeySpec::NumKeys(0), &[]), None);
        assert_eq!(
            key_positions(KeySpec::NumKeys(0), &args(&["-1", "a"])),
            None
        );
    }
}

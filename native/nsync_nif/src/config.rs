//! The link's configuration, decoded from the map given to `open/1`, and a
//! session's source (a master, or a file), from the map given to `start/2`.
//! Every field is required: the Erlang side (nsync_opts) validates options
//! and fills in the defaults, the NIF has none of its own.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use nsync_core::repl;
use rustler::types::map::MapIterator;
use rustler::{Atom, Binary, Term};

use crate::atoms;
use crate::conn::Master;
use crate::file::FileSource;
use crate::filter::{DbFilter, KeyFilter, KeySpec, Role, Rule};
use crate::tls::{Tls, TlsOptions, TlsSetupError, Trust};

#[derive(Debug, Clone)]
pub struct LinkConfig {
    /// Credentials and listening port, for the handshake.
    pub replica: repl::Config,
    pub connect_timeout: Duration,
    /// A master silent this long is gone.
    pub master_timeout: Duration,
    pub dbs: DbFilter,
    /// The `keys` option: `None` mirrors every key of `dbs`.
    pub keys: Option<KeyFilter>,
    /// Snapshot collections of more elements come as big values.
    pub big_threshold: Option<usize>,
    /// TLS settings; `None`: plain TCP.
    pub tls: Option<Tls>,
}

impl LinkConfig {
    /// Whether the link mirrors the key `key` of database `db`.
    pub fn keeps(&self, db: u64, key: &[u8]) -> bool {
        self.dbs.admits(db) && self.keys.as_ref().is_none_or(|keys| keys.admits(key))
    }
}

/// Where a session reads from.
#[derive(Debug, Clone)]
pub enum Source {
    Master(Master),
    File(FileSource),
}

/// Why `open/1`'s config is refused.
#[derive(Debug)]
pub enum ConfigError {
    /// This key is bad, unknown or missing (`config`: not a map).
    BadKey(Atom),
    /// The TLS settings cannot be used.
    Tls(TlsSetupError),
}

impl From<Atom> for ConfigError {
    fn from(key: Atom) -> ConfigError {
        ConfigError::BadKey(key)
    }
}

/// Decodes `#{user := binary() | undefined, pass := binary() | undefined,
/// connect_timeout := pos_integer() (ms), master_timeout := pos_integer()
/// (ms), listening_port := 0..65535, db := non_neg_integer() | all |
/// [non_neg_integer()], keys := none | key_filter(), big_threshold :=
/// pos_integer() | off, max_value_bytes := pos_integer() | infinity, tls :=
/// undefined | TlsMap}` (see [`key_filter`], [`decode_tls`]).
pub fn decode(term: Term) -> Result<LinkConfig, ConfigError> {
    let mut user = None;
    let mut pass = None;
    let mut connect_timeout = None;
    let mut master_timeout = None;
    let mut listening_port = None;
    let mut dbs = None;
    let mut keys = None;
    let mut big_threshold = None;
    let mut max_value_bytes = None;
    let mut tls = None;
    for (key, value) in MapIterator::new(term).ok_or_else(atoms::config)? {
        let key: Atom = key.decode().map_err(|_| atoms::config())?;
        if key == atoms::user() {
            user = Some(optional_binary(value).ok_or(key)?);
        } else if key == atoms::pass() {
            pass = Some(optional_binary(value).ok_or(key)?);
        } else if key == atoms::connect_timeout() {
            let ms = value.decode::<u64>().ok().filter(|&ms| ms > 0).ok_or(key)?;
            connect_timeout = Some(Duration::from_millis(ms));
        } else if key == atoms::master_timeout() {
            let ms = value.decode::<u64>().ok().filter(|&ms| ms > 0).ok_or(key)?;
            master_timeout = Some(Duration::from_millis(ms));
        } else if key == atoms::tls() {
            tls = Some(match decode_tls(value)? {
                None => None,
                Some(options) => Some(Tls::new(options).map_err(ConfigError::Tls)?),
            });
        } else if key == atoms::listening_port() {
            listening_port = Some(value.decode::<u16>().map_err(|_| key)?);
        } else if key == atoms::db() {
            dbs = Some(db_filter(value).ok_or(key)?);
        } else if key == atoms::keys() {
            keys = Some(key_filter(value).ok_or(key)?);
        } else if key == atoms::big_threshold() {
            big_threshold = Some(threshold(value).ok_or(key)?);
        } else if key == atoms::max_value_bytes() {
            max_value_bytes = Some(limit(value).ok_or(key)?);
        } else {
            return Err(key.into());
        }
    }
    let user = user.ok_or_else(atoms::user)?;
    let pass = pass.ok_or_else(atoms::pass)?;
    if user.is_some() && pass.is_none() {
        return Err(atoms::pass().into());
    }
    Ok(LinkConfig {
        replica: repl::Config {
            user,
            pass,
            listening_port: listening_port.ok_or_else(atoms::listening_port)?,
            max_value_bytes: max_value_bytes.ok_or_else(atoms::max_value_bytes)?,
        },
        connect_timeout: connect_timeout.ok_or_else(atoms::connect_timeout)?,
        master_timeout: master_timeout.ok_or_else(atoms::master_timeout)?,
        dbs: dbs.ok_or_else(atoms::db)?,
        keys: keys.ok_or_else(atoms::keys)?,
        big_threshold: big_threshold.ok_or_else(atoms::big_threshold)?,
        tls: tls.ok_or_else(atoms::tls)?,
    })
}

/// Decodes `undefined` (plain TCP) or `#{verify := peer | none, cacerts :=
/// system | Pem, cert := Pem | undefined, key := Pem | undefined,
/// server_name := binary() | undefined}` (nsync_tls:loaded()); an error
/// names the offending key (`tls` when it is neither).
fn decode_tls(term: Term) -> Result<Option<TlsOptions>, Atom> {
    if term.decode::<Atom>().ok() == Some(atoms::undefined()) {
        return Ok(None);
    }
    let mut verify = None;
    let mut cacerts = None;
    let mut cert = None;
    let mut key_pem = None;
    let mut server_name = None;
    for (key, value) in MapIterator::new(term).ok_or_else(atoms::tls)? {
        let key: Atom = key.decode().map_err(|_| atoms::tls())?;
        if key == atoms::verify() {
            let v: Atom = value.decode().map_err(|_| key)?;
            verify = Some(match v {
                v if v == atoms::peer() => true,
                v if v == atoms::none() => false,
                _ => return Err(key),
            });
        } else if key == atoms::cacerts() {
            cacerts = Some(match value.decode::<Atom>() {
                Ok(system) if system == atoms::system() => None,
                _ => Some(
                    value
                        .decode::<Binary>()
                        .map_err(|_| key)?
                        .as_slice()
                        .to_vec(),
                ),
            });
        } else if key == atoms::cert() {
            cert = Some(optional_binary(value).ok_or(key)?);
        } else if key == atoms::key() {
            key_pem = Some(optional_binary(value).ok_or(key)?);
        } else if key == atoms::server_name() {
            let name = optional_binary(value).ok_or(key)?;
            server_name = Some(match name {
                None => None,
                Some(bytes) => Some(String::from_utf8(bytes.to_vec()).map_err(|_| key)?),
            });
        } else {
            return Err(key);
        }
    }
    let trust = match (
        verify.ok_or_else(atoms::verify)?,
        cacerts.ok_or_else(atoms::cacerts)?,
    ) {
        (false, _) => Trust::Nothing,
        (true, None) => Trust::WellKnown,
        (true, Some(pem)) => Trust::Pem(pem),
    };
    let client_auth = match (
        cert.ok_or_else(atoms::cert)?,
        key_pem.ok_or_else(atoms::key)?,
    ) {
        (Some(cert), Some(key)) => Some((cert.to_vec(), key.to_vec())),
        (None, None) => None,
        (Some(_), None) => return Err(atoms::key()),
        (None, Some(_)) => return Err(atoms::cert()),
    };
    Ok(Some(TlsOptions {
        trust,
        client_auth,
        server_name: server_name.ok_or_else(atoms::server_name)?,
    }))
}

/// Decodes a session's source: `#{host := binary(), port := 1..65535}` (a
/// master) or `#{file := binary(), key := binary() | undefined}` (a file:
/// an RDB file, or with a key the DUMP payload of that key). The error
/// names the offending or missing key (`master` when the term is not a
/// map).
pub fn decode_source(term: Term) -> Result<Source, Atom> {
    let mut host = None;
    let mut port = None;
    let mut file = None;
    let mut dump_key = None;
    for (key, value) in MapIterator::new(term).ok_or_else(atoms::master)? {
        let key: Atom = key.decode().map_err(|_| atoms::master())?;
        if key == atoms::file() {
            let bytes = value.decode::<Binary>().map_err(|_| key)?;
            file = Some(path(bytes.as_slice()).ok_or(key)?);
        } else if key == atoms::key() {
            dump_key = Some(optional_binary(value).ok_or(key)?);
        } else if key == atoms::host() {
            let bytes = value.decode::<Binary>().map_err(|_| key)?;
            let text = String::from_utf8(bytes.as_slice().to_vec()).map_err(|_| key)?;
            host = Some(text).filter(|h| !h.is_empty());
        } else if key == atoms::port() {
            port = Some(value.decode::<u16>().ok().filter(|&p| p > 0).ok_or(key)?);
        } else {
            return Err(key);
        }
    }
    if let Some(path) = file {
        if host.is_some() || port.is_some() {
            return Err(atoms::file());
        }
        return Ok(Source::File(FileSource {
            path,
            dump_key: dump_key.ok_or_else(atoms::key)?,
        }));
    }
    if dump_key.is_some() {
        return Err(atoms::key());
    }
    Ok(Source::Master(Master {
        host: host.ok_or_else(atoms::host)?,
        port: port.ok_or_else(atoms::port)?,
    }))
}

#[cfg(unix)]
fn path(bytes: &[u8]) -> Option<PathBuf> {
    use std::os::unix::ffi::OsStrExt;
    (!bytes.is_empty()).then(|| PathBuf::from(std::ffi::OsStr::from_bytes(bytes)))
}

#[cfg(not(unix))]
fn path(bytes: &[u8]) -> Option<PathBuf> {
    let text = std::str::from_utf8(bytes).ok()?;
    (!text.is_empty()).then(|| PathBuf::from(text))
}

/// A binary, or `undefined` (`Some(None)`); `None` for anything else.
fn optional_binary(term: Term) -> Option<Option<Bytes>> {
    if term.decode::<Atom>().ok() == Some(atoms::undefined()) {
        return Some(None);
    }
    let bin: Binary = term.decode().ok()?;
    Some(Some(Bytes::copy_from_slice(bin.as_slice())))
}

/// A positive count (`Some(Some(n))`) or `off` (`Some(None)`).
fn threshold(term: Term) -> Option<Option<usize>> {
    if term.decode::<Atom>().ok() == Some(atoms::off()) {
        return Some(None);
    }
    term.decode::<usize>().ok().filter(|&n| n > 0).map(Some)
}

/// A positive size (`Some(Some(n))`) or `infinity` (`Some(None)`).
fn limit(term: Term) -> Option<Option<u64>> {
    if term.decode::<Atom>().ok() == Some(atoms::infinity()) {
        return Some(None);
    }
    term.decode::<u64>().ok().filter(|&n| n > 0).map(Some)
}

fn db_filter(term: Term) -> Option<DbFilter> {
    if let Ok(all) = term.decode::<Atom>() {
        return (all == atoms::all()).then_some(DbFilter::All);
    }
    if let Ok(db) = term.decode::<u64>() {
        return Some(DbFilter::Only(db));
    }
    let mut dbs: Vec<u64> = term.decode().ok()?;
    dbs.sort_unstable();
    dbs.dedup();
    (!dbs.is_empty()).then_some(DbFilter::Set(dbs))
}

/// `none`, or `#{prefixes := [binary()], patterns := [binary()],
/// commands := #{binary() => {keyspec(), plain | per_key | move | copy}}}`:
/// the names kept, and the rule of each command (lowercase) whose keys are
/// not just its first argument (`nsync_cmd:filter_table/0`).
fn key_filter(term: Term) -> Option<Option<KeyFilter>> {
    if term.decode::<Atom>().ok() == Some(atoms::none()) {
        return Some(None);
    }
    let binaries = |list: Term| -> Option<Vec<Vec<u8>>> {
        let items: Vec<Binary> = list.decode().ok()?;
        Some(items.iter().map(|b| b.as_slice().to_vec()).collect())
    };
    let prefixes = binaries(term.map_get(atoms::prefixes()).ok()?)?;
    let patterns = binaries(term.map_get(atoms::patterns()).ok()?)?;
    let mut commands = HashMap::new();
    for (name, rule) in MapIterator::new(term.map_get(atoms::commands()).ok()?)? {
        let name: Binary = name.decode().ok()?;
        let (keys, role): (Term, Atom) = rule.decode().ok()?;
        let rule = Rule {
            keys: key_spec(keys)?,
            role: role_of(role)?,
        };
        commands.insert(name.as_slice().to_ascii_lowercase(), rule);
    }
    Some(Some(KeyFilter::new(prefixes, patterns, commands)))
}

fn key_spec(term: Term) -> Option<KeySpec> {
    if let Ok((tag, skip)) = term.decode::<(Atom, usize)>() {
        return if tag == atoms::numkeys() {
            Some(KeySpec::NumKeys(skip))
        } else if tag == atoms::numkeys_pairs() {
            Some(KeySpec::NumKeysPairs(skip))
        } else {
            None
        };
    }
    let name = term.atom_to_string().ok()?;
    Some(match name.as_str() {
        "none" => KeySpec::None,
        "first" => KeySpec::First,
        "two" => KeySpec::Two,
        "all" => KeySpec::All,
        "pairs" => KeySpec::Pairs,
        "all_but_last" => KeySpec::AllButLast,
        "second" => KeySpec::Second,
        "from_second" => KeySpec::FromSecond,
        "dest_numkeys" => KeySpec::DestNumKeys,
        "sort" => KeySpec::Sort,
        "eval" => KeySpec::Eval,
        "xgroup" => KeySpec::Xgroup,
        "georadius" => KeySpec::Georadius,
        _ => return None,
    })
}

fn role_of(role: Atom) -> Option<Role> {
    if role == atoms::plain() {
        Some(Role::Plain)
    } else if role == atoms::per_key() {
        Some(Role::PerKey)
    } else if role == atoms::move_() {
        Some(Role::Move)
    } else if role == atoms::copy() {
        Some(Role::Copy)
    } else {
        None
    }
}

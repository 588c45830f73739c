//! The link's configuration, decoded and checked from the map given to `open/1`.

use std::time::Duration;

use bytes::Bytes;
use nsync_core::repl;
use rustler::types::map::MapIterator;
use rustler::{Atom, Binary, Term};

use crate::atoms;

const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_millis(1000);

#[derive(Debug, Clone)]
pub struct LinkConfig {
    pub host: String,
    pub port: u16,
    pub connect_timeout: Duration,
    pub replica: repl::Config,
}

/// Decodes `#{host := binary(), port := 1..65535, user => binary(),
/// pass => binary(), connect_timeout => pos_integer() (ms),
/// listening_port => 0..65535}`. The error names the offending key
/// (`config` when the term is not a map).
pub fn decode(term: Term) -> Result<LinkConfig, Atom> {
    let entries = MapIterator::new(term).ok_or_else(atoms::config)?;
    let mut host = None;
    let mut port = None;
    let mut connect_timeout = DEFAULT_CONNECT_TIMEOUT;
    let mut replica = repl::Config::default();
    for (key, value) in entries {
        let key: Atom = key.decode().map_err(|_| atoms::config())?;
        if key == atoms::host() {
            let text = binary(value).ok_or(key)?;
            let text = String::from_utf8(text.to_vec()).map_err(|_| key)?;
            host = Some(text).filter(|h| !h.is_empty());
        } else if key == atoms::port() {
            port = Some(value.decode::<u16>().ok().filter(|&p| p > 0).ok_or(key)?);
        } else if key == atoms::user() {
            replica.user = Some(binary(value).ok_or(key)?);
        } else if key == atoms::pass() {
            replica.pass = Some(binary(value).ok_or(key)?);
        } else if key == atoms::connect_timeout() {
            let ms = value.decode::<u64>().ok().filter(|&ms| ms > 0).ok_or(key)?;
            connect_timeout = Duration::from_millis(ms);
        } else if key == atoms::listening_port() {
            replica.listening_port = value.decode::<u16>().map_err(|_| key)?;
        } else {
            return Err(key);
        }
    }
    if replica.user.is_some() && replica.pass.is_none() {
        return Err(atoms::pass());
    }
    Ok(LinkConfig {
        host: host.ok_or_else(atoms::host)?,
        port: port.ok_or_else(atoms::port)?,
        connect_timeout,
        replica,
    })
}

fn binary(term: Term) -> Option<Bytes> {
    let bin: Binary = term.decode().ok()?;
    Some(Bytes::copy_from_slice(bin.as_slice()))
}

//! Why a link failed, and the readable Erlang term for it.

use std::io;

use nsync_core::rdb::RdbError;
use nsync_core::repl::ReplError;
use rustler::{Encoder, Env, Term};
use thiserror::Error;

use crate::atoms;
use crate::encode::binary;

/// An I/O error as Erlang names it: a POSIX atom, or the OS's message.
#[derive(Debug, Clone, PartialEq)]
pub enum Posix {
    Atom(&'static str),
    Message(String),
}

impl From<&io::Error> for Posix {
    fn from(err: &io::Error) -> Posix {
        use io::ErrorKind::*;
        let name = match err.kind() {
            ConnectionRefused => "econnrefused",
            ConnectionReset => "econnreset",
            ConnectionAborted => "econnaborted",
            NotConnected => "enotconn",
            AddrInUse => "eaddrinuse",
            AddrNotAvailable => "eaddrnotavail",
            BrokenPipe => "epipe",
            TimedOut | WouldBlock => "timeout",
            PermissionDenied => "eacces",
            HostUnreachable => "ehostunreach",
            NetworkUnreachable => "enetunreach",
            NetworkDown => "enetdown",
            _ => return Posix::Message(err.to_string()),
        };
        Posix::Atom(name)
    }
}

impl std::fmt::Display for Posix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Posix::Atom(name) => f.write_str(name),
            Posix::Message(msg) => f.write_str(msg),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Error)]
pub enum LinkError {
    #[error("cannot resolve the master's host name")]
    Nxdomain,
    #[error("cannot connect: {0}")]
    Connect(Posix),
    #[error("send failed: {0}")]
    Send(Posix),
    #[error("receive failed: {0}")]
    Recv(Posix),
    #[error("the master closed the connection")]
    Eof,
    #[error(transparent)]
    Repl(#[from] ReplError),
    #[error("the link was closed")]
    Closed,
    #[error("the link process is gone")]
    OwnerGone,
    #[error("internal error: {0}")]
    Internal(String),
}

impl LinkError {
    pub fn encode<'a>(&self, env: Env<'a>) -> Term<'a> {
        match self {
            LinkError::Nxdomain => (atoms::connect(), atoms::nxdomain()).encode(env),
            LinkError::Connect(p) => (atoms::connect(), posix(env, p)).encode(env),
            LinkError::Send(p) => (atoms::send(), posix(env, p)).encode(env),
            LinkError::Recv(p) => (atoms::recv(), posix(env, p)).encode(env),
            LinkError::Eof => atoms::eof().encode(env),
            LinkError::Repl(ReplError::Auth(msg)) => {
                (atoms::auth(), binary(env, msg.as_bytes())).encode(env)
            }
            LinkError::Repl(ReplError::Master(msg)) => {
                (atoms::master(), binary(env, msg.as_bytes())).encode(env)
            }
            LinkError::Repl(ReplError::Rdb(err)) => rdb_error(env, err),
            LinkError::Repl(err @ (ReplError::Resp(_) | ReplError::Protocol(_))) => {
                let detail = match err {
                    ReplError::Protocol(detail) => detail.clone(),
                    other => other.to_string(),
                };
                (atoms::protocol(), binary(env, detail.as_bytes())).encode(env)
            }
            LinkError::Closed => atoms::closed().encode(env),
            LinkError::OwnerGone => atoms::owner_gone().encode(env),
            LinkError::Internal(msg) => {
                (atoms::internal(), binary(env, msg.as_bytes())).encode(env)
            }
        }
    }
}

fn posix<'a>(env: Env<'a>, p: &Posix) -> Term<'a> {
    match p {
        Posix::Atom(name) => rustler::Atom::from_str(env, name)
            .map_or_else(|_| binary(env, name.as_bytes()), |a| a.encode(env)),
        Posix::Message(msg) => binary(env, msg.as_bytes()),
    }
}

/// `{rdb, Kind, Offset}`.
pub fn rdb_error<'a>(env: Env<'a>, err: &RdbError) -> Term<'a> {
    let kind = rustler::Atom::from_str(env, err.kind())
        .map_or_else(|_| atoms::rdb().encode(env), |a| a.encode(env));
    (atoms::rdb(), kind, err.offset()).encode(env)
}

//! Why a session ended (pure; `reason.rs` makes the Erlang term of it).

use std::io;

use nsync_core::repl::ReplError;
use thiserror::Error;

use crate::tls::TlsError;

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
            NotFound => "enoent",
            IsADirectory => "eisdir",
            InvalidInput => "einval",
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
    /// The master closed the connection, or a file session read its file
    /// to the end.
    #[error("end of input")]
    Eof,
    /// A file session could not open or read its file.
    #[error("cannot read the file: {0}")]
    File(Posix),
    #[error("TLS: {0}")]
    Tls(TlsError),
    /// The master ended the connection before sending a byte: not a Redis
    /// server, or a TLS port reached without TLS (Redis resets those).
    #[error("the master closed the connection before answering: {0}")]
    NoAnswer(Box<LinkError>),
    #[error(transparent)]
    Repl(#[from] ReplError),
    /// `disconnect/1` ended the session (the link reconnects at once).
    #[error("the session was ended to reconnect")]
    Disconnected,
    #[error("the link was closed")]
    Closed,
    #[error("the link process is gone")]
    OwnerGone,
    #[error("internal error: {0}")]
    Internal(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_get_posix_names() {
        let refused = io::Error::from(io::ErrorKind::ConnectionRefused);
        assert_eq!(Posix::from(&refused), Posix::Atom("econnrefused"));
        let timeout = io::Error::from(io::ErrorKind::WouldBlock);
        assert_eq!(Posix::from(&timeout), Posix::Atom("timeout"));
        let other = io::Error::other("odd");
        assert_eq!(Posix::from(&other), Posix::Message("odd".into()));
        assert_eq!(Posix::Atom("epipe").to_string(), "epipe");
    }
}

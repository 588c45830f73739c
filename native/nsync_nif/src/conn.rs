//! A session's connection to the master, and nothing else: connect with a
//! timeout, read into a buffer, write, and a second handle that shuts the
//! socket down from another thread (waking a blocked read). No parsing,
//! batching or status. The transport is plain TCP or a TLS session
//! (rustls) over the TCP socket: the pump sees the same bytes either way,
//! and reads nothing while it has no credit, so back-pressure is the same.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::ClientConnection;

use crate::error::{LinkError, Posix};
use crate::tls::{Tls, TlsError};

/// Bytes read at most by one [`Conn::receive`].
pub const READ_CHUNK: usize = 128 * 1024;
/// A blocked send gives up after this long (the master is not reading).
const WRITE_TIMEOUT: Duration = Duration::from_secs(1);

/// Where a session connects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Master {
    pub host: String,
    pub port: u16,
}

/// The byte stream to the master.
enum Transport {
    Tcp(TcpStream),
    Tls(Box<TlsStream>),
}

impl Transport {
    fn tcp(&self) -> &TcpStream {
        match self {
            Transport::Tcp(socket) => socket,
            Transport::Tls(tls) => &tls.socket,
        }
    }
}

/// A TLS session over the TCP socket. Ciphertext is read from the socket
/// in big chunks into `staged`, then handed to rustls as it can take it;
/// the plaintext is read out before any more is handed over (rustls
/// bounds what it holds decrypted).
struct TlsStream {
    socket: TcpStream,
    session: ClientConnection,
    staged: Box<[u8]>,
    /// `staged[start..end]` is still to be handed to rustls.
    start: usize,
    end: usize,
    /// The last socket read filled `staged`: the socket may hold more.
    socket_full: bool,
}

/// What one read of a TLS stream got: plaintext bytes (and whether that
/// is all there is for now), or nothing within the wait.
enum TlsRead {
    Data { len: usize, drained: bool },
    Nothing,
}

impl TlsStream {
    /// The handshake, within `deadline`.
    fn handshake(&mut self, deadline: Instant) -> Result<(), LinkError> {
        while self.session.is_handshaking() {
            self.flush()?;
            if !self.session.is_handshaking() {
                break;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(LinkError::Tls(TlsError::Timeout));
            }
            self.socket
                .set_read_timeout(Some(left))
                .map_err(|err| LinkError::Connect(Posix::from(&err)))?;
            match self.socket.read(&mut self.staged) {
                Ok(0) => return Err(LinkError::Tls(TlsError::Eof)),
                Ok(n) => {
                    self.start = 0;
                    self.end = n;
                    while self.start < self.end && self.session.is_handshaking() {
                        self.hand_over()?;
                    }
                }
                Err(err) if is_no_data(&err) => return Err(LinkError::Tls(TlsError::Timeout)),
                Err(err) => return Err(LinkError::Recv(Posix::from(&err))),
            }
        }
        self.flush()
    }

    /// Plaintext into `out`: what rustls has decrypted, then what the staged
    /// ciphertext gives, then (only if still nothing) one socket read.
    fn read(&mut self, out: &mut [u8]) -> Result<TlsRead, LinkError> {
        let mut filled = 0;
        loop {
            if let Some(rest) = out.get_mut(filled..).filter(|rest| !rest.is_empty()) {
                match self.session.reader().read(rest) {
                    Ok(0) => return end_of_stream(filled),
                    Ok(n) => {
                        filled += n;
                        continue;
                    }
                    Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
                    Err(err) if err.kind() == io::ErrorKind::UnexpectedEof => {
                        return end_of_stream(filled)
                    }
                    Err(err) => return Err(LinkError::Recv(Posix::from(&err))),
                }
            } else {
                return Ok(TlsRead::Data {
                    len: filled,
                    drained: false,
                });
            }
            if self.start < self.end {
                self.hand_over()?;
                continue;
            }
            if filled > 0 {
                return Ok(TlsRead::Data {
                    len: filled,
                    drained: !self.socket_full,
                });
            }
            match self.socket.read(&mut self.staged) {
                Ok(n) => {
                    self.start = 0;
                    self.end = n;
                    self.socket_full = n == self.staged.len();
                    if n == 0 {
                        // rustls learns of the end; its reader then says
                        // whether the master closed cleanly.
                        self.session
                            .read_tls(&mut io::empty())
                            .map_err(|err| LinkError::Recv(Posix::from(&err)))?;
                    }
                }
                Err(err) if is_no_data(&err) => return Ok(TlsRead::Nothing),
                Err(err) => return Err(LinkError::Recv(Posix::from(&err))),
            }
        }
    }

    /// Hands rustls what of the staged ciphertext it takes, and lets it
    /// decrypt; its answers (alerts, key updates) go out at once.
    fn hand_over(&mut self) -> Result<(), LinkError> {
        let mut ciphertext = self.staged.get(self.start..self.end).unwrap_or_default();
        let taken = self
            .session
            .read_tls(&mut ciphertext)
            .map_err(|err| LinkError::Recv(Posix::from(&err)))?;
        self.start += taken;
        if let Err(err) = self.session.process_new_packets() {
            // Tell the master why (an alert), if it still listens.
            let _ = self.session.write_tls(&mut self.socket);
            return Err(LinkError::Tls(TlsError::from(err)));
        }
        self.flush()
    }

    fn write_all(&mut self, bytes: &[u8]) -> Result<(), LinkError> {
        self.session
            .writer()
            .write_all(bytes)
            .map_err(|err| LinkError::Send(Posix::from(&err)))?;
        self.flush()
    }

    /// Writes what rustls has to send.
    fn flush(&mut self) -> Result<(), LinkError> {
        while self.session.wants_write() {
            self.session
                .write_tls(&mut self.socket)
                .map_err(|err| LinkError::Send(Posix::from(&err)))?;
        }
        Ok(())
    }
}

/// The master closed: what was read before still counts.
fn end_of_stream(filled: usize) -> Result<TlsRead, LinkError> {
    if filled > 0 {
        Ok(TlsRead::Data {
            len: filled,
            drained: true,
        })
    } else {
        Err(LinkError::Eof)
    }
}

/// Shuts the connection down from any thread: a read or write blocked on
/// it returns at once, and the master sees the replica go.
pub struct ShutdownHandle(TcpStream);

impl ShutdownHandle {
    pub fn shutdown(&self) {
        let _ = self.0.shutdown(Shutdown::Both);
    }
}

/// What one [`Conn::receive`] got.
#[derive(Debug, PartialEq, Eq)]
pub enum Received<'b> {
    /// Bytes; `drained` when they did not fill the buffer, i.e. the socket
    /// had nothing more right now.
    Data { bytes: &'b [u8], drained: bool },
    /// Nothing within the wait.
    Nothing,
}

pub struct Conn {
    transport: Transport,
    buf: Box<[u8]>,
    /// The read timeout now set on the socket.
    read_timeout: Option<Duration>,
}

impl Conn {
    /// Resolves the master's host and tries each address in turn, each for
    /// at most `timeout`; with `tls`, then makes the TLS handshake, within
    /// the same `timeout`.
    pub fn connect(
        master: &Master,
        timeout: Duration,
        tls: Option<&Tls>,
    ) -> Result<(Conn, ShutdownHandle), LinkError> {
        let started = Instant::now();
        let addrs = (master.host.as_str(), master.port)
            .to_socket_addrs()
            .map_err(|_| LinkError::Nxdomain)?;
        let mut failure = LinkError::Nxdomain;
        for addr in addrs {
            match TcpStream::connect_timeout(&addr, timeout) {
                Ok(socket) => {
                    let (conn, handle) = Conn::over_tcp(socket)?;
                    let conn = match tls {
                        None => conn,
                        Some(tls) => conn.into_tls(tls, &master.host, started + timeout)?,
                    };
                    return Ok((conn, handle));
                }
                Err(err) => failure = LinkError::Connect(Posix::from(&err)),
            }
        }
        Err(failure)
    }

    fn over_tcp(socket: TcpStream) -> Result<(Conn, ShutdownHandle), LinkError> {
        let setup = || -> io::Result<ShutdownHandle> {
            socket.set_nodelay(true)?;
            socket.set_write_timeout(Some(WRITE_TIMEOUT))?;
            socket.try_clone().map(ShutdownHandle)
        };
        let handle = setup().map_err(|err| LinkError::Connect(Posix::from(&err)))?;
        let conn = Conn {
            transport: Transport::Tcp(socket),
            buf: vec![0; READ_CHUNK].into_boxed_slice(),
            read_timeout: None,
        };
        Ok((conn, handle))
    }

    /// The same connection as a TLS session to `host`, once the handshake
    /// is done (by `deadline`).
    fn into_tls(self, tls: &Tls, host: &str, deadline: Instant) -> Result<Conn, LinkError> {
        let Transport::Tcp(socket) = self.transport else {
            return Ok(self);
        };
        let name = tls.server_name(host).map_err(LinkError::Tls)?;
        let session = ClientConnection::new(Arc::clone(&tls.config), name)
            .map_err(|err| LinkError::Tls(TlsError::from(err)))?;
        let mut stream = Box::new(TlsStream {
            socket,
            session,
            staged: vec![0; READ_CHUNK].into_boxed_slice(),
            start: 0,
            end: 0,
            socket_full: false,
        });
        stream.handshake(deadline)?;
        Ok(Conn {
            transport: Transport::Tls(stream),
            read_timeout: None,
            ..self
        })
    }

    /// The same connection reading at most `chunk` bytes at a time.
    #[cfg(test)]
    fn with_read_chunk(self, chunk: usize) -> Conn {
        Conn {
            buf: vec![0; chunk].into_boxed_slice(),
            ..self
        }
    }

    /// Reads once, waiting at most `wait`. The end of the stream is
    /// [`LinkError::Eof`].
    pub fn receive(&mut self, wait: Duration) -> Result<Received<'_>, LinkError> {
        if self.read_timeout != Some(wait) {
            self.transport
                .tcp()
                .set_read_timeout(Some(wait))
                .map_err(|err| LinkError::Recv(Posix::from(&err)))?;
            self.read_timeout = Some(wait);
        }
        let (len, drained) = match &mut self.transport {
            Transport::Tcp(socket) => match socket.read(&mut self.buf) {
                Ok(0) => return Err(LinkError::Eof),
                Ok(n) => (n, n < self.buf.len()),
                Err(err) if is_no_data(&err) => return Ok(Received::Nothing),
                Err(err) => return Err(LinkError::Recv(Posix::from(&err))),
            },
            Transport::Tls(tls) => match tls.read(&mut self.buf)? {
                TlsRead::Data { len, drained } => (len, drained),
                TlsRead::Nothing => return Ok(Received::Nothing),
            },
        };
        Ok(Received::Data {
            bytes: self.buf.get(..len).unwrap_or_default(),
            drained,
        })
    }

    pub fn send(&mut self, bytes: &[u8]) -> Result<(), LinkError> {
        match &mut self.transport {
            Transport::Tcp(socket) => socket
                .write_all(bytes)
                .map_err(|err| LinkError::Send(Posix::from(&err))),
            Transport::Tls(tls) => tls.write_all(bytes),
        }
    }
}

fn is_no_data(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;
    use std::thread;
    use std::time::Instant;

    const WAIT: Duration = Duration::from_secs(5);

    /// A connection to a listener on a free loopback port, and the
    /// listener's side of it.
    fn pair() -> (Conn, ShutdownHandle, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let master = Master {
            host: "127.0.0.1".into(),
            port: listener.local_addr().unwrap().port(),
        };
        let (conn, handle) = Conn::connect(&master, WAIT, None).unwrap();
        let (peer, _) = listener.accept().unwrap();
        (conn, handle, peer)
    }

    #[test]
    fn receives_and_sends() {
        let (mut conn, _handle, mut peer) = pair();
        peer.write_all(b"+PONG\r\n").unwrap();
        let got = conn.receive(WAIT).unwrap();
        assert_eq!(
            got,
            Received::Data {
                bytes: b"+PONG\r\n",
                drained: true
            }
        );
        conn.send(b"PING\r\n").unwrap();
        let mut buf = [0; 6];
        peer.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"PING\r\n");
    }

    #[test]
    fn a_full_buffer_is_not_drained() {
        let (conn, _handle, mut peer) = pair();
        let mut conn = conn.with_read_chunk(4);
        peer.write_all(b"0123456").unwrap();
        let mut got = Vec::new();
        let mut drained = Vec::new();
        while got.len() < 7 {
            if let Received::Data { bytes, drained: d } = conn.receive(WAIT).unwrap() {
                got.extend_from_slice(bytes);
                drained.push(d);
            }
        }
        assert_eq!(got, b"0123456");
        // The first read fills the buffer: maybe more to come.
        assert_eq!(drained.first(), Some(&false));
        assert_eq!(drained.last(), Some(&true));
    }

    #[test]
    fn nothing_within_the_wait() {
        let (mut conn, _handle, _peer) = pair();
        let started = Instant::now();
        assert_eq!(
            conn.receive(Duration::from_millis(50)).unwrap(),
            Received::Nothing
        );
        assert!(started.elapsed() >= Duration::from_millis(40));
    }

    #[test]
    fn peer_closing_is_eof() {
        let (mut conn, _handle, peer) = pair();
        drop(peer);
        assert_eq!(conn.receive(WAIT).unwrap_err(), LinkError::Eof);
    }

    #[test]
    fn shutdown_wakes_a_blocked_read_and_the_peer_sees_it() {
        let (mut conn, handle, mut peer) = pair();
        let reader = thread::spawn(move || {
            let started = Instant::now();
            let got = conn.receive(Duration::from_secs(30)).map(|_| ());
            (got, started.elapsed())
        });
        thread::sleep(Duration::from_millis(50));
        handle.shutdown();
        let (got, waited) = reader.join().unwrap();
        assert_eq!(got, Err(LinkError::Eof));
        assert!(waited < Duration::from_secs(5));
        let mut buf = [0; 1];
        assert_eq!(peer.read(&mut buf).unwrap(), 0);
    }

    #[test]
    fn refused_and_unknown_hosts() {
        let port = {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let refused = Master {
            host: "127.0.0.1".into(),
            port,
        };
        assert_eq!(
            Conn::connect(&refused, WAIT, None).err(),
            Some(LinkError::Connect(Posix::Atom("econnrefused")))
        );
        let unknown = Master {
            host: "no-such-host.invalid".into(),
            port: 6379,
        };
        assert_eq!(
            Conn::connect(&unknown, WAIT, None).err(),
            Some(LinkError::Nxdomain)
        );
    }
}

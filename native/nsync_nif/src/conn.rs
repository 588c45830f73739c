//! A session's connection to the master, and nothing else: connect with a
//! timeout, read into a buffer, write, and a second handle that shuts the
//! socket down from another thread (waking a blocked read). No parsing,
//! batching or status. The transport is an enum so that another stream
//! (TLS over the same TCP socket) slots in here without touching the pump.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::time::Duration;

use crate::error::{LinkError, Posix};

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
}

impl Transport {
    fn tcp(&self) -> &TcpStream {
        match self {
            Transport::Tcp(socket) => socket,
        }
    }

    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Transport::Tcp(socket) => socket.read(buf),
        }
    }

    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self {
            Transport::Tcp(socket) => socket.write_all(bytes),
        }
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
    /// at most `timeout`.
    pub fn connect(
        master: &Master,
        timeout: Duration,
    ) -> Result<(Conn, ShutdownHandle), LinkError> {
        let addrs = (master.host.as_str(), master.port)
            .to_socket_addrs()
            .map_err(|_| LinkError::Nxdomain)?;
        let mut failure = LinkError::Nxdomain;
        for addr in addrs {
            match TcpStream::connect_timeout(&addr, timeout) {
                Ok(socket) => return Conn::over_tcp(socket),
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
        match self.transport.read(&mut self.buf) {
            Ok(0) => Err(LinkError::Eof),
            Ok(n) => Ok(Received::Data {
                bytes: self.buf.get(..n).unwrap_or_default(),
                drained: n < self.buf.len(),
            }),
            Err(err) if is_no_data(&err) => Ok(Received::Nothing),
            Err(err) => Err(LinkError::Recv(Posix::from(&err))),
        }
    }

    pub fn send(&mut self, bytes: &[u8]) -> Result<(), LinkError> {
        self.transport
            .write_all(bytes)
            .map_err(|err| LinkError::Send(Posix::from(&err)))
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
        let (conn, handle) = Conn::connect(&master, WAIT).unwrap();
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
            Conn::connect(&refused, WAIT).err(),
            Some(LinkError::Connect(Posix::Atom("econnrefused")))
        );
        let unknown = Master {
            host: "no-such-host.invalid".into(),
            port: 6379,
        };
        assert_eq!(
            Conn::connect(&unknown, WAIT).err(),
            Some(LinkError::Nxdomain)
        );
    }
}

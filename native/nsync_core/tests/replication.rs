//! The replica state machine over real sockets against a real redis-server
//! (`/usr/bin/redis-server`), started per test on a free loopback port.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use nsync_core::rdb::{Raw, Str, Value};
use nsync_core::repl::{Config, Event, Position, ReplError, Replica};
use nsync_core::resp::{self, Reply};

mod common;
use common::server::{Client, Redis, WAIT};

/// Runs a replica over a socket in a thread; events come through a channel.
struct Follower {
    events: Receiver<Result<Event<'static>, ReplError>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Replica>>,
}

impl Follower {
    fn start(mut socket: TcpStream, mut replica: Replica) -> Follower {
        let (tx, events) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        replica.connected();
        let thread = thread::spawn(move || {
            let mut chunk = vec![0u8; 64 * 1024];
            while !stopping.load(Ordering::Relaxed) {
                replica.tick(Instant::now());
                let output = replica.take_output();
                if socket.write_all(&output).is_err() {
                    break;
                }
                loop {
                    match replica.next_event() {
                        Ok(Some(event)) => {
                            if tx.send(Ok(event)).is_err() {
                                return replica;
                            }
                        }
                        Ok(None) => break,
                        Err(err) => {
                            let _ = tx.send(Err(err));
                            return replica;
                        }
                    }
                }
                let output = replica.take_output();
                if socket.write_all(&output).is_err() {
                    break;
                }
                match socket.read(&mut chunk) {
                    Ok(0) => break,
                    Ok(n) => replica.feed(&chunk[..n]),
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        ) => {}
                    Err(_) => break,
                }
            }
            replica.disconnected();
            replica
        });
        Follower {
            events,
            stop,
            thread: Some(thread),
        }
    }

    fn next(&self) -> Result<Event<'static>, ReplError> {
        self.events.recv_timeout(WAIT).expect("no event in time")
    }

    /// Events until (and including) the first that `done` accepts.
    fn until(&self, done: impl Fn(&Event) -> bool) -> Vec<Event<'static>> {
        let mut events = Vec::new();
        loop {
            let event = match self.events.recv_timeout(WAIT) {
                Ok(event) => event.expect("replication error"),
                Err(_) => panic!("no event in time; got so far: {events:?}"),
            };
            let finished = done(&event);
            events.push(event);
            if finished {
                return events;
            }
        }
    }

    fn stop(mut self) -> Replica {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().unwrap().join().unwrap()
    }
}

/// A command's db and arguments, its name uppercased.
fn command_args(event: &Event) -> Option<(u64, Vec<String>)> {
    let Event::Command { db, args } = event else {
        return None;
    };
    let mut args: Vec<String> = args
        .iter()
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    args[0].make_ascii_uppercase();
    Some((*db, args))
}

fn is_command(event: &Event, name: &str) -> bool {
    command_args(event).is_some_and(|(_, args)| args[0].eq_ignore_ascii_case(name))
}

/// A position the master will continue from: a first connection's
/// FULLRESYNC reply (which also makes the master create its backlog),
/// without loading the snapshot.
fn continuable_position(redis: &Redis) -> Position {
    let follower = Follower::start(redis.socket(), Replica::new(Config::default()));
    let Ok(Event::FullResync { replid, offset }) = follower.next() else {
        panic!("expected FULLRESYNC");
    };
    follower.stop();
    Position {
        replid,
        offset,
        db: 0,
    }
}

fn wait_for_ack(client: &mut Client) {
    let deadline = Instant::now() + WAIT;
    loop {
        let master: i64 = client
            .info_field("replication", "master_repl_offset")
            .unwrap()
            .parse()
            .unwrap();
        if client.replica_ack_offset() == Some(master) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "ack offset never reached {master}"
        );
        thread::sleep(Duration::from_millis(100));
    }
}

fn partial_resync_streams_commands(diskless: bool) {
    let redis = Redis::start(diskless, &[]);
    let position = continuable_position(&redis);
    let follower = Follower::start(
        redis.socket(),
        Replica::resuming(Config::default(), position.clone()),
    );
    let Ok(Event::Continue { replid, offset }) = follower.next() else {
        panic!("expected CONTINUE");
    };
    assert_eq!((Some(replid), offset), (position.replid, position.offset));

    let mut client = redis.client();
    client.ok(&["SET", "k", "v"]);
    client.ok(&["SELECT", "3"]);
    client.ok(&["RPUSH", "list", "a", "b"]);
    client.ok(&["MULTI"]);
    client.ok(&["INCR", "n"]);
    client.ok(&["HSET", "h", "f", "v"]);
    client.ok(&["EXEC"]);
    let events = follower.until(|e| is_command(e, "exec"));
    let commands: Vec<_> = events.iter().filter_map(command_args).collect();
    let expected: Vec<(u64, Vec<String>)> = [
        (0, "SELECT 0"),
        (0, "SET k v"),
        (3, "SELECT 3"),
        (3, "RPUSH list a b"),
        (3, "MULTI"),
        (3, "INCR n"),
        (3, "HSET h f v"),
        (3, "EXEC"),
    ]
    .iter()
    .map(|(db, line)| (*db, line.split(' ').map(str::to_owned).collect()))
    .collect();
    assert_eq!(commands, expected);

    // WAIT makes the master send GETACK; our ACK must carry its offset.
    assert_eq!(client.call(&["WAIT", "1", "2000"]), Reply::Integer(1));
    client.ok(&["DEL", "list"]);
    follower.until(|e| is_command(e, "del"));
    wait_for_ack(&mut client);
    follower.stop();
}

#[test]
fn partial_resync_streams_commands_disk() {
    partial_resync_streams_commands(false);
}

#[test]
fn partial_resync_streams_commands_diskless() {
    partial_resync_streams_commands(true);
}

fn full_sync_then_stream_then_resume(diskless: bool) {
    let redis = Redis::start(diskless, &[]);
    let mut client = redis.client();
    client.ok(&["SET", "str", "hello"]);
    client.ok(&["SET", "num", "-42"]);
    client.ok(&["RPUSH", "list", "a", "b", "c"]);
    client.ok(&["SADD", "set", "y", "x"]);
    client.ok(&["ZADD", "zset", "1.5", "m", "-inf", "low"]);
    client.ok(&["HSET", "hash", "f1", "v1", "f2", "v2"]);
    client.ok(&["SELECT", "5"]);
    client.ok(&["SET", "in5", "x", "PX", "100000"]);
    client.ok(&["SELECT", "0"]);

    let follower = Follower::start(redis.socket(), Replica::new(Config::default()));
    let events = follower.until(|e| matches!(e, Event::LoadEof { .. }));
    let Event::FullResync { replid, offset } = &events[0] else {
        panic!("expected FULLRESYNC, got {:?}", events[0]);
    };
    assert_eq!(
        events.last(),
        Some(&Event::LoadEof {
            replid: replid.clone(),
            offset: *offset
        })
    );
    let keys: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Event::Key(entry) => Some(entry),
            _ => None,
        })
        .collect();
    assert_eq!(keys.len(), 7);
    let key = |name: &str| {
        keys.iter()
            .find(|e| e.key == name)
            .unwrap_or_else(|| panic!("no key {name}"))
    };
    assert_eq!(
        key("str").value,
        Value::String(Str::Raw(Raw::Borrowed(b"hello")))
    );
    assert_eq!(key("num").value.clone(), Value::String(Str::Int(-42)));
    assert_eq!(key("in5").db, 5);
    assert!(key("in5").expire_at_ms.is_some());
    assert!(
        matches!(&key("zset").value, Value::ZSet(m) if m.len() == 2 && m[0].0 == f64::NEG_INFINITY)
    );

    client.ok(&["SET", "after", "1"]);
    let events = follower.until(|e| is_command(e, "set"));
    assert_eq!(
        command_args(events.last().unwrap()).unwrap().1,
        vec!["SET", "after", "1"]
    );
    assert_eq!(client.call(&["WAIT", "1", "2000"]), Reply::Integer(1));
    wait_for_ack(&mut client);

    // Drop the link, write meanwhile, resume: the master continues.
    let partial_before: i64 = client
        .info_field("stats", "sync_partial_ok")
        .unwrap()
        .parse()
        .unwrap();
    let replica = follower.stop();
    client.ok(&["CLIENT", "KILL", "TYPE", "replica"]);
    client.ok(&["SET", "while-down", "1"]);
    let follower = Follower::start(redis.socket(), replica);
    assert!(matches!(follower.next(), Ok(Event::Continue { .. })));
    let events = follower.until(|e| is_command(e, "set"));
    assert_eq!(
        command_args(events.last().unwrap()).unwrap().1,
        vec!["SET", "while-down", "1"]
    );
    let partial_after: i64 = client
        .info_field("stats", "sync_partial_ok")
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(partial_after, partial_before + 1);
    wait_for_ack(&mut client);
    follower.stop();
}

#[test]
fn full_sync_then_stream_then_resume_disk() {
    full_sync_then_stream_then_resume(false);
}

#[test]
fn full_sync_then_stream_then_resume_diskless() {
    full_sync_then_stream_then_resume(true);
}

#[test]
fn a_big_snapshot_streams_through() {
    let redis = Redis::start(true, &["--enable-debug-command", "yes"]);
    let mut client = redis.client();
    client.ok(&["DEBUG", "POPULATE", "20000", "key", "100"]);
    let follower = Follower::start(redis.socket(), Replica::new(Config::default()));
    let events = follower.until(|e| matches!(e, Event::LoadEof { .. }));
    assert_eq!(
        events.iter().filter(|e| matches!(e, Event::Key(_))).count(),
        20000
    );
    follower.stop();
}

#[test]
fn wrong_or_missing_password_is_an_auth_error() {
    let redis = Redis::start(false, &["--requirepass", "secret"]);
    let config = Config {
        pass: Some(Bytes::from("wrong")),
        ..Config::default()
    };
    let follower = Follower::start(redis.socket(), Replica::new(config));
    assert!(matches!(follower.next(), Err(ReplError::Auth(msg)) if msg.starts_with("WRONGPASS")));
    let follower = Follower::start(redis.socket(), Replica::new(Config::default()));
    assert!(matches!(follower.next(), Err(ReplError::Auth(msg)) if msg.starts_with("NOAUTH")));
    let config = Config {
        pass: Some(Bytes::from("secret")),
        ..Config::default()
    };
    let follower = Follower::start(redis.socket(), Replica::new(config));
    assert!(matches!(follower.next(), Ok(Event::FullResync { .. })));
    follower.stop();
}

#[test]
fn acl_user_and_password() {
    let redis = Redis::start(false, &[]);
    let mut client = redis.client();
    client.ok(&[
        "ACL",
        "SETUSER",
        "repl",
        "on",
        ">pw",
        "+psync",
        "+replconf",
        "+ping",
    ]);
    let config = Config {
        user: Some(Bytes::from("repl")),
        pass: Some(Bytes::from("pw")),
        listening_port: 7777,
        ..Config::default()
    };
    let follower = Follower::start(redis.socket(), Replica::new(config));
    assert!(matches!(follower.next(), Ok(Event::FullResync { .. })));
    assert!(client
        .info_field("replication", "slave0")
        .unwrap()
        .contains("port=7777"));
    follower.stop();
}

/// Keeps the offset test honest: the bytes we count are the master's bytes.
#[test]
fn getack_answer_matches_the_master_offset_before_it() {
    let redis = Redis::start(false, &[]);
    let position = continuable_position(&redis);
    let mut socket = redis.socket();
    let mut replica = Replica::resuming(Config::default(), position.clone());
    replica.connected();
    let mut client = redis.client();
    let mut input = BytesMut::new();
    let deadline = Instant::now() + WAIT;
    let mut continued = false;
    while !continued {
        assert!(Instant::now() < deadline);
        socket.write_all(&replica.take_output()).unwrap();
        let mut chunk = [0u8; 4096];
        if let Ok(n) = socket.read(&mut chunk) {
            input.extend_from_slice(&chunk[..n]);
            replica.feed(&chunk[..n]);
        }
        while let Some(event) = replica.next_event().unwrap() {
            continued |= matches!(event, Event::Continue { .. });
        }
    }
    client.ok(&["SET", "a", "b"]);
    let master: i64 = client
        .info_field("replication", "master_repl_offset")
        .unwrap()
        .parse()
        .unwrap();
    // No ACK has been sent yet; WAIT 1 0 forces a GETACK.
    let wait = thread::spawn(move || client.call(&["WAIT", "1", "2000"]));
    let deadline = Instant::now() + WAIT;
    let mut acked = Vec::new();
    while acked.is_empty() {
        assert!(Instant::now() < deadline, "no GETACK answered");
        let mut chunk = [0u8; 4096];
        if let Ok(n) = socket.read(&mut chunk) {
            replica.feed(&chunk[..n]);
        }
        while replica.next_event().unwrap().is_some() {}
        acked = replica.take_output();
        socket.write_all(&acked).unwrap();
    }
    let expected = {
        let mut out = Vec::new();
        resp::encode_command(&["REPLCONF", "ACK", &master.to_string()], &mut out);
        out
    };
    assert_eq!(
        String::from_utf8_lossy(&acked),
        String::from_utf8_lossy(&expected)
    );
    assert_eq!(wait.join().unwrap(), Reply::Integer(1));
}

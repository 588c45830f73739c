//! nsync_core's HyperLogLog against real servers: a random workload of
//! PFADD, PFCOUNT (one key and several), PFMERGE, PFDEBUG TODENSE and DEL is
//! run on every server binary at hand and on nsync's `hll`, and after every
//! command the key's bytes (`GET`) and the replies must be the same, through
//! the sparse form, the promotion and the dense form.

use std::collections::HashMap;

use nsync_core::hll::{self, Hll, Registers, DEFAULT_SPARSE_MAX_BYTES};
use nsync_core::resp::Reply;

mod common;
use common::server::{binaries, Client, Redis};
use common::Rng;

const KEYS: [&[u8]; 6] = [b"h0", b"h1", b"h2", b"h3", b"h4", b"h5"];

/// What each command did on both sides, for the summary.
#[derive(Default, Debug)]
struct Seen {
    commands: usize,
    promotions: usize,
    sparse_checks: usize,
    dense_checks: usize,
    cache_writes: usize,
}

struct Workload {
    rng: Rng,
    pool: Vec<Vec<u8>>,
    model: HashMap<&'static [u8], Vec<u8>>,
    sparse_max: usize,
    seen: Seen,
}

impl Workload {
    fn new(seed: u64, sparse_max: usize) -> Workload {
        let mut rng = Rng(seed);
        let pool = (0..20_000)
            .map(|_| {
                let len = rng.below(24);
                (0..len).map(|_| rng.next() as u8).collect()
            })
            .collect();
        Workload {
            rng,
            pool,
            model: HashMap::new(),
            sparse_max,
            seen: Seen::default(),
        }
    }

    fn key(&mut self) -> &'static [u8] {
        KEYS[self.rng.below(KEYS.len())]
    }

    fn elements(&mut self) -> Vec<Vec<u8>> {
        let most = if self.rng.below(8) == 0 { 400 } else { 12 };
        let n = 1 + self.rng.below(most);
        (0..n)
            .map(|_| self.pool[self.rng.below(self.pool.len())].clone())
            .collect()
    }

    fn pfadd(&mut self, client: &mut Client, key: &'static [u8]) {
        let elements = self.elements();
        let refs: Vec<&[u8]> = elements.iter().map(Vec::as_slice).collect();
        let was_sparse = self.model.get(key).map(|v| v[4] == 1);
        let ours = hll::pfadd(
            self.model.get(key).map(Vec::as_slice),
            &refs,
            self.sparse_max,
        )
        .expect("pfadd");
        let mut args = vec![b"PFADD".as_slice(), key];
        args.extend(refs.iter().copied());
        let theirs = client.call(&args);
        assert_eq!(theirs, Reply::Integer(i64::from(ours.is_some())), "PFADD");
        if let Some(hll) = ours {
            if was_sparse == Some(true) && !hll.is_sparse() {
                self.seen.promotions += 1;
            }
            self.model.insert(key, hll.into_bytes());
        }
    }

    fn pfcount(&mut self, client: &mut Client, key: &'static [u8]) {
        let theirs = client.call(&[b"PFCOUNT".as_slice(), key]);
        let expected = match self.model.get(key) {
            None => 0,
            Some(bytes) => {
                let mut hll = Hll::from_bytes(bytes.clone()).unwrap();
                let card = hll.count().unwrap();
                if hll.as_bytes() != bytes.as_slice() {
                    self.seen.cache_writes += 1;
                }
                self.model.insert(key, hll.into_bytes());
                card
            }
        };
        assert_eq!(theirs, Reply::Integer(expected as i64), "PFCOUNT");
    }

    /// Grows `key` from empty through the sparse form until it turns dense,
    /// counting it now and then.
    fn grow(&mut self, client: &mut Client, key: &'static [u8], context: &str) {
        self.model.remove(key);
        client.call(&[b"DEL".as_slice(), key]);
        while self.model.get(key).is_none_or(|v| v[4] == 1) {
            self.seen.commands += 1;
            self.pfadd(client, key);
            self.check(client, key, context);
            if self.rng.below(3) == 0 {
                self.pfcount(client, key);
                self.check(client, key, context);
            }
        }
    }

    /// One random command on the server and the model; the replies agree.
    fn step(&mut self, client: &mut Client) -> Vec<&'static [u8]> {
        self.seen.commands += 1;
        let roll = self.rng.below(100);
        let key = self.key();
        if roll < 70 {
            self.pfadd(client, key);
            vec![key]
        } else if roll < 80 {
            self.pfcount(client, key);
            vec![key]
        } else if roll < 84 {
            let other = self.key();
            let mut max = Registers::default();
            for k in [key, other] {
                if let Some(bytes) = self.model.get(k) {
                    Hll::from_bytes(bytes.clone())
                        .unwrap()
                        .merge_into(&mut max)
                        .unwrap();
                }
            }
            let theirs = client.call(&[b"PFCOUNT".as_slice(), key, other]);
            assert_eq!(theirs, Reply::Integer(max.count() as i64), "PFCOUNT 2 keys");
            vec![key, other]
        } else if roll < 90 {
            let sources: Vec<&'static [u8]> =
                (0..1 + self.rng.below(3)).map(|_| self.key()).collect();
            let values: Vec<Option<&[u8]>> = sources
                .iter()
                .map(|k| self.model.get(k).map(Vec::as_slice))
                .collect();
            let dest = self.model.get(key).map(Vec::as_slice);
            let any_dense = dest
                .iter()
                .chain(values.iter().flatten())
                .any(|v| v[4] == 0);
            let merged = hll::pfmerge(dest, &values, self.sparse_max).expect("pfmerge");
            if !any_dense && !merged.is_sparse() {
                self.seen.promotions += 1;
            }
            self.model.insert(key, merged.into_bytes());
            let mut args = vec![b"PFMERGE".as_slice(), key];
            args.extend(sources.iter().copied());
            client.ok(&args);
            vec![key]
        } else if roll < 91 {
            let Some(bytes) = self.model.get(key) else {
                return vec![];
            };
            let ours = hll::pfdebug_todense(bytes).unwrap();
            let theirs = client.call(&[b"PFDEBUG".as_slice(), b"TODENSE", key]);
            assert_eq!(theirs, Reply::Integer(i64::from(ours.is_some())), "TODENSE");
            if let Some(hll) = ours {
                self.model.insert(key, hll.into_bytes());
            }
            vec![key]
        } else if roll < 92 {
            self.model.remove(key);
            client.call(&[b"DEL".as_slice(), key]);
            vec![key]
        } else {
            vec![]
        }
    }

    fn check(&mut self, client: &mut Client, key: &[u8], context: &str) {
        let theirs = client.get(key);
        let ours = self.model.get(key);
        if let Some(ours) = ours {
            if ours[4] == 1 {
                self.seen.sparse_checks += 1;
            } else {
                self.seen.dense_checks += 1;
            }
        }
        assert!(
            theirs.as_deref() == ours.map(Vec::as_slice),
            "{context}: key {} differs after {} commands: server {} bytes, nsync {} bytes",
            String::from_utf8_lossy(key),
            self.seen.commands,
            theirs.map_or(0, |v| v.len()),
            ours.map_or(0, |v| v.len()),
        );
    }
}

fn run(binary_name: &str, client: &mut Client, seed: u64, sparse_max: usize, steps: usize) {
    let mut workload = Workload::new(seed, sparse_max);
    for key in KEYS {
        workload.grow(client, key, binary_name);
    }
    for _ in 0..steps {
        for key in workload.step(client) {
            workload.check(client, key, binary_name);
        }
    }
    let seen = &workload.seen;
    eprintln!("{binary_name} hll-sparse-max-bytes {sparse_max}: {seen:?}");
    assert!(
        seen.promotions >= KEYS.len(),
        "too few sparse→dense promotions: {seen:?}"
    );
    assert!(
        seen.sparse_checks > 100 && seen.dense_checks > 100,
        "{seen:?}"
    );
    assert!(seen.cache_writes > 50, "{seen:?}");
}

#[test]
fn hll_bytes_equal_every_server_s() {
    let binaries = binaries();
    for binary in &binaries {
        let redis = Redis::start_binary(binary, false, &[]);
        let mut client = redis.client();
        run(binary.name, &mut client, 1, DEFAULT_SPARSE_MAX_BYTES, 3000);
        // A master configured otherwise: nsync is told the same limit.
        client.ok(&["FLUSHALL"]);
        client.ok(&["CONFIG", "SET", "hll-sparse-max-bytes", "700"]);
        run(binary.name, &mut client, 2, 700, 1500);
    }
    eprintln!(
        "servers: {:?}",
        binaries.iter().map(|b| b.name).collect::<Vec<_>>()
    );
}

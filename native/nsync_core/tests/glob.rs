//! nsync_core's glob patterns against real servers: random keys and random
//! patterns over an alphabet of the bytes that mean something to
//! `stringmatchlen` (`*?[]^-\`, NUL, bytes above 0x7f); for every pattern
//! `KEYS pattern` on every server binary at hand must return exactly the
//! keys `glob::matches` keeps.

use std::collections::BTreeSet;

use nsync_core::glob;
use nsync_core::resp::Reply;

mod common;
use common::server::{binaries, Redis};
use common::Rng;

const KEY_BYTES: &[u8] = b"abc*?[]^-\\\x00\xff\x80x";
const PATTERN_BYTES: &[u8] = b"abc**??[[]]^-\\\x00\xff\x80";
const KEYS: usize = 400;
const PATTERNS: usize = 4000;

fn random_bytes(rng: &mut Rng, alphabet: &[u8], max_len: usize) -> Vec<u8> {
    let len = rng.below(max_len + 1);
    (0..len)
        .map(|_| alphabet[rng.below(alphabet.len())])
        .collect()
}

#[test]
fn keys_command_agrees() {
    let servers = binaries();
    assert!(!servers.is_empty());
    for binary in &servers {
        let redis = Redis::start_binary(binary, false, &[]);
        let mut client = redis.client();
        let mut rng = Rng(0x5eed_0f91_0b00);
        let mut keys: BTreeSet<Vec<u8>> = (0..KEYS)
            .map(|_| random_bytes(&mut rng, KEY_BYTES, 6))
            .collect();
        keys.insert(Vec::new());
        for key in &keys {
            client.ok(&[b"SET".as_slice(), key, b"v"]);
        }
        let mut matched_some = 0;
        for _ in 0..PATTERNS {
            let pattern = random_bytes(&mut rng, PATTERN_BYTES, 8);
            let theirs: BTreeSet<Vec<u8>> = client
                .call_array(&[b"KEYS".as_slice(), &pattern])
                .into_iter()
                .map(|reply| match reply {
                    Reply::Bulk(Some(key)) => key.to_vec(),
                    other => panic!("KEYS answered {other:?}"),
                })
                .collect();
            let ours: BTreeSet<Vec<u8>> = keys
                .iter()
                .filter(|key| glob::matches(&pattern, key))
                .cloned()
                .collect();
            assert_eq!(
                ours,
                theirs,
                "{}: pattern {:?}",
                binary.name,
                String::from_utf8_lossy(&pattern)
            );
            matched_some += usize::from(!ours.is_empty() && ours.len() < keys.len());
        }
        // the patterns were not all trivial
        assert!(
            matched_some > PATTERNS / 4,
            "{}: {matched_some}",
            binary.name
        );
        eprintln!(
            "{}: {PATTERNS} patterns over {} keys agree ({matched_some} matched some but not all)",
            binary.name,
            keys.len()
        );
    }
}

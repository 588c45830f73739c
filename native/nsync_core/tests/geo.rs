//! nsync_core's storing GEO searches against real servers: random point sets
//! (clusters with shared coordinates and shared longitudes, near a pole, on
//! the antimeridian) and random GEORADIUS / GEORADIUSBYMEMBER ... STORE |
//! STOREDIST and GEOSEARCHSTORE commands (BYRADIUS / BYBOX, FROMMEMBER /
//! FROMLONLAT, ASC / DESC, COUNT [ANY], every unit) run on every server
//! binary at hand and on nsync's `geo`; the stored sets must be equal,
//! members and scores (as doubles).

use nsync_core::geo::{Formula, GeoStore};
use nsync_core::resp::Reply;

mod common;
use common::server::{binaries, Client, Redis};
use common::Rng;

fn uniform(rng: &mut Rng, lo: f64, hi: f64) -> f64 {
    lo + (rng.next() >> 11) as f64 / (1u64 << 53) as f64 * (hi - lo)
}

/// Writes a point set around (lon, lat) spread over `spread` degrees: some
/// points repeat another's coordinates (ties in distance), some share a
/// longitude (Redis 7.0's shortcut).
fn populate(client: &mut Client, rng: &mut Rng, key: &str, lon: f64, lat: f64, spread: f64) {
    client.call(&["DEL", key]);
    let mut points: Vec<(f64, f64)> = Vec::new();
    for i in 0..600 {
        let point = match (i % 10, points.len()) {
            (0, n) if n > 0 => points[rng.below(n)],
            (1, n) if n > 0 => (
                points[rng.below(n)].0,
                uniform(rng, lat - spread, lat + spread),
            ),
            _ => (
                uniform(rng, lon - spread, lon + spread),
                uniform(rng, lat - spread, lat + spread),
            ),
        };
        let point = (point.0.clamp(-180.0, 180.0), point.1.clamp(-85.05, 85.05));
        points.push(point);
    }
    for chunk in points.chunks(100).enumerate() {
        let (c, chunk) = chunk;
        let mut args = vec!["GEOADD".to_string(), key.to_string()];
        for (j, (x, y)) in chunk.iter().enumerate() {
            args.extend([format!("{x}"), format!("{y}"), format!("m{}", c * 100 + j)]);
        }
        client.ok(&args);
    }
}

/// `ZRANGE key 0 -1 WITHSCORES` as (score, member) in Redis order.
fn zrange(client: &mut Client, key: &str) -> Vec<(f64, Vec<u8>)> {
    let reply = client.call_array(&["ZRANGE", key, "0", "-1", "WITHSCORES"]);
    reply
        .chunks(2)
        .map(|pair| match pair {
            [Reply::Bulk(Some(member)), Reply::Bulk(Some(score))] => {
                let score: f64 = std::str::from_utf8(score).unwrap().parse().unwrap();
                (score, member.to_vec())
            }
            other => panic!("ZRANGE answered {other:?}"),
        })
        .collect()
}

/// A random storing search over `key` centred near (lon, lat).
fn random_command(
    rng: &mut Rng,
    key: &str,
    (lon, lat, spread): (f64, f64, f64),
    formula: Formula,
) -> Vec<String> {
    // Units are case-insensitive since 7.0 only.
    let units = if formula == Formula::Since70 { 5 } else { 4 };
    let unit = ["m", "km", "ft", "mi", "KM"][rng.below(units)];
    let meters: f64 = match unit {
        "m" => 1.0,
        "ft" => 0.3048,
        "mi" => 1609.34,
        _ => 1000.0,
    };
    // Up to about the set's extent, sometimes far beyond or zero.
    let extent = spread * 111_000.0 / meters;
    let size = |rng: &mut Rng| match rng.below(12) {
        0 => "0".to_string(),
        1 => format!("{}", extent * 40.0),
        _ => format!("{:.3}", uniform(rng, 0.0, extent)),
    };
    let member = format!("m{}", rng.below(600));
    let center_lon = format!(
        "{}",
        (lon + uniform(rng, -spread, spread)).clamp(-180.0, 180.0)
    );
    let center_lat = format!(
        "{}",
        (lat + uniform(rng, -spread, spread)).clamp(-85.0, 85.0)
    );
    let mut args: Vec<String> = match rng.below(4) {
        0 => vec![
            "GEORADIUS".into(),
            key.into(),
            center_lon,
            center_lat,
            size(rng),
            unit.into(),
        ],
        1 => vec![
            "GEORADIUSBYMEMBER".into(),
            key.into(),
            member,
            size(rng),
            unit.into(),
        ],
        _ => {
            let mut args = vec!["GEOSEARCHSTORE".into(), "dest".into(), key.into()];
            if rng.below(2) == 0 {
                args.extend(["FROMMEMBER".into(), member]);
            } else {
                args.extend(["FROMLONLAT".into(), center_lon, center_lat]);
            }
            if rng.below(2) == 0 {
                args.extend(["BYRADIUS".into(), size(rng), unit.into()]);
            } else {
                args.extend(["BYBOX".into(), size(rng), size(rng), unit.into()]);
            }
            args
        }
    };
    match rng.below(3) {
        0 => args.push("ASC".into()),
        1 => args.push("DESC".into()),
        _ => {}
    }
    if rng.below(2) == 0 {
        args.extend(["COUNT".into(), format!("{}", 1 + rng.below(60))]);
        if rng.below(3) == 0 {
            args.push("ANY".into());
        }
    }
    let store_dist = rng.below(2) == 0;
    if args[0] == "GEOSEARCHSTORE" {
        if store_dist {
            args.push("STOREDIST".into());
        }
    } else {
        args.extend([
            if store_dist { "STOREDIST" } else { "STORE" }.into(),
            "dest".into(),
        ]);
    }
    args
}

#[test]
fn stored_geo_searches_equal_every_server_s() {
    let binaries = binaries();
    for binary in &binaries {
        let formula = if binary.name == "6.2" {
            Formula::Before70
        } else {
            Formula::Since70
        };
        let redis = Redis::start_binary(binary, false, &[]);
        let mut client = redis.client();
        let mut rng = Rng(42);
        let (mut searches, mut stored, mut empty) = (0, 0, 0);
        for (lon, lat, spread) in [
            (13.36, 38.11, 1.0),
            (-0.1, 51.5, 0.05),
            (179.9, -10.0, 0.5),
            (-60.0, 84.0, 2.0),
        ] {
            populate(&mut client, &mut rng, "points", lon, lat, spread);
            let source = zrange(&mut client, "points");
            let source_refs: Vec<(f64, &[u8])> =
                source.iter().map(|(s, m)| (*s, m.as_slice())).collect();
            for _ in 0..400 {
                let args = random_command(&mut rng, "points", (lon, lat, spread), formula);
                let reply = client.call(&args);
                let arg_bytes: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
                let search = GeoStore::parse(&arg_bytes).expect("parse");
                let ours = search.run(Some(&source_refs), formula).expect("run");
                let theirs = zrange(&mut client, "dest");
                assert_eq!(reply, Reply::Integer(theirs.len() as i64), "{args:?}");
                let ours: Vec<(f64, Vec<u8>)> =
                    ours.into_iter().map(|(s, m)| (s, m.to_vec())).collect();
                assert!(
                    ours.len() == theirs.len()
                        && ours
                            .iter()
                            .zip(&theirs)
                            .all(|(a, b)| a.0.to_bits() == b.0.to_bits() && a.1 == b.1),
                    "{}: {args:?}\nnsync  {ours:?}\nserver {theirs:?}",
                    binary.name
                );
                searches += 1;
                if theirs.is_empty() {
                    empty += 1;
                } else {
                    stored += theirs.len();
                }
            }
        }
        eprintln!(
            "{}: {searches} searches, {stored} members stored, {empty} empty",
            binary.name
        );
        assert!(
            stored > 10 * searches && empty > 20,
            "too little found to test"
        );
    }
    eprintln!(
        "servers: {:?}",
        binaries.iter().map(|b| b.name).collect::<Vec<_>>()
    );
}

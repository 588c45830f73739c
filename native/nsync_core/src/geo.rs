//! Redis's GEO searches as the commands that store their result compute
//! them (`GEORADIUS`/`GEORADIUSBYMEMBER ... STORE|STOREDIST`,
//! `GEOSEARCHSTORE`): a master propagates these as written, so a replica
//! runs the search again over its copy of the sorted set. Everything below
//! follows `geo.c`, `geohash.c` and `geohash_helper.c` of Redis 6.2-8.x and
//! Valkey step by step (the same floating-point operations in the same
//! order, the same libm functions), so that the stored members and their
//! scores are those of the master, equal as doubles.
//!
//! - geohash: 26 bits of latitude and of longitude interleaved into a 52-bit
//!   score; decoding gives the centre of the cell;
//! - the search covers the centre cell and its 8 neighbours at a precision
//!   estimated from the radius, skipping cells outside the bounding box,
//!   then filters candidates by haversine distance (radius) or by the
//!   latitude and longitude distances (box);
//! - `ASC`/`DESC` sort by distance (libc's stable `qsort`), or with `COUNT`
//!   Redis's partial quicksort (`pqsort.c`), whose order of ties decides
//!   which members are kept; `COUNT n ANY` stops at the first n found.
//!
//! Distances differ slightly between Redis before and since 7.0 (7.0 takes
//! a shortcut when two points share a longitude): see [`Formula`].
//!
//! Valkey 9's `GEOSEARCHSTORE ... BYPOLYGON n lon lat ...` searches around
//! the polygon's centroid (the mean of its vertices as points on a sphere),
//! with the polygon's longitude/latitude bounding box and, as radius, the
//! farthest corner of that box; a candidate is inside by the even-odd ray
//! casting rule (PNPOLY) over longitude and latitude, and its distance is
//! the one from the centroid. This follows the BYPOLYGON source of Valkey's
//! `geo.c` and `geohash_helper.c` as stored here (its pull request's
//! version; the 9.0.0 tag itself could not be read), and it is computed
//! only without `FROMMEMBER`/`FROMLONLAT`, the form that version accepts.

use thiserror::Error;

const GEO_STEP_MAX: u8 = 26;
const GEO_LAT_MIN: f64 = -85.051_128_78;
const GEO_LAT_MAX: f64 = 85.051_128_78;
const GEO_LONG_MIN: f64 = -180.0;
const GEO_LONG_MAX: f64 = 180.0;
/// `D_R`: `M_PI / 180.0`.
const D_R: f64 = std::f64::consts::PI / 180.0;
/// Earth's quadratic mean radius for WGS-84, as Redis has it.
const EARTH_RADIUS_IN_METERS: f64 = 6_372_797.560_856;
const MERCATOR_MAX: f64 = 20_037_726.37;

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum GeoError {
    /// The command is one the master would have refused (so it cannot have
    /// been propagated) or not a storing GEO search at all.
    #[error("not a storing GEO search: {0}")]
    BadCommand(&'static str),
    /// `GEORADIUSBYMEMBER`/`FROMMEMBER` names a member the set lacks.
    #[error("could not decode requested zset member")]
    NoSuchMember,
}

/// How a master computes distances.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Formula {
    /// Redis 6.2 and older: the full haversine formula everywhere.
    Before70,
    /// Redis 7.0 and newer, Valkey: points of one longitude are
    /// `R * |Δlatitude|` apart, and a box checks latitude first that way.
    #[default]
    Since70,
}

/// A storing GEO search, parsed from its command.
#[derive(Debug, Clone, PartialEq)]
pub struct GeoStore<'a> {
    /// The sorted set searched.
    pub source: &'a [u8],
    /// The key the result is stored at (deleted when nothing is found).
    pub dest: &'a [u8],
    /// `None` for a polygon, searched around its centroid.
    center: Option<Center<'a>>,
    shape: Shape,
    /// The unit's size in meters.
    conversion: f64,
    sort: Sort,
    count: Option<usize>,
    any: bool,
    store_dist: bool,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Center<'a> {
    LonLat(f64, f64),
    Member(&'a [u8]),
}

#[derive(Debug, Clone, PartialEq)]
enum Shape {
    Radius(f64),
    Box {
        width: f64,
        height: f64,
    },
    /// The vertices, `[longitude, latitude]` each.
    Polygon(Vec<[f64; 2]>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sort {
    None,
    Asc,
    Desc,
}

/// A candidate: `geoPoint`.
#[derive(Debug, Clone, Copy)]
struct Point<'z> {
    dist: f64,
    score: f64,
    member: &'z [u8],
}

impl<'a> GeoStore<'a> {
    /// Parses `GEORADIUS`, `GEORADIUSBYMEMBER` (with `STORE` or
    /// `STOREDIST`) and `GEOSEARCHSTORE`, command name first, as
    /// `georadiusGeneric` does.
    pub fn parse(args: &[&'a [u8]]) -> Result<GeoStore<'a>, GeoError> {
        let name = args.first().ok_or(GeoError::BadCommand("empty"))?;
        let arg = |i: usize| args.get(i).copied().ok_or(GeoError::BadCommand("arity"));
        let (source, mut dest, center, mut shape, mut conversion, base) =
            if name.eq_ignore_ascii_case(b"georadius") {
                let center = Center::LonLat(parse_double(arg(2)?)?, parse_double(arg(3)?)?);
                let (radius, conversion) = distance(arg(4)?, arg(5)?)?;
                (
                    arg(1)?,
                    None,
                    Some(center),
                    Some(Shape::Radius(radius)),
                    conversion,
                    6,
                )
            } else if name.eq_ignore_ascii_case(b"georadiusbymember") {
                let (radius, conversion) = distance(arg(3)?, arg(4)?)?;
                let center = Center::Member(arg(2)?);
                (
                    arg(1)?,
                    None,
                    Some(center),
                    Some(Shape::Radius(radius)),
                    conversion,
                    5,
                )
            } else if name.eq_ignore_ascii_case(b"geosearchstore") {
                (arg(2)?, Some(arg(1)?), None, None, 1.0, 3)
            } else {
                return Err(GeoError::BadCommand("not a GEO search"));
            };
        let search = base == 3;
        let mut center = center;
        let (mut sort, mut count, mut any, mut store_dist) = (Sort::None, None, false, false);
        let mut i = base;
        while i < args.len() {
            let option = args[i].to_ascii_lowercase();
            let left = args.len() - i - 1;
            match option.as_slice() {
                b"any" => any = true,
                b"asc" => sort = Sort::Asc,
                b"desc" => sort = Sort::Desc,
                b"count" if left >= 1 => {
                    let n = parse_i64(arg(i + 1)?)?;
                    count = Some(
                        usize::try_from(n)
                            .ok()
                            .filter(|&n| n > 0)
                            .ok_or(GeoError::BadCommand("COUNT must be > 0"))?,
                    );
                    i += 1;
                }
                b"store" | b"storedist" if !search && left >= 1 => {
                    dest = Some(arg(i + 1)?);
                    store_dist = option == b"storedist";
                    i += 1;
                }
                b"storedist" if search => store_dist = true,
                b"frommember" if search && left >= 1 => {
                    center = Some(Center::Member(arg(i + 1)?));
                    i += 1;
                }
                b"fromlonlat" if search && left >= 2 => {
                    center = Some(Center::LonLat(
                        parse_double(arg(i + 1)?)?,
                        parse_double(arg(i + 2)?)?,
                    ));
                    i += 2;
                }
                b"byradius" if search && left >= 2 => {
                    let (radius, unit) = distance(arg(i + 1)?, arg(i + 2)?)?;
                    shape = Some(Shape::Radius(radius));
                    conversion = unit;
                    i += 2;
                }
                b"bybox" if search && left >= 3 => {
                    let width = non_negative(parse_double(arg(i + 1)?)?)?;
                    let height = non_negative(parse_double(arg(i + 2)?)?)?;
                    shape = Some(Shape::Box { width, height });
                    conversion = unit(arg(i + 3)?)?;
                    i += 3;
                }
                b"bypolygon" if search && left >= 2 && shape.is_none() && center.is_none() => {
                    let n = parse_i64(arg(i + 1)?)?;
                    let n = usize::try_from(n)
                        .ok()
                        .filter(|&n| n >= 3 && n <= (left - 1) / 2)
                        .ok_or(GeoError::BadCommand("BYPOLYGON needs at least 3 vertices"))?;
                    let mut vertices = Vec::with_capacity(n);
                    for v in 0..n {
                        let (lon, lat) = (
                            parse_double(arg(i + 2 + 2 * v)?)?,
                            parse_double(arg(i + 3 + 2 * v)?)?,
                        );
                        check_lon_lat(lon, lat)?;
                        vertices.push([lon, lat]);
                    }
                    shape = Some(Shape::Polygon(vertices));
                    conversion = 1.0;
                    i += 1 + 2 * n;
                }
                _ => return Err(GeoError::BadCommand("option")),
            }
            i += 1;
        }
        if any && count.is_none() {
            return Err(GeoError::BadCommand("ANY without COUNT"));
        }
        let shape = shape.ok_or(GeoError::BadCommand("no BYRADIUS, BYBOX or BYPOLYGON"))?;
        match (&shape, center) {
            (Shape::Polygon(_), None) => {}
            (Shape::Polygon(_), Some(_)) => {
                return Err(GeoError::BadCommand("BYPOLYGON with a FROM option"))
            }
            (_, None) => return Err(GeoError::BadCommand("no FROMMEMBER or FROMLONLAT")),
            (_, Some(Center::LonLat(lon, lat))) => check_lon_lat(lon, lat)?,
            (_, Some(Center::Member(_))) => {}
        }
        Ok(GeoStore {
            source,
            dest: dest.ok_or(GeoError::BadCommand("no STORE"))?,
            center,
            shape,
            conversion,
            sort,
            count,
            any,
            store_dist,
        })
    }

    /// The sorted set to store at `dest` (empty: delete `dest`), given the
    /// source set in Redis order (by score, then member bytes), `None` when
    /// there is no such key. The result is in Redis order too.
    pub fn run<'z>(
        &self,
        zset: Option<&[(f64, &'z [u8])]>,
        formula: Formula,
    ) -> Result<Vec<(f64, &'z [u8])>, GeoError> {
        let Some(zset) = zset else {
            return Ok(Vec::new());
        };
        let (lon, lat) = match (self.center, &self.shape) {
            (Some(Center::LonLat(lon, lat)), _) => (lon, lat),
            (Some(Center::Member(member)), _) => {
                let score = zset
                    .iter()
                    .find(|(_, m)| *m == member)
                    .map(|&(score, _)| score)
                    .ok_or(GeoError::NoSuchMember)?;
                decode_score(score)
            }
            (None, Shape::Polygon(vertices)) => centroid(vertices),
            (None, _) => return Err(GeoError::BadCommand("no FROMMEMBER or FROMLONLAT")),
        };
        let search = Search {
            lon,
            lat,
            shape: &self.shape,
            conversion: self.conversion,
            formula,
        };
        let limit = if self.any { self.count } else { None };
        let mut points = search.members(zset, limit);

        let sort = match (self.sort, self.count) {
            (Sort::None, Some(_)) if !self.any => Sort::Asc,
            (sort, _) => sort,
        };
        let returned = self.count.map_or(points.len(), |n| n.min(points.len()));
        let by_distance: fn(&Point, &Point) -> std::cmp::Ordering = match sort {
            Sort::Desc => |a, b| sort_gp_asc(a.dist, b.dist).reverse(),
            _ => |a, b| sort_gp_asc(a.dist, b.dist),
        };
        if sort != Sort::None {
            if returned == points.len() {
                // glibc's qsort is a (stable) merge sort.
                points.sort_by(by_distance);
            } else {
                pqsort(&mut points, &by_distance, 0, returned.saturating_sub(1));
            }
        }
        points.truncate(returned);

        let mut stored: Vec<(f64, &'z [u8])> = points
            .iter()
            .map(|p| {
                let dist = p.dist / self.conversion;
                (if self.store_dist { dist } else { p.score }, p.member)
            })
            .collect();
        stored.sort_by(|a, b| a.0.total_cmp(&b.0).then_with(|| a.1.cmp(b.1)));
        stored.dedup_by(|a, b| a.1 == b.1);
        Ok(stored)
    }
}

/// Redis's `sort_gp_asc` (a NaN is less than anything).
fn sort_gp_asc(a: f64, b: f64) -> std::cmp::Ordering {
    if a > b {
        std::cmp::Ordering::Greater
    } else if a == b {
        std::cmp::Ordering::Equal
    } else {
        std::cmp::Ordering::Less
    }
}

/// A search area: `GeoShape`.
struct Search<'s> {
    lon: f64,
    lat: f64,
    shape: &'s Shape,
    conversion: f64,
    formula: Formula,
}

impl Search<'_> {
    /// `membersOfAllNeighbors`: the candidates of the centre cell and its
    /// neighbours that lie in the shape, in the order Redis finds them;
    /// with `limit` (`COUNT n ANY`), the first n.
    fn members<'z>(&self, zset: &[(f64, &'z [u8])], limit: Option<usize>) -> Vec<Point<'z>> {
        let cells = self.cells();
        let mut points = Vec::new();
        // Redis compares a cell with the last one searched, except when
        // that was the centre (index 0).
        let mut last_processed = 0;
        for (i, cell) in cells.iter().enumerate() {
            let Some(cell) = *cell else {
                continue;
            };
            if last_processed != 0 && cells[last_processed] == Some(cell) {
                continue;
            }
            if limit.is_some_and(|n| !points.is_empty() && points.len() >= n) {
                break;
            }
            let (min, max) = cell.score_range();
            let start = zset.partition_point(|&(score, _)| score < min);
            for &(score, member) in &zset[start..] {
                if score >= max {
                    break;
                }
                if let Some(dist) = self.distance_if_within(score) {
                    points.push(Point {
                        dist,
                        score,
                        member,
                    });
                }
                if limit.is_some_and(|n| points.len() >= n) {
                    break;
                }
            }
            last_processed = i;
        }
        points
    }

    /// `geoWithinShape`: the point's distance from the centre, if inside.
    fn distance_if_within(&self, score: f64) -> Option<f64> {
        let (x, y) = decode_score(score);
        match *self.shape {
            Shape::Polygon(ref vertices) => in_polygon(vertices, x, y)
                .then(|| distance_between(self.formula, self.lon, self.lat, x, y)),
            Shape::Radius(radius) => {
                let d = distance_between(self.formula, self.lon, self.lat, x, y);
                // Redis rejects `d > radius` only: a NaN distance is inside.
                let outside =
                    d.partial_cmp(&(radius * self.conversion)) == Some(std::cmp::Ordering::Greater);
                (!outside).then_some(d)
            }
            Shape::Box { width, height } => {
                let (width_m, height_m) = (width * self.conversion, height * self.conversion);
                let lat_distance = match self.formula {
                    Formula::Since70 => lat_distance(y, self.lat),
                    Formula::Before70 => distance_between(self.formula, x, y, x, self.lat),
                };
                if lat_distance > height_m / 2.0 {
                    return None;
                }
                let lon_distance = distance_between(self.formula, x, y, self.lon, y);
                if lon_distance > width_m / 2.0 {
                    return None;
                }
                Some(distance_between(self.formula, self.lon, self.lat, x, y))
            }
        }
    }

    /// `geohashBoundingBox`: (min lon, min lat, max lon, max lat).
    fn bounding_box(&self) -> [f64; 4] {
        let (height, width) = match *self.shape {
            Shape::Radius(r) => (self.conversion * r, self.conversion * r),
            Shape::Box { width, height } => (
                self.conversion * (height / 2.0),
                self.conversion * (width / 2.0),
            ),
            Shape::Polygon(ref vertices) => return polygon_box(vertices),
        };
        let lat_delta = rad_deg(height / EARTH_RADIUS_IN_METERS);
        let long_delta_top =
            rad_deg(width / EARTH_RADIUS_IN_METERS / deg_rad(self.lat + lat_delta).cos());
        let long_delta_bottom =
            rad_deg(width / EARTH_RADIUS_IN_METERS / deg_rad(self.lat - lat_delta).cos());
        let long_delta = if self.lat < 0.0 {
            long_delta_bottom
        } else {
            long_delta_top
        };
        [
            self.lon - long_delta,
            self.lat - lat_delta,
            self.lon + long_delta,
            self.lat + lat_delta,
        ]
    }

    /// `geohashCalculateAreasByShapeWGS84`: the centre cell and its eight
    /// neighbours (N, S, E, W, NE, NW, SE, SW), `None` for those skipped.
    fn cells(&self) -> [Option<HashBits>; 9] {
        let [min_lon, min_lat, max_lon, max_lat] = self.bounding_box();
        let radius_meters = self.conversion
            * match *self.shape {
                Shape::Radius(r) => r,
                Shape::Box { width, height } => {
                    ((width / 2.0) * (width / 2.0) + (height / 2.0) * (height / 2.0)).sqrt()
                }
                // the farthest corner of the bounding box from the centroid
                Shape::Polygon(_) => {
                    let corner = |x, y| distance_between(self.formula, self.lon, self.lat, x, y);
                    let mut radius = corner(min_lon, max_lat);
                    for d in [
                        corner(max_lon, max_lat),
                        corner(min_lon, min_lat),
                        corner(max_lon, min_lat),
                    ] {
                        if d > radius {
                            radius = d;
                        }
                    }
                    radius
                }
            };
        let mut steps = estimate_steps(radius_meters, self.lat);
        let mut hash = HashBits::encode(self.lon, self.lat, steps);
        let mut neighbors = hash.neighbors();
        let mut area = hash.decode();
        let [north, south, east, west] = [0, 1, 2, 3].map(|i| neighbors[i].decode());
        let decrease_step = north.lat_max < max_lat
            || south.lat_min > min_lat
            || east.lon_max < max_lon
            || west.lon_min > min_lon;
        if steps > 1 && decrease_step {
            steps -= 1;
            hash = HashBits::encode(self.lon, self.lat, steps);
            neighbors = hash.neighbors();
            area = hash.decode();
        }
        let [n, s, e, w, ne, nw, se, sw] = neighbors.map(Some);
        let mut cells = [Some(hash), n, s, e, w, ne, nw, se, sw];
        if steps >= 2 {
            let mut skip = |indexes: [usize; 3]| indexes.iter().for_each(|&i| cells[i] = None);
            if area.lat_min < min_lat {
                skip([2, 8, 7]);
            }
            if area.lat_max > max_lat {
                skip([1, 5, 6]);
            }
            if area.lon_min < min_lon {
                skip([4, 8, 6]);
            }
            if area.lon_max > max_lon {
                skip([3, 7, 5]);
            }
        }
        cells
    }
}

/// The centroid of a polygon's vertices (`geohashBoundingBox`): their mean
/// as points on a sphere of Earth's radius, back in degrees.
fn centroid(vertices: &[[f64; 2]]) -> (f64, f64) {
    let (mut x, mut y, mut z) = (0.0, 0.0, 0.0);
    for &[lon, lat] in vertices {
        let (lon_rad, lat_rad) = (deg_rad(lon), deg_rad(lat));
        x += EARTH_RADIUS_IN_METERS * lat_rad.cos() * lon_rad.cos();
        y += EARTH_RADIUS_IN_METERS * lat_rad.cos() * lon_rad.sin();
        z += EARTH_RADIUS_IN_METERS * lat_rad.sin();
    }
    // C divides by the int count, converted to a double
    let n = vertices.len() as f64;
    let (x, y, z) = (x / n, y / n, z / n);
    let central_lon = y.atan2(x);
    let central_lat = z.atan2((x * x + y * y).sqrt());
    (rad_deg(central_lon), rad_deg(central_lat))
}

/// A polygon's bounding box in degrees: (min lon, min lat, max lon, max lat).
fn polygon_box(vertices: &[[f64; 2]]) -> [f64; 4] {
    let mut b = [GEO_LONG_MAX, GEO_LAT_MAX, GEO_LONG_MIN, GEO_LAT_MIN];
    for &[lon, lat] in vertices {
        if lon < b[0] {
            b[0] = lon;
        }
        if lon > b[2] {
            b[2] = lon;
        }
        if lat < b[1] {
            b[1] = lat;
        }
        if lat > b[3] {
            b[3] = lat;
        }
    }
    b
}

/// PNPOLY (W. R. Franklin) as Valkey runs it: a ray from the point crosses
/// the edges an odd number of times when the point is inside.
fn in_polygon(vertices: &[[f64; 2]], lon: f64, lat: f64) -> bool {
    let mut inside = false;
    let mut j = vertices.len().wrapping_sub(1);
    for (i, a) in vertices.iter().enumerate() {
        if let Some(b) = vertices.get(j) {
            if (a[1] > lat) != (b[1] > lat)
                && lon < (b[0] - a[0]) * (lat - a[1]) / (b[1] - a[1]) + a[0]
            {
                inside = !inside;
            }
        }
        j = i;
    }
    inside
}

/// `extractLongLatOrReply`'s range check.
fn check_lon_lat(lon: f64, lat: f64) -> Result<(), GeoError> {
    if (GEO_LONG_MIN..=GEO_LONG_MAX).contains(&lon) && (GEO_LAT_MIN..=GEO_LAT_MAX).contains(&lat) {
        Ok(())
    } else {
        Err(GeoError::BadCommand("invalid longitude,latitude pair"))
    }
}

/// A geohash of `step` bits per coordinate: `GeoHashBits`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct HashBits {
    bits: u64,
    step: u8,
}

/// A decoded cell: `GeoHashArea`.
#[derive(Debug, Clone, Copy)]
struct Area {
    lon_min: f64,
    lon_max: f64,
    lat_min: f64,
    lat_max: f64,
}

impl HashBits {
    /// `geohashEncodeWGS84`; coordinates outside the ranges give the zero
    /// hash, as Redis leaves it.
    fn encode(lon: f64, lat: f64, step: u8) -> HashBits {
        if !(GEO_LONG_MIN..=GEO_LONG_MAX).contains(&lon)
            || !(GEO_LAT_MIN..=GEO_LAT_MAX).contains(&lat)
        {
            return HashBits { bits: 0, step };
        }
        let scale = (1u64 << step) as f64;
        let lat_offset = (lat - GEO_LAT_MIN) / (GEO_LAT_MAX - GEO_LAT_MIN) * scale;
        let long_offset = (lon - GEO_LONG_MIN) / (GEO_LONG_MAX - GEO_LONG_MIN) * scale;
        HashBits {
            bits: interleave64(lat_offset as u32, long_offset as u32),
            step,
        }
    }

    /// `geohashDecode`.
    fn decode(self) -> Area {
        let separated = deinterleave64(self.bits);
        let lat_scale = GEO_LAT_MAX - GEO_LAT_MIN;
        let long_scale = GEO_LONG_MAX - GEO_LONG_MIN;
        let ilato = separated as u32;
        let ilono = (separated >> 32) as u32;
        let cells = (1u64 << self.step) as f64;
        let at = |i: u32, min: f64, scale: f64| min + (f64::from(i) * 1.0 / cells) * scale;
        Area {
            lat_min: at(ilato, GEO_LAT_MIN, lat_scale),
            lat_max: at(ilato.wrapping_add(1), GEO_LAT_MIN, lat_scale),
            lon_min: at(ilono, GEO_LONG_MIN, long_scale),
            lon_max: at(ilono.wrapping_add(1), GEO_LONG_MIN, long_scale),
        }
    }

    /// `scoresOfGeoHashBox`: the scores [min, max) of the cell's points.
    fn score_range(self) -> (f64, f64) {
        let shift = 52 - u32::from(self.step) * 2;
        let min = self.bits << shift;
        let max = self.bits.wrapping_add(1) << shift;
        (min as f64, max as f64)
    }

    /// `geohashNeighbors`: N, S, E, W, NE, NW, SE, SW.
    fn neighbors(self) -> [HashBits; 8] {
        let moved = |dx: i8, dy: i8| {
            let mut h = self;
            h.move_x(dx);
            h.move_y(dy);
            h
        };
        [
            moved(0, 1),
            moved(0, -1),
            moved(1, 0),
            moved(-1, 0),
            moved(1, 1),
            moved(-1, 1),
            moved(1, -1),
            moved(-1, -1),
        ]
    }

    fn move_x(&mut self, d: i8) {
        self.bits = moved_bits(self.bits, self.step, d, 0xaaaa_aaaa_aaaa_aaaa);
    }

    fn move_y(&mut self, d: i8) {
        self.bits = moved_bits(self.bits, self.step, d, 0x5555_5555_5555_5555);
    }
}

/// `geohash_move_x` (`mask` the longitude bits) / `geohash_move_y`.
fn moved_bits(bits: u64, step: u8, d: i8, mask: u64) -> u64 {
    if d == 0 {
        return bits;
    }
    let shift = 64 - u32::from(step) * 2;
    let mut moving = bits & mask;
    let other = bits & !mask;
    let zz = !mask >> shift;
    if d > 0 {
        moving = moving.wrapping_add(zz + 1);
    } else {
        moving |= zz;
        moving = moving.wrapping_sub(zz + 1);
    }
    moving &= mask >> shift;
    moving | other
}

fn interleave64(xlo: u32, ylo: u32) -> u64 {
    const B: [u64; 5] = [
        0x5555_5555_5555_5555,
        0x3333_3333_3333_3333,
        0x0F0F_0F0F_0F0F_0F0F,
        0x00FF_00FF_00FF_00FF,
        0x0000_FFFF_0000_FFFF,
    ];
    const S: [u32; 5] = [1, 2, 4, 8, 16];
    let spread = |v: u32| {
        let mut v = u64::from(v);
        for i in (0..5).rev() {
            v = (v | (v << S[i])) & B[i];
        }
        v
    };
    spread(xlo) | (spread(ylo) << 1)
}

fn deinterleave64(interleaved: u64) -> u64 {
    const B: [u64; 6] = [
        0x5555_5555_5555_5555,
        0x3333_3333_3333_3333,
        0x0F0F_0F0F_0F0F_0F0F,
        0x00FF_00FF_00FF_00FF,
        0x0000_FFFF_0000_FFFF,
        0x0000_0000_FFFF_FFFF,
    ];
    const S: [u32; 6] = [0, 1, 2, 4, 8, 16];
    let squash = |mut v: u64| {
        for i in 0..6 {
            v = (v | (v >> S[i])) & B[i];
        }
        v
    };
    squash(interleaved) | (squash(interleaved >> 1) << 32)
}

/// `decodeGeohash` + `geohashDecodeAreaToLongLat`: a member's score to the
/// centre of its cell, clamped to the valid ranges.
pub fn decode_score(score: f64) -> (f64, f64) {
    // C's (uint64_t) conversion as x86-64 does it for a negative score.
    let bits = if score < 0.0 {
        score as i64 as u64
    } else {
        score as u64
    };
    let area = HashBits {
        bits,
        step: GEO_STEP_MAX,
    }
    .decode();
    let lon = ((area.lon_min + area.lon_max) / 2.0).clamp(GEO_LONG_MIN, GEO_LONG_MAX);
    let lat = ((area.lat_min + area.lat_max) / 2.0).clamp(GEO_LAT_MIN, GEO_LAT_MAX);
    (lon, lat)
}

/// `GEOADD`'s score of a point.
pub fn encode_score(lon: f64, lat: f64) -> f64 {
    let hash = HashBits::encode(lon, lat, GEO_STEP_MAX);
    (hash.bits << (52 - u32::from(GEO_STEP_MAX) * 2)) as f64
}

/// `geohashEstimateStepsByRadius`.
fn estimate_steps(mut range_meters: f64, lat: f64) -> u8 {
    if range_meters == 0.0 {
        return 26;
    }
    let mut step: i32 = 1;
    while range_meters < MERCATOR_MAX {
        range_meters *= 2.0;
        step += 1;
    }
    step -= 2;
    if !(-66.0..=66.0).contains(&lat) {
        step -= 1;
        if !(-80.0..=80.0).contains(&lat) {
            step -= 1;
        }
    }
    step.clamp(1, 26) as u8
}

fn deg_rad(ang: f64) -> f64 {
    ang * D_R
}

fn rad_deg(ang: f64) -> f64 {
    ang / D_R
}

/// `geohashGetLatDistance` (Redis 7.0+).
fn lat_distance(lat1d: f64, lat2d: f64) -> f64 {
    EARTH_RADIUS_IN_METERS * (deg_rad(lat2d) - deg_rad(lat1d)).abs()
}

/// `geohashGetDistance`: the haversine distance in meters.
pub fn distance_between(formula: Formula, lon1d: f64, lat1d: f64, lon2d: f64, lat2d: f64) -> f64 {
    let lon1r = deg_rad(lon1d);
    let lon2r = deg_rad(lon2d);
    let v = ((lon2r - lon1r) / 2.0).sin();
    if formula == Formula::Since70 && v == 0.0 {
        return lat_distance(lat1d, lat2d);
    }
    let lat1r = deg_rad(lat1d);
    let lat2r = deg_rad(lat2d);
    let u = ((lat2r - lat1r) / 2.0).sin();
    let a = u * u + lat1r.cos() * lat2r.cos() * v * v;
    2.0 * EARTH_RADIUS_IN_METERS * a.sqrt().asin()
}

/// Redis's `pqsort`: Bentley-McIlroy quicksort that only sorts what it
/// takes to get positions `left..=right` right. Kept exactly, since with
/// ties in distance it decides which members `COUNT` keeps.
fn pqsort<T, F>(items: &mut [T], cmp: &F, left: usize, right: usize)
where
    F: Fn(&T, &T) -> std::cmp::Ordering,
{
    use std::cmp::Ordering::{Greater, Less};
    // Segment [a, a + n) of `items`.
    let mut a = 0usize;
    let mut n = items.len();
    loop {
        if n < 7 {
            for pm in a + 1..a + n {
                let mut pl = pm;
                while pl > a && cmp(&items[pl - 1], &items[pl]) == Greater {
                    items.swap(pl, pl - 1);
                    pl -= 1;
                }
            }
            return;
        }
        let med3 = |items: &[T], x: usize, y: usize, z: usize| {
            if cmp(&items[x], &items[y]) == Less {
                if cmp(&items[y], &items[z]) == Less {
                    y
                } else if cmp(&items[x], &items[z]) == Less {
                    z
                } else {
                    x
                }
            } else if cmp(&items[y], &items[z]) == Greater {
                y
            } else if cmp(&items[x], &items[z]) == Less {
                x
            } else {
                z
            }
        };
        let mut pm = a + n / 2;
        if n > 7 {
            let mut pl = a;
            let mut pn = a + n - 1;
            if n > 40 {
                let d = n / 8;
                pl = med3(items, pl, pl + d, pl + 2 * d);
                pm = med3(items, pm - d, pm, pm + d);
                pn = med3(items, pn - 2 * d, pn - d, pn);
            }
            pm = med3(items, pl, pm, pn);
        }
        items.swap(a, pm);
        let (mut pa, mut pb) = (a + 1, a + 1);
        // pc and pd may step below a: kept as signed.
        let mut pc = (a + n - 1) as isize;
        let mut pd = pc;
        loop {
            while pb as isize <= pc {
                let c = cmp(&items[pb], &items[a]);
                if c == Greater {
                    break;
                }
                if c.is_eq() {
                    items.swap(pa, pb);
                    pa += 1;
                }
                pb += 1;
            }
            while pb as isize <= pc {
                let c = cmp(&items[pc as usize], &items[a]);
                if c == Less {
                    break;
                }
                if c.is_eq() {
                    items.swap(pc as usize, pd as usize);
                    pd -= 1;
                }
                pc -= 1;
            }
            if pb as isize > pc {
                break;
            }
            items.swap(pb, pc as usize);
            pb += 1;
            pc -= 1;
        }
        let pn = a + n;
        let r = (pa - a).min(pb - pa);
        vecswap(items, a, pb - r, r);
        let r = ((pd - pc) as usize).min(pn - pd as usize - 1);
        vecswap(items, pb, pn - r, r);
        let overlaps = |start: usize, len: usize| !(right < start || left >= start + len);
        let less = pb - pa;
        if less > 1 && overlaps(a, less) {
            pqsort_segment(items, cmp, a, less, left, right);
        }
        let greater = (pd - pc) as usize;
        if greater > 1 {
            a = pn - greater;
            n = greater;
            if overlaps(a, n) {
                continue;
            }
        }
        return;
    }
}

/// The recursive call on a sub-segment (positions stay absolute).
fn pqsort_segment<T, F>(
    items: &mut [T],
    cmp: &F,
    start: usize,
    len: usize,
    left: usize,
    right: usize,
) where
    F: Fn(&T, &T) -> std::cmp::Ordering,
{
    let segment = &mut items[start..start + len];
    let l = left.saturating_sub(start);
    let r = right.saturating_sub(start).min(len - 1);
    pqsort(segment, cmp, l, r);
}

/// `vecswap`: swaps `n` items at `a` with `n` at `b`.
fn vecswap<T>(items: &mut [T], a: usize, b: usize, n: usize) {
    for i in 0..n {
        items.swap(a + i, b + i);
    }
}

/// A unit's size in meters (`extractUnitOrReply`).
fn unit(name: &[u8]) -> Result<f64, GeoError> {
    match name.to_ascii_lowercase().as_slice() {
        b"m" => Ok(1.0),
        b"km" => Ok(1000.0),
        b"ft" => Ok(0.3048),
        b"mi" => Ok(1609.34),
        _ => Err(GeoError::BadCommand("unit")),
    }
}

/// `<number> <unit>` (`extractDistanceOrReply`): the number and the unit.
fn distance(number: &[u8], unit_name: &[u8]) -> Result<(f64, f64), GeoError> {
    Ok((non_negative(parse_double(number)?)?, unit(unit_name)?))
}

fn non_negative(x: f64) -> Result<f64, GeoError> {
    if x < 0.0 {
        Err(GeoError::BadCommand("negative distance"))
    } else {
        Ok(x)
    }
}

/// Redis's `string2d` over decimal input: `strtod` taking all of the
/// string, no leading space, no NaN.
fn parse_double(text: &[u8]) -> Result<f64, GeoError> {
    let bad = GeoError::BadCommand("not a number");
    let text = std::str::from_utf8(text).map_err(|_| bad.clone())?;
    if text.starts_with(|c: char| c.is_ascii_whitespace()) {
        return Err(bad);
    }
    match text.parse::<f64>() {
        Ok(x) if !x.is_nan() => Ok(x),
        _ => Err(bad),
    }
}

/// Redis's `string2ll`.
fn parse_i64(text: &[u8]) -> Result<i64, GeoError> {
    let bad = GeoError::BadCommand("not an integer");
    let text = std::str::from_utf8(text).map_err(|_| bad.clone())?;
    if text.starts_with('+') || (text.len() > 1 && text.starts_with('0')) || text == "-0" {
        return Err(bad);
    }
    text.parse().map_err(|_| bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store<'z>(
        command: &str,
        zset: &[(f64, &'z [u8])],
    ) -> Result<Vec<(f64, &'z [u8])>, GeoError> {
        let args: Vec<&[u8]> = command.split(' ').map(str::as_bytes).collect();
        GeoStore::parse(&args)?.run(Some(zset), Formula::Since70)
    }

    /// Valkey 9's BYPOLYGON in the forms a master propagates: members in
    /// the polygon by the even-odd rule, scored by geohash or (STOREDIST)
    /// by their distance in meters from the vertices' centroid.
    #[test]
    fn polygon_searches() {
        let places: Vec<(f64, &[u8])> = {
            let mut p: Vec<(f64, &[u8])> = [
                (13.361389, 38.115556, &b"Palermo"[..]),
                (15.087269, 37.502669, b"Catania"),
                (12.758489, 38.788135, b"edge1"),
                (17.241510, 38.788135, b"edge2"),
                (14.0, 37.8, b"notch"),
            ]
            .iter()
            .map(|&(lon, lat, m)| (encode_score(lon, lat), m))
            .collect();
            p.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(b.1)));
            p
        };
        let square = "GEOSEARCHSTORE d s BYPOLYGON 4 12.5 37 16 37 16 38.5 12.5 38.5";
        let names = |stored: Vec<(f64, &[u8])>| {
            let mut n: Vec<Vec<u8>> = stored.iter().map(|(_, m)| m.to_vec()).collect();
            n.sort();
            n
        };
        assert_eq!(
            names(store(square, &places).unwrap()),
            [&b"Catania"[..], b"Palermo", b"notch"]
        );
        // a notch cut out of the square leaves Palermo and notch out (concave)
        let notched =
            "GEOSEARCHSTORE d s BYPOLYGON 6 12.5 37 16 37 16 38.5 14.2 38.5 14.2 37.5 12.5 37.5";
        assert_eq!(names(store(notched, &places).unwrap()), [&b"Catania"[..]]);
        // STOREDIST: meters from the centroid, in distance order with COUNT
        let (clon, clat) = centroid(&[[12.5, 37.0], [16.0, 37.0], [16.0, 38.5], [12.5, 38.5]]);
        assert!((clon - 14.25).abs() < 1e-9 && (clat - 37.763).abs() < 0.001);
        let nearest = store(&format!("{square} ASC COUNT 1 STOREDIST"), &places).unwrap();
        let (lon, lat) = decode_score(encode_score(14.0, 37.8));
        assert_eq!(
            nearest,
            [(
                distance_between(Formula::Since70, clon, clat, lon, lat),
                &b"notch"[..]
            )]
        );
        // what a master refuses (so never propagates), or a FROM option the
        // stored source does not accept with BYPOLYGON, is not computed
        for bad in [
            "GEOSEARCHSTORE d s BYPOLYGON 2 1 1 2 2",
            "GEOSEARCHSTORE d s BYPOLYGON 3 1 1 2 2 3",
            "GEOSEARCHSTORE d s BYPOLYGON 3 1 1 2 2 3 90",
            "GEOSEARCHSTORE d s FROMLONLAT 1 1 BYPOLYGON 3 1 1 2 2 3 3",
            "GEOSEARCHSTORE d s BYPOLYGON 3 1 1 2 2 3 3 BYRADIUS 1 m",
            "GEOSEARCH s BYPOLYGON 3 1 1 2 2 3 3",
        ] {
            let args: Vec<&[u8]> = bad.split(' ').map(str::as_bytes).collect();
            assert!(GeoStore::parse(&args).is_err(), "{bad}");
        }
    }

    #[test]
    fn pnpoly_is_even_odd() {
        let square = [[0.0, 0.0], [2.0, 0.0], [2.0, 2.0], [0.0, 2.0]];
        assert!(in_polygon(&square, 1.0, 1.0));
        assert!(!in_polygon(&square, 3.0, 1.0));
        assert!(!in_polygon(&square, 1.0, -0.5));
        // a self-crossing bow tie: its two triangles are inside
        let bow = [[0.0, 0.0], [2.0, 2.0], [2.0, 0.0], [0.0, 2.0]];
        assert!(in_polygon(&bow, 0.2, 1.0));
        assert!(!in_polygon(&bow, 1.0, 1.8));
        assert!(!in_polygon(&[], 1.0, 1.0));
    }

    #[test]
    fn interleaving_round_trips() {
        for (x, y) in [
            (0u32, 0u32),
            (1, 0),
            (0, 1),
            (0x3ff_ffff, 0x155_5555),
            (12345, 67890),
        ] {
            let d = deinterleave64(interleave64(x, y));
            assert_eq!((d as u32, (d >> 32) as u32), (x, y));
        }
    }

    #[test]
    fn a_score_decodes_to_the_centre_of_its_cell() {
        // GEOADD Sicily 13.361389 38.115556 "Palermo": score 3479099956230698.
        let score = encode_score(13.361389, 38.115556);
        assert_eq!(score, 3_479_099_956_230_698.0);
        let (lon, lat) = decode_score(score);
        assert!((lon - 13.361389).abs() < 1e-5 && (lat - 38.115556).abs() < 1e-5);
    }

    #[test]
    fn palermo_to_catania_is_redis_s_distance() {
        // GEODIST Sicily Palermo Catania: "166274.1516" meters.
        let (a, b) = (
            decode_score(encode_score(13.361389, 38.115556)),
            decode_score(encode_score(15.087269, 37.502669)),
        );
        let d = distance_between(Formula::Since70, a.0, a.1, b.0, b.1);
        assert_eq!(format!("{d:.4}"), "166274.1516");
    }

    #[test]
    fn neighbors_wrap_around_one_cell() {
        let h = HashBits::encode(0.0, 0.0, 3);
        let [n, s, e, w, ..] = h.neighbors();
        let (c, n, s, e, w) = (h.decode(), n.decode(), s.decode(), e.decode(), w.decode());
        assert_eq!(n.lat_min, c.lat_max);
        assert_eq!(s.lat_max, c.lat_min);
        assert_eq!(e.lon_min, c.lon_max);
        assert_eq!(w.lon_max, c.lon_min);
    }

    #[test]
    fn pqsort_puts_the_requested_positions_in_order() {
        use crate::rdb::test_rng::Rng;
        let mut rng = Rng(9);
        for len in [1usize, 5, 7, 8, 40, 41, 100, 1000] {
            let items: Vec<u64> = (0..len).map(|_| rng.next() % 50).collect();
            let mut sorted = items.clone();
            sorted.sort();
            for count in [1, len / 3 + 1, len] {
                let mut partial = items.clone();
                pqsort(&mut partial, &|a: &u64, b: &u64| a.cmp(b), 0, count - 1);
                assert_eq!(partial[..count], sorted[..count], "len {len} count {count}");
            }
        }
    }

    #[test]
    fn only_storing_searches_parse() {
        let parse = |s: &str| {
            let args: Vec<&[u8]> = s.split(' ').map(str::as_bytes).collect();
            GeoStore::parse(&args).map(|g| (g.source.to_vec(), g.dest.to_vec()))
        };
        assert_eq!(
            parse("GEORADIUS src 15 37 200 km STORE dst"),
            Ok((b"src".to_vec(), b"dst".to_vec()))
        );
        assert_eq!(
            parse("geosearchstore dst src FROMMEMBER m BYBOX 1 2 mi count 3 any storedist"),
            Ok((b"src".to_vec(), b"dst".to_vec()))
        );
        assert!(parse("GEORADIUS src 15 37 200 km").is_err());
        assert!(parse("GEORADIUS src 15 37 200 parsec STORE dst").is_err());
        assert!(parse("GEOSEARCHSTORE dst src BYRADIUS 1 m").is_err());
        assert!(parse("GEOSEARCHSTORE dst src FROMLONLAT 1 2 BYRADIUS 1 m ANY").is_err());
        assert!(parse("GEORADIUS src 181 37 200 km STORE dst").is_err());
    }
}

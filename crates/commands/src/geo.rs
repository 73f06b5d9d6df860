//! Geo commands on sorted sets, as in Redis: a member's score is the 52-bit geohash of its
//! position (26 bits of longitude and 26 of latitude, interleaved). Searches read the nine
//! geohash boxes around the centre (as score ranges, never the whole set) and keep the
//! points that are really inside the circle or the box.

use std::ops::Bound;

use bytes::Bytes;
use quarry_resp::{Frame, Protocol};
use quarry_types::ZAddFlags;

use crate::args::{is, parse_f64, parse_i64};
use crate::{CmdError, CmdResult, Ctx};

const LAT_MIN: f64 = -85.05112878;
const LAT_MAX: f64 = 85.05112878;
const LON_MIN: f64 = -180.0;
const LON_MAX: f64 = 180.0;
const STEP_MAX: u32 = 26;
const EARTH_RADIUS_M: f64 = 6372797.560856;
const MERCATOR_MAX: f64 = 20037726.37;

/// A geohash of `step` bits per coordinate: latitude in the even bits, longitude in the odd.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
struct Hash {
    bits: u64,
    step: u32,
}

impl Hash {
    fn is_zero(self) -> bool {
        self.bits == 0 && self.step == 0
    }
}

#[derive(Clone, Copy, Debug)]
struct Area {
    lon_min: f64,
    lon_max: f64,
    lat_min: f64,
    lat_max: f64,
}

/// Spreads the 32 bits of `v` to the even bit positions of a u64.
fn spread(v: u32) -> u64 {
    let mut x = v as u64;
    x = (x | (x << 16)) & 0x0000_FFFF_0000_FFFF;
    x = (x | (x << 8)) & 0x00FF_00FF_00FF_00FF;
    x = (x | (x << 4)) & 0x0F0F_0F0F_0F0F_0F0F;
    x = (x | (x << 2)) & 0x3333_3333_3333_3333;
    (x | (x << 1)) & 0x5555_5555_5555_5555
}

/// The even bits of `v`, packed.
fn squash(v: u64) -> u32 {
    let mut x = v & 0x5555_5555_5555_5555;
    x = (x | (x >> 1)) & 0x3333_3333_3333_3333;
    x = (x | (x >> 2)) & 0x0F0F_0F0F_0F0F_0F0F;
    x = (x | (x >> 4)) & 0x00FF_00FF_00FF_00FF;
    x = (x | (x >> 8)) & 0x0000_FFFF_0000_FFFF;
    x = (x | (x >> 16)) & 0x0000_0000_FFFF_FFFF;
    x as u32
}

/// Encodes a position within the given ranges; None outside them.
fn encode(
    lon_range: (f64, f64),
    lat_range: (f64, f64),
    lon: f64,
    lat: f64,
    step: u32,
) -> Option<Hash> {
    if !(LON_MIN..=LON_MAX).contains(&lon) || !(LAT_MIN..=LAT_MAX).contains(&lat) {
        return None;
    }
    if lat < lat_range.0 || lat > lat_range.1 || lon < lon_range.0 || lon > lon_range.1 {
        return None;
    }
    let scale = (1u64 << step) as f64;
    let lat_off = (lat - lat_range.0) / (lat_range.1 - lat_range.0) * scale;
    let lon_off = (lon - lon_range.0) / (lon_range.1 - lon_range.0) * scale;
    Some(Hash {
        bits: spread(lat_off as u32) | (spread(lon_off as u32) << 1),
        step,
    })
}

fn encode_wgs84(lon: f64, lat: f64, step: u32) -> Option<Hash> {
    encode((LON_MIN, LON_MAX), (LAT_MIN, LAT_MAX), lon, lat, step)
}

fn decode_area(h: Hash) -> Area {
    let lat_i = squash(h.bits) as f64;
    let lon_i = squash(h.bits >> 1) as f64;
    let scale = (1u64 << h.step) as f64;
    Area {
        lat_min: LAT_MIN + (lat_i / scale) * (LAT_MAX - LAT_MIN),
        lat_max: LAT_MIN + ((lat_i + 1.0) / scale) * (LAT_MAX - LAT_MIN),
        lon_min: LON_MIN + (lon_i / scale) * (LON_MAX - LON_MIN),
        lon_max: LON_MIN + ((lon_i + 1.0) / scale) * (LON_MAX - LON_MIN),
    }
}

/// The position a stored score stands for: the centre of its 52-bit box.
fn decode_score(score: f64) -> (f64, f64) {
    let a = decode_area(Hash {
        bits: score as u64,
        step: STEP_MAX,
    });
    let lon = ((a.lon_min + a.lon_max) / 2.0).clamp(LON_MIN, LON_MAX);
    let lat = ((a.lat_min + a.lat_max) / 2.0).clamp(LAT_MIN, LAT_MAX);
    (lon, lat)
}

/// The 52-bit score of a position.
fn score_of(lon: f64, lat: f64) -> Option<f64> {
    encode_wgs84(lon, lat, STEP_MAX).map(|h| h.bits as f64)
}

fn move_x(h: &mut Hash, d: i8) {
    if d == 0 || h.step == 0 {
        return;
    }
    let mut x = h.bits & 0xaaaa_aaaa_aaaa_aaaa;
    let y = h.bits & 0x5555_5555_5555_5555;
    let zz = 0x5555_5555_5555_5555u64 >> (64 - h.step * 2);
    if d > 0 {
        x = x.wrapping_add(zz + 1);
    } else {
        x |= zz;
        x = x.wrapping_sub(zz + 1);
    }
    x &= 0xaaaa_aaaa_aaaa_aaaau64 >> (64 - h.step * 2);
    h.bits = x | y;
}

fn move_y(h: &mut Hash, d: i8) {
    if d == 0 || h.step == 0 {
        return;
    }
    let x = h.bits & 0xaaaa_aaaa_aaaa_aaaa;
    let mut y = h.bits & 0x5555_5555_5555_5555;
    let zz = 0xaaaa_aaaa_aaaa_aaaau64 >> (64 - h.step * 2);
    if d > 0 {
        y = y.wrapping_add(zz + 1);
    } else {
        y |= zz;
        y = y.wrapping_sub(zz + 1);
    }
    y &= 0x5555_5555_5555_5555u64 >> (64 - h.step * 2);
    h.bits = x | y;
}

fn neighbour(h: Hash, dx: i8, dy: i8) -> Hash {
    let mut n = h;
    move_x(&mut n, dx);
    move_y(&mut n, dy);
    n
}

fn deg_rad(d: f64) -> f64 {
    d * std::f64::consts::PI / 180.0
}

fn rad_deg(r: f64) -> f64 {
    r / (std::f64::consts::PI / 180.0)
}

fn lat_distance(lat1: f64, lat2: f64) -> f64 {
    EARTH_RADIUS_M * (deg_rad(lat2) - deg_rad(lat1)).abs()
}

/// Haversine distance in meters, as Redis computes it.
fn distance(lon1: f64, lat1: f64, lon2: f64, lat2: f64) -> f64 {
    let (lat1r, lon1r, lat2r, lon2r) = (deg_rad(lat1), deg_rad(lon1), deg_rad(lat2), deg_rad(lon2));
    let v = ((lon2r - lon1r) / 2.0).sin();
    if v == 0.0 {
        return lat_distance(lat1, lat2);
    }
    let u = ((lat2r - lat1r) / 2.0).sin();
    let a = u * u + lat1r.cos() * lat2r.cos() * v * v;
    2.0 * EARTH_RADIUS_M * a.sqrt().asin()
}

#[derive(Clone, Copy, Debug)]
enum Shape {
    Radius(f64),
    Box { width: f64, height: f64 },
}

/// A search: centre, shape (in the unit given), and the unit's size in meters.
#[derive(Clone, Copy, Debug)]
struct Search {
    lon: f64,
    lat: f64,
    shape: Shape,
    to_meters: f64,
}

impl Search {
    /// The distance of a point from the centre, if the point is inside the shape.
    fn contains(&self, lon: f64, lat: f64) -> Option<f64> {
        match self.shape {
            Shape::Radius(r) => {
                let d = distance(self.lon, self.lat, lon, lat);
                (d <= r * self.to_meters).then_some(d)
            }
            Shape::Box { width, height } => {
                if lat_distance(lat, self.lat) > height * self.to_meters / 2.0 {
                    return None;
                }
                if distance(lon, lat, self.lon, lat) > width * self.to_meters / 2.0 {
                    return None;
                }
                Some(distance(self.lon, self.lat, lon, lat))
            }
        }
    }

    /// [min lon, min lat, max lon, max lat] of the shape.
    fn bounding_box(&self) -> [f64; 4] {
        let (h, w) = match self.shape {
            Shape::Radius(r) => (r, r),
            Shape::Box { width, height } => (height / 2.0, width / 2.0),
        };
        let (h, w) = (h * self.to_meters, w * self.to_meters);
        let lat_delta = rad_deg(h / EARTH_RADIUS_M);
        let lon_delta_top = rad_deg(w / EARTH_RADIUS_M / deg_rad(self.lat + lat_delta).cos());
        let lon_delta_bottom = rad_deg(w / EARTH_RADIUS_M / deg_rad(self.lat - lat_delta).cos());
        let delta = if self.lat < 0.0 {
            lon_delta_bottom
        } else {
            lon_delta_top
        };
        [
            self.lon - delta,
            self.lat - lat_delta,
            self.lon + delta,
            self.lat + lat_delta,
        ]
    }

    /// The centre box and its eight neighbours (zero where not needed), in Redis's order.
    fn areas(&self) -> [Hash; 9] {
        let [min_lon, min_lat, max_lon, max_lat] = self.bounding_box();
        let radius = match self.shape {
            Shape::Radius(r) => r,
            Shape::Box { width, height } => ((width / 2.0).powi(2) + (height / 2.0).powi(2)).sqrt(),
        } * self.to_meters;
        let mut steps = estimate_steps(radius, self.lat);
        let centre = |steps| encode_wgs84(self.lon, self.lat, steps).unwrap_or_default();
        let mut hash = centre(steps);
        let decrease = {
            let n = decode_area(neighbour(hash, 0, 1));
            let s = decode_area(neighbour(hash, 0, -1));
            let e = decode_area(neighbour(hash, 1, 0));
            let w = decode_area(neighbour(hash, -1, 0));
            n.lat_max < max_lat || s.lat_min > min_lat || e.lon_max < max_lon || w.lon_min > min_lon
        };
        if steps > 1 && decrease {
            steps -= 1;
            hash = centre(steps);
        }
        // north, south, east, west, north-east, north-west, south-east, south-west
        let mut n = [
            neighbour(hash, 0, 1),
            neighbour(hash, 0, -1),
            neighbour(hash, 1, 0),
            neighbour(hash, -1, 0),
            neighbour(hash, 1, 1),
            neighbour(hash, -1, 1),
            neighbour(hash, 1, -1),
            neighbour(hash, -1, -1),
        ];
        if steps >= 2 {
            let area = decode_area(hash);
            let zero = Hash::default();
            if area.lat_min < min_lat {
                for i in [1, 6, 7] {
                    n[i] = zero;
                }
            }
            if area.lat_max > max_lat {
                for i in [0, 4, 5] {
                    n[i] = zero;
                }
            }
            if area.lon_min < min_lon {
                for i in [3, 7, 5] {
                    n[i] = zero;
                }
            }
            if area.lon_max > max_lon {
                for i in [2, 6, 4] {
                    n[i] = zero;
                }
            }
        }
        [hash, n[0], n[1], n[2], n[3], n[4], n[5], n[6], n[7]]
    }
}

fn estimate_steps(range_meters: f64, lat: f64) -> u32 {
    if range_meters == 0.0 {
        return STEP_MAX;
    }
    let mut range = range_meters;
    let mut step: i32 = 1;
    while range < MERCATOR_MAX {
        range *= 2.0;
        step += 1;
    }
    step -= 2;
    if !(-66.0..=66.0).contains(&lat) {
        step -= 1;
        if !(-80.0..=80.0).contains(&lat) {
            step -= 1;
        }
    }
    step.clamp(1, STEP_MAX as i32) as u32
}

struct Point {
    member: Vec<u8>,
    dist: f64,
    score: f64,
    lon: f64,
    lat: f64,
}

/// The members of `key` inside the search, reading only the boxes around the centre. With
/// `limit` (ANY), stops once that many were found.
fn search(ctx: &Ctx<'_>, key: &[u8], s: &Search, limit: usize) -> Result<Vec<Point>, CmdError> {
    let mut out = Vec::new();
    let areas = s.areas();
    let mut last: Option<Hash> = None;
    for (i, area) in areas.iter().enumerate() {
        if area.is_zero() {
            continue;
        }
        // Wide searches make neighbours coincide: each box is read once.
        if i > 0 && last == Some(*area) {
            continue;
        }
        if limit > 0 && out.len() >= limit {
            break;
        }
        let shift = 52 - area.step * 2;
        let min = (area.bits << shift) as f64;
        let max = ((area.bits + 1) << shift) as f64;
        let items = ctx.db.zrange_by_score(
            key,
            Bound::Included(min),
            Bound::Excluded(max),
            false,
            0,
            -1,
        )?;
        for (member, score) in items {
            let (lon, lat) = decode_score(score);
            if let Some(dist) = s.contains(lon, lat) {
                out.push(Point {
                    member,
                    dist,
                    score,
                    lon,
                    lat,
                });
                if limit > 0 && out.len() >= limit {
                    break;
                }
            }
        }
        if i > 0 {
            last = Some(*area);
        }
    }
    Ok(out)
}

fn unit(arg: &[u8]) -> Result<f64, CmdError> {
    if is(arg, "m") {
        Ok(1.0)
    } else if is(arg, "km") {
        Ok(1000.0)
    } else if is(arg, "ft") {
        Ok(0.3048)
    } else if is(arg, "mi") {
        Ok(1609.34)
    } else {
        Err(CmdError::err(
            "unsupported unit provided. please use M, KM, FT, MI",
        ))
    }
}

fn float_or(arg: &[u8], msg: &str) -> Result<f64, CmdError> {
    parse_f64(arg).map_err(|_| CmdError::err(msg))
}

fn lon_lat(lon: &[u8], lat: &[u8]) -> Result<(f64, f64), CmdError> {
    let (x, y) = (parse_f64(lon)?, parse_f64(lat)?);
    if !(LON_MIN..=LON_MAX).contains(&x) || !(LAT_MIN..=LAT_MAX).contains(&y) {
        return Err(CmdError::err(format!(
            "invalid longitude,latitude pair {x:.6},{y:.6}"
        )));
    }
    Ok((x, y))
}

fn radius(value: &[u8], u: &[u8]) -> Result<(f64, f64), CmdError> {
    let r = float_or(value, "need numeric radius")?;
    if r < 0.0 {
        return Err(CmdError::err("radius cannot be negative"));
    }
    Ok((r, unit(u)?))
}

/// A coordinate as Redis prints it: 17 decimals, trailing zeros removed.
fn coordinate(ctx: &Ctx<'_>, v: f64) -> Frame {
    if ctx.protocol == Protocol::Resp3 {
        return Frame::Double(v);
    }
    let mut s = format!("{v:.17}");
    if s.contains('.') {
        while s.ends_with('0') {
            s.pop();
        }
        if s.ends_with('.') {
            s.pop();
        }
    }
    Frame::bulk(s)
}

fn dist_frame(d: f64) -> Frame {
    Frame::bulk(format!("{d:.4}"))
}

/// The position of `member`, or the error Redis gives when it is missing.
fn member_position(ctx: &Ctx<'_>, key: &[u8], member: &[u8]) -> Result<(f64, f64), CmdError> {
    match ctx.db.zscore(key, member)? {
        Some(score) => Ok(decode_score(score)),
        None => Err(CmdError::err("could not decode requested zset member")),
    }
}

/// GEOADD key [NX|XX] [CH] longitude latitude member [...]
pub fn geoadd(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let mut flags = ZAddFlags::default();
    let mut ch = false;
    let mut i = 2;
    while i < a.len() {
        if is(&a[i], "nx") {
            flags.nx = true;
        } else if is(&a[i], "xx") {
            flags.xx = true;
        } else if is(&a[i], "ch") {
            ch = true;
        } else {
            break;
        }
        i += 1;
    }
    let rest = &a[i..];
    if rest.is_empty() || !rest.len().is_multiple_of(3) || (flags.nx && flags.xx) {
        return Err(CmdError::Syntax);
    }
    let mut items = Vec::with_capacity(rest.len() / 3);
    for t in rest.chunks(3) {
        let (lon, lat) = lon_lat(&t[0], &t[1])?;
        let score = score_of(lon, lat).ok_or(CmdError::Syntax)?;
        items.push((score, &t[2][..]));
    }
    let out = ctx.db.zadd(&a[1], &items, flags)?;
    Ok(Frame::Integer(
        (out.added + if ch { out.changed } else { 0 }) as i64,
    ))
}

/// GEODIST key member1 member2 [unit]
pub fn geodist(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let to_meters = match a.len() {
        4 => 1.0,
        5 => unit(&a[4])?,
        _ => return Err(CmdError::Syntax),
    };
    let (Some(s1), Some(s2)) = (ctx.db.zscore(&a[1], &a[2])?, ctx.db.zscore(&a[1], &a[3])?) else {
        return Ok(Frame::Null);
    };
    let ((x1, y1), (x2, y2)) = (decode_score(s1), decode_score(s2));
    Ok(dist_frame(distance(x1, y1, x2, y2) / to_meters))
}

/// GEOHASH key [member ...]: the standard 11-character geohash (latitude over ±90).
pub fn geohash(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    const ALPHABET: &[u8; 32] = b"0123456789bcdefghjkmnpqrstuvwxyz";
    // WRONGTYPE even when no member is asked for.
    ctx.db.zcard(&a[1])?;
    let mut out = Vec::with_capacity(a.len() - 2);
    for m in &a[2..] {
        let Some(score) = ctx.db.zscore(&a[1], m)? else {
            out.push(Frame::Null);
            continue;
        };
        let (lon, lat) = decode_score(score);
        let Some(h) = encode((-180.0, 180.0), (-90.0, 90.0), lon, lat, STEP_MAX) else {
            out.push(Frame::Null);
            continue;
        };
        let text: Vec<u8> = (0..11)
            .map(|i| {
                let idx = if i == 10 {
                    0
                } else {
                    (h.bits >> (52 - (i + 1) * 5)) & 0x1f
                };
                ALPHABET[idx as usize]
            })
            .collect();
        out.push(Frame::bulk(text));
    }
    Ok(Frame::Array(out))
}

/// GEOPOS key [member ...]
pub fn geopos(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    ctx.db.zcard(&a[1])?;
    let mut out = Vec::with_capacity(a.len() - 2);
    for m in &a[2..] {
        match ctx.db.zscore(&a[1], m)? {
            None => out.push(Frame::NullArray),
            Some(score) => {
                let (lon, lat) = decode_score(score);
                out.push(Frame::Array(vec![
                    coordinate(ctx, lon),
                    coordinate(ctx, lat),
                ]));
            }
        }
    }
    Ok(Frame::Array(out))
}

#[derive(Clone, Copy, PartialEq)]
enum Variant {
    Radius,
    RadiusByMember,
    Search,
    SearchStore,
}

/// GEORADIUS, GEORADIUSBYMEMBER (and their _RO forms), GEOSEARCH and GEOSEARCHSTORE.
fn radius_generic(ctx: &mut Ctx<'_>, a: &[Bytes], variant: Variant, no_store: bool) -> CmdResult {
    let src_index = if variant == Variant::SearchStore {
        2
    } else {
        1
    };
    let src = &a[src_index];
    let exists = ctx.db.zcard(src)? > 0;
    let mut centre: Option<(f64, f64)> = None;
    let mut shape: Option<(Shape, f64)> = None;
    let base = match variant {
        Variant::Radius => {
            centre = Some(lon_lat(&a[2], &a[3])?);
            let (r, u) = radius(&a[4], &a[5])?;
            shape = Some((Shape::Radius(r), u));
            6
        }
        Variant::RadiusByMember => {
            if exists {
                centre = Some(member_position(ctx, src, &a[2])?);
                let (r, u) = radius(&a[3], &a[4])?;
                shape = Some((Shape::Radius(r), u));
            }
            5
        }
        Variant::Search => 2,
        Variant::SearchStore => 3,
    };
    let search_cmd = matches!(variant, Variant::Search | Variant::SearchStore);
    let (mut withdist, mut withhash, mut withcoord, mut any) = (false, false, false, false);
    let mut sort: Option<bool> = None; // Some(true) = ascending
    let mut count: usize = 0;
    let mut store: Option<Bytes> = (variant == Variant::SearchStore).then(|| a[1].clone());
    let mut storedist = false;
    let (mut frommember, mut fromloc, mut byradius, mut bybox) = (false, false, false, false);
    let rest = &a[base.min(a.len())..];
    let mut i = 0;
    while i < rest.len() {
        let arg = &rest[i];
        let left = rest.len() - i - 1;
        if is(arg, "withdist") {
            withdist = true;
        } else if is(arg, "withhash") {
            withhash = true;
        } else if is(arg, "withcoord") {
            withcoord = true;
        } else if is(arg, "any") {
            any = true;
        } else if is(arg, "asc") {
            sort = Some(true);
        } else if is(arg, "desc") {
            sort = Some(false);
        } else if is(arg, "count") && left >= 1 {
            let n = parse_i64(&rest[i + 1])?;
            if n <= 0 {
                return Err(CmdError::err("COUNT must be > 0"));
            }
            count = n as usize;
            i += 1;
        } else if (is(arg, "store") || is(arg, "storedist"))
            && left >= 1
            && !no_store
            && !search_cmd
        {
            store = Some(rest[i + 1].clone());
            storedist = is(arg, "storedist");
            i += 1;
        } else if is(arg, "storedist") && variant == Variant::SearchStore {
            storedist = true;
        } else if is(arg, "frommember") && left >= 1 && search_cmd && !fromloc {
            if exists {
                centre = Some(member_position(ctx, src, &rest[i + 1])?);
            }
            frommember = true;
            i += 1;
        } else if is(arg, "fromlonlat") && left >= 2 && search_cmd && !frommember {
            centre = Some(lon_lat(&rest[i + 1], &rest[i + 2])?);
            fromloc = true;
            i += 2;
        } else if is(arg, "byradius") && left >= 2 && search_cmd && !bybox {
            let (r, u) = radius(&rest[i + 1], &rest[i + 2])?;
            shape = Some((Shape::Radius(r), u));
            byradius = true;
            i += 2;
        } else if is(arg, "bybox") && left >= 3 && search_cmd && !byradius {
            let w = float_or(&rest[i + 1], "need numeric width")?;
            let h = float_or(&rest[i + 2], "need numeric height")?;
            if w < 0.0 || h < 0.0 {
                return Err(CmdError::err("height or width cannot be negative"));
            }
            shape = Some((
                Shape::Box {
                    width: w,
                    height: h,
                },
                unit(&rest[i + 3])?,
            ));
            bybox = true;
            i += 3;
        } else {
            return Err(CmdError::Syntax);
        }
        i += 1;
    }
    if store.is_some() && (withdist || withhash || withcoord) {
        return Err(CmdError::err(format!(
            "{} is not compatible with WITHDIST, WITHHASH and WITHCOORD options",
            if variant == Variant::SearchStore {
                "GEOSEARCHSTORE"
            } else {
                "STORE option in GEORADIUS"
            }
        )));
    }
    let name = String::from_utf8_lossy(&a[0]).to_string();
    if search_cmd && !(frommember || fromloc) {
        return Err(CmdError::err(format!(
            "exactly one of FROMMEMBER or FROMLONLAT can be specified for {name}"
        )));
    }
    if search_cmd && !(byradius || bybox) {
        return Err(CmdError::err(format!(
            "exactly one of BYRADIUS and BYBOX can be specified for {name}"
        )));
    }
    if any && count == 0 {
        return Err(CmdError::err("the ANY argument requires COUNT argument"));
    }
    let (Some((lon, lat)), Some((shape, to_meters)), true) = (centre, shape, exists) else {
        return Ok(match store {
            Some(dst) => {
                ctx.db.zstore(&dst, &[])?;
                Frame::Integer(0)
            }
            None => Frame::Array(Vec::new()),
        });
    };
    if count != 0 && sort.is_none() && !any {
        sort = Some(true);
    }
    let s = Search {
        lon,
        lat,
        shape,
        to_meters,
    };
    let mut points = search(ctx, src, &s, if any { count } else { 0 })?;
    match sort {
        Some(true) => points.sort_by(|x, y| x.dist.total_cmp(&y.dist)),
        Some(false) => points.sort_by(|x, y| y.dist.total_cmp(&x.dist)),
        None => {}
    }
    if count > 0 {
        points.truncate(count);
    }
    if let Some(dst) = store {
        let items: Vec<(Vec<u8>, f64)> = points
            .into_iter()
            .map(|p| {
                let score = if storedist {
                    p.dist / to_meters
                } else {
                    p.score
                };
                (p.member, score)
            })
            .collect();
        ctx.db.zstore(&dst, &items)?;
        return Ok(Frame::Integer(items.len() as i64));
    }
    let with_any = withdist || withhash || withcoord;
    let replies = points
        .into_iter()
        .map(|p| {
            if !with_any {
                return Frame::bulk(p.member);
            }
            let mut item = vec![Frame::bulk(p.member)];
            if withdist {
                item.push(dist_frame(p.dist / to_meters));
            }
            if withhash {
                item.push(Frame::Integer(p.score as i64));
            }
            if withcoord {
                item.push(Frame::Array(vec![
                    coordinate(ctx, p.lon),
                    coordinate(ctx, p.lat),
                ]));
            }
            Frame::Array(item)
        })
        .collect();
    Ok(Frame::Array(replies))
}

pub fn georadius(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    radius_generic(ctx, a, Variant::Radius, false)
}

pub fn georadius_ro(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    radius_generic(ctx, a, Variant::Radius, true)
}

pub fn georadiusbymember(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    radius_generic(ctx, a, Variant::RadiusByMember, false)
}

pub fn georadiusbymember_ro(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    radius_generic(ctx, a, Variant::RadiusByMember, true)
}

pub fn geosearch(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    radius_generic(ctx, a, Variant::Search, true)
}

pub fn geosearchstore(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    radius_generic(ctx, a, Variant::SearchStore, false)
}

/// The position of a STORE/STOREDIST destination in GEORADIUS and GEORADIUSBYMEMBER, for key
/// extraction (routing, locks).
pub fn store_key_position(name: &str, args: &[Bytes]) -> Option<usize> {
    let base = match name {
        "georadius" => 6,
        "georadiusbymember" => 5,
        _ => return None,
    };
    let stores = args.len().saturating_sub(1);
    (base..stores)
        .rev()
        .find(|&i| is(&args[i], "store") || is(&args[i], "storedist"))
        .map(|i| i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Redis's documented example: Palermo and Catania.
    const PALERMO: (f64, f64) = (13.361389, 38.115556);
    const CATANIA: (f64, f64) = (15.087269, 37.502669);

    #[test]
    fn scores_positions_and_hashes_match_redis() {
        let p = score_of(PALERMO.0, PALERMO.1).unwrap();
        assert_eq!(p, 3479099956230698.0);
        let c = score_of(CATANIA.0, CATANIA.1).unwrap();
        assert_eq!(c, 3479447370796909.0);
        let (lon, lat) = decode_score(p);
        assert_eq!(format!("{lon:.17}"), "13.36138933897018433");
        assert_eq!(format!("{lat:.17}"), "38.11555639549629859");
        let (x2, y2) = decode_score(c);
        assert_eq!(format!("{:.4}", distance(lon, lat, x2, y2)), "166274.1516");
    }

    #[test]
    fn interleaving_round_trips() {
        for v in [0u32, 1, 0xdead_beef, u32::MAX, 0x0300_0001] {
            assert_eq!(squash(spread(v)), v);
            assert_eq!(squash(spread(v) << 1 >> 1), v);
        }
    }

    #[test]
    fn steps_follow_the_radius_and_the_latitude() {
        assert_eq!(estimate_steps(0.0, 0.0), 26);
        // 200 km doubles 7 times to pass the Mercator width: 1 + 7 - 2.
        assert_eq!(estimate_steps(200_000.0, 38.0), 6);
        assert_eq!(estimate_steps(200_000.0, 70.0), 5);
        assert_eq!(estimate_steps(200_000.0, 85.0), 4);
        assert_eq!(estimate_steps(1.0, 0.0), 24);
    }

    #[test]
    fn neighbours_move_one_box() {
        let h = encode_wgs84(PALERMO.0, PALERMO.1, 10).unwrap();
        let a = decode_area(h);
        let e = decode_area(neighbour(h, 1, 0));
        let n = decode_area(neighbour(h, 0, 1));
        assert!((e.lon_min - a.lon_max).abs() < 1e-9);
        assert!((n.lat_min - a.lat_max).abs() < 1e-9);
        assert!((e.lat_min - a.lat_min).abs() < 1e-9);
    }
}

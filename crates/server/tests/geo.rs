//! Geo commands through the real binary.

mod common;
use common::{err, q, TestServer};

fn sicily(c: &mut redis::Connection) {
    let n: i64 = q(
        c,
        &[
            "GEOADD",
            "Sicily",
            "13.361389",
            "38.115556",
            "Palermo",
            "15.087269",
            "37.502669",
            "Catania",
        ],
    );
    assert_eq!(n, 2);
}

#[test]
fn positions_distances_and_hashes_as_redis_answers_them() {
    let s = TestServer::start();
    let mut c = s.conn();
    sicily(&mut c);
    // The score is the 52-bit geohash, readable with the sorted-set commands.
    assert_eq!(
        q::<String>(&mut c, &["ZSCORE", "Sicily", "Palermo"]),
        "3479099956230698"
    );
    assert_eq!(
        q::<String>(&mut c, &["GEODIST", "Sicily", "Palermo", "Catania"]),
        "166274.1516"
    );
    assert_eq!(
        q::<String>(&mut c, &["GEODIST", "Sicily", "Palermo", "Catania", "km"]),
        "166.2742"
    );
    assert_eq!(
        q::<Option<String>>(&mut c, &["GEODIST", "Sicily", "Palermo", "Nowhere"]),
        None
    );
    assert_eq!(
        q::<Vec<Option<String>>>(&mut c, &["GEOHASH", "Sicily", "Palermo", "Catania", "x"]),
        [Some("sqc8b49rny0".into()), Some("sqdtr74hyu0".into()), None]
    );
    let pos: Vec<Option<Vec<String>>> = q(&mut c, &["GEOPOS", "Sicily", "Palermo", "x"]);
    assert_eq!(
        pos,
        [
            Some(vec![
                "13.36138933897018433".to_string(),
                "38.11555639549629859".to_string()
            ]),
            None
        ]
    );
    // NX/XX/CH as ZADD: moving Palermo changes one member.
    assert_eq!(
        q::<i64>(
            &mut c,
            &["GEOADD", "Sicily", "XX", "CH", "13.5", "38.1", "Palermo"]
        ),
        1
    );
    assert_eq!(
        q::<i64>(
            &mut c,
            &["GEOADD", "Sicily", "NX", "13.5", "38.1", "Palermo"]
        ),
        0
    );
}

#[test]
fn radius_and_box_searches_with_their_options() {
    let s = TestServer::start();
    let mut c = s.conn();
    sicily(&mut c);
    let near: Vec<(String, String)> = q(
        &mut c,
        &[
            "GEORADIUS",
            "Sicily",
            "15",
            "37",
            "200",
            "km",
            "WITHDIST",
            "ASC",
        ],
    );
    assert_eq!(
        near,
        [
            ("Catania".to_string(), "56.4413".to_string()),
            ("Palermo".to_string(), "190.4424".to_string())
        ]
    );
    assert_eq!(
        q::<Vec<String>>(
            &mut c,
            &["GEORADIUS", "Sicily", "15", "37", "200", "km", "COUNT", "1"]
        ),
        ["Catania"]
    );
    assert_eq!(
        q::<Vec<String>>(
            &mut c,
            &["GEORADIUSBYMEMBER", "Sicily", "Palermo", "100", "km"]
        ),
        ["Palermo"]
    );
    assert_eq!(
        q::<Vec<String>>(
            &mut c,
            &[
                "GEOSEARCH",
                "Sicily",
                "FROMLONLAT",
                "15",
                "37",
                "BYBOX",
                "400",
                "400",
                "km",
                "DESC"
            ]
        ),
        ["Palermo", "Catania"]
    );
    // STORE keeps the geohash scores; STOREDIST stores distances in the unit asked.
    assert_eq!(
        q::<i64>(
            &mut c,
            &[
                "GEOSEARCHSTORE",
                "dst",
                "Sicily",
                "FROMMEMBER",
                "Catania",
                "BYRADIUS",
                "500",
                "km",
                "STOREDIST"
            ]
        ),
        2
    );
    assert_eq!(q::<String>(&mut c, &["ZSCORE", "dst", "Catania"]), "0");
    assert_eq!(
        q::<i64>(
            &mut c,
            &[
                "GEORADIUS",
                "Sicily",
                "15",
                "37",
                "200",
                "km",
                "STORE",
                "dst2"
            ]
        ),
        2
    );
    assert_eq!(
        q::<String>(&mut c, &["ZSCORE", "dst2", "Palermo"]),
        "3479099956230698"
    );
    // Nothing found: the destination is removed.
    assert_eq!(
        q::<i64>(
            &mut c,
            &["GEORADIUS", "Sicily", "0", "0", "1", "km", "STORE", "dst2"]
        ),
        0
    );
    assert_eq!(q::<i64>(&mut c, &["EXISTS", "dst2"]), 0);
    // A missing key is an empty result.
    assert!(q::<Vec<String>>(&mut c, &["GEORADIUS", "none", "15", "37", "200", "km"]).is_empty());
}

#[test]
fn geo_errors() {
    let s = TestServer::start();
    let mut c = s.conn();
    sicily(&mut c);
    let _: () = q(&mut c, &["SET", "str", "x"]);
    assert!(err(&mut c, &["GEOADD", "str", "1", "1", "m"]).starts_with("WRONGTYPE"));
    assert!(err(&mut c, &["GEOPOS", "str", "m"]).starts_with("WRONGTYPE"));
    assert_eq!(
        err(&mut c, &["GEOADD", "k", "200", "1", "m"]),
        "ERR invalid longitude,latitude pair 200.000000,1.000000"
    );
    assert_eq!(
        err(&mut c, &["GEOADD", "k", "1", "1", "m", "2"]),
        "ERR syntax error"
    );
    assert_eq!(
        err(&mut c, &["GEOADD", "k", "NX", "XX", "1", "1", "m"]),
        "ERR syntax error"
    );
    assert_eq!(
        err(&mut c, &["GEODIST", "Sicily", "Palermo", "Catania", "yd"]),
        "ERR unsupported unit provided. please use M, KM, FT, MI"
    );
    assert_eq!(
        err(&mut c, &["GEORADIUS", "Sicily", "15", "37", "-1", "km"]),
        "ERR radius cannot be negative"
    );
    assert_eq!(
        err(&mut c, &["GEORADIUSBYMEMBER", "Sicily", "Rome", "1", "km"]),
        "ERR could not decode requested zset member"
    );
    assert_eq!(
        err(
            &mut c,
            &[
                "GEOSEARCH",
                "Sicily",
                "BYRADIUS",
                "1",
                "km",
                "ASC",
                "WITHDIST"
            ]
        ),
        "ERR exactly one of FROMMEMBER or FROMLONLAT can be specified for GEOSEARCH"
    );
    assert_eq!(
        err(
            &mut c,
            &[
                "GEOSEARCH",
                "Sicily",
                "FROMLONLAT",
                "1",
                "1",
                "ASC",
                "WITHDIST"
            ]
        ),
        "ERR exactly one of BYRADIUS and BYBOX can be specified for GEOSEARCH"
    );
    assert_eq!(
        err(
            &mut c,
            &["GEORADIUS", "Sicily", "15", "37", "1", "km", "ANY"]
        ),
        "ERR the ANY argument requires COUNT argument"
    );
    assert_eq!(
        err(
            &mut c,
            &["GEORADIUS", "Sicily", "15", "37", "1", "km", "WITHDIST", "STORE", "x"]
        ),
        "ERR STORE option in GEORADIUS is not compatible with WITHDIST, WITHHASH and WITHCOORD options"
    );
    assert_eq!(
        err(
            &mut c,
            &[
                "GEORADIUS_RO",
                "Sicily",
                "15",
                "37",
                "1",
                "km",
                "STORE",
                "x"
            ]
        ),
        "ERR syntax error"
    );
}

/// On a large set a search reads only the boxes around its centre, and finds exactly what a
/// brute-force distance check finds.
#[test]
fn a_search_on_100k_points_matches_brute_force() {
    let s = TestServer::start();
    let mut c = s.conn();
    let mut points = Vec::new();
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    for chunk in 0..100 {
        let mut cmd = redis::cmd("GEOADD");
        cmd.arg("pts");
        for i in 0..1000 {
            let lon = -10.0 + 20.0 * next();
            let lat = 35.0 + 20.0 * next();
            let name = format!("p{}", chunk * 1000 + i);
            cmd.arg(lon).arg(lat).arg(&name);
            points.push((name, lon, lat));
        }
        let _: i64 = cmd.query(&mut c).unwrap();
    }
    let found: Vec<(String, String)> = q(
        &mut c,
        &[
            "GEORADIUS",
            "pts",
            "2.35",
            "48.85",
            "50",
            "km",
            "WITHDIST",
            "ASC",
        ],
    );
    // Brute force with the same haversine; positions are the stored (rounded) ones, so the
    // expectation excludes points within a few meters of the edge.
    let r = 6372797.560856;
    let dist = |lon: f64, lat: f64| {
        let (a1, b1, a2, b2) = (
            48.85f64.to_radians(),
            2.35f64.to_radians(),
            lat.to_radians(),
            lon.to_radians(),
        );
        let u = ((a2 - a1) / 2.0).sin();
        let v = ((b2 - b1) / 2.0).sin();
        2.0 * r * (u * u + a1.cos() * a2.cos() * v * v).sqrt().asin()
    };
    let must: Vec<&String> = points
        .iter()
        .filter(|(_, lon, lat)| dist(*lon, *lat) < 49_990.0)
        .map(|(n, _, _)| n)
        .collect();
    let names: Vec<&String> = found.iter().map(|(n, _)| n).collect();
    assert!(!must.is_empty());
    for n in &must {
        assert!(
            names.contains(n),
            "{n} is inside the radius but was not found"
        );
    }
    for (n, d) in &found {
        let d: f64 = d.parse().unwrap();
        assert!(d <= 50.0, "{n} at {d} km");
    }
    assert!(found.len() <= must.len() + 5);
    // Ascending distances.
    let ds: Vec<f64> = found.iter().map(|(_, d)| d.parse().unwrap()).collect();
    assert!(ds.windows(2).all(|w| w[0] <= w[1]));
}

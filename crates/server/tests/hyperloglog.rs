//! HyperLogLog through the real binary: counts equal Redis' for the same elements (same hash
//! and estimator), PFMERGE, and the type checks.

mod common;
use common::{err, q, TestServer};

fn add_all(c: &mut redis::Connection, key: &str, elements: &[String]) -> i64 {
    let mut cmd = redis::cmd("PFADD");
    cmd.arg(key);
    for e in elements {
        cmd.arg(e);
    }
    cmd.query(c).unwrap()
}

#[test]
fn counts_match_redis_and_merge_unions() {
    let s = TestServer::start();
    let mut c = s.conn();
    let letters: Vec<String> = "abcdefg".chars().map(|ch| ch.to_string()).collect();
    assert_eq!(add_all(&mut c, "h", &letters), 1);
    assert_eq!(add_all(&mut c, "h", &letters), 0, "nothing changed");
    for i in 1..=5 {
        let batch: Vec<String> = (i * 1000..=i * 1000 + 999)
            .map(|n| format!("x{n}"))
            .collect();
        add_all(&mut c, "h", &batch);
    }
    // Redis 7.0.15 answers 5020 for these 5,007 elements.
    assert_eq!(q::<i64>(&mut c, &["PFCOUNT", "h"]), 5020);

    assert_eq!(
        q::<i64>(&mut c, &["PFADD", "empty"]),
        1,
        "PFADD with no element creates the key"
    );
    assert_eq!(q::<i64>(&mut c, &["PFADD", "empty"]), 0);
    assert_eq!(q::<i64>(&mut c, &["PFCOUNT", "empty", "missing"]), 0);
    let _: i64 = q(&mut c, &["PFADD", "one", "a", "b", "zz"]);
    // Redis gives 5020 for the union and the merge too.
    assert_eq!(q::<i64>(&mut c, &["PFCOUNT", "one", "h"]), 5020);
    let _: () = q(&mut c, &["PFMERGE", "m", "one", "h", "missing"]);
    assert_eq!(q::<i64>(&mut c, &["PFCOUNT", "m"]), 5020);
    assert_eq!(q::<String>(&mut c, &["TYPE", "m"]), "hyperloglog");
    let _: () = q(&mut c, &["SET", "str", "v"]);
    assert!(err(&mut c, &["PFADD", "str", "a"]).starts_with("WRONGTYPE"));
    assert!(err(&mut c, &["PFCOUNT", "h", "str"]).starts_with("WRONGTYPE"));
}

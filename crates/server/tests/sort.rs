//! SORT and SORT_RO through the real binary.

mod common;
use common::{err, q, TestServer};

#[test]
fn sort_by_get_limit_alpha_and_store() {
    let s = TestServer::start();
    let mut c = s.conn();
    let _: i64 = q(&mut c, &["RPUSH", "l", "3", "1", "2"]);
    assert_eq!(q::<Vec<String>>(&mut c, &["SORT", "l"]), ["1", "2", "3"]);
    assert_eq!(
        q::<Vec<String>>(&mut c, &["SORT", "l", "DESC", "LIMIT", "0", "2"]),
        ["3", "2"]
    );
    // BY weights in other keys and in hash fields; GET patterns and `#`.
    for (id, w) in [("1", "30"), ("2", "10"), ("3", "20")] {
        let _: () = q(&mut c, &["SET", &format!("w_{id}"), w]);
        let _: i64 = q(
            &mut c,
            &["HSET", &format!("obj_{id}"), "name", &format!("n{id}")],
        );
    }
    assert_eq!(
        q::<Vec<String>>(&mut c, &["SORT", "l", "BY", "w_*"]),
        ["2", "3", "1"]
    );
    let v: Vec<Option<String>> = q(
        &mut c,
        &[
            "SORT",
            "l",
            "BY",
            "w_*",
            "GET",
            "#",
            "GET",
            "obj_*->name",
            "GET",
            "nope_*",
        ],
    );
    assert_eq!(
        v,
        [
            Some("2".into()),
            Some("n2".into()),
            None,
            Some("3".into()),
            Some("n3".into()),
            None,
            Some("1".into()),
            Some("n1".into()),
            None,
        ]
    );
    // nosort keeps the list order.
    assert_eq!(
        q::<Vec<String>>(&mut c, &["SORT", "l", "BY", "nosort"]),
        ["3", "1", "2"]
    );
    let _: i64 = q(&mut c, &["SADD", "s", "b", "a", "c"]);
    assert_eq!(
        q::<Vec<String>>(&mut c, &["SORT", "s", "ALPHA"]),
        ["a", "b", "c"]
    );
    assert_eq!(
        err(&mut c, &["SORT", "s"]),
        "ERR One or more scores can't be converted into double"
    );
    assert_eq!(q::<i64>(&mut c, &["SORT", "l", "STORE", "dst"]), 3);
    assert_eq!(
        q::<Vec<String>>(&mut c, &["LRANGE", "dst", "0", "-1"]),
        ["1", "2", "3"]
    );
    assert_eq!(
        q::<Vec<String>>(&mut c, &["SORT_RO", "l", "DESC"]),
        ["3", "2", "1"]
    );
    assert_eq!(
        err(&mut c, &["SORT_RO", "l", "STORE", "x"]),
        "ERR syntax error"
    );
    let _: () = q(&mut c, &["SET", "str", "v"]);
    assert!(err(&mut c, &["SORT", "str"]).starts_with("WRONGTYPE"));
    assert_eq!(
        q::<Vec<String>>(&mut c, &["SORT", "missing"]),
        Vec::<String>::new()
    );
}

//! Kvrocks' sorted integers through the real binary.

mod common;
use common::{err, q, TestServer};

#[test]
fn sorted_integers_add_remove_and_range() {
    let s = TestServer::start();
    let mut c = s.conn();
    assert_eq!(
        q::<i64>(&mut c, &["SIADD", "si", "5", "1", "9", "3", "5"]),
        4
    );
    assert_eq!(q::<i64>(&mut c, &["SIADD", "si", "3", "7"]), 1);
    assert_eq!(q::<i64>(&mut c, &["SICARD", "si"]), 5);
    assert_eq!(
        q::<Vec<i64>>(&mut c, &["SIEXISTS", "si", "1", "2", "9"]),
        [1, 0, 1]
    );
    assert_eq!(
        q::<Vec<String>>(&mut c, &["SIRANGE", "si", "0", "3"]),
        ["1", "3", "5"]
    );
    assert_eq!(
        q::<Vec<String>>(&mut c, &["SIRANGE", "si", "1", "2"]),
        ["3", "5"]
    );
    // A cursor continues after the id it names.
    assert_eq!(
        q::<Vec<String>>(&mut c, &["SIRANGE", "si", "0", "2", "CURSOR", "3"]),
        ["5", "7"]
    );
    assert_eq!(
        q::<Vec<String>>(&mut c, &["SIREVRANGE", "si", "0", "2"]),
        ["9", "7"]
    );
    assert_eq!(
        q::<Vec<String>>(&mut c, &["SIRANGEBYVALUE", "si", "(3", "9"]),
        ["5", "7", "9"]
    );
    assert_eq!(
        q::<Vec<String>>(
            &mut c,
            &["SIRANGEBYVALUE", "si", "-inf", "+inf", "LIMIT", "1", "2"]
        ),
        ["3", "5"]
    );
    assert_eq!(
        q::<Vec<String>>(&mut c, &["SIREVRANGEBYVALUE", "si", "7", "(1"]),
        ["7", "5", "3"]
    );
    assert_eq!(
        err(&mut c, &["SIRANGEBYVALUE", "si", "+inf", "1"]),
        "ERR min > max"
    );
    assert_eq!(
        err(&mut c, &["SIADD", "si", "-1"]),
        "ERR value is not an integer or out of range"
    );
    assert_eq!(q::<i64>(&mut c, &["SIREM", "si", "1", "3", "100"]), 2);
    assert_eq!(q::<String>(&mut c, &["TYPE", "si"]), "sortedint");
    assert_eq!(q::<i64>(&mut c, &["SIREM", "si", "5", "7", "9"]), 3);
    assert_eq!(q::<i64>(&mut c, &["EXISTS", "si"]), 0);
    let _: () = q(&mut c, &["SET", "str", "x"]);
    assert!(err(&mut c, &["SIADD", "str", "1"]).starts_with("WRONGTYPE"));
}

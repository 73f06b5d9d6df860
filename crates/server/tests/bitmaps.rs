//! Bit commands through the real binary, on strings and on Kvrocks bitmaps.

mod common;
use common::{err, info_number, q, TestServer};

#[test]
fn bits_of_strings_and_bitmaps() {
    let s = TestServer::start();
    let mut c = s.conn();
    // A string keeps its type; its bits are Redis'.
    let _: () = q(&mut c, &["SET", "str", "A"]);
    assert_eq!(q::<i64>(&mut c, &["SETBIT", "str", "8", "1"]), 0);
    assert_eq!(q::<String>(&mut c, &["TYPE", "str"]), "string");
    assert_eq!(q::<Vec<u8>>(&mut c, &["GET", "str"]), vec![0x41, 0x80]);
    // A new key is a bitmap that reads as the same string.
    for bit in [1, 3, 17] {
        let _: i64 = q(&mut c, &["SETBIT", "bm", &bit.to_string(), "1"]);
    }
    assert_eq!(
        q::<Vec<u8>>(&mut c, &["GET", "bm"]),
        vec![0b0101_0000, 0, 0b0100_0000]
    );
    assert_eq!(q::<i64>(&mut c, &["GETBIT", "bm", "3"]), 1);
    assert_eq!(q::<i64>(&mut c, &["GETBIT", "bm", "1000000"]), 0);
    assert_eq!(q::<i64>(&mut c, &["BITCOUNT", "bm"]), 3);
    assert_eq!(q::<i64>(&mut c, &["BITCOUNT", "bm", "0", "0"]), 2);
    assert_eq!(q::<i64>(&mut c, &["BITCOUNT", "bm", "2", "17", "BIT"]), 2);
    assert_eq!(q::<i64>(&mut c, &["BITCOUNT", "bm", "-1", "-1"]), 1);
    assert_eq!(q::<i64>(&mut c, &["BITPOS", "bm", "1"]), 1);
    assert_eq!(q::<i64>(&mut c, &["BITPOS", "bm", "1", "1"]), 17);
    assert_eq!(
        q::<i64>(&mut c, &["BITPOS", "bm", "0", "0", "-1", "BIT"]),
        0
    );
    assert_eq!(q::<i64>(&mut c, &["BITPOS", "missing", "0"]), 0);
    assert_eq!(q::<i64>(&mut c, &["BITPOS", "missing", "1"]), -1);
    let _: () = q(&mut c, &["SET", "zero", "\u{0}"]);
    assert_eq!(q::<i64>(&mut c, &["BITOP", "NOT", "ones", "zero"]), 1);
    assert_eq!(q::<i64>(&mut c, &["BITPOS", "ones", "0"]), 8);
    assert_eq!(q::<i64>(&mut c, &["BITPOS", "ones", "0", "0", "0"]), -1);
    // BITOP over both kinds.
    assert_eq!(q::<i64>(&mut c, &["BITOP", "OR", "dst", "bm", "str"]), 3);
    assert_eq!(
        q::<Vec<u8>>(&mut c, &["GET", "dst"]),
        vec![0x51, 0x80, 0x40]
    );
    assert_eq!(q::<i64>(&mut c, &["BITOP", "NOT", "dst", "ones"]), 1);
    assert_eq!(q::<Vec<u8>>(&mut c, &["GET", "dst"]), vec![0]);
    assert_eq!(q::<i64>(&mut c, &["BITOP", "AND", "dst", "missing"]), 0);
    assert_eq!(q::<i64>(&mut c, &["EXISTS", "dst"]), 0);
    assert_eq!(
        err(&mut c, &["BITOP", "NOT", "dst", "a", "b"]),
        "ERR BITOP NOT must be called with a single source key."
    );
    assert_eq!(
        err(&mut c, &["SETBIT", "bm", "1", "2"]),
        "ERR bit is not an integer or out of range"
    );
    assert_eq!(
        err(&mut c, &["SETBIT", "bm", "4294967296", "1"]),
        "ERR bit offset is not an integer or out of range"
    );
    let _: i64 = q(&mut c, &["RPUSH", "list", "x"]);
    assert!(err(&mut c, &["GETBIT", "list", "0"]).starts_with("WRONGTYPE"));
    assert!(err(&mut c, &["SETBIT", "list", "0", "1"]).starts_with("WRONGTYPE"));
}

#[test]
fn bitfield_reads_writes_and_overflows() {
    let s = TestServer::start();
    let mut c = s.conn();
    let r: Vec<Option<i64>> = q(
        &mut c,
        &[
            "BITFIELD", "bf", "SET", "i8", "0", "-100", "GET", "i8", "0", "GET", "u8", "0",
        ],
    );
    assert_eq!(r, [Some(0), Some(-100), Some(156)]);
    let r: Vec<Option<i64>> = q(&mut c, &["BITFIELD", "bf", "INCRBY", "i8", "0", "-100"]);
    assert_eq!(r, [Some(56)], "-200 wraps to 56 in 8 bits");
    let r: Vec<Option<i64>> = q(
        &mut c,
        &[
            "BITFIELD", "bf", "OVERFLOW", "SAT", "INCRBY", "i8", "0", "100", "OVERFLOW", "FAIL",
            "INCRBY", "i8", "0", "1",
        ],
    );
    assert_eq!(r, [Some(127), None]);
    let r: Vec<Option<i64>> = q(
        &mut c,
        &["BITFIELD", "bf", "SET", "u4", "#1", "15", "GET", "u4", "#1"],
    );
    assert_eq!(r, [Some(15), Some(15)]);
    let r: Vec<Option<i64>> = q(&mut c, &["BITFIELD_RO", "bf", "GET", "u8", "0"]);
    assert_eq!(r, [Some(127)]);
    assert_eq!(
        err(&mut c, &["BITFIELD_RO", "bf", "SET", "u8", "0", "1"]),
        "ERR BITFIELD_RO only supports the GET subcommand"
    );
    assert_eq!(
        err(&mut c, &["BITFIELD", "bf", "GET", "u64", "0"]),
        "ERR Invalid bitfield type. Use something like i16 u8. Note that u64 is not supported but i64 is."
    );
    assert_eq!(
        err(&mut c, &["BITFIELD", "bf", "OVERFLOW", "NOPE"]),
        "ERR Invalid OVERFLOW type specified"
    );
    // A string stays a string; its bytes change as Redis changes them.
    let _: () = q(&mut c, &["SET", "s", "A"]);
    let r: Vec<Option<i64>> = q(&mut c, &["BITFIELD", "s", "INCRBY", "u8", "0", "1"]);
    assert_eq!(r, [Some(0x42)]);
    assert_eq!(q::<String>(&mut c, &["GET", "s"]), "B");
    assert_eq!(q::<String>(&mut c, &["TYPE", "s"]), "string");
}

fn changes(c: &mut redis::Connection) -> i64 {
    info_number(c, "persistence", "rdb_changes_since_last_save")
}

/// A SETBIT or BITFIELD SET that stores what is already there writes nothing (INFO's change
/// counter stays); creating a key or growing it always writes. Both for a string's bits and
/// for a Kvrocks bitmap.
#[test]
fn unchanged_bits_are_not_written() {
    let s = TestServer::start();
    let mut c = s.conn();
    let start = changes(&mut c);
    q::<i64>(&mut c, &["SETBIT", "bm", "0", "0"]);
    q::<Vec<i64>>(&mut c, &["BITFIELD", "bf", "SET", "i5", "0", "0"]);
    q::<String>(&mut c, &["SET", "str", "a"]);
    assert_eq!(changes(&mut c), start + 3);
    q::<i64>(&mut c, &["SETBIT", "bm", "0", "0"]);
    q::<i64>(&mut c, &["SETBIT", "str", "1", "1"]);
    q::<Vec<i64>>(&mut c, &["BITFIELD", "bf", "SET", "i5", "0", "0"]);
    assert_eq!(changes(&mut c), start + 3);
    q::<i64>(&mut c, &["SETBIT", "bm", "0", "1"]);
    q::<i64>(&mut c, &["SETBIT", "str", "1", "0"]);
    q::<Vec<i64>>(&mut c, &["BITFIELD", "bf", "SET", "i5", "0", "1"]);
    q::<i64>(&mut c, &["SETBIT", "bm", "90", "0"]);
    assert_eq!(changes(&mut c), start + 7);
    assert_eq!(q::<i64>(&mut c, &["STRLEN", "bm"]), 12);
    assert_eq!(q::<String>(&mut c, &["GET", "str"]), "!");
}

#[test]
fn get_of_a_bitmap_past_max_bitmap_to_string_mb_is_refused_as_in_kvrocks() {
    let s = TestServer::start();
    let mut c = s.conn();
    let _: i64 = q(&mut c, &["SETBIT", "b", "7", "1"]);
    assert_eq!(q::<Vec<u8>>(&mut c, &["GET", "b"]), vec![1u8]);
    let _: () = q(&mut c, &["CONFIG", "SET", "max-bitmap-to-string-mb", "0"]);
    assert_eq!(
        err(&mut c, &["GET", "b"]),
        "ERR Operation aborted: The size of the bitmap string exceeds the configuration item max-bitmap-to-string-mb"
    );
    // Bit commands and strings are not concerned.
    assert_eq!(q::<i64>(&mut c, &["GETBIT", "b", "7"]), 1);
    let _: () = q(&mut c, &["SET", "s", "plain"]);
    assert_eq!(q::<String>(&mut c, &["GET", "s"]), "plain");
    let _: () = q(&mut c, &["CONFIG", "SET", "max-bitmap-to-string-mb", "16"]);
    assert_eq!(q::<Vec<u8>>(&mut c, &["GET", "b"]), vec![1u8]);
}

//! JSON documents (JSON.*) through the real binary. Every reply here was compared side by
//! side with Kvrocks 2.10.1 running the same commands; the differences are in
//! docs/conformance.md (error texts, and JSON.SET of a path whose parent is missing).

mod common;

use common::{err, q, TestServer};

fn get(c: &mut redis::Connection, args: &[&str]) -> String {
    q(c, args)
}

#[test]
fn documents_are_set_read_and_changed_by_path() {
    let s = TestServer::start();
    let mut c = s.conn();
    let doc = r#"{"a":1,"b":[1,2,3],"c":{"d":"x","e":true},"f":1.5}"#;
    let _: () = q(&mut c, &["JSON.SET", "j", "$", doc]);
    assert_eq!(get(&mut c, &["JSON.GET", "j"]), doc);
    assert_eq!(get(&mut c, &["JSON.GET", "j", "$"]), format!("[{doc}]"));
    assert_eq!(get(&mut c, &["JSON.GET", "j", "$.a"]), "[1]");
    assert_eq!(get(&mut c, &["JSON.GET", "j", "$..d"]), r#"["x"]"#);
    assert_eq!(
        get(&mut c, &["JSON.GET", "j", "$.a", "$.b"]),
        r#"{"$.a":[1],"$.b":[[1,2,3]]}"#
    );
    assert_eq!(get(&mut c, &["JSON.GET", "j", "$.nosuch"]), "[]");
    // Legacy paths mean the JSONPath they name.
    assert_eq!(get(&mut c, &["JSON.GET", "j", ".c.d"]), r#"["x"]"#);
    assert_eq!(get(&mut c, &["JSON.GET", "j", "b[1]"]), "[2]");
    assert_eq!(
        q::<Option<String>>(&mut c, &["JSON.GET", "nosuch", "$"]),
        None
    );
    assert_eq!(
        get(
            &mut c,
            &["JSON.GET", "j", "INDENT", "  ", "NEWLINE", "\n", "SPACE", " ", "$.c"]
        ),
        "[\n  {\n    \"d\": \"x\",\n    \"e\": true\n  }\n]"
    );
    assert_eq!(q::<Vec<String>>(&mut c, &["JSON.TYPE", "j"]), ["object"]);
    assert_eq!(
        q::<Vec<String>>(&mut c, &["JSON.TYPE", "j", "$.f"]),
        ["number"]
    );
    assert_eq!(
        q::<Vec<String>>(&mut c, &["JSON.TYPE", "j", "$.a"]),
        ["integer"]
    );
    assert_eq!(
        q::<Vec<Option<i64>>>(&mut c, &["JSON.STRLEN", "j", "$.c.d"]),
        [Some(1)]
    );
    assert_eq!(
        q::<Vec<Option<i64>>>(&mut c, &["JSON.STRLEN", "j", "$.a"]),
        [None]
    );
    assert_eq!(
        q::<Vec<Option<i64>>>(&mut c, &["JSON.ARRLEN", "j", "$.b"]),
        [Some(3)]
    );
    assert_eq!(
        q::<Vec<Option<i64>>>(&mut c, &["JSON.OBJLEN", "j", "$.c"]),
        [Some(2)]
    );
    let keys: Vec<Vec<String>> = q(&mut c, &["JSON.OBJKEYS", "j", "$"]);
    assert_eq!(keys, [["a", "b", "c", "f"]]);
    // Changes.
    assert_eq!(
        q::<Vec<Option<i64>>>(&mut c, &["JSON.ARRAPPEND", "j", "$.b", "4", "\"five\""]),
        [Some(5)]
    );
    assert_eq!(
        q::<Vec<Option<i64>>>(&mut c, &["JSON.ARRAPPEND", "j", "$.a", "4"]),
        [None]
    );
    assert_eq!(
        q::<Vec<Option<i64>>>(&mut c, &["JSON.STRAPPEND", "j", "$.c.d", "\"yz\""]),
        [Some(3)]
    );
    assert_eq!(
        q::<Vec<Option<i64>>>(&mut c, &["JSON.TOGGLE", "j", "$.c.e"]),
        [Some(0)]
    );
    assert_eq!(get(&mut c, &["JSON.NUMINCRBY", "j", "$.a", "2"]), "[3]");
    assert_eq!(get(&mut c, &["JSON.NUMINCRBY", "j", "$.f", "1"]), "[2.5]");
    assert_eq!(get(&mut c, &["JSON.NUMINCRBY", "j", "$.c", "1"]), "[null]");
    assert_eq!(get(&mut c, &["JSON.NUMMULTBY", "j", "$.a", "10"]), "[30]");
    assert_eq!(
        get(&mut c, &["JSON.GET", "j"]),
        r#"{"a":30,"b":[1,2,3,4,"five"],"c":{"d":"xyz","e":false},"f":2.5}"#
    );
    assert_eq!(
        q::<Vec<String>>(&mut c, &["JSON.ARRPOP", "j", "$.b"]),
        ["\"five\""]
    );
    assert_eq!(
        q::<Vec<String>>(&mut c, &["JSON.ARRPOP", "j", "$.b", "0"]),
        ["1"]
    );
    let _: () = q(&mut c, &["JSON.SET", "j", "$.g", r#"{"h":null}"#]);
    assert_eq!(get(&mut c, &["JSON.GET", "j", "$.g"]), r#"[{"h":null}]"#);
    assert_eq!(
        q::<Option<String>>(&mut c, &["JSON.SET", "j", "$.g", "1", "NX"]),
        None
    );
    assert_eq!(
        q::<Option<String>>(&mut c, &["JSON.SET", "j", "$.zz", "1", "XX"]),
        None
    );
    assert_eq!(q::<i64>(&mut c, &["JSON.DEL", "j", "$.g"]), 1);
    assert_eq!(q::<i64>(&mut c, &["JSON.DEL", "j", "$.nosuch"]), 0);
    assert_eq!(q::<i64>(&mut c, &["JSON.FORGET", "j", "$.b[0]"]), 1);
    assert_eq!(q::<i64>(&mut c, &["JSON.CLEAR", "j", "$.b"]), 1);
    assert_eq!(
        get(&mut c, &["JSON.GET", "j"]),
        r#"{"a":30,"b":[],"c":{"d":"xyz","e":false},"f":2.5}"#
    );
    let _: () = q(
        &mut c,
        &[
            "JSON.MSET",
            "m1",
            "$",
            r#"{"v":1}"#,
            "m2",
            "$",
            r#"{"v":2}"#,
        ],
    );
    assert_eq!(
        q::<Vec<Option<String>>>(&mut c, &["JSON.MGET", "m1", "m2", "nosuch", "$.v"]),
        [Some("[1]".to_string()), Some("[2]".to_string()), None]
    );
    assert_eq!(
        q::<Vec<String>>(&mut c, &["JSON.INFO", "j"]),
        ["storage_format", "json"]
    );
    assert_eq!(q::<i64>(&mut c, &["JSON.DEL", "j"]), 1);
    assert_eq!(q::<i64>(&mut c, &["EXISTS", "j"]), 0);
    assert_eq!(q::<i64>(&mut c, &["JSON.DEL", "nosuch"]), 0);
}

#[test]
fn bad_input_gets_errors() {
    let s = TestServer::start();
    let mut c = s.conn();
    assert_eq!(
        err(&mut c, &["JSON.SET", "new", "$.a", "1"]),
        "ERR new objects must be created at the root"
    );
    assert!(err(&mut c, &["JSON.SET", "bad", "$", r#"{"a":"#]).starts_with("ERR EOF while parsing"));
    assert!(err(&mut c, &["JSON.SET", "bad", "$", "notjson"]).starts_with("ERR expected"));
    assert!(err(&mut c, &["JSON.GET", "x", "$[?("]).starts_with("ERR invalid JSONPath"));
    let deep = format!("{}{}", "[".repeat(2000), "]".repeat(2000));
    assert!(err(&mut c, &["JSON.SET", "deep", "$", &deep]).contains("nested"));
    assert_eq!(q::<i64>(&mut c, &["EXISTS", "bad", "deep"]), 0);
    let _: () = q(&mut c, &["SET", "str", "v"]);
    assert!(err(&mut c, &["JSON.GET", "str", "$"]).starts_with("WRONGTYPE"));
    assert!(err(&mut c, &["JSON.SET", "str", "$", "1"]).starts_with("WRONGTYPE"));
    assert_eq!(
        err(&mut c, &["JSON.ARRAPPEND", "nosuch", "$", "1"]),
        "ERR could not perform this operation on a key that doesn't exist"
    );
    // A JSON key is a key: TYPE, EXPIRE (kept by changes), RENAME, replication.
    let _: () = q(&mut c, &["JSON.SET", "k", "$", r#"{"n":1}"#]);
    assert_eq!(q::<String>(&mut c, &["TYPE", "k"]), "ReJSON-RL");
    assert_eq!(q::<i64>(&mut c, &["EXPIRE", "k", "1000"]), 1);
    let _: String = q(&mut c, &["JSON.NUMINCRBY", "k", "$.n", "1"]);
    assert!(q::<i64>(&mut c, &["TTL", "k"]) > 0, "a change kept the TTL");
    let _: () = q(&mut c, &["RENAME", "k", "k2"]);
    assert_eq!(get(&mut c, &["JSON.GET", "k2", "$.n"]), "[2]");
}

#[test]
fn array_index_insert_and_trim() {
    let s = TestServer::start();
    let mut c = s.conn();
    let _: () = q(
        &mut c,
        &["JSON.SET", "a", "$", r#"{"x":[1,2,3,4,5],"y":"s","z":[]}"#],
    );
    let idx = |c: &mut redis::Connection, args: &[&str]| -> Vec<Option<i64>> {
        let mut full = vec!["JSON.ARRINDEX", "a"];
        full.extend_from_slice(args);
        q(c, &full)
    };
    assert_eq!(idx(&mut c, &["$.x", "3"]), [Some(2)]);
    assert_eq!(idx(&mut c, &["$.x", "9"]), [Some(-1)]);
    assert_eq!(idx(&mut c, &["$.x", "3", "3"]), [Some(-1)]);
    assert_eq!(idx(&mut c, &["$.x", "3", "0", "2"]), [Some(-1)]);
    assert_eq!(idx(&mut c, &["$.x", "5", "-2"]), [Some(4)]);
    assert_eq!(idx(&mut c, &["$.y", "1"]), [None]);
    // An empty array holds nothing (Kvrocks 2.10.1 crashes here).
    assert_eq!(idx(&mut c, &["$.z", "1"]), [Some(-1)]);
    assert_eq!(
        q::<Vec<Option<i64>>>(&mut c, &["JSON.ARRINSERT", "a", "$.x", "0", "0"]),
        [Some(6)]
    );
    assert_eq!(
        q::<Vec<Option<i64>>>(
            &mut c,
            &["JSON.ARRINSERT", "a", "$.x", "-1", "\"m\"", "\"n\""]
        ),
        [Some(8)]
    );
    assert_eq!(
        q::<Vec<Option<i64>>>(&mut c, &["JSON.ARRINSERT", "a", "$.x", "100", "1"]),
        [None]
    );
    assert_eq!(
        q::<String>(&mut c, &["JSON.GET", "a", "$.x"]),
        r#"[[0,1,2,3,4,"m","n",5]]"#
    );
    assert_eq!(
        q::<Vec<Option<i64>>>(&mut c, &["JSON.ARRTRIM", "a", "$.x", "1", "3"]),
        [Some(3)]
    );
    assert_eq!(q::<String>(&mut c, &["JSON.GET", "a", "$.x"]), "[[1,2,3]]");
    assert_eq!(
        q::<Vec<Option<i64>>>(&mut c, &["JSON.ARRTRIM", "a", "$.x", "-2", "-1"]),
        [Some(2)]
    );
    assert_eq!(
        q::<Vec<Option<i64>>>(&mut c, &["JSON.ARRTRIM", "a", "$.x", "5", "10"]),
        [Some(0)]
    );
    assert_eq!(q::<String>(&mut c, &["JSON.GET", "a", "$.x"]), "[[]]");
    assert_eq!(
        err(&mut c, &["JSON.ARRTRIM", "nosuch", "$.x", "0", "1"]),
        "ERR could not perform this operation on a key that doesn't exist"
    );
}

#[test]
fn merge_resp_and_debug_memory() {
    let s = TestServer::start();
    let mut c = s.conn();
    let _: () = q(
        &mut c,
        &[
            "JSON.SET",
            "d",
            "$",
            r#"{"a":1,"b":{"c":"x","d":[1,2.5,null,true]},"e":"s"}"#,
        ],
    );
    // RFC 7396 at the root: null removes, objects merge.
    let _: () = q(
        &mut c,
        &["JSON.MERGE", "d", "$", r#"{"a":null,"f":{"g":1}}"#],
    );
    assert_eq!(
        get(&mut c, &["JSON.GET", "d"]),
        r#"{"b":{"c":"x","d":[1,2.5,null,true]},"e":"s","f":{"g":1}}"#
    );
    // At a path: replaced, created with the objects on the way, deleted by null.
    let _: () = q(&mut c, &["JSON.MERGE", "d", "$.b.c", r#""y""#]);
    let _: () = q(&mut c, &["JSON.MERGE", "d", "$.new.deep", "5"]);
    let _: () = q(&mut c, &["JSON.MERGE", "d", "$.b.d", "null"]);
    assert_eq!(
        get(&mut c, &["JSON.GET", "d"]),
        r#"{"b":{"c":"y"},"e":"s","f":{"g":1},"new":{"deep":5}}"#
    );
    let _: () = q(&mut c, &["JSON.MERGE", "d", "$..c", r#"{"q":1}"#]);
    assert_eq!(get(&mut c, &["JSON.GET", "d", "$.b"]), r#"[{"c":{"q":1}}]"#);
    assert_eq!(
        err(&mut c, &["JSON.MERGE", "missing", "$.a", "1"]),
        "ERR new objects must be created at the root"
    );
    let _: () = q(&mut c, &["JSON.MERGE", "missing", "$", r#"{"z":1}"#]);
    assert_eq!(get(&mut c, &["JSON.GET", "missing"]), r#"{"z":1}"#);
    assert!(err(&mut c, &["JSON.MERGE", "d", "$", "notjson"]).starts_with("ERR "));

    // JSON.RESP: `[` and `{` lead arrays and objects; integers stay integers.
    let _: () = q(
        &mut c,
        &["JSON.SET", "n", "$", r#"[1,"a",2.5,{"k":[true,null]}]"#],
    );
    let v: redis::Value = q(&mut c, &["JSON.RESP", "n"]);
    use redis::Value::{Array, BulkString as B, Int, Nil, SimpleString as S};
    assert_eq!(
        v,
        Array(vec![
            S("[".into()),
            Int(1),
            B(b"a".to_vec()),
            B(b"2.5".to_vec()),
            Array(vec![
                S("{".into()),
                B(b"k".to_vec()),
                Array(vec![S("[".into()), S("true".into()), Nil]),
            ]),
        ])
    );
    let v: redis::Value = q(&mut c, &["JSON.RESP", "n", "$[0]"]);
    assert_eq!(v, Array(vec![Int(1)]));
    let v: redis::Value = q(&mut c, &["JSON.RESP", "nosuch"]);
    assert_eq!(v, Nil);

    // JSON.DEBUG MEMORY: the stored document's bytes, or each match's.
    let stored = get(&mut c, &["JSON.GET", "d"]).len() as i64;
    assert_eq!(
        q::<Vec<i64>>(&mut c, &["JSON.DEBUG", "MEMORY", "d"]),
        [stored]
    );
    assert_eq!(
        q::<Vec<i64>>(&mut c, &["JSON.DEBUG", "MEMORY", "d", "$.e"]),
        [3]
    );
    assert_eq!(q::<i64>(&mut c, &["JSON.DEBUG", "MEMORY", "nosuch"]), 0);
    assert!(q::<Vec<i64>>(&mut c, &["JSON.DEBUG", "MEMORY", "nosuch", "$"]).is_empty());
    assert!(err(&mut c, &["JSON.DEBUG", "FOO"]).contains("wrong number of arguments"));
}

#[test]
fn documents_dump_and_restore() {
    let s = TestServer::start();
    let mut c = s.conn();
    let doc = r#"{"a":[1,2],"b":"x"}"#;
    let _: () = q(&mut c, &["JSON.SET", "j", "$", doc]);
    let _: () = q(&mut c, &["PEXPIRE", "j", "100000"]);
    let payload: Vec<u8> = redis::cmd("DUMP").arg("j").query(&mut c).unwrap();
    let _: () = redis::cmd("RESTORE")
        .arg("j2")
        .arg(0)
        .arg(&payload)
        .query(&mut c)
        .unwrap();
    assert_eq!(get(&mut c, &["JSON.GET", "j2"]), doc);
    assert_eq!(get(&mut c, &["TYPE", "j2"]), "ReJSON-RL");
    // A payload whose text is not JSON (with a valid checksum) is refused, and nothing is
    // written.
    let mut bad = payload[..payload.len() - 8].to_vec();
    let at = bad.windows(3).position(|w| w == b"\"a\"").unwrap();
    bad[at] = b'{';
    let crc = quarry_commands::crc64(&bad);
    bad.extend_from_slice(&crc.to_le_bytes());
    let e = redis::cmd("RESTORE")
        .arg("j3")
        .arg(0)
        .arg(&bad)
        .query::<()>(&mut c)
        .unwrap_err();
    assert!(e.to_string().contains("Bad data format"), "{e}");
    assert_eq!(q::<i64>(&mut c, &["EXISTS", "j3"]), 0);
}

/// The value of the only JSON metadata record in a stopped server's data directory.
fn stored_json_record(dir: &std::path::Path) -> Vec<u8> {
    use quarry_storage::{ColumnFamily, Engine, EngineOptions};
    let engine = Engine::open(&EngineOptions::new(dir)).unwrap();
    let records: Vec<Vec<u8>> = engine
        .db()
        .iterator_cf(
            engine.cf(ColumnFamily::Metadata),
            quarry_storage::rocksdb::IteratorMode::Start,
        )
        .map(|r| r.unwrap().1.to_vec())
        .filter(|v| v.first().is_some_and(|f| f & 0x0f == 10))
        .collect();
    assert_eq!(records.len(), 1);
    records.into_iter().next().unwrap()
}

#[test]
fn json_storage_format_cbor_writes_cbor_and_reads_both_formats() {
    let mut s = TestServer::start_with(&["--json-storage-format", "cbor"]);
    let mut c = s.conn();
    let doc = r#"{"a":1,"b":[true,null,"x",1.5,0.1,-7],"c":{"d":"é"}}"#;
    let _: () = q(&mut c, &["JSON.SET", "j", "$", doc]);
    assert_eq!(get(&mut c, &["JSON.GET", "j"]), doc);
    assert_eq!(
        q::<Vec<i64>>(&mut c, &["JSON.ARRAPPEND", "j", "$.b", "2"]),
        [7]
    );
    assert_eq!(
        q::<Vec<String>>(&mut c, &["JSON.INFO", "j"]),
        ["storage_format", "cbor"]
    );
    assert!(s.stop().success());
    // Kvrocks' layout: flags, expiry, format byte 1, then jsoncons' CBOR of the document.
    let record = stored_json_record(s.data_dir());
    let changed = r#"{"a":1,"b":[true,null,"x",1.5,0.1,-7,2],"c":{"d":"é"}}"#;
    let value: serde_json::Value = serde_json::from_str(changed).unwrap();
    assert_eq!(record[9], 1, "format byte");
    assert_eq!(record[10..], quarry_types::cbor::encode(&value)[..]);
    // Back to text: the CBOR document still reads, and the next write stores text.
    s.set_args(&["--json-storage-format", "json"]);
    s.restart();
    let mut c = s.conn();
    assert_eq!(get(&mut c, &["JSON.GET", "j"]), changed);
    let _: () = q(&mut c, &["JSON.SET", "j", "$.a", "2"]);
    assert!(s.stop().success());
    let record = stored_json_record(s.data_dir());
    assert_eq!(record[9], 0, "format byte");
    assert!(record[10..].starts_with(br#"{"a":2,"#));
}

#[test]
fn deleting_several_array_members_removes_exactly_those() {
    let s = TestServer::start();
    let mut c = s.conn();
    let twelve = "[0,1,2,3,4,5,6,7,8,9,10,11]";
    // Index 10 must go before index 2, or removing 2 first moves 11 into place 10.
    let _: () = q(&mut c, &["JSON.SET", "a", "$", twelve]);
    assert_eq!(q::<i64>(&mut c, &["JSON.DEL", "a", "$[2,10]"]), 2);
    assert_eq!(get(&mut c, &["JSON.GET", "a"]), "[0,1,3,4,5,6,7,8,9,11]");
    // JSON.MERGE with null removes the matches the same way, in whatever order they are named.
    let _: () = q(&mut c, &["JSON.SET", "m", "$", twelve]);
    let _: () = q(&mut c, &["JSON.MERGE", "m", "$[2,10]", "null"]);
    assert_eq!(get(&mut c, &["JSON.GET", "m"]), "[0,1,3,4,5,6,7,8,9,11]");
    let _: () = q(&mut c, &["JSON.SET", "m", "$", twelve]);
    let _: () = q(&mut c, &["JSON.MERGE", "m", "$[0,2]", "null"]);
    assert_eq!(get(&mut c, &["JSON.GET", "m"]), "[1,3,4,5,6,7,8,9,10,11]");
    assert_eq!(
        q::<Vec<String>>(&mut c, &["JSON.INFO", "a"]),
        ["storage_format", "json"]
    );
}

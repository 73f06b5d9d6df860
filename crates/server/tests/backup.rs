//! Backups (BGSAVE, LASTSAVE, FLUSHBACKUP, retention and cron) through the real binary, a node
//! started from a backup, and crashes while a backup replaces the previous one.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;

fn info_field(c: &mut redis::Connection, field: &str) -> String {
    let info: String = q(c, &["INFO", "all"]);
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in INFO"))
        .to_string()
}

fn wait_backup(c: &mut redis::Connection) {
    wait_until(
        30,
        || info_field(c, "bgsave_in_progress") == "0",
        || "the backup did not finish".into(),
    );
    assert_eq!(info_field(c, "last_bgsave_status"), "ok");
}

fn seed(c: &mut redis::Connection, prefix: &str, n: usize) {
    for i in 0..n {
        let _: () = q(c, &["SET", &format!("{prefix}{i}"), &format!("v{i}")]);
    }
    let _: i64 = q(c, &["HSET", &format!("{prefix}h"), "f", "v", "g", "w"]);
    let _: i64 = q(c, &["ZADD", &format!("{prefix}z"), "1", "a", "2", "b"]);
}

fn copy_dir(from: &Path, to: &Path) {
    let ok = Command::new("cp")
        .arg("-r")
        .arg(from)
        .arg(to)
        .status()
        .unwrap()
        .success();
    assert!(ok);
}

type Digest = (String, i64, i64);

#[test]
fn bgsave_lastsave_flushbackup_and_the_directives() {
    let s = TestServer::start();
    let mut c = s.conn();
    seed(&mut c, "k", 50);
    let before: i64 = q(&mut c, &["LASTSAVE"]);
    assert_eq!(q::<String>(&mut c, &["BGSAVE"]), "OK");
    wait_backup(&mut c);
    let after: i64 = q(&mut c, &["LASTSAVE"]);
    assert!(after >= before);
    let dir = s.data_dir().join("backup");
    assert!(dir.join("CURRENT").exists());
    assert!(dir.join("REPLICATION-ANCHOR").exists());
    assert!(s.log().contains("backup finished"));
    // Redis' optional SCHEDULE is taken; anything else is a syntax error.
    assert_eq!(q::<String>(&mut c, &["BGSAVE", "SCHEDULE"]), "OK");
    wait_backup(&mut c);
    assert_eq!(err(&mut c, &["BGSAVE", "NOW"]), "ERR syntax error");
    assert_eq!(q::<String>(&mut c, &["FLUSHBACKUP"]), "OK");
    assert!(!dir.exists());

    // backup-dir elsewhere; max-backup-to-keep 0 deletes the backup within seconds.
    let other = tempfile::tempdir().unwrap();
    let target = other.path().join("bk");
    let _: () = q(
        &mut c,
        &["CONFIG", "SET", "backup-dir", target.to_str().unwrap()],
    );
    assert_eq!(q::<String>(&mut c, &["BGSAVE"]), "OK");
    wait_backup(&mut c);
    assert!(target.join("CURRENT").exists());
    assert!(!other.path().join("bk.tmp").exists());
    let _: () = q(&mut c, &["CONFIG", "SET", "max-backup-to-keep", "0"]);
    wait_until(
        10,
        || !target.exists(),
        || "max-backup-to-keep 0 did not delete the backup".into(),
    );
    let e = err(&mut c, &["CONFIG", "SET", "bgsave-cron", "0 3 * *"]);
    assert!(e.contains("cron expression format error"), "{e}");
    let _: () = q(&mut c, &["CONFIG", "SET", "bgsave-cron", "0 3 * * *"]);
    let v: Vec<String> = q(&mut c, &["CONFIG", "GET", "bgsave-cron"]);
    assert_eq!(v[1], "0 3 * * *");
}

#[test]
fn a_node_started_from_a_backup_holds_its_data_and_rejoins_with_a_partial_sync() {
    let m = TestServer::start();
    let mut mc = m.conn();
    seed(&mut mc, "k", 200);
    // No writes between the digest and the backup: the backup holds exactly this.
    let at_backup: Digest = q(&mut mc, &["DIGEST"]);
    assert_eq!(q::<String>(&mut mc, &["BGSAVE"]), "OK");
    wait_backup(&mut mc);
    seed(&mut mc, "later", 20);
    let full_syncs = info_field(&mut mc, "sync_full");

    // Restore: the backup becomes a data directory's `db`.
    let backup = m.data_dir().join("backup");
    let alone = tempfile::tempdir().unwrap();
    copy_dir(&backup, &alone.path().join("db"));
    let a = TestServer::start_with(&["--dir", alone.path().to_str().unwrap()]);
    let d: Digest = q(&mut a.conn(), &["DIGEST"]);
    assert_eq!((d.0, d.2), (at_backup.0.clone(), at_backup.2));

    // Started as a replica of the master it came from, it continues where the backup ends.
    let restored = tempfile::tempdir().unwrap();
    copy_dir(&backup, &restored.path().join("db"));
    let slaveof = format!("127.0.0.1 {}", m.port);
    let r = TestServer::start_with(&[
        "--dir",
        restored.path().to_str().unwrap(),
        "--slaveof",
        &slaveof,
    ]);
    wait_until(
        60,
        || {
            let dm: Option<Digest> = redis::cmd("DIGEST").query(&mut m.conn()).ok();
            let dr: Option<Digest> = redis::cmd("DIGEST").query(&mut r.conn()).ok();
            dm.is_some() && dm == dr
        },
        || format!("the restored replica did not converge:\n{}", r.log()),
    );
    assert_eq!(
        info_field(&mut mc, "sync_full"),
        full_syncs,
        "a full sync was needed:\n{}",
        r.log()
    );
    assert!(r.log().contains("incremental sync"));
    assert_eq!(q::<String>(&mut r.conn(), &["GET", "later19"]), "v19");
}

#[test]
fn a_crash_while_a_backup_replaces_the_previous_one_keeps_a_whole_backup() {
    let mut s = TestServer::start();
    let mut c = s.conn();
    seed(&mut c, "first", 30);
    let first: Digest = q(&mut c, &["DIGEST"]);
    assert_eq!(q::<String>(&mut c, &["BGSAVE"]), "OK");
    wait_backup(&mut c);
    seed(&mut c, "second", 30);
    drop(c);
    let dir = s.data_dir().join("backup");
    for point in ["bgsave:checkpoint-written", "bgsave:old-moved-aside"] {
        s.stop();
        s.set_env(&[("QUARRY_FAILPOINT", point)]);
        s.restart_same_port();
        let _: () = q(&mut s.conn(), &["BGSAVE"]);
        assert!(!s.wait_exit().success(), "{point}");
        s.set_env(&[]);
        s.restart_same_port();
        // The previous backup is whole and in place; nothing is left over.
        assert!(dir.join("CURRENT").exists(), "{point}");
        assert!(!s.data_dir().join("backup.tmp").exists(), "{point}");
        assert!(!s.data_dir().join("backup.old").exists(), "{point}");
        let copy = tempfile::tempdir().unwrap();
        copy_dir(&dir, &copy.path().join("db"));
        let t = TestServer::start_with(&["--dir", copy.path().to_str().unwrap()]);
        let d: Digest = q(&mut t.conn(), &["DIGEST"]);
        assert_eq!((d.0, d.2), (first.0.clone(), first.2), "{point}");
    }
    // And the next backup goes through.
    let mut c = s.conn();
    assert_eq!(q::<String>(&mut c, &["BGSAVE"]), "OK");
    wait_backup(&mut c);
}

#[test]
fn purge_backup_on_fullsync_drops_the_backup_a_full_sync_made_stale() {
    let m = TestServer::start();
    seed(&mut m.conn(), "m", 20);
    let r = TestServer::start();
    let mut rc = r.conn();
    seed(&mut rc, "mine", 5);
    assert_eq!(q::<String>(&mut rc, &["BGSAVE"]), "OK");
    wait_backup(&mut rc);
    assert!(r.data_dir().join("backup").exists());
    let _: () = q(
        &mut rc,
        &["CONFIG", "SET", "purge-backup-on-fullsync", "yes"],
    );
    let _: () = q(&mut rc, &["REPLICAOF", "127.0.0.1", &m.port.to_string()]);
    wait_until(
        60,
        || {
            redis::cmd("GET")
                .arg("m19")
                .query::<Option<String>>(&mut r.conn())
                .is_ok_and(|v| v.is_some())
        },
        || format!("no full sync:\n{}", r.log()),
    );
    wait_until(
        10,
        || !r.data_dir().join("backup").exists(),
        || "the backup outlived the full sync".into(),
    );
}

#[test]
fn a_backup_dir_that_would_replace_the_database_is_refused() {
    let mut s = TestServer::start();
    let mut c = s.conn();
    seed(&mut c, "k", 10);
    for bad in [
        s.data_dir().join("db"),
        s.data_dir().to_path_buf(),
        s.data_dir().parent().unwrap().to_path_buf(),
    ] {
        let _: () = q(
            &mut c,
            &["CONFIG", "SET", "backup-dir", bad.to_str().unwrap()],
        );
        assert_eq!(q::<String>(&mut c, &["BGSAVE"]), "OK");
        wait_until(
            30,
            || info_field(&mut c, "bgsave_in_progress") == "0",
            || "the backup did not end".into(),
        );
        assert_eq!(info_field(&mut c, "last_bgsave_status"), "err", "{bad:?}");
        assert_eq!(q::<String>(&mut c, &["FLUSHBACKUP"]), "OK");
        assert!(s.data_dir().join("db").join("CURRENT").exists());
    }
    assert!(s.log().contains("would replace the node's own data"));
    drop(c);
    s.stop();
    s.restart();
    assert_eq!(q::<String>(&mut s.conn(), &["GET", "k9"]), "v9");
}

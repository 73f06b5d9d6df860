//! TLS through the real binary: certificates made at run time (rcgen), clients through
//! `redis-cli --tls` and a rustls client, bad handshakes, certificate rotation with CONFIG SET,
//! and a replica that follows (and full-syncs from) its master over TLS.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use common::{free_port, q, wait_until, TestServer};
use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair};

/// A CA and the files of certificates it signed, in a temporary directory.
struct Pki {
    dir: tempfile::TempDir,
    ca: rcgen::Certificate,
    ca_key: KeyPair,
}

impl Pki {
    fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "quarry test CA");
        let ca_key = KeyPair::generate().unwrap();
        let ca = params.self_signed(&ca_key).unwrap();
        std::fs::write(dir.path().join("ca.crt"), ca.pem()).unwrap();
        Pki { dir, ca, ca_key }
    }

    /// Writes `<name>.crt` and `<name>.key`, a certificate for 127.0.0.1 that serves as server
    /// and client certificate.
    fn issue(&self, name: &str) -> (String, String) {
        let mut params =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.ca, &self.ca_key).unwrap();
        let crt = self.path(&format!("{name}.crt"));
        let k = self.path(&format!("{name}.key"));
        std::fs::write(&crt, cert.pem()).unwrap();
        std::fs::write(&k, key.serialize_pem()).unwrap();
        (crt, k)
    }

    fn path(&self, file: &str) -> String {
        self.dir.path().join(file).to_string_lossy().into_owned()
    }

    fn ca(&self) -> String {
        self.path("ca.crt")
    }
}

/// A quarry with a TLS port next to its plain one.
fn tls_server(pki: &Pki, extra: &[&str]) -> (TestServer, u16) {
    let (crt, key) = pki.issue("server");
    let tls_port = free_port();
    let port = tls_port.to_string();
    let ca = pki.ca();
    let mut args = vec![
        "--tls-port",
        port.as_str(),
        "--tls-cert-file",
        crt.as_str(),
        "--tls-key-file",
        key.as_str(),
        "--tls-ca-cert-file",
        ca.as_str(),
    ];
    args.extend_from_slice(extra);
    let s = TestServer::start_with(&args);
    (s, tls_port)
}

/// redis-cli --tls with the CA and, if given, a client certificate; stdout and stderr.
fn cli(port: u16, pki: &Pki, client: Option<&(String, String)>, args: &[&str]) -> String {
    let mut cmd = Command::new("redis-cli");
    cmd.args(["-p", &port.to_string(), "--tls", "--cacert", &pki.ca()]);
    if let Some((crt, key)) = client {
        cmd.args(["--cert", crt, "--key", key]);
    }
    let out = cmd.args(args).output().expect("redis-cli (redis-tools)");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
    .trim()
    .to_string()
}

/// A rustls client that trusts `pki`'s CA: the reply to PING, or why the connection failed.
fn rustls_ping(port: u16, pki: &Pki, client: Option<&(String, String)>) -> Result<String, String> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(pki.ca.der().clone()).unwrap();
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let config = match client {
        Some((crt, key)) => {
            let certs: Vec<_> = rustls_pemfile::certs(&mut &std::fs::read(crt).unwrap()[..])
                .collect::<Result<_, _>>()
                .unwrap();
            let key = rustls_pemfile::private_key(&mut &std::fs::read(key).unwrap()[..])
                .unwrap()
                .unwrap();
            builder.with_client_auth_cert(certs, key).unwrap()
        }
        None => builder.with_no_client_auth(),
    };
    let (reply, _) = ping_over(port, config)?;
    Ok(reply)
}

/// PING over a TLS connection made with `config`: the reply and the connection.
fn ping_over(
    port: u16,
    config: rustls::ClientConfig,
) -> Result<(String, rustls::ClientConnection), String> {
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let sock = TcpStream::connect(("127.0.0.1", port)).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut tls = rustls::StreamOwned::new(conn, sock);
    tls.write_all(b"PING\r\n").map_err(|e| e.to_string())?;
    let mut buf = [0u8; 64];
    let n = tls.read(&mut buf).map_err(|e| e.to_string())?;
    if n == 0 {
        return Err("closed".into());
    }
    Ok((String::from_utf8_lossy(&buf[..n]).into_owned(), tls.conn))
}

#[test]
fn clients_speak_tls_on_the_tls_port() {
    let pki = Pki::new();
    let (s, tls_port) = tls_server(&pki, &[]);
    let client = pki.issue("client");
    assert_eq!(cli(tls_port, &pki, Some(&client), &["SET", "k", "v"]), "OK");
    assert_eq!(cli(tls_port, &pki, Some(&client), &["GET", "k"]), "v");
    // The plain port serves the same data.
    assert_eq!(q::<String>(&mut s.conn(), &["GET", "k"]), "v");
    // A pipeline of many replies arrives whole (TLS buffers what it encrypts).
    let mut cmd = Command::new("redis-cli");
    cmd.args(["-p", &tls_port.to_string(), "--tls", "--cacert", &pki.ca()])
        .args(["--cert", &client.0, "--key", &client.1, "--pipe"]);
    let mut input = String::new();
    for i in 0..2000 {
        input.push_str(&format!("SET p{i} {i}\r\n"));
    }
    let mut child = cmd
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("errors: 0, replies: 2000"), "{text}");
    assert_eq!(q::<i64>(&mut s.conn(), &["DBSIZE"]), 2001);
    // A rustls client too.
    assert_eq!(
        rustls_ping(tls_port, &pki, Some(&client)).unwrap(),
        "+PONG\r\n"
    );
}

#[test]
fn bad_handshakes_close_that_connection_only() {
    let pki = Pki::new();
    let (s, tls_port) = tls_server(&pki, &[]);
    // Client certificates are required by default (Kvrocks' tls-auth-clients).
    assert!(rustls_ping(tls_port, &pki, None).is_err());
    // One signed by another CA does not verify.
    let other = Pki::new();
    let rogue = other.issue("rogue");
    assert!(rustls_ping(tls_port, &pki, Some(&rogue)).is_err());
    // A plain-text client on the TLS port.
    let mut plain = TcpStream::connect(("127.0.0.1", tls_port)).unwrap();
    plain
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    plain.write_all(b"PING\r\n").unwrap();
    let mut buf = [0u8; 64];
    let n = plain.read(&mut buf).unwrap_or(0);
    assert!(!buf[..n].starts_with(b"+PONG"));
    // The server goes on, and says what happened.
    let good = pki.issue("good");
    assert_eq!(
        rustls_ping(tls_port, &pki, Some(&good)).unwrap(),
        "+PONG\r\n"
    );
    assert_eq!(q::<String>(&mut s.conn(), &["PING"]), "PONG");
    wait_until(
        10,
        || s.log().matches("TLS handshake failed").count() >= 3,
        || format!("handshake failures not logged:\n{}", s.log()),
    );
}

#[test]
fn client_certificates_optional_or_off() {
    let pki = Pki::new();
    let (_s, tls_port) = tls_server(&pki, &["--tls-auth-clients", "optional"]);
    assert_eq!(rustls_ping(tls_port, &pki, None).unwrap(), "+PONG\r\n");
    let other = Pki::new();
    let rogue = other.issue("rogue");
    assert!(
        rustls_ping(tls_port, &pki, Some(&rogue)).is_err(),
        "optional still verifies"
    );
    let (_t, tls_port) = tls_server(&pki, &["--tls-auth-clients", "no"]);
    assert_eq!(rustls_ping(tls_port, &pki, None).unwrap(), "+PONG\r\n");
    assert_eq!(cli(tls_port, &pki, None, &["PING"]), "PONG");
}

#[test]
fn certificates_rotate_with_config_set() {
    let pki = Pki::new();
    let (s, tls_port) = tls_server(&pki, &["--tls-auth-clients", "no"]);
    let mut c = s.conn();
    assert_eq!(rustls_ping(tls_port, &pki, None).unwrap(), "+PONG\r\n");
    // A certificate of another CA: new connections get it, and fail to verify against the
    // old CA; the old connections are untouched.
    let other = Pki::new();
    let (crt, key) = other.issue("rotated");
    let _: () = q(
        &mut c,
        &["CONFIG", "SET", "tls-cert-file", &crt, "tls-key-file", &key],
    );
    assert!(rustls_ping(tls_port, &pki, None).is_err());
    assert_eq!(rustls_ping(tls_port, &other, None).unwrap(), "+PONG\r\n");
    // A file that does not load is refused, and the current certificate stays.
    let e = common::err(
        &mut c,
        &["CONFIG", "SET", "tls-cert-file", "/nonexistent.crt"],
    );
    assert!(e.contains("TLS") && e.contains("/nonexistent.crt"), "{e}");
    let got: Vec<String> = q(&mut c, &["CONFIG", "GET", "tls-cert-file"]);
    assert_eq!(got[1], crt);
    assert_eq!(rustls_ping(tls_port, &other, None).unwrap(), "+PONG\r\n");
}

#[test]
fn an_encrypted_key_with_its_passphrase() {
    let pki = Pki::new();
    let (crt, key) = pki.issue("enc");
    let encrypted = pki.path("enc.p8");
    let converted = Command::new("openssl")
        .args([
            "pkcs8",
            "-topk8",
            "-v2",
            "aes-256-cbc",
            "-passout",
            "pass:s3cret",
        ])
        .args(["-in", &key, "-out", &encrypted])
        .status();
    let Ok(status) = converted else {
        eprintln!("openssl is not installed: the encrypted-key case is not run");
        return;
    };
    assert!(status.success());
    let tls_port = free_port().to_string();
    let s = TestServer::start_with(&[
        "--tls-port",
        &tls_port,
        "--tls-cert-file",
        &crt,
        "--tls-key-file",
        &encrypted,
        "--tls-key-file-pass",
        "s3cret",
        "--tls-auth-clients",
        "no",
    ]);
    let port: u16 = tls_port.parse().unwrap();
    assert_eq!(rustls_ping(port, &pki, None).unwrap(), "+PONG\r\n");
    drop(s);
    // A wrong passphrase stops start-up with a reason.
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(common::binary())
        .args([
            "--tls-port",
            &free_port().to_string(),
            "--tls-cert-file",
            &crt,
        ])
        .args([
            "--tls-key-file",
            &encrypted,
            "--tls-key-file-pass",
            "wrong",
            "--dir",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("tls-key-file-pass"));
}

/// DIGEST, or None while the node cannot answer it (a full sync is loading).
fn digest(s: &TestServer) -> Option<(String, i64, i64)> {
    redis::cmd("DIGEST").query(&mut s.conn()).ok()
}

#[test]
fn a_replica_follows_its_master_over_tls() {
    let pki = Pki::new();
    // wal_ttl 0: the WAL before a flush goes, so the replica must full-sync (its files come
    // over TLS too).
    let (m, m_tls) = tls_server(
        &pki,
        &[
            "--rocksdb.wal_ttl_seconds",
            "0",
            "--rocksdb.wal_size_limit_mb",
            "0",
        ],
    );
    let mut mc = m.conn();
    for i in 0..300 {
        let _: () = q(&mut mc, &["SET", &format!("k{i}"), &"v".repeat(100)]);
    }
    let _: () = q(&mut mc, &["FLUSHMEMTABLE"]);
    let _: () = q(&mut mc, &["SET", "after", "1"]);
    let _: () = q(&mut mc, &["FLUSHMEMTABLE"]);
    let (crt, key) = pki.issue("replica");
    let slaveof = format!("127.0.0.1 {m_tls}");
    let ca = pki.ca();
    let r = TestServer::start_with(&[
        "--tls-cert-file",
        &crt,
        "--tls-key-file",
        &key,
        "--tls-ca-cert-file",
        &ca,
        "--tls-replication",
        "yes",
        "--slaveof",
        &slaveof,
    ]);
    wait_until(
        60,
        || digest(&r).is_some() && digest(&m) == digest(&r),
        || format!("the replica did not converge:\n{}", r.log()),
    );
    let info: String = q(&mut mc, &["INFO"]);
    assert!(info.contains("sync_full:1\r\n"), "{info}");
    // Incremental over TLS.
    for i in 0..50 {
        let _: () = q(&mut mc, &["SET", &format!("later{i}"), "x"]);
    }
    wait_until(
        30,
        || digest(&r).is_some() && digest(&m) == digest(&r),
        || "the replica did not follow".into(),
    );
    // Without TLS the link cannot come up on the TLS port: the replica says so.
    let plain = TestServer::start_with(&["--slaveof", &slaveof]);
    std::thread::sleep(Duration::from_millis(500));
    let info: String = q(&mut plain.conn(), &["INFO", "replication"]);
    assert!(info.contains("master_link_status:down"), "{info}");
}

fn cluster_field(s: &TestServer, field: &str) -> String {
    let info: String = q(&mut s.conn(), &["CLUSTER", "INFO"]);
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or("")
        .trim()
        .to_string()
}

#[test]
fn a_three_master_cluster_serves_redis_cli_c_tls() {
    let pki = Pki::new();
    let ids = [
        "a000000000000000000000000000000000000001",
        "b000000000000000000000000000000000000002",
        "c000000000000000000000000000000000000003",
    ];
    let nodes: Vec<(TestServer, u16)> = (0..3)
        .map(|_| {
            tls_server(
                &pki,
                &["--cluster-enabled", "yes", "--tls-replication", "yes"],
            )
        })
        .collect();
    // The topology names the TLS ports: redirections send clients there.
    let ranges = ["0-5460", "5461-10922", "10923-16383"];
    let text: Vec<String> = nodes
        .iter()
        .zip(ids)
        .zip(ranges)
        .map(|(((_, tls), id), r)| format!("{id} 127.0.0.1 {tls} master - {r}"))
        .collect();
    let text = text.join("\n");
    for ((n, _), id) in nodes.iter().zip(ids) {
        let mut c = n.conn();
        let _: () = q(&mut c, &["CLUSTERX", "SETNODEID", id]);
        let _: () = q(&mut c, &["CLUSTERX", "SETNODES", &text, "1"]);
    }
    let client = pki.issue("client");
    let first = nodes[0].1;
    for i in 0..30 {
        let k = format!("key{i}");
        assert_eq!(
            cli(
                first,
                &pki,
                Some(&client),
                &["-c", "SET", &k, &i.to_string()]
            ),
            "OK"
        );
    }
    for i in 0..30 {
        let k = format!("key{i}");
        assert_eq!(
            cli(first, &pki, Some(&client), &["-c", "GET", &k]),
            i.to_string()
        );
    }
    // Keys landed on all three masters.
    for (n, _) in &nodes {
        assert!(q::<i64>(&mut n.conn(), &["DBSIZE"]) > 0);
    }
    // A slot moves to another master over TLS ("key0" is slot 13252, on the third node).
    let mut c3 = nodes[2].0.conn();
    let _: () = q(&mut c3, &["CLUSTERX", "MIGRATE", "13252", ids[0]]);
    wait_until(
        30,
        || cluster_field(&nodes[2].0, "migrating_state") == "success",
        || format!("the migration did not finish:\n{}", nodes[2].0.log()),
    );
    // The controller's part: every node learns the slot's new owner.
    for (n, _) in &nodes {
        let _: () = q(
            &mut n.conn(),
            &["CLUSTERX", "SETSLOT", "13252", "NODE", ids[0], "2"],
        );
    }
    assert_eq!(cli(first, &pki, Some(&client), &["-c", "GET", "key0"]), "0");
    assert_eq!(
        common::err(&mut c3, &["EXISTS", "key0"]),
        format!("MOVED 13252 127.0.0.1:{first}")
    );
}

#[test]
fn migrate_sends_keys_over_tls() {
    let pki = Pki::new();
    let (a, _) = tls_server(&pki, &["--tls-replication", "yes"]);
    let (b, b_tls) = tls_server(&pki, &[]);
    let mut ac = a.conn();
    let _: () = q(&mut ac, &["SET", "k", "v"]);
    let reply: String = q(
        &mut ac,
        &["MIGRATE", "127.0.0.1", &b_tls.to_string(), "k", "0", "5000"],
    );
    assert_eq!(reply, "OK");
    assert_eq!(q::<String>(&mut b.conn(), &["GET", "k"]), "v");
    assert_eq!(q::<i64>(&mut ac, &["EXISTS", "k"]), 0);
}

/// A TLS 1.2 handshake (and PING) by a rustls client offering `suites` in that order: the suite
/// agreed on.
fn tls12_handshake(
    port: u16,
    pki: &Pki,
    suites: &[rustls::CipherSuite],
) -> Result<rustls::CipherSuite, String> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(pki.ca.der().clone()).unwrap();
    #[allow(deprecated)]
    let mut provider = rustls::crypto::ring::default_provider();
    provider.cipher_suites = suites
        .iter()
        .map(|want| {
            *provider
                .cipher_suites
                .iter()
                .find(|s| s.suite() == *want)
                .unwrap()
        })
        .collect();
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(&[&rustls::version::TLS12])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.resumption = rustls::client::Resumption::disabled();
    let (reply, conn) = ping_over(port, config)?;
    assert_eq!(reply, "+PONG\r\n");
    Ok(conn.negotiated_cipher_suite().unwrap().suite())
}

#[test]
fn tls12_ciphers_their_order_and_session_lifetime() {
    use rustls::CipherSuite::{
        TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 as AES128,
        TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384 as AES256,
        TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256 as CHACHA,
    };
    let pki = Pki::new();
    // OpenSSL's names; rcgen's keys are ECDSA.
    let (s, port) = tls_server(
        &pki,
        &[
            "--tls-ciphers",
            "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305",
            "--tls-session-cache-timeout",
            "1",
            "--tls-auth-clients",
            "no",
        ],
    );
    // The client's order decides by default; a suite not listed is never agreed on.
    assert_eq!(
        tls12_handshake(port, &pki, &[AES128, CHACHA, AES256]).unwrap(),
        CHACHA
    );
    assert!(tls12_handshake(port, &pki, &[AES128]).is_err());
    let mut c = s.conn();
    let _: () = q(
        &mut c,
        &["CONFIG", "SET", "tls-prefer-server-ciphers", "yes"],
    );
    assert_eq!(
        tls12_handshake(port, &pki, &[AES128, CHACHA, AES256]).unwrap(),
        AES256
    );
    // Aliases and removal, as OpenSSL reads them.
    let _: () = q(&mut c, &["CONFIG", "SET", "tls-ciphers", "ECDHE:!AES256"]);
    assert_eq!(
        tls12_handshake(port, &pki, &[AES256, CHACHA, AES128]).unwrap(),
        AES128,
        "the server prefers its own order: AES128 comes first among ring's"
    );
    assert!(tls12_handshake(port, &pki, &[AES256]).is_err());
    // Nothing left is refused, and the previous configuration stays.
    let e = common::err(&mut c, &["CONFIG", "SET", "tls-ciphers", "!ALL"]);
    assert!(e.contains("no TLSv1.2 cipher"), "{e}");
    // A session resumes within tls-session-cache-timeout, and not after it (OpenSSL's client).
    let session = pki.path("session.pem");
    assert!(!s_client(port, &["-sess_out", &session]));
    assert!(s_client(port, &["-sess_in", &session]));
    std::thread::sleep(Duration::from_millis(1100));
    assert!(!s_client(port, &["-sess_in", &session]));
}

/// `openssl s_client` over TLS 1.2 (no certificate check: only resumption matters here);
/// whether the session was resumed.
fn s_client(port: u16, args: &[&str]) -> bool {
    let out = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &format!("127.0.0.1:{port}"),
            "-tls1_2",
        ])
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("openssl (scripts/setup-deps --test installs it)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("TLSv1.2, Cipher is"), "{text}");
    text.contains("Reused, TLSv1.2")
}

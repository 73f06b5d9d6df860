//! TLS, with rustls: the `tls-port` listener for clients, and (with `tls-replication`) the
//! links a replica, a slot migration or MIGRATE opens to another node.
//!
//! The directives are Kvrocks' and Redis': `tls-cert-file`, `tls-key-file` (and
//! `tls-key-file-pass` for an encrypted PKCS#8 key), `tls-ca-cert-file`/`tls-ca-cert-dir`,
//! `tls-auth-clients` (`no`, `optional`, anything else: required, as in Kvrocks),
//! `tls-protocols`, `tls-ciphersuites`, `tls-ciphers` (TLS 1.2, OpenSSL's names),
//! `tls-prefer-server-ciphers`, `tls-session-caching`, `tls-session-cache-size` and
//! `tls-session-cache-timeout`.
//! CONFIG SET of any of them builds new configurations: new connections use them, so
//! certificates rotate without a restart; a configuration that does not load is refused and
//! the old one stays.
//!
//! The replication code speaks to plain sockets on threads. A TLS link is bridged: the thread
//! gets one end of a loopback TCP pair, and a task of the server's runtime carries the bytes
//! between the other end and the TLS stream.

use std::io;
use std::net::{SocketAddr, TcpListener as StdListener, TcpStream as StdStream};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};
use tokio::net::TcpStream;
use tokio_rustls::{TlsAcceptor, TlsConnector};
use tracing::{info, warn};

use crate::config::Config;

/// The current TLS configurations (None: TLS is not configured).
#[derive(Default)]
pub struct Tls {
    server: RwLock<Option<Arc<ServerConfig>>>,
    client: RwLock<Option<Arc<ClientConfig>>>,
}

/// The directives whose change rebuilds the configurations.
pub fn is_tls_directive(name: &str) -> bool {
    name.starts_with("tls-") && name != "tls-port" && name != "tls-replication"
}

impl Tls {
    /// Builds both configurations from `cfg` (when a certificate is configured). Err leaves the
    /// current ones in place.
    pub fn reload(&self, cfg: &Config) -> Result<(), String> {
        if cfg.get("tls-cert-file").is_empty() && cfg.get("tls-key-file").is_empty() {
            *self.server.write() = None;
            *self.client.write() = None;
            return Ok(());
        }
        let server = server_config(cfg)?;
        // Links to other nodes need CAs to check them by; without any, there are none.
        let client = if roots(cfg)?.is_empty() {
            None
        } else {
            Some(Arc::new(client_config(cfg)?))
        };
        *self.server.write() = Some(Arc::new(server));
        *self.client.write() = client;
        Ok(())
    }

    pub fn acceptor(&self) -> Option<TlsAcceptor> {
        self.server.read().clone().map(TlsAcceptor::from)
    }

    pub fn connector(&self) -> Option<TlsConnector> {
        self.client.read().clone().map(TlsConnector::from)
    }
}

fn read_certs(path: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let data = std::fs::read(path).map_err(|e| format!("cannot read {path}: {e}"))?;
    let certs: Result<Vec<_>, _> = rustls_pemfile::certs(&mut &data[..]).collect();
    let certs = certs.map_err(|e| format!("cannot parse the certificates in {path}: {e}"))?;
    if certs.is_empty() {
        return Err(format!("no certificate in {path}"));
    }
    Ok(certs)
}

fn read_key(path: &str, pass: &str) -> Result<PrivateKeyDer<'static>, String> {
    let data = std::fs::read(path).map_err(|e| format!("cannot read {path}: {e}"))?;
    let text = String::from_utf8_lossy(&data);
    if text.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----") {
        if pass.is_empty() {
            return Err(format!(
                "the key in {path} is encrypted and tls-key-file-pass is empty"
            ));
        }
        use pkcs8::der::Decode;
        let (_, doc) = pkcs8::SecretDocument::from_pem(&text)
            .map_err(|e| format!("cannot parse the key in {path}: {e}"))?;
        let encrypted = pkcs8::EncryptedPrivateKeyInfo::from_der(doc.as_bytes())
            .map_err(|e| format!("cannot parse the key in {path}: {e}"))?;
        let plain = encrypted
            .decrypt(pass.as_bytes())
            .map_err(|e| format!("cannot decrypt the key in {path} with tls-key-file-pass: {e}"))?;
        return Ok(PrivateKeyDer::Pkcs8(plain.as_bytes().to_vec().into()));
    }
    if text.contains("Proc-Type: 4,ENCRYPTED") {
        return Err(format!(
            "the key in {path} is in OpenSSL's legacy encrypted format; convert it to PKCS#8 (openssl pkcs8 -topk8)"
        ));
    }
    rustls_pemfile::private_key(&mut &data[..])
        .map_err(|e| format!("cannot parse the key in {path}: {e}"))?
        .ok_or_else(|| format!("no private key in {path}"))
}

/// The CA certificates of `tls-ca-cert-file` and `tls-ca-cert-dir`.
fn roots(cfg: &Config) -> Result<RootCertStore, String> {
    let mut store = RootCertStore::empty();
    let mut add = |path: &str| -> Result<(), String> {
        for cert in read_certs(path)? {
            store
                .add(cert)
                .map_err(|e| format!("bad CA certificate in {path}: {e}"))?;
        }
        Ok(())
    };
    let file = cfg.get("tls-ca-cert-file");
    if !file.is_empty() {
        add(file)?;
    }
    let dir = cfg.get("tls-ca-cert-dir");
    if !dir.is_empty() {
        let entries = std::fs::read_dir(dir).map_err(|e| format!("cannot read {dir}: {e}"))?;
        for e in entries.flatten() {
            let path = e.path();
            if path.is_file() {
                // OpenSSL's hashed directories hold other files too: skip what is not PEM.
                let _ = add(&path.to_string_lossy());
            }
        }
    }
    Ok(store)
}

fn provider(cfg: &Config) -> Result<rustls::crypto::CryptoProvider, String> {
    // ring's classic suites and groups (the post-quantum hybrid needs aws-lc, a C build).
    #[allow(deprecated)]
    let mut p = rustls::crypto::ring::default_provider();
    let all = std::mem::take(&mut p.cipher_suites);
    let (tls13, tls12): (Vec<_>, Vec<_>) = all
        .into_iter()
        .partition(|s| s.version() == &rustls::version::TLS13);
    let tls13 = match cfg.get("tls-ciphersuites") {
        "" => tls13,
        wanted => {
            let names: Vec<String> = wanted
                .split(':')
                .map(|s| s.trim().to_ascii_uppercase())
                .filter(|s| !s.is_empty())
                .collect();
            // In the order named: the server's preference with tls-prefer-server-ciphers.
            names
                .iter()
                .filter_map(|n| tls13.iter().find(|s| suite_name(s) == *n).copied())
                .collect()
        }
    };
    let tls12 = match cfg.get("tls-ciphers") {
        "" => tls12,
        list => select_tls12(list, &tls12),
    };
    let protocols = versions(cfg)?;
    let allowed = |v: &rustls::SupportedProtocolVersion| protocols.contains(&v);
    if tls13.is_empty() && allowed(&rustls::version::TLS13) {
        return Err(format!(
            "no TLSv1.3 ciphersuite in tls-ciphersuites '{}'",
            cfg.get("tls-ciphersuites")
        ));
    }
    if tls12.is_empty() && allowed(&rustls::version::TLS12) {
        return Err(format!(
            "no TLSv1.2 cipher in tls-ciphers '{}' (this build has ECDHE with AES-GCM or CHACHA20-POLY1305)",
            cfg.get("tls-ciphers")
        ));
    }
    p.cipher_suites = tls13.into_iter().chain(tls12).collect();
    Ok(p)
}

/// A suite's IANA name, e.g. TLS13_AES_256_GCM_SHA384 or TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256.
fn suite_name(s: &rustls::SupportedCipherSuite) -> String {
    format!("{:?}", s.suite())
}

/// OpenSSL's name of a TLS 1.2 suite (ECDHE-RSA-AES128-GCM-SHA256), from its IANA name.
fn openssl_name(iana: &str) -> Option<String> {
    let rest = iana.strip_prefix("TLS_ECDHE_")?;
    let (auth, cipher) = rest.split_once("_WITH_")?;
    let cipher = match cipher {
        "AES_128_GCM_SHA256" => "AES128-GCM-SHA256",
        "AES_256_GCM_SHA384" => "AES256-GCM-SHA384",
        "CHACHA20_POLY1305_SHA256" => "CHACHA20-POLY1305",
        _ => return None,
    };
    Some(format!("ECDHE-{auth}-{cipher}"))
}

/// The TLS 1.2 suites a `tls-ciphers` list selects, in its order, as OpenSSL reads the common
/// forms: names (OpenSSL's or IANA's) separated by `:`, `,` or spaces; `ALL`, `DEFAULT`, `HIGH`
/// and `ECDHE`-style words for every suite whose OpenSSL name has them; `!` or `-` in front
/// removes. Names this build does not have match nothing, as OpenSSL skips unknown names.
fn select_tls12(
    list: &str,
    available: &[rustls::SupportedCipherSuite],
) -> Vec<rustls::SupportedCipherSuite> {
    let named: Vec<(String, String, rustls::SupportedCipherSuite)> = available
        .iter()
        .filter_map(|s| {
            let iana = suite_name(s);
            Some((openssl_name(&iana)?, iana, *s))
        })
        .collect();
    let mut chosen: Vec<rustls::SupportedCipherSuite> = Vec::new();
    let mut removed: Vec<rustls::SupportedCipherSuite> = Vec::new();
    for word in list
        .split([':', ',', ' '])
        .map(str::trim)
        .filter(|w| !w.is_empty())
    {
        let (remove, word) = match word.strip_prefix(['!', '-']) {
            Some(w) => (true, w),
            // A leading `+` moves suites to the end in OpenSSL; here it only adds them.
            None => (false, word.strip_prefix('+').unwrap_or(word)),
        };
        let upper = word.to_ascii_uppercase();
        // `A+B` selects the suites that both A and B select.
        let matches = named.iter().filter(|(ossl, iana, _)| {
            upper.split('+').all(|w| {
                ossl == w
                    || iana == w
                    || matches!(w, "ALL" | "DEFAULT" | "HIGH")
                    || ossl.split('-').any(|part| alias_matches(w, part))
            })
        });
        for (_, _, suite) in matches {
            if remove {
                removed.push(*suite);
            } else if !chosen.iter().any(|c| c.suite() == suite.suite()) {
                chosen.push(*suite);
            }
        }
    }
    chosen.retain(|c| !removed.iter().any(|r| r.suite() == c.suite()));
    chosen
}

/// Whether an OpenSSL alias (ECDHE, AESGCM, CHACHA20, aRSA, ...) covers one part of a name.
fn alias_matches(alias: &str, part: &str) -> bool {
    match alias {
        "ECDHE" | "EECDH" | "KECDHE" => part == "ECDHE",
        // OpenSSL's `RSA` is RSA key exchange (kRSA), which no suite here has.
        "ARSA" => part == "RSA",
        "AECDSA" | "ECDSA" => part == "ECDSA",
        // Every AES suite here is GCM.
        "AES" | "AESGCM" => part == "AES128" || part == "AES256",
        "AES128" | "AES256" | "CHACHA20" | "SHA256" | "SHA384" => part == alias,
        _ => false,
    }
}

fn versions(cfg: &Config) -> Result<Vec<&'static rustls::SupportedProtocolVersion>, String> {
    let text = cfg.get("tls-protocols").to_ascii_lowercase();
    if text.trim().is_empty() {
        return Ok(vec![&rustls::version::TLS13, &rustls::version::TLS12]);
    }
    let mut out = Vec::new();
    for word in text.split_whitespace() {
        match word {
            "tlsv1.3" => out.push(&rustls::version::TLS13),
            "tlsv1.2" => out.push(&rustls::version::TLS12),
            "tlsv1" | "tlsv1.1" => {
                return Err(format!("{word} is not supported (TLSv1.2 and TLSv1.3 are)"))
            }
            other => return Err(format!("invalid tls-protocols value '{other}'")),
        }
    }
    Ok(out)
}

fn server_config(cfg: &Config) -> Result<ServerConfig, String> {
    let certs = read_certs(cfg.get("tls-cert-file"))?;
    let key = read_key(cfg.get("tls-key-file"), cfg.get("tls-key-file-pass"))?;
    let provider = Arc::new(provider(cfg)?);
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions(cfg)?)
        .map_err(|e| e.to_string())?;
    let policy = cfg.get("tls-auth-clients").to_ascii_lowercase();
    let builder = if policy == "no" {
        builder.with_no_client_auth()
    } else {
        let roots = Arc::new(roots(cfg)?);
        if roots.is_empty() {
            return Err(
                "tls-auth-clients asks for client certificates, but tls-ca-cert-file and tls-ca-cert-dir hold no CA"
                    .into(),
            );
        }
        let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider);
        let verifier = if policy == "optional" {
            verifier.allow_unauthenticated()
        } else {
            verifier
        };
        builder.with_client_cert_verifier(verifier.build().map_err(|e| e.to_string())?)
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(|e| format!("the certificate and the key do not go together: {e}"))?;
    config.session_storage = if cfg.get_bool("tls-session-caching") {
        let size = cfg.get_i64("tls-session-cache-size");
        let size = if size <= 0 { 1 << 20 } else { size as usize };
        let lifetime = Duration::from_secs(cfg.get_i64("tls-session-cache-timeout").max(0) as u64);
        Arc::new(SessionCache::new(size, lifetime))
    } else {
        Arc::new(rustls::server::NoServerSessionStorage {})
    };
    // The server's order of suites (tls-ciphersuites, then tls-ciphers) decides, not the
    // client's (OpenSSL's SSL_OP_CIPHER_SERVER_PREFERENCE).
    config.ignore_client_order = cfg.get_bool("tls-prefer-server-ciphers");
    Ok(config)
}

/// Resumable TLS sessions: at most `size`, each for `lifetime` after it was stored
/// (tls-session-cache-size and tls-session-cache-timeout, as OpenSSL's session cache).
#[derive(Debug)]
struct SessionCache {
    size: usize,
    lifetime: Duration,
    inner: parking_lot::Mutex<SessionMap>,
}

#[derive(Debug, Default)]
struct SessionMap {
    by_id: std::collections::HashMap<Vec<u8>, (std::time::Instant, Vec<u8>)>,
    /// Ids in the order stored (an id stored again, or taken, may still be listed: it is
    /// skipped when its time does not match).
    order: std::collections::VecDeque<(std::time::Instant, Vec<u8>)>,
}

impl SessionCache {
    fn new(size: usize, lifetime: Duration) -> SessionCache {
        SessionCache {
            size,
            lifetime,
            inner: Default::default(),
        }
    }

    fn fresh(&self, stored: std::time::Instant) -> bool {
        stored.elapsed() < self.lifetime
    }
}

impl rustls::server::StoresServerSessions for SessionCache {
    fn put(&self, key: Vec<u8>, value: Vec<u8>) -> bool {
        let now = std::time::Instant::now();
        let mut m = self.inner.lock();
        // Drop what expired or does not fit, oldest first.
        while let Some((at, id)) = m.order.front().cloned() {
            let live = m.by_id.get(&id).is_some_and(|(t, _)| *t == at);
            if live && self.fresh(at) && m.by_id.len() < self.size {
                break;
            }
            m.order.pop_front();
            if live {
                m.by_id.remove(&id);
            }
        }
        m.order.push_back((now, key.clone()));
        m.by_id.insert(key, (now, value));
        // Ids taken or stored again stay listed behind a live one: rebuild the list before it
        // outgrows the cache.
        if m.order.len() > 2 * self.size + 16 {
            let mut live: Vec<(std::time::Instant, Vec<u8>)> =
                m.by_id.iter().map(|(k, (t, _))| (*t, k.clone())).collect();
            live.sort_unstable_by_key(|(t, _)| *t);
            m.order = live.into();
        }
        true
    }

    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        let m = self.inner.lock();
        let (at, value) = m.by_id.get(key)?;
        self.fresh(*at).then(|| value.clone())
    }

    fn take(&self, key: &[u8]) -> Option<Vec<u8>> {
        let (at, value) = self.inner.lock().by_id.remove(key)?;
        self.fresh(at).then_some(value)
    }

    fn can_cache(&self) -> bool {
        !self.lifetime.is_zero()
    }
}

/// For links to other nodes: their certificates are checked against the CAs, and this node
/// presents its own certificate (nodes verify each other, as Redis' replication does).
fn client_config(cfg: &Config) -> Result<ClientConfig, String> {
    let provider = Arc::new(provider(cfg)?);
    let roots = Arc::new(roots(cfg)?);
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions(cfg)?)
        .map_err(|e| e.to_string())?;
    let inner = rustls::client::WebPkiServerVerifier::builder_with_provider(roots, provider)
        .build()
        .map_err(|e| format!("tls-ca-cert-file/tls-ca-cert-dir: {e}"))?;
    let builder = builder
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(ChainOnly(inner)));
    let certs = read_certs(cfg.get("tls-cert-file"))?;
    let key = read_key(cfg.get("tls-key-file"), cfg.get("tls-key-file-pass"))?;
    builder
        .with_client_auth_cert(certs, key)
        .map_err(|e| e.to_string())
}

/// Verifies the peer's chain but not its name: nodes are reached by the address in the
/// topology or `slaveof`, which certificates seldom name, and Redis and Kvrocks (OpenSSL's
/// defaults) check the chain only.
#[derive(Debug)]
struct ChainOnly(Arc<rustls::client::WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName))
            | Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// A connected pair of loopback sockets: one for a thread, one for the bridge.
fn loopback_pair() -> io::Result<(StdStream, StdStream)> {
    let listener = StdListener::bind("127.0.0.1:0")?;
    let a = StdStream::connect(listener.local_addr()?)?;
    let (b, _) = listener.accept()?;
    let _ = a.set_nodelay(true);
    let _ = b.set_nodelay(true);
    Ok((a, b))
}

/// Carries bytes between a TLS stream and the bridge end of a loopback pair until either
/// side closes.
fn spawn_bridge<S>(runtime: &tokio::runtime::Handle, tls: S, plain: StdStream)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    runtime.spawn(bridge(tls, plain));
}

/// Carries bytes both ways until either side closes.
async fn bridge<S>(mut tls: S, plain: StdStream)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    if plain.set_nonblocking(true).is_err() {
        return;
    }
    let Ok(mut plain) = TcpStream::from_std(plain) else {
        return;
    };
    let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
}

/// A server-side TLS connection handed to a replication thread (a replica's feed, full-sync
/// files): the thread gets a plain socket, bridged to the TLS stream.
pub fn bridge_accepted<S>(runtime: &tokio::runtime::Handle, tls: S) -> io::Result<StdStream>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (thread_end, bridge_end) = loopback_pair()?;
    spawn_bridge(runtime, tls, bridge_end);
    Ok(thread_end)
}

/// Opens a TLS link to another node and returns a plain socket bridged to it (for the
/// replication and migration threads, which speak to plain sockets).
/// Called from a thread (never from the runtime's workers): it waits for the handshake.
pub fn connect_bridged(
    runtime: &tokio::runtime::Handle,
    connector: TlsConnector,
    addr: SocketAddr,
    timeout: Duration,
) -> io::Result<StdStream> {
    let (thread_end, bridge_end) = loopback_pair()?;
    let (done, wait) = std::sync::mpsc::channel();
    runtime.spawn(async move {
        let opened = async {
            let tcp = tokio::time::timeout(timeout, TcpStream::connect(addr))
                .await
                .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))??;
            let _ = tcp.set_nodelay(true);
            let name = ServerName::IpAddress(addr.ip().into());
            tokio::time::timeout(timeout, connector.connect(name, tcp))
                .await
                .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out"))?
        }
        .await;
        match opened {
            Ok(tls) => {
                let _ = done.send(Ok(()));
                bridge(tls, bridge_end).await;
            }
            Err(e) => {
                let _ = done.send(Err(e));
            }
        }
    });
    wait.recv_timeout(timeout * 2 + Duration::from_secs(1))
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "TLS connect timed out"))??;
    Ok(thread_end)
}

/// Logs a handshake that failed (a plain-text client on the TLS port, a certificate that does
/// not verify): that connection closes, the server goes on.
pub fn log_handshake_failure(addr: SocketAddr, e: &io::Error) {
    warn!(client = %addr, error = %e, "TLS handshake failed; connection closed");
}

pub fn log_listening(addr: &str) {
    info!(address = addr, "listening (TLS)");
}

/// A connection from this node to another (a replica to its master, a migration to its
/// target, MIGRATE): over TLS when `tls-replication` is on, plain otherwise.
pub fn connect_to_node(
    server: &crate::server::Server,
    addr: SocketAddr,
    timeout: Duration,
) -> io::Result<StdStream> {
    if !server.config.read().get_bool("tls-replication") {
        return StdStream::connect_timeout(&addr, timeout);
    }
    let connector = server.tls.connector().ok_or_else(|| {
        io::Error::other(
            "tls-replication is on, but TLS is not configured (tls-cert-file, tls-ca-cert-file)",
        )
    })?;
    connect_bridged(&server.runtime, connector, addr, timeout)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::server::StoresServerSessions;

    fn tls12_names(list: &str) -> Vec<String> {
        #[allow(deprecated)]
        let all: Vec<_> = rustls::crypto::ring::default_provider()
            .cipher_suites
            .into_iter()
            .filter(|s| s.version() == &rustls::version::TLS12)
            .collect();
        select_tls12(list, &all)
            .iter()
            .map(|s| openssl_name(&suite_name(s)).unwrap())
            .collect()
    }

    #[test]
    fn tls_ciphers_read_as_openssl_reads_its_common_forms() {
        assert_eq!(
            tls12_names(
                "ECDHE-RSA-AES128-GCM-SHA256:TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256"
            ),
            [
                "ECDHE-RSA-AES128-GCM-SHA256",
                "ECDHE-ECDSA-CHACHA20-POLY1305"
            ]
        );
        assert_eq!(
            tls12_names("ECDHE+AESGCM:!aRSA"),
            [
                "ECDHE-ECDSA-AES256-GCM-SHA384",
                "ECDHE-ECDSA-AES128-GCM-SHA256"
            ]
        );
        // `RSA` is RSA key exchange in OpenSSL: removing it leaves the ECDHE-RSA suites.
        assert_eq!(tls12_names("DEFAULT:!RSA").len(), 6);
        assert_eq!(tls12_names("HIGH:!aNULL:!MD5").len(), 6);
        assert!(tls12_names("AES128-SHA:!ALL").is_empty());
        assert!(tls12_names("ECDHE-RSA-AES128-SHA256").is_empty());
    }

    #[test]
    fn the_session_cache_keeps_its_size_and_lifetime() {
        let cache = SessionCache::new(4, Duration::from_secs(60));
        for i in 0..100u32 {
            assert!(cache.put(i.to_be_bytes().to_vec(), vec![1]));
        }
        assert_eq!(cache.inner.lock().by_id.len(), 4);
        assert!(cache.get(&99u32.to_be_bytes()).is_some());
        assert!(cache.get(&0u32.to_be_bytes()).is_none());
        // Sessions resumed (taken) and stored again do not pile up behind a live one.
        for i in 0..10_000u32 {
            let id = (1000 + i).to_be_bytes().to_vec();
            cache.put(id.clone(), vec![2]);
            assert!(cache.take(&id).is_some());
        }
        let m = cache.inner.lock();
        assert!(m.order.len() <= 2 * 4 + 17, "{}", m.order.len());
        drop(m);
        let expired = SessionCache::new(4, Duration::ZERO);
        expired.put(vec![1], vec![1]);
        assert!(expired.get(&[1]).is_none());
        assert!(!expired.can_cache());
    }
}

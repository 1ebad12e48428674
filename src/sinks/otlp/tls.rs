//! TLS for vendor endpoints, with OpenSSL.
//!
//! librdkafka already links OpenSSL (libssl, libcrypto) for the audit
//! path's Kafka TLS, so vendor exports use the same library rather than a
//! second TLS stack: one set of TLS code in the binary and in memory, and
//! one library to patch. This module builds the client context from a
//! vendor's `tls:` settings and is the connector the HTTP client dials
//! through: TCP from hyper-util's `HttpConnector`, then the handshake with
//! `tokio-openssl`.
//!
//! What it keeps from the rustls configuration it replaced: TLS 1.2 or
//! newer; the system roots (found the way `rustls-native-certs` found them,
//! with `openssl-probe`: `SSL_CERT_FILE`/`SSL_CERT_DIR`, then the usual
//! bundle files and directories), or only the operator's `ca_file`; a client
//! certificate for mutual TLS; ALPN `h2` and `http/1.1` for OTLP/HTTP, `h2`
//! alone for gRPC; host name verification; an `https://` endpoint never
//! falls back to plain text.

use std::error::Error as StdError;
use std::fmt;
use std::fs;
use std::future::Future;
use std::io;
use std::path::Path;
use std::pin::Pin;
use std::task::{Context, Poll};

use hyper::http::uri::{Scheme, Uri};
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::rt::TokioIo;
use openssl::error::ErrorStack;
use openssl::pkey::PKey;
use openssl::ssl::{
    Ssl, SslContext, SslContextBuilder, SslFiletype, SslMethod, SslMode, SslOptions, SslVerifyMode,
    SslVersion,
};
use openssl::x509::store::{X509Lookup, X509Store, X509StoreBuilder};
use openssl::x509::verify::X509CheckFlags;
use openssl::x509::{X509VerifyResult, X509};
use tokio::net::TcpStream;
use tokio_openssl::SslStream;

use super::config::TlsConfig;

type BoxError = Box<dyn StdError + Send + Sync>;

/// The ALPN protocols offered: OTLP/HTTP takes HTTP/2 or HTTP/1.1, gRPC
/// needs HTTP/2 (length-prefixed wire format).
#[derive(Clone, Copy, Debug)]
pub(crate) enum Alpn {
    Http,
    Grpc,
}

impl Alpn {
    fn wire(self) -> &'static [u8] {
        match self {
            Alpn::Http => b"\x02h2\x08http/1.1",
            Alpn::Grpc => b"\x02h2",
        }
    }
}

/// The reasons OpenSSL gives, without its source file names and line
/// numbers: "certificate verify failed", "no start line".
pub(crate) fn reasons(e: &ErrorStack) -> String {
    let mut out: Vec<String> = Vec::new();
    for err in e.errors() {
        let mut r = err.reason().unwrap_or("unknown error").to_string();
        if let Some(data) = err.data() {
            r.push_str(&format!(" ({data})"));
        }
        if !out.contains(&r) {
            out.push(r);
        }
    }
    if out.is_empty() {
        "unknown OpenSSL error".into()
    } else {
        out.join("; ")
    }
}

fn read_certs(path: &Path, what: &str) -> Result<Vec<X509>, String> {
    let pem = fs::read(path).map_err(|e| format!("cannot read {what} {}: {e}", path.display()))?;
    let certs = X509::stack_from_pem(&pem)
        .map_err(|e| format!("cannot parse {what} {}: {}", path.display(), reasons(&e)))?;
    if certs.is_empty() {
        return Err(format!("{what} {} has no PEM certificates", path.display()));
    }
    Ok(certs)
}

/// Only the operator's CA certificates: `ca_file` pins the vendor's CA, so
/// the system roots are left out.
fn ca_file_store(ca: &Path) -> Result<X509Store, String> {
    let mut store = X509StoreBuilder::new().map_err(|e| format!("TLS setup: {}", reasons(&e)))?;
    for c in read_certs(ca, "tls.ca_file")? {
        store
            .add_cert(c)
            .map_err(|e| format!("tls.ca_file {}: {}", ca.display(), reasons(&e)))?;
    }
    Ok(store.build())
}

/// Whether `dir` holds certificates under OpenSSL's subject-hash names
/// (`5ad8a5d6.0`, made by `update-ca-certificates` or `c_rehash`), which
/// OpenSSL can look up one at a time during a handshake.
fn hashed(dir: &Path) -> bool {
    let Ok(entries) = fs::read_dir(dir) else {
        return false;
    };
    entries.flatten().any(|e| {
        let name = e.file_name();
        let name = name.to_string_lossy();
        name.split_once('.').is_some_and(|(hash, n)| {
            hash.len() == 8
                && hash.bytes().all(|b| b.is_ascii_hexdigit())
                && !n.is_empty()
                && n.bytes().all(|b| b.is_ascii_digit())
        })
    })
}

/// The system roots, where `rustls-native-certs` looked for them before
/// (the same `openssl-probe` search: `SSL_CERT_FILE` and `SSL_CERT_DIR`,
/// then the usual bundle files and directories). A hashed certificate
/// directory is preferred: OpenSSL reads from it only the CA a handshake
/// needs, when it needs it, where a bundle file is parsed whole at start
/// (about 145 certificates on Debian 12; loading it, twice as
/// `SslConnector` did, cost an idle sidecar 0.75 MiB). The bundle is
/// loaded when no directory is hashed (an image that ships only the
/// bundle file), or when `SSL_CERT_FILE` names it. The libssl in the
/// container image is copied from the build
/// stage, so its compiled-in directory (`/usr/lib/ssl`) need not exist
/// there; probing finds `/etc/ssl/certs` wherever it is.
fn system_store() -> Result<X509Store, String> {
    let probe = openssl_probe::probe();
    let setup = |e: ErrorStack| format!("TLS setup: {}", reasons(&e));
    // OpenSSL takes paths as C strings: a path that is not UTF-8 is
    // skipped (the crate would panic on it).
    let dirs: Vec<&str> = probe
        .cert_dir
        .iter()
        .filter(|d| hashed(d))
        .filter_map(|d| d.to_str())
        .collect();
    let file = probe
        .cert_file
        .as_deref()
        .filter(|_| dirs.is_empty() || std::env::var_os("SSL_CERT_FILE").is_some())
        .and_then(Path::to_str);
    if dirs.is_empty() && file.is_none() {
        return Err(
            "no system root certificates found (is ca-certificates installed?); set tls.ca_file"
                .into(),
        );
    }
    let mut store = X509StoreBuilder::new().map_err(setup)?;
    if let Some(file) = file {
        let loaded = store
            .add_lookup(X509Lookup::file())
            .map_err(setup)?
            .load_cert_file(file, SslFiletype::PEM);
        // A bundle without a certificate is an error only when no
        // certificate directory can stand in for it.
        if let Err(e) = loaded {
            if dirs.is_empty() {
                return Err(format!(
                    "cannot load the system root certificates from {file}: {} (is ca-certificates installed?); set tls.ca_file",
                    reasons(&e)
                ));
            }
        }
    }
    for dir in dirs {
        store
            .add_lookup(X509Lookup::hash_dir())
            .map_err(setup)?
            .add_dir(dir, SslFiletype::PEM)
            .map_err(setup)?;
    }
    Ok(store.build())
}

/// The client context of one vendor. Built here rather than with
/// `openssl::ssl::SslConnector::builder`, whose context first loads
/// OpenSSL's default bundle (`/usr/lib/ssl/cert.pem`, parsed whole) only
/// for [`system_store`] or `ca_file` to replace it; the options are the
/// ones that builder sets (its recommended client defaults): peer
/// verification, no compression, no SSLv2/3, its cipher list without the
/// weak suites, and TLS 1.0 and 1.1 refused on top. Host names are checked
/// per connection ([`Connector`]).
fn context(tls: &TlsConfig, alpn: Alpn) -> Result<SslContext, String> {
    let setup = |e: ErrorStack| format!("TLS setup: {}", reasons(&e));
    let mut b = SslContextBuilder::new(SslMethod::tls_client()).map_err(setup)?;
    let mut opts = SslOptions::ALL
        | SslOptions::NO_COMPRESSION
        | SslOptions::NO_SSLV2
        | SslOptions::NO_SSLV3
        | SslOptions::SINGLE_DH_USE
        | SslOptions::SINGLE_ECDH_USE;
    opts &= !SslOptions::DONT_INSERT_EMPTY_FRAGMENTS;
    b.set_options(opts);
    b.set_mode(
        SslMode::AUTO_RETRY
            | SslMode::ACCEPT_MOVING_WRITE_BUFFER
            | SslMode::ENABLE_PARTIAL_WRITE
            | SslMode::RELEASE_BUFFERS,
    );
    b.set_cipher_list("DEFAULT:!aNULL:!eNULL:!MD5:!3DES:!DES:!RC4:!IDEA:!SEED:!aDSS:!SRP:!PSK")
        .map_err(setup)?;
    b.set_min_proto_version(Some(SslVersion::TLS1_2))
        .map_err(setup)?;
    b.set_alpn_protos(alpn.wire()).map_err(setup)?;
    if tls.insecure_skip_verify {
        // The handshake still checks the server's signatures with the
        // certificate's key, unverified as that certificate is.
        b.set_verify(SslVerifyMode::NONE);
    } else {
        b.set_verify(SslVerifyMode::PEER);
        let store = match &tls.ca_file {
            Some(ca) => ca_file_store(ca)?,
            None => system_store()?,
        };
        b.set_cert_store(store);
    }
    if let (Some(cert), Some(key)) = (&tls.cert_file, &tls.key_file) {
        let mut chain = read_certs(cert, "tls.cert_file")?.into_iter();
        if let Some(leaf) = chain.next() {
            b.set_certificate(&leaf)
                .map_err(|e| format!("tls.cert_file {}: {}", cert.display(), reasons(&e)))?;
        }
        for c in chain {
            b.add_extra_chain_cert(c)
                .map_err(|e| format!("tls.cert_file {}: {}", cert.display(), reasons(&e)))?;
        }
        let pem = fs::read(key)
            .map_err(|e| format!("cannot read tls.key_file {}: {e}", key.display()))?;
        // An empty passphrase: an encrypted key fails here with an error
        // instead of OpenSSL prompting on a terminal.
        let pkey = PKey::private_key_from_pem_passphrase(&pem, b"").map_err(|e| {
            format!(
                "cannot read tls.key_file {}: {} (a PEM private key, PKCS#8, PKCS#1 or SEC1, not encrypted)",
                key.display(),
                reasons(&e)
            )
        })?;
        // OpenSSL checks here that the key is the certificate's.
        let mismatch = |e: ErrorStack| {
            format!(
                "tls.cert_file/key_file: the key in {} does not belong to the certificate in {}: {}",
                key.display(),
                cert.display(),
                reasons(&e)
            )
        };
        b.set_private_key(&pkey).map_err(mismatch)?;
        b.check_private_key().map_err(mismatch)?;
    }
    Ok(b.build())
}

/// A failed TLS handshake (or TLS set-up for one connection): nothing was
/// sent. Its text is OpenSSL's reason and, for a certificate that did not
/// verify, why ("certificate verify failed: self-signed certificate").
#[derive(Debug)]
pub(crate) struct HandshakeError(pub(crate) String);

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl StdError for HandshakeError {}

fn handshake_error(e: openssl::ssl::Error, verify: X509VerifyResult) -> BoxError {
    if e.ssl_error().is_none() {
        // The connection itself broke during the handshake (reset, EOF):
        // a transport failure, as it was with rustls.
        return match e.into_io_error() {
            Ok(io) => Box::new(io),
            Err(_) => Box::new(HandshakeError(
                "the connection closed during the TLS handshake".into(),
            )),
        };
    }
    let mut detail = e
        .ssl_error()
        .map(reasons)
        .unwrap_or_else(|| "TLS handshake failed".into());
    if verify != X509VerifyResult::OK {
        detail.push_str(&format!(": {}", verify.error_string()));
    }
    Box::new(HandshakeError(detail))
}

/// The connector of one vendor's HTTP client: plain TCP for an `http://`
/// endpoint, TLS for an `https://` one.
#[derive(Clone)]
pub(crate) struct Connector {
    http: HttpConnector,
    tls: Option<Tls>,
}

#[derive(Clone)]
struct Tls {
    ctx: SslContext,
    verify_hostname: bool,
}

impl Connector {
    /// `tls` is `Some` for an `https://` endpoint (its `tls:` block may be
    /// absent: then the system roots are used).
    pub(crate) fn new(
        http: HttpConnector,
        https: bool,
        tls: Option<&TlsConfig>,
        alpn: Alpn,
    ) -> Result<Connector, String> {
        let tls = if https {
            let default = TlsConfig::default();
            let cfg = tls.unwrap_or(&default);
            Some(Tls {
                ctx: context(cfg, alpn)?,
                verify_hostname: !cfg.insecure_skip_verify,
            })
        } else {
            None
        };
        Ok(Connector { http, tls })
    }
}

impl tower_service::Service<Uri> for Connector {
    type Response = Stream;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Stream, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.http.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let tls = self.tls.clone();
        let connecting = self.http.call(uri.clone());
        Box::pin(async move {
            let Some(tls) = tls else {
                return Ok(Stream::Plain(connecting.await?));
            };
            // An https:// endpoint never falls back to plain text.
            if uri.scheme() != Some(&Scheme::HTTPS) {
                return Err(Box::new(HandshakeError(
                    "refusing a plain-text connection for an https:// endpoint".into(),
                )) as BoxError);
            }
            let host = uri
                .host()
                .ok_or_else(|| HandshakeError("the endpoint has no host".into()))?;
            // An IPv6 literal comes bracketed in a URI.
            let host = host.trim_start_matches('[').trim_end_matches(']');
            let tcp = connecting.await?.into_inner();
            let setup = |e: ErrorStack| Box::new(HandshakeError(reasons(&e))) as BoxError;
            let ssl = connection(&tls, host).map_err(setup)?;
            let mut stream = SslStream::new(ssl, tcp).map_err(setup)?;
            match Pin::new(&mut stream).connect().await {
                Ok(()) => Ok(Stream::Tls(TokioIo::new(stream))),
                Err(e) => Err(handshake_error(e, stream.ssl().verify_result())),
            }
        })
    }
}

/// One connection's TLS state: SNI for a host name (not for an address),
/// and the name or address the server's certificate must match, without
/// partial wildcards (what `openssl::ssl::ConnectConfiguration` does).
fn connection(tls: &Tls, host: &str) -> Result<Ssl, ErrorStack> {
    let mut ssl = Ssl::new(&tls.ctx)?;
    let ip = host.parse::<std::net::IpAddr>().ok();
    if ip.is_none() {
        ssl.set_hostname(host)?;
    }
    if tls.verify_hostname {
        let param = ssl.param_mut();
        param.set_hostflags(X509CheckFlags::NO_PARTIAL_WILDCARDS);
        match ip {
            Some(ip) => param.set_ip(ip)?,
            None => param.set_host(host)?,
        }
    }
    Ok(ssl)
}

/// A connection to a vendor.
pub(crate) enum Stream {
    Plain(TokioIo<TcpStream>),
    Tls(TokioIo<SslStream<TcpStream>>),
}

impl Connection for Stream {
    fn connected(&self) -> Connected {
        match self {
            Stream::Plain(s) => s.connected(),
            Stream::Tls(s) => {
                let connected = s.inner().get_ref().connected();
                // The HTTP/1.1-or-2 client speaks HTTP/2 when the server
                // chose it.
                if s.inner().ssl().selected_alpn_protocol() == Some(b"h2") {
                    connected.negotiated_h2()
                } else {
                    connected
                }
            }
        }
    }
}

impl Read for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl Write for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s).poll_shutdown(cx),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Plain(s) => s.is_write_vectored(),
            Stream::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Tls(s) => Pin::new(s).poll_write_vectored(cx, bufs),
        }
    }
}

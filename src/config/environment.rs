//! Checks of what a configuration names outside itself: secrets, key and
//! certificate files, directories. `scrubs validate` runs them (unless
//! `--no-environment`), and `scrubs run` runs them before anything starts,
//! so that a configuration `validate` accepts does not stop `run` at the
//! first missing file. Each problem names its path in the configuration and
//! the file or variable concerned, never a secret's value.

use std::collections::BTreeMap;
use std::fs;
use std::io::ErrorKind;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::{AuditSection, SourceConfig};
use crate::secret::SecretSource;
use crate::sinks::otlp::{HeaderValue, VendorConfig};

/// The shortest pseudonym or chain key, as the key types require.
const MIN_KEY_BYTES: usize = 32;

/// The parts of a configuration that name things outside it.
pub(super) struct Named<'a> {
    pub data_dir: &'a Path,
    pub pseudonym_key_file: Option<&'a Path>,
    pub sources: &'a BTreeMap<String, SourceConfig>,
    pub audit: Option<&'a AuditSection>,
    pub vendors: &'a [VendorConfig],
}

/// Every problem with what `named` refers to, each as `path: message`.
pub(super) fn check(named: &Named<'_>) -> Vec<String> {
    let mut out = Vec::new();
    writable_dir("data_dir", named.data_dir, &mut out);
    if let Some(k) = named.pseudonym_key_file {
        key_file("pseudonym_key_file", k, &mut out);
    }
    for (name, source) in named.sources {
        if let SourceConfig::File(f) = source {
            for (i, pattern) in f.include.iter().enumerate() {
                include_dir(&format!("sources.{name}.include[{i}]"), pattern, &mut out);
            }
        }
    }
    if let Some(a) = named.audit {
        let k = &a.kafka;
        writable_dir("audit.kafka.spool_dir", &k.spool_dir, &mut out);
        if let Some(p) = &k.chain_key_file {
            key_file("audit.kafka.chain_key_file", p, &mut out);
        }
        if let Some(s) = &k.security {
            let at = "audit.kafka.security";
            if let Some(p) = &s.password {
                secret(&format!("{at}.password"), p, &mut out);
            }
            tls_files(
                at,
                s.ca_file.as_deref(),
                s.cert_file.as_deref(),
                s.key_file.as_deref(),
                &mut out,
            );
        }
    }
    for (i, v) in named.vendors.iter().enumerate() {
        let at = format!("vendors[{i}]");
        for (header, value) in &v.headers {
            if let HeaderValue::Secret(s) = value {
                secret(&format!("{at}.headers.{header}"), s, &mut out);
            }
        }
        if let Some(t) = &v.tls {
            tls_files(
                &format!("{at}.tls"),
                t.ca_file.as_deref(),
                t.cert_file.as_deref(),
                t.key_file.as_deref(),
                &mut out,
            );
        }
    }
    out
}

fn tls_files(
    at: &str,
    ca: Option<&Path>,
    cert: Option<&Path>,
    key: Option<&Path>,
    out: &mut Vec<String>,
) {
    if let Some(p) = ca {
        pem_file(&format!("{at}.ca_file"), p, Pem::Certificate, out);
    }
    if let Some(p) = cert {
        pem_file(&format!("{at}.cert_file"), p, Pem::Certificate, out);
    }
    if let Some(p) = key {
        let at = format!("{at}.key_file");
        if pem_file(&at, p, Pem::PrivateKey, out) {
            private_permissions(&at, p, out);
        }
    }
}

/// A secret resolves (the variable is set, the file is readable) to a
/// value that is not empty; a secret file is private to its owner (and
/// group).
fn secret(at: &str, s: &SecretSource, out: &mut Vec<String>) {
    match s.resolve() {
        Err(e) => out.push(format!("{at}: {e}")),
        Ok(v) if v.expose().is_empty() => out.push(format!("{at}: the secret is empty")),
        Ok(_) => {
            if let Some(p) = &s.file {
                private_permissions(at, p, out);
            }
        }
    }
}

/// A regular, readable file, or a problem naming `path`; whether it is.
fn readable_file(at: &str, path: &Path, out: &mut Vec<String>) -> Option<Vec<u8>> {
    let shown = path.display();
    match fs::metadata(path) {
        Err(e) => {
            out.push(format!("{at}: {shown}: {}", io_reason(&e)));
            return None;
        }
        Ok(m) if !m.is_file() => {
            out.push(format!("{at}: {shown} is not a regular file"));
            return None;
        }
        Ok(_) => {}
    }
    match fs::read(path) {
        Ok(bytes) => Some(bytes),
        Err(e) => {
            out.push(format!("{at}: {shown}: cannot read: {}", io_reason(&e)));
            None
        }
    }
}

/// A key file: readable, at least 32 bytes without trailing newlines, and
/// private.
fn key_file(at: &str, path: &Path, out: &mut Vec<String>) {
    let Some(mut key) = readable_file(at, path, out) else {
        return;
    };
    while key.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        key.pop();
    }
    if key.len() < MIN_KEY_BYTES {
        out.push(format!(
            "{at}: {}: the key is {} bytes; at least {MIN_KEY_BYTES} are required",
            path.display(),
            key.len()
        ));
    }
    private_permissions(at, path, out);
}

/// A PEM file holding at least one well-formed certificate (or a private
/// key): TLS would otherwise fail later, with a library error that does not
/// name the file. Whether the file could be read. Only the PEM armour is
/// checked (a BEGIN line, base64, the matching END line), not what the
/// DER inside says: OpenSSL reads that when the Kafka producer or the
/// vendor's TLS context is made, and its refusal names the file too.
fn pem_file(at: &str, path: &Path, kind: Pem, out: &mut Vec<String>) -> bool {
    let Some(bytes) = readable_file(at, path, out) else {
        return false;
    };
    let problem = match kind {
        Pem::Certificate => match pem_blocks(&bytes, &["CERTIFICATE"]) {
            Ok(0) => {
                Some("holds no PEM certificate (no -----BEGIN CERTIFICATE----- block)".to_string())
            }
            Ok(_) => None,
            Err(e) => Some(format!("is not a valid PEM certificate file: {e}")),
        },
        Pem::PrivateKey => {
            match pem_blocks(&bytes, &["PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY"]) {
                Ok(0) => Some(
                    "holds no valid PEM private key: no -----BEGIN PRIVATE KEY----- (or RSA or EC PRIVATE KEY) block"
                        .to_string(),
                ),
                Ok(_) => None,
                Err(e) => Some(format!("holds no valid PEM private key: {e}")),
            }
        }
    };
    if let Some(p) = problem {
        out.push(format!("{at}: {} {p}", path.display()));
    }
    true
}

/// Counts the PEM blocks labelled with one of `labels` whose armour is
/// well formed: a `-----BEGIN L-----` line, base64 lines, and `-----END
/// L-----`. Text outside blocks is ignored (bundles carry comments), as
/// are blocks with other labels. An error says what is malformed, never
/// quoting the file's content.
fn pem_blocks(bytes: &[u8], labels: &[&str]) -> Result<usize, String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "it is not text".to_string())?;
    let mut lines = text.lines().map(str::trim);
    let mut found = 0;
    while let Some(line) = lines.next() {
        let Some(label) = line
            .strip_prefix("-----BEGIN ")
            .and_then(|l| l.strip_suffix("-----"))
        else {
            continue;
        };
        let end = format!("-----END {label}-----");
        let mut body = 0usize;
        let mut closed = false;
        for l in lines.by_ref() {
            if l == end {
                closed = true;
                break;
            }
            if !l
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='))
            {
                return Err(format!("the body of a {label} block is not base64"));
            }
            body += l.len();
        }
        if !closed {
            return Err(format!("a {label} block has no {end} line"));
        }
        if body == 0 {
            return Err(format!("a {label} block is empty"));
        }
        if labels.contains(&label) {
            found += 1;
        }
    }
    Ok(found)
}

/// What a PEM file must hold.
#[derive(Clone, Copy)]
enum Pem {
    Certificate,
    PrivateKey,
}

/// Keys and secret files must not be readable or writable by other users,
/// nor writable by the group: anyone who reads the pseudonym key can
/// reverse pseudonyms by guessing, and anyone who reads the chain key can
/// forge the audit chain. Group read is allowed (Kubernetes secret volumes
/// with `defaultMode: 0440` and an `fsGroup`).
fn private_permissions(at: &str, path: &Path, out: &mut Vec<String>) {
    let Ok(meta) = fs::metadata(path) else {
        return;
    };
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o027 != 0 {
        out.push(format!(
            "{at}: {} has mode {mode:04o}, which lets other users read or change it; use 0600 or 0400 (0640 or 0440 to share it with a group)",
            path.display()
        ));
    }
}

/// A directory scrubs writes in: it exists and takes a new file, or it
/// does not exist yet and its nearest existing parent is a directory that
/// does (scrubs creates it).
fn writable_dir(at: &str, path: &Path, out: &mut Vec<String>) {
    let shown = path.display();
    match fs::metadata(path) {
        Ok(m) if !m.is_dir() => out.push(format!("{at}: {shown} is not a directory")),
        Ok(_) => {
            if let Err(e) = probe_write(path) {
                out.push(format!(
                    "{at}: {shown}: cannot write in it: {}",
                    io_reason(&e)
                ));
            }
        }
        Err(e) if e.kind() == ErrorKind::NotFound => {
            let parent = existing_ancestor(path);
            let usable = match &parent {
                Some(p) if p.is_dir() => probe_write(p).map_err(|e| io_reason(&e)),
                Some(p) => Err(format!("{} is not a directory", p.display())),
                None => Err("no parent directory exists".to_string()),
            };
            if let Err(reason) = usable {
                out.push(format!(
                    "{at}: {shown} does not exist and cannot be created ({}: {reason})",
                    parent.as_deref().unwrap_or(path).display()
                ));
            }
        }
        Err(e) => out.push(format!("{at}: {shown}: {}", io_reason(&e))),
    }
}

/// The directory a file source's pattern lists: the part before its first
/// glob character, up to the last `/`. It must exist and be listable;
/// files that appear in it later are picked up, a missing directory is
/// usually a missing volume.
fn include_dir(at: &str, pattern: &str, out: &mut Vec<String>) {
    let literal = match pattern.find(['*', '?', '[', '{']) {
        Some(i) => &pattern[..i],
        None => pattern,
    };
    let dir = match literal.rfind('/') {
        Some(0) => "/",
        Some(i) => &literal[..i],
        None => ".",
    };
    match fs::read_dir(dir) {
        Ok(_) => {}
        Err(e) if e.kind() == ErrorKind::NotFound => {
            out.push(format!("{at}: directory {dir} does not exist"))
        }
        Err(e) => out.push(format!("{at}: {dir}: cannot list: {}", io_reason(&e))),
    }
}

/// Creates and removes an empty file in `dir`: the only check of
/// writability that holds for every user, ACL and read-only mount.
fn probe_write(dir: &Path) -> std::io::Result<()> {
    let probe = dir.join(format!(".scrubs-validate-{}", std::process::id()));
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)?;
    fs::remove_file(&probe)
}

fn existing_ancestor(path: &Path) -> Option<PathBuf> {
    let absolute = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir().ok()?.join(path)
    };
    absolute
        .ancestors()
        .skip(1)
        .find(|p| fs::symlink_metadata(p).is_ok())
        .map(Path::to_path_buf)
}

/// An I/O error as a reason, without the "(os error N)" suffix.
fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        ErrorKind::NotFound => "no such file or directory".into(),
        ErrorKind::PermissionDenied => "permission denied".into(),
        _ => {
            let s = e.to_string();
            match s.find(" (os error") {
                Some(i) => s[..i].to_string(),
                None => s,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::pem_blocks;

    #[test]
    fn pem_armour_is_checked_block_by_block() {
        let cert =
            "# a comment\n-----BEGIN CERTIFICATE-----\nAAAA\nBB==\n-----END CERTIFICATE-----\n";
        assert_eq!(pem_blocks(cert.as_bytes(), &["CERTIFICATE"]), Ok(1));
        let two = format!("{cert}{cert}");
        assert_eq!(pem_blocks(two.as_bytes(), &["CERTIFICATE"]), Ok(2));
        // A key is not a certificate, and the other way round.
        let key = "-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n";
        assert_eq!(pem_blocks(key.as_bytes(), &["CERTIFICATE"]), Ok(0));
        assert_eq!(
            pem_blocks(key.as_bytes(), &["PRIVATE KEY", "EC PRIVATE KEY"]),
            Ok(1)
        );
        assert_eq!(
            pem_blocks(b"this is not a certificate\n", &["CERTIFICATE"]),
            Ok(0)
        );
        for bad in [
            "-----BEGIN CERTIFICATE-----\nAAAA\n",
            "-----BEGIN CERTIFICATE-----\nAA AA!\n-----END CERTIFICATE-----\n",
            "-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n",
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END PRIVATE KEY-----\n",
        ] {
            assert!(
                pem_blocks(bad.as_bytes(), &["CERTIFICATE"]).is_err(),
                "{bad}"
            );
        }
        assert!(pem_blocks(&[0xff, 0xfe], &["CERTIFICATE"]).is_err());
    }
}

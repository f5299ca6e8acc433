//! `hipache cert add|ls|show|rm`: the certificates kept in Redis for the whole fleet, in
//! hipache-raft's layout (`tls:<name>` hashes with `certificate` and `key`, behind the read
//! driver URL's prefix), which proxies with `https.redisCertificates` serve by SNI from the next
//! handshake on.
//!
//! `add` checks everything before writing: the name, the PEM of both files, that the key matches
//! the certificate and that the certificate covers the name; a refusal writes nothing. The
//! two fields go in one `HSET`, so a proxy never reads a certificate with the wrong key. `ls`
//! also lists the config's own certificate files, which serve the names Redis does not hold.
//!
//! It does not own the layout's key names nor the PEM rules (`routes`, `tls`).

use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redis::Connection;

use crate::config::redis_url::{Address, RedisUrl};
use crate::config::{Config, Driver};
use crate::routes::redis::glob_escape;
use crate::routes::{
    TLS_CERTIFICATE_FIELD as CERTIFICATE_FIELD, TLS_EXPIRES_FIELD, TLS_KEY_FIELD as KEY_FIELD,
    TLS_PREFIX, TLS_SOURCE_FIELD,
};
use crate::tls::certs::{self, PemError};
use crate::tls::x509::Facts;

/// Bound on connecting and on each reply.
const TIMEOUT: Duration = Duration::from_secs(5);
/// Keys asked per `SCAN` step.
const SCAN_COUNT: usize = 1_000;
const DAY_SECS: i64 = 86_400;

/// `hipache cert ...`
#[derive(Debug, Clone, PartialEq, Eq, clap::Subcommand)]
pub enum CertCommand {
    /// Store a certificate and its key in Redis as tls:NAME, served by every proxy with
    /// https.redisCertificates from its next handshake on
    Add {
        /// The server name (`example.com`, or `*.example.com` for one level below it)
        name: String,
        /// The certificate chain, PEM
        #[arg(long, value_name = "FILE")]
        cert: PathBuf,
        /// Its private key, PEM (not encrypted)
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
    },
    /// List every certificate, Redis's and the config's files: name, source, issuer, expiry,
    /// days left
    Ls,
    /// Show one certificate kept in Redis
    Show {
        /// The name it is stored under
        name: String,
    },
    /// Remove a certificate from Redis; the proxies serve their files' for the name again
    Rm {
        /// The name it is stored under
        name: String,
    },
}

/// Why a cert command did nothing.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CertError {
    #[error("{name:?}: invalid certificate name: {problem}")]
    BadName { name: String, problem: &'static str },
    #[error("cannot read {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} with {}: refused, nothing written", cert.display(), key.display())]
    Refused {
        cert: PathBuf,
        key: PathBuf,
        #[source]
        source: PemError,
    },
    #[error("{}: the certificate is for {names}, not {name}; nothing written", cert.display())]
    NotCovered {
        cert: PathBuf,
        name: String,
        names: String,
    },
    #[error("the cert commands keep certificates in redis: the driver is a file")]
    NotRedis,
    #[error("the cert commands do not follow a redis-sentinel or redis-cluster driver yet")]
    Unsupported,
    #[error("redis {server}")]
    Redis {
        server: String,
        #[source]
        source: redis::RedisError,
    },
    #[error("{name}: no such certificate in redis")]
    Unknown { name: String },
}

/// Runs `command` against the Redis driver of `config`, printing the result on stdout and any
/// error on stderr. Exit status: 0 done, 1 refused or failed (nothing written).
pub(crate) fn run(command: &CertCommand, config: &Config) -> ExitCode {
    match execute(command, config) {
        Ok(text) => {
            let _ = std::io::stdout().lock().write_all(text.as_bytes());
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("hipache: {}", crate::logging::chain(&error));
            ExitCode::FAILURE
        }
    }
}

fn execute(command: &CertCommand, config: &Config) -> Result<String, CertError> {
    let Driver::Redis { read, write } = &config.driver else {
        return Err(CertError::NotRedis);
    };
    if [read, write]
        .iter()
        .any(|url| url.sentinel.is_some() || url.cluster.is_some())
    {
        return Err(CertError::Unsupported);
    }
    let key_of = |name: &str| format!("{}{TLS_PREFIX}{name}", read.prefix);
    let now = unix_now();
    match command {
        CertCommand::Add { name, cert, key } => {
            let name = name_of(name)?;
            let (cert_pem, key_pem) = (read_file(cert)?, read_file(key)?);
            let refused = |source| CertError::Refused {
                cert: cert.clone(),
                key: key.clone(),
                source,
            };
            let loaded = certs::from_pem(&cert_pem, &key_pem, &crate::crypto::tls_provider())
                .map_err(refused)?;
            if !covers(&loaded.names, &name) {
                return Err(CertError::NotCovered {
                    cert: cert.clone(),
                    name,
                    names: loaded.names.join(", "),
                });
            }
            let mut conn = connect(write)?;
            // The operator's from now on: ACME's marks go, so it does not renew over it.
            redis::pipe()
                .atomic()
                .cmd("HSET")
                .arg(key_of(&name))
                .arg(CERTIFICATE_FIELD)
                .arg(cert_pem)
                .arg(KEY_FIELD)
                .arg(key_pem)
                .ignore()
                .cmd("HDEL")
                .arg(key_of(&name))
                .arg(TLS_SOURCE_FIELD)
                .arg(TLS_EXPIRES_FIELD)
                .ignore()
                .query::<()>(&mut conn)
                .map_err(|e| redis_error(write, e))?;
            Ok(format!("{name}: stored\n"))
        }
        CertCommand::Ls => {
            let mut rows = Vec::new();
            let mut conn = connect(read)?;
            for stored in stored_names(&mut conn, read)? {
                let fields = hash(&mut conn, read, &key_of(&stored))?;
                let source = match fields.get(TLS_SOURCE_FIELD).map(Vec::as_slice) {
                    Some(b"acme") => "redis (acme)",
                    _ => "redis",
                };
                rows.push(row(&stored, source, fields.get(CERTIFICATE_FIELD), now));
            }
            for file in config_files(config) {
                let text = std::fs::read(&file).ok();
                let names = text
                    .as_deref()
                    .and_then(|pem| certs::describe(pem).ok())
                    .map(|(names, _)| names.join(","))
                    .unwrap_or_default();
                rows.push(row(&names, &file.display().to_string(), text.as_ref(), now));
            }
            Ok(table(&rows))
        }
        CertCommand::Show { name } => {
            let name = name_of(name)?;
            let mut conn = connect(read)?;
            let key = key_of(&name);
            let fields = hash(&mut conn, read, &key)?;
            if fields.is_empty() {
                return Err(CertError::Unknown { name });
            }
            Ok(show(&key, &fields, now))
        }
        CertCommand::Rm { name } => {
            let name = name_of(name)?;
            let mut conn = connect(write)?;
            let removed: i64 = redis::cmd("DEL")
                .arg(key_of(&name))
                .query(&mut conn)
                .map_err(|e| redis_error(write, e))?;
            if removed == 0 {
                return Err(CertError::Unknown { name });
            }
            Ok(format!("{name}: removed\n"))
        }
    }
}

/// `name` lowercased, if it is a DNS name or `*.` and one.
fn name_of(name: &str) -> Result<String, CertError> {
    let bad = |problem| CertError::BadName {
        name: name.to_owned(),
        problem,
    };
    let lower = name.trim_end_matches('.').to_ascii_lowercase();
    let host = lower.strip_prefix("*.").unwrap_or(&lower);
    if host.is_empty() || lower.len() > 253 {
        return Err(bad("it must be a DNS name, 1 to 253 characters"));
    }
    let label_ok = |label: &str| {
        !label.is_empty()
            && label.len() <= 63
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    if !host.split('.').all(label_ok) {
        return Err(bad(
            "labels are letters, digits and '-', separated by single dots (a wildcard only as '*.' in front)",
        ));
    }
    Ok(lower)
}

/// Whether a certificate for `names` serves the stored `name` (exactly, or by its wildcard).
fn covers(names: &[String], name: &str) -> bool {
    names.iter().any(|n| n == name)
        || (!name.starts_with("*.")
            && name
                .split_once('.')
                .is_some_and(|(_, parent)| names.iter().any(|n| *n == format!("*.{parent}"))))
}

fn read_file(path: &Path) -> Result<Vec<u8>, CertError> {
    std::fs::read(path).map_err(|source| CertError::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

fn connect(server: &RedisUrl) -> Result<Connection, CertError> {
    let address = Address {
        host: server.host.clone(),
        port: server.port,
    };
    crate::routes::redis::client(server, &address)
        .and_then(|client| client.get_connection_with_timeout(TIMEOUT))
        .and_then(|conn| {
            conn.set_read_timeout(Some(TIMEOUT))?;
            conn.set_write_timeout(Some(TIMEOUT))?;
            Ok(conn)
        })
        .map_err(|e| redis_error(server, e))
}

fn redis_error(server: &RedisUrl, source: redis::RedisError) -> CertError {
    CertError::Redis {
        server: server.to_string(),
        source,
    }
}

/// The names of every `tls:` key, sorted, walked with `SCAN` (never `KEYS`).
fn stored_names(conn: &mut Connection, server: &RedisUrl) -> Result<Vec<String>, CertError> {
    let prefix = format!("{}{TLS_PREFIX}", server.prefix);
    let pattern = format!("{}*", glob_escape(&prefix));
    let mut names = Vec::new();
    let mut cursor: u64 = 0;
    loop {
        let (next, keys): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(SCAN_COUNT)
            .query(conn)
            .map_err(|e| redis_error(server, e))?;
        names.extend(keys.iter().filter_map(|key| {
            let key = String::from_utf8_lossy(key);
            key.strip_prefix(&prefix).map(str::to_owned)
        }));
        if next == 0 {
            break;
        }
        cursor = next;
    }
    names.sort();
    names.dedup();
    Ok(names)
}

fn hash(
    conn: &mut Connection,
    server: &RedisUrl,
    key: &str,
) -> Result<HashMap<String, Vec<u8>>, CertError> {
    redis::cmd("HGETALL")
        .arg(key)
        .query(conn)
        .map_err(|e| redis_error(server, e))
}

/// The certificate files of the config: each bind's, then the `https.certDir` folder's.
fn config_files(config: &Config) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = Vec::new();
    for listener in &config.https {
        if !files.contains(&listener.cert) {
            files.push(listener.cert.clone());
        }
    }
    if let Some(dir) = &config.cert_dir {
        files.extend(
            certs::folder(dir)
                .unwrap_or_default()
                .into_iter()
                .map(|source| source.cert),
        );
    }
    files
}

/// One line of `ls`: name, source, issuer, expiry date, days left.
type Row = [String; 5];

fn row(name: &str, source: &str, certificate: Option<&Vec<u8>>, now: i64) -> Row {
    let described = certificate.map(|pem| certs::describe(pem));
    let (issuer, expires, left) = match described {
        Some(Ok((_, Some(facts)))) => facts_columns(&facts, now),
        Some(Ok((_, None))) => ("?".to_owned(), "?".to_owned(), "?".to_owned()),
        Some(Err(error)) => (
            format!("invalid: {}", crate::logging::chain(&error)),
            "-".to_owned(),
            "-".to_owned(),
        ),
        None => (
            "invalid: no certificate".to_owned(),
            "-".to_owned(),
            "-".to_owned(),
        ),
    };
    [
        printable(name),
        printable(source),
        printable(&issuer),
        expires,
        left,
    ]
}

fn facts_columns(facts: &Facts, now: i64) -> (String, String, String) {
    let left = (facts.not_after - now).div_euclid(DAY_SECS);
    (
        facts.issuer.clone(),
        date(facts.not_after),
        left.to_string(),
    )
}

/// `2031-05-17 00:00:00 UTC`.
fn date(secs: i64) -> String {
    let (year, month, day) = crate::ascii::civil_from_days(secs.div_euclid(DAY_SECS));
    let rem = secs.rem_euclid(DAY_SECS);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn table(rows: &[Row]) -> String {
    let header: Row = ["NAME", "SOURCE", "ISSUER", "EXPIRES", "DAYS LEFT"].map(str::to_owned);
    let mut widths = [0usize; 5];
    for row in std::iter::once(&header).chain(rows) {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(&header).chain(rows) {
        let line: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, width)| format!("{cell:width$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

fn show(key: &str, fields: &HashMap<String, Vec<u8>>, now: i64) -> String {
    let mut out = format!("key: {}\n", printable(key));
    let certificate = fields.get(CERTIFICATE_FIELD);
    match certificate.map(|pem| certs::describe(pem)) {
        Some(Ok((names, facts))) => {
            out.push_str(&format!("names: {}\n", printable(&names.join(", "))));
            if let Some(facts) = facts {
                let (issuer, expires, left) = facts_columns(&facts, now);
                out.push_str(&format!(
                    "issuer: {}\nexpires: {expires}\ndays left: {left}\n",
                    printable(&issuer)
                ));
            }
        }
        Some(Err(error)) => out.push_str(&format!(
            "certificate: invalid: {}\n",
            crate::logging::chain(&error)
        )),
        None => out.push_str("certificate: missing\n"),
    }
    let key_state = match (certificate, fields.get(KEY_FIELD)) {
        (_, None) => "missing".to_owned(),
        (None, Some(_)) => "present".to_owned(),
        (Some(cert), Some(key)) => {
            match certs::from_pem(cert, key, &crate::crypto::tls_provider()) {
                Ok(_) => "matches the certificate".to_owned(),
                Err(error) => format!("unusable: {}", crate::logging::chain(&error)),
            }
        }
    };
    out.push_str(&format!("key: {key_state}\n"));
    out
}

/// `text` with control characters escaped: Redis keys and certificate fields are anyone's
/// writing, and must not drive the operator's terminal.
fn printable(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            let escaped: Vec<char> = if c.is_control() {
                c.escape_default().collect()
            } else {
                vec![c]
            };
            escaped
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_dns_names_or_one_wildcard_in_front() {
        assert_eq!(name_of("A.Example.COM.").unwrap(), "a.example.com");
        assert_eq!(name_of("*.example.com").unwrap(), "*.example.com");
        for bad in ["", "*.", "a..b", "a.*.b", "a b", "a/b", "*"] {
            assert!(name_of(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn a_certificate_covers_its_names_and_those_below_its_wildcards() {
        let names = ["a.test".to_owned(), "*.b.test".to_owned()];
        assert!(covers(&names, "a.test"));
        assert!(covers(&names, "*.b.test"));
        assert!(covers(&names, "x.b.test"));
        assert!(!covers(&names, "b.test"));
        assert!(!covers(&names, "*.a.test"));
        assert!(!covers(&names, "y.x.b.test"));
    }

    #[test]
    fn dates_and_terminal_text() {
        assert_eq!(date(1_936_742_400), "2031-05-17 00:00:00 UTC");
        assert_eq!(printable("a\x1b[31mb\n"), "a\\u{1b}[31mb\\n");
    }
}

//! cert-fill: N self-signed ECDSA P-256 certificates, one per server name, written to stdout as
//! Redis commands (RESP) for `redis-cli --pipe`: `HSET <PREFIX>tls:<name> certificate <PEM> key
//! <PEM>`, the layout hipache's `https.redisCertificates` serves. Names are PATTERN with `{}`
//! replaced by 0 to N-1, as tls-load's `--sni` makes them. Each certificate has its own key, as
//! a platform's customer certificates do, and names its server in its subjectAltName.
//!
//! Usage: cert-fill PATTERN N [PREFIX]

use std::io::{self, BufWriter, Write};
use std::process::ExitCode;

use rcgen::{CertificateParams, KeyPair, PKCS_ECDSA_P256_SHA256};

fn resp(out: &mut impl Write, parts: &[&[u8]]) -> io::Result<()> {
    write!(out, "*{}\r\n", parts.len())?;
    for part in parts {
        write!(out, "${}\r\n", part.len())?;
        out.write_all(part)?;
        out.write_all(b"\r\n")?;
    }
    Ok(())
}

fn run(pattern: &str, count: usize, prefix: &str) -> Result<(), String> {
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    for i in 0..count {
        let name = pattern.replace("{}", &i.to_string());
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(|e| e.to_string())?;
        let params =
            CertificateParams::new(vec![name.clone()]).map_err(|e| format!("{name}: {e}"))?;
        let cert = params
            .self_signed(&key)
            .map_err(|e| format!("{name}: {e}"))?;
        let hash = format!("{prefix}tls:{name}");
        resp(
            &mut out,
            &[
                b"HSET",
                hash.as_bytes(),
                b"certificate",
                cert.pem().as_bytes(),
                b"key",
                key.serialize_pem().as_bytes(),
            ],
        )
        .map_err(|e| format!("writing: {e}"))?;
    }
    out.flush().map_err(|e| format!("writing: {e}"))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (pattern, count, prefix) = match args.as_slice() {
        [p, n] => (p, n, ""),
        [p, n, prefix] => (p, n, prefix.as_str()),
        _ => {
            eprintln!("usage: cert-fill PATTERN N [PREFIX]");
            return ExitCode::from(2);
        }
    };
    let Some(count) = count.parse().ok().filter(|&n: &usize| n > 0) else {
        eprintln!("cert-fill: N must be a whole number above 0, got {count:?}");
        return ExitCode::from(2);
    };
    if !pattern.contains("{}") {
        eprintln!("cert-fill: PATTERN needs a {{}} for the name's number");
        return ExitCode::from(2);
    }
    match run(pattern, count, prefix) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cert-fill: {e}");
            ExitCode::FAILURE
        }
    }
}

//! `https` listeners: key/cert/ca/passphrase inheritance from the section to each bind item, and
//! the check that every TLS file is readable at load time.

use std::fs::File;
use std::io;
use std::path::PathBuf;

use super::{resolve, Ctx};
use crate::config::raw::{OneOrMany, RawBind, RawBindObject, RawListen};
use crate::config::{ConfigError, TlsListener};

const DEFAULT_HTTPS_PORT: u16 = 443;

/// A setting that may come from the bind item or from the `https` section, with the key it came
/// from for error messages.
fn inherit<T: Clone>(
    own: &Option<T>,
    own_key: String,
    global: &Option<T>,
    global_key: &str,
) -> Option<(T, String)> {
    match (own, global) {
        (Some(v), _) => Some((v.clone(), own_key)),
        (None, Some(v)) => Some((v.clone(), global_key.to_owned())),
        (None, None) => None,
    }
}

pub(super) fn listeners(raw: RawListen, ctx: &Ctx<'_>) -> Result<Vec<TlsListener>, ConfigError> {
    let port = raw.port.unwrap_or(DEFAULT_HTTPS_PORT);
    let mut out: Vec<TlsListener> = Vec::new();
    for (i, item) in raw
        .bind
        .clone()
        .map(|b| b.0)
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        let item_key = format!("https.bind[{i}]");
        let object = match item {
            RawBind::Address(address) => RawBindObject {
                address: Some(address.clone()),
                ..Default::default()
            },
            RawBind::Object(object) => object.clone(),
        };
        let address = object
            .address
            .as_ref()
            .ok_or_else(|| ctx.err(format!("{item_key}.address"), "missing"))?;
        let key = inherit(
            &object.key,
            format!("{item_key}.key"),
            &raw.key,
            "https.key",
        );
        let cert = inherit(
            &object.cert,
            format!("{item_key}.cert"),
            &raw.cert,
            "https.cert",
        );
        let (Some((key, key_name)), Some((cert, cert_name))) = (key, cert) else {
            return Err(ctx.err(
                item_key,
                "needs a key and a cert (set https.key and https.cert)",
            ));
        };
        // Hipache hands the global passphrase only to binds that use the global key.
        let passphrase = match &object.passphrase {
            Some(p) => Some(p.clone()),
            None if raw.key.as_ref() == Some(&key) => raw.passphrase.clone(),
            None => None,
        };
        let (ca, ca_name) = inherit(&object.ca, format!("{item_key}.ca"), &raw.ca, "https.ca")
            .map_or((Vec::new(), String::new()), |(OneOrMany(ca), name)| {
                (ca, name)
            });
        let key = readable(&key, key_name, ctx)?;
        let cert = readable(&cert, cert_name, ctx)?;
        let ca = ca
            .iter()
            .enumerate()
            .map(|(j, path)| readable(path, format!("{ca_name}[{j}]"), ctx))
            .collect::<Result<Vec<_>, _>>()?;
        for address in
            resolve(address, object.port.unwrap_or(port)).map_err(|e| ctx.err(&item_key, e))?
        {
            if out.iter().all(|l| l.address != address) {
                out.push(TlsListener {
                    address,
                    key: key.clone(),
                    cert: cert.clone(),
                    ca: ca.clone(),
                    passphrase: passphrase.clone(),
                });
            }
        }
    }
    Ok(out)
}

/// Node's cipher and protocol settings have no rustls equivalent; say they are ignored rather than
/// pretend to honour them.
pub(super) fn node_tls_knobs(raw: &RawListen, ctx: &mut Ctx<'_>) {
    let items = raw
        .bind
        .iter()
        .flat_map(|b| b.0.iter())
        .filter_map(|item| match item {
            RawBind::Object(o) => Some((
                &o.ciphers,
                o.honor_cipher_order,
                &o.secure_protocol,
                o.secure_options,
            )),
            RawBind::Address(_) => None,
        });
    let mut set = [false; 4];
    for (ciphers, honor, protocol, options) in std::iter::once((
        &raw.ciphers,
        raw.honor_cipher_order,
        &raw.secure_protocol,
        raw.secure_options,
    ))
    .chain(items)
    {
        for (flag, given) in set.iter_mut().zip([
            ciphers.is_some(),
            honor.is_some(),
            protocol.is_some(),
            options.is_some(),
        ]) {
            *flag |= given;
        }
    }
    for (given, key) in set.into_iter().zip([
        "ciphers",
        "honorCipherOrder",
        "secureProtocol",
        "secureOptions",
    ]) {
        if given {
            ctx.warnings.push(format!(
                "https.{key} ignored: the TLS library chooses its own protocols and cipher suites"
            ));
        }
    }
}

/// `https.certDir`: must be a folder we can list. Ignored (with a warning) while HTTPS is off.
pub(super) fn cert_dir(raw: &RawListen, ctx: &mut Ctx<'_>) -> Result<Option<PathBuf>, ConfigError> {
    let Some(dir) = raw.cert_dir.as_deref().filter(|d| !d.is_empty()) else {
        return Ok(None);
    };
    let has_binds = raw.bind.as_ref().is_some_and(|b| !b.0.is_empty());
    if !has_binds {
        ctx.warnings
            .push("https.certDir ignored: https.bind is empty".to_owned());
        return Ok(None);
    }
    let path = PathBuf::from(dir);
    match std::fs::read_dir(&path) {
        Ok(_) => Ok(Some(path)),
        Err(source) => Err(ConfigError::Unreadable {
            file: ctx.source.to_path_buf(),
            key: "https.certDir".to_owned(),
            path,
            source,
        }),
    }
}

/// Checks now that a TLS file can be read, so a typo fails at startup rather than at the first
/// handshake. Relative paths stay relative to the working directory, as in Hipache.
fn readable(path: &str, key: String, ctx: &Ctx<'_>) -> Result<PathBuf, ConfigError> {
    let path = PathBuf::from(path);
    let check = File::open(&path).and_then(|f| f.metadata()).and_then(|m| {
        if m.is_dir() {
            Err(io::Error::new(
                io::ErrorKind::IsADirectory,
                "is a directory",
            ))
        } else {
            Ok(())
        }
    });
    match check {
        Ok(()) => Ok(path),
        Err(source) => Err(ConfigError::Unreadable {
            file: ctx.source.to_path_buf(),
            key,
            path,
            source,
        }),
    }
}

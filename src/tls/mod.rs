//! HTTPS: the rustls server configuration of each https listener, and its certificates.
//!
//! Owns: TLS 1.2 and 1.3 with rustls' default suites (the provider `crate::crypto` chooses), ALPN `h2` then
//! `http/1.1`, session resumption by tickets any worker of the node opens (`tickets`) and by
//! a per-worker session cache, SNI over every configured certificate (each `https.bind` key/cert, plus the
//! `https.certDir` folder; with `https.redisCertificates` the worker may pick one from Redis
//! before the handshake, see `serving`), and `Certificates::reload`, which re-reads all of them and swaps the
//! set atomically (the old set stays on any error). The handshake itself runs in
//! `worker::accept`, in the connection's task.
//!
//! Listeners are numbered like `Config::https`: the n-th https listener bound gets
//! `server_config(n)`, whose default certificate is that bind's own.

pub(crate) mod backend_trust;
pub(crate) mod certs;
pub(crate) mod sni;
pub(crate) mod tickets;
pub(crate) mod x509;

use std::path::PathBuf;
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::crypto::CryptoProvider;
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;

use crate::config::Config;
use certs::Source;
pub(crate) use certs::TlsError;
use sni::{CertSet, Names, Own, Resolver};
pub(crate) use tickets::Tickets;

/// Sessions each worker remembers for resumption by id (a few hundred bytes each).
const SESSION_CACHE_ENTRIES: usize = 20_000;

/// Every certificate the https listeners serve, re-readable without a restart.
pub struct Certificates {
    listeners: Vec<Source>,
    cert_dir: Option<PathBuf>,
    provider: Arc<CryptoProvider>,
    set: Arc<ArcSwap<CertSet>>,
}

impl Certificates {
    /// Reads every certificate the config names; `None` when HTTPS is off. Call it before
    /// privileges are dropped: keys are often readable by root only.
    pub fn from_config(config: &Config) -> Result<Option<Self>, TlsError> {
        if config.https.is_empty() {
            return Ok(None);
        }
        let listeners = config
            .https
            .iter()
            .map(|l| Source {
                key: l.key.clone(),
                cert: l.cert.clone(),
                ca: l.ca.clone(),
            })
            .collect();
        let provider = crate::crypto::tls_provider();
        let mut certificates = Self {
            listeners,
            cert_dir: config.cert_dir.clone(),
            provider,
            set: Arc::default(),
        };
        certificates.set = Arc::new(ArcSwap::from_pointee(certificates.read_all()?));
        Ok(Some(certificates))
    }

    /// Re-reads every certificate and swaps the new set in; on error the current set stays, and
    /// the error is logged and returned.
    pub(crate) fn reload(&self) -> Result<(), TlsError> {
        match self.read_all() {
            Ok(set) => {
                tracing::info!(names = set.names.len(), "certificates reloaded");
                self.set.store(Arc::new(set));
                Ok(())
            }
            Err(error) => {
                tracing::error!(error = %crate::logging::chain(&error), "certificate reload failed; keeping the current certificates");
                Err(error)
            }
        }
    }

    /// The server configuration of the `listener`-th https listener (config order), resuming
    /// sessions with `tickets`.
    pub(crate) fn server_config(
        &self,
        listener: usize,
        tickets: Arc<Tickets>,
    ) -> Result<Arc<ServerConfig>, TlsError> {
        let resolver = Arc::new(Resolver {
            set: self.set.clone(),
            listener,
        });
        let mut config = ServerConfig::builder_with_provider(self.provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(TlsError::Config)?
            .with_no_client_auth()
            .with_cert_resolver(resolver);
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        config.ticketer = tickets;
        // TLS 1.2 clients without ticket support resume by session id, on the worker that
        // served them; rustls' default cache holds 256, nginx's `shared:SSL:10m` about 40,000.
        config.session_storage =
            rustls::server::ServerSessionMemoryCache::new(SESSION_CACHE_ENTRIES);
        Ok(Arc::new(config))
    }

    /// Each name the files serve, with when its certificate expires (Unix seconds); the first
    /// certificate loaded for a name, as SNI picks.
    pub(crate) fn expiries(&self) -> Vec<(String, i64)> {
        self.set.load().expiries.clone()
    }

    /// `config` serving `key` to every client: for a certificate chosen before the handshake
    /// (one from Redis). Tickets and the session cache stay the listener's.
    pub(crate) fn serving(config: &ServerConfig, key: Arc<CertifiedKey>) -> Arc<ServerConfig> {
        let mut config = config.clone();
        config.cert_resolver = Arc::new(sni::Fixed(key));
        Arc::new(config)
    }

    fn read_all(&self) -> Result<CertSet, TlsError> {
        let mut set = CertSet::default();
        for source in &self.listeners {
            let loaded = certs::load(source, &self.provider)?;
            add_expiries(&mut set.expiries, &loaded);
            let mut own = Names::default();
            for name in &loaded.names {
                set.names.insert(name, loaded.key.clone());
                own.insert(name, ());
            }
            set.own.push(Own {
                names: own,
                key: loaded.key,
            });
        }
        if let Some(dir) = &self.cert_dir {
            for source in certs::folder(dir)? {
                let loaded = certs::load(&source, &self.provider)?;
                add_expiries(&mut set.expiries, &loaded);
                if loaded.names.is_empty() {
                    tracing::warn!(file = %source.cert.display(), "certificate has no DNS name; never selected");
                }
                for name in &loaded.names {
                    if !set.names.insert(name, loaded.key.clone()) {
                        tracing::debug!(%name, file = %source.cert.display(), "name already served by an earlier certificate");
                    }
                }
            }
        }
        Ok(set)
    }
}

fn add_expiries(expiries: &mut Vec<(String, i64)>, loaded: &certs::Loaded) {
    let Some(facts) = &loaded.facts else { return };
    for name in &loaded.names {
        if expiries.iter().all(|(known, _)| known != name) {
            expiries.push((name.clone(), facts.not_after));
        }
    }
}

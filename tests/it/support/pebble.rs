//! Debian's `pebble` (a test ACME server) and `pebble-challtestsrv` (its DNS) on free loopback
//! ports, each with its own temp dir and config, for the ACME tests.
//!
//! Two steps, because the proxy and pebble each need the other's ports: [`PebblePlan::new`]
//! picks pebble's ports and writes the certificate of its HTTPS (signed by a CA generated here,
//! which the proxy's `acme.directoryCa` names), so the proxy can start with the directory URL;
//! [`PebblePlan::start`] then starts pebble validating on the proxy's http and https ports.
//! challtestsrv answers every name with 127.0.0.1 unless told otherwise. Pebble's log (what it
//! says about each order) is captured: it is the outside witness of how many orders ran.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use tempfile::TempDir;

use super::wait::wait_until;

const START_TIMEOUT: Duration = Duration::from_secs(20);

/// Ports picked and files written; nothing runs yet.
pub(crate) struct PebblePlan {
    dir: TempDir,
    listen: u16,
    management: u16,
    dns: u16,
    dns_management: u16,
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

/// A running pebble and its DNS.
pub(crate) struct Pebble {
    plan: PebblePlan,
    children: Vec<Child>,
    log: Arc<Mutex<Vec<String>>>,
}

/// A loopback port free a moment ago (for a listener that must be known before it starts).
pub(crate) fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local addr").port()
}

fn require(binary: &str) {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {binary}"))
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "{binary} is missing: apt-get install -y pebble (scripts/test installs it)"
    );
}

impl PebblePlan {
    pub(crate) fn new() -> PebblePlan {
        require("pebble");
        require("pebble-challtestsrv");
        let dir = tempfile::tempdir().expect("pebble temp dir");
        let ca_key = rcgen::KeyPair::generate().expect("ca key");
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("ca");
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "pebble test ca");
        let issuer = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).expect("ca cert");
        let key = rcgen::KeyPair::generate().expect("pebble key");
        let params =
            rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
                .expect("pebble cert params");
        let cert = params.signed_by(&key, &issuer).expect("pebble cert");
        let write = |name: &str, text: String| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).expect("write pebble file");
            path
        };
        let ca = write("ca.pem", issuer.as_ref().pem());
        let cert = write("cert.pem", cert.pem());
        let key = write("key.pem", key.serialize_pem());
        PebblePlan {
            dir,
            listen: free_port(),
            management: free_port(),
            dns: free_port(),
            dns_management: free_port(),
            ca,
            cert,
            key,
        }
    }

    /// The ACME directory URL.
    pub(crate) fn directory(&self) -> String {
        format!("https://127.0.0.1:{}/dir", self.listen)
    }

    /// The CA of pebble's own HTTPS (for `acme.directoryCa`).
    pub(crate) fn ca(&self) -> &Path {
        &self.ca
    }

    /// Starts challtestsrv and pebble, validating http-01 on `http_port` and tls-alpn-01 on
    /// `tls_port` of 127.0.0.1, with `env` added to pebble's environment.
    pub(crate) fn start(self, http_port: u16, tls_port: u16, env: &[(&str, &str)]) -> Pebble {
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut children = Vec::new();
        let mut dns = Command::new("pebble-challtestsrv");
        dns.args(["-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""])
            .args(["-dns01", &format!("127.0.0.1:{}", self.dns)])
            .args(["-management", &format!("127.0.0.1:{}", self.dns_management)])
            .args(["-http01", "", "-https01", "", "-tlsalpn01", ""]);
        children.push(spawn(dns, "challtestsrv", &log));
        let config = json!({
            "pebble": {
                "listenAddress": format!("127.0.0.1:{}", self.listen),
                "managementListenAddress": format!("127.0.0.1:{}", self.management),
                "certificate": self.cert,
                "privateKey": self.key,
                "httpPort": http_port,
                "tlsPort": tls_port,
                "ocspResponderURL": "",
                "externalAccountBindingRequired": false
            }
        });
        let config_path = self.dir.path().join("pebble-config.json");
        std::fs::write(&config_path, config.to_string()).expect("write pebble config");
        let mut pebble = Command::new("pebble");
        pebble
            .arg("-config")
            .arg(&config_path)
            .args(["-dnsserver", &format!("127.0.0.1:{}", self.dns)])
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .current_dir(self.dir.path());
        for (name, value) in env {
            pebble.env(name, value);
        }
        children.push(spawn(pebble, "pebble", &log));
        let started = Pebble {
            plan: self,
            children,
            log,
        };
        wait_until(START_TIMEOUT, "pebble's directory and DNS", || {
            started.https_get(started.plan.listen, "/dir").is_some()
                && std::net::TcpStream::connect(("127.0.0.1", started.plan.dns_management)).is_ok()
        });
        started
    }
}

fn spawn(mut command: Command, name: &'static str, log: &Arc<Mutex<Vec<String>>>) -> Child {
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = command
        .spawn()
        .unwrap_or_else(|e| panic!("start {name}: {e}"));
    for stream in [
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
    ]
    .into_iter()
    .flatten()
    {
        let log = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                log.lock().unwrap().push(format!("{name}: {line}"));
            }
        });
    }
    child
}

impl Pebble {
    /// Its ports and files, for more proxies' configs.
    pub(crate) fn plan(&self) -> &PebblePlan {
        &self.plan
    }

    /// GET `path` on pebble's `port` over HTTPS, trusting the test CA; `None` unless a 200.
    fn https_get(&self, port: u16, path: &str) -> Option<String> {
        let output = Command::new("curl")
            .args(["-sf", "--max-time", "5", "--cacert"])
            .arg(&self.plan.ca)
            .arg(format!("https://127.0.0.1:{port}{path}"))
            .output()
            .ok()?;
        output
            .status
            .success()
            .then(|| String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// The root that signs what pebble issues (PEM), from its management API.
    pub(crate) fn root(&self) -> String {
        self.https_get(self.plan.management, "/roots/0")
            .expect("pebble's root from /roots/0")
    }

    /// Stops pebble (SIGSTOP): its clients hang as on a stalled ACME server.
    pub(crate) fn freeze(&self) {
        self.signal(libc::SIGSTOP);
    }

    /// Lets a frozen pebble go on (SIGCONT).
    pub(crate) fn thaw(&self) {
        self.signal(libc::SIGCONT);
    }

    fn signal(&self, signal: libc::c_int) {
        let pid = libc::pid_t::try_from(self.children[1].id()).unwrap();
        // SAFETY: kill(2) has no memory effects; `pid` is our own child, not yet reaped.
        #[expect(
            unsafe_code,
            reason = "kill(2) to stop and resume the child we spawned"
        )]
        let sent = unsafe { libc::kill(pid, signal) };
        assert_eq!(sent, 0, "signal pebble");
    }

    /// Everything pebble and challtestsrv printed so far.
    pub(crate) fn log_lines(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// Lines of pebble's log containing `text`.
    pub(crate) fn count(&self, text: &str) -> usize {
        self.log_lines().iter().filter(|l| l.contains(text)).count()
    }
}

impl Drop for Pebble {
    fn drop(&mut self) {
        self.thaw();
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!("--- pebble log ---");
            for line in self.log_lines() {
                eprintln!("{line}");
            }
        }
    }
}

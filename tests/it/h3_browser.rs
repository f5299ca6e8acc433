//! HTTP/3 in a real browser: headless Chromium, forced to QUIC for the test origin, loads a page
//! and its assets through the proxy and reports the protocol of each (the Navigation and
//! Resource Timing APIs' `nextHopProtocol`). Chromium is Debian's (`scripts/test` installs it).

use std::path::Path;
use std::process::{Child, Command, Stdio};

use serde_json::json;
use std::io::{BufRead, BufReader};

use crate::support::{tls, Config, Hipache, RedisServer};

/// The page: a script and a text file beside it; once all has loaded, it writes the protocol
/// each came over into the document, which Chromium's `--dump-dom` prints.
const INDEX: &str = r#"<!doctype html><html><head><script src="/a.js"></script></head>
<body><img src="/b.txt"><div id="out"></div><script>
window.addEventListener('load', () => {
  const nav = performance.getEntriesByType('navigation')[0].nextHopProtocol;
  const assets = performance.getEntriesByType('resource')
    .map(r => r.name.split('/').pop() + '=' + r.nextHopProtocol).sort();
  document.getElementById('out').textContent =
    'PROTOCOLS page=' + nav + ' ' + assets.join(' ') + ' script=' + window.SCRIPT + ' END';
});
</script></body></html>"#;

/// A static file server (Python's) over `dir` on a free loopback port, stopped on drop.
struct FileServer {
    child: Child,
    port: u16,
}

impl FileServer {
    fn start(dir: &Path) -> Self {
        let mut child = Command::new("python3")
            .args([
                "-u",
                "-m",
                "http.server",
                "--bind",
                "127.0.0.1",
                "0",
                "--directory",
            ])
            .arg(dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("python3 -m http.server: {e}"));
        // "Serving HTTP on 127.0.0.1 port 41234 (http://127.0.0.1:41234/) ..."
        let mut line = String::new();
        let stdout = child
            .stdout
            .take()
            .unwrap_or_else(|| panic!("stdout is piped"));
        BufReader::new(stdout)
            .read_line(&mut line)
            .unwrap_or_else(|e| panic!("http.server prints its port: {e}"));
        let port = line
            .split_whitespace()
            .skip_while(|w| *w != "port")
            .nth(1)
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no port in http.server's line {line:?}"));
        FileServer { child, port }
    }
}

impl Drop for FileServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The base64 SHA-256 of the certificate's public key, which Chromium is told to trust.
fn spki_hash(cert: &Path) -> String {
    let script = format!(
        "openssl x509 -in '{}' -pubkey -noout | openssl pkey -pubin -outform der \
         | openssl dgst -sha256 -binary | base64",
        cert.display()
    );
    let out = (Command::new("sh").args(["-c", &script]).output())
        .unwrap_or_else(|e| panic!("openssl: {e}"));
    assert!(
        out.status.success(),
        "openssl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
fn chromium_loads_a_page_and_its_assets_over_http3() {
    let site = tempfile::tempdir().unwrap();
    std::fs::write(site.path().join("index.html"), INDEX).unwrap();
    std::fs::write(site.path().join("a.js"), "window.SCRIPT = 'ran';\n").unwrap();
    std::fs::write(site.path().join("b.txt"), "asset\n").unwrap();
    let origin = FileServer::start(site.path());

    let redis = RedisServer::start();
    redis.frontend(
        "h3.test",
        "site",
        &[&format!("http://127.0.0.1:{}", origin.port)],
    );
    let config = Config::redis(&redis);
    let (key, cert) = tls::cert(&["h3.test"]).write(config.dir(), "server");
    let hipache = Hipache::start(config.with(json!({
        "https": { "port": 0, "bind": ["127.0.0.1"], "key": key, "cert": cert, "http3": true },
        "user": "nobody"
    })));
    let port = hipache.https_addr().port();

    let profile = tempfile::tempdir().unwrap();
    // Bounded: a browser that hangs fails the test after a minute (timeout(1)).
    let out = Command::new("timeout")
        .arg("60")
        .arg("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--enable-quic",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--origin-to-force-quic-on=h3.test:{port}"))
        .arg("--host-resolver-rules=MAP h3.test 127.0.0.1")
        .arg(format!(
            "--ignore-certificate-errors-spki-list={}",
            spki_hash(&cert)
        ))
        .arg("--virtual-time-budget=10000")
        .arg("--dump-dom")
        .arg(format!("https://h3.test:{port}/"))
        .output()
        .expect("chromium runs (scripts/test installs Debian's chromium)");
    let dom = String::from_utf8_lossy(&out.stdout);
    let report = dom
        .split("PROTOCOLS ")
        .filter_map(|part| part.split(" END").next())
        .find(|part| part.starts_with("page="))
        .unwrap_or_else(|| {
            panic!(
                "the page reported nothing; status {:?}, DOM {dom}, stderr {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            )
        });
    assert_eq!(report, "page=h3 a.js=h3 b.txt=h3 script=ran", "{dom}");

    // The proxy saw the three over HTTP/3 (its access log's protocol).
    let lines = hipache.wait_access_log_lines(3);
    for path in ["/ ", "/a.js ", "/b.txt "] {
        assert!(
            lines
                .iter()
                .any(|l| l.contains(&format!("\"GET {path}HTTP/3.0\" 200"))),
            "{path}: {lines:#?}"
        );
    }
}

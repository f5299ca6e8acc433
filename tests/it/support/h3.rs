//! A real HTTP/3 client: Python's aioquic, driven through `h3_client.py` beside this file (one
//! QUIC connection per run, the certificate verified against the test's own, one JSON line
//! back per request).

use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

/// A run that takes longer than this failed (the client gives up on its requests at 60 s).
const RUN_TIMEOUT: Duration = Duration::from_secs(90);

/// A request's field section as `h3_client.py` sends it: the pseudo-headers of a request for
/// `path` on `authority`, then `fields`.
pub(crate) fn request(method: &str, authority: &str, path: &str, fields: &[(&str, &str)]) -> Value {
    let mut headers = vec![
        json!([":method", method]),
        json!([":scheme", "https"]),
        json!([":authority", authority]),
        json!([":path", path]),
    ];
    headers.extend(fields.iter().map(|(name, value)| json!([name, value])));
    json!({ "headers": headers })
}

/// Runs `plan` (one request object each, see `h3_client.py`) on one connection to `addr`,
/// trusting `ca` for `server_name`; the results in plan order.
pub(crate) fn run(addr: SocketAddr, server_name: &str, ca: &Path, plan: &[Value]) -> Vec<Value> {
    run_with(addr, server_name, ca, plan, &[])
}

/// [`run`], then `plan` again on a connection resumed with the first one's session ticket, its
/// requests sent as early data (0-RTT); the second run's results, with `resumed` and
/// `early_data_accepted`.
pub(crate) fn run_in_early_data(
    addr: SocketAddr,
    server_name: &str,
    ca: &Path,
    plan: &[Value],
) -> Vec<Value> {
    run_with(addr, server_name, ca, plan, &["--early-data"])
}

fn run_with(
    addr: SocketAddr,
    server_name: &str,
    ca: &Path,
    plan: &[Value],
    options: &[&str],
) -> Vec<Value> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/support/h3_client.py");
    let mut child = Command::new("python3")
        .arg(script)
        .arg(addr.to_string())
        .arg(server_name)
        .arg(ca)
        .args(options)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 runs (scripts/test installs it with aioquic)");
    let mut stdin = child.stdin.take().expect("piped stdin");
    stdin
        .write_all(Value::Array(plan.to_vec()).to_string().as_bytes())
        .expect("plan written");
    drop(stdin);
    // Its output is read while it runs: a pipe it filled would stop it.
    let pid = child.id();
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(child.wait_with_output());
    });
    let output = match finished.recv_timeout(RUN_TIMEOUT) {
        Ok(output) => output.expect("client output"),
        Err(_) => {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
            panic!("the HTTP/3 client did not finish within {RUN_TIMEOUT:?}");
        }
    };
    let status = output.status;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !stderr.contains("No module named 'aioquic'"),
        "aioquic is missing: pip install aioquic (scripts/test does)"
    );
    assert!(status.success(), "h3_client.py failed ({status}): {stderr}");
    let results: Vec<Value> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON line"))
        .collect();
    assert_eq!(results.len(), plan.len(), "{stderr}");
    results
}

/// The value of `name` among a result's response fields.
pub(crate) fn field<'a>(result: &'a Value, name: &str) -> Option<&'a str> {
    result["headers"]
        .as_array()?
        .iter()
        .find(|pair| pair[0] == name)
        .and_then(|pair| pair[1].as_str())
}

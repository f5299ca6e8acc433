//! The process lifecycle in the shape production runs: a root master whose workers run as
//! `nobody`. Workers never outlive their master, a port belongs to one instance, a reload that
//! moves a port leaves nothing listening on the old one, and a start refuses what its workers
//! could not set up.

use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::Duration;

use serde_json::json;

use crate::support::hipache::{run_to_exit, Config, Hipache};
use crate::support::procfs::{is_running, listeners_on, listening_ports_of};
use crate::support::redis::{free_port, RedisServer};
use crate::support::wait::wait_until;

/// Root master, two workers as `nobody`, routes from `redis`.
fn production(redis: &RedisServer) -> Config {
    Config::redis(redis).with(json!({
        "server": { "workers": 2 },
        "user": "nobody",
        "group": "nogroup"
    }))
}

fn on_port(config: Config, port: u16) -> Config {
    config.with(json!({ "http": { "port": port } }))
}

fn is_refused(port: u16) -> bool {
    let address = SocketAddr::from(([127, 0, 0, 1], port));
    let refused = std::io::ErrorKind::ConnectionRefused;
    matches!(TcpStream::connect(address), Err(e) if e.kind() == refused)
}

#[test]
fn workers_of_a_killed_master_exit_and_a_restarted_master_is_the_only_listener() {
    let redis = RedisServer::start();
    let first = Hipache::start(production(&redis));
    let port = first.port();
    wait_until(Duration::from_secs(10), "two workers", || {
        first.worker_pids().len() == 2
    });
    let workers = first.worker_pids();
    first.signal(libc::SIGKILL);
    wait_until(
        Duration::from_secs(2),
        "the killed master's workers to exit",
        || !workers.iter().any(|pid| is_running(*pid)),
    );
    let second = Hipache::start(on_port(production(&redis), port));
    let mut ours = second.worker_pids();
    ours.push(second.pid());
    let listeners = listeners_on(port);
    assert!(
        listeners.iter().all(|pid| ours.contains(pid)),
        "port {port} held by {listeners:?}, the new master and its workers are {ours:?}"
    );
}

#[test]
fn a_second_instance_on_a_served_port_exits_naming_the_port() {
    let redis = RedisServer::start();
    let running = Hipache::start(production(&redis));
    let port = running.port();
    let mut holders = running.worker_pids();
    holders.push(running.pid());
    let second = on_port(production(&redis), port);
    let path = second.write();
    let path = path.to_str().expect("utf-8 temp path");
    for args in [&["--config", path][..], &["--dry", "--config", path][..]] {
        let output = run_to_exit(args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{args:?} started:\n{stderr}");
        assert!(
            stderr.contains(&format!("port {port}")),
            "{args:?}:\n{stderr}"
        );
        assert!(
            holders
                .iter()
                .any(|pid| stderr.contains(&format!("pid {pid} (hipache)"))),
            "{args:?} names one of {holders:?}:\n{stderr}"
        );
    }
    assert_eq!(running.get("__ping__", "/").status, 200);
}

/// `--dry` before a reload checks the file of the running instance: its ports are that
/// instance's, which the reload keeps, so they pass; the same config under another name is a
/// second instance and is refused.
#[test]
fn dry_passes_the_running_instances_own_file_and_refuses_a_copy() {
    let redis = RedisServer::start();
    let mut running = Hipache::start(production(&redis));
    let port = running.port();
    // The file now names the port it serves, as an operator's would.
    running.rewrite_config(json!({ "http": { "port": port } }));
    let own = running.config_path();
    let output = run_to_exit(&["--dry", "--config", own.to_str().expect("utf-8 temp path")]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains("served by the running instance"),
        "{stderr}"
    );

    let copy = on_port(production(&redis), port);
    let copy_path = copy.write();
    let output = run_to_exit(&["--dry", "--config", copy_path.to_str().expect("utf-8 path")]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("port {port} is already in use")),
        "{stderr}"
    );
}

/// The master's own ports are not probed on reload (it serves them already), a new one is:
/// another process listening there with `SO_REUSEPORT` would otherwise share it silently.
#[test]
fn a_reload_to_a_port_another_process_serves_keeps_the_running_configuration() {
    let redis = RedisServer::start();
    let mut hipache = Hipache::start(production(&redis));
    let other = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    other.set_reuse_port(true).unwrap();
    other
        .bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .unwrap();
    other.listen(16).unwrap();
    let taken = other.local_addr().unwrap().as_socket().unwrap().port();
    let workers = hipache.worker_pids();
    hipache.rewrite_config(json!({ "http": { "port": taken } }));
    hipache.reload();
    // The log is the behaviour here: the refusal names the port and who holds it. Bounded:
    // stderr reaches the test through a pipe and a thread, possibly after the notification.
    let refused = format!(
        "port {taken} is already in use by pid {}",
        std::process::id()
    );
    wait_until(Duration::from_secs(10), "the reload to be refused", || {
        hipache
            .log_lines()
            .iter()
            .any(|l| l.contains("reload failed") && l.contains(&refused))
    });
    assert_eq!(hipache.worker_pids(), workers);
    assert_eq!(listeners_on(taken), [std::process::id()]);
    assert_eq!(hipache.get("__ping__", "/").status, 200);
}

/// Waits for the reload to finish and for the previous generation to be gone.
fn reload(hipache: &mut Hipache, port: u16) {
    let before = hipache.worker_pids();
    hipache.rewrite_config(json!({ "http": { "port": port } }));
    hipache.reload();
    // Reaped by the master, not only exited: a zombie still counts as its child.
    wait_until(
        Duration::from_secs(10),
        "the old workers to be reaped",
        || !hipache.worker_pids().iter().any(|pid| before.contains(pid)),
    );
}

#[test]
fn a_port_left_by_a_reload_refuses_connections_and_no_worker_keeps_it() {
    let redis = RedisServer::start();
    let (a, b) = (free_port(), free_port());
    let mut hipache = Hipache::start(on_port(production(&redis), a));
    reload(&mut hipache, b);
    assert!(is_refused(a), "port {a} still accepts after moving to {b}");
    for worker in hipache.worker_pids() {
        // Two workers, two sockets on the port: each worker holds its own, and nothing else.
        assert_eq!(listening_ports_of(worker), [b], "worker {worker}");
    }
    reload(&mut hipache, a);
    assert!(
        is_refused(b),
        "port {b} still accepts after moving back to {a}"
    );
    for worker in hipache.worker_pids() {
        assert_eq!(listening_ports_of(worker), [a], "worker {worker}");
    }
    let back = SocketAddr::from(([127, 0, 0, 1], a));
    let ping = crate::support::Request::get("__ping__", "/").send(back);
    assert_eq!(ping.status, 200);
}

/// The links of `pid`'s open descriptors (`/proc/<pid>/fd`).
fn open_files_of(pid: u32) -> Vec<PathBuf> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|fd| std::fs::read_link(fd.path()).ok())
        .collect()
}

/// A descriptor the master inherited from whoever started it (here a shell, in production a
/// deploy tool's pipe) is not passed on to the workers.
#[test]
fn a_descriptor_the_master_inherited_does_not_reach_the_workers() {
    let redis = RedisServer::start();
    let config = production(&redis);
    let marker = config.dir().join("inherited-by-the-master");
    let prelude = format!("exec 9>>'{}'", marker.display());
    let hipache = Hipache::start_after_shell(config, &prelude);
    assert!(open_files_of(hipache.pid()).contains(&marker));
    wait_until(Duration::from_secs(10), "two workers", || {
        hipache.worker_pids().len() == 2
    });
    for worker in hipache.worker_pids() {
        let files = open_files_of(worker);
        assert!(
            !files.is_empty(),
            "worker {worker}'s descriptors are readable"
        );
        assert!(!files.contains(&marker), "worker {worker} holds {files:?}");
    }
}

#[test]
fn an_unresolvable_logging_udp_host_is_refused_by_dry_and_start() {
    let redis = RedisServer::start();
    let config = production(&redis).with(json!({
        "logging": { "udp": { "host": "no-such-host.invalid", "port": 5001 } }
    }));
    let path = config.write();
    let path = path.to_str().expect("utf-8 temp path");
    for args in [&["--dry", "--config", path][..], &["--config", path][..]] {
        let output = run_to_exit(args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{args:?} started:\n{stderr}");
        assert!(stderr.contains("logging.udp.host"), "{args:?}:\n{stderr}");
        assert!(
            stderr.contains("no-such-host.invalid"),
            "{args:?}:\n{stderr}"
        );
    }
}

/// An upgrade replaces the binary on disk (a new file renamed over the path, the running one
/// unlinked, as dpkg does); a reload then starts the workers from the new file, so the new
/// version serves without a restart and without a refused connection.
#[test]
fn a_reload_after_the_binary_was_replaced_on_disk_runs_the_new_one() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let installed = dir.path().join("hipache");
    std::fs::copy(crate::support::hipache::BINARY, &installed).unwrap();
    let running = Hipache::start_from(production(&redis), &installed);
    let exe = |pid: u32| std::fs::read_link(format!("/proc/{pid}/exe")).unwrap();

    let upgraded = dir.path().join("hipache.dpkg-new");
    std::fs::copy(crate::support::hipache::BINARY, &upgraded).unwrap();
    std::fs::rename(&upgraded, &installed).unwrap();
    let old_workers = running.worker_pids();
    assert!(exe(running.pid()).to_string_lossy().ends_with(" (deleted)"));
    running.reload();
    wait_until(Duration::from_secs(10), "the old workers to leave", || {
        !old_workers.iter().any(|pid| is_running(*pid))
    });
    let workers = running.worker_pids();
    assert_eq!(workers.len(), 2);
    for worker in workers {
        assert_eq!(
            exe(worker),
            installed,
            "worker {worker} runs the replaced binary"
        );
    }
    assert_eq!(running.get("__ping__", "/").status, 200);
}

//! The import rule of the source tree, checked on the files themselves: every top-level module
//! sits on a layer, and a module names (in code or in a doc link) only modules of lower layers.
//! Modules on one layer never name each other, so no two modules can form a cycle, and a new
//! top-level module fails the test until it is given a layer.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Lowest first. A module may use `crate::<m>` only for `m` on an earlier line.
const LAYERS: &[&[&str]] = &[
    // Pure helpers over bytes and names.
    &["ascii", "escape", "host_name"],
    // Leaves: configuration, the crypto library, error pages, the process log, dropping root,
    // the master–worker protocol, and the frontend type that route sources build and everyone
    // else reads.
    &[
        "config",
        "crypto",
        "error_page",
        "frontend",
        "logging",
        "privileges",
        "supervision",
    ],
    // Pure decisions and the wire format; counters; TLS configuration.
    &["host_keys", "metrics", "tls", "wire"],
    // Where routes come from (Redis, file).
    &["routes"],
    // Users of routes that are not the request path, and the request path's leaves.
    &[
        "access_log",
        "acme",
        "admin",
        "balancer",
        "health",
        "manage",
    ],
    // The request path: routing, the attempt loop, backends, tunnels.
    &["proxy"],
    // Front ends: framing only.
    &["h1", "h2", "h3"],
    // Processes.
    &["master", "worker"],
    // Entry points that the binary's `main` dispatches to.
    &["cli", "dry"],
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&module))
}

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a source file belongs to: `src/h1/relay.rs` → `h1`.
fn module_of(src: &Path, file: &Path) -> String {
    let relative = file.strip_prefix(src).unwrap();
    let first = relative.components().next().unwrap().as_os_str();
    first.to_string_lossy().trim_end_matches(".rs").to_owned()
}

/// Every top-level module `line` names: `crate::<module>`, or each first name of a
/// `crate::{a, b::c}` group.
fn named_modules(line: &str) -> Vec<&str> {
    let is_name = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut names = Vec::new();
    for (at, _) in line.match_indices("crate::") {
        let rest = &line[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let group = &group[..group.find('}').unwrap_or(group.len())];
            for item in group.split(',') {
                let item = item.trim();
                names.push(&item[..item.find(|c| !is_name(c)).unwrap_or(item.len())]);
            }
        } else {
            names.push(&rest[..rest.find(|c| !is_name(c)).unwrap_or(rest.len())]);
        }
    }
    names
}

/// The imports against the layering in `src`, as `file:line: module uses target`.
fn violations(src: &Path) -> (usize, Vec<String>) {
    let mut files = Vec::new();
    sources(src, &mut files);
    let mut broken = Vec::new();
    for file in &files {
        let module = module_of(src, file);
        if module == "lib" || module == "main" {
            continue;
        }
        let shown = file.strip_prefix(src).unwrap().display().to_string();
        let Some(own) = layer_of(&module) else {
            broken.push(format!("{shown}: module {module} has no layer in LAYERS"));
            continue;
        };
        let text = std::fs::read_to_string(file).unwrap();
        for (number, line) in text.lines().enumerate() {
            for target in named_modules(line) {
                if target == module {
                    continue;
                }
                match layer_of(target) {
                    Some(theirs) if theirs < own => {}
                    Some(_) => broken.push(format!(
                        "{shown}:{}: {module} uses {target}, which is not below it",
                        number + 1
                    )),
                    None => {}
                }
            }
        }
    }
    (files.len(), broken)
}

#[test]
fn every_module_names_only_modules_below_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let (files, broken) = violations(&src);
    assert!(files > 50, "found only {files} source files");
    assert!(
        broken.is_empty(),
        "imports against the layering:\n{}",
        broken.join("\n")
    );
}

#[test]
fn every_top_level_module_has_a_layer_and_only_one() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let on_disk: BTreeSet<String> = std::fs::read_dir(&src)
        .unwrap()
        .map(|entry| module_of(&src, &entry.unwrap().path()))
        .filter(|m| m != "lib" && m != "main")
        .collect();
    let listed: Vec<&str> = LAYERS
        .iter()
        .flat_map(|layer| layer.iter().copied())
        .collect();
    let unique: BTreeSet<String> = listed.iter().map(|m| m.to_string()).collect();
    assert_eq!(listed.len(), unique.len(), "a module is on two layers");
    assert_eq!(on_disk, unique, "LAYERS and src/ disagree");
}

#[test]
fn a_planted_import_of_a_module_not_below_is_caught_in_every_module() {
    let dir = tempfile::tempdir().unwrap();
    let top = LAYERS[LAYERS.len() - 1];
    let modules: Vec<&str> = LAYERS
        .iter()
        .flat_map(|layer| layer.iter().copied())
        .collect();
    for module in &modules {
        // A module of the top layer other than itself: above every other module, beside the
        // top layer's own. Planted both as a path and inside a group.
        let target = top.iter().find(|m| *m != module).unwrap();
        let planted = dir.path().join(module);
        std::fs::create_dir_all(&planted).unwrap();
        std::fs::write(
            planted.join("path.rs"),
            format!("use crate::{target}::Thing;\n"),
        )
        .unwrap();
        std::fs::write(
            planted.join("group.rs"),
            format!("use crate::{{ascii, {target}::Thing}};\n"),
        )
        .unwrap();
    }
    let (_, broken) = violations(dir.path());
    for module in &modules {
        for file in ["path.rs", "group.rs"] {
            assert!(
                broken
                    .iter()
                    .any(|b| b.starts_with(&format!("{module}/{file}:1: "))),
                "planted import in {module}/{file} not caught:\n{}",
                broken.join("\n")
            );
        }
    }
}

/// The code of every source file under `dir` (comment lines left out), as (path in `src`, line
/// number, line).
fn code_lines(src: &Path, dir: &Path) -> Vec<(String, usize, String)> {
    let mut files = Vec::new();
    sources(dir, &mut files);
    let mut lines = Vec::new();
    for file in &files {
        let shown = file.strip_prefix(src).unwrap().display().to_string();
        let text = std::fs::read_to_string(file).unwrap();
        for (number, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            if !code.trim().is_empty() {
                lines.push((shown.clone(), number + 1, code.to_owned()));
            }
        }
    }
    lines
}

/// The front ends' layer: each owns only its protocol's framing.
fn front_ends() -> &'static [&'static str] {
    LAYERS[layer_of("h1").unwrap()]
}

#[test]
fn front_ends_make_none_of_the_sessions_decisions() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    // Routing, forceSecure, the sticky choice, the access log's copy of a request, the error
    // pages and the forwarding fields belong to `proxy::session` and below.
    let decisions = [
        "sticky",
        "secure_redirect",
        "force_secure",
        "LoggedRequest",
        "error_answer",
        ".route(",
        "X_FORWARDED",
        "X_REAL_IP",
        "x-forwarded",
        "X-Forwarded",
        "tunnels.enter",
    ];
    let mut found = Vec::new();
    for front_end in front_ends() {
        for (file, number, line) in code_lines(&src, &src.join(front_end)) {
            for decision in decisions.iter().filter(|d| line.contains(*d)) {
                found.push(format!("{file}:{number}: {decision}: {}", line.trim()));
            }
        }
    }
    assert!(
        found.is_empty(),
        "a front end decides:\n{}",
        found.join("\n")
    );
}

#[test]
fn each_decision_of_a_request_is_written_once() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let lines = code_lines(&src, &src);
    let sites = |needle: &str| -> Vec<String> {
        lines
            .iter()
            .filter(|(_, _, line)| line.contains(needle) && !line.contains("fn "))
            .map(|(file, number, _)| format!("{file}:{number}"))
            .collect()
    };
    // Each is called from one place: the session, or the one function every front end uses.
    for needle in [
        "sticky_token(",
        "LoggedRequest::new(",
        "redirect::decide(",
        "tunnels.enter(",
        "splice_streams(",
    ] {
        let sites = sites(needle);
        assert_eq!(sites.len(), 1, "{needle} at {sites:?}");
    }
    // The forwarding fields' names and values are paired in one file.
    let mut files: Vec<&str> = lines
        .iter()
        .filter(|(_, _, line)| line.contains("X_FORWARDED_FOR"))
        .map(|(file, ..)| file.as_str())
        .collect();
    files.dedup();
    assert_eq!(files, ["wire/headers.rs"]);
}

//! The import rules of the source tree (STYLE.md B), checked on the files themselves: a lower
//! module never imports a higher one, so the folders stay the data flow.

use std::path::{Path, PathBuf};

/// (importing module, modules it must not import).
const FORBIDDEN: &[(&str, &[&str])] = &[
    (
        "config",
        &[
            "access_log",
            "admin",
            "balancer",
            "dry",
            "error_page",
            "h1",
            "h2",
            "manage",
            "master",
            "metrics",
            "proxy",
            "router",
            "routes",
            "supervision",
            "tls",
            "wire",
            "worker",
        ],
    ),
    (
        "routes",
        &["proxy", "h1", "h2", "worker", "master", "manage"],
    ),
    ("wire", &["proxy", "h1", "h2", "routes", "worker", "master"]),
    ("proxy", &["h1", "h2", "worker", "master"]),
    ("h1", &["h2", "worker", "master"]),
    ("h2", &["h1", "worker", "master"]),
    ("master", &["worker", "h1", "h2", "proxy"]),
    ("worker", &["master", "admin"]),
    ("router", &["routes", "proxy", "h1", "h2", "wire"]),
    ("balancer", &["proxy", "h1", "h2", "wire"]),
    ("supervision", &["master", "worker", "admin", "metrics"]),
    // Counters are recorded from everywhere: they import nothing that records them.
    (
        "metrics",
        &[
            "proxy",
            "h1",
            "h2",
            "worker",
            "master",
            "admin",
            "access_log",
            "manage",
        ],
    ),
    (
        "admin",
        &["proxy", "h1", "h2", "worker", "master", "routes"],
    ),
];

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

#[test]
fn lower_modules_never_import_higher_ones() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let mut broken = Vec::new();
    for file in &files {
        let module = module_of(&src, file);
        let Some((_, forbidden)) = FORBIDDEN.iter().find(|(m, _)| *m == module) else {
            continue;
        };
        let text = std::fs::read_to_string(file).unwrap();
        for (number, line) in text.lines().enumerate() {
            for target in *forbidden {
                let path = format!("crate::{target}");
                let imports = line.match_indices(&path).any(|(at, _)| {
                    let next = line[at + path.len()..].chars().next();
                    matches!(next, None | Some(':' | ';' | ',' | '}' | ' '))
                });
                if imports {
                    let shown = file.strip_prefix(&src).unwrap().display();
                    broken.push(format!("{shown}:{}: {module} uses {target}", number + 1));
                }
            }
        }
    }
    assert!(files.len() > 50, "found only {} source files", files.len());
    assert!(
        broken.is_empty(),
        "imports against the layering:\n{}",
        broken.join("\n")
    );
}

//! Build facts for `hipache --version`: the commit the binary was built from (when built from a
//! git checkout) and the crypto library chosen by feature.

use std::path::Path;
use std::process::Command;

fn main() {
    // A commit or a checkout moves `.git/logs/HEAD`; absent (no checkout), nothing to follow.
    for path in [".git/HEAD", ".git/logs/HEAD"] {
        if Path::new(path).exists() {
            println!("cargo:rerun-if-changed={path}");
        }
    }
    let commit = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|out| out.status.success())
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .map(|text| text.trim().to_owned())
        .filter(|text| !text.is_empty())
        .unwrap_or_else(|| "unknown".to_owned());
    let features: Vec<&str> = [
        ("aws-lc", "CARGO_FEATURE_AWS_LC"),
        ("ring", "CARGO_FEATURE_RING"),
    ]
    .into_iter()
    .filter(|(_, var)| std::env::var_os(var).is_some())
    .map(|(name, _)| name)
    .collect();
    // The crate's own rule (src/crypto.rs): aws-lc-rs whenever its feature is on.
    let crypto = if features.contains(&"aws-lc") {
        "aws-lc-rs"
    } else {
        "ring"
    };
    println!("cargo:rustc-env=HIPACHE_COMMIT={commit}");
    println!("cargo:rustc-env=HIPACHE_CRYPTO={crypto}");
    println!("cargo:rustc-env=HIPACHE_FEATURES={}", features.join(", "));
}

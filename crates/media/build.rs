//! Build script: links the system bcg729 library when (and only when) the
//! `g729` cargo feature is enabled. With the feature off it does nothing, so
//! the default build neither needs nor links bcg729 (GPL-3).

use std::path::Path;
use std::process::Command;

const MISSING: &str = "feature g729 needs the bcg729 library: apt-get install libbcg729-dev \
     (GPL-3: enabling this feature makes the resulting binary GPL-3)";

/// Standard library directories searched when pkg-config has no answer.
const LIB_DIRS: &[&str] = &[
    "/usr/lib/x86_64-linux-gnu",
    "/usr/lib/aarch64-linux-gnu",
    "/usr/lib/arm-linux-gnueabihf",
    "/usr/lib/i386-linux-gnu",
    "/usr/lib64",
    "/usr/lib",
    "/usr/local/lib64",
    "/usr/local/lib",
];

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_LIBDIR");
    if std::env::var_os("CARGO_FEATURE_G729").is_none() {
        return;
    }
    if !from_pkg_config() && !from_standard_dirs() {
        println!("cargo:warning={MISSING}");
        eprintln!("error: {MISSING}");
        std::process::exit(1);
    }
}

/// Asks pkg-config for `libbcg729`; true if it answered and the header exists.
fn from_pkg_config() -> bool {
    let Ok(out) = Command::new("pkg-config")
        .args(["--libs", "--cflags", "libbcg729"])
        .output()
    else {
        return false;
    };
    if !out.status.success() {
        return false;
    }
    let flags = String::from_utf8_lossy(&out.stdout);
    let mut include_dirs = vec!["/usr/include".to_owned()];
    let mut directives = Vec::new();
    for flag in flags.split_whitespace() {
        if let Some(dir) = flag.strip_prefix("-L") {
            directives.push(format!("cargo:rustc-link-search=native={dir}"));
        } else if let Some(lib) = flag.strip_prefix("-l") {
            directives.push(format!("cargo:rustc-link-lib={lib}"));
        } else if let Some(dir) = flag.strip_prefix("-I") {
            include_dirs.push(dir.to_owned());
        }
    }
    if !directives.iter().any(|d| d.ends_with("link-lib=bcg729")) {
        directives.push("cargo:rustc-link-lib=bcg729".to_owned());
    }
    // The .pc file can outlive the headers; insist on the header too.
    let found = include_dirs
        .iter()
        .any(|d| Path::new(d).join("bcg729/encoder.h").is_file());
    if found {
        for d in directives {
            println!("{d}");
        }
    }
    found
}

/// No .pc file: look for the header and the shared library by hand.
fn from_standard_dirs() -> bool {
    let header = ["/usr/include", "/usr/local/include"]
        .iter()
        .any(|d| Path::new(d).join("bcg729/encoder.h").is_file());
    let lib_dir = LIB_DIRS
        .iter()
        .find(|d| Path::new(d).join("libbcg729.so").exists());
    match (header, lib_dir) {
        (true, Some(dir)) => {
            println!("cargo:rustc-link-search=native={dir}");
            println!("cargo:rustc-link-lib=dylib=bcg729");
            true
        }
        _ => false,
    }
}

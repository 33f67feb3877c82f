//! The same password files in real Squid 5.7 (`auth_param basic program basic_ncsa_auth FILE`)
//! and in hopproxy's [`Authenticator`]: for every fixture user, right and wrong passwords,
//! both must agree. Proves the fixtures are what Squid reads, and that hopproxy reads them as
//! Squid does (including Squid's lower-casing of user names with `casesensitive off`).
//! Skipped (a `SKIPPED:` line, counted by .ci/run) when squid or curl is not installed.

mod common;

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use hopproxy::auth::basic::encode;
use hopproxy::auth::{AuthResult, Authenticator};
use hopproxy::config::parse_str;
use hopproxy::lab::squid::{Squid, squid_binary};

const HELPER: &str = "/usr/lib/squid/basic_ncsa_auth";

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/auth")
        .join(name)
}

/// Status code curl saw for a plain-HTTP request through `proxy` as `user:password`. The
/// destination refuses connections, so accepted credentials give 503 and refused ones 407.
fn status_through(proxy: SocketAddr, user: &str, password: &str) -> u16 {
    let output = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "20", "-x"])
        .arg(format!("http://{proxy}"))
        .arg("--proxy-user")
        .arg(format!("{user}:{password}"))
        .arg("http://127.0.0.1:1/")
        .output()
        .expect("curl runs");
    String::from_utf8_lossy(&output.stdout).trim().parse().unwrap_or(0)
}

#[test]
fn squid_and_hopproxy_agree_on_the_fixture_files() {
    if squid_binary().is_err() || !Path::new(HELPER).exists() || Command::new("curl").arg("--version").output().is_err()
    {
        common::skip("squid, basic_ncsa_auth or curl is missing");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    // Squid runs its helper as the 'proxy' user: give it copies it can read.
    let mut passwd = String::new();
    for name in ["passwd", "mixedcase"] {
        passwd.push_str(&std::fs::read_to_string(fixture(name)).unwrap());
    }
    let file = dir.path().join("users");
    std::fs::write(&file, &passwd).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();

    let auth_lines = format!(
        "auth_param basic program {HELPER} {}\nauth_param basic realm squid-auth-test\n\
         acl users proxy_auth REQUIRED\nhttp_access allow users\nhttp_access deny all",
        file.display()
    );
    // A free port, not Squid's 3128: a packaged Squid may hold *:3128.
    let ip: std::net::IpAddr = "127.0.9.41".parse().unwrap();
    let addr = SocketAddr::new(ip, hopproxy::lab::process::free_port(ip).unwrap());
    let squid = match Squid::start("auth-squid", addr, &auth_lines, dir.path()) {
        Ok(squid) => squid,
        Err(e) => panic!("squid did not start: {e}"),
    };
    let config = parse_str(&format!("http_port 3128\n{auth_lines}\n"), &dir.path().join("hop.conf"))
        .unwrap_or_else(|d| panic!("{d:#?}"))
        .config;
    let hop = Authenticator::from_config(&config).unwrap().unwrap();

    let cases: &[(&str, &str)] = &[
        ("bcrypt-user", "bcrypt pass"),
        ("bcrypt-2a", "two a"),
        ("bcrypt-2b", "two b"),
        ("apr1-user", "apr1 pass"),
        ("md5crypt-user", "md5crypt pass"),
        ("sha256-user", "sha256 pass"),
        ("sha512-user", "sha512 pass"),
        ("sha512-rounds", "many rounds"),
        ("openssl-apr1", "openssl apr1"),
        ("utf8-user", "pässwörd"),
        ("SHA512-User", "sha512 pass"), // lower-cased by both, so accepted
        ("Mixed-Case", "Secret"),       // lower-cased by both, so never found
        ("apr1-user", "wrong"),
        ("nobody", "x"),
    ];
    let mut mismatches = Vec::new();
    for (user, password) in cases {
        let squid_ok = match status_through(addr, user, password) {
            407 => false,
            0 => panic!("curl got no answer from squid for {user}"),
            _ => true,
        };
        let header = encode(user, password);
        let hop_ok = matches!(
            hop.check_blocking(Some(header.as_bytes())),
            AuthResult::Authenticated(_)
        );
        println!("{user:>14} {password:>14}: squid {squid_ok}, hopproxy {hop_ok}");
        if squid_ok != hop_ok {
            mismatches.push(format!("{user}/{password}: squid {squid_ok}, hopproxy {hop_ok}"));
        }
    }
    let log = squid.access_log_text();
    assert!(mismatches.is_empty(), "{mismatches:#?}\nsquid log:\n{log}");
    assert!(log.contains(" TCP_DENIED/407 "), "{log}");
    assert!(log.contains(" sha512-user "), "Squid logs the lower-cased user: {log}");
}

//! `hopproxy check` as an operator runs it: the seed's two configs, Debian's stock
//! squid.conf, and broken configs with their exact diagnostic lines and exit codes.

use std::path::{Path, PathBuf};
use std::process::Command;

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn check(path: &Path) -> Run {
    let output = Command::new(env!("CARGO_BIN_EXE_hopproxy"))
        .arg("check")
        .arg("-c")
        .arg(path)
        .output()
        .expect("run hopproxy");
    Run {
        code: output.status.code().expect("exit code"),
        stdout: String::from_utf8(output.stdout).expect("utf-8"),
        stderr: String::from_utf8(output.stderr).expect("utf-8"),
    }
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

fn has_line(out: &str, expected: &str) -> bool {
    out.lines().any(|l| l == expected)
}

#[test]
fn seed_configs_pass_with_the_open_proxy_warning() {
    for name in ["seed-proxy1.conf", "seed-proxy2.conf"] {
        let path = fixture(name);
        let run = check(&path);
        let p = path.display();
        assert_eq!(run.code, 0, "{name}: {}{}", run.stdout, run.stderr);
        for expected in [
            format!(
                "{p}:11: warning: open proxy: 'http_access allow CONNECT SSL_ports' lets any client reach any host by CONNECT on port 443"
            ),
            format!(
                "{p}:12: warning: open proxy: 'http_access allow Safe_ports' lets any client reach any host with any method but CONNECT on port 443"
            ),
        ] {
            assert!(
                has_line(&run.stdout, &expected),
                "{name}: missing {expected:?} in\n{}",
                run.stdout
            );
        }
        assert!(
            run.stdout
                .contains("hint: put 'http_access deny !Safe_ports' and 'http_access deny CONNECT !SSL_ports' first"),
            "{}",
            run.stdout
        );
        // The inline Japanese comments are dropped silently, as Squid does (docs/squid-behaviour.md A1).
        assert!(!run.stdout.contains("error"), "{}", run.stdout);
        assert!(
            has_line(&run.stdout, &format!("{p}: OK (3 warnings, 0 directives ignored)")),
            "{}",
            run.stdout
        );
    }
}

#[test]
fn debian_stock_squid_conf_passes_without_open_proxy_warning() {
    let path = Path::new("/etc/squid/squid.conf");
    assert!(
        path.exists(),
        "/etc/squid/squid.conf is missing: install Debian's squid package (CI does)"
    );
    let run = check(path);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert!(!run.stdout.contains("open proxy"), "{}", run.stdout);
    assert!(!run.stdout.contains(": warning: "), "{}", run.stdout);
    assert!(
        run.stdout
            .contains("note: 'refresh_pattern' ignored (only concerns caching): hopproxy does not cache"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("note: 'coredump_dir' ignored (only concerns caching):"),
        "{}",
        run.stdout
    );
    let summary = run.stdout.lines().last().unwrap_or_default();
    assert!(
        summary.starts_with("/etc/squid/squid.conf: OK (0 warnings, ") && summary.ends_with(" directives ignored)"),
        "{summary}"
    );
}

#[test]
fn broken_configs_fail_with_file_line_errors() {
    let dir = tempfile::tempdir().unwrap();
    let cases: &[(&str, &[&str])] = &[
        (
            "http_port 8080 junk\nacl SSL_ports port 443#comment\nhttp_access allow all junk\n",
            &[
                "{}:1: error: unknown http_port option 'junk'",
                "{}:2: error: '443#comment' is not a port number or range",
                "{}:3: error: ACL not found: junk",
                "{}: 3 errors",
            ],
        ),
        (
            "http_port 3128\nacl d dstdomain example.com .example.com\nacl p port 500-400\nhttp_access deny all\n",
            &[
                "{}:2: error: '.example.com' is a subdomain of 'example.com' in ACL 'd'",
                "{}:3: error: port range '500-400' is backwards: it starts above where it ends, so it matches nothing",
                "    hint: write the lower port first: '400-500'",
                "{}: 2 errors",
            ],
        ),
        (
            "htp_port 3128\nhttp_access deny all\n",
            &[
                "{}:1: error: unknown directive 'htp_port'",
                "    hint: did you mean 'http_port'?",
                "{}:1: error: no http_port: hopproxy would not listen anywhere",
                "{}: 2 errors",
            ],
        ),
        (
            "http_port 3128\ncache_peer 127.0.0.12 sibling 8080 0\nhttp_access deny all\n",
            &[
                "{}:2: error: cache_peer type 'sibling' is not supported",
                "    hint: hopproxy forwards only to parents: use 'parent'",
            ],
        ),
    ];
    for (index, (text, expected)) in cases.iter().enumerate() {
        let path = dir.path().join(format!("bad{index}.conf"));
        std::fs::write(&path, text).unwrap();
        let run = check(&path);
        assert_eq!(run.code, 1, "{text:?}: {}", run.stdout);
        for line in *expected {
            let line = line.replace("{}", &path.display().to_string());
            assert!(
                has_line(&run.stdout, &line),
                "{text:?}: missing {line:?} in\n{}",
                run.stdout
            );
        }
    }
}

#[test]
fn warnings_alone_do_not_fail() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("warn.conf");
    std::fs::write(
        &path,
        "http_port 3128\ncache_peer 127.0.0.12 parent 8080 0 no-query default junk\ncache_dir ufs /var/spool/squid 100 16 256\n\
         acl s src 127.0.0.0/8 127.0.0.5\nhttp_access allow s\nhttp_access deny all\naccess_log none\n",
    )
    .unwrap();
    let run = check(&path);
    let p = path.display();
    assert_eq!(run.code, 0, "{}", run.stdout);
    assert!(
        has_line(
            &run.stdout,
            &format!("{p}:2: warning: ignoring unknown cache_peer option 'junk'")
        ),
        "{}",
        run.stdout
    );
    assert!(
        has_line(
            &run.stdout,
            &format!("{p}:4: warning: '127.0.0.5' is a subnetwork of '127.0.0.0/8' in ACL 's'")
        ),
        "{}",
        run.stdout
    );
    assert!(
        has_line(
            &run.stdout,
            &format!("{p}:3: note: 'cache_dir' ignored (only concerns caching): hopproxy does not cache")
        ),
        "{}",
        run.stdout
    );
    // Errors, then warnings, then notes.
    let severities: Vec<&str> = run
        .stdout
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .filter(|s| ["error", "warning", "note"].contains(s))
        .collect();
    let mut sorted = severities.clone();
    sorted.sort_by_key(|s| ["error", "warning", "note"].iter().position(|x| x == s));
    assert_eq!(severities, sorted);
    assert_eq!(
        run.stdout.lines().last().unwrap(),
        format!("{p}: OK (2 warnings, 1 directive ignored)")
    );
}

#[test]
fn unreadable_file_exits_2_and_f_alias_works() {
    let run = check(Path::new("/nonexistent/hopproxy/squid.conf"));
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("/nonexistent/hopproxy/squid.conf"),
        "{}",
        run.stderr
    );

    let output = Command::new(env!("CARGO_BIN_EXE_hopproxy"))
        .args(["check", "-f"])
        .arg(fixture("seed-proxy2.conf"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0));
}

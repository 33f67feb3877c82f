//! `hopproxy explain` as an operator runs it: the seed's proxy1 (docs/squid-behaviour.md 3.1),
//! a guarded Debian-like policy, `--json`, and an invalid config.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

struct Run {
    code: i32,
    stdout: String,
}

fn explain(path: &Path, json: bool) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hopproxy"));
    cmd.arg("explain").arg("-c").arg(path);
    if json {
        cmd.arg("--json");
    }
    let output = cmd.output().expect("run hopproxy");
    Run {
        code: output.status.code().expect("exit code"),
        stdout: String::from_utf8(output.stdout).expect("utf-8"),
    }
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

fn write_config(dir: &tempfile::TempDir, text: &str) -> PathBuf {
    let path = dir.path().join("squid.conf");
    std::fs::write(&path, text).expect("write config");
    path
}

/// Lines without trailing padding, so assertions do not depend on column widths' spaces.
fn lines(text: &str) -> Vec<String> {
    text.lines().map(|l| l.trim_end().to_string()).collect()
}

#[test]
fn seed_proxy1_reads_as_reference_3_1() {
    let run = explain(&fixture("seed-proxy1.conf"), false);
    assert_eq!(run.code, 0, "{}", run.stdout);
    assert_eq!(
        lines(&run.stdout),
        vec![
            "http_access (first match wins):",
            "  ALLOW  clients 127.0.0.5 → ingress-orange-saas.instana.io   any port   any method      (line 10)",
            "! ALLOW  any client        → any host                         port 443   CONNECT         (line 11)",
            "! ALLOW  any client        → any host                         port 443   other methods   (line 12)",
            "  DENY   everything else                                                                 (line 13)",
            "  ! line 11: open proxy: 'http_access allow CONNECT SSL_ports' lets any client reach any host by CONNECT on port 443",
            "  ! line 12: open proxy: 'http_access allow Safe_ports' lets any client reach any host with any method but CONNECT on port 443",
            "routing: never_direct allow all (line 16) → every request goes to a parent: 127.0.0.12:8080 (FIRSTUP), no direct fallback",
            "listening: port 8080 on all addresses (line 2)",
            "access log: /var/log/squid/access.log (line 18)",
            "timeouts and limits: Squid's defaults",
        ]
    );
}

const GUARDED: &str = "http_port 3128
acl localnet src 10.0.0.0/8
acl localnet src 192.168.0.0/16
acl SSL_ports port 443
acl Safe_ports port 80
acl Safe_ports port 443
acl Safe_ports port 1025-65535
acl CONNECT method CONNECT
http_access deny !Safe_ports
http_access deny CONNECT !SSL_ports
http_access allow localnet
http_access deny all
read_timeout 2 minutes
access_log none
";

#[test]
fn guarded_policy_allows_only_localnet_and_connect_to_443() {
    let dir = tempfile::tempdir().unwrap();
    let run = explain(&write_config(&dir, GUARDED), false);
    assert_eq!(run.code, 0, "{}", run.stdout);
    let got = lines(&run.stdout);
    assert_eq!(
        got[..6],
        [
            "http_access (first match wins):",
            "  DENY   any client                         → any host   ports 1-79, 81-442, 444-1024   any method      (line 9)",
            "  DENY   any client                         → any host   any port except 443            CONNECT         (line 10)",
            "  ALLOW  clients 10.0.0.0/8, 192.168.0.0/16 → any host   port 443                       CONNECT         (line 11)",
            "  ALLOW  clients 10.0.0.0/8, 192.168.0.0/16 → any host   ports 80, 443, 1025-65535      other methods   (line 11)",
            "  DENY   everything else                                                                                (line 12)",
        ]
    );
    assert!(!run.stdout.contains('!'), "no lint warning: {}", run.stdout);
    assert!(got.contains(&"routing: no cache_peer → every request goes direct".to_string()));
    assert!(got.contains(&"access log: none (line 14)".to_string()));
    assert!(
        got.contains(&"differs from Squid's defaults: read_timeout 2 minutes (default 15 minutes)".to_string()),
        "{got:#?}"
    );
}

#[test]
fn json_has_the_same_decisions() {
    let text = explain(&fixture("seed-proxy1.conf"), false);
    let run = explain(&fixture("seed-proxy1.conf"), true);
    assert_eq!(run.code, 0);
    let v: serde_json::Value = serde_json::from_str(&run.stdout).expect("one JSON object");
    let rows = v["http_access"].as_array().expect("rows");
    let brief: Vec<(String, u64, bool)> = rows
        .iter()
        .map(|r| {
            (
                r["action"].as_str().unwrap().to_string(),
                r["line"].as_u64().unwrap(),
                r["warning"].is_string(),
            )
        })
        .collect();
    assert_eq!(
        brief,
        vec![
            ("allow".to_string(), 10, false),
            ("allow".to_string(), 11, true),
            ("allow".to_string(), 12, true),
            ("deny".to_string(), 13, false),
        ]
    );
    assert_eq!(rows[1]["clients"], "any client");
    assert_eq!(rows[1]["hosts"], "any host");
    assert_eq!(rows[1]["ports"], "port 443");
    assert_eq!(rows[1]["methods"], "CONNECT");
    assert_eq!(rows[3]["everything_else"], true);
    // The text names the same parent the JSON lists.
    assert_eq!(v["routing"]["parents"][0]["address"], "127.0.0.12:8080");
    assert!(text.stdout.contains("127.0.0.12:8080 (FIRSTUP)"));
}

#[test]
fn stock_debian_config_explains_in_a_few_lines() {
    let stock = Path::new("/etc/squid/squid.conf");
    if !stock.exists() {
        common::skip(&format!(
            "{} is not installed (Debian's squid package)",
            stock.display()
        ));
        return;
    }
    let run = explain(stock, false);
    assert_eq!(run.code, 0, "{}", run.stdout);
    let rows: Vec<String> = lines(&run.stdout)
        .into_iter()
        .filter(|l| l.starts_with("  ALLOW") || l.starts_with("  DENY"))
        .collect();
    assert!(rows.len() <= 8, "{rows:#?}");
    // Only localhost is allowed, CONNECT only to 443.
    let allows: Vec<&String> = rows.iter().filter(|l| l.starts_with("  ALLOW")).collect();
    assert!(
        allows.iter().all(|l| l.contains("clients 127.0.0.1, ::1")),
        "{allows:#?}"
    );
    assert!(allows.iter().any(|l| l.contains("port 443") && l.contains("CONNECT")));
    assert!(
        run.stdout
            .contains("routing: no cache_peer → every request goes direct")
    );
}

#[test]
fn invalid_config_exits_1_with_diagnostics() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(&dir, "http_port 3128\nhttp_access allow nosuch\n");
    let run = explain(&path, false);
    assert_eq!(run.code, 1);
    let first = run.stdout.lines().next().unwrap();
    assert_eq!(first, format!("{}:2: error: ACL not found: nosuch", path.display()));
    assert!(!run.stdout.contains("http_access (first match wins"));
}

#[test]
fn routing_with_always_direct_and_cache_peer_access() {
    let dir = tempfile::tempdir().unwrap();
    let text = "http_port 127.0.0.1:3128
acl localnet src 10.0.0.0/8
acl CONNECT method CONNECT
acl internal dstdomain .corp.example
http_access allow localnet
http_access deny all
cache_peer 10.1.1.1 parent 3128 0 no-query name=up1 connect-timeout=5
cache_peer 10.1.1.2 parent 3128 0 no-query round-robin
always_direct allow internal
cache_peer_access up1 deny CONNECT
access_log stdio:/tmp/hopproxy-explain-test.log squid
";
    let run = explain(&write_config(&dir, text), false);
    assert_eq!(run.code, 0, "{}", run.stdout);
    let got = lines(&run.stdout);
    let from = got
        .iter()
        .position(|l| l.starts_with("routing:"))
        .expect("routing line");
    assert_eq!(
        got[from..],
        [
            "routing: always_direct allow internal (line 9) → the requests it matches go direct",
            "         no never_direct → the rest go direct first, then to a parent if direct fails: 10.1.1.1:3128 name=up1 (FIRSTUP), then 10.1.1.2:3128 (round-robin)",
            "  parent 10.1.1.1:3128 only for cache_peer_access deny CONNECT (line 10)",
            "listening: 127.0.0.1:3128 (line 1)",
            "access log: /tmp/hopproxy-explain-test.log (line 11)",
            "differs from Squid's defaults: cache_peer connect-timeout 5 seconds for up1 (default peer_connect_timeout)",
        ]
    );
}

/// `nonhierarchical_direct off`: the route `explain` names is the one the proxy takes
/// (parents first, then direct), as the routing table tests in src/route/select.rs pin it.
#[test]
fn routing_with_nonhierarchical_direct_off() {
    let run = explain(&fixture("corpus/chain-nonhierarchical.conf"), false);
    assert_eq!(run.code, 0, "{}", run.stdout);
    assert!(
        lines(&run.stdout).contains(
            &"routing: nonhierarchical_direct off, no never_direct → every request goes to a parent first: parent.corp.example:8080 (FIRSTUP), then direct if every parent fails"
                .to_string()
        ),
        "{}",
        run.stdout
    );
}

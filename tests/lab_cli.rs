//! `hopproxy lab` end to end: real `hopproxy run` children, the endpoint and the agent.

use std::process::Command;

fn lab(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_hopproxy"))
        .arg("lab")
        .args(args)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

/// Every child the lab printed as started must be gone once it has exited.
fn assert_children_gone(output: &str) {
    for pid in output.split("(pid ").skip(1).filter_map(|rest| rest.split(')').next()) {
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "child {pid} outlived the lab"
        );
    }
}

#[test]
fn lab_two_hops_connects_and_logs_both_hops() {
    let started = std::time::Instant::now();
    let (code, out) = lab(&[]);
    assert_eq!(code, Some(0), "{out}");
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    assert!(
        out.contains("Connected using HTTP/2 to ingress-orange-saas.instana.io:"),
        "{out}"
    );
    assert!(
        out.contains("with id '") && out.contains("and key '*** (redacted)'"),
        "{out}"
    );
    let tunnel = |hier: &str| {
        out.lines()
            .filter(|l| l.contains("TCP_TUNNEL/200") && l.contains(" CONNECT ingress-orange-saas.instana.io:"))
            .filter(|l| l.contains(hier))
            .count()
    };
    assert_eq!(tunnel(" FIRSTUP_PARENT/"), 1, "{out}");
    assert_eq!(tunnel(" HIER_DIRECT/"), 1, "{out}");
    assert!(out.contains("verdict: OK"), "{out}");
    assert_children_gone(&out);
}

#[test]
fn lab_three_hops() {
    let (code, out) = lab(&["--hops", "3"]);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(
        out.lines()
            .filter(|l| l.contains("TCP_TUNNEL/200") && l.contains("FIRSTUP_PARENT/"))
            .count(),
        2,
        "{out}"
    );
    assert_eq!(
        out.lines()
            .filter(|l| l.contains("TCP_TUNNEL/200") && l.contains("HIER_DIRECT/"))
            .count(),
        1,
        "{out}"
    );
    assert!(out.contains("proxy1.lab → proxy2.lab → proxy3.lab"), "{out}");
    assert_children_gone(&out);
}

#[test]
fn lab_fail_2_names_hop_2() {
    let (code, out) = lab(&["--fail", "2"]);
    assert_eq!(code, Some(1), "{out}");
    let verdict = out
        .lines()
        .find(|l| l.starts_with("verdict:"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        verdict.starts_with("verdict: FAIL at proxy 2 (proxy2.lab at 127."),
        "{verdict}"
    );
    assert!(verdict.contains("connection_refused"), "{verdict}");
    assert!(!out.contains("Connected using"), "{out}");
    assert_children_gone(&out);
}

#[test]
fn lab_dir_keeps_the_files() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out) = lab(&["--hops", "1", "--dir", dir.path().to_str().unwrap()]);
    assert_eq!(code, Some(0), "{out}");
    let backend = dir.path().join("agent/com.instana.agent.main.sender.Backend.cfg");
    let text = std::fs::read_to_string(&backend).unwrap();
    assert!(
        text.contains("proxy.type=http") && text.contains("protocol=HTTP/2"),
        "{text}"
    );
    let conf = std::fs::read_to_string(dir.path().join("proxy1/squid.conf")).unwrap();
    assert!(conf.contains("visible_hostname proxy1.lab"), "{conf}");
    assert!(dir.path().join("ca.pem").exists());
}

#[test]
fn lab_rejects_a_fail_hop_outside_the_chain() {
    let (code, out) = lab(&["--hops", "2", "--fail", "3"]);
    assert_eq!(code, Some(2), "{out}");
}

/// `lab --tls`: TLS on every proxy leg and mTLS between the proxies, from configs that pass
/// `check --strict`; three hops, so a middle proxy is both an mTLS server and client.
#[test]
fn lab_tls_runs_the_chain_over_tls_legs() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out) = lab(&["--tls", "--hops", "3", "--dir", dir.path().to_str().unwrap()]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("verdict: OK"), "{out}");
    assert_eq!(out.lines().filter(|l| l.contains("TCP_TUNNEL/200")).count(), 3, "{out}");
    for hop in 1..=3 {
        let config = dir.path().join(format!("proxy{hop}/squid.conf"));
        let text = std::fs::read_to_string(&config).unwrap();
        assert!(text.contains("https_port "), "{text}");
        assert_eq!(text.contains("clientca="), hop > 1, "{text}");
        assert_eq!(
            text.contains(&format!("acl client_cert user_cert CN proxy{}.lab", hop - 1)),
            hop > 1,
            "{text}"
        );
        assert_eq!(text.contains(" tls tls-cafile="), hop < 3, "{text}");
        let check = Command::new(env!("CARGO_BIN_EXE_hopproxy"))
            .args(["check", "--strict", "-c"])
            .arg(&config)
            .output()
            .unwrap();
        assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stdout));
    }
    assert_children_gone(&out);
}

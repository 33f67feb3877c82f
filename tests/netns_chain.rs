//! Separated hosts: four network namespaces joined by veth pairs,
//!
//! ```text
//!  agent 10.201.1.1 ─── 10.201.1.2 proxy1 10.201.2.1 ─── 10.201.2.2 proxy2 10.201.3.1 ─── 10.201.3.2 endpoint
//! ```
//!
//! with only the connected /30 routes and no forwarding, so the agent reaches only proxy 1,
//! proxy 1 only the agent and proxy 2, and only proxy 2 the endpoint. The test first proves the
//! agent (and proxy 1) cannot reach the endpoint, then sends the agent's HTTPS request
//! through the hopproxy chain and checks both access logs show the real addresses.
//!
//! The endpoint is the lab's own TLS 1.3/h2 endpoint: this test binary runs itself inside the
//! endpoint namespace (the ignored test [`netns_endpoint_child`], driven by environment
//! variables). Everything the test creates is removed by guards, also when it fails. Without
//! root or `ip netns`, the test says why and returns.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{ENDPOINT_NAME, parse_log_line};
use hopproxy::lab::process::ChildGuard;

const ENDPOINT_ENV: &str = "HOPPROXY_NETNS_ENDPOINT";
const DIR_ENV: &str = "HOPPROXY_NETNS_DIR";

/// Runs `ip ARGS`, returning stderr on failure.
fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("ip {}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// The namespaces and root-namespace links this test made; all removed when dropped.
struct Netns {
    names: Vec<String>,
    links: Vec<String>,
}

impl Netns {
    fn add(&mut self, name: &str) {
        // A name left over from a crashed run with the same pid would make `add` fail.
        let _ = ip(&["netns", "del", name]);
        self.names.push(name.to_string());
        ip(&["netns", "add", name]).unwrap();
        ip(&["-n", name, "link", "set", "lo", "up"]).unwrap();
    }

    /// A veth pair between `a` and `b`, addressed `a_addr`/`b_addr` (CIDR), both up.
    fn link(&mut self, a: &str, a_if: &str, a_addr: &str, b: &str, b_if: &str, b_addr: &str) {
        self.links.push(a_if.to_string());
        ip(&["link", "add", a_if, "type", "veth", "peer", "name", b_if]).unwrap();
        for (ns, dev, addr) in [(a, a_if, a_addr), (b, b_if, b_addr)] {
            ip(&["link", "set", dev, "netns", ns]).unwrap();
            ip(&["-n", ns, "addr", "add", addr, "dev", dev]).unwrap();
            ip(&["-n", ns, "link", "set", dev, "up"]).unwrap();
        }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for name in &self.names {
            if let Err(e) = ip(&["netns", "del", name]) {
                eprintln!("cleanup: {e}");
            }
        }
        // Only links that never made it into a namespace are still here; ignore the rest.
        for link in &self.links {
            let _ = ip(&["link", "del", link]);
        }
    }
}

/// Runs a command inside `ns` and returns (exit code, stdout, stderr).
fn ns_exec(ns: &str, args: &[&str]) -> (i32, String, String) {
    let out = Command::new("ip")
        .args(["netns", "exec", ns])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Starts `args` inside `ns` in the background (killed when the guard drops). `ip netns exec`
/// execs the command, so the guard's pid is the command's own.
fn ns_spawn(ns: &str, name: &str, args: &[&str], env: &[(&str, &str)], stderr: &Path) -> ChildGuard {
    let mut command = Command::new("ip");
    command
        .args(["netns", "exec", ns])
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(stderr).unwrap());
    ChildGuard::spawn(name, &mut command).unwrap()
}

/// Waits (bounded) until something in `ns` listens on TCP `port`.
fn wait_listening(ns: &str, port: u16, child: &mut ChildGuard, stderr: &Path) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let filter = format!("sport = :{port}");
    while Instant::now() < deadline {
        let (_, out, _) = ns_exec(ns, &["ss", "-Hltn", &filter]);
        if !out.trim().is_empty() {
            return;
        }
        if let Some(status) = child.try_status() {
            panic!(
                "{} exited ({status}) in {ns}:\n{}",
                child.name(),
                std::fs::read_to_string(stderr).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("nothing listens on port {port} in {ns}");
}

fn skip_reason() -> Option<String> {
    let uid = Command::new("id").arg("-u").output().ok()?;
    if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
        return Some("not running as root (network namespaces need root)".into());
    }
    match Command::new("ip").args(["netns", "list"]).output() {
        Ok(out) if out.status.success() => None,
        Ok(out) => Some(format!(
            "`ip netns` is unavailable: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Err(e) => Some(format!("`ip` (iproute2) is not installed: {e}")),
    }
}

fn wait_for_file(path: &Path, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !path.exists() {
        assert!(Instant::now() < deadline, "{what}: {} never appeared", path.display());
        std::thread::sleep(Duration::from_millis(25));
    }
}

fn wait_for_log(path: &Path, count: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let lines: Vec<String> = std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect();
        if lines.len() >= count || Instant::now() > deadline {
            assert_eq!(lines.len(), count, "{}: {lines:#?}", path.display());
            return lines;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

#[test]
fn agent_reaches_the_endpoint_only_through_the_chain() {
    if let Some(reason) = skip_reason() {
        common::skip(&reason);
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let pid = std::process::id();
    let [agent, p1, p2, endpoint] = ["a", "p1", "p2", "e"].map(|n| format!("hpns{pid}{n}"));
    let mut net = Netns {
        names: Vec::new(),
        links: Vec::new(),
    };
    for name in [&agent, &p1, &p2, &endpoint] {
        net.add(name);
    }
    let veth = |n: &str| format!("hp{pid}{n}");
    net.link(&agent, &veth("1a"), "10.201.1.1/30", &p1, &veth("1b"), "10.201.1.2/30");
    net.link(&p1, &veth("2a"), "10.201.2.1/30", &p2, &veth("2b"), "10.201.2.2/30");
    net.link(
        &p2,
        &veth("3a"),
        "10.201.3.1/30",
        &endpoint,
        &veth("3b"),
        "10.201.3.2/30",
    );

    // The endpoint: this binary's `netns_endpoint_child`, inside the endpoint namespace.
    let exe = std::env::current_exe().unwrap();
    let exe = exe.to_str().unwrap();
    let endpoint_err = d.join("endpoint.stderr");
    let mut endpoint_proc = ns_spawn(
        &endpoint,
        "endpoint",
        &[exe, "netns_endpoint_child", "--exact", "--ignored", "--nocapture"],
        &[(ENDPOINT_ENV, "10.201.3.2:443"), (DIR_ENV, d.to_str().unwrap())],
        &endpoint_err,
    );
    wait_for_file(&d.join("endpoint.ready"), "the endpoint");
    wait_listening(&endpoint, 443, &mut endpoint_proc, &endpoint_err);
    let ca = d.join("ca.pem");
    let ca = ca.to_str().unwrap();

    std::fs::write(d.join("hosts"), format!("10.201.3.2 {ENDPOINT_NAME}\n")).unwrap();
    let log = |name: &str| d.join(format!("{name}.access.log"));
    let p2_conf = format!(
        "http_port 10.201.2.2:8080\nacl proxy1 src 10.201.2.1\nacl saas dstdomain {ENDPOINT_NAME}\n\
         http_access allow proxy1 saas\nhttp_access deny all\nhosts_file {}\nvisible_hostname proxy2.lab\n\
         access_log stdio:{} squid\n",
        d.join("hosts").display(),
        log("proxy2").display()
    );
    let p1_conf = format!(
        "http_port 10.201.1.2:8080\nacl agent src 10.201.1.1\nacl SSL_ports port 443\nacl CONNECT method CONNECT\n\
         http_access deny CONNECT !SSL_ports\nhttp_access allow agent\nhttp_access deny all\n\
         cache_peer 10.201.2.2 parent 8080 0 no-query default\nnever_direct allow all\n\
         visible_hostname proxy1.lab\naccess_log stdio:{} squid\n",
        log("proxy1").display()
    );
    let mut hops = Vec::new();
    for (ns, name, conf) in [(&p2, "proxy2", p2_conf), (&p1, "proxy1", p1_conf)] {
        let path = d.join(format!("{name}.conf"));
        std::fs::write(&path, common::keep_root(&conf)).unwrap();
        let stderr = d.join(format!("{name}.stderr"));
        let mut child = ns_spawn(
            ns,
            name,
            &[common::hopproxy_bin(), "run", "-c", path.to_str().unwrap()],
            &[],
            &stderr,
        );
        wait_listening(ns, 8080, &mut child, &stderr);
        hops.push(child);
    }

    // 1. No way around the chain: neither the agent nor proxy 1 can open a connection to the endpoint.
    for ns in [&agent, &p1] {
        let (code, _, err) = ns_exec(
            ns,
            &[
                "curl",
                "-sS",
                "--max-time",
                "5",
                "--connect-timeout",
                "2",
                "--cacert",
                ca,
                "--resolve",
                &format!("{ENDPOINT_NAME}:443:10.201.3.2"),
                &format!("https://{ENDPOINT_NAME}/"),
            ],
        );
        assert_eq!(code, 7, "{ns} must not connect to the endpoint: {err}");
        assert!(
            err.contains("Failed to connect") || err.contains("Couldn't connect"),
            "{err}"
        );
    }
    // ...but proxy 2 can (the path the chain will use).
    let (code, out, err) = ns_exec(
        &p2,
        &[
            "curl",
            "-sS",
            "--max-time",
            "5",
            "--cacert",
            ca,
            "--resolve",
            &format!("{ENDPOINT_NAME}:443:10.201.3.2"),
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            &format!("https://{ENDPOINT_NAME}/"),
        ],
    );
    assert_eq!((code, out.as_str()), (0, "200"), "{err}");

    // 2. The agent's HTTPS request through the chain: TLS 1.3 + HTTP/2 end to end.
    let (code, out, err) = ns_exec(
        &agent,
        &[
            "curl",
            "-sS",
            "--max-time",
            "15",
            "--http2",
            "-x",
            "http://10.201.1.2:8080",
            "--cacert",
            ca,
            "-o",
            "/dev/null",
            "-w",
            "%{http_connect} %{http_code} %{http_version}",
            &format!("https://{ENDPOINT_NAME}/"),
        ],
    );
    assert_eq!((code, out.as_str()), (0, "200 200 2"), "{err}");

    // 3. The logs show the real addresses: the agent at proxy 1, proxy 1 at proxy 2.
    let url = format!("{ENDPOINT_NAME}:443");
    let l1 = parse_log_line(&wait_for_log(&log("proxy1"), 1)[0]);
    assert_eq!(
        (
            l1.client.as_str(),
            l1.code.as_str(),
            l1.method.as_str(),
            l1.url.as_str(),
            l1.hierarchy.as_str()
        ),
        (
            "10.201.1.1",
            "TCP_TUNNEL/200",
            "CONNECT",
            url.as_str(),
            "FIRSTUP_PARENT/10.201.2.2"
        )
    );
    let l2 = parse_log_line(&wait_for_log(&log("proxy2"), 1)[0]);
    assert_eq!(
        (
            l2.client.as_str(),
            l2.code.as_str(),
            l2.method.as_str(),
            l2.url.as_str(),
            l2.hierarchy.as_str()
        ),
        (
            "10.201.2.1",
            "TCP_TUNNEL/200",
            "CONNECT",
            url.as_str(),
            "HIER_DIRECT/10.201.3.2"
        )
    );
    assert_eq!(l1.bytes, l2.bytes);
    assert!(l1.bytes > 39 + 500, "the TLS session is counted: {}", l1.bytes);

    // Stop the processes before the namespaces go (guards in this order).
    drop(hops);
    drop(endpoint_proc);
    drop(net);
}

/// Not a test on its own: the lab endpoint, run by [`agent_reaches_the_endpoint_only_through_the_chain`]
/// inside the endpoint namespace. It writes its CA to `$HOPPROXY_NETNS_DIR/ca.pem`, serves
/// until killed, and gives up by itself after two minutes or when that directory is gone.
#[test]
#[ignore = "run by agent_reaches_the_endpoint_only_through_the_chain inside a namespace"]
fn netns_endpoint_child() {
    let (Ok(addr), Ok(dir)) = (std::env::var(ENDPOINT_ENV), std::env::var(DIR_ENV)) else {
        return;
    };
    let dir = PathBuf::from(dir);
    let pki = hopproxy::lab::certs::Pki::generate(ENDPOINT_NAME, "netns test CA").unwrap();
    pki.write(&dir, "endpoint").unwrap();
    let _endpoint = hopproxy::lab::endpoint::Endpoint::start(
        addr.parse().unwrap(),
        &pki,
        hopproxy::lab::endpoint::EndpointOptions::default(),
    )
    .unwrap();
    std::fs::write(dir.join("endpoint.ready"), "").unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline && dir.exists() {
        std::thread::sleep(Duration::from_millis(200));
    }
}

//! Helper processes with real children: `auth_param basic program` with a helper other than
//! `basic_ncsa_auth` (a POSIX sh helper written for the tests, in both protocol modes, and
//! Squid's own `basic_fake_auth`), `external_acl_type` helpers (the test helper and Squid's
//! `ext_file_userip_acl`), a child that crashes, a full queue, a `BH` answer, and the same
//! helpers behind Squid 5.7 giving the same decisions.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{Hop, curl, header, hop_config, parse_log_line};

fn test_helper() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/helpers/test_helper.sh")
}

fn addr(text: &str) -> SocketAddr {
    text.parse().unwrap()
}

/// Status line and head of a plain-HTTP GET through `proxy`, as `user:password` when given.
fn get(proxy: SocketAddr, url: &str, credentials: Option<&str>) -> (u16, String) {
    let proxy = format!("http://{proxy}");
    let mut args = vec!["-s", "-o", "/dev/null", "-D", "-", "-x", proxy.as_str()];
    if let Some(credentials) = credentials {
        args.extend(["--proxy-user", credentials]);
    }
    args.push(url);
    let result = curl(&args);
    let status = result
        .stdout
        .lines()
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, result.stdout)
}

/// Waits (bounded, 20 s) until `path` exists.
fn wait_for_file(path: &Path) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !path.exists() {
        assert!(
            Instant::now() < deadline,
            "{} did not appear within 20 s",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn auth_rules(program: &str, children: &str) -> String {
    format!(
        "auth_param basic program {program}\nauth_param basic children {children}\n\
         auth_param basic realm helper-test\nauth_param basic credentialsttl 1 hour\n\
         acl users proxy_auth REQUIRED\nhttp_access allow users\nhttp_access deny all"
    )
}

#[test]
fn auth_helper_decides_in_both_protocol_modes() {
    let origin = common::origin::echo_origin(addr("127.0.96.20:18080"));
    for (i, (mode, children)) in [("plain", "2"), ("concurrent", "1 concurrency=4")]
        .into_iter()
        .enumerate()
    {
        let dir = tempfile::tempdir().unwrap();
        let name = format!("auth-{mode}");
        let listen = addr(&format!("127.0.96.{}:31280", 1 + i));
        let program = format!("{} auth {mode} {}", test_helper().display(), dir.path().display());
        let config = hop_config(dir.path(), &name, &listen.to_string(), &auth_rules(&program, children));
        let hop = Hop::start(&name, dir.path(), listen, &config);
        let url = format!("http://{}/x", origin.addr);

        let (status, head) = get(listen, &url, Some("alice:pw-alice"));
        assert_eq!(status, 200, "{mode}: {head}");
        let (status, head) = get(listen, &url, Some("bob:wrong"));
        assert_eq!(status, 407, "{mode}: {head}");
        assert_eq!(header(&head, "Proxy-Authenticate"), Some("Basic realm=\"helper-test\""));
        let (status, _) = get(listen, &url, Some("broken:x"));
        assert_eq!(status, 407, "{mode}: BH is a failed login, as in Squid");
        let (status, _) = get(listen, &url, None);
        assert_eq!(status, 407);
        // A child exits without answering: the request goes to its replacement.
        let (status, head) = get(listen, &url, Some("crashonce:x"));
        assert_eq!(status, 200, "{mode}: {head}");
        let stderr = hop.wait_for_stderr("exited before answering");
        assert!(stderr.contains("helper auth_param basic #"), "{stderr}");
        assert!(!stderr.contains("pw-alice"), "a password reached the log: {stderr}");

        let lines: Vec<_> = hop.wait_for_lines(5).iter().map(|l| parse_log_line(l)).collect();
        assert!(
            lines.iter().any(|l| l.code == "TCP_MISS/200" && l.user == "alice"),
            "{lines:#?}"
        );
        assert!(
            lines.iter().any(|l| l.code == "TCP_DENIED/407" && l.user == "bob"),
            "{lines:#?}"
        );
        assert!(
            lines.iter().any(|l| l.code == "TCP_MISS/200" && l.user == "crashonce"),
            "{lines:#?}"
        );
    }
}

#[test]
fn auth_helper_queue_overflow_is_answered_503() {
    let origin = common::origin::echo_origin(addr("127.0.96.21:18080"));
    let dir = tempfile::tempdir().unwrap();
    let listen = addr("127.0.96.3:31280");
    let program = format!("{} auth plain {}", test_helper().display(), dir.path().display());
    let config = hop_config(
        dir.path(),
        "overload",
        &listen.to_string(),
        &auth_rules(&program, "1 queue-size=1"),
    );
    let hop = Hop::start("overload", dir.path(), listen, &config);
    let url = format!("http://{}/x", origin.addr);
    // The one child holds "block" until the test releases it.
    let blocked = {
        let url = url.clone();
        std::thread::spawn(move || get(listen, &url, Some("block:x")))
    };
    wait_for_file(&dir.path().join("blocked"));
    // One more request fits the queue; of three, two find it full.
    let waiting: Vec<_> = (0..3)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || get(listen, &url, Some("alice:pw-alice")))
        })
        .collect();
    hop.wait_for_match("two refusals", |_| {
        hop.log_lines()
            .iter()
            .filter(|l| l.contains(" TCP_DENIED/503 "))
            .count()
            >= 2
    });
    std::fs::write(dir.path().join("release"), "").unwrap();
    assert_eq!(blocked.join().unwrap().0, 200);
    let answers: Vec<(u16, String)> = waiting.into_iter().map(|t| t.join().unwrap()).collect();
    let refused: Vec<&String> = answers.iter().filter(|(s, _)| *s == 503).map(|(_, h)| h).collect();
    assert_eq!(refused.len(), 2, "{answers:#?}");
    assert_eq!(answers.iter().filter(|(s, _)| *s == 200).count(), 1, "{answers:#?}");
    let status = header(refused[0], "Proxy-Status").unwrap();
    assert!(
        status.contains("error=proxy_internal_error")
            && status.contains("authentication helper: the helper queue is full"),
        "{status}"
    );
    hop.wait_for_stderr("helper queue full");
}

/// GET through `proxy` with extra request headers, no credentials.
fn get_with(proxy: SocketAddr, url: &str, headers: &[&str], credentials: Option<&str>) -> (u16, String) {
    let proxy = format!("http://{proxy}");
    let mut args = vec!["-s", "-o", "/dev/null", "-D", "-", "-x", proxy.as_str()];
    for h in headers {
        args.extend(["-H", h]);
    }
    if let Some(credentials) = credentials {
        args.extend(["--proxy-user", credentials]);
    }
    args.push(url);
    let result = curl(&args);
    let status = result
        .stdout
        .lines()
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, result.stdout)
}

#[test]
fn external_acl_decides_caches_and_logs_the_helper_user() {
    let origin = common::origin::echo_origin(addr("127.0.97.20:18080"));
    for (i, (mode, options)) in [
        ("plain", "children-max=2"),
        ("concurrent", "children-max=1 concurrency=3"),
    ]
    .into_iter()
    .enumerate()
    {
        let dir = tempfile::tempdir().unwrap();
        let name = format!("ext-{mode}");
        let listen = addr(&format!("127.0.97.{}:31280", 1 + i));
        let rules = format!(
            "external_acl_type checker ttl=60 negative_ttl=60 {options} %SRC %>rd %{{X-Team}} %DATA {} acl {mode} {}\n\
             acl listed external checker arg1\nhttp_access allow listed\nhttp_access deny all",
            test_helper().display(),
            dir.path().display()
        );
        let hop = Hop::start(
            &name,
            dir.path(),
            listen,
            &hop_config(dir.path(), &name, &listen.to_string(), &rules),
        );
        let url = format!("http://{}/x", origin.addr);
        for _ in 0..2 {
            let (status, head) = get_with(listen, &url, &["X-Team: good.invalid"], None);
            assert_eq!(status, 200, "{mode}: {head}");
        }
        let (status, head) = get_with(listen, &url, &["X-Team: other team"], None);
        assert_eq!(status, 403, "{mode}: {head}");
        let (status, _) = get_with(listen, &url, &[], None);
        assert_eq!(status, 403);
        // BH: no decision, so 503 rather than a guess either way.
        let (status, head) = get_with(listen, &url, &["X-Team: bh.invalid"], None);
        assert_eq!(status, 503, "{mode}: {head}");
        let proxy_status = header(&head, "Proxy-Status").unwrap_or_default();
        assert!(
            proxy_status.contains("error=proxy_internal_error")
                && proxy_status.contains("external ACL helper checker answered BH"),
            "{proxy_status}"
        );
        let requests = std::fs::read_to_string(dir.path().join("requests.log")).unwrap();
        assert_eq!(
            requests.lines().collect::<Vec<_>>(),
            [
                "127.0.0.1 127.0.97.20 good.invalid arg1",
                "127.0.0.1 127.0.97.20 other%20team arg1",
                "127.0.0.1 127.0.97.20 - arg1",
                "127.0.0.1 127.0.97.20 bh.invalid arg1",
            ],
            "{mode}: one helper request per distinct line (the second is cached)"
        );
        let lines: Vec<_> = hop.wait_for_lines(4).iter().map(|l| parse_log_line(l)).collect();
        assert_eq!(
            lines
                .iter()
                .filter(|l| l.code == "TCP_MISS/200" && l.user == "ext-user")
                .count(),
            2,
            "{lines:#?}"
        );
        assert_eq!(
            lines
                .iter()
                .filter(|l| l.code == "TCP_DENIED/403" && l.user == "-")
                .count(),
            2,
            "{lines:#?}"
        );
    }
}

/// Squid's own helpers from Debian's package, where they need no directory service:
/// `basic_fake_auth` (every login is good) and `ext_file_userip_acl` (user per address).
#[test]
fn squid_packaged_helpers_run_under_hopproxy() {
    let fake = Path::new("/usr/lib/squid/basic_fake_auth");
    let userip = Path::new("/usr/lib/squid/ext_file_userip_acl");
    if !fake.exists() || !userip.exists() {
        common::skip("Squid's helpers (package squid) are not installed");
        return;
    }
    let origin = common::origin::echo_origin(addr("127.0.98.20:18080"));
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("userip.conf");
    std::fs::write(&users, "127.0.0.1 alice\n").unwrap();
    let listen = addr("127.0.98.1:31280");
    let rules = format!(
        "auth_param basic program {}\nauth_param basic children 2\n\
         external_acl_type userip %SRC %LOGIN {} -f {}\n\
         acl users proxy_auth REQUIRED\nacl own_address external userip\n\
         http_access deny !users\nhttp_access allow own_address\nhttp_access deny all",
        fake.display(),
        userip.display(),
        users.display()
    );
    let hop = Hop::start(
        "packaged",
        dir.path(),
        listen,
        &hop_config(dir.path(), "packaged", &listen.to_string(), &rules),
    );
    let url = format!("http://{}/x", origin.addr);
    assert_eq!(get(listen, &url, Some("alice:anything")).0, 200);
    assert_eq!(get(listen, &url, Some("bob:anything")).0, 403);
    assert_eq!(get(listen, &url, None).0, 407);
    let lines: Vec<_> = hop.wait_for_lines(3).iter().map(|l| parse_log_line(l)).collect();
    assert!(
        lines.iter().any(|l| l.code == "TCP_MISS/200" && l.user == "alice"),
        "{lines:#?}"
    );
    assert!(
        lines.iter().any(|l| l.code == "TCP_DENIED/403" && l.user == "bob"),
        "{lines:#?}"
    );
}

/// The same helpers (auth with channel IDs, external ACL without) behind Squid 5.7 and
/// hopproxy: every request gets the same status, and the access logs name the same users.
#[test]
fn squid_and_hopproxy_agree_with_the_same_helpers() {
    if hopproxy::lab::squid::squid_binary().is_err() {
        common::skip("squid is not installed");
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let origin = common::origin::echo_origin(addr("127.0.99.20:18080"));
    let dir = tempfile::tempdir().unwrap();
    // Squid runs helpers as its 'proxy' user: a copy it may execute, state it may write.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let helper = dir.path().join("test_helper.sh");
    std::fs::copy(test_helper(), &helper).unwrap();
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let state = |name: &str| {
        let path = dir.path().join(name);
        std::fs::create_dir(&path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o777)).unwrap();
        path
    };
    let rules = |who: &str| {
        format!(
            "auth_param basic program {h} auth concurrent {auth}\nauth_param basic children 2 concurrency=2\n\
             auth_param basic realm helper-test\n\
             external_acl_type checker ttl=60 %LOGIN %>{{X-Team}} {h} acl plain {acl}\n\
             acl users proxy_auth REQUIRED\nacl team external checker\n\
             http_access deny !users\nhttp_access allow team\nhttp_access deny all",
            h = helper.display(),
            auth = state(&format!("{who}-auth")).display(),
            acl = state(&format!("{who}-acl")).display(),
        )
    };
    let squid_addr = addr("127.0.99.2:31280");
    let squid = hopproxy::lab::squid::Squid::start("helpers-squid", squid_addr, &rules("squid"), dir.path())
        .unwrap_or_else(|e| panic!("squid did not start: {e}"));
    let hop_addr = addr("127.0.99.1:31280");
    let hop = Hop::start(
        "helpers-hop",
        dir.path(),
        hop_addr,
        &hop_config(dir.path(), "helpers-hop", &hop_addr.to_string(), &rules("hop")),
    );
    let url = format!("http://{}/x", origin.addr);
    let cases: &[(Option<&str>, &str)] = &[
        (Some("alice:pw-alice"), "X-Team: good.invalid"),
        (Some("alice:pw-alice"), "X-Team: other"),
        (Some("bob:wrong"), "X-Team: good.invalid"),
        (Some("broken:x"), "X-Team: good.invalid"),
        (None, "X-Team: good.invalid"),
    ];
    let mut mismatches = Vec::new();
    for (credentials, team) in cases {
        let squid_status = get_with(squid_addr, &url, &[team], *credentials).0;
        let hop_status = get_with(hop_addr, &url, &[team], *credentials).0;
        println!("{credentials:?} {team}: squid {squid_status}, hopproxy {hop_status}");
        if squid_status != hop_status || squid_status == 0 {
            mismatches.push(format!(
                "{credentials:?} {team}: squid {squid_status}, hopproxy {hop_status}"
            ));
        }
    }
    let squid_log = squid.access_log_text();
    assert!(mismatches.is_empty(), "{mismatches:#?}\nsquid log:\n{squid_log}");
    let users = |lines: Vec<String>| {
        let mut users: Vec<String> = lines
            .iter()
            .map(|l| parse_log_line(l))
            .map(|l| format!("{} {}", l.code, l.user))
            .collect();
        users.sort();
        users
    };
    // Both sent the external helper the same lines (one per distinct line: both cache).
    let sent = |who: &str| {
        let mut lines: Vec<String> = std::fs::read_to_string(dir.path().join(format!("{who}-acl/requests.log")))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect();
        lines.sort();
        lines
    };
    assert_eq!(sent("hop"), sent("squid"));
    assert_eq!(sent("hop"), ["alice good.invalid -", "alice other -"]);
    let hop_users = users(hop.wait_for_lines(cases.len()));
    // NONE_NONE/000: the connection that waited for Squid to listen.
    let squid_users = users(
        squid_log
            .lines()
            .filter(|l| !l.contains(" NONE_NONE/000 "))
            .map(str::to_string)
            .collect(),
    );
    assert_eq!(hop_users, squid_users, "squid log:\n{squid_log}");
}

/// Pids of the processes whose parent is `parent`, from /proc.
fn children_of(parent: u32) -> Vec<u32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // "pid (comm) state ppid …": comm may hold spaces, so split after the last ')'.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(parent) {
            pids.push(pid);
        }
    }
    pids
}

/// A reload starts children for the new generation; the old generation's children end.
#[test]
fn reload_replaces_the_helper_children() {
    let origin = common::origin::echo_origin(addr("127.0.98.21:18080"));
    let dir = tempfile::tempdir().unwrap();
    let listen = addr("127.0.98.2:31280");
    let program = format!("{} auth plain {}", test_helper().display(), dir.path().display());
    let config = hop_config(dir.path(), "reload", &listen.to_string(), &auth_rules(&program, "1"));
    let hop = Hop::start("reload", dir.path(), listen, &config);
    let url = format!("http://{}/x", origin.addr);
    assert_eq!(get(listen, &url, Some("alice:pw-alice")).0, 200);
    let before = children_of(hop.pid());
    assert_eq!(before.len(), 1, "one helper child: {before:?}");
    hop.signal("HUP");
    hop.wait_for_stderr("reloaded: new connections use the new config");
    // The new generation's pool starts its child with its first request (the cache is new too).
    assert_eq!(get(listen, &url, Some("alice:pw-alice")).0, 200);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = children_of(hop.pid());
        if !now.iter().any(|p| before.contains(p)) && now.len() == 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "old helper {before:?} still running, children now {now:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

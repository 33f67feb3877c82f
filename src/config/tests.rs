//! Table-driven tests of the directives and of `http_access` evaluation with the cases
//! measured on Squid 5.7 (docs/squid-behaviour.md 3.2 and 5).

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use super::*;
use crate::policy::{AclKind, Action, DomainPattern, RequestFacts};

const LABEL: &str = "t.conf";

/// Every diagnostic's first line, minus the "no access_log" note most snippets would get.
fn messages(result: &Result<Loaded, Vec<Diagnostic>>) -> Vec<String> {
    let diags = match result {
        Ok(loaded) => &loaded.diagnostics,
        Err(diags) => diags,
    };
    diags
        .iter()
        .map(|d| d.to_string())
        .filter(|m| !m.contains("no access_log"))
        .collect()
}

/// Parses a snippet, with `http_port` and a rule appended when the snippet has none, so
/// each case only shows its own diagnostics.
fn snippet(text: &str) -> Result<Loaded, Vec<Diagnostic>> {
    let mut full = text.to_string();
    if !text.contains("http_port") {
        full.push_str("\nhttp_port 3128");
    }
    if !text.contains("http_access") && !text.contains("#norules") {
        full.push_str("\nhttp_access deny all");
    }
    parse_str(&full, Path::new(LABEL))
}

fn load_ok(text: &str) -> Config {
    match snippet(text) {
        Ok(loaded) => loaded.config,
        Err(diags) => panic!("{text:?} failed: {diags:#?}"),
    }
}

#[test]
fn errors_name_file_line_and_problem() {
    let cases: &[(&str, &str)] = &[
        (
            "acl SSL_ports port 443 SSL/TLS",
            "t.conf:1: error: 'SSL/TLS' is not a port number or range",
        ),
        (
            "acl p port 443#comment",
            "t.conf:1: error: '443#comment' is not a port number or range",
        ),
        (
            "acl p port 70000",
            "t.conf:1: error: port '70000' is out of range (0-65535)",
        ),
        (
            "acl p port 500-400",
            "t.conf:1: error: port range '500-400' is backwards: it starts above where it ends, so it matches nothing",
        ),
        ("http_access allow all junk", "t.conf:1: error: ACL not found: junk"),
        (
            "http_port 8080 junk",
            "t.conf:1: error: unknown http_port option 'junk'",
        ),
        (
            "http_port 8080 intercept",
            "t.conf:1: error: http_port option 'intercept' is not supported by hopproxy",
        ),
        (
            "http_port 443#x",
            "t.conf:1: error: http_port '443#x': '443#x' is not a port number (1-65535)",
        ),
        (
            "http_port 0",
            "t.conf:1: error: http_port '0': '0' is not a port number (1-65535)",
        ),
        (
            "http_port localhost:3128",
            "t.conf:1: error: http_port 'localhost:3128': 'localhost' is not an IP address",
        ),
        (
            "http_port 3128\nhttp_port 3128",
            "t.conf:2: error: http_port 3128 is already configured at t.conf:1",
        ),
        (
            "acl d dstdomain example.com .example.com",
            "t.conf:1: error: '.example.com' is a subdomain of 'example.com' in ACL 'd'",
        ),
        (
            "acl d dstdomain .example.com example.com",
            "t.conf:1: error: '.example.com' is a subdomain of 'example.com' in ACL 'd'",
        ),
        (
            "acl d dstdomain example.com\nacl d dstdomain .example.com",
            "t.conf:2: error: '.example.com' is a subdomain of 'example.com' in ACL 'd'",
        ),
        (
            "acl d dstdomain http://example.com/",
            "t.conf:1: error: 'http://example.com/' is not a domain name",
        ),
        (
            "acl s src example.com",
            "t.conf:1: error: 'example.com' is not an IP address, network or range",
        ),
        (
            "acl s src 10.0.0.9-10.0.0.1",
            "t.conf:1: error: address range '10.0.0.9-10.0.0.1' is backwards: it starts above where it ends",
        ),
        (
            "acl s src 10.0.0.0/33",
            "t.conf:1: error: netmask '/33' is out of range in '10.0.0.0/33' (0-32)",
        ),
        ("htp_port 3128", "t.conf:1: error: unknown directive 'htp_port'"),
        (
            "cache_peer p sibling 3128 0",
            "t.conf:1: error: cache_peer type 'sibling' is not supported",
        ),
        (
            "cache_peer p multicast 3128 0",
            "t.conf:1: error: cache_peer type 'multicast' is not supported",
        ),
        (
            "cache_peer p parent 3128",
            "t.conf:1: error: cache_peer needs a host, a type, an HTTP port and an ICP port",
        ),
        (
            "cache_peer p parent 3128 0 tls tls-cert=/nonexistent/c.pem",
            "t.conf:1: error: cache_peer p: cannot read certificate file /nonexistent/c.pem",
        ),
        (
            "cache_peer p parent 3128 0 tls-cafile=/etc/ca.pem",
            "t.conf:1: error: cache_peer p: 'tls-cafile=/etc/ca.pem' without 'tls' does nothing",
        ),
        (
            "https_port 3129",
            "t.conf:1: error: https_port 3129: needs a certificate",
        ),
        (
            "https_port 3129 tls-cert=/nonexistent/c.pem",
            "t.conf:1: error: https_port 3129: cannot read certificate file /nonexistent/c.pem",
        ),
        (
            "https_port 3129 tls-cert=/nonexistent/c.pem tls-min-version=1.4",
            "t.conf:1: error: https_port option 'tls-min-version=1.4': '1.4' is not a TLS version",
        ),
        (
            "acl p user_cert O Example",
            "t.conf:1: error: user_cert ACL 'p': attribute 'O' is not supported",
        ),
        (
            "cache_peer p parent 3128 0 login=PASS",
            "t.conf:1: error: cache_peer option 'login=PASS' is not supported",
        ),
        (
            "cache_peer p parent 3128 0 weight=0",
            "t.conf:1: error: cache_peer 'weight=0': weight must be a whole number above 0",
        ),
        (
            "cache_peer p parent 1 0\ncache_peer p parent 2 0",
            "t.conf:2: error: cache_peer 'p' is already defined at t.conf:1",
        ),
        (
            "cache_peer_access nope allow all",
            "t.conf:1: error: cache_peer_access: unknown cache_peer 'nope'",
        ),
        (
            "url_rewrite_program /bin/true",
            "t.conf:1: error: 'url_rewrite_program' is a Squid directive that hopproxy does not support",
        ),
        (
            "acl a src 10.0.0.1\nacl a dst 10.0.0.1",
            "t.conf:2: error: ACL 'a' was defined with type 'src' at t.conf:1; this line says 'dst'",
        ),
        (
            "acl CONNECT src 10.0.0.1",
            "t.conf:1: error: ACL 'CONNECT' is built in (type 'method')",
        ),
        (
            "acl all src 10.0.0.0/8",
            "t.conf:1: error: ACL 'all' is built in (type 'src')",
        ),
        ("acl x frob 1", "t.conf:1: error: unknown ACL type 'frob'"),
        (
            "acl x srcdom_regex ^h",
            "t.conf:1: error: ACL type 'srcdom_regex' is not supported by hopproxy",
        ),
        (
            "acl u proxy_auth REQUIRED",
            "t.conf:1: error: proxy_auth ACL 'u' needs 'auth_param basic program' on an earlier line",
        ),
        (
            "auth_param basic program /usr/lib/squid/basic_ncsa_auth /dev/null\nacl x proxy_auth alice REQUIRED",
            "t.conf:2: error: 'REQUIRED' must be the only value of proxy_auth ACL 'x'",
        ),
        ("acl", "t.conf:1: error: acl needs a name and a type"),
        ("via maybe", "t.conf:1: error: via: 'maybe' is not 'on' or 'off'"),
        ("via", "t.conf:1: error: via takes one value"),
        (
            "forwarded_for sometimes",
            "t.conf:1: error: forwarded_for: unknown value 'sometimes'",
        ),
        (
            "connect_timeout 5 parsecs",
            "t.conf:1: error: connect_timeout: unknown time unit 'parsecs'",
        ),
        (
            "request_header_max_size 1 TB",
            "t.conf:1: error: request_header_max_size: unknown size unit 'TB'",
        ),
        (
            "dns_nameservers 8.8.8.8 resolver",
            "t.conf:1: error: dns_nameservers: 'resolver' is not an IP address",
        ),
        (
            "tcp_outgoing_address nowhere",
            "t.conf:1: error: tcp_outgoing_address: 'nowhere' is not an IP address",
        ),
        (
            "max_client_connections 0",
            "t.conf:1: error: max_client_connections must be at least 1",
        ),
        (
            "max_filedescriptors lots",
            "t.conf:1: error: max_filedescriptors: 'lots' is not a valid number",
        ),
        (
            "logformat mine %ts %zz",
            "t.conf:1: error: logformat mine: unknown logformat code '%zz'",
        ),
        (
            "access_log syslog:daemon.info",
            "t.conf:1: error: access_log module 'syslog' is not supported",
        ),
        (
            "access_log stdio:/tmp/a.log logformat=mine",
            "t.conf:1: error: access_log: unknown logformat 'mine'",
        ),
        (
            "http_reply_access maybe all",
            "t.conf:1: error: http_reply_access: 'maybe' is neither 'allow' nor 'deny'",
        ),
        (
            "access_log stdio:/tmp/a.log squid nosuchacl",
            "t.conf:1: error: ACL not found: nosuchacl",
        ),
        (
            "never_direct maybe all",
            "t.conf:1: error: never_direct: 'maybe' is neither 'allow' nor 'deny'",
        ),
        (
            "http_access allow foo\nacl foo src 10.0.0.1",
            "t.conf:1: error: ACL not found: foo",
        ),
        (
            "acl a src \"/nonexistent/hopproxy-values\"",
            "t.conf:1: error: cannot read ACL values file '/nonexistent/hopproxy-values'",
        ),
        (
            "include /nonexistent/hopproxy.conf",
            "t.conf:1: error: cannot read included file '/nonexistent/hopproxy.conf'",
        ),
        ("acl a src \"/etc/x", "t.conf:1: error: unterminated quoted string"),
    ];
    for (input, expected) in cases {
        let result = snippet(input);
        let messages = messages(&result);
        assert!(result.is_err(), "{input:?} should fail; got {messages:#?}");
        assert!(
            messages.iter().any(|m| m.starts_with(expected)),
            "{input:?}: expected a line starting with {expected:?}, got {messages:#?}"
        );
    }
}

#[test]
fn hints_say_what_to_do() {
    let cases: &[(&str, &str)] = &[
        ("htp_port 3128", "did you mean 'http_port'?"),
        (
            "http_access allow all Safe_prts\nacl Safe_ports port 443",
            "did you mean 'Safe_ports'? (defined later, at t.conf:2",
        ),
        (
            "acl Safe_ports port 443\nhttp_access allow Safe_prts",
            "did you mean 'Safe_ports'?",
        ),
        (
            "http_access allow foo\nacl foo src 10.0.0.1",
            "'foo' is defined later, at t.conf:2",
        ),
        ("acl p port 500-400", "write the lower port first: '400-500'"),
        ("acl p port 443#comment", "put a space before it"),
        ("cache_peer p sibling 3128 0", "use 'parent'"),
        ("acl d dstdomain example.com .example.com", "remove one"),
        ("acl x dstdomian a.example", "did you mean 'dstdomain'?"),
    ];
    for (input, expected) in cases {
        let result = snippet(input);
        let diags = match &result {
            Ok(l) => l.diagnostics.clone(),
            Err(d) => d.clone(),
        };
        assert!(
            diags
                .iter()
                .any(|d| d.hint.as_deref().is_some_and(|h| h.contains(expected)) || d.message.contains(expected)),
            "{input:?}: no hint containing {expected:?} in {diags:#?}"
        );
    }
}

#[test]
fn warnings_do_not_fail_the_config() {
    let cases: &[(&str, &str)] = &[
        (
            "acl d dstdomain .example.com www.example.com",
            "t.conf:1: warning: 'www.example.com' is a subdomain of '.example.com' in ACL 'd'",
        ),
        (
            "acl d dstdomain .example.com .a.b.example.com",
            "t.conf:1: warning: '.a.b.example.com' is a subdomain of '.example.com' in ACL 'd'",
        ),
        (
            "acl d dstdomain a.example A.EXAMPLE.",
            "t.conf:1: warning: 'A.EXAMPLE.' is listed twice in ACL 'd'",
        ),
        (
            "acl s src 127.0.0.0/8 127.0.0.5",
            "t.conf:1: warning: '127.0.0.5' is a subnetwork of '127.0.0.0/8' in ACL 's'",
        ),
        (
            "acl s src 127.0.0.5\nacl s src 127.0.0.0/8",
            "t.conf:1: warning: '127.0.0.5' is a subnetwork of '127.0.0.0/8' in ACL 's'",
        ),
        (
            "acl s src 10.0.0.1-10.0.0.9 10.0.0.5-10.0.0.20",
            "t.conf:1: warning: '10.0.0.5-10.0.0.20' overlaps '10.0.0.1-10.0.0.9'",
        ),
        (
            "acl s src 127.0.0.5/24",
            "t.conf:1: warning: netmask masks away part of the specified IP in '127.0.0.5/24' (ACL 's')",
        ),
        (
            "cache_peer 127.0.0.12 parent 8080 0 no-query default junk",
            "t.conf:1: warning: ignoring unknown cache_peer option 'junk'",
        ),
        (
            "access_log /var/log/squid/access.log squid",
            "t.conf:1: warning: log name now starts with a module name. Use 'stdio:/var/log/squid/access.log'",
        ),
        (
            "http_access allow\nhttp_access deny all",
            "t.conf:1: warning: http_access line without ACLs is ignored",
        ),
        (
            "http_port 3128 #norules",
            "t.conf:1: warning: no http_access rules: every request is denied",
        ),
        (
            "acl empty src",
            "t.conf:1: warning: ACL 'empty' has no values: it matches no request",
        ),
        (
            "never_direct allow all",
            "t.conf:1: warning: never_direct is set but there is no cache_peer",
        ),
        ("logformat squid %ts", "t.conf:1: warning: 'logformat squid' is ignored"),
        (
            "client_ip_max_connections 0",
            "t.conf:1: warning: client_ip_max_connections 0 refuses every client",
        ),
        (
            "max_client_connections 100",
            "t.conf:1: note: 'max_client_connections' is a hopproxy extension",
        ),
    ];
    for (input, expected) in cases {
        let result = snippet(input);
        let messages = messages(&result);
        assert!(result.is_ok(), "{input:?} should load; got {messages:#?}");
        assert!(
            messages.iter().any(|m| m.starts_with(expected)),
            "{input:?}: expected a line starting with {expected:?}, got {messages:#?}"
        );
    }
}

#[test]
fn clean_inputs_give_no_diagnostics() {
    let cases = [
        "acl CONNECT method CONNECT",
        "acl all src all",
        "acl manager proto cache_object",
        "acl localhost src 127.0.0.1/32 ::1",
        "acl localnet src 0.0.0.1-0.255.255.255\t# RFC 1122\nacl localnet src fc00::/7",
        "acl d dstdomain .example.com example.org www.example.net",
        "acl p port 80 21 443 1025-65535 0",
        "acl s src 10.0.0.0/255.0.0.0 192.168.0.0/16 [::1]",
        "acl m method GET POST PROPFIND",
        "acl pr proto HTTP https",
        "acl lp myport 3128\nacl lp2 localport 8080-8090",
        "acl d dstdomain -n .example.com",
        "cache_peer 127.0.0.12 parent 8080 0 no-query default no-digest no-netdb-exchange proxy-only",
        "coredump_dir /var/spool/squid\nrefresh_pattern . 0 20% 4320\ncache_dir ufs /var/spool/squid 100 16 256",
        "access_log stdio:/tmp/a.log squid\naccess_log none",
        "access_log daemon:/tmp/a.log logformat=squid",
        "logformat mine %ts %>a # verbatim",
        "logformat mine %ts\naccess_log stdio:/tmp/a.log mine\naccess_log stdio:/tmp/b.log combined",
        "acl bad http_status 404\nhttp_reply_access deny bad\nhttp_reply_access allow all",
        "shutdown_lifetime 1 seconds\nconnect_timeout 1 minute\nread_timeout 15 minutes",
    ];
    for input in cases {
        let result = snippet(input);
        assert_eq!(messages(&result), Vec::<String>::new(), "{input:?}");
    }
}

#[test]
fn scalar_directives_fill_the_model() {
    let config = load_ok(
        "http_port 127.0.0.11:8080\nhttp_port [::1]:3128\nhttp_port 3129 name=x\n\
         hosts_file /tmp/hosts\ndns_nameservers 127.0.0.53 ::1\nvisible_hostname proxy1.lab\n\
         via off\nforwarded_for truncate\nconnect_timeout 2 minutes\npeer_connect_timeout 5\n\
         read_timeout 1 hour\nrequest_start_timeout 30 seconds\nclient_lifetime 2 days\n\
         shutdown_lifetime 1 second\nrequest_header_max_size 1 MB\npid_filename none\n\
         tcp_outgoing_address 127.0.0.11\ntcp_outgoing_address ::1 !localhost\n\
         strip_query_terms off\nmax_filedescriptors 4096\nclient_ip_max_connections -1\n\
         max_client_connections 500\ncache_mem 8 MB\nforward_timeout 30 seconds\n\
         forward_max_tries 3\nconnect_retries 2\nretry_on_error on",
    );
    let ports: Vec<(Option<IpAddr>, u16)> = config.http_ports.iter().map(|p| (p.addr, p.port)).collect();
    assert_eq!(
        ports,
        vec![
            (Some("127.0.0.11".parse().unwrap()), 8080),
            (Some("::1".parse().unwrap()), 3128),
            (None, 3129)
        ]
    );
    assert_eq!(config.hosts_file.as_deref(), Some(Path::new("/tmp/hosts")));
    assert_eq!(config.dns_nameservers.len(), 2);
    assert_eq!(config.visible_hostname.as_deref(), Some("proxy1.lab"));
    assert!(!config.via);
    assert_eq!(config.forwarded_for, ForwardedFor::Truncate);
    assert_eq!(config.connect_timeout, Duration::from_secs(120));
    assert_eq!(config.peer_connect_timeout, Duration::from_secs(5));
    assert_eq!(config.read_timeout, Duration::from_secs(3600));
    assert_eq!(config.request_start_timeout, Duration::from_secs(30));
    assert_eq!(config.client_lifetime, Duration::from_secs(2 * 86_400));
    assert_eq!(config.shutdown_lifetime, Duration::from_secs(1));
    assert_eq!(config.request_header_max_size, 1 << 20);
    assert_eq!(config.pid_filename, PidFilename::None);
    assert_eq!(config.tcp_outgoing_address.len(), 2);
    assert!(config.tcp_outgoing_address[1].acls[0].negated);
    assert!(!config.strip_query_terms);
    assert_eq!(config.max_filedescriptors, Some(4096));
    assert_eq!(config.client_ip_max_connections, None);
    assert_eq!(config.max_client_connections, Some(500));
    assert_eq!(config.ignored.len(), 1);
    assert_eq!(config.ignored[0].directive, "cache_mem");

    let defaults = load_ok("");
    assert_eq!(defaults.connect_timeout, model::defaults::CONNECT_TIMEOUT);
    assert_eq!(defaults.hosts_file.as_deref(), Some(Path::new("/etc/hosts")));
    assert!(defaults.via && defaults.strip_query_terms);
}

#[test]
fn cache_peer_options() {
    let config = load_ok(
        "cache_peer 127.0.0.12 parent 8080 0 no-query default name=p2 login=peeruser:peer:pass \
         connect-timeout=7 connect-fail-limit=3 round-robin weight=5\n\
         cache_peer 127.0.0.13 parent 8080 0 weighted-round-robin login=PASSTHRU\n\
         acl inside src 10.0.0.0/8\ncache_peer_access p2 allow inside\ncache_peer_access p2 deny all",
    );
    let p = &config.peers[0];
    assert_eq!(
        (p.name.as_str(), p.host.as_str(), p.http_port),
        ("p2", "127.0.0.12", 8080)
    );
    assert!(p.default);
    assert_eq!(
        p.login,
        Some(PeerLogin::Basic {
            user: "peeruser".into(),
            password: "peer:pass".into()
        })
    );
    assert_eq!(p.connect_timeout, Some(Duration::from_secs(7)));
    assert_eq!(p.connect_fail_limit, 3);
    assert_eq!(p.selection, PeerSelection::RoundRobin);
    assert_eq!(p.weight, 5);
    assert_eq!(p.access.rules.len(), 2);
    let q = &config.peers[1];
    assert_eq!(q.name, "127.0.0.13");
    assert_eq!(q.login, Some(PeerLogin::PassThru));
    assert_eq!(q.selection, PeerSelection::WeightedRoundRobin);
    assert_eq!(q.connect_fail_limit, model::defaults::CONNECT_FAIL_LIMIT);
}

#[test]
fn access_log_forms() {
    let config = load_ok(
        "acl agent src 127.0.0.5\naccess_log stdio:/tmp/a.log squid agent\naccess_log none !agent\n\
         access_log daemon:/tmp/b.log",
    );
    let logs = &config.access_logs;
    assert_eq!(logs[0].target, LogTarget::File("/tmp/a.log".into()));
    assert_eq!(logs[0].acls.len(), 1);
    assert_eq!(logs[1].target, LogTarget::None);
    assert!(logs[1].acls[0].negated);
    assert_eq!(logs[2].target, LogTarget::File("/tmp/b.log".into()));
}

#[test]
fn logformat_takes_the_rest_of_the_line_and_access_log_uses_it() {
    let config = load_ok(
        "logformat mine %>a %rm # kept\naccess_log stdio:/tmp/a.log mine\naccess_log stdio:/tmp/b.log\n\
         access_log stdio:/tmp/c.log logformat=combined",
    );
    let logs = &config.access_logs;
    let crate::log::Format::Custom(mine) = &logs[0].format else {
        panic!("a compiled format: {:?}", logs[0].format)
    };
    let record = crate::log::Record {
        end: std::time::UNIX_EPOCH,
        elapsed: std::time::Duration::ZERO,
        client: "127.0.0.5".parse().unwrap(),
        result: crate::log::ResultCode::Miss,
        status: 200,
        bytes: 1,
        method: "GET".into(),
        url: "http://h.invalid/".into(),
        user: None,
        hierarchy: crate::log::Hierarchy::Direct,
        peer: None,
        content_type: None,
        details: Default::default(),
    };
    // Squid keeps a trailing comment in a logformat (docs/squid-behaviour.md section 1).
    assert_eq!(mine.render(&record, true), "127.0.0.5 GET # kept\n");
    assert_eq!(logs[1].format, crate::log::Format::Native);
    assert!(logs[2].format.needs().request_headers);
}

#[test]
fn seed_proxy1_loads_as_squid_reads_it() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/seed-proxy1.conf");
    let loaded = load(&path).expect("seed proxy1 loads");
    let c = &loaded.config;
    assert_eq!(c.http_ports.len(), 1);
    assert_eq!((c.http_ports[0].addr, c.http_ports[0].port), (None, 8080));
    // Inline comments never reach the ACLs (docs/squid-behaviour.md A5).
    let sites = c.acls.get(c.acls.index_of("allowed_https_sites").unwrap());
    assert_eq!(
        sites.kind,
        AclKind::DstDomain(vec![DomainPattern::parse("ingress-orange-saas.instana.io")])
    );
    assert_eq!(
        c.acls.get(c.acls.index_of("SSL_ports").unwrap()).kind,
        AclKind::Port(vec![(443, 443)])
    );
    assert_eq!(c.http_access.rules.len(), 4);
    let lines: Vec<u32> = c.http_access.rules.iter().map(|r| r.origin.line).collect();
    assert_eq!(lines, vec![10, 11, 12, 13]);
    assert_eq!(c.peers.len(), 1);
    assert_eq!((c.peers[0].host.as_str(), c.peers[0].http_port), ("127.0.0.12", 8080));
    assert!(c.peers[0].default);
    assert_eq!(c.never_direct.rules.len(), 1);
    assert_eq!(
        c.access_logs[0].target,
        LogTarget::File("/var/log/squid/access.log".into())
    );
    // The only diagnostic is the one Squid 5.7 gives too (docs/squid-behaviour.md A4).
    let messages: Vec<String> = loaded.diagnostics.iter().map(|d| d.message.clone()).collect();
    assert_eq!(
        messages,
        vec!["log name now starts with a module name. Use 'stdio:/var/log/squid/access.log'"]
    );
}

#[test]
fn includes_and_value_files() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("conf.d")).unwrap();
    std::fs::write(dir.path().join("conf.d/10-ports.conf"), "acl Safe_ports port 443\n").unwrap();
    std::fs::write(
        dir.path().join("conf.d/20-more.conf"),
        "acl Safe_ports port 8443 # alt\ncache_mem 1 MB\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("conf.d/ignored.txt"), "not a config\n").unwrap();
    std::fs::write(
        dir.path().join("sites.txt"),
        "# allowed sites\n.example.com   example.org # trailing\n\nwww.example.com\nbad/value\n",
    )
    .unwrap();
    let main = dir.path().join("squid.conf");
    let text = "http_port 3128\ninclude conf.d/*.conf\nacl sites dstdomain \"sites.txt\"\nhttp_access allow Safe_ports sites\n";
    let result = parse_str(text, &main);
    let diags = result.expect_err("bad/value is an error");
    let sites = dir.path().join("sites.txt");
    let lines: Vec<String> = diags
        .iter()
        .map(|d| d.to_string().lines().next().unwrap().to_string())
        .collect();
    assert!(
        lines.contains(&format!(
            "{}:5: error: 'bad/value' is not a domain name",
            sites.display()
        )),
        "{lines:#?}"
    );
    assert!(
        lines.contains(&format!(
            "{}:4: warning: 'www.example.com' is a subdomain of '.example.com' in ACL 'sites'",
            sites.display()
        )),
        "{lines:#?}"
    );

    std::fs::write(&sites, ".example.com example.org\n").unwrap();
    let loaded = parse_str(text, &main).expect("loads");
    let acls = &loaded.config.acls;
    assert_eq!(
        acls.get(acls.index_of("Safe_ports").unwrap()).kind,
        AclKind::Port(vec![(443, 443), (8443, 8443)])
    );
    assert_eq!(
        loaded.config.ignored[0].origin.file.as_ref(),
        dir.path().join("conf.d/20-more.conf")
    );
    assert_eq!(loaded.config.ignored[0].origin.line, 2);
}

#[test]
fn include_loops_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.conf");
    let b = dir.path().join("b.conf");
    std::fs::write(&a, "http_port 3128\ninclude b.conf\nhttp_access deny all\n").unwrap();
    std::fs::write(&b, "include a.conf\n").unwrap();
    let diags = load(&a).expect_err("loop");
    let first = diags[0].to_string();
    assert!(
        first.starts_with(&format!("{}:1: error: include loop: ", b.display())),
        "{first}"
    );
    assert!(first.contains("a.conf -> ") && first.contains("b.conf -> "), "{first}");
}

#[test]
fn all_errors_are_collected() {
    let diags = snippet("acl p port x\nacl q port y\nvia maybe\nfoo bar").expect_err("invalid");
    assert_eq!(diags.iter().filter(|d| d.is_error()).count(), 4);
    let no_port = parse_str("http_access deny all", Path::new(LABEL)).expect_err("no port");
    assert_eq!(
        no_port[0].to_string().lines().next().unwrap(),
        "t.conf:1: error: no http_port: hopproxy would not listen anywhere"
    );
}

#[test]
fn diagnostic_display_has_hint_on_second_line() {
    let diags = snippet("htp_port 3128").expect_err("typo");
    assert_eq!(
        diags[0].to_string(),
        "t.conf:1: error: unknown directive 'htp_port'\n    hint: did you mean 'http_port'?"
    );
}

// --- http_access evaluation ------------------------------------------------------------------

/// A request as `serve` describes it to the policy.
struct Req<'a> {
    client: &'a str,
    method: &'a str,
    host: &'a str,
    port: u16,
    dst: &'a [&'a str],
}

fn allowed(config: &Config, req: &Req<'_>) -> bool {
    // Normalized the way `serve` does before building facts: lower-case, no trailing dot.
    let host = req.host.trim_end_matches('.').to_ascii_lowercase();
    let dst: Vec<IpAddr> = req.dst.iter().map(|a| a.parse().unwrap()).collect();
    let facts = RequestFacts {
        client: req.client.parse().unwrap(),
        method: req.method,
        proto: if req.method == "CONNECT" { "AUTHORITY" } else { "HTTP" },
        host: &host,
        port: req.port,
        path: if req.method == "CONNECT" { "" } else { "/" },
        dst_addrs: &dst,
        host_aliases: &[],
        local_port: 3128,
        user: None,
        more: crate::policy::MoreFacts::default(),
    };
    config.http_access.allows(&config.acls, &facts, Action::Deny)
}

fn get(client: &'static str, host: &'static str, port: u16) -> Req<'static> {
    Req {
        client,
        method: "GET",
        host,
        port,
        dst: &[],
    }
}

fn connect(client: &'static str, host: &'static str, port: u16) -> Req<'static> {
    Req {
        method: "CONNECT",
        ..get(client, host, port)
    }
}

/// docs/squid-behaviour.md 5 (E1–E7): one ACL allowed, everything else denied.
#[test]
fn acl_cases_measured_on_squid() {
    let cases: &[(&str, &[(&str, bool)])] = &[
        (
            "acl d dstdomain .example.com",
            &[
                ("example.com", true),
                ("www.example.com", true),
                ("a.b.example.com", true),
                ("WWW.EXAMPLE.COM", true),
                ("www.example.com.", true),
                ("notexample.com", false),
                ("example.org", false),
            ],
        ),
        (
            "acl d dstdomain example.org",
            &[("example.org", true), ("EXAMPLE.ORG", true), ("www.example.org", false)],
        ),
        (
            "acl d dstdomain Example.ORG.",
            &[("example.org", true), ("www.example.org", false)],
        ),
    ];
    for (acl, hosts) in cases {
        let config = load_ok(&format!("{acl}\nhttp_access allow d\nhttp_access deny all"));
        for (host, expected) in *hosts {
            assert_eq!(
                allowed(&config, &get("10.0.0.1", host, 80)),
                *expected,
                "{acl} / {host}"
            );
        }
    }

    let src_cases: &[(&str, &[(&str, bool)])] = &[
        (
            "acl s src 127.0.0.0/29",
            &[("127.0.0.5", true), ("127.0.0.7", true), ("127.0.0.9", false)],
        ),
        (
            "acl s src 127.0.0.5-127.0.0.6",
            &[
                ("127.0.0.5", true),
                ("127.0.0.6", true),
                ("127.0.0.7", false),
                ("127.0.0.4", false),
            ],
        ),
        (
            "acl s src 10.0.0.0/255.255.255.0",
            &[("10.0.0.200", true), ("10.0.1.1", false)],
        ),
        (
            "acl s src fc00::/7",
            &[("fd00::1", true), ("fe80::1", false), ("10.0.0.1", false)],
        ),
        ("acl s src all", &[("fd00::1", true), ("10.0.0.1", true)]),
        ("acl s src ::ffff:10.0.0.1", &[("10.0.0.1", true)]),
    ];
    for (acl, clients) in src_cases {
        let config = load_ok(&format!("{acl}\nhttp_access allow s\nhttp_access deny all"));
        for (client, expected) in *clients {
            assert_eq!(
                allowed(&config, &get(client, "example.com", 80)),
                *expected,
                "{acl} / {client}"
            );
        }
    }

    let config = load_ok("acl p port 8440-8450\nhttp_access allow p\nhttp_access deny all");
    for (port, expected) in [(8443, true), (8440, true), (8450, true), (443, false), (8451, false)] {
        assert_eq!(
            allowed(&config, &connect("10.0.0.1", "example.com", port)),
            expected,
            "port {port}"
        );
    }

    // dst matches the literal address or any resolved address (docs/squid-behaviour.md E6).
    let config = load_ok("acl t dst 127.0.0.20/32\nhttp_access allow t\nhttp_access deny all");
    let mut by_name = connect("10.0.0.1", "ingress-orange-saas.instana.io", 443);
    by_name.dst = &["127.0.0.20"];
    assert!(allowed(&config, &by_name));
    assert!(allowed(&config, &connect("10.0.0.1", "127.0.0.20", 443)));
    let mut other = connect("10.0.0.1", "other.example.com", 443);
    other.dst = &["127.0.0.22"];
    assert!(!allowed(&config, &other));
    assert!(!allowed(&config, &connect("10.0.0.1", "nxdomain.invalid", 443)));

    // Built-ins.
    let config = load_ok("http_access deny to_localhost\nhttp_access allow localhost\nhttp_access deny all");
    assert!(allowed(&config, &get("127.0.0.1", "example.com", 80)));
    assert!(allowed(&config, &get("::1", "example.com", 80)));
    assert!(!allowed(&config, &get("127.0.0.2", "example.com", 80)));
    assert!(!allowed(&config, &get("127.0.0.1", "127.0.0.1", 80)));
}

#[test]
fn rule_order_and_defaults() {
    // First match wins.
    let config = load_ok("acl a src 10.0.0.0/8\nhttp_access allow a\nhttp_access deny a");
    assert!(allowed(&config, &get("10.1.1.1", "x.example", 80)));
    let config = load_ok("acl a src 10.0.0.0/8\nhttp_access deny a\nhttp_access allow a");
    assert!(!allowed(&config, &get("10.1.1.1", "x.example", 80)));
    // No match: the opposite of the last rule.
    let config = load_ok("acl bad src 10.0.0.0/8\nhttp_access deny bad");
    assert!(!allowed(&config, &get("10.1.1.1", "x.example", 80)));
    assert!(allowed(&config, &get("192.0.2.1", "x.example", 80)));
    let config = load_ok("acl good src 10.0.0.0/8\nhttp_access allow good");
    assert!(allowed(&config, &get("10.1.1.1", "x.example", 80)));
    assert!(!allowed(&config, &get("192.0.2.1", "x.example", 80)));
    // AND within a line, ! negation.
    let config =
        load_ok("acl good src 10.0.0.0/8\nacl ssl port 443\nhttp_access allow good !ssl\nhttp_access deny all");
    assert!(allowed(&config, &get("10.1.1.1", "x.example", 80)));
    assert!(!allowed(&config, &get("10.1.1.1", "x.example", 443)));
    assert!(!allowed(&config, &get("192.0.2.1", "x.example", 80)));
    // No rules at all: deny.
    let config = load_ok("http_port 3128 #norules");
    assert!(config.http_access.is_empty());
    assert!(!allowed(&config, &get("127.0.0.1", "x.example", 80)));
}

/// docs/squid-behaviour.md 3.2, the C1 matrix through proxy1 (allowed = 200 or 503, denied = 403).
#[test]
fn seed_proxy1_policy_matches_the_c1_matrix() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/seed-proxy1.conf");
    let config = load(&path).expect("seed loads").config;
    let endpoint = "ingress-orange-saas.instana.io";
    let matrix: &[(Req<'static>, bool)] = &[
        (connect("127.0.0.5", endpoint, 443), true),
        (connect("127.0.0.5", "other.example.com", 443), true),
        (connect("127.0.0.5", endpoint, 8443), true),
        (connect("127.0.0.5", endpoint, 22), true),
        (get("127.0.0.5", endpoint, 80), true),
        (get("127.0.0.5", "other.example.com", 80), false),
        (get("127.0.0.5", "plainhttp443.example.net", 443), true),
        (connect("127.0.0.6", endpoint, 443), true),
        (connect("127.0.0.6", "other.example.com", 443), true),
        (connect("127.0.0.6", endpoint, 8443), false),
        (connect("127.0.0.6", endpoint, 22), false),
        (get("127.0.0.6", endpoint, 80), false),
        (get("127.0.0.6", "other.example.com", 80), false),
        (get("127.0.0.6", "plainhttp443.example.net", 443), true),
    ];
    for (req, expected) in matrix {
        assert_eq!(
            allowed(&config, req),
            *expected,
            "{} {} {}:{}",
            req.client,
            req.method,
            req.host,
            req.port
        );
    }
    // DELETE and POST on port 443 too (docs/squid-behaviour.md B5d).
    let mut delete = get("127.0.0.6", "plainhttp443.example.net", 443);
    delete.method = "DELETE";
    assert!(allowed(&config, &delete));
}

/// `known::supported()` is the one list of directives with an effect: every name on it reaches
/// its own handler (never the unknown, unsupported or ignored paths).
#[test]
fn every_supported_directive_has_a_handler() {
    for name in known::supported().filter(|n| *n != "include") {
        let text = format!("http_port 3128\n{name}\n");
        let diagnostics = match parse_str(&text, Path::new(LABEL)) {
            Ok(loaded) => {
                assert!(loaded.config.ignored.is_empty(), "{name} was ignored");
                loaded.diagnostics
            }
            Err(diagnostics) => diagnostics,
        };
        for d in diagnostics {
            assert!(
                !d.message.contains("unknown directive") && !d.message.contains("does not support"),
                "{name}: {}",
                d.message
            );
        }
    }
}

// --- the dialect table: aliases, classes, cascades -----------------------------------------

fn errors(result: &Result<Loaded, Vec<Diagnostic>>) -> Vec<String> {
    messages(result)
        .into_iter()
        .filter(|m| m.contains(": error: "))
        .collect()
}

/// Squid's old names mean what the new ones mean (each checked with `squid -k parse`).
#[test]
fn aliases_mean_the_current_names() {
    let loaded = snippet("cache_access_log stdio:/tmp/x.log\nmax_filedesc 4096").unwrap();
    assert_eq!(loaded.config.access_logs.len(), 1);
    assert_eq!(loaded.config.max_filedescriptors, Some(4096));
    // Old names of ignored directives are ignored under the name written.
    for old in [
        "no_cache deny all",
        "pconn_timeout 10 seconds",
        "persistent_request_timeout 1 minute",
        "incoming_http_average 4",
        "udp_port 0",
    ] {
        let loaded = snippet(old).unwrap_or_else(|e| panic!("{old}: {e:?}"));
        let word = old.split_whitespace().next().unwrap();
        assert_eq!(loaded.config.ignored[0].directive, word, "{old}");
        assert!(!loaded.config.ignored[0].squid_ignores, "{old}");
    }
    // Old names of rejected directives give the same hint as the new name.
    let result = snippet("redirect_program /usr/bin/squidGuard");
    let e = result.unwrap_err();
    assert!(e[0].message.contains("'redirect_program'"), "{e:?}");
    assert!(e[0].hint.as_deref().unwrap().contains("instead"), "{e:?}");
}

/// Obsolete names Squid 5.7 ignores ("ERROR: Directive … is obsolete", exit 0) load, marked
/// as ignored by Squid too.
#[test]
fn obsolete_names_are_ignored_like_squid() {
    for line in [
        "upgrade_http0.9 deny all",
        "extension_methods REPORT",
        "broken_vary_encoding allow all",
        "header_access Via deny all",
        "dns_v4_first on",
        "hierarchy_stoplist cgi-bin ?",
        "zph_mode off",
    ] {
        let loaded = snippet(line).unwrap_or_else(|e| panic!("{line}: {e:?}"));
        assert!(loaded.config.ignored[0].squid_ignores, "{line}");
    }
}

#[test]
fn rejected_directives_say_what_to_use_instead() {
    for line in [
        "sslcrtd_program /usr/lib/squid/security_file_certgen",
        "icap_enable on",
        "client_delay_pools 1",
        "url_rewrite_program /bin/true",
        "chroot /var/chroot",
        "tcp_outgoing_tos 0x20 all",
        "wccp2_router 10.0.0.1",
    ] {
        let e: Vec<Diagnostic> = snippet(line)
            .unwrap_err()
            .into_iter()
            .filter(|d| d.is_error())
            .collect();
        assert_eq!(e.len(), 1, "{line}: {e:?}");
        assert!(
            e[0].hint.as_deref().unwrap_or_default().contains("instead"),
            "{line}: {e:?}"
        );
        assert!(
            !e[0].hint.as_deref().unwrap_or_default().contains("could change"),
            "{line}"
        );
    }
}

#[test]
fn default_only_directives_accept_the_default_and_name_it_otherwise() {
    for line in [
        "half_closed_clients off",
        "nonhierarchical_direct on",
        "acl_uses_indirect_client on",
    ] {
        assert!(snippet(line).is_ok(), "{line}");
    }
    let e = snippet("half_closed_clients on").unwrap_err();
    assert!(e[0].message.contains("'half_closed_clients off'"), "{e:?}");
}

#[test]
fn timeouts_are_read() {
    let loaded = snippet("request_timeout 30 seconds\ndns_timeout 2 seconds").unwrap();
    assert_eq!(loaded.config.request_timeout, Duration::from_secs(30));
    assert_eq!(loaded.config.dns_timeout, Duration::from_secs(2));
    let loaded = snippet("").unwrap();
    assert_eq!(loaded.config.dns_timeout, Duration::from_secs(30));
    assert!(snippet("dns_timeout soon").is_err());
}

#[test]
fn logfile_rotate_is_explained() {
    let loaded = snippet("logfile_rotate 10").unwrap();
    assert!(
        loaded.diagnostics.iter().any(|d| d.message.contains("SIGUSR1")),
        "{:?}",
        loaded.diagnostics
    );
    assert!(snippet("logfile_rotate many").is_err());
}

#[test]
fn http_port_options() {
    let loaded = snippet("http_port 3129 name=egress ipv4 connection-auth=off").unwrap();
    assert_eq!(loaded.config.http_ports.len(), 1);
    let loaded = snippet("http_port 3129 tcpkeepalive=60,30,180 no-vhost").unwrap();
    assert_eq!(loaded.config.ignored.len(), 1, "no-vhost is ignored, as Squid does");
    let keepalive = loaded.config.http_ports[0].tcp_keepalive.unwrap();
    assert_eq!(keepalive.idle, Some(Duration::from_secs(60)));
    assert_eq!(keepalive.timeout, Some(Duration::from_secs(180)));
    assert!(
        snippet("http_port 3129 tcpkeepalive").unwrap().config.http_ports[0]
            .tcp_keepalive
            .is_some()
    );
    assert!(snippet("http_port 3129 tcpkeepalive=x").is_err());
    let loaded = snippet("write_timeout 2 minutes").unwrap();
    assert_eq!(loaded.config.write_timeout, Duration::from_secs(120));
    for (line, word) in [
        ("http_port 3129 intercept", "explicit forward proxy"),
        ("http_port 3129 accel defaultsite=www.example.com", "reverse proxy"),
    ] {
        let e: Vec<Diagnostic> = snippet(line)
            .unwrap_err()
            .into_iter()
            .filter(|d| d.is_error())
            .collect();
        assert!(
            !e.is_empty() && e.iter().all(|d| d.hint.as_deref().unwrap_or_default().contains(word)),
            "{line}: {e:?}"
        );
    }
}

#[test]
fn proxy_protocol_and_privilege_drop_directives() {
    let loaded = snippet(
        "http_port 3129 require-proxy-header\nacl lb src 10.0.0.5\nproxy_protocol_access allow lb\n\
         cache_effective_user proxy\ncache_effective_group proxy",
    )
    .unwrap();
    let c = &loaded.config;
    assert!(c.http_ports.iter().any(|p| p.port == 3129 && p.require_proxy_header));
    assert_eq!(c.proxy_protocol_access.rules.len(), 1);
    assert_eq!(c.effective_user.as_deref(), Some("proxy"));
    assert_eq!(c.effective_group.as_deref(), Some("proxy"));
    // Squid's default proxy_protocol_access is deny all: say so before it refuses everyone.
    let loaded = snippet("http_port 3129 require-proxy-header").unwrap();
    assert!(
        loaded
            .diagnostics
            .iter()
            .any(|d| d.message.contains("every connection to this port is refused")),
        "{:?}",
        loaded.diagnostics
    );
    assert!(snippet("cache_effective_user").is_err());
    assert!(snippet("proxy_protocol_access allow nosuch").is_err());
}

/// One error per real problem: an ACL of an unsupported type, or an auth helper that cannot run, does
/// not add an error on every line that uses it.
#[test]
fn no_cascades() {
    let result = snippet("acl t ssl_error X509_V_ERR_CERT_HAS_EXPIRED\nhttp_access allow t\nhttp_access deny !t");
    assert_eq!(errors(&result).len(), 1, "{:#?}", messages(&result));
    let result = snippet(
        "auth_param basic program /nonexistent/basic_ldap_auth -h ldap\n\
         auth_param basic realm x\nacl u proxy_auth REQUIRED\nhttp_access allow u",
    );
    let all = messages(&result);
    assert_eq!(errors(&result).len(), 1, "{all:#?}");
    assert!(!all.iter().any(|m| m.contains("no 'program' line")), "{all:#?}");
}

#[test]
fn defined_later_only_when_it_is() {
    let result = snippet("http_access allow late\nacl late src 10.0.0.0/8");
    assert!(
        result.unwrap_err()[0]
            .hint
            .as_deref()
            .unwrap()
            .contains("defined later")
    );
    let result = snippet("http_access allow nowhere");
    let e = result.unwrap_err();
    assert!(!e[0].hint.as_deref().unwrap().contains("later"), "{e:?}");
}

#[test]
fn diagnostics_are_sorted_by_line() {
    let e = snippet("http_access allow b\nbogus_directive 1\nacl x srcc 1.2.3.4").unwrap_err();
    let lines: Vec<u32> = e.iter().filter(|d| d.is_error()).map(|d| d.origin.line).collect();
    let mut sorted = lines.clone();
    sorted.sort_unstable();
    assert_eq!(lines, sorted);
}

/// `squid -k parse` stops on an include glob that matches nothing; so does `check`.
#[test]
fn include_glob_matching_nothing_is_an_error() {
    let e = snippet("include /nonexistent-dir-hopproxy/*.conf").unwrap_err();
    assert!(e[0].message.contains("matches no file"), "{e:?}");
}

#[test]
fn syntax_only_does_not_read_referenced_files() {
    let text = "http_port 3128\nacl a dstdomain \"/nonexistent/hopproxy-list\"\nhttp_access allow a\n\
                auth_param basic program /usr/lib/squid/basic_ncsa_auth /nonexistent/passwd\n\
                acl u proxy_auth REQUIRED\nhttp_access allow u";
    let full = parse_str_with(text, Path::new(LABEL), false).unwrap_err();
    assert_eq!(full.iter().filter(|d| d.is_error()).count(), 2, "{full:#?}");
    assert!(parse_str_with(text, Path::new(LABEL), true).is_ok());
}

/// Every Squid 5.7 directive of the stock squid.conf (its `TAG:` lines) has a class.
#[test]
fn every_stock_tag_is_classified() {
    let Ok(stock) = std::fs::read_to_string("/etc/squid/squid.conf") else {
        return; // squid is not installed here; the corpus test covers the same ground
    };
    for tag in stock.lines().filter_map(|l| l.strip_prefix("#  TAG: ")) {
        let name = tag.split_whitespace().next().unwrap();
        assert!(known::class_of(name).is_some(), "{name} has no class");
    }
}

#[test]
fn deny_info_forms() {
    let loaded = snippet(
        "acl a src 10.0.0.0/8\ndeny_info ERR_X a\ndeny_info 303:http://p.invalid/%u a\ndeny_info http://q.invalid/ a",
    )
    .unwrap();
    assert_eq!(loaded.config.deny_info.len(), 3);
    // The first line naming an ACL wins, as in Squid.
    assert_eq!(
        loaded.config.deny_answer(loaded.config.acls.index_of("a").unwrap()),
        Some(&DenyAnswer::ErrorPage {
            status: 403,
            name: "ERR_X".into()
        })
    );
    assert!(matches!(
        loaded.config.deny_info[1].answer,
        DenyAnswer::Redirect { status: Some(303), .. }
    ));
    // Squid accepts a name that is not an ACL (it never applies): a warning, not an error.
    assert!(snippet("deny_info ERR_X nosuch").is_ok());
    assert!(snippet("deny_info 404:http://x.invalid/ all").is_err());
    let e = snippet("deny_info TCP_RESET all").unwrap_err();
    assert!(e[0].hint.as_deref().unwrap().contains("instead"));
}

#[test]
fn follow_x_forwarded_for_rules() {
    let loaded =
        snippet("acl lb src 10.0.0.1\nfollow_x_forwarded_for allow lb\nfollow_x_forwarded_for deny all").unwrap();
    assert_eq!(loaded.config.follow_x_forwarded_for.rules.len(), 2);
    assert!(snippet("").unwrap().config.follow_x_forwarded_for.is_empty());
    assert!(snippet("follow_x_forwarded_for allow nosuch").is_err());
}

/// `https_port` and `cache_peer … tls` read their files at load; the old option names work.
#[test]
fn tls_legs_load_certificates_and_keys() {
    let dir = tempfile::tempdir().unwrap();
    let ca = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["proxy.example".to_string()])
        .unwrap()
        .signed_by(&key, &ca_cert, &ca)
        .unwrap();
    let path = |name: &str| dir.path().join(name).display().to_string();
    std::fs::write(path("ca.pem"), ca_cert.pem()).unwrap();
    std::fs::write(path("p.pem"), cert.pem()).unwrap();
    std::fs::write(path("p.key"), key.serialize_pem()).unwrap();
    std::fs::write(path("other.key"), rcgen::KeyPair::generate().unwrap().serialize_pem()).unwrap();
    let text = format!(
        "https_port 127.0.80.1:3129 cert={p} key={k} clientca={ca} tls-min-version=1.2\n\
         cache_peer parent.example parent 3129 0 no-query ssl sslcafile={ca} sslcert={p} sslkey={k} ssldomain=proxy.example\n\
         acl proxies user_cert CN -i ^proxy\\.example$\n\
         http_access allow proxies\n",
        p = path("p.pem"),
        k = path("p.key"),
        ca = path("ca.pem"),
    );
    let loaded = parse_str(&text, Path::new("t.conf"))
        .map_err(|d| format!("{d:?}"))
        .unwrap();
    let port = &loaded.config.http_ports[0];
    let tls = port.tls.as_ref().expect("https_port has TLS");
    assert!(tls.config.is_some() && tls.client_ca.is_some());
    let peer_tls = loaded.config.peers[0].tls.as_ref().expect("the parent has TLS");
    assert_eq!(peer_tls.domain.as_deref(), Some("proxy.example"));
    assert!(peer_tls.config.is_some());

    // A key that does not belong to the certificate is a config error with a hint.
    let mismatched = format!(
        "https_port 3129 tls-cert={} tls-key={}\n",
        path("p.pem"),
        path("other.key")
    );
    let errors = parse_str(&mismatched, Path::new("t.conf")).unwrap_err();
    let text = format!("{}", errors[0]);
    assert!(
        text.starts_with("t.conf:1: error: https_port 3129: certificate"),
        "{text}"
    );
    assert!(
        errors[0]
            .hint
            .as_deref()
            .unwrap_or("")
            .contains("private key of the first certificate")
    );

    // The PROXY header precedes the handshake on the wire: refused on an https_port.
    let proxied = format!(
        "https_port 3129 tls-cert={} tls-key={} require-proxy-header\n",
        path("p.pem"),
        path("p.key")
    );
    let errors = parse_str(&proxied, Path::new("t.conf")).unwrap_err();
    assert!(
        errors
            .iter()
            .any(|e| e.message.contains("require-proxy-header on an https_port")),
        "{errors:?}"
    );
}

#[test]
fn external_acl_type_lines() {
    let loaded = snippet(
        "external_acl_type t ttl=5 children-max=3 concurrency=2 %>a %LOGIN %>{X-Team} /bin/cat -u\n\
         acl e external t one two\nhttp_access allow e",
    )
    .unwrap_or_else(|d| panic!("{d:#?}"));
    let t = &loaded.config.external_acl_types[0];
    assert_eq!(t.ttl, Duration::from_secs(5));
    assert_eq!(t.negative_ttl, Duration::from_secs(5));
    assert_eq!((t.helper.children_max, t.helper.concurrency), (3, 2));
    assert_eq!(t.helper.args, ["-u"]);
    assert!(t.needs_login());
    let e = loaded.config.acls.index_of("e").unwrap();
    assert!(matches!(&loaded.config.acls.get(e).kind, AclKind::External(r) if r.args == ["one", "two"]));
    for (text, message) in [
        ("external_acl_type t bogus=1 %SRC /bin/cat", "unknown option 'bogus=1'"),
        (
            "external_acl_type t %XYZ /bin/cat",
            "format code '%XYZ' is not supported",
        ),
        ("external_acl_type t %SRC", "needs the helper program after the format"),
        ("external_acl_type t %SRC /nonexistent/helper", "cannot run it"),
        (
            "acl e external nope",
            "external_acl_type 'nope' is not defined on an earlier line",
        ),
    ] {
        let all = errors(&snippet(text));
        assert!(all.len() == 1 && all[0].contains(message), "{text}: {all:#?}");
    }
    let routed = snippet(
        "external_acl_type t %SRC /bin/cat
acl e external t
always_direct allow e",
    );
    assert!(
        messages(&routed)
            .iter()
            .any(|m| m.contains("warning: external ACL 'e' in always_direct matches nothing")),
        "{:#?}",
        messages(&routed)
    );
}

#[test]
fn delay_pools_load_with_squid_semantics() {
    let config = load_ok(
        "acl slow src 10.0.0.0/8\n\
         delay_pools 3\n\
         delay_class 1 1\ndelay_parameters 1 64000/16000\ndelay_access 1 allow slow\ndelay_access 1 deny all\n\
         delay_class 2 2\ndelay_parameters 2 -1/-1 8000/8000\ndelay_access 2 allow all\n\
         delay_class 3 3\ndelay_parameters 3 -1/-1 -1/-1 1000/2000\ndelay_access 3 allow all\n\
         delay_initial_bucket_level 90",
    );
    let pools = &config.delay_pools;
    assert_eq!(pools.initial_level_percent, 90);
    type Rates = Option<Option<u64>>;
    let summary: Vec<(usize, u8, Option<u64>, Rates, Rates)> = pools
        .pools
        .iter()
        .map(|p| {
            (
                p.number,
                p.class,
                p.aggregate.rate,
                p.network.map(|b| b.rate),
                p.individual.map(|b| b.rate),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (1, 1, Some(64000), None, None),
            (2, 2, None, None, Some(Some(8000))),
            (3, 3, None, Some(None), Some(Some(1000))),
        ]
    );
    assert_eq!(pools.pools[0].aggregate.max, 16000);
    assert_eq!(pools.pools[0].access.rules.len(), 2);
}

#[test]
fn bad_delay_pool_lines_say_where_and_what_to_write() {
    for (text, line, message) in [
        ("delay_class 1 1", 1, "before delay_pools"),
        ("delay_pools 1\ndelay_class 2 1", 2, "pool '2' does not exist"),
        ("delay_pools 1\ndelay_class 1 5", 2, "class 5"),
        ("delay_pools 1\ndelay_class 1 7", 2, "class 1, 2, 3 or 4"),
        (
            "delay_pools 1\ndelay_class 1 4\ndelay_parameters 1 100/100 100/100 100/100\ndelay_access 1 allow all",
            3,
            "class 4 needs 4",
        ),
        (
            "delay_pools 1\ndelay_class 1 1\ndelay_parameters 1 fast",
            3,
            "not RATE/MAX",
        ),
        (
            "delay_pools 1\ndelay_class 1 2\ndelay_parameters 1 100/100\ndelay_access 1 allow all",
            3,
            "class 2 needs 2",
        ),
        ("delay_pools 1\ndelay_parameters 1 100/100", 2, "no delay_class"),
        (
            "delay_pools 1\ndelay_class 1 1\ndelay_access 1 perhaps all",
            3,
            "neither 'allow' nor 'deny'",
        ),
        ("delay_pools many", 1, "number of pools"),
        ("delay_initial_bucket_level 150", 1, "0 to 100"),
    ] {
        let errors: Vec<Diagnostic> = snippet(text)
            .unwrap_err()
            .into_iter()
            .filter(|d| d.is_error())
            .collect();
        assert_eq!(errors.len(), 1, "{text}: {errors:?}");
        assert_eq!(errors[0].origin.line, line, "{text}: {errors:?}");
        assert!(errors[0].message.contains(message), "{text}: {errors:?}");
        assert!(errors[0].hint.is_some(), "{text}: {errors:?}");
    }
}

#[test]
fn delay_pools_that_take_nobody_are_warned_about_and_left_out() {
    let loaded = snippet("delay_pools 2\ndelay_class 1 1\ndelay_parameters 1 100/100\ndelay_class 2 1").unwrap();
    assert!(loaded.config.delay_pools.pools.is_empty());
    let warnings: Vec<&str> = loaded
        .diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Warning)
        .map(|d| d.message.as_str())
        .collect();
    assert!(
        warnings.iter().any(|w| w.contains("pool 1 has no delay_access")),
        "{warnings:?}"
    );
    assert!(
        warnings.iter().any(|w| w.contains("pool 2 has no delay_parameters")),
        "{warnings:?}"
    );
}

/// Squid's peek-and-splice syntax loads; certificate options of an `ssl-bump` port are listed
/// as unused; actions that decrypt are refused with what to write instead.
#[test]
fn ssl_bump_peek_and_splice() {
    let config = load_ok(
        "http_port 3128 ssl-bump cert=/etc/squid/ca.pem generate-host-certificates=on dynamic_cert_mem_cache_size=4MB\n\
         acl step1 at_step SslBump1\n\
         acl step2 at_step SslBump2 SslBump3\n\
         acl allowed ssl::server_name -i .example.com\n\
         acl api ssl::server_name_regex -i ^api\\.\n\
         ssl_bump peek step1\n\
         ssl_bump splice allowed\n\
         ssl_bump splice api step2\n\
         ssl_bump terminate all\n\
         on_unsupported_protocol tunnel all\n\
         tunnel_sni_must_match on\n\
         http_access deny all",
    );
    assert!(config.http_ports[0].ssl_bump);
    let rules = &config.tunnel_rules;
    assert_eq!(rules.ssl_bump.len(), 4);
    assert_eq!(rules.ssl_bump[0].action, crate::policy::BumpAction::Peek);
    assert_eq!(rules.ssl_bump[3].action, crate::policy::BumpAction::Terminate);
    assert_eq!(rules.on_unsupported_protocol.len(), 1);
    assert!(rules.sni_must_match);
    let unused: Vec<&str> = config.ignored.iter().map(|i| i.directive.as_str()).collect();
    assert!(
        unused.iter().any(|d| d.contains("cert=/etc/squid/ca.pem")),
        "{unused:?}"
    );
    assert_eq!(unused.len(), 3, "{unused:?}");
}

#[test]
fn ssl_bump_decrypting_actions_are_refused() {
    for action in ["bump", "stare", "client-first", "server-first"] {
        let result = snippet(&format!("acl step1 at_step SslBump1\nssl_bump {action} step1"));
        let all = messages(&result);
        assert!(
            all.iter()
                .any(|m| m.starts_with(&format!("{LABEL}:2: error: ssl_bump {action}"))
                    && m.contains("ssl_bump peek step1")),
            "{all:#?}"
        );
    }
    // Without ssl-bump, a certificate option on http_port is still refused.
    let result = snippet("http_port 3128 cert=/x.pem\nhttp_access deny all");
    assert!(
        messages(&result)
            .iter()
            .any(|m| m.contains("'cert=/x.pem' is not supported"))
    );
    let result = snippet("acl s at_step SslBump4\nssl_bump peek s");
    assert!(
        messages(&result)
            .iter()
            .any(|m| m.contains("'SslBump4' is not an SslBump step"))
    );
}

#[test]
fn ssl_bump_rules_without_an_ssl_bump_port_are_a_warning() {
    let result = snippet("acl step1 at_step SslBump1\nssl_bump peek step1\nhttp_access deny all");
    let all = messages(&result);
    assert!(
        all.iter()
            .any(|m| m.starts_with(&format!("{LABEL}:2: warning: ssl_bump rules apply to no port"))),
        "{all:#?}"
    );
}

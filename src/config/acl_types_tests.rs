//! The ACL types beyond addresses and ports: each parsed from squid.conf text and evaluated
//! on the facts `serve` gives it.

use std::net::IpAddr;
use std::path::Path;

use crate::config::{Config, parse_str};
use crate::http1::Header;
use crate::policy::{LocalClock, MoreFacts, ReplyFacts, RequestFacts};

fn config(text: &str) -> Config {
    let text = format!("http_port 3128\n{text}");
    match parse_str(&text, Path::new("acl.conf")) {
        Ok(loaded) => loaded.config,
        Err(diags) => panic!("config rejected: {diags:?}"),
    }
}

fn errors(text: &str) -> Vec<String> {
    let text = format!("http_port 3128\n{text}");
    match parse_str(&text, Path::new("acl.conf")) {
        Ok(_) => Vec::new(),
        Err(diags) => diags
            .iter()
            .filter(|d| d.is_error())
            .map(|d| {
                format!(
                    "{}:{}: {} ({})",
                    d.origin.file.display(),
                    d.origin.line,
                    d.message,
                    d.hint.clone().unwrap_or_default()
                )
            })
            .collect(),
    }
}

fn header(name: &str, value: &str) -> Header {
    Header {
        name: name.to_string(),
        value: value.as_bytes().to_vec(),
    }
}

/// What one request looks like to the ACL named `acl` of `config`.
fn matches(config: &Config, acl: &str, more: MoreFacts<'_>, host: &str) -> bool {
    let facts = RequestFacts {
        client: "127.0.67.2".parse().unwrap(),
        method: "GET",
        proto: "HTTP",
        host,
        port: 80,
        path: more.path_query,
        dst_addrs: &[],
        host_aliases: &[],
        local_port: 3128,
        user: None,
        more,
    };
    let index = config.acls.index_of(acl).expect("ACL defined");
    config.acls.get(index).kind.matches(&facts)
}

fn url(url: &str) -> MoreFacts<'_> {
    let path = url
        .find("://")
        .and_then(|i| url[i + 3..].find('/').map(|j| &url[i + 3 + j..]));
    MoreFacts {
        url,
        path_query: path.unwrap_or(""),
        ..MoreFacts::default()
    }
}

#[test]
fn url_regex_is_case_sensitive_until_dash_i_and_sees_decoded_urls() {
    let c = config("acl a url_regex ^http://Example\\.invalid/\nacl b url_regex -i \\.EXE$ +i ZIP$\n");
    assert!(matches(&c, "a", url("http://Example.invalid/x"), "example.invalid"));
    assert!(!matches(&c, "a", url("http://example.invalid/x"), "example.invalid"));
    assert!(matches(&c, "b", url("http://h.invalid/setup.exe"), "h.invalid"));
    assert!(matches(&c, "b", url("http://h.invalid/setup%2Eexe"), "h.invalid"));
    assert!(!matches(&c, "b", url("http://h.invalid/a.zip"), "h.invalid"));
    assert!(matches(&c, "b", url("http://h.invalid/a.ZIP"), "h.invalid"));
}

#[test]
fn urlpath_regex_sees_path_and_query_only() {
    let c = config("acl p urlpath_regex ^/admin\nacl q urlpath_regex \\?debug=1\n");
    assert!(matches(&c, "p", url("http://h.invalid/admin/x"), "h.invalid"));
    assert!(!matches(&c, "p", url("http://admin.invalid/x"), "admin.invalid"));
    assert!(matches(&c, "q", url("http://h.invalid/x?debug=1"), "h.invalid"));
    // CONNECT has no path.
    assert!(!matches(&c, "p", url("h.invalid:443"), "h.invalid"));
}

#[test]
fn dstdom_regex_matches_the_host() {
    let c = config("acl d dstdom_regex -i (^|\\.)ads\\. \\.doubleclick\\.net$\n");
    assert!(matches(&c, "d", url("http://ADS.x.invalid/"), "ads.x.invalid"));
    assert!(matches(&c, "d", url("http://a.doubleclick.net/"), "a.doubleclick.net"));
    assert!(!matches(&c, "d", url("http://roads.invalid/"), "roads.invalid"));
}

#[test]
fn a_bad_regex_is_an_error_with_its_line() {
    let e = errors("acl d url_regex (unclosed\n");
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].starts_with("acl.conf:2: invalid regular expression '(unclosed'"),
        "{e:?}"
    );
}

#[test]
fn header_acls_match_joined_values() {
    let c = config(
        "acl ua browser -i curl\nacl ct req_mime_type ^application/json\nacl xh req_header X-Team -i ^ops$ ^dev$\n",
    );
    let headers = [header("User-Agent", "CURL/8.0"), header("X-Team", "OPS")];
    let more = MoreFacts {
        request_headers: &headers,
        ..MoreFacts::default()
    };
    assert!(matches(&c, "ua", more, "h.invalid"));
    assert!(matches(&c, "xh", more, "h.invalid"));
    assert!(!matches(&c, "ct", more, "h.invalid"));
    let json = [header("Content-Type", "application/json; charset=utf-8")];
    let more = MoreFacts {
        request_headers: &json,
        ..MoreFacts::default()
    };
    assert!(matches(&c, "ct", more, "h.invalid"));
    assert!(!matches(&c, "ua", more, "h.invalid"));
}

#[test]
fn reply_acls_need_a_reply() {
    let c = config(
        "acl ok http_status 200-299 304\nacl err http_status 500-\nacl html rep_mime_type -i ^text/html\nacl none rep_mime_type ^$\nacl srv rep_header Server nginx\nacl r has response\n",
    );
    let headers = [header("Content-Type", "text/HTML"), header("Server", "nginx/1.25")];
    let reply = |status| MoreFacts {
        reply: Some(ReplyFacts {
            status,
            headers: &headers,
        }),
        ..MoreFacts::default()
    };
    assert!(matches(&c, "ok", reply(204), "h"));
    assert!(matches(&c, "ok", reply(304), "h"));
    assert!(!matches(&c, "ok", reply(302), "h"));
    assert!(matches(&c, "err", reply(503), "h"));
    assert!(matches(&c, "html", reply(200), "h"));
    assert!(matches(&c, "srv", reply(200), "h"));
    assert!(matches(&c, "r", reply(200), "h"));
    assert!(!matches(&c, "none", reply(200), "h"));
    let bare = MoreFacts {
        reply: Some(ReplyFacts {
            status: 200,
            headers: &[],
        }),
        ..MoreFacts::default()
    };
    assert!(
        matches(&c, "none", bare, "h"),
        "no Content-Type is matched as empty, as in Squid"
    );
    for acl in ["ok", "err", "html", "srv", "r"] {
        assert!(!matches(&c, acl, MoreFacts::default(), "h"), "{acl} without a reply");
    }
}

#[test]
fn time_checks_days_and_inclusive_minutes() {
    let c = config("acl work time MTWHF 08:00-17:30\nacl weekend time SA\nacl lunch time 12:00-13:00\n");
    let at = |weekday, h: u16, m: u16| MoreFacts {
        clock: Some(LocalClock {
            weekday,
            minute_of_day: h * 60 + m,
        }),
        ..MoreFacts::default()
    };
    assert!(matches(&c, "work", at(1, 8, 0), "h"));
    assert!(matches(&c, "work", at(5, 17, 30), "h"));
    assert!(!matches(&c, "work", at(5, 17, 31), "h"));
    assert!(!matches(&c, "work", at(0, 10, 0), "h"));
    assert!(matches(&c, "weekend", at(6, 23, 59), "h"));
    assert!(matches(&c, "weekend", at(0, 0, 0), "h"));
    assert!(!matches(&c, "weekend", at(3, 12, 0), "h"));
    assert!(matches(&c, "lunch", at(3, 12, 30), "h"));
    let e = errors("acl t time MTX\nacl u time 18:00-08:00\nacl v time 8-9\n");
    assert_eq!(e.len(), 3, "{e:?}");
    assert!(e[0].contains("not a list of days"), "{e:?}");
    assert!(e[1].contains("reversed"), "{e:?}");
    assert!(e[2].contains("not a time range"), "{e:?}");
}

#[test]
fn myip_maxconn_and_port_name() {
    let c = config(
        "acl me myip 127.0.67.1 10.0.0.0/8\nacl me2 localip ::1\nacl many maxconn 2\nacl pn myportname office\n",
    );
    let local = |ip: &str| MoreFacts {
        local_ip: Some(ip.parse::<IpAddr>().unwrap()),
        ..MoreFacts::default()
    };
    assert!(matches(&c, "me", local("127.0.67.1"), "h"));
    assert!(matches(&c, "me", local("10.1.2.3"), "h"));
    assert!(!matches(&c, "me", local("127.0.67.2"), "h"));
    assert!(matches(&c, "me2", local("::1"), "h"));
    let conns = |n| MoreFacts {
        client_connections: n,
        ..MoreFacts::default()
    };
    assert!(!matches(&c, "many", conns(2), "h"));
    assert!(matches(&c, "many", conns(3), "h"));
    let named = MoreFacts {
        port_name: Some("office"),
        ..MoreFacts::default()
    };
    assert!(matches(&c, "pn", named, "h"));
    assert!(!errors("acl m maxconn lots\n").is_empty());
}

#[test]
fn to_linklocal_is_built_in_and_may_be_redefined() {
    let c = config("http_access deny to_linklocal\nhttp_access allow all\n");
    assert!(c.acls.index_of("to_linklocal").is_some());
    config("acl to_linklocal dst 169.254.0.0/16 fe80::/10\n");
    let c = config("acl to_linklocal dst 10.9.0.0/16\n");
    let index = c.acls.index_of("to_linklocal").unwrap();
    assert_eq!(
        c.acls.get(index).kind,
        crate::policy::AclKind::Dst(vec![crate::policy::IpMatch::Net("10.9.0.0/16".parse().unwrap())])
    );
}

#[test]
fn arp_is_rejected_with_what_to_use_instead() {
    let e = errors("acl mac arp 00:11:22:33:44:55\n");
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].contains("'arp' is not supported") && e[0].contains("'src'"),
        "{e:?}"
    );
}

#[test]
fn lint_takes_opaque_acls_at_their_worst() {
    // `allow` with a time ACL may match; `deny` with a regex ACL may not.
    let c = config(
        "acl work time 08:00-17:00\nacl bad url_regex evil\nhttp_access deny bad\nhttp_access allow work\nhttp_access deny all\n",
    );
    let facts = RequestFacts {
        client: "203.0.113.9".parse().unwrap(),
        method: "CONNECT",
        proto: "AUTHORITY",
        host: "x.invalid",
        port: 443,
        path: "",
        dst_addrs: &[],
        host_aliases: &[],
        local_port: 3128,
        user: None,
        more: MoreFacts {
            worst_case: true,
            ..MoreFacts::default()
        },
    };
    assert!(c.http_access.allows(&c.acls, &facts, crate::policy::Action::Deny));
}

#[test]
fn header_access_lines_build_per_name_lists_with_replacements() {
    let c = config(
        "acl lan src 127.0.67.0/24\nrequest_header_access User-Agent deny lan\nrequest_header_replace User-Agent Generic Browser/1.0\nrequest_header_access Other deny all\nrequest_header_access Via allow all\nrequest_header_access All deny !lan\nreply_header_access Server deny all\n",
    );
    let facts = RequestFacts {
        client: "127.0.67.2".parse().unwrap(),
        method: "GET",
        proto: "HTTP",
        host: "h.invalid",
        port: 80,
        path: "/",
        dst_addrs: &[],
        host_aliases: &[],
        local_port: 3128,
        user: None,
        more: MoreFacts::default(),
    };
    let filter = c.request_header_access.filter(&c.acls, &facts);
    let mut head = b"GET / HTTP/1.1\r\n".to_vec();
    head.extend_from_slice(b"Host: h.invalid\r\nUser-Agent: curl/8\r\nX-Internal: 1\r\nVia: 1.1 a\r\n");
    filter.apply(&mut head, 16);
    assert_eq!(
        String::from_utf8(head).unwrap(),
        "GET / HTTP/1.1\r\nHost: h.invalid\r\nUser-Agent: Generic Browser/1.0\r\nVia: 1.1 a\r\n"
    );
    assert!(!c.reply_header_access.is_empty());
    assert!(errors("request_header_access Via maybe all\n")[0].contains("neither 'allow' nor 'deny'"));
}

/// `ssl::server_name` sees the SNI once read, else the CONNECT host; `at_step` matches only in
/// an `ssl_bump` check; the rules take the first line possible at the step, default splice.
#[test]
fn server_name_and_steps_in_ssl_bump() {
    use crate::policy::{BumpAction, TlsFacts};
    let c = config(
        "http_port 3129 ssl-bump\nacl step1 at_step SslBump1\nacl step3 at_step SslBump3\n\
         acl ok ssl::server_name .Allowed.invalid\nacl re ssl::server_name_regex -i ^API\\.\n\
         ssl_bump peek step1\nssl_bump peek all\nssl_bump splice ok\nssl_bump terminate re\nhttp_access deny all\n",
    );
    let tls = |step, sni| MoreFacts {
        tls: Some(TlsFacts { step, sni }),
        ..MoreFacts::default()
    };
    assert!(
        matches(&c, "ok", MoreFacts::default(), "www.allowed.invalid"),
        "CONNECT host"
    );
    assert!(
        !matches(&c, "ok", tls(2, Some("evil.invalid")), "www.allowed.invalid"),
        "the SNI wins"
    );
    assert!(
        matches(&c, "ok", tls(2, None), "www.allowed.invalid"),
        "no SNI: the CONNECT host"
    );
    assert!(matches(&c, "re", tls(2, Some("api.x.invalid")), "h.invalid"));
    assert!(
        !matches(&c, "step1", MoreFacts::default(), "h.invalid"),
        "outside ssl_bump"
    );
    assert!(matches(&c, "step1", tls(1, None), "h.invalid"));

    let rules = &c.tunnel_rules;
    let facts = |host| RequestFacts {
        client: "127.0.67.2".parse().unwrap(),
        method: "CONNECT",
        proto: "AUTHORITY",
        host,
        port: 443,
        path: "",
        dst_addrs: &[],
        host_aliases: &[],
        local_port: 3129,
        user: None,
        more: MoreFacts::default(),
    };
    let decide = |host, step, sni| rules.decide(&c.acls, &facts(host), TlsFacts { step, sni }).action;
    assert_eq!(decide("h.invalid", 1, None), BumpAction::Peek);
    // Step 2 peeks again ("peek all"); at step 3 peek is impossible, so the rules go on.
    assert_eq!(decide("h.invalid", 2, Some("www.allowed.invalid")), BumpAction::Peek);
    assert_eq!(decide("h.invalid", 3, Some("www.allowed.invalid")), BumpAction::Splice);
    assert_eq!(decide("h.invalid", 3, Some("api.evil.invalid")), BumpAction::Terminate);
    assert_eq!(
        decide("h.invalid", 3, Some("other.invalid")),
        BumpAction::Splice,
        "no match splices"
    );
}

//! `needs_user` and `challenge_on_deny` against Squid's lazy `proxy_auth` evaluation.

use std::net::IpAddr;
use std::path::Path;

use super::*;
use crate::config::parse_str;

fn config(rules: &str) -> Config {
    let text = format!(
        "http_port 3128\nauth_param basic program /usr/lib/squid/basic_ncsa_auth /dev/null\n\
         acl users proxy_auth REQUIRED\nacl admins proxy_auth alice\nacl lan src 10.0.0.0/8\n{rules}\n"
    );
    match parse_str(&text, Path::new("t.conf")) {
        Ok(loaded) => loaded.config,
        Err(diags) => panic!("{rules}: {diags:#?}"),
    }
}

fn facts(client: &str) -> RequestFacts<'static> {
    RequestFacts {
        client: client.parse::<IpAddr>().unwrap(),
        method: "CONNECT",
        proto: "AUTHORITY",
        host: "example.com",
        port: 443,
        path: "",
        dst_addrs: &[],
        host_aliases: &[],
        local_port: 3128,
        user: None,
        more: crate::policy::MoreFacts::default(),
    }
}

#[test]
fn credentials_are_needed_only_when_a_proxy_auth_acl_is_reached() {
    let cases: &[(&str, &str, bool)] = &[
        ("http_access allow users\nhttp_access deny all", "192.0.2.1", true),
        // An earlier rule decides without a user: local clients are not challenged.
        (
            "http_access allow localhost\nhttp_access allow users\nhttp_access deny all",
            "127.0.0.1",
            false,
        ),
        (
            "http_access allow localhost\nhttp_access allow users\nhttp_access deny all",
            "192.0.2.1",
            true,
        ),
        // AND stops at the first ACL that does not match: the proxy_auth ACL is never reached.
        ("http_access allow lan users\nhttp_access deny all", "192.0.2.1", false),
        ("http_access allow lan users\nhttp_access deny all", "10.1.2.3", true),
        ("http_access deny !users\nhttp_access allow all", "192.0.2.1", true),
        ("http_access deny all\nhttp_access allow users", "192.0.2.1", false),
    ];
    for (rules, client, expected) in cases {
        let config = config(rules);
        assert_eq!(
            needs_user(&config.http_access, &config.acls, &facts(client)),
            *expected,
            "{rules} from {client}"
        );
    }
}

#[test]
fn a_deny_by_a_proxy_auth_acl_challenges_again() {
    let config = config("http_access deny !admins\nhttp_access deny lan all\nhttp_access allow all");
    let rules = &config.http_access.rules;
    assert!(challenge_on_deny(&rules[0], &config.acls));
    assert!(!challenge_on_deny(&rules[1], &config.acls));
}

//! Differential test of squid.conf dialect features: the same rules run by a real Squid 5.7
//! and by hopproxy, one hop each, going direct to an origin that echoes the request head it
//! received. Compared: what the origin received (header rules), what the client received
//! (reply header rules), and the decisions of regex, header, time and `myip` ACLs.
//!
//! Block 127.0.67.0/24: client .5, Squid on .1, hopproxy on .2, the echo origin on .20.

mod common;

use std::net::{IpAddr, SocketAddr};

use common::Hop;
use common::origin::echo_origin;
use hopproxy::lab::process::free_port;
use hopproxy::lab::squid::{Squid, squid_binary};

fn ip(host: u8) -> IpAddr {
    IpAddr::from([127, 0, 67, host])
}

/// Rules both proxies run. `myip` names hopproxy's and Squid's own listening addresses, so
/// it matches on both; `time` spans the whole day; the regexes decide.
fn rules() -> String {
    format!(
        "acl lan src 127.0.67.0/24
acl me myip {} {}
acl always time SMTWHFA 00:00-24:00
acl secret url_regex -i /SECRET
acl private urlpath_regex ^/private/
acl blocked dstdom_regex ^127\\.0\\.67\\.2[0-9]$ +i
acl team req_header X-Team -i ^OPS$
acl bot browser -i crawler
http_access deny secret
http_access deny private !team
http_access deny bot
http_access allow lan me always
http_access deny all
request_header_access Referer deny all
request_header_access User-Agent deny all
request_header_replace User-Agent Generic/1.0
request_header_access X-Keep allow all
request_header_access Other deny all
reply_header_access Content-Type deny all
forwarded_for delete
via off",
        ip(1),
        ip(2)
    )
}

struct Answer {
    status: String,
    head: String,
    body: String,
}

fn get(proxy: SocketAddr, url: &str, extra: &str) -> Answer {
    use std::io::{Read, Write};
    let mut stream = common::connect_from(ip(5), proxy);
    let request = format!(
        "GET {url} HTTP/1.1\r\nHost: {}\r\nUser-Agent: curl/8.0\r\nReferer: http://r.invalid/\r\nX-Keep: yes\r\nX-Other: gone\r\n{extra}Connection: close\r\n\r\n",
        url.split('/').nth(2).unwrap()
    );
    stream.write_all(request.as_bytes()).unwrap();
    let mut out = Vec::new();
    let _ = stream.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    Answer {
        status: head
            .lines()
            .next()
            .unwrap_or("")
            .split(' ')
            .nth(1)
            .unwrap_or("")
            .to_string(),
        head: head.to_string(),
        body: body.to_string(),
    }
}

/// The fields of an echoed request head this test's rules are about, sorted (Squid writes
/// `Host` last; field order is not what the rules decide).
fn fields_of_interest(echoed: &str) -> Vec<String> {
    let interesting = [
        "host",
        "user-agent",
        "referer",
        "x-keep",
        "x-other",
        "x-team",
        "x-forwarded-for",
        "via",
    ];
    echoed
        .lines()
        .filter(|l| {
            l.split_once(':')
                .is_some_and(|(n, _)| interesting.contains(&n.trim().to_ascii_lowercase().as_str()))
        })
        .map(str::to_string)
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect()
}

#[test]
fn header_rules_and_acl_decisions_agree_with_squid() {
    if squid_binary().is_err() {
        common::skip("squid is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let origin = echo_origin(SocketAddr::new(ip(20), 0));
    let squid_addr = SocketAddr::new(ip(1), free_port(ip(1)).unwrap());
    let hop_addr = SocketAddr::new(ip(2), free_port(ip(2)).unwrap());
    let mut squid = Squid::start("dialect.squid", squid_addr, &rules(), dir.path()).unwrap_or_else(|e| panic!("{e}"));
    let hop = Hop::start(
        "dialect-hop",
        dir.path(),
        hop_addr,
        &common::hop_config(dir.path(), "dialect-hop", &hop_addr.to_string(), &rules()),
    );
    let base = format!("http://{}", origin.addr);
    let cases: Vec<(String, &str)> = vec![
        (format!("{base}/plain"), ""),
        (format!("{base}/a/secret.txt"), ""),
        (format!("{base}/private/x"), ""),
        (format!("{base}/private/x"), "X-Team: ops\r\n"),
        (format!("{base}/ok"), "X-Team: dev\r\n"),
    ];
    for (url, extra) in &cases {
        let from_squid = get(squid_addr, url, extra);
        let from_hop = get(hop_addr, url, extra);
        assert_eq!(from_squid.status, from_hop.status, "{url} {extra:?}: status");
        if from_squid.status == "200" {
            assert_eq!(
                fields_of_interest(&from_squid.body),
                fields_of_interest(&from_hop.body),
                "{url} {extra:?}: what the origin received"
            );
            assert_eq!(
                common::header(&from_squid.head, "content-type"),
                common::header(&from_hop.head, "content-type"),
                "{url}: reply_header_access Content-Type"
            );
        }
    }
    // A crawler is denied by `browser` in both.
    let stream_ua = |proxy| {
        use std::io::{Read, Write};
        let mut s = common::connect_from(ip(5), proxy);
        let request = format!(
            "GET {base}/ HTTP/1.1\r\nHost: {}\r\nUser-Agent: SomeCrawler/2\r\nConnection: close\r\n\r\n",
            origin.addr
        );
        s.write_all(request.as_bytes()).unwrap();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        String::from_utf8_lossy(&out).lines().next().unwrap_or("").to_string()
    };
    assert_eq!(stream_ua(squid_addr), stream_ua(hop_addr));
    squid.stop();
    drop(hop);
}

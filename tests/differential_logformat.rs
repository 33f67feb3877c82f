//! Differential test of access-log formats and `http_reply_access`: the same config run by a
//! real Squid 5.7 and by hopproxy, one hop each, going direct to a small origin; the same
//! requests through both; their log lines compared field by field, for the built-in formats
//! and a custom format with many codes and modifiers.
//!
//! Fields not compared, because they differ by nature: times and elapsed (`%ts %tu %tr %tl`),
//! the client's ephemeral port (`%>p`), the proxy's own address (`%>la %>lp`, checked against
//! each proxy's listener instead), the bytes and type of what the proxy itself writes
//! (`%<st %st %mt` and `%{Content-Type}<h`: Squid's reply heads carry its own fields, its
//! error pages are HTML). Squid also appends all request and reply headers to its built-in
//! lines once any format uses a header code; that tail is cut off before comparing
//! (docs/logformat.md).
//!
//! Block 127.0.75.0/24: client .5, Squid on .1, hopproxy on .2, the origin on .20.

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::{Duration, Instant};

use common::Hop;
use common::origin::{Act, scripted};
use hopproxy::lab::process::free_port;
use hopproxy::lab::squid::{Squid, squid_binary};

fn ip(host: u8) -> IpAddr {
    IpAddr::from([127, 0, 75, host])
}

/// Many codes and modifiers, `name=value` fields separated by `|`, and a trailing comment
/// that Squid keeps as part of the format.
const MANY: &str = "A=%>a|AA=%>A|la=%>la|lp=%lp|sa=%<a|sp=%<p|ts=%ts|tu=%03tu|tr=%6tr|Ss=%Ss|Sh=%Sh|\
sHs=%03>Hs|rHs=%<Hs|sst=%<st|rst=%>st|st=%st|rm=%rm|ru=%ru|cru=%>ru|rp=%>rp|rv=%rv|un=%un|ul=%ul|\
ue=%ue|mt=%mt|ua=%{User-Agent}>h|qua=%\"{User-Agent}>h|bua=%[{User-Agent}>h|hua=%#{User-Agent}>h|\
rua=%'{User-Agent}>h|sua=%/{User-Agent}>h|ct=%{Content-Type}<h|x=%{X-Multi}>h|xe=%{X-Multi:;b}>h|\
note=%note|pct=%%|w=%-10.3{User-Agent}>h|wr=%10.3{User-Agent}>h|hx=%{Nope}>h|year=%{%Y}tg|\
rd=%>rd|rP=%>rP|rs=%>rs|ref=%{Referer}>h # trailing";

/// Fields of [`MANY`] that are not compared, and why (see the module comment).
const NOT_COMPARED: &[&str] = &["ts", "tu", "tr", "la", "lp", "sst", "st", "mt", "ct"];

const BUILTINS: &[&str] = &["squid", "common", "combined", "referrer", "useragent"];

fn rules(log_dir: &Path) -> String {
    let mut text = format!(
        "acl lan src 127.0.75.0/24
acl missing http_status 404
http_reply_access deny missing
http_reply_access allow all
http_access allow lan
http_access deny all
logformat many {MANY}
access_log stdio:{}/many.log many
",
        log_dir.display()
    );
    for name in BUILTINS.iter().filter(|n| **n != "squid") {
        text.push_str(&format!("access_log stdio:{}/{name}.log {name}\n", log_dir.display()));
    }
    text
}

/// The origin: `/missing` is a 404 (which `http_reply_access` refuses), anything else a 200.
fn origin() -> common::origin::Scripted {
    scripted(SocketAddr::new(ip(20), 0), |received| {
        if received.head.starts_with("GET /missing") {
            Act::Reply(
                b"HTTP/1.1 404 Not Found\r\nContent-Type: text/html\r\nContent-Length: 9\r\n\r\nnot here\n".to_vec(),
            )
        } else {
            Act::Reply(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 6\r\n\r\nhello\n".to_vec())
        }
    })
}

/// Sends `request` from the client address and returns the status of the answer, reading
/// until the proxy closes (a CONNECT: until the tunnel ends after our half-close).
fn send(proxy: SocketAddr, request: &str) -> String {
    let mut stream = common::connect_from(ip(5), proxy);
    stream.write_all(request.as_bytes()).unwrap();
    if request.starts_with("CONNECT") {
        let mut head = [0u8; 64];
        let n = stream.read(&mut head).unwrap_or(0);
        let _ = stream.shutdown(std::net::Shutdown::Write);
        let mut rest = Vec::new();
        let _ = stream.read_to_end(&mut rest);
        return status_of(&String::from_utf8_lossy(&head[..n]));
    }
    let mut out = Vec::new();
    let _ = stream.read_to_end(&mut out);
    status_of(&String::from_utf8_lossy(&out))
}

fn status_of(text: &str) -> String {
    text.split(' ').nth(1).unwrap_or("").to_string()
}

/// Waits (bounded) until `path` has `count` lines from the test's client. (The lab's start-up
/// probe of Squid's port is logged too, from 127.0.0.1.)
fn lines_of(path: &Path, count: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let client = ip(5).to_string();
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<String> = text
            .lines()
            .filter(|l| l.split([' ', '|', '=']).any(|w| w == client))
            .map(str::to_string)
            .collect();
        if lines.len() >= count {
            return lines;
        }
        assert!(
            Instant::now() < deadline,
            "{}: wanted {count} lines within 10 s, got {lines:#?}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn fields(line: &str) -> BTreeMap<String, String> {
    let line = line
        .strip_suffix(" # trailing")
        .unwrap_or_else(|| panic!("the trailing comment is kept: {line}"));
    line.split('|')
        .map(|f| {
            let (k, v) = f.split_once('=').unwrap_or_else(|| panic!("field {f:?} in {line}"));
            (k.to_string(), v.to_string())
        })
        .collect()
}

/// A built-in line with what is not compared blanked: times, elapsed, bytes, and the type of
/// our error pages; Squid's header tail cut off.
fn comparable(format: &str, line: &str, status: &str) -> String {
    let line = match line.find(" [") {
        Some(at) if line.ends_with(']') && line[at..].contains("\\r\\n") => {
            // The header tail starts at the " [" before the first escaped CRLF.
            let first_crlf = line.find("\\r\\n").unwrap();
            let start = line[..first_crlf].rfind(" [").unwrap();
            &line[..start]
        }
        _ => line,
    };
    let mut words: Vec<String> = line.split(' ').map(str::to_string).collect();
    match format {
        "squid" => {
            words.retain(|w| !w.is_empty());
            words[0] = "T".into();
            words[1] = "E".into();
            words[4] = "B".into();
            if status != "200" {
                words[9] = "M".into();
            }
        }
        "referrer" => words[0] = "T".into(),
        _ => {
            let open = words.iter().position(|w| w.starts_with('[')).unwrap();
            words[open] = "[T".into();
            words[open + 1] = "Z]".into();
            if format != "useragent" {
                // "%>Hs %<st": the bytes of the heads and error pages differ.
                let at = words.iter().position(|w| w == status).unwrap();
                words[at + 1] = "B".into();
            }
        }
    }
    words.join(" ")
}

#[test]
fn log_formats_and_reply_access_agree_with_squid() {
    if squid_binary().is_err() {
        common::skip("squid is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let origin = origin();
    let squid_addr = SocketAddr::new(ip(1), free_port(ip(1)).unwrap());
    let hop_addr = SocketAddr::new(ip(2), free_port(ip(2)).unwrap());
    let squid_dir = dir.path().join("logformat.squid");
    let hop_dir = dir.path().join("hop-logs");
    std::fs::create_dir_all(&hop_dir).unwrap();
    let mut squid =
        Squid::start("logformat.squid", squid_addr, &rules(&squid_dir), dir.path()).unwrap_or_else(|e| panic!("{e}"));
    let hop = Hop::start(
        "logformat-hop",
        dir.path(),
        hop_addr,
        &common::hop_config(dir.path(), "logformat-hop", &hop_addr.to_string(), &rules(&hop_dir)),
    );
    let base = format!("http://{}", origin.server.addr);
    let agent = r#"Mozilla/5.0 (X11; "q") \x"#;
    let requests = [
        format!(
            "GET {base}/a.txt?q=1 HTTP/1.1\r\nHost: {}\r\nUser-Agent: {agent}\r\nReferer: http://ref.invalid/x\r\n\
             X-Multi: a=1;b=2\r\nX-Multi: b=3\r\nConnection: close\r\n\r\n",
            origin.server.addr
        ),
        format!(
            "GET {base}/missing HTTP/1.1\r\nHost: {}\r\nUser-Agent: t/1\r\nConnection: close\r\n\r\n",
            origin.server.addr
        ),
        format!(
            "CONNECT {0} HTTP/1.1\r\nHost: {0}\r\nUser-Agent: t/1\r\n\r\n",
            origin.server.addr
        ),
    ];
    let mut statuses = Vec::new();
    for request in &requests {
        let from_squid = send(squid_addr, request);
        let from_hop = send(hop_addr, request);
        assert_eq!(from_squid, from_hop, "status for {request:?}");
        statuses.push(from_hop);
    }
    assert_eq!(statuses, ["200", "403", "200"]);

    let count = requests.len();
    let squid_many = lines_of(&squid_dir.join("many.log"), count);
    let hop_many = lines_of(&hop_dir.join("many.log"), count);
    for (index, (s, h)) in squid_many.iter().zip(&hop_many).enumerate() {
        let (s, h) = (fields(s), fields(h));
        assert_eq!(
            s.keys().collect::<Vec<_>>(),
            h.keys().collect::<Vec<_>>(),
            "line {index}"
        );
        for (key, squid_value) in &s {
            if NOT_COMPARED.contains(&key.as_str()) {
                continue;
            }
            assert_eq!(
                squid_value, &h[key],
                "request {index}, field {key}:\nsquid: {s:?}\nhop:   {h:?}"
            );
        }
        assert_eq!(h["la"], hop_addr.ip().to_string());
        assert_eq!(h["lp"], hop_addr.port().to_string());
        assert_eq!(s["lp"], squid_addr.port().to_string());
        assert_eq!(h["tr"].len(), 6, "%6tr is padded: {h:?}");
    }
    let denied = fields(&hop_many[1]);
    assert_eq!(
        (denied["Ss"].as_str(), denied["sHs"].as_str(), denied["rHs"].as_str()),
        ("TCP_DENIED_REPLY", "403", "404")
    );

    for format in BUILTINS {
        let squid_path = if *format == "squid" {
            squid.access_log.clone()
        } else {
            squid_dir.join(format!("{format}.log"))
        };
        let hop_path = if *format == "squid" {
            Hop::log_path(dir.path(), "logformat-hop")
        } else {
            hop_dir.join(format!("{format}.log"))
        };
        let squid_lines = lines_of(&squid_path, count);
        let hop_lines = lines_of(&hop_path, count);
        for (index, (s, h)) in squid_lines.iter().zip(&hop_lines).enumerate() {
            assert_eq!(
                comparable(format, s, &statuses[index]),
                comparable(format, h, &statuses[index]),
                "{format} line {index}:\nsquid: {s}\nhop:   {h}"
            );
        }
    }
    // Every code of the custom format has a value in hopproxy: no "always '-'" warning.
    let stderr = hop.stderr_text();
    assert!(!stderr.contains("logformat"), "{stderr}");
    squid.stop();
}

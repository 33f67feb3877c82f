//! Differential test: the same squid.conf policy run by a real Squid 5.7 and by
//! hopproxy, each a single hop going direct to local origins, fed the same generated matrix
//! of requests (sources × methods × hosts × ports, CONNECT and plain HTTP). For every case the
//! status the client got and the result code each one logged (`TCP_DENIED/403`,
//! `TCP_TUNNEL/200`, `TCP_MISS/200`, `NONE_NONE/503`, …) must agree, or the difference must
//! be one of the deliberate differences listed in README.md ("Where hopproxy deliberately
//! differs from Squid"): exactly the expected ones, counted per config (see [`deliberate`] and
//! [`EXPECTED_DELIBERATE`]). A case where either proxy gave no reply at all (timeout, reset, no
//! status line) is a failure, never an agreement.
//!
//! Block 127.0.46.0/24: clients .5 (the agent), .6, .9, .11; Squid on .100+i, hopproxy on
//! .120+i for config i; origins .20 (the SaaS name and the IP literal), .21
//! (`www.example.com`), .22 (`example.org`), .23 (an IP literal only DNS names), each
//! answering HTTP on 80, 443 and 8443; 8451 is closed; a DNS stub on .53 answers NXDOMAIN
//! except one PTR (Squid's lookups stay on the machine).

mod common;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{ENDPOINT_NAME, Hop, parse_log_line};
use hopproxy::lab::process::free_port;
use hopproxy::lab::squid::Squid;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const BLOCK: u8 = 46;
const SOURCES: [u8; 4] = [5, 6, 9, 11];
const PLAIN_METHODS: [&str; 6] = ["GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS"];
const OPEN_PORTS: [u16; 3] = [80, 443, 8443];
const CLOSED_PORT: u16 = 8451;
const PORTS: [u16; 4] = [443, 80, 8443, CLOSED_PORT];
/// Requests in flight per proxy.
const PARALLEL: usize = 12;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(8);

fn ip(host: u8) -> IpAddr {
    IpAddr::from([127, 0, BLOCK, host])
}

/// The hosts of the matrix and where hosts_file puts them.
fn hosts() -> Vec<(String, IpAddr)> {
    vec![
        (ENDPOINT_NAME.to_string(), ip(20)),
        ("www.example.com".to_string(), ip(21)),
        ("example.org".to_string(), ip(22)),
        // An IP literal that hosts_file maps back to the SaaS name (dstdomain matches it in
        // both: Squid by its reverse lookup, which reads hosts_file; hopproxy by the alias).
        (ip(20).to_string(), ip(20)),
        // Case and a trailing dot do not matter to dstdomain, and are normalized in the log
        // (docs/squid-behaviour.md 4 and 5).
        ("WWW.Example.COM".to_string(), ip(21)),
        ("www.example.com.".to_string(), ip(21)),
        // An IP literal that only DNS names (PTR `ptr-only.example.com` from the stub); hosts_file
        // does not know it. Squid's dstdomain sees the name, hopproxy's does not (deliberate).
        (ip(23).to_string(), ip(23)),
    ]
}

/// One request of the matrix.
#[derive(Debug, Clone)]
struct Case {
    id: usize,
    source: IpAddr,
    method: &'static str,
    host: String,
    port: u16,
}

impl Case {
    fn request(&self) -> Vec<u8> {
        let authority = format!("{}:{}", self.host, self.port);
        if self.method == "CONNECT" {
            return format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n").into_bytes();
        }
        let body = if matches!(self.method, "POST" | "PUT") {
            "Content-Length: 4\r\n\r\nbody"
        } else {
            "\r\n"
        };
        format!(
            "{} http://{authority}/case/{} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n{body}",
            self.method, self.id
        )
        .into_bytes()
    }

    fn describe(&self) -> String {
        format!("{} {} {}:{}", self.source, self.method, self.host, self.port)
    }
}

/// Sources × hosts × ports, each with CONNECT and one plain method (rotating, so every
/// method meets every source, host and port somewhere in the matrix).
fn matrix() -> Vec<Case> {
    let mut cases = Vec::new();
    let mut rotate = 0usize;
    for source in SOURCES {
        for (host, _) in hosts() {
            for port in PORTS {
                for method in ["CONNECT", PLAIN_METHODS[rotate % PLAIN_METHODS.len()]] {
                    cases.push(Case {
                        id: cases.len(),
                        source: ip(source),
                        method,
                        host: host.clone(),
                        port,
                    });
                }
                rotate += 1;
            }
        }
    }
    cases
}

/// What one proxy did with one case.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Outcome {
    /// Status line code the client got.
    status: u16,
    /// The logged `%Ss/%03>Hs` field, or `-` when no line was logged.
    code: String,
    /// The logged URL, or `-`.
    url: String,
}

/// Sends one case from its source address and returns the status code of the reply, or why
/// there was none (an error, a timeout, or bytes that are not a status line).
async fn send(proxy: SocketAddr, case: &Case) -> Result<u16, String> {
    let mut received = Vec::new();
    let attempt = async {
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket.bind(SocketAddr::new(case.source, 0))?;
        let mut stream = socket.connect(proxy).await?;
        stream.write_all(&case.request()).await?;
        let mut buf = [0u8; 8192];
        loop {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            received.extend_from_slice(&buf[..n]);
            // A CONNECT reply is only its head; whatever follows belongs to the tunnel.
            if case.method == "CONNECT" && received.windows(4).any(|w| w == b"\r\n\r\n") {
                break;
            }
            if received.len() > 1 << 20 {
                break;
            }
        }
        Ok::<_, std::io::Error>(())
    };
    let done = tokio::time::timeout(REQUEST_TIMEOUT, attempt).await;
    let text = String::from_utf8_lossy(&received);
    match done {
        Err(_) => return Err(format!("no reply within {REQUEST_TIMEOUT:?} (got {text:?})")),
        Ok(Err(e)) => return Err(format!("{e} (got {text:?})")),
        Ok(Ok(())) => {}
    }
    text.strip_prefix("HTTP/1.1 ")
        .or_else(|| text.strip_prefix("HTTP/1.0 "))
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("no status line in {text:?}"))
}

/// Runs every case against `proxy`, `PARALLEL` at a time; replies in case order.
fn run_cases(proxy: SocketAddr, cases: &[Case]) -> Vec<Result<u16, String>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let limit = Arc::new(tokio::sync::Semaphore::new(PARALLEL));
        let mut set = tokio::task::JoinSet::new();
        for (index, case) in cases.iter().cloned().enumerate() {
            let limit = Arc::clone(&limit);
            set.spawn(async move {
                let _permit = limit.acquire_owned().await.unwrap();
                (index, send(proxy, &case).await)
            });
        }
        let mut statuses = vec![Err("not run".to_string()); cases.len()];
        while let Some(done) = set.join_next().await {
            let (index, status) = done.unwrap();
            statuses[index] = status;
        }
        statuses
    })
}

/// The log key of a case: CONNECT lines by client and `host:port`, others by `/case/ID`.
fn log_key_of_case(case: &Case) -> String {
    if case.method == "CONNECT" {
        let host = case.host.trim_end_matches('.').to_ascii_lowercase();
        format!("{} CONNECT {host}:{}", case.source, case.port)
    } else {
        format!("case/{}", case.id)
    }
}

fn log_key_of_line(client: &str, method: &str, url: &str) -> String {
    match (method, url.rsplit_once("/case/")) {
        ("CONNECT", _) => format!("{client} CONNECT {url}"),
        (_, Some((_, id))) => format!("case/{id}"),
        _ => format!("{client} {method} {url}"),
    }
}

/// Reads an access log until it has `count` records (bounded), keyed by [`log_key_of_line`].
/// Squid's records of the harness's readiness probes (from 127.0.0.1, no bytes) are skipped.
fn read_log(path: &Path, count: usize) -> HashMap<String, Vec<(String, String)>> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| {
                !(l.contains(" 127.0.0.1 NONE_NONE/000 0 ") && l.contains("error:transaction-end-before-headers"))
            })
            .collect();
        if lines.len() >= count || Instant::now() > deadline {
            let mut map: HashMap<String, Vec<(String, String)>> = HashMap::new();
            for line in lines {
                let l = parse_log_line(line);
                let key = log_key_of_line(&l.client, &l.method, &l.url);
                map.entry(key).or_default().push((l.code, l.url));
            }
            return map;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Takes the log record for a case. CONNECT cases whose hosts normalize alike
/// (`WWW.Example.COM`, `www.example.com.`) share a key; among those records the one whose
/// status is the one the client saw is taken, so each case gets its own line.
fn take_line(log: &mut HashMap<String, Vec<(String, String)>>, key: &str, status: u16) -> (String, String) {
    let missing = ("-".to_string(), "-".to_string());
    let Some(lines) = log.get_mut(key) else {
        return missing;
    };
    let suffix = format!("/{status:03}");
    let index = lines.iter().position(|(code, _)| code.ends_with(&suffix)).unwrap_or(0);
    if lines.is_empty() { missing } else { lines.remove(index) }
}

/// A config fixture with the example network moved into this block and the lines the
/// harness sets itself (port, log, peers) dropped: every config runs as a single hop.
fn policy(fixture: &str) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let text = std::fs::read_to_string(root.join(fixture)).unwrap();
    let mut out = String::new();
    for line in text.lines() {
        let skip = [
            "http_port ",
            "access_log ",
            "cache_peer ",
            "never_direct ",
            "visible_hostname ",
        ];
        if skip.iter().any(|p| line.starts_with(p)) {
            continue;
        }
        let line = line
            .replace("10.1.0.", &format!("127.0.{BLOCK}."))
            .replace("127.0.0.5", &ip(5).to_string())
            .replace("127.0.0.11", &ip(11).to_string());
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// A difference Squid and hopproxy are known and meant to have, with the reason (the first
/// row of the table in README.md, "Where hopproxy deliberately differs from Squid"; the
/// matrix shows no other row). `None`: a real disagreement.
///
/// Only its exact shape is excused: on the IP literal that only DNS names (PTR), one proxy
/// denied with a 403 what the other let through, for the same URL. Squid's dstdomain sees
/// the PTR name and hopproxy's does not, so a rule allowing that domain lets only Squid
/// through, and a negated one (`!example`) only hopproxy. How many of each a config must show
/// is fixed in [`EXPECTED_DELIBERATE`].
fn deliberate(case: &Case, squid: &Outcome, hop: &Outcome) -> Option<&'static str> {
    let denied = |o: &Outcome| o.status == 403 && o.code == "TCP_DENIED/403";
    let through = |o: &Outcome| o.status != 403 && !o.code.starts_with("TCP_DENIED/") && o.code != "-";
    if case.host != ptr_only_ip().to_string() || squid.url != hop.url {
        return None;
    }
    if through(squid) && denied(hop) {
        Some(PTR_ALLOWS_SQUID_ONLY)
    } else if denied(squid) && through(hop) {
        Some(PTR_NEGATION_LETS_HOP_THROUGH)
    } else {
        None
    }
}

/// dstdomain on an IP literal, as an allow rule.
const PTR_ALLOWS_SQUID_ONLY: &str = "dstdomain on an IP literal (PTR name in an allowed domain): \
     Squid allows by the reverse-lookup name, hopproxy does no reverse DNS and denies";
/// dstdomain on an IP literal, negated in an allow rule.
const PTR_NEGATION_LETS_HOP_THROUGH: &str = "dstdomain on an IP literal (PTR name in a negated domain): \
     Squid's `!domain` fails on the reverse-lookup name and it denies, hopproxy's holds and it allows";

/// Deliberate differences per config: (config, [`PTR_ALLOWS_SQUID_ONLY`] cases,
/// [`PTR_NEGATION_LETS_HOP_THROUGH`] cases). Only `domains-methods` names a domain the PTR
/// name falls in (`.example.com`): `allow example readonly` lets Squid pass the GET and HEAD
/// cases to the PTR-only literal (5 in the matrix's method rotation), and `allow agent writes
/// !example` lets hopproxy pass the agent's POST and PUT to it (2). Every other config must
/// agree on every case.
const EXPECTED_DELIBERATE: [(&str, usize, usize); 6] = [
    ("seed-proxy1", 0, 0),
    ("seed-proxy2", 0, 0),
    ("debian-guarded", 0, 0),
    ("domains-methods", 5, 2),
    ("src-port-ranges", 0, 0),
    ("dst-proto", 0, 0),
];

fn ptr_only_ip() -> IpAddr {
    ip(23)
}

/// Per config: Squid and hopproxy on the same policy, the matrix against both, compared.
struct ConfigResult {
    name: String,
    cases: usize,
    agreements: usize,
    deliberate: Vec<(String, &'static str)>,
    disagreements: Vec<String>,
    /// How often Squid gave each `status code` pair, to show the matrix is not all one thing.
    squid_outcomes: HashMap<String, usize>,
}

fn run_config(index: usize, fixture: &str, dir: &Path, hosts_file: &Path, cases: &[Case]) -> ConfigResult {
    let name = Path::new(fixture).file_stem().unwrap().to_string_lossy().into_owned();
    let rules = policy(fixture);
    // Each proxy gets its own address: configs start in parallel, and two `free_port` calls
    // on one address may hand out the same just-released port.
    let (squid_ip, hop_ip) = (ip(100 + index as u8), ip(120 + index as u8));
    let squid_addr = SocketAddr::new(squid_ip, free_port(squid_ip).unwrap());
    let squid_rules = format!(
        "{rules}hosts_file {}\ndns_nameservers {}\ntcp_outgoing_address {}\n",
        hosts_file.display(),
        ip(53),
        squid_ip
    );
    let squid = Squid::start(&format!("squid{index}.lab"), squid_addr, &squid_rules, dir)
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    let hop_addr = SocketAddr::new(hop_ip, free_port(hop_ip).unwrap());
    let hop_name = format!("hop{index}");
    let hop_config = format!(
        "http_port {hop_addr}\n{rules}hosts_file {}\ntcp_outgoing_address {}\nvisible_hostname {hop_name}.lab\n\
         access_log stdio:{} squid\n",
        hosts_file.display(),
        hop_ip,
        Hop::log_path(dir, &hop_name).display()
    );
    let hop = Hop::start(&hop_name, dir, hop_addr, &hop_config);

    let (squid_status, hop_status) = std::thread::scope(|s| {
        let a = s.spawn(|| run_cases(squid_addr, cases));
        let b = s.spawn(|| run_cases(hop_addr, cases));
        (a.join().unwrap(), b.join().unwrap())
    });
    // Every case is logged by Squid; hopproxy too (each case sends bytes).
    let squid_log = read_log(&squid.access_log, cases.len());
    let hop_log = read_log(&hop.access_log, cases.len());

    let mut result = ConfigResult {
        name: name.clone(),
        cases: cases.len(),
        agreements: 0,
        deliberate: Vec::new(),
        disagreements: Vec::new(),
        squid_outcomes: HashMap::new(),
    };
    let (mut squid_log, mut hop_log) = (squid_log, hop_log);
    for (i, case) in cases.iter().enumerate() {
        // No reply from either side is a failure of the case, whatever the other did: two
        // timeouts are not an agreement.
        let (squid_status, hop_status) = match (&squid_status[i], &hop_status[i]) {
            (Ok(s), Ok(h)) => (*s, *h),
            (s, h) => {
                result.disagreements.push(format!(
                    "{name}: {}: no reply: squid {s:?} | hopproxy {h:?}",
                    case.describe()
                ));
                continue;
            }
        };
        let key = log_key_of_case(case);
        let (s_code, s_url) = take_line(&mut squid_log, &key, squid_status);
        let (h_code, h_url) = take_line(&mut hop_log, &key, hop_status);
        let squid = Outcome {
            status: squid_status,
            code: s_code,
            url: s_url,
        };
        let hop = Outcome {
            status: hop_status,
            code: h_code,
            url: h_url,
        };
        *result
            .squid_outcomes
            .entry(format!("{} {}", squid.status, squid.code))
            .or_default() += 1;
        if squid == hop {
            result.agreements += 1;
        } else if let Some(reason) = deliberate(case, &squid, &hop) {
            result.deliberate.push((case.describe(), reason));
        } else {
            result.disagreements.push(format!(
                "{name}: {}: squid {} {} {} | hopproxy {} {} {}",
                case.describe(),
                squid.status,
                squid.code,
                squid.url,
                hop.status,
                hop.code,
                hop.url
            ));
        }
    }
    drop(hop);
    drop(squid);
    result
}

const CONFIGS: [&str; 6] = [
    "seed-proxy1.conf",
    "seed-proxy2.conf",
    "differential/debian-guarded.conf",
    "differential/domains-methods.conf",
    "differential/src-port-ranges.conf",
    "differential/dst-proto.conf",
];

#[test]
fn squid_and_hopproxy_agree_on_the_request_matrix() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let host_list = hosts();
    let names: Vec<(&str, IpAddr)> = host_list
        .iter()
        .filter(|(name, _)| {
            name.parse::<IpAddr>().is_err() && name == &name.to_ascii_lowercase() && !name.ends_with('.')
        })
        .map(|(name, addr)| (name.as_str(), *addr))
        .collect();
    let hosts_file = common::write_hosts(dir.path(), &names);
    let ptr = ptr_only_ip().to_string().split('.').rev().collect::<Vec<_>>().join(".");
    let _dns = hopproxy::lab::dns_stub::DnsStub::with_ptr(
        SocketAddr::new(ip(53), 53),
        vec![(format!("{ptr}.in-addr.arpa"), "ptr-only.example.com".into())],
    );
    let mut origins = Vec::new();
    for host in [20, 21, 22, 23] {
        for port in OPEN_PORTS {
            origins.push(common::origin::echo_origin(SocketAddr::new(ip(host), port)));
        }
        let closed = SocketAddr::new(ip(host), CLOSED_PORT);
        assert!(
            std::net::TcpStream::connect_timeout(&closed, Duration::from_secs(1)).is_err(),
            "{closed} must be closed for the matrix"
        );
    }
    let cases = matrix();

    let results: Vec<ConfigResult> = std::thread::scope(|s| {
        let handles: Vec<_> = CONFIGS
            .iter()
            .enumerate()
            .map(|(i, fixture)| {
                let (dir, hosts_file, cases) = (dir.path(), &hosts_file, &cases);
                s.spawn(move || run_config(i, fixture, dir, hosts_file, cases))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });

    let mut report = String::new();
    let (mut total, mut agree, mut deliberate_count) = (0, 0, 0);
    let mut by_reason: HashMap<&str, usize> = HashMap::new();
    let mut disagreements = Vec::new();
    for r in &results {
        let _ = writeln!(
            report,
            "  {:<18} {:>4} cases, {:>4} agree, {:>3} deliberate, {:>3} disagree",
            r.name,
            r.cases,
            r.agreements,
            r.deliberate.len(),
            r.disagreements.len()
        );
        let mut outcomes: Vec<_> = r.squid_outcomes.iter().collect();
        outcomes.sort();
        let _ = writeln!(report, "      squid outcomes: {outcomes:?}");
        total += r.cases;
        agree += r.agreements;
        deliberate_count += r.deliberate.len();
        for (_, reason) in &r.deliberate {
            *by_reason.entry(reason).or_default() += 1;
        }
        disagreements.extend(r.disagreements.iter().cloned());
    }
    for (reason, n) in &by_reason {
        let _ = writeln!(report, "  deliberate ({n}): {reason}");
    }
    eprintln!(
        "differential: {} configs, {total} cases, {agree} agreements, {deliberate_count} deliberate differences, \
         {} disagreements ({:.1} s)\n{report}",
        results.len(),
        disagreements.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(
        disagreements.is_empty(),
        "{} disagreements:\n{}",
        disagreements.len(),
        disagreements.join("\n")
    );
    let count = |r: &ConfigResult, reason: &str| r.deliberate.iter().filter(|(_, why)| *why == reason).count();
    let deliberate_per_config: Vec<(&str, usize, usize)> = results
        .iter()
        .map(|r| {
            (
                r.name.as_str(),
                count(r, PTR_ALLOWS_SQUID_ONLY),
                count(r, PTR_NEGATION_LETS_HOP_THROUGH),
            )
        })
        .collect();
    assert_eq!(
        deliberate_per_config,
        EXPECTED_DELIBERATE,
        "deliberate differences per config (README.md quotes the total): {:#?}",
        results.iter().map(|r| &r.deliberate).collect::<Vec<_>>()
    );
    assert_eq!(total, 6 * 224, "the matrix changed size (README.md quotes it)");
    // The matrix must exercise every kind of outcome, not agree on one.
    let seen: std::collections::HashSet<&String> = results.iter().flat_map(|r| r.squid_outcomes.keys()).collect();
    for wanted in [
        "200 TCP_TUNNEL/200",
        "200 TCP_MISS/200",
        "403 TCP_DENIED/403",
        "503 NONE_NONE/503",
        "503 TCP_MISS/503",
    ] {
        assert!(seen.contains(&wanted.to_string()), "no case gave {wanted}: {seen:?}");
    }
}

/// Reads one reply (head and, when it has a Content-Length, its body); `None` on EOF or error
/// before a whole head.
fn read_reply(stream: &mut std::net::TcpStream) -> Option<String> {
    use std::io::Read;
    let received = common::read_head(stream);
    if !received.ends_with(b"\r\n\r\n") {
        return None;
    }
    let head = String::from_utf8_lossy(&received).into_owned();
    let length: usize = common::header(&head, "Content-Length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    stream.read_exact(&mut body).ok()?;
    Some(head)
}

/// The deliberate differences the matrix cannot show, each demonstrated against both proxies
/// on one policy (block 127.0.47.0/24). They are rows of the table in README.md ("Where
/// hopproxy deliberately differs from Squid"); if one stops holding, this test says which.
#[test]
fn deliberate_differences_hold() {
    use std::io::Write;
    let b = |host: u8| IpAddr::from([127, 0, 47, host]);
    let dir = tempfile::tempdir().unwrap();
    let hosts_file = common::write_hosts(dir.path(), &[("www.example.com", b(21)), ("example.org", b(22))]);
    // 127.0.47.23 has a PTR name (from DNS, not from hosts_file) inside the allowed domain.
    let _dns = hopproxy::lab::dns_stub::DnsStub::with_ptr(
        SocketAddr::new(b(53), 53),
        vec![("23.47.0.127.in-addr.arpa".into(), "ptr-only.example.com".into())],
    );
    let _origins: Vec<_> = [21, 23]
        .into_iter()
        .map(|h| common::origin::echo_origin(SocketAddr::new(b(h), 443)))
        .collect();
    let rules = "acl example dstdomain .example.com\nhttp_access allow example\nhttp_access deny all\n";
    let squid_addr = SocketAddr::new(b(1), free_port(b(1)).unwrap());
    let squid = Squid::start(
        "squid.lab",
        squid_addr,
        &format!(
            "{rules}hosts_file {}\ndns_nameservers {}\ntcp_outgoing_address {}\n",
            hosts_file.display(),
            b(53),
            b(1)
        ),
        dir.path(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let hop_addr = SocketAddr::new(b(2), free_port(b(2)).unwrap());
    let hop = Hop::start(
        "hop",
        dir.path(),
        hop_addr,
        &format!(
            "http_port {hop_addr}\n{rules}hosts_file {}\ntcp_outgoing_address {}\nvisible_hostname hop.lab\n\
             access_log stdio:{} squid\n",
            hosts_file.display(),
            b(2),
            Hop::log_path(dir.path(), "hop").display()
        ),
    );
    let client = b(5);
    let connect = |to: SocketAddr, target: &str| {
        let mut s = common::connect_from(client, to);
        s.write_all(format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n").as_bytes())
            .unwrap();
        let reply = read_reply(&mut s).unwrap_or_default();
        (s, reply)
    };

    // 1. dstdomain on an IP literal: Squid reverse-resolves it (PTR), hopproxy only uses
    //    hosts_file aliases (docs/squid-behaviour.md 5).
    let (_s, squid_ptr) = connect(squid_addr, "127.0.47.23:443");
    let (_h, hop_ptr) = connect(hop_addr, "127.0.47.23:443");
    assert!(squid_ptr.starts_with("HTTP/1.1 200 "), "{squid_ptr}");
    assert!(hop_ptr.starts_with("HTTP/1.1 403 "), "{hop_ptr}");
    drop((_s, _h));

    // 2. After an error reply Squid keeps the connection (a second request is answered);
    //    hopproxy closes it.
    let (mut s, first) = connect(squid_addr, "example.org:443");
    assert!(first.starts_with("HTTP/1.1 403 "), "{first}");
    s.write_all(b"CONNECT example.org:443 HTTP/1.1\r\nHost: example.org:443\r\n\r\n")
        .unwrap();
    let second = read_reply(&mut s).unwrap_or_default();
    assert!(second.starts_with("HTTP/1.1 403 "), "squid answers again: {second:?}");
    let (mut h, first) = connect(hop_addr, "example.org:443");
    assert!(first.starts_with("HTTP/1.1 403 "), "{first}");
    assert_eq!(common::header(&first, "Connection"), Some("close"));
    let _ = h.write_all(b"CONNECT example.org:443 HTTP/1.1\r\nHost: example.org:443\r\n\r\n");
    assert_eq!(read_reply(&mut h), None, "hopproxy closed after its error reply");
    drop((s, h));

    // 3. A failed CONNECT (allowed, port closed): both 503, Squid logs 0 bytes and `-`,
    //    hopproxy the bytes it wrote and their type.
    let (_s, squid_503) = connect(squid_addr, "www.example.com:8451");
    let (_h, hop_503) = connect(hop_addr, "www.example.com:8451");
    assert!(squid_503.starts_with("HTTP/1.1 503 "), "{squid_503}");
    assert!(hop_503.starts_with("HTTP/1.1 503 "), "{hop_503}");
    drop((_s, _h));

    // 4. A connection that never sends a byte: Squid logs it, hopproxy does not.
    drop(common::connect_from(b(7), squid_addr));
    drop(common::connect_from(b(7), hop_addr));

    let squid_lines: Vec<common::LogLine> = wait_lines(&squid.access_log, 5)
        .iter()
        .map(|l| parse_log_line(l))
        .collect();
    let hop_lines: Vec<common::LogLine> = wait_lines(&hop.access_log, 3)
        .iter()
        .map(|l| parse_log_line(l))
        .collect();
    let find = |lines: &[common::LogLine], code: &str, url: &str| -> Vec<(u64, String)> {
        lines
            .iter()
            .filter(|l| l.code == code && l.url == url)
            .map(|l| (l.bytes, l.content_type.clone()))
            .collect()
    };
    assert_eq!(find(&squid_lines, "TCP_TUNNEL/200", "127.0.47.23:443").len(), 1);
    assert_eq!(find(&hop_lines, "TCP_DENIED/403", "127.0.47.23:443").len(), 1);
    assert_eq!(find(&squid_lines, "TCP_DENIED/403", "example.org:443").len(), 2);
    assert_eq!(find(&hop_lines, "TCP_DENIED/403", "example.org:443").len(), 1);
    assert_eq!(
        find(&squid_lines, "NONE_NONE/503", "www.example.com:8451"),
        vec![(0, "-".to_string())]
    );
    let hop_503_line = find(&hop_lines, "NONE_NONE/503", "www.example.com:8451");
    assert!(
        hop_503_line.len() == 1 && hop_503_line[0].0 > 0 && hop_503_line[0].1 == "text/plain",
        "{hop_503_line:?}"
    );
    assert!(squid_lines.iter().any(|l| l.client == "127.0.47.7"
        && l.code == "NONE_NONE/000"
        && l.url == "error:transaction-end-before-headers"));
    assert!(hop_lines.iter().all(|l| l.client != "127.0.47.7"));
}

/// The access log's records (the harness's own readiness probes skipped), waiting (bounded)
/// until there are `count`, then a little longer to be sure there are no more.
fn wait_lines(path: &Path, count: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let read = || -> Vec<String> {
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .filter(|l| {
                !(l.contains(" 127.0.0.1 NONE_NONE/000 0 ") && l.contains("error:transaction-end-before-headers"))
            })
            .map(str::to_string)
            .collect()
    };
    while read().len() < count && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(25));
    }
    std::thread::sleep(Duration::from_millis(300));
    let lines = read();
    assert_eq!(lines.len(), count, "{}: {lines:#?}", path.display());
    lines
}

//! squid.conf texts for both proxies. hopproxy and Squid get the same dialect and the same
//! policy (allow the loopback clients, log every transaction); Squid additionally gets the
//! settings that keep it from doing cache or housekeeping work hopproxy never does.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::Path;

/// One proxy of a chain: where it listens and, for the first hop of two, its parent.
pub struct Hop<'a> {
    pub listen: SocketAddr,
    pub parent: Option<SocketAddr>,
    pub dir: &'a Path,
    pub name: &'a str,
    /// TLS on this hop's legs (hopproxy only): `https_port`, and `cache_peer … tls` to the parent.
    pub tls: Option<HopTls<'a>>,
    /// A class 1 delay pool of this rate (bytes per second) for every client.
    pub delay_pool: Option<u64>,
}

/// The certificate files of a hop whose legs speak TLS.
pub struct HopTls<'a> {
    /// The CA every hop's certificate is signed by.
    pub ca: &'a Path,
    /// This hop's certificate (leaf + CA) and key: served on `https_port`, presented to the parent.
    pub cert: &'a Path,
    pub key: &'a Path,
    /// Demand a client certificate from the CA (`clientca=`): the hop behind another proxy.
    pub demand_client_cert: bool,
    /// The name the parent's certificate must carry (`tls-domain=`).
    pub parent_name: Option<&'a str>,
}

/// `http_port`, or `https_port` with the hop's certificate (and `clientca=` where demanded).
fn listen_line(h: &Hop) -> String {
    let Some(tls) = &h.tls else {
        return format!("http_port {}", h.listen);
    };
    let clientca = if tls.demand_client_cert {
        format!(" clientca={}", tls.ca.display())
    } else {
        String::new()
    };
    format!(
        "https_port {} tls-cert={} tls-key={}{clientca}",
        h.listen,
        tls.cert.display(),
        tls.key.display()
    )
}

/// The `cache_peer` TLS options: verify the parent against the CA and its name, present our certificate.
fn peer_tls(h: &Hop) -> String {
    match &h.tls {
        Some(HopTls {
            ca,
            cert,
            key,
            parent_name: Some(name),
            ..
        }) => format!(
            " tls tls-cafile={} tls-domain={name} tls-cert={} tls-key={}",
            ca.display(),
            cert.display(),
            key.display()
        ),
        _ => String::new(),
    }
}

/// The same delay pool lines for both proxies.
fn delay_pool(c: &mut String, h: &Hop) {
    if let Some(rate) = h.delay_pool {
        let _ = writeln!(c, "delay_pools 1");
        let _ = writeln!(c, "delay_class 1 1");
        let _ = writeln!(c, "delay_parameters 1 {rate}/{rate}");
        let _ = writeln!(c, "delay_access 1 allow all");
    }
}

pub fn hopproxy(h: &Hop) -> String {
    let mut c = String::new();
    let d = h.dir.display();
    let _ = writeln!(c, "# hopproxy benchmark, {}", h.name);
    let _ = writeln!(c, "{}", listen_line(h));
    let _ = writeln!(c, "acl bench_clients src 127.0.0.0/8");
    let _ = writeln!(c, "http_access allow bench_clients");
    let _ = writeln!(c, "http_access deny all");
    let _ = writeln!(c, "access_log stdio:{d}/access.log squid");
    let _ = writeln!(c, "visible_hostname {}.bench", h.name);
    // Stop as promptly as Squid does when the harness sends SIGTERM.
    let _ = writeln!(c, "shutdown_lifetime 1 seconds");
    delay_pool(&mut c, h);
    if let Some(p) = h.parent {
        let _ = writeln!(
            c,
            "cache_peer {} parent {} 0 no-query default{}",
            p.ip(),
            p.port(),
            peer_tls(h)
        );
        let _ = writeln!(c, "never_direct allow all");
    }
    c
}

pub fn squid(h: &Hop) -> String {
    let mut c = String::new();
    let d = h.dir.display();
    let _ = writeln!(c, "# Squid benchmark, {}", h.name);
    let _ = writeln!(c, "http_port {}", h.listen);
    let _ = writeln!(c, "acl bench_clients src 127.0.0.0/8");
    let _ = writeln!(c, "http_access allow bench_clients");
    let _ = writeln!(c, "http_access deny all");
    // Caching off, logging on: the work both proxies do is the same.
    let _ = writeln!(c, "cache deny all");
    let _ = writeln!(c, "access_log stdio:{d}/access.log squid");
    let _ = writeln!(c, "cache_log {d}/cache.log");
    let _ = writeln!(c, "cache_store_log none");
    let _ = writeln!(c, "pid_filename {d}/squid.pid");
    let _ = writeln!(c, "coredump_dir {d}");
    let _ = writeln!(c, "netdb_filename none");
    let _ = writeln!(c, "visible_hostname {}.bench", h.name);
    let _ = writeln!(c, "shutdown_lifetime 1 seconds");
    // No ICMP helper, and no DNS traffic off the machine (reverse lookups of clients go to
    // a loopback port nobody answers, which fails at once).
    let _ = writeln!(c, "pinger_enable off");
    let _ = writeln!(c, "dns_nameservers 127.0.0.1");
    // Two fds per tunnel per hop: the 1,000-tunnel test needs more than the default 1,024.
    let _ = writeln!(c, "max_filedescriptors 16384");
    delay_pool(&mut c, h);
    if let Some(p) = h.parent {
        let _ = writeln!(
            c,
            "cache_peer {} parent {} 0 no-query default no-digest no-netdb-exchange",
            p.ip(),
            p.port()
        );
        let _ = writeln!(c, "never_direct allow all");
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parent_lines_only_on_first_hop() {
        let dir = Path::new("/tmp/x");
        let one = Hop {
            listen: "127.0.0.1:3128".parse().unwrap(),
            parent: None,
            dir,
            name: "p",
            tls: None,
            delay_pool: None,
        };
        assert!(!squid(&one).contains("cache_peer"));
        assert!(!hopproxy(&one).contains("never_direct"));
        let two = Hop {
            parent: Some("127.0.0.2:3129".parse().unwrap()),
            ..one
        };
        assert!(squid(&two).contains("cache_peer 127.0.0.2 parent 3129 0 no-query default no-digest"));
        assert!(hopproxy(&two).contains("cache_peer 127.0.0.2 parent 3129 0 no-query default\nnever_direct allow all"));
    }

    #[test]
    fn tls_hops_listen_on_https_port_and_speak_mtls_to_the_parent() {
        let (ca, cert, key) = (Path::new("/r/ca.pem"), Path::new("/r/tls.pem"), Path::new("/r/tls.key"));
        let tls = |demand_client_cert, parent_name| HopTls {
            ca,
            cert,
            key,
            demand_client_cert,
            parent_name,
        };
        let first = Hop {
            listen: "127.0.0.1:3128".parse().unwrap(),
            parent: Some("127.0.0.2:3129".parse().unwrap()),
            dir: Path::new("/r"),
            name: "hop1",
            tls: Some(tls(false, Some("hop2.example"))),
            delay_pool: None,
        };
        let text = hopproxy(&first);
        assert!(text.contains("https_port 127.0.0.1:3128 tls-cert=/r/tls.pem tls-key=/r/tls.key\n"));
        assert!(text.contains(
            "cache_peer 127.0.0.2 parent 3129 0 no-query default tls tls-cafile=/r/ca.pem \
             tls-domain=hop2.example tls-cert=/r/tls.pem tls-key=/r/tls.key\n"
        ));
        let last = Hop {
            parent: None,
            tls: Some(tls(true, None)),
            ..first
        };
        let text = hopproxy(&last);
        assert!(text.contains("https_port 127.0.0.1:3128 tls-cert=/r/tls.pem tls-key=/r/tls.key clientca=/r/ca.pem\n"));
        assert!(!text.contains("cache_peer"));
    }

    #[test]
    fn delay_pool_lines_are_the_same_for_both_proxies() {
        let hop = Hop {
            listen: "127.0.0.1:3128".parse().unwrap(),
            parent: None,
            dir: Path::new("/tmp/x"),
            name: "p",
            delay_pool: Some(1_000_000),
            tls: None,
        };
        let lines = "delay_pools 1\ndelay_class 1 1\ndelay_parameters 1 1000000/1000000\ndelay_access 1 allow all\n";
        assert!(hopproxy(&hop).contains(lines));
        assert!(squid(&hop).contains(lines));
    }
}

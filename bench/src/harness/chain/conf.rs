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
    /// A class 1 delay pool of this rate (bytes per second) for every client.
    pub delay_pool: Option<u64>,
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
    let _ = writeln!(c, "http_port {}", h.listen);
    let _ = writeln!(c, "acl bench_clients src 127.0.0.0/8");
    let _ = writeln!(c, "http_access allow bench_clients");
    let _ = writeln!(c, "http_access deny all");
    let _ = writeln!(c, "access_log stdio:{d}/access.log squid");
    let _ = writeln!(c, "visible_hostname {}.bench", h.name);
    // Stop as promptly as Squid does when the harness sends SIGTERM.
    let _ = writeln!(c, "shutdown_lifetime 1 seconds");
    delay_pool(&mut c, h);
    if let Some(p) = h.parent {
        let _ = writeln!(c, "cache_peer {} parent {} 0 no-query default", p.ip(), p.port());
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
    fn delay_pool_lines_are_the_same_for_both_proxies() {
        let hop = Hop {
            listen: "127.0.0.1:3128".parse().unwrap(),
            parent: None,
            dir: Path::new("/tmp/x"),
            name: "p",
            delay_pool: Some(1_000_000),
        };
        let lines = "delay_pools 1\ndelay_class 1 1\ndelay_parameters 1 1000000/1000000\ndelay_access 1 allow all\n";
        assert!(hopproxy(&hop).contains(lines));
        assert!(squid(&hop).contains(lines));
    }
}

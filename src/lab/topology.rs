//! One description of the lab's chain, and each hop's squid.conf generated from it.
//!
//! Addresses: a random `127.X.Y.0/24` block per lab (agent `.5`, proxy N `.1N`, endpoint
//! `.20`), so two labs, or a lab and the tests, never share an address; ports are checked free.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use super::ENDPOINT_NAME;

/// One proxy of the chain.
#[derive(Debug, Clone)]
pub struct Hop {
    /// 1 = the proxy the agent talks to.
    pub index: usize,
    pub name: String,
    pub addr: SocketAddr,
    pub dir: PathBuf,
}

impl Hop {
    pub fn config_path(&self) -> PathBuf {
        self.dir.join("squid.conf")
    }

    pub fn access_log(&self) -> PathBuf {
        self.dir.join("access.log")
    }

    /// The hop's certificate (leaf + CA) and key, with `lab --tls`.
    pub fn tls_cert(&self) -> PathBuf {
        self.dir.join("tls.pem")
    }

    pub fn tls_key(&self) -> PathBuf {
        self.dir.join("tls.key")
    }

    pub fn label(&self) -> String {
        format!("proxy {} ({} at {})", self.index, self.name, self.addr)
    }
}

/// The lab's whole chain: agent → hops[0] → … → hops[n-1] → endpoint.
#[derive(Debug, Clone)]
pub struct Topology {
    pub dir: PathBuf,
    pub agent_ip: IpAddr,
    pub endpoint: SocketAddr,
    pub hops: Vec<Hop>,
    /// TLS on the proxy legs (`lab --tls`): https_port listeners, mTLS between proxies.
    pub tls: bool,
}

/// A pseudo-random number without a dependency: std's per-process random hash keys, mixed with time.
fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.write_u32(std::process::id());
    h.finish()
}

impl Topology {
    /// Picks a fresh loopback block and free ports for `hops` proxies (1..=5) and the endpoint.
    pub fn allocate(dir: &Path, hops: usize) -> std::io::Result<Topology> {
        let r = random_u64();
        // 127.64.0.0 – 127.250.255.0: clear of 127.0.0.x, which people and tests use by hand.
        let (x, y) = (64 + (r % 187) as u8, ((r >> 8) % 256) as u8);
        let ip = |last: u8| IpAddr::V4(Ipv4Addr::new(127, x, y, last));
        let endpoint_ip = ip(20);
        // The seed's endpoint is on 443; take it when this block's 443 is bindable (root), else any port.
        let endpoint_port = match std::net::TcpListener::bind((endpoint_ip, 443)) {
            Ok(_) => 443,
            Err(_) => super::process::free_port(endpoint_ip)?,
        };
        let mut list = Vec::new();
        for index in 1..=hops {
            let hop_ip = ip(10 + index as u8);
            let name = format!("proxy{index}.lab");
            list.push(Hop {
                index,
                name,
                addr: SocketAddr::new(hop_ip, super::process::free_port(hop_ip)?),
                dir: dir.join(format!("proxy{index}")),
            });
        }
        Ok(Topology {
            dir: dir.to_path_buf(),
            agent_ip: ip(5),
            endpoint: SocketAddr::new(endpoint_ip, endpoint_port),
            hops: list,
            tls: false,
        })
    }

    pub fn hosts_file(&self) -> PathBuf {
        self.dir.join("hosts")
    }

    pub fn hosts_text(&self) -> String {
        format!("{} {ENDPOINT_NAME}\n", self.endpoint.ip())
    }

    /// The hop whose listening address is `addr` (`ip:port` or just the IP), if any.
    pub fn hop_at(&self, addr: &str) -> Option<&Hop> {
        let addr = addr.trim_matches('"');
        self.hops
            .iter()
            .find(|h| addr == h.addr.to_string() || addr == h.addr.ip().to_string())
    }

    pub fn hop_named(&self, name: &str) -> Option<&Hop> {
        self.hops.iter().find(|h| h.name.eq_ignore_ascii_case(name))
    }

    /// Hop `index`'s squid.conf: least privilege, fit to copy to a real machine. Only the hop's
    /// one client (the agent, or the proxy before it) may CONNECT, and only to the endpoint's
    /// name and port; everything else is denied. The seed's `allow CONNECT SSL_ports` and
    /// `allow Safe_ports` (any client to any host on 443) are deliberately not reproduced, so
    /// `hopproxy check --strict` passes; the comments say how to widen the policy.
    pub fn squid_conf(&self, index: usize) -> String {
        let hop = &self.hops[index - 1];
        let client = if index == 1 {
            self.agent_ip
        } else {
            self.hops[index - 2].addr.ip()
        };
        let (role, upstream) = match self.hops.get(index) {
            Some(next) => (
                format!("forwards to its parent, proxy {} ({})", next.index, next.name),
                format!(
                    "\n# Forward to the next proxy; never go direct.\n\
                     cache_peer {} parent {} 0 no-query default no-digest no-netdb-exchange{}\n\
                     never_direct allow all\n",
                    next.addr.ip(),
                    next.addr.port(),
                    self.peer_tls(hop, next)
                ),
            ),
            None => ("goes direct to the endpoint".to_string(), String::new()),
        };
        let client_what = if index == 1 {
            "the agent".to_string()
        } else {
            format!("proxy {}", index - 1)
        };
        format!(
            "# hopproxy lab: {name}, proxy {index} of {total}; it {role}.\n\
             # Least privilege: only {client_what} may CONNECT, and only to the endpoint.\n\
             # To widen it on a real machine:\n\
             #  - more clients: add their addresses or networks to client_net\n\
             #    (acl client_net src 10.20.0.0/24; several acl lines add up);\n\
             #  - more endpoints: add names to allowed_https_sites (.example.com = the domain\n\
             #    and its subdomains) and their ports to endpoint_ports.\n\
             # Keep every allow line tied to client_net: 'http_access allow CONNECT SSL_ports'\n\
             # alone lets anyone reach any host, and 'hopproxy check --strict' refuses it.\n\
             {listen}\n\
             \n\
             acl endpoint_ports port {endpoint_port}\n\
             acl allowed_https_sites dstdomain {ENDPOINT_NAME}\n\
             acl client_net src {client}\n{client_cert_acl}\
             \n\
             http_access allow client_net{client_cert} CONNECT allowed_https_sites endpoint_ports\n\
             http_access deny all\n\
             {upstream}\n\
             access_log stdio:{log} squid\n\
             \n\
             # Lab only: names, addresses and files on this machine.\n\
             visible_hostname {name}\n\
             hosts_file {hosts}\n\
             tcp_outgoing_address {ip}\n\
             pid_filename {pid}\n",
            name = hop.name,
            total = self.hops.len(),
            listen = self.listen_line(hop),
            client_cert_acl = match self.client_cert_name(index) {
                Some(name) => format!(
                    "# The proxy before this one proves its name with its certificate.\nacl client_cert user_cert CN {name}\n"
                ),
                None => String::new(),
            },
            client_cert = if self.client_cert_name(index).is_some() {
                " client_cert"
            } else {
                ""
            },
            endpoint_port = self.endpoint.port(),
            log = hop.access_log().display(),
            hosts = self.hosts_file().display(),
            ip = hop.addr.ip(),
            pid = hop.dir.join("hopproxy.pid").display(),
        )
    }
}

impl Topology {
    /// `http_port`, or with TLS `https_port` with the hop's certificate; from proxy 2 on it
    /// demands a client certificate signed by the lab CA.
    fn listen_line(&self, hop: &Hop) -> String {
        if !self.tls {
            return format!("http_port {}", hop.addr);
        }
        let clientca = if hop.index > 1 {
            format!(" clientca={}", self.ca_file().display())
        } else {
            String::new()
        };
        format!(
            "https_port {} tls-cert={} tls-key={}{clientca}",
            hop.addr,
            hop.tls_cert().display(),
            hop.tls_key().display()
        )
    }

    /// With TLS, the name the client certificate of proxy `index`'s client must carry.
    fn client_cert_name(&self, index: usize) -> Option<&str> {
        (self.tls && index > 1).then(|| self.hops[index - 2].name.as_str())
    }

    /// The `cache_peer` TLS options from `hop` to `next`.
    fn peer_tls(&self, hop: &Hop, next: &Hop) -> String {
        if !self.tls {
            return String::new();
        }
        format!(
            " tls tls-cafile={} tls-domain={} tls-cert={} tls-key={}",
            self.ca_file().display(),
            next.name,
            hop.tls_cert().display(),
            hop.tls_key().display()
        )
    }

    /// The lab CA (written by the lab's PKI as `ca.pem`).
    pub fn ca_file(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configs_chain_each_hop_to_the_next() {
        let t = Topology::allocate(Path::new("/lab"), 3).unwrap();
        let c1 = t.squid_conf(1);
        let c3 = t.squid_conf(3);
        assert!(c1.contains(&format!("acl client_net src {}\n", t.agent_ip)));
        assert!(c1.contains(&format!(
            "cache_peer {} parent {} 0",
            t.hops[1].addr.ip(),
            t.hops[1].addr.port()
        )));
        assert!(c3.contains(&format!("acl client_net src {}\n", t.hops[1].addr.ip())));
        assert!(!c3.contains("cache_peer") && !c3.contains("never_direct"));
        assert!(c3.contains("visible_hostname proxy3.lab\n"));
        assert_eq!(t.hop_at(&t.hops[1].addr.to_string()).unwrap().index, 2);
    }

    /// What the lab writes for real machines is never an open proxy.
    #[test]
    fn configs_are_least_privilege() {
        let t = Topology::allocate(Path::new("/lab"), 3).unwrap();
        for index in 1..=3 {
            let text = t
                .squid_conf(index)
                .replace(&format!("hosts_file {}", t.hosts_file().display()), "hosts_file none");
            let loaded = crate::config::parse_str(&text, Path::new("squid.conf")).expect("valid");
            let findings = crate::analysis::lint::lint(&loaded.config);
            assert!(
                !findings.iter().any(crate::analysis::lint::is_open_door),
                "proxy {index}: {findings:#?}"
            );
            let rules: Vec<&str> = text.lines().filter(|l| l.starts_with("http_access")).collect();
            assert_eq!(
                rules,
                [
                    "http_access allow client_net CONNECT allowed_https_sites endpoint_ports",
                    "http_access deny all"
                ]
            );
        }
    }
}

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

    /// Hop `index`'s squid.conf: the seed's rules, with the lab's addresses and files.
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
                    "\n# proxy{} へのフォワード (forward to the next proxy; never go direct)\n\
                     cache_peer {} parent {} 0 no-query default no-digest no-netdb-exchange\n\
                     never_direct allow all\n",
                    next.index,
                    next.addr.ip(),
                    next.addr.port()
                ),
            ),
            None => ("goes direct to the endpoint".to_string(), String::new()),
        };
        format!(
            "# hopproxy lab: {name}, proxy {index} of {total}; it {role}.\n\
             # Rules as in the seed's proxy configs (sections 5 and 6); addresses are the lab's.\n\
             http_port {addr}\n\
             \n\
             acl SSL_ports port 443\n\
             acl Safe_ports port 443\n\
             acl CONNECT method CONNECT\n\
             acl allowed_https_sites dstdomain {ENDPOINT_NAME}\n\
             acl client_net src {client}\n\
             \n\
             http_access allow client_net allowed_https_sites\n\
             http_access allow CONNECT SSL_ports\n\
             http_access allow Safe_ports\n\
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
            addr = hop.addr,
            log = hop.access_log().display(),
            hosts = self.hosts_file().display(),
            ip = hop.addr.ip(),
            pid = hop.dir.join("hopproxy.pid").display(),
        )
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
}

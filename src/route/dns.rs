//! Name resolution: `hosts_file` first (so tests and labs never touch /etc/hosts), then DNS:
//! the `dns_nameservers` when set, else the servers in /etc/resolv.conf, as Squid does. The
//! DNS client (hickory) keeps a bounded cache that honours each answer's TTL and evicts the
//! least recently used names. No reverse lookups of clients, ever (Squid 5.7 does one per
//! client: docs/squid-behaviour.md 2.4).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use hickory_resolver::TokioResolver;
use hickory_resolver::config::ResolveHosts;
use hickory_resolver::config::{LookupIpStrategy, NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::net::NetError;
use hickory_resolver::net::runtime::TokioRuntimeProvider;

/// Names (per record type) kept in the cache.
const CACHE_ENTRIES: u64 = 4096;
/// Longest time a positive answer is kept, whatever its TTL (Squid's `positive_dns_ttl`).
const POSITIVE_MAX_TTL: Duration = Duration::from_secs(6 * 3600);
/// Longest time a "no such name" is kept, so a fixed name recovers quickly (Squid's
/// `negative_dns_ttl` is 1 minute).
const NEGATIVE_MAX_TTL: Duration = Duration::from_secs(10);

/// What a name resolved to, once per request: `dst` ACLs and the dial both use it.
pub type Resolution = Result<Arc<[IpAddr]>, ResolveError>;

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ResolveError {
    #[error("name does not resolve: {0}")]
    NotFound(String),
    #[error("DNS lookup timed out")]
    Timeout,
}

/// The parsed `hosts_file`: names to addresses and addresses to names.
#[derive(Debug, Default, Clone)]
pub struct HostsTable {
    by_name: HashMap<String, Vec<IpAddr>>,
    by_addr: HashMap<IpAddr, Vec<String>>,
}

impl HostsTable {
    pub fn parse(text: &str) -> HostsTable {
        let mut table = HostsTable::default();
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or("");
            let mut fields = line.split_whitespace();
            let Some(addr) = fields.next().and_then(|a| a.parse::<IpAddr>().ok()) else {
                continue;
            };
            for name in fields {
                let name = name.trim_end_matches('.').to_ascii_lowercase();
                let addrs = table.by_name.entry(name.clone()).or_default();
                if !addrs.contains(&addr) {
                    addrs.push(addr);
                }
                table.by_addr.entry(addr).or_default().push(name);
            }
        }
        table
    }

    pub fn load(path: &Path) -> std::io::Result<HostsTable> {
        Ok(HostsTable::parse(&std::fs::read_to_string(path)?))
    }

    pub fn lookup(&self, name: &str) -> Option<&[IpAddr]> {
        self.by_name.get(name).map(Vec::as_slice)
    }

    pub fn names_of(&self, addr: IpAddr) -> &[String] {
        self.by_addr.get(&addr.to_canonical()).map_or(&[], Vec::as_slice)
    }
}

pub struct Resolver {
    hosts: HostsTable,
    dns: TokioResolver,
    lookup_timeout: Duration,
}

impl Resolver {
    /// A resolver that asks `nameservers` (port 53, UDP then TCP), or the system's
    /// configured servers when the list is empty.
    /// `lookup_timeout` is `dns_timeout`: a lookup that takes longer fails as a timeout.
    pub fn new(hosts: HostsTable, nameservers: &[IpAddr], lookup_timeout: Duration) -> std::io::Result<Resolver> {
        let (config, mut options) = if nameservers.is_empty() {
            system_config()
        } else {
            let servers = nameservers
                .iter()
                .map(|ip| NameServerConfig::udp_and_tcp(*ip))
                .collect();
            (ResolverConfig::from_name_servers(servers), ResolverOpts::default())
        };
        // Our own HostsTable is the hosts file (`hosts_file none` means none, as in Squid).
        options.use_hosts_file = ResolveHosts::Never;
        options.ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
        options.cache_size = CACHE_ENTRIES;
        options.positive_max_ttl = Some(POSITIVE_MAX_TTL);
        options.negative_max_ttl = Some(NEGATIVE_MAX_TTL);
        let dns = TokioResolver::builder_with_config(config, TokioRuntimeProvider::default())
            .with_options(options)
            .build()
            .map_err(|e| std::io::Error::other(format!("cannot set up the DNS resolver: {e}")))?;
        Ok(Resolver {
            hosts,
            dns,
            lookup_timeout,
        })
    }

    pub fn hosts(&self) -> &HostsTable {
        &self.hosts
    }

    /// Addresses for `host` (lower-case, no brackets); IP literals resolve to themselves.
    pub async fn resolve(&self, host: &str) -> Resolution {
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(Arc::from([ip]));
        }
        if let Some(addrs) = self.hosts.lookup(host) {
            return Ok(Arc::from(addrs));
        }
        // RFC 6761 section 6.4: `.invalid` never resolves, and resolvers should say so without
        // asking anyone (tests rely on it to never send a query off the machine).
        if host == "invalid" || host.ends_with(".invalid") {
            return Err(ResolveError::NotFound(host.to_string()));
        }
        let lookup = match tokio::time::timeout(self.lookup_timeout, self.dns.lookup_ip(host)).await {
            Err(_) | Ok(Err(NetError::Timeout)) => return Err(ResolveError::Timeout),
            Ok(Err(e)) => {
                tracing::debug!("DNS lookup of {host} failed: {e}");
                return Err(ResolveError::NotFound(host.to_string()));
            }
            Ok(Ok(lookup)) => lookup,
        };
        let mut list: Vec<IpAddr> = Vec::new();
        for ip in lookup.iter().map(|ip| ip.to_canonical()) {
            if !list.contains(&ip) {
                list.push(ip);
            }
        }
        if list.is_empty() {
            Err(ResolveError::NotFound(host.to_string()))
        } else {
            Ok(list.into())
        }
    }
}

/// The servers and options of /etc/resolv.conf. Without a usable one, the local server
/// (127.0.0.1), as the C library does.
fn system_config() -> (ResolverConfig, ResolverOpts) {
    match hickory_resolver::system_conf::read_system_conf() {
        Ok(conf) => conf,
        Err(e) => {
            tracing::warn!("cannot use /etc/resolv.conf ({e}); asking the DNS server at 127.0.0.1");
            let local = NameServerConfig::udp_and_tcp(IpAddr::V4(Ipv4Addr::LOCALHOST));
            (ResolverConfig::from_name_servers(vec![local]), ResolverOpts::default())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn invalid_names_fail_without_a_query() {
        let resolver = Resolver::new(HostsTable::default(), &[], Duration::from_secs(30)).unwrap();
        assert_eq!(
            resolver.resolve("no-such-host.invalid").await,
            Err(ResolveError::NotFound("no-such-host.invalid".into()))
        );
        assert_eq!(
            &*resolver.resolve("127.0.0.9").await.unwrap(),
            &["127.0.0.9".parse::<IpAddr>().unwrap()]
        );
    }

    #[test]
    fn hosts_file_lookup_both_ways() {
        let t = HostsTable::parse("# c\n127.0.0.20 ingress-orange-saas.instana.io Alias.\n::1 six # x\nbad line\n");
        assert_eq!(
            t.lookup("ingress-orange-saas.instana.io"),
            Some(&["127.0.0.20".parse().unwrap()][..])
        );
        assert_eq!(t.lookup("alias"), Some(&["127.0.0.20".parse().unwrap()][..]));
        assert_eq!(t.lookup("six"), Some(&["::1".parse().unwrap()][..]));
        assert_eq!(
            t.names_of("127.0.0.20".parse().unwrap()),
            ["ingress-orange-saas.instana.io", "alias"]
        );
        assert!(t.lookup("x").is_none());
    }
}

//! Name resolution: `hosts_file` first (so tests and labs never touch /etc/hosts), then the
//! system resolver on a blocking thread, with a small cache so busy proxies do not ask for the
//! same name on every request. No reverse lookups of clients, ever (Squid 5.7 does one per
//! client: reference 2.4).

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Positive answers are kept this long (getaddrinfo gives no TTL).
const POSITIVE_TTL: Duration = Duration::from_secs(60);
/// Failures are kept this long, so a flood of requests for a bad name costs one lookup
/// (Squid's `negative_dns_ttl` is 1 minute; shorter here so a fixed name recovers quickly).
const NEGATIVE_TTL: Duration = Duration::from_secs(10);
/// The longest a lookup may take (Squid's `dns_timeout` is 30 s).
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(30);
const CACHE_LIMIT: usize = 4096;

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

type CacheEntry = (Instant, Result<Arc<[IpAddr]>, ResolveError>);

pub struct Resolver {
    hosts: HostsTable,
    cache: Mutex<HashMap<String, CacheEntry>>,
}

impl Resolver {
    pub fn new(hosts: HostsTable) -> Resolver {
        Resolver {
            hosts,
            cache: Mutex::new(HashMap::new()),
        }
    }

    pub fn hosts(&self) -> &HostsTable {
        &self.hosts
    }

    /// Addresses for `host` (lower-case, no brackets); IP literals resolve to themselves.
    pub async fn resolve(&self, host: &str) -> Result<Arc<[IpAddr]>, ResolveError> {
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
        if let Some(cached) = self.cached(host) {
            return cached;
        }
        let answer = system_lookup(host).await;
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= CACHE_LIMIT {
            let now = Instant::now();
            cache.retain(|_, (expires, _)| *expires > now);
            if cache.len() >= CACHE_LIMIT {
                cache.clear();
            }
        }
        let ttl = if answer.is_ok() { POSITIVE_TTL } else { NEGATIVE_TTL };
        cache.insert(host.to_string(), (Instant::now() + ttl, answer.clone()));
        answer
    }

    fn cached(&self, host: &str) -> Option<Result<Arc<[IpAddr]>, ResolveError>> {
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        let (expires, answer) = cache.get(host)?;
        (*expires > Instant::now()).then(|| answer.clone())
    }
}

async fn system_lookup(host: &str) -> Result<Arc<[IpAddr]>, ResolveError> {
    // tokio runs getaddrinfo on its blocking pool, off the relaying threads.
    match tokio::time::timeout(LOOKUP_TIMEOUT, tokio::net::lookup_host((host, 0))).await {
        Err(_) => Err(ResolveError::Timeout),
        Ok(Err(_)) => Err(ResolveError::NotFound(host.to_string())),
        Ok(Ok(addrs)) => {
            let mut list: Vec<IpAddr> = Vec::new();
            for a in addrs {
                let ip = a.ip().to_canonical();
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn invalid_names_fail_without_a_query() {
        let resolver = Resolver::new(HostsTable::default());
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

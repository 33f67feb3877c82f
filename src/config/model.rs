//! The validated, immutable runtime configuration. Built by the parser from squid.conf text;
//! read by the daemon behind an `Arc` and swapped whole on reload.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::policy::{AclRef, AclSet, HeaderRules, Origin, RuleList, TunnelRules};

/// Squid's documented defaults (cf.data.pre, 5.7) for the settings hopproxy honours.
pub mod defaults {
    use std::time::Duration;
    pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(60);
    pub const PEER_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
    pub const READ_TIMEOUT: Duration = Duration::from_secs(15 * 60);
    pub const WRITE_TIMEOUT: Duration = Duration::from_secs(15 * 60);
    pub const REQUEST_START_TIMEOUT: Duration = Duration::from_secs(5 * 60);
    pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5 * 60);
    pub const DNS_TIMEOUT: Duration = Duration::from_secs(30);
    pub const CLIENT_LIFETIME: Duration = Duration::from_secs(24 * 60 * 60);
    pub const SHUTDOWN_LIFETIME: Duration = Duration::from_secs(30);
    pub const DEAD_PEER_TIMEOUT: Duration = Duration::from_secs(10);
    pub const REQUEST_HEADER_MAX_SIZE: usize = 64 * 1024;
    /// `forward_timeout`: Squid's 4 minutes. It also bounds the wait for a response head, so a
    /// silent next hop cannot hold a request for the whole `read_timeout` (15 minutes).
    pub const FORWARD_TIMEOUT: Duration = Duration::from_secs(4 * 60);
    /// `forward_max_tries`: Squid's 25.
    pub const FORWARD_MAX_TRIES: u32 = 25;
    pub const CONNECT_FAIL_LIMIT: u32 = 10;
    pub const HOSTS_FILE: &str = "/etc/hosts";
    /// Where transactions are logged when a config has no `access_log` line.
    pub const ACCESS_LOG: &str = "/var/log/squid/access.log";
    /// Where `run` writes its pid when `pid_filename` is not set (Squid: `/run/squid.pid`),
    /// and where `reload`, `rotate` and `stop` look for it.
    pub const PID_FILE: &str = "/run/hopproxy.pid";
    /// `auth_param basic realm` (Squid's `Auth::Basic::Config` constructor).
    pub const BASIC_REALM: &str = "Squid proxy-caching web server";
    /// `auth_param basic credentialsttl`: 2 hours in Squid 5.7's code, as its example says.
    pub const CREDENTIALS_TTL: Duration = Duration::from_secs(2 * 60 * 60);
    /// The user a daemon started as root switches to without `cache_effective_user`: the
    /// system user the packages create (Squid's built-in default is `nobody`; Debian's
    /// package builds it with `proxy`).
    pub const EFFECTIVE_USER: &str = "hopproxy";
}

/// One `http_port [addr:]port`. Without an address, hopproxy listens on all addresses
/// (IPv6 and IPv4), as Squid does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpPort {
    pub addr: Option<IpAddr>,
    pub port: u16,
    /// `tcpkeepalive[=idle,interval,timeout]`: TCP keep-alive probes on client connections.
    pub tcp_keepalive: Option<TcpKeepalive>,
    /// `require-proxy-header`: every connection must start with a PROXY protocol header
    /// (v1 or v2) from a client `proxy_protocol_access` allows.
    pub require_proxy_header: bool,
    /// `https_port`: TLS (and with `clientca=`, client certificates) before HTTP.
    pub tls: Option<crate::tls::ListenTls>,
    /// `ssl-bump`: CONNECT tunnels on this port follow `ssl_bump` (peek and splice, never
    /// decrypting; docs/sni-tunnels.md).
    pub ssl_bump: bool,
    pub origin: Origin,
}

/// Squid's `tcpkeepalive=idle,interval,timeout` (seconds); `None` fields keep the kernel's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TcpKeepalive {
    pub idle: Option<Duration>,
    pub interval: Option<Duration>,
    /// Total probing time before the connection is dropped (Squid sets the probe count to
    /// timeout / interval).
    pub timeout: Option<Duration>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerLogin {
    /// `login=user:pass`: send `Proxy-Authorization: Basic …` to the parent.
    Basic { user: String, password: String },
    /// `login=PASSTHRU`: forward the client's own `Proxy-Authorization`.
    PassThru,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerSelection {
    /// First live parent in config order (Squid's `FIRSTUP_PARENT`).
    FirstUp,
    /// `round-robin`: rotate among live round-robin parents.
    RoundRobin,
    /// `weighted-round-robin`: rotate, biased by `weight=`.
    WeightedRoundRobin,
}

/// One `cache_peer HOST parent HTTP-PORT ICP-PORT options…` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// `name=` or, without it, the host as written. Unique; `cache_peer_access` refers to it.
    pub name: String,
    pub host: String,
    pub http_port: u16,
    pub selection: PeerSelection,
    /// `weight=`, default 1.
    pub weight: u32,
    /// `default`: accepted for compatibility; Squid 5.7 showed no effect on ordering (docs/squid-behaviour.md F5, F7).
    pub default: bool,
    pub login: Option<PeerLogin>,
    /// `connect-timeout=`; falls back to `peer_connect_timeout`.
    pub connect_timeout: Option<Duration>,
    /// `connect-fail-limit=`: consecutive connect failures that mark the parent down.
    pub connect_fail_limit: u32,
    /// `cache_peer_access NAME allow|deny …` lines for this peer; empty = every request.
    pub access: RuleList,
    /// `tls` (or `ssl`) and the `tls-…` options: speak TLS to the parent.
    pub tls: Option<crate::tls::PeerTls>,
    pub origin: Origin,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForwardedFor {
    /// Append the client address (Squid's default).
    On,
    /// Append `unknown`.
    Off,
    /// Leave the header as the client sent it.
    Transparent,
    /// Remove the header.
    Delete,
    /// Replace the header with the client address alone.
    Truncate,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogTarget {
    /// `access_log PATH`, `stdio:PATH`, `daemon:PATH` (written by hopproxy itself).
    File(PathBuf),
    /// `access_log none`.
    None,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessLog {
    pub target: LogTarget,
    /// `squid` (native), a built-in, or a `logformat` compiled at load.
    pub format: crate::log::Format,
    /// ACLs after the format on the `access_log` line: log only matching transactions.
    pub acls: Vec<AclRef>,
    pub origin: Origin,
}

/// `tcp_outgoing_address ADDR [[!]acl…]`: the first line whose ACLs match (and whose address
/// family fits the destination) gives the source address of outgoing connections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingAddress {
    pub addr: IpAddr,
    pub acls: Vec<AclRef>,
    pub origin: Origin,
}

/// `auth_param basic …` with the `basic_ncsa_auth` helper, which hopproxy serves natively:
/// the helper is recognised by its file name and never executed; its argument, the htpasswd
/// file, is read by [`crate::auth`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BasicAuth {
    /// The helper path as written (for `check` and messages).
    pub helper: PathBuf,
    /// The htpasswd file: `basic_ncsa_auth`'s only argument (empty with an external helper).
    pub passwd_file: PathBuf,
    /// Any other program: run as helper processes (`auth_param basic children …`), which get
    /// `user password` lines. `None`: `basic_ncsa_auth`, served natively from `passwd_file`.
    pub external: Option<crate::helper::HelperSpec>,
    /// `auth_param basic realm`, sent in `Proxy-Authenticate`.
    pub realm: String,
    /// `auth_param basic credentialsttl`: how long verified credentials are trusted without
    /// checking the hash again.
    pub credentials_ttl: Duration,
    /// `auth_param basic casesensitive` (default off: user names are lower-cased first).
    pub case_sensitive: bool,
    /// The `auth_param basic program` line.
    pub origin: Origin,
}

/// What `deny_info` answers instead of the plain 403 when a request is denied by an
/// `http_access` line whose last ACL it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DenyAnswer {
    /// `deny_info [STATUS:]ERR_NAME`: the error named (in `X-Squid-Error`, Proxy-Status details
    /// and the body), with STATUS or 403.
    ErrorPage { status: u16, name: String },
    /// `deny_info [3XX:]URL`: a redirect; without a status, 302 for GET/HEAD and 307 otherwise,
    /// as Squid does. `%`-codes in the URL are expanded per request.
    Redirect { status: Option<u16>, url: String },
}

/// One `deny_info ANSWER ACL…` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DenyInfo {
    pub answer: DenyAnswer,
    /// Indices into `Config::acls` of the ACLs the line names.
    pub acls: Vec<usize>,
    pub origin: Origin,
}

/// A directive accepted for compatibility but without effect in hopproxy, for `check`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ignored {
    pub directive: String,
    pub origin: Origin,
    pub reason: &'static str,
    /// Squid 5.7 ignores it too (an obsolete name), so behaviour does not differ.
    pub squid_ignores: bool,
    /// The line's arguments (for `check --squid-diff`, e.g. `cache deny all`).
    pub args: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The file given on the command line.
    pub source: PathBuf,
    pub http_ports: Vec<HttpPort>,
    pub acls: AclSet,
    pub http_access: RuleList,
    /// `http_reply_access`: checked once the next hop's answer head is read; no rules → allow.
    pub http_reply_access: RuleList,
    pub peers: Vec<Peer>,
    pub never_direct: RuleList,
    pub always_direct: RuleList,
    pub access_logs: Vec<AccessLog>,
    /// `hosts_file`; `None` after `hosts_file none`.
    pub hosts_file: Option<PathBuf>,
    /// `dns_nameservers`: the DNS servers to ask; empty = those of /etc/resolv.conf.
    pub dns_nameservers: Vec<IpAddr>,
    /// `visible_hostname`; `None` = the machine's host name.
    pub visible_hostname: Option<String>,
    pub via: bool,
    pub forwarded_for: ForwardedFor,
    pub connect_timeout: Duration,
    pub peer_connect_timeout: Duration,
    pub read_timeout: Duration,
    /// `forward_timeout`: how long one request may spend finding a next hop that answers
    /// (connecting, retrying, failing over, waiting for the response head).
    pub forward_timeout: Duration,
    /// `forward_max_tries`: most attempts (connections and re-sent requests) for one request.
    pub forward_max_tries: u32,
    /// `connect_retries`: extra connect attempts to the same next hop before moving on.
    pub connect_retries: u32,
    /// `retry_on_error`: a 403, 500, 501, 502, 503 or 504 answer sends a repeatable request to
    /// the next planned hop instead of being relayed (off: the answer is relayed).
    pub retry_on_error: bool,
    /// `write_timeout`: data written to a client or server may stay unacknowledged this long
    /// (TCP_USER_TIMEOUT) before the connection is dropped.
    pub write_timeout: Duration,
    pub request_start_timeout: Duration,
    /// `request_timeout`: the whole first request head must arrive within it.
    pub request_timeout: Duration,
    /// `dns_timeout`: how long one name lookup may take.
    pub dns_timeout: Duration,
    pub client_lifetime: Duration,
    pub request_header_max_size: usize,
    pub shutdown_lifetime: Duration,
    pub pid_filename: PidFilename,
    pub tcp_outgoing_address: Vec<OutgoingAddress>,
    /// `strip_query_terms` (default on): drop the query from logged URLs.
    pub strip_query_terms: bool,
    /// `nonhierarchical_direct` (default on) and `prefer_direct` (default off): with the first
    /// off and the second off, requests that may go either way try their parents first and
    /// go direct only when every parent failed (see `route::select::route_shape`).
    pub nonhierarchical_direct: bool,
    pub prefer_direct: bool,
    /// `max_filedescriptors`; `None` = take the process limit.
    pub max_filedescriptors: Option<usize>,
    /// `client_ip_max_connections`; `None` = unlimited (Squid's -1).
    pub client_ip_max_connections: Option<usize>,
    /// hopproxy extension `max_client_connections`; `None` = derived from descriptors.
    pub max_client_connections: Option<usize>,
    /// `auth_param basic program …basic_ncsa_auth FILE`; `None` = no client authentication.
    pub auth: Option<BasicAuth>,
    /// `external_acl_type` lines; `external` ACLs point into it by index.
    pub external_acl_types: Vec<crate::helper::external::ExternalAclType>,
    /// `request_header_access` / `request_header_replace`.
    pub request_header_access: HeaderRules,
    /// `reply_header_access` / `reply_header_replace`.
    pub reply_header_access: HeaderRules,
    /// `follow_x_forwarded_for`: which addresses are trusted to report the client in
    /// `X-Forwarded-For`; empty = none (Squid's default).
    pub follow_x_forwarded_for: RuleList,
    /// `proxy_protocol_access`: which connecting addresses may send a PROXY header on a
    /// `require-proxy-header` port; empty = none (Squid's default `deny all`).
    pub proxy_protocol_access: RuleList,
    /// `cache_effective_user`: the user to switch to once ports and logs are open as root;
    /// `None` = [`defaults::EFFECTIVE_USER`] (only when started as root).
    pub effective_user: Option<String>,
    /// `cache_effective_group`: `None` = the effective user's primary group.
    pub effective_group: Option<String>,
    /// `deny_info` lines, in order: the first that names an ACL applies to it.
    pub deny_info: Vec<DenyInfo>,
    /// hopproxy extension `metrics_port`: where `/metrics` is served; `None` = nowhere.
    pub metrics_port: Option<HttpPort>,
    /// `cache_log`: a file that gets the diagnostics too (they always go to stderr).
    pub cache_log: Option<PathBuf>,
    /// `debug_options`, as written (`ALL,1 33,2`); `HOPPROXY_LOG` overrides it.
    pub debug_options: Vec<String>,
    /// `delay_pools` and its companions: bandwidth shaping of what clients receive.
    pub delay_pools: DelayPools,
    /// `ssl_bump`, `on_unsupported_protocol`, `tunnel_sni_must_match`: for `ssl-bump` ports.
    pub tunnel_rules: TunnelRules,
    pub ignored: Vec<Ignored>,
}

/// `delay_pools N`, `delay_class`, `delay_parameters`, `delay_access`,
/// `delay_initial_bucket_level`, validated. Only pools that can take a request are kept.
#[derive(Debug, Clone, PartialEq)]
pub struct DelayPools {
    pub pools: Vec<DelayPool>,
    /// `delay_initial_bucket_level`: how full (percent) a bucket starts; Squid's default 50.
    pub initial_level_percent: u8,
}

impl Default for DelayPools {
    fn default() -> Self {
        DelayPools {
            pools: Vec::new(),
            initial_level_percent: 50,
        }
    }
}

/// One pool. Its buckets in Squid's order: aggregate, then (classes 3 and 4) the client's
/// /24 network, then (classes 2 to 4) the individual client, then (class 4) the user.
#[derive(Debug, Clone, PartialEq)]
pub struct DelayPool {
    /// Squid's pool number (1-based), as the config names it.
    pub number: usize,
    pub class: u8,
    pub aggregate: BucketSpec,
    pub network: Option<BucketSpec>,
    pub individual: Option<BucketSpec>,
    /// Class 4: one bucket per authenticated user (requests without one skip it).
    pub user: Option<BucketSpec>,
    /// `delay_access N …`: a request goes into the first pool whose list allows it.
    pub access: RuleList,
    /// The `delay_class` line.
    pub origin: crate::policy::Origin,
}

/// `RATE/MAX` of `delay_parameters`: refill in bytes per second and bucket size in bytes.
/// `-1/-1` (`rate: None`) is a bucket that never limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BucketSpec {
    pub rate: Option<u64>,
    pub max: u64,
}

impl BucketSpec {
    pub const UNLIMITED: BucketSpec = BucketSpec { rate: None, max: 0 };
}

impl std::fmt::Display for BucketSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.rate {
            None => f.write_str("unlimited"),
            Some(rate) => write!(f, "{rate} bytes/s, bucket {} bytes", self.max),
        }
    }
}

/// `pid_filename`: not set (Squid's default file), `none`, or a path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PidFilename {
    Default,
    None,
    File(PathBuf),
}

impl PidFilename {
    /// The file the daemon writes and the control commands read; `None` for `pid_filename none`.
    pub fn path(&self) -> Option<PathBuf> {
        match self {
            PidFilename::Default => Some(PathBuf::from(defaults::PID_FILE)),
            PidFilename::None => None,
            PidFilename::File(path) => Some(path.clone()),
        }
    }
}

impl Config {
    /// The diagnostics level `debug_options ALL,N` asks for (Squid's 0 = critical only,
    /// 1 = important, the default, up to 9 = everything); `None` when it does not say.
    pub fn diagnostics_level(&self) -> Option<&'static str> {
        let all = self
            .debug_options
            .iter()
            .filter_map(|o| o.split_once(','))
            .filter(|(section, _)| section.eq_ignore_ascii_case("ALL"))
            .filter_map(|(_, level)| level.parse::<u8>().ok())
            .next_back()?;
        Some(match all {
            0 => "error",
            1 => "info",
            2..=4 => "debug",
            _ => "trace",
        })
    }

    /// A config with Squid's defaults and no ports, rules or peers (deny-all).
    pub fn empty(source: PathBuf) -> Config {
        Config {
            source,
            http_ports: Vec::new(),
            acls: AclSet::default(),
            http_access: RuleList::default(),
            http_reply_access: RuleList::default(),
            peers: Vec::new(),
            never_direct: RuleList::default(),
            always_direct: RuleList::default(),
            access_logs: Vec::new(),
            delay_pools: DelayPools::default(),
            hosts_file: Some(PathBuf::from(defaults::HOSTS_FILE)),
            dns_nameservers: Vec::new(),
            visible_hostname: None,
            via: true,
            forwarded_for: ForwardedFor::On,
            connect_timeout: defaults::CONNECT_TIMEOUT,
            peer_connect_timeout: defaults::PEER_CONNECT_TIMEOUT,
            read_timeout: defaults::READ_TIMEOUT,
            forward_timeout: defaults::FORWARD_TIMEOUT,
            forward_max_tries: defaults::FORWARD_MAX_TRIES,
            connect_retries: 0,
            retry_on_error: false,
            write_timeout: defaults::WRITE_TIMEOUT,
            request_start_timeout: defaults::REQUEST_START_TIMEOUT,
            request_timeout: defaults::REQUEST_TIMEOUT,
            dns_timeout: defaults::DNS_TIMEOUT,
            client_lifetime: defaults::CLIENT_LIFETIME,
            request_header_max_size: defaults::REQUEST_HEADER_MAX_SIZE,
            shutdown_lifetime: defaults::SHUTDOWN_LIFETIME,
            pid_filename: PidFilename::Default,
            tcp_outgoing_address: Vec::new(),
            strip_query_terms: true,
            nonhierarchical_direct: true,
            prefer_direct: false,
            max_filedescriptors: None,
            client_ip_max_connections: None,
            max_client_connections: None,
            auth: None,
            external_acl_types: Vec::new(),
            request_header_access: HeaderRules::default(),
            reply_header_access: HeaderRules::default(),
            follow_x_forwarded_for: RuleList::default(),
            proxy_protocol_access: RuleList::default(),
            effective_user: None,
            effective_group: None,
            deny_info: Vec::new(),
            metrics_port: None,
            cache_log: None,
            debug_options: Vec::new(),
            tunnel_rules: TunnelRules::default(),
            ignored: Vec::new(),
        }
    }

    /// The `http_port` a connection accepted on `local_port` at `local_ip` belongs to.
    pub fn http_port_for(&self, local_port: u16, local_ip: Option<IpAddr>) -> Option<&HttpPort> {
        self.http_ports
            .iter()
            .find(|p| p.port == local_port && (p.addr.is_none() || p.addr.map(|a| a.to_canonical()) == local_ip))
    }

    /// The `deny_info` answer for a denial whose deciding ACL is `acl` (an index into `acls`).
    pub fn deny_answer(&self, acl: usize) -> Option<&DenyAnswer> {
        self.deny_info.iter().find(|d| d.acls.contains(&acl)).map(|d| &d.answer)
    }
}

//! One generation of runtime state: the validated config plus what is derived from it
//! (route's state, log outputs, authentication, identity). Swapped whole on reload;
//! connections keep the generation they started with.

use std::sync::Arc;

use crate::auth::Authenticator;
use crate::config::Config;
use crate::helper::external::External;
use crate::log::{Format, LogSender, Needs};
use crate::metrics::{HopTimers, RuleCounters, rule_label};
use crate::policy::{AclKind, AclRef};
use crate::route::Egress;

pub struct Generation {
    pub config: Arc<Config>,
    /// `visible_hostname`, or the machine's host name.
    pub hostname: String,
    /// Our `Via` entry: `1.1 <hostname> (hopproxy/<version>)`.
    pub via_entry: String,
    /// Route's state: resolver, parent health, rotation.
    pub egress: Arc<Egress>,
    /// One entry per `access_log` line that writes somewhere.
    pub logs: Vec<AccessLogOutput>,
    /// What the formats of `logs` read beyond the native format's fields.
    pub log_needs: Needs,
    /// Client proxy authentication (`auth_param basic`), if configured.
    pub auth: Option<Authenticator>,
    /// One runtime (helper pool and result cache) per `external_acl_type`, by index.
    pub external: Vec<External>,
    /// The decision counters of `config.http_access.rules[i]` (labelled with its `FILE:LINE`),
    /// made once here so counting a decision never formats a label nor looks one up.
    pub rule_counters: RuleCounters,
    /// Connect-time histograms by `config.peers[i]` (labelled with its name) and direct.
    pub hop_timers: HopTimers,
    /// Which request facts the configured ACLs read, worked out once per config so a request
    /// gathers only those.
    pub acl_reads: AclReads,
    /// Delay pools with their buckets: new ones (full to `delay_initial_bucket_level`) with
    /// every generation, as Squid resets them on reconfigure.
    pub shaping: crate::shaping::Pools,
}

/// Request facts that cost work to gather (a DNS answer, a built URL, the local time), and
/// whether this config's ACLs read them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AclReads {
    /// `dst` ACLs in `http_access` or in routing: resolve before deciding.
    pub dst_addrs: bool,
    /// `url_regex` or an external ACL: the canonical URL.
    pub url: bool,
    /// `time`: the local wall-clock time.
    pub clock: bool,
}

impl AclReads {
    pub fn of(config: &Config) -> AclReads {
        let kinds = || config.acls.acls.iter().map(|a| &a.kind);
        AclReads {
            dst_addrs: config.http_access.needs_dst_addrs(&config.acls)
                || crate::route::select::needs_dst_addrs(config),
            // External ACL formats may send the URL (`%URI`) to their helper.
            url: kinds().any(|k| matches!(k, AclKind::UrlRegex(_))) || !config.external_acl_types.is_empty(),
            clock: kinds().any(|k| matches!(k, AclKind::Time(_))),
        }
    }
}

/// Where one `access_log` line's records go, and which transactions it takes.
pub struct AccessLogOutput {
    pub sender: LogSender,
    pub format: Format,
    /// Log only transactions matching all of these (empty = all).
    pub acls: Vec<AclRef>,
}

impl Generation {
    /// Builds the state for `config`; route's state carries over from `previous` (see
    /// [`Egress::new`]).
    pub fn new(
        config: Arc<Config>,
        previous: Option<&Generation>,
        logs: Vec<AccessLogOutput>,
    ) -> std::io::Result<Generation> {
        // The hosts_file is read first: its error is the one reported when both fail.
        let egress = Arc::new(Egress::new(&config, previous.map(|p| &*p.egress))?);
        let auth = Authenticator::from_config(&config)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, format!("proxy authentication: {e}")))?;
        let hostname = config.visible_hostname.clone().unwrap_or_else(machine_hostname);
        let via_entry = format!("1.1 {hostname} (hopproxy/{})", env!("CARGO_PKG_VERSION"));
        let rule_counters = RuleCounters::new(config.http_access.rules.iter().map(|r| rule_label(&r.origin)).collect());
        let hop_timers = HopTimers::new(config.peers.iter().map(|p| Arc::from(p.name.as_str())).collect());
        let log_needs = logs.iter().fold(Needs::default(), |n, l| n.union(l.format.needs()));
        let external = config.external_acl_types.iter().cloned().map(External::new).collect();
        Ok(Generation {
            acl_reads: AclReads::of(&config),
            shaping: crate::shaping::Pools::new(&config),
            rule_counters,
            external,
            hop_timers,
            config,
            hostname,
            via_entry,
            egress,
            logs,
            log_needs,
            auth,
        })
    }
}

/// The kernel's host name, as Squid uses it when `visible_hostname` is unset.
pub fn machine_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

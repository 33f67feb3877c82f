//! One generation of runtime state: the validated config plus what is derived from it
//! (route's state, log outputs, authentication, identity). Swapped whole on reload;
//! connections keep the generation they started with.

use std::sync::Arc;

use crate::auth::Authenticator;
use crate::config::Config;
use crate::helper::external::External;
use crate::log::{Format, LogSender, Needs};
use crate::metrics::rule_label;
use crate::policy::AclRef;
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
    /// Metric labels of `config.http_access.rules[i]` (its `FILE:LINE`), made once here so
    /// counting a decision never formats one.
    pub rule_labels: Vec<Arc<str>>,
    /// Metric labels of `config.peers[i]` (its name).
    pub peer_labels: Vec<Arc<str>>,
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
        let rule_labels = config.http_access.rules.iter().map(|r| rule_label(&r.origin)).collect();
        let peer_labels = config.peers.iter().map(|p| Arc::from(p.name.as_str())).collect();
        let log_needs = logs.iter().fold(Needs::default(), |n, l| n.union(l.format.needs()));
        let external = config.external_acl_types.iter().cloned().map(External::new).collect();
        Ok(Generation {
            external,
            rule_labels,
            peer_labels,
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

//! Directive lines → [`Config`]: one builder that applies each directive with Squid's
//! semantics and collects every problem instead of stopping at the first.

mod auth_param;
mod delay_pools;
mod external_acl;
mod ssl_bump;
mod tls_options;

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;

use super::acl_parse::{self, AclDraft, Value};
use super::diag::Diagnostic;
use super::known::{self, Class};
use super::lexer::{Line, Token};
use super::model::*;
use super::source;
use super::suggest;
use super::units;
use crate::log::Format;
use crate::log::format as log_format;
use crate::policy::{Acl, AclKind, AclRef, AclSet, Action, IpMatch, Origin, Rule, RuleList};
use tls_options::{HttpsOption, PeerOption, PeerTlsDraft, TlsDraft, https_option};

/// Names of ACLs Squid 5 defines before reading the config (cf.data.pre, `acl`).
/// `to_linklocal` is Squid 6's (its default config uses it); Squid 5.7 configs may define it.
pub const BUILTIN_ACLS: &[&str] = &["all", "manager", "localhost", "to_localhost", "to_linklocal", "CONNECT"];

/// Log format names Squid knows without a `logformat` line.
const BUILTIN_LOGFORMATS: &[&str] = &["squid", "common", "combined", "referrer", "useragent", "icap_squid"];

/// The formats every config knows: Squid's built-ins, compiled once.
fn builtin_formats() -> HashMap<String, Format> {
    let mut formats = HashMap::new();
    formats.insert("squid".to_string(), Format::Native);
    for (name, text) in log_format::BUILTIN {
        let compiled = log_format::compile(text).expect("the built-in formats compile");
        formats.insert(name.to_string(), Format::Custom(Arc::new(compiled)));
    }
    formats
}

/// `http_port` options Squid knows besides the certificate ones of
/// [`ssl_bump::BUMP_CERT_OPTIONS`] (see [`squid_port_options`]).
const SQUID_PORT_OPTIONS: &[&str] = &[
    "intercept",
    "transparent",
    "tproxy",
    "accel",
    "defaultsite",
    "vhost",
    "vport",
    "protocol",
    "ignore-cc",
    "allow-direct",
    "connection-auth",
    "require-proxy-header",
    "ssl-bump",
    "tls-bump",
    "tcpkeepalive",
    "disable-pmtu-discovery",
    "worker-queues",
    "act-as-origin",
    "name",
    "ipv4",
    "no-vhost",
];

/// Every `http_port` option Squid knows (for did-you-mean hints); [`port_option`] says what
/// hopproxy does with each.
fn squid_port_options() -> impl Iterator<Item = &'static str> {
    SQUID_PORT_OPTIONS.iter().chain(ssl_bump::BUMP_CERT_OPTIONS).copied()
}

/// What hopproxy does with one `http_port` option.
enum PortOption {
    Accepted,
    Ignored(&'static str),
    Rejected(&'static str),
    Unknown,
}

fn port_option(key: &str, has_value: bool) -> PortOption {
    const INTERCEPT: &str = "hopproxy is an explicit forward proxy: configure clients to use it \
        (proxy settings, HTTP_PROXY/HTTPS_PROXY) instead of intercepting their traffic";
    const ACCEL: &str = "hopproxy is a forward proxy, not an accelerator: put a reverse proxy \
        (nginx, HAProxy) in front of the origin instead";
    const TLS: &str = "an http_port speaks plain HTTP and tunnels HTTPS with CONNECT end to end; \
        for a TLS listener use https_port with tls-cert= and tls-key=";
    match key {
        // `name=` labels the port for myportname ACLs and logs; `ipv4` only restricts Squid's
        // own IPv6 handling of an IPv4 address, which hopproxy does not have.
        "name" if has_value => PortOption::Accepted,
        "ipv4" if !has_value => PortOption::Accepted,
        // Squid 5.7 says "no-vhost option requires Acceleration mode flag" and goes on.
        "no-vhost" => {
            PortOption::Ignored("only meaningful with 'accel'; Squid 5.7 ignores it on a forward-proxy port too")
        }
        // Connection-oriented auth (NTLM/Negotiate) is not offered, so the choice has no effect.
        "connection-auth" if has_value => PortOption::Accepted,
        "intercept" | "transparent" | "tproxy" => PortOption::Rejected(INTERCEPT),
        "accel" | "defaultsite" | "vhost" | "vport" | "protocol" | "ignore-cc" | "allow-direct" | "act-as-origin" => {
            PortOption::Rejected(ACCEL)
        }
        "disable-pmtu-discovery" | "worker-queues" => {
            PortOption::Rejected("a Squid tuning knob with no counterpart in hopproxy; remove it")
        }
        k if squid_port_options().any(|o| o == k) => PortOption::Rejected(TLS),
        _ => PortOption::Unknown,
    }
}

/// `cache_peer` options that only matter to Squid's caching, ICP or digests: accepted silently.
const PEER_HARMLESS_OPTIONS: &[&str] = &[
    "proxy-only",
    "no-query",
    "no-digest",
    "no-netdb-exchange",
    "no-delay",
    "no-tproxy",
    "closest-only",
    "background-ping",
    "allow-miss",
    "htcp",
    "htcp-oldsquid",
    "htcp-no-clr",
    "htcp-no-purge-clr",
    "htcp-only-clr",
    "htcp-forward-clr",
    "multicast-responder",
    "multicast-siblings",
    "ttl",
    "connection-auth",
    "auth-no-keytab",
    "digest-url",
];

/// `cache_peer` options that would change where or how traffic goes; hopproxy cannot honour
/// them, so accepting them silently would be unsafe.
const PEER_UNSUPPORTED_OPTIONS: &[&str] = &[
    "originserver",
    "forceddomain",
    "carp",
    "carp-key",
    "userhash",
    "sourcehash",
    "max-conn",
    "standby",
    "monitorurl",
    "monitorinterval",
    "monitorsize",
    "monitortimeout",
];

pub struct Builder {
    config: Config,
    acls: Vec<AclDraft>,
    acl_index: HashMap<String, usize>,
    /// Every ACL name defined anywhere, with its first line: to say "defined later".
    acl_definitions: HashMap<String, Origin>,
    /// ACL names whose definition was rejected (already reported).
    failed_acls: HashSet<String>,
    /// Referenced files (ACL value lists, password files) are not read: `check --syntax-only`.
    syntax_only: bool,
    peer_index: HashMap<String, usize>,
    /// Formats by name: the built-ins, then each `logformat` line's, compiled.
    logformats: HashMap<String, Format>,
    /// `auth_param basic` lines seen so far.
    auth: auth_param::AuthDraft,
    /// `delay_*` lines seen so far.
    delay: delay_pools::DelayDraft,
    diags: Vec<Diagnostic>,
}

impl Builder {
    pub fn new(source: PathBuf) -> Builder {
        let mut builder = Builder {
            config: Config::empty(source),
            acls: Vec::new(),
            acl_index: HashMap::new(),
            acl_definitions: HashMap::new(),
            failed_acls: HashSet::new(),
            syntax_only: false,
            peer_index: HashMap::new(),
            logformats: builtin_formats(),
            auth: auth_param::AuthDraft::default(),
            delay: delay_pools::DelayDraft::default(),
            diags: Vec::new(),
        };
        for draft in builtin_acls() {
            builder.acl_index.insert(draft.name.clone(), builder.acls.len());
            builder.acls.push(draft);
        }
        builder
    }

    /// Skips reading the files a config refers to (ACL value lists, password files), as
    /// `squid -k parse` validates syntax without needing them.
    pub fn syntax_only(mut self, yes: bool) -> Builder {
        self.syntax_only = yes;
        self
    }

    /// Applies every line, then the whole-config checks.
    pub fn build(mut self, lines: &[Line]) -> (Config, Vec<Diagnostic>) {
        for line in lines {
            if line.name() == "acl"
                && let Some(name) = line.args().first()
            {
                self.acl_definitions
                    .entry(name.text.clone())
                    .or_insert_with(|| line.origin.clone());
            }
        }
        for line in lines {
            self.directive(line);
        }
        self.finish(lines);
        (self.config, self.diags)
    }

    fn error(&mut self, origin: &Origin, message: impl Into<String>) -> &mut Diagnostic {
        self.diags.push(Diagnostic::error(origin, message));
        self.diags.last_mut().expect("just pushed")
    }

    fn warning(&mut self, origin: &Origin, message: impl Into<String>) -> &mut Diagnostic {
        self.diags.push(Diagnostic::warning(origin, message));
        self.diags.last_mut().expect("just pushed")
    }

    fn directive(&mut self, line: &Line) {
        // Squid's old names (`cache_access_log`, `no_cache`, …) mean what the new ones mean.
        let name = known::canonical(line.name());
        match name {
            "acl" => self.acl(line),
            "http_access" => {
                if let Some(rule) = self.rule(line) {
                    self.config.http_access.rules.push(rule);
                }
            }
            "http_reply_access" => {
                if let Some(rule) = self.rule(line) {
                    self.config.http_reply_access.rules.push(rule);
                }
            }
            "never_direct" => {
                if let Some(rule) = self.rule(line) {
                    self.config.never_direct.rules.push(rule);
                }
            }
            "always_direct" => {
                if let Some(rule) = self.rule(line) {
                    self.config.always_direct.rules.push(rule);
                }
            }
            "follow_x_forwarded_for" => {
                if let Some(rule) = self.rule(line) {
                    self.config.follow_x_forwarded_for.rules.push(rule);
                }
            }
            "proxy_protocol_access" => {
                if let Some(rule) = self.rule(line) {
                    self.config.proxy_protocol_access.rules.push(rule);
                }
            }
            "cache_effective_user" => {
                if let Some(value) = self.one_arg(line, "cache_effective_user USER") {
                    self.config.effective_user = Some(value.to_string());
                }
            }
            "cache_effective_group" => {
                if let Some(value) = self.one_arg(line, "cache_effective_group GROUP") {
                    self.config.effective_group = Some(value.to_string());
                }
            }
            "http_port" => self.http_port(line, false),
            "https_port" => self.http_port(line, true),
            "auth_param" => self.auth_param(line),
            "delay_pools" | "delay_class" | "delay_parameters" | "delay_access" | "delay_initial_bucket_level" => {
                self.delay_directive(line)
            }
            "external_acl_type" => self.external_acl_type(line),
            "cache_peer" => self.cache_peer(line),
            "cache_peer_access" => self.cache_peer_access(line),
            "access_log" => self.access_log(line),
            "request_header_access" | "reply_header_access" => self.header_access(line),
            "request_header_replace" | "reply_header_replace" => self.header_replace(line),
            "logformat" => self.logformat(line),
            "hosts_file" => {
                if let Some(value) = self.one_arg(line, "hosts_file PATH|none") {
                    self.config.hosts_file = (value != "none").then(|| source::resolve(value, &line.origin.file));
                }
            }
            "pid_filename" => {
                if let Some(value) = self.one_arg(line, "pid_filename PATH|none") {
                    self.config.pid_filename = if value == "none" {
                        PidFilename::None
                    } else {
                        PidFilename::File(source::resolve(value, &line.origin.file))
                    };
                }
            }
            "dns_nameservers" => self.dns_nameservers(line),
            "visible_hostname" => {
                if let Some(value) = self.one_arg(line, "visible_hostname NAME") {
                    self.config.visible_hostname = Some(value.to_string());
                }
            }
            "via" => {
                if let Some(on) = self.on_off(line) {
                    self.config.via = on;
                }
            }
            "strip_query_terms" => {
                if let Some(on) = self.on_off(line) {
                    self.config.strip_query_terms = on;
                }
            }
            "nonhierarchical_direct" => {
                if let Some(on) = self.on_off(line) {
                    self.config.nonhierarchical_direct = on;
                }
            }
            "prefer_direct" => {
                if let Some(on) = self.on_off(line) {
                    self.config.prefer_direct = on;
                }
            }
            "forwarded_for" => self.forwarded_for(line),
            "connect_timeout" => self.duration(line, |c| &mut c.connect_timeout),
            "peer_connect_timeout" => self.duration(line, |c| &mut c.peer_connect_timeout),
            "read_timeout" => self.duration(line, |c| &mut c.read_timeout),
            "forward_timeout" => self.duration(line, |c| &mut c.forward_timeout),
            "forward_max_tries" => {
                if let Some(n) = self.number(line, "forward_max_tries N (at least 1)") {
                    if n < 1 {
                        self.error(&line.origin, "forward_max_tries must be at least 1").hint =
                            Some("Squid's default is 25".into());
                    } else {
                        self.config.forward_max_tries = u32::try_from(n).unwrap_or(u32::MAX);
                    }
                }
            }
            "connect_retries" => {
                if let Some(n) = self.number(line, "connect_retries N (0 to 10)") {
                    if !(0..=10).contains(&n) {
                        self.error(&line.origin, "connect_retries must be between 0 and 10")
                            .hint = Some("Squid caps it at 10; the default is 0".into());
                    } else {
                        self.config.connect_retries = n as u32;
                    }
                }
            }
            "retry_on_error" => {
                if let Some(on) = self.on_off(line) {
                    self.config.retry_on_error = on;
                }
            }
            "write_timeout" => self.duration(line, |c| &mut c.write_timeout),
            "request_start_timeout" => self.duration(line, |c| &mut c.request_start_timeout),
            "client_lifetime" => self.duration(line, |c| &mut c.client_lifetime),
            "shutdown_lifetime" => self.duration(line, |c| &mut c.shutdown_lifetime),
            "request_header_max_size" => match units::parse_size(line.args()) {
                Ok(0) => {
                    self.error(&line.origin, "request_header_max_size must be larger than 0");
                }
                Ok(size) => self.config.request_header_max_size = usize::try_from(size).unwrap_or(usize::MAX),
                Err(message) => {
                    self.error(&line.origin, format!("request_header_max_size: {message}"));
                }
            },
            "tcp_outgoing_address" => self.tcp_outgoing_address(line),
            "max_filedescriptors" => {
                if let Some(n) = self.number(line, "max_filedescriptors N") {
                    self.config.max_filedescriptors = (n > 0).then_some(n as usize);
                }
            }
            "client_ip_max_connections" => {
                if let Some(n) = self.number(line, "client_ip_max_connections N (-1 = unlimited)") {
                    if n == 0 {
                        self.warning(&line.origin, "client_ip_max_connections 0 refuses every client")
                            .hint = Some("use -1 for no limit".into());
                    }
                    self.config.client_ip_max_connections = (n >= 0).then_some(n as usize);
                }
            }
            known::EXT_MAX_CLIENT_CONNECTIONS => {
                self.diags.push(
                    Diagnostic::note(
                        &line.origin,
                        "'max_client_connections' is a hopproxy extension (Squid does not know it)",
                    )
                    .with_hint("caps concurrent client connections; more are answered with 503"),
                );
                if let Some(n) = self.number(line, "max_client_connections N") {
                    if n <= 0 {
                        self.error(&line.origin, "max_client_connections must be at least 1");
                    } else {
                        self.config.max_client_connections = Some(n as usize);
                    }
                }
            }
            known::EXT_METRICS_PORT => self.metrics_port(line),
            "ssl_bump" => self.ssl_bump(line),
            "on_unsupported_protocol" => self.on_unsupported_protocol(line),
            known::EXT_TUNNEL_SNI_MUST_MATCH => self.tunnel_sni_must_match(line),
            "cache_log" => {
                if let Some(value) = self.one_arg(line, "cache_log PATH") {
                    let value = value.strip_prefix("stdio:").unwrap_or(value);
                    self.config.cache_log = (value != "none").then(|| source::resolve(value, &line.origin.file));
                }
            }
            "debug_options" => self.debug_options(line),
            "include" => {} // expanded by the reader
            "deny_info" => self.deny_info(line),
            "dns_timeout" => self.duration(line, |c| &mut c.dns_timeout),
            "request_timeout" => self.duration(line, |c| &mut c.request_timeout),
            "logfile_rotate" => {
                // hopproxy reopens its logs on SIGUSR1 and leaves renaming to logrotate; the
                // number of old files to keep is logrotate's `rotate N`.
                if self.number(line, "logfile_rotate N").is_some() {
                    self.diags.push(
                        Diagnostic::note(
                            &line.origin,
                            "logfile_rotate: hopproxy reopens its logs on SIGUSR1 and leaves renaming to logrotate",
                        )
                        .with_hint(
                            "keep N old files with logrotate's 'rotate N' (as Squid does with logfile_rotate 0)",
                        ),
                    );
                }
            }
            other => self.not_implemented(line, other),
        }
    }

    /// A directive without its own handler: ignored, accepted for its default value, or
    /// rejected, as the table in [`known`] says.
    fn not_implemented(&mut self, line: &Line, name: &str) {
        let written = line.name();
        match known::class_of(name) {
            Some(Class::Caching(reason)) | Some(Class::Obsolete(reason)) => {
                self.config.ignored.push(Ignored {
                    directive: written.to_string(),
                    origin: line.origin.clone(),
                    reason,
                    squid_ignores: matches!(known::class_of(name), Some(Class::Obsolete(_))),
                    args: line.args().iter().map(|t| t.text.clone()).collect(),
                });
            }
            Some(Class::DefaultOnly { default, instead }) => {
                let value: Vec<&str> = line.args().iter().map(|t| t.text.as_str()).collect();
                let written_value = value.join(" ");
                if !default.split('|').any(|v| v.eq_ignore_ascii_case(&written_value)) {
                    self.error(
                        &line.origin,
                        format!(
                            "'{written} {written_value}': hopproxy supports only '{written} {}'",
                            default.replace('|', "' or '")
                        ),
                    )
                    .hint = Some(format!("{instead} (or remove the line)"));
                }
            }
            Some(Class::Rejected(instead)) => {
                self.error(
                    &line.origin,
                    format!("'{written}' is a Squid directive that hopproxy does not support"),
                )
                .hint = Some(instead.to_string());
            }
            Some(Class::Supported) => {
                // The table and the handlers disagree: a bug, reported rather than ignored.
                self.error(&line.origin, format!("'{written}' has no handler in this build"));
            }
            None => {
                let hint = suggest::did_you_mean(written, known::all_names());
                self.error(&line.origin, format!("unknown directive '{written}'")).hint = hint;
            }
        }
    }

    // --- ACLs and rules -------------------------------------------------------------------

    /// One `acl` line. A line that fails leaves its name in `failed_acls`, so the rules that use
    /// it add no "ACL not found" on top of the real error.
    fn acl(&mut self, line: &Line) {
        let errors_before = self.diags.iter().filter(|d| d.is_error()).count();
        self.acl_line(line);
        if self.diags.iter().filter(|d| d.is_error()).count() > errors_before
            && let Some(name) = line.args().first()
            && !self.acl_index.contains_key(&name.text)
        {
            self.failed_acls.insert(name.text.clone());
        }
    }

    fn acl_line(&mut self, line: &Line) {
        let origin = &line.origin;
        let args = line.args();
        if args.len() < 2 {
            self.error(origin, "acl needs a name and a type").hint = Some("acl NAME TYPE VALUE…".into());
            return;
        }
        let name = args[0].text.as_str();
        if name.starts_with('!') || name.contains(['"', '\'']) {
            self.error(origin, format!("'{name}' is not a valid ACL name"));
            return;
        }
        let type_name = args[1].text.as_str();
        let mut values_tokens = &args[2..];
        // Flags between the type and the values: `-n` (no DNS for dstdomain; hopproxy never
        // does reverse DNS) and `--` are accepted; `-i` only makes sense for regex types.
        while let Some(first) = values_tokens.first().filter(|t| !t.quoted && t.text.starts_with('-')) {
            match first.text.as_str() {
                "-n" if type_name == "dstdomain" => values_tokens = &values_tokens[1..],
                // Names compare case-insensitively anyway; the SNI is what hopproxy sees.
                "-i" | "--client-requested" if type_name == "ssl::server_name" => values_tokens = &values_tokens[1..],
                "--server-provided" | "--consensus" if type_name.starts_with("ssl::server_name") => {
                    self.error(
                        origin,
                        format!("ssl::server_name option '{}' is not supported", first.text),
                    )
                    .hint = Some(
                        "hopproxy never reads the server's certificate; use --client-requested (the SNI), the default"
                            .into(),
                    );
                    return;
                }
                "--client-requested" if type_name == "ssl::server_name_regex" => values_tokens = &values_tokens[1..],
                "--" => {
                    values_tokens = &values_tokens[1..];
                    break;
                }
                _ => break,
            }
        }
        if type_name == "external" {
            if let Some(existing) = self.acl_index.get(name).map(|&i| &self.acls[i]) {
                let what = format!(
                    "ACL '{name}' was defined at {}; an external ACL takes one line",
                    existing.origin
                );
                self.error(origin, what).hint = Some("choose another name for this ACL".into());
                return;
            }
            if let Some(kind) = self.external_acl_kind(values_tokens, origin) {
                self.acl_index.insert(name.to_string(), self.acls.len());
                self.acls.push(AclDraft::new(name, type_name, origin, kind));
            }
            return;
        }
        let errors_before = self.diags.iter().filter(|d| d.is_error()).count();
        let values = self.expand_values(values_tokens, origin);
        let unreadable_file = self.diags.iter().filter(|d| d.is_error()).count() > errors_before;

        if let Some(&index) = self.acl_index.get(name) {
            let existing = &self.acls[index];
            if existing.builtin && self.redefines_builtin_harmlessly(name, type_name, &values) {
                return;
            }
            if existing.builtin && name == "to_linklocal" {
                // Not built into Squid 5.7, so its configs may define it as they like: the
                // definition takes the built-in's place.
                let kind = match acl_parse::empty_kind(type_name, origin) {
                    Ok(kind) => kind,
                    Err(diag) => {
                        self.diags.push(diag);
                        return;
                    }
                };
                let mut draft = AclDraft::new(name, type_name, origin, kind);
                let mut diags = Vec::new();
                acl_parse::add_values(&mut draft, &values, &mut diags);
                self.diags.extend(diags);
                self.acls[index] = draft;
                return;
            }
            let new_kind = match acl_parse::empty_kind(type_name, origin) {
                Ok(kind) => kind,
                Err(diag) => {
                    self.diags.push(diag);
                    return;
                }
            };
            let existing = &self.acls[index];
            if !acl_parse::same_type(&existing.kind, &new_kind)
                || matches!(existing.kind, AclKind::All | AclKind::Manager)
            {
                let (what, hint) = if existing.builtin {
                    (
                        format!("ACL '{name}' is built in (type '{}')", existing.type_name),
                        format!("choose another name for this '{type_name}' ACL"),
                    )
                } else {
                    (
                        format!(
                            "ACL '{name}' was defined with type '{}' at {}; this line says '{type_name}'",
                            existing.type_name, existing.origin
                        ),
                        "an ACL has one type: choose another name for this one".to_string(),
                    )
                };
                self.error(origin, what).hint = Some(hint);
                return;
            }
            let mut diags = Vec::new();
            acl_parse::add_values(&mut self.acls[index], &values, &mut diags);
            self.diags.extend(diags);
            return;
        }

        let kind = match acl_parse::empty_kind(type_name, origin) {
            Ok(kind) => kind,
            Err(diag) => {
                self.diags.push(diag);
                return;
            }
        };
        // Reported, but the ACL is still defined so the rules naming it add no noise.
        self.check_proxy_auth_acl(name, &kind, origin);
        let mut draft = AclDraft::new(name, type_name, origin, kind);
        if values.is_empty() && !unreadable_file && !(self.syntax_only && values_tokens.iter().any(|t| t.quoted)) {
            self.warning(origin, format!("ACL '{name}' has no values: it matches no request"));
        }
        let mut diags = Vec::new();
        acl_parse::add_values(&mut draft, &values, &mut diags);
        self.diags.extend(diags);
        self.acl_index.insert(name.to_string(), self.acls.len());
        self.acls.push(draft);
    }

    /// Stock configs redefine built-ins (`acl CONNECT method CONNECT`, `acl all src all`, the
    /// Squid 3 `acl manager proto cache_object`): the same meaning is accepted without a word.
    fn redefines_builtin_harmlessly(&self, name: &str, type_name: &str, values: &[Value]) -> bool {
        let texts: Vec<&str> = values.iter().map(|v| v.text.as_str()).collect();
        match name {
            "all" => {
                type_name == "src"
                    && texts
                        .iter()
                        .all(|t| ["all", "0.0.0.0/0", "0.0.0.0/0.0.0.0", "::/0", "0/0"].contains(t))
            }
            "manager" => {
                (type_name == "proto" && texts == ["cache_object"])
                    || type_name == "url_regex" && texts.iter().any(|t| t.contains("squid-internal-mgr"))
            }
            "CONNECT" => type_name == "method" && texts.iter().all(|t| *t == "CONNECT"),
            "to_linklocal" => type_name == "dst" && texts.iter().all(|t| ["169.254.0.0/16", "fe80::/10"].contains(t)),
            "localhost" => {
                type_name == "src"
                    && texts
                        .iter()
                        .all(|t| ["127.0.0.1", "127.0.0.1/32", "::1", "::1/128"].contains(t))
            }
            _ => false,
        }
    }

    /// Inline values, with each `"FILE"` replaced by the values read from that file.
    fn expand_values(&mut self, tokens: &[Token], origin: &Origin) -> Vec<Value> {
        let mut values = Vec::new();
        for token in tokens {
            if !token.quoted {
                values.push(Value {
                    text: token.text.clone(),
                    origin: origin.clone(),
                });
                continue;
            }
            let path = source::resolve(&token.text, &origin.file);
            if self.syntax_only {
                continue;
            }
            match source::read_text(&path) {
                Ok(text) => {
                    let file: Arc<Path> = Arc::from(path.as_path());
                    for (index, raw) in text.lines().enumerate() {
                        let value_origin = Origin {
                            file: file.clone(),
                            line: u32::try_from(index + 1).unwrap_or(u32::MAX),
                        };
                        for word in raw.split_whitespace() {
                            if word.starts_with('#') {
                                break;
                            }
                            values.push(Value {
                                text: word.to_string(),
                                origin: value_origin.clone(),
                            });
                        }
                    }
                }
                Err(e) => {
                    self.error(
                        origin,
                        format!("cannot read ACL values file '{}': {}", path.display(), e.error),
                    )
                    .hint = Some(
                        "the proxy reads it at start and on reload; 'hopproxy check --syntax-only' checks a config without its files"
                            .into(),
                    );
                }
            }
        }
        values
    }

    /// `[!]ACL…` references; `None` after reporting any name that is not defined (yet).
    fn acl_refs(&mut self, tokens: &[Token], origin: &Origin) -> Option<Vec<AclRef>> {
        let mut refs = Vec::new();
        let mut ok = true;
        for token in tokens {
            let (negated, name) = match token.text.strip_prefix('!') {
                Some(rest) => (true, rest),
                None => (false, token.text.as_str()),
            };
            match self.acl_index.get(name) {
                Some(&acl) => refs.push(AclRef { acl, negated }),
                None if self.failed_acls.contains(name) => ok = false,
                None => {
                    ok = false;
                    let hint = match self.acl_definitions.get(name) {
                        Some(defined) => Some(format!(
                            "'{name}' is defined later, at {defined}; an ACL must be defined before the line that uses it"
                        )),
                        None => {
                            let known = self.acl_index.keys().chain(self.acl_definitions.keys());
                            suggest::closest(name, known.map(String::as_str)).map(|close| {
                                match (self.acl_index.contains_key(close), self.acl_definitions.get(close)) {
                                    (false, Some(defined)) => format!(
                                        "did you mean '{close}'? (defined later, at {defined}; define ACLs before use)"
                                    ),
                                    _ => format!("did you mean '{close}'?"),
                                }
                            })
                        }
                    };
                    let hint = hint.or_else(|| {
                        Some(format!(
                            "define it before this line: 'acl {name} TYPE VALUE…', or use an ACL that exists"
                        ))
                    });
                    self.error(origin, format!("ACL not found: {name}")).hint = hint;
                }
            }
        }
        ok.then_some(refs)
    }

    /// `DIRECTIVE allow|deny [!]ACL…` for `http_access`, `never_direct`, `always_direct`, and
    /// (after the peer name) `cache_peer_access`.
    fn rule_from(&mut self, directive: &str, args: &[Token], origin: &Origin) -> Option<Rule> {
        let Some(action_token) = args.first() else {
            self.error(origin, format!("{directive} needs 'allow' or 'deny' and ACL names"));
            return None;
        };
        let action = match action_token.text.as_str() {
            "allow" => Action::Allow,
            "deny" => Action::Deny,
            other => {
                self.error(origin, format!("{directive}: '{other}' is neither 'allow' nor 'deny'"))
                    .hint = suggest::did_you_mean(other, ["allow", "deny"])
                    .or_else(|| Some(format!("{directive} allow|deny ACL…")));
                return None;
            }
        };
        let acls = self.acl_refs(&args[1..], origin)?;
        if acls.is_empty() {
            // Squid logs "Access line contains no ACL's, skipping" and drops the line.
            self.warning(
                origin,
                format!("{directive} line without ACLs is ignored (as Squid does)"),
            )
            .hint = Some(format!(
                "write '{directive} {} all' to match every request",
                action_token.text
            ));
            return None;
        }
        Some(Rule {
            action,
            acls,
            origin: origin.clone(),
        })
    }

    fn rule(&mut self, line: &Line) -> Option<Rule> {
        self.rule_from(line.name(), line.args(), &line.origin)
    }

    // --- listeners and parents ------------------------------------------------------------

    fn http_port(&mut self, line: &Line, https: bool) {
        let origin = &line.origin;
        let directive = if https { "https_port" } else { "http_port" };
        let Some(spec) = line.args().first() else {
            self.error(origin, "http_port needs a port").hint = Some("http_port [ADDRESS:]PORT, e.g. 3128".into());
            return;
        };
        let mut ok = true;
        match parse_listen(&spec.text) {
            Ok((addr, port)) => {
                let mut tcp_keepalive = None;
                let ssl_bump = line.args()[1..].iter().any(|o| o.text == "ssl-bump");
                let mut require_proxy_header = false;
                let mut tls = https.then(TlsDraft::default);
                for option in &line.args()[1..] {
                    let key = option.text.split('=').next().unwrap_or_default();
                    if option.text == "require-proxy-header" {
                        require_proxy_header = true;
                        continue;
                    }
                    if let Some(draft) = tls.as_mut() {
                        match https_option(draft, &option.text) {
                            HttpsOption::Taken => continue,
                            HttpsOption::Invalid(message, hint) => {
                                ok = false;
                                self.error(origin, format!("https_port option '{}': {message}", option.text))
                                    .hint = Some(hint.into());
                                continue;
                            }
                            HttpsOption::Ignored(reason) => {
                                self.config.ignored.push(Ignored {
                                    directive: format!("https_port option '{}'", option.text),
                                    origin: origin.clone(),
                                    reason,
                                    squid_ignores: false,
                                    args: Vec::new(),
                                });
                                continue;
                            }
                            HttpsOption::NotTls => {}
                        }
                    }
                    if option.text == "ssl-bump" || self.bump_port_option(&option.text, ssl_bump, origin) {
                        continue;
                    }
                    if key == "tcpkeepalive" {
                        match parse_keepalive(option.text.split_once('=').map(|(_, v)| v)) {
                            Ok(keepalive) => tcp_keepalive = Some(keepalive),
                            Err(message) => {
                                ok = false;
                                self.error(origin, format!("http_port option '{}': {message}", option.text))
                                    .hint = Some("use tcpkeepalive or tcpkeepalive=IDLE,INTERVAL,TIMEOUT in seconds, e.g. tcpkeepalive=60,30,180".into());
                            }
                        }
                        continue;
                    }
                    match port_option(key, option.text.contains('=')) {
                        PortOption::Accepted => {}
                        PortOption::Ignored(reason) => self.config.ignored.push(Ignored {
                            directive: format!("http_port option '{}'", option.text),
                            origin: origin.clone(),
                            reason,
                            squid_ignores: key == "no-vhost",
                            args: Vec::new(),
                        }),
                        PortOption::Rejected(instead) => {
                            ok = false;
                            self.error(
                                origin,
                                format!("http_port option '{}' is not supported by hopproxy", option.text),
                            )
                            .hint = Some(instead.to_string());
                        }
                        PortOption::Unknown => {
                            ok = false;
                            // Squid: "FATAL: Unknown http_port option 'junk'."
                            self.error(origin, format!("unknown http_port option '{}'", option.text))
                                .hint = suggest::did_you_mean(key, squid_port_options()).or_else(|| {
                                Some("http_port takes [ADDRESS:]PORT; a comment needs a space before '#'".into())
                            });
                        }
                    }
                }
                if let Some(previous) = self.config.http_ports.iter().find(|p| p.addr == addr && p.port == port) {
                    let at = previous.origin.clone();
                    self.error(
                        origin,
                        format!("{directive} {} is already configured at {at}", spec.text),
                    );
                    ok = false;
                }
                if https && require_proxy_header {
                    // The PROXY header comes before the TLS handshake on the wire; the TLS
                    // listener does not read it there yet.
                    ok = false;
                    self.error(
                        origin,
                        "require-proxy-header on an https_port is not supported by hopproxy",
                    )
                    .hint = Some(
                        "let the load balancer pass TLS through to an https_port without the PROXY header, \
                         or terminate TLS on it and send PROXY to an http_port"
                            .into(),
                    );
                }
                let tls = match tls.map(|draft| draft.finish(self.syntax_only)) {
                    None => None,
                    Some(Ok(tls)) => Some(tls),
                    Some(Err(e)) => {
                        ok = false;
                        self.error(origin, format!("https_port {}: {}", spec.text, e.message))
                            .hint = Some(e.hint);
                        None
                    }
                };
                if ok {
                    self.config.http_ports.push(HttpPort {
                        addr,
                        port,
                        tcp_keepalive,
                        require_proxy_header,
                        tls,
                        ssl_bump,
                        origin: origin.clone(),
                    });
                }
            }
            Err((message, hint)) => {
                self.error(origin, message).hint = hint;
            }
        }
    }

    /// `metrics_port [ADDRESS:]PORT`: without an address, loopback only (metrics say a lot
    /// about a network; exposing them is a decision to write down).
    fn metrics_port(&mut self, line: &Line) {
        let origin = &line.origin;
        self.diags.push(
            Diagnostic::note(
                origin,
                "'metrics_port' is a hopproxy extension (Squid does not know it)",
            )
            .with_hint("serves Prometheus metrics at http://ADDRESS:PORT/metrics"),
        );
        let Some(spec) = self.one_arg(line, "metrics_port [ADDRESS:]PORT, e.g. 127.0.0.1:9301") else {
            return;
        };
        match parse_listen(spec) {
            Ok((addr, port)) => {
                let addr = addr.unwrap_or(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST));
                let clash = |p: &HttpPort| p.port == port && p.addr.is_none_or(|a| a == addr || a.is_unspecified());
                if self.config.http_ports.iter().any(clash) {
                    self.error(origin, format!("metrics_port {spec} is also an http_port"))
                        .hint = Some("give the metrics endpoint a port of its own".into());
                    return;
                }
                self.config.metrics_port = Some(HttpPort {
                    addr: Some(addr),
                    port,
                    tcp_keepalive: None,
                    require_proxy_header: false,
                    tls: None,
                    ssl_bump: false,
                    origin: origin.clone(),
                });
            }
            Err((message, hint)) => {
                self.error(origin, message.replacen("http_port", "metrics_port", 1))
                    .hint = hint;
            }
        }
    }

    /// `debug_options ALL,N [SECTION,N…]`: only the `ALL` level has an effect (hopproxy has no
    /// debug sections); it sets the diagnostics level unless `HOPPROXY_LOG` is set.
    fn debug_options(&mut self, line: &Line) {
        let origin = &line.origin;
        let mut options = Vec::new();
        for arg in line.args() {
            let valid = arg.text.split_once(',').is_some_and(|(section, level)| {
                (section.eq_ignore_ascii_case("ALL") || section.parse::<u16>().is_ok())
                    && level.parse::<u8>().is_ok_and(|l| l <= 9)
            });
            if !valid && !arg.text.starts_with("rotate=") {
                self.error(origin, format!("debug_options: '{}' is not SECTION,LEVEL", arg.text))
                    .hint = Some("debug_options ALL,1 (levels 0-9)".into());
                return;
            }
            options.push(arg.text.clone());
        }
        self.config.debug_options = options;
        let level = self.config.diagnostics_level().unwrap_or("info");
        self.diags.push(
            Diagnostic::note(
                origin,
                format!(
                    "debug_options: hopproxy's diagnostics level is '{level}' (sections other than ALL have no effect)"
                ),
            )
            .with_hint("the HOPPROXY_LOG environment variable overrides it (e.g. HOPPROXY_LOG=debug)"),
        );
    }

    fn cache_peer(&mut self, line: &Line) {
        let origin = &line.origin;
        let args = line.args();
        if args.len() < 4 {
            self.error(origin, "cache_peer needs a host, a type, an HTTP port and an ICP port")
                .hint = Some(
                "cache_peer HOST parent HTTP-PORT 0 [options], e.g. cache_peer 192.0.2.1 parent 8080 0 no-query".into(),
            );
            return;
        }
        let host = args[0].text.trim_start_matches('[').trim_end_matches(']').to_string();
        match args[1].text.as_str() {
            "parent" => {}
            kind @ ("sibling" | "multicast") => {
                self.error(origin, format!("cache_peer type '{kind}' is not supported"))
                    .hint = Some("hopproxy forwards only to parents: use 'parent'".into());
                return;
            }
            other => {
                self.error(origin, format!("unknown cache_peer type '{other}'")).hint = Some("use 'parent'".into());
                return;
            }
        }
        let Ok(http_port) = args[2]
            .text
            .parse::<u16>()
            .map_err(drop)
            .and_then(|p| if p == 0 { Err(()) } else { Ok(p) })
        else {
            self.error(
                origin,
                format!("cache_peer HTTP port '{}' is not a port number (1-65535)", args[2].text),
            );
            return;
        };
        if args[3].text.parse::<u16>().is_err() {
            self.error(
                origin,
                format!("cache_peer ICP port '{}' is not a port number", args[3].text),
            )
            .hint = Some("hopproxy does not use ICP; write 0".into());
            return;
        }
        let mut peer = Peer {
            name: host.clone(),
            host,
            http_port,
            selection: PeerSelection::FirstUp,
            weight: 1,
            default: false,
            login: None,
            connect_timeout: None,
            connect_fail_limit: defaults::CONNECT_FAIL_LIMIT,
            access: RuleList::default(),
            tls: None,
            origin: origin.clone(),
        };
        let mut ok = true;
        let mut tls = PeerTlsDraft::default();
        for option in &args[4..] {
            let text = option.text.as_str();
            match tls.option(text) {
                PeerOption::Taken => continue,
                PeerOption::Invalid(message, hint) => {
                    ok = false;
                    self.error(origin, format!("cache_peer option '{text}' {message}")).hint = Some(hint.into());
                    continue;
                }
                PeerOption::Ignored(reason) => {
                    self.config.ignored.push(Ignored {
                        directive: format!("cache_peer option '{text}'"),
                        origin: origin.clone(),
                        reason,
                        squid_ignores: false,
                        args: Vec::new(),
                    });
                    continue;
                }
                PeerOption::NotTls => {}
            }
            let (key, value) = match text.split_once('=') {
                Some((k, v)) => (k, Some(v)),
                None => (text, None),
            };
            let positive = |v: Option<&str>| v.and_then(|v| v.parse::<u32>().ok()).filter(|n| *n > 0);
            match (key, value) {
                ("default", None) => peer.default = true,
                ("round-robin", None) => peer.selection = PeerSelection::RoundRobin,
                ("weighted-round-robin", None) => peer.selection = PeerSelection::WeightedRoundRobin,
                ("name", Some(v)) if !v.is_empty() => peer.name = v.to_string(),
                ("weight", v) => match positive(v) {
                    Some(n) => peer.weight = n,
                    None => {
                        ok = false;
                        self.error(
                            origin,
                            format!("cache_peer '{text}': weight must be a whole number above 0"),
                        );
                    }
                },
                ("connect-fail-limit", v) => match positive(v) {
                    Some(n) => peer.connect_fail_limit = n,
                    None => {
                        ok = false;
                        self.error(
                            origin,
                            format!("cache_peer '{text}': connect-fail-limit must be a whole number above 0"),
                        );
                    }
                },
                ("connect-timeout", v) => match positive(v) {
                    Some(n) => peer.connect_timeout = Some(Duration::from_secs(u64::from(n))),
                    None => {
                        ok = false;
                        self.error(
                            origin,
                            format!("cache_peer '{text}': connect-timeout is a number of seconds above 0"),
                        );
                    }
                },
                ("login", Some("PASSTHRU")) => peer.login = Some(PeerLogin::PassThru),
                ("login", Some(v)) => match v.split_once(':') {
                    Some((user, password)) if !user.is_empty() && user != "*" => {
                        peer.login = Some(PeerLogin::Basic {
                            user: user.to_string(),
                            password: password.to_string(),
                        });
                    }
                    _ => {
                        ok = false;
                        self.error(origin, format!("cache_peer option 'login={v}' is not supported"))
                            .hint = Some("use login=USER:PASSWORD or login=PASSTHRU".into());
                    }
                },
                (k, _) if PEER_HARMLESS_OPTIONS.contains(&k) => {}
                (k, _) if PEER_UNSUPPORTED_OPTIONS.contains(&k) || k.starts_with("tls-") || k.starts_with("ssl") => {
                    ok = false;
                    self.error(
                        origin,
                        format!("cache_peer option '{text}' is not supported by hopproxy"),
                    )
                    .hint = Some("hopproxy cannot honour it; remove it".into());
                }
                _ => {
                    // Squid 5.7: "ERROR: Ignoring unknown cache_peer option 'junk'", exit 0.
                    self.warning(origin, format!("ignoring unknown cache_peer option '{text}'"))
                        .hint = suggest::did_you_mean(key, cache_peer_option_names());
                }
            }
        }
        match tls.finish(self.syntax_only) {
            Ok(settings) => peer.tls = settings,
            Err(e) => {
                ok = false;
                self.error(origin, format!("cache_peer {}: {}", peer.name, e.message))
                    .hint = Some(e.hint);
            }
        }
        if let Some(&existing) = self.peer_index.get(&peer.name) {
            let at = self.config.peers[existing].origin.clone();
            self.error(origin, format!("cache_peer '{}' is already defined at {at}", peer.name))
                .hint = Some("give one of them a different name=".into());
            return;
        }
        if ok {
            self.peer_index.insert(peer.name.clone(), self.config.peers.len());
            self.config.peers.push(peer);
        }
    }

    fn cache_peer_access(&mut self, line: &Line) {
        let origin = &line.origin;
        let Some(name) = line.args().first() else {
            self.error(
                origin,
                "cache_peer_access needs a peer name, 'allow' or 'deny', and ACL names",
            );
            return;
        };
        let Some(&index) = self.peer_index.get(&name.text) else {
            let hint = suggest::did_you_mean(&name.text, self.peer_index.keys().map(String::as_str))
                .or_else(|| Some("define the peer with cache_peer before this line".into()));
            self.error(origin, format!("cache_peer_access: unknown cache_peer '{}'", name.text))
                .hint = hint;
            return;
        };
        if let Some(rule) = self.rule_from("cache_peer_access", &line.args()[1..], origin) {
            self.config.peers[index].access.rules.push(rule);
        }
    }

    // --- logging --------------------------------------------------------------------------

    fn access_log(&mut self, line: &Line) {
        let origin = &line.origin;
        let Some(target) = line.args().first() else {
            self.error(origin, "access_log needs a destination").hint = Some(format!(
                "access_log stdio:{} squid, or access_log none",
                defaults::ACCESS_LOG
            ));
            return;
        };
        let target = match target.text.split_once(':') {
            _ if target.text == "none" => LogTarget::None,
            Some(("stdio" | "daemon", path)) if !path.is_empty() => {
                LogTarget::File(source::resolve(path, &origin.file))
            }
            Some((module @ ("syslog" | "udp" | "tcp"), _)) => {
                self.error(origin, format!("access_log module '{module}' is not supported"))
                    .hint = Some("use stdio:PATH".into());
                return;
            }
            _ => {
                // Squid 5.7 warns the same way and still writes to the file.
                self.warning(
                    origin,
                    format!("log name now starts with a module name. Use 'stdio:{}'", target.text),
                );
                LogTarget::File(source::resolve(&target.text, &origin.file))
            }
        };
        let mut rest = &line.args()[1..];
        let mut named: Option<&str> = None;
        while let Some(option) = rest.first().and_then(|t| t.text.split_once('=')) {
            match option {
                ("logformat", name) => named = Some(name),
                ("buffer-size" | "on-error" | "rotate", _) => {}
                _ => break,
            }
            rest = &rest[1..];
        }
        if named.is_none()
            && let Some(first) = rest.first().filter(|t| self.logformats.contains_key(&t.text))
        {
            named = Some(first.text.as_str());
            rest = &rest[1..];
        }
        let format = match named {
            None => Format::Native,
            Some(name) => match self.logformats.get(name) {
                Some(format) => format.clone(),
                None => {
                    let known: Vec<&str> = self.logformats.keys().map(String::as_str).collect();
                    let hint = suggest::did_you_mean(name, known.iter().copied())
                        .unwrap_or_else(|| format!("define it first: logformat {name} %ts.%03tu %>a %ru …"));
                    self.error(origin, format!("access_log: unknown logformat '{name}'"))
                        .hint = Some(hint);
                    return;
                }
            },
        };
        if named == Some("icap_squid") {
            self.error(origin, "access_log format 'icap_squid': hopproxy has no ICAP")
                .hint = Some("use squid, common, combined or a logformat of your own".into());
            return;
        }
        let Some(acls) = self.acl_refs(rest, origin) else {
            return;
        };
        self.config.access_logs.push(AccessLog {
            target,
            format,
            acls,
            origin: origin.clone(),
        });
    }

    /// `logformat NAME CODES…`: the rest of the line is taken verbatim, as Squid does (a
    /// trailing `# text` is part of the format: docs/squid-behaviour.md section 1), and
    /// compiled now, so a bad code fails the load, not the first request.
    fn logformat(&mut self, line: &Line) {
        let Some(name) = line.args().first() else {
            self.error(&line.origin, "logformat needs a name and a format").hint =
                Some("logformat mine %ts.%03tu %>a %Ss/%03>Hs %rm %ru".into());
            return;
        };
        if BUILTIN_LOGFORMATS.contains(&name.text.as_str()) {
            self.warning(
                &line.origin,
                format!(
                    "'logformat {}' is ignored: '{}' always means Squid's built-in format",
                    name.text, name.text
                ),
            )
            .hint = Some("give your format another name".into());
            return;
        }
        let body = line.rest.trim_start()[name.text.len()..].trim_start_matches([' ', '\t']);
        if body.is_empty() {
            self.error(
                &line.origin,
                format!("logformat {}: no format after the name", name.text),
            );
            return;
        }
        match log_format::compile(body) {
            Ok(compiled) => {
                if !compiled.dashes.is_empty() {
                    self.warning(
                        &line.origin,
                        format!(
                            "logformat {}: {} always logged as '-' (hopproxy does not have these values)",
                            name.text,
                            compiled.dashes.join(" ")
                        ),
                    );
                }
                if self.logformats.contains_key(&name.text) {
                    self.warning(
                        &line.origin,
                        format!(
                            "logformat {} is defined again; this one is used from here on",
                            name.text
                        ),
                    );
                }
                self.logformats
                    .insert(name.text.clone(), Format::Custom(Arc::new(compiled)));
            }
            Err(e) => {
                self.error(&line.origin, format!("logformat {}: {}", name.text, e.message))
                    .hint = e.hint;
            }
        }
    }

    // --- deny_info ------------------------------------------------------------------------

    /// `deny_info ERR_NAME|[STATUS:]URL|STATUS:ERR_NAME ACL…` (Squid 5.7's aclParseDenyInfoLine).
    fn deny_info(&mut self, line: &Line) {
        let origin = &line.origin;
        let Some(first) = line.args().first() else {
            self.error(origin, "deny_info needs an error page name or a URL, and ACL names")
                .hint = Some("deny_info ERR_ACCESS_DENIED ACL, or deny_info http://example.com/blocked ACL".into());
            return;
        };
        let text = first.text.as_str();
        let (status, rest) = match text.split_once(':') {
            Some((code, rest)) if code.len() == 3 && code.bytes().all(|b| b.is_ascii_digit()) => {
                (code.parse::<u16>().ok(), rest)
            }
            _ => (None, text),
        };
        let answer = if rest.contains("://") {
            if let Some(code) = status.filter(|c| !(300..400).contains(c)) {
                self.error(
                    origin,
                    format!("deny_info '{text}': a redirect needs a 3xx status, not {code}"),
                )
                .hint = Some(format!("use 302:{rest} or leave the status out"));
                return;
            }
            DenyAnswer::Redirect {
                status,
                url: rest.to_string(),
            }
        } else if rest == "TCP_RESET" {
            self.error(origin, "deny_info TCP_RESET is not supported by hopproxy")
                .hint = Some("use an error name (deny_info ERR_ACCESS_DENIED ACL) or a redirect URL instead".into());
            return;
        } else {
            if let Some(code) = status.filter(|c| !(200..600).contains(c)) {
                self.error(origin, format!("deny_info '{text}': {code} is not an HTTP status"));
                return;
            }
            DenyAnswer::ErrorPage {
                status: status.unwrap_or(403),
                name: rest.to_string(),
            }
        };
        let mut acls = Vec::new();
        for token in &line.args()[1..] {
            match self.acl_index.get(&token.text) {
                Some(&index) => acls.push(index),
                None if self.failed_acls.contains(&token.text) => {}
                // Squid accepts the line and the name never matches; say so without failing.
                None => {
                    self.warning(
                        origin,
                        format!("deny_info names ACL '{}', which is not defined (yet)", token.text),
                    )
                    .hint = Some("define the ACL before this line, or remove the name".into());
                }
            }
        }
        if line.args().len() < 2 {
            // Squid: "deny_info line contains no ACL's, skipping".
            self.warning(origin, "deny_info line without ACLs is ignored (as Squid does)")
                .hint = Some(format!(
                "name the ACL of the denying http_access line: deny_info {text} ACL"
            ));
            return;
        }
        self.config.deny_info.push(DenyInfo {
            answer,
            acls,
            origin: origin.clone(),
        });
    }

    /// `request_header_access NAME allow|deny [!]ACL…` (and `reply_…`): lines for one name
    /// form that name's access list; `All` and `Other` are Squid's pseudo-names.
    fn header_access(&mut self, line: &Line) {
        let Some((name, rest)) = line.args().split_first() else {
            self.error(&line.origin, format!("{} needs a header name", line.name()))
                .hint = Some(format!("{} User-Agent deny all", line.name()));
            return;
        };
        let Some(rule) = self.rule_from(line.name(), rest, &line.origin) else {
            return;
        };
        let rules = if line.name() == "request_header_access" {
            &mut self.config.request_header_access
        } else {
            &mut self.config.reply_header_access
        };
        rules.mangler_mut(&name.text).access.rules.push(rule);
    }

    /// `request_header_replace NAME value…`: the value sent instead of a denied field.
    fn header_replace(&mut self, line: &Line) {
        let Some((name, words)) = line.args().split_first() else {
            self.error(&line.origin, format!("{} needs a header name and a value", line.name()));
            return;
        };
        let value = words.iter().map(|t| t.text.as_str()).collect::<Vec<_>>().join(" ");
        let rules = if line.name() == "request_header_replace" {
            &mut self.config.request_header_access
        } else {
            &mut self.config.reply_header_access
        };
        rules.mangler_mut(&name.text).replacement = Some(value.into_bytes());
    }

    // --- scalars --------------------------------------------------------------------------

    fn one_arg<'a>(&mut self, line: &'a Line, usage: &str) -> Option<&'a str> {
        match line.args() {
            [value] => Some(value.text.as_str()),
            _ => {
                self.error(&line.origin, format!("{} takes one value", line.name()))
                    .hint = Some(usage.to_string());
                None
            }
        }
    }

    fn on_off(&mut self, line: &Line) -> Option<bool> {
        let value = self.one_arg(line, &format!("{} on|off", line.name()))?;
        match value {
            "on" => Some(true),
            "off" => Some(false),
            other => {
                self.error(&line.origin, format!("{}: '{other}' is not 'on' or 'off'", line.name()));
                None
            }
        }
    }

    fn number(&mut self, line: &Line, usage: &str) -> Option<i64> {
        let value = self.one_arg(line, usage)?;
        match value.parse::<i64>() {
            Ok(n) if n >= -1 => Some(n),
            _ => {
                self.error(
                    &line.origin,
                    format!("{}: '{value}' is not a valid number", line.name()),
                )
                .hint = Some(usage.to_string());
                None
            }
        }
    }

    fn duration(&mut self, line: &Line, field: fn(&mut Config) -> &mut Duration) {
        // Every timeout hopproxy reads has seconds as its default unit in Squid.
        match units::parse_duration(line.args(), 1.0) {
            Ok(value) => *field(&mut self.config) = value,
            Err(message) => {
                self.error(&line.origin, format!("{}: {message}", line.name())).hint = Some(format!(
                    "{} 30 seconds (units: seconds, minutes, hours, days)",
                    line.name()
                ));
            }
        }
    }

    fn forwarded_for(&mut self, line: &Line) {
        let Some(value) = self.one_arg(line, "forwarded_for on|off|transparent|delete|truncate") else {
            return;
        };
        self.config.forwarded_for = match value {
            "on" => ForwardedFor::On,
            "off" => ForwardedFor::Off,
            "transparent" => ForwardedFor::Transparent,
            "delete" => ForwardedFor::Delete,
            "truncate" => ForwardedFor::Truncate,
            other => {
                self.error(&line.origin, format!("forwarded_for: unknown value '{other}'"))
                    .hint = Some("use on, off, transparent, delete or truncate".into());
                return;
            }
        };
    }

    fn dns_nameservers(&mut self, line: &Line) {
        if line.args().is_empty() {
            self.error(&line.origin, "dns_nameservers needs at least one address");
        }
        for token in line.args() {
            match token.text.parse::<IpAddr>() {
                Ok(addr) => self.config.dns_nameservers.push(addr),
                Err(_) => {
                    self.error(
                        &line.origin,
                        format!("dns_nameservers: '{}' is not an IP address", token.text),
                    );
                }
            }
        }
    }

    fn tcp_outgoing_address(&mut self, line: &Line) {
        let Some(addr) = line.args().first() else {
            self.error(&line.origin, "tcp_outgoing_address needs an address");
            return;
        };
        let Ok(ip) = addr
            .text
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
        else {
            self.error(
                &line.origin,
                format!("tcp_outgoing_address: '{}' is not an IP address", addr.text),
            );
            return;
        };
        let Some(acls) = self.acl_refs(&line.args()[1..], &line.origin) else {
            return;
        };
        self.config.tcp_outgoing_address.push(OutgoingAddress {
            addr: ip,
            acls,
            origin: line.origin.clone(),
        });
    }

    // --- whole-config checks --------------------------------------------------------------

    fn finish(&mut self, lines: &[Line]) {
        self.finish_delay_pools();
        let top = Origin {
            file: Arc::from(self.config.source.as_path()),
            line: 1,
        };
        if self.config.http_ports.is_empty()
            && !self
                .diags
                .iter()
                .any(|d| d.is_error() && d.message.contains("http_port"))
        {
            self.error(&top, "no http_port: hopproxy would not listen anywhere")
                .hint = Some("add e.g. 'http_port 3128'".into());
        }
        if self.config.proxy_protocol_access.is_empty()
            && let Some(port) = self.config.http_ports.iter().find(|p| p.require_proxy_header)
        {
            let origin = port.origin.clone();
            self.warning(
                &origin,
                "require-proxy-header without proxy_protocol_access: every connection to this port is refused",
            )
            .hint = Some(
                "allow the load balancers that send the PROXY header, e.g. 'acl lb src 10.0.0.5' and \
                 'proxy_protocol_access allow lb' (Squid's default is deny all)"
                    .into(),
            );
        }
        if self.config.http_access.is_empty() {
            let origin = lines
                .iter()
                .find(|l| l.name() == "http_access")
                .map_or(top.clone(), |l| l.origin.clone());
            self.warning(&origin, "no http_access rules: every request is denied")
                .hint =
                Some("add rules such as 'http_access allow localnet' followed by 'http_access deny all'".into());
        }
        if !self.config.never_direct.is_empty() && self.config.peers.is_empty() {
            let origin = self.config.never_direct.rules[0].origin.clone();
            self.warning(
                &origin,
                "never_direct is set but there is no cache_peer: such requests fail with 503",
            )
            .hint = Some("add 'cache_peer HOST parent PORT 0 no-query' or remove never_direct".into());
        }
        if self.config.access_logs.is_empty() {
            self.diags.push(
                Diagnostic::note(
                    &top,
                    format!(
                        "no access_log: transactions are logged to {}, as Squid does",
                        defaults::ACCESS_LOG
                    ),
                )
                .with_hint("set 'access_log stdio:PATH squid' to choose the file, or 'access_log none' to log nothing"),
            );
        }
        let mut diags = Vec::new();
        for draft in &self.acls {
            acl_parse::check_overlaps(draft, &mut diags);
        }
        self.diags.extend(diags);
        self.finish_auth();
        self.check_external_acl_use();
        self.check_tunnel_rules();
        self.config.acls = AclSet {
            acls: self
                .acls
                .iter()
                .map(|d| Acl {
                    name: d.name.clone(),
                    kind: d.kind.clone(),
                })
                .collect(),
        };
    }
}

fn cache_peer_option_names() -> impl Iterator<Item = &'static str> {
    [
        "default",
        "round-robin",
        "weighted-round-robin",
        "name",
        "weight",
        "connect-fail-limit",
        "connect-timeout",
        "login",
    ]
    .into_iter()
    .chain(PEER_HARMLESS_OPTIONS.iter().copied())
}

/// `tcpkeepalive[=IDLE,INTERVAL,TIMEOUT]` (seconds; Squid 5.7 reads the three as integers).
fn parse_keepalive(value: Option<&str>) -> Result<TcpKeepalive, String> {
    let Some(value) = value else {
        return Ok(TcpKeepalive::default());
    };
    let parts: Vec<&str> = value.split(',').collect();
    if parts.len() > 3 {
        return Err("takes at most three numbers".into());
    }
    let mut seconds = [None; 3];
    for (slot, part) in seconds.iter_mut().zip(&parts) {
        let n: u64 = part
            .parse()
            .map_err(|_| format!("'{part}' is not a number of seconds"))?;
        *slot = (n > 0).then(|| Duration::from_secs(n));
    }
    Ok(TcpKeepalive {
        idle: seconds[0],
        interval: seconds[1],
        timeout: seconds[2],
    })
}

/// `PORT`, `IPV4:PORT`, `[IPV6]:PORT`.
fn parse_listen(spec: &str) -> Result<(Option<IpAddr>, u16), (String, Option<String>)> {
    let (addr, port) = if let Some(rest) = spec.strip_prefix('[') {
        let Some((addr, port)) = rest.split_once("]:") else {
            return Err((
                format!("http_port '{spec}': an IPv6 address needs a port, as in [::1]:3128"),
                None,
            ));
        };
        (Some(addr), port)
    } else if let Some((addr, port)) = spec.rsplit_once(':') {
        (Some(addr), port)
    } else {
        (None, spec)
    };
    let addr = match addr {
        None => None,
        Some(text) => match text.parse::<IpAddr>() {
            Ok(ip) => Some(ip),
            Err(_) => {
                return Err((
                    format!("http_port '{spec}': '{text}' is not an IP address"),
                    Some("write the address to listen on (127.0.0.1:3128, [::1]:3128) or only the port".into()),
                ));
            }
        },
    };
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok((addr, p)),
        _ => Err((
            format!("http_port '{spec}': '{port}' is not a port number (1-65535)"),
            Some(if port.contains('#') {
                "a '#' starts a comment only at the start of a word: put a space before it".to_string()
            } else {
                "use a port between 1 and 65535, e.g. 'http_port 3128'".to_string()
            }),
        )),
    }
}

fn builtin_acls() -> Vec<AclDraft> {
    let origin = Origin {
        file: Arc::from(Path::new("<built-in>")),
        line: 0,
    };
    let net = |s: &str| IpMatch::Net(s.parse::<IpNet>().expect("built-in network"));
    let draft = |name: &str, type_name: &str, kind: AclKind| AclDraft {
        builtin: true,
        ..AclDraft::new(name, type_name, &origin, kind)
    };
    vec![
        draft("all", "src", AclKind::All),
        draft("manager", "url_regex", AclKind::Manager),
        draft(
            "localhost",
            "src",
            AclKind::Src(vec![net("127.0.0.1/32"), net("::1/128")]),
        ),
        draft(
            "to_localhost",
            "dst",
            AclKind::Dst(vec![
                net("127.0.0.0/8"),
                net("0.0.0.0/32"),
                net("::1/128"),
                net("::/128"),
            ]),
        ),
        draft(
            "to_linklocal",
            "dst",
            AclKind::Dst(vec![net("169.254.0.0/16"), net("fe80::/10")]),
        ),
        draft("CONNECT", "method", AclKind::Method(vec!["CONNECT".into()])),
    ]
}

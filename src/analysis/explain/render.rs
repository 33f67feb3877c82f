//! The whole explanation of a valid config (the `http_access` reading, routing, listeners,
//! logs and the settings that differ from Squid's defaults) as one serializable value, and
//! its plain-text form.

use std::time::Duration;

use serde::Serialize;

use super::{Routing, Row, analyse};
use crate::config::model::defaults;
use crate::config::{Config, LogTarget};

/// Everything `explain` says about a config.
#[derive(Debug, Serialize)]
pub struct Explanation {
    pub config: String,
    /// What happens when no line matches (the opposite of the last line, `deny` with no
    /// lines); `None` when every request matches some line.
    pub no_match: Option<&'static str>,
    pub http_access: Vec<Row>,
    pub routing: Routing,
    pub listening: Vec<String>,
    pub access_logs: Vec<String>,
    /// One entry per delay pool (none: nothing is shaped).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub shaping: Vec<String>,
    pub non_default: Vec<Setting>,
    /// How tunnels on `ssl-bump` ports are checked by SNI; empty when none are.
    pub tunnels: Vec<String>,
}

/// A setting whose value differs from Squid's default.
#[derive(Debug, Serialize)]
pub struct Setting {
    pub directive: &'static str,
    pub value: String,
    pub default: String,
}

pub fn explain(config: &Config) -> Explanation {
    let (rows, routing) = analyse(config);
    let no_match = match rows.iter().find(|r| r.implicit) {
        Some(r) => Some(r.action),
        None if rows.is_empty() => Some("deny"),
        None => None,
    };
    Explanation {
        config: config.source.display().to_string(),
        no_match,
        http_access: rows,
        routing,
        listening: config
            .http_ports
            .iter()
            .map(|p| {
                let tls = match &p.tls {
                    Some(t) if t.client_ca.is_some() => ", TLS, client certificate required",
                    Some(_) => ", TLS",
                    None => "",
                };
                let bump = if p.ssl_bump { " ssl-bump" } else { "" };
                match p.addr {
                    Some(addr) => format!(
                        "{}{tls}{bump} (line {})",
                        std::net::SocketAddr::new(addr, p.port),
                        p.origin.line
                    ),
                    None => format!("port {} on all addresses{tls}{bump} (line {})", p.port, p.origin.line),
                }
            })
            .collect(),
        access_logs: access_logs(config),
        shaping: config
            .delay_pools
            .pools
            .iter()
            .map(|pool| format!("{} (line {})", crate::shaping::describe(pool), pool.origin.line))
            .collect(),
        non_default: non_default(config),
        tunnels: tunnels(config),
    }
}

/// The tunnel rules in words: one line per rule, in evaluation order, with the defaults.
fn tunnels(config: &Config) -> Vec<String> {
    let rules = &config.tunnel_rules;
    if !config.http_ports.iter().any(|p| p.ssl_bump) || (rules.ssl_bump.is_empty() && !rules.sni_must_match) {
        return Vec::new();
    }
    let acl_list = |refs: &[crate::policy::AclRef]| -> String {
        refs.iter()
            .map(|r| format!("{}{}", if r.negated { "!" } else { "" }, config.acls.get(r.acl).name))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let mut out = vec![format!(
        "CONNECT tunnels on ssl-bump ports: the ClientHello's server name (SNI) is checked after the 200, never decrypted ({} s, 16 KiB)",
        crate::tls_hello::HELLO_TIMEOUT.as_secs()
    )];
    if rules.sni_must_match {
        out.push("tunnel_sni_must_match on: an SNI naming another host than the CONNECT target is terminated".into());
    }
    for rule in &rules.ssl_bump {
        out.push(format!(
            "line {}: ssl_bump {} {}",
            rule.origin.line,
            rule.action.name(),
            acl_list(&rule.acls)
        ));
    }
    out.push("no ssl_bump line matches: splice".into());
    for rule in &rules.on_unsupported_protocol {
        let action = match rule.action {
            crate::policy::UnsupportedAction::Tunnel => "tunnel",
            crate::policy::UnsupportedAction::Respond => "respond",
        };
        out.push(format!(
            "line {}: not TLS: on_unsupported_protocol {action} {}",
            rule.origin.line,
            acl_list(&rule.acls)
        ));
    }
    out.push("not TLS, no on_unsupported_protocol line matches: respond with 400; unreadable TLS: terminate".into());
    out
}

fn access_logs(config: &Config) -> Vec<String> {
    if config.access_logs.is_empty() {
        return vec![format!("{} (Squid's default)", defaults::ACCESS_LOG)];
    }
    config
        .access_logs
        .iter()
        .map(|l| {
            let what = match &l.target {
                LogTarget::File(p) => p.display().to_string(),
                LogTarget::None => "none".to_string(),
            };
            let only = if l.acls.is_empty() {
                ""
            } else {
                ", only matching requests"
            };
            format!("{what} (line {}{only})", l.origin.line)
        })
        .collect()
}

fn non_default(config: &Config) -> Vec<Setting> {
    let mut out = Vec::new();
    let mut time = |directive, value: Duration, default: Duration| {
        if value != default {
            out.push(Setting {
                directive,
                value: duration(value),
                default: duration(default),
            });
        }
    };
    time("connect_timeout", config.connect_timeout, defaults::CONNECT_TIMEOUT);
    time(
        "peer_connect_timeout",
        config.peer_connect_timeout,
        defaults::PEER_CONNECT_TIMEOUT,
    );
    time("read_timeout", config.read_timeout, defaults::READ_TIMEOUT);
    time("forward_timeout", config.forward_timeout, defaults::FORWARD_TIMEOUT);
    time(
        "request_start_timeout",
        config.request_start_timeout,
        defaults::REQUEST_START_TIMEOUT,
    );
    time("client_lifetime", config.client_lifetime, defaults::CLIENT_LIFETIME);
    time(
        "shutdown_lifetime",
        config.shutdown_lifetime,
        defaults::SHUTDOWN_LIFETIME,
    );
    if config.request_header_max_size != defaults::REQUEST_HEADER_MAX_SIZE {
        out.push(Setting {
            directive: "request_header_max_size",
            value: format!("{} KB", config.request_header_max_size / 1024),
            default: format!("{} KB", defaults::REQUEST_HEADER_MAX_SIZE / 1024),
        });
    }
    for peer in &config.peers {
        if let Some(t) = peer.connect_timeout {
            out.push(Setting {
                directive: "cache_peer connect-timeout",
                value: format!("{} for {}", duration(t), peer.name),
                default: "peer_connect_timeout".to_string(),
            });
        }
    }
    out
}

/// `30 seconds`, `15 minutes`, `1 day`, or milliseconds when not whole seconds.
fn duration(d: Duration) -> String {
    let secs = d.as_secs();
    let plural = |n: u64, unit: &str| format!("{n} {unit}{}", if n == 1 { "" } else { "s" });
    if d.subsec_millis() != 0 {
        format!("{} ms", d.as_millis())
    } else if secs != 0 && secs.is_multiple_of(86_400) {
        plural(secs / 86_400, "day")
    } else if secs != 0 && secs.is_multiple_of(3600) {
        plural(secs / 3600, "hour")
    } else if secs != 0 && secs.is_multiple_of(60) {
        plural(secs / 60, "minute")
    } else {
        plural(secs, "second")
    }
}

/// The plain-text form: one table for `http_access`, then one line per other fact.
pub fn render(e: &Explanation) -> String {
    let mut out = String::new();
    if e.http_access.is_empty() {
        out.push_str("http_access: no lines → every request is denied\n");
    } else {
        match e.no_match {
            Some(action) => out.push_str(&format!("http_access (first match wins; no match = {action}):\n")),
            None => out.push_str("http_access (first match wins):\n"),
        }
        out.push_str(&table(&e.http_access, &e.config));
    }
    for (i, line) in e.routing.summary.iter().enumerate() {
        out.push_str(if i == 0 { "routing: " } else { "         " });
        out.push_str(line);
        out.push('\n');
    }
    for p in &e.routing.parents {
        if !p.access.is_empty() {
            out.push_str(&format!(
                "  parent {} only for cache_peer_access {}\n",
                p.address,
                p.access.join(", ")
            ));
        }
    }
    out.push_str(&format!("listening: {}\n", or_none(&e.listening)));
    out.push_str(&format!("access log: {}\n", or_none(&e.access_logs)));
    for pool in &e.shaping {
        out.push_str(&format!("shaping: {pool}\n"));
    }
    for (i, line) in e.tunnels.iter().enumerate() {
        out.push_str(if i == 0 { "tunnels: " } else { "         " });
        out.push_str(line);
        out.push('\n');
    }
    if e.non_default.is_empty() {
        out.push_str("timeouts and limits: Squid's defaults\n");
    } else {
        let list: Vec<String> = e
            .non_default
            .iter()
            .map(|s| format!("{} {} (default {})", s.directive, s.value, s.default))
            .collect();
        out.push_str(&format!("differs from Squid's defaults: {}\n", list.join("; ")));
    }
    out
}

fn or_none(list: &[String]) -> String {
    if list.is_empty() {
        "none".to_string()
    } else {
        list.join(", ")
    }
}

/// Aligned rows; `!` in the margin marks a row the lint warns about, explained below.
fn table(rows: &[Row], config_file: &str) -> String {
    let cells = |r: &Row| -> [String; 4] {
        [
            r.clients.clone().unwrap_or_default(),
            r.hosts.clone().unwrap_or_default(),
            r.ports.clone().unwrap_or_default(),
            r.methods.clone().unwrap_or_default(),
        ]
    };
    let mut width = [0usize; 4];
    for r in rows {
        for (w, c) in width.iter_mut().zip(cells(r)) {
            *w = (*w).max(c.chars().count());
        }
    }
    let pad = |s: &str, w: usize| format!("{s}{}", " ".repeat(w.saturating_sub(s.chars().count())));
    // "clients → hosts   ports   methods"
    let full = width[0] + 3 + width[1] + 3 + width[2] + 3 + width[3];
    let mut out = String::new();
    let mut why = Vec::new();
    for (i, r) in rows.iter().enumerate() {
        let mark = if r.warning.is_some() { '!' } else { ' ' };
        let body = if r.everything_else {
            let what = match (r.implicit, i) {
                (true, _) => "everything else (no line matched)",
                (false, 0) => "everything",
                (false, _) => "everything else",
            };
            pad(what, full)
        } else if r.never_decides {
            pad("nothing: earlier lines decide everything it matches", full)
        } else {
            let c = cells(r);
            format!(
                "{} → {}   {}   {}",
                pad(&c[0], width[0]),
                pad(&c[1], width[1]),
                pad(&c[2], width[2]),
                pad(&c[3], width[3])
            )
        };
        let action = r.action.to_uppercase();
        // Lines of included files need their file name.
        let place = if r.origin == format!("{config_file}:{}", r.line) {
            format!("line {}", r.line)
        } else {
            r.origin.clone()
        };
        out.push_str(&format!("{mark} {action:<6} {body}   ({place})\n"));
        if let Some(w) = &r.warning
            && !why.iter().any(|(l, m): &(u32, String)| *l == r.line && m == w)
        {
            why.push((r.line, w.clone()));
        }
    }
    for (line, message) in why {
        out.push_str(&format!("  ! line {line}: {message}\n"));
    }
    out
}

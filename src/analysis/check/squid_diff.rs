//! `check --squid-diff`: where hopproxy will behave differently from Squid 5.7 with this
//! config. Each finding is a note on the line it concerns (or the top of the file when it
//! concerns the whole config), starting with "squid-diff:" so it can be grepped.

use std::sync::Arc;

use crate::config::{DenyAnswer, Diagnostic, Loaded};
use crate::policy::{AclKind, Origin};

/// Every difference that applies to `loaded`, in line order.
pub fn differences(loaded: &Loaded) -> Vec<Diagnostic> {
    let config = &loaded.config;
    let top = Origin {
        file: Arc::from(config.source.as_path()),
        line: 1,
    };
    let note = |origin: &Origin, text: String| Diagnostic::note(origin, format!("squid-diff: {text}"));
    let mut out = Vec::new();

    // Directives Squid acts on and hopproxy ignores (obsolete names are ignored by both).
    for ignored in config.ignored.iter().filter(|i| !i.squid_ignores) {
        out.push(note(
            &ignored.origin,
            format!(
                "Squid acts on '{}'; hopproxy ignores it: {}",
                ignored.directive, ignored.reason
            ),
        ));
    }
    let cache_off = config
        .ignored
        .iter()
        .any(|i| (i.directive == "cache" || i.directive == "no_cache") && i.args == ["deny", "all"]);
    if !cache_off {
        out.push(note(
            &top,
            "Squid caches responses (in memory even without cache_dir); hopproxy never caches, so \
             every request reaches the origin or a parent ('cache deny all' makes Squid behave alike)"
                .into(),
        ));
    }
    // The measured deliberate differences (README, "Where hopproxy deliberately differs").
    let dstdomain = config
        .acls
        .acls
        .iter()
        .any(|acl| matches!(acl.kind, AclKind::DstDomain(_)));
    if dstdomain {
        out.push(note(
            &top,
            "dstdomain ACLs against an IP-literal destination: Squid matches the reverse-DNS name, \
             hopproxy only the names hosts_file gives that address"
                .into(),
        ));
    }
    if let Some(peer) = config.peers.first() {
        out.push(note(
            &peer.origin,
            "a parent's error answer to a CONNECT: Squid counts it as a parent failure and drops \
             its body; hopproxy counts only connection failures and relays the body"
                .into(),
        ));
    }
    out.push(note(
        &top,
        "error replies: Squid sends HTML error pages (error_directory) and keeps the connection \
         open; hopproxy sends a short text/plain body with Proxy-Status and closes it"
            .into(),
    ));
    out.push(note(
        &top,
        "a request URI with whitespace: Squid strips it (uri_whitespace strip, its default); \
         hopproxy answers 400 (as uri_whitespace deny)"
            .into(),
    ));
    out.push(note(
        &top,
        "an unresolvable destination: Squid answers 500 (CONNECT) or 502 (GET); hopproxy 502 with \
         Proxy-Status error=dns_error"
            .into(),
    ));
    out.push(note(
        &top,
        "access log: hopproxy logs the bytes and content type of its own error replies (Squid \
         logs 0 and '-' for a failed CONNECT) and does not log connections that never sent a byte"
            .into(),
    ));
    for line in &config.deny_info {
        if let DenyAnswer::ErrorPage { name, .. } = &line.answer {
            out.push(note(
                &line.origin,
                format!(
                    "deny_info {name}: Squid sends its HTML template {name}; hopproxy sends the same status and \
                     X-Squid-Error with its own short text body"
                ),
            ));
        }
    }
    if let Some(rule) = config.follow_x_forwarded_for.rules.first() {
        out.push(note(
            &rule.origin,
            "follow_x_forwarded_for: hopproxy's check and explain reason about src ACLs as the \
             connection's peer; the proxy applies them to the indirect client, as Squid does"
                .into(),
        ));
    }
    if config.request_timeout < config.request_start_timeout {
        out.push(note(
            &top,
            "request_timeout is shorter than request_start_timeout: hopproxy applies it to the \
             first byte as well"
                .into(),
        ));
    }
    out.sort_by(|a, b| (&a.origin.file, a.origin.line).cmp(&(&b.origin.file, b.origin.line)));
    out
}

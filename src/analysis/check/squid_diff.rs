//! `check --squid-diff`: where hopproxy will behave differently from Squid 5.7 with this
//! config. Each finding is a note on the line it concerns (or the top of the file when it
//! concerns the whole config), starting with "squid-diff:" so it can be grepped.

use std::path::Path;
use std::sync::Arc;

use crate::config::{Diagnostic, Loaded};
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
        .any(|i| (i.directive == "cache" || i.directive == "no_cache") && is_deny_all(&i.origin));
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

/// Whether the line at `origin` reads `cache deny all` (re-read from the file, as the ignored
/// list keeps no arguments).
fn is_deny_all(origin: &Origin) -> bool {
    let path: &Path = &origin.file;
    let Ok(text) = std::fs::read_to_string(path) else {
        return false;
    };
    let Some(line) = text.lines().nth((origin.line as usize).saturating_sub(1)) else {
        return false;
    };
    let words: Vec<&str> = line.split_whitespace().take_while(|w| !w.starts_with('#')).collect();
    words.len() == 3 && words[1] == "deny" && words[2] == "all"
}

//! The header block a hop forwards: the client's end-to-end fields, then `Via` and
//! `X-Forwarded-For` extended with this hop, as Squid does (docs/squid-behaviour.md 2.3).

use std::net::IpAddr;

use crate::config::{Config, ForwardedFor};
use crate::http1::Header;
use crate::http1::head::{connection_tokens, is_hop_by_hop};
use crate::policy::{HeaderFilter, ReplyFacts, RequestFacts};
use crate::state::Generation;

/// Appends `name: value\r\n`.
pub fn push_header(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

fn joined(headers: &[Header], name: &str) -> Option<Vec<u8>> {
    let mut values = headers.iter().filter(|h| h.is(name)).map(|h| h.value.as_slice());
    let first = values.next()?;
    let mut out = first.to_vec();
    for v in values {
        out.extend_from_slice(b", ");
        out.extend_from_slice(v);
    }
    Some(out)
}

/// Writes the forwarded fields of `headers` (minus hop-by-hop ones, minus those in `skip`),
/// then `Via` with our entry appended and `X-Forwarded-For` per `forwarded_for`.
pub fn write_forwarded(out: &mut Vec<u8>, generation: &Generation, client: IpAddr, headers: &[Header], skip: &[&str]) {
    let tokens = connection_tokens(headers);
    for h in headers {
        if is_hop_by_hop(&h.name, &tokens) || h.is("via") || h.is("x-forwarded-for") || skip.iter().any(|s| h.is(s)) {
            continue;
        }
        push_header(out, &h.name, &h.value);
    }
    write_via(out, generation, joined(headers, "via"));
    let client = client.to_canonical().to_string();
    let existing = joined(headers, "x-forwarded-for");
    let xff = match generation.config.forwarded_for {
        ForwardedFor::On => Some(append_entry(existing, client.as_bytes())),
        ForwardedFor::Off => Some(append_entry(existing, b"unknown")),
        ForwardedFor::Transparent => existing,
        ForwardedFor::Delete => None,
        ForwardedFor::Truncate => Some(client.into_bytes()),
    };
    if let Some(value) = xff {
        push_header(out, "X-Forwarded-For", &value);
    }
}

/// Writes `Via` with our entry appended (when `via on`), or the existing value unchanged.
pub fn write_via(out: &mut Vec<u8>, generation: &Generation, existing: Option<Vec<u8>>) {
    let value = if generation.config.via {
        Some(append_entry(existing, generation.via_entry.as_bytes()))
    } else {
        existing
    };
    if let Some(value) = value {
        push_header(out, "Via", &value);
    }
}

fn append_entry(existing: Option<Vec<u8>>, entry: &[u8]) -> Vec<u8> {
    match existing {
        Some(mut value) if !value.is_empty() => {
            value.extend_from_slice(b", ");
            value.extend_from_slice(entry);
            value
        }
        _ => entry.to_vec(),
    }
}

/// The client's `Proxy-Authorization` value, for `login=PASSTHRU`.
pub fn client_proxy_auth(headers: &[Header]) -> Option<&[u8]> {
    headers
        .iter()
        .find(|h| h.is("proxy-authorization"))
        .map(|h| h.value.as_slice())
}

/// `X-Forwarded-For` values joined, for `follow_x_forwarded_for`.
pub fn client_forwarded_for(headers: &[Header]) -> Option<Vec<u8>> {
    joined(headers, "x-forwarded-for")
}

/// `Via` values joined, for responses.
pub fn existing_via(headers: &[Header]) -> Option<Vec<u8>> {
    joined(headers, "via")
}

/// `request_header_access` decided for one request; applied to the whole head this hop
/// sends (the CONNECT to a parent too), after `Via`, `X-Forwarded-For` and peer login were
/// added, as Squid mangles its finished outgoing header.
pub fn request_filter(config: &Config, facts: &RequestFacts<'_>) -> HeaderFilter {
    config.request_header_access.filter(&config.acls, facts)
}

/// `reply_header_access` decided for one reply (its ACLs may read the reply's status and
/// fields); applied to the head sent to the client.
pub fn reply_filter(config: &Config, facts: &RequestFacts<'_>, status: u16, headers: &[Header]) -> HeaderFilter {
    if config.reply_header_access.is_empty() {
        return HeaderFilter::default();
    }
    let mut facts = facts.clone();
    facts.more.reply = Some(ReplyFacts { status, headers });
    config.reply_header_access.filter(&config.acls, &facts)
}

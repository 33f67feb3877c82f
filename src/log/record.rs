//! One access-log record and its rendering in Squid's native format:
//! `%ts.%03tu %6tr %>a %Ss/%03>Hs %<st %rm %ru %[un %Sh/%<a %mt`.

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Squid's hierarchy codes that hopproxy produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hierarchy {
    None,
    Direct,
    FirstUpParent,
    AnyOldParent,
    RoundRobinParent,
}

impl Hierarchy {
    pub fn code(self) -> &'static str {
        match self {
            Hierarchy::None => "HIER_NONE",
            Hierarchy::Direct => "HIER_DIRECT",
            Hierarchy::FirstUpParent => "FIRSTUP_PARENT",
            Hierarchy::AnyOldParent => "ANY_OLD_PARENT",
            Hierarchy::RoundRobinParent => "ROUNDROBIN_PARENT",
        }
    }
}

/// Squid's result tags (`%Ss`) that hopproxy produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResultCode {
    Tunnel,
    Miss,
    /// A response cut short: the next hop closed or broke the framing mid-body, or the client
    /// went away. Squid marks these `_ABORTED`.
    MissAborted,
    Denied,
    /// Refused by `http_reply_access` after the next hop answered.
    DeniedReply,
    None,
}

impl ResultCode {
    pub fn tag(self) -> &'static str {
        match self {
            ResultCode::Tunnel => "TCP_TUNNEL",
            ResultCode::Miss => "TCP_MISS",
            ResultCode::MissAborted => "TCP_MISS_ABORTED",
            ResultCode::Denied => "TCP_DENIED",
            ResultCode::DeniedReply => "TCP_DENIED_REPLY",
            ResultCode::None => "NONE_NONE",
        }
    }
}

/// Everything one log line says about one transaction.
#[derive(Debug, Clone)]
pub struct Record {
    pub end: SystemTime,
    pub elapsed: Duration,
    pub client: IpAddr,
    pub result: ResultCode,
    /// HTTP status sent to the client; 0 when none was sent.
    pub status: u16,
    /// Bytes written to the client, head and body.
    pub bytes: u64,
    /// Method token as the client sent it, or `-`.
    pub method: String,
    /// `host:port` for CONNECT, the absolute URL otherwise, or `error:…` for parse failures.
    pub url: String,
    pub user: Option<String>,
    pub hierarchy: Hierarchy,
    /// The address actually connected to (origin or parent).
    pub peer: Option<IpAddr>,
    pub content_type: Option<String>,
    /// What only custom `logformat`s read.
    pub details: Details,
}

/// Fields only custom `logformat` codes read. The cheap ones are always filled; the header
/// lists only when a configured format uses them ([`super::format::Needs`]).
#[derive(Debug, Clone, Default)]
pub struct Details {
    pub client_port: u16,
    /// The local address the client connected to.
    pub local: Option<SocketAddr>,
    /// The port of the next hop connected to.
    pub peer_port: Option<u16>,
    /// The status the next hop answered with (`%<Hs`).
    pub upstream_status: Option<u16>,
    /// Minor version of the client's HTTP/1.x request; `None` before a head was understood.
    pub version: Option<u8>,
    /// Bytes of the request head received from the client (`%>st`).
    pub request_size: u64,
    pub request_headers: Vec<(String, Vec<u8>)>,
    pub reply_headers: Vec<(String, Vec<u8>)>,
    /// The subject of the client certificate an `https_port` verified (`%ssl::>cert_subject`).
    pub client_cert_subject: Option<String>,
    /// The SNI of the tunnel's ClientHello (`%ssl::>sni`), read on `ssl-bump` ports only.
    pub sni: Option<String>,
}

impl Record {
    /// Renders the record as one Squid native line ending in `\n`. Every field is
    /// sanitised so a record can never contain a newline or be split.
    pub fn render(&self, strip_query: bool) -> String {
        let since_epoch = self.end.duration_since(UNIX_EPOCH).unwrap_or_default();
        let mut line = String::with_capacity(160);
        let url = if strip_query {
            strip_query_terms(&self.url)
        } else {
            &self.url
        };
        let _ = write!(
            line,
            "{}.{:03} {:>6} {} {}/{:03} {} {} ",
            since_epoch.as_secs(),
            since_epoch.subsec_millis(),
            self.elapsed.as_millis(),
            self.client.to_canonical(),
            self.result.tag(),
            self.status,
            self.bytes,
            token_or_dash(&self.method),
        );
        push_escaped(&mut line, url);
        line.push(' ');
        push_escaped(&mut line, self.user.as_deref().unwrap_or("-"));
        let _ = write!(line, " {}/", self.hierarchy.code());
        match self.peer {
            Some(ip) => {
                let _ = write!(line, "{}", ip.to_canonical());
            }
            None => line.push('-'),
        }
        line.push(' ');
        push_escaped(&mut line, self.content_type.as_deref().unwrap_or("-"));
        line.push('\n');
        line
    }
}

/// Squid's `strip_query_terms on`: `/path?secret=1` is logged as `/path?`.
pub(super) fn strip_query_terms(url: &str) -> &str {
    match url.find('?') {
        Some(at) => &url[..=at],
        None => url,
    }
}

fn token_or_dash(token: &str) -> String {
    if token.is_empty() {
        return "-".to_string();
    }
    let mut out = String::with_capacity(token.len());
    push_escaped(&mut out, token);
    out
}

/// Percent-encodes bytes that would break the line into fields (space, controls, non-ASCII),
/// as Squid's log escaping does, so one record is always one line.
fn push_escaped(out: &mut String, field: &str) {
    if field.is_empty() {
        out.push('-');
        return;
    }
    for byte in field.bytes() {
        if byte.is_ascii_graphic() {
            out.push(byte as char);
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> Record {
        Record {
            end: UNIX_EPOCH + Duration::from_millis(1_795_465_829_427),
            elapsed: Duration::from_millis(8),
            client: "127.0.0.5".parse().unwrap(),
            result: ResultCode::Tunnel,
            status: 200,
            bytes: 2298,
            method: "CONNECT".into(),
            url: "ingress-orange-saas.instana.io:443".into(),
            user: None,
            hierarchy: Hierarchy::FirstUpParent,
            peer: Some("127.0.0.12".parse().unwrap()),
            content_type: None,
            details: Details::default(),
        }
    }

    #[test]
    fn matches_squid_tunnel_line_byte_for_byte() {
        assert_eq!(
            record().render(true),
            "1795465829.427      8 127.0.0.5 TCP_TUNNEL/200 2298 CONNECT ingress-orange-saas.instana.io:443 - FIRSTUP_PARENT/127.0.0.12 -\n"
        );
    }

    #[test]
    fn strips_query_and_pads_status() {
        let mut r = record();
        r.result = ResultCode::None;
        r.status = 0;
        r.bytes = 0;
        r.method = String::new();
        r.url = "http://h/some/path?secret=1".into();
        r.hierarchy = Hierarchy::None;
        r.peer = None;
        r.elapsed = Duration::from_millis(1_234_567);
        assert_eq!(
            r.render(true),
            "1795465829.427 1234567 127.0.0.5 NONE_NONE/000 0 - http://h/some/path? - HIER_NONE/- -\n"
        );
    }

    #[test]
    fn a_record_is_always_one_line() {
        let mut r = record();
        r.url = "http://h/a b\nc\u{0}d".into();
        r.user = Some("bad user".into());
        r.client = "::ffff:127.0.0.5".parse().unwrap();
        let line = r.render(false);
        assert_eq!(line.matches('\n').count(), 1);
        assert!(line.contains(" 127.0.0.5 "), "{line}");
        assert!(line.contains("http://h/a%20b%0Ac%00d bad%20user "), "{line}");
    }
}

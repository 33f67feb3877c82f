//! Each code and modifier, with the values Squid 5.7 was seen to log for the same inputs.

use std::time::{Duration, UNIX_EPOCH};

use super::*;
use crate::log::{Details, Hierarchy, ResultCode};

fn record() -> Record {
    Record {
        end: UNIX_EPOCH + Duration::from_micros(1_796_031_715_716_250),
        elapsed: Duration::from_micros(11_400),
        client: "127.0.66.5".parse().unwrap(),
        result: ResultCode::Miss,
        status: 200,
        bytes: 302,
        method: "GET".into(),
        url: "http://127.0.66.120:8080/a.txt?q=1".into(),
        user: None,
        hierarchy: Hierarchy::Direct,
        peer: Some("127.0.66.120".parse().unwrap()),
        content_type: Some("text/plain".into()),
        details: Details {
            client_port: 33344,
            local: Some("127.0.66.101:31280".parse().unwrap()),
            peer_port: Some(8080),
            upstream_status: Some(200),
            version: Some(1),
            request_size: 221,
            request_headers: vec![
                ("User-Agent".into(), br#"Mozilla/5.0 (X11; "q") \x"#.to_vec()),
                ("Referer".into(), b"http://ref.invalid/x".to_vec()),
                ("X-Multi".into(), b"a=1;b=2".to_vec()),
                ("X-Multi".into(), b"b=3".to_vec()),
            ],
            reply_headers: vec![("Content-Type".into(), b"text/plain".to_vec())],
            client_cert_subject: Some("CN=proxy1.example, O=Lab".into()),
            sni: None,
        },
    }
}

fn one(format: &str) -> String {
    let compiled = compile(format).unwrap_or_else(|e| panic!("{format}: {e:?}"));
    let line = compiled.render(&record(), true);
    line.strip_suffix('\n').unwrap().to_string()
}

#[test]
fn every_code_as_squid_logs_it() {
    let cases = [
        ("%>a", "127.0.66.5"),
        ("%>A", "127.0.66.5"),
        ("%>p", "33344"),
        ("%>la %la", "127.0.66.101 127.0.66.101"),
        ("%>lp %lp", "31280 31280"),
        ("%<a %<p", "127.0.66.120 8080"),
        ("%ts", "1796031715"),
        ("%tu", "716"),
        ("%03tu", "716"),
        ("%tr", "11"),
        ("%6tr|%-6tr|", "    11|11    |"),
        ("%tS", "1796031715.704"),
        ("%tg", "30/Nov/2026:09:41:55"),
        ("%{%Y-%m-%d}tg", "2026-11-30"),
        ("%Ss %Sh", "TCP_MISS HIER_DIRECT"),
        ("%>Hs %<Hs %03>Hs %Hs", "200 200 200 200"),
        ("%<st %>st %st", "302 221 523"),
        ("%rm %>rm", "GET GET"),
        ("%ru", "http://127.0.66.120:8080/a.txt?"),
        ("%>ru", "http://127.0.66.120:8080/a.txt?q=1"),
        ("%>rp %rp", "/a.txt?q=1 /a.txt?q=1"),
        ("%>rs %>rd %>rP", "http 127.0.66.120 8080"),
        ("%rv %>rv", "1.1 1.1"),
        ("%un %ul %ue %ui", "- - - -"),
        ("%mt", "text/plain"),
        ("%{User-Agent}>h", "Mozilla/5.0%20(X11;%20%22q%22)%20%5Cx"),
        ("%\"{User-Agent}>h", r#"Mozilla/5.0 (X11; \"q\") \\x"#),
        ("%[{User-Agent}>h", r#"Mozilla/5.0 (X11; "q") \\x"#),
        ("%#{User-Agent}>h", "Mozilla/5.0%20(X11;%20%22q%22)%20%5Cx"),
        ("%'{User-Agent}>h", r#"Mozilla/5.0 (X11; "q") \x"#),
        ("%/{User-Agent}>h", r#""Mozilla/5.0 (X11; \"q\") \\x""#),
        ("%>h{User-Agent}", "Mozilla/5.0%20(X11;%20%22q%22)%20%5Cx"),
        ("%{Content-Type}<h", "text/plain"),
        ("%{X-Multi}>h", "a=1;b=2,%20b=3"),
        ("%{X-Multi:;b}>h", "2"),
        ("%{X-Multi:a}>h", "1;b=2"),
        // Without a separator character, `,` separates the members.
        ("%{X-Multi:b}>h", "3"),
        ("%{Nope}>h", "-"),
        ("%10.3{User-Agent}>h|", "       Moz|"),
        ("%-10.3{User-Agent}>h|", "Moz       |"),
        ("%ssl::>sni %note %err_code", "- - -"),
        ("%ssl::>cert_subject", "CN=proxy1.example, O=Lab"),
        ("100%%", "100%"),
        ("%http::>a", "127.0.66.5"),
        (
            "%>h",
            "User-Agent:%20Mozilla/5.0%20(X11;%20%22q%22)%20%5Cx%0D%0AReferer:%20http://ref.invalid/x%0D%0AX-Multi:%20a=1;b=2%0D%0AX-Multi:%20b=3%0D%0A",
        ),
        ("%<h", "Content-Type:%20text/plain%0D%0A"),
        ("%tsX", "1796031715X"),
        ("#%ts # trailing", "#1796031715 # trailing"),
    ];
    for (format, expected) in cases {
        assert_eq!(one(format), expected, "{format}");
    }
}

#[test]
fn zero_padding_widths_and_absent_values() {
    let mut r = record();
    r.status = 0;
    r.details.upstream_status = None;
    r.peer = None;
    r.details.peer_port = None;
    r.content_type = None;
    r.end = UNIX_EPOCH + Duration::from_millis(1_796_031_715_007);
    let render = |f: &str| compile(f).unwrap().render(&r, true);
    assert_eq!(render("%03>Hs %<Hs %<a %<p %mt"), "000 - - - -\n");
    assert_eq!(render("%ts.%03tu %tu %.6tu %06.6tu"), "1796031715.007 7 7000 007000\n");
    // A dash is never padded (Squid writes "-" as is).
    assert_eq!(render("[%6<a]"), "[-]\n");
    assert_eq!(render("%8.3tr"), "  11.400\n");
}

/// `.N` on the response time gives N digits of milliseconds' fraction (at most 3); `.0`, or
/// none, the whole milliseconds. On the start time it gives N digits of the seconds'
/// fraction, and `.0` none at all.
#[test]
fn precision_of_the_response_and_start_times() {
    let mut r = record();
    r.elapsed = Duration::from_micros(1_234_567);
    let render = |f: &str| compile(f).unwrap().render(&r, true);
    assert_eq!(
        render("%tr %.0tr %.1tr %.2tr %.3tr %.5tr"),
        "1234 1234 1234.5 1234.56 1234.567 1234.567\n"
    );
    assert_eq!(
        render("%.0tS %.1tS %tS %.6tS"),
        "1796031714 1796031714.4 1796031714.481 1796031714.481683\n"
    );
}

/// The URL's parts: the scheme's default port when none is written, and an IPv6 literal's
/// host without brackets (with or without a port).
#[test]
fn url_parts_default_ports_and_ipv6_literals() {
    let mut r = record();
    let render = |r: &Record| compile("%>rs %>rd %>rP").unwrap().render(r, true);
    for (url, expected) in [
        ("http://a.example/x", "http a.example 80\n"),
        ("https://a.example/x", "https a.example 443\n"),
        ("ftp://a.example/x", "ftp a.example -\n"),
        ("http://[2001:db8::1]/x", "http 2001:db8::1 80\n"),
        ("http://[2001:db8::1]:8080/x", "http 2001:db8::1 8080\n"),
    ] {
        r.url = url.into();
        assert_eq!(render(&r), expected, "{url}");
    }
}

#[test]
fn connect_and_error_urls() {
    let mut r = record();
    r.method = "CONNECT".into();
    r.url = "127.0.66.120:8080".into();
    let render = |r: &Record, f: &str| compile(f).unwrap().render(r, true);
    assert_eq!(
        render(&r, "%ru %>rp %>rs %>rd %>rP"),
        "127.0.66.120:8080 - - 127.0.66.120 8080\n"
    );
    r.method = String::new();
    r.url = "error:invalid-request".into();
    r.details.version = None;
    assert_eq!(render(&r, "%rm %ru %>rd %rv"), "- error:invalid-request - 0.0\n");
}

#[test]
fn builtin_formats_render_as_squid_writes_them() {
    let mut r = record();
    r.end = UNIX_EPOCH + Duration::from_millis(1_796_031_715_716);
    let builtin = |name: &str| {
        let text = BUILTIN.iter().find(|(n, _)| *n == name).unwrap().1;
        compile(text).unwrap().render(&r, true)
    };
    // The zone and local time depend on the machine; Squid's lines were taken at UTC.
    let zone = |line: String| {
        let start = line.find('[').unwrap();
        let end = line.find(']').unwrap();
        format!("{}[T]{}", &line[..start], &line[end + 1..])
    };
    assert_eq!(
        zone(builtin("common")),
        "127.0.66.5 - - [T] \"GET http://127.0.66.120:8080/a.txt? HTTP/1.1\" 200 302 TCP_MISS:HIER_DIRECT\n"
    );
    assert_eq!(
        zone(builtin("combined")),
        "127.0.66.5 - - [T] \"GET http://127.0.66.120:8080/a.txt? HTTP/1.1\" 200 302 \"http://ref.invalid/x\" \"Mozilla/5.0 (X11; \"q\") \\x\" TCP_MISS:HIER_DIRECT\n"
    );
    assert_eq!(
        builtin("referrer"),
        "1796031715.716 127.0.66.5 http://ref.invalid/x http://127.0.66.120:8080/a.txt?\n"
    );
    assert_eq!(
        zone(builtin("useragent")),
        "127.0.66.5 [T] \"Mozilla/5.0 (X11; \"q\") \\x\"\n"
    );
}

#[test]
fn a_record_stays_one_line_in_every_quoting() {
    let mut r = record();
    r.details.request_headers = vec![("X".into(), b"a\r\nb\x01".to_vec())];
    for format in [
        "%{X}>h", "%'{X}>h", "%\"{X}>h", "%[{X}>h", "%#{X}>h", "%/{X}>h", "%>h", "a\u{7}b",
    ] {
        let line = compile(format).unwrap().render(&r, true);
        assert_eq!(line.matches('\n').count(), 1, "{format}: {line:?}");
        assert!(line.ends_with('\n') && !line.contains('\r'), "{format}: {line:?}");
    }
}

/// What each quoting does to quotes, backslashes, line ends, a tab, another control
/// character, non-ASCII and the characters URL and MIME quoting reserve.
#[test]
fn each_quoting_escapes_its_own_set() {
    let mut r = record();
    r.details.request_headers = vec![("X".into(), "a\"b\\c\r\n\t\x01é[%] d".as_bytes().to_vec())];
    let render = |format: &str| compile(format).unwrap().render(&r, true);
    for (format, expected) in [
        ("%{X}>h", "a%22b%5Cc%0D%0A%09%01%C3%A9%5B%%5D%20d"),
        ("%'{X}>h", "a\"b\\c%0D%0A%09%01é[%] d"),
        ("%\"{X}>h", "a\\\"b\\\\c\\r\\n\\t%01é[%] d"),
        ("%[{X}>h", "a\"b\\\\c\\r\\n%09%01%C3%A9%5B%25%5D d"),
        ("%#{X}>h", "a%22b%5Cc%0D%0A%09%01%C3%A9%5B%25%5D%20d"),
        ("%/{X}>h", "\"a\\\"b\\\\c\\r\\n%09%01é[%] d\""),
    ] {
        assert_eq!(render(format), format!("{expected}\n"), "{format}");
    }
}

#[test]
fn needs_only_what_the_codes_read() {
    assert_eq!(compile("%ts %>a %ru").unwrap().needs(), Needs::default());
    assert_eq!(
        compile("%{Referer}>h").unwrap().needs(),
        Needs {
            request_headers: true,
            reply_headers: false
        }
    );
    assert!(compile("%<h").unwrap().needs().reply_headers);
    assert_eq!(Format::Native.needs(), Needs::default());
    assert_eq!(
        compile("%<pt %err_code").unwrap().dashes,
        vec!["%<pt".to_string(), "%err_code".to_string()]
    );
}

#[test]
fn bad_formats_are_refused_with_a_hint() {
    let error = compile("%ts %zz").unwrap_err();
    assert_eq!(error.message, "unknown logformat code '%zz'");
    let error = compile("%>Hx").unwrap_err();
    assert!(
        error.hint.unwrap().contains("did you mean %>Hs?"),
        "{:?}",
        compile("%>Hx")
    );
    let error = compile("%{User-Agent>h").unwrap_err();
    assert!(error.message.contains("without"), "{error:?}");
    let error = compile("%ssl::<cert_subject").unwrap_err();
    assert!(error.hint.unwrap().contains("TLS"));
    let error = compile("%{%Q}tl").unwrap_err();
    assert!(error.message.contains("strftime"), "{error:?}");
    assert!(compile("%").is_err());
}

/// The "did you mean" hint: the first code (in the table's order) one edit away from the
/// longest prefix of the unknown word that has one, judged on the word alone, and no
/// suggestion when nothing is that close.
#[test]
fn the_suggested_code_is_one_edit_away_or_none() {
    let hint = |format: &str| compile(format).unwrap_err().hint.unwrap();
    assert_eq!(hint("%zz"), "see docs/logformat.md for the codes hopproxy knows");
    assert_eq!(hint("%qqqqqq"), "see docs/logformat.md for the codes hopproxy knows");
    // ts, tu, tl, tg, tS and tr are all one edit from "tx": the first listed wins.
    assert_eq!(hint("%tx"), "did you mean %ts? (see docs/logformat.md for the codes)");
    assert_eq!(hint("%sr"), "did you mean %tr? (see docs/logformat.md for the codes)");
    assert_eq!(
        hint("%err_cod"),
        "did you mean %err_code? (see docs/logformat.md for the codes)"
    );
    // One letter too many: a deletion away.
    assert_eq!(
        hint("%errr_code"),
        "did you mean %err_code? (see docs/logformat.md for the codes)"
    );
    // What follows the word (a space, the next code) plays no part.
    for (alone, followed) in [("%s", "%s %tr"), ("%<s", "%<s x"), ("%zz", "%zz%ts")] {
        assert_eq!(hint(alone), hint(followed), "{followed}");
    }
    for adaptation in ["%adapt::<last_h", "%icap::tt"] {
        assert_eq!(
            hint(adaptation),
            "hopproxy has no ICAP or eCAP adaptation",
            "{adaptation}"
        );
    }
}

/// Several outputs share one record: it keeps what any of their formats reads.
#[test]
fn the_needs_of_several_formats_add_up() {
    let request = Needs {
        request_headers: true,
        reply_headers: false,
    };
    let reply = Needs {
        request_headers: false,
        reply_headers: true,
    };
    let both = Needs {
        request_headers: true,
        reply_headers: true,
    };
    assert_eq!(request.union(reply), both);
    assert_eq!(reply.union(request), both);
    assert_eq!(Needs::default().union(request), request);
}

//! A next hop that has begun answering is not left for the next one: after an interim
//! answer, an unsolicited `101` or a response head whose framing cannot be relayed, the
//! client gets 502 and the second parent is never asked (a retry could run the request twice
//! and would hide a broken hop). Loopback block 127.0.91.0/24.

mod common;

use common::origin::{Act, ok, scripted};
use common::{Hop, exchange, hop_config, parse_log_line};

#[test]
fn a_parent_that_began_answering_is_not_left_for_the_next() {
    let dir = tempfile::tempdir().unwrap();
    let good = scripted("127.0.91.20:0".parse().unwrap(), |_| Act::Reply(ok("fine")));
    let cases: [(&str, &[u8]); 3] = [
        ("an interim answer, then close", b"HTTP/1.1 100 Continue\r\n\r\n"),
        (
            "an unsolicited 101",
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n",
        ),
        (
            "two different lengths",
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello",
        ),
    ];
    for (index, (what, answer)) in cases.into_iter().enumerate() {
        let bad = scripted(format!("127.0.91.{}:0", 21 + index).parse().unwrap(), move |_| {
            Act::ReplyClose(answer.to_vec())
        });
        let rules = format!(
            "cache_peer {} parent {} 0 no-query name=bad\ncache_peer {} parent {} 0 no-query name=good\n\
             never_direct allow all\nhttp_access allow all",
            bad.server.addr.ip(),
            bad.server.addr.port(),
            good.server.addr.ip(),
            good.server.addr.port()
        );
        let listen = format!("127.0.91.{}:31280", 11 + index);
        let hop = Hop::start(
            "p",
            dir.path(),
            listen.parse().unwrap(),
            &hop_config(dir.path(), "p", &listen, &rules),
        );
        let reply = exchange(
            &listen,
            b"GET http://site.invalid/ HTTP/1.1\r\nHost: site.invalid\r\nConnection: close\r\n\r\n",
        );
        assert!(reply.starts_with("HTTP/1.1 502 "), "{what}: {reply}");
        let lines = hop.wait_for_lines(1);
        assert_eq!(parse_log_line(&lines[0]).code, "TCP_MISS/502", "{what}: {lines:#?}");
        assert_eq!(bad.requests().len(), 1, "{what}");
        // The request is logged, so its attempts are over: the good parent was never asked.
        assert!(good.requests().is_empty(), "{what}: {:?}", good.requests());
    }
}

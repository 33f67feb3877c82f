//! Fuzzing regressions: every input that ever crashed a fuzz target gets a named test here that
//! feeds it to the same harness function (fuzz/harness.rs, included below). The seed corpora
//! are replayed too, so the harnesses themselves stay compiling and green under `cargo test`.

#[path = "../fuzz/harness.rs"]
mod harness;

use std::path::Path;

fn replay_seeds(target: &str, run: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds").join(target);
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        run(&std::fs::read(&path).unwrap());
        count += 1;
    }
    assert!(count > 0, "no seeds in {}", dir.display());
}

#[test]
fn request_head_seeds() {
    replay_seeds("request_head", harness::request_head);
}

#[test]
fn response_head_seeds() {
    replay_seeds("response_head", harness::response_head);
}

#[test]
fn chunked_body_seeds() {
    replay_seeds("chunked_body", harness::chunked_body);
}

#[test]
fn proxy_header_seeds() {
    replay_seeds("proxy_header", harness::proxy_header);
}

#[test]
fn config_parse_seeds() {
    replay_seeds("config_parse", harness::config_parse);
}

#[test]
fn config_inputs_that_could_read_files_are_skipped() {
    assert!(harness::touches_files("include /etc/*.conf"));
    assert!(harness::touches_files("inc\\\nlude /dev/zero"));
    assert!(harness::touches_files("acl x src \"/dev/zero\""));
    assert!(harness::touches_files("auth_param basic program x /dev/zero"));
    assert!(!harness::touches_files("include *.conf"));
    assert!(!harness::touches_files("acl n src 10.0.0.0/8"));
}

#[test]
fn client_hello_seeds() {
    replay_seeds("client_hello", harness::client_hello);
}

/// The seeds captured from real clients parse to what those clients were asked to send.
#[test]
fn real_client_hellos_parse() {
    use hopproxy::tls_hello::parse;
    let seed = |name: &str| {
        std::fs::read(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("fuzz/seeds/client_hello")
                .join(name),
        )
        .unwrap()
    };
    let openssl = parse(&seed("openssl-sni-alpn")).unwrap();
    assert_eq!(openssl.sni.as_deref(), Some("api.example.com"));
    assert_eq!(openssl.alpn, ["h2", "http/1.1"]);
    assert_eq!(parse(&seed("openssl-no-sni")).unwrap().sni, None);
    assert_eq!(
        parse(&seed("curl-h2")).unwrap().sni.as_deref(),
        Some("ingress.example.invalid")
    );
}

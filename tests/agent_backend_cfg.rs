//! Backend.cfg parsing: the seed's example, missing and malformed keys, the Backend-N rule.

use std::path::Path;

use hopproxy::agent::backend_cfg::{BACKEND_CFG_NAME, BackendCfg, BackendCfgError, select_backend_files};
use hopproxy::agent::properties;

const SEED: &str = include_str!("fixtures/backend/seed-section4.cfg");

#[test]
fn seed_section4_parses_with_its_japanese_comments() {
    let entries = properties::parse(SEED);
    let get = |k: &str| entries.iter().find(|e| e.key == k).map(|e| e.value.as_str());
    assert_eq!(get("host"), Some("< instana-endpoint >"));
    assert_eq!(get("port"), Some("443"));
    assert_eq!(get("protocol"), Some("HTTP/2"));
    assert_eq!(get("proxy.port"), Some("8080"));
    assert_eq!(get("proxy.type"), Some("http"));
    assert!(
        entries
            .iter()
            .all(|e| e.dropped_comment.as_deref().is_some_and(|c| c.starts_with("# ")))
    );
}

#[test]
fn seed_section4_with_placeholders_filled_is_a_valid_backend() {
    let text = SEED
        .replace("< instana-endpoint >", "ingress-orange-saas.instana.io")
        .replace("<key>", "s3cr3t-key")
        .replace("<proxy1-ip-address>", "127.0.0.11");
    let cfg = BackendCfg::parse(&text, Path::new(BACKEND_CFG_NAME)).unwrap();
    assert_eq!(cfg.host, "ingress-orange-saas.instana.io");
    assert_eq!(cfg.port, 443);
    assert_eq!(cfg.protocol, "HTTP/2");
    assert_eq!(cfg.key, "s3cr3t-key");
    let proxy = cfg.proxy.unwrap();
    assert_eq!((proxy.host.as_str(), proxy.port, proxy.dns), ("127.0.0.11", 8080, true));
    assert_eq!(proxy.user, None);
    // Every inline comment is reported, none is silently dropped.
    assert_eq!(cfg.notes.len(), 7, "{:?}", cfg.notes);
}

#[test]
fn unfilled_placeholder_is_a_malformed_host() {
    let err = BackendCfg::parse(SEED, Path::new("Backend.cfg")).unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(
            err,
            BackendCfgError::Malformed {
                key: "host",
                line: 1,
                ..
            }
        ),
        "{msg}"
    );
    assert!(msg.contains("Backend.cfg:1") && msg.contains("'host'"), "{msg}");
}

#[test]
fn missing_and_malformed_keys_name_key_and_file() {
    let file = Path::new("/etc/instana/Backend.cfg");
    let cases: [(&str, &str); 6] = [
        ("port=443\nkey=k\n", "required key 'host' is missing"),
        ("host=h.example\nkey=k\n", "required key 'port' is missing"),
        ("host=h.example\nport=443\n", "required key 'key' is missing"),
        ("host=h.example\nport=99999\nkey=k\n", "key 'port': not a port number"),
        (
            "host=h.example\nport=443\nkey=k\nproxy.host=p\n",
            "required key 'proxy.port' is missing",
        ),
        (
            "host=h.example\nport=443\nkey=k\nproxy.host=p\nproxy.port=1\nproxy.type=socks5\n",
            "key 'proxy.type'",
        ),
    ];
    for (text, expected) in cases {
        let msg = BackendCfg::parse(text, file).unwrap_err().to_string();
        assert!(msg.starts_with("/etc/instana/Backend.cfg"), "{msg}");
        assert!(msg.contains(expected), "{text:?} -> {msg}");
    }
}

#[test]
fn unknown_keys_are_ignored_and_credentials_read() {
    let text = "host=h.example\nport: 443\nkey=k\nmode=INFRASTRUCTURE\nproxy.host=10.0.0.1\nproxy.port=3128\n\
                proxy.user=alice\nproxy.password=p\\u00e4ss\nproxy.dns=false\n";
    let cfg = BackendCfg::parse(text, Path::new("B.cfg")).unwrap();
    let proxy = cfg.proxy.unwrap();
    assert_eq!(proxy.user.as_deref(), Some("alice"));
    assert_eq!(proxy.password.as_deref(), Some("päss"));
    assert!(!proxy.dns);
    assert!(cfg.notes.iter().any(|n| n.contains("unknown key 'mode'")));
}

#[test]
fn plain_backend_cfg_wins_over_numbered_ones() {
    let dir = tempfile::tempdir().unwrap();
    let numbered = |n: u32| {
        dir.path()
            .join(format!("com.instana.agent.main.sender.Backend-{n}.cfg"))
    };
    std::fs::write(numbered(2), "x").unwrap();
    std::fs::write(numbered(1), "x").unwrap();
    std::fs::write(dir.path().join("unrelated.cfg"), "x").unwrap();
    assert_eq!(
        select_backend_files(dir.path()).unwrap(),
        vec![numbered(1), numbered(2)]
    );

    std::fs::write(dir.path().join(BACKEND_CFG_NAME), "x").unwrap();
    assert_eq!(
        select_backend_files(dir.path()).unwrap(),
        vec![dir.path().join(BACKEND_CFG_NAME)]
    );

    let empty = tempfile::tempdir().unwrap();
    assert!(matches!(
        select_backend_files(empty.path()),
        Err(BackendCfgError::NoneFound { .. })
    ));
}

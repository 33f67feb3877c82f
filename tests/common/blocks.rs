//! The one table of loopback blocks. Every test file that binds addresses does so only inside
//! its own `127.0.N.0/24` blocks, so test binaries running in parallel never collide; `N` is
//! listed here, once. `tests/harness.rs` checks that no two entries share a block and that
//! the addresses written in each test file lie in that file's blocks.
//!
//! Block 0 (`127.0.0.0/24`) holds the seed's own addresses (`chain_seed.rs`) and addresses
//! that appear only in config text and are never bound. Listening ports are fixed ones no
//! packaged service uses (31280), or free ports picked at run time.

/// `tests/chain_seed.rs`: the seed's addresses (agent .5, proxies .11/.12, endpoint .20).
pub const CHAIN_SEED: &[u8] = &[0];
pub const PROXY_BEHAVIOUR: &[u8] = &[1, 2, 3, 4, 5, 6, 7, 8];
pub const AUTH_SQUID: &[u8] = &[9];
pub const RELOAD_ROTATE: &[u8] = &[10, 11, 12];
pub const HARDENING: &[u8] = &[13, 14, 15, 17];
pub const AUTH_CHAIN: &[u8] = &[16, 18];
pub const AGENT_SQUID: &[u8] = &[41, 42];
pub const INTEROP_SQUID: &[u8] = &[43, 44, 45];
pub const DIFFERENTIAL: &[u8] = &[46, 47];
pub const TRACE_SQUID: &[u8] = &[50, 51, 52, 53, 54, 55, 56, 57, 58, 59];
pub const FORWARD_FRAMING: &[u8] = &[60];
pub const LAB_ENDPOINT: &[u8] = &[65];
pub const LOG_FULL_DISK: &[u8] = &[63];
pub const DNS_RESOLVER: &[u8] = &[62];
pub const CLI_HABITS: &[u8] = &[64];
pub const FORWARD_FAILOVER: &[u8] = &[70];
pub const FORWARD_KEEPALIVE: &[u8] = &[71];
pub const FORWARD_HOSTILE: &[u8] = &[72, 73, 74];
pub const DIFFERENTIAL_DIALECT: &[u8] = &[67];
pub const CONFIG_SQUID_PARITY: &[u8] = &[66];
pub const METRICS: &[u8] = &[68];
pub const SERVE_LIFECYCLE: &[u8] = &[69];
pub const SERVE_OUTPUTS: &[u8] = &[61];
pub const DIFFERENTIAL_LOGFORMAT: &[u8] = &[75];
pub const PROXY_PROTOCOL: &[u8] = &[92, 93];
pub const PRIVILEGE_DROP: &[u8] = &[94];
pub const DELAY_POOLS: &[u8] = &[95];
/// `tests/tls_legs.rs`: https_port and cache_peer tls (80, 81), Squid on a TLS leg (82, 83).
pub const TLS_LEGS: &[u8] = &[80, 81, 82, 83];
pub const HELPERS: &[u8] = &[96, 97, 98, 99];
pub const SNI_TUNNELS: &[u8] = &[84, 85, 86, 87];
/// `tests/forward_peer_timeout.rs`.
pub const FORWARD_PEER_TIMEOUT: &[u8] = &[88];
pub const CHAIN_PARENT_HEALTH: &[u8] = &[89];
pub const FORWARD_REQUESTS: &[u8] = &[90];
pub const FORWARD_NO_RETRY: &[u8] = &[91];
/// `tests/java_client.rs`: a two-hop chain and an auth hop (19), an `ssl-bump` hop (20).
pub const JAVA_CLIENT: &[u8] = &[19, 20];
pub const FORWARD_REBINDING: &[u8] = &[21];
pub const FORWARD_RETRIES: &[u8] = &[22];
pub const LOG_QUEUE: &[u8] = &[23];
pub const AUTH_HASHING: &[u8] = &[24];

/// Each test file and its blocks.
pub const FILES: &[(&str, &[u8])] = &[
    ("chain_seed.rs", CHAIN_SEED),
    ("proxy_behaviour.rs", PROXY_BEHAVIOUR),
    ("auth_squid.rs", AUTH_SQUID),
    ("reload_rotate.rs", RELOAD_ROTATE),
    ("hardening.rs", HARDENING),
    ("auth_chain.rs", AUTH_CHAIN),
    ("agent_squid.rs", AGENT_SQUID),
    ("interop_squid.rs", INTEROP_SQUID),
    ("differential.rs", DIFFERENTIAL),
    ("differential_dialect.rs", DIFFERENTIAL_DIALECT),
    ("differential_logformat.rs", DIFFERENTIAL_LOGFORMAT),
    ("trace_squid.rs", TRACE_SQUID),
    ("forward_framing.rs", FORWARD_FRAMING),
    ("lab_endpoint.rs", LAB_ENDPOINT),
    ("log_full_disk.rs", LOG_FULL_DISK),
    ("dns_resolver.rs", DNS_RESOLVER),
    ("cli_habits.rs", CLI_HABITS),
    ("forward_failover.rs", FORWARD_FAILOVER),
    ("forward_keepalive.rs", FORWARD_KEEPALIVE),
    ("forward_hostile.rs", FORWARD_HOSTILE),
    ("config_squid_parity.rs", CONFIG_SQUID_PARITY),
    ("metrics.rs", METRICS),
    ("serve_lifecycle.rs", SERVE_LIFECYCLE),
    ("forward_peer_timeout.rs", FORWARD_PEER_TIMEOUT),
    ("chain_parent_health.rs", CHAIN_PARENT_HEALTH),
    ("forward_requests.rs", FORWARD_REQUESTS),
    ("forward_no_retry.rs", FORWARD_NO_RETRY),
    ("forward_rebinding.rs", FORWARD_REBINDING),
    ("forward_retries.rs", FORWARD_RETRIES),
    ("log_queue.rs", LOG_QUEUE),
    ("auth_hashing.rs", AUTH_HASHING),
    ("serve_outputs.rs", SERVE_OUTPUTS),
    ("proxy_protocol.rs", PROXY_PROTOCOL),
    ("privilege_drop.rs", PRIVILEGE_DROP),
    ("delay_pools.rs", DELAY_POOLS),
    ("tls_legs.rs", TLS_LEGS),
    ("helpers.rs", HELPERS),
    ("sni_tunnels.rs", SNI_TUNNELS),
    ("java_client.rs", JAVA_CLIENT),
];

/// Blocks taken for test files being written (owner, blocks): give each file its own entry in
/// [`FILES`] when it lands.
pub const RESERVED: &[(&str, &[u8])] = &[("plain-HTTP forwarding tests", &[76, 77, 78, 79])];

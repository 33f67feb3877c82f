//! The client side of a proxy chain, shared by `agent`, `trace` and `lab`.
//!
//! How a client trusts a TLS server ([`tls`]), asks a proxy (or a chain of them) for a tunnel
//! ([`connect`]), and reads who failed from a proxy's error answer ([`proxy_status`]). It
//! stands below the tools: nothing here imports `agent`, `trace` or `lab`.

pub mod connect;
pub mod proxy_status;
pub mod proxy_url;
pub mod tls;

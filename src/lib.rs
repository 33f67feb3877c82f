//! hopproxy: a chaining forward proxy that reads squid.conf and writes Squid's access log.
#![forbid(unsafe_code)]

pub mod agent;
pub mod analysis;
pub mod auth;
pub mod cli;
pub mod client;
pub mod config;
pub mod helper;
pub mod http1;
pub mod lab;
pub mod log;
pub mod metrics;
pub mod policy;
pub mod relay;
pub mod route;
pub mod serve;
pub mod shaping;
pub mod state;
pub mod tls;
pub mod tls_hello;
pub mod trace;

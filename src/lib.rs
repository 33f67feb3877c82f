//! hopproxy: a chaining forward proxy that reads squid.conf and writes Squid's access log.
#![forbid(unsafe_code)]

pub mod agent;
pub mod config;
pub mod lab;
pub mod policy;
pub mod serve;
pub mod trace;

//! hopproxy: a chaining forward proxy that reads squid.conf and writes Squid's access log.
#![forbid(unsafe_code)]

pub mod config;
pub mod policy;

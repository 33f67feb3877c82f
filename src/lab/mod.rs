//! `hopproxy lab`: the seed's whole chain on one machine (endpoint, proxies, agent).

pub mod certs;
pub mod endpoint;
pub mod process;
pub mod squid;

use std::process::ExitCode;

/// The SaaS endpoint name the seed's agent talks to; the lab maps it with `hosts_file`.
pub const ENDPOINT_NAME: &str = "ingress-orange-saas.instana.io";

#[derive(clap::Args, Debug)]
pub struct LabArgs {}

pub fn run_command(_args: LabArgs) -> ExitCode {
    eprintln!("lab: not implemented yet");
    ExitCode::from(2)
}

//! `trace` against a chain of real `hopproxy run` processes (started by the lab's own code).

use std::time::Duration;

use hopproxy::lab::ENDPOINT_NAME;
use hopproxy::lab::run::{Lab, LabPlan, start};
use hopproxy::trace::{TraceOptions, render_text, trace};

fn lab(dir: &std::path::Path, fail: Option<usize>) -> Lab {
    let plan = LabPlan {
        dir: dir.to_path_buf(),
        hops: 2,
        fail,
        hopproxy: env!("CARGO_BIN_EXE_hopproxy").into(),
        tls: false,
    };
    start(&plan, &mut |_| {}).unwrap_or_else(|e| panic!("{e}"))
}

fn options(lab: &Lab) -> TraceOptions {
    TraceOptions {
        proxy_tls: None,
        proxies: vec![lab.topology.hops[0].addr.to_string()],
        target_host: ENDPOINT_NAME.into(),
        target_port: lab.topology.endpoint.port(),
        ca_file: Some(lab.ca_file.clone()),
        auth: None,
        key: Some(hopproxy::lab::endpoint::DEFAULT_KEY.into()),
        request: true,
        step_timeout: Duration::from_secs(5),
        // The lab's proxy 1 admits only the agent's address.
        source: Some(lab.topology.agent_ip),
    }
}

#[tokio::test]
async fn hopproxy_chain_all_well_with_the_agent_key() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab(dir.path(), None);
    let report = trace(options(&lab)).await;
    assert!(report.ok, "{}", render_text(&report));
    assert!(
        report
            .steps
            .iter()
            .any(|s| s.step == "request" && s.detail.starts_with("POST") && s.detail.contains("200"))
    );
}

#[tokio::test]
async fn hopproxy_chain_proxy2_down_names_the_parent_address() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab(dir.path(), Some(2));
    let report = trace(options(&lab)).await;
    let f = report
        .failure
        .as_ref()
        .unwrap_or_else(|| panic!("{}", render_text(&report)));
    assert_eq!(
        (f.hop, f.error.as_str()),
        (Some(1), "connection_refused"),
        "{}",
        f.reason
    );
    assert!(f.reason.contains("proxy1.lab"), "{}", f.reason);
    assert!(
        f.reason
            .contains(&format!("could not connect to {}", lab.topology.hops[1].addr)),
        "{}",
        f.reason
    );
}

//! The report as text for a terminal.

use super::report::{Step, TraceReport};

/// Renders the report for a terminal.
pub fn render_text(report: &TraceReport) -> String {
    let mut out = String::new();
    let via = if report.proxies.is_empty() {
        "directly".to_string()
    } else {
        report
            .proxies
            .iter()
            .enumerate()
            .map(|(i, p)| format!("proxy {} {p}", i + 1))
            .collect::<Vec<_>>()
            .join(" → ")
    };
    out.push_str(&format!("trace {} via {via}\n", report.target));
    for s in &report.steps {
        out.push_str(&step_line(s));
    }
    if !report.hop_checks.is_empty() {
        out.push_str("each hop alone, from here:\n");
        for s in &report.hop_checks {
            out.push_str(&step_line(s));
        }
    }
    out.push_str(&format!("verdict: {}\n", report.verdict));
    out
}

/// `  [ ok ]     12.3 ms  detail`
fn step_line(s: &Step) -> String {
    format!(
        "  [{}] {:>8.1} ms  {}\n",
        if s.ok { " ok " } else { "FAIL" },
        s.ms,
        s.detail
    )
}

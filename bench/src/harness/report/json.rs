//! The JSON result file: metadata, every round's figures and notes, medians, ratios, goals.

use std::path::Path;

use serde_json::{Map, Value, json};

use super::Report;
use super::figures::FIGURES;
use crate::harness::chain::Setup;

pub fn to_value(r: &Report) -> Value {
    let m = &r.meta;
    let mut setups = Map::new();
    for s in &r.setups {
        let rounds: Vec<Value> = s
            .rounds
            .iter()
            .map(|x| json!({ "figures": x.figures, "notes": x.notes }))
            .collect();
        setups.insert(
            s.setup.key().into(),
            json!({
                "label": s.setup.label(),
                "available": !s.rounds.is_empty(),
                "unavailable_reason": s.unavailable,
                "median": s.median,
                "rounds": rounds,
            }),
        );
    }
    let ratio_map = |a: Setup, b: Setup| -> Map<String, Value> {
        FIGURES
            .iter()
            .filter_map(|f| Some((f.key.to_string(), json!(r.ratio(a, b, f.key)?))))
            .collect()
    };
    let goals: Vec<Value> = FIGURES
        .iter()
        .filter_map(|f| {
            let g = f.goal?;
            let ratio = r.ratio(Setup::Hop2, Setup::Squid2, f.key);
            Some(json!({ "figure": f.key, "target": g.text(), "ratio": ratio, "met": ratio.map(|x| g.met(x)) }))
        })
        .collect();
    json!({
        "meta": {
            "cores": m.cores, "cpu_model": m.cpu_model, "kernel": m.kernel, "clk_tck": m.clk_tck,
            "rounds": m.rounds, "duration_s": m.duration_s, "warmup_s": m.warmup_s,
            "workers": m.workers, "idle_tunnels": m.idle, "http_conns": m.http_conns,
            "parallel_tunnels": m.parallel, "quick": m.quick, "squid_version": m.squid_version,
            "hopproxy": m.hopproxy, "git_rev": m.git_rev, "unix_time": m.unix_time, "wall_s": m.wall_s,
            "loadavg_1min_before_after": [m.loadavg.0, m.loadavg.1],
            "others_cpu_share": m.others_cpu_share,
            "kept_dir": m.kept_dir,
        },
        "figures": FIGURES.iter().map(|f| json!({ "key": f.key, "label": f.label })).collect::<Vec<_>>(),
        "setups": setups,
        "ratios": {
            "hopproxy_over_squid_1hop": ratio_map(Setup::Hop1, Setup::Squid1),
            "hopproxy_over_squid_2hops": ratio_map(Setup::Hop2, Setup::Squid2),
            "hopproxy_2hops_over_direct": ratio_map(Setup::Hop2, Setup::Direct),
            "squid_2hops_over_direct": ratio_map(Setup::Squid2, Setup::Direct),
            "hopproxy_1hop_tls_over_plain": ratio_map(Setup::Hop1Tls, Setup::Hop1),
            "hopproxy_2hops_tls_over_plain": ratio_map(Setup::Hop2Tls, Setup::Hop2),
        },
        "goals_2hops": goals,
    })
}

pub fn write(r: &Report, path: &Path) -> Result<(), String> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let text = serde_json::to_string_pretty(&to_value(r)).map_err(|e| e.to_string())?;
    std::fs::write(path, text + "\n").map_err(|e| format!("{}: {e}", path.display()))
}

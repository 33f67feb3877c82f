//! The figures the table shows, in order, with the project's performance goal (if any) on the ratio
//! hopproxy two hops / Squid two hops.

#[derive(Clone, Copy, Debug)]
pub enum Goal {
    AtLeast(f64),
    AtMost(f64),
}

impl Goal {
    pub fn met(self, ratio: f64) -> bool {
        match self {
            Goal::AtLeast(x) => ratio >= x,
            Goal::AtMost(x) => ratio <= x,
        }
    }

    pub fn text(self) -> String {
        match self {
            Goal::AtLeast(x) => format!("≥{x}"),
            Goal::AtMost(x) => format!("≤{x}"),
        }
    }
}

pub struct Figure {
    pub key: &'static str,
    /// `{W}` workers, `{P}` parallel tunnels, `{I}` idle tunnels, `{C}` HTTP connections.
    pub label: &'static str,
    pub decimals: usize,
    /// Only meaningful with a proxy (CPU and memory figures): "—" for direct.
    pub proxy_only: bool,
    pub goal: Option<Goal>,
}

const fn fig(key: &'static str, label: &'static str, decimals: usize, proxy_only: bool, goal: Option<Goal>) -> Figure {
    Figure {
        key,
        label,
        decimals,
        proxy_only,
        goal,
    }
}

pub const FIGURES: &[Figure] = &[
    fig("setup_per_s", "tunnel set-ups/s ({W} workers)", 0, false, None),
    fig("setup_p50_ms", "set-up latency p50 (ms)", 2, false, None),
    fig(
        "setup_p99_ms",
        "set-up latency p99 (ms)",
        2,
        false,
        Some(Goal::AtMost(0.25)),
    ),
    fig(
        "setups_per_cpu_s",
        "set-ups per proxy CPU-s",
        0,
        true,
        Some(Goal::AtLeast(5.0)),
    ),
    fig("setup_cpu_us", "set-up proxy CPU µs/tunnel", 1, true, None),
    fig(
        "bulk_up_1_mib_s",
        "bulk up, 1 tunnel (MiB/s)",
        0,
        false,
        Some(Goal::AtLeast(1.5)),
    ),
    fig(
        "bulk_down_1_mib_s",
        "bulk down, 1 tunnel (MiB/s)",
        0,
        false,
        Some(Goal::AtLeast(1.5)),
    ),
    fig(
        "bulk_echo_1_mib_s",
        "bulk echo, 1 tunnel (MiB/s each way)",
        0,
        false,
        None,
    ),
    fig("bulk_up_n_mib_s", "bulk up, {P} tunnels (MiB/s)", 0, false, None),
    fig("bulk_down_n_mib_s", "bulk down, {P} tunnels (MiB/s)", 0, false, None),
    fig(
        "bulk_echo_n_mib_s",
        "bulk echo, {P} tunnels (MiB/s each way)",
        0,
        false,
        None,
    ),
    fig(
        "bulk_up_1_mib_per_cpu_s",
        "MiB per proxy CPU-s (up, 1 tunnel)",
        0,
        true,
        Some(Goal::AtLeast(3.0)),
    ),
    fig(
        "bulk_down_1_mib_per_cpu_s",
        "MiB per proxy CPU-s (down, 1 tunnel)",
        0,
        true,
        Some(Goal::AtLeast(3.0)),
    ),
    fig(
        "bulk_echo_1_mib_per_cpu_s",
        "MiB per proxy CPU-s (echo, 1 tunnel)",
        0,
        true,
        None,
    ),
    fig(
        "bulk_up_n_mib_per_cpu_s",
        "MiB per proxy CPU-s (up, {P} tunnels)",
        0,
        true,
        None,
    ),
    fig(
        "bulk_down_n_mib_per_cpu_s",
        "MiB per proxy CPU-s (down, {P} tunnels)",
        0,
        true,
        None,
    ),
    fig(
        "bulk_echo_n_mib_per_cpu_s",
        "MiB per proxy CPU-s (echo, {P} tunnels)",
        0,
        true,
        None,
    ),
    fig(
        "idle_kib_per_tunnel",
        "RSS per idle tunnel (KiB, {I} held)",
        1,
        true,
        Some(Goal::AtMost(0.125)),
    ),
    fig("rss_base_mib", "proxy RSS before idle test (MiB)", 1, true, None),
    fig("http_req_s", "plain-HTTP GETs/s ({C} keep-alive conns)", 0, false, None),
    fig("http_cpu_us_per_req", "plain-HTTP proxy CPU µs/request", 1, true, None),
    fig(
        "http_req_per_cpu_s",
        "plain-HTTP requests per proxy CPU-s",
        0,
        true,
        Some(Goal::AtLeast(3.0)),
    ),
];

pub fn label(f: &Figure, meta: &super::Meta) -> String {
    f.label
        .replace("{W}", &meta.workers.to_string())
        .replace("{P}", &meta.parallel.to_string())
        .replace("{I}", &meta.idle.to_string())
        .replace("{C}", &meta.http_conns.to_string())
}

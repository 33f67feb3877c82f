//! The one table: figures × setups, then the ratio columns and the performance goal.

use std::fmt::Write as _;

use super::figures::{FIGURES, Figure, label};
use super::{Report, SetupReport};
use crate::harness::chain::Setup;

const LABEL_W: usize = 42;
const COL_W: usize = 11;

pub fn render(r: &Report) -> String {
    let m = &r.meta;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\nhopproxy bench: {} cores ({}), kernel {}, medians of {} round(s), {:.1} s per timed test{}",
        m.cores,
        m.cpu_model,
        m.kernel,
        m.rounds,
        m.duration_s,
        if m.quick {
            " [--quick: smoke figures, not for comparison]"
        } else {
            ""
        }
    );
    if m.others_cpu_share > 0.1 {
        let _ = writeln!(
            out,
            "warning: other processes used {:.0} % of the CPUs during this run: expect extra noise",
            m.others_cpu_share * 100.0
        );
    }
    // Columns only for the setups that were asked for, and ratios only where both sides were.
    let setups: Vec<Setup> = r.setups.iter().map(|s| s.setup).collect();
    let ratios: Vec<&Ratio> = RATIOS
        .iter()
        .filter(|x| setups.contains(&x.a) && setups.contains(&x.b))
        .collect();
    let show_goal = setups.contains(&Setup::Hop2) && setups.contains(&Setup::Squid2);
    let mut head = format!("{:<LABEL_W$}", "figure");
    for s in &setups {
        let _ = write!(head, "{:>COL_W$}", s.label());
    }
    for x in &ratios {
        let _ = write!(head, "{:>COL_W$}", x.head);
    }
    if show_goal {
        let _ = write!(head, "{:>COL_W$}", "goal(2)");
    }
    let _ = writeln!(out, "{head}");
    let _ = writeln!(out, "{}", "-".repeat(head.chars().count()));
    for f in FIGURES {
        let mut line = format!("{:<LABEL_W$}", label(f, m));
        for &s in &setups {
            let _ = write!(line, "{:>COL_W$}", cell(r, s, f));
        }
        for x in &ratios {
            let text = if f.proxy_only && x.b == Setup::Direct {
                String::new()
            } else {
                r.ratio(x.a, x.b, f.key).map_or(String::new(), |v| format!("{v:.2}"))
            };
            let _ = write!(line, "{text:>COL_W$}");
        }
        if show_goal {
            let goal = f.goal.map_or(String::new(), |g| {
                let verdict = match r.ratio(Setup::Hop2, Setup::Squid2, f.key) {
                    Some(x) if g.met(x) => "ok",
                    Some(_) => "MISS",
                    None => "?",
                };
                format!("{} {verdict}", g.text())
            });
            let _ = write!(line, "{goal:>COL_W$}");
        }
        let _ = writeln!(out, "{}", line.trim_end());
    }
    for s in &r.setups {
        if let Some(reason) = &s.unavailable {
            let _ = writeln!(out, "n/a {}: {reason}", s.setup.label());
        }
        let notes: usize = s.rounds.iter().map(|x| x.notes.len()).sum();
        if notes > 0 {
            let _ = writeln!(
                out,
                "{}: {notes} note(s) in the JSON (errors during tests)",
                s.setup.label()
            );
        }
    }
    let _ = writeln!(
        out,
        "ratios are of medians; TLS/pl N = hopproxy N hops with TLS legs / plain legs; goal(2) = the performance \
         target for hopproxy 2 hops / Squid 2 hops; wall time {:.0} s; other processes' CPU share {:.0} %",
        m.wall_s,
        m.others_cpu_share * 100.0
    );
    out
}

/// A ratio column: `a / b` of the medians.
struct Ratio {
    head: &'static str,
    a: Setup,
    b: Setup,
}

const RATIOS: &[Ratio] = &[
    Ratio {
        head: "hop/Sq 1",
        a: Setup::Hop1,
        b: Setup::Squid1,
    },
    Ratio {
        head: "hop/Sq 2",
        a: Setup::Hop2,
        b: Setup::Squid2,
    },
    Ratio {
        head: "hop2/dir",
        a: Setup::Hop2,
        b: Setup::Direct,
    },
    Ratio {
        head: "TLS/pl 1",
        a: Setup::Hop1Tls,
        b: Setup::Hop1,
    },
    Ratio {
        head: "TLS/pl 2",
        a: Setup::Hop2Tls,
        b: Setup::Hop2,
    },
];

fn cell(r: &Report, s: Setup, f: &Figure) -> String {
    let Some(rep) = r.setups.iter().find(|x| x.setup == s) else {
        return String::new();
    };
    if f.proxy_only && s == Setup::Direct {
        return "—".into();
    }
    match rep.median.get(f.key) {
        Some(v) => number(*v, f.decimals),
        None if unavailable(rep) => "n/a".into(),
        None => "err".into(),
    }
}

fn unavailable(rep: &SetupReport) -> bool {
    rep.rounds.is_empty()
}

/// Fixed decimals; thousands separated by commas when shown without decimals.
pub fn number(v: f64, decimals: usize) -> String {
    if decimals > 0 {
        return format!("{v:.decimals$}");
    }
    let s = format!("{:.0}", v.abs());
    let mut grouped = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    if v < 0.0 && grouped != "0" {
        format!("-{grouped}")
    } else {
        grouped
    }
}

#[cfg(test)]
mod tests {
    use super::number;

    #[test]
    fn groups_thousands() {
        assert_eq!(number(18700.4, 0), "18,700");
        assert_eq!(number(999.0, 0), "999");
        assert_eq!(number(-1234567.0, 0), "-1,234,567");
        assert_eq!(number(1.23456, 2), "1.23");
    }
}

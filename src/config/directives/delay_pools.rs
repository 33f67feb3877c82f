//! `delay_pools N`, `delay_class POOL CLASS`, `delay_parameters POOL RATE/MAX…`,
//! `delay_access POOL allow|deny ACL…`, `delay_initial_bucket_level PERCENT`, with Squid
//! 5.7's meanings. Lines are collected per pool and checked as a whole at the end, because
//! Squid lets them come in any order once `delay_pools` has been read.

use super::Builder;
use crate::config::lexer::Line;
use crate::config::model::{BucketSpec, DelayPool};
use crate::policy::{Origin, RuleList};

/// The `delay_*` lines seen so far.
#[derive(Default)]
pub(super) struct DelayDraft {
    /// `delay_pools N` and its line.
    count: Option<(usize, Origin)>,
    pools: Vec<PoolDraft>,
}

#[derive(Default, Clone)]
struct PoolDraft {
    class: Option<(u8, Origin)>,
    parameters: Option<(Vec<BucketSpec>, Origin)>,
    access: RuleList,
}

const PARAMETERS_HINT: &str = "delay_parameters POOL RATE/MAX per bucket, in bytes per second and bytes: \
     class 1 'delay_parameters 1 64000/64000', class 2 adds a per-client pair, class 3 a /24 network pair \
     before it, class 4 a per-user pair after it; -1/-1 means unlimited";

/// How many `RATE/MAX` pairs a class takes.
fn buckets_of(class: u8) -> usize {
    class as usize
}

impl Builder {
    pub(super) fn delay_directive(&mut self, line: &Line) {
        match line.name() {
            "delay_pools" => self.delay_pools(line),
            "delay_class" => self.delay_class(line),
            "delay_parameters" => self.delay_parameters(line),
            "delay_access" => self.delay_access(line),
            "delay_initial_bucket_level" => self.delay_initial_bucket_level(line),
            _ => unreachable!("only delay_* directives are routed here"),
        }
    }

    fn delay_pools(&mut self, line: &Line) {
        let origin = &line.origin;
        let count = match line.args() {
            [n] => n.text.parse::<usize>().ok().filter(|n| *n <= 1000),
            _ => None,
        };
        let Some(count) = count else {
            self.error(origin, "delay_pools needs the number of pools").hint = Some(
                "delay_pools N, e.g. 'delay_pools 2', then delay_class/delay_parameters/delay_access for pools 1..N"
                    .into(),
            );
            return;
        };
        if let Some((_, first)) = &self.delay.count {
            let first = first.line;
            self.error(origin, format!("delay_pools is set twice (first on line {first})"))
                .hint = Some("keep one delay_pools line, before the other delay_* lines".into());
            return;
        }
        self.delay.count = Some((count, origin.clone()));
        self.delay.pools = vec![PoolDraft::default(); count];
    }

    /// The pool a `delay_*` line names (1-based), or the error for the line.
    fn delay_pool_arg(&mut self, line: &Line) -> Option<usize> {
        let origin = &line.origin;
        let directive = line.name();
        let Some((count, _)) = &self.delay.count else {
            self.error(origin, format!("{directive} before delay_pools")).hint =
                Some("put 'delay_pools N' (the number of pools) before the other delay_* lines".into());
            return None;
        };
        let count = *count;
        let Some(arg) = line.args().first() else {
            self.error(origin, format!("{directive} needs a pool number")).hint =
                Some(format!("pools are numbered 1..{count}"));
            return None;
        };
        match arg.text.parse::<usize>() {
            Ok(n) if (1..=count).contains(&n) => Some(n),
            _ => {
                self.error(origin, format!("{directive}: pool '{}' does not exist", arg.text))
                    .hint = Some(if count == 0 {
                    "delay_pools is 0: raise it to the number of pools".into()
                } else {
                    format!("delay_pools {count} defines pools 1..{count}")
                });
                None
            }
        }
    }

    fn delay_class(&mut self, line: &Line) {
        let origin = &line.origin;
        let Some(pool) = self.delay_pool_arg(line) else {
            return;
        };
        let class = match line.args().get(1).map(|t| t.text.as_str()) {
            Some(c @ ("1" | "2" | "3" | "4")) if line.args().len() == 2 => c.parse::<u8>().unwrap_or(1),
            Some("5") => {
                self.error(
                    origin,
                    "delay_class 5 (tag buckets from an external ACL) is not supported",
                )
                .hint = Some("use one class 1 pool per tag, chosen with delay_access and an external ACL".into());
                return;
            }
            _ => {
                self.error(origin, "delay_class needs a pool number and a class 1, 2, 3 or 4")
                    .hint = Some(
                    "delay_class POOL CLASS: 1 = one aggregate bucket, 2 = aggregate + per client, \
                     3 = aggregate + per /24 network + per client, 4 = class 3 + per authenticated user"
                        .into(),
                );
                return;
            }
        };
        let draft = &mut self.delay.pools[pool - 1];
        if let Some((_, first)) = &draft.class {
            let first = first.line;
            self.error(
                origin,
                format!("delay_class for pool {pool} is set twice (first on line {first})"),
            );
            return;
        }
        draft.class = Some((class, origin.clone()));
    }

    fn delay_parameters(&mut self, line: &Line) {
        let origin = &line.origin;
        let Some(pool) = self.delay_pool_arg(line) else {
            return;
        };
        let mut buckets = Vec::new();
        for arg in &line.args()[1..] {
            match parse_bucket(&arg.text) {
                Some(bucket) => buckets.push(bucket),
                None => {
                    self.error(origin, format!("delay_parameters: '{}' is not RATE/MAX", arg.text))
                        .hint = Some(PARAMETERS_HINT.into());
                    return;
                }
            }
        }
        if buckets.is_empty() || buckets.len() > 4 {
            self.error(
                origin,
                "delay_parameters needs one RATE/MAX pair per bucket of the pool's class",
            )
            .hint = Some(PARAMETERS_HINT.into());
            return;
        }
        self.delay.pools[pool - 1].parameters = Some((buckets, origin.clone()));
    }

    fn delay_access(&mut self, line: &Line) {
        let Some(pool) = self.delay_pool_arg(line) else {
            return;
        };
        if let Some(rule) = self.rule_from("delay_access", &line.args()[1..], &line.origin) {
            self.delay.pools[pool - 1].access.rules.push(rule);
        }
    }

    fn delay_initial_bucket_level(&mut self, line: &Line) {
        let level = match line.args() {
            [n] => n.text.parse::<u8>().ok().filter(|n| *n <= 100),
            _ => None,
        };
        match level {
            Some(level) => self.config.delay_pools.initial_level_percent = level,
            None => {
                self.error(&line.origin, "delay_initial_bucket_level needs a percentage, 0 to 100")
                    .hint = Some("how full buckets start, e.g. 'delay_initial_bucket_level 50' (the default)".into());
            }
        }
    }

    /// Turns the collected lines into pools: a class whose parameters match it, and at least
    /// one `delay_access` line. Pools that can never take a request are left out with a
    /// warning, as Squid skips them.
    pub(super) fn finish_delay_pools(&mut self) {
        let drafts = std::mem::take(&mut self.delay.pools);
        for (index, draft) in drafts.into_iter().enumerate() {
            let number = index + 1;
            let Some((class, origin)) = draft.class else {
                if let Some((_, origin)) = draft.parameters.as_ref() {
                    self.error(
                        origin,
                        format!("delay_parameters for pool {number}, which has no delay_class"),
                    )
                    .hint = Some(format!("add 'delay_class {number} 1' (or 2, 3) before it"));
                } else if let Some(rule) = draft.access.rules.first() {
                    self.warning(
                        &rule.origin,
                        format!("delay pool {number} has no delay_class: it is not used"),
                    );
                }
                continue;
            };
            let Some((buckets, parameters_origin)) = draft.parameters else {
                self.warning(
                    &origin,
                    format!("delay pool {number} has no delay_parameters: its buckets are unlimited"),
                )
                .hint = Some(format!("add 'delay_parameters {number} RATE/MAX…'"));
                continue;
            };
            if buckets.len() != buckets_of(class) {
                self.error(
                    &parameters_origin,
                    format!(
                        "delay_parameters for pool {number} has {} RATE/MAX pair(s); its class {class} needs {}",
                        buckets.len(),
                        buckets_of(class)
                    ),
                )
                .hint = Some(PARAMETERS_HINT.into());
                continue;
            }
            if draft.access.is_empty() {
                // Squid: "delay_access is missing for pool N" and the pool takes nobody.
                self.warning(
                    &origin,
                    format!("delay pool {number} has no delay_access: no request goes into it"),
                )
                .hint = Some(format!("add e.g. 'delay_access {number} allow all'"));
                continue;
            }
            self.config.delay_pools.pools.push(DelayPool {
                number,
                class,
                aggregate: buckets[0],
                network: (class >= 3).then(|| buckets[1]),
                individual: match class {
                    2 => Some(buckets[1]),
                    3 | 4 => Some(buckets[2]),
                    _ => None,
                },
                user: (class == 4).then(|| buckets[3]),
                access: draft.access,
                origin,
            });
        }
    }
}

/// `RATE/MAX`: non-negative byte counts, or `-1/-1` (any negative rate) for "no limit".
fn parse_bucket(text: &str) -> Option<BucketSpec> {
    let (rate, max) = text.split_once('/')?;
    let rate: i64 = rate.parse().ok()?;
    let max: i64 = max.parse().ok()?;
    if rate < 0 {
        return (rate == -1 && max == -1).then_some(BucketSpec::UNLIMITED);
    }
    Some(BucketSpec {
        rate: Some(rate as u64),
        max: u64::try_from(max).ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::parse_bucket;

    #[test]
    fn buckets_are_rate_over_max() {
        assert_eq!(
            parse_bucket("64000/16000").map(|b| (b.rate, b.max)),
            Some((Some(64000), 16000))
        );
        assert_eq!(parse_bucket("-1/-1").map(|b| b.rate), Some(None));
        for bad in ["64000", "-1/100", "a/b", "10/-5", "/"] {
            assert_eq!(parse_bucket(bad), None, "{bad}");
        }
    }
}

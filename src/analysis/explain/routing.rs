//! Where the requests `http_access` allows go: direct, or which parents, by which
//! `always_direct`, `never_direct` and `cache_peer_access` lines.

use std::collections::BTreeSet;

use super::grid::{Decisions, Grid};
use super::{ParentInfo, Routing, action_word};
use crate::config::{Config, PeerSelection};
use crate::policy::{Action, Rule, RuleList};
use crate::route::select::{RouteShape, parents_first, route_shape};

/// Where an allowed request goes, for routing.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Route {
    /// `always_direct` allows it (line).
    Direct(Option<usize>),
    /// `never_direct` allows it: these parents only (the `never_direct` line).
    ParentsOnly(Vec<usize>, Option<usize>),
    /// Direct first, then these parents (Squid 5.7 without `never_direct`: docs/squid-behaviour.md F10).
    DirectFirst(Vec<usize>),
    /// These parents first, then direct (`nonhierarchical_direct off`).
    ParentsFirst(Vec<usize>),
}

/// Where the requests `http_access` allows go, per class, summarised.
pub(super) fn routing(grid: &Grid<'_>) -> Routing {
    let config = grid.config;
    let parents: Vec<ParentInfo> = config
        .peers
        .iter()
        .map(|p| ParentInfo {
            name: p.name.clone(),
            address: format!("{}:{}", p.host, p.http_port),
            selection: match p.selection {
                PeerSelection::FirstUp => "FIRSTUP",
                PeerSelection::RoundRobin => "round-robin",
                PeerSelection::WeightedRoundRobin => "weighted-round-robin",
            },
            line: p.origin.line,
            access: p.access.rules.iter().map(|r| list_rule_text(config, r)).collect(),
        })
        .collect();
    let routes = route_classes(grid);
    let name = |i: &usize| {
        let p = &parents[*i];
        let named = if p.name != config.peers[*i].host {
            format!(" name={}", p.name)
        } else {
            String::new()
        };
        format!("{}{named} ({})", p.address, p.selection)
    };
    let list = |ps: &[usize]| -> String {
        if ps.is_empty() {
            "none eligible, so it is refused".to_string()
        } else {
            ps.iter().map(name).collect::<Vec<_>>().join(", then ")
        }
    };
    // One sentence per kind of route; the lines that choose it and the parents it may use
    // are merged across classes (cache_peer_access limits are listed with the parents).
    let mut direct_by: BTreeSet<Option<usize>> = BTreeSet::new();
    let mut parents_by: BTreeSet<Option<usize>> = BTreeSet::new();
    let mut parents_only: BTreeSet<usize> = BTreeSet::new();
    let mut fallback: BTreeSet<usize> = BTreeSet::new();
    let mut direct_first = false;
    let mut parents_then_direct: BTreeSet<usize> = BTreeSet::new();
    let mut parents_first_seen = false;
    for route in &routes {
        match route {
            Route::Direct(rule) => {
                direct_by.insert(*rule);
            }
            Route::ParentsOnly(ps, rule) => {
                parents_by.insert(*rule);
                parents_only.extend(ps);
            }
            Route::DirectFirst(ps) => {
                direct_first = true;
                fallback.extend(ps);
            }
            Route::ParentsFirst(ps) => {
                parents_first_seen = true;
                parents_then_direct.extend(ps);
            }
        }
    }
    let kinds = usize::from(!direct_by.is_empty())
        + usize::from(!parents_by.is_empty())
        + usize::from(direct_first)
        + usize::from(parents_first_seen);
    let every = kinds == 1;
    let lines = |list: &RuleList, name: &str, rules: &BTreeSet<Option<usize>>| -> String {
        let named: Vec<String> = rules
            .iter()
            .flatten()
            .map(|&i| {
                format!(
                    "{name} {} (line {})",
                    words(config, &list.rules[i]),
                    list.rules[i].origin.line
                )
            })
            .collect();
        named.join(", ")
    };
    let ordered = |ps: &BTreeSet<usize>| -> Vec<usize> { ps.iter().copied().collect() };
    let mut summary = Vec::new();
    if !direct_by.is_empty() {
        let by = lines(&config.always_direct, "always_direct", &direct_by);
        summary.push(if config.peers.is_empty() && by.is_empty() {
            "no cache_peer → every request goes direct".to_string()
        } else if by.is_empty() {
            format!(
                "no eligible parent → {} direct",
                if every {
                    "every request goes"
                } else {
                    "some requests go"
                }
            )
        } else {
            format!(
                "{by} → {} direct",
                if every {
                    "every request goes"
                } else {
                    "the requests it matches go"
                }
            )
        });
    }
    if !parents_by.is_empty() {
        let by = lines(&config.never_direct, "never_direct", &parents_by);
        summary.push(format!(
            "{by} → {} to a parent: {}, no direct fallback",
            if every {
                "every request goes"
            } else {
                "the requests it matches go"
            },
            list(&ordered(&parents_only))
        ));
    }
    if direct_first {
        summary.push(format!(
            "no never_direct → {} direct first, then to a parent if direct fails: {}",
            if every { "every request goes" } else { "the rest go" },
            list(&ordered(&fallback))
        ));
    }
    if parents_first_seen {
        summary.push(format!(
            "nonhierarchical_direct off, no never_direct → {} to a parent first: {}, then direct if every parent fails",
            if every { "every request goes" } else { "the rest go" },
            list(&ordered(&parents_then_direct))
        ));
    }
    if summary.is_empty() {
        summary.push("nothing is allowed, so nothing is routed".to_string());
    }
    Routing { summary, parents }
}

/// The distinct routes of the classes `http_access` allows.
fn route_classes(grid: &Grid<'_>) -> BTreeSet<Route> {
    let config = grid.config;
    let parents_first = parents_first(config);
    let decide = |list: &RuleList| (!list.is_empty()).then(|| grid.evaluate_all(list));
    let always = decide(&config.always_direct);
    let never = decide(&config.never_direct);
    let access: Vec<Option<Decisions>> = config.peers.iter().map(|p| decide(&p.access)).collect();
    let mut routes = BTreeSet::new();
    for (cell, &(action, _)) in grid.decided.iter().enumerate() {
        if action == Action::Deny {
            continue;
        }
        let at = |d: &Option<Decisions>| d.as_ref().map(|v| v[cell]);
        routes.insert(route_shape_without_health(
            at(&always),
            at(&never),
            parents_first,
            access.iter().map(at).collect(),
        ));
    }
    routes
}

/// The route a request with these list decisions takes, without parent health: route's own
/// [`route_shape`], with the deciding lines kept beside it for the explanation.
fn route_shape_without_health(
    always: Option<(Action, Option<usize>)>,
    never: Option<(Action, Option<usize>)>,
    parents_first: bool,
    access: Vec<Option<(Action, Option<usize>)>>,
) -> Route {
    let allowed_by = |d: Option<(Action, Option<usize>)>| match d {
        Some((Action::Allow, rule)) => Some(rule),
        _ => None,
    };
    let (always_rule, never_rule) = (allowed_by(always), allowed_by(never));
    // A parent without cache_peer_access takes every request.
    let eligible: Vec<usize> = (0..access.len())
        .filter(|&i| access[i].is_none_or(|d| d.0 == Action::Allow))
        .collect();
    match route_shape(always_rule.is_some(), never_rule.is_some(), parents_first, eligible) {
        RouteShape::Direct => Route::Direct(always_rule.flatten()),
        RouteShape::ParentsOnly(parents) => Route::ParentsOnly(parents, never_rule.flatten()),
        RouteShape::DirectFirst(parents) => Route::DirectFirst(parents),
        RouteShape::ParentsFirst(parents) => Route::ParentsFirst(parents),
    }
}

/// `allow all`: a rule of any list without its directive name.
fn words(config: &Config, rule: &Rule) -> String {
    let acls: Vec<String> = rule
        .acls
        .iter()
        .map(|r| format!("{}{}", if r.negated { "!" } else { "" }, config.acls.get(r.acl).name))
        .collect();
    format!("{} {}", action_word(rule.action), acls.join(" "))
}

fn list_rule_text(config: &Config, rule: &Rule) -> String {
    format!("{} (line {})", words(config, rule), rule.origin.line)
}

//! Choosing the next hops for a request, in the order they are tried, as Squid 5.7 does it
//! (docs/squid-behaviour.md 3.3): with `never_direct`, live parents in config order (the first logged
//! `FIRSTUP_PARENT`, later ones `ANY_OLD_PARENT`); `round-robin` parents rotate. Unlike
//! Squid, parents marked down are still tried last, so a stale health state never refuses a
//! request that could have worked (Squid answers 500 without trying: docs/squid-behaviour.md F7).

use std::net::IpAddr;
use std::sync::atomic::Ordering;

use super::egress::Egress;
use crate::config::{Config, PeerSelection};
use crate::log::Hierarchy;
use crate::policy::{Action, RequestFacts};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextHop {
    Direct,
    Parent(usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attempt {
    pub hop: NextHop,
    pub hierarchy: Hierarchy,
}

/// The shape of a route, before parent health and rotation order the parents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteShape<P> {
    /// Straight to the origin only.
    Direct,
    /// Only these parents (`never_direct`); empty means there is no route.
    ParentsOnly(Vec<P>),
    /// The origin first, then these parents (Squid 5.7 without `never_direct`: docs/squid-behaviour.md F10).
    DirectFirst(Vec<P>),
    /// These parents first, then the origin (`nonhierarchical_direct off` with
    /// `prefer_direct off`).
    ParentsFirst(Vec<P>),
}

/// Where a request that may go either way (no `always_direct`, no `never_direct`) goes
/// first. Squid 5.7 with its defaults sent both CONNECT and GET direct
/// (docs/squid-behaviour.md F10): `nonhierarchical_direct on` sends requests it does not
/// cache (CONNECT, and every request of a proxy that caches nothing, as hopproxy) direct.
/// With it off, they take the hierarchical path: parents first unless `prefer_direct on`.
pub fn parents_first(config: &Config) -> bool {
    !config.nonhierarchical_direct && !config.prefer_direct
}

/// The routing decision shared by [`plan`] and the configuration's explanation: whether
/// `always_direct` and `never_direct` allow the request, and which parents'
/// `cache_peer_access` takes it. `always_direct` wins over everything.
pub fn route_shape<P>(always_direct: bool, never_direct: bool, parents_first: bool, eligible: Vec<P>) -> RouteShape<P> {
    if always_direct {
        RouteShape::Direct
    } else if never_direct {
        RouteShape::ParentsOnly(eligible)
    } else if eligible.is_empty() {
        RouteShape::Direct
    } else if parents_first {
        RouteShape::ParentsFirst(eligible)
    } else {
        RouteShape::DirectFirst(eligible)
    }
}

/// The hops to try for a request, in order. Round-robin parents' counters advance.
pub fn plan(egress: &Egress, config: &Config, facts: &RequestFacts<'_>) -> Vec<Attempt> {
    let acls = &config.acls;
    let direct = Attempt {
        hop: NextHop::Direct,
        hierarchy: Hierarchy::Direct,
    };
    let always_direct = config.always_direct.allows(acls, facts, Action::Deny);
    // With always_direct the other lists do not matter; skip evaluating them.
    let eligible: Vec<usize> = if always_direct {
        Vec::new()
    } else {
        (0..config.peers.len())
            .filter(|&i| config.peers[i].access.allows(acls, facts, Action::Allow))
            .collect()
    };
    let never_direct = !always_direct && config.never_direct.allows(acls, facts, Action::Deny);
    match route_shape(always_direct, never_direct, parents_first(config), eligible) {
        RouteShape::Direct => vec![direct],
        RouteShape::ParentsOnly(eligible) => order_parents(egress, config, &eligible),
        RouteShape::ParentsFirst(eligible) => {
            let mut attempts = order_parents(egress, config, &eligible);
            attempts.push(direct);
            attempts
        }
        RouteShape::DirectFirst(eligible) => std::iter::once(direct)
            .chain(order_parents(egress, config, &eligible).into_iter().map(|a| Attempt {
                hierarchy: Hierarchy::AnyOldParent,
                ..a
            }))
            .collect(),
    }
}

fn order_parents(egress: &Egress, config: &Config, eligible: &[usize]) -> Vec<Attempt> {
    let peers = &config.peers;
    let (live, down): (Vec<usize>, Vec<usize>) = eligible.iter().partition(|&&i| !egress.health(i).is_down());
    let mut ordered: Vec<Attempt> = Vec::with_capacity(eligible.len());

    let rotating = live
        .iter()
        .copied()
        .filter(|&i| peers[i].selection != PeerSelection::FirstUp);
    // Lowest uses-per-weight goes first; plain round-robin has weight 1.
    let chosen = rotating.min_by_key(|&i| {
        let weight = u64::from(peers[i].weight.max(1));
        egress.peer(i).uses.load(Ordering::Relaxed) * 1000 / weight
    });
    if let Some(i) = chosen {
        egress.peer(i).uses.fetch_add(1, Ordering::Relaxed);
        ordered.push(Attempt {
            hop: NextHop::Parent(i),
            hierarchy: Hierarchy::RoundRobinParent,
        });
    }
    for i in live.into_iter().chain(down) {
        if Some(i) == chosen {
            continue;
        }
        let hierarchy = if ordered.is_empty() {
            Hierarchy::FirstUpParent
        } else {
            Hierarchy::AnyOldParent
        };
        ordered.push(Attempt {
            hop: NextHop::Parent(i),
            hierarchy,
        });
    }
    ordered
}

/// Whether routing reads `dst` ACLs (always_direct, never_direct, cache_peer_access,
/// tcp_outgoing_address), so the destination must be resolved before routing.
pub fn needs_dst_addrs(config: &Config) -> bool {
    let acls = &config.acls;
    config.always_direct.needs_dst_addrs(acls)
        || config.never_direct.needs_dst_addrs(acls)
        || config.peers.iter().any(|p| p.access.needs_dst_addrs(acls))
        || config
            .tcp_outgoing_address
            .iter()
            .flat_map(|o| &o.acls)
            .any(|r| acls.get(r.acl).kind.needs_dst_addrs())
}

/// The source address for an outgoing connection to `dest`: the first `tcp_outgoing_address`
/// line whose ACLs match and whose address family fits.
pub fn outgoing_address(config: &Config, facts: &RequestFacts<'_>, dest: IpAddr) -> Option<IpAddr> {
    let acls = &config.acls;
    config
        .tcp_outgoing_address
        .iter()
        .filter(|o| o.addr.is_ipv4() == dest.to_canonical().is_ipv4())
        .find(|o| o.acls.iter().all(|r| acls.get(r.acl).kind.matches(facts) != r.negated))
        .map(|o| o.addr)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_str;
    use std::net::Ipv4Addr;
    use std::path::Path;

    /// A config (with `hosts_file none`, so nothing is read) and its egress state.
    fn setup(text: &str) -> (Config, Egress) {
        let config = parse_str(&format!("http_port 3128\nhosts_file none\n{text}"), Path::new("t.conf"))
            .unwrap_or_else(|d| panic!("invalid test config: {d:?}"))
            .config;
        let egress = Egress::new(&config, None).expect("egress");
        (config, egress)
    }

    /// The plan for a GET to `host` from 127.0.0.5, as `HIERARCHY/name` words.
    fn route(config: &Config, egress: &Egress, host: &str) -> String {
        let facts = RequestFacts {
            client: IpAddr::V4(Ipv4Addr::new(127, 0, 0, 5)),
            method: "GET",
            proto: "HTTP",
            host,
            port: 80,
            path: "/",
            dst_addrs: &[],
            host_aliases: &[],
            local_port: 3128,
            user: None,
            more: crate::policy::MoreFacts::default(),
        };
        let words: Vec<String> = plan(egress, config, &facts)
            .iter()
            .map(|a| match a.hop {
                NextHop::Direct => a.hierarchy.code().to_string(),
                NextHop::Parent(i) => format!("{}/{}", a.hierarchy.code(), config.peers[i].name),
            })
            .collect();
        words.join(" ")
    }

    const TWO_PARENTS: &str = "cache_peer 127.0.0.1 parent 3128 0 name=a\ncache_peer 127.0.0.2 parent 3128 0 name=b\n";

    #[test]
    fn routing_table() {
        let rr = "cache_peer 127.0.0.1 parent 3128 0 round-robin name=a\n\
                  cache_peer 127.0.0.2 parent 3128 0 round-robin name=b\n";
        let cases: &[(&str, &str, &str, &str)] = &[
            ("no parents: direct", "", "x.test", "HIER_DIRECT"),
            (
                "parents without never_direct: direct first, parents ANY_OLD_PARENT (F10)",
                TWO_PARENTS,
                "x.test",
                "HIER_DIRECT ANY_OLD_PARENT/a ANY_OLD_PARENT/b",
            ),
            (
                "never_direct: parents in order, the first FIRSTUP_PARENT",
                &format!("{TWO_PARENTS}never_direct allow all"),
                "x.test",
                "FIRSTUP_PARENT/a ANY_OLD_PARENT/b",
            ),
            (
                "always_direct wins over never_direct",
                &format!(
                    "{TWO_PARENTS}acl local dstdomain .local.test\nalways_direct allow local\nnever_direct allow all"
                ),
                "www.local.test",
                "HIER_DIRECT",
            ),
            (
                "always_direct not matching: never_direct applies",
                &format!(
                    "{TWO_PARENTS}acl local dstdomain .local.test\nalways_direct allow local\nnever_direct allow all"
                ),
                "x.test",
                "FIRSTUP_PARENT/a ANY_OLD_PARENT/b",
            ),
            (
                "cache_peer_access: only the parent that takes the request",
                &format!("{TWO_PARENTS}acl x dstdomain x.test\ncache_peer_access a deny x\nnever_direct allow all"),
                "x.test",
                "FIRSTUP_PARENT/b",
            ),
            (
                "cache_peer_access: the other host still goes to both",
                &format!("{TWO_PARENTS}acl x dstdomain x.test\ncache_peer_access a deny x\nnever_direct allow all"),
                "y.test",
                "FIRSTUP_PARENT/a ANY_OLD_PARENT/b",
            ),
            (
                "cache_peer_access denies every parent, never_direct: no route",
                &format!(
                    "{TWO_PARENTS}cache_peer_access a deny all\ncache_peer_access b deny all\nnever_direct allow all"
                ),
                "x.test",
                "",
            ),
            (
                "cache_peer_access denies every parent, no never_direct: direct only",
                &format!("{TWO_PARENTS}cache_peer_access a deny all\ncache_peer_access b deny all"),
                "x.test",
                "HIER_DIRECT",
            ),
            (
                "round-robin: the chosen one first, ROUNDROBIN_PARENT",
                &format!("{rr}never_direct allow all"),
                "x.test",
                "ROUNDROBIN_PARENT/a ANY_OLD_PARENT/b",
            ),
            (
                "round-robin after direct: parents renamed ANY_OLD_PARENT",
                rr,
                "x.test",
                "HIER_DIRECT ANY_OLD_PARENT/a ANY_OLD_PARENT/b",
            ),
            (
                "nonhierarchical_direct off: parents first, then direct",
                &format!("{TWO_PARENTS}nonhierarchical_direct off"),
                "x.test",
                "FIRSTUP_PARENT/a ANY_OLD_PARENT/b HIER_DIRECT",
            ),
            (
                "nonhierarchical_direct off with prefer_direct on: direct first",
                &format!("{TWO_PARENTS}nonhierarchical_direct off\nprefer_direct on"),
                "x.test",
                "HIER_DIRECT ANY_OLD_PARENT/a ANY_OLD_PARENT/b",
            ),
            (
                "nonhierarchical_direct off, never_direct: still no direct fallback",
                &format!("{TWO_PARENTS}nonhierarchical_direct off\nnever_direct allow all"),
                "x.test",
                "FIRSTUP_PARENT/a ANY_OLD_PARENT/b",
            ),
            (
                "nonhierarchical_direct off, always_direct matching: direct only",
                &format!("{TWO_PARENTS}nonhierarchical_direct off\nalways_direct allow all"),
                "x.test",
                "HIER_DIRECT",
            ),
        ];
        for (name, text, host, want) in cases {
            let (config, egress) = setup(text);
            assert_eq!(route(&config, &egress, host), *want, "{name}");
        }
    }

    #[test]
    fn down_parents_are_tried_last_not_dropped() {
        let (config, egress) = setup(&format!(
            "{TWO_PARENTS}cache_peer 127.0.0.3 parent 3128 0 name=c\nnever_direct allow all"
        ));
        egress.health(0).mark_down();
        assert_eq!(
            route(&config, &egress, "x.test"),
            "FIRSTUP_PARENT/b ANY_OLD_PARENT/c ANY_OLD_PARENT/a"
        );
        egress.health(1).mark_down();
        egress.health(2).mark_down();
        // All down: still tried, in config order, the first logged FIRSTUP_PARENT.
        assert_eq!(
            route(&config, &egress, "x.test"),
            "FIRSTUP_PARENT/a ANY_OLD_PARENT/b ANY_OLD_PARENT/c"
        );
        egress.health(0).record_success();
        assert_eq!(
            route(&config, &egress, "x.test"),
            "FIRSTUP_PARENT/a ANY_OLD_PARENT/b ANY_OLD_PARENT/c"
        );
    }

    #[test]
    fn round_robin_rotates_among_live_parents() {
        let (config, egress) = setup(
            "cache_peer 127.0.0.1 parent 3128 0 round-robin name=a\n\
             cache_peer 127.0.0.2 parent 3128 0 round-robin name=b\n\
             cache_peer 127.0.0.3 parent 3128 0 name=c\nnever_direct allow all",
        );
        let firsts: Vec<String> = (0..4).map(|_| route(&config, &egress, "x.test")).collect();
        assert_eq!(
            firsts,
            [
                "ROUNDROBIN_PARENT/a ANY_OLD_PARENT/b ANY_OLD_PARENT/c",
                "ROUNDROBIN_PARENT/b ANY_OLD_PARENT/a ANY_OLD_PARENT/c",
                "ROUNDROBIN_PARENT/a ANY_OLD_PARENT/b ANY_OLD_PARENT/c",
                "ROUNDROBIN_PARENT/b ANY_OLD_PARENT/a ANY_OLD_PARENT/c",
            ]
        );
        // A down round-robin parent leaves the rotation and goes last.
        egress.health(0).mark_down();
        for _ in 0..2 {
            assert_eq!(
                route(&config, &egress, "x.test"),
                "ROUNDROBIN_PARENT/b ANY_OLD_PARENT/c ANY_OLD_PARENT/a"
            );
        }
    }

    #[test]
    fn weighted_round_robin_follows_the_weights() {
        let (config, egress) = setup(
            "cache_peer 127.0.0.1 parent 3128 0 weighted-round-robin weight=3 name=heavy\n\
             cache_peer 127.0.0.2 parent 3128 0 weighted-round-robin weight=1 name=light\n\
             never_direct allow all",
        );
        let mut heavy = 0;
        for _ in 0..40 {
            let first = route(&config, &egress, "x.test");
            if first.starts_with("ROUNDROBIN_PARENT/heavy ") {
                heavy += 1;
            } else {
                assert_eq!(first, "ROUNDROBIN_PARENT/light ANY_OLD_PARENT/heavy");
            }
        }
        assert_eq!(heavy, 30, "3:1 weights over 40 requests");
    }

    #[test]
    fn dst_acls_in_routing_lists_ask_for_a_lookup() {
        let needs = |text: &str| needs_dst_addrs(&setup(&format!("{TWO_PARENTS}acl d dst 10.0.0.0/8\n{text}")).0);
        assert!(!needs("never_direct allow all"));
        assert!(needs("never_direct allow d"));
        assert!(needs("always_direct allow !d"));
        assert!(needs("cache_peer_access b allow d"));
        assert!(needs("tcp_outgoing_address 127.0.0.1 d"));
    }

    /// `tcp_outgoing_address`: the first line whose ACLs hold (negation honoured) and whose
    /// family fits the destination's; none when nothing fits.
    #[test]
    fn outgoing_address_table() {
        let (config, _) = setup(
            "acl five src 127.0.0.5\nacl other src 127.0.0.6\n\
             tcp_outgoing_address 10.0.0.1 other\n\
             tcp_outgoing_address 10.0.0.2 !five\n\
             tcp_outgoing_address 2001:db8::7 five\n\
             tcp_outgoing_address 10.0.0.3 five\n",
        );
        let from = |client: [u8; 4], dest: &str| {
            let facts = RequestFacts {
                client: IpAddr::from(client),
                method: "GET",
                proto: "HTTP",
                host: "x.test",
                port: 80,
                path: "/",
                dst_addrs: &[],
                host_aliases: &[],
                local_port: 3128,
                user: None,
                more: crate::policy::MoreFacts::default(),
            };
            outgoing_address(&config, &facts, dest.parse().unwrap()).map(|a| a.to_string())
        };
        // .5: `other` and `!five` fail; the IPv6 line fits only an IPv6 destination.
        assert_eq!(from([127, 0, 0, 5], "192.0.2.1").as_deref(), Some("10.0.0.3"));
        assert_eq!(from([127, 0, 0, 5], "2001:db8::1").as_deref(), Some("2001:db8::7"));
        // An IPv4-mapped IPv6 destination is IPv4.
        assert_eq!(from([127, 0, 0, 5], "::ffff:192.0.2.1").as_deref(), Some("10.0.0.3"));
        assert_eq!(from([127, 0, 0, 6], "192.0.2.1").as_deref(), Some("10.0.0.1"));
        assert_eq!(from([127, 0, 0, 7], "192.0.2.1").as_deref(), Some("10.0.0.2"));
        // .7 to IPv6: only `2001:db8::7 five` has the family, and .7 is not `five`.
        assert_eq!(from([127, 0, 0, 7], "2001:db8::1"), None);
    }

    #[test]
    fn route_shape_table() {
        use RouteShape::*;
        for parents_first in [false, true] {
            assert_eq!(route_shape(true, true, parents_first, vec![1, 2]), Direct);
            assert_eq!(route_shape(true, false, parents_first, vec![1]), Direct);
            assert_eq!(
                route_shape(false, true, parents_first, vec![1, 2]),
                ParentsOnly(vec![1, 2])
            );
            assert_eq!(
                route_shape(false, true, parents_first, Vec::<usize>::new()),
                ParentsOnly(vec![])
            );
            assert_eq!(route_shape(false, false, parents_first, Vec::<usize>::new()), Direct);
        }
        assert_eq!(route_shape(false, false, false, vec![2]), DirectFirst(vec![2]));
        assert_eq!(route_shape(false, false, true, vec![2]), ParentsFirst(vec![2]));
    }
}

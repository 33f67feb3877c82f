//! Choosing the next hops for a request, in the order they are tried, as Squid 5.7 does it
//! (reference 3.3): with `never_direct`, live parents in config order (the first logged
//! `FIRSTUP_PARENT`, later ones `ANY_OLD_PARENT`); `round-robin` parents rotate. Unlike
//! Squid, parents marked down are still tried last, so a stale health state never refuses a
//! request that could have worked (Squid answers 500 without trying: F7).

use std::net::IpAddr;
use std::sync::atomic::Ordering;

use crate::config::PeerSelection;
use crate::log::Hierarchy;
use crate::policy::{Action, RequestFacts};
use crate::state::Generation;

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

pub fn plan(generation: &Generation, facts: &RequestFacts<'_>) -> Vec<Attempt> {
    let config = &generation.config;
    let acls = &config.acls;
    let direct = Attempt {
        hop: NextHop::Direct,
        hierarchy: Hierarchy::Direct,
    };
    if config.always_direct.allows(acls, facts, Action::Deny) {
        return vec![direct];
    }
    let eligible: Vec<usize> = (0..config.peers.len())
        .filter(|&i| config.peers[i].access.allows(acls, facts, Action::Allow))
        .collect();
    let parents = order_parents(generation, &eligible);
    if config.never_direct.allows(acls, facts, Action::Deny) {
        return parents;
    }
    // Squid 5.7 sent both CONNECT and GET direct when never_direct was absent (F10).
    std::iter::once(direct)
        .chain(parents.into_iter().map(|a| Attempt {
            hierarchy: Hierarchy::AnyOldParent,
            ..a
        }))
        .collect()
}

fn order_parents(generation: &Generation, eligible: &[usize]) -> Vec<Attempt> {
    let peers = &generation.config.peers;
    let health = &generation.peer_health;
    let (live, down): (Vec<usize>, Vec<usize>) = eligible.iter().partition(|&&i| !health[i].is_down());
    let mut ordered: Vec<Attempt> = Vec::with_capacity(eligible.len());

    let rotating = live
        .iter()
        .copied()
        .filter(|&i| peers[i].selection != PeerSelection::FirstUp);
    // Lowest uses-per-weight goes first; plain round-robin has weight 1.
    let chosen = rotating.min_by_key(|&i| {
        let weight = u64::from(peers[i].weight.max(1));
        health[i].uses.load(Ordering::Relaxed) * 1000 / weight
    });
    if let Some(i) = chosen {
        health[i].uses.fetch_add(1, Ordering::Relaxed);
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

/// The source address for an outgoing connection to `dest`: the first `tcp_outgoing_address`
/// line whose ACLs match and whose address family fits.
pub fn outgoing_address(generation: &Generation, facts: &RequestFacts<'_>, dest: IpAddr) -> Option<IpAddr> {
    let acls = &generation.config.acls;
    generation
        .config
        .tcp_outgoing_address
        .iter()
        .filter(|o| o.addr.is_ipv4() == dest.to_canonical().is_ipv4())
        .find(|o| o.acls.iter().all(|r| acls.get(r.acl).kind.matches(facts) != r.negated))
        .map(|o| o.addr)
}

//! Whole-config reasoning over the policy evaluator, for the `check` and `explain` commands.
//!
//! [`space`] cuts the request space into classes every ACL treats alike; [`lint`] finds open-proxy
//! policies on those classes (for `check`); [`explain`] states the policy and its routing in
//! words. Imports `config` and `policy`; neither of them imports this module.

pub mod check;
pub mod explain;
pub mod lint;
mod matcher;
mod space;

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::space::evaluations;
    use crate::config::{Config, parse_str};

    /// The seed's policy with `entries` names in its dstdomain ACL and `entries / 10`
    /// addresses in its src ACL.
    fn big_seed(entries: usize) -> Config {
        let sources: Vec<String> = (0..entries / 10)
            .map(|i| format!("10.{}.{}.{}", i >> 8 & 255, i & 255, i % 250 + 1))
            .collect();
        let mut text = format!(
            "http_port 8080\nacl SSL_ports port 443\nacl Safe_ports port 443\nacl client_net src {}\n",
            sources.join(" ")
        );
        for chunk in (0..entries).collect::<Vec<_>>().chunks(100) {
            let names: Vec<String> = chunk.iter().map(|i| format!(".site{i}.example.com")).collect();
            text += &format!("acl allowed_https_sites dstdomain {}\n", names.join(" "));
        }
        text += "http_access allow client_net allowed_https_sites\nhttp_access allow CONNECT SSL_ports\n\
                 http_access allow Safe_ports\nhttp_access deny all\n";
        parse_str(&text, Path::new("big.conf")).expect("valid").config
    }

    /// Evaluator calls made by `check`'s lint and by `explain`, and what they report.
    fn work(config: &Config) -> (usize, Vec<String>) {
        let before = evaluations();
        let mut said: Vec<String> = super::lint::lint(config).iter().map(ToString::to_string).collect();
        let (rows, routing) = super::explain::analyse(config);
        said.extend(rows.iter().map(|r| format!("{r:?}")));
        said.extend(routing.summary);
        (evaluations() - before, said)
    }

    /// Ten times the entries may cost at most about fifteen times the evaluations: values
    /// that every ACL treats alike are one class, evaluated once.
    #[test]
    fn work_grows_with_classes_not_with_entries() {
        let (small, small_said) = work(&big_seed(300));
        let (large, large_said) = work(&big_seed(3000));
        assert!(small > 0);
        assert!(
            large <= small * 15,
            "{small} evaluations for 300 entries, {large} for 3000"
        );
        // Same findings and the same rows (the ACLs are named, not listed, past a few values).
        assert_eq!(small_said.len(), large_said.len());
        assert_eq!(
            small_said.iter().filter(|s| s.contains("warning")).count(),
            large_said.iter().filter(|s| s.contains("warning")).count()
        );
    }
}

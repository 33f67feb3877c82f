//! `external_acl_type NAME [options] FORMAT… /path/helper [args]` and `acl NAME external
//! TYPE [args]`. Squid 5.7's defaults: `ttl=3600`, `negative_ttl` = `ttl`, `children-max=5`,
//! `children-startup=0`, `children-idle=1`, `concurrency=0`, `cache=262144`; the type must be
//! defined before an `acl` names it.

use std::path::PathBuf;
use std::time::Duration;

use super::Builder;
use crate::config::helper_opts::{HelperChildren, runnable};
use crate::config::lexer::{Line, Token};
use crate::helper::external::{ExternalAclType, FormatCode, KNOWN_CODES, parse_code};
use crate::policy::{AclKind, ExternalRef, Origin};

const EXAMPLE: &str = "external_acl_type checker ttl=60 children-max=5 %SRC %LOGIN /usr/local/bin/checker";

impl Builder {
    pub(super) fn external_acl_type(&mut self, line: &Line) {
        let origin = &line.origin;
        match parse(line.args(), self.syntax_only) {
            Ok(parsed) => {
                if self.config.external_acl_types.iter().any(|t| t.name == parsed.name) {
                    self.error(origin, format!("external_acl_type '{}' is defined twice", parsed.name))
                        .hint = Some("give each external_acl_type its own name".into());
                    return;
                }
                self.config.external_acl_types.push(parsed);
            }
            Err((message, hint)) => {
                self.error(origin, format!("external_acl_type: {message}")).hint = Some(hint);
            }
        }
    }

    /// The kind for `acl NAME external TYPE [args]`, or the error for the line.
    pub(super) fn external_acl_kind(&mut self, values: &[Token], origin: &Origin) -> Option<AclKind> {
        let Some((type_name, args)) = values.split_first() else {
            self.error(origin, "an external ACL needs the external_acl_type name")
                .hint = Some("acl checked external checker [args]".into());
            return None;
        };
        let Some(type_index) = self
            .config
            .external_acl_types
            .iter()
            .position(|t| t.name == type_name.text)
        else {
            self.error(
                origin,
                format!(
                    "external_acl_type '{}' is not defined on an earlier line",
                    type_name.text
                ),
            )
            .hint = Some(format!("define it first: {EXAMPLE}"));
            return None;
        };
        Some(AclKind::External(ExternalRef {
            type_index,
            args: args.iter().map(|t| t.text.clone()).collect(),
        }))
    }
}

type Problem = (String, String);

fn parse(args: &[Token], syntax_only: bool) -> Result<ExternalAclType, Problem> {
    let problem = |m: String| (m, EXAMPLE.to_string());
    let Some((name, rest)) = args.split_first() else {
        return Err(problem("needs a name, a format and the helper".into()));
    };
    let mut ttl = Duration::from_secs(3600);
    let mut negative_ttl = None;
    let mut cache_size = 0;
    let mut children = HelperChildren {
        max: 5,
        ..HelperChildren::default()
    };
    let mut at = 0;
    while let Some(token) = rest
        .get(at)
        .filter(|t| !t.text.starts_with('%') && !t.text.starts_with('/'))
    {
        let (key, value) = token.text.split_once('=').unwrap_or((token.text.as_str(), ""));
        let seconds = || {
            value
                .parse::<u64>()
                .map(Duration::from_secs)
                .map_err(|_| problem(format!("{key}={value}: expected seconds")))
        };
        match key {
            "ttl" => ttl = seconds()?,
            "negative_ttl" => negative_ttl = Some(seconds()?),
            "cache" => {
                cache_size = value
                    .parse()
                    .map_err(|_| problem(format!("cache={value}: expected a number of entries")))?
            }
            // Background refresh near expiry: hopproxy asks again when an entry expires.
            "grace" => {
                value
                    .parse::<u32>()
                    .map_err(|_| problem(format!("grace={value}: expected a percentage")))?;
            }
            "protocol" if matches!(value, "2.5" | "3.0") => {}
            "quote" if value == "url" => {}
            "quote" => {
                return Err((
                    format!("quote={value} is not supported"),
                    "hopproxy sends URL-escaped values (quote=url, Squid's default); adapt the helper to it".into(),
                ));
            }
            "ipv4" | "ipv6" => {}
            _ => match children.option(key, value) {
                Ok(true) => {}
                Ok(false) => {
                    return Err((
                        format!("unknown option '{}'", token.text),
                        "options: ttl= negative_ttl= cache= grace= children-max= children-startup= children-idle= \
                         concurrency= queue-size= protocol= quote=url; then the format (%SRC …) and the helper's full path"
                            .into(),
                    ));
                }
                Err(message) => return Err(problem(message)),
            },
        }
        at += 1;
    }
    let mut format: Vec<FormatCode> = Vec::new();
    while let Some(token) = rest.get(at).filter(|t| t.text.starts_with('%')) {
        format.push(parse_code(&token.text).map_err(|m| (m, format!("supported: {KNOWN_CODES}")))?);
        at += 1;
    }
    if format.is_empty() {
        return Err(problem("needs at least one format code before the helper".into()));
    }
    let Some(program) = rest.get(at) else {
        return Err(problem("needs the helper program after the format".into()));
    };
    let program = PathBuf::from(&program.text);
    if !syntax_only {
        runnable(&program).map_err(|m| (format!("helper '{}': {m}", program.display()), EXAMPLE.to_string()))?;
    }
    let helper_args = rest[at + 1..].iter().map(|t| t.text.clone()).collect();
    Ok(ExternalAclType {
        name: name.text.clone(),
        format,
        ttl,
        negative_ttl: negative_ttl.unwrap_or(ttl),
        cache_size,
        helper: children.spec(format!("external_acl_type {}", name.text), program, helper_args),
    })
}

impl Builder {
    /// External ACLs are asked only while `http_access` is evaluated; in the lists that
    /// decide routing or trust they match nothing, so say so where a config uses them there.
    pub(super) fn check_external_acl_use(&mut self) {
        let lists = [
            ("never_direct", &self.config.never_direct),
            ("always_direct", &self.config.always_direct),
            ("follow_x_forwarded_for", &self.config.follow_x_forwarded_for),
        ]
        .into_iter()
        .chain(self.config.peers.iter().map(|p| ("cache_peer_access", &p.access)));
        let mut found = Vec::new();
        for (list, rules) in lists {
            for rule in &rules.rules {
                for acl_ref in &rule.acls {
                    let draft = &self.acls[acl_ref.acl];
                    if matches!(draft.kind, AclKind::External(_)) {
                        found.push((rule.origin.clone(), list, draft.name.clone()));
                    }
                }
            }
        }
        for (origin, list, name) in found {
            self.warning(
                &origin,
                format!("external ACL '{name}' in {list} matches nothing: hopproxy asks external helpers only for http_access"),
            )
            .hint = Some("decide with the external ACL in http_access, and use other ACL types here".into());
        }
    }
}

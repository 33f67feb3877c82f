//! `ssl_bump`, `on_unsupported_protocol`, `tunnel_sni_must_match` and the `ssl-bump` flag of
//! `http_port`: Squid's peek-and-splice syntax, limited to what needs no decryption. Actions
//! that decrypt (`bump`, `stare`, the Squid 3.3 modes) are refused with what to write instead;
//! the certificate options of an `ssl-bump` port are accepted and reported as unused.

use super::Builder;
use crate::config::known;
use crate::config::lexer::{Line, Token};
use crate::config::model::Ignored;
use crate::policy::{BumpAction, BumpRule, Origin, UnsupportedAction, UnsupportedRule};

/// What to write instead of an action that decrypts.
const NEVER_BUMPS: &str = "hopproxy never decrypts tunnels: write 'ssl_bump peek step1' \
    (acl step1 at_step SslBump1), then 'ssl_bump splice' or 'ssl_bump terminate' on ssl::server_name ACLs instead";

/// `http_port` options that configure Squid's bumping CA and certificate generation: with
/// `ssl-bump` they are accepted and listed as unused by `check`.
pub const BUMP_CERT_OPTIONS: &[&str] = &[
    "cert",
    "key",
    "tls-cert",
    "tls-key",
    "cafile",
    "tls-cafile",
    "capath",
    "crlfile",
    "clientca",
    "dhparams",
    "tls-dh",
    "cipher",
    "options",
    "tls-options",
    "sslflags",
    "tls-flags",
    "sslcontext",
    "tls-context",
    "tls-min-version",
    "generate-host-certificates",
    "dynamic_cert_mem_cache_size",
];

impl Builder {
    /// `ssl_bump ACTION [!]ACL…`.
    pub(super) fn ssl_bump(&mut self, line: &Line) {
        let origin = &line.origin;
        let Some((action_token, acl_tokens)) = line.args().split_first() else {
            self.error(origin, "ssl_bump needs an action and ACL names").hint =
                Some("ssl_bump peek|splice|terminate ACL…, e.g. 'ssl_bump peek step1'".into());
            return;
        };
        let action = match action_token.text.as_str() {
            "peek" => BumpAction::Peek,
            // Squid: "none" is the deprecated spelling of splice.
            "splice" | "none" => BumpAction::Splice,
            "terminate" => BumpAction::Terminate,
            decrypting @ ("bump" | "stare" | "client-first" | "server-first") => {
                self.error(
                    origin,
                    format!("ssl_bump {decrypting}: hopproxy does not decrypt (bump) TLS tunnels"),
                )
                .hint = Some(NEVER_BUMPS.into());
                return;
            }
            other => {
                self.error(origin, format!("ssl_bump: unknown action '{other}'")).hint =
                    crate::config::suggest::did_you_mean(other, ["peek", "splice", "terminate"])
                        .or_else(|| Some("ssl_bump takes peek, splice or terminate".into()));
                return;
            }
        };
        let Some(acls) = self.rule_acls("ssl_bump", &action_token.text, acl_tokens, origin) else {
            return;
        };
        self.config.tunnel_rules.ssl_bump.push(BumpRule {
            action,
            acls,
            origin: origin.clone(),
        });
    }

    /// `on_unsupported_protocol tunnel|respond [!]ACL…`.
    pub(super) fn on_unsupported_protocol(&mut self, line: &Line) {
        let origin = &line.origin;
        let Some((action_token, acl_tokens)) = line.args().split_first() else {
            self.error(origin, "on_unsupported_protocol needs an action and ACL names")
                .hint = Some("on_unsupported_protocol tunnel|respond ACL…".into());
            return;
        };
        let action = match action_token.text.as_str() {
            "tunnel" => UnsupportedAction::Tunnel,
            "respond" => UnsupportedAction::Respond,
            other => {
                self.error(origin, format!("on_unsupported_protocol: unknown action '{other}'"))
                    .hint = Some("on_unsupported_protocol takes tunnel or respond".into());
                return;
            }
        };
        let Some(acls) = self.rule_acls("on_unsupported_protocol", &action_token.text, acl_tokens, origin) else {
            return;
        };
        self.config.tunnel_rules.on_unsupported_protocol.push(UnsupportedRule {
            action,
            acls,
            origin: origin.clone(),
        });
    }

    /// hopproxy extension `tunnel_sni_must_match on|off`.
    pub(super) fn tunnel_sni_must_match(&mut self, line: &Line) {
        self.diags.push(crate::config::diag::Diagnostic::note(
            &line.origin,
            format!(
                "'{}' is a hopproxy extension (Squid does not know it)",
                known::EXT_TUNNEL_SNI_MUST_MATCH
            ),
        ));
        if let Some(on) = self.on_off(line) {
            self.config.tunnel_rules.sni_must_match = on;
        }
    }

    /// The ACLs of a rule line; a line without any is dropped with Squid's warning.
    fn rule_acls(
        &mut self,
        directive: &str,
        action: &str,
        tokens: &[Token],
        origin: &Origin,
    ) -> Option<Vec<crate::policy::AclRef>> {
        let acls = self.acl_refs(tokens, origin)?;
        if acls.is_empty() {
            self.warning(
                origin,
                format!("{directive} line without ACLs is ignored (as Squid does)"),
            )
            .hint = Some(format!("write '{directive} {action} all' to match every tunnel"));
            return None;
        }
        Some(acls)
    }

    /// Whole-config checks: rules without an `ssl-bump` port, and such a port without rules.
    pub(super) fn check_tunnel_rules(&mut self) {
        let rules = &self.config.tunnel_rules;
        let has_rules = !rules.ssl_bump.is_empty() || !rules.on_unsupported_protocol.is_empty() || rules.sni_must_match;
        let bump_port = self.config.http_ports.iter().any(|p| p.ssl_bump);
        if has_rules && !bump_port {
            let first = rules
                .ssl_bump
                .first()
                .map(|r| r.origin.clone())
                .or_else(|| rules.on_unsupported_protocol.first().map(|r| r.origin.clone()));
            if let Some(origin) = first {
                self.warning(&origin, "ssl_bump rules apply to no port: no http_port has 'ssl-bump'")
                    .hint = Some("add 'ssl-bump' to the http_port whose tunnels these rules check".into());
            }
        }
    }

    /// An `http_port` option that only an `ssl-bump` port accepts; true when it was handled.
    pub(super) fn bump_port_option(&mut self, option: &str, bump_port: bool, origin: &Origin) -> bool {
        let key = option.split('=').next().unwrap_or_default();
        if !bump_port || !BUMP_CERT_OPTIONS.contains(&key) {
            return false;
        }
        self.config.ignored.push(Ignored {
            directive: format!("http_port option '{option}'"),
            origin: origin.clone(),
            reason: "a certificate for bumping; hopproxy never decrypts tunnels, it only reads the ClientHello",
            squid_ignores: false,
            args: Vec::new(),
        });
        true
    }
}

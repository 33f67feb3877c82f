//! `auth_param basic …` and the checks that tie `proxy_auth` ACLs to it.
//!
//! Squid 5.7, measured with `squid -k parse`: an unknown scheme is fatal ("Unknown
//! authentication scheme"); `realm` without text is fatal; `credentialsttl` without a unit is
//! fatal ("missing time unit"); `casesensitive` takes only on/off; an unknown parameter is
//! logged and skipped; a `proxy_auth` ACL on a line *before* `auth_param basic program` is
//! fatal ("Can't use proxy auth because no authentication schemes are fully configured",
//! then "Invalid ACL"). hopproxy reports the same cases, as errors with a hint.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::Builder;
use crate::auth::htpasswd::Htpasswd;
use crate::config::diag::Diagnostic;
use crate::config::helper_opts::{HelperChildren, parse_children};
use crate::config::lexer::Line;
use crate::config::model::{BasicAuth, Ignored, defaults};
use crate::config::{source, units};
use crate::policy::{AclKind, Origin};

/// The one helper hopproxy serves natively, recognised by its file name.
pub const NCSA_HELPER: &str = "basic_ncsa_auth";

/// `auth_param basic` settings seen so far; they may come before or after `program`.
#[derive(Debug, Default)]
pub struct AuthDraft {
    /// The helper and its arguments as written.
    program: Option<(PathBuf, Vec<String>, Origin)>,
    /// `auth_param basic children N startup= idle= concurrency= queue-size=`.
    children: Option<(HelperChildren, Origin)>,
    realm: Option<String>,
    credentials_ttl: Option<Duration>,
    case_sensitive: Option<bool>,
    /// The first `auth_param` line, for "no program" warnings.
    first: Option<Origin>,
    /// An `auth_param` line was rejected: what depends on it (proxy_auth ACLs, the "no program"
    /// warning) stays quiet, so one problem gives one error.
    rejected: bool,
}

impl AuthDraft {
    /// True once `auth_param basic program` was seen: `proxy_auth` ACLs may follow.
    pub fn configured(&self) -> bool {
        self.program.is_some()
    }
}

impl Builder {
    pub(super) fn auth_param(&mut self, line: &Line) {
        let errors_before = self.diags.iter().filter(|d| d.is_error()).count();
        self.auth_param_line(line);
        if self.diags.iter().filter(|d| d.is_error()).count() > errors_before {
            self.auth.rejected = true;
        }
    }

    fn auth_param_line(&mut self, line: &Line) {
        let origin = &line.origin;
        let args = line.args();
        let Some(scheme) = args.first() else {
            self.error(origin, "auth_param needs a scheme and a parameter").hint =
                Some("auth_param basic program /usr/lib/squid/basic_ncsa_auth /etc/squid/passwd".into());
            return;
        };
        match scheme.text.as_str() {
            "basic" => {}
            "digest" | "ntlm" | "negotiate" => {
                self.error(
                    origin,
                    format!("auth_param {}: only the basic scheme is supported", scheme.text),
                )
                .hint = Some("use 'auth_param basic program /usr/lib/squid/basic_ncsa_auth FILE'".into());
                return;
            }
            other => {
                self.error(origin, format!("unknown authentication scheme '{other}'"))
                    .hint = Some("hopproxy supports 'auth_param basic …'".into());
                return;
            }
        }
        self.auth.first.get_or_insert_with(|| origin.clone());
        let Some(parameter) = args.get(1) else {
            self.error(origin, "auth_param basic needs a parameter").hint =
                Some("program, realm, credentialsttl, casesensitive or children".into());
            return;
        };
        let values = &args[2..];
        match parameter.text.as_str() {
            "program" => self.auth_program(line),
            "realm" => {
                if values.is_empty() {
                    self.error(origin, "auth_param basic realm needs text").hint =
                        Some("auth_param basic realm Company proxy".into());
                } else {
                    let words: Vec<&str> = values.iter().map(|t| t.text.as_str()).collect();
                    self.auth.realm = Some(words.join(" "));
                }
            }
            "credentialsttl" => match values {
                [_] => {
                    self.error(origin, "auth_param basic credentialsttl: missing time unit").hint =
                        Some("write a unit, e.g. 'auth_param basic credentialsttl 2 hours' (Squid refuses a bare number too)".into());
                }
                _ => match units::parse_duration(values, 1.0) {
                    Ok(ttl) => self.auth.credentials_ttl = Some(ttl),
                    Err(message) => {
                        self.error(origin, format!("auth_param basic credentialsttl: {message}"))
                            .hint = Some("auth_param basic credentialsttl 2 hours".into());
                    }
                },
            },
            "casesensitive" => match values.iter().map(|t| t.text.as_str()).collect::<Vec<_>>().as_slice() {
                ["on"] => self.auth.case_sensitive = Some(true),
                ["off"] => self.auth.case_sensitive = Some(false),
                _ => {
                    self.error(origin, "auth_param basic casesensitive takes 'on' or 'off'");
                }
            },
            "children" => match parse_children(values) {
                Ok(children) => self.auth.children = Some((children, origin.clone())),
                Err(message) => {
                    self.error(origin, format!("auth_param basic children: {message}")).hint =
                        Some("auth_param basic children 5 startup=1 idle=1 concurrency=0".into());
                }
            },
            "utf8" => self.ignore_auth_param(
                line,
                "auth_param basic utf8",
                "credentials are checked as the client sent them, byte for byte",
            ),
            "keep_alive" => {
                self.ignore_auth_param(line, "auth_param basic keep_alive", "Squid ignores it for Basic too")
            }
            "key_extras" => self.ignore_auth_param(
                line,
                "auth_param basic key_extras",
                "basic_ncsa_auth uses only user and password",
            ),
            other => {
                // Squid 5.7: "Unrecognised basic auth scheme parameter 'bogus'", and goes on.
                self.warning(origin, format!("ignoring unknown auth_param basic parameter '{other}'"))
                    .hint = crate::config::suggest::did_you_mean(
                    other,
                    [
                        "program",
                        "realm",
                        "credentialsttl",
                        "casesensitive",
                        "children",
                        "utf8",
                    ],
                );
            }
        }
    }

    fn ignore_auth_param(&mut self, line: &Line, directive: &str, reason: &'static str) {
        self.config.ignored.push(Ignored {
            directive: directive.to_string(),
            origin: line.origin.clone(),
            reason,
            squid_ignores: false,
            args: Vec::new(),
        });
    }

    /// `auth_param basic program HELPER ARGS…`: only `…/basic_ncsa_auth PASSWD_FILE`.
    fn auth_program(&mut self, line: &Line) {
        let origin = &line.origin;
        let words = &line.args()[2..];
        let Some(helper) = words.first() else {
            self.error(
                origin,
                "auth_param basic program needs the helper and its password file",
            )
            .hint = Some("auth_param basic program /usr/lib/squid/basic_ncsa_auth /etc/squid/passwd".into());
            return;
        };
        let helper_path = PathBuf::from(&helper.text);
        let args: Vec<String> = words[1..].iter().map(|t| t.text.clone()).collect();
        if helper_path.file_name().and_then(|n| n.to_str()) == Some(NCSA_HELPER) {
            match args.len() {
                1 => {}
                0 => {
                    self.error(origin, "basic_ncsa_auth needs the password file as its argument")
                        .hint =
                        Some("auth_param basic program /usr/lib/squid/basic_ncsa_auth /etc/squid/passwd".into());
                    return;
                }
                _ => {
                    self.error(origin, "basic_ncsa_auth takes one argument, the password file")
                        .hint = Some("remove the other arguments".into());
                    return;
                }
            }
        } else if !self.syntax_only
            && let Err(problem) = crate::config::helper_opts::runnable(&helper_path)
        {
            self.error(origin, format!("auth_param basic program '{}': {problem}", helper.text))
                .hint = Some("give the full path of an executable helper (it is run as hopproxy's user)".into());
            return;
        }
        self.auth.program = Some((helper_path, args, origin.clone()));
    }

    /// A `proxy_auth` ACL needs `auth_param basic program` on an earlier line, as in Squid.
    pub(super) fn check_proxy_auth_acl(&mut self, name: &str, kind: &AclKind, origin: &Origin) {
        if !matches!(kind, AclKind::ProxyAuth(_)) || self.auth.configured() || self.auth.rejected {
            return;
        }
        self.error(
            origin,
            format!("proxy_auth ACL '{name}' needs 'auth_param basic program' on an earlier line"),
        )
        .hint = Some(
            "add 'auth_param basic program /usr/lib/squid/basic_ncsa_auth /etc/squid/passwd' before this line \
             (Squid: \"Can't use proxy auth because no authentication schemes are fully configured\")"
                .into(),
        );
    }

    /// Builds `Config::auth` and checks the password file (called from `finish`).
    pub(super) fn finish_auth(&mut self) {
        let draft = std::mem::take(&mut self.auth);
        let Some((helper, args, origin)) = draft.program else {
            if let Some(first) = draft.first.filter(|_| !draft.rejected) {
                self.warning(
                    &first,
                    "auth_param basic has no 'program' line: no client is authenticated",
                )
                .hint = Some("auth_param basic program /usr/lib/squid/basic_ncsa_auth /etc/squid/passwd".into());
            }
            return;
        };
        let native = helper.file_name().and_then(|n| n.to_str()) == Some(NCSA_HELPER);
        let (passwd_file, external) = if native {
            if let Some((_, children_origin)) = &draft.children {
                self.config.ignored.push(Ignored {
                    directive: "auth_param basic children".into(),
                    origin: children_origin.clone(),
                    reason: "basic_ncsa_auth is served natively, without helper processes; passwords are verified at most one per CPU at a time",
                    squid_ignores: false,
                    args: Vec::new(),
                });
            }
            let file = args.first().map(String::as_str).unwrap_or_default();
            (source::resolve(file, &origin.file), None)
        } else {
            let children = draft.children.map(|(c, _)| c).unwrap_or_default();
            (
                PathBuf::new(),
                Some(children.spec("auth_param basic".into(), helper.clone(), args)),
            )
        };
        let auth = BasicAuth {
            helper,
            passwd_file,
            external,
            realm: draft.realm.unwrap_or_else(|| defaults::BASIC_REALM.to_string()),
            credentials_ttl: draft.credentials_ttl.unwrap_or(defaults::CREDENTIALS_TTL),
            case_sensitive: draft.case_sensitive.unwrap_or(false),
            origin,
        };
        if !self.syntax_only && auth.external.is_none() {
            self.check_passwd_file(&auth);
        }
        self.check_auth_is_used(&auth);
        self.config.auth = Some(auth);
    }

    fn check_passwd_file(&mut self, auth: &BasicAuth) {
        let path = &auth.passwd_file;
        let (users, problems) = match Htpasswd::load(path) {
            Ok(loaded) => loaded,
            Err(e) => {
                self.error(
                    &auth.origin,
                    format!(
                        "cannot read the basic_ncsa_auth password file '{}': {e}",
                        path.display()
                    ),
                )
                .hint = Some(
                    "create it with 'htpasswd -c -B FILE USER' (apache2-utils); 'hopproxy check --syntax-only' \
                     checks a config without its files"
                        .into(),
                );
                return;
            }
        };
        let file: Arc<Path> = Arc::from(path.as_path());
        for problem in problems {
            let line_origin = Origin {
                file: file.clone(),
                line: problem.line,
            };
            self.diags.push(
                Diagnostic::error(&line_origin, format!("password file: {}", problem.message)).with_hint(format!(
                    "fix or remove the line; it is named in 'auth_param' at {}",
                    auth.origin
                )),
            );
        }
        if users.is_empty() {
            self.warning(
                &auth.origin,
                format!(
                    "password file '{}' has no users: every request that needs proxy_auth is refused",
                    path.display()
                ),
            );
        }
        if !auth.case_sensitive {
            let mut mixed: Vec<&str> = users
                .users()
                .filter(|u| u.bytes().any(|b| b.is_ascii_uppercase()))
                .collect();
            mixed.sort_unstable();
            if !mixed.is_empty() {
                self.warning(
                    &auth.origin,
                    format!(
                        "user(s) {} in '{}' can never log in: with 'casesensitive off' (the default) user names are lower-cased before the lookup, as in Squid",
                        quoted_list(&mixed),
                        path.display()
                    ),
                )
                .hint = Some("write the names in lower case, or set 'auth_param basic casesensitive on'".into());
            }
        }
    }

    fn check_auth_is_used(&mut self, auth: &BasicAuth) {
        let proxy_auth_acls: Vec<usize> = self
            .acls
            .iter()
            .enumerate()
            .filter(|(_, d)| matches!(d.kind, AclKind::ProxyAuth(_)))
            .map(|(i, _)| i)
            .collect();
        let used = self
            .config
            .http_access
            .rules
            .iter()
            .flat_map(|r| &r.acls)
            .any(|r| proxy_auth_acls.contains(&r.acl));
        if !used {
            self.diags.push(
                Diagnostic::note(
                    &auth.origin,
                    "auth_param is set but no http_access rule uses a proxy_auth ACL: no client is asked for credentials",
                )
                .with_hint("acl users proxy_auth REQUIRED, then 'http_access allow users' before 'http_access deny all'"),
            );
        }
        if !auth.case_sensitive {
            let mut diags = Vec::new();
            for &index in &proxy_auth_acls {
                let draft = &self.acls[index];
                if let AclKind::ProxyAuth(Some(names)) = &draft.kind {
                    let mixed: Vec<&str> = names
                        .iter()
                        .map(String::as_str)
                        .filter(|u| u.bytes().any(|b| b.is_ascii_uppercase()))
                        .collect();
                    if !mixed.is_empty() {
                        diags.push(
                            Diagnostic::warning(
                                &draft.origin,
                                format!(
                                    "proxy_auth ACL '{}' names {} but user names are lower-cased ('casesensitive off'): it never matches them",
                                    draft.name,
                                    quoted_list(&mixed)
                                ),
                            )
                            .with_hint("write the names in lower case, or set 'auth_param basic casesensitive on'"),
                        );
                    }
                }
            }
            self.diags.extend(diags);
        }
    }
}

fn quoted_list(names: &[&str]) -> String {
    let shown: Vec<String> = names.iter().take(5).map(|n| format!("'{n}'")).collect();
    let more = names.len().saturating_sub(5);
    if more > 0 {
        format!("{} and {more} more", shown.join(", "))
    } else {
        shown.join(", ")
    }
}

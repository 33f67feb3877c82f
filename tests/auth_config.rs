//! `auth_param basic …` and `proxy_auth` in squid.conf, with the cases measured on Squid 5.7
//! (`squid -k parse`), against real password files.

use std::path::{Path, PathBuf};
use std::time::Duration;

use hopproxy::auth::Authenticator;
use hopproxy::config::{Config, Diagnostic, Loaded, parse_str};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/auth")
        .join(name)
}

fn parse(text: &str) -> Result<Loaded, Vec<Diagnostic>> {
    let full = format!("http_port 3128\n{text}\nhttp_access deny all\naccess_log none\n");
    parse_str(&full, Path::new("t.conf"))
}

/// First lines of all diagnostics, plus hints, of a config that may or may not be valid.
fn messages(result: &Result<Loaded, Vec<Diagnostic>>) -> Vec<String> {
    let diags = match result {
        Ok(loaded) => &loaded.diagnostics,
        Err(diags) => diags,
    };
    diags.iter().map(|d| d.to_string()).collect()
}

fn ok(text: &str) -> Config {
    match parse(text) {
        Ok(loaded) => loaded.config,
        Err(diags) => panic!("{text}: {diags:#?}"),
    }
}

fn program(file: &Path) -> String {
    format!(
        "auth_param basic program /usr/lib/squid/basic_ncsa_auth {}",
        file.display()
    )
}

#[test]
fn the_squid_way_is_understood() {
    let config = ok(&format!(
        "{}\nauth_param basic realm Lab edge proxy\nauth_param basic credentialsttl 30 minutes\n\
         auth_param basic casesensitive on\nauth_param basic children 5 startup=5 idle=1\n\
         acl users proxy_auth REQUIRED\nhttp_access allow users",
        program(&fixture("passwd"))
    ));
    let auth = config.auth.as_ref().expect("auth configured");
    assert_eq!(auth.passwd_file, fixture("passwd"));
    assert_eq!(auth.helper, PathBuf::from("/usr/lib/squid/basic_ncsa_auth"));
    assert_eq!(auth.realm, "Lab edge proxy");
    assert_eq!(auth.credentials_ttl, Duration::from_secs(1800));
    assert!(auth.case_sensitive);
    assert_eq!(auth.origin.line, 2);
    let children = config
        .ignored
        .iter()
        .find(|i| i.directive == "auth_param basic children");
    assert!(
        children.is_some(),
        "children is listed as ignored: {:?}",
        config.ignored
    );
    let authenticator = Authenticator::from_config(&config).unwrap().expect("some");
    assert_eq!(authenticator.challenge(), "Basic realm=\"Lab edge proxy\"");
    assert_eq!(authenticator.user_count(), 13);
}

#[test]
fn squid_defaults() {
    let config = ok(&format!(
        "{}\nacl users proxy_auth REQUIRED\nhttp_access allow users",
        program(&fixture("passwd"))
    ));
    let auth = config.auth.unwrap();
    assert_eq!(auth.realm, "Squid proxy-caching web server");
    assert_eq!(auth.credentials_ttl, Duration::from_secs(2 * 3600));
    assert!(!auth.case_sensitive);
    assert!(
        Authenticator::from_config(&ok("")).unwrap().is_none(),
        "no auth_param, no authenticator"
    );
}

#[test]
fn a_relative_password_file_is_next_to_the_config() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(fixture("passwd"), dir.path().join("users")).unwrap();
    let conf = dir.path().join("squid.conf");
    let text = "http_port 3128\nauth_param basic program /usr/lib/squid/basic_ncsa_auth users\n\
                acl u proxy_auth REQUIRED\nhttp_access allow u\nhttp_access deny all\n";
    let loaded = parse_str(text, &conf).unwrap();
    assert_eq!(loaded.config.auth.unwrap().passwd_file, dir.path().join("users"));
}

#[test]
fn errors_say_what_and_where() {
    let passwd = fixture("passwd");
    let cases: Vec<(String, &str)> = vec![
        (
            "acl u proxy_auth REQUIRED".into(),
            "t.conf:2: error: proxy_auth ACL 'u' needs 'auth_param basic program' on an earlier line",
        ),
        (
            // Squid 5.7 refuses the ACL when auth_param comes after it, too.
            format!("acl u proxy_auth REQUIRED\n{}", program(&passwd)),
            "t.conf:2: error: proxy_auth ACL 'u' needs 'auth_param basic program' on an earlier line",
        ),
        (
            "auth_param basic program /nonexistent/basic_ldap_auth -b dc=x".into(),
            "t.conf:2: error: auth_param basic program '/nonexistent/basic_ldap_auth': cannot run it: No such file or directory (os error 2)",
        ),
        (
            "auth_param basic program /usr/lib/squid/basic_ncsa_auth".into(),
            "t.conf:2: error: basic_ncsa_auth needs the password file as its argument",
        ),
        (
            "auth_param basic program".into(),
            "t.conf:2: error: auth_param basic program needs the helper and its password file",
        ),
        (
            "auth_param basic program /usr/lib/squid/basic_ncsa_auth /nonexistent/passwd".into(),
            "t.conf:2: error: cannot read the basic_ncsa_auth password file '/nonexistent/passwd'",
        ),
        (
            "auth_param digest program /usr/lib/squid/digest_file_auth /etc/squid/digest".into(),
            "t.conf:2: error: auth_param digest: only the basic scheme is supported",
        ),
        (
            "auth_param foo program x".into(),
            "t.conf:2: error: unknown authentication scheme 'foo'",
        ),
        (
            "auth_param basic realm".into(),
            "t.conf:2: error: auth_param basic realm needs text",
        ),
        (
            "auth_param basic credentialsttl 5".into(),
            "t.conf:2: error: auth_param basic credentialsttl: missing time unit",
        ),
        (
            "auth_param basic credentialsttl abc hours".into(),
            "t.conf:2: error: auth_param basic credentialsttl: 'abc' is not a number",
        ),
        (
            "auth_param basic casesensitive maybe".into(),
            "t.conf:2: error: auth_param basic casesensitive takes 'on' or 'off'",
        ),
    ];
    for (text, expected) in cases {
        let result = parse(&text);
        assert!(result.is_err(), "{text} should fail");
        let found = messages(&result);
        assert!(
            found.iter().any(|m| m.starts_with(expected)),
            "{text}\nexpected: {expected}\ngot: {found:#?}"
        );
    }
}

#[test]
fn the_proxy_auth_error_hints_at_the_fix() {
    let found = messages(&parse("acl u proxy_auth REQUIRED\nhttp_access allow u"));
    let first = found.iter().find(|m| m.contains("proxy_auth ACL 'u'")).unwrap();
    assert!(
        first.contains("hint: add 'auth_param basic program /usr/lib/squid/basic_ncsa_auth"),
        "{first}"
    );
}

#[test]
fn password_file_lines_are_reported_with_their_own_file_and_line() {
    let malformed = fixture("malformed");
    let found = messages(&parse(&format!(
        "{}\nacl u proxy_auth REQUIRED\nhttp_access allow u",
        program(&malformed)
    )));
    let at = |line: u32| format!("{}:{line}: error: password file: ", malformed.display());
    for line in [3, 4, 5, 6, 7, 10, 11] {
        assert!(
            found.iter().any(|m| m.starts_with(&at(line))),
            "line {line}: {found:#?}"
        );
    }
}

#[test]
fn warnings_and_notes() {
    let passwd = fixture("passwd");
    let mixed = fixture("mixedcase");
    let cases: Vec<(String, &str)> = vec![
        (
            format!("{}\nacl u proxy_auth REQUIRED\nhttp_access allow u", program(&mixed)),
            "t.conf:2: warning: user(s) 'Mixed-Case'",
        ),
        (
            format!(
                "{}\nacl admins proxy_auth Alice\nhttp_access allow admins",
                program(&passwd)
            ),
            "t.conf:3: warning: proxy_auth ACL 'admins' names 'Alice' but user names are lower-cased",
        ),
        (
            program(&passwd),
            "t.conf:2: note: auth_param is set but no http_access rule uses a proxy_auth ACL",
        ),
        (
            format!(
                "{}\nacl u proxy_auth REQUIRED\nhttp_access allow u",
                program(Path::new("/dev/null"))
            ),
            "t.conf:2: warning: password file '/dev/null' has no users",
        ),
        (
            "auth_param basic realm Lab".into(),
            "t.conf:2: warning: auth_param basic has no 'program' line",
        ),
        (
            format!("{}\nauth_param basic bogus 1", program(&passwd)),
            "t.conf:3: warning: ignoring unknown auth_param basic parameter 'bogus'",
        ),
    ];
    for (text, expected) in cases {
        let result = parse(&text);
        let found = messages(&result);
        assert!(result.is_ok(), "{text}: {found:#?}");
        assert!(
            found.iter().any(|m| m.starts_with(expected)),
            "{text}\nexpected: {expected}\ngot: {found:#?}"
        );
    }
    // With casesensitive on, mixed-case names are fine.
    let result = parse(&format!(
        "{}\nauth_param basic casesensitive on\nacl u proxy_auth REQUIRED\nhttp_access allow u",
        program(&mixed)
    ));
    assert!(
        !messages(&result).iter().any(|m| m.contains("lower-cased")),
        "{:#?}",
        messages(&result)
    );
}

#[test]
fn a_configured_proxy_auth_acl_no_longer_warns() {
    let result = parse(&format!(
        "{}\nacl u proxy_auth REQUIRED\nhttp_access allow u",
        program(&fixture("passwd"))
    ));
    assert!(
        !messages(&result).iter().any(|m| m.contains("never matches")),
        "{:#?}",
        messages(&result)
    );
}

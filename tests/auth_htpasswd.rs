//! htpasswd files written by real tools (Apache's `htpasswd`, `openssl passwd`), read the way
//! Squid's `basic_ncsa_auth` reads them. Fixtures: tests/fixtures/auth (README there says how
//! each line was made).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use hopproxy::auth::htpasswd::{Htpasswd, PasswordHash};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/auth")
        .join(name)
}

/// User, password, scheme: every line of tests/fixtures/auth/passwd.
const USERS: &[(&str, &str, &str)] = &[
    ("bcrypt-user", "bcrypt pass", "bcrypt"),
    ("bcrypt10", "slow-but-sure", "bcrypt"),
    ("bcrypt-2a", "two a", "bcrypt"),
    ("bcrypt-2b", "two b", "bcrypt"),
    ("apr1-user", "apr1 pass", "md5-crypt"),
    ("openssl-apr1", "openssl apr1", "md5-crypt"),
    ("md5crypt-user", "md5crypt pass", "md5-crypt"),
    ("sha256-user", "sha256 pass", "sha256-crypt"),
    ("openssl-sha256", "openssl five", "sha256-crypt"),
    ("sha512-user", "sha512 pass", "sha512-crypt"),
    ("sha512-rounds", "many rounds", "sha512-crypt"),
    ("openssl-sha512", "openssl six", "sha512-crypt"),
    ("utf8-user", "pässwörd", "md5-crypt"),
];

#[test]
fn every_scheme_accepts_its_password_and_only_that() {
    let (table, problems) = Htpasswd::load(&fixture("passwd")).unwrap();
    assert_eq!(problems, vec![]);
    assert_eq!(table.len(), USERS.len());
    for (user, password, scheme) in USERS {
        let hash = table.get(user).unwrap_or_else(|| panic!("{user} missing"));
        assert_eq!(hash.scheme(), *scheme, "{user}");
        assert!(hash.verify(password.as_bytes()), "{user}: right password refused");
        for wrong in [
            "",
            "x",
            &password.to_uppercase(),
            &format!("{password} "),
            &password[1..],
        ] {
            if wrong != *password {
                assert!(
                    !hash.verify(wrong.as_bytes()),
                    "{user}: wrong password {wrong:?} accepted"
                );
            }
        }
    }
}

#[test]
fn unknown_users_are_not_found() {
    let (table, _) = Htpasswd::load(&fixture("passwd")).unwrap();
    for user in ["nobody", "BCRYPT-USER", "bcrypt-user ", ""] {
        assert!(table.get(user).is_none(), "{user:?}");
    }
}

#[test]
fn unusable_lines_are_named_with_file_and_line() {
    let path = fixture("malformed");
    let (table, problems) = Htpasswd::load(&path).unwrap();
    let shown: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
    let at = |line: u32, text: &str| format!("{}:{line}: {text}", path.display());
    let expected_starts = [
        at(3, "user 'des-user': classic DES crypt hashes are not supported"),
        at(4, "no ':' between user name and password hash"),
        at(5, "user 'empty-hash' has no password hash"),
        at(6, "empty user name"),
        at(7, "user 'sha1-user': '{SHA}' (unsalted SHA-1) hashes are not supported"),
        at(10, "user 'good' is already defined on line 2; this later line wins"),
        at(11, "user 'plain-md5': plain MD5 hex hashes are not supported"),
    ];
    assert_eq!(shown.len(), expected_starts.len(), "{shown:#?}");
    for (got, expected) in shown.iter().zip(expected_starts) {
        assert!(
            got.starts_with(&expected),
            "{got}\n  expected to start with\n{expected}"
        );
    }
    assert!(
        shown[0].contains("htpasswd -B"),
        "the message says how to fix it: {}",
        shown[0]
    );
    // Comment, indented and empty lines are skipped silently, as basic_ncsa_auth does; the
    // later 'good' line wins, as in basic_ncsa_auth's hash table.
    assert_eq!(table.len(), 1);
    let good = table.get("good").unwrap();
    assert!(good.verify(b"again"));
    assert!(!good.verify(b"good"));
}

#[test]
fn crlf_files_and_extra_fields() {
    let text =
        "alice:$apr1$abcdefgh$kBAT1yakViYmAyABaJLaS.\r\nbob:$apr1$abcdefgh$kBAT1yakViYmAyABaJLaS.:extra:fields\r\n";
    let (table, problems) = Htpasswd::parse(text, Path::new("mem"));
    assert_eq!(problems, vec![]);
    assert!(table.get("alice").unwrap().verify(b"good"));
    assert!(table.get("bob").unwrap().verify(b"good"));
}

fn openssl_passwd(args: &[&str], password: &str) -> Option<String> {
    let output = Command::new("openssl")
        .arg("passwd")
        .args(args)
        .arg(password)
        .output()
        .ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8(output.stdout).unwrap().trim().to_string())
}

/// Fresh random salts each run: our MD5-crypt and the sha-crypt crate against openssl.
#[test]
fn fresh_openssl_hashes_verify() {
    if Command::new("openssl").arg("version").output().is_err() {
        common::skip("openssl is not installed");
        return;
    }
    let mut checked = 0;
    for flag in ["-1", "-apr1", "-5", "-6"] {
        for password in [
            "a",
            "correct horse battery staple",
            "0123456789abcdef0123456789abcdef0123456789",
        ] {
            // An installed openssl must know every scheme: a missing one is a failure here,
            // not a silent pass.
            let hash = openssl_passwd(&[flag], password).unwrap_or_else(|| panic!("openssl passwd {flag} failed"));
            let parsed = PasswordHash::parse(&hash).unwrap_or_else(|e| panic!("{hash}: {e}"));
            assert!(parsed.verify(password.as_bytes()), "{hash} refuses {password:?}");
            assert!(!parsed.verify(format!("{password}x").as_bytes()), "{hash}");
            checked += 1;
        }
    }
    println!("{checked} fresh openssl hashes verified");
}

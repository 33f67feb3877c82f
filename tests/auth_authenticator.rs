//! `Authenticator`: header in, verdict out; credentials cache; re-reading a changed file.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use hopproxy::auth::basic::encode;
use hopproxy::auth::md5crypt;
use hopproxy::auth::{AuthResult, Authenticator, Rejection};
use hopproxy::config::BasicAuth;
use hopproxy::policy::Origin;

fn settings(passwd_file: PathBuf, ttl: Duration, case_sensitive: bool) -> BasicAuth {
    BasicAuth {
        helper: PathBuf::from("/usr/lib/squid/basic_ncsa_auth"),
        passwd_file,
        external: None,
        realm: "Lab \"edge\" proxy".into(),
        credentials_ttl: ttl,
        case_sensitive,
        origin: Origin {
            file: Arc::from(Path::new("t.conf")),
            line: 1,
        },
    }
}

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/auth/passwd")
}

fn header(user: &str, password: &str) -> Vec<u8> {
    encode(user, password).into_bytes()
}

/// Writes `lines` and gives the file an mtime of `secs` after the epoch, so each rewrite is
/// seen as a change however fast the test runs.
fn write_passwd(path: &Path, lines: &[(&str, &str)], secs: u64) {
    let text: String = lines
        .iter()
        .map(|(user, password)| format!("{user}:{}\n", md5crypt::hash(password.as_bytes(), "$apr1$", "saltsalt")))
        .collect();
    std::fs::write(path, text).unwrap();
    let file = std::fs::File::options().write(true).open(path).unwrap();
    file.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
        .unwrap();
}

#[test]
fn verdicts_for_each_kind_of_header() {
    let auth = Authenticator::new(&settings(fixture(), Duration::from_secs(60), true)).unwrap();
    assert_eq!(auth.challenge(), "Basic realm=\"Lab \\\"edge\\\" proxy\"");
    assert_eq!(
        auth.check_blocking(Some(&header("sha512-user", "sha512 pass"))),
        AuthResult::Authenticated("sha512-user".into())
    );
    assert_eq!(auth.check_blocking(None), AuthResult::Missing);
    assert_eq!(auth.check_blocking(Some(b"Negotiate abc")), AuthResult::Missing);
    let wrong = auth.check_blocking(Some(&header("sha512-user", "nope")));
    assert_eq!(
        wrong,
        AuthResult::Invalid {
            user: Some("sha512-user".into()),
            reason: Rejection::WrongPassword
        }
    );
    assert_eq!(
        wrong.user(),
        Some("sha512-user"),
        "the failed user is logged, as Squid does"
    );
    assert_eq!(wrong.authenticated_user(), None);
    assert!(matches!(
        auth.check_blocking(Some(&header("ghost", "x"))),
        AuthResult::Invalid {
            reason: Rejection::UnknownUser,
            ..
        }
    ));
    assert!(matches!(
        auth.check_blocking(Some(b"Basic not-base64!")),
        AuthResult::Invalid {
            user: None,
            reason: Rejection::Malformed(_)
        }
    ));
    assert!(matches!(
        auth.check_blocking(Some(&header("sha512-user", ""))),
        AuthResult::Invalid {
            reason: Rejection::Malformed(_),
            ..
        }
    ));
}

#[test]
fn user_names_are_lower_cased_unless_casesensitive() {
    let insensitive = Authenticator::new(&settings(fixture(), Duration::from_secs(60), false)).unwrap();
    assert_eq!(
        insensitive.check_blocking(Some(&header("APR1-User", "apr1 pass"))),
        AuthResult::Authenticated("apr1-user".into())
    );
    let sensitive = Authenticator::new(&settings(fixture(), Duration::from_secs(60), true)).unwrap();
    assert!(matches!(
        sensitive.check_blocking(Some(&header("APR1-User", "apr1 pass"))),
        AuthResult::Invalid {
            reason: Rejection::UnknownUser,
            ..
        }
    ));
}

#[test]
fn verified_credentials_are_cached_for_the_ttl() {
    let auth = Authenticator::new(&settings(fixture(), Duration::from_millis(400), true)).unwrap();
    let good = header("bcrypt10", "slow-but-sure");
    for _ in 0..5 {
        assert_eq!(
            auth.check_blocking(Some(&good)),
            AuthResult::Authenticated("bcrypt10".into())
        );
    }
    let stats = auth.stats();
    assert_eq!(
        (stats.verifications, stats.cache_hits),
        (1, 4),
        "one bcrypt run, then the cache"
    );
    // A wrong password is remembered too (an agent retrying in a loop costs one bcrypt run).
    let bad = header("bcrypt10", "wrong");
    for _ in 0..3 {
        assert!(matches!(auth.check_blocking(Some(&bad)), AuthResult::Invalid { .. }));
    }
    assert_eq!(auth.stats().verifications, 2);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        auth.check_blocking(Some(&good)),
        AuthResult::Authenticated("bcrypt10".into())
    );
    assert_eq!(auth.stats().verifications, 3, "after the TTL the hash is checked again");
}

#[test]
fn a_zero_ttl_checks_every_time() {
    let auth = Authenticator::new(&settings(fixture(), Duration::ZERO, true)).unwrap();
    for _ in 0..3 {
        auth.check_blocking(Some(&header("apr1-user", "apr1 pass")));
    }
    assert_eq!(auth.stats().verifications, 3);
}

#[test]
fn a_changed_file_is_re_read_and_the_cache_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("passwd");
    write_passwd(&path, &[("alice", "one"), ("bob", "bob-pw")], 1_000);
    let auth = Authenticator::new(&settings(path.clone(), Duration::from_secs(3600), true)).unwrap();
    auth.set_recheck_interval(Duration::ZERO);
    assert_eq!(
        auth.check_blocking(Some(&header("alice", "one"))),
        AuthResult::Authenticated("alice".into())
    );
    assert_eq!(
        auth.check_blocking(Some(&header("bob", "bob-pw"))),
        AuthResult::Authenticated("bob".into())
    );

    // alice changes her password, bob is removed, carol is added: effective at once, even
    // though the old credentials were cached for an hour.
    write_passwd(&path, &[("alice", "two"), ("carol", "carol-pw")], 2_000);
    assert!(matches!(
        auth.check_blocking(Some(&header("alice", "one"))),
        AuthResult::Invalid { .. }
    ));
    assert_eq!(
        auth.check_blocking(Some(&header("alice", "two"))),
        AuthResult::Authenticated("alice".into())
    );
    assert!(matches!(
        auth.check_blocking(Some(&header("bob", "bob-pw"))),
        AuthResult::Invalid {
            reason: Rejection::UnknownUser,
            ..
        }
    ));
    assert_eq!(
        auth.check_blocking(Some(&header("carol", "carol-pw"))),
        AuthResult::Authenticated("carol".into())
    );
    assert_eq!(auth.stats().reloads, 1);
    assert_eq!(auth.user_count(), 2);

    // A missing file keeps the last users (a half-done rotation must not lock everyone out).
    std::fs::remove_file(&path).unwrap();
    assert_eq!(
        auth.check_blocking(Some(&header("carol", "carol-pw"))),
        AuthResult::Authenticated("carol".into())
    );
    write_passwd(&path, &[("dave", "dave-pw")], 3_000);
    assert_eq!(
        auth.check_blocking(Some(&header("dave", "dave-pw"))),
        AuthResult::Authenticated("dave".into())
    );
    assert_eq!(auth.stats().reloads, 2);
}

#[test]
fn the_file_is_not_re_read_before_the_interval() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("passwd");
    write_passwd(&path, &[("alice", "one")], 1_000);
    let auth = Authenticator::new(&settings(path.clone(), Duration::from_secs(3600), true)).unwrap();
    auth.set_recheck_interval(Duration::from_secs(3600));
    write_passwd(&path, &[("alice", "two")], 2_000);
    assert_eq!(
        auth.check_blocking(Some(&header("alice", "one"))),
        AuthResult::Authenticated("alice".into())
    );
    assert_eq!(auth.stats().reloads, 0);
}

#[test]
fn an_unreadable_file_fails_construction() {
    let err = Authenticator::new(&settings(PathBuf::from("/nonexistent/passwd"), Duration::ZERO, true)).unwrap_err();
    assert!(err.to_string().contains("/nonexistent/passwd"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_checks_run_concurrently_off_the_runtime() {
    let auth = Authenticator::new(&settings(fixture(), Duration::from_secs(60), true)).unwrap();
    let mut tasks = Vec::new();
    for i in 0..8 {
        let auth = auth.clone();
        tasks.push(tokio::spawn(async move {
            let (user, password) = if i % 2 == 0 {
                ("bcrypt10", "slow-but-sure")
            } else {
                ("bcrypt10", "bad")
            };
            auth.check(Some(header(user, password).as_slice())).await
        }));
    }
    let mut ok = 0;
    for task in tasks {
        if let AuthResult::Authenticated(_) = task.await.unwrap() {
            ok += 1;
        }
    }
    assert_eq!(ok, 4);
    // Concurrent first requests may each verify; the cache answers everything after.
    let before = auth.stats().verifications;
    assert!(before <= 8);
    auth.check(Some(&header("bcrypt10", "slow-but-sure"))).await;
    assert_eq!(auth.stats().verifications, before);
}

/// Hash checks run at most one per core: many checks at once (each a distinct wrong password,
/// so the cache answers none) never have more verifications running together than cores.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hash_checks_run_at_most_one_per_core() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("passwd");
    std::fs::write(&path, format!("slow:{}\n", bcrypt::hash("right", 6).unwrap())).unwrap();
    let auth = Authenticator::new(&settings(path, Duration::from_secs(60), true)).unwrap();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let checks: Vec<_> = (0..4 * cores + 8)
        .map(|i| {
            let auth = auth.clone();
            tokio::spawn(async move { auth.check(Some(&header("slow", &format!("wrong {i}")))).await })
        })
        .collect();
    for check in checks {
        assert!(matches!(check.await.unwrap(), AuthResult::Invalid { .. }));
    }
    let stats = auth.stats();
    assert_eq!(stats.verifications, (4 * cores + 8) as u64);
    assert!(
        (1..=cores).contains(&stats.peak_concurrent_verifications),
        "{} verifications ran at once on {cores} cores",
        stats.peak_concurrent_verifications
    );
}

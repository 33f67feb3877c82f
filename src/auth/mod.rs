//! Client proxy authentication, the Squid way: `auth_param basic program …/basic_ncsa_auth
//! FILE` is served natively from the htpasswd file (no helper process), and `proxy_auth`
//! ACLs see the user name this module verified.
//!
//! # What serve does with it
//!
//! Squid asks for credentials lazily: only when `http_access` evaluation reaches a
//! `proxy_auth` ACL ([`needs_user`]; serve uses [`crate::policy::pending`], which also stops at
//! external ACLs whose helper needs the login). Then a missing or wrong `Proxy-Authorization` gives
//! 407 with [`Authenticator::challenge`] in `Proxy-Authenticate`, and
//! `Proxy-Status: <host>; error=http_request_denied; details="proxy authentication required"`.
//! A request denied by a rule whose last ACL is `proxy_auth` (`http_access deny !users`) is
//! also answered 407 rather than 403 ([`challenge_on_deny`]), as Squid does. The verified user
//! goes into `RequestFacts::user` and the access log's user field; the user of wrong
//! credentials is logged too (Squid logs `TCP_DENIED/407 … peeruser`, reference §5).
//!
//! ```ignore
//! let facts = access_check.facts(); // user: None
//! let user = match (&generation.auth, auth::needs_user(&config.http_access, &config.acls, &facts)) {
//!     (Some(auth), true) => match auth.check(client_proxy_auth(&head.headers)).await {
//!         AuthResult::Authenticated(user) => Some(user), // re-evaluate with facts.user = Some(&user)
//!         other => return reply_407(auth.challenge(), other.user()), // log other.user()
//!     },
//!     _ => None,
//! };
//! ```
//!
//! # Cost and threads
//!
//! [`Authenticator::check`] is `async`: parsing the header and looking up the credentials
//! cache happen inline (plus a `stat(2)` of the file at most once per second, and a re-read of
//! the small file when it changed); a hash verification — bcrypt takes tens of milliseconds of
//! CPU — runs on tokio's blocking pool, at most one per CPU at a time, so a flood of wrong
//! passwords cannot starve the runtime. [`Authenticator::check_blocking`] does the same on the
//! calling thread, for tools and tests.
//!
//! # Known limits
//!
//! * An unknown user is refused without running a hash, so response time tells whether a
//!   user exists (as with Squid's `basic_ncsa_auth`). Basic credentials cross the network in
//!   clear text unless the client-to-proxy hop is protected; that is the operator's choice.
//! * Any other `auth_param basic program` runs as helper processes ([`crate::helper`]): each
//!   check not answered by the cache sends `user password` (both URL-escaped, as Squid does)
//!   and reads `OK`/`ERR`/`BH`. `ERR` and `BH` give 407, as in Squid; a helper that cannot
//!   answer (queue full, restart storm, timeout) gives [`AuthResult::Unavailable`], answered
//!   503 by serve: the credentials were not judged, so asking the user again would be wrong.
//!   Only successes are cached (for `credentialsttl`), as Squid does with its helpers.

pub mod basic;
pub mod cache;
pub mod htpasswd;
pub mod md5crypt;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use crate::config::{BasicAuth, Config};
use crate::helper::{HelperError, Pool, Verdict};
use crate::policy::{AclKind, AclSet, RequestFacts, Rule, RuleList};
use basic::{BasicError, Credentials};
use cache::Cache;
use htpasswd::{Htpasswd, PasswordHash};

/// How often the htpasswd file is checked for changes, by default. `basic_ncsa_auth` stats it
/// on every request; once a second is as prompt for an operator and cheaper under load.
pub const DEFAULT_RECHECK_INTERVAL: Duration = Duration::from_secs(1);

/// The outcome of checking one request's `Proxy-Authorization`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthResult {
    /// The credentials are valid; the (possibly lower-cased) user name.
    Authenticated(String),
    /// No credentials, or credentials of another scheme (Digest, NTLM…): challenge.
    Missing,
    /// Credentials were given and are wrong or malformed: challenge again, and log the user
    /// when there is one.
    Invalid { user: Option<String>, reason: Rejection },
    /// The authentication helper could not judge the credentials: answer 503, not 407.
    Unavailable { user: String, error: HelperError },
}

impl AuthResult {
    /// The user name for the access log: the authenticated user, or the one that failed.
    pub fn user(&self) -> Option<&str> {
        match self {
            AuthResult::Authenticated(user) => Some(user),
            AuthResult::Invalid { user, .. } => user.as_deref(),
            AuthResult::Unavailable { user, .. } => Some(user),
            AuthResult::Missing => None,
        }
    }

    /// The user `proxy_auth` ACLs may see: only an authenticated one.
    pub fn authenticated_user(&self) -> Option<&str> {
        match self {
            AuthResult::Authenticated(user) => Some(user),
            _ => None,
        }
    }
}

/// Why credentials were refused (for a debug log line; clients only see the 407).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    Malformed(BasicError),
    UnknownUser,
    WrongPassword,
    /// The helper answered `ERR` or `BH`, with its `message=` when it gave one.
    Helper {
        broken: bool,
        message: Option<String>,
    },
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rejection::Malformed(e) => write!(f, "{e}"),
            Rejection::UnknownUser => f.write_str("unknown user"),
            Rejection::WrongPassword => f.write_str("wrong password"),
            Rejection::Helper { broken, message } => {
                f.write_str(if *broken {
                    "helper answered BH"
                } else {
                    "helper answered ERR"
                })?;
                match message {
                    Some(m) => write!(f, ": {m}"),
                    None => Ok(()),
                }
            }
        }
    }
}

/// Why an [`Authenticator`] could not be built.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("cannot read the basic_ncsa_auth password file {}: {source}", path.display())]
    Unreadable { path: PathBuf, source: std::io::Error },
}

/// Counters, for tests and for a status line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AuthStats {
    /// Hash verifications actually run (cache misses for known users).
    pub verifications: u64,
    /// Checks answered from the credentials cache.
    pub cache_hits: u64,
    /// Times the htpasswd file was re-read after it changed.
    pub reloads: u64,
    /// The most hash verifications that ever ran at the same moment (at most one per core).
    pub peak_concurrent_verifications: usize,
}

/// Verifies Basic credentials against an htpasswd file. Cheap to clone (shared state).
#[derive(Clone)]
pub struct Authenticator {
    inner: Arc<Inner>,
}

impl fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authenticator")
            .field("passwd_file", &self.inner.settings.passwd_file)
            .field("realm", &self.inner.settings.realm)
            .finish_non_exhaustive()
    }
}

struct Inner {
    settings: BasicAuth,
    /// The helper processes, for a program other than `basic_ncsa_auth`.
    helper: Option<Pool>,
    challenge: String,
    state: Mutex<State>,
    /// Bounds concurrent hash verifications (the role of Squid's helper `children`).
    verify_slots: tokio::sync::Semaphore,
    /// Verifications running now, and the most seen at once (what the semaphore bounds).
    verifying_now: AtomicUsize,
    verifying_peak: AtomicUsize,
    verifications: AtomicU64,
    cache_hits: AtomicU64,
    reloads: AtomicU64,
}

struct State {
    users: Arc<Htpasswd>,
    stamp: Option<FileStamp>,
    checked_at: Instant,
    recheck_interval: Duration,
    /// Bumped on every reload, so a verification that started before it does not cache a
    /// result computed against the old file.
    generation: u64,
    cache: Cache,
    /// The last reload failed (unreadable file): warn once, keep the old users.
    reload_failed: bool,
}

/// What identifies a version of the file: a change of either means "re-read".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileStamp {
    modified: Option<SystemTime>,
    len: u64,
}

fn stamp(path: &Path) -> std::io::Result<FileStamp> {
    let meta = std::fs::metadata(path)?;
    Ok(FileStamp {
        modified: meta.modified().ok(),
        len: meta.len(),
    })
}

/// A verification to run off the async runtime.
struct Job {
    credentials: Credentials,
    hash: PasswordHash,
    key: cache::Key,
    generation: u64,
}

enum Step {
    Done(AuthResult),
    Verify(Job),
    AskHelper(Credentials, cache::Key),
}

impl Authenticator {
    /// The authenticator for `config.auth`, or `None` when the config has no `auth_param`.
    /// Fails only when the password file cannot be read; unusable lines were already reported
    /// by the config check and are skipped here (with a warning in the log).
    pub fn from_config(config: &Config) -> Result<Option<Authenticator>, AuthError> {
        config.auth.as_ref().map(Authenticator::new).transpose()
    }

    pub fn new(settings: &BasicAuth) -> Result<Authenticator, AuthError> {
        if let Some(spec) = &settings.external {
            return Ok(Authenticator::with_parts(
                settings,
                Htpasswd::default(),
                None,
                Some(Pool::new(spec.clone())),
            ));
        }
        let path = &settings.passwd_file;
        let unreadable = |source| AuthError::Unreadable {
            path: path.clone(),
            source,
        };
        let file_stamp = stamp(path).map_err(unreadable)?;
        let (users, problems) = Htpasswd::load(path).map_err(unreadable)?;
        for problem in &problems {
            tracing::warn!("skipping password file line: {problem}");
        }
        Ok(Authenticator::with_parts(settings, users, Some(file_stamp), None))
    }

    fn with_parts(
        settings: &BasicAuth,
        users: Htpasswd,
        file_stamp: Option<FileStamp>,
        helper: Option<Pool>,
    ) -> Authenticator {
        let slots = std::thread::available_parallelism().map_or(1, |n| n.get());
        Authenticator {
            inner: Arc::new(Inner {
                challenge: basic::challenge(&settings.realm),
                settings: settings.clone(),
                helper,
                state: Mutex::new(State {
                    users: Arc::new(users),
                    stamp: file_stamp,
                    checked_at: Instant::now(),
                    recheck_interval: DEFAULT_RECHECK_INTERVAL,
                    generation: 0,
                    cache: Cache::new(settings.credentials_ttl),
                    reload_failed: false,
                }),
                verify_slots: tokio::sync::Semaphore::new(slots),
                verifying_now: AtomicUsize::new(0),
                verifying_peak: AtomicUsize::new(0),
                verifications: AtomicU64::new(0),
                cache_hits: AtomicU64::new(0),
                reloads: AtomicU64::new(0),
            }),
        }
    }

    /// The `Proxy-Authenticate` value for a 407: `Basic realm="…"`.
    pub fn challenge(&self) -> String {
        self.inner.challenge.clone()
    }

    pub fn settings(&self) -> &BasicAuth {
        &self.inner.settings
    }

    /// How often the file's mtime and size are compared (default one second; tests use 0).
    pub fn set_recheck_interval(&self, interval: Duration) {
        self.inner.lock().recheck_interval = interval;
    }

    pub fn stats(&self) -> AuthStats {
        AuthStats {
            verifications: self.inner.verifications.load(Ordering::Relaxed),
            cache_hits: self.inner.cache_hits.load(Ordering::Relaxed),
            reloads: self.inner.reloads.load(Ordering::Relaxed),
            peak_concurrent_verifications: self.inner.verifying_peak.load(Ordering::Relaxed),
        }
    }

    /// Number of users in the file as last read.
    pub fn user_count(&self) -> usize {
        self.inner.lock().users.len()
    }

    /// Checks a `Proxy-Authorization` value (`None` when the request had none). A hash
    /// verification runs on the blocking pool; everything else inline.
    pub async fn check(&self, header: Option<&[u8]>) -> AuthResult {
        match self.inner.prepare(header) {
            Step::Done(result) => result,
            Step::AskHelper(credentials, key) => self.inner.ask_helper(credentials, key).await,
            Step::Verify(job) => {
                // The semaphore is never closed, so acquire cannot fail.
                let _permit = self.inner.verify_slots.acquire().await.ok();
                let inner = self.inner.clone();
                let user = job.credentials.user.clone();
                match tokio::task::spawn_blocking(move || inner.verify(job)).await {
                    Ok(result) => result,
                    // Only a panic inside a hash crate gets here: refuse, never allow.
                    Err(_) => AuthResult::Invalid {
                        user: Some(user),
                        reason: Rejection::WrongPassword,
                    },
                }
            }
        }
    }

    /// [`check`](Self::check) on the calling thread: may block for a bcrypt run.
    /// Helper processes live on the async runtime: with an external helper, a check the
    /// cache cannot answer is [`AuthResult::Unavailable`] here; use [`check`](Self::check).
    pub fn check_blocking(&self, header: Option<&[u8]>) -> AuthResult {
        match self.inner.prepare(header) {
            Step::Done(result) => result,
            Step::AskHelper(credentials, _) => AuthResult::Unavailable {
                user: credentials.user,
                error: HelperError::Unavailable,
            },
            Step::Verify(job) => self.inner.verify(job),
        }
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves consistent data (plain maps): keep going.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Everything but the hash verification: parse, notice a changed file, consult the cache.
    fn prepare(&self, header: Option<&[u8]>) -> Step {
        let Some(value) = header else {
            return Step::Done(AuthResult::Missing);
        };
        let credentials = match basic::parse(value, self.settings.case_sensitive) {
            Ok(credentials) => credentials,
            Err(BasicError::Empty | BasicError::OtherScheme(_)) => return Step::Done(AuthResult::Missing),
            Err(e) => {
                return Step::Done(AuthResult::Invalid {
                    user: e.user().map(str::to_string),
                    reason: Rejection::Malformed(e),
                });
            }
        };
        let now = Instant::now();
        let mut state = self.lock();
        if self.helper.is_none() {
            self.refresh(&mut state, now);
        }
        let key = cache::key(&credentials.user, &credentials.password);
        if let Some(ok) = state.cache.get(&key, now) {
            self.cache_hits.fetch_add(1, Ordering::Relaxed);
            return Step::Done(outcome(ok, credentials.user));
        }
        if self.helper.is_some() {
            return Step::AskHelper(credentials, key);
        }
        let Some(hash) = state.users.get(&credentials.user).cloned() else {
            return Step::Done(AuthResult::Invalid {
                user: Some(credentials.user),
                reason: Rejection::UnknownUser,
            });
        };
        Step::Verify(Job {
            credentials,
            hash,
            key,
            generation: state.generation,
        })
    }

    fn verify(&self, job: Job) -> AuthResult {
        self.verifications.fetch_add(1, Ordering::Relaxed);
        let running = self.verifying_now.fetch_add(1, Ordering::Relaxed) + 1;
        self.verifying_peak.fetch_max(running, Ordering::Relaxed);
        let ok = job.hash.verify(&job.credentials.password);
        self.verifying_now.fetch_sub(1, Ordering::Relaxed);
        let mut state = self.lock();
        if state.generation == job.generation {
            state.cache.insert(job.key, ok, Instant::now());
        }
        outcome(ok, job.credentials.user)
    }

    /// Asks the helper; only `OK` is cached (for `credentialsttl`), as Squid does.
    async fn ask_helper(&self, credentials: Credentials, key: cache::Key) -> AuthResult {
        let Some(pool) = &self.helper else {
            return AuthResult::Missing;
        };
        self.verifications.fetch_add(1, Ordering::Relaxed);
        let password = String::from_utf8_lossy(&credentials.password);
        let line = format!(
            "{} {}",
            crate::helper::reply::escape(&credentials.user),
            crate::helper::reply::escape(&password)
        );
        let reply = match pool.ask(line).await {
            Ok(reply) => reply,
            Err(error) => {
                tracing::warn!(user = %credentials.user, "authentication helper gave no answer: {error}");
                return AuthResult::Unavailable {
                    user: credentials.user,
                    error,
                };
            }
        };
        match reply.verdict {
            Verdict::Ok => {
                self.lock().cache.insert(key, true, Instant::now());
                AuthResult::Authenticated(credentials.user)
            }
            verdict => AuthResult::Invalid {
                user: Some(credentials.user),
                reason: Rejection::Helper {
                    broken: verdict == Verdict::BrokenHelper,
                    message: reply.message().map(str::to_string),
                },
            },
        }
    }

    /// Re-reads the file when its mtime or size changed (at most once per recheck interval).
    /// The cache is dropped with the old users. An unreadable file keeps the old users: a
    /// half-written or briefly missing file must not lock everyone out.
    fn refresh(&self, state: &mut State, now: Instant) {
        if now.duration_since(state.checked_at) < state.recheck_interval {
            return;
        }
        state.checked_at = now;
        let path = &self.settings.passwd_file;
        let current = stamp(path);
        if let Ok(current) = &current
            && state.stamp == Some(*current)
        {
            return;
        }
        match current.and_then(|s| Htpasswd::load(path).map(|loaded| (s, loaded))) {
            Ok((new_stamp, (users, problems))) => {
                for problem in &problems {
                    tracing::warn!("skipping password file line: {problem}");
                }
                tracing::info!(file = %path.display(), users = users.len(), "password file re-read");
                state.users = Arc::new(users);
                state.stamp = Some(new_stamp);
                state.generation += 1;
                state.cache.clear();
                state.reload_failed = false;
                self.reloads.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                if !state.reload_failed {
                    tracing::warn!(file = %path.display(), "cannot re-read password file, keeping the previous users: {e}");
                }
                state.reload_failed = true;
            }
        }
    }
}

fn outcome(ok: bool, user: String) -> AuthResult {
    if ok {
        AuthResult::Authenticated(user)
    } else {
        AuthResult::Invalid {
            user: Some(user),
            reason: Rejection::WrongPassword,
        }
    }
}

/// Whether evaluating `rules` for this request reaches a `proxy_auth` ACL, i.e. whether the
/// decision depends on who the user is. `facts.user` is ignored. Mirrors Squid's lazy
/// evaluation: rules are tried in order, ACLs within a rule left to right; a rule whose ACLs
/// all match without meeting `proxy_auth` decides without a user (so `http_access allow
/// localhost` before the auth rule lets local clients in unchallenged); the first `proxy_auth`
/// ACL reached means credentials are needed.
pub fn needs_user(rules: &RuleList, acls: &AclSet, facts: &RequestFacts<'_>) -> bool {
    for rule in &rules.rules {
        let mut matched = true;
        for acl_ref in &rule.acls {
            let kind = &acls.get(acl_ref.acl).kind;
            if matches!(kind, AclKind::ProxyAuth(_)) {
                return true;
            }
            if kind.matches(facts) == acl_ref.negated {
                matched = false;
                break;
            }
        }
        if matched {
            return false;
        }
    }
    false
}

/// Whether a denial by `rule` is answered 407 with a challenge instead of 403: Squid does so
/// when the last ACL of the deciding line is a `proxy_auth` ACL (`http_access deny !users`),
/// so a user without access is asked for other credentials.
pub fn challenge_on_deny(rule: &Rule, acls: &AclSet) -> bool {
    rule.acls
        .last()
        .is_some_and(|r| matches!(acls.get(r.acl).kind, AclKind::ProxyAuth(_)))
}

#[cfg(test)]
mod tests;

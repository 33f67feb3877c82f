//! `cache_effective_user` / `cache_effective_group`: a daemon started as root binds its ports
//! and opens its logs, pid file and `cache_log` first, then gives root up for good (groups,
//! then group, then user: real, effective and saved IDs) before it serves a single client.
//!
//! Unlike Squid, which keeps a saved root ID to regain root for reconfiguration, the drop is
//! irreversible: a compromised process cannot become root again. What needs root later then
//! fails with the usual permission errors: a reload that adds a port below 1024, reopening a
//! log in a directory the user cannot write, removing a pid file in `/run`.
//!
//! Without `cache_effective_user` the default is the `hopproxy` system user the packages
//! create, or Squid's built-in default `nobody` where that user does not exist.
//! `cache_effective_user root` keeps root (Squid refuses to run as root).

use std::ffi::CString;

use nix::unistd::{Gid, Group, Uid, User};

use crate::config::Config;
use crate::config::defaults::EFFECTIVE_USER;

/// Squid's built-in default user, used when the packaged user does not exist.
const FALLBACK_USER: &str = "nobody";

/// Who to become once everything privileged is done.
#[derive(Debug)]
pub struct Target {
    user: String,
    uid: Uid,
    gid: Gid,
    /// `cache_effective_group` given: exactly that group; else the user's own groups.
    only_group: bool,
}

/// The user and group to switch to, or `None` when no switch is due: not started as root, or
/// `cache_effective_user root`. An unknown user or group is an error (Squid stops too).
pub fn plan(config: &Config) -> std::io::Result<Option<Target>> {
    if !Uid::effective().is_root() {
        return Ok(None);
    }
    let user = match &config.effective_user {
        Some(name) => {
            lookup_user(name)?.ok_or_else(|| not_found(format!("cache_effective_user '{name}' does not exist")))?
        }
        None => match lookup_user(EFFECTIVE_USER)? {
            Some(user) => user,
            None => lookup_user(FALLBACK_USER)?.ok_or_else(|| {
                not_found(format!(
                    "started as root, but neither the '{EFFECTIVE_USER}' nor the '{FALLBACK_USER}' user exists \
                     to switch to (hint: set cache_effective_user)"
                ))
            })?,
        },
    };
    if user.uid.is_root() {
        tracing::warn!(
            "cache_effective_user {}: keeping root privileges (Squid refuses to run as root)",
            user.name
        );
        return Ok(None);
    }
    let (gid, only_group) = match &config.effective_group {
        Some(name) => {
            let group = Group::from_name(name)
                .map_err(std::io::Error::from)?
                .ok_or_else(|| not_found(format!("cache_effective_group '{name}' does not exist")))?;
            (group.gid, true)
        }
        None => (user.gid, false),
    };
    Ok(Some(Target {
        user: user.name,
        uid: user.uid,
        gid,
        only_group,
    }))
}

fn lookup_user(name: &str) -> std::io::Result<Option<User>> {
    User::from_name(name).map_err(std::io::Error::from)
}

fn not_found(message: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::NotFound, message)
}

/// Switches every thread of the process to `target` (glibc's set*id calls apply to all
/// threads), then checks that root cannot be regained.
pub fn drop_to(target: &Target) -> std::io::Result<()> {
    let context = |what: &str, e: nix::Error| {
        std::io::Error::other(format!("cannot switch to user {}: {what}: {e}", target.user))
    };
    if target.only_group {
        nix::unistd::setgroups(&[target.gid]).map_err(|e| context("setgroups", e))?;
    } else {
        let name = CString::new(target.user.as_str()).map_err(|e| std::io::Error::other(e.to_string()))?;
        nix::unistd::initgroups(&name, target.gid).map_err(|e| context("initgroups", e))?;
    }
    nix::unistd::setgid(target.gid).map_err(|e| context("setgid", e))?;
    nix::unistd::setuid(target.uid).map_err(|e| context("setuid", e))?;
    if nix::unistd::setuid(Uid::from_raw(0)).is_ok() {
        return Err(std::io::Error::other(format!(
            "switched to user {}, but root could be regained; stopping",
            target.user
        )));
    }
    tracing::info!(
        "running as user {} (uid {}, gid {})",
        target.user,
        target.uid,
        target.gid
    );
    Ok(())
}

//! What the packages ship: the systemd unit (verified and scored by systemd-analyze), the
//! default config (valid, deny by default, no open-proxy warning), the logrotate file, and —
//! when `packaging/build` has filled target/dist — the .deb, the .rpm and the portable binary.
//! Checks whose tool or artifact is missing print a `SKIPPED: …` line and pass.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const MAX_EXPOSURE: f64 = 2.5;
const GLIBC_FLOOR: (u32, u32) = (2, 17);

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn packaging(file: &str) -> PathBuf {
    root().join("packaging").join(file)
}

fn hopproxy_bin() -> &'static str {
    env!("CARGO_BIN_EXE_hopproxy")
}

fn has(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"))
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The first file in target/dist whose name ends with `suffix`.
fn dist(suffix: &str) -> Option<PathBuf> {
    let dir = root().join("target/dist");
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().ends_with(suffix))
        .collect();
    found.sort();
    found.pop()
}

/// The unit as shipped, with `/usr/bin/hopproxy` pointing at the binary under test, so
/// `systemd-analyze verify` can check the commands exist.
fn unit_for_test(dir: &Path) -> PathBuf {
    let unit = std::fs::read_to_string(packaging("hopproxy.service")).unwrap();
    let path = dir.join("hopproxy.service");
    std::fs::write(&path, unit.replace("/usr/bin/hopproxy", hopproxy_bin())).unwrap();
    path
}

#[test]
fn the_unit_has_what_operators_rely_on() {
    let unit = std::fs::read_to_string(packaging("hopproxy.service")).unwrap();
    for line in [
        "User=hopproxy",
        "ExecStartPre=/usr/bin/hopproxy check --strict -c /etc/hopproxy/squid.conf",
        "ExecStart=/usr/bin/hopproxy run -c /etc/hopproxy/squid.conf",
        "ExecReload=/usr/bin/hopproxy reload -c /etc/hopproxy/squid.conf --pid $MAINPID",
        "CapabilityBoundingSet=CAP_NET_BIND_SERVICE",
        "AmbientCapabilities=CAP_NET_BIND_SERVICE",
        "LogsDirectory=hopproxy",
        "RuntimeDirectory=hopproxy",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
    ] {
        assert!(unit.lines().any(|l| l == line), "the unit lacks '{line}'");
    }
}

#[test]
fn the_unit_verifies() {
    if !has("systemd-analyze") {
        println!("SKIPPED: systemd-analyze is not installed (apt-get install systemd)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let unit = unit_for_test(dir.path());
    let output = run("systemd-analyze", &["verify", "--man=no", unit.to_str().unwrap()]);
    assert!(output.status.success(), "systemd-analyze verify:\n{}", text(&output));
}

#[test]
fn the_unit_exposure_is_at_most_2_5() {
    if !has("systemd-analyze") {
        println!("SKIPPED: systemd-analyze is not installed (apt-get install systemd)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let unit = unit_for_test(dir.path());
    let output = run(
        "systemd-analyze",
        &["security", "--offline=true", "--no-pager", unit.to_str().unwrap()],
    );
    let report = text(&output);
    let exposure: f64 = report
        .lines()
        .find_map(|l| l.split("Overall exposure level for hopproxy.service:").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in:\n{report}"));
    assert!(
        exposure <= MAX_EXPOSURE,
        "exposure {exposure} > {MAX_EXPOSURE}:\n{report}"
    );
}

#[test]
fn the_shipped_config_is_valid_and_closed_by_default() {
    let path = packaging("squid.conf");
    let output = run(hopproxy_bin(), &["check", "--strict", "-c", path.to_str().unwrap()]);
    let report = text(&output);
    assert!(output.status.success(), "{report}");
    assert!(report.contains("OK (0 warnings"), "{report}");
    assert!(!report.contains("open proxy"), "{report}");

    let config = hopproxy::config::load(&path).unwrap().config;
    assert_eq!(
        config.pid_filename,
        hopproxy::config::PidFilename::File("/run/hopproxy/hopproxy.pid".into())
    );
    let logs: Vec<_> = config.access_logs.iter().map(|l| format!("{:?}", l.target)).collect();
    assert_eq!(
        logs,
        vec![format!(
            "{:?}",
            hopproxy::config::LogTarget::File("/var/log/hopproxy/access.log".into())
        )]
    );

    // Nobody is allowed until the placeholder is replaced: a client from the placeholder
    // network may CONNECT to 443 only, and no one else anything.
    let explain = run(hopproxy_bin(), &["explain", "-c", path.to_str().unwrap()]);
    let explained = text(&explain);
    let allows: Vec<&str> = explained
        .lines()
        .filter(|l| l.trim_start().starts_with("ALLOW"))
        .collect();
    assert_eq!(allows.len(), 1, "{explained}");
    assert!(allows[0].contains("192.0.2.0/24") && allows[0].contains("port 443") && allows[0].contains("CONNECT"));
}

#[test]
fn logrotate_signals_through_the_unit() {
    let text = std::fs::read_to_string(packaging("logrotate")).unwrap();
    assert!(text.contains("systemctl kill --signal=USR1 hopproxy.service"), "{text}");
    assert!(!text.contains(".pid"), "no pid-file guessing: {text}");
    assert!(!text.contains("|| true"), "failures must show: {text}");
}

#[test]
fn the_deb_holds_the_files_and_scripts() {
    let Some(deb) = dist(".deb") else {
        println!("SKIPPED: no target/dist/*.deb (run packaging/build)");
        return;
    };
    let deb = deb.to_str().unwrap();
    let listing = text(&run("dpkg-deb", &["-c", deb]));
    for file in [
        "./usr/bin/hopproxy",
        "./etc/hopproxy/squid.conf",
        "./etc/logrotate.d/hopproxy",
        "/systemd/system/hopproxy.service",
        "./usr/share/man/man1/hopproxy.1.gz",
        "./usr/share/man/man1/hopproxy-run.1.gz",
        "./usr/share/bash-completion/completions/hopproxy",
        "./usr/share/zsh/vendor-completions/_hopproxy",
        "./usr/share/fish/vendor_completions.d/hopproxy.fish",
    ] {
        assert!(listing.contains(file), "{file} missing from {deb}:\n{listing}");
    }
    let info = text(&run("dpkg-deb", &["-I", deb]));
    assert!(info.contains("Package: hopproxy"), "{info}");
    assert!(info.contains("Architecture: amd64"), "{info}");
    let conffiles = text(&run("dpkg-deb", &["-I", deb, "conffiles"]));
    assert!(conffiles.contains("/etc/hopproxy/squid.conf"), "{conffiles}");
    let postinst = text(&run("dpkg-deb", &["-I", deb, "postinst"]));
    assert!(postinst.contains("useradd --system"), "{postinst}");
    assert!(postinst.contains("hopproxy.service"), "systemd snippets: {postinst}");
}

#[test]
fn the_rpm_holds_the_files_and_scriptlets() {
    let Some(rpm) = dist(".rpm") else {
        println!("SKIPPED: no target/dist/*.rpm (run packaging/build)");
        return;
    };
    if !has("rpm") {
        println!("SKIPPED: rpm is not installed (apt-get install rpm)");
        return;
    }
    let rpm = rpm.to_str().unwrap();
    let listing = text(&run("rpm", &["-qlp", rpm]));
    for file in [
        "/usr/bin/hopproxy",
        "/etc/hopproxy/squid.conf",
        "/etc/logrotate.d/hopproxy",
        "/usr/lib/systemd/system/hopproxy.service",
        "/usr/share/man/man1/hopproxy.1.gz",
        "/usr/share/bash-completion/completions/hopproxy",
    ] {
        assert!(
            listing.lines().any(|l| l == file),
            "{file} missing from {rpm}:\n{listing}"
        );
    }
    let config = text(&run("rpm", &["-qcp", rpm]));
    assert!(config.contains("/etc/hopproxy/squid.conf"), "config files: {config}");
    let scripts = text(&run("rpm", &["-qp", "--scripts", rpm]));
    assert!(scripts.contains("useradd --system"), "{scripts}");
    assert!(scripts.contains("systemctl daemon-reload"), "{scripts}");
}

fn glibc_versions(binary: &Path) -> Vec<(u32, u32)> {
    let dump = text(&run("objdump", &["-T", binary.to_str().unwrap()]));
    let mut versions: Vec<(u32, u32)> = dump
        .split("GLIBC_")
        .skip(1)
        .filter_map(|rest| {
            let v: String = rest.chars().take_while(|c| c.is_ascii_digit() || *c == '.').collect();
            let mut parts = v.split('.').map(|p| p.parse::<u32>().ok());
            Some((parts.next()??, parts.next().flatten().unwrap_or(0)))
        })
        .collect();
    versions.sort();
    versions.dedup();
    versions
}

#[test]
fn the_portable_binary_needs_glibc_2_17_at_most() {
    let Some(binary) = dist("-x86_64-linux-gnu") else {
        println!("SKIPPED: no target/dist/hopproxy-*-x86_64-linux-gnu (run packaging/build)");
        return;
    };
    if !has("objdump") {
        println!("SKIPPED: objdump is not installed (apt-get install binutils)");
        return;
    }
    let versions = glibc_versions(&binary);
    let newest = *versions
        .last()
        .expect("a dynamically linked binary names GLIBC versions");
    assert!(
        newest <= GLIBC_FLOOR,
        "{} needs GLIBC_{}.{}: {versions:?}",
        binary.display(),
        newest.0,
        newest.1
    );
    let version = run(binary.to_str().unwrap(), &["-v"]);
    assert_eq!(text(&version).trim(), format!("hopproxy {}", env!("CARGO_PKG_VERSION")));
}

/// A Debian 11 root (glibc 2.31) made once with debootstrap, kept in target/ for later runs.
fn bullseye_root() -> Result<PathBuf, String> {
    let is_root = std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
    });
    if !is_root {
        return Err("needs root (debootstrap, chroot)".into());
    }
    if !has("debootstrap") {
        return Err("debootstrap is not installed (apt-get install debootstrap)".into());
    }
    let dir = root().join("target/debootstrap/bullseye");
    let done = root().join("target/debootstrap/bullseye.done");
    if done.exists() {
        return Ok(dir);
    }
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let output = run("debootstrap", &["--variant=minbase", "bullseye", dir.to_str().unwrap()]);
    if !output.status.success() {
        let log = text(&output);
        let tail: Vec<&str> = log.lines().rev().take(5).collect();
        return Err(format!("debootstrap failed: {}", tail.join(" | ")));
    }
    std::fs::write(&done, "").map_err(|e| e.to_string())?;
    Ok(dir)
}

fn chroot(root: &Path, args: &[&str]) -> Output {
    Command::new("chroot")
        .arg(root)
        .args(args)
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn the_portable_binary_and_the_deb_work_on_debian_11() {
    let (Some(binary), Some(deb)) = (dist("-x86_64-linux-gnu"), dist(".deb")) else {
        println!("SKIPPED: no portable binary or .deb in target/dist (run packaging/build)");
        return;
    };
    let root = match bullseye_root() {
        Ok(root) => root,
        Err(reason) => {
            println!("SKIPPED: no Debian 11 root: {reason}");
            return;
        }
    };
    let glibc = text(&chroot(&root, &["ldd", "--version"]));
    assert!(glibc.contains("2.31"), "Debian 11 has glibc 2.31: {glibc}");

    // The portable binary, copied in: it starts and validates the shipped config.
    std::fs::copy(&binary, root.join("tmp/hopproxy")).unwrap();
    std::fs::copy(packaging("squid.conf"), root.join("tmp/squid.conf")).unwrap();
    let version = chroot(&root, &["/tmp/hopproxy", "-v"]);
    assert!(version.status.success(), "{}", text(&version));
    let check = chroot(&root, &["/tmp/hopproxy", "check", "-c", "/tmp/squid.conf"]);
    assert!(check.status.success(), "{}", text(&check));

    // The .deb, installed into the root by dpkg: maintainer scripts included. No systemd
    // runs there, so the unit is enabled but not started.
    std::fs::copy(&deb, root.join("tmp/hopproxy.deb")).unwrap();
    let _ = chroot(&root, &["dpkg", "--purge", "hopproxy"]);
    let install = chroot(&root, &["dpkg", "-i", "/tmp/hopproxy.deb"]);
    assert!(install.status.success(), "dpkg -i:\n{}", text(&install));
    let user = chroot(&root, &["getent", "passwd", "hopproxy"]);
    assert!(text(&user).contains("/usr/sbin/nologin"), "{}", text(&user));
    let mode = chroot(&root, &["stat", "-c", "%U:%G %a", "/etc/hopproxy/squid.conf"]);
    assert_eq!(text(&mode).trim(), "root:hopproxy 640");
    let check = chroot(&root, &["hopproxy", "check", "-c", "/etc/hopproxy/squid.conf"]);
    assert!(check.status.success(), "{}", text(&check));
    let enabled = root.join("etc/systemd/system/multi-user.target.wants/hopproxy.service");
    assert!(enabled.exists() || enabled.is_symlink(), "the unit is enabled");
    let purge = chroot(&root, &["dpkg", "--purge", "hopproxy"]);
    assert!(purge.status.success(), "dpkg --purge:\n{}", text(&purge));
}

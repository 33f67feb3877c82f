//! The config corpus: realistic squid.conf files (Docker and Kubernetes egress, config-management
//! roles, office and school filters, proxy chains, and the features hopproxy leaves out), each
//! run through real Squid 5.7 (`squid -k parse`) and `hopproxy check`.
//!
//! Each fixture in `tests/fixtures/corpus/` starts with `# scope: in|gap|out|pending` (gap = in
//! the dialect's scope but refused for now, with the reason in the fixture; out = a feature
//! hopproxy leaves out; pending = features being added elsewhere) and
//! `# expect-squid: accept|reject`; `@DIR@` stands for
//! `tests/fixtures/corpus/files`. Asserted: Squid decides as the fixture says; every in-scope
//! config Squid accepts loads in hopproxy; none Squid rejects loads; every error hopproxy
//! prints has a hint saying what to do instead. The acceptance figure is printed.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

const SQUID: &str = "/usr/sbin/squid";

struct Fixture {
    name: String,
    scope: String,
    squid_accepts: bool,
    /// The fixture with `@DIR@` replaced, written to a temporary directory.
    path: PathBuf,
}

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/corpus")
}

fn fixtures(out: &Path) -> Vec<Fixture> {
    let files = corpus_dir().join("files");
    let mut list = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(corpus_dir())
        .expect("corpus dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "conf"))
        .collect();
    entries.sort();
    for source in entries {
        let text = std::fs::read_to_string(&source).expect("read fixture");
        let header = |key: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(&format!("# {key}: ")))
                .unwrap_or_else(|| panic!("{}: no '# {key}:' line", source.display()))
                .trim()
                .to_string()
        };
        let name = source.file_name().unwrap().to_string_lossy().into_owned();
        let path = out.join(&name);
        std::fs::write(&path, text.replace("@DIR@", &files.display().to_string())).expect("write");
        list.push(Fixture {
            scope: header("scope"),
            squid_accepts: header("expect-squid") == "accept",
            name,
            path,
        });
    }
    list
}

/// `squid -k parse` on the fixture through a wrapper that keeps Squid's own files in `dir`.
fn squid_accepts(fixture: &Path, dir: &Path, n: usize) -> (bool, String) {
    let wrapper = dir.join(format!("wrap{n}.conf"));
    std::fs::write(
        &wrapper,
        format!(
            "include {}\npid_filename {d}/squid{n}.pid\ncache_log {d}/cache{n}.log\ncoredump_dir {d}\n",
            fixture.display(),
            d = dir.display()
        ),
    )
    .expect("write wrapper");
    let output = Command::new(SQUID)
        .args([
            "-k",
            "parse",
            "-n",
            &format!("hopcorpus{}x{n}", std::process::id()),
            "-f",
        ])
        .arg(&wrapper)
        .output()
        .expect("run squid");
    let text = String::from_utf8_lossy(&output.stderr).into_owned() + &String::from_utf8_lossy(&output.stdout);
    (output.status.success() && !text.contains("FATAL"), text)
}

fn hopproxy_check(path: &Path) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_hopproxy"))
        .args(["check", "-c"])
        .arg(path)
        .output()
        .expect("run hopproxy");
    (
        output.status.code() == Some(0),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

/// Every `error:` line with the hint that follows it.
fn errors_with_hints(out: &str) -> Vec<(String, Option<String>)> {
    let lines: Vec<&str> = out.lines().collect();
    let mut errors = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if line.contains(": error: ") {
            let hint = lines
                .get(i + 1)
                .and_then(|l| l.trim_start().strip_prefix("hint: "))
                .map(str::to_string);
            errors.push((line.to_string(), hint));
        }
    }
    errors
}

#[test]
fn corpus_against_squid_and_hopproxy() {
    if !Path::new(SQUID).exists() {
        common::skip("squid is not installed");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let list = fixtures(dir.path());
    assert!(list.len() >= 15, "the corpus has {} configs", list.len());
    let (mut in_scope, mut loaded_in_scope, mut loaded_total, mut squid_total) = (0, 0, 0, 0);
    let mut problems = Vec::new();
    for (n, fixture) in list.iter().enumerate() {
        let (squid_ok, squid_out) = squid_accepts(&fixture.path, dir.path(), n);
        let (hop_ok, hop_out) = hopproxy_check(&fixture.path);
        println!(
            "{:32} scope={:7} squid={:6} hopproxy={}",
            fixture.name,
            fixture.scope,
            if squid_ok { "accept" } else { "reject" },
            if hop_ok { "accept" } else { "reject" }
        );
        if squid_ok != fixture.squid_accepts {
            problems.push(format!(
                "{}: Squid decided otherwise than the fixture says:\n{squid_out}",
                fixture.name
            ));
        }
        if !squid_ok && hop_ok {
            problems.push(format!("{}: Squid rejects it but hopproxy accepts it", fixture.name));
        }
        if squid_ok {
            squid_total += 1;
            loaded_total += usize::from(hop_ok);
            if fixture.scope == "in" || fixture.scope == "gap" {
                in_scope += 1;
                loaded_in_scope += usize::from(hop_ok);
                if !hop_ok && fixture.scope == "in" {
                    problems.push(format!(
                        "{}: in scope and accepted by Squid, but:\n{hop_out}",
                        fixture.name
                    ));
                }
            }
        }
        for (error, hint) in errors_with_hints(&hop_out) {
            let says_what_to_do = hint.as_deref().is_some_and(|h| {
                [
                    "instead",
                    "use",
                    "remove",
                    "add",
                    "define",
                    "choose",
                    "write",
                    "keep squid",
                    "create",
                    "did you mean",
                    "put",
                    "start",
                    "set",
                ]
                .iter()
                .any(|w| h.to_lowercase().contains(w))
            });
            if !says_what_to_do {
                problems.push(format!(
                    "{}: error without a hint saying what to do: {error} / {hint:?}",
                    fixture.name
                ));
            }
        }
    }
    println!(
        "corpus: hopproxy loads {loaded_in_scope}/{in_scope} in-scope (in + gap) configs Squid accepts, \
         {loaded_total}/{squid_total} of all configs Squid accepts"
    );
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
}

/// Out-of-scope configs are refused with one error per rejected feature, never a cascade.
#[test]
fn out_of_scope_configs_fail_once_per_feature() {
    let dir = tempfile::tempdir().expect("tempdir");
    for fixture in fixtures(dir.path()).iter().filter(|f| f.scope == "out") {
        let (ok, out) = hopproxy_check(&fixture.path);
        assert!(!ok, "{} loaded", fixture.name);
        for (error, _) in errors_with_hints(&out) {
            assert!(!error.contains("ACL not found"), "{}: cascade: {error}", fixture.name);
            assert!(
                !error.contains("no 'program' line"),
                "{}: cascade: {error}",
                fixture.name
            );
        }
    }
}

/// `check --syntax-only` loads a config whose referenced files are absent; plain `check`
/// reports each missing file.
#[test]
fn syntax_only_skips_referenced_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let conf = dir.path().join("s.conf");
    std::fs::write(
        &conf,
        "http_port 3128\nacl a dstdomain \"/nonexistent/hopproxy-allowed.txt\"\n\
         acl b src \"/nonexistent/hopproxy-nets.txt\"\nhttp_access allow a b\nhttp_access deny all\n",
    )
    .unwrap();
    let (ok, out) = hopproxy_check(&conf);
    assert!(!ok);
    assert_eq!(out.matches("cannot read ACL values file").count(), 2, "{out}");
    let output = Command::new(env!("CARGO_BIN_EXE_hopproxy"))
        .args(["check", "--syntax-only", "-c"])
        .arg(&conf)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stdout));
}

/// `check --squid-diff` names what Squid would act on and hopproxy ignores, but not what both
/// ignore, and the caching difference only while Squid would cache.
#[test]
fn squid_diff_lists_what_applies() {
    let dir = tempfile::tempdir().expect("tempdir");
    let run = |text: &str| {
        let conf = dir.path().join("d.conf");
        std::fs::write(&conf, text).unwrap();
        let output = Command::new(env!("CARGO_BIN_EXE_hopproxy"))
            .args(["check", "--squid-diff", "-c"])
            .arg(&conf)
            .output()
            .unwrap();
        assert!(output.status.success());
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let out = run("http_port 3128\nhttp_access deny all\ncache_mem 64 MB\nupgrade_http0.9 deny all\n");
    assert!(
        out.contains("d.conf:3: note: squid-diff: Squid acts on 'cache_mem'"),
        "{out}"
    );
    assert!(!out.contains("squid-diff: Squid acts on 'upgrade_http0.9'"), "{out}");
    assert!(out.contains("squid-diff: Squid caches responses"), "{out}");
    let out = run("http_port 3128\nhttp_access deny all\ncache deny all\n");
    assert!(!out.contains("squid-diff: Squid caches responses"), "{out}");
}

/// `check --list-directives` prints every class.
#[test]
fn list_directives_prints_the_table() {
    let output = Command::new(env!("CARGO_BIN_EXE_hopproxy"))
        .args(["check", "--list-directives"])
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&output.stdout);
    for label in [
        "\tsupported\t",
        "\tdefault-only\t",
        "\tignored-cache\t",
        "\tignored-obsolete\t",
        "\trejected\t",
    ] {
        assert!(out.contains(label), "{label} missing");
    }
    assert!(out.contains("access_log (also cache_access_log)\tsupported"), "{out}");
}

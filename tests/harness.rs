//! Checks on the test harness itself: the loopback-block table in `tests/common/blocks.rs`
//! is the one place blocks are handed out, and the test files keep to it.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use common::blocks::{FILES, RESERVED};

#[test]
fn no_two_test_files_share_a_loopback_block() {
    let mut owner: BTreeMap<u8, &str> = BTreeMap::new();
    for (name, blocks) in FILES.iter().chain(RESERVED) {
        for block in *blocks {
            if let Some(previous) = owner.insert(*block, name) {
                panic!("127.0.{block}.0/24 is given to both {previous} and {name}");
            }
        }
    }
}

/// The `N` of every `127.0.N.` and `[127, 0, N` written in `text`. Addresses built at run time
/// (`format!("127.0.{block}.…")`) are not seen; those files keep their block in one constant.
fn literal_blocks(text: &str) -> BTreeSet<u8> {
    let mut found = BTreeSet::new();
    for prefix in ["127.0.", "[127, 0, "] {
        for (at, _) in text.match_indices(prefix) {
            let rest = &text[at + prefix.len()..];
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            let terminated = rest[digits.len()..].starts_with(['.', ',']);
            if let (Ok(block), true) = (digits.parse::<u8>(), terminated) {
                found.insert(block);
            }
        }
    }
    found
}

#[test]
fn test_files_bind_only_inside_their_blocks() {
    let tests = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    let mut checked = 0;
    for entry in std::fs::read_dir(&tests).unwrap() {
        let path = entry.unwrap().path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if !name.ends_with(".rs") || name == "harness.rs" {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        // Block 0 is the seed's and config text's (see blocks.rs).
        let used: BTreeSet<u8> = literal_blocks(&text).into_iter().filter(|b| *b != 0).collect();
        match FILES.iter().find(|(file, _)| *file == name) {
            Some((_, own)) => {
                let outside: Vec<u8> = used.iter().copied().filter(|b| !own.contains(b)).collect();
                assert!(
                    outside.is_empty(),
                    "{name} writes addresses in 127.0.{outside:?}.0/24, outside its blocks {own:?} (tests/common/blocks.rs)"
                );
            }
            None => {
                // A file not in the table yet must at least keep off every listed file's blocks.
                for (file, own) in FILES {
                    let shared: Vec<u8> = used.iter().copied().filter(|b| own.contains(b)).collect();
                    assert!(
                        shared.is_empty(),
                        "{name} uses 127.0.{shared:?}.0/24, which belongs to {file}; give {name} its own entry in tests/common/blocks.rs"
                    );
                }
            }
        }
        checked += 1;
    }
    assert!(
        checked >= FILES.len(),
        "only {checked} test files found in {}",
        tests.display()
    );
}

#[test]
fn literal_blocks_sees_both_spellings() {
    let text = "\"127.0.16.11:31280\" IpAddr::from([127, 0, 47, host]) 127.0.0.1 127.0.{block}.20";
    assert_eq!(literal_blocks(text), BTreeSet::from([0, 16, 47]));
}

/// Files under `dir` (recursively) whose name ends with one of `suffixes`.
fn files_under(dir: &Path, suffixes: &[&str], out: &mut Vec<std::path::PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            files_under(&path, suffixes, out);
        } else if path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| suffixes.iter().any(|s| n.ends_with(s)))
        {
            out.push(path);
        }
    }
}

/// Every `docs/…` file that code, tests or the READMEs cite exists: a comment that sends the
/// reader to a missing page is a broken promise.
#[test]
fn cited_doc_files_exist() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = vec![root.join("README.md")];
    for dir in ["src", "tests", "bench", "fuzz", "packaging"] {
        files_under(&root.join(dir), &[".rs", ".md"], &mut files);
    }
    let mut missing = BTreeSet::new();
    let mut cited = 0;
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        for (at, _) in text.match_indices("docs/") {
            // `…/docs/x.md` is some other tree's docs; only the repository's own count.
            if text[..at].ends_with(|c: char| c.is_alphanumeric() || c == '/' || c == '_' || c == '-') {
                continue;
            }
            let name: String = text[at..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || "/._-".contains(*c))
                .collect();
            let name = name.trim_end_matches('.');
            if !name.ends_with(".md") {
                continue;
            }
            cited += 1;
            if !root.join(name).is_file() {
                missing.insert(format!("{} cites {name}", file.strip_prefix(root).unwrap().display()));
            }
        }
    }
    assert!(missing.is_empty(), "cited but missing: {missing:#?}");
    assert!(cited > 0, "no docs/ citation found at all: the scan is broken");
}

/// The `FILE::NAME` citations of tests/README.md's guarantee table, each checked to name a
/// `fn NAME(` in `tests/FILE` (or in `src/…` for unit tests), so the table cannot claim a test
/// that was renamed or removed. Rows without a citation must say **untested**.
#[test]
fn guarantee_table_names_existing_tests() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("tests/README.md")).unwrap();
    let start = readme
        .find("## README guarantees and their tests")
        .expect("tests/README.md has the guarantee table");
    let section = &readme[start..];
    let section = &section[..section[3..].find("\n## ").map_or(section.len(), |end| end + 3)];
    let mut cited = 0;
    let mut missing = Vec::new();
    for row in section
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| README"))
    {
        let citations: Vec<&str> = row
            .split('`')
            .skip(1)
            .step_by(2)
            .filter(|span| span.contains(".rs"))
            .collect();
        assert!(
            !citations.is_empty() || row.contains("**untested**"),
            "a guarantee with neither a test nor **untested**: {row}"
        );
        for citation in citations {
            let (file, name) = citation.split_once("::").unwrap_or((citation, ""));
            let path = if file.starts_with("src/") {
                root.join(file)
            } else {
                root.join("tests").join(file)
            };
            let Ok(text) = std::fs::read_to_string(&path) else {
                missing.push(format!("{citation}: no file {}", path.display()));
                continue;
            };
            if !name.is_empty() && !text.contains(&format!("fn {name}(")) {
                missing.push(format!("{citation}: no fn {name} in {file}"));
            }
            cited += 1;
        }
    }
    assert!(
        missing.is_empty(),
        "the guarantee table cites tests that do not exist: {missing:#?}"
    );
    assert!(
        cited > 30,
        "only {cited} citations found: the table or its parsing is broken"
    );
}

/// The README promises a crate without `unsafe`: both crate roots forbid it, so no module can
/// opt back in with `allow`.
#[test]
fn every_crate_root_forbids_unsafe_code() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for file in ["src/lib.rs", "src/main.rs"] {
        let text = std::fs::read_to_string(root.join(file)).unwrap();
        assert!(
            text.lines().any(|l| l.trim() == "#![forbid(unsafe_code)]"),
            "{file} does not say #![forbid(unsafe_code)]"
        );
    }
}

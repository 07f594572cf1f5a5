//! The links between proofs/ and the tests: every theorem names tests that exist, and every such test's doc
//! comment names its theorem.
//!
//! A theorem file `proofs/Tn-*.md` names a test with a line `Checked by: ... \`name\``; the path before `::`, if
//! any, is informational (only the last `::` segment is looked up).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

const THEOREMS: [&str; 9] = ["T1", "T2", "T3", "T4", "T5", "T6", "T7", "T8", "T9"];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// For each theorem id (`"T1"`, … taken from the file name, or the file stem for other files), the test
/// function names its `Checked by:` lines give, in order.
fn named_tests() -> BTreeMap<String, Vec<String>> {
    let dir = root().join("proofs");
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let entries = fs::read_dir(&dir).unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()));
    for entry in entries {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|x| x != "md") {
            continue;
        }
        let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
        let id = stem.split('-').next().unwrap().to_string();
        let text = fs::read_to_string(&path).unwrap();
        for line in text.lines() {
            let Some(rest) = line.split_once("Checked by").map(|(_, r)| r) else { continue };
            // The first `name` in backticks after the marker (the form the hook greps for).
            let mut parts = rest.split('`');
            let (Some(_), Some(quoted)) = (parts.next(), parts.next()) else {
                panic!("{}: `Checked by` line without a test name in backticks: {line:?}", path.display());
            };
            let name = quoted.rsplit("::").next().unwrap().trim().to_string();
            assert!(
                !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                "{}: {quoted:?} is not a function name",
                path.display()
            );
            out.entry(id.clone()).or_default().push(name);
        }
    }
    out
}

/// Every `.rs` file under `dir`, recursively, in a stable order.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else { return };
    let mut paths: Vec<PathBuf> = entries.map(|e| e.unwrap().path()).collect();
    paths.sort();
    for path in paths {
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|x| x == "rs") {
            out.push(path);
        }
    }
}

/// The sources of tests/ and src/, as (path, text).
fn sources() -> Vec<(PathBuf, String)> {
    let mut files = Vec::new();
    rust_files(&root().join("tests"), &mut files);
    rust_files(&root().join("src"), &mut files);
    files.into_iter().map(|p| (p.clone(), fs::read_to_string(&p).unwrap())).collect()
}

/// Index of the line declaring `fn name` (followed by `(` or `<`), if any.
fn fn_line(lines: &[&str], name: &str) -> Option<usize> {
    let decl = format!("fn {name}");
    lines.iter().position(|l| {
        l.find(&decl).is_some_and(|at| {
            let before_ok = at == 0 || !l.as_bytes()[at - 1].is_ascii_alphanumeric();
            let after = l[at + decl.len()..].trim_start();
            before_ok && (after.starts_with('(') || after.starts_with('<'))
        })
    })
}

/// The doc comment (`///` lines) right above line `at`, skipping attributes such as `#[test]`.
fn doc_above(lines: &[&str], at: usize) -> Vec<String> {
    let mut doc = Vec::new();
    let mut i = at;
    while i > 0 {
        i -= 1;
        let l = lines[i].trim_start();
        if l.starts_with("#[") {
            continue;
        }
        match l.strip_prefix("///") {
            Some(text) => doc.push(text.to_string()),
            None => break,
        }
    }
    doc.reverse();
    doc
}

/// True if `text` contains `id` (e.g. `T1`) not followed by another digit.
fn mentions(text: &str, id: &str) -> bool {
    text.match_indices(id).any(|(at, _)| !text[at + id.len()..].starts_with(|c: char| c.is_ascii_digit()))
}

/// Checks proofs/README: every `Checked by:` name in proofs/*.md is a function in tests/ or src/, and each of
/// T1..T9 names at least one test.
#[test]
fn every_theorem_names_existing_tests() {
    let named = named_tests();
    let sources = sources();
    let mut problems = Vec::new();
    for id in THEOREMS {
        if named.get(id).is_none_or(|v| v.is_empty()) {
            problems.push(format!("{id} names no test (no `Checked by:` line in proofs/{id}-*.md)"));
        }
    }
    for (id, names) in &named {
        for name in names {
            let found = sources.iter().any(|(_, text)| fn_line(&text.lines().collect::<Vec<_>>(), name).is_some());
            if !found {
                problems.push(format!("{id} names `{name}`, but no `fn {name}` exists under tests/ or src/"));
            }
        }
    }
    assert!(problems.is_empty(), "{} problem(s):\n{}", problems.len(), problems.join("\n"));
}

/// Checks proofs/README: the doc comment right above each test a theorem names mentions `proofs/T` and that
/// theorem's number (tests that do not exist yet are reported by `every_theorem_names_existing_tests`).
#[test]
fn every_theorem_test_names_its_theorem() {
    let named = named_tests();
    let sources = sources();
    let mut problems = Vec::new();
    let mut checked = 0;
    for (id, names) in &named {
        for name in names {
            for (path, text) in &sources {
                let lines: Vec<&str> = text.lines().collect();
                let Some(at) = fn_line(&lines, name) else { continue };
                let doc = doc_above(&lines, at).join(" ");
                checked += 1;
                if !doc.contains("proofs/T") || !mentions(&doc, id) {
                    problems.push(format!(
                        "{}: the doc comment of `{name}` should say `Checks proofs/{id} …` ({id} names it); it reads {doc:?}",
                        path.display()
                    ));
                }
            }
        }
    }
    assert!(checked > 0, "no named test found at all");
    assert!(problems.is_empty(), "{} problem(s):\n{}", problems.len(), problems.join("\n"));
}

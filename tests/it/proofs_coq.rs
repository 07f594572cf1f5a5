//! The links between proofs/ and the Coq development in proofs/coq/: every Coq lemma a theorem file names
//! exists, and is one whose axioms `proofs/coq/check.sh` checks (it is printed by `Assumptions.v`).
//!
//! A theorem file names a lemma as `` `Module.name` `` (for example `` `Conv.T1_conv_is_tied_product` ``) in
//! its "Machine-checked (Coq)" section; Module is the file `proofs/coq/Module.v`. Building the proofs needs
//! Coq (see proofs/coq/README.md); this test only reads text, so it runs everywhere.

use std::fs;
use std::path::PathBuf;

/// Theorems with machine-checked parts; each must name at least one lemma.
const CHECKED: [&str; 6] = ["T1", "T2", "T3", "T4", "T5", "T6"];

fn proofs() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("proofs")
}

/// What a theorem file `Tn-*.md` says about Coq.
struct TheoremFile {
    /// `T1`, `T2`, …
    id: String,
    /// Whether it has a "Machine-checked (Coq)" section.
    section: bool,
    /// The `Module.name` lemma references it contains, as (module, name).
    lemmas: Vec<(String, String)>,
}

/// Every theorem file, in name order.
fn theorem_files() -> Vec<TheoremFile> {
    let mut out = Vec::new();
    let mut paths: Vec<PathBuf> = fs::read_dir(proofs()).unwrap().map(|e| e.unwrap().path()).collect();
    paths.sort();
    for path in paths {
        let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
        if !stem.starts_with('T') || path.extension().is_none_or(|x| x != "md") {
            continue;
        }
        let text = fs::read_to_string(&path).unwrap();
        let section = text.contains("## Machine-checked (Coq)");
        let mut names = Vec::new();
        for quoted in text.split('`').skip(1).step_by(2) {
            let Some((module, name)) = quoted.split_once('.') else { continue };
            let is_ident = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if ["Tied", "Conv", "Pool"].contains(&module) && is_ident(name) {
                names.push((module.to_string(), name.to_string()));
            }
        }
        out.push(TheoremFile { id: stem.split('-').next().unwrap().to_string(), section, lemmas: names });
    }
    out
}

/// Checks proofs/README (the Coq column): every theorem file says what is machine-checked; T1 to T6 name
/// Coq lemmas; each named lemma is declared (`Theorem`, `Lemma` or `Corollary`) in its module's `.v` file
/// and listed by `Assumptions.v`, whose output `check.sh` requires to be "Closed under the global context".
#[test]
fn every_named_coq_lemma_exists_and_is_checked() {
    let coq = proofs().join("coq");
    let assumptions = fs::read_to_string(coq.join("Assumptions.v")).unwrap();
    let files = theorem_files();
    assert_eq!(files.len(), 9, "theorem files: {:?}", files.iter().map(|f| &f.id).collect::<Vec<_>>());
    let mut problems = Vec::new();
    for TheoremFile { id, section, lemmas: names } in &files {
        if !section {
            problems.push(format!("{id}: no \"## Machine-checked (Coq)\" section"));
        }
        if CHECKED.contains(&id.as_str()) && names.is_empty() {
            problems.push(format!("{id}: names no Coq lemma"));
        }
        for (module, name) in names {
            let source = fs::read_to_string(coq.join(format!("{module}.v")))
                .unwrap_or_else(|e| panic!("{id} names {module}.{name}: proofs/coq/{module}.v: {e}"));
            let declared = source.lines().any(|l| {
                ["Theorem ", "Lemma ", "Corollary "].iter().any(|kw| {
                    l.strip_prefix(kw).is_some_and(|rest| {
                        rest.strip_prefix(name.as_str())
                            .is_some_and(|after| after.starts_with([' ', ':', '(', '{', '\n']) || after.is_empty())
                    })
                })
            });
            if !declared {
                problems.push(format!("{id} names `{module}.{name}`, not declared in proofs/coq/{module}.v"));
            }
            if !assumptions.contains(&format!("Print Assumptions {module}.{name}.")) {
                problems.push(format!("{id} names `{module}.{name}`, which proofs/coq/Assumptions.v does not check"));
            }
        }
    }
    assert!(problems.is_empty(), "{} problem(s):\n{}", problems.len(), problems.join("\n"));
}

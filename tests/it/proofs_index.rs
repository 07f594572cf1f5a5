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

// ---------------------------------------------------------------------------------------------------------------
// What proofs/ cites must exist: repository paths, code items, the tests a theorem names (issue 31).
// ---------------------------------------------------------------------------------------------------------------

/// The markdown files of proofs/ (the theorems, the errata, the READMEs), sorted.
fn proof_markdown() -> Vec<PathBuf> {
    let mut out = Vec::new();
    for dir in [root().join("proofs"), root().join("proofs/coq"), root().join("proofs/seed")] {
        let mut paths: Vec<PathBuf> = fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "md"))
            .collect();
        paths.sort();
        out.extend(paths);
    }
    out
}

/// A path relative to the repository, for messages.
fn rel(path: &Path) -> String {
    path.strip_prefix(root()).unwrap_or(path).display().to_string()
}

/// The spans of `text` between backticks, with the 1-based line each starts on.
fn backticked(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut line = 1;
    let mut inside: Option<(usize, String)> = None;
    for ch in text.chars() {
        match (&mut inside, ch) {
            (None, '`') => inside = Some((line, String::new())),
            (Some(_), '`') => out.push(inside.take().unwrap()),
            (Some((_, s)), c) => s.push(c),
            (None, _) => {}
        }
        if ch == '\n' {
            line += 1;
        }
    }
    out
}

fn is_ident(s: &str) -> bool {
    !s.is_empty()
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !s.starts_with(|c: char| c.is_ascii_digit())
}

/// True if `text` has `word` with no identifier character on either side.
fn has_word(text: &str, word: &str) -> bool {
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    text.match_indices(word).any(|(at, _)| !text[..at].ends_with(ident) && !text[at + word.len()..].starts_with(ident))
}

/// True if `source` declares `name`: `fn`, `struct`, `enum`, `trait`, `type`, `const`, `static`, `mod` or
/// `macro_rules!`, or an enum variant (a line that starts with the name, followed by `,`, `(`, ` {` or `=`).
fn declares(source: &str, name: &str) -> bool {
    source.lines().any(|line| {
        let l = line.trim_start();
        let l = l.strip_prefix("pub(crate) ").or_else(|| l.strip_prefix("pub ")).unwrap_or(l);
        let l = l.strip_prefix("unsafe ").unwrap_or(l);
        let keyword = ["fn ", "struct ", "enum ", "trait ", "type ", "const ", "static ", "mod ", "macro_rules! "]
            .iter()
            .any(|kw| {
                l.strip_prefix(kw).is_some_and(|rest| rest.starts_with(name) && !is_ident_start(&rest[name.len()..]))
            });
        let variant = l.strip_prefix(name).is_some_and(|rest| {
            rest.is_empty() || rest.starts_with([',', '(']) || rest.starts_with(" {") || rest.starts_with(" =")
        });
        keyword || variant
    })
}

fn is_ident_start(rest: &str) -> bool {
    rest.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
}

/// The file of module path `segments` under src/ (`["tied", "products"]` is `src/tied/products.rs` or
/// `src/tied/products/mod.rs`), if it exists.
fn module_file(segments: &[&str]) -> Option<PathBuf> {
    let base = root().join("src").join(segments.join("/"));
    [base.with_extension("rs"), base.join("mod.rs")].into_iter().find(|p| p.is_file())
}

/// Checks that a code item named in proofs/ exists; `None` if it does. `A::b` with `A` a type: `A` is declared,
/// and a file under src/ that declares `A` or has an `impl` line naming it declares `b`; `a::b::c` with `a::b` a module: that module's file
/// declares `c` (a `tests` module included); a plain name: some file under src/ declares it.
fn check_item(item: &str, sources: &[(PathBuf, String)]) -> Option<String> {
    let segments: Vec<&str> = item.split("::").collect();
    let last = *segments.last().unwrap();
    if segments.len() >= 2 && segments[0].starts_with(|c: char| c.is_ascii_lowercase()) {
        // A module path: the longest prefix that is a module file must declare the rest.
        for cut in (1..segments.len()).rev() {
            if let Some(file) = module_file(&segments[..cut]) {
                let text = fs::read_to_string(&file).unwrap();
                return (!declares(&text, segments[cut]))
                    .then(|| format!("`{item}`: {} does not declare `{}`", rel(&file), segments[cut]));
            }
        }
        return Some(format!(
            "`{item}`: no module file src/{}.rs (or mod.rs)",
            segments[..segments.len() - 1].join("/")
        ));
    }
    if segments.len() >= 2 {
        let ty = segments[segments.len() - 2];
        if !sources.iter().any(|(_, text)| declares(text, ty)) {
            return Some(format!("`{item}`: no type `{ty}` is declared under src/"));
        }
        // The files that declare `ty` or implement something for it.
        let owns = |text: &str| declares(text, ty) || text.lines().any(|l| l.contains("impl") && has_word(l, ty));
        let found = sources.iter().any(|(_, text)| owns(text) && declares(text, last));
        return (!found)
            .then(|| format!("`{item}`: no file under src/ that declares or implements `{ty}` declares `{last}`"));
    }
    (!sources.iter().any(|(_, text)| declares(text, last))).then(|| format!("`{item}`: nothing under src/ declares it"))
}

/// The sources under src/ only.
fn src_sources() -> Vec<(PathBuf, String)> {
    let mut files = Vec::new();
    rust_files(&root().join("src"), &mut files);
    files.into_iter().map(|p| (p.clone(), fs::read_to_string(&p).unwrap())).collect()
}

/// Checks proofs/README (the "code" column) and every theorem's **Code:** line: each repository path that
/// proofs/ names in backticks (`src/…`, `tests/…`, a bare `name.rs` of src/) exists, `path::name` names a
/// function of that file (the tests of `Checked by:` lines); each item in parentheses after a path in a
/// **Code:** paragraph is declared in that file (`Type::name`: the file declares `name` and declares or
/// implements `Type`);
/// every other backticked `Type::name` or `module::name` is declared under src/; and the Coq files' comments
/// name existing src/ files and items. The messages name the proofs/ file and line and the missing path, so a
/// move under src/ shows exactly which references to update.
#[test]
fn every_cited_path_and_item_exists() {
    let sources = src_sources();
    let mut problems = Vec::new();
    let mut checked = (0, 0, 0);
    for md in proof_markdown() {
        let text = fs::read_to_string(&md).unwrap();
        let name = rel(&md);
        for (line, span) in backticked(&text) {
            let span = span.trim();
            // Paths, with an optional `::item` (a test function).
            let (path, item) = match span.split_once("::") {
                Some((p, i)) if p.ends_with(".rs") => (p, Some(i.rsplit("::").next().unwrap())),
                _ => (span, None),
            };
            let is_path = (path.starts_with("src/") || path.starts_with("tests/"))
                && !path.contains(char::is_whitespace)
                && !path.contains('*');
            if is_path {
                checked.0 += 1;
                let full = root().join(path);
                if !full.exists() {
                    problems.push(format!("{name}:{line}: `{path}` does not exist"));
                } else if let Some(item) = item {
                    let body = fs::read_to_string(&full).unwrap();
                    if fn_line(&body.lines().collect::<Vec<_>>(), item).is_none() {
                        problems.push(format!("{name}:{line}: `{span}`: {path} has no `fn {item}`"));
                    }
                }
                continue;
            }
            if is_ident(span.trim_end_matches(".rs")) && span.ends_with(".rs") {
                checked.0 += 1;
                if !root().join("src").join(span).is_file() {
                    problems.push(format!("{name}:{line}: `{span}` is not a file of src/"));
                }
                continue;
            }
            if span.contains("::") && span.split("::").all(is_ident) {
                checked.1 += 1;
                if let Some(p) = check_item(span, &sources) {
                    problems.push(format!("{name}:{line}: {p}"));
                }
            }
        }
        // The **Code:** paragraph: items in parentheses belong to the path before them.
        if let Some(start) = text.find("**Code:**") {
            let para = &text[start..];
            let para = &para[..para.find("\n\n").unwrap_or(para.len())];
            let line0 = text[..start].lines().count() + 1;
            let mut current: Option<PathBuf> = None;
            let mut depth = 0;
            let mut in_tick = false;
            let mut span = String::new();
            for ch in para.chars() {
                match ch {
                    '`' if in_tick => {
                        in_tick = false;
                        let s = span.trim().to_string();
                        if s.starts_with("src/") {
                            current = Some(root().join(&s));
                        } else if depth > 0 && s.split("::").all(is_ident) {
                            checked.2 += 1;
                            let Some(file) = &current else {
                                problems.push(format!("{name}:{line0}: **Code:** item `{s}` before any path"));
                                continue;
                            };
                            let Ok(body) = fs::read_to_string(file) else { continue }; // reported above
                            let segs: Vec<&str> = s.split("::").collect();
                            let last = *segs.last().unwrap();
                            let owner_ok = segs.len() < 2 || {
                                let ty = segs[segs.len() - 2];
                                declares(&body, ty) || body.lines().any(|l| l.contains("impl") && has_word(l, ty))
                            };
                            if !declares(&body, last) || !owner_ok {
                                problems
                                    .push(format!("{name}:{line0}: **Code:** `{s}` is not declared in {}", rel(file)));
                            }
                        }
                        span.clear();
                    }
                    '`' => in_tick = true,
                    c if in_tick => span.push(c),
                    '(' => depth += 1,
                    ')' => depth -= 1,
                    _ => {}
                }
            }
        }
    }
    // The Coq sources cite the crate in comments: `src/….rs` paths and `[Type::item]`.
    let coq = root().join("proofs/coq");
    let mut vs: Vec<PathBuf> = fs::read_dir(&coq)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "v"))
        .collect();
    vs.sort();
    for v in vs {
        let text = fs::read_to_string(&v).unwrap();
        for (i, line) in text.lines().enumerate() {
            for word in line.split(|c: char| c.is_whitespace() || matches!(c, '(' | ')' | ',' | ';' | '[' | ']')) {
                let word = word.trim_end_matches(['.', ':']);
                if word.starts_with("src/") && word.ends_with(".rs") {
                    checked.0 += 1;
                    if !root().join(word).is_file() {
                        problems.push(format!("{}:{}: `{word}` does not exist", rel(&v), i + 1));
                    }
                } else if word.contains("::") && word.split("::").all(is_ident) {
                    checked.1 += 1;
                    if let Some(p) = check_item(word, &sources) {
                        problems.push(format!("{}:{}: {p}", rel(&v), i + 1));
                    }
                }
            }
        }
    }
    assert!(checked.0 >= 100 && checked.1 >= 30 && checked.2 >= 30, "too few references found: {checked:?}");
    assert!(problems.is_empty(), "{} stale reference(s) in proofs/:\n{}", problems.len(), problems.join("\n"));
}

// ---------------------------------------------------------------------------------------------------------------
// Figures that cannot go stale: T8's numbers against the compiled layers (issue 31).
// ---------------------------------------------------------------------------------------------------------------

/// A number as proofs/ writes it, `1{,}822{,}212`, `1,822,212` or `718.24` (math delimiters allowed around it).
fn parse_number(s: &str) -> Option<f64> {
    let t = s.trim().trim_matches('$').replace("{,}", "").replace(',', "");
    let t = t.trim();
    (!t.is_empty() && t.chars().all(|c| c.is_ascii_digit() || c == '.')).then(|| t.parse().ok()).flatten()
}

/// The numbers of `line` written with a thousands separator (`{,}` or `,` between digit groups of 3), in order.
fn separated_numbers(line: &str) -> Vec<u64> {
    let b = line.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if !b[i].is_ascii_digit() || (i > 0 && (b[i - 1].is_ascii_digit() || b[i - 1] == b'.')) {
            i += 1;
            continue;
        }
        let mut j = i;
        while j < b.len() && b[j].is_ascii_digit() {
            j += 1;
        }
        let mut text = line[i..j].to_string();
        let mut groups = 0;
        loop {
            let sep = if line[j..].starts_with("{,}") {
                3
            } else if line[j..].starts_with(',') {
                1
            } else {
                break;
            };
            let k = j + sep;
            let digits = line[k..].bytes().take_while(u8::is_ascii_digit).count();
            if digits != 3 {
                break;
            }
            text.push_str(&line[k..k + 3]);
            j = k + 3;
            groups += 1;
        }
        if groups > 0 {
            out.push(text.parse().unwrap());
        }
        i = j.max(i + 1);
    }
    out
}

/// Integer arithmetic as T8 writes it in `$…$`: `+`, `-`, `\cdot`, `^`, parentheses, implicit products
/// (`4(4704 + 785)`), numbers with `{,}`. `None` for anything else (a symbol, a fraction, a relation).
fn eval_arithmetic(expr: &str) -> Option<i128> {
    let t = expr.replace("{,}", "").replace("\\cdot", "*").replace("\\,", "").replace(' ', "");
    if t.is_empty() || !t.chars().all(|c| c.is_ascii_digit() || "+-*^()".contains(c)) {
        return None;
    }
    struct P<'a> {
        s: &'a [u8],
        i: usize,
    }
    impl P<'_> {
        fn peek(&self) -> Option<u8> {
            self.s.get(self.i).copied()
        }
        fn sum(&mut self) -> Option<i128> {
            let mut v = self.product()?;
            while let Some(op @ (b'+' | b'-')) = self.peek() {
                self.i += 1;
                let r = self.product()?;
                v = if op == b'+' { v + r } else { v - r };
            }
            Some(v)
        }
        fn product(&mut self) -> Option<i128> {
            let mut v = self.power()?;
            loop {
                match self.peek() {
                    Some(b'*') => {
                        self.i += 1;
                        v *= self.power()?;
                    }
                    Some(b'(') => v *= self.power()?, // implicit product
                    _ => return Some(v),
                }
            }
        }
        fn power(&mut self) -> Option<i128> {
            let base = self.atom()?;
            if self.peek() == Some(b'^') {
                self.i += 1;
                let e = self.atom()?;
                return Some(base.pow(u32::try_from(e).ok()?));
            }
            Some(base)
        }
        fn atom(&mut self) -> Option<i128> {
            match self.peek()? {
                b'(' => {
                    self.i += 1;
                    let v = self.sum()?;
                    (self.peek()? == b')').then_some(())?;
                    self.i += 1;
                    Some(v)
                }
                c if c.is_ascii_digit() => {
                    let start = self.i;
                    while self.peek().is_some_and(|c| c.is_ascii_digit()) {
                        self.i += 1;
                    }
                    std::str::from_utf8(&self.s[start..self.i]).ok()?.parse().ok()
                }
                _ => None,
            }
        }
    }
    let mut p = P { s: t.as_bytes(), i: 0 };
    let v = p.sum()?;
    (p.i == t.len()).then_some(v)
}

/// The inline math spans `$…$` of `text` (not `$$` displays), with their 1-based line.
fn inline_math(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("$$") {
            continue;
        }
        let parts: Vec<&str> = line.split('$').collect();
        for (k, part) in parts.iter().enumerate() {
            if k % 2 == 1 && k + 1 < parts.len() {
                out.push((n + 1, part.to_string()));
            }
        }
    }
    out
}

/// Output positions times kernel indices whose padded coordinate is inside `[0, n)`: T8's `N(n)`, counted.
fn n_axis(n: usize, k: usize, s: usize, p: usize, d: usize, n_out: usize) -> usize {
    (0..n_out)
        .flat_map(|o| (0..k).map(move |kk| (o * s + kk * d) as isize - p as isize))
        .filter(|&u| u >= 0 && (u as usize) < n)
        .count()
}

/// One LeNet-5 layer of T8's table: its geometry, read from the row, compiled.
struct Layer {
    g: cnn_as_mlp::geometry::ConvGeometry,
    m: cnn_as_mlp::tied::TiedMatrix,
    compact_bytes: usize,
}

impl Layer {
    /// The geometry of a row's first cell: `conv1: $1 \to 6$, $5\times5$, pad 2, $28\times28$` (stride 1,
    /// dilation 1, zero padding, as T8 part 5).
    fn from_cell(cell: &str) -> Layer {
        use cnn_as_mlp::geometry::{ConvGeometry, PaddingMode};
        let body = cell.split_once(':').map_or(cell, |(_, b)| b);
        let maths: Vec<String> = body.split('$').skip(1).step_by(2).map(|m| m.replace(' ', "")).collect();
        let pair = |m: &str, sep: &str| -> (usize, usize) {
            let (a, b) = m.split_once(sep).unwrap_or_else(|| panic!("T8 table: {m:?} in {cell:?}"));
            (a.parse().unwrap(), b.parse().unwrap())
        };
        let (c_in, c_out) = pair(&maths[0], "\\to");
        let (k, k2) = pair(&maths[1], "\\times");
        let (h, w) = pair(maths.last().unwrap(), "\\times");
        assert_eq!(k, k2, "T8 table: square kernels only: {cell:?}");
        let pad = body
            .split_once("pad ")
            .map_or(0, |(_, r)| r.split(|c: char| !c.is_ascii_digit()).next().unwrap().parse().unwrap());
        let g = ConvGeometry { c_in, h_in: h, w_in: w, c_out, k, stride: 1, pad, dil: 1, mode: PaddingMode::Zeros };
        let m = cnn_as_mlp::engines::sparse::conv::compile_conv(&g);
        let compact_bytes = cnn_as_mlp::engines::sparse::conv::compile_conv_compact(&g).index_bytes();
        Layer { g, m, compact_bytes }
    }

    fn n(&self) -> usize {
        let g = &self.g;
        n_axis(g.h_in, g.k, g.stride, g.pad, g.dil, g.h_out())
    }

    /// The kernel in `f32` against the index: `index_bytes / 4P`, rounded.
    fn ratio(&self) -> u64 {
        (self.m.index_bytes() as f64 / (4 * self.m.n_params()) as f64).round() as u64
    }

    /// Every figure T8 may quote for this layer, by what it is.
    fn ledger(&self) -> Vec<(&'static str, u64)> {
        let m = &self.m;
        let (r, c) = m.shape();
        let (nnz, p) = (m.nnz(), m.n_params());
        let (g, gt) = (m.groups().len(), m.groups_t().len());
        let hw = self.g.h_out() * self.g.w_out();
        let ids: usize = (0..m.n_compounds()).map(|j| m.compound(j).len()).sum();
        let tables = m.separable().bytes() + m.separable_t().bytes() + m.grad_plan().bytes();
        let v = vec![
            ("nnz", nnz),
            ("P", p),
            ("4P (the kernel in f32)", 4 * p),
            ("R", r),
            ("C", c),
            ("G", g),
            ("G'", gt),
            ("N^2", self.n() * self.n()),
            ("hw P (no border loss)", hw * p),
            ("hw P - nnz (border loss)", hw * p - nnz),
            ("8 nnz", 8 * nnz),
            ("4(R + 1)", 4 * (r + 1)),
            ("4(C + 1)", 4 * (c + 1)),
            ("CSR of W", 8 * nnz + 4 * (r + 1)),
            ("CSR of W'", 8 * nnz + 4 * (c + 1)),
            ("row groups of W", 4 * (r + g + 1)),
            ("row groups of W'", 4 * (c + gt + 1)),
            ("compound tables", 4 * (m.n_compounds() + 1 + ids)),
            ("segments", 16 * m.scatter_segments().len()),
            ("separable groups of W", m.separable().bytes()),
            ("separable groups of W'", m.separable_t().bytes()),
            ("gradient plan", m.grad_plan().bytes()),
            ("tables", tables),
            ("matrices (index bytes without the tables)", m.index_bytes() - tables),
            ("index bytes", m.index_bytes()),
            ("compact index bytes", self.compact_bytes),
        ];
        let mut v: Vec<(&'static str, u64)> = v.into_iter().map(|(k, x)| (k, x as u64)).collect();
        v.push(("index bytes / 4P", self.ratio()));
        v
    }
}

/// Checks proofs/T8 part 5 against the crate, so that its figures cannot go stale: each row of the LeNet-5
/// table (geometry read from the row, compiled by `compile_conv`) gives the matrix shape, `N`, nnz, `P`,
/// nnz/`P` and the index bytes the compiled layer has; every number T8 writes with a thousands separator is one
/// the two compiled layers give (nnz, the bytes of each term of part 4, the tables, the compact form, …);
/// every chain `a = b = c` of integer arithmetic in T8's inline math holds; the "about … times" and "ratio about
/// …" figures are `index_bytes / 4P` rounded; and proofs/README's T8 row quotes the same nnz and bytes.
#[test]
fn t8_figures_are_the_crates() {
    let path = root().join("proofs/T8-cost.md");
    let text = fs::read_to_string(&path).unwrap();
    let mut problems = Vec::new();
    // The table.
    let mut layers = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line_no = n + 1;
        let Some(row) = line.trim().strip_prefix("| conv") else { continue };
        let cells: Vec<&str> = row.trim_end_matches('|').split('|').map(str::trim).collect();
        assert_eq!(cells.len(), 7, "T8:{line_no}: a table row has 7 cells: {line:?}");
        let layer = Layer::from_cell(cells[0]);
        let m = &layer.m;
        let (r, c) = m.shape();
        let shape: Vec<usize> =
            cells[1].trim_matches('$').split("\\times").map(|x| x.trim().parse().unwrap()).collect();
        let num = |cell: &str| parse_number(cell.trim_matches('$').split('=').next().unwrap());
        let mut expect = |what: &str, got: Option<f64>, want: f64, tol: f64| {
            if got.is_none_or(|g| (g - want).abs() > tol) {
                problems.push(format!("T8:{line_no}: {what} reads {got:?}, the crate gives {want}"));
            }
        };
        expect("R", shape.first().map(|&x| x as f64), r as f64, 0.0);
        expect("C", shape.get(1).map(|&x| x as f64), c as f64, 0.0);
        expect("N", num(cells[2]), layer.n() as f64, 0.0);
        expect("nnz", num(cells[3]), m.nnz() as f64, 0.0);
        expect("P", num(cells[4]), m.n_params() as f64, 0.0);
        expect("nnz/P", num(cells[5]), m.nnz() as f64 / m.n_params() as f64, 0.005);
        expect("index bytes", num(cells[6]), m.index_bytes() as f64, 0.0);
        layers.push(layer);
    }
    assert_eq!(layers.len(), 2, "T8 part 5's table: the rows of conv1 and conv2");
    // Every separated number is a figure of one of the layers.
    let ledger: Vec<(&str, u64)> = layers.iter().flat_map(Layer::ledger).collect();
    let mut quoted = 0;
    for (n, line) in text.lines().enumerate() {
        for x in separated_numbers(line) {
            quoted += 1;
            if !ledger.iter().any(|&(_, v)| v == x) {
                problems.push(format!("T8:{}: {x} is none of the figures of the compiled LeNet-5 layers", n + 1));
            }
        }
    }
    assert!(quoted >= 40, "T8: only {quoted} separated numbers found");
    // Chains of arithmetic.
    let mut chains = 0;
    for (line_no, math) in inline_math(&text) {
        let values: Vec<i128> = math.split('=').filter_map(eval_arithmetic).collect();
        if values.len() >= 2 {
            chains += 1;
            if values.iter().any(|&v| v != values[0]) {
                problems.push(format!("T8:{line_no}: ${math}$ does not hold: its sides are {values:?}"));
            }
        }
    }
    assert!(chains >= 15, "T8: only {chains} arithmetic chains found");
    // The ratios of the index to the kernel.
    for (anchor, end, layer) in
        [("the index is about $", "$ times larger", &layers[0]), ("ratio about $", "$", &layers[1])]
    {
        let at = text.find(anchor).unwrap_or_else(|| panic!("T8 no longer says {anchor:?}…"));
        let rest = &text[at + anchor.len()..];
        let got = parse_number(&rest[..rest.find(end).unwrap()]);
        if got != Some(layer.ratio() as f64) {
            problems.push(format!("T8: \"{anchor}…\" reads {got:?}, index_bytes / 4P is {}", layer.ratio()));
        }
    }
    // proofs/README's T8 row.
    let readme = fs::read_to_string(root().join("proofs/README.md")).unwrap();
    let row = readme.lines().find(|l| l.starts_with("| [T8]")).expect("proofs/README: the T8 row");
    let want: Vec<u64> = layers.iter().flat_map(|l| [l.m.nnz() as u64, l.m.index_bytes() as u64]).collect();
    if separated_numbers(row) != want {
        problems.push(format!(
            "proofs/README.md, row T8: quotes {:?}, the crate gives {want:?} (nnz, bytes per layer)",
            separated_numbers(row)
        ));
    }
    assert!(problems.is_empty(), "{} stale figure(s):\n{}", problems.len(), problems.join("\n"));
}

// ---------------------------------------------------------------------------------------------------------------
// The errata quote the source as printed (issue 31).
// ---------------------------------------------------------------------------------------------------------------

/// The line numbers of a label's list: `133–135, 137`, `153 and 157`.
fn line_list(spec: &str) -> Option<Vec<usize>> {
    let mut out = Vec::new();
    for part in spec.split(',').flat_map(|p| p.split(" and ")) {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        match part.split_once(['–', '-']) {
            Some((a, b)) => {
                let (a, b): (usize, usize) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
                (a <= b).then_some(())?;
                out.extend(a..=b);
            }
            None => out.push(part.parse().ok()?),
        }
    }
    (!out.is_empty()).then_some(out)
}

/// The quotes of `segment`: spans in backticks, and spans in ASCII double quotes that contain Chinese.
fn quotes_in(segment: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut open: Option<(char, String)> = None;
    for ch in segment.chars() {
        match &mut open {
            Some((delim, s)) if ch == *delim => {
                let chinese = s.chars().any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c));
                if *delim == '`' || chinese {
                    out.push(s.clone());
                }
                open = None;
            }
            Some((_, s)) => s.push(ch),
            None if ch == '`' || ch == '"' => open = Some((ch, String::new())),
            None => {}
        }
    }
    out
}

/// Checks proofs/Errata.md against the source it corrects: the copy in proofs/seed/ has the length
/// proofs/seed/README.md states; every quote after a label **Line N:** or **Lines N, M–K:** (in backticks, or in
/// double quotes when Chinese) occurs, as printed, on every line the label names (an ellipsis … separates
/// fragments that occur in order); and every erratum E1, E2, … quotes the source at least once.
#[test]
fn errata_quotes_occur_in_the_seed_at_their_lines() {
    let seed_path = root().join("proofs/seed/000_a88645ecf2e54974.txt");
    let seed = fs::read_to_string(&seed_path).unwrap();
    let note = fs::read_to_string(root().join("proofs/seed/README.md")).unwrap();
    let stated: usize = note
        .split_once(" bytes long")
        .and_then(|(before, _)| before.split_whitespace().last())
        .and_then(|n| n.parse().ok())
        .expect("proofs/seed/README.md states the copy's length (\"It is N bytes long\")");
    assert_eq!(seed.len(), stated, "proofs/seed/000_a88645ecf2e54974.txt is not the copy its README describes");
    let seed_lines: Vec<&str> = seed.split('\n').collect();
    let text = fs::read_to_string(root().join("proofs/Errata.md")).unwrap();
    let mut problems = Vec::new();
    let mut checked = 0;
    let mut per_erratum: BTreeMap<String, usize> = BTreeMap::new();
    let mut erratum = String::new();
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let at = offset;
        offset += line.len();
        if let Some(title) = line.strip_prefix("## ") {
            erratum = title.split('.').next().unwrap().to_string();
            if erratum.starts_with('E') {
                per_erratum.insert(erratum.clone(), 0);
            }
        }
        // Labels that start on this line.
        let mut from = 0;
        while let Some(found) = line[from..].find("**") {
            let start = from + found + 2;
            from = start;
            let rest = &line[start..];
            let Some(spec) = ["Lines ", "Line ", "lines ", "line "].iter().find_map(|p| rest.strip_prefix(p)) else {
                continue;
            };
            let Some((spec, _)) = spec.split_once(":**") else { continue };
            let Some(lines) = line_list(spec) else { continue };
            let body_start = at + start + rest.find(":**").unwrap() + 3;
            // The segment: up to the next bold, new bullet or blank line.
            let body = &text[body_start..];
            let end = ["**", "\n- ", "\n\n"].iter().filter_map(|m| body.find(m)).min().unwrap_or(body.len());
            let quotes = quotes_in(&body[..end]);
            let line_no = text[..body_start].lines().count();
            if quotes.is_empty() {
                problems.push(format!("Errata.md:{line_no}: the label for line(s) {spec} quotes nothing"));
            }
            for quote in quotes {
                checked += 1;
                *per_erratum.entry(erratum.clone()).or_default() += 1;
                for &n in &lines {
                    let Some(source) = seed_lines.get(n.wrapping_sub(1)) else {
                        problems.push(format!("Errata.md:{line_no}: line {n} is past the end of the source"));
                        continue;
                    };
                    let mut pos = 0;
                    let ok = quote
                        .split('…')
                        .map(str::trim)
                        .filter(|f| !f.is_empty())
                        .all(|fragment| source[pos..].find(fragment).map(|i| pos += i + fragment.len()).is_some());
                    if !ok {
                        problems.push(format!(
                            "Errata.md:{line_no}: {quote:?} is not on line {n} of the source, which reads {source:?}"
                        ));
                    }
                }
            }
        }
    }
    for (e, n) in &per_erratum {
        if *n == 0 {
            problems.push(format!("Errata.md: {e} quotes no line of the source (no **Line N:** label with a quote)"));
        }
    }
    assert!(per_erratum.len() >= 16 && checked >= 35, "{} errata, {checked} quotes", per_erratum.len());
    assert!(problems.is_empty(), "{} problem(s):\n{}", problems.len(), problems.join("\n"));
}

// ---------------------------------------------------------------------------------------------------------------
// T6 part 5: Adam's decay modes, on the crate's optimizer (issue 31).
// ---------------------------------------------------------------------------------------------------------------

/// Checks proofs/T6 part 5 on `Adam::step` (one step, a zero-padded convolution whose multiplicities vary over
/// the kernel, and a dense layer): with coupled decay each mode is Adam without decay fed `g + λ ν θ` on the
/// weights (`ν = 1` per-parameter, `ν = m_q` expanded), bit for bit, i.e. Adam on `J + R` of part 1; with
/// decoupled decay the two modes' moments are equal bit for bit, their biases too, and their new weights differ
/// by `η λ (1 − m_q) θ_q` (to rounding).
#[test]
fn t6_adam_decay_modes_follow_the_penalties() {
    use cnn_as_mlp::init::{Init, init_params};
    use cnn_as_mlp::network::{Engine, Network, Params};
    use cnn_as_mlp::optim::{Adam, DecayMode};
    use cnn_as_mlp::spec::Spec;
    let spec = Spec::parse("1x5x5 > conv(2,3,pad=1) > relu > dense(3)").unwrap();
    let fresh = || {
        let mut net = Network::<f64>::new(&spec, Engine::Sparse);
        init_params(&mut net, Init::TorchDefault, 31);
        net
    };
    let net = fresh();
    let mult = net.multiplicity();
    let is_weight: Vec<bool> = net.param_names().iter().map(|(n, _)| n.ends_with(".weight")).collect();
    let mut grads = net.zero_grads();
    for (k, x) in grads.iter_mut().flatten().flat_map(|t| t.data.iter_mut()).enumerate() {
        *x = 0.05 * ((k * 7 % 11) as f64 - 5.0);
    }
    let (lr, wd) = (0.01, 0.1);
    let step = |mode: DecayMode, decoupled: bool, wd: f64, grads: &Params<f64>| {
        let mut net = fresh();
        let mut adam = Adam::<f64>::new(lr, wd, mode, decoupled);
        adam.step(&mut net, grads);
        (net.params, adam.m, adam.v)
    };
    let flat = |p: &Params<f64>| p.iter().flatten().flat_map(|t| t.data.clone()).collect::<Vec<f64>>();
    assert!(mult[0][0].iter().any(|&m| m != mult[0][0][0]), "the conv's multiplicities should vary");
    // Coupled: Adam on g + λ ν θ, no decay.
    for mode in [DecayMode::PerParameter, DecayMode::Expanded] {
        let mut fed = grads.clone();
        for (w, ((g, th), m)) in
            fed.iter_mut().flatten().zip(net.params.iter().flatten()).zip(mult.iter().flatten()).enumerate()
        {
            if !is_weight[w] {
                continue;
            }
            for ((g, &th), &m) in g.data.iter_mut().zip(&th.data).zip(m) {
                let lambda = if mode == DecayMode::Expanded { wd * m as f64 } else { wd };
                *g += lambda * th;
            }
        }
        let (a, b) = (step(mode, false, wd, &grads), step(mode, false, 0.0, &fed));
        assert_eq!(flat(&a.0), flat(&b.0), "{mode:?}: coupled decay is Adam on g + λνθ (parameters)");
        assert_eq!((flat(&a.1), flat(&a.2)), (flat(&b.1), flat(&b.2)), "{mode:?}: the moments");
    }
    // Decoupled: same moments, weights apart by η λ (1 − m) θ.
    let (per, exp) = (step(DecayMode::PerParameter, true, wd, &grads), step(DecayMode::Expanded, true, wd, &grads));
    assert_eq!((flat(&per.1), flat(&per.2)), (flat(&exp.1), flat(&exp.2)), "decoupled: the moments of the two modes");
    let mut checked = 0;
    for (w, (((pe, pp), th), m)) in exp
        .0
        .iter()
        .flatten()
        .zip(per.0.iter().flatten())
        .zip(net.params.iter().flatten())
        .zip(mult.iter().flatten())
        .enumerate()
    {
        for (k, ((&e, &p), &th)) in pe.data.iter().zip(&pp.data).zip(&th.data).enumerate() {
            let want = if is_weight[w] { lr * wd * (1.0 - m[k] as f64) * th } else { 0.0 };
            assert!((e - p - want).abs() <= 1e-15, "tensor {w}, element {k}: {e} - {p} is not {want}");
            checked += 1;
        }
    }
    assert_eq!(checked, flat(&net.params).len());
}

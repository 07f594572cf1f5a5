//! The files of `src/` import each other without a circle.
//!
//! The test builds the file-level import graph from the source text: every path that starts with `crate::`,
//! `super::`, `self::`, `cnn_as_mlp::` or a child module's name — in `use` trees (braces expanded) and in
//! code — is resolved to the file of the longest module prefix it names; an edge joins the file that writes
//! the path to that file. Test modules (`#[cfg(test)] mod … { … }`) and comments are left out: a unit test may
//! reach any layer. A circle (a strongly connected set of two or more files) fails the test with its files.
//!
//! Layering kept this way: the kernels import nothing of the schedules above them, the matrix nothing of
//! the estimates or the engines, the library nothing of the command.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A module: its crate (`lib` or `bin`) and its path of names from the crate root.
type Module = (&'static str, Vec<String>);

/// Every `.rs` file under `dir`, recursively, sorted.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

/// The module a file of `src/` defines: `lib.rs` is the library's root, `main.rs` the command's, whose
/// modules live under `src/cli/` (declared by `main.rs`).
fn module_of(rel: &Path) -> Module {
    let mut names: Vec<String> = rel.iter().map(|s| s.to_string_lossy().into_owned()).collect();
    let last = names.pop().unwrap();
    let stem = last.trim_end_matches(".rs");
    if !(stem == "mod" || (names.is_empty() && (stem == "lib" || stem == "main"))) {
        names.push(stem.to_string());
    }
    let krate = if rel == Path::new("main.rs") || names.first().is_some_and(|n| n == "cli") { "bin" } else { "lib" };
    (krate, names)
}

/// The source without comments and without `#[cfg(test)]` modules.
fn code_of(text: &str) -> String {
    let mut out = String::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let t = line.trim_start();
        if t.starts_with("#[cfg(test)]") && lines.peek().is_some_and(|l| l.trim_start().starts_with("mod ")) {
            // Skip the module: up to the brace that closes the one its line opens.
            let mut depth = 0i32;
            let mut opened = false;
            for l in lines.by_ref() {
                for ch in l.chars() {
                    match ch {
                        '{' => {
                            depth += 1;
                            opened = true
                        }
                        '}' => depth -= 1,
                        _ => {}
                    }
                }
                if opened && depth <= 0 {
                    break;
                }
            }
            continue;
        }
        let code = match t.find("//") {
            Some(_) if t.starts_with("//") => "",
            _ => line,
        };
        out.push_str(code);
        out.push('\n');
    }
    out
}

/// The paths a `use` tree names, braces expanded: `a::{b, c::{d, e}}` gives `a::b`, `a::c::d`, `a::c::e`.
fn expand_use(tree: &str) -> Vec<String> {
    // `a as b` keeps `a`.
    let tree: String = tree.replace(" as ", "@").chars().filter(|c| !c.is_whitespace()).collect();
    let Some(open) = tree.find('{') else {
        return vec![tree.split('@').next().unwrap().to_string()];
    };
    let prefix = &tree[..open];
    let inner = &tree[open + 1..tree.rfind('}').unwrap()];
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (i, ch) in inner.char_indices() {
        match ch {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&inner[start..]);
    parts
        .into_iter()
        .filter(|p| !p.is_empty())
        .flat_map(|p| expand_use(p).into_iter().map(move |s| format!("{prefix}{s}")))
        .collect()
}

/// Every path in the code that may name a module of the crate: `use` trees expanded, and `a::b::c` chains.
fn paths_in(code: &str) -> Vec<Vec<String>> {
    let mut paths = Vec::new();
    let mut rest = code;
    // `use` statements first (a tree may span lines), then blanked so the chains below do not see them twice.
    let mut without_uses = String::new();
    while let Some(i) = find_use(rest) {
        without_uses.push_str(&rest[..i]);
        let end = rest[i..].find(';').map_or(rest.len(), |e| i + e);
        let tree = rest[i..end].trim_start_matches("pub(crate)").trim_start_matches("pub(super)").trim_start();
        let tree = tree.trim_start_matches("pub").trim_start().trim_start_matches("use").trim();
        for p in expand_use(tree) {
            paths.push(p.split("::").map(str::to_string).collect());
        }
        rest = &rest[(end + 1).min(rest.len())..];
    }
    without_uses.push_str(rest);
    let is_ident = |c: char| c.is_alphanumeric() || c == '_';
    let chars: Vec<char> = without_uses.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        if is_ident(chars[i]) && (i == 0 || !(is_ident(chars[i - 1]) || chars[i - 1] == ':')) {
            let mut segs = Vec::new();
            let mut j = i;
            loop {
                let s = j;
                while j < chars.len() && is_ident(chars[j]) {
                    j += 1;
                }
                segs.push(chars[s..j].iter().collect::<String>());
                if j + 2 < chars.len() && chars[j] == ':' && chars[j + 1] == ':' && is_ident(chars[j + 2]) {
                    j += 2;
                } else {
                    break;
                }
            }
            if segs.len() > 1 {
                paths.push(segs);
            }
            i = j;
        } else {
            i += 1;
        }
    }
    paths
}

/// The byte offset of the next `use` statement (at the start of a line, after an optional visibility).
fn find_use(text: &str) -> Option<usize> {
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let t = line.trim_start();
        let t2 = t.trim_start_matches("pub(crate) ").trim_start_matches("pub(super) ").trim_start_matches("pub ");
        if t2.starts_with("use ") {
            return Some(offset + (line.len() - t.len()));
        }
        offset += line.len();
    }
    None
}

/// The file a path written in module `from` leads to: the file of the longest module prefix it names.
fn resolve(path: &[String], from: &Module, files: &BTreeMap<Module, PathBuf>) -> Option<PathBuf> {
    let (krate, here) = from;
    let (mut base, rest): (Module, &[String]) = match path[0].as_str() {
        "crate" => ((krate, vec![]), &path[1..]),
        "cnn_as_mlp" => (("lib", vec![]), &path[1..]),
        "self" => ((krate, here.clone()), &path[1..]),
        "super" => {
            let mut m = here.clone();
            let mut k = 0;
            while k < path.len() && path[k] == "super" {
                m.pop();
                k += 1;
            }
            ((krate, m), &path[k..])
        }
        // A child module of this one, named without a prefix.
        first => {
            let mut child = here.clone();
            child.push(first.to_string());
            if !files.contains_key(&(krate, child.clone())) {
                return None;
            }
            ((krate, child), &path[1..])
        }
    };
    for seg in rest {
        let mut next = base.1.clone();
        next.push(seg.clone());
        if files.contains_key(&(base.0, next.clone())) {
            base.1 = next;
        } else {
            break;
        }
    }
    files.get(&base).cloned()
}

/// The strongly connected components of two or more nodes (Tarjan).
fn circles(edges: &BTreeMap<PathBuf, BTreeSet<PathBuf>>) -> Vec<Vec<PathBuf>> {
    struct State<'a> {
        edges: &'a BTreeMap<PathBuf, BTreeSet<PathBuf>>,
        index: BTreeMap<&'a PathBuf, usize>,
        low: BTreeMap<&'a PathBuf, usize>,
        stack: Vec<&'a PathBuf>,
        on_stack: BTreeSet<&'a PathBuf>,
        out: Vec<Vec<PathBuf>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a PathBuf) {
        let n = s.index.len();
        s.index.insert(v, n);
        s.low.insert(v, n);
        s.stack.push(v);
        s.on_stack.insert(v);
        let edges = s.edges;
        for w in edges.get(v).into_iter().flatten() {
            if !s.index.contains_key(w) {
                visit(s, w);
                let lw = s.low[w];
                let lv = s.low.get_mut(v).unwrap();
                *lv = (*lv).min(lw);
            } else if s.on_stack.contains(w) {
                let iw = s.index[w];
                let lv = s.low.get_mut(v).unwrap();
                *lv = (*lv).min(iw);
            }
        }
        if s.low[v] == s.index[v] {
            let mut comp = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                comp.push(w.clone());
                if w == v {
                    break;
                }
            }
            if comp.len() > 1 {
                comp.sort();
                s.out.push(comp);
            }
        }
    }
    let mut s = State {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: vec![],
        on_stack: BTreeSet::new(),
        out: vec![],
    };
    for v in edges.keys() {
        if !s.index.contains_key(v) {
            visit(&mut s, v);
        }
    }
    s.out
}

/// The import graph of `src/`: file → files it imports (itself excluded).
fn import_graph(src: &Path) -> BTreeMap<PathBuf, BTreeSet<PathBuf>> {
    let mut list = Vec::new();
    rust_files(src, &mut list);
    let files: BTreeMap<Module, PathBuf> = list
        .iter()
        .map(|p| (module_of(p.strip_prefix(src).unwrap()), p.strip_prefix(src).unwrap().to_path_buf()))
        .collect();
    let mut edges: BTreeMap<PathBuf, BTreeSet<PathBuf>> = BTreeMap::new();
    for (module, file) in &files {
        let code = code_of(&std::fs::read_to_string(src.join(file)).unwrap());
        let targets = edges.entry(file.clone()).or_default();
        for path in paths_in(&code) {
            if let Some(t) = resolve(&path, module, &files)
                && &t != file
            {
                targets.insert(t);
            }
        }
    }
    edges
}

#[test]
fn src_has_no_import_circle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let edges = import_graph(&src);
    let found = circles(&edges);
    let described: Vec<String> = found
        .iter()
        .map(|c| {
            let names: Vec<String> = c.iter().map(|p| p.display().to_string()).collect();
            let inner: Vec<String> = c
                .iter()
                .flat_map(|a| {
                    edges[a]
                        .iter()
                        .filter(|b| c.contains(b))
                        .map(move |b| format!("{} -> {}", a.display(), b.display()))
                })
                .collect();
            format!("{{{}}}: {}", names.join(", "), inner.join("; "))
        })
        .collect();
    assert!(found.is_empty(), "{} import circle(s) in src/:\n{}", found.len(), described.join("\n"));
}

/// The checker itself finds a circle and resolves the path forms it claims to.
#[test]
fn the_checker_sees_circles_and_every_path_form() {
    let dir = std::env::temp_dir().join(format!("import-graph-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("a")).unwrap();
    std::fs::write(dir.join("lib.rs"), "pub mod a;\npub mod b;\npub mod c;\n").unwrap();
    std::fs::write(dir.join("a/mod.rs"), "pub mod x;\npub use x::X;\n").unwrap();
    std::fs::write(dir.join("a/x.rs"), "use super::super::{b::{self, B}, c};\npub struct X;\n").unwrap();
    std::fs::write(dir.join("b.rs"), "pub struct B;\nfn f() { crate::a::x::X; }\n").unwrap();
    std::fs::write(
        dir.join("c.rs"),
        "// use crate::b;\n#[cfg(test)]\nmod tests {\n    use crate::b::B;\n}\npub struct C;\n",
    )
    .unwrap();
    let edges = import_graph(&dir);
    let p = |s: &str| PathBuf::from(s);
    assert_eq!(edges[&p("a/mod.rs")], BTreeSet::from([p("a/x.rs")]));
    assert_eq!(edges[&p("a/x.rs")], BTreeSet::from([p("b.rs"), p("c.rs")]));
    assert_eq!(edges[&p("b.rs")], BTreeSet::from([p("a/x.rs")]));
    assert!(edges[&p("c.rs")].is_empty(), "comments and test modules are not imports: {:?}", edges[&p("c.rs")]);
    assert_eq!(circles(&edges), vec![vec![p("a/x.rs"), p("b.rs")]]);
    std::fs::remove_dir_all(&dir).unwrap();
}

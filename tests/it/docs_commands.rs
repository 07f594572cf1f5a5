//! Every command in the README and in docs/ runs as written (issue 28): each `cnn-as-mlp …` line of a `sh`
//! block (with `cargo run --release -- …`, `mpirun … cnn-as-mlp …` and `VAR=value` prefixes) is given to the
//! binary with its environment and `--help` appended. clap reads the arguments in order and stops at `--help`,
//! so the binary exits 0 only when the subcommand exists, every flag before it is one of that subcommand's and
//! every value parses (engines, numbers, choices); nothing is trained or written. Synopses (`text` blocks,
//! with `[…]` for the optional parts) are checked against `--help` by `cli_errors::synopses_list_every_flag`.

use crate::common::stdout;
use std::path::{Path, PathBuf};

/// The subcommands; each must appear in at least one checked line.
const COMMANDS: [&str; 7] = ["train", "eval", "grad", "compare", "show", "plot", "sweep"];

/// README.md and every Markdown file of docs/ (not its subfolders: the reports there are generated).
fn documents() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = vec![root.join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    files.extend(docs);
    files
}

/// The logical lines (a trailing `\` joins the next) of the `sh`, `bash`, `shell` and `console` blocks of
/// `text`, each with the number of its first line.
fn shell_lines(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let (mut shell, mut fenced) = (false, false);
    let mut pending: Option<(usize, String)> = None;
    for (i, line) in text.lines().enumerate() {
        let t = line.trim_start();
        if let Some(info) = t.strip_prefix("```") {
            if fenced {
                fenced = false;
            } else {
                fenced = true;
                shell = matches!(info.trim(), "sh" | "bash" | "shell" | "console");
            }
            continue;
        }
        if !(fenced && shell) {
            continue;
        }
        let (start, mut joined) = pending.take().unwrap_or((i + 1, String::new()));
        match line.trim_end().strip_suffix('\\') {
            Some(head) => {
                joined.push_str(head);
                joined.push(' ');
                pending = Some((start, joined));
            }
            None => {
                joined.push_str(line);
                out.push((start, joined));
            }
        }
    }
    out
}

/// Splits a shell line into words: single and double quotes group, a backslash escapes, an unquoted `#`
/// starting a word ends the line, and the words stop at the first `|`, `;`, `&&`, `||`, `>` or `<`.
fn words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur: Option<String> = None;
    let mut chars = line.chars().peekable();
    let mut quote: Option<char> = None;
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => cur.get_or_insert_with(String::new).push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                cur.get_or_insert_with(String::new);
            }
            (None, '\\') => {
                if let Some(n) = chars.next() {
                    cur.get_or_insert_with(String::new).push(n);
                }
            }
            (None, c) if c.is_whitespace() => out.extend(cur.take()),
            (None, '#') if cur.is_none() => break,
            (None, '|' | ';' | '&' | '>' | '<') => break,
            (None, c) => cur.get_or_insert_with(String::new).push(c),
        }
    }
    out.extend(cur);
    out
}

/// A run of the binary that a document shows: its `VAR=value` prefixes and its arguments.
struct Invocation {
    env: Vec<(String, String)>,
    args: Vec<String>,
}

/// The binary's invocation in `words`, if it invokes it.
fn invocation(words: &[String]) -> Option<Invocation> {
    let mut w = words;
    if w.first().is_some_and(|s| s == "$") {
        w = &w[1..];
    }
    let mut env = Vec::new();
    while let Some((k, v)) = w.first().and_then(|s| s.split_once('='))
        && !k.is_empty()
        && k.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
    {
        env.push((k.to_string(), v.to_string()));
        w = &w[1..];
    }
    // `cargo run [--release] [--features F] -- ARGS` runs the binary (not `--example`).
    if w.first().is_some_and(|s| s == "cargo") && w.get(1).is_some_and(|s| s == "run") {
        let dash = w.iter().position(|s| s == "--")?;
        if w[..dash].iter().any(|s| s == "--example") {
            return None;
        }
        return Some(Invocation { env, args: w[dash + 1..].to_vec() });
    }
    let at = w.iter().position(|s| s == "cnn-as-mlp" || s.ends_with("/cnn-as-mlp"))?;
    Some(Invocation { env, args: w[at + 1..].to_vec() })
}

/// Every command line of the README and docs/ is accepted by the binary: its subcommand, flags and values.
#[test]
fn every_documented_command_is_accepted() {
    let mut checked = 0;
    let mut seen = std::collections::BTreeSet::new();
    let mut failures = Vec::new();
    for file in documents() {
        let text = std::fs::read_to_string(&file).unwrap();
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        for (line_no, line) in shell_lines(&text) {
            let Some(Invocation { env, args }) = invocation(&words(&line)) else { continue };
            if let Some(cmd) = args.first() {
                seen.insert(cmd.clone());
            }
            let o = std::process::Command::new(env!("CARGO_BIN_EXE_cnn-as-mlp"))
                .args(&args)
                .arg("--help")
                .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                .output()
                .expect("the binary runs");
            checked += 1;
            if !o.status.success() || !stdout(&o).contains("Usage:") {
                failures.push(format!(
                    "{name}:{line_no}: {}\n    {}",
                    line.trim(),
                    String::from_utf8_lossy(&o.stderr).trim().replace('\n', "\n    ")
                ));
            }
        }
    }
    assert!(failures.is_empty(), "documented commands the binary refuses:\n{}", failures.join("\n"));
    assert!(checked >= 20, "only {checked} documented commands found: is the extraction broken?");
    for cmd in COMMANDS {
        assert!(seen.contains(cmd), "no sh block of the README or docs/ runs `cnn-as-mlp {cmd}`");
    }
}

/// The extraction finds what a reader would run, and nothing else.
#[test]
fn command_extraction_reads_shell_blocks_only() {
    let doc = "```sh\ncnn-as-mlp train --model \"1x8x8 > dense(3)\" # note\n\
               CNN_AS_MLP_INDEX=classic cargo run --release -- compare \\\n    --layers c32-64\n\
               mpirun -np 2 target/release/cnn-as-mlp train --out runs/m | tail -1\n\
               cargo run --release --example fma_peak -- 2\n```\n```text\ncnn-as-mlp train [--epochs N]\n```\n";
    let lines = shell_lines(doc);
    assert_eq!(lines.len(), 4, "{lines:?}");
    let got: Vec<_> = lines.iter().filter_map(|(_, l)| invocation(&words(l))).collect();
    assert_eq!(got.len(), 3);
    assert_eq!(got[0].args, ["train", "--model", "1x8x8 > dense(3)"]);
    assert_eq!(got[1].env, [("CNN_AS_MLP_INDEX".to_string(), "classic".to_string())]);
    assert_eq!(got[1].args, ["compare", "--layers", "c32-64"]);
    assert_eq!(got[2].args, ["train", "--out", "runs/m"]);
}

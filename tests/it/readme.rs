//! The README is for users and its figures come from the report (issue 28): its results block links a
//! `docs/results/<cpu>/summary.md` and holds the same table, row for row and cell for cell; it stays short and
//! carries no dates, clock times or work diaries.

use std::path::Path;

const BEGIN: &str = "<!-- results:begin -->";
const END: &str = "<!-- results:end -->";
/// The most lines the README may have.
const MAX_LINES: usize = 300;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The lines strictly between the two marker lines; panics unless each marker is on a line of its own,
/// once, in order.
fn results_block(readme: &str) -> Vec<&str> {
    let lines: Vec<&str> = readme.lines().collect();
    let at = |marker: &str| {
        let hits: Vec<usize> = (0..lines.len()).filter(|&i| lines[i].trim() == marker).collect();
        assert_eq!(hits.len(), 1, "README.md: the line {marker} must appear exactly once, found {}", hits.len());
        hits[0]
    };
    let (b, e) = (at(BEGIN), at(END));
    assert!(b < e, "README.md: {BEGIN} (line {}) must come before {END} (line {})", b + 1, e + 1);
    lines[b + 1..e].to_vec()
}

/// The first `docs/results/<cpu>/summary.md` named in `lines`, `<cpu>` one path component.
fn summary_link(lines: &[&str]) -> Option<String> {
    const HEAD: &str = "docs/results/";
    const TAIL: &str = "/summary.md";
    for line in lines {
        let mut rest = *line;
        while let Some(i) = rest.find(HEAD) {
            let after = &rest[i + HEAD.len()..];
            let cpu_len = after.find(|c: char| c == '/' || c.is_whitespace() || "()[]`<>".contains(c));
            if let Some(n) = cpu_len
                && n > 0
                && after[n..].starts_with(TAIL)
                && &after[..n] != "<cpu>"
            {
                return Some(format!("{HEAD}{}{TAIL}", &after[..n]));
            }
            rest = after;
        }
    }
    None
}

/// The rows of every Markdown table in `lines` (lines starting with `|`), each as its trimmed cells.
fn table_rows(lines: &[&str]) -> Vec<(String, Vec<String>)> {
    lines
        .iter()
        .map(|l| l.trim())
        .filter(|l| l.starts_with('|'))
        .map(|l| {
            let inner = l.trim_start_matches('|').trim_end_matches('|');
            (l.to_string(), inner.split('|').map(|c| c.trim().to_string()).collect())
        })
        .collect()
}

/// `\d{4}-\d{2}-\d{2}` somewhere in `line`.
fn has_date(line: &str) -> bool {
    let b = line.as_bytes();
    let d = |i: usize| b[i].is_ascii_digit();
    (0..b.len().saturating_sub(9)).any(|i| {
        (i..i + 4).all(d) && b[i + 4] == b'-' && d(i + 5) && d(i + 6) && b[i + 7] == b'-' && d(i + 8) && d(i + 9)
    })
}

/// The word "session" (or "sessions", any case) in `line`.
fn has_session(line: &str) -> bool {
    let lower = line.to_lowercase();
    lower.match_indices("session").any(|(i, _)| {
        let before = lower[..i].chars().next_back();
        let after = lower[i + "session".len()..].chars().next();
        !before.is_some_and(char::is_alphanumeric) && after.is_none_or(|c| c == 's' || !c.is_alphanumeric())
    })
}

/// The README's results table equals the table of the summary it links (issue 28, item 7): the same rows
/// with the same cells, in the same order. A README figure that the report does not hold fails here, naming
/// the first line that differs.
#[test]
fn readme_results_are_the_reports() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let block = results_block(&readme);
    let link = summary_link(&block)
        .unwrap_or_else(|| panic!("README.md: the results block names no docs/results/<cpu>/summary.md: {block:#?}"));
    let summary = std::fs::read_to_string(root().join(&link))
        .unwrap_or_else(|e| panic!("README.md links {link}, which cannot be read: {e}"));
    let summary_lines: Vec<&str> = summary.lines().collect();
    let (ours, theirs) = (table_rows(&block), table_rows(&summary_lines));
    assert!(!ours.is_empty(), "README.md: the results block holds no table");
    for (i, pair) in ours.iter().zip(&theirs).enumerate() {
        assert_eq!(
            pair.0.1,
            pair.1.1,
            "table row {} differs:\n  README.md: {}\n  {link}: {}",
            i + 1,
            pair.0.0,
            pair.1.0
        );
    }
    assert_eq!(
        ours.len(),
        theirs.len(),
        "README.md's results table has {} rows, {link}'s {}; the first unmatched: {}",
        ours.len(),
        theirs.len(),
        if ours.len() > theirs.len() { &ours[theirs.len()].0 } else { &theirs[ours.len()].0 }
    );
}

/// The README is for users: at most [`MAX_LINES`] lines, no date (`YYYY-MM-DD`), no clock time in UTC, no
/// work diary ("session").
#[test]
fn readme_is_short_and_undated() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let n = readme.lines().count();
    assert!(n <= MAX_LINES, "README.md has {n} lines, more than {MAX_LINES}");
    // The one dated line allowed: the report's own header (machine, commit, date, versions), copied verbatim
    // into the results block.
    let block = results_block(&readme);
    let header = summary_link(&block)
        .and_then(|link| std::fs::read_to_string(root().join(link)).ok())
        .and_then(|s| s.lines().find(|l| l.starts_with("Machine: ")).map(str::to_string));
    for (i, line) in readme.lines().enumerate() {
        if header.as_deref() == Some(line) {
            continue;
        }
        assert!(!has_date(line), "README.md line {}: a date: {line}", i + 1);
        assert!(!line.contains(" UTC"), "README.md line {}: a clock time: {line}", i + 1);
        assert!(!has_session(line), "README.md line {}: the word session: {line}", i + 1);
    }
}

/// The checks above catch what they should (so that a broken helper cannot pass everything).
#[test]
fn readme_checks_catch_what_they_should() {
    assert!(has_date("measured 2026-12-01 at noon") && !has_date("c64-56 at 12-01") && !has_date("2026-1-01"));
    assert!(has_session("A session later") && has_session("two Sessions") && !has_session("sessionless"));
    assert!(!has_session("possession"));
    let lines = ["see [the report](docs/results/xeon-8480/summary.md).", "docs/results/<cpu>/summary.md"];
    assert_eq!(summary_link(&lines).as_deref(), Some("docs/results/xeon-8480/summary.md"));
    assert_eq!(summary_link(&lines[1..]), None);
    let rows = table_rows(&["text", "| a | b |", "|---|---|", " | 1 |  2 | "]);
    assert_eq!(rows.iter().map(|r| r.1.clone()).collect::<Vec<_>>(), [["a", "b"], ["---", "---"], ["1", "2"]]);
}

/// The report the README quotes names its commit, and that commit is in this checkout's history (issue 28:
/// "that commit is an ancestor of main"), so that a reader can check out what was measured. Skipped where git
/// or the history is not there (a source tarball).
#[test]
fn the_quoted_report_names_a_commit_of_this_history() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let link = summary_link(&results_block(&readme)).expect("the results block links a summary");
    let summary = std::fs::read_to_string(root().join(&link)).unwrap();
    let Some(header) = summary.lines().find(|l| l.starts_with("Machine: ")) else {
        // The placeholder before the first report.
        assert!(link.contains("/example/"), "{link}: no `Machine: ` header line");
        return;
    };
    let commit = header
        .split("Commit ")
        .nth(1)
        .and_then(|r| r.split([',', ' ', '+']).next())
        .unwrap_or_else(|| panic!("{link}: the header names no commit: {header}"));
    assert!(commit.len() >= 7 && commit.chars().all(|c| c.is_ascii_hexdigit()), "{link}: commit {commit:?}");
    let git = std::process::Command::new("git")
        .args(["merge-base", "--is-ancestor", commit, "HEAD"])
        .current_dir(root())
        .status();
    match git {
        Ok(s) if s.code() == Some(0) => {}
        Ok(s) if s.code() == Some(1) => panic!("{link} measured commit {commit}, which is not an ancestor of HEAD"),
        // No git, or not a checkout with history (exit 128): nothing to check against.
        _ => {}
    }
}

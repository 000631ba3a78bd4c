//! Command-line templates: a command line with what varies between runs of the same
//! command replaced by placeholders, so that a process's usual invocations share one
//! template and an unusual one stands out (issue 24's command-line novelty). Executors
//! compute them row by row; the function is pure and its output depends only on its
//! input, so every process computes the same templates.
//!
//! In order, on the lower-cased line (Windows compares paths and switches without case):
//! base64 runs of 40 characters or more → `<b64:CLASS>` (their length class; found in the
//! original line, a run needs upper- and lower-case letters); the event's own user and
//! host names → `<user>`, `<host>`; GUIDs → `<guid>`; `c:\users\NAME` →
//! `<profile>`; temp folders (`<profile>\appdata\local\temp`, `c:\windows\temp`,
//! `%temp%`, `%tmp%`) → `<temp>`; quoted strings after the program → `<str>`; `0x…` and
//! runs of eight or more hex digits mixing digits and letters → `<hex>`; numbers standing
//! alone, and any run of five or more digits → `<n>`; whitespace runs → one space.

use std::sync::LazyLock;

use regex::Regex;

fn regex(pattern: &str) -> Regex {
    Regex::new(pattern).expect("a valid built-in pattern")
}

static GUID: LazyLock<Regex> =
    LazyLock::new(|| regex(r"\{?[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\}?"));
static BASE64: LazyLock<Regex> = LazyLock::new(|| regex(r"[A-Za-z0-9+/]{40,}={0,2}"));
static PROFILE: LazyLock<Regex> = LazyLock::new(|| regex(r#"[a-z]:\\users\\[^\\"\s]+"#));
static TEMP: LazyLock<Regex> =
    LazyLock::new(|| regex(r"<profile>\\appdata\\local\\temp|[a-z]:\\windows\\temp|%temp%|%tmp%"));
static QUOTED: LazyLock<Regex> = LazyLock::new(|| regex(r#""[^"]*""#));
static HEX: LazyLock<Regex> = LazyLock::new(|| regex(r"\b0x[0-9a-f]+\b|\b[0-9a-f]{8,}\b"));
static NUMBER: LazyLock<Regex> = LazyLock::new(|| regex(r"\d{5,}|\b\d+\b"));
static SPACES: LazyLock<Regex> = LazyLock::new(|| regex(r"\s+"));

/// The template of `line`, run by `user` on `host` (the event's `Account` and
/// `Computer`; a `DOMAIN\` prefix and a host's domain suffix are ignored).
pub fn template(line: &str, user: Option<&str>, host: Option<&str>) -> String {
    let mut text = line.trim().to_lowercase();
    // Base64 first: a name or GUID-like text inside a payload must not break its run.
    if line.len() >= 40 {
        for (run, class) in base64_runs(line) {
            text = text.replace(&run.to_lowercase(), &format!("<b64:{class}>"));
        }
    }
    for (name, placeholder) in [
        (user.map(short_user), "<user>"),
        (host.map(short_host), "<host>"),
    ] {
        if let Some(name) = name.filter(|n| n.len() >= 3) {
            text = replace_word(text, &name.to_lowercase(), placeholder);
        }
    }
    // Each rule runs only where it could match (most lines need few of them), and keeps
    // the text when it matched nothing: templating is most of the evidence's cost.
    if text.contains('-') {
        text = replaced(text, |t| GUID.replace_all(t, "<guid>"));
    }
    if text.contains(r"\users\") {
        text = replaced(text, |t| PROFILE.replace_all(t, "<profile>"));
    }
    if text.contains("temp") || text.contains("tmp") {
        text = replaced(text, |t| TEMP.replace_all(t, "<temp>"));
    }
    if text.contains('"') {
        text = quoted_after_program(&text);
    }
    // A hex run without a digit stays as it is, and numbers need digits.
    if text.bytes().any(|b| b.is_ascii_digit()) {
        text = replaced(text, |t| {
            HEX.replace_all(t, |found: &regex::Captures| hex_placeholder(&found[0]))
        });
        text = replaced(text, |t| NUMBER.replace_all(t, "<n>"));
    }
    let single_spaced =
        !text.contains("  ") && !text.chars().any(|c| c.is_whitespace() && c != ' ');
    match single_spaced {
        true => text,
        false => SPACES.replace_all(&text, " ").into_owned(),
    }
}

/// `text` after `rule`, the same `String` when the rule changed nothing.
fn replaced(text: String, rule: impl FnOnce(&str) -> std::borrow::Cow<'_, str>) -> String {
    let changed = match rule(&text) {
        std::borrow::Cow::Owned(changed) => Some(changed),
        std::borrow::Cow::Borrowed(_) => None,
    };
    changed.unwrap_or(text)
}

/// The base64 runs of `line` (with upper- and lower-case letters: not hex, not words),
/// each with its length class.
fn base64_runs(line: &str) -> Vec<(String, &'static str)> {
    BASE64
        .find_iter(line)
        .map(|m| m.as_str())
        .filter(|run| {
            run.chars().any(|c| c.is_ascii_uppercase())
                && run.chars().any(|c| c.is_ascii_lowercase())
        })
        .map(|run| (run.to_string(), length_class(run.len())))
        .collect()
}

/// A base64 run's length class: encoded commands of similar size share a template.
/// (The class is a word, so that the number rule leaves it alone.)
fn length_class(len: usize) -> &'static str {
    match len {
        0..=64 => "le64",
        65..=256 => "le256",
        257..=1024 => "le1k",
        1025..=4096 => "le4k",
        _ => "gt4k",
    }
}

/// `<hex>` for `0x…` and for runs of hex digits that mix digits and letters; the run itself
/// otherwise (a word such as `deadbeef`'s kin is left, plain numbers are numbers).
fn hex_placeholder(run: &str) -> String {
    let mixed =
        run.chars().any(|c| c.is_ascii_digit()) && run.chars().any(|c| c.is_ascii_alphabetic());
    if run.starts_with("0x") || mixed {
        "<hex>".to_string()
    } else {
        run.to_string()
    }
}

/// `DOMAIN\user` → `user` (a machine account's `$` dropped).
pub fn short_user(account: &str) -> &str {
    account
        .rsplit('\\')
        .next()
        .unwrap_or(account)
        .trim_end_matches('$')
}

/// `host.domain.tld` → `host`.
pub fn short_host(computer: &str) -> &str {
    computer.split('.').next().unwrap_or(computer)
}

/// `text` with `word` (lower case) replaced wherever it stands as a word (no letter,
/// digit or `_` on either side). Scanned by hand: a regex built per row would cost more
/// than the rest of the template.
fn replace_word(text: String, word: &str, placeholder: &str) -> String {
    if !text.contains(word) {
        return text;
    }
    let is_word = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    for (at, _) in text.match_indices(word) {
        let end = at + word.len();
        if at < copied
            || is_word(text[..at].chars().next_back())
            || is_word(text[end..].chars().next())
        {
            continue;
        }
        out.push_str(&text[copied..at]);
        out.push_str(placeholder);
        copied = end;
    }
    out.push_str(&text[copied..]);
    out
}

/// Quoted strings replaced by `<str>`, except a quoted program at the start.
fn quoted_after_program(text: &str) -> String {
    let program_end = match text.strip_prefix('"') {
        Some(rest) => rest.find('"').map_or(text.len(), |i| i + 2),
        None => 0,
    };
    let (program, args) = text.split_at(program_end);
    format!("{program}{}", QUOTED.replace_all(args, "<str>"))
}

#[cfg(test)]
mod tests;

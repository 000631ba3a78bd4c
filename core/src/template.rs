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

// The rules as regexes. GUIDs, base64 runs and quoted strings are found by hand
// (`scan.rs`), hex runs and numbers too where the text is ASCII; the regexes are the
// definition the hand-written scans are tested against.
#[cfg(test)]
static GUID: LazyLock<Regex> =
    LazyLock::new(|| regex(r"\{?[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\}?"));
#[cfg(test)]
static BASE64: LazyLock<Regex> = LazyLock::new(|| regex(r"[A-Za-z0-9+/]{40,}={0,2}"));
static PROFILE: LazyLock<Regex> = LazyLock::new(|| regex(r#"[a-z]:\\users\\[^\\"\s]+"#));
static TEMP: LazyLock<Regex> =
    LazyLock::new(|| regex(r"<profile>\\appdata\\local\\temp|[a-z]:\\windows\\temp|%temp%|%tmp%"));
#[cfg(test)]
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
        for (run, placeholder) in base64_runs(line) {
            text = text.replace(&run.to_lowercase(), placeholder);
        }
    }
    for (name, placeholder) in [
        (user.and_then(user_name), "<user>"),
        (host.and_then(host_name), "<host>"),
    ] {
        if let Some(name) = name {
            text = replace_word(text, &name, placeholder);
        }
    }
    // Each rule runs only where it could match (most lines need few of them), and keeps
    // the text when it matched nothing: templating is most of the evidence's cost.
    if text.contains('-') {
        text = scan::guids(&text).unwrap_or(text);
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
        text = match text.is_ascii() {
            true => {
                let text = scan::hex_runs(&text, hex_placeholder).unwrap_or(text);
                scan::numbers(&text).unwrap_or(text)
            }
            false => {
                let text = replaced(text, |t| {
                    HEX.replace_all(t, |found: &regex::Captures| hex_placeholder(&found[0]))
                });
                replaced(text, |t| NUMBER.replace_all(t, "<n>"))
            }
        };
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

/// The name [`template`] replaces by `<user>` for `account`: its short form
/// ([`short_user`]) in lower case; `None` when shorter than three bytes (never replaced).
pub fn user_name(account: &str) -> Option<String> {
    name_to_replace(short_user(account))
}

/// The name [`template`] replaces by `<host>` for `computer` ([`short_host`], lower case);
/// `None` when shorter than three bytes.
pub fn host_name(computer: &str) -> Option<String> {
    name_to_replace(short_host(computer))
}

fn name_to_replace(short: &str) -> Option<String> {
    (short.len() >= 3).then(|| short.to_lowercase())
}

/// One command line prepared for all the users and hosts that run it: whether a given
/// name would change its template.
///
/// [`template`] replaces a name only where it occurs in the text left after the base64
/// runs became placeholders. Such an occurrence lies in the lower-cased line itself,
/// inside a placeholder, or across a placeholder's `<` or `>`. So a name that occurs in
/// neither the lower-cased line nor any placeholder, and holds no `<` or `>`, changes
/// nothing, and when neither the user's nor the host's name would, the line's template
/// is `template(line, None, None)` — exactly, whoever ran it.
#[derive(Debug, Clone)]
pub struct LineTemplate {
    lower: String,
    /// The pairs of bytes in `lower` ([`Pairs`]).
    pairs: Pairs,
}

/// A set of byte pairs as a 256-bit Bloom filter: a name can occur in a line only if
/// every pair of the name's is in the line's set, which four `AND`s rule out for most
/// names before the line is searched.
#[derive(Debug, Clone, Copy, Default)]
struct Pairs([u64; 4]);

impl Pairs {
    fn of(text: &str) -> Self {
        let mut bits = [0u64; 4];
        for pair in text.as_bytes().windows(2) {
            let bit = (usize::from(pair[0]) * 31 + usize::from(pair[1])) & 255;
            bits[bit / 64] |= 1 << (bit % 64);
        }
        Self(bits)
    }

    fn within(&self, other: &Pairs) -> bool {
        self.0.iter().zip(&other.0).all(|(a, b)| a & !b == 0)
    }
}

/// A user's or host's name as [`template`] replaces it ([`user_name`], [`host_name`]),
/// prepared to be looked for in many lines ([`LineTemplate::could_replace`]).
#[derive(Debug, Clone)]
pub struct Name {
    text: String,
    pairs: Pairs,
    /// Whether it could be replaced in any line: it holds `<` or `>`, or is part of a
    /// placeholder.
    anywhere: bool,
}

impl Name {
    /// `text`, from [`user_name`] or [`host_name`].
    pub fn new(text: String) -> Self {
        let anywhere = text.contains(['<', '>'])
            || BASE64_PLACEHOLDERS
                .iter()
                .any(|p| p.contains(text.as_str()));
        Self {
            pairs: Pairs::of(&text),
            text,
            anywhere,
        }
    }
}

impl LineTemplate {
    /// Prepares `line`.
    pub fn new(line: &str) -> Self {
        let lower = line.trim().to_lowercase();
        Self {
            pairs: Pairs::of(&lower),
            lower,
        }
    }

    /// Whether `name` could be replaced in this line's template; see the type's
    /// documentation.
    pub fn could_replace(&self, name: &Name) -> bool {
        name.anywhere || (name.pairs.within(&self.pairs) && self.lower.contains(&name.text))
    }
}

/// The placeholders of base64 runs, by length class (see [`length_class`]). Each class
/// is a word, so that the number rule leaves it alone.
const BASE64_PLACEHOLDERS: [&str; 5] = [
    "<b64:le64>",
    "<b64:le256>",
    "<b64:le1k>",
    "<b64:le4k>",
    "<b64:gt4k>",
];

/// The base64 runs of `line` (with upper- and lower-case letters: not hex, not words),
/// each with the placeholder of its length class.
fn base64_runs(line: &str) -> Vec<(String, &'static str)> {
    scan::base64_runs(line)
        .into_iter()
        .filter(|run| {
            run.chars().any(|c| c.is_ascii_uppercase())
                && run.chars().any(|c| c.is_ascii_lowercase())
        })
        .map(|run| {
            (
                run.to_string(),
                BASE64_PLACEHOLDERS[length_class(run.len())],
            )
        })
        .collect()
}

/// A base64 run's length class, an index into [`BASE64_PLACEHOLDERS`]: encoded commands
/// of similar size share a template.
fn length_class(len: usize) -> usize {
    match len {
        0..=64 => 0,
        65..=256 => 1,
        257..=1024 => 2,
        1025..=4096 => 3,
        _ => 4,
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
    match scan::quoted(args) {
        Some(args) => format!("{program}{args}"),
        None => text.to_string(),
    }
}

mod scan;
#[cfg(test)]
mod tests;

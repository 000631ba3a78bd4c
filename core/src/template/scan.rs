//! The template's rules scanned by hand: each function finds exactly what its regex in
//! `super` finds (leftmost-first, greedy, the same replacements), in one pass over the
//! bytes and without the regex engine's per-call setup — a day's distinct command lines
//! are templated every night, and these rules were over half of that. `tests.rs` checks
//! each against its regex.
//!
//! [`guids`], [`base64_runs`] and [`quoted`] look only for ASCII bytes, which in UTF-8
//! are never part of another character, so they are exact on any text. [`hex_runs`] and
//! [`numbers`] are for ASCII text: there the regex's Unicode `\b` and `\d` are ASCII's.

/// A copy of `text` made only once a first match is replaced.
struct Rewrite<'a> {
    text: &'a str,
    out: Option<String>,
    copied: usize,
}

impl<'a> Rewrite<'a> {
    fn new(text: &'a str) -> Self {
        Self {
            text,
            out: None,
            copied: 0,
        }
    }

    fn replace(&mut self, start: usize, end: usize, with: &str) {
        let out = self
            .out
            .get_or_insert_with(|| String::with_capacity(self.text.len()));
        out.push_str(&self.text[self.copied..start]);
        out.push_str(with);
        self.copied = end;
    }

    /// The rewritten text, `None` when nothing was replaced.
    fn finish(self) -> Option<String> {
        let mut out = self.out?;
        out.push_str(&self.text[self.copied..]);
        Some(out)
    }
}

fn is_hex(b: u8) -> bool {
    b.is_ascii_digit() || (b'a'..=b'f').contains(&b)
}

/// ASCII's word characters, as the regex's `\w` on ASCII text.
fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// The end of the run of bytes from `start` that are `class`.
fn run_end(bytes: &[u8], start: usize, class: impl Fn(u8) -> bool) -> usize {
    start
        + bytes[start..]
            .iter()
            .position(|&b| !class(b))
            .unwrap_or(bytes.len() - start)
}

/// Whether a word boundary precedes a word character at `at` (nothing or a non-word
/// character before it).
fn boundary_before(bytes: &[u8], at: usize) -> bool {
    at == 0 || !is_word(bytes[at - 1])
}

/// Whether a word boundary follows a word character ending at `end`.
fn boundary_after(bytes: &[u8], end: usize) -> bool {
    end == bytes.len() || !is_word(bytes[end])
}

/// `\{?[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\}?` → `<guid>`.
pub(super) fn guids(text: &str) -> Option<String> {
    const LEN: usize = 36;
    let bytes = text.as_bytes();
    let body_at = |start: usize| {
        bytes.len() >= start + LEN
            && bytes[start..start + LEN]
                .iter()
                .enumerate()
                .all(|(i, &b)| match i {
                    8 | 13 | 18 | 23 => b == b'-',
                    _ => is_hex(b),
                })
    };
    let mut rewrite = Rewrite::new(text);
    let mut at = 0;
    // A body's first dash is 8 bytes in: the dashes, in order, give the candidates in
    // order (the brace before a body starts its match one byte earlier).
    for (dash, _) in text.match_indices('-') {
        let Some(start) = dash.checked_sub(8) else {
            continue;
        };
        if start < at || !body_at(start) {
            continue;
        }
        let braced = start > at && bytes[start - 1] == b'{';
        let mut end = start + LEN;
        if bytes.get(end) == Some(&b'}') {
            end += 1;
        }
        rewrite.replace(start - usize::from(braced), end, "<guid>");
        at = end;
    }
    rewrite.finish()
}

/// `\b0x[0-9a-f]+\b|\b[0-9a-f]{8,}\b`, each match replaced by `placeholder` of it, in
/// ASCII `text`.
pub(super) fn hex_runs(text: &str, placeholder: impl Fn(&str) -> String) -> Option<String> {
    debug_assert!(text.is_ascii());
    let bytes = text.as_bytes();
    let mut rewrite = Rewrite::new(text);
    let mut at = 0;
    while at < bytes.len() {
        if !(is_hex(bytes[at]) && boundary_before(bytes, at)) {
            at += 1;
            continue;
        }
        // A shorter run never ends at a boundary (hex digits are word characters), so
        // each alternative matches its longest run or not at all.
        let prefixed = match bytes[at] == b'0' && bytes.get(at + 1) == Some(&b'x') {
            true => Some(run_end(bytes, at + 2, is_hex)).filter(|&end| end > at + 2),
            false => None,
        };
        let found = prefixed
            .filter(|&end| boundary_after(bytes, end))
            .or_else(|| Some(run_end(bytes, at, is_hex)).filter(|&end| end - at >= 8))
            .filter(|&end| boundary_after(bytes, end));
        match found {
            Some(end) => {
                rewrite.replace(at, end, &placeholder(&text[at..end]));
                at = end;
            }
            None => at += 1,
        }
    }
    rewrite.finish()
}

/// `\d{5,}|\b\d+\b` → `<n>`, in ASCII `text`.
pub(super) fn numbers(text: &str) -> Option<String> {
    debug_assert!(text.is_ascii());
    let bytes = text.as_bytes();
    let mut rewrite = Rewrite::new(text);
    let mut at = 0;
    while at < bytes.len() {
        if !bytes[at].is_ascii_digit() {
            at += 1;
            continue;
        }
        let end = run_end(bytes, at, |b| b.is_ascii_digit());
        // A later start in the run is shorter and follows a digit: it cannot match.
        if end - at >= 5 || (boundary_before(bytes, at) && boundary_after(bytes, end)) {
            rewrite.replace(at, end, "<n>");
        }
        at = end;
    }
    rewrite.finish()
}

/// The matches of `[A-Za-z0-9+/]{40,}={0,2}` in `line`.
pub(super) fn base64_runs(line: &str) -> Vec<&str> {
    let is_base64 = |b: u8| b.is_ascii_alphanumeric() || b == b'+' || b == b'/';
    let bytes = line.as_bytes();
    let mut runs = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        if !is_base64(bytes[at]) {
            at += 1;
            continue;
        }
        let end = run_end(bytes, at, is_base64);
        if end - at < 40 {
            at = end;
            continue;
        }
        let padded = end
            + bytes[end..]
                .iter()
                .take(2)
                .take_while(|&&b| b == b'=')
                .count();
        runs.push(&line[at..padded]);
        at = padded;
    }
    runs
}

/// `"[^"]*"` → `<str>`.
pub(super) fn quoted(text: &str) -> Option<String> {
    let mut rewrite = Rewrite::new(text);
    let mut from = 0;
    while let Some(open) = text[from..].find('"').map(|i| from + i) {
        let Some(close) = text[open + 1..].find('"').map(|i| open + 1 + i) else {
            break;
        };
        rewrite.replace(open, close + 1, "<str>");
        from = close + 1;
    }
    rewrite.finish()
}

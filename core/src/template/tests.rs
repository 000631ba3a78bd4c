use super::*;

/// Real command lines with the event's account and host: `real_command_lines.jsonl`,
/// picked from the public samples in `../shared/data/events` (msticpy's
/// `processes_on_host.csv` and OTRF Security-Datasets' derived 4688 events, both MIT).
struct Real {
    note: String,
    user: String,
    host: String,
    line: String,
}

fn real() -> Vec<Real> {
    include_str!("real_command_lines.jsonl")
        .lines()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let text = |key: &str| v[key].as_str().unwrap().to_string();
            Real {
                note: text("note"),
                user: text("user"),
                host: text("host"),
                line: text("line"),
            }
        })
        .collect()
}

/// The templates of the real lines noted `note`, in file order.
fn templates_of(note: &str) -> Vec<String> {
    let lines: Vec<_> = real().into_iter().filter(|r| r.note == note).collect();
    assert!(!lines.is_empty(), "no real line noted {note}");
    lines
        .iter()
        .map(|r| template(&r.line, Some(&r.user), Some(&r.host)))
        .collect()
}

/// Each real command line's template, worked out by hand from the rules.
#[test]
fn real_command_lines_reduce_to_their_templates() {
    let expected = [
        (
            "conhost",
            r"\??\c:\windows\system32\conhost.exe <hex> -forcev1",
        ),
        (
            "csc",
            r#""c:\windows\microsoft.net\framework64\v4.<n>.<n>\csc.exe" /noconfig /fullpaths @<str>"#,
        ),
        (
            "dllhost",
            r"c:\windows\system32\dllhost.exe /processid:<guid>",
        ),
        ("launcher", r#""<profile>\desktop\launcher.exe""#),
        ("reg", r"reg save hklm\system <temp>\system_hive"),
        ("ntdsutil", "ntdsutil <str> <str> <str> q q"),
    ];
    for (note, template) in expected {
        for found in templates_of(note) {
            assert_eq!(found, template, "{note}");
        }
    }
}

/// Encoded PowerShell keeps its switches and the payload's length class only.
#[test]
fn encoded_commands_become_a_length_class() {
    assert_eq!(
        templates_of("encoded"),
        [
            "powershell -nop -sta -w <n> -enc <b64:le4k>",
            r#""c:\windows\system32\windowspowershell\v1.<n>\powershell.exe" -nop -sta -w <n> -enc <b64:gt4k>"#,
        ]
    );
}

/// What varies between runs of one command does not vary its template: the same
/// console host on three hosts of two tenants, one compiler run with two random temp
/// folders, one COM surrogate with two class ids.
#[test]
fn runs_of_one_command_share_a_template() {
    for note in ["conhost", "csc", "dllhost"] {
        let templates = templates_of(note);
        assert!(templates.len() >= 2, "{note}");
        assert!(
            templates.windows(2).all(|w| w[0] == w[1]),
            "{note}: {templates:?}"
        );
    }
}

#[test]
fn numbers_hex_and_guids_become_placeholders() {
    assert_eq!(
        template(
            "CMD /c ping -n 5 10.0.0.1 0x1F pid 4321 build_123456 deadbeefcafe1234 system32",
            None,
            None
        ),
        "cmd /c ping -n <n> <n>.<n>.<n>.<n> <hex> pid <n> build_<n> <hex> system32"
    );
    assert_eq!(
        template(
            "x.exe {995C996E-D918-4a8c-A302-45719A6F4EA7} 29e61502-e3ad-495d-afd6-63bce63064b0.zip",
            None,
            None
        ),
        "x.exe <guid> <guid>.zip"
    );
    // A word of hex letters alone, and plain words, stay.
    assert_eq!(
        template("echo facade added", None, None),
        "echo facade added"
    );
}

#[test]
fn the_events_own_user_and_host_become_placeholders() {
    assert_eq!(
        template(
            r"net use \\WORKSTATION5\c$ /user:THESHIRE\pgustavo",
            Some(r"THESHIRE\pgustavo"),
            Some("WORKSTATION5.theshire.local")
        ),
        r"net use \\<host>\c$ /user:theshire\<user>"
    );
    // Only whole words: a user `adm` does not cut `admin`.
    assert_eq!(
        template("runas /user:admin cmd", Some("CORP\\adm"), None),
        "runas /user:admin cmd"
    );
    // Names under three characters are not replaced (they would hit switches).
    assert_eq!(template("tool /c x", Some("c"), Some("x")), "tool /c x");
}

#[test]
fn profile_and_temp_folders_become_placeholders() {
    assert_eq!(
        template(
            r#"C:\Users\bob\AppData\Local\Temp\a.ps1 %TEMP%\b.bat C:\Windows\Temp\c "C:\Users\eve\x""#,
            None,
            None
        ),
        r"<temp>\a.ps1 <temp>\b.bat <temp>\c <str>"
    );
}

#[test]
fn a_quoted_program_is_kept_and_quoted_arguments_are_not() {
    assert_eq!(
        template(
            r#""C:\Program Files\App\app.exe" --name "some value" "x""#,
            None,
            None
        ),
        r#""c:\program files\app\app.exe" --name <str> <str>"#
    );
    assert_eq!(
        template(r#"  "unterminated arg"#, None, None),
        r#""unterminated arg"#
    );
    assert_eq!(template("", None, None), "");
}

/// Where [`LineTemplate`] says neither name could be replaced, the line's template
/// without names is its template with them; checked on every real line against every
/// real line's user and host, and on lines built so that a name hides in a base64 run,
/// touches a placeholder, or is one.
#[test]
fn a_line_templated_without_names_is_exact_where_no_name_could_be_replaced() {
    let reals = real();
    let payload = "SQBFAFgAIAAoAE4AZQB3AC0ATwBiAGoAZQBjAHQAIABOAGUAdAAuAFcAZQBi";
    let mut lines: Vec<String> = reals.iter().map(|r| r.line.clone()).collect();
    lines.extend([
        format!("powershell.exe -enc {payload}"),
        format!("powershell.exe -enc {payload}ws01"),
        "cmd.exe /c echo <b64:le64> > out.txt".to_string(),
        "whoami".to_string(),
    ]);
    let mut names: Vec<(Option<String>, Option<String>)> = reals
        .iter()
        .map(|r| (Some(r.user.clone()), Some(r.host.clone())))
        .collect();
    names.extend([
        (Some(r"CORP\b64".to_string()), None),
        (Some(r"CORP\le64".to_string()), Some("ws01".to_string())),
        (Some(r"CORP\a<b".to_string()), Some("qbf.corp".to_string())),
        (None, Some("SQBFAFgA.corp".to_string())),
        (Some(r"CORP\whoami".to_string()), None),
        (None, None),
    ]);
    let mut fast = 0;
    let mut slow = 0;
    for line in &lines {
        let prepared = LineTemplate::new(line);
        let without_names = template(line, None, None);
        for (user, host) in &names {
            let could =
                |name: Option<String>| name.is_some_and(|n| prepared.could_replace(&Name::new(n)));
            let full = template(line, user.as_deref(), host.as_deref());
            if could(user.as_deref().and_then(user_name))
                || could(host.as_deref().and_then(host_name))
            {
                slow += 1;
            } else {
                fast += 1;
                assert_eq!(full, without_names, "{line} by {user:?} on {host:?}");
            }
        }
    }
    // Both paths taken (the real lines often name their own user or host).
    assert!(fast > slow && slow > 0, "fast {fast}, slow {slow}");
}

/// The cases the check exists for: a name inside a placeholder, and a name in a payload.
#[test]
fn a_name_inside_a_placeholder_or_a_payload_could_be_replaced() {
    let payload = "SQBFAFgAIAAoAE4AZQB3AC0ATwBiAGoAZQBjAHQAIABOAGUAdAAuAFcAZQBi";
    let line = format!("powershell.exe -enc {payload}");
    let prepared = LineTemplate::new(&line);
    // "b64" is no word of the line, but of its placeholder: the template changes.
    let with_user = template(&line, Some(r"CORP\b64"), None);
    assert_ne!(with_user, template(&line, None, None));
    assert!(prepared.could_replace(&Name::new(user_name(r"CORP\b64").unwrap())));
    // A host named as a piece of the payload: the payload's run is broken.
    assert!(prepared.could_replace(&Name::new(host_name("sqbfafga.corp").unwrap())));
    assert!(!prepared.could_replace(&Name::new(host_name("ws01.corp").unwrap())));
    assert_eq!(user_name(r"CORP\ab"), None);
    assert_eq!(user_name(r"CORP\SVC$").as_deref(), Some("svc"));
    assert_eq!(host_name("WS01.corp.local").as_deref(), Some("ws01"));
}

/// Strings made to hit the rules' edges: hex and digit runs of every length, `0x`, GUIDs
/// whole and cut, braces, quotes, base64 runs with and without padding, word and non-word
/// neighbours; seeded, so a failure repeats.
fn edge_strings() -> Vec<String> {
    use rand::{Rng, SeedableRng, rngs::StdRng};
    let pieces = [
        "0",
        "7",
        "12345",
        "1234",
        "0x",
        "0x1f",
        "deadbeef",
        "abcdef12",
        "a",
        "f",
        "g",
        "x",
        "_",
        "-",
        "{",
        "}",
        " ",
        "\"",
        "=",
        "==",
        "+",
        "/",
        "\\",
        ".",
        ":",
        "<n>",
        "9a8b7c6d",
        "123e4567-e89b-12d3-a456-426614174000",
        "123e4567-e89b-12d3-a456",
        "Zm9vYmFy",
        "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo",
        "abcdefghijklmnopqrstuvwxyz0123456789",
    ];
    let mut rng = StdRng::seed_from_u64(24);
    let mut strings: Vec<String> = (0..20_000)
        .map(|_| {
            let n = rng.random_range(1..14);
            (0..n)
                .map(|_| pieces[rng.random_range(0..pieces.len())])
                .collect()
        })
        .collect();
    for r in real() {
        strings.push(r.line.to_lowercase());
        strings.push(r.line);
    }
    strings
}

#[test]
fn the_hand_written_rules_find_what_their_regexes_find() {
    let strings = edge_strings();
    for s in &strings {
        let by_regex = GUID.replace_all(s, "<guid>");
        assert_eq!(
            scan::guids(s).as_deref().unwrap_or(s),
            by_regex,
            "guids in {s:?}"
        );
        let by_regex: Vec<&str> = BASE64.find_iter(s).map(|m| m.as_str()).collect();
        assert_eq!(scan::base64_runs(s), by_regex, "base64 in {s:?}");
        let by_regex = QUOTED.replace_all(s, "<str>");
        assert_eq!(
            scan::quoted(s).as_deref().unwrap_or(s),
            by_regex,
            "quoted in {s:?}"
        );
        if !s.is_ascii() {
            continue;
        }
        let by_regex = HEX.replace_all(s, |m: &regex::Captures| hex_placeholder(&m[0]));
        let by_hand = scan::hex_runs(s, hex_placeholder);
        assert_eq!(by_hand.as_deref().unwrap_or(s), by_regex, "hex in {s:?}");
        let by_regex = NUMBER.replace_all(s, "<n>");
        assert_eq!(
            scan::numbers(s).as_deref().unwrap_or(s),
            by_regex,
            "numbers in {s:?}"
        );
    }
    // The strings reach every rule.
    let hits = |rule: &Regex| strings.iter().filter(|s| rule.is_match(s)).count();
    for rule in [&*GUID, &*BASE64, &*QUOTED, &*HEX, &*NUMBER] {
        assert!(hits(rule) > 200, "{rule} matched {} strings", hits(rule));
    }
}

/// Non-ASCII text keeps the regexes' Unicode digits and word boundaries.
#[test]
fn non_ascii_numbers_are_numbers() {
    assert_eq!(
        template("setup.exe ٣٤٥ ärger42", None, None),
        "setup.exe <n> ärger42"
    );
    assert_eq!(template("run 12345 é", None, None), "run <n> é");
}

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

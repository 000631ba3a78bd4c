use chrono::TimeZone;

use super::*;

fn attack(host: &str, account: &str, account_type: &str, line: &str, hour: u32) -> Event {
    Event {
        time: Utc.with_ymd_and_hms(2020, 9, 4, hour, 30, 0).unwrap(),
        computer: Some(host.into()),
        account: Some(account.into()),
        account_type: Some(account_type.into()),
        new_process_name: Some(r"C:\Windows\System32\cmd.exe".into()),
        parent: Some(r"C:\Users\pgustavo\Downloads\launcher.exe".into()),
        command_line: Some(line.into()),
        logon_id: None,
        elevation: None,
        source: "test",
        label: Some("test-attack".into()),
    }
}

/// ws-1: alice and its machine account; ws-2: bob; srv-1: a machine account only.
fn tenant() -> Tenant {
    let mut tenant = Tenant::default();
    for (host, account, kind) in [
        ("ws-1.contoso.local", r"CONTOSO\alice", "User"),
        ("ws-1.contoso.local", r"CONTOSO\WS-1$", "Machine"),
        ("ws-2.contoso.local", r"CONTOSO\bob", "User"),
        ("srv-1.contoso.local", r"CONTOSO\SRV-1$", "Machine"),
    ] {
        tenant
            .accounts
            .entry(host.into())
            .or_default()
            .insert((account.into(), kind.into()));
    }
    tenant
}

fn replay(seed: u64) -> Vec<Event> {
    let attacks = [
        attack(
            "WORKSTATION5.theshire.local",
            r"THESHIRE\pgustavo",
            "User",
            r"cmd.exe /c whoami & dir C:\Users\PGustavo on workstation5",
            7,
        ),
        attack(
            "WORKSTATION5.theshire.local",
            r"THESHIRE\WORKSTATION5$",
            "Machine",
            "cmd.exe /c net user",
            8,
        ),
        attack(
            "MORDORDC.theshire.local",
            r"THESHIRE\pgustavo",
            "User",
            "ntdsutil",
            9,
        ),
    ];
    let day = Utc.with_ymd_and_hms(2026, 11, 27, 0, 0, 0).unwrap();
    let as_of = day + chrono::Duration::hours(8) + chrono::Duration::minutes(45);
    map_onto(&attacks, &tenant(), day.timestamp_micros(), as_of, seed).unwrap()
}

#[test]
fn attacks_land_on_the_tenants_user_hosts_and_accounts() {
    let replayed = replay(7);
    let hosts: Vec<&str> = replayed
        .iter()
        .map(|e| e.computer.as_deref().unwrap())
        .collect();
    // Two attack hosts, two tenant hosts with users: each gets its own.
    assert_ne!(hosts[0], hosts[2]);
    assert_eq!(hosts[0], hosts[1], "one attack host, one tenant host");
    for host in &hosts {
        assert!(host.starts_with("ws-"), "{host} has user accounts");
    }
    // pgustavo is one tenant account everywhere, one of its first host's users.
    let user = replayed[0].account.as_deref().unwrap();
    assert_eq!(replayed[2].account.as_deref(), Some(user));
    let first_host_users = tenant().accounts_of(hosts[0], "User").len();
    assert_eq!(first_host_users, 1);
    assert!(tenant().accounts_of(hosts[0], "User").contains(&user));
    // The machine account is its host's, or `HOST$` for a host that ran none.
    let machine = replayed[1].account.as_deref().unwrap();
    let expected = match hosts[1] {
        "ws-1.contoso.local" => r"CONTOSO\WS-1$",
        _ => "WS-2$",
    };
    assert_eq!(machine, expected);
}

#[test]
fn names_and_times_follow_the_mapping() {
    let replayed = replay(7);
    let host = short_host(replayed[0].computer.as_deref().unwrap());
    let user = short_user(replayed[0].account.as_deref().unwrap());
    assert_eq!(
        replayed[0].command_line.as_deref().unwrap(),
        format!(r"cmd.exe /c whoami & dir C:\Users\{user} on {host}")
    );
    assert_eq!(
        replayed[0].parent.as_deref().unwrap(),
        format!(r"C:\Users\{user}\Downloads\launcher.exe")
    );
    let day = Utc.with_ymd_and_hms(2026, 11, 27, 0, 0, 0).unwrap();
    assert_eq!(
        replayed[0].time,
        day + chrono::Duration::minutes(7 * 60 + 30)
    );
    // 09:30 is past the as-of time (08:45): held at it.
    assert_eq!(
        replayed[2].time,
        day + chrono::Duration::minutes(8 * 60 + 45)
    );
}

#[test]
fn the_mapping_is_the_seeds() {
    let hosts = |events: Vec<Event>| {
        events
            .into_iter()
            .map(|e| (e.computer, e.account))
            .collect::<Vec<_>>()
    };
    assert_eq!(hosts(replay(3)), hosts(replay(3)));
    let seeds: BTreeSet<_> = (0..16).map(|s| hosts(replay(s))).collect();
    assert!(seeds.len() > 1, "the seed chooses the hosts");
}

#[test]
fn a_day_without_user_accounts_is_refused() {
    let mut tenant = Tenant::default();
    tenant
        .accounts
        .entry("srv".into())
        .or_default()
        .insert((r"CONTOSO\SRV$".into(), "Machine".into()));
    let events = [attack("h", r"D\u", "User", "x", 1)];
    let err = map_onto(&events, &tenant, 0, Utc::now(), 1).unwrap_err();
    assert!(err.to_string().contains("no user-account events"), "{err}");
}

#[test]
fn names_are_replaced_whatever_their_case() {
    assert_eq!(
        replace_ignoring_case(r"C:\Users\PGustavo\x pgustavo", "pgustavo", "alice"),
        r"C:\Users\alice\x alice"
    );
    assert_eq!(
        replace_ignoring_case("none here", "pgustavo", "x"),
        "none here"
    );
}

/// The committed attack file reads, every event labelled.
#[test]
fn the_committed_attack_file_reads() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("attacks/public-attacks.jsonl");
    let events = read_attacks(&path).unwrap();
    assert_eq!(events.len(), 467);
    assert_eq!(
        events
            .iter()
            .filter(|e| e.label.as_deref() == Some("msticpy_alert_simulation"))
            .count(),
        160
    );
    assert!(
        events
            .iter()
            .all(|e| e.computer.is_some() && e.account.is_some())
    );
}

#[test]
fn scenarios_are_chosen_whole_by_the_seed() {
    let labelled = |label: &'static str, n: usize| {
        (0..n).map(move |i| Event {
            label: Some(label.to_string()),
            ..attack("h", r"D\u", "User", &format!("{label} {i}"), 1)
        })
    };
    let attacks: Vec<Event> = labelled("a", 3)
        .chain(labelled("b", 2))
        .chain(labelled("c", 4))
        .collect();
    let labels_of = |events: &[Event]| {
        events
            .iter()
            .map(|e| e.label.clone().unwrap())
            .collect::<BTreeSet<_>>()
    };
    assert_eq!(choose_scenarios(attacks.clone(), None, 1).len(), 9);
    assert_eq!(choose_scenarios(attacks.clone(), Some(3), 1).len(), 9);
    for seed in 0..8 {
        let two = choose_scenarios(attacks.clone(), Some(2), seed);
        let chosen = labels_of(&two);
        assert_eq!(chosen.len(), 2);
        let whole: usize = chosen
            .iter()
            .map(|l| {
                attacks
                    .iter()
                    .filter(|e| e.label.as_ref() == Some(l))
                    .count()
            })
            .sum();
        assert_eq!(two.len(), whole, "every event of a chosen scenario");
        assert_eq!(two, choose_scenarios(attacks.clone(), Some(2), seed));
    }
}

#[test]
fn replayed_as_machine_every_event_is_its_hosts_machine_accounts() {
    let replayed = as_machine(replay(7), &tenant());
    for event in &replayed {
        assert_eq!(event.account_type.as_deref(), Some("Machine"));
        let host = event.computer.as_deref().unwrap();
        assert_eq!(
            event.account.as_deref(),
            Some(machine_account(&tenant(), host).as_str())
        );
    }
    // The user's name in paths is still the mapped user's.
    let user = short_user(replay(7)[0].account.as_deref().unwrap()).to_string();
    assert!(replayed[0].command_line.as_deref().unwrap().contains(&user));
}

//! What runs on Windows hosts: process templates per host role, with who runs them, when,
//! how popular they are, and command lines with per-instance variation.
//!
//! Command lines are templates: `{guid}`, `{guidb}` (a GUID in braces), `{pid}`, `{hex8}`, `{n}` (a small number),
//! `{user}`, `{host}`, `{domain}`, `{tmp}` (a temp file name), `{pick:a|b|c}`.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// A host's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// A user's workstation.
    Workstation,
    /// An application or file server.
    Server,
    /// A domain controller.
    DomainController,
}

/// Whose account a process runs under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Who {
    /// The host's machine account (`DOMAIN\HOST$`, SYSTEM work).
    Machine,
    /// An interactive user (the workstation's owner, an admin on servers).
    User,
    /// A named service account (`DOMAIN\svc_…`).
    Service(&'static str),
    /// `NT AUTHORITY\LOCAL SERVICE`.
    LocalService,
    /// `NT AUTHORITY\NETWORK SERVICE`.
    NetworkService,
}

/// When during the day a process starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timing {
    /// Follows office hours and the week.
    Interactive,
    /// Any time, evenly.
    Background,
}

/// One kind of process start.
#[derive(Debug, Clone, Copy)]
pub struct Template {
    /// Full path of the image.
    pub image: &'static str,
    /// Full path of the usual parent.
    pub parent: &'static str,
    /// Account.
    pub who: Who,
    /// Time of day.
    pub timing: Timing,
    /// Popularity weight before the per-host Zipf jitter.
    pub weight: f64,
    /// Share of hosts of the role that run it at all.
    pub prevalence: f64,
    /// Command-line template.
    pub command: &'static str,
}

const fn t(
    image: &'static str,
    parent: &'static str,
    who: Who,
    timing: Timing,
    weight: f64,
    prevalence: f64,
    command: &'static str,
) -> Template {
    Template {
        image,
        parent,
        who,
        timing,
        weight,
        prevalence,
        command,
    }
}

use Timing::{Background as B, Interactive as I};
use Who::{LocalService as LS, Machine as M, NetworkService as NS, User as U};

const SVCHOST: &str = r"C:\Windows\System32\svchost.exe";
const SERVICES: &str = r"C:\Windows\System32\services.exe";
const EXPLORER: &str = r"C:\Windows\explorer.exe";
const WMIPRVSE: &str = r"C:\Windows\System32\wbem\WmiPrvSE.exe";
const TASKENG: &str = r"C:\Windows\System32\svchost.exe";
const MMA: &str = r"C:\Program Files\Microsoft Monitoring Agent\Agent\MonitoringHost.exe";

/// Processes every Windows host runs.
const COMMON: &[Template] = &[
    t(
        SVCHOST,
        SERVICES,
        M,
        B,
        30.0,
        1.0,
        r"C:\Windows\system32\svchost.exe -k {pick:netsvcs|LocalSystemNetworkRestricted|DcomLaunch|wsappx|UnistackSvcGroup} -p -s {pick:Schedule|BITS|wuauserv|Appinfo|gpsvc|CryptSvc|DsmSvc}",
    ),
    t(
        SVCHOST,
        SERVICES,
        LS,
        B,
        6.0,
        1.0,
        r"C:\Windows\system32\svchost.exe -k LocalServiceNetworkRestricted -p -s {pick:EventLog|Dhcp|TimeBrokerSvc|WinHttpAutoProxySvc}",
    ),
    t(
        SVCHOST,
        SERVICES,
        NS,
        B,
        4.0,
        1.0,
        r"C:\Windows\System32\svchost.exe -k NetworkService -p -s {pick:Dnscache|NlaSvc|LanmanWorkstation|CryptSvc}",
    ),
    t(
        r"C:\Windows\System32\conhost.exe",
        WMIPRVSE,
        M,
        B,
        18.0,
        1.0,
        r"\??\C:\Windows\system32\conhost.exe 0xffffffff -ForceV1",
    ),
    t(
        WMIPRVSE,
        SVCHOST,
        M,
        B,
        8.0,
        1.0,
        r"C:\Windows\system32\wbem\wmiprvse.exe -secured -Embedding",
    ),
    t(
        WMIPRVSE,
        SVCHOST,
        NS,
        B,
        3.0,
        1.0,
        r"C:\Windows\system32\wbem\wmiprvse.exe -Embedding",
    ),
    t(
        r"C:\Windows\System32\taskhostw.exe",
        TASKENG,
        M,
        B,
        5.0,
        1.0,
        r"taskhostw.exe {pick:SYSTEM|Install $(Arg0)|-RegisterDevice -ProtectionStateChanged -FreeNetworkOnly}",
    ),
    t(
        r"C:\Windows\System32\backgroundTaskHost.exe",
        SVCHOST,
        M,
        B,
        3.0,
        1.0,
        r#""C:\Windows\system32\backgroundTaskHost.exe" -ServerName:BackgroundTaskHost.WebAccountProvider"#,
    ),
    t(
        r"C:\ProgramData\Microsoft\Windows Defender\Platform\4.18.24090.11-0\MsMpEng.exe",
        SERVICES,
        M,
        B,
        1.0,
        1.0,
        r#""C:\ProgramData\Microsoft\Windows Defender\Platform\4.18.24090.11-0\MsMpEng.exe""#,
    ),
    t(
        r"C:\Windows\System32\MpCmdRun.exe",
        SVCHOST,
        M,
        B,
        2.0,
        1.0,
        r#""C:\Program Files\Windows Defender\MpCmdRun.exe" {pick:-wdenable|SignaturesUpdateService -ScheduleJob -RestrictPrivileges|-IdleTask -TaskName WdCacheMaintenance}"#,
    ),
    t(
        r"C:\Windows\System32\sppsvc.exe",
        SERVICES,
        NS,
        B,
        1.0,
        1.0,
        r"C:\Windows\system32\sppsvc.exe",
    ),
    t(
        r"C:\Windows\System32\wermgr.exe",
        SVCHOST,
        M,
        B,
        0.6,
        0.9,
        r#"C:\Windows\system32\wermgr.exe -upload"#,
    ),
    t(
        r"C:\Windows\System32\gpupdate.exe",
        SVCHOST,
        M,
        B,
        0.5,
        1.0,
        r"gpupdate.exe /target:computer /force",
    ),
    t(
        r"C:\Windows\System32\SearchProtocolHost.exe",
        r"C:\Windows\System32\SearchIndexer.exe",
        M,
        B,
        3.0,
        0.8,
        r#""C:\Windows\system32\SearchProtocolHost.exe" Global\UsGthrFltPipeMssGthrPipe{n}_ Global\UsGthrCtrlFltPipeMssGthrPipe{n} 1 -2147483646 "Software\Microsoft\Windows Search" "Mozilla/4.0 (compatible; MSIE 6.0; Windows NT; MS Search 4.0 Robot)" "C:\ProgramData\Microsoft\Search\Data\Temp\usgthrsvc" "DownLevelDaemon""#,
    ),
    t(
        r"C:\Windows\System32\compattelrunner.exe",
        SVCHOST,
        M,
        B,
        0.4,
        1.0,
        r"C:\Windows\system32\compattelrunner.exe -m:appraiser.dll -f:DoScheduledTelemetryRun",
    ),
    t(
        r"C:\Windows\System32\sc.exe",
        SVCHOST,
        M,
        B,
        0.3,
        0.7,
        r"sc.exe {pick:query|qc} {pick:wuauserv|WinDefend|BITS}",
    ),
    t(
        r"C:\Windows\System32\dllhost.exe",
        SVCHOST,
        M,
        B,
        2.0,
        1.0,
        r"C:\Windows\system32\DllHost.exe /Processid:{guidb}",
    ),
];

/// Extra processes of workstations.
const WORKSTATION: &[Template] = &[
    t(
        r"C:\Program Files\Google\Chrome\Application\chrome.exe",
        EXPLORER,
        U,
        I,
        40.0,
        0.8,
        r#""C:\Program Files\Google\Chrome\Application\chrome.exe" --type={pick:renderer|gpu-process|utility|crashpad-handler} --field-trial-handle={n},i,{hex8},{hex8},262144 --lang=en-US --mojo-platform-channel-handle={n} /prefetch:{n}"#,
    ),
    t(
        r"C:\Program Files (x86)\Microsoft\Edge\Application\msedge.exe",
        EXPLORER,
        U,
        I,
        25.0,
        0.9,
        r#""C:\Program Files (x86)\Microsoft\Edge\Application\msedge.exe" --type={pick:renderer|gpu-process|utility} --field-trial-handle={n},i,{hex8},{hex8},262144 --mojo-platform-channel-handle={n} /prefetch:{n}"#,
    ),
    t(
        r"C:\Users\{user}\AppData\Local\Microsoft\Teams\current\Teams.exe",
        EXPLORER,
        U,
        I,
        12.0,
        0.7,
        r#""C:\Users\{user}\AppData\Local\Microsoft\Teams\current\Teams.exe" --type=renderer --autoplay-policy=no-user-gesture-required --field-trial-handle={n},{hex8} /prefetch:{n}"#,
    ),
    t(
        r"C:\Program Files\Microsoft Office\root\Office16\OUTLOOK.EXE",
        EXPLORER,
        U,
        I,
        2.0,
        0.85,
        r#""C:\Program Files\Microsoft Office\root\Office16\OUTLOOK.EXE" "#,
    ),
    t(
        r"C:\Program Files\Microsoft Office\root\Office16\WINWORD.EXE",
        EXPLORER,
        U,
        I,
        1.5,
        0.8,
        r#""C:\Program Files\Microsoft Office\root\Office16\WINWORD.EXE" /n "C:\Users\{user}\Documents\{pick:Report|Minutes|Proposal|Budget}_{n}.docx" /o """#,
    ),
    t(
        r"C:\Program Files\Microsoft Office\root\Office16\EXCEL.EXE",
        EXPLORER,
        U,
        I,
        1.2,
        0.7,
        r#""C:\Program Files\Microsoft Office\root\Office16\EXCEL.EXE" "C:\Users\{user}\Documents\{pick:Forecast|Inventory|Q3|Timesheet}_{n}.xlsx""#,
    ),
    t(
        r"C:\Users\{user}\AppData\Local\Microsoft\OneDrive\OneDrive.exe",
        EXPLORER,
        U,
        I,
        3.0,
        0.9,
        r#""C:\Users\{user}\AppData\Local\Microsoft\OneDrive\OneDrive.exe" /background"#,
    ),
    t(
        r"C:\Windows\System32\RuntimeBroker.exe",
        SVCHOST,
        U,
        I,
        6.0,
        1.0,
        r"C:\Windows\System32\RuntimeBroker.exe -Embedding",
    ),
    t(
        r"C:\Windows\System32\smartscreen.exe",
        SVCHOST,
        U,
        I,
        1.5,
        1.0,
        r"C:\Windows\System32\smartscreen.exe -Embedding",
    ),
    t(
        EXPLORER,
        r"C:\Windows\System32\userinit.exe",
        U,
        I,
        0.4,
        1.0,
        r"C:\Windows\Explorer.EXE",
    ),
    t(
        r"C:\Windows\System32\cmd.exe",
        EXPLORER,
        U,
        I,
        0.8,
        0.5,
        r#""C:\Windows\system32\cmd.exe" {pick:/c dir|/c ipconfig /all|/k cd C:\Users\{user}\source|}"#,
    ),
    t(
        r"C:\Windows\System32\WindowsPowerShell\v1.0\powershell.exe",
        EXPLORER,
        U,
        I,
        0.6,
        0.4,
        r#""C:\Windows\System32\WindowsPowerShell\v1.0\powershell.exe" {pick:-NoLogo|Get-Service|-File C:\Users\{user}\scripts\sync.ps1|}"#,
    ),
    t(
        r"C:\Users\{user}\AppData\Local\Programs\Microsoft VS Code\Code.exe",
        EXPLORER,
        U,
        I,
        6.0,
        0.2,
        r#""C:\Users\{user}\AppData\Local\Programs\Microsoft VS Code\Code.exe" --type=utility --utility-sub-type=node.mojom.NodeService --lang=en-US --field-trial-handle={n},i,{hex8}"#,
    ),
    t(
        r"C:\Users\{user}\AppData\Local\slack\app-4.41.97\slack.exe",
        EXPLORER,
        U,
        I,
        5.0,
        0.3,
        r#""C:\Users\{user}\AppData\Local\slack\app-4.41.97\slack.exe" --type=renderer --field-trial-handle={n},{hex8}"#,
    ),
    t(
        r"C:\Program Files\Zoom\bin\Zoom.exe",
        EXPLORER,
        U,
        I,
        0.8,
        0.25,
        r#""C:\Program Files\Zoom\bin\Zoom.exe" "--url=zoommtg://zoom.us/join?confno={n}{n}{n}""#,
    ),
    t(
        r"C:\Program Files\Adobe\Acrobat DC\Acrobat\Acrobat.exe",
        EXPLORER,
        U,
        I,
        0.5,
        0.4,
        r#""C:\Program Files\Adobe\Acrobat DC\Acrobat\Acrobat.exe" "C:\Users\{user}\Downloads\{pick:invoice|statement|scan}_{n}.pdf""#,
    ),
    t(
        r"C:\Windows\System32\notepad.exe",
        EXPLORER,
        U,
        I,
        0.4,
        0.8,
        r#""C:\Windows\system32\NOTEPAD.EXE" C:\Users\{user}\Desktop\{pick:notes|todo|log}.txt"#,
    ),
    t(
        r"C:\Windows\System32\mstsc.exe",
        EXPLORER,
        U,
        I,
        0.2,
        0.15,
        r#""C:\Windows\system32\mstsc.exe" /v:{pick:srv-app01|srv-file01|jump01}"#,
    ),
    t(
        r"C:\Program Files\Google\Chrome\Application\chrome.exe",
        SVCHOST,
        M,
        B,
        0.3,
        0.8,
        r#""C:\Program Files\Google\Update\GoogleUpdate.exe" /ua /installsource scheduler"#,
    ),
    t(
        r"C:\Program Files\Common Files\microsoft shared\ClickToRun\OfficeClickToRun.exe",
        SERVICES,
        M,
        B,
        0.5,
        0.85,
        r#""C:\Program Files\Common Files\Microsoft Shared\ClickToRun\OfficeC2RClient.exe" /frequentupdate SCHEDULEDTASK displaylevel=False"#,
    ),
];

/// Extra processes of servers.
const SERVER: &[Template] = &[
    t(
        r"C:\Windows\System32\inetsrv\w3wp.exe",
        SVCHOST,
        Who::Service("svc_iis"),
        B,
        6.0,
        0.4,
        r#"c:\windows\system32\inetsrv\w3wp.exe -ap "{pick:DefaultAppPool|Portal|Api}" -v "v4.0" -l "webengine4.dll" -a \\.\pipe\iisipm{guid} -h "C:\inetpub\temp\apppools\{pick:Portal|Api}\{pick:Portal|Api}.config" -w "" -m 0"#,
    ),
    t(
        r"C:\Program Files\Microsoft SQL Server\MSSQL15.MSSQLSERVER\MSSQL\Binn\sqlservr.exe",
        SERVICES,
        Who::Service("svc_sql"),
        B,
        0.2,
        0.3,
        r#""C:\Program Files\Microsoft SQL Server\MSSQL15.MSSQLSERVER\MSSQL\Binn\sqlservr.exe" -sMSSQLSERVER"#,
    ),
    t(
        r"C:\Program Files\Microsoft SQL Server\MSSQL15.MSSQLSERVER\MSSQL\Binn\SQLAGENT.EXE",
        SERVICES,
        Who::Service("svc_sql"),
        B,
        1.5,
        0.3,
        r#""C:\Program Files\Microsoft SQL Server\MSSQL15.MSSQLSERVER\MSSQL\Binn\SQLAGENT.EXE" -i MSSQLSERVER"#,
    ),
    t(
        MMA,
        SERVICES,
        M,
        B,
        8.0,
        0.9,
        r#""C:\Program Files\Microsoft Monitoring Agent\Agent\MonitoringHost.exe" -Embedding"#,
    ),
    t(
        r"C:\Windows\System32\cscript.exe",
        MMA,
        M,
        B,
        10.0,
        0.9,
        r#""C:\Windows\system32\cscript.exe" /nologo "MonitorKnowledgeDiscovery.vbs" {n}"#,
    ),
    t(
        r"C:\Program Files\Microsoft Monitoring Agent\Agent\Health Service State\CT_602681692\NativeDSC\DesiredStateConfiguration\ASMHost.exe",
        MMA,
        M,
        B,
        4.0,
        0.9,
        r#""C:\Program Files\Microsoft Monitoring Agent\Agent\Health Service State\CT_602681692\NativeDSC\DesiredStateConfiguration\ASMHost.exe" GetInventory "C:\Program Files\Microsoft Monitoring Agent\Agent\Health Service State\CT_602681692\work\ServiceState\ServiceState.mof""#,
    ),
    t(
        r"C:\Windows\servicing\TrustedInstaller.exe",
        SERVICES,
        M,
        B,
        0.3,
        1.0,
        r"C:\Windows\servicing\TrustedInstaller.exe",
    ),
    t(
        r"C:\Windows\WinSxS\amd64_microsoft-windows-servicingstack_31bf3856ad364e35_10.0.20348.2110_none_1d1f9d3c0e2a6bd5\TiWorker.exe",
        SVCHOST,
        M,
        B,
        0.3,
        1.0,
        r"C:\Windows\winsxs\amd64_microsoft-windows-servicingstack_31bf3856ad364e35_10.0.20348.2110_none_1d1f9d3c0e2a6bd5\TiWorker.exe -Embedding",
    ),
    t(
        r"C:\Program Files\Veeam\Endpoint Backup\Veeam.EndPoint.Service.exe",
        SERVICES,
        Who::Service("svc_backup"),
        B,
        1.0,
        0.5,
        r#""C:\Program Files\Veeam\Endpoint Backup\Veeam.EndPoint.Service.exe" -job {guid}"#,
    ),
    t(
        r"C:\Windows\System32\robocopy.exe",
        r"C:\Windows\System32\cmd.exe",
        Who::Service("svc_backup"),
        B,
        0.6,
        0.3,
        r"robocopy D:\Shares\{pick:Finance|HR|Projects} \\srv-backup01\archive\{host} /MIR /R:1 /W:1 /LOG:C:\Logs\robocopy_{n}.log",
    ),
    t(
        r"C:\Windows\System32\cmd.exe",
        r"C:\Windows\System32\svchost.exe",
        Who::Service("svc_backup"),
        B,
        0.6,
        0.3,
        r#"C:\Windows\system32\cmd.exe /c "C:\Scripts\nightly_{pick:backup|rotate|cleanup}.cmd""#,
    ),
    t(
        r"C:\Windows\System32\WindowsPowerShell\v1.0\powershell.exe",
        SVCHOST,
        M,
        B,
        0.8,
        0.6,
        r#"powershell.exe -ExecutionPolicy Bypass -NoProfile -File "C:\Program Files\Microsoft Monitoring Agent\Agent\Health Service State\Resources\{n}\Check{pick:Disk|Cluster|Service}Health.ps1""#,
    ),
    t(
        r"C:\Windows\System32\mmc.exe",
        EXPLORER,
        U,
        I,
        0.2,
        0.6,
        r#""C:\Windows\system32\mmc.exe" "C:\Windows\system32\{pick:compmgmt|services|eventvwr|dsa}.msc" "#,
    ),
    t(
        r"C:\Windows\System32\cmd.exe",
        EXPLORER,
        U,
        I,
        0.2,
        0.8,
        r#""C:\Windows\system32\cmd.exe" "#,
    ),
    t(
        r"C:\Windows\System32\WindowsPowerShell\v1.0\powershell.exe",
        EXPLORER,
        U,
        I,
        0.2,
        0.8,
        r#""C:\Windows\System32\WindowsPowerShell\v1.0\powershell.exe" "#,
    ),
    t(
        r"C:\Windows\System32\ServerManager.exe",
        EXPLORER,
        U,
        I,
        0.1,
        0.8,
        r#""C:\Windows\system32\ServerManager.exe" "#,
    ),
];

/// Extra processes of domain controllers.
const DOMAIN_CONTROLLER: &[Template] = &[
    t(
        r"C:\Windows\System32\dfsrs.exe",
        SERVICES,
        M,
        B,
        1.0,
        1.0,
        r"C:\Windows\system32\DFSRs.exe",
    ),
    t(
        r"C:\Windows\System32\dns.exe",
        SERVICES,
        M,
        B,
        0.1,
        1.0,
        r"C:\Windows\system32\dns.exe",
    ),
    t(
        r"C:\Windows\System32\ntfrsutl.exe",
        SVCHOST,
        M,
        B,
        0.2,
        0.5,
        r"ntfrsutl.exe ds",
    ),
    t(
        r"C:\Windows\System32\repadmin.exe",
        SVCHOST,
        Who::Service("svc_monitor"),
        B,
        1.0,
        1.0,
        r"repadmin.exe /replsummary",
    ),
    t(
        r"C:\Windows\System32\dcdiag.exe",
        SVCHOST,
        Who::Service("svc_monitor"),
        B,
        0.5,
        1.0,
        r"dcdiag.exe /test:{pick:services|replications|advertising} /q",
    ),
    t(
        MMA,
        SERVICES,
        M,
        B,
        6.0,
        1.0,
        r#""C:\Program Files\Microsoft Monitoring Agent\Agent\MonitoringHost.exe" -Embedding"#,
    ),
    t(
        r"C:\Windows\System32\cscript.exe",
        MMA,
        M,
        B,
        8.0,
        1.0,
        r#""C:\Windows\system32\cscript.exe" /nologo "ADReplicationMonitoring.vbs" {n}"#,
    ),
    t(
        r"C:\Windows\System32\lsass.exe",
        r"C:\Windows\System32\wininit.exe",
        M,
        B,
        0.02,
        1.0,
        r"C:\Windows\system32\lsass.exe",
    ),
    t(
        r"C:\Windows\System32\dsa.msc",
        EXPLORER,
        U,
        I,
        0.1,
        1.0,
        r#""C:\Windows\system32\mmc.exe" "C:\Windows\system32\dsa.msc" "#,
    ),
];

/// The templates of a role: the common ones, then the role's own.
pub fn templates(role: Role) -> Vec<Template> {
    let own = match role {
        Role::Workstation => WORKSTATION,
        Role::Server => SERVER,
        Role::DomainController => DOMAIN_CONTROLLER,
    };
    COMMON.iter().chain(own).copied().collect()
}

/// The file name of a Windows path (the text after the last `\`).
pub fn file_name(path: &str) -> &str {
    path.rsplit('\\').next().unwrap_or(path)
}

/// Values a template can refer to.
pub struct Vars<'a> {
    /// The account's user name (without domain).
    pub user: &'a str,
    /// The host's short name.
    pub host: &'a str,
    /// The domain's NetBIOS name.
    pub domain: &'a str,
}

/// Fills a template; see the module documentation for the placeholders.
pub fn render(template: &str, vars: &Vars, rng: &mut ChaCha8Rng, out: &mut String) {
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else {
            out.push_str(&rest[open..]);
            return;
        };
        let name = &after[..close];
        match name {
            "guid" | "guidb" => {
                let v: u128 = rng.random();
                let (open, close) = if name == "guidb" {
                    ("{", "}")
                } else {
                    ("", "")
                };
                let h = format!("{v:032X}");
                out.push_str(&format!(
                    "{open}{}-{}-{}-{}-{}{close}",
                    &h[..8],
                    &h[8..12],
                    &h[12..16],
                    &h[16..20],
                    &h[20..]
                ));
            }
            "pid" => out.push_str(&format!("0x{:x}", rng.random_range(0x100u32..0x4000) * 4)),
            "hex8" => out.push_str(&format!("{:08x}", rng.random::<u32>())),
            "n" => out.push_str(&rng.random_range(1u32..9999).to_string()),
            "user" => out.push_str(vars.user),
            "host" => out.push_str(vars.host),
            "domain" => out.push_str(vars.domain),
            "tmp" => out.push_str(&format!("~DF{:04X}.tmp", rng.random::<u16>())),
            _ if name.starts_with("pick:") => {
                let options: Vec<&str> = name[5..].split('|').collect();
                let pick = options[rng.random_range(0..options.len())];
                // A picked option may itself hold placeholders.
                render(pick, vars, rng, out);
            }
            _ => {
                out.push('{');
                out.push_str(name);
                out.push('}');
            }
        }
        rest = &after[close + 1..];
    }
    out.push_str(rest);
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn renders_placeholders() {
        let vars = Vars {
            user: "jdoe",
            host: "WS-0001",
            domain: "CONTOSO",
        };
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut out = String::new();
        render(
            r"C:\Users\{user}\x {pick:a|b} /Processid:{guidb} {unknown}",
            &vars,
            &mut rng,
            &mut out,
        );
        assert!(out.starts_with(r"C:\Users\jdoe\x "), "{out}");
        assert!(
            out.contains("/Processid:{") && out.contains("} {unknown}") && !out.contains("}}"),
            "{out}"
        );
        assert_eq!(out.matches('-').count(), 4, "{out}");
        assert_eq!(file_name(r"C:\Windows\System32\cmd.exe"), "cmd.exe");
        assert!(templates(Role::Workstation).len() > templates(Role::DomainController).len());
    }
}

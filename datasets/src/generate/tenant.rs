//! A synthetic tenant: a domain with workstations, servers and domain controllers, their
//! users, admins and service accounts, and which processes each host runs how often.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::catalog::{Role, Template, Who, templates};

const FIRST: &[&str] = &[
    "james",
    "mary",
    "robert",
    "patricia",
    "john",
    "jennifer",
    "michael",
    "linda",
    "david",
    "elizabeth",
    "william",
    "barbara",
    "richard",
    "susan",
    "joseph",
    "jessica",
    "thomas",
    "sarah",
    "chris",
    "karen",
    "daniel",
    "lisa",
    "matthew",
    "nancy",
    "anthony",
    "betty",
    "mark",
    "sandra",
    "paul",
    "ashley",
    "steven",
    "kim",
    "andrew",
    "emily",
    "kenneth",
    "donna",
    "josh",
    "michelle",
];
const LAST: &[&str] = &[
    "smith",
    "johnson",
    "williams",
    "brown",
    "jones",
    "garcia",
    "miller",
    "davis",
    "rodriguez",
    "martinez",
    "hernandez",
    "lopez",
    "gonzalez",
    "wilson",
    "anderson",
    "thomas",
    "taylor",
    "moore",
    "jackson",
    "martin",
    "lee",
    "perez",
    "thompson",
    "white",
    "harris",
    "sanchez",
    "clark",
    "ramirez",
    "lewis",
    "robinson",
    "walker",
    "young",
    "allen",
    "king",
    "wright",
    "scott",
];

/// An account as it appears in events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// `DOMAIN\name`.
    pub name: String,
    /// The user part.
    pub user: String,
    /// `User` or `Machine`.
    pub account_type: &'static str,
    /// `SubjectLogonId` base (well-known ids for system accounts).
    pub logon_id: u64,
    /// `TokenElevationType`.
    pub elevation: &'static str,
}

/// A host and what runs on it.
#[derive(Debug, Clone)]
pub struct Host {
    /// Short name, e.g. `WS-0042`.
    pub name: String,
    /// The `Computer` value, e.g. `ws-0042.contoso.local`.
    pub computer: String,
    /// Role.
    pub role: Role,
    /// Relative activity.
    pub activity: f64,
    /// The machine account (index into [`Tenant::accounts`]).
    pub machine_account: usize,
    /// Interactive users of the host (indexes into [`Tenant::accounts`]).
    pub users: Vec<usize>,
    /// Templates this host runs, with cumulative weights for sampling.
    pub apps: Vec<(Template, f64)>,
}

/// The whole tenant.
#[derive(Debug, Clone)]
pub struct Tenant {
    /// NetBIOS domain, e.g. `CONTOSO`.
    pub domain: String,
    /// Every account.
    pub accounts: Vec<Account>,
    /// Every host.
    pub hosts: Vec<Host>,
    /// Admin accounts (indexes into `accounts`).
    pub admins: Vec<usize>,
    /// Index of `NT AUTHORITY\LOCAL SERVICE`.
    pub local_service: usize,
    /// Index of `NT AUTHORITY\NETWORK SERVICE`.
    pub network_service: usize,
}

impl Tenant {
    /// Builds a tenant of `hosts` hosts, the same for the same seed.
    pub fn new(hosts: usize, seed: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(1);
        let domain = "CONTOSO".to_string();
        let dns = "contoso.local";
        let mut tenant = Tenant {
            domain: domain.clone(),
            accounts: Vec::new(),
            hosts: Vec::new(),
            admins: Vec::new(),
            local_service: 0,
            network_service: 1,
        };
        tenant.accounts.push(system_account("LOCAL SERVICE", 0x3e5));
        tenant
            .accounts
            .push(system_account("NETWORK SERVICE", 0x3e4));
        let dcs = if hosts >= 3 { (hosts / 50).max(1) } else { 0 };
        let servers = if hosts >= 2 {
            (hosts * 15 / 100).max(1)
        } else {
            0
        };
        let workstations = hosts - dcs - servers;
        let mut used_names = std::collections::HashSet::new();
        let mut new_user = |rng: &mut ChaCha8Rng, prefix: &str| {
            let first = FIRST[rng.random_range(0..FIRST.len())];
            let last = LAST[rng.random_range(0..LAST.len())];
            let mut name = format!("{prefix}{}{last}", &first[..1]);
            let mut k = 1;
            while used_names.contains(&name) {
                k += 1;
                name = format!("{prefix}{}{last}{k}", &first[..1]);
            }
            used_names.insert(name.clone());
            name
        };
        let admins = (hosts / 40).clamp(2, 25);
        for _ in 0..admins {
            let user = new_user(&mut rng, "adm_");
            tenant.admins.push(tenant.accounts.len());
            tenant.accounts.push(Account {
                name: format!("{domain}\\{user}"),
                user,
                account_type: "User",
                logon_id: rng.random_range(0x10_0000..0xff_ffff),
                elevation: "%%1937",
            });
        }
        let roles = std::iter::repeat_n(Role::DomainController, dcs)
            .chain(std::iter::repeat_n(Role::Server, servers))
            .chain(std::iter::repeat_n(Role::Workstation, workstations));
        let (mut n_ws, mut n_srv, mut n_dc) = (0, 0, 0);
        for role in roles {
            let name = match role {
                Role::Workstation => {
                    n_ws += 1;
                    format!("WS-{n_ws:04}")
                }
                Role::Server => {
                    n_srv += 1;
                    let kind = ["APP", "FILE", "SQL", "WEB", "BKP"][n_srv % 5];
                    format!("SRV-{kind}{n_srv:02}")
                }
                Role::DomainController => {
                    n_dc += 1;
                    format!("DC{n_dc:02}")
                }
            };
            let machine_account = tenant.accounts.len();
            tenant.accounts.push(Account {
                name: format!("{domain}\\{name}$"),
                user: format!("{name}$"),
                account_type: "Machine",
                logon_id: 0x3e7,
                elevation: "%%1936",
            });
            let users = match role {
                Role::Workstation => {
                    let user = new_user(&mut rng, "");
                    let index = tenant.accounts.len();
                    tenant.accounts.push(Account {
                        name: format!("{domain}\\{user}"),
                        user,
                        account_type: "User",
                        logon_id: rng.random_range(0x10_0000..0xff_ffff),
                        elevation: "%%1938",
                    });
                    vec![index]
                }
                _ => {
                    // One or two admins look after each server.
                    let a = tenant.admins[rng.random_range(0..tenant.admins.len())];
                    let b = tenant.admins[rng.random_range(0..tenant.admins.len())];
                    if a == b { vec![a] } else { vec![a, b] }
                }
            };
            let activity = match role {
                Role::Workstation => 1.0,
                Role::Server => 2.5,
                Role::DomainController => 4.0,
            } * (0.5 + rng.random::<f64>());
            let mut apps = Vec::new();
            let mut total = 0.0;
            for template in templates(role) {
                if rng.random::<f64>() < template.prevalence {
                    // Log-normal-ish jitter: hosts of a role differ in how much they run.
                    let jitter = (rng.random::<f64>() * 2.0 - 1.0).exp();
                    total += template.weight * jitter;
                    apps.push((template, total));
                }
            }
            tenant.hosts.push(Host {
                computer: format!("{}.{dns}", name.to_lowercase()),
                name,
                role,
                activity,
                machine_account,
                users,
                apps,
            });
        }
        tenant
    }

    /// The account index for a template's `who` on `host`.
    pub fn account_for(&mut self, who: Who, host: usize, rng: &mut ChaCha8Rng) -> usize {
        match who {
            Who::Machine => self.hosts[host].machine_account,
            Who::LocalService => self.local_service,
            Who::NetworkService => self.network_service,
            Who::User => {
                let users = &self.hosts[host].users;
                users[rng.random_range(0..users.len())]
            }
            Who::Service(name) => self.service_account(name),
        }
    }

    /// The index of the service account `name`, created on first use.
    pub fn service_account(&mut self, name: &str) -> usize {
        let full = format!("{}\\{name}", self.domain);
        if let Some(i) = self.accounts.iter().position(|a| a.name == full) {
            return i;
        }
        self.accounts.push(Account {
            name: full,
            user: name.to_string(),
            account_type: "User",
            logon_id: 0x3e7 + 0x1000 + self.accounts.len() as u64,
            elevation: "%%1936",
        });
        self.accounts.len() - 1
    }
}

fn system_account(name: &str, logon_id: u64) -> Account {
    Account {
        name: format!("NT AUTHORITY\\{name}"),
        user: name.to_string(),
        account_type: "User",
        logon_id,
        elevation: "%%1936",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_has_every_role_and_is_deterministic() {
        let t = Tenant::new(100, 7);
        assert_eq!(t.hosts.len(), 100);
        assert_eq!(
            t.hosts
                .iter()
                .filter(|h| h.role == Role::DomainController)
                .count(),
            2
        );
        assert_eq!(
            t.hosts.iter().filter(|h| h.role == Role::Server).count(),
            15
        );
        assert!(
            t.hosts
                .iter()
                .all(|h| !h.apps.is_empty() && !h.users.is_empty())
        );
        let names: std::collections::HashSet<_> = t.accounts.iter().map(|a| &a.name).collect();
        assert_eq!(names.len(), t.accounts.len(), "account names are unique");
        let again = Tenant::new(100, 7);
        assert_eq!(again.accounts, t.accounts);
        assert_eq!(Tenant::new(1, 1).hosts[0].role, Role::Workstation);
    }
}

//! Harness for procforest's end-to-end tests: the real binaries as separate processes on
//! 127.0.0.1 with free ports (a scheduler, executors, the driver), Azurite for Azure Blob
//! storage, and small helpers to read what they wrote.

pub mod monitor;

use std::{
    fs::File,
    io::{Read, Write},
    net::{TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    time::{Duration, Instant},
};

/// Where the workspace's binaries are: next to the test executable's `deps/` folder.
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps/<test>");
    dir.to_path_buf()
}

/// The path of a workspace binary, checked to exist.
pub fn binary(name: &str) -> PathBuf {
    let path = bin_dir().join(name);
    assert!(
        path.is_file(),
        "{} is missing: `cargo test --workspace` builds it (the scheduler and executor \
         crates have integration tests for this reason)",
        path.display()
    );
    path
}

/// A free TCP port on 127.0.0.1, for a process to bind a moment later.
///
/// Taken below Linux's ephemeral range (32768–60999): a port the kernel handed out for
/// `bind(0)` could be taken by any outgoing connection before the process binds it, and
/// an executor that cannot bind never registers. Never the same port twice in one run.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const FIRST: u32 = 20_000;
    const COUNT: u32 = 12_000;
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    // Each run starts elsewhere, away from ports a previous run may still hold.
    let _ = NEXT.compare_exchange(
        u32::MAX,
        std::process::id() % COUNT,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    for _ in 0..COUNT {
        let port = (FIRST + NEXT.fetch_add(1, Ordering::SeqCst) % COUNT) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port in {FIRST}..{}", FIRST + COUNT)
}

/// Starts a process with `start(port, extra ports)` on ports [`free_port`] found, and waits
/// until `ready(port)`. A port can still be taken between the check and the process's
/// bind (by another test run): a process that exits before it is ready is started again
/// on other ports, up to five times.
pub fn start_on_free_ports(
    start: impl Fn(u16, [u16; 2]) -> Process,
    ready: impl Fn(u16) -> bool,
) -> (Process, u16) {
    let mut exits = Vec::new();
    for _ in 0..5 {
        let port = free_port();
        let mut process = start(port, [free_port(), free_port()]);
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline && process.running() {
            if ready(port) {
                return (process, port);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(
            !process.running(),
            "not ready on {port} after 60 s: {}",
            process.log_text()
        );
        exits.push(process.log_text());
    }
    panic!(
        "the process exited five times before it was ready:\n{}",
        exits.join("\n---\n")
    )
}

/// A minimal HTTP/1.1 GET on loopback; returns status and body.
pub fn http_get(port: u16, path: &str) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_string()
    };
    Ok((status, body))
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// A child process killed when dropped; its output goes to a log file.
pub struct Process {
    child: Option<Child>,
    /// Its log file.
    pub log: PathBuf,
}

impl Process {
    /// Starts `program` with `args` and `env`, logging to `log`.
    pub fn start(program: &Path, args: &[String], env: &[(String, String)], log: PathBuf) -> Self {
        let file = File::create(&log).expect("log file");
        let mut command = Command::new(program);
        command
            .args(args)
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log file"))
            .stderr(file);
        for (k, v) in env {
            command.env(k, v);
        }
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", program.display()));
        Self {
            child: Some(child),
            log,
        }
    }

    /// Kills it with SIGKILL and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Whether it is still running.
    pub fn running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => c.try_wait().map(|s| s.is_none()).unwrap_or(false),
            None => false,
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One executor of a [`Cluster`].
pub struct Executor {
    /// The process.
    pub process: Process,
    /// Its `--work-dir` (shuffle files land here).
    pub work_dir: PathBuf,
    /// Its health port.
    pub health_port: u16,
}

/// A scheduler and executors on loopback.
pub struct Cluster {
    /// The scheduler.
    pub scheduler: Process,
    /// Its port.
    pub port: u16,
    /// The executors.
    pub executors: Vec<Executor>,
}

impl Cluster {
    /// Starts a scheduler and `executors` executors under `dir`, with `env` for every
    /// process (e.g. storage credentials), and waits until all executors registered.
    pub fn start(dir: &Path, executors: usize, env: &[(String, String)]) -> Self {
        let (scheduler, port) = start_on_free_ports(
            |port, _| Self::start_scheduler(dir, port, env),
            |port| TcpStream::connect(("127.0.0.1", port)).is_ok(),
        );
        let mut cluster = Cluster {
            scheduler,
            port,
            executors: Vec::new(),
        };
        for i in 0..executors {
            cluster.add_executor(dir, i, env);
        }
        cluster.wait_for_executors(executors, Duration::from_secs(60));
        cluster
    }

    fn start_scheduler(dir: &Path, port: u16, env: &[(String, String)]) -> Process {
        let s = |v: &str| v.to_string();
        Process::start(
            &binary("procforest-scheduler"),
            &[
                s("--bind-host"),
                s("127.0.0.1"),
                s("--external-host"),
                s("127.0.0.1"),
                s("--bind-port"),
                port.to_string(),
                // Notice a lost executor within seconds, not minutes.
                s("--executor-timeout-seconds"),
                s("6"),
                s("--expire-dead-executor-interval-seconds"),
                s("1"),
            ],
            env,
            dir.join("scheduler.log"),
        )
    }

    fn add_executor(&mut self, dir: &Path, i: usize, env: &[(String, String)]) {
        let work_dir = dir.join(format!("executor-{i}"));
        std::fs::create_dir_all(&work_dir).unwrap();
        let scheduler_port = self.port;
        // Ready once it has a heartbeat: its Flight port is bound and it is registered.
        let (process, health_port) = start_on_free_ports(
            |health, [flight, grpc]| {
                let ports = [flight, grpc, health];
                Self::start_executor(dir, i, &work_dir, ports, scheduler_port, env)
            },
            |health| matches!(http_get(health, "/readyz"), Ok((200, _))),
        );
        self.executors.push(Executor {
            process,
            work_dir,
            health_port,
        });
    }

    fn start_executor(
        dir: &Path,
        i: usize,
        work_dir: &Path,
        [flight, grpc, health]: [u16; 3],
        scheduler_port: u16,
        env: &[(String, String)],
    ) -> Process {
        let s = |v: &str| v.to_string();
        Process::start(
            &binary("procforest-executor"),
            &[
                s("--bind-host"),
                s("127.0.0.1"),
                s("--external-host"),
                s("127.0.0.1"),
                s("--bind-port"),
                flight.to_string(),
                s("--bind-grpc-port"),
                grpc.to_string(),
                s("--bind-health-port"),
                health.to_string(),
                s("--scheduler-host"),
                s("127.0.0.1"),
                s("--scheduler-port"),
                scheduler_port.to_string(),
                s("--work-dir"),
                work_dir.display().to_string(),
                s("--vcores"),
                s("2"),
                s("--executor-heartbeat-interval-seconds"),
                s("1"),
            ],
            env,
            dir.join(format!("executor-{i}.log")),
        )
    }

    /// Waits until `n` executors are registered with the scheduler.
    pub fn wait_for_executors(&self, n: usize, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok((200, body)) = http_get(self.port, "/api/executors")
                && serde_json::from_str::<serde_json::Value>(&body)
                    .ok()
                    .and_then(|v| v.as_array().map(Vec::len))
                    == Some(n)
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{n} executors did not register; scheduler log:\n{}",
                self.scheduler.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `df://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("df://127.0.0.1:{}", self.port)
    }

    /// Jobs the scheduler knows, as JSON.
    pub fn jobs(&self) -> Vec<serde_json::Value> {
        http_get(self.port, "/api/jobs")
            .ok()
            .and_then(|(_, body)| serde_json::from_str::<serde_json::Value>(&body).ok())
            .and_then(|v| v.as_array().cloned())
            .unwrap_or_default()
    }
}

/// Azurite's Blob service on a free loopback port, with its data under a folder.
pub struct Azurite {
    _process: Process,
    /// The Blob port.
    pub port: u16,
}

/// The well-known Azurite account.
pub const AZURITE_ACCOUNT: &str = "devstoreaccount1";
/// The well-known Azurite account key (public, documented by Microsoft).
pub const AZURITE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

impl Azurite {
    /// Starts `azurite-blob` (from `AZURITE_BLOB`, the npm cache `.ci/run` fills, or PATH).
    pub fn start(dir: &Path) -> Self {
        Self::start_with_accounts(dir, &[])
    }

    /// [`Self::start`], with more storage accounts beside Azurite's own (each with the
    /// same well-known key), for URLs that name their account.
    pub fn start_with_accounts(dir: &Path, accounts: &[&str]) -> Self {
        let accounts: Vec<String> = std::iter::once(AZURITE_ACCOUNT)
            .chain(accounts.iter().copied())
            .map(|account| format!("{account}:{AZURITE_KEY}"))
            .collect();
        let accounts = [("AZURITE_ACCOUNTS".to_string(), accounts.join(";"))];
        let program = std::env::var_os("AZURITE_BLOB")
            .map(PathBuf::from)
            .or_else(|| {
                let cached =
                    dirs_home()?.join(".cache/procforest/npm/node_modules/.bin/azurite-blob");
                cached.is_file().then_some(cached)
            })
            .unwrap_or_else(|| PathBuf::from("azurite-blob"));
        assert!(
            program.is_file() || on_path(&program),
            "Azurite is missing ({}): install it with `npm install --prefix \
             ~/.cache/procforest/npm azurite@3` (as .ci/run does) or set AZURITE_BLOB",
            program.display()
        );
        let location = dir.join("azurite");
        std::fs::create_dir_all(&location).unwrap();
        let start = |port: u16, _| {
            let args = [
                "--blobHost".into(),
                "127.0.0.1".into(),
                "--blobPort".into(),
                port.to_string(),
                "--location".into(),
                location.display().to_string(),
                "--disableTelemetry".into(),
                "--skipApiVersionCheck".into(),
                "--loose".into(),
            ];
            Process::start(&program, &args, &accounts, dir.join("azurite.log"))
        };
        let listening = |port| TcpStream::connect(("127.0.0.1", port)).is_ok();
        let (process, port) = start_on_free_ports(start, listening);
        Self {
            _process: process,
            port,
        }
    }

    /// The environment that points procforest's processes at this Azurite.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("AZURE_STORAGE_USE_EMULATOR".into(), "true".into()),
            (
                "AZURITE_BLOB_STORAGE_URL".into(),
                format!("http://127.0.0.1:{}", self.port),
            ),
        ]
    }

    /// Sends a bodiless request signed with the account's shared key; returns the whole
    /// response.
    fn signed_request(&self, verb: &str, path_and_query: &str) -> String {
        self.signed_request_as(AZURITE_ACCOUNT, verb, path_and_query)
    }

    /// [`Self::signed_request`] in another of its accounts.
    fn signed_request_as(&self, account: &str, verb: &str, path_and_query: &str) -> String {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        let date = httpdate_now();
        let path = format!("/{account}/{path_and_query}");
        let signature = shared_key_signature(account, verb, &date, &path);
        write!(
            stream,
            "{verb} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nx-ms-date: {date}\r\nx-ms-version: 2021-08-06\r\n\
             Authorization: SharedKey {account}:{signature}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.port
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        response
    }

    /// Creates a container (delta-rs does not).
    pub fn create_container(&self, name: &str) {
        self.create_container_in(AZURITE_ACCOUNT, name);
    }

    /// Creates a container in one of its accounts.
    pub fn create_container_in(&self, account: &str, name: &str) {
        let response = self.signed_request_as(account, "PUT", &format!("{name}?restype=container"));
        assert!(
            response.starts_with("HTTP/1.1 201"),
            "creating container {name}: {response}"
        );
    }

    /// The text of a blob.
    pub fn get_blob(&self, container: &str, name: &str) -> String {
        let response = self.signed_request("GET", &format!("{container}/{name}"));
        assert!(
            response.starts_with("HTTP/1.1 200"),
            "reading {container}/{name}: {response}"
        );
        let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
        match head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked")
        {
            true => dechunk(body),
            false => body.to_string(),
        }
    }

    /// The names of the blobs in a container (the first page of a listing, up to 5000).
    pub fn list_blobs(&self, container: &str) -> Vec<String> {
        self.list_blobs_in(AZURITE_ACCOUNT, container)
    }

    /// [`Self::list_blobs`] in one of its accounts.
    pub fn list_blobs_in(&self, account: &str, container: &str) -> Vec<String> {
        let query = format!("{container}?comp=list&restype=container");
        let response = self.signed_request_as(account, "GET", &query);
        assert!(
            response.starts_with("HTTP/1.1 200"),
            "listing container {container}: {response}"
        );
        response
            .split("<Name>")
            .skip(1)
            .filter_map(|rest| rest.split_once("</Name>").map(|(name, _)| name.to_string()))
            .collect()
    }
}

/// Whether a bare program name is found on PATH.
fn on_path(program: &Path) -> bool {
    program.components().count() == 1
        && std::env::var_os("PATH")
            .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

/// The Python interpreter the tests' Python checks run with — `PROCFOREST_PYTHON`, the
/// virtual environment `.ci/run` makes (`~/.cache/procforest/venv`), or `python3` —
/// checked to import `modules`; a missing one fails with the commands that install it.
pub fn python(modules: &[&str]) -> PathBuf {
    let python = std::env::var_os("PROCFOREST_PYTHON")
        .map(PathBuf::from)
        .or_else(|| {
            let venv = dirs_home()?.join(".cache/procforest/venv/bin/python");
            venv.is_file().then_some(venv)
        })
        .unwrap_or_else(|| PathBuf::from("python3"));
    let imports = format!("import {}", modules.join(", "));
    let found = Command::new(&python)
        .args(["-c", &imports])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "{} cannot `{imports}`: make the tests' virtual environment with `python3 -m venv \
         ~/.cache/procforest/venv && ~/.cache/procforest/venv/bin/pip install -r \
         tests/requirements.txt` (as .ci/run does) or set PROCFOREST_PYTHON",
        python.display()
    );
    python
}

fn dirs_home() -> Option<PathBuf> {
    std::env::var_os("HOME").map(PathBuf::from)
}

fn httpdate_now() -> String {
    let out = Command::new("date")
        .args(["-u", "+%a, %d %b %Y %H:%M:%S GMT"])
        .output()
        .expect("date");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// SharedKey signature for a bodiless request with only x-ms-date and x-ms-version.
fn shared_key_signature(account: &str, verb: &str, date: &str, path_and_query: &str) -> String {
    use base64::Engine;
    let (path, query) = path_and_query
        .split_once('?')
        .unwrap_or((path_and_query, ""));
    let mut canonical_resource = format!("/{account}{path}");
    let mut params: Vec<(String, String)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (k.to_lowercase(), v.to_string())
        })
        .collect();
    params.sort();
    for (k, v) in params {
        canonical_resource.push_str(&format!("\n{k}:{v}"));
    }
    let string_to_sign = format!(
        "{verb}\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:{date}\nx-ms-version:2021-08-06\n{canonical_resource}"
    );
    let key = base64::engine::general_purpose::STANDARD
        .decode(AZURITE_KEY)
        .unwrap();
    base64::engine::general_purpose::STANDARD.encode(hmac_sha256(&key, string_to_sign.as_bytes()))
}

/// HMAC-SHA256 (RFC 2104).
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| block.iter().map(|b| b ^ byte).collect::<Vec<u8>>();
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(message)
        .finalize();
    let outer = Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize();
    outer.into()
}

/// Runs the `procforest` driver with extra environment.
pub fn procforest(args: &[&str], env: &[(String, String)]) -> Output {
    let mut command = Command::new(binary("procforest"));
    command.args(args).env("PROCFOREST_LOG", "warn");
    for (k, v) in env {
        command.env(k, v);
    }
    command.output().expect("running procforest")
}

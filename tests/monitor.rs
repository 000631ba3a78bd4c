//! A loopback stand-in for Azure Monitor's Logs Ingestion API and Entra ID's token
//! endpoint, speaking their protocol, with fault injection.
//!
//! Upload: `POST /dataCollectionRules/{dcr}/streams/{stream}?api-version=2023-01-01` with a
//! bearer token it issued, `Content-Type: application/json`, optionally `Content-Encoding:
//! gzip` (recorded: procforest always compresses), a JSON array of at most [`MAX_BODY_BYTES`]
//! both on the wire and uncompressed (else 413) whose records have exactly the stream's
//! columns with the right types (else 400 `InvalidStreamData`); success is 204. A retry that
//! comes before the `Retry-After` the stand-in gave its request id is throttled again and
//! recorded as early. Tokens:
//! `POST /{tenant}/oauth2/v2.0/token`, client credentials with a client secret or a federated
//! client assertion; a managed identity's `GET /msi/token` as App Service's identity
//! endpoint serves it (`X-IDENTITY-HEADER`, `resource`, optional `client_id`). Errors are
//! `{"error":{"code","message"}}` as the service writes them. The fake does not
//! deduplicate, like the service.
//!
//! [`FakeMonitor::start_https`] serves the same over TLS, with a certificate for
//! `localhost` from a test certificate authority: the Azure SDK's credentials talk only to
//! https authorities.

use std::{
    collections::{HashMap, VecDeque},
    io::{BufRead, BufReader, Read, Write},
    net::{TcpListener, TcpStream},
    sync::{Arc, Mutex},
    thread,
    time::{Duration, Instant},
};

/// Column types of the stream.
pub const COLUMNS: &[(&str, &str)] = &[
    ("TimeGenerated", "datetime"),
    ("TimeStamp", "datetime"),
    ("User", "string"),
    ("Resource", "string"),
    ("AnomalyScore", "real"),
    ("Interval", "datetime"),
    ("Computer", "string"),
    ("Account", "string"),
    ("AccountType", "string"),
    ("Process", "string"),
    ("CommandLines", "string"),
    ("EventCount", "long"),
    ("Score", "real"),
    ("RunId", "string"),
    ("RecordId", "string"),
    ("ModelHash", "string"),
    ("Explanation", "string"),
    ("Evidence", "string"),
];

/// The largest body accepted, compressed or not: the service's documented 1 MB per call,
/// read as 1 MiB. procforest keeps every body under 1,000,000 bytes (asserted by the
/// tests).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// What to do to the next upload request.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Answer with this status, extra headers and body, ingesting nothing.
    Status(u16, Vec<(String, String)>, String),
    /// Close the connection without answering (nothing ingested).
    Reset,
    /// Wait this long before answering 503 (a front door timing out; nothing ingested).
    Slow(Duration),
    /// Forget every issued token before checking this request (tokens expired mid-run).
    ExpireTokens,
    /// Handle the request as usual (ingesting a valid body), then close the connection
    /// without answering: the service accepted it but the response was lost.
    LoseResponse,
}

/// One upload request as the fake saw it.
#[derive(Debug, Clone)]
pub struct Upload {
    /// `x-ms-client-request-id`.
    pub request_id: String,
    /// The status answered (0: connection reset).
    pub status: u16,
    /// RecordIds in the body (when it could be read).
    pub record_ids: Vec<String>,
    /// Uncompressed body size.
    pub body_bytes: usize,
    /// Whether the body came gzip-compressed.
    pub gzip: bool,
    /// Whether it came before the `Retry-After` given to its request id ran out.
    pub early: bool,
}

#[derive(Default)]
struct State {
    faults: VecDeque<Fault>,
    accepted: Vec<serde_json::Value>,
    uploads: Vec<Upload>,
    tokens: HashMap<String, Instant>,
    token_requests: Vec<String>,
    /// Per request id, when a retry may come (from the last `Retry-After` given).
    not_before: HashMap<String, Instant>,
}

/// The fake; runs until dropped (its listener thread is detached and stops with the test).
pub struct FakeMonitor {
    /// Its port on 127.0.0.1.
    pub port: u16,
    state: Arc<Mutex<State>>,
    /// The test certificate authority's certificate (PEM) when it serves TLS.
    ca_pem: Option<String>,
}

/// Credentials the fake accepts.
pub const TENANT: &str = "00000000-0000-0000-0000-0000000000aa";
/// Client id.
pub const CLIENT_ID: &str = "00000000-0000-0000-0000-0000000000bb";
/// Client secret.
pub const CLIENT_SECRET: &str = "fake-secret-Zq8vPp2Lw";
/// Federated token (the projected service account token).
pub const FEDERATED_TOKEN: &str = "eyJhbGciOiJSUzI1NiJ9.fake-federated-token.sig";
/// The DCR immutable id.
pub const DCR: &str = "dcr-00000000000000000000000000000000";
/// The stream.
pub const STREAM: &str = "Custom-ProcforestAnomalies_CL";
/// The secret a managed identity endpoint expects in `X-IDENTITY-HEADER` (App Service's
/// `IDENTITY_HEADER`).
pub const IDENTITY_HEADER: &str = "fake-identity-header-7Hq";

impl FakeMonitor {
    /// Starts the fake on plain http; tokens it issues live `token_lifetime`.
    pub fn start(token_lifetime: Duration) -> Self {
        Self::serve(token_lifetime, None)
    }

    /// Starts the fake on https, with a new test certificate authority
    /// ([`Self::ca_pem`]).
    pub fn start_https(token_lifetime: Duration) -> Self {
        let (ca_pem, config) = test_tls();
        let mut fake = Self::serve(token_lifetime, Some(config));
        fake.ca_pem = Some(ca_pem);
        fake
    }

    fn serve(token_lifetime: Duration, tls: Option<Arc<rustls::ServerConfig>>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (state, tls) = (shared.clone(), tls.clone());
                thread::spawn(move || {
                    let _ = match tls {
                        None => handle(stream, &state, token_lifetime),
                        Some(config) => rustls::ServerConnection::new(config)
                            .map_err(std::io::Error::other)
                            .and_then(|tls| {
                                let stream = rustls::StreamOwned::new(tls, stream);
                                handle(stream, &state, token_lifetime)
                            }),
                    };
                });
            }
        });
        Self {
            port,
            state,
            ca_pem: None,
        }
    }

    /// The test certificate authority's certificate, PEM, for `SSL_CERT_FILE` (https only).
    pub fn ca_pem(&self) -> Option<&str> {
        self.ca_pem.as_deref()
    }

    /// Queues faults for the next upload requests, in order.
    pub fn inject(&self, faults: impl IntoIterator<Item = Fault>) {
        self.state.lock().unwrap().faults.extend(faults);
    }

    /// Records accepted so far.
    pub fn accepted(&self) -> Vec<serde_json::Value> {
        self.state.lock().unwrap().accepted.clone()
    }

    /// Accepted RecordIds with how often each arrived.
    pub fn accepted_ids(&self) -> HashMap<String, usize> {
        let mut out = HashMap::new();
        for r in self.accepted() {
            *out.entry(r["RecordId"].as_str().unwrap_or("").to_string())
                .or_default() += 1;
        }
        out
    }

    /// Upload requests so far.
    pub fn uploads(&self) -> Vec<Upload> {
        self.state.lock().unwrap().uploads.clone()
    }

    /// Token requests so far (grant kinds).
    pub fn token_requests(&self) -> Vec<String> {
        self.state.lock().unwrap().token_requests.clone()
    }

    /// `http://127.0.0.1:<port>`, or `https://localhost:<port>` (the certificate's name).
    pub fn url(&self) -> String {
        match self.ca_pem {
            None => format!("http://127.0.0.1:{}", self.port),
            Some(_) => format!("https://localhost:{}", self.port),
        }
    }
}

/// A connection the fake answers: plain TCP, or TLS over it.
trait Conn: Read + Write {
    /// Closes it without answering.
    fn close(&mut self) -> std::io::Result<()>;
}

impl Conn for TcpStream {
    fn close(&mut self) -> std::io::Result<()> {
        self.shutdown(std::net::Shutdown::Both)
    }
}

impl Conn for rustls::StreamOwned<rustls::ServerConnection, TcpStream> {
    fn close(&mut self) -> std::io::Result<()> {
        self.sock.shutdown(std::net::Shutdown::Both)
    }
}

/// A new test certificate authority (its certificate as PEM) and a server configuration
/// with a certificate it signed for `localhost` and 127.0.0.1.
fn test_tls() -> (String, Arc<rustls::ServerConfig>) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "procforest test CA");
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
    let leaf = CertificateParams::new(names)
        .unwrap()
        .signed_by(&key, &ca, &ca_key)
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf.der().clone(), ca.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
        .unwrap();
    (ca.pem(), Arc::new(config))
}

struct Request {
    method: String,
    target: String,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

fn read_request(stream: &mut impl Read) -> std::io::Result<Request> {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let target = parts.next().unwrap_or("").to_string();
    let mut headers = HashMap::new();
    loop {
        let mut h = String::new();
        reader.read_line(&mut h)?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_lowercase(), v.trim().to_string());
        }
    }
    let len: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    reader.read_exact(&mut body)?;
    Ok(Request {
        method,
        target,
        headers,
        body,
    })
}

fn respond(
    stream: &mut impl Write,
    status: u16,
    headers: &[(String, String)],
    body: &str,
) -> std::io::Result<()> {
    let reason = match status {
        200 => "OK",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        408 => "Request Timeout",
        413 => "Payload Too Large",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Status",
    };
    let mut out = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    if !body.is_empty() {
        out.push_str("Content-Type: application/json\r\n");
    }
    for (k, v) in headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str("\r\n");
    out.push_str(body);
    stream.write_all(out.as_bytes())?;
    stream.flush()
}

fn error(code: &str, message: &str) -> String {
    serde_json::json!({"error": {"code": code, "message": message}}).to_string()
}

fn handle(
    mut stream: impl Conn,
    state: &Arc<Mutex<State>>,
    lifetime: Duration,
) -> std::io::Result<()> {
    let request = read_request(&mut stream)?;
    if request.method == "POST" && request.target.contains("/oauth2/v2.0/token") {
        return token(&mut stream, &request, state, lifetime);
    }
    if request.method == "GET" && request.target.starts_with("/msi/token?") {
        return managed_identity_token(&mut stream, &request, state, lifetime);
    }
    let request_id = request
        .headers
        .get("x-ms-client-request-id")
        .cloned()
        .unwrap_or_default();
    let gzip = request.headers.get("content-encoding").map(String::as_str) == Some("gzip");
    let log = |status: u16, ids: Vec<String>, bytes: usize, early: bool| {
        state.lock().unwrap().uploads.push(Upload {
            request_id: request_id.clone(),
            status,
            record_ids: ids,
            body_bytes: bytes,
            gzip,
            early,
        });
    };
    let throttled_until = state.lock().unwrap().not_before.get(&request_id).copied();
    if let Some(wait) = throttled_until.and_then(|t| t.checked_duration_since(Instant::now())) {
        log(429, vec![], 0, true);
        let seconds = wait.as_secs() + 1;
        let headers = [("Retry-After".to_string(), seconds.to_string())];
        return respond(
            &mut stream,
            429,
            &headers,
            &error("TooManyRequests", "early"),
        );
    }
    let fault = state.lock().unwrap().faults.pop_front();
    let mut lose_response = false;
    match fault {
        Some(Fault::Status(status, headers, body)) => {
            if let Some(wait) = retry_after(&headers) {
                let until = Instant::now() + wait;
                state
                    .lock()
                    .unwrap()
                    .not_before
                    .insert(request_id.clone(), until);
            }
            log(status, vec![], 0, false);
            return respond(&mut stream, status, &headers, &body);
        }
        Some(Fault::Reset) => {
            log(0, vec![], 0, false);
            return stream.close();
        }
        Some(Fault::Slow(d)) => {
            thread::sleep(d);
            log(503, vec![], 0, false);
            return respond(&mut stream, 503, &[], &error("ServiceUnavailable", "slow"));
        }
        Some(Fault::ExpireTokens) => state.lock().unwrap().tokens.clear(),
        Some(Fault::LoseResponse) => lose_response = true,
        None => {}
    }
    let (status, body) = match ingest(&request, state) {
        Ok((records, bytes)) => {
            let ids = records
                .iter()
                .map(|r| r["RecordId"].as_str().unwrap_or("").to_string())
                .collect();
            log(204, ids, bytes, false);
            state.lock().unwrap().accepted.extend(records);
            (204, String::new())
        }
        Err((status, bytes, body)) => {
            log(status, vec![], bytes, false);
            (status, body)
        }
    };
    if lose_response {
        return stream.close();
    }
    respond(&mut stream, status, &[], &body)
}

/// The records of a valid upload and its uncompressed size, or the status, uncompressed size
/// and error body the service answers.
fn ingest(
    request: &Request,
    state: &Arc<Mutex<State>>,
) -> Result<(Vec<serde_json::Value>, usize), (u16, usize, String)> {
    let expected = format!("/dataCollectionRules/{DCR}/streams/{STREAM}?api-version=2023-01-01");
    if request.method != "POST" || request.target != expected {
        return Err((404, 0, error("NotFound", "no such rule or stream")));
    }
    let bearer = request
        .headers
        .get("authorization")
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    let valid = state
        .lock()
        .unwrap()
        .tokens
        .get(bearer)
        .is_some_and(|exp| Instant::now() < *exp);
    if !valid {
        let message = "the token is missing, invalid or expired";
        return Err((401, 0, error("InvalidToken", message)));
    }
    if request.headers.get("content-type").map(String::as_str) != Some("application/json") {
        let message = "expected application/json";
        return Err((400, 0, error("InvalidContentType", message)));
    }
    let too_large = |bytes: usize| {
        let message = "more than 1 MB";
        (413, bytes, error("ContentLengthLimitExceeded", message))
    };
    if request.body.len() > MAX_BODY_BYTES {
        return Err(too_large(request.body.len()));
    }
    let body = match request.headers.get("content-encoding").map(String::as_str) {
        Some("gzip") => {
            let mut out = Vec::new();
            // One byte past the limit is enough to refuse.
            let limit = MAX_BODY_BYTES as u64 + 1;
            let decoder = flate2::read::GzDecoder::new(&request.body[..]);
            if decoder.take(limit).read_to_end(&mut out).is_err() {
                return Err((400, 0, error("InvalidContentEncoding", "not gzip")));
            }
            out
        }
        None => request.body.clone(),
        Some(other) => return Err((400, 0, error("InvalidContentEncoding", other))),
    };
    if body.len() > MAX_BODY_BYTES {
        return Err(too_large(body.len()));
    }
    let records = match serde_json::from_slice::<serde_json::Value>(&body) {
        Ok(serde_json::Value::Array(a)) => a,
        _ => {
            let message = "expected a JSON array";
            return Err((400, body.len(), error("InvalidJson", message)));
        }
    };
    if let Err(problem) = records.iter().try_for_each(check_record) {
        return Err((400, body.len(), error("InvalidStreamData", &problem)));
    }
    Ok((records, body.len()))
}

/// The wait a throttling answer asks for, as the service writes it.
fn retry_after(headers: &[(String, String)]) -> Option<Duration> {
    headers.iter().find_map(|(k, v)| {
        let v: u64 = v.trim().parse().ok()?;
        match k.to_lowercase().as_str() {
            "retry-after" => Some(Duration::from_secs(v)),
            "retry-after-ms" | "x-ms-retry-after-ms" => Some(Duration::from_millis(v)),
            _ => None,
        }
    })
}

/// Each record must have exactly the stream's columns, with values of the column's type.
fn check_record(record: &serde_json::Value) -> Result<(), String> {
    let object = record.as_object().ok_or("a record is not an object")?;
    for key in object.keys() {
        if !COLUMNS.iter().any(|(c, _)| c == key) {
            return Err(format!("unknown column {key}"));
        }
    }
    for (column, kind) in COLUMNS {
        let v = object
            .get(*column)
            .ok_or_else(|| format!("missing column {column}"))?;
        let ok = match *kind {
            "string" => v.is_string(),
            "real" => v.is_number(),
            "long" => v.is_i64() || v.is_u64(),
            "datetime" => v.as_str().is_some_and(chrono_like),
            _ => false,
        };
        if !ok {
            return Err(format!("column {column} is not a {kind}: {v}"));
        }
    }
    Ok(())
}

/// An ISO 8601 / RFC 3339 date-time such as 2026-11-27T00:00:00Z.
fn chrono_like(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 20
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && (s.ends_with('Z') || s.contains('+'))
}

fn token(
    stream: &mut impl Write,
    request: &Request,
    state: &Arc<Mutex<State>>,
    lifetime: Duration,
) -> std::io::Result<()> {
    let form: HashMap<String, String> = String::from_utf8_lossy(&request.body)
        .split('&')
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| (decode(k), decode(v)))
        .collect();
    let tenant_ok = request.target.starts_with(&format!("/{TENANT}/"));
    let scope_ok =
        form.get("scope").map(String::as_str) == Some("https://monitor.azure.com/.default");
    let client_ok = form.get("client_id").map(String::as_str) == Some(CLIENT_ID)
        && form.get("grant_type").map(String::as_str) == Some("client_credentials");
    let secret_ok = form.get("client_secret").map(String::as_str) == Some(CLIENT_SECRET);
    let assertion_ok = form.get("client_assertion_type").map(String::as_str)
        == Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
        && form.get("client_assertion").map(String::as_str) == Some(FEDERATED_TOKEN);
    let kind = if assertion_ok {
        "federated"
    } else if secret_ok {
        "secret"
    } else {
        "invalid"
    };
    state.lock().unwrap().token_requests.push(kind.to_string());
    if !(tenant_ok && scope_ok && client_ok && (secret_ok || assertion_ok)) {
        let body = serde_json::json!({"error": "invalid_client", "error_description": "AADSTS7000215: Invalid client credentials."}).to_string();
        return respond(stream, 401, &[], &body);
    }
    let body = serde_json::json!({
        "token_type": "Bearer",
        "expires_in": lifetime.as_secs(),
        "ext_expires_in": lifetime.as_secs(),
        "access_token": issue(state, lifetime),
    })
    .to_string();
    respond(stream, 200, &[], &body)
}

/// A new bearer token, valid `lifetime`.
fn issue(state: &Arc<Mutex<State>>, lifetime: Duration) -> String {
    let token = format!("tok-{:x}", rand_u64());
    state
        .lock()
        .unwrap()
        .tokens
        .insert(token.clone(), Instant::now() + lifetime);
    token
}

/// A managed identity's token, as App Service's identity endpoint answers (the Azure SDK's
/// `ManagedIdentityCredential` with `IDENTITY_ENDPOINT` and `IDENTITY_HEADER` set).
fn managed_identity_token(
    stream: &mut impl Write,
    request: &Request,
    state: &Arc<Mutex<State>>,
    lifetime: Duration,
) -> std::io::Result<()> {
    let query: HashMap<String, String> = request.target["/msi/token?".len()..]
        .split('&')
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| (decode(k), decode(v)))
        .collect();
    let header_ok =
        request.headers.get("x-identity-header").map(String::as_str) == Some(IDENTITY_HEADER);
    let request_ok = query.get("api-version").map(String::as_str) == Some("2019-08-01")
        && query.get("resource").map(String::as_str) == Some("https://monitor.azure.com")
        && query.get("client_id").is_none_or(|id| id == CLIENT_ID);
    let kind = if header_ok && request_ok {
        "managed-identity"
    } else {
        "invalid"
    };
    state.lock().unwrap().token_requests.push(kind.to_string());
    if !header_ok {
        let body = error("Unauthorized", "missing or wrong X-IDENTITY-HEADER");
        return respond(stream, 401, &[], &body);
    }
    if !request_ok {
        let body = serde_json::json!({"error": "invalid_request", "error_description": "Identity not found"}).to_string();
        return respond(stream, 400, &[], &body);
    }
    let expires_on = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        + lifetime;
    let body = serde_json::json!({
        "access_token": issue(state, lifetime),
        "expires_on": expires_on.as_secs().to_string(),
        "resource": "https://monitor.azure.com",
        "token_type": "Bearer",
        "client_id": CLIENT_ID,
    })
    .to_string();
    respond(stream, 200, &[], &body)
}

fn decode(s: &str) -> String {
    let s = s.replace('+', " ");
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(Instant::now().elapsed().as_nanos());
    h.finish()
}

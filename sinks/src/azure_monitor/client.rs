//! The Logs Ingestion API client: one request id per chunk (kept across its retries),
//! gzip bodies, retries of 408/429/5xx (not 501/505) honouring `Retry-After`,
//! `retry-after-ms` and `x-ms-retry-after-ms`, capped exponential backoff with jitter
//! within a total time bound, splitting on 413, one token refresh on 401, and a stop with
//! the service's error on 400/403/404.

use std::{
    collections::VecDeque,
    io::Write,
    sync::Arc,
    time::{Duration, Instant},
};

use flate2::{Compression, write::GzEncoder};
use rand::Rng;
use reqwest::{StatusCode, header::HeaderMap};

use super::{
    MonitorRecord, MonitorSettings,
    chunks::{Chunk, MAX_BODY_BYTES, pack},
    tokens::{self, TokenProvider},
};
use crate::error::{Result, SinkError};

/// Backoff bounds.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// First backoff.
    pub base: Duration,
    /// Longest single wait.
    pub cap: Duration,
    /// Bound on the whole delivery.
    pub max_time: Duration,
}

/// What a delivery achieved.
#[derive(Debug, Default)]
pub struct Delivery {
    /// RecordIds the service accepted.
    pub delivered: Vec<String>,
    /// Records not delivered, with why.
    pub undelivered: Vec<(MonitorRecord, String)>,
}

/// The client.
pub struct MonitorClient {
    http: reqwest::Client,
    url: url::Url,
    tokens: Arc<dyn TokenProvider>,
    policy: RetryPolicy,
}

enum Outcome {
    Delivered,
    TooLarge,
    /// Not delivered; `stop` means the service refused and nothing more should be sent.
    Failed {
        reason: String,
        stop: bool,
    },
}

fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let number = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|v| *v >= 0.0)
    };
    if let Some(ms) = number("retry-after-ms").or_else(|| number("x-ms-retry-after-ms")) {
        return Some(Duration::from_secs_f64(ms / 1000.0));
    }
    let value = headers.get("retry-after")?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<f64>() {
        return Some(Duration::from_secs_f64(seconds.max(0.0)));
    }
    let when = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let wait = when.with_timezone(&chrono::Utc) - chrono::Utc::now();
    Some(wait.to_std().unwrap_or_default())
}

fn retryable(status: StatusCode) -> bool {
    status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS
        || (status.is_server_error()
            && status != StatusCode::NOT_IMPLEMENTED
            && status != StatusCode::HTTP_VERSION_NOT_SUPPORTED)
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::with_capacity(bytes.len() / 4), Compression::default());
    encoder.write_all(bytes).expect("writing to memory");
    encoder.finish().expect("writing to memory")
}

fn request_id() -> String {
    let v: u128 = rand::rng().random();
    let h = format!("{v:032x}");
    format!(
        "{}-{}-4{}-a{}-{}",
        &h[..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..]
    )
}

/// The service's error as `code: message`, from `{"error":{"code","message"}}`.
fn service_error(status: StatusCode, body: &str) -> String {
    let parsed: Option<(String, String)> = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            let e = v.get("error")?;
            Some((
                e.get("code")?.as_str()?.to_string(),
                e.get("message")
                    .and_then(|m| m.as_str())
                    .unwrap_or("")
                    .to_string(),
            ))
        });
    match parsed {
        Some((code, message)) => format!("{status} {code}: {message}"),
        None => format!("{status}"),
    }
}

impl MonitorClient {
    /// A client for the settings, with tokens from the environment.
    pub async fn new(settings: &MonitorSettings) -> Result<Self> {
        let tokens = tokens::from_env(settings.allow_http, settings.max_time)?;
        Self::with_tokens(settings, tokens)
    }

    /// A client with a given token provider.
    pub fn with_tokens(settings: &MonitorSettings, tokens: Arc<dyn TokenProvider>) -> Result<Self> {
        let url = settings.upload_url()?;
        let http = reqwest::Client::builder()
            .timeout(settings.request_timeout)
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| SinkError::runtime(format!("HTTP client: {e}")))?;
        Ok(Self {
            http,
            url,
            tokens,
            policy: RetryPolicy {
                base: Duration::from_millis(500),
                cap: Duration::from_secs(30),
                max_time: settings.max_time,
            },
        })
    }

    /// Replaces the backoff bounds.
    pub fn with_policy(mut self, policy: RetryPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Delivers every record it can; see the module documentation.
    pub async fn deliver(&self, records: Vec<MonitorRecord>) -> Delivery {
        let started = Instant::now();
        let mut queue: VecDeque<Chunk> = pack(records, MAX_BODY_BYTES).into();
        let mut delivery = Delivery::default();
        while let Some(chunk) = queue.pop_front() {
            match self.send(&chunk, started).await {
                Outcome::Delivered => {
                    tracing::info!(records = chunk.records.len(), "delivered to Azure Monitor");
                    delivery
                        .delivered
                        .extend(chunk.records.into_iter().map(|r| r.record_id));
                }
                Outcome::TooLarge => match chunk.split() {
                    Ok((a, b)) => {
                        queue.push_front(b);
                        queue.push_front(a);
                    }
                    Err(single) => {
                        let r = single.records.into_iter().next().expect("one record");
                        delivery
                            .undelivered
                            .push((r, "413: a single record is too large".into()));
                    }
                },
                Outcome::Failed { reason, stop } => {
                    tracing::warn!("Azure Monitor: {reason}");
                    delivery
                        .undelivered
                        .extend(chunk.records.into_iter().map(|r| (r, reason.clone())));
                    if stop {
                        let why =
                            format!("not sent after the service refused a request ({reason})");
                        for c in queue.drain(..) {
                            delivery
                                .undelivered
                                .extend(c.records.into_iter().map(|r| (r, why.clone())));
                        }
                    }
                }
            }
        }
        delivery
    }

    /// Sends one chunk until it is delivered, refused, too large, or time runs out.
    async fn send(&self, chunk: &Chunk, started: Instant) -> Outcome {
        let body = gzip(&chunk.body());
        let id = request_id();
        let mut attempt: u32 = 0;
        let mut refreshed = false;
        let mut refresh_next = false;
        loop {
            let token = match self.tokens.token(refresh_next).await {
                Ok(t) => t,
                Err(e) => {
                    return Outcome::Failed {
                        reason: e,
                        stop: true,
                    };
                }
            };
            refresh_next = false;
            let response = self
                .http
                .post(self.url.clone())
                .bearer_auth(token)
                .header("Content-Type", "application/json")
                .header("Content-Encoding", "gzip")
                .header("x-ms-client-request-id", &id)
                .body(body.clone())
                .send()
                .await;
            let (wait_hint, why) = match response {
                Ok(r) => {
                    let status = r.status();
                    if status.is_success() {
                        return Outcome::Delivered;
                    }
                    let headers = r.headers().clone();
                    let text = r.text().await.unwrap_or_default();
                    if status == StatusCode::PAYLOAD_TOO_LARGE {
                        return Outcome::TooLarge;
                    }
                    if status == StatusCode::UNAUTHORIZED && !refreshed {
                        refreshed = true;
                        refresh_next = true;
                        continue;
                    }
                    if !retryable(status) {
                        return Outcome::Failed {
                            reason: service_error(status, &text),
                            stop: true,
                        };
                    }
                    (retry_after(&headers), service_error(status, &text))
                }
                Err(e) => (None, format!("request failed: {}", e.without_url())),
            };
            attempt += 1;
            let backoff = {
                let exp = self.policy.base.saturating_mul(1 << attempt.min(16));
                let capped = exp.min(self.policy.cap);
                // Full jitter in [50 %, 100 %] of the capped backoff.
                capped.mul_f64(rand::rng().random_range(0.5..=1.0))
            };
            let wait = wait_hint.unwrap_or(backoff);
            if started.elapsed() + wait > self.policy.max_time {
                return Outcome::Failed {
                    reason: format!(
                        "gave up after {attempt} attempts in {:.0} s: {why}",
                        started.elapsed().as_secs_f64()
                    ),
                    stop: false,
                };
            }
            tracing::warn!(
                attempt,
                wait_ms = wait.as_millis() as u64,
                "Azure Monitor: {why}; retrying"
            );
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_headers_are_read_in_priority_order() {
        let mut h = HeaderMap::new();
        h.insert("retry-after", "3".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(3)));
        h.insert("x-ms-retry-after-ms", "250".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_millis(250)));
        h.insert("retry-after-ms", "100".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_millis(100)));
        assert!(retryable(StatusCode::TOO_MANY_REQUESTS));
        assert!(retryable(StatusCode::SERVICE_UNAVAILABLE));
        assert!(!retryable(StatusCode::NOT_IMPLEMENTED));
        assert!(!retryable(StatusCode::HTTP_VERSION_NOT_SUPPORTED));
        assert!(!retryable(StatusCode::FORBIDDEN));
    }
}

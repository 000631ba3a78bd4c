//! Entra ID bearer tokens for Azure Monitor, behind a small trait.
//!
//! In production the `azure_identity` crate provides them: workload identity (on AKS:
//! `AZURE_CLIENT_ID`, `AZURE_TENANT_ID`, `AZURE_FEDERATED_TOKEN_FILE`), a client secret
//! (`AZURE_CLIENT_SECRET`), or a managed identity. `azure_identity` only talks to https
//! authorities; with `MonitorSettings::allow_http` and an `http://` loopback `AZURE_AUTHORITY_HOST`
//! (a test standing in for Entra ID), [`OAuthTokens`] speaks the same two token flows
//! itself. Tokens are never logged.

use std::{
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};

use azure_core::credentials::TokenCredential;
use tokio::sync::Mutex;

use crate::error::{Result, SinkError};

/// The Logs Ingestion API's scope.
pub const SCOPE: &str = "https://monitor.azure.com/.default";

/// Where bearer tokens come from.
#[async_trait::async_trait]
pub trait TokenProvider: Send + Sync {
    /// A token for [`SCOPE`]; `refresh` asks for a new one (after a 401).
    async fn token(&self, refresh: bool) -> std::result::Result<String, String>;
}

/// Tokens from an `azure_identity` credential.
pub struct AzureIdentityTokens {
    /// How long the credential retries a token request (the delivery's time bound).
    max_time: Duration,
    credential: Mutex<Arc<dyn TokenCredential>>,
}

fn credential_from_env(max_time: Duration) -> azure_core::Result<Arc<dyn TokenCredential>> {
    use azure_identity::{
        ClientAssertionCredentialOptions, ClientSecretCredential, ClientSecretCredentialOptions,
        ManagedIdentityCredential, ManagedIdentityCredentialOptions, UserAssignedId,
        WorkloadIdentityCredential, WorkloadIdentityCredentialOptions,
    };
    // The SDK's own retries (a minute by default) stay within the delivery's bound.
    let retry =
        azure_core::http::RetryOptions::exponential(azure_core::http::ExponentialRetryOptions {
            max_total_elapsed: azure_core::time::Duration::try_from(max_time)
                .unwrap_or(azure_core::time::Duration::MAX),
            ..Default::default()
        });
    let client_options = azure_core::http::ClientOptions {
        retry,
        ..Default::default()
    };
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    if var("AZURE_FEDERATED_TOKEN_FILE").is_some() {
        let options = WorkloadIdentityCredentialOptions {
            credential_options: ClientAssertionCredentialOptions { client_options },
            ..Default::default()
        };
        return Ok(WorkloadIdentityCredential::new(Some(options))?);
    }
    if let (Some(secret), Some(tenant), Some(client)) = (
        var("AZURE_CLIENT_SECRET"),
        var("AZURE_TENANT_ID"),
        var("AZURE_CLIENT_ID"),
    ) {
        let options = ClientSecretCredentialOptions { client_options };
        return Ok(ClientSecretCredential::new(
            &tenant,
            client,
            secret.into(),
            Some(options),
        )?);
    }
    let options = ManagedIdentityCredentialOptions {
        user_assigned_id: var("AZURE_CLIENT_ID").map(UserAssignedId::ClientId),
        client_options,
    };
    Ok(ManagedIdentityCredential::new(Some(options))?)
}

impl AzureIdentityTokens {
    /// Picks the credential from the environment; it retries within `max_time`.
    pub fn from_env(max_time: Duration) -> Result<Self> {
        let credential = credential_from_env(max_time)
            .map_err(|e| SinkError::bad_input(format!("Azure Monitor credentials: {e}")))?;
        Ok(Self {
            max_time,
            credential: Mutex::new(credential),
        })
    }
}

/// An error with its causes: the SDK's own message says only that authentication failed,
/// its sources say why (a refused certificate, a refused connection).
fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(e) = cause {
        let message = e.to_string();
        if !text.contains(&message) {
            text.push_str(": ");
            text.push_str(&message);
        }
        cause = e.source();
    }
    text
}

#[async_trait::async_trait]
impl TokenProvider for AzureIdentityTokens {
    async fn token(&self, refresh: bool) -> std::result::Result<String, String> {
        let mut credential = self.credential.lock().await;
        if refresh {
            // A new credential has an empty cache.
            *credential = credential_from_env(self.max_time).map_err(|e| e.to_string())?;
        }
        credential
            .get_token(&[SCOPE], None)
            .await
            .map(|t| t.token.secret().to_string())
            .map_err(|e| format!("Entra ID token: {}", with_causes(&e)))
    }
}

/// How [`OAuthTokens`] proves who it is.
#[derive(Clone)]
pub enum Grant {
    /// `client_credentials` with a client secret.
    Secret(String),
    /// `client_credentials` with a federated token read from a file (workload identity).
    FederatedTokenFile(PathBuf),
}

/// OAuth 2.0 client-credential tokens from an `http://` loopback authority (tests only).
pub struct OAuthTokens {
    http: reqwest::Client,
    endpoint: url::Url,
    client_id: String,
    grant: Grant,
    cached: Mutex<Option<(String, Instant)>>,
}

#[derive(serde::Deserialize)]
struct TokenResponse {
    access_token: String,
    expires_in: Option<u64>,
}

/// Entra ID's error and the first line of its description (`AADSTS…: …`), which name the
/// problem (a wrong secret, an unknown client) without repeating any credential.
fn entra_error(body: &str) -> String {
    #[derive(serde::Deserialize)]
    struct EntraError {
        error: String,
        error_description: Option<String>,
    }
    let Ok(e) = serde_json::from_str::<EntraError>(body) else {
        return String::new();
    };
    let description = e.error_description.unwrap_or_default();
    let first_line = description.lines().next().unwrap_or("");
    let cut: String = first_line.chars().take(300).collect();
    format!(": {} {}", e.error, cut).trim_end().to_string()
}

impl OAuthTokens {
    /// Reads `AZURE_AUTHORITY_HOST`, `AZURE_TENANT_ID`, `AZURE_CLIENT_ID` and either
    /// `AZURE_FEDERATED_TOKEN_FILE` or `AZURE_CLIENT_SECRET`.
    pub fn from_env(authority: &url::Url) -> Result<Self> {
        let var = |k: &str| {
            std::env::var(k)
                .ok()
                .filter(|v| !v.is_empty())
                .ok_or_else(|| {
                    SinkError::bad_input(format!("Azure Monitor credentials: {k} is not set"))
                })
        };
        let tenant = var("AZURE_TENANT_ID")?;
        let grant = match var("AZURE_FEDERATED_TOKEN_FILE") {
            Ok(file) => Grant::FederatedTokenFile(file.into()),
            Err(_) => Grant::Secret(var("AZURE_CLIENT_SECRET")?),
        };
        let endpoint = authority
            .join(&format!("{tenant}/oauth2/v2.0/token"))
            .map_err(|e| SinkError::bad_input(format!("AZURE_AUTHORITY_HOST: {e}")))?;
        Ok(Self {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .map_err(|e| SinkError::runtime(format!("HTTP client: {e}")))?,
            endpoint,
            client_id: var("AZURE_CLIENT_ID")?,
            grant,
            cached: Mutex::new(None),
        })
    }
}

#[async_trait::async_trait]
impl TokenProvider for OAuthTokens {
    async fn token(&self, refresh: bool) -> std::result::Result<String, String> {
        let mut cached = self.cached.lock().await;
        if !refresh
            && let Some((token, expires)) = cached.as_ref()
            && Instant::now() + Duration::from_secs(60) < *expires
        {
            return Ok(token.clone());
        }
        let mut form = vec![
            ("grant_type", "client_credentials".to_string()),
            ("client_id", self.client_id.clone()),
            ("scope", SCOPE.to_string()),
        ];
        match &self.grant {
            Grant::Secret(s) => form.push(("client_secret", s.clone())),
            Grant::FederatedTokenFile(path) => {
                let assertion = std::fs::read_to_string(path)
                    .map_err(|e| format!("federated token file {}: {e}", path.display()))?;
                form.push((
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".into(),
                ));
                form.push(("client_assertion", assertion.trim().to_string()));
            }
        }
        let response = self
            .http
            .post(self.endpoint.clone())
            .form(&form)
            .send()
            .await
            .map_err(|e| format!("token endpoint: {}", e.without_url()))?;
        let status = response.status();
        if !status.is_success() {
            let text = response.text().await.unwrap_or_default();
            return Err(format!(
                "token endpoint answered {status}{}",
                entra_error(&text)
            ));
        }
        let body: TokenResponse = response
            .json()
            .await
            .map_err(|e| format!("token endpoint: {}", e.without_url()))?;
        let expires = Instant::now() + Duration::from_secs(body.expires_in.unwrap_or(300));
        *cached = Some((body.access_token.clone(), expires));
        Ok(body.access_token)
    }
}

/// The provider for this environment: `azure_identity` for https authorities (the default
/// is Entra ID's public cloud); [`OAuthTokens`] for an `http://` loopback authority when
/// `allow_http` is set.
pub fn from_env(allow_http: bool, max_time: Duration) -> Result<Arc<dyn TokenProvider>> {
    let authority = std::env::var("AZURE_AUTHORITY_HOST").unwrap_or_default();
    if authority.starts_with("http://") {
        let url = url::Url::parse(&authority)
            .map_err(|e| SinkError::bad_input(format!("AZURE_AUTHORITY_HOST: {e}")))?;
        let loopback = matches!(url.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"));
        if !allow_http || !loopback {
            return Err(SinkError::bad_input(
                "AZURE_AUTHORITY_HOST is http://: allowed only on loopback, for tests",
            ));
        }
        let mut url = url;
        if !url.path().ends_with('/') {
            url.set_path(&format!("{}/", url.path()));
        }
        return Ok(Arc::new(OAuthTokens::from_env(&url)?));
    }
    Ok(Arc::new(AzureIdentityTokens::from_env(max_time)?))
}

//! The server's public REST API as the harness uses it (SPEC A): sign-in, administration,
//! presence, conversations, monitor.

use std::time::Duration;

use anyhow::{Context, bail};
use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};

/// An HTTP client of one server, shared by every simulated agent and customer.
#[derive(Clone)]
pub struct Api {
    pub http: Client,
    /// `http://host:port`, without a trailing slash.
    pub base: String,
}

impl Api {
    /// A client with a connection pool large enough for open-loop load.
    pub fn new(base: &str) -> anyhow::Result<Self> {
        let http = Client::builder()
            .pool_max_idle_per_host(1024)
            // Under the server's 5 s keep-alive: a pooled connection the server is closing would
            // fail the next request with "connection closed before message completed".
            .pool_idle_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(60))
            .tcp_nodelay(true)
            .build()?;
        Ok(Self { http, base: base.trim_end_matches('/').to_owned() })
    }

    /// The WebSocket URL of the agent desk.
    pub fn ws_agent_url(&self) -> String {
        format!("{}/ws/agent", self.base.replacen("http", "ws", 1))
    }

    /// A JSON request with a bearer token; answers the status and the JSON body (Null if none).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> anyhow::Result<(StatusCode, Value)> {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.header("Content-Type", "application/json").body(b.to_string());
        }
        let res = req.send().await?;
        let status = res.status();
        let bytes = res.bytes().await?;
        let value = if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).unwrap_or(Value::Null) };
        Ok((status, value))
    }

    /// Like [`Api::call`], but anything but `expect` is an error naming the answer.
    pub async fn expect(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
        expect: StatusCode,
    ) -> anyhow::Result<Value> {
        let (status, value) = self.call(method.clone(), path, token, body).await?;
        if status != expect {
            bail!("{method} {path}: expected {expect}, got {status}: {value}");
        }
        Ok(value)
    }

    /// Signs in; answers the session token.
    pub async fn login(&self, login: &str, password: &str) -> anyhow::Result<String> {
        let v = self
            .expect(
                Method::POST,
                "/api/v1/auth/login",
                None,
                Some(&json!({"login": login, "password": password})),
                StatusCode::OK,
            )
            .await?;
        v["token"].as_str().map(str::to_owned).context("login answered no token")
    }

    /// Waits until `GET /healthz` answers 200.
    pub async fn wait_ready(&self, deadline: Duration) -> anyhow::Result<()> {
        let until = tokio::time::Instant::now() + deadline;
        loop {
            if let Ok((StatusCode::OK, _)) = self.call(Method::GET, "/healthz", None, None).await {
                return Ok(());
            }
            if tokio::time::Instant::now() > until {
                bail!("the server at {} was not ready within {deadline:?}", self.base);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

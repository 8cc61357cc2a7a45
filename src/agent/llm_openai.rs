//! `openai` LLM stage: streamed Chat Completions against any OpenAI-compatible server
//! (OpenAI, vLLM, Ollama, llama.cpp server, Groq).
//!
//! [`request_body`] builds the JSON sent; [`super::openai_sse`] decodes the reply; this file
//! holds the thin tokio driver: one task per completion that POSTs
//! `{base_url}/chat/completions`, retries connect errors, 429 and 5xx (honouring `Retry-After`)
//! before any output, enforces the connect / first-byte / stall timeouts, and forwards deltas
//! through a channel that [`LlmStream::poll_delta`] reads. Cancelling aborts the task, which drops
//! the HTTP request and closes its connection.

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::runtime::Handle;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::{Instant, timeout_at};

use super::openai_sse::{ChatStreamDecoder, error_text};
use super::registry::{BuildError, StageParams};
use super::stages::{ChatMessage, ChatRequest, Llm, LlmDelta, LlmStream, Role, StageError};
use crate::config::Secret;

/// The stage name used in errors.
const STAGE: &str = "llm openai";

/// Default API root.
pub const DEFAULT_BASE_URL: &str = "https://api.openai.com/v1";

/// Longest `Retry-After` honoured; a longer wait is useless to a caller on the line.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(20);

/// First backoff when the server gives no `Retry-After`; doubled per attempt.
const BASE_BACKOFF: Duration = Duration::from_millis(200);

/// Most bytes of an error body read for its message.
const MAX_ERROR_BODY: usize = 16 * 1024;

/// Deltas buffered between the driver task and the call's task.
const CHANNEL_DEPTH: usize = 64;

/// The settings of an `openai` stage.
#[derive(Debug, Clone)]
pub struct OpenAiConfig {
    /// API root without the trailing `/chat/completions`.
    pub base_url: String,
    /// The model name sent as `model`.
    pub model: String,
    /// Bearer token; `None` for local servers that need none.
    pub api_key: Option<Secret>,
    /// Sampling temperature, sent only when set.
    pub temperature: Option<f64>,
    /// Reply length cap, sent as `max_tokens` only when set.
    pub max_tokens: Option<u32>,
    /// Extra attempts after a connect error, 429 or 5xx.
    pub retries: u32,
    /// TCP + TLS connection timeout.
    pub connect_timeout: Duration,
    /// From sending the request until the first body byte.
    pub first_byte_timeout: Duration,
    /// Longest silence between body chunks once streaming.
    pub stall_timeout: Duration,
}

impl OpenAiConfig {
    /// Defaults for `model` against the OpenAI API with no key.
    pub fn new(model: impl Into<String>) -> Self {
        Self {
            base_url: DEFAULT_BASE_URL.to_owned(),
            model: model.into(),
            api_key: None,
            temperature: None,
            max_tokens: None,
            retries: 2,
            connect_timeout: Duration::from_secs(5),
            first_byte_timeout: Duration::from_secs(20),
            stall_timeout: Duration::from_secs(10),
        }
    }

    /// Reads `base_url`, `model`, `api_key_env`, `temperature`, `max_tokens`, `retries` and the
    /// `*_timeout_ms` parameters.
    pub fn from_params(p: &StageParams<'_>) -> Result<Self, BuildError> {
        let model = p
            .string("model")?
            .filter(|m| !m.is_empty())
            .ok_or_else(|| bad("model", "missing: name the model (e.g. \"gpt-4o-mini\")"))?;
        let mut c = Self::new(model);
        if let Some(url) = p.string("base_url")? {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(bad("base_url", "must start with http:// or https://"));
            }
            c.base_url = url.trim_end_matches('/').to_owned();
        }
        if p.string("api_key_env")?.is_some() {
            c.api_key = Some(p.secret("api_key_env")?);
        }
        if p.value("temperature").is_some() {
            c.temperature = Some(p.number("temperature", 1.0, 0.0..=2.0)?);
        }
        if p.value("max_tokens").is_some() {
            c.max_tokens = Some(whole(p, "max_tokens", 1.0, 1.0..=1_000_000.0)? as u32);
        }
        c.retries = whole(p, "retries", 2.0, 0.0..=10.0)? as u32;
        let ms = |key, default: Duration| {
            whole(p, key, default.as_millis() as f64, 1.0..=600_000.0)
                .map(|v| Duration::from_millis(v as u64))
        };
        c.connect_timeout = ms("connect_timeout_ms", c.connect_timeout)?;
        c.first_byte_timeout = ms("first_byte_timeout_ms", c.first_byte_timeout)?;
        c.stall_timeout = ms("stall_timeout_ms", c.stall_timeout)?;
        Ok(c)
    }

    fn url(&self) -> String {
        format!("{}/chat/completions", self.base_url)
    }
}

fn bad(key: &str, reason: &str) -> BuildError {
    BuildError::BadParam {
        stage: STAGE.to_owned(),
        key: key.to_owned(),
        reason: reason.to_owned(),
    }
}

/// A whole number parameter.
fn whole(
    p: &StageParams<'_>,
    key: &str,
    default: f64,
    range: std::ops::RangeInclusive<f64>,
) -> Result<f64, BuildError> {
    let v = p.number(key, default, range)?;
    if v.fract() == 0.0 {
        Ok(v)
    } else {
        Err(bad(key, "expected a whole number"))
    }
}

/// The `openai` chat model: one HTTP client, one driver task per completion.
#[derive(Debug)]
pub struct OpenAiLlm {
    /// Shared by every completion of this stage (connection reuse).
    client: reqwest::Client,
    /// Settings, shared with the driver tasks.
    config: Arc<OpenAiConfig>,
    /// Where driver tasks run (captured at build time: `start` is synchronous).
    runtime: Handle,
}

impl OpenAiLlm {
    /// A stage for `config`; must be called inside a tokio runtime.
    pub fn new(config: OpenAiConfig) -> Result<Self, BuildError> {
        let runtime = Handle::try_current().map_err(|_| BuildError::BadParam {
            stage: STAGE.to_owned(),
            key: "(runtime)".to_owned(),
            reason: "the stage must be built inside a tokio runtime".to_owned(),
        })?;
        let client = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .build()
            .map_err(|e| bad("base_url", &format!("HTTP client: {e}")))?;
        Ok(Self {
            client,
            config: Arc::new(config),
            runtime,
        })
    }

    /// Builds the stage from its parameters (see [`OpenAiConfig::from_params`]).
    pub fn from_params(p: &StageParams<'_>) -> Result<Self, BuildError> {
        Self::new(OpenAiConfig::from_params(p)?)
    }
}

impl Llm for OpenAiLlm {
    fn start(&mut self, request: &ChatRequest) -> Result<Box<dyn LlmStream>, StageError> {
        let body = request_body(&self.config, request);
        let (tx, rx) = mpsc::channel(CHANNEL_DEPTH);
        let driver = Driver {
            client: self.client.clone(),
            config: Arc::clone(&self.config),
            tx,
        };
        let task = self.runtime.spawn(driver.run(body));
        Ok(Box::new(OpenAiStream {
            rx,
            task,
            closed: false,
        }))
    }
}

/// The JSON body of a streamed Chat Completions request.
pub fn request_body(config: &OpenAiConfig, request: &ChatRequest) -> Value {
    let messages: Vec<Value> = request.messages.iter().map(message_json).collect();
    let mut body = json!({
        "model": config.model,
        "messages": messages,
        "stream": true,
    });
    if let Some(t) = config.temperature {
        body["temperature"] = json!(t);
    }
    if let Some(m) = config.max_tokens {
        body["max_tokens"] = json!(m);
    }
    let has_tools = match &request.tools {
        Value::Array(a) => !a.is_empty(),
        Value::Null => false,
        _ => true,
    };
    if has_tools {
        body["tools"] = request.tools.clone();
    }
    body
}

fn message_json(m: &ChatMessage) -> Value {
    match m.role {
        Role::System => json!({"role": "system", "content": m.content}),
        Role::User => json!({"role": "user", "content": m.content}),
        Role::Assistant if m.tool_calls.is_empty() => {
            json!({"role": "assistant", "content": m.content})
        }
        Role::Assistant => {
            let calls: Vec<Value> = m
                .tool_calls
                .iter()
                .map(|c| {
                    json!({
                        "id": c.id,
                        "type": "function",
                        "function": {"name": c.name, "arguments": c.arguments},
                    })
                })
                .collect();
            // OpenAI documents `content` as optional (null) when `tool_calls` is given.
            let content = if m.content.is_empty() {
                Value::Null
            } else {
                json!(m.content)
            };
            json!({"role": "assistant", "content": content, "tool_calls": calls})
        }
        Role::Tool => json!({
            "role": "tool",
            "tool_call_id": m.tool_call_id.as_deref().unwrap_or_default(),
            "content": m.content,
        }),
    }
}

/// One streamed completion of [`OpenAiLlm`].
#[derive(Debug)]
struct OpenAiStream {
    /// Deltas and the final error from the driver task.
    rx: mpsc::Receiver<Result<LlmDelta, StageError>>,
    /// The driver, aborted on cancel or drop.
    task: JoinHandle<()>,
    /// Cancelled, or an error was returned: nothing more is delivered.
    closed: bool,
}

impl LlmStream for OpenAiStream {
    fn poll_delta(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<LlmDelta, StageError>>> {
        if self.closed {
            return Poll::Ready(None);
        }
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some(Err(e))) => {
                self.closed = true;
                Poll::Ready(Some(Err(e)))
            }
            other => other,
        }
    }

    fn cancel(&mut self) {
        self.closed = true;
        self.task.abort();
        self.rx.close();
    }
}

impl Drop for OpenAiStream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What went wrong in one attempt, and whether another may follow.
struct Failure {
    /// The error text (not yet redacted).
    reason: String,
    /// Whether (and when) another attempt may follow.
    retry: Retry,
}

/// Whether a failed attempt may be repeated.
enum Retry {
    /// No: the failure is final.
    No,
    /// Yes, after the exponential backoff.
    Backoff,
    /// Yes, after the wait the server asked for.
    After(Duration),
}

impl Failure {
    fn fatal(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
            retry: Retry::No,
        }
    }
}

/// The task behind one completion.
struct Driver {
    client: reqwest::Client,
    config: Arc<OpenAiConfig>,
    tx: mpsc::Sender<Result<LlmDelta, StageError>>,
}

impl Driver {
    async fn run(self, body: Value) {
        let body = Arc::new(body.to_string());
        let mut attempt = 0;
        let result = loop {
            match self.attempt(&body).await {
                Ok(()) => break Ok(()),
                Err(f) => match f.retry {
                    Retry::After(_) | Retry::Backoff if attempt < self.config.retries => {
                        let wait = match f.retry {
                            Retry::After(wait) => wait,
                            _ => backoff(attempt),
                        };
                        attempt += 1;
                        tracing::debug!(stage = STAGE, attempt, ?wait, reason = %self.redact(&f.reason), "retrying");
                        tokio::time::sleep(wait).await;
                    }
                    _ => break Err(f.reason),
                },
            }
        };
        if let Err(reason) = result {
            let reason = self.redact(&reason);
            let _ = self
                .tx
                .send(Err(StageError::Provider {
                    stage: STAGE.to_owned(),
                    reason,
                }))
                .await;
        }
    }

    /// Removes the API key from text a server or library produced (a proxy may echo headers).
    fn redact(&self, text: &str) -> String {
        match &self.config.api_key {
            Some(k) if !k.expose().is_empty() => text.replace(k.expose(), "***"),
            _ => text.to_owned(),
        }
    }

    /// One HTTP exchange; `Ok` once the stream completed and every delta was forwarded.
    async fn attempt(&self, body: &Arc<String>) -> Result<(), Failure> {
        let c = &self.config;
        let mut req = self
            .client
            .post(c.url())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(reqwest::header::ACCEPT, "text/event-stream")
            .body(body.as_str().to_owned());
        if let Some(key) = &c.api_key {
            let mut value =
                reqwest::header::HeaderValue::from_str(&format!("Bearer {}", key.expose()))
                    .map_err(|_| Failure::fatal("the API key is not a valid header value"))?;
            value.set_sensitive(true);
            req = req.header(reqwest::header::AUTHORIZATION, value);
        }
        let first_byte_deadline = Instant::now() + c.first_byte_timeout;
        let mut resp = match timeout_at(first_byte_deadline, req.send()).await {
            Err(_) => return Err(Failure::fatal(self.first_byte_timeout())),
            Ok(Err(e)) => {
                return Err(Failure {
                    reason: format!("request failed: {}", error_chain(&e)),
                    retry: if e.is_connect() {
                        Retry::Backoff
                    } else {
                        Retry::No
                    },
                });
            }
            Ok(Ok(r)) => r,
        };
        let status = resp.status();
        if !status.is_success() {
            let retry_after = retry_after(resp.headers());
            let message = read_error_body(&mut resp, first_byte_deadline).await;
            let reason = format!("HTTP {status}: {message}");
            let retryable = status.as_u16() == 429 || status.is_server_error();
            return Err(match (retryable, retry_after) {
                (false, _) => Failure::fatal(reason),
                (true, Some(wait)) if wait > MAX_RETRY_AFTER => Failure::fatal(format!(
                    "{reason} (Retry-After {} s exceeds {} s)",
                    wait.as_secs(),
                    MAX_RETRY_AFTER.as_secs()
                )),
                (true, wait) => Failure {
                    reason,
                    retry: wait.map_or(Retry::Backoff, Retry::After),
                },
            });
        }
        self.stream(&mut resp, first_byte_deadline).await
    }

    /// Reads the 200 body to its end, forwarding deltas.
    async fn stream(
        &self,
        resp: &mut reqwest::Response,
        first_byte_deadline: Instant,
    ) -> Result<(), Failure> {
        let mut decoder = ChatStreamDecoder::new();
        let mut deltas = Vec::new();
        let mut deadline = first_byte_deadline;
        let mut first = true;
        loop {
            let chunk = match timeout_at(deadline, resp.chunk()).await {
                Err(_) if first => return Err(Failure::fatal(self.first_byte_timeout())),
                Err(_) => {
                    return Err(Failure::fatal(format!(
                        "stream stalled: no data for {} ms",
                        self.config.stall_timeout.as_millis()
                    )));
                }
                Ok(Err(e)) => {
                    return Err(Failure::fatal(format!(
                        "stream broken: {}",
                        error_chain(&e)
                    )));
                }
                Ok(Ok(None)) => {
                    return decoder.finish().map_err(|e| Failure::fatal(e.to_string()));
                }
                Ok(Ok(Some(chunk))) => chunk,
            };
            first = false;
            deadline = Instant::now() + self.config.stall_timeout;
            let fed = decoder.feed(&chunk, &mut deltas);
            for d in deltas.drain(..) {
                if self.tx.send(Ok(d)).await.is_err() {
                    return Ok(()); // the stream was dropped: nobody is listening
                }
            }
            fed.map_err(|e| Failure::fatal(e.to_string()))?;
            if decoder.is_done() {
                return Ok(());
            }
        }
    }

    fn first_byte_timeout(&self) -> String {
        format!(
            "no response within first_byte_timeout_ms = {}",
            self.config.first_byte_timeout.as_millis()
        )
    }
}

/// The wait before retry number `n + 1` when the server gives none.
fn backoff(n: u32) -> Duration {
    BASE_BACKOFF * 2u32.saturating_pow(n.min(6))
}

/// `retry-after-ms` (OpenAI's precise header) or `Retry-After` in seconds.
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let num = |name: &str| -> Option<f64> {
        let v: f64 = headers.get(name)?.to_str().ok()?.trim().parse().ok()?;
        (v.is_finite() && v >= 0.0).then_some(v)
    };
    if let Some(ms) = num("retry-after-ms") {
        return Some(Duration::from_secs_f64((ms / 1000.0).min(3600.0)));
    }
    num("retry-after").map(|s| Duration::from_secs_f64(s.min(3600.0)))
}

/// The provider's error message from a non-2xx body, read within `deadline`.
async fn read_error_body(resp: &mut reqwest::Response, deadline: Instant) -> String {
    let mut body = Vec::new();
    while body.len() < MAX_ERROR_BODY {
        match timeout_at(deadline, resp.chunk()).await {
            Ok(Ok(Some(c))) => body.extend_from_slice(&c),
            _ => break,
        }
    }
    body.truncate(MAX_ERROR_BODY);
    let text = error_text(&String::from_utf8_lossy(&body));
    if text.is_empty() {
        "(empty body)".to_owned()
    } else {
        text
    }
}

/// An error and its causes, without the URL (reqwest puts it in `Display`).
fn error_chain(e: &reqwest::Error) -> String {
    let mut out = if e.is_timeout() {
        "timed out".to_owned()
    } else if e.is_connect() {
        "connect error".to_owned()
    } else if e.is_body() || e.is_decode() {
        "body error".to_owned()
    } else {
        "request error".to_owned()
    };
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::stages::LlmToolCall;

    #[test]
    fn body_has_roles_tool_calls_and_optional_fields() {
        let mut config = OpenAiConfig::new("gpt-4o-mini");
        let request = ChatRequest {
            messages: vec![
                ChatMessage::text(Role::System, "Be brief."),
                ChatMessage::text(Role::User, "Book me in."),
                ChatMessage {
                    role: Role::Assistant,
                    content: String::new(),
                    tool_calls: vec![LlmToolCall {
                        id: "call_1".into(),
                        name: "set_outcome".into(),
                        arguments: "{\"disposition\":\"booked\"}".into(),
                    }],
                    tool_call_id: None,
                },
                ChatMessage::tool_result("call_1", "ok"),
                ChatMessage::text(Role::Assistant, "Done."),
            ],
            tools: json!([]),
        };
        let body = request_body(&config, &request);
        assert_eq!(
            body,
            json!({
                "model": "gpt-4o-mini",
                "stream": true,
                "messages": [
                    {"role": "system", "content": "Be brief."},
                    {"role": "user", "content": "Book me in."},
                    {"role": "assistant", "content": null, "tool_calls": [
                        {"id": "call_1", "type": "function",
                         "function": {"name": "set_outcome", "arguments": "{\"disposition\":\"booked\"}"}}
                    ]},
                    {"role": "tool", "tool_call_id": "call_1", "content": "ok"},
                    {"role": "assistant", "content": "Done."},
                ],
            })
        );
        config.temperature = Some(0.5);
        config.max_tokens = Some(200);
        let request = ChatRequest {
            tools: crate::agent::tools::tool_definitions(),
            ..request
        };
        let body = request_body(&config, &request);
        assert_eq!(body["temperature"], json!(0.5));
        assert_eq!(body["max_tokens"], json!(200));
        assert_eq!(body["tools"], crate::agent::tools::tool_definitions());
    }

    #[test]
    fn retry_after_headers() {
        let mut h = reqwest::header::HeaderMap::new();
        assert_eq!(retry_after(&h), None);
        h.insert("retry-after", "2".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(2)));
        h.insert("retry-after-ms", "150".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_millis(150)));
        h.insert("retry-after-ms", "-1".parse().unwrap());
        h.insert(
            "retry-after",
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&h), None);
        assert_eq!(backoff(0), BASE_BACKOFF);
        assert_eq!(backoff(2), BASE_BACKOFF * 4);
    }
}

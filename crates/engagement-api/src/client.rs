//! The HTTP client: one [`Client::send`] per attempt, every result classified (fact sheet §1, §7, §8).
//!
//! Design notes:
//! - `send` never returns `Err`: a [`Reply`] carries an [`Outcome`] that keeps retryable and fatal
//!   apart in the type, so the caller's retry policy never has to read error strings.
//! - Each call signs afresh ([`Credentials::authorization`]), so retrying means calling `send` again;
//!   nothing here retries on its own (reqwest does not retry a request that reached the server).
//! - The signed URL and the requested URL are the same string, built from the normalised base URL, so
//!   the OAuth base string always matches what the server sees.
//! - Redirects are not followed: the API does not redirect, a redirect would carry a signature for
//!   another URL, and following one could hand the `Authorization` header to another host or to plain
//!   HTTP. A 3xx is a fatal [`Fatal::Other`].
//! - gzip: reqwest's `gzip` feature adds `Accept-Encoding: gzip` (the API is reported to answer 406
//!   without it) and decodes `Content-Encoding: gzip` bodies; identity bodies pass through unchanged.
//! - TLS certificates are always verified; plain `http://` is allowed only to loopback (the local
//!   simulator) unless the caller opts in.

use std::error::Error as StdError;
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use reqwest::Url;

use crate::auth::Credentials;
use crate::request::EngagementRequest;
use crate::response::{forbidden_ids, parse_error_body, parse_response, EngagementResponse};

/// Where and how to connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConfig {
    /// Scheme, host and optional port (and path prefix) the endpoint paths are appended to.
    pub base_url: String,
    /// Limit for establishing a connection (TCP and TLS).
    pub connect_timeout: Duration,
    /// Limit for a whole attempt, from sending to the last body byte.
    pub request_timeout: Duration,
    /// Allow `http://` to a non-loopback host. Off by default: credentials and data would travel in
    /// clear text.
    pub allow_insecure_http: bool,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            base_url: "https://data-api.x.com".to_string(),
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(60),
            allow_insecure_http: false,
        }
    }
}

/// Why a client could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// `http://` to a host that is not loopback, without `allow_insecure_http`.
    #[error("refusing plain http to {0}: only loopback hosts may use http:// unless insecure http is explicitly allowed")]
    InsecureHttp(String),
    /// A scheme other than `https` or `http`.
    #[error("unsupported URL scheme `{scheme}` in {url}: use https://")]
    UnsupportedScheme {
        /// The URL as given.
        url: String,
        /// Its scheme.
        scheme: String,
    },
    /// Not a usable base URL.
    #[error("invalid base URL `{url}`: {reason}")]
    BadUrl {
        /// The URL as given.
        url: String,
        /// What is wrong.
        reason: String,
    },
    /// reqwest could not build its client (for example, no TLS backend).
    #[error("cannot build the HTTP client: {0}")]
    Build(String),
}

/// A cheap-to-clone Engagement API client.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    /// Normalised base URL without a trailing slash.
    base: Arc<str>,
}

impl Client {
    /// Builds a client, refusing insecure or unusable base URLs.
    pub fn new(cfg: ClientConfig) -> Result<Client, ClientError> {
        let base = check_base_url(&cfg.base_url, cfg.allow_insecure_http)?;
        let http = reqwest::Client::builder()
            .connect_timeout(cfg.connect_timeout)
            .timeout(cfg.request_timeout)
            .user_agent(concat!("engage/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| ClientError::Build(error_text(&e)))?;
        Ok(Client {
            http,
            base: base.into(),
        })
    }

    /// The normalised base URL (lower-case scheme and host, no default port, no trailing slash).
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// Sends one attempt of `req` and classifies the result.
    pub async fn send(&self, req: &EngagementRequest, creds: &Credentials) -> Reply {
        let url = format!("{}{}", self.base, req.endpoint.path());
        let started = Instant::now();
        let reply = |rate, status, outcome| Reply {
            rate,
            status,
            outcome,
            elapsed: started.elapsed(),
        };

        let mut auth = match HeaderValue::from_str(&creds.authorization("POST", &url)) {
            Ok(v) => v,
            // Only a token with control characters or non-ASCII can get here; the server could
            // never accept it, and retrying will not change it.
            Err(_) => {
                return reply(
                    RateLimit::default(),
                    None,
                    Outcome::Fatal(Fatal::Unauthorized {
                        errors: vec![
                            "credentials contain characters not allowed in an HTTP header"
                                .to_string(),
                        ],
                    }),
                )
            }
        };
        // Keeps the value out of any Debug output of the request.
        auth.set_sensitive(true);

        let sent = self
            .http
            .post(&url)
            .header(CONTENT_TYPE, "application/json")
            .header(ACCEPT, "application/json")
            .header(AUTHORIZATION, auth)
            .body(req.to_body())
            .send()
            .await;
        let resp = match sent {
            Ok(r) => r,
            Err(e) => {
                return reply(
                    RateLimit::default(),
                    None,
                    Outcome::Retryable(transport_error(&e)),
                )
            }
        };
        let status = resp.status().as_u16();
        let rate = RateLimit::from_headers(resp.headers());
        let outcome = match resp.bytes().await {
            Ok(body) => classify(status, &body, req),
            Err(e) => Outcome::Retryable(transport_error(&e)),
        };
        let r = reply(rate, Some(status), outcome);
        tracing::debug!(
            endpoint = %req.endpoint,
            ids = req.tweet_ids.len(),
            status,
            elapsed_ms = r.elapsed.as_millis() as u64,
            outcome = %r.outcome.kind(),
            "engagement API reply"
        );
        r
    }
}

/// Checks and normalises a base URL: https anywhere, http only to loopback unless allowed, no
/// query, fragment or user info (the URL appears in error texts and must not carry secrets).
/// [`Client::new`] applies it; a caller validating its configuration up front can too.
pub fn check_base_url(raw: &str, allow_insecure_http: bool) -> Result<String, ClientError> {
    let bad = |reason: &str| ClientError::BadUrl {
        url: raw.to_string(),
        reason: reason.to_string(),
    };
    let url = Url::parse(raw.trim()).map_err(|e| bad(&e.to_string()))?;
    match url.scheme() {
        "https" => {}
        "http" => {
            if !allow_insecure_http && !is_loopback(&url) {
                return Err(ClientError::InsecureHttp(raw.to_string()));
            }
        }
        other => {
            return Err(ClientError::UnsupportedScheme {
                url: raw.to_string(),
                scheme: other.to_string(),
            })
        }
    }
    if url.host().is_none() {
        return Err(bad("no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad("user info is not allowed in the base URL"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad("a base URL takes no query or fragment"));
    }
    // `Url` lower-cases scheme and host and drops a default port, which is the normalisation
    // RFC 5849 §3.4.1.2 asks of the signed URL.
    Ok(url.as_str().trim_end_matches('/').to_string())
}

fn is_loopback(url: &Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    // IPv6 hosts come bracketed (`[::1]`).
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
        .is_ok_and(|ip| ip.is_loopback())
}

/// The result of one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The rate-limit headers, when the response had them.
    pub rate: RateLimit,
    /// The HTTP status; `None` when no response arrived.
    pub status: Option<u16>,
    /// What the attempt means for the Tweets in it.
    pub outcome: Outcome,
    /// From sending to the last body byte (or the failure).
    pub elapsed: Duration,
}

/// The per-minute rate-limit headers (`x-per-minute-limit`, `-remaining`, `-reset`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RateLimit {
    /// Requests allowed per window.
    pub limit: Option<u32>,
    /// Requests left in the current window.
    pub remaining: Option<u32>,
    /// When the window resets.
    pub reset: Option<SystemTime>,
}

impl RateLimit {
    /// Reads the headers; a missing or unreadable header stays `None`. Header names match in any
    /// case (`HeaderMap` stores them lower-cased).
    pub fn from_headers(headers: &HeaderMap) -> RateLimit {
        fn num<T: std::str::FromStr>(headers: &HeaderMap, name: &str) -> Option<T> {
            headers.get(name)?.to_str().ok()?.trim().parse().ok()
        }
        RateLimit {
            limit: num(headers, "x-per-minute-limit"),
            remaining: num(headers, "x-per-minute-remaining"),
            reset: num::<u64>(headers, "x-per-minute-reset").map(epoch_to_time),
        }
    }
}

/// Epoch seconds as documented; a value too large for seconds (past year 5000) is taken as
/// milliseconds, since some gateways send those and the wait would otherwise be absurd.
fn epoch_to_time(v: u64) -> SystemTime {
    const MS_THRESHOLD: u64 = 100_000_000_000;
    let d = if v >= MS_THRESHOLD {
        Duration::from_millis(v)
    } else {
        Duration::from_secs(v)
    };
    UNIX_EPOCH + d
}

/// What an attempt means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// 200 with data for every Tweet.
    Success(EngagementResponse),
    /// 200 with data plus errors or ID lists: some Tweets or metrics were not answered.
    Partial(EngagementResponse),
    /// Worth trying again later, re-signed.
    Retryable(Retryable),
    /// Trying again will give the same answer.
    Fatal(Fatal),
}

impl Outcome {
    /// A one-word name for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Outcome::Success(_) => "success",
            Outcome::Partial(_) => "partial",
            Outcome::Retryable(_) => "retryable",
            Outcome::Fatal(_) => "fatal",
        }
    }
}

/// A failure that may pass on retry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Retryable {
    /// 429: over the per-minute limit.
    #[error("rate limited (HTTP 429){}", summary(.errors))]
    RateLimited {
        /// The body's messages.
        errors: Vec<String>,
    },
    /// 5xx.
    #[error("server error (HTTP {status}){}", summary(.errors))]
    Server {
        /// The status.
        status: u16,
        /// The body's messages.
        errors: Vec<String>,
    },
    /// Connected, but no complete answer within the request timeout.
    #[error("timed out")]
    Timeout,
    /// No connection could be made: the request never reached a server. Kept apart from
    /// [`Retryable::Connection`] because it says nothing about the request and much about the service
    /// (every other request will fail alike while it lasts).
    #[error("{cause}: {detail}")]
    Unreachable {
        /// Refused, DNS, TLS, timeout.
        cause: ConnectCause,
        /// The transport's words.
        detail: String,
    },
    /// The connection broke before the answer was complete.
    #[error("connection failed: {0}")]
    Connection(String),
    /// A body that is not gzip or JSON as expected, or not an answer to the request.
    #[error("undecodable response: {0}")]
    Undecodable(String),
}

/// Why no connection could be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectCause {
    /// Nothing listens at that address (or a firewall rejects the connection).
    Refused,
    /// The host name does not resolve.
    Dns,
    /// The TLS handshake failed (certificate, protocol, or not a TLS server).
    Tls,
    /// No connection within the connect timeout.
    Timeout,
    /// Any other failure to connect (network unreachable, reset while connecting).
    Other,
}

impl fmt::Display for ConnectCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ConnectCause::Refused => "connection refused",
            ConnectCause::Dns => "DNS lookup failed",
            ConnectCause::Tls => "TLS handshake failed",
            ConnectCause::Timeout => "connect timed out",
            ConnectCause::Other => "could not connect",
        })
    }
}

/// A failure that will not pass on retry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Fatal {
    /// 400: an invalid request, or protected Tweets (`Tweet ID(s) are unavailable`).
    #[error("bad request (HTTP 400){}{}", protected_note(.protected), summary(.errors))]
    BadRequest {
        /// The body's messages.
        errors: Vec<String>,
        /// Whether the API said the Tweets are protected (not served even to their owner).
        protected: bool,
    },
    /// 401 (or credentials that cannot be put in a header at all).
    #[error("unauthorized{}", summary(.errors))]
    Unauthorized {
        /// The body's messages.
        errors: Vec<String>,
    },
    /// 403: the token may not read these Tweets (`ids`) or these metrics (`ids` empty).
    #[error("forbidden (HTTP 403){}", summary(.errors))]
    Forbidden {
        /// The Tweet IDs refused: those the messages name, or every ID of the request when the body
        /// names none and does not speak of metrics (see [`classify`]).
        ids: Vec<u64>,
        /// The body's messages (or the first line of a body that is not JSON).
        errors: Vec<String>,
        /// Whether the body named the IDs (`Forbidden to access tweets: <ids>`).
        named: bool,
    },
    /// 404: wrong base URL or path.
    #[error("not found (HTTP 404): check the base URL")]
    NotFound,
    /// 406: the API refused the request's headers (reported for a missing `Accept-Encoding: gzip`).
    #[error("not acceptable (HTTP 406){}", summary(.errors))]
    NotAcceptable {
        /// The body's messages.
        errors: Vec<String>,
    },
    /// Any other status.
    #[error("unexpected HTTP {status}{}", summary(.errors))]
    Other {
        /// The status.
        status: u16,
        /// The body's messages.
        errors: Vec<String>,
    },
}

fn protected_note(protected: &bool) -> &'static str {
    if *protected {
        ", protected Tweets"
    } else {
        ""
    }
}

/// The most characters of server or transport text kept in an outcome's one-line text.
const MAX_TEXT: usize = 300;

/// `": msg1; msg2"` on one line and at most [`MAX_TEXT`] characters, or nothing when there are no
/// messages.
fn summary(errors: &[String]) -> String {
    if errors.is_empty() {
        return String::new();
    }
    format!(": {}", one_line(&errors.join("; ")))
}

/// Collapses whitespace runs (newlines included) and cuts to [`MAX_TEXT`] characters.
fn one_line(s: &str) -> String {
    let joined = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if joined.chars().count() <= MAX_TEXT {
        return joined;
    }
    let mut out: String = joined.chars().take(MAX_TEXT).collect();
    out.push('…');
    out
}

/// The most characters of a non-JSON body's first line kept in a message.
const BODY_LINE: usize = 200;

/// The first non-blank line of a body that is not JSON, trimmed and cut to [`BODY_LINE`]
/// characters; `None` for an empty body. A line that could carry a credential (an echoed header) is
/// replaced by a note saying it was left out: one that mentions `oauth_`, `bearer`,
/// `authorization`, `token=`, `secret` or `signature` (any case), or holds a run of 32 or more
/// characters of the kind tokens and signatures are made of (letters, digits, `+/=%_-.`).
fn body_line(body: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(body);
    let line = text.lines().map(str::trim).find(|l| !l.is_empty())?;
    let lower = line.to_ascii_lowercase();
    let suspicious = [
        "oauth_",
        "bearer",
        "authorization",
        "token=",
        "secret",
        "signature",
    ]
    .iter()
    .any(|w| lower.contains(w))
        || line
            .split(|c: char| !(c.is_ascii_alphanumeric() || "+/=%_-.".contains(c)))
            .any(|run| run.len() >= 32);
    if suspicious {
        return Some("(the body's first line was left out: it may hold a credential)".into());
    }
    let mut out: String = line.chars().take(BODY_LINE).collect();
    if line.chars().count() > BODY_LINE {
        out.push('…');
    }
    Some(out)
}

/// Maps a status and a complete body to an outcome.
fn classify(status: u16, body: &[u8], req: &EngagementRequest) -> Outcome {
    if status == 200 {
        return match parse_response(body, &req.groupings) {
            Ok(r) if r.is_partial() => Outcome::Partial(r),
            Ok(r) => Outcome::Success(r),
            Err(e) => Outcome::Retryable(Retryable::Undecodable(one_line(&e.to_string()))),
        };
    }
    let parsed = parse_error_body(body);
    // A 400 means what its errors say (protected Tweets or a bad request); without a readable body
    // it cannot be acted on, and a broken body is a transport fault, so try again.
    if status == 400 && parsed.is_empty() {
        return Outcome::Retryable(Retryable::Undecodable(format!(
            "HTTP 400 with an unreadable errors body{}",
            summary(&body_line(body).into_iter().collect::<Vec<_>>())
        )));
    }
    // A 4xx body that is not JSON (a proxy's page, a plain-text reason) still says what happened;
    // a 5xx page says no more than its status.
    let errors = if parsed.is_empty() && (400..500).contains(&status) {
        body_line(body).into_iter().collect()
    } else {
        parsed
    };
    match status {
        400 => {
            let protected = errors.iter().any(|e| {
                e.to_ascii_lowercase()
                    .contains("tweet id(s) are unavailable")
            });
            Outcome::Fatal(Fatal::BadRequest { errors, protected })
        }
        401 => Outcome::Fatal(Fatal::Unauthorized { errors }),
        403 => {
            // The API lists the refused Tweets; a 403 that lists none refuses the request as a whole,
            // so every ID in it is refused. The one 403 that would fail every request alike is about
            // metrics (`Forbidden to access metrics: ..`): only a body that says "metric" is taken
            // that way (no ID, the run stops). Any other unlisted 403 (a proxy's page, an empty body)
            // is not retried: a retry would get the same answer.
            let ids = forbidden_ids(&errors);
            let named = !ids.is_empty();
            let about_metrics = errors
                .iter()
                .any(|e| e.to_ascii_lowercase().contains("metric"));
            let ids = if named || about_metrics {
                ids
            } else {
                req.tweet_ids.clone()
            };
            Outcome::Fatal(Fatal::Forbidden { ids, errors, named })
        }
        404 => Outcome::Fatal(Fatal::NotFound),
        406 => Outcome::Fatal(Fatal::NotAcceptable { errors }),
        429 => Outcome::Retryable(Retryable::RateLimited { errors }),
        500..=599 => Outcome::Retryable(Retryable::Server { status, errors }),
        _ => Outcome::Fatal(Fatal::Other { status, errors }),
    }
}

/// Classifies a reqwest failure.
///
/// reqwest reports every failure while reading a body as a decode error, whether the connection
/// broke or the gzip stream was corrupt. A hyper error in the cause chain means the transport
/// failed (a reset, an incomplete chunked body, a closed connection); without one, the bytes
/// arrived and could not be decoded.
fn transport_error(e: &reqwest::Error) -> Retryable {
    let text = error_text(e);
    if e.is_connect() {
        return Retryable::Unreachable {
            cause: connect_cause(e),
            detail: text,
        };
    }
    if e.is_timeout() {
        return Retryable::Timeout;
    }
    let transport = causes(e).any(|c| c.is::<hyper::Error>());
    if !transport && e.is_decode() {
        Retryable::Undecodable(text)
    } else {
        Retryable::Connection(text)
    }
}

/// Why a connect error happened, from the types in its cause chain. TLS is recognised by the I/O error
/// kinds rustls reports through the connection (`InvalidData` for a bad certificate or a peer that does
/// not speak TLS, `UnexpectedEof` for one that hangs up mid-handshake): before the handshake, a TCP
/// connect never fails that way.
fn connect_cause(e: &reqwest::Error) -> ConnectCause {
    if e.is_dns() {
        return ConnectCause::Dns;
    }
    if e.is_timeout() {
        return ConnectCause::Timeout;
    }
    let kinds: Vec<std::io::ErrorKind> = causes(e)
        .filter_map(|c| c.downcast_ref::<std::io::Error>())
        .map(|io| io.kind())
        .collect();
    use std::io::ErrorKind::*;
    if kinds.contains(&ConnectionRefused) {
        ConnectCause::Refused
    } else if kinds.contains(&TimedOut) {
        ConnectCause::Timeout
    } else if kinds
        .iter()
        .any(|k| matches!(k, InvalidData | UnexpectedEof))
    {
        ConnectCause::Tls
    } else {
        ConnectCause::Other
    }
}

/// `e` and its causes. `io::Error::source` skips the error it wraps, so a wrapped error is
/// visited through `get_ref` instead.
fn causes<'a>(
    e: &'a (dyn StdError + 'static),
) -> impl Iterator<Item = &'a (dyn StdError + 'static)> {
    std::iter::successors(Some(e), |&e: &&'a (dyn StdError + 'static)| match e
        .downcast_ref::<std::io::Error>()
    {
        Some(io) => match io.get_ref() {
            Some(inner) => Some(inner as &(dyn StdError + 'static)),
            None => io.source(),
        },
        None => e.source(),
    })
}

/// The messages of an error's causes, on one line. reqwest's own layers ("error decoding response
/// body for url ...") are left out when there is a more specific cause, since they name the step
/// rather than the problem (a broken connection surfaces as a "decode" error). Neither reqwest nor
/// its causes put headers in their texts; reqwest's names the URL, which holds no secret.
fn error_text(e: &reqwest::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for c in causes(e).filter(|c| !c.is::<reqwest::Error>()) {
        let msg = c.to_string();
        // io::Error shows its wrapped error's text, which the next cause repeats.
        if !parts.iter().any(|p| p.contains(&msg)) {
            parts.push(msg);
        }
    }
    if parts.is_empty() {
        parts.push(e.to_string());
    }
    one_line(&parts.join(": "))
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Success(_) => f.write_str("success"),
            Outcome::Partial(r) => {
                write!(f, "partial")?;
                f.write_str(&summary(&r.errors))
            }
            Outcome::Retryable(r) => write!(f, "{r}"),
            Outcome::Fatal(x) => write!(f, "{x}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{header_param, BearerToken, UserCredentials};
    use crate::endpoint::{AuthKind, Endpoint, GroupBy};
    use crate::metric::Metric;
    use crate::request::RequestBuilder;
    use axum::body::Body;
    use axum::http::Response;
    use std::io::Write;
    use std::sync::Mutex;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// What the test server saw of one request.
    #[derive(Debug, Clone)]
    struct Seen {
        method: String,
        path: String,
        headers: HeaderMap,
        body: Vec<u8>,
    }

    /// What the test server answers.
    #[derive(Clone, Default)]
    struct Canned {
        status: u16,
        headers: Vec<(&'static str, String)>,
        body: Vec<u8>,
        delay: Duration,
    }

    fn canned(status: u16, body: &str) -> Canned {
        Canned {
            status,
            headers: vec![("content-type", "application/json".into())],
            body: body.as_bytes().to_vec(),
            ..Canned::default()
        }
    }

    type Log = Arc<Mutex<Vec<Seen>>>;

    /// An axum server on 127.0.0.1:0 answering every request with `answer(n)` for the n-th request.
    async fn serve(answer: impl Fn(usize) -> Canned + Send + Sync + 'static) -> (String, Log) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let log: Log = Arc::default();
        let answer = Arc::new(answer);
        let app = {
            let log = log.clone();
            axum::Router::new().fallback(move |req: axum::extract::Request| {
                let (log, answer) = (log.clone(), answer.clone());
                async move {
                    let (parts, body) = req.into_parts();
                    let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
                    let n = {
                        let mut log = log.lock().unwrap();
                        log.push(Seen {
                            method: parts.method.to_string(),
                            path: parts.uri.path().to_string(),
                            headers: parts.headers,
                            body: body.to_vec(),
                        });
                        log.len() - 1
                    };
                    let c = answer(n);
                    tokio::time::sleep(c.delay).await;
                    let mut resp = Response::builder().status(c.status);
                    for (k, v) in &c.headers {
                        resp = resp.header(*k, v);
                    }
                    resp.body(Body::from(c.body)).unwrap()
                }
            })
        };
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (format!("http://{addr}"), log)
    }

    /// A raw TCP server that reads one whole request per connection, writes `raw` and closes: for
    /// answers no well-behaved server would give.
    async fn serve_raw(raw: Vec<u8>) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (mut sock, _) = listener.accept().await.unwrap();
                let raw = raw.clone();
                tokio::spawn(async move {
                    read_request(&mut sock).await;
                    sock.write_all(&raw).await.unwrap();
                    sock.flush().await.unwrap();
                    // Dropping the socket closes it mid-body.
                });
            }
        });
        format!("http://{addr}")
    }

    /// Reads headers and a Content-Length body, so closing the socket afterwards is a clean FIN
    /// (closing with unread bytes would send a reset instead).
    async fn read_request(sock: &mut tokio::net::TcpStream) {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            let n = sock.read(&mut chunk).await.unwrap();
            assert!(n > 0, "client closed early");
            buf.extend_from_slice(&chunk[..n]);
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .map(|v| v.trim().parse().unwrap())
                    .unwrap_or(0);
                while buf.len() < end + 4 + len {
                    let n = sock.read(&mut chunk).await.unwrap();
                    assert!(n > 0);
                    buf.extend_from_slice(&chunk[..n]);
                }
                return;
            }
        }
    }

    fn client(base: &str) -> Client {
        Client::new(ClientConfig {
            base_url: base.to_string(),
            request_timeout: Duration::from_secs(10),
            ..ClientConfig::default()
        })
        .unwrap()
    }

    fn totals_request(auth: AuthKind) -> EngagementRequest {
        let metrics: &[Metric] = match auth {
            AuthKind::Bearer => &[Metric::Favorites, Metric::Retweets],
            AuthKind::User => &[Metric::Impressions, Metric::Favorites],
        };
        RequestBuilder::new(Endpoint::Totals, auth)
            .tweet_ids([1790000000000000001, 1790000000000000002])
            .metrics(metrics.iter().copied())
            .grouping("by_tweet", &[GroupBy::TweetId, GroupBy::EngagementType])
            .build()
            .unwrap()
    }

    fn bearer() -> Credentials {
        Credentials::Bearer(BearerToken("AAAAbearer-secret-token-value".into()))
    }

    fn user() -> UserCredentials {
        UserCredentials {
            consumer_key: "ck-public-identifier".into(),
            consumer_secret: "cs-very-secret-value".into(),
            access_token: "1234-token-identifier".into(),
            access_token_secret: "ts-very-secret-value".into(),
        }
    }

    const OK_BODY: &str = r#"{"by_tweet": {
        "1790000000000000001": {"favorites": "812", "retweets": 140},
        "1790000000000000002": {"favorites": 95, "retweets": "11"}}}"#;

    async fn send_to(c: Canned) -> (Reply, Vec<Seen>) {
        let (base, log) = serve(move |_| c.clone()).await;
        let reply = client(&base)
            .send(&totals_request(AuthKind::Bearer), &bearer())
            .await;
        let seen = log.lock().unwrap().clone();
        (reply, seen)
    }

    #[tokio::test]
    async fn success_with_string_and_numeric_counts_and_the_right_headers() {
        let (reply, seen) = send_to(canned(200, OK_BODY)).await;
        assert_eq!(reply.status, Some(200));
        assert_eq!(reply.rate, RateLimit::default());
        let Outcome::Success(r) = &reply.outcome else {
            panic!("{:?}", reply.outcome)
        };
        let values: Vec<u64> = r.groupings[0].cells.iter().map(|c| c.value).collect();
        assert_eq!(values, vec![812, 140, 95, 11]);

        assert_eq!(seen.len(), 1);
        let s = &seen[0];
        assert_eq!(s.method, "POST");
        assert_eq!(s.path, "/insights/engagement/totals");
        let h = |name: &str| s.headers.get(name).unwrap().to_str().unwrap().to_string();
        assert_eq!(h("content-type"), "application/json");
        assert_eq!(h("accept"), "application/json");
        // reqwest's gzip feature asks for gzip by itself; the identity body above was still read.
        assert!(
            h("accept-encoding").contains("gzip"),
            "{}",
            h("accept-encoding")
        );
        assert_eq!(
            h("user-agent"),
            format!("engage/{}", env!("CARGO_PKG_VERSION"))
        );
        assert_eq!(h("authorization"), "Bearer AAAAbearer-secret-token-value");
        assert_eq!(s.body, totals_request(AuthKind::Bearer).to_body());
    }

    #[tokio::test]
    async fn partial_results() {
        let body = r#"{"errors": ["1 Tweet ID(s) are unavailable"], "unavailable_tweet_ids": ["1790000000000000002"],
            "by_tweet": {"1790000000000000001": {"favorites": "1", "retweets": "2"}}}"#;
        let (reply, _) = send_to(canned(200, body)).await;
        let Outcome::Partial(r) = &reply.outcome else {
            panic!("{:?}", reply.outcome)
        };
        assert_eq!(r.unavailable_tweet_ids, vec![1790000000000000002]);
        assert_eq!(
            reply.outcome.to_string(),
            "partial: 1 Tweet ID(s) are unavailable"
        );
    }

    #[tokio::test]
    async fn client_errors_are_fatal_and_carry_the_messages() {
        let (reply, _) = send_to(canned(
            400,
            r#"{"errors": ["Tweet ID(s) are unavailable"]}"#,
        ))
        .await;
        assert_eq!(
            reply.outcome,
            Outcome::Fatal(Fatal::BadRequest {
                errors: vec!["Tweet ID(s) are unavailable".into()],
                protected: true
            })
        );
        assert_eq!(
            reply.outcome.to_string(),
            "bad request (HTTP 400), protected Tweets: Tweet ID(s) are unavailable"
        );
        let (reply, _) = send_to(canned(400, r#"{"errors": ["bad JSON"]}"#)).await;
        assert!(matches!(
            reply.outcome,
            Outcome::Fatal(Fatal::BadRequest {
                protected: false,
                ..
            })
        ));

        let text = "Your account could not be authenticated. Reason: Unknown Authorization Type";
        let (reply, _) = send_to(canned(401, &format!(r#"{{"errors": ["{text}"]}}"#))).await;
        assert_eq!(
            reply.outcome,
            Outcome::Fatal(Fatal::Unauthorized {
                errors: vec![text.into()]
            })
        );

        let (reply, _) = send_to(canned(
            403,
            r#"{"errors": ["Forbidden to access tweets for author id 99: 1790000000000000001, 1790000000000000002"]}"#,
        ))
        .await;
        let Outcome::Fatal(Fatal::Forbidden { ids, errors, .. }) = &reply.outcome else {
            panic!("{:?}", reply.outcome)
        };
        assert_eq!(ids, &vec![1790000000000000001, 1790000000000000002]);
        assert_eq!(errors.len(), 1);
        let (reply, _) = send_to(canned(
            403,
            r#"{"errors": ["Forbidden to access metrics: impressions"]}"#,
        ))
        .await;
        assert!(matches!(
            &reply.outcome,
            Outcome::Fatal(Fatal::Forbidden { ids, .. }) if ids.is_empty()
        ));

        let (reply, _) = send_to(canned(
            404,
            r#"{"errors":[{"message":"Sorry, that page does not exist","code":34}]}"#,
        ))
        .await;
        assert_eq!(reply.outcome, Outcome::Fatal(Fatal::NotFound));
        assert_eq!(reply.status, Some(404));

        let gzip_text = "This request requires gzip compression. Retry the request after setting 'Accept-Encoding' header in the request to 'gzip'.";
        let (reply, _) = send_to(canned(406, &format!(r#"{{"errors":["{gzip_text}"]}}"#))).await;
        assert_eq!(
            reply.outcome,
            Outcome::Fatal(Fatal::NotAcceptable {
                errors: vec![gzip_text.into()]
            })
        );

        // Redirects are not followed.
        let mut redirect = canned(302, "");
        redirect
            .headers
            .push(("location", "https://elsewhere.example/".into()));
        let (reply, seen) = send_to(redirect).await;
        assert_eq!(
            reply.outcome,
            Outcome::Fatal(Fatal::Other {
                status: 302,
                errors: vec![]
            })
        );
        assert_eq!(seen.len(), 1);
    }

    #[tokio::test]
    async fn rate_limits_and_server_errors_are_retryable() {
        let mut c = canned(429, r#"{"errors": ["Rate limit exceeded"]}"#);
        c.headers.extend([
            ("X-Per-Minute-Limit", "60".to_string()),
            ("x-per-minute-REMAINING", " 0 ".to_string()),
            ("X-PER-MINUTE-RESET", "1714642800".to_string()),
        ]);
        let (reply, _) = send_to(c).await;
        assert_eq!(
            reply.outcome,
            Outcome::Retryable(Retryable::RateLimited {
                errors: vec!["Rate limit exceeded".into()]
            })
        );
        assert_eq!(
            reply.rate,
            RateLimit {
                limit: Some(60),
                remaining: Some(0),
                reset: Some(UNIX_EPOCH + Duration::from_secs(1714642800)),
            }
        );
        assert_eq!(
            reply.outcome.to_string(),
            "rate limited (HTTP 429): Rate limit exceeded"
        );

        // Headers are read on successes too.
        let mut ok = canned(200, OK_BODY);
        ok.headers.extend([
            ("x-per-minute-limit", "60".to_string()),
            ("x-per-minute-remaining", "59".to_string()),
            ("x-per-minute-reset", "1714642800000".to_string()),
        ]);
        let (reply, _) = send_to(ok).await;
        assert_eq!(reply.rate.remaining, Some(59));
        assert_eq!(
            reply.rate.reset,
            Some(UNIX_EPOCH + Duration::from_secs(1714642800))
        );

        for status in [500, 502, 503] {
            let (reply, _) = send_to(canned(status, "<html>upstream trouble</html>")).await;
            assert_eq!(
                reply.outcome,
                Outcome::Retryable(Retryable::Server {
                    status,
                    errors: vec![]
                })
            );
        }
        let (reply, _) = send_to(canned(500, r#"{"errors": ["internal server error"]}"#)).await;
        assert_eq!(
            reply.outcome.to_string(),
            "server error (HTTP 500): internal server error"
        );
    }

    #[tokio::test]
    async fn a_hanging_server_times_out() {
        let mut c = canned(200, OK_BODY);
        c.delay = Duration::from_secs(30);
        let (base, _log) = serve(move |_| c.clone()).await;
        let client = Client::new(ClientConfig {
            base_url: base,
            request_timeout: Duration::from_millis(200),
            ..ClientConfig::default()
        })
        .unwrap();
        let reply = client
            .send(&totals_request(AuthKind::Bearer), &bearer())
            .await;
        assert_eq!(reply.outcome, Outcome::Retryable(Retryable::Timeout));
        assert_eq!(reply.status, None);
        assert!(
            reply.elapsed >= Duration::from_millis(150),
            "{:?}",
            reply.elapsed
        );
        assert!(
            reply.elapsed < Duration::from_secs(5),
            "{:?}",
            reply.elapsed
        );
    }

    #[tokio::test]
    async fn a_connection_dropped_mid_body_is_a_connection_failure() {
        let partial = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"by_tweet\": {\"17".to_vec();
        let base = serve_raw(partial).await;
        let reply = client(&base)
            .send(&totals_request(AuthKind::Bearer), &bearer())
            .await;
        assert_eq!(reply.status, Some(200));
        assert_eq!(
            reply.outcome.to_string(),
            "connection failed: error reading a body from connection: end of file before message length reached"
        );
        assert!(
            matches!(reply.outcome, Outcome::Retryable(Retryable::Connection(_))),
            "{:?}",
            reply.outcome
        );

        // An incomplete chunked body.
        let chunked = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n{\"by_tweet\": {\"1".to_vec();
        let base = serve_raw(chunked).await;
        let reply = client(&base)
            .send(&totals_request(AuthKind::Bearer), &bearer())
            .await;
        assert!(
            matches!(reply.outcome, Outcome::Retryable(Retryable::Connection(_))),
            "{:?}",
            reply.outcome
        );

        // A gzip body cut short by the connection: still the transport's fault.
        let gz = gzip(OK_BODY.as_bytes());
        let mut cut = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\nContent-Length: {}\r\n\r\n",
            gz.len()
        )
        .into_bytes();
        cut.extend_from_slice(&gz[..gz.len() / 2]);
        let base = serve_raw(cut).await;
        let reply = client(&base)
            .send(&totals_request(AuthKind::Bearer), &bearer())
            .await;
        assert!(
            matches!(reply.outcome, Outcome::Retryable(Retryable::Connection(_))),
            "{:?}",
            reply.outcome
        );
    }

    #[tokio::test]
    async fn a_refused_connection_is_unreachable_and_says_refused() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let reply = client(&format!("http://{addr}"))
            .send(&totals_request(AuthKind::Bearer), &bearer())
            .await;
        assert_eq!(reply.status, None);
        let Outcome::Retryable(Retryable::Unreachable { cause, detail }) = &reply.outcome else {
            panic!("{:?}", reply.outcome)
        };
        assert_eq!(*cause, ConnectCause::Refused);
        let text = reply.outcome.to_string();
        assert!(text.starts_with("connection refused: "), "{text}");
        assert!(!text.contains("AAAAbearer"), "{text}");
        assert!(!text.contains('\n'), "{text}");
        assert!(detail.contains("onnect"), "{detail}");
    }

    #[tokio::test]
    async fn a_connect_timeout_is_unreachable_and_says_timeout() {
        // A listener that never accepts, with its queue full: the kernel drops further SYNs, so a
        // connect hangs until the client's connect timeout.
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let listener = socket.listen(1).unwrap();
        let addr = listener.local_addr().unwrap();
        let mut queued = Vec::new();
        for _ in 0..4 {
            if let Ok(Ok(s)) = tokio::time::timeout(
                Duration::from_millis(200),
                tokio::net::TcpStream::connect(addr),
            )
            .await
            {
                queued.push(s);
            }
        }
        let client = Client::new(ClientConfig {
            base_url: format!("http://{addr}"),
            connect_timeout: Duration::from_millis(300),
            request_timeout: Duration::from_secs(10),
            ..ClientConfig::default()
        })
        .unwrap();
        let reply = client
            .send(&totals_request(AuthKind::Bearer), &bearer())
            .await;
        assert_unreachable(&reply, ConnectCause::Timeout);
        assert!(reply.outcome.to_string().starts_with("connect timed out: "));
        drop((queued, listener));
    }

    /// The attempt never reached a server, for this cause.
    fn assert_unreachable(reply: &Reply, want: ConnectCause) {
        assert_eq!(reply.status, None);
        assert!(
            matches!(
                &reply.outcome,
                Outcome::Retryable(Retryable::Unreachable { cause, .. }) if *cause == want
            ),
            "expected unreachable ({want:?}): {:?}",
            reply.outcome
        );
    }

    /// A TCP server at an `https://` URL that is not a TLS server: it writes `raw` to each connection
    /// and closes it.
    async fn not_tls(raw: &'static [u8]) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                let _ = sock.write_all(raw).await;
                let _ = sock.shutdown().await;
            }
        });
        format!("https://{addr}")
    }

    #[tokio::test]
    async fn a_failed_tls_handshake_is_unreachable_and_says_tls() {
        // Plain HTTP where TLS was expected, and a peer that hangs up mid-handshake.
        for raw in [
            &b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"[..],
            b"",
        ] {
            let base = not_tls(raw).await;
            let reply = client(&base)
                .send(&totals_request(AuthKind::Bearer), &bearer())
                .await;
            assert_unreachable(&reply, ConnectCause::Tls);
            assert!(
                reply
                    .outcome
                    .to_string()
                    .starts_with("TLS handshake failed: "),
                "{}",
                reply.outcome
            );
        }
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    }

    #[tokio::test]
    async fn gzip_bodies_are_decoded_and_bad_bodies_are_undecodable() {
        let mut c = canned(200, "");
        c.body = gzip(OK_BODY.as_bytes());
        c.headers.push(("content-encoding", "gzip".into()));
        let (reply, _) = send_to(c).await;
        assert!(
            matches!(reply.outcome, Outcome::Success(ref r) if r.groupings[0].cells.len() == 4),
            "{:?}",
            reply.outcome
        );

        // A 403 error body in gzip, as the API sends them.
        let mut c = canned(403, "");
        c.body = gzip(br#"{"errors": ["Forbidden to access tweets: 1790000000000000002"]}"#);
        c.headers.push(("content-encoding", "gzip".into()));
        let (reply, _) = send_to(c).await;
        assert!(
            matches!(&reply.outcome, Outcome::Fatal(Fatal::Forbidden { ids, .. }) if ids == &vec![1790000000000000002]),
            "{:?}",
            reply.outcome
        );

        let mut c = canned(200, "");
        c.body = b"\x1f\x8b\x08\x00not really gzip at all".to_vec();
        c.headers.push(("content-encoding", "gzip".into()));
        let (reply, _) = send_to(c).await;
        assert!(
            matches!(reply.outcome, Outcome::Retryable(Retryable::Undecodable(_))),
            "{:?}",
            reply.outcome
        );

        for body in [r#"{"by_tweet": {"#, "not json", r#"{"other": {}}"#] {
            let (reply, _) = send_to(canned(200, body)).await;
            let Outcome::Retryable(Retryable::Undecodable(text)) = &reply.outcome else {
                panic!("{body}: {:?}", reply.outcome)
            };
            assert!(reply
                .outcome
                .to_string()
                .starts_with("undecodable response: "));
            assert!(!text.is_empty());
        }
    }

    #[tokio::test]
    async fn every_attempt_is_signed_afresh_for_the_url_requested() {
        let (base, log) = serve(|_| canned(200, OK_BODY)).await;
        let client = client(&base);
        let creds = Credentials::User(user());
        let req = totals_request(AuthKind::User);
        for _ in 0..3 {
            let reply = client.send(&req, &creds).await;
            assert!(
                matches!(reply.outcome, Outcome::Success(_)),
                "{:?}",
                reply.outcome
            );
        }
        let seen = log.lock().unwrap().clone();
        let headers: Vec<String> = seen
            .iter()
            .map(|s| s.headers["authorization"].to_str().unwrap().to_string())
            .collect();
        let nonces: std::collections::BTreeSet<String> = headers
            .iter()
            .map(|h| header_param(h, "oauth_nonce").unwrap())
            .collect();
        assert_eq!(nonces.len(), 3, "{headers:?}");
        let url = format!("{base}/insights/engagement/totals");
        for h in &headers {
            assert!(crate::auth::tests::verify_oauth1(
                h,
                "POST",
                &url,
                "cs-very-secret-value",
                "ts-very-secret-value"
            ));
        }
    }

    #[test]
    fn base_urls_are_checked_and_normalised() {
        let new = |url: &str, insecure: bool| {
            Client::new(ClientConfig {
                base_url: url.to_string(),
                allow_insecure_http: insecure,
                ..ClientConfig::default()
            })
        };
        assert_eq!(
            new("http://example.com", false).unwrap_err(),
            ClientError::InsecureHttp("http://example.com".into())
        );
        assert!(new("http://example.com", false)
            .unwrap_err()
            .to_string()
            .contains("http://example.com"));
        assert!(new("http://10.0.0.1:8080", false).is_err());
        assert!(new("http://localhost.example.com", false).is_err());
        for ok in [
            "http://127.0.0.1:1",
            "http://127.5.6.7:8080",
            "http://localhost:3000/",
            "http://[::1]:8080",
        ] {
            assert!(new(ok, false).is_ok(), "{ok}");
        }
        assert!(new("http://example.com", true).is_ok());
        assert!(matches!(
            new("ftp://example.com", true),
            Err(ClientError::UnsupportedScheme { .. })
        ));
        for bad in [
            "not a url",
            "",
            "https://user:pw@data-api.x.com",
            "https://data-api.x.com/?q=1",
            "https://data-api.x.com/#f",
        ] {
            assert!(
                matches!(new(bad, false), Err(ClientError::BadUrl { .. })),
                "{bad}"
            );
        }
        assert_eq!(
            new("HTTPS://Data-API.X.com:443/", false)
                .unwrap()
                .base_url(),
            "https://data-api.x.com"
        );
        assert_eq!(
            new("https://proxy.example:8443/engagement/", false)
                .unwrap()
                .base_url(),
            "https://proxy.example:8443/engagement"
        );
        assert_eq!(
            Client::new(ClientConfig::default()).unwrap().base_url(),
            "https://data-api.x.com"
        );
    }

    #[test]
    fn outcome_texts_are_one_short_line() {
        let long = vec!["x".repeat(1000), "line\nbreak".into()];
        for o in [
            Outcome::Retryable(Retryable::Server {
                status: 503,
                errors: long.clone(),
            }),
            Outcome::Fatal(Fatal::Other {
                status: 418,
                errors: long.clone(),
            }),
        ] {
            let t = o.to_string();
            assert!(!t.contains('\n'));
            assert!(t.chars().count() < 350, "{}", t.len());
        }
        assert_eq!(
            Outcome::Retryable(Retryable::Timeout).to_string(),
            "timed out"
        );
        assert_eq!(
            Fatal::Forbidden {
                ids: vec![1],
                errors: vec!["Forbidden to access tweets: 1".into()],
                named: true,
            }
            .to_string(),
            "forbidden (HTTP 403): Forbidden to access tweets: 1"
        );
        assert_eq!(
            Fatal::Unauthorized { errors: vec![] }.to_string(),
            "unauthorized"
        );
    }

    fn plain(status: u16, body: &str) -> Canned {
        Canned {
            status,
            headers: vec![("content-type", "text/html".into())],
            body: body.as_bytes().to_vec(),
            ..Canned::default()
        }
    }

    /// A 4xx body that is not JSON keeps its first non-blank line (trimmed, cut) in the message.
    #[tokio::test]
    async fn a_non_json_4xx_body_keeps_its_first_line() {
        let body = "\n  <h1>Access denied by edge proxy</h1>  \n<p>ref 42</p>\n";
        let (reply, _) = send_to(plain(401, body)).await;
        assert_eq!(
            reply.outcome.to_string(),
            "unauthorized: <h1>Access denied by edge proxy</h1>"
        );
        let (reply, _) = send_to(plain(418, body)).await;
        assert_eq!(
            reply.outcome.to_string(),
            "unexpected HTTP 418: <h1>Access denied by edge proxy</h1>"
        );
        let (reply, _) = send_to(plain(403, body)).await;
        assert!(
            reply
                .outcome
                .to_string()
                .ends_with(": <h1>Access denied by edge proxy</h1>"),
            "{}",
            reply.outcome
        );
        let long = "x ".repeat(400);
        let (reply, _) = send_to(plain(401, &long)).await;
        let Outcome::Fatal(Fatal::Unauthorized { errors }) = &reply.outcome else {
            panic!("{:?}", reply.outcome)
        };
        assert!(errors[0].chars().count() <= BODY_LINE + 1, "{errors:?}");
    }

    /// A line that could hold a credential is never kept: the message says a line was left out.
    #[tokio::test]
    async fn a_body_line_that_could_hold_a_credential_is_left_out() {
        for line in [
            "Invalid header: OAuth oauth_consumer_key=\"ck-secret\", oauth_signature=\"x\"",
            "Authorization: Bearer AAAAbearer-secret-token-value",
            "bad bearer token",
            "token AAAAAAAAAAAAAAAAAAAAAMLheAAAAAAA0%2BuSeid%2BULvsea4JtiGRiSDSJSI rejected",
        ] {
            let (reply, _) = send_to(plain(401, line)).await;
            let t = reply.outcome.to_string();
            assert!(
                !t.contains("secret") && !t.contains("AAAAAAAA") && !t.contains("oauth_"),
                "{t}"
            );
            assert!(t.contains("left out"), "{t}");
        }
    }

    /// A 403 that does not list Tweet IDs (not JSON, or JSON without the text) is forbidden for
    /// every ID of the request, not retried; one about metrics still names no ID (the run stops).
    #[tokio::test]
    async fn a_403_without_listed_ids_is_forbidden_for_every_id_of_the_request() {
        let all = vec![1790000000000000001, 1790000000000000002];
        for c in [
            plain(403, "<html><body>Forbidden</body></html>"),
            plain(403, ""),
            canned(403, r#"{"title": "Forbidden", "detail": "not allowed"}"#),
        ] {
            let (reply, _) = send_to(c).await;
            let Outcome::Fatal(Fatal::Forbidden { ids, named, .. }) = &reply.outcome else {
                panic!("{:?}", reply.outcome)
            };
            assert_eq!((ids, *named), (&all, false));
        }
        let (reply, _) = send_to(plain(403, "Forbidden to access metrics: impressions")).await;
        assert!(matches!(
            &reply.outcome,
            Outcome::Fatal(Fatal::Forbidden { ids, .. }) if ids.is_empty()
        ));
    }

    #[tokio::test]
    async fn unusable_credentials_are_fatal_without_a_request() {
        let (base, log) = serve(|_| canned(200, OK_BODY)).await;
        let reply = client(&base)
            .send(
                &totals_request(AuthKind::Bearer),
                &Credentials::Bearer(BearerToken("bad\ntoken".into())),
            )
            .await;
        assert!(matches!(
            reply.outcome,
            Outcome::Fatal(Fatal::Unauthorized { .. })
        ));
        assert_eq!(reply.status, None);
        assert!(log.lock().unwrap().is_empty());
    }
}

//! The HTTP server: the axum router, the request handler and the running-server handle.
//!
//! Design note: the order of checks for a request to an endpoint path is fixed and documented in
//! `docs/simulator.md`, because clients classify failures by the first one they hit:
//! rate limit → method → injected failure (5xx / 429 / hang) → 406 without gzip → authentication →
//! JSON → [`validate`] (every request rule, shared with the client) → ownership (403) →
//! protected Tweets (400) → 200, with deleted Tweets reported in the body (in the documentation's
//! variant shapes when `doc_shapes` fires). Latency and body faults (reset, malformed, no-gzip) apply
//! to whatever answer comes out of that chain.
//!
//! The hot path takes no global lock except the rate limiter's (a few instructions) and the
//! nonce-cache shard of OAuth requests; counters are atomics.

use std::cell::RefCell;
use std::collections::HashSet;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header::{HeaderMap, HeaderValue, ALLOW, CONTENT_ENCODING, CONTENT_TYPE, HOST};
use axum::http::{Method, StatusCode, Uri};
use axum::response::Response;
use axum::routing::{any, MethodRouter};
use axum::serve::ListenerExt;
use axum::Router;
use engagement_api::request::{validate, WireRequest};
use engagement_api::{AuthKind, Endpoint};
use flate2::{Compress, Compression, Crc, FlushCompress, Status};
use futures::StreamExt;
use time::OffsetDateTime;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::SimConfig;
use crate::faults::{BodyFault, Failure, Faults};
use crate::metrics;
use crate::oauth::{RequestParts, Verifier};
use crate::ratelimit::{RateLimiter, RateStatus};
use crate::render::{self, Answer};

/// The 406 text, as reported by a user of the real API.
pub const GZIP_REQUIRED: &str = "This request requires gzip compression. Retry the request after setting 'Accept-Encoding' header in the request to 'gzip'.";
/// The 404 text (the v1.1 wording X uses for unknown paths).
pub const NOT_FOUND: &str = "Sorry, that page does not exist";
/// How long a hanging request waits before it gives up by itself.
const HANG: Duration = Duration::from_secs(3600);

/// Shared state of one running simulator.
struct Sim {
    config: SimConfig,
    verifier: Verifier,
    /// Each app's budget, by app index (see [`SimConfig::app_index`]).
    rates: Vec<Option<RateLimiter>>,
    faults: Faults,
    /// Tweet IDs answered with a 200 so far (each request's distinct IDs), for tests that count
    /// how often an ID was asked for (`/sim/requests`' `ids`).
    ids_answered: std::sync::atomic::AtomicU64,
    /// Becomes true at shutdown, so hanging requests end and graceful shutdown can finish.
    shutdown: watch::Receiver<bool>,
}

/// An answer before encoding.
struct Reply {
    status: StatusCode,
    body: String,
    /// Add `Allow: POST` (405).
    allow: bool,
}

impl Reply {
    fn error(status: u16, text: &str) -> Reply {
        Reply {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            body: render::errors_body(&[text]),
            allow: false,
        }
    }
}

/// A running simulator. Dropping it stops the server too (without waiting).
pub struct SimHandle {
    /// The bound address (the real port when bound to port 0).
    pub addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    task: Option<JoinHandle<io::Result<()>>>,
}

impl std::fmt::Debug for SimHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimHandle")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl SimHandle {
    /// The base URL, e.g. `http://127.0.0.1:8787`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting, ends hanging requests, lets in-flight answers finish (for at most 5 s) and
    /// waits for the server task.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        if let Some(mut task) = self.task.take() {
            if tokio::time::timeout(Duration::from_secs(5), &mut task)
                .await
                .is_err()
            {
                task.abort();
            }
        }
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}

/// Binds `addr` (port 0 picks a free port) and serves on the current tokio runtime.
pub async fn start(config: SimConfig, addr: SocketAddr) -> io::Result<SimHandle> {
    config
        .validate()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
    let listener = TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let (tx, rx) = watch::channel(false);
    let sim = Arc::new(Sim {
        verifier: Verifier::new(&config),
        rates: config
            .rate_limits()
            .into_iter()
            .map(|l| l.map(|n| RateLimiter::new(n, config.window_secs)))
            .collect(),
        faults: Faults::new(config.faults.clone(), config.seed),
        ids_answered: std::sync::atomic::AtomicU64::new(0),
        shutdown: rx.clone(),
        config,
    });
    // Small request/response pairs: Nagle would add latency to every answer.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let mut signal = rx;
    let task = tokio::spawn(async move {
        axum::serve(listener, router(sim))
            .with_graceful_shutdown(async move {
                // Err means the handle is gone, which also means stop.
                let _ = signal.wait_for(|stop| *stop).await;
            })
            .await
    });
    Ok(SimHandle {
        addr,
        shutdown: tx,
        task: Some(task),
    })
}

fn router(sim: Arc<Sim>) -> Router {
    let mut app = Router::new();
    for endpoint in Endpoint::ALL {
        app = app.route(endpoint.path(), endpoint_route(endpoint));
    }
    // Not part of the API: lets a test in another process ask how many requests reached the
    // endpoint paths (e.g. none after a run was told to stop). Documented in docs/simulator.md.
    app = app.route(
        RECEIVED_PATH,
        axum::routing::get(|State(sim): State<Arc<Sim>>| async move {
            format!(
                "{{\"requests\":{},\"ids\":{}}}\n",
                sim.faults.received(),
                sim.ids_answered.load(std::sync::atomic::Ordering::Relaxed)
            )
        }),
    );
    app.fallback(not_found).with_state(sim)
}

/// The simulator's own path that reports the requests received on the endpoint paths.
pub const RECEIVED_PATH: &str = "/sim/requests";

fn endpoint_route(endpoint: Endpoint) -> MethodRouter<Arc<Sim>> {
    // `any` rather than `post`: the 405 answer then carries the API's error body and counts
    // against the budget like every other request to the path.
    any(
        move |State(sim): State<Arc<Sim>>,
              method: Method,
              uri: Uri,
              headers: HeaderMap,
              body: Bytes| async move {
            handle(sim, endpoint, method, uri, headers, body).await
        },
    )
}

async fn not_found(headers: HeaderMap) -> Response {
    let reply = Reply::error(404, NOT_FOUND);
    encode(reply, accepts_gzip(&headers), None, None)
}

async fn handle(
    sim: Arc<Sim>,
    endpoint: Endpoint,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let real_now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    // Each app has its own budget: the request counts against the app it says it is from.
    let app = sim.verifier.app_of(
        headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok()),
    );
    let limiter = sim.rates.get(app).and_then(Option::as_ref);
    let rate = limiter.map(|r| r.check(real_now));
    let plan = sim.faults.plan();
    let gzip = accepts_gzip(&headers);
    let reply = sim
        .answer(
            endpoint,
            &method,
            &uri,
            &headers,
            &body,
            rate.zip(limiter),
            plan.failure,
            plan.doc_shapes,
            gzip,
            real_now as i64,
        )
        .await;
    tracing::debug!(
        %endpoint,
        status = reply.status.as_u16(),
        failure = ?plan.failure,
        body_fault = ?plan.body,
        doc_shapes = plan.doc_shapes,
        "answer"
    );
    if !plan.delay.is_zero() {
        tokio::time::sleep(plan.delay).await;
    }
    encode(reply, gzip, rate, plan.body)
}

impl Sim {
    #[allow(clippy::too_many_arguments)]
    async fn answer(
        &self,
        endpoint: Endpoint,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        body: &[u8],
        rate: Option<(RateStatus, &RateLimiter)>,
        failure: Option<Failure>,
        doc_shapes: bool,
        gzip: bool,
        real_now: i64,
    ) -> Reply {
        if let Some((status, limiter)) = rate {
            if !status.allowed {
                return Reply::error(429, &limiter.message());
            }
        }
        if method != Method::POST {
            return Reply {
                allow: true,
                ..Reply::error(405, "This endpoint accepts POST requests only")
            };
        }
        match failure {
            Some(Failure::Status(500)) => return Reply::error(500, "internal server error"),
            Some(Failure::Status(502)) => return Reply::error(502, "Bad Gateway"),
            Some(Failure::Status(s)) => return Reply::error(s, "Service Unavailable"),
            Some(Failure::TooManyRequests) => {
                let text =
                    rate.map_or_else(|| "Exceeded rate limit".to_string(), |(_, r)| r.message());
                return Reply::error(429, &text);
            }
            Some(Failure::Hang) => {
                let mut stop = self.shutdown.clone();
                tokio::select! {
                    _ = tokio::time::sleep(HANG) => {}
                    _ = stop.wait_for(|s| *s) => {}
                }
                return Reply::error(503, "Service Unavailable");
            }
            None => {}
        }
        if self.config.require_gzip && !gzip {
            return Reply::error(406, GZIP_REQUIRED);
        }

        let header_str = |name| {
            headers
                .get(name)
                .and_then(|v: &HeaderValue| v.to_str().ok())
        };
        let parts = RequestParts {
            authorization: header_str(axum::http::header::AUTHORIZATION),
            host: header_str(HOST).unwrap_or(""),
            path: uri.path(),
            query: uri.query(),
            content_type: header_str(CONTENT_TYPE),
            body,
        };
        let principal = match self.verifier.verify(&parts, real_now) {
            Ok(p) => p,
            Err(e) => return Reply::error(401, &e.message()),
        };

        if body.iter().all(u8::is_ascii_whitespace) {
            return Reply::error(400, "No JSON body: send the request as a JSON object");
        }
        let wire: WireRequest = match serde_json::from_slice(body) {
            Ok(w) => w,
            Err(e) => return Reply::error(400, &format!("Invalid JSON in request body: {e}")),
        };
        let now = self.config.now.unwrap_or_else(OffsetDateTime::now_utc);
        let request = match validate(endpoint, principal.kind, &wire, now) {
            Ok(r) => r,
            Err(e) => return Reply::error(e.status(), &e.to_string()),
        };

        let mut seen = HashSet::with_capacity(request.tweet_ids.len());
        let ids: Vec<u64> = request
            .tweet_ids
            .iter()
            .copied()
            .filter(|id| seen.insert(*id))
            .collect();

        // Ownership: with n accounts, account i owns the IDs with id % n == i. Bearer requests
        // read public metrics of any public Tweet, so they have no owner check.
        let accounts = self.config.accounts.len() as u64;
        if let (AuthKind::User, Some(account), true) =
            (principal.kind, principal.account, accounts > 1)
        {
            let unowned: Vec<String> = ids
                .iter()
                .filter(|&&id| id % accounts != account as u64)
                .map(u64::to_string)
                .collect();
            if !unowned.is_empty() {
                return Reply::error(
                    403,
                    &format!("Forbidden to access tweets: {}", unowned.join(", ")),
                );
            }
        }

        let seed = self.config.seed;
        if ids
            .iter()
            .any(|&id| metrics::is_protected(seed, id, self.config.protected))
        {
            return Reply::error(400, "Tweet ID(s) are unavailable");
        }
        let (unavailable, returned): (Vec<u64>, Vec<u64>) = ids
            .iter()
            .partition(|&&id| metrics::is_deleted(seed, id, self.config.deleted));

        self.ids_answered
            .fetch_add(ids.len() as u64, std::sync::atomic::Ordering::Relaxed);
        let body = render::success_body(&Answer {
            request: &request,
            returned: &returned,
            unavailable: &unavailable,
            now,
            seed,
            hour_without_day: self.config.hour_without_day,
            doc_shapes,
        });
        Reply {
            status: StatusCode::OK,
            body,
            allow: false,
        }
    }
}

/// Whether `Accept-Encoding` lists gzip (or `*`) with a non-zero quality.
fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(axum::http::header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|item| {
            let mut parts = item.split(';');
            let coding = parts.next().unwrap_or("").trim();
            let zero_q = parts.any(|p| {
                p.trim()
                    .strip_prefix("q=")
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    == Some(0.0)
            });
            (coding.eq_ignore_ascii_case("gzip") || coding == "*") && !zero_q
        })
}

/// Turns a reply into an HTTP response: headers, gzip, and the body fault.
fn encode(
    reply: Reply,
    gzip: bool,
    rate: Option<RateStatus>,
    fault: Option<BodyFault>,
) -> Response {
    let mut payload = reply.body.into_bytes();
    if fault == Some(BodyFault::Malformed) {
        // Cutting an object in half always leaves it unclosed, so it never parses.
        payload.truncate(payload.len() / 2);
    }
    let compress = gzip && fault != Some(BodyFault::NoGzip);
    if compress {
        payload = gzip_bytes(&payload);
    }

    let mut response = Response::new(Body::empty());
    *response.status_mut() = reply.status;
    let h = response.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if compress {
        h.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    if reply.allow {
        h.insert(ALLOW, HeaderValue::from_static("POST"));
    }
    if let Some(r) = rate {
        h.insert("x-per-minute-limit", HeaderValue::from(r.limit));
        h.insert("x-per-minute-remaining", HeaderValue::from(r.remaining));
        h.insert("x-per-minute-reset", HeaderValue::from(r.reset));
    }

    *response.body_mut() = if fault == Some(BodyFault::Reset) {
        // Status, headers and the first half of the body go out; then the body stream fails and
        // hyper drops the connection, as a reset mid-transfer looks to a client. The pause lets
        // the first chunk reach the wire before the abort.
        let all = Bytes::from(payload);
        let first = all.slice(..all.len() / 2);
        let stream = futures::stream::iter([Ok::<Bytes, io::Error>(first)]).chain(
            futures::stream::once(async {
                tokio::time::sleep(Duration::from_millis(20)).await;
                Err(io::Error::new(
                    io::ErrorKind::ConnectionReset,
                    "injected connection reset",
                ))
            }),
        );
        Body::from_stream(stream)
    } else {
        Body::from(payload)
    };
    response
}

thread_local! {
    // miniz's compressor state is a few hundred KB; allocating (and page-faulting) it per answer
    // cost more than the compression itself, so each worker thread keeps one and resets it.
    static DEFLATE: RefCell<Compress> = RefCell::new(Compress::new(Compression::fast(), false));
}

/// gzip (RFC 1952) around a raw deflate stream from the thread's reusable compressor.
fn gzip_bytes(data: &[u8]) -> Vec<u8> {
    // ID1 ID2, CM = deflate, no flags, no mtime, XFL = fastest, OS = unknown.
    const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 4, 255];
    let mut out = Vec::with_capacity(data.len() / 3 + 64);
    out.extend_from_slice(&HEADER);
    DEFLATE.with(|cell| {
        let mut c = cell.borrow_mut();
        c.reset();
        loop {
            let consumed = c.total_in() as usize;
            if out.capacity() - out.len() < 64 {
                out.reserve(out.capacity() / 2 + 64);
            }
            let status = c
                .compress_vec(&data[consumed..], &mut out, FlushCompress::Finish)
                .expect("deflate into memory cannot fail");
            if status == Status::StreamEnd {
                break;
            }
        }
    });
    let mut crc = Crc::new();
    crc.update(data);
    out.extend_from_slice(&crc.sum().to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_encoding_forms() {
        let h = |v: &'static str| {
            let mut m = HeaderMap::new();
            m.insert(
                axum::http::header::ACCEPT_ENCODING,
                HeaderValue::from_static(v),
            );
            m
        };
        assert!(accepts_gzip(&h("gzip")));
        assert!(accepts_gzip(&h("deflate, GZIP;q=0.5")));
        assert!(accepts_gzip(&h("*")));
        assert!(!accepts_gzip(&h("identity")));
        assert!(!accepts_gzip(&h("gzip;q=0")));
        assert!(!accepts_gzip(&HeaderMap::new()));
    }

    #[test]
    fn gzip_round_trips_with_a_reused_compressor() {
        use std::io::Read;
        for text in ["", "{}", &"{\"a\":\"12345\"}".repeat(5000), "x"] {
            let mut back = String::new();
            flate2::read::GzDecoder::new(&gzip_bytes(text.as_bytes())[..])
                .read_to_string(&mut back)
                .unwrap();
            assert_eq!(back, text);
        }
    }
}

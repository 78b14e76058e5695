//! The simulator's request handling, end to end over HTTP/1.1 on loopback.
//!
//! `engage-sim` exposes only `start` (its router and handler are private), so one simulator is
//! started per fuzzing process on `127.0.0.1:0` inside a current-thread tokio runtime, and each
//! input becomes one request on a kept-alive hyper client connection. Faults and the rate limit are
//! off (both depend on request order or the real clock, which would make crashes unreproducible);
//! three accounts, a few deleted and protected Tweets, gzip required, `now` pinned.
//!
//! Input layout: three selector bytes, then up to four fields separated by NUL:
//! `sel0 sel1 sel2 auth_text \0 path_text \0 accept_encoding \0 body`.
//! - `sel0`: bits 0-1 path (totals, 28hr, historical, `/` + `path_text`); bits 2-4 method (0-3 POST,
//!   then GET, PUT, DELETE, HEAD). On an endpoint path a non-empty `path_text` is the query string.
//! - `sel1`: bits 0-2 authentication: none; the valid bearer token; `Bearer <auth_text>`; OAuth
//!   signed for an account with `auth_text` as extra `k=v&k=v` header parameters; OAuth signed
//!   with `auth_text` as the raw `oauth_timestamp`; `auth_text` as the whole header;
//!   `OAuth <auth_text>`; a correctly signed request sent twice (replay). Bits 3-4: the account
//!   (the third value is an unknown token).
//! - `sel2`: bits 0-1 `Accept-Encoding`: `gzip`, none, `gzip;q=0`, `accept_encoding`; bits 2-3
//!   `Content-Type`: JSON, none, form-urlencoded, JSON with a charset.
//!
//! Asserts: no panic (in the simulator or the harness); every status is one the simulator documents
//! (200, 400, 401, 403, 404, 405, 406 with faults and rate limit off); a gzip body decompresses;
//! every non-200 body has an `errors` message; 405 carries `Allow: POST`; gzip accepted never
//! gets 406; a valid bearer token or a correctly signed request is never refused with 401; a replayed
//! signed request is refused with 401 once the first one was authenticated; and a 200 answers a
//! request that `validate` accepts, with a body that `parse_response` reads for the request's
//! groupings, naming only requested Tweets.
#![no_main]

use std::io::Read;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{LazyLock, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use engage_sim::oauth::{authorization_header, base_string, base_url, encode, signature};
use engage_sim::{Account, SimConfig, SimHandle};
use engagement_api::request::{validate, WireRequest};
use engagement_api::response::{parse_error_body, parse_response};
use engagement_api::{AuthKind, Endpoint};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{HeaderValue, ACCEPT_ENCODING, ALLOW, AUTHORIZATION, CONTENT_ENCODING};
use hyper::header::{CONTENT_TYPE, HOST};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use libfuzzer_sys::fuzz_target;
use time::macros::datetime;
use time::OffsetDateTime;
use tokio::runtime::Runtime;

const NOW: OffsetDateTime = datetime!(2024-05-02 09:40 UTC);
const DOCUMENTED: [u16; 7] = [200, 400, 401, 403, 404, 405, 406];

fn config() -> SimConfig {
    let account = |i: usize| Account {
        name: format!("account-{i}"),
        access_token: format!("access-token-{i}"),
        access_token_secret: format!("access-token-secret-{i}"),
        app: None,
    };
    SimConfig {
        seed: 42,
        now: Some(NOW),
        accounts: vec![account(0), account(1), account(2)],
        bearer_tokens: vec!["demo-bearer-token".into()],
        rate_limit: None,
        require_gzip: true,
        deleted: 0.05,
        protected: 0.02,
        ..SimConfig::default()
    }
}

struct Harness {
    rt: Runtime,
    addr: SocketAddr,
    config: SimConfig,
    sender: Option<SendRequest<Full<Bytes>>>,
    _sim: SimHandle,
}

static HARNESS: LazyLock<Mutex<Harness>> = LazyLock::new(|| {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let config = config();
    let sim = rt
        .block_on(engage_sim::start(
            config.clone(),
            "127.0.0.1:0".parse().unwrap(),
        ))
        .expect("start the simulator");
    engage_fuzz::install();
    Mutex::new(Harness {
        addr: sim.addr,
        rt,
        config,
        sender: None,
        _sim: sim,
    })
});

static NONCE: AtomicU64 = AtomicU64::new(0);

struct Answer {
    status: StatusCode,
    allow: Option<HeaderValue>,
    gzip: bool,
    body: Bytes,
}

impl Harness {
    /// `None` when the simulator hit a known finding (its connection task panicked).
    fn send(&mut self, req: Request<Full<Bytes>>) -> Option<Answer> {
        let addr = self.addr;
        let sender = &mut self.sender;
        self.rt.block_on(async move {
            // One retry on a fresh connection, in case the server closed the kept-alive one.
            let mut req = Some(req);
            for attempt in 0..2 {
                if sender.as_mut().is_none_or(|s| s.is_closed()) {
                    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
                    tcp.set_nodelay(true).ok();
                    let (s, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
                        .await
                        .expect("handshake");
                    tokio::spawn(conn);
                    *sender = Some(s);
                }
                let s = sender.as_mut().expect("connected");
                if s.ready().await.is_err() {
                    *sender = None;
                    continue;
                }
                let r = req.take().expect("not sent yet");
                let keep = clone_request(&r);
                match s.send_request(r).await {
                    Ok(resp) => {
                        let status = resp.status();
                        let allow = resp.headers().get(ALLOW).cloned();
                        let gzip = resp
                            .headers()
                            .get(CONTENT_ENCODING)
                            .is_some_and(|v| v == "gzip");
                        let body = resp
                            .into_body()
                            .collect()
                            .await
                            .expect("read the response body")
                            .to_bytes();
                        return Some(Answer {
                            status,
                            allow,
                            gzip,
                            body,
                        });
                    }
                    Err(_) if engage_fuzz::take_known_panic() => {
                        *sender = None;
                        return None;
                    }
                    Err(_) if attempt == 0 => {
                        *sender = None;
                        req = Some(keep);
                    }
                    Err(e) => panic!("the simulator dropped the request: {e}"),
                }
            }
            unreachable!("two attempts")
        })
    }
}

fn clone_request(r: &Request<Full<Bytes>>) -> Request<Full<Bytes>> {
    let mut b = Request::builder()
        .method(r.method().clone())
        .uri(r.uri().clone());
    for (k, v) in r.headers() {
        b = b.header(k, v);
    }
    // `Full` has exactly one frame; the original body is not consumed until sent.
    let body = r.body().clone();
    b.body(body).expect("cloned request")
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Auth {
    None,
    BearerValid,
    BearerText,
    SignedExtra,
    SignedTimestamp,
    Raw,
    OAuthText,
    Replay,
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 3 {
        return;
    }
    let (sel, rest) = data.split_at(3);
    let mut fields = rest.splitn(4, |&b| b == 0);
    let auth_text = String::from_utf8_lossy(fields.next().unwrap_or_default()).into_owned();
    let path_text = fields.next().unwrap_or_default();
    let ae_text = fields.next().unwrap_or_default();
    let body = Bytes::copy_from_slice(fields.next().unwrap_or_default());

    let endpoint = match sel[0] & 3 {
        0 => Some(Endpoint::Totals),
        1 => Some(Endpoint::Hr28),
        2 => Some(Endpoint::Historical),
        _ => None,
    };
    let method = match (sel[0] >> 2) & 7 {
        0..=3 => Method::POST,
        4 => Method::GET,
        5 => Method::PUT,
        6 => Method::DELETE,
        _ => Method::HEAD,
    };
    let auth = [
        Auth::None,
        Auth::BearerValid,
        Auth::BearerText,
        Auth::SignedExtra,
        Auth::SignedTimestamp,
        Auth::Raw,
        Auth::OAuthText,
        Auth::Replay,
    ][usize::from(sel[1] & 7)];
    let account = usize::from((sel[1] >> 3) & 3);
    let form = (sel[2] >> 2) & 3 == 2;

    let mut h = HARNESS.lock().unwrap_or_else(|e| e.into_inner());
    let host = h.addr.to_string();
    let path = match endpoint {
        Some(e) => e.path().to_string(),
        None => format!("/{}", uri_safe(path_text)),
    };
    let path_and_query = match endpoint {
        Some(_) if !path_text.is_empty() => format!("{path}?{}", uri_safe(path_text)),
        _ => path.clone(),
    };
    let Ok(uri) = hyper::Uri::try_from(path_and_query.as_str()) else {
        return;
    };
    // The simulator signs what it receives, so sign exactly the path and query hyper sends.
    let (sent_path, sent_query) = (uri.path().to_string(), uri.query().map(str::to_string));

    let (token, token_secret) = match h.config.accounts.get(account) {
        Some(a) => (a.access_token.clone(), a.access_token_secret.clone()),
        None => ("no-such-token".to_string(), "no-such-secret".to_string()),
    };
    let now_secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as i64;
    let nonce = format!(
        "fuzz{}n{}",
        std::process::id(),
        NONCE.fetch_add(1, Ordering::Relaxed)
    );
    let url = base_url(&host, &sent_path);
    let signed_url = match &sent_query {
        Some(q) => format!("{url}?{q}"),
        None => url.clone(),
    };
    let c = &h.config;
    let authorization: Option<String> = match auth {
        Auth::None => None,
        Auth::BearerValid => Some("Bearer demo-bearer-token".into()),
        Auth::BearerText => Some(format!("Bearer {auth_text}")),
        Auth::SignedExtra | Auth::Replay => {
            let extra: Vec<(&str, &str)> = auth_text
                .split('&')
                .filter(|p| !p.is_empty())
                .map(|p| p.split_once('=').unwrap_or((p, "")))
                .collect();
            Some(authorization_header(
                &signed_url,
                &c.consumer_key,
                &c.consumer_secret,
                &token,
                &token_secret,
                &nonce,
                now_secs,
                if auth == Auth::Replay { &[] } else { &extra },
            ))
        }
        Auth::SignedTimestamp => {
            let mut params: Vec<(String, String)> = vec![
                ("oauth_consumer_key".into(), c.consumer_key.clone()),
                ("oauth_nonce".into(), nonce.clone()),
                ("oauth_signature_method".into(), "HMAC-SHA1".into()),
                ("oauth_timestamp".into(), auth_text.clone()),
                ("oauth_token".into(), token.clone()),
                ("oauth_version".into(), "1.0".into()),
            ];
            let mut signed = params.clone();
            if let Some(q) = &sent_query {
                signed.extend(form_pairs(q));
            }
            if form {
                signed.extend(form_pairs(&String::from_utf8_lossy(&body)));
            }
            let sig = signature(
                &base_string("POST", &url, &signed),
                &c.consumer_secret,
                &token_secret,
            );
            params.push(("oauth_signature".into(), sig));
            let fields: Vec<String> = params
                .iter()
                .map(|(k, v)| format!("{}=\"{}\"", encode(k), encode(v)))
                .collect();
            Some(format!("OAuth {}", fields.join(", ")))
        }
        Auth::Raw => Some(auth_text.clone()),
        Auth::OAuthText => Some(format!("OAuth {auth_text}")),
    };
    let accept_encoding: Option<Vec<u8>> = match sel[2] & 3 {
        0 => Some(b"gzip".to_vec()),
        1 => None,
        2 => Some(b"gzip;q=0".to_vec()),
        _ => Some(ae_text.to_vec()),
    };
    let content_type = match (sel[2] >> 2) & 3 {
        0 => Some("application/json"),
        1 => None,
        2 => Some("application/x-www-form-urlencoded"),
        _ => Some("application/json; charset=utf-8"),
    };

    let mut b = Request::builder()
        .method(method.clone())
        .uri(uri)
        .header(HOST, &host);
    // Header values hyper cannot send are left out: the server never sees them anyway.
    let auth_header = authorization
        .as_deref()
        .and_then(|a| HeaderValue::from_bytes(a.as_bytes()).ok());
    if let Some(v) = &auth_header {
        b = b.header(AUTHORIZATION, v.clone());
    }
    let ae_header = accept_encoding.and_then(|a| HeaderValue::from_bytes(&a).ok());
    if let Some(v) = &ae_header {
        b = b.header(ACCEPT_ENCODING, v.clone());
    }
    if let Some(ct) = content_type {
        b = b.header(CONTENT_TYPE, ct);
    }
    let req = b.body(Full::new(body.clone())).expect("a valid request");
    let replay = (auth == Auth::Replay).then(|| clone_request(&req));

    let Some(answer) = h.send(req) else {
        return;
    };
    let status = answer.status.as_u16();
    assert!(
        DOCUMENTED.contains(&status),
        "undocumented status {status}: {}",
        String::from_utf8_lossy(&answer.body)
    );
    if method == Method::HEAD {
        return;
    }
    let text = if answer.gzip {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&answer.body[..])
            .read_to_end(&mut out)
            .expect("a gzip body decompresses");
        out
    } else {
        answer.body.to_vec()
    };
    if status != 200 {
        assert!(
            !parse_error_body(&text).is_empty(),
            "{status} without an errors message: {}",
            String::from_utf8_lossy(&text)
        );
    }
    if status == 405 {
        assert_eq!(
            answer.allow.as_ref().map(|v| v.as_bytes()),
            Some(&b"POST"[..])
        );
    }
    let gzip_accepted = ae_header.as_ref().is_some_and(|v| v == "gzip");
    if gzip_accepted {
        assert_ne!(status, 406, "406 although gzip was accepted");
    }
    // Requests the simulator must authenticate.
    let must_authenticate = endpoint.is_some()
        && method == Method::POST
        && gzip_accepted
        && match auth {
            Auth::BearerValid => true,
            Auth::SignedExtra | Auth::Replay => {
                account < h.config.accounts.len() && !form && auth_text.is_empty()
            }
            _ => false,
        };
    if must_authenticate {
        assert_ne!(
            status,
            401,
            "{auth:?} refused: {}",
            String::from_utf8_lossy(&text)
        );
    }

    if status == 200 {
        let endpoint = endpoint.expect("only endpoint paths answer 200");
        assert_eq!(method, Method::POST);
        let kind = match auth_header.as_ref().and_then(|v| v.to_str().ok()) {
            Some(a) if a.trim().to_ascii_lowercase().starts_with("bearer") => AuthKind::Bearer,
            _ => AuthKind::User,
        };
        let wire: WireRequest =
            serde_json::from_slice(&body).expect("a 200 for a body that is not a request");
        let request = engage_fuzz::guard(|| validate(endpoint, kind, &wire, NOW))
            .expect("the simulator answered 200 where validate panics")
            .unwrap_or_else(|e| panic!("a 200 for a request that validate refuses: {e}"));
        let parsed = parse_response(&text, &request.groupings).unwrap_or_else(|e| {
            panic!(
                "a 200 body that does not parse: {e}\n{}",
                String::from_utf8_lossy(&text)
            )
        });
        let asked = |id: &u64| request.tweet_ids.contains(id);
        for g in &parsed.groupings {
            for cell in &g.cells {
                assert!(cell.tweet_id.is_none_or(|id| asked(&id)), "{cell:?}");
            }
        }
        assert!(parsed.unavailable_tweet_ids.iter().all(asked));
    }

    if let Some(again) = replay {
        let first_authenticated = !matches!(status, 401 | 404 | 405 | 406);
        let Some(second) = h.send(again) else {
            return;
        };
        if first_authenticated {
            assert_eq!(
                second.status.as_u16(),
                401,
                "a replayed signed request was accepted"
            );
        }
    }
});

/// Keeps visible ASCII except what would end or confuse the path; percent-encodes the rest, so the
/// URI always parses and the fuzzer's bytes still reach the query parser.
fn uri_safe(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len());
    for &b in bytes {
        if b.is_ascii_graphic()
            && !matches!(
                b,
                b'#' | b'"' | b'<' | b'>' | b'\\' | b'^' | b'`' | b'{' | b'|' | b'}'
            )
        {
            s.push(b as char);
        } else {
            s.push_str(&format!("%{b:02X}"));
        }
    }
    s
}

/// `application/x-www-form-urlencoded` pairs as the simulator decodes them (`+` is a space;
/// undecodable pairs are skipped).
fn form_pairs(s: &str) -> Vec<(String, String)> {
    s.split('&')
        .filter(|p| !p.is_empty())
        .filter_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let dec = |x: &str| {
                percent_encoding::percent_decode_str(&x.replace('+', " "))
                    .decode_utf8()
                    .ok()
                    .map(|c| c.into_owned())
            };
            Some((dec(k)?, dec(v)?))
        })
        .collect()
}

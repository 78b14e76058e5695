//! Request authentication: bearer tokens and OAuth 1.0a HMAC-SHA1 signature verification (RFC 5849).
//!
//! The simulator really verifies signatures, so a client that signs the wrong URL, forgets to
//! percent-encode, reuses a signed header on a retry or has a skewed clock fails here as it would
//! against X. Policy (see `docs/simulator.md`):
//! - the base string is `POST&enc(http://<host><path>)&enc(params)`, the host from the `Host` header,
//!   lower-cased, with the default port 80 elided; params are every `oauth_*` header parameter except
//!   `oauth_signature` (and `realm`), the query parameters, and form parameters when the body is
//!   `application/x-www-form-urlencoded`; a JSON body is not signed;
//! - `oauth_body_hash`, when sent, is signed like any parameter and must match the body's SHA-1;
//! - `oauth_timestamp` must be within 15 minutes of the real clock (not the pinned `now`);
//! - a nonce may be used once per token within the accepted timestamp range.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::atomic::{AtomicI64, Ordering};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use dashmap::mapref::entry::Entry;
use dashmap::DashMap;
use engagement_api::AuthKind;
use hmac::{Hmac, Mac};
use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use sha1::{Digest, Sha1};

use crate::config::SimConfig;

/// RFC 3986 unreserved characters stay; everything else is percent-encoded (RFC 5849 §3.6).
const ENCODE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// How far `oauth_timestamp` may be from the real clock, in seconds.
pub const TIMESTAMP_TOLERANCE_SECS: i64 = 15 * 60;

/// Percent-encodes per RFC 5849 §3.6.
pub fn encode(s: &str) -> String {
    utf8_percent_encode(s, ENCODE).to_string()
}

/// Why a request is not authenticated; the text follows `Reason: ` in the 401 message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No `Authorization` header, another scheme, or an OAuth header that cannot be read.
    #[error("Unknown Authorization Type")]
    UnknownType,
    /// A bearer token or `oauth_token` that no account has.
    #[error("Access token not found")]
    TokenNotFound,
    /// `oauth_consumer_key` is not the App's.
    #[error("Invalid consumer key")]
    ConsumerKey,
    /// `oauth_timestamp` more than 15 minutes from the real clock.
    #[error("Timestamp out of bounds")]
    Timestamp,
    /// The nonce was already used with this token.
    #[error("Nonce already used")]
    NonceReused,
    /// `oauth_body_hash` does not match the body.
    #[error("Invalid body hash")]
    BodyHash,
    /// The signature does not match.
    #[error("Invalid signature")]
    Signature,
}

impl AuthError {
    /// The full error text the API answers with a 401.
    pub fn message(&self) -> String {
        format!("Your account could not be authenticated. Reason: {self}")
    }
}

/// Who a request is from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Principal {
    /// The kind of authentication, which decides the allowed endpoints and metrics.
    pub kind: AuthKind,
    /// The signing account's index in the config (user context only).
    pub account: Option<usize>,
    /// The app the request is from (0: the top-level one; see [`SimConfig::app_index`]).
    pub app: usize,
}

/// The parts of an HTTP request that authentication looks at.
#[derive(Debug, Clone, Copy)]
pub struct RequestParts<'a> {
    /// The `Authorization` header, if any.
    pub authorization: Option<&'a str>,
    /// The `Host` header.
    pub host: &'a str,
    /// The path, without the query.
    pub path: &'a str,
    /// The raw query string, if any.
    pub query: Option<&'a str>,
    /// The `Content-Type` header, if any.
    pub content_type: Option<&'a str>,
    /// The raw body.
    pub body: &'a [u8],
}

/// Verifies requests against one configuration; built once at start.
#[derive(Debug)]
pub struct Verifier {
    /// consumer key → (app index, consumer secret)
    consumers: HashMap<String, (usize, String)>,
    /// access token → (account index, token secret, app index)
    tokens: HashMap<String, (usize, String, usize)>,
    /// bearer token → app index
    bearers: HashMap<String, usize>,
    nonces: NonceCache,
}

impl Verifier {
    /// Indexes the config's tokens.
    pub fn new(config: &SimConfig) -> Verifier {
        let mut consumers = HashMap::new();
        consumers.insert(
            config.consumer_key.clone(),
            (0, config.consumer_secret.clone()),
        );
        let mut bearers: HashMap<String, usize> = config
            .bearer_tokens
            .iter()
            .map(|t| (t.clone(), 0))
            .collect();
        for (i, app) in config.apps.iter().enumerate() {
            consumers.insert(
                app.consumer_key.clone(),
                (i + 1, app.consumer_secret.clone()),
            );
            bearers.extend(app.bearer_tokens.iter().map(|t| (t.clone(), i + 1)));
        }
        Verifier {
            consumers,
            tokens: config
                .accounts
                .iter()
                .enumerate()
                .map(|(i, a)| {
                    let app = config.app_index(a.app.as_deref()).unwrap_or(0);
                    (
                        a.access_token.clone(),
                        (i, a.access_token_secret.clone(), app),
                    )
                })
                .collect(),
            bearers,
            nonces: NonceCache::default(),
        }
    }

    /// The app a request says it is from, without verifying anything (the rate limit is counted
    /// before authentication, per app): the bearer token's app, or the `oauth_consumer_key`'s;
    /// 0 (the top-level app) when neither is known.
    pub fn app_of(&self, authorization: Option<&str>) -> usize {
        let Some((scheme, rest)) = authorization
            .map(str::trim)
            .and_then(|h| h.split_once(|c: char| c.is_ascii_whitespace()))
        else {
            return 0;
        };
        if scheme.eq_ignore_ascii_case("Bearer") {
            return self.bearers.get(rest.trim()).copied().unwrap_or(0);
        }
        rest.split(',')
            .filter_map(|p| p.trim().split_once('='))
            .find(|(k, _)| k.trim() == "oauth_consumer_key")
            .and_then(|(_, v)| {
                let v = v.trim().trim_matches('"');
                let v = percent_decode_str(v).decode_utf8().ok()?;
                self.consumers.get(v.as_ref()).map(|(app, _)| *app)
            })
            .unwrap_or(0)
    }

    /// Authenticates a request at real Unix time `now_secs`.
    pub fn verify(&self, req: &RequestParts<'_>, now_secs: i64) -> Result<Principal, AuthError> {
        let header = req.authorization.ok_or(AuthError::UnknownType)?.trim();
        let (scheme, rest) = header
            .split_once(|c: char| c.is_ascii_whitespace())
            .ok_or(AuthError::UnknownType)?;
        if scheme.eq_ignore_ascii_case("Bearer") {
            return match self.bearers.get(rest.trim()) {
                Some(&app) => Ok(Principal {
                    kind: AuthKind::Bearer,
                    account: None,
                    app,
                }),
                None => Err(AuthError::TokenNotFound),
            };
        }
        if !scheme.eq_ignore_ascii_case("OAuth") {
            return Err(AuthError::UnknownType);
        }
        let oauth = parse_header_params(rest).ok_or(AuthError::UnknownType)?;
        let get = |k: &str| {
            oauth
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.as_str())
        };
        let (
            Some(consumer_key),
            Some(token),
            Some(method),
            Some(signature),
            Some(timestamp),
            Some(nonce),
        ) = (
            get("oauth_consumer_key"),
            get("oauth_token"),
            get("oauth_signature_method"),
            get("oauth_signature"),
            get("oauth_timestamp"),
            get("oauth_nonce"),
        )
        else {
            return Err(AuthError::UnknownType);
        };
        if method != "HMAC-SHA1" || get("oauth_version").is_some_and(|v| v != "1.0") {
            return Err(AuthError::UnknownType);
        }
        let (app, consumer_secret) = self
            .consumers
            .get(consumer_key)
            .ok_or(AuthError::ConsumerKey)?;
        let (account, token_secret, token_app) =
            self.tokens.get(token).ok_or(AuthError::TokenNotFound)?;
        // A token is issued to one app: another app's keys cannot sign with it.
        if token_app != app {
            return Err(AuthError::TokenNotFound);
        }
        let ts: i64 = timestamp.parse().map_err(|_| AuthError::Timestamp)?;
        // abs_diff: a timestamp such as i64::MIN must not overflow the difference (found by fuzzing).
        if now_secs
            .checked_sub(ts)
            .is_none_or(|d| d.abs() > TIMESTAMP_TOLERANCE_SECS)
        {
            return Err(AuthError::Timestamp);
        }
        if let Some(hash) = get("oauth_body_hash") {
            if B64.encode(Sha1::digest(req.body)) != hash {
                return Err(AuthError::BodyHash);
            }
        }

        let mut params: Vec<(String, String)> = oauth
            .iter()
            .filter(|(k, _)| k.starts_with("oauth_") && k != "oauth_signature")
            .cloned()
            .collect();
        if let Some(q) = req.query {
            params.extend(parse_form(q));
        }
        let is_form = req.content_type.is_some_and(|ct| {
            ct.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
        if is_form {
            if let Ok(body) = std::str::from_utf8(req.body) {
                params.extend(parse_form(body));
            }
        }
        let base = base_string("POST", &base_url(req.host, req.path), &params);
        let given = B64.decode(signature).map_err(|_| AuthError::Signature)?;
        let mut mac = hmac_for(consumer_secret, token_secret);
        mac.update(base.as_bytes());
        // `verify_slice` compares in constant time.
        mac.verify_slice(&given).map_err(|_| AuthError::Signature)?;

        // Only a verified request spends its nonce, so garbage cannot fill the cache.
        if !self.nonces.insert(token, nonce, ts, now_secs) {
            return Err(AuthError::NonceReused);
        }
        Ok(Principal {
            kind: AuthKind::User,
            account: Some(*account),
            app: *app,
        })
    }
}

/// `http://<host><path>` with the host lower-cased and the default port elided (RFC 5849 §3.4.1.2).
pub fn base_url(host: &str, path: &str) -> String {
    let host = host.to_ascii_lowercase();
    let host = host.strip_suffix(":80").unwrap_or(&host);
    format!("http://{host}{path}")
}

/// The signature base string (RFC 5849 §3.4.1): `METHOD&enc(url)&enc(sorted encoded params)`.
/// `params` are decoded key/value pairs.
pub fn base_string(method: &str, url: &str, params: &[(String, String)]) -> String {
    let mut encoded: Vec<(String, String)> =
        params.iter().map(|(k, v)| (encode(k), encode(v))).collect();
    encoded.sort();
    let joined = encoded
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    format!(
        "{}&{}&{}",
        method.to_ascii_uppercase(),
        encode(url),
        encode(&joined)
    )
}

fn hmac_for(consumer_secret: &str, token_secret: &str) -> Hmac<sha1::Sha1> {
    let key = format!("{}&{}", encode(consumer_secret), encode(token_secret));
    Hmac::<sha1::Sha1>::new_from_slice(key.as_bytes()).expect("HMAC takes any key length")
}

/// The base64 HMAC-SHA1 signature of a base string.
pub fn signature(base: &str, consumer_secret: &str, token_secret: &str) -> String {
    let mut mac = hmac_for(consumer_secret, token_secret);
    mac.update(base.as_bytes());
    B64.encode(mac.finalize().into_bytes())
}

/// Signs a body-less-in-signature `POST` (as a JSON request is) and returns the `Authorization`
/// header. For tests, demos and the load generator; the real client signs with its own code.
#[allow(clippy::too_many_arguments)]
pub fn authorization_header(
    url: &str,
    consumer_key: &str,
    consumer_secret: &str,
    token: &str,
    token_secret: &str,
    nonce: &str,
    timestamp: i64,
    extra_oauth: &[(&str, &str)],
) -> String {
    let mut params: Vec<(String, String)> = vec![
        ("oauth_consumer_key".into(), consumer_key.into()),
        ("oauth_nonce".into(), nonce.into()),
        ("oauth_signature_method".into(), "HMAC-SHA1".into()),
        ("oauth_timestamp".into(), timestamp.to_string()),
        ("oauth_token".into(), token.into()),
        ("oauth_version".into(), "1.0".into()),
    ];
    params.extend(
        extra_oauth
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string())),
    );
    let (base_url, query) = match url.split_once('?') {
        Some((u, q)) => (u, Some(q)),
        None => (url, None),
    };
    let mut signed = params.clone();
    if let Some(q) = query {
        signed.extend(parse_form(q));
    }
    let sig = signature(
        &base_string("POST", base_url, &signed),
        consumer_secret,
        token_secret,
    );
    params.push(("oauth_signature".into(), sig));
    let fields = params
        .iter()
        .map(|(k, v)| format!("{}=\"{}\"", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join(", ");
    format!("OAuth {fields}")
}

/// Parses `k="v", k2="v2"` (values quoted or not), percent-decoding keys and values. `realm` is
/// dropped (RFC 5849 §3.4.1.3.1). `None` when a part is malformed or a key repeats.
pub fn parse_header_params(s: &str) -> Option<Vec<(String, String)>> {
    let mut out: Vec<(String, String)> = Vec::with_capacity(8);
    for part in s.split(',') {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        let (k, v) = part.split_once('=')?;
        let v = v.trim();
        let v = match v.strip_prefix('"') {
            Some(inner) => inner.strip_suffix('"')?,
            None => v,
        };
        let k = percent_decode_str(k.trim())
            .decode_utf8()
            .ok()?
            .into_owned();
        let v = percent_decode_str(v).decode_utf8().ok()?.into_owned();
        if k == "realm" {
            continue;
        }
        if out.iter().any(|(key, _)| *key == k) {
            return None;
        }
        out.push((k, v));
    }
    Some(out)
}

/// Decodes `application/x-www-form-urlencoded` pairs (`+` is a space), skipping undecodable ones.
fn parse_form(s: &str) -> impl Iterator<Item = (String, String)> + '_ {
    s.split('&').filter(|p| !p.is_empty()).filter_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let dec = |x: &str| {
            percent_decode_str(&x.replace('+', " "))
                .decode_utf8()
                .ok()
                .map(|c| c.into_owned())
        };
        Some((dec(k)?, dec(v)?))
    })
}

/// Nonces seen in the last two 30-minute generations. A replay is only accepted while its timestamp
/// is within ±15 minutes of the clock, so the original and the replay are at most 30 minutes apart
/// and an entry of the current or the previous generation still holds the original; older entries
/// can go. Requests verify concurrently on every worker thread, so the set is a [`DashMap`] (sharded
/// locks), from nonce key to the generation it was seen in.
#[derive(Debug, Default)]
struct NonceCache {
    seen: DashMap<u64, i64>,
    /// The newest generation seen; when it moves on, entries two generations old are dropped.
    epoch: AtomicI64,
}

const GENERATION_SECS: i64 = 2 * TIMESTAMP_TOLERANCE_SECS;

impl NonceCache {
    /// Records the nonce; false if it was already there.
    fn insert(&self, token: &str, nonce: &str, timestamp: i64, now_secs: i64) -> bool {
        let mut h = DefaultHasher::new();
        (token, nonce, timestamp).hash(&mut h);
        let key = h.finish();
        let epoch = now_secs.div_euclid(GENERATION_SECS);
        if self.epoch.fetch_max(epoch, Ordering::Relaxed) < epoch {
            self.seen.retain(|_, seen| *seen >= epoch - 1);
        }
        match self.seen.entry(key) {
            Entry::Occupied(mut o) if *o.get() < epoch - 1 => {
                o.insert(epoch);
                true
            }
            Entry::Occupied(_) => false,
            Entry::Vacant(v) => {
                v.insert(epoch);
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DEMO;

    /// X's published worked example ("Creating a signature").
    #[test]
    fn reproduces_the_published_x_example() {
        let params: Vec<(String, String)> = [
            (
                "status",
                "Hello Ladies + Gentlemen, a signed OAuth request!",
            ),
            ("include_entities", "true"),
            ("oauth_consumer_key", "xvz1evFS4wEEPTGEFPHBog"),
            ("oauth_nonce", "kYjzVBB8Y0ZFabxSWbWovY3uYSQ2pTgmZeNu2VS4cg"),
            ("oauth_signature_method", "HMAC-SHA1"),
            ("oauth_timestamp", "1318622958"),
            (
                "oauth_token",
                "370773112-GmHxMAgYyLbNEtIKZeRNFsMKPR9EyMZeS9weJAEb",
            ),
            ("oauth_version", "1.0"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let base = base_string(
            "post",
            "https://api.twitter.com/1.1/statuses/update.json",
            &params,
        );
        assert_eq!(
            base,
            "POST&https%3A%2F%2Fapi.twitter.com%2F1.1%2Fstatuses%2Fupdate.json&include_entities%3Dtrue%26oauth_consumer_key%3Dxvz1evFS4wEEPTGEFPHBog%26oauth_nonce%3DkYjzVBB8Y0ZFabxSWbWovY3uYSQ2pTgmZeNu2VS4cg%26oauth_signature_method%3DHMAC-SHA1%26oauth_timestamp%3D1318622958%26oauth_token%3D370773112-GmHxMAgYyLbNEtIKZeRNFsMKPR9EyMZeS9weJAEb%26oauth_version%3D1.0%26status%3DHello%2520Ladies%2520%252B%2520Gentlemen%252C%2520a%2520signed%2520OAuth%2520request%2521"
        );
        assert_eq!(
            signature(
                &base,
                "kAcSOqF21Fu85e7zjz7ZN2U4ZRhfV3WpwPAoE3Z7kBw",
                "LswwdoUaIvS8ltyTt5jkRh4J50vUPVVHtR2YPi5kE"
            ),
            "hCtSmYh+iHYCEqBWrE7C7hYmtUk="
        );
    }

    /// The same example through the verifier: query and form parameters are collected from the
    /// request itself (here with an `http` host, since the simulator serves plain HTTP, so the
    /// signature differs from the published one and is recomputed).
    #[test]
    fn verifier_collects_query_and_form_parameters() {
        let config = SimConfig {
            consumer_key: "xvz1evFS4wEEPTGEFPHBog".into(),
            consumer_secret: "kAcSOqF21Fu85e7zjz7ZN2U4ZRhfV3WpwPAoE3Z7kBw".into(),
            accounts: vec![crate::config::Account {
                name: "x".into(),
                access_token: "370773112-GmHxMAgYyLbNEtIKZeRNFsMKPR9EyMZeS9weJAEb".into(),
                access_token_secret: "LswwdoUaIvS8ltyTt5jkRh4J50vUPVVHtR2YPi5kE".into(),
                app: None,
            }],
            ..SimConfig::default()
        };
        let v = Verifier::new(&config);
        let body = b"status=Hello%20Ladies%20%2B%20Gentlemen%2C%20a%20signed%20OAuth%20request%21";
        let mut params: Vec<(String, String)> = vec![
            ("oauth_consumer_key".into(), config.consumer_key.clone()),
            ("oauth_nonce".into(), "n1".into()),
            ("oauth_signature_method".into(), "HMAC-SHA1".into()),
            ("oauth_timestamp".into(), "1318622958".into()),
            (
                "oauth_token".into(),
                config.accounts[0].access_token.clone(),
            ),
            ("oauth_version".into(), "1.0".into()),
        ];
        let mut signed = params.clone();
        signed.push(("include_entities".into(), "true".into()));
        signed.push((
            "status".into(),
            "Hello Ladies + Gentlemen, a signed OAuth request!".into(),
        ));
        let sig = signature(
            &base_string(
                "POST",
                "http://api.twitter.com/1.1/statuses/update.json",
                &signed,
            ),
            &config.consumer_secret,
            &config.accounts[0].access_token_secret,
        );
        params.push(("oauth_signature".into(), sig));
        let header = format!(
            "OAuth realm=\"x\", {}",
            params
                .iter()
                .map(|(k, v)| format!("{k}=\"{}\"", encode(v)))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let req = RequestParts {
            authorization: Some(&header),
            host: "API.twitter.com:80",
            path: "/1.1/statuses/update.json",
            query: Some("include_entities=true"),
            content_type: Some("application/x-www-form-urlencoded; charset=UTF-8"),
            body,
        };
        assert_eq!(
            v.verify(&req, 1318622958).unwrap().account,
            Some(0),
            "valid signature"
        );
        assert_eq!(
            v.verify(&req, 1318622958),
            Err(AuthError::NonceReused),
            "replay"
        );
        assert_eq!(
            v.verify(&req, i64::MIN),
            Err(AuthError::Timestamp),
            "a difference that overflows is out of bounds, not a panic (found by fuzzing)"
        );
        let later = RequestParts {
            query: Some("include_entities=false"),
            ..req
        };
        assert_eq!(v.verify(&later, 1318622958), Err(AuthError::Signature));
        assert_eq!(
            v.verify(&req, 1318622958 + 16 * 60),
            Err(AuthError::Timestamp)
        );
    }

    #[test]
    fn header_forms() {
        let config = SimConfig::default();
        let v = Verifier::new(&config);
        let lowercase_bearer: &'static str =
            Box::leak(format!("bearer {}", DEMO.bearer_token).into_boxed_str());
        let parts = |auth: Option<&'static str>| RequestParts {
            authorization: auth,
            host: "127.0.0.1:1",
            path: "/p",
            query: None,
            content_type: None,
            body: b"",
        };
        assert_eq!(v.verify(&parts(None), 0), Err(AuthError::UnknownType));
        assert_eq!(
            v.verify(&parts(Some("Basic abc")), 0),
            Err(AuthError::UnknownType)
        );
        assert_eq!(
            // The scheme is matched without regard to case.
            v.verify(&parts(Some(lowercase_bearer)), 0).unwrap().kind,
            AuthKind::Bearer
        );
        assert_eq!(
            v.verify(&parts(Some("Bearer nope")), 0),
            Err(AuthError::TokenNotFound)
        );
        assert_eq!(
            v.verify(&parts(Some("OAuth oauth_token=\"x\"")), 0),
            Err(AuthError::UnknownType)
        );
        let h = authorization_header(
            "http://127.0.0.1:1/p",
            DEMO.consumer_key,
            DEMO.consumer_secret,
            DEMO.access_token,
            DEMO.access_token_secret,
            "abc",
            100,
            &[],
        );
        let h: &'static str = Box::leak(h.into_boxed_str());
        assert_eq!(v.verify(&parts(Some(h)), 100).unwrap().account, Some(0));
    }

    /// Each app signs with its own keys, for its own tokens only, and its requests are told apart
    /// before verification (the rate limit is per app).
    #[test]
    fn a_token_signs_only_with_its_apps_keys() {
        let mut config = SimConfig::default();
        config.apps.push(crate::config::App {
            name: "b".into(),
            consumer_key: "kb".into(),
            consumer_secret: "sb".into(),
            bearer_tokens: vec!["tb".into()],
            rate_limit: Some(5),
        });
        config.accounts.push(crate::config::Account {
            name: "x".into(),
            access_token: "xt".into(),
            access_token_secret: "xs".into(),
            app: Some("b".into()),
        });
        let v = Verifier::new(&config);
        let header = |key: &str, secret: &str, token: &str, token_secret: &str, nonce: &str| {
            authorization_header(
                "http://h/p",
                key,
                secret,
                token,
                token_secret,
                nonce,
                100,
                &[],
            )
        };
        let parts = |auth: &str| RequestParts {
            authorization: Some(Box::leak(auth.to_string().into_boxed_str())),
            host: "h",
            path: "/p",
            query: None,
            content_type: None,
            body: b"",
        };
        let own = header("kb", "sb", "xt", "xs", "n1");
        assert_eq!(v.app_of(Some(&own)), 1);
        let p = v.verify(&parts(&own), 100).unwrap();
        assert_eq!((p.account, p.app), (Some(1), 1));
        let other = header(DEMO.consumer_key, DEMO.consumer_secret, "xt", "xs", "n2");
        assert_eq!(v.app_of(Some(&other)), 0);
        assert_eq!(v.verify(&parts(&other), 100), Err(AuthError::TokenNotFound));
        assert_eq!(v.verify(&parts("Bearer tb"), 100).unwrap().app, 1);
        assert_eq!(v.app_of(Some("Bearer tb")), 1);
        assert_eq!(v.app_of(Some(&format!("Bearer {}", DEMO.bearer_token))), 0);
        assert_eq!(v.app_of(None), 0);
    }

    #[test]
    fn nonce_generations_forget_only_what_cannot_be_replayed() {
        let c = NonceCache::default();
        assert!(c.insert("t", "n", 0, 1000));
        assert!(!c.insert("t", "n", 0, 1000));
        assert!(!c.insert("t", "n", 0, 1000 + GENERATION_SECS));
        assert!(c.insert("t", "n", 0, 1000 + 3 * GENERATION_SECS));
        assert!(c.insert("u", "n", 0, 1000 + 3 * GENERATION_SECS));
    }
}

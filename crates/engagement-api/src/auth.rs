//! Credentials and the `Authorization` header: OAuth 1.0a user context (HMAC-SHA1) or an app-only
//! bearer token (fact sheet §2).
//!
//! Design notes:
//! - A signed OAuth 1.0a header is valid for one attempt only: it carries a nonce and a timestamp,
//!   and a server may refuse a replayed nonce. [`Credentials::authorization`] therefore signs afresh on
//!   every call, and the client calls it once per attempt, so no retry path can resend an old header.
//! - The request body is JSON, not `application/x-www-form-urlencoded`, so under RFC 5849 §3.4.1.3 it
//!   is not part of the signature base string: requests are signed over method, URL and the `oauth_*`
//!   parameters only (as the official sample clients do).
//! - Secrets never print: `Debug` is written by hand and shows redacted forms, and nothing here
//!   implements `Display`.

use std::fmt;
use std::num::NonZeroU64;

use oauth1_request as oauth;
use percent_encoding::percent_decode_str;

use crate::endpoint::AuthKind;

/// OAuth 1.0a user-context credentials: the App's consumer key pair and the Tweet owner's access
/// token pair.
#[derive(Clone, PartialEq, Eq)]
pub struct UserCredentials {
    /// The App's consumer (API) key.
    pub consumer_key: String,
    /// The App's consumer (API) secret.
    pub consumer_secret: String,
    /// The Tweet owner's access token.
    pub access_token: String,
    /// The Tweet owner's access token secret.
    pub access_token_secret: String,
}

/// An OAuth 2.0 app-only bearer token.
#[derive(Clone, PartialEq, Eq)]
pub struct BearerToken(pub String);

/// How a request is authenticated.
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    /// OAuth 1.0a user context.
    User(UserCredentials),
    /// App-only bearer token.
    Bearer(BearerToken),
}

impl Credentials {
    /// Which kind of authentication these are, which decides the endpoints and metrics allowed.
    pub fn kind(&self) -> AuthKind {
        match self {
            Credentials::User(_) => AuthKind::User,
            Credentials::Bearer(_) => AuthKind::Bearer,
        }
    }

    /// The `Authorization` header value for one attempt: OAuth 1.0a HMAC-SHA1 with a fresh nonce and
    /// timestamp on every call (never reuse a signed header across retries), or `Bearer <token>`.
    ///
    /// `url` must be the exact request URL without a query string.
    pub fn authorization(&self, method: &str, url: &str) -> String {
        match self {
            Credentials::User(creds) => {
                // No nonce or timestamp given: oauth1-request draws a random 72-bit nonce and reads
                // the clock for each call.
                builder(creds).authorize(method, url, &())
            }
            Credentials::Bearer(token) => format!("Bearer {}", token.0),
        }
    }
}

/// A signing builder with our fixed choices: HMAC-SHA1 and `oauth_version="1.0"`, which the
/// documented header carries (optional under RFC 5849, but sent by every sample client).
fn builder(creds: &UserCredentials) -> oauth::Builder<'_, oauth::HmacSha1, &str> {
    let token = oauth::Token::from_parts(
        creds.consumer_key.as_str(),
        creds.consumer_secret.as_str(),
        creds.access_token.as_str(),
        creds.access_token_secret.as_str(),
    );
    let mut b = oauth::Builder::with_token(token, oauth::HMAC_SHA1);
    b.version(true);
    b
}

/// Deterministic signing for tests: the full `OAuth ...` header value for a request with no
/// parameters besides the `oauth_*` ones (a JSON POST), with the given nonce and timestamp.
///
/// A `timestamp` of 0 is not a valid OAuth timestamp; the current time is used instead.
pub fn oauth1_header(
    creds: &UserCredentials,
    method: &str,
    url: &str,
    nonce: &str,
    timestamp: u64,
) -> String {
    let mut b = builder(creds);
    b.nonce(nonce).timestamp(NonZeroU64::new(timestamp));
    b.authorize(method, url, &())
}

/// The base64 HMAC-SHA1 signature (not percent-encoded) of a request with extra parameters, for
/// checking against published examples that sign query and form parameters.
///
/// `url_without_query` is the base string URI; query and form parameters both go in `params`
/// (unencoded; they are percent-encoded and sorted here as RFC 5849 §3.4.1.3 requires).
pub fn oauth1_signature(
    creds: &UserCredentials,
    method: &str,
    url_without_query: &str,
    params: &[(&str, &str)],
    nonce: &str,
    timestamp: u64,
) -> String {
    let mut b = builder(creds);
    b.nonce(nonce).timestamp(NonZeroU64::new(timestamp));
    let list = oauth::ParameterList::new(params.to_vec());
    let header = b.authorize(method, url_without_query, &list);
    header_param(&header, "oauth_signature").expect("oauth1-request always writes a signature")
}

/// The decoded value of one `key="value"` parameter of an `OAuth ...` header.
pub fn header_param(header: &str, key: &str) -> Option<String> {
    let rest = header.strip_prefix("OAuth ")?;
    rest.split(',').find_map(|part| {
        let (k, v) = part.trim().split_once('=')?;
        if k != key {
            return None;
        }
        let v = v.strip_prefix('"')?.strip_suffix('"')?;
        Some(percent_decode_str(v).decode_utf8_lossy().into_owned())
    })
}

/// A safe form of a secret for logs: the first 4 characters then `…`, or `…` alone when the secret
/// is shorter than 12 characters (a prefix of a short secret gives away too much of it).
pub fn redact(secret: &str) -> String {
    if secret.chars().count() < 12 {
        return "…".to_string();
    }
    let mut out: String = secret.chars().take(4).collect();
    out.push('…');
    out
}

impl fmt::Debug for UserCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The key and token prefixes help tell configurations apart (an access token starts with the
        // user ID); the two secrets have no such use, so not even a prefix is shown.
        f.debug_struct("UserCredentials")
            .field("consumer_key", &redact(&self.consumer_key))
            .field("consumer_secret", &"…")
            .field("access_token", &redact(&self.access_token))
            .field("access_token_secret", &"…")
            .finish()
    }
}

impl fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("BearerToken")
            .field(&redact(&self.0))
            .finish()
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::User(c) => f.debug_tuple("User").field(c).finish(),
            Credentials::Bearer(t) => f.debug_tuple("Bearer").field(t).finish(),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use base64::Engine;
    use hmac::{Hmac, Mac};
    use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
    use std::collections::BTreeMap;

    /// RFC 3986 unreserved characters stay; everything else is percent-encoded (RFC 5849 §3.6).
    const RFC3986: &AsciiSet = &NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~');

    fn enc(s: &str) -> String {
        utf8_percent_encode(s, RFC3986).to_string()
    }

    fn x_example() -> UserCredentials {
        UserCredentials {
            consumer_key: "xvz1evFS4wEEPTGEFPHBog".into(),
            consumer_secret: "kAcSOqF21Fu85e7zjz7ZN2U4ZRhfV3WpwPAoE3Z7kBw".into(),
            access_token: "370773112-GmHxMAgYyLbNEtIKZeRNFsMKPR9EyMZeS9weJAEb".into(),
            access_token_secret: "LswwdoUaIvS8ltyTt5jkRh4J50vUPVVHtR2YPi5kE".into(),
        }
    }

    /// Every `key="value"` pair of an `OAuth ...` header, decoded.
    fn params(header: &str) -> BTreeMap<String, String> {
        header
            .strip_prefix("OAuth ")
            .expect("an OAuth header")
            .split(',')
            .map(|p| {
                let (k, _) = p.trim().split_once('=').unwrap();
                (k.to_string(), header_param(header, k).unwrap())
            })
            .collect()
    }

    /// Independent RFC 5849 check: rebuilds the base string from the header's own `oauth_*`
    /// parameters and compares HMAC-SHA1 over it with the header's signature.
    pub(crate) fn verify_oauth1(
        header: &str,
        method: &str,
        url: &str,
        consumer_secret: &str,
        token_secret: &str,
    ) -> bool {
        let mut p = params(header);
        let Some(signature) = p.remove("oauth_signature") else {
            return false;
        };
        // Parameters sort by encoded key then encoded value; BTreeMap over plain-ASCII keys does that.
        let normalized = p
            .iter()
            .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
            .collect::<Vec<_>>()
            .join("&");
        let base = format!("{}&{}&{}", method, enc(url), enc(&normalized));
        let key = format!("{}&{}", enc(consumer_secret), enc(token_secret));
        let mut mac = Hmac::<sha1::Sha1>::new_from_slice(key.as_bytes()).unwrap();
        mac.update(base.as_bytes());
        let expected =
            base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
        expected == signature
    }

    #[test]
    fn reproduces_the_published_x_signature_example() {
        let sig = oauth1_signature(
            &x_example(),
            "POST",
            "https://api.twitter.com/1.1/statuses/update.json",
            &[
                ("include_entities", "true"),
                (
                    "status",
                    "Hello Ladies + Gentlemen, a signed OAuth request!",
                ),
            ],
            "kYjzVBB8Y0ZFabxSWbWovY3uYSQ2pTgmZeNu2VS4cg",
            1318622958,
        );
        assert_eq!(sig, "hCtSmYh+iHYCEqBWrE7C7hYmtUk=");
    }

    #[test]
    fn deterministic_header_has_the_documented_shape() {
        let creds = x_example();
        let url = "https://data-api.x.com/insights/engagement/totals";
        let h = oauth1_header(
            &creds,
            "POST",
            url,
            "kYjzVBB8Y0ZFabxSWbWovY3uYSQ2pTgmZeNu2VS4cg",
            1318622958,
        );
        let p = params(&h);
        assert_eq!(p["oauth_consumer_key"], creds.consumer_key);
        assert_eq!(p["oauth_token"], creds.access_token);
        assert_eq!(
            p["oauth_nonce"],
            "kYjzVBB8Y0ZFabxSWbWovY3uYSQ2pTgmZeNu2VS4cg"
        );
        assert_eq!(p["oauth_timestamp"], "1318622958");
        assert_eq!(p["oauth_signature_method"], "HMAC-SHA1");
        assert_eq!(p["oauth_version"], "1.0");
        // The raw header percent-encodes the signature's base64 `+`, `/` and `=`.
        let raw_sig = h.split("oauth_signature=\"").nth(1).unwrap();
        assert!(!raw_sig.contains('+') && !raw_sig.contains('='), "{h}");
        assert!(verify_oauth1(
            &h,
            "POST",
            url,
            &creds.consumer_secret,
            &creds.access_token_secret
        ));
        // The same inputs give the same header; another timestamp does not.
        assert_eq!(
            h,
            oauth1_header(
                &creds,
                "POST",
                url,
                "kYjzVBB8Y0ZFabxSWbWovY3uYSQ2pTgmZeNu2VS4cg",
                1318622958
            )
        );
        assert_ne!(
            h,
            oauth1_header(
                &creds,
                "POST",
                url,
                "kYjzVBB8Y0ZFabxSWbWovY3uYSQ2pTgmZeNu2VS4cg",
                1318622959
            )
        );
    }

    #[test]
    fn every_authorization_is_signed_afresh_and_verifies() {
        let creds = Credentials::User(x_example());
        let url = "https://data-api.x.com/insights/engagement/28hr";
        let a = creds.authorization("POST", url);
        let b = creds.authorization("POST", url);
        let (pa, pb) = (params(&a), params(&b));
        assert_ne!(pa["oauth_nonce"], pb["oauth_nonce"]);
        assert_ne!(pa["oauth_signature"], pb["oauth_signature"]);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let ts: u64 = pa["oauth_timestamp"].parse().unwrap();
        assert!(now.abs_diff(ts) < 60);
        for h in [&a, &b] {
            assert!(verify_oauth1(
                h,
                "POST",
                url,
                "kAcSOqF21Fu85e7zjz7ZN2U4ZRhfV3WpwPAoE3Z7kBw",
                "LswwdoUaIvS8ltyTt5jkRh4J50vUPVVHtR2YPi5kE"
            ));
            // A different URL must not verify: the URL is part of what is signed.
            assert!(!verify_oauth1(
                h,
                "POST",
                "https://data-api.x.com/insights/engagement/totals",
                "kAcSOqF21Fu85e7zjz7ZN2U4ZRhfV3WpwPAoE3Z7kBw",
                "LswwdoUaIvS8ltyTt5jkRh4J50vUPVVHtR2YPi5kE"
            ));
        }
        assert_eq!(creds.kind(), AuthKind::User);
    }

    #[test]
    fn bearer_header() {
        let c = Credentials::Bearer(BearerToken("AAAAtoken-value-0123".into()));
        assert_eq!(c.kind(), AuthKind::Bearer);
        assert_eq!(
            c.authorization("POST", "https://x/y"),
            "Bearer AAAAtoken-value-0123"
        );
    }

    #[test]
    fn secrets_never_print() {
        assert_eq!(redact("abcdefghijkl"), "abcd…");
        assert_eq!(redact("abcdefghijk"), "…");
        assert_eq!(redact(""), "…");
        assert_eq!(redact("ééééééééééééé"), "éééé…");
        let user = x_example();
        let dbg = format!("{:?} {:#?}", Credentials::User(user.clone()), user);
        for secret in [
            &user.consumer_key,
            &user.consumer_secret,
            &user.access_token,
            &user.access_token_secret,
        ] {
            assert!(!dbg.contains(secret.as_str()), "{dbg}");
            assert!(!dbg.contains(&secret[4..12]), "{dbg}");
        }
        assert!(dbg.contains("xvz1…") && dbg.contains("3707…"), "{dbg}");
        let bearer = Credentials::Bearer(BearerToken("AAAAtoken-value-0123".into()));
        let dbg = format!("{bearer:?}");
        assert_eq!(dbg, "Bearer(BearerToken(\"AAAA…\"))");
    }
}

//! The simulator over real HTTP on 127.0.0.1:0: every rule, error path and fault, and the
//! consistency of the numbers with the `metrics` model. One test binary, themed modules.

use std::time::{Duration as StdDuration, Instant};

use engage_sim::{metrics, Account, FaultConfig, SimConfig, SimHandle, DEMO};
use engagement_api::request::{validate, WireRequest};
use engagement_api::window::{format_time, parse_time};
use engagement_api::{AuthKind, Endpoint, Metric};
use reqwest::header::HeaderMap;
use serde_json::{json, Value};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

/// Pinned server time; not on an hour boundary, so the current hour is partial.
const NOW: OffsetDateTime = datetime!(2026-11-20 09:40 UTC);
const SEED: u64 = 42;

/// The `Authorization` header of the demo app-only token.
fn demo_bearer() -> String {
    format!("Bearer {}", DEMO.bearer_token)
}

fn config() -> SimConfig {
    SimConfig {
        now: Some(NOW),
        seed: SEED,
        ..SimConfig::default()
    }
}

fn two_accounts() -> SimConfig {
    let mut c = config();
    c.accounts.push(Account {
        name: "second".into(),
        access_token: "second-access-token".into(),
        access_token_secret: "second-access-token-secret".into(),
        app: None,
    });
    c
}

struct Sim {
    handle: SimHandle,
    client: reqwest::Client,
    config: SimConfig,
}

#[derive(Clone, Copy)]
enum Auth<'a> {
    Bearer,
    User(usize),
    Header(&'a str),
    Nothing,
}

struct Resp {
    status: u16,
    headers: HeaderMap,
    text: String,
    json: Value,
}

impl Resp {
    async fn read(r: reqwest::Response) -> Resp {
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let text = r.text().await.expect("body");
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        Resp {
            status,
            headers,
            text,
            json,
        }
    }

    fn errors(&self) -> Vec<String> {
        self.json["errors"]
            .as_array()
            .unwrap_or_else(|| panic!("no errors array in {}", self.text))
            .iter()
            .map(|e| e.as_str().expect("errors are strings").to_string())
            .collect()
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    fn count(&self, path: &[&str]) -> u64 {
        let mut v = &self.json;
        for p in path {
            v = &v[*p];
        }
        v.as_str()
            .unwrap_or_else(|| panic!("{path:?} is not a string count: {v}"))
            .parse()
            .expect("base-10 integer")
    }
}

async fn start(config: SimConfig) -> Sim {
    let handle = engage_sim::start(config.clone(), "127.0.0.1:0".parse().unwrap())
        .await
        .expect("simulator starts");
    Sim {
        handle,
        client: reqwest::Client::builder()
            .timeout(StdDuration::from_secs(30))
            .build()
            .unwrap(),
        config,
    }
}

/// Signs with oauth1-request (the client's signer), not with the simulator's own code.
fn sign(c: &SimConfig, a: &Account, url: &str) -> String {
    let token = oauth1_request::Token::from_parts(
        c.consumer_key.as_str(),
        c.consumer_secret.as_str(),
        a.access_token.as_str(),
        a.access_token_secret.as_str(),
    );
    oauth1_request::post(url, &(), &token, oauth1_request::HMAC_SHA1)
}

fn unix_now() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

impl Sim {
    fn url(&self, e: Endpoint) -> String {
        format!("{}{}", self.handle.url(), e.path())
    }

    fn request(&self, e: Endpoint, auth: Auth<'_>, body: &Value) -> reqwest::RequestBuilder {
        let url = self.url(e);
        let req = self
            .client
            .post(&url)
            .header("content-type", "application/json")
            .body(body.to_string());
        match auth {
            Auth::Bearer => req.header(
                "authorization",
                format!("Bearer {}", self.config.bearer_tokens[0]),
            ),
            Auth::User(i) => req.header(
                "authorization",
                sign(&self.config, &self.config.accounts[i], &url),
            ),
            Auth::Header(h) => req.header("authorization", h),
            Auth::Nothing => req,
        }
    }

    async fn post(&self, e: Endpoint, auth: Auth<'_>, body: &Value) -> Resp {
        Resp::read(self.request(e, auth, body).send().await.expect("answer")).await
    }
}

fn names(metrics: &[Metric]) -> Vec<&'static str> {
    metrics.iter().map(|m| m.as_str()).collect()
}

fn body(ids: &[u64], metrics: &[Metric], groupings: &[(&str, &[&str])]) -> Value {
    let groupings: serde_json::Map<String, Value> = groupings
        .iter()
        .map(|(n, g)| (n.to_string(), json!({ "group_by": g })))
        .collect();
    json!({
        "tweet_ids": ids.iter().map(|i| i.to_string()).collect::<Vec<_>>(),
        "engagement_types": names(metrics),
        "groupings": groupings,
    })
}

/// `n` Tweets created `age` before NOW, a minute apart; the sequence bits are 0..n, so the
/// parity of an ID is the parity of its position.
fn ids_at(age: Duration, n: usize) -> Vec<u64> {
    (0..n)
        .map(|i| metrics::tweet_id_at(NOW - age + Duration::minutes(i as i64), i as u64))
        .collect()
}

/// What `validate` says about a body: the simulator must answer exactly this.
fn rule_error(e: Endpoint, auth: AuthKind, body: &Value) -> (u16, String) {
    let wire: WireRequest = serde_json::from_value(body.clone()).unwrap();
    let err = validate(e, auth, &wire, NOW).expect_err("invalid request");
    (err.status(), err.to_string())
}

const BY_TWEET: (&str, &[&str]) = ("by_tweet", &["tweet.id", "engagement.type"]);
const BY_TYPE: (&str, &[&str]) = ("by_type", &["engagement.type"]);

mod totals {
    use super::*;

    #[tokio::test]
    async fn bearer_with_250_string_ids_gets_every_count() {
        let sim = start(config()).await;
        let ids = ids_at(Duration::days(10), 250);
        let r = sim
            .post(
                Endpoint::Totals,
                Auth::Bearer,
                &body(&ids, &Metric::PUBLIC, &[BY_TWEET, BY_TYPE]),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert!(r.json.get("start").is_none() && r.json.get("errors").is_none());
        assert_eq!(r.json["by_tweet"].as_object().unwrap().len(), 250);
        for m in Metric::PUBLIC {
            let mut sum = 0;
            for id in &ids {
                let v = r.count(&["by_tweet", &id.to_string(), m.as_str()]);
                assert_eq!(v, metrics::cumulative(SEED, *id, m, NOW), "{id} {m}");
                sum += v;
            }
            assert_eq!(r.count(&["by_type", m.as_str()]), sum);
        }
        let likes: u64 = ids
            .iter()
            .map(|&id| metrics::cumulative(SEED, id, Metric::Favorites, NOW))
            .sum();
        assert!(likes > 0, "a realistic batch has some likes");
    }

    #[tokio::test]
    async fn numeric_ids_are_accepted() {
        let sim = start(config()).await;
        let ids = ids_at(Duration::days(3), 2);
        let mut b = body(&ids, &[Metric::Favorites], &[BY_TWEET]);
        b["tweet_ids"] = json!([ids[0], ids[1].to_string()]);
        let r = sim.post(Endpoint::Totals, Auth::Bearer, &b).await;
        assert_eq!(r.status, 200, "{}", r.text);
        for id in ids {
            assert_eq!(
                r.count(&["by_tweet", &id.to_string(), "favorites"]),
                metrics::cumulative(SEED, id, Metric::Favorites, NOW)
            );
        }
    }

    #[tokio::test]
    async fn id_limits_and_bearer_rules_answer_what_validate_says() {
        let sim = start(config()).await;
        let too_many = body(
            &ids_at(Duration::days(1), 251),
            &[Metric::Favorites],
            &[BY_TWEET],
        );
        let cases = [
            (Endpoint::Totals, too_many, AuthKind::Bearer),
            (
                Endpoint::Hr28,
                body(
                    &ids_at(Duration::days(1), 1),
                    &[Metric::Favorites],
                    &[BY_TWEET],
                ),
                AuthKind::Bearer,
            ),
            (
                Endpoint::Totals,
                body(
                    &ids_at(Duration::days(1), 1),
                    &[Metric::Impressions],
                    &[BY_TWEET],
                ),
                AuthKind::Bearer,
            ),
            (
                Endpoint::Historical,
                body(
                    &ids_at(Duration::days(1), 26),
                    &[Metric::Impressions],
                    &[BY_TWEET],
                ),
                AuthKind::User,
            ),
            (
                Endpoint::Totals,
                body(
                    &ids_at(Duration::days(1), 1),
                    &[Metric::Favorites],
                    &[("g", &["engagement.type", "engagement.hour"])],
                ),
                AuthKind::User,
            ),
        ];
        for (endpoint, b, kind) in cases {
            let auth = match kind {
                AuthKind::Bearer => Auth::Bearer,
                AuthKind::User => Auth::User(0),
            };
            let r = sim.post(endpoint, auth, &b).await;
            let (status, text) = rule_error(endpoint, kind, &b);
            assert_eq!((r.status, r.errors()), (status, vec![text]));
        }
        // The two the brief names, spelled out.
        let b = body(
            &ids_at(Duration::days(1), 1),
            &[Metric::Impressions],
            &[BY_TWEET],
        );
        let r = sim.post(Endpoint::Totals, Auth::Bearer, &b).await;
        assert_eq!(r.status, 403);
        assert_eq!(r.errors(), ["Forbidden to access metrics: impressions"]);
        let r = sim
            .post(
                Endpoint::Totals,
                Auth::Bearer,
                &body(
                    &ids_at(Duration::days(1), 251),
                    &[Metric::Favorites],
                    &[BY_TWEET],
                ),
            )
            .await;
        assert_eq!(r.status, 400);
    }

    #[tokio::test]
    async fn age_rules_for_impressions_and_video_views() {
        let sim = start(config()).await;
        let recent = ids_at(Duration::days(10), 1)[0];
        let old = ids_at(Duration::days(100), 1)[0];
        let ancient = ids_at(Duration::days(2000), 1)[0];
        let ids = [recent, old, ancient];
        let m = [
            Metric::Impressions,
            Metric::Engagements,
            Metric::Favorites,
            Metric::VideoViews,
        ];
        let r = sim
            .post(
                Endpoint::Totals,
                Auth::User(0),
                &body(
                    &ids,
                    &m,
                    &[
                        BY_TWEET,
                        ("by_type_tweet", &["engagement.type", "tweet.id"]),
                    ],
                ),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        let s = |id: u64| id.to_string();
        assert_eq!(
            r.json["unsupported_for_impressions_engagements_tweet_ids"],
            json!([s(old), s(ancient)])
        );
        assert_eq!(
            r.json["unsupported_for_video_views_tweet_ids"],
            json!([s(ancient)])
        );
        assert_eq!(
            r.errors(),
            [format!(
                "Impressions & engagements for tweets older than 90 days ({} - {}) are not supported",
                format_time(NOW - Duration::days(90)),
                format_time(NOW)
            )]
        );
        let keys = |id: u64| -> Vec<String> {
            r.json["by_tweet"][s(id)]
                .as_object()
                .unwrap()
                .keys()
                .cloned()
                .collect()
        };
        assert_eq!(keys(recent).len(), 4);
        let mut old_keys = keys(old);
        old_keys.sort();
        assert_eq!(old_keys, ["favorites", "video_views"]);
        assert_eq!(r.count(&["by_tweet", &s(ancient), "video_views"]), 0);
        assert_eq!(
            r.count(&["by_tweet", &s(ancient), "favorites"]),
            metrics::cumulative(SEED, ancient, Metric::Favorites, NOW)
        );
        let imp = r.json["by_type_tweet"]["impressions"].as_object().unwrap();
        assert_eq!(imp.keys().collect::<Vec<_>>(), [&s(recent)]);
    }
}

mod gzip {
    use super::*;

    pub(super) fn raw_client() -> reqwest::Client {
        // No automatic decoding: the test sees the wire's Content-Encoding.
        reqwest::Client::builder().no_gzip().build().unwrap()
    }

    pub(super) fn gunzip(bytes: &[u8]) -> String {
        use std::io::Read;
        let mut s = String::new();
        flate2::read::GzDecoder::new(bytes)
            .read_to_string(&mut s)
            .expect("valid gzip");
        s
    }

    #[tokio::test]
    async fn no_gzip_is_406_and_the_switch_turns_it_off() {
        let b = body(
            &ids_at(Duration::days(1), 1),
            &[Metric::Favorites],
            &[BY_TWEET],
        );
        let sim = start(config()).await;
        let r = Resp::read(
            sim.request(Endpoint::Totals, Auth::Bearer, &b)
                .header("accept-encoding", "identity")
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(r.status, 406);
        assert_eq!(r.errors(), [engage_sim::GZIP_REQUIRED]);

        let sim = start(SimConfig {
            require_gzip: false,
            ..config()
        })
        .await;
        let resp = raw_client()
            .post(sim.url(Endpoint::Totals))
            .header("authorization", demo_bearer())
            .body(b.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        assert!(resp.headers().get("content-encoding").is_none());
        let v: Value = serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap();
        assert!(v["by_tweet"].is_object());
    }

    #[tokio::test]
    async fn bodies_are_gzip_when_asked_errors_included() {
        let sim = start(config()).await;
        let b = body(
            &ids_at(Duration::days(1), 3),
            &[Metric::Favorites],
            &[BY_TWEET],
        );
        for auth in [demo_bearer(), "Bearer wrong".into()] {
            let resp = raw_client()
                .post(sim.url(Endpoint::Totals))
                .header("authorization", auth)
                .header("Accept-Encoding", "gzip, deflate")
                .body(b.to_string())
                .send()
                .await
                .unwrap();
            assert_eq!(resp.headers()["content-encoding"], "gzip");
            assert_eq!(resp.headers()["content-type"], "application/json");
            let text = gunzip(&resp.bytes().await.unwrap());
            let _: Value = serde_json::from_str(&text).expect("JSON inside");
        }
    }
}

mod auth {
    use super::*;
    use base64::Engine;
    use sha1::Digest;

    fn hr28_body() -> Value {
        body(
            &ids_at(Duration::days(1), 2),
            &[Metric::Impressions, Metric::UrlClicks],
            &[BY_TWEET],
        )
    }

    fn header(sim: &Sim, e: Endpoint, nonce: &str, ts: i64, extra: &[(&str, &str)]) -> String {
        let c = &sim.config;
        engage_sim::oauth::authorization_header(
            &sim.url(e),
            &c.consumer_key,
            &c.consumer_secret,
            &c.accounts[0].access_token,
            &c.accounts[0].access_token_secret,
            nonce,
            ts,
            extra,
        )
    }

    const REASON: &str = "Your account could not be authenticated. Reason: ";

    #[tokio::test]
    async fn a_correct_signature_is_accepted_and_a_wrong_one_is_401() {
        let sim = start(config()).await;
        let r = sim.post(Endpoint::Hr28, Auth::User(0), &hr28_body()).await;
        assert_eq!(r.status, 200, "{}", r.text);

        let mut wrong = sim.config.clone();
        wrong.accounts[0].access_token_secret = "not-the-secret".into();
        let h = sign(&wrong, &wrong.accounts[0], &sim.url(Endpoint::Hr28));
        let r = sim
            .post(Endpoint::Hr28, Auth::Header(&h), &hr28_body())
            .await;
        assert_eq!(r.status, 401);
        assert_eq!(r.errors(), [format!("{REASON}Invalid signature")]);

        // Signed for another path: the base string differs.
        let h = sign(
            &sim.config,
            &sim.config.accounts[0],
            &sim.url(Endpoint::Totals),
        );
        let r = sim
            .post(Endpoint::Hr28, Auth::Header(&h), &hr28_body())
            .await;
        assert_eq!(r.errors(), [format!("{REASON}Invalid signature")]);
    }

    #[tokio::test]
    async fn body_hash_is_signed_and_checked() {
        let sim = start(config()).await;
        let b = hr28_body();
        let hash = base64::engine::general_purpose::STANDARD
            .encode(sha1::Sha1::digest(b.to_string().as_bytes()));
        let h = header(
            &sim,
            Endpoint::Hr28,
            "bh1",
            unix_now(),
            &[("oauth_body_hash", &hash)],
        );
        let r = sim.post(Endpoint::Hr28, Auth::Header(&h), &b).await;
        assert_eq!(r.status, 200, "{}", r.text);
        let h = header(
            &sim,
            Endpoint::Hr28,
            "bh2",
            unix_now(),
            &[("oauth_body_hash", "2jmj7l5rSw0yVb/vlWAYkK/YBwk=")],
        );
        let r = sim.post(Endpoint::Hr28, Auth::Header(&h), &b).await;
        assert_eq!(r.errors(), [format!("{REASON}Invalid body hash")]);
    }

    #[tokio::test]
    async fn every_failure_is_401_with_its_reason() {
        let sim = start(config()).await;
        let b = hr28_body();
        let mut unknown = sim.config.clone();
        unknown.accounts[0].access_token = "nobody".into();
        let unknown_token = sign(&unknown, &unknown.accounts[0], &sim.url(Endpoint::Hr28));
        let mut other_app = sim.config.clone();
        other_app.consumer_key = "another-app".into();
        let other_key = sign(&other_app, &other_app.accounts[0], &sim.url(Endpoint::Hr28));
        let stale = header(&sim, Endpoint::Hr28, "old", unix_now() - 3600, &[]);
        let replay = header(&sim, Endpoint::Hr28, "once", unix_now(), &[]);
        assert_eq!(
            sim.post(Endpoint::Hr28, Auth::Header(&replay), &b)
                .await
                .status,
            200
        );
        let cases: [(Auth<'_>, &str); 7] = [
            (Auth::Nothing, "Unknown Authorization Type"),
            (
                Auth::Header("Basic dXNlcjpwYXNz"),
                "Unknown Authorization Type",
            ),
            (Auth::Header("OAuth garbage"), "Unknown Authorization Type"),
            (Auth::Header(&unknown_token), "Access token not found"),
            (Auth::Header(&other_key), "Invalid consumer key"),
            (Auth::Header(&stale), "Timestamp out of bounds"),
            (Auth::Header(&replay), "Nonce already used"),
        ];
        for (auth, reason) in cases {
            let r = sim.post(Endpoint::Hr28, auth, &b).await;
            assert_eq!(r.status, 401, "{reason}");
            assert_eq!(r.errors(), [format!("{REASON}{reason}")]);
        }
        let r = sim
            .post(Endpoint::Totals, Auth::Header("Bearer not-a-token"), &b)
            .await;
        assert_eq!(r.errors(), [format!("{REASON}Access token not found")]);
    }
}

mod ownership {
    use super::*;

    #[tokio::test]
    async fn unowned_ids_are_403_listing_exactly_those() {
        let sim = start(two_accounts()).await;
        let ids = ids_at(Duration::days(5), 7);
        let b = body(&ids, &[Metric::Impressions], &[BY_TWEET]);
        // Account 0 owns the even IDs (position parity = ID parity).
        let r = sim.post(Endpoint::Totals, Auth::User(0), &b).await;
        assert_eq!(r.status, 403);
        let odd: Vec<String> = ids
            .iter()
            .filter(|id| *id % 2 == 1)
            .map(u64::to_string)
            .collect();
        assert_eq!(
            r.errors(),
            [format!("Forbidden to access tweets: {}", odd.join(", "))]
        );
        let r = sim.post(Endpoint::Totals, Auth::User(1), &b).await;
        let even: Vec<String> = ids
            .iter()
            .filter(|id| *id % 2 == 0)
            .map(u64::to_string)
            .collect();
        assert_eq!(
            r.errors(),
            [format!("Forbidden to access tweets: {}", even.join(", "))]
        );
        let own: Vec<u64> = ids.iter().copied().filter(|id| id % 2 == 1).collect();
        let r = sim
            .post(
                Endpoint::Historical,
                Auth::User(1),
                &body(&own, &[Metric::Impressions], &[BY_TWEET]),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        // Bearer: public metrics of any Tweet, no owner check.
        let r = sim
            .post(
                Endpoint::Totals,
                Auth::Bearer,
                &body(&ids, &[Metric::Favorites], &[BY_TWEET]),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
    }
}

mod availability {
    use super::*;

    #[tokio::test]
    async fn protected_tweets_reject_the_whole_request() {
        let sim = start(SimConfig {
            protected: 0.3,
            ..config()
        })
        .await;
        let ids = ids_at(Duration::days(5), 40);
        let (protected, public): (Vec<u64>, Vec<u64>) = ids
            .iter()
            .partition(|&&id| metrics::is_protected(SEED, id, 0.3));
        assert!(!protected.is_empty() && !public.is_empty());
        let mixed = [public[0], protected[0]];
        let r = sim
            .post(
                Endpoint::Totals,
                Auth::User(0),
                &body(&mixed, &[Metric::Favorites], &[BY_TWEET]),
            )
            .await;
        assert_eq!(
            (r.status, r.errors()),
            (400, vec!["Tweet ID(s) are unavailable".to_string()])
        );
        let r = sim
            .post(
                Endpoint::Totals,
                Auth::User(0),
                &body(&public, &[Metric::Favorites], &[BY_TWEET]),
            )
            .await;
        assert_eq!(r.status, 200);
    }

    #[tokio::test]
    async fn deleted_tweets_are_a_partial_200() {
        let sim = start(SimConfig {
            deleted: 0.3,
            ..config()
        })
        .await;
        let ids = ids_at(Duration::days(5), 25);
        let deleted: Vec<u64> = ids
            .iter()
            .copied()
            .filter(|&id| metrics::is_deleted(SEED, id, 0.3))
            .collect();
        assert!(!deleted.is_empty() && deleted.len() < ids.len());
        let r = sim
            .post(
                Endpoint::Historical,
                Auth::User(0),
                &body(
                    &ids,
                    &[Metric::Impressions, Metric::Favorites],
                    &[BY_TWEET, BY_TYPE],
                ),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(
            r.json["unavailable_tweet_ids"],
            json!(deleted.iter().map(u64::to_string).collect::<Vec<_>>())
        );
        assert_eq!(
            r.errors(),
            [format!("{} Tweet ID(s) are unavailable", deleted.len())]
        );
        let by_tweet = r.json["by_tweet"].as_object().unwrap();
        assert_eq!(by_tweet.len(), ids.len() - deleted.len());
        for id in &deleted {
            assert!(!by_tweet.contains_key(&id.to_string()));
        }
    }
}

mod windows {
    use super::*;

    fn historical(start: Option<&str>, end: Option<&str>, groupings: &[(&str, &[&str])]) -> Value {
        let mut b = body(
            &ids_at(Duration::days(40), 2),
            &[Metric::Impressions],
            groupings,
        );
        if let Some(s) = start {
            b["start"] = json!(s);
        }
        if let Some(e) = end {
            b["end"] = json!(e);
        }
        b
    }

    #[tokio::test]
    async fn start_and_end_are_rounded_and_echoed() {
        let sim = start(config()).await;
        let cases = [
            (
                Some("2026-11-01T12:24:00Z"),
                Some("2026-11-08T08:37:00Z"),
                "2026-11-01T12:00:00Z",
                "2026-11-08T09:00:00Z",
            ),
            (
                Some("2026-11-01"),
                Some("2026-11-08"),
                "2026-11-01T00:00:00Z",
                "2026-11-08T00:00:00Z",
            ),
            (None, None, "2026-10-23T10:00:00Z", "2026-11-20T10:00:00Z"),
            (
                Some("2026-11-10T00:00:00Z"),
                None,
                "2026-11-10T00:00:00Z",
                "2026-11-20T10:00:00Z",
            ),
        ];
        for (s, e, want_start, want_end) in cases {
            let r = sim
                .post(
                    Endpoint::Historical,
                    Auth::User(0),
                    &historical(s, e, &[BY_TWEET]),
                )
                .await;
            assert_eq!(r.status, 200, "{}", r.text);
            assert_eq!(r.json["start"], want_start);
            assert_eq!(r.json["end"], want_end);
        }
    }

    #[tokio::test]
    async fn window_rules_answer_what_validate_says() {
        let sim = start(config()).await;
        for (s, e) in [
            ("2026-10-01T00:00:00Z", "2026-10-29T01:00:00Z"), // 28 days and an hour
            ("2014-08-31", "2014-09-20"),                     // before 2014-09-01
            ("2026-11-19", "2026-11-21"),                     // end in the future
            ("2026-11-19", "2026-11-18"),                     // empty
            ("last tuesday", "2026-11-18"),                   // format
        ] {
            let b = historical(Some(s), Some(e), &[BY_TWEET]);
            let r = sim.post(Endpoint::Historical, Auth::User(0), &b).await;
            let (status, text) = rule_error(Endpoint::Historical, AuthKind::User, &b);
            assert_eq!(status, 400);
            assert_eq!((r.status, r.errors()), (status, vec![text]), "{s} {e}");
        }
        // The earliest day is served.
        let b = historical(Some("2014-09-01"), Some("2014-09-29"), &[BY_TWEET]);
        assert_eq!(
            sim.post(Endpoint::Historical, Auth::User(0), &b)
                .await
                .status,
            200
        );
    }

    #[tokio::test]
    async fn hr28_has_29_hourly_buckets_the_last_partial() {
        let sim = start(config()).await;
        let id = ids_at(Duration::hours(40), 1)[0];
        let b = body(
            &[id],
            &[Metric::Impressions],
            &[(
                "hourly",
                &[
                    "tweet.id",
                    "engagement.type",
                    "engagement.day",
                    "engagement.hour",
                ],
            )],
        );
        let r = sim.post(Endpoint::Hr28, Auth::User(0), &b).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.json["start"], "2026-11-19T05:00:00Z");
        assert_eq!(r.json["end"], "2026-11-20T10:00:00Z");
        let days = r.json["hourly"][id.to_string()]["impressions"]
            .as_object()
            .unwrap();
        let shape: Vec<(String, Vec<String>)> = days
            .iter()
            .map(|(d, h)| (d.clone(), h.as_object().unwrap().keys().cloned().collect()))
            .collect();
        let hours = |r: std::ops::Range<u32>| r.map(|h| format!("{h:02}")).collect::<Vec<_>>();
        assert_eq!(
            shape,
            [
                ("2026-11-19".to_string(), hours(5..24)),
                ("2026-11-20".to_string(), hours(0..10)),
            ]
        );
        let mut t = datetime!(2026-11-19 05:00 UTC);
        for (day, hs) in days {
            for (h, v) in hs.as_object().unwrap() {
                let want = metrics::count(
                    SEED,
                    id,
                    Metric::Impressions,
                    t,
                    (t + Duration::hours(1)).min(NOW),
                );
                assert_eq!(
                    v.as_str().unwrap().parse::<u64>().unwrap(),
                    want,
                    "{day} {h}"
                );
                t += Duration::hours(1);
            }
        }
    }

    #[tokio::test]
    async fn hour_without_day_is_hour_of_day_or_by_day() {
        let g: (&str, &[&str]) = ("hod", &["engagement.type", "engagement.hour"]);
        let id = ids_at(Duration::days(2), 1)[0];
        let b = body(&[id], &[Metric::Impressions], &[g]);
        let sim = start(config()).await;
        let r = sim.post(Endpoint::Hr28, Auth::User(0), &b).await;
        let hod = r.json["hod"]["impressions"].as_object().unwrap();
        assert_eq!(hod.len(), 24);
        // 05..09 occur on both days of the 28-hour window.
        let h = |day: OffsetDateTime, hour: i64| {
            let t = day + Duration::hours(hour);
            metrics::count(
                SEED,
                id,
                Metric::Impressions,
                t.min(NOW),
                (t + Duration::hours(1)).min(NOW),
            )
        };
        let want = h(datetime!(2026-11-19 00:00 UTC), 5) + h(datetime!(2026-11-20 00:00 UTC), 5);
        assert_eq!(r.count(&["hod", "impressions", "05"]), want);
        assert_eq!(
            r.count(&["hod", "impressions", "12"]),
            h(datetime!(2026-11-19 00:00 UTC), 12)
        );

        let sim = start(SimConfig {
            hour_without_day: engage_sim::HourWithoutDay::ByDay,
            ..config()
        })
        .await;
        let r = sim.post(Endpoint::Hr28, Auth::User(0), &b).await;
        let days = r.json["hod"]["impressions"].as_object().unwrap();
        assert_eq!(
            days.keys().collect::<Vec<_>>(),
            ["2026-11-19", "2026-11-20"]
        );
        assert_eq!(
            r.count(&["hod", "impressions", "2026-11-20", "05"]),
            h(datetime!(2026-11-20 00:00 UTC), 5)
        );
    }

    #[tokio::test]
    async fn likes_replies_retweets_read_zero_before_2015_09_15() {
        let sim = start(config()).await;
        // A Tweet the model gives likes before the cutoff, so the zeros are the rule's doing.
        let id = (0..10_000)
            .map(|seq| metrics::tweet_id_at(datetime!(2015-09-10 00:00 UTC), seq))
            .find(|&id| {
                metrics::cumulative(SEED, id, Metric::Favorites, datetime!(2015-09-15 00:00 UTC))
                    > 5
            })
            .expect("some popular Tweet");
        let mut b = body(
            &[id],
            &[Metric::Impressions, Metric::Favorites],
            &[("daily", &["engagement.type", "engagement.day"])],
        );
        b["start"] = json!("2015-09-10");
        b["end"] = json!("2015-09-20");
        let r = sim.post(Endpoint::Historical, Auth::User(0), &b).await;
        assert_eq!(r.status, 200, "{}", r.text);
        for d in 10..15 {
            let day = format!("2015-09-{d}");
            assert_eq!(r.count(&["daily", "favorites", &day]), 0);
        }
        assert!(r.count(&["daily", "impressions", "2015-09-10"]) > 0);
        let after: u64 = (15..20)
            .map(|d| r.count(&["daily", "favorites", &format!("2015-09-{d}")]))
            .sum();
        assert_eq!(
            after,
            metrics::count(
                SEED,
                id,
                Metric::Favorites,
                datetime!(2015-09-15 00:00 UTC),
                datetime!(2015-09-20 00:00 UTC)
            )
        );
    }
}

mod ratelimit {
    use super::*;

    #[tokio::test]
    async fn three_per_minute_then_429_with_headers() {
        let sim = start(SimConfig {
            rate_limit: Some(3),
            window_secs: 60,
            ..config()
        })
        .await;
        // Keep the four requests inside one window.
        if unix_now().rem_euclid(60) >= 57 {
            tokio::time::sleep(StdDuration::from_secs(4)).await;
        }
        let b = body(
            &ids_at(Duration::days(1), 1),
            &[Metric::Favorites],
            &[BY_TWEET],
        );
        let mut seen = Vec::new();
        for i in 0..4 {
            // The second request fails authentication: it still counts.
            let auth = if i == 1 { Auth::Nothing } else { Auth::Bearer };
            let r = sim.post(Endpoint::Totals, auth, &b).await;
            let h = |n| {
                r.header(n)
                    .unwrap_or_else(|| panic!("{n} missing"))
                    .to_string()
            };
            seen.push((
                r.status,
                h("x-per-minute-limit"),
                h("x-per-minute-remaining"),
                h("x-per-minute-reset"),
            ));
            if i == 3 {
                assert!(r.errors()[0].contains("rate limit"), "{}", r.text);
                assert_eq!(
                    r.errors(),
                    ["Exceeded rate limit: 3 requests per 60 seconds"]
                );
            }
        }
        let statuses: Vec<u16> = seen.iter().map(|s| s.0).collect();
        assert_eq!(statuses, [200, 401, 200, 429]);
        let remaining: Vec<&str> = seen.iter().map(|s| s.2.as_str()).collect();
        assert_eq!(remaining, ["2", "1", "0", "0"]);
        assert!(seen.iter().all(|s| s.1 == "3" && s.3 == seen[0].3));
        let reset: i64 = seen[0].3.parse().unwrap();
        assert_eq!(reset % 60, 0);
        assert!(reset > unix_now() - 5 && reset <= unix_now() + 60);
    }

    #[tokio::test]
    async fn no_limit_no_headers() {
        let sim = start(config()).await;
        let b = body(
            &ids_at(Duration::days(1), 1),
            &[Metric::Favorites],
            &[BY_TWEET],
        );
        for _ in 0..5 {
            let r = sim.post(Endpoint::Totals, Auth::Bearer, &b).await;
            assert_eq!(r.status, 200);
            assert!(r.header("x-per-minute-limit").is_none());
        }
    }
}

mod faults {
    use super::*;

    fn with(faults: FaultConfig) -> SimConfig {
        SimConfig { faults, ..config() }
    }

    fn totals_body() -> Value {
        body(
            &ids_at(Duration::days(1), 50),
            &[Metric::Favorites],
            &[BY_TWEET],
        )
    }

    #[tokio::test]
    async fn fail_5xx_and_fail_429() {
        let sim = start(with(FaultConfig {
            fail_5xx: 1.0,
            ..FaultConfig::default()
        }))
        .await;
        let mut statuses = std::collections::BTreeSet::new();
        for _ in 0..30 {
            let r = sim
                .post(Endpoint::Totals, Auth::Bearer, &totals_body())
                .await;
            assert_eq!(r.errors().len(), 1);
            statuses.insert(r.status);
        }
        assert_eq!(statuses.into_iter().collect::<Vec<_>>(), [500, 502, 503]);

        let sim = start(SimConfig {
            rate_limit: Some(1000),
            ..with(FaultConfig {
                fail_429: 1.0,
                ..FaultConfig::default()
            })
        })
        .await;
        let r = sim
            .post(Endpoint::Totals, Auth::Bearer, &totals_body())
            .await;
        assert_eq!(r.status, 429);
        assert!(r.errors()[0].contains("rate limit"));
        assert_eq!(r.header("x-per-minute-limit"), Some("1000"));
        assert_eq!(r.header("x-per-minute-remaining"), Some("999"));
    }

    #[tokio::test]
    async fn hang_never_answers_and_shutdown_still_finishes() {
        let sim = start(with(FaultConfig {
            hang: 1.0,
            ..FaultConfig::default()
        }))
        .await;
        let err = sim
            .request(Endpoint::Totals, Auth::Bearer, &totals_body())
            .timeout(StdDuration::from_millis(300))
            .send()
            .await
            .expect_err("no answer");
        assert!(err.is_timeout(), "{err}");
        // A hang still in flight on another connection must not block shutdown.
        let pending = tokio::spawn(
            sim.request(Endpoint::Totals, Auth::Bearer, &totals_body())
                .send(),
        );
        tokio::time::sleep(StdDuration::from_millis(100)).await;
        let t = Instant::now();
        sim.handle.shutdown().await;
        assert!(t.elapsed() < StdDuration::from_secs(3));
        let _ = pending.await;
    }

    #[tokio::test]
    async fn reset_drops_the_connection_mid_body() {
        let sim = start(with(FaultConfig {
            reset: 1.0,
            ..FaultConfig::default()
        }))
        .await;
        for _ in 0..3 {
            let outcome = match sim
                .request(Endpoint::Totals, Auth::Bearer, &totals_body())
                .send()
                .await
            {
                Ok(resp) => {
                    assert_eq!(resp.status(), 200, "headers arrive before the reset");
                    resp.bytes().await.map(|_| ())
                }
                Err(e) => Err(e),
            };
            assert!(outcome.is_err(), "the body must not complete");
        }
    }

    #[tokio::test]
    async fn malformed_is_broken_json_still_gzip() {
        let sim = start(with(FaultConfig {
            malformed: 1.0,
            ..FaultConfig::default()
        }))
        .await;
        let resp = super::gzip::raw_client()
            .post(sim.url(Endpoint::Totals))
            .header("authorization", demo_bearer())
            .header("accept-encoding", "gzip")
            .body(totals_body().to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["content-encoding"], "gzip");
        let text = super::gzip::gunzip(&resp.bytes().await.unwrap());
        assert!(text.starts_with('{'));
        assert!(serde_json::from_str::<Value>(&text).is_err());
    }

    #[tokio::test]
    async fn no_gzip_sends_plain_json_although_asked() {
        let sim = start(with(FaultConfig {
            no_gzip: 1.0,
            ..FaultConfig::default()
        }))
        .await;
        let resp = super::gzip::raw_client()
            .post(sim.url(Endpoint::Totals))
            .header("authorization", demo_bearer())
            .header("accept-encoding", "gzip")
            .body(totals_body().to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        assert!(resp.headers().get("content-encoding").is_none());
        let v: Value = serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap();
        assert!(v["by_tweet"].is_object());
    }

    #[tokio::test]
    async fn latency_delays_every_answer() {
        let sim = start(with(FaultConfig {
            latency_ms: 150,
            ..FaultConfig::default()
        }))
        .await;
        for auth in [Auth::Bearer, Auth::Nothing] {
            let t = Instant::now();
            let r = sim.post(Endpoint::Totals, auth, &totals_body()).await;
            let e = t.elapsed();
            assert!(r.status == 200 || r.status == 401);
            assert!(e >= StdDuration::from_millis(150), "{e:?}");
            assert!(e < StdDuration::from_millis(1500), "{e:?}");
        }
    }
}

/// The `faults.doc_shapes` fault: the documentation's variant 200 shapes, with the requested numbers
/// unchanged.
mod doc_shapes {
    use super::*;

    fn with(doc_shapes: f64) -> SimConfig {
        SimConfig {
            faults: FaultConfig {
                doc_shapes,
                ..FaultConfig::default()
            },
            ..config()
        }
    }

    /// Every count leaf turned into a string, so a fault body compares with the plain one.
    fn as_strings(v: &Value) -> Value {
        match v {
            Value::Number(n) => Value::String(n.to_string()),
            Value::Object(o) => o
                .iter()
                .map(|(k, v)| (k.clone(), as_strings(v)))
                .collect::<serde_json::Map<_, _>>()
                .into(),
            other => other.clone(),
        }
    }

    /// (string leaves, number leaves) under a grouping.
    fn leaf_kinds(v: &Value) -> (usize, usize) {
        match v {
            Value::String(_) => (1, 0),
            Value::Number(_) => (0, 1),
            Value::Object(o) => o
                .values()
                .map(leaf_kinds)
                .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1)),
            other => panic!("unexpected leaf {other}"),
        }
    }

    /// A count leaf, string or bare number.
    fn num(v: &Value) -> u64 {
        match v {
            Value::String(s) => s.parse().expect("base-10 integer"),
            Value::Number(n) => n.as_u64().expect("unsigned integer"),
            other => panic!("{other} is not a count"),
        }
    }

    fn without_key(v: &Value, key: &str) -> Value {
        match v {
            Value::Object(o) => o
                .iter()
                .filter(|(k, _)| k.as_str() != key)
                .map(|(k, v)| (k.clone(), without_key(v, key)))
                .collect::<serde_json::Map<_, _>>()
                .into(),
            other => other.clone(),
        }
    }

    /// Asks the same request of a plain simulator and of one with the fault always on, checks the
    /// three variant shapes, and that taking them away gives the plain body exactly. Returns
    /// (plain, faulted, the unrequested metric).
    async fn compare(
        e: Endpoint,
        auth: Auth<'_>,
        b: &Value,
        per_tweet: &str,
    ) -> (Value, Value, Metric) {
        let plain = start(with(0.0)).await.post(e, auth, b).await;
        let faulted = start(with(1.0)).await.post(e, auth, b).await;
        assert_eq!(plain.status, 200, "{}", plain.text);
        assert_eq!(faulted.status, 200, "{}", faulted.text);
        let requested: Vec<String> = b["engagement_types"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m.as_str().unwrap().to_string())
            .collect();
        let groupings: Vec<&str> = b["groupings"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();

        // At 0 nothing changes: only string counts, only requested metrics, documented errors.
        for g in &groupings {
            assert_eq!(
                leaf_kinds(&plain.json[g]).1,
                0,
                "{g} has numbers: {}",
                plain.text
            );
        }
        for t in plain.json[per_tweet].as_object().unwrap().values() {
            assert!(t.as_object().unwrap().keys().all(|k| requested.contains(k)));
        }
        let plain_errors = plain.json["errors"].as_array().cloned().unwrap_or_default();
        assert!(!plain.text.contains(engage_sim::faults::DOC_SHAPES_ERROR));

        // (1) numbers and strings mixed, in every grouping (per-Tweet and summed ones).
        for g in &groupings {
            let (strings, numbers) = leaf_kinds(&faulted.json[g]);
            assert!(
                strings > 0 && numbers > 0,
                "{g}: {strings} strings, {numbers} numbers"
            );
        }
        // (2) one unrequested metric, served by the endpoint for these credentials, for every Tweet.
        let tweets = faulted.json[per_tweet].as_object().unwrap();
        let extra: Vec<String> = tweets
            .values()
            .flat_map(|t| t.as_object().unwrap().keys().cloned())
            .filter(|k| !requested.contains(k))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        assert_eq!(extra.len(), 1, "{extra:?}");
        let extra: Metric = extra[0].parse().expect("a metric name");
        let kind = if matches!(auth, Auth::Bearer) {
            AuthKind::Bearer
        } else {
            AuthKind::User
        };
        assert!(e.allowed_metrics(kind).contains(&extra), "{extra} on /{e}");
        assert!(tweets.values().all(|t| !t[extra.as_str()].is_null()));
        // (3) one extra errors string after the documented ones.
        let mut want = plain_errors.clone();
        want.push(json!(engage_sim::faults::DOC_SHAPES_ERROR));
        assert_eq!(faulted.json["errors"], Value::Array(want));

        // Without the variant shapes, the body is the plain one, exactly.
        let mut stripped = as_strings(&without_key(&faulted.json, extra.as_str()));
        if plain_errors.is_empty() {
            stripped.as_object_mut().unwrap().remove("errors");
        } else {
            stripped["errors"] = Value::Array(plain_errors);
        }
        assert_eq!(stripped, plain.json);
        (plain.json, faulted.json, extra)
    }

    #[tokio::test]
    async fn totals_bearer_gets_numbers_a_public_extra_metric_and_an_extra_error() {
        let mut ids = ids_at(Duration::days(1), 6);
        ids.push(ids_at(Duration::days(2000), 1)[0]);
        let b = body(
            &ids,
            &[Metric::Favorites, Metric::Retweets, Metric::VideoViews],
            &[
                BY_TWEET,
                ("overall", &["engagement.type"]),
                ("by_type_tweet", &["engagement.type", "tweet.id"]),
            ],
        );
        let (plain, faulted, extra) = compare(Endpoint::Totals, Auth::Bearer, &b, "by_tweet").await;
        // The first public metric in table order that was not asked and has no age rule.
        assert_eq!(extra, Metric::Replies);
        for &id in &ids {
            let want = metrics::cumulative(SEED, id, extra, NOW);
            assert_eq!(num(&faulted["by_tweet"][id.to_string()]["replies"]), want);
            assert_eq!(
                num(&faulted["by_type_tweet"]["replies"][id.to_string()]),
                want
            );
        }
        assert!(
            faulted["overall"]["replies"].is_null(),
            "summed groupings keep the asked metrics"
        );
        // Every other Tweet's counts are bare numbers: the 2nd Tweet's, not the 1st's.
        assert!(faulted["by_tweet"][ids[0].to_string()]["favorites"].is_string());
        assert!(faulted["by_tweet"][ids[1].to_string()]["favorites"].is_number());
        // The 1800-day shape holds under the fault: listed, and still "0" in the grouping.
        let ancient = ids[6].to_string();
        for v in [&plain, &faulted] {
            assert_eq!(v["unsupported_for_video_views_tweet_ids"], json!([ancient]));
            assert_eq!(v["by_tweet"][&ancient]["video_views"], "0");
        }
    }

    #[tokio::test]
    async fn totals_user_context_keeps_the_90_day_shape() {
        let recent = ids_at(Duration::days(10), 1)[0];
        let old = ids_at(Duration::days(100), 1)[0];
        let ancient = ids_at(Duration::days(2000), 1)[0];
        let ids = [recent, old, ancient];
        let b = body(
            &ids,
            &[Metric::Impressions, Metric::Favorites, Metric::VideoViews],
            &[BY_TWEET, BY_TYPE],
        );
        let (plain, faulted, extra) =
            compare(Endpoint::Totals, Auth::User(0), &b, "by_tweet").await;
        assert_eq!(extra, Metric::Retweets);
        let s = |id: u64| id.to_string();
        for v in [&plain, &faulted] {
            assert_eq!(
                v["unsupported_for_impressions_engagements_tweet_ids"],
                json!([s(old), s(ancient)])
            );
            assert_eq!(
                v["unsupported_for_video_views_tweet_ids"],
                json!([s(ancient)])
            );
            assert!(v["errors"][0]
                .as_str()
                .unwrap()
                .starts_with("Impressions & engagements for tweets older than 90 days ("));
            assert!(v["by_tweet"][s(old)]["impressions"].is_null());
            assert_eq!(num(&v["by_tweet"][s(ancient)]["video_views"]), 0);
        }
        for id in ids {
            assert_eq!(
                num(&faulted["by_tweet"][s(id)]["retweets"]),
                metrics::cumulative(SEED, id, Metric::Retweets, NOW)
            );
        }
    }

    #[tokio::test]
    async fn hr28_extra_metric_is_a_real_series() {
        let ids = ids_at(Duration::hours(40), 3);
        let b = body(
            &ids,
            &[Metric::Impressions, Metric::UrlClicks],
            &[
                ("daily", &["tweet.id", "engagement.type", "engagement.day"]),
                ("per_day", &["engagement.type", "engagement.day"]),
            ],
        );
        let (_, faulted, extra) = compare(Endpoint::Hr28, Auth::User(0), &b, "daily").await;
        assert_eq!(extra, Metric::Favorites);
        let start = parse_time("start", faulted["start"].as_str().unwrap()).unwrap();
        for id in ids {
            let days = faulted["daily"][id.to_string()]["favorites"]
                .as_object()
                .unwrap();
            assert_eq!(days.len(), 2);
            let sum: u64 = days.values().map(num).sum();
            assert_eq!(sum, metrics::count(SEED, id, Metric::Favorites, start, NOW));
        }
    }

    #[tokio::test]
    async fn error_answers_are_untouched_and_every_request_is_counted() {
        let sim = start(with(1.0)).await;
        let b = body(
            &ids_at(Duration::days(1), 4),
            &[Metric::Favorites],
            &[BY_TWEET],
        );
        for _ in 0..2 {
            let r = sim.post(Endpoint::Totals, Auth::Bearer, &b).await;
            assert_eq!(r.status, 200);
            assert_eq!(r.errors(), [engage_sim::faults::DOC_SHAPES_ERROR]);
        }
        let r = sim
            .post(Endpoint::Totals, Auth::Header("Bearer wrong"), &b)
            .await;
        assert_eq!(r.status, 401);
        assert_eq!(r.errors().len(), 1);
        assert!(!r.text.contains(engage_sim::faults::DOC_SHAPES_ERROR));
        let counted: Value = sim
            .client
            .get(format!("{}/sim/requests", sim.handle.url()))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        // Two 200 answers, each to the same 4 IDs; the 401 answered none.
        assert_eq!(counted, json!({"requests": 3, "ids": 8}));
    }
}

mod routing {
    use super::*;

    #[tokio::test]
    async fn unknown_paths_and_methods() {
        let sim = start(config()).await;
        let r = Resp::read(
            sim.client
                .post(format!("{}/insights/engagement/lifetime", sim.handle.url()))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(
            (r.status, r.errors()),
            (404, vec![engage_sim::NOT_FOUND.to_string()])
        );
        let r = Resp::read(
            sim.client
                .get(sim.url(Endpoint::Totals))
                .header("authorization", demo_bearer())
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(r.status, 405);
        assert_eq!(r.header("allow"), Some("POST"));
        assert_eq!(r.errors().len(), 1);
    }

    #[tokio::test]
    async fn dropping_the_handle_stops_the_server() {
        let sim = start(config()).await;
        let addr = sim.handle.addr;
        drop(sim);
        let deadline = Instant::now() + StdDuration::from_secs(5);
        while tokio::net::TcpStream::connect(addr).await.is_ok() {
            assert!(Instant::now() < deadline, "still accepting after drop");
            tokio::time::sleep(StdDuration::from_millis(20)).await;
        }
    }

    #[tokio::test]
    async fn missing_or_invalid_json_is_400() {
        let sim = start(config()).await;
        for raw in [
            "",
            "  ",
            "{\"tweet_ids\": [",
            "[1,2]",
            "{\"tweet_ids\": [\"12x\"]}",
        ] {
            let r = Resp::read(
                sim.client
                    .post(sim.url(Endpoint::Totals))
                    .header("Authorization", demo_bearer())
                    .body(raw)
                    .send()
                    .await
                    .unwrap(),
            )
            .await;
            assert_eq!(r.status, 400, "{raw:?}");
            assert_eq!(r.errors().len(), 1, "{raw:?}");
        }
    }

    #[tokio::test]
    async fn check_order_gzip_then_auth_then_json_then_rules() {
        let sim = start(config()).await;
        // No gzip and no auth: 406 first.
        let r = Resp::read(
            sim.request(Endpoint::Totals, Auth::Nothing, &json!({}))
                .header("accept-encoding", "identity")
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(r.status, 406);
        // No auth and broken JSON: 401 first.
        let r = Resp::read(
            sim.client
                .post(sim.url(Endpoint::Totals))
                .body("{")
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(r.status, 401);
        // Rules before ownership: with 2 accounts, an unowned ID in a request that also breaks a
        // rule gets the rule's 400.
        let sim = start(two_accounts()).await;
        let ids = ids_at(Duration::days(1), 2);
        let b = body(&ids, &[Metric::QuoteTweets], &[BY_TWEET]);
        let r = sim.post(Endpoint::Hr28, Auth::User(0), &b).await;
        assert_eq!(r.status, 400);
        assert_eq!(
            r.errors(),
            [rule_error(Endpoint::Hr28, AuthKind::User, &b).1]
        );
    }
}

mod consistency {
    use super::*;
    use proptest::prelude::*;
    use std::sync::OnceLock;

    struct Shared {
        rt: tokio::runtime::Runtime,
        sim: Sim,
    }

    fn shared() -> &'static Shared {
        static SHARED: OnceLock<Shared> = OnceLock::new();
        SHARED.get_or_init(|| {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            let sim = rt.block_on(start(config()));
            Shared { rt, sim }
        })
    }

    const SERIES_METRICS: [Metric; 5] = [
        Metric::Impressions,
        Metric::Engagements,
        Metric::Favorites,
        Metric::VideoViews,
        Metric::UserProfileClicks,
    ];

    fn metric_subset() -> impl Strategy<Value = Vec<Metric>> {
        proptest::sample::subsequence(SERIES_METRICS.to_vec(), 1..=SERIES_METRICS.len())
    }

    fn parse(v: &Value) -> OffsetDateTime {
        parse_time("start", v.as_str().unwrap()).unwrap()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(16))]

        /// Every hour is a model difference, a day is the sum of its hours, a window total is
        /// `metrics::count` over the window, and `[engagement.type]` is the sum over Tweets.
        #[test]
        fn historical_groupings_agree_with_the_model(
            start_hours_ago in 1i64..(60 * 24),
            span_hours in 1i64..=(28 * 24),
            ages in proptest::collection::vec(0i64..(90 * 24), 1..=4),
            wanted in metric_subset(),
        ) {
            let s = shared();
            let start = engagement_api::window::floor_hour(NOW) - Duration::hours(start_hours_ago);
            let end = (start + Duration::hours(span_hours)).min(NOW);
            let ids: Vec<u64> = ages
                .iter()
                .enumerate()
                .map(|(i, h)| metrics::tweet_id_at(NOW - Duration::hours(*h) - Duration::minutes(i as i64 * 7), i as u64))
                .collect();
            let mut b = body(&ids, &wanted, &[
                ("daily", &["tweet.id", "engagement.type", "engagement.day"]),
                ("hourly", &["engagement.type", "tweet.id", "engagement.day", "engagement.hour"]),
                ("types", &["engagement.type"]),
            ]);
            b["start"] = json!(format_time(start));
            b["end"] = json!(format_time(end));
            let r = s.rt.block_on(s.sim.post(Endpoint::Historical, Auth::User(0), &b));
            prop_assert_eq!(r.status, 200, "{}", r.text);
            let (ws, we) = (parse(&r.json["start"]), parse(&r.json["end"]));
            for m in &wanted {
                let mut type_total = 0;
                for id in &ids {
                    let key = id.to_string();
                    let days = r.json["daily"][&key][m.as_str()].as_object().unwrap();
                    let mut window_total = 0;
                    let mut t = ws;
                    for (day, v) in days {
                        let day_count: u64 = v.as_str().unwrap().parse().unwrap();
                        let hours = r.json["hourly"][m.as_str()][&key][day].as_object().unwrap();
                        let mut sum = 0;
                        for v in hours.values() {
                            let hv: u64 = v.as_str().unwrap().parse().unwrap();
                            let want = metrics::count(SEED, *id, *m, t.min(NOW), (t + Duration::hours(1)).min(NOW));
                            prop_assert_eq!(hv, want);
                            sum += hv;
                            t += Duration::hours(1);
                        }
                        prop_assert_eq!(day_count, sum, "day {} = sum of its hours", day);
                        window_total += day_count;
                    }
                    prop_assert_eq!(t, we, "every hour bucket of the window appears");
                    prop_assert_eq!(window_total, metrics::count(SEED, *id, *m, ws, we.min(NOW)));
                    type_total += window_total;
                }
                prop_assert_eq!(r.count(&["types", m.as_str()]), type_total);
            }
        }

        /// `/totals` is `cumulative(now)`, and `[engagement.type]` sums it over the Tweets.
        #[test]
        fn totals_are_cumulative_at_now(
            ages in proptest::collection::vec(0i64..(1700 * 24), 1..=40),
        ) {
            let s = shared();
            let ids: Vec<u64> = ages
                .iter()
                .enumerate()
                .map(|(i, h)| metrics::tweet_id_at(NOW - Duration::hours(*h), i as u64))
                .collect();
            let mut unique = ids.clone();
            unique.sort_unstable();
            unique.dedup();
            let r = s.rt.block_on(s.sim.post(Endpoint::Totals, Auth::Bearer, &body(&ids, &Metric::PUBLIC, &[BY_TWEET, BY_TYPE])));
            prop_assert_eq!(r.status, 200, "{}", r.text);
            for m in Metric::PUBLIC {
                let mut sum = 0;
                for id in &unique {
                    let v = r.count(&["by_tweet", &id.to_string(), m.as_str()]);
                    prop_assert_eq!(v, metrics::cumulative(SEED, *id, m, NOW));
                    sum += v;
                }
                prop_assert_eq!(r.count(&["by_type", m.as_str()]), sum);
            }
        }
    }
}

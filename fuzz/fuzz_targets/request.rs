//! Request validation (`engagement_api::request::validate`) on arbitrary JSON bodies.
//!
//! Each input that deserializes as a `WireRequest` is validated for every endpoint and both kinds
//! of authentication at a fixed `now` (the fixtures' 2024-05-02T09:40:00Z).
//!
//! Asserts: no panic; an error answers 400 or 403 and has a message; a valid request survives the
//! trip to the wire and back: `to_body()` deserializes, validates again (same endpoint, auth and
//! `now`) to an equal request, and serializes to the same bytes. The same `start`/`end` also go
//! through the period rules of a `/historical` job (`resolve_period`, `split`): see `check_period`.
#![no_main]

use engagement_api::request::{validate, WireGrouping, WireRequest};
use engagement_api::window::{self, format_time, Window, MAX_SPAN};
use engagement_api::{AuthKind, Endpoint};
use libfuzzer_sys::fuzz_target;
use time::macros::datetime;
use time::OffsetDateTime;

const NOW: OffsetDateTime = datetime!(2024-05-02 09:40 UTC);

fuzz_target!(|data: &[u8]| {
    let Ok(wire) = serde_json::from_slice::<WireRequest>(data) else {
        return;
    };
    check_period(&wire);
    for endpoint in Endpoint::ALL {
        for auth in [AuthKind::User, AuthKind::Bearer] {
            // None: a known finding (engage_fuzz::KNOWN_PANICS), skipped.
            let Some(result) = engage_fuzz::guard(|| validate(endpoint, auth, &wire, NOW)) else {
                continue;
            };
            match result {
                Ok(req) => {
                    assert_eq!(req.endpoint, endpoint);
                    assert_eq!(req.auth, auth);
                    let body = req.to_body();
                    let back: WireRequest = serde_json::from_slice(&body)
                        .unwrap_or_else(|e| panic!("to_body() does not read back: {e}"));
                    let Some(again) = engage_fuzz::guard(|| validate(endpoint, auth, &back, NOW))
                    else {
                        panic!("a request that validated panics the second time");
                    };
                    let again = again.unwrap_or_else(|e| {
                        panic!(
                            "to_body() of a valid request is refused: {e}\nbody: {}",
                            String::from_utf8_lossy(&body)
                        )
                    });
                    assert_eq!(again, req, "round trip changed the request");
                    assert_eq!(again.to_body(), body, "to_body() is not stable");
                }
                Err(e) => {
                    let status = e.status();
                    assert!(status == 400 || status == 403, "status {status} for {e}");
                    assert!(!e.to_string().is_empty());
                }
            }
        }
    }
});

/// The period of a `/historical` job (`--start`, `--end`, `--days`; the first ID stands in for
/// `--days` so the fuzzer can steer it) and its split into request windows: the windows tile the
/// period, each is hour-aligned and at most 28 days, and each, sent as a request, validates to itself.
fn check_period(wire: &WireRequest) {
    let start = wire
        .start
        .as_deref()
        .and_then(|s| window::parse_time("start", s).ok());
    let end = wire
        .end
        .as_deref()
        .and_then(|s| window::parse_time("end", s).ok());
    let days = wire.tweet_ids.first().map(|&d| d as u32);
    let Some(Ok(period)) = engage_fuzz::guard(|| window::resolve_period(start, end, days, NOW))
    else {
        return;
    };
    let windows = window::split(period.start, period.end);
    assert_eq!(windows.first().map(|w| w.start), Some(period.start));
    assert_eq!(windows.last().map(|w| w.end), Some(period.end));
    for pair in windows.windows(2) {
        assert_eq!(pair[0].end, pair[1].start, "windows do not tile: {pair:?}");
    }
    for w in &windows {
        assert!(w.start < w.end && w.end - w.start <= MAX_SPAN, "{w:?}");
        assert_eq!(window::floor_hour(w.start), w.start);
        assert_eq!(window::floor_hour(w.end), w.end);
        let request = WireRequest {
            tweet_ids: vec![1],
            engagement_types: vec!["impressions".into()],
            groupings: [(
                "g".to_string(),
                WireGrouping {
                    group_by: vec!["engagement.type".into()],
                },
            )]
            .into(),
            start: Some(format_time(w.start)),
            end: Some(format_time(w.end)),
        };
        let validated = validate(Endpoint::Historical, AuthKind::User, &request, NOW)
            .unwrap_or_else(|e| panic!("window {w:?} of period {period:?} is refused: {e}"));
        let expected: Option<Window> = Some(*w);
        assert_eq!(validated.window, expected);
    }
}

//! The response parser (`engagement_api::response`) on arbitrary bodies.
//!
//! Every input is parsed as the answer to six requests whose groupings nest 1 to 4 levels (the
//! names are the fixtures' names, which the seed corpus uses), then read as an error body.
//!
//! Asserts: no panic; on success every requested grouping is reported, in request order, with its
//! `group_by`, and each cell has a field exactly for the levels its grouping has, an hour in 0..=23;
//! `forbidden_ids` returns no repeats and only IDs whose digits appear in the messages.
#![no_main]

use std::sync::LazyLock;

use engagement_api::endpoint::GroupBy::{self, *};
use engagement_api::request::Grouping;
use engagement_api::response::{forbidden_ids, parse_error_body, parse_response};
use libfuzzer_sys::fuzz_target;

fn g(name: &str, levels: &[GroupBy]) -> Grouping {
    Grouping {
        name: name.to_string(),
        group_by: levels.to_vec(),
    }
}

static SHAPES: LazyLock<Vec<Vec<Grouping>>> = LazyLock::new(|| {
    vec![
        // /totals: 2 and 1 levels.
        vec![
            g("by_tweet", &[TweetId, EngagementType]),
            g("overall", &[EngagementType]),
        ],
        vec![
            g("owned_by_tweet", &[TweetId, EngagementType]),
            g("overall", &[EngagementType]),
        ],
        vec![g("by_tweet", &[TweetId, EngagementType])],
        // /28hr: 3 and 4 levels.
        vec![
            g("daily", &[TweetId, EngagementType, EngagementDay]),
            g(
                "hourly",
                &[EngagementType, TweetId, EngagementDay, EngagementHour],
            ),
        ],
        // /historical: the other 2-level order, days, and hours without a day.
        vec![
            g("per_type_per_tweet", &[EngagementType, TweetId]),
            g("per_type_per_day", &[EngagementType, EngagementDay]),
            g("hour_of_day", &[EngagementType, EngagementHour]),
        ],
        // The other legal 4-level order.
        vec![g(
            "all",
            &[TweetId, EngagementType, EngagementDay, EngagementHour],
        )],
    ]
});

fuzz_target!(|data: &[u8]| {
    for shape in SHAPES.iter() {
        let Ok(r) = parse_response(data, shape) else {
            continue;
        };
        assert_eq!(r.groupings.len(), shape.len());
        for (parsed, asked) in r.groupings.iter().zip(shape) {
            assert_eq!(parsed.name, asked.name);
            assert_eq!(parsed.group_by, asked.group_by);
            let has = |l| asked.group_by.contains(&l);
            for c in &parsed.cells {
                assert_eq!(c.tweet_id.is_some(), has(TweetId), "{c:?}");
                assert_eq!(c.metric.is_some(), has(EngagementType), "{c:?}");
                assert_eq!(c.day.is_some(), has(EngagementDay), "{c:?}");
                assert_eq!(c.hour.is_some(), has(EngagementHour), "{c:?}");
                assert!(c.hour.is_none_or(|h| h <= 23), "{c:?}");
            }
        }
        let _ = r.is_partial();
        check_forbidden(&r.errors);
    }

    let errors = parse_error_body(data);
    check_forbidden(&errors);
    // The message scanner on raw text too, without the JSON layer in front.
    check_forbidden(&[String::from_utf8_lossy(data).into_owned()]);
});

fn check_forbidden(errors: &[String]) {
    let ids = forbidden_ids(errors);
    for (i, id) in ids.iter().enumerate() {
        assert!(!ids[..i].contains(id), "repeated ID {id}");
        let digits = id.to_string();
        assert!(
            errors.iter().any(|e| e.contains(&digits)),
            "{id} is not in {errors:?}"
        );
    }
}

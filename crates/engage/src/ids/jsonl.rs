//! JSON lines: one Tweet object a line, its ID taken from `id_str`, `id` or
//! X API v2's `data.id` ([`parse_json_line`]).

use serde::Deserialize;
use serde_json::Value;

use super::id::parse_id;
use super::lines::{step_lines, LineSource};
use super::reader::{Sink, Source};
use super::reason;

/// A JSON-lines source: one Tweet object a line.
pub(super) struct JsonLines(pub(super) LineSource);

impl Source for JsonLines {
    fn step(&mut self, sink: &mut Sink<'_>) -> bool {
        step_lines(&mut self.0, sink, parse_json_line)
    }
}

/// The fields we need from a Tweet object; everything else is skipped by
/// serde without being materialised.
#[derive(Deserialize)]
struct JsonIds {
    #[serde(default)]
    id_str: Option<Value>,
    #[serde(default)]
    id: Option<Value>,
    /// X API v2 (stream and lookup output) wraps the Tweet: `{"data":{"id":"…"}}`.
    /// A `Value` rather than a struct because serde's derived struct visitor
    /// would also take an array (`"data":[…]`, a multi-Tweet lookup) as
    /// positional fields and invent an ID.
    #[serde(default)]
    data: Option<Value>,
}

/// The Tweet ID of one JSON line (trimmed, not blank), or why it has none.
///
/// `#[inline]`: it runs once a line, passed to [`step_lines`] as its parser,
/// and left as a call there it cost about 3 % more CPU time on the reader
/// bench's JSON lines.
#[inline]
fn parse_json_line(text: &[u8]) -> Result<u64, String> {
    // serde's derived struct visitor also accepts a JSON array like `[1, 2]`
    // as positional fields, which would invent an ID.
    if text.first() != Some(&b'{') {
        return Err(
            match serde_json::from_slice::<serde::de::IgnoredAny>(text) {
                Ok(_) => reason::NOT_AN_OBJECT.to_string(),
                Err(e) => json_error(text, &e),
            },
        );
    }
    let ids: JsonIds = serde_json::from_slice(text).map_err(|e| json_error(text, &e))?;
    let data_id = ids.data.as_ref().and_then(|d| d.get("id"));
    let value = [ids.id_str.as_ref(), ids.id.as_ref(), data_id]
        .into_iter()
        .flatten()
        .find(|v| !v.is_null())
        .ok_or_else(|| reason::NO_ID_FIELD.to_string())?;
    json_id(value).map_err(str::to_string)
}

fn json_error(text: &[u8], e: &serde_json::Error) -> String {
    if std::str::from_utf8(text).is_err() {
        return reason::INVALID_UTF8.to_string();
    }
    let msg = e.to_string();
    // Always line 1 of a one-line document, so only the column helps.
    let msg = match msg.rfind(" at line 1 column ") {
        Some(i) => format!("{} at column {}", &msg[..i], &msg[i + 18..]),
        None => msg,
    };
    // Data errors are well-formed JSON of the wrong shape (duplicate keys).
    let prefix = if e.is_data() {
        "unexpected JSON"
    } else {
        "invalid JSON"
    };
    format!("{prefix}: {msg}")
}

fn json_id(value: &Value) -> Result<u64, &'static str> {
    match value {
        // serde_json keeps integer literals as exact u64/i64 and only uses
        // f64 for literals with a fraction or exponent, so large IDs survive.
        Value::Number(n) => {
            if let Some(v) = n.as_u64() {
                match v {
                    0 => Err(reason::ZERO),
                    v if v > i64::MAX as u64 => Err(reason::ABOVE_I64),
                    v => Ok(v),
                }
            } else if n.is_i64() || n.as_f64().is_some_and(|f| f < 0.0) {
                Err(reason::NEGATIVE)
            } else if n
                .as_f64()
                .is_some_and(|f| f >= 18_446_744_073_709_551_616.0)
            {
                // An integer literal too big for u64 also lands here as f64.
                Err(reason::OUT_OF_RANGE)
            } else {
                Err(reason::NOT_AN_INTEGER)
            }
        }
        Value::String(s) => {
            let s = s.trim();
            // Activity Streams: "tag:search.twitter.com,2005:123". Only a
            // `tag:` URI is unwrapped: any string with a colon (a time such
            // as "12:34", a URL) is not an ID.
            let digits = match s.strip_prefix("tag:") {
                Some(tag) => tag.rsplit_once(':').map_or(s, |(_, id)| id),
                None => s,
            };
            parse_id(digits.as_bytes())
        }
        _ => Err(reason::ID_WRONG_TYPE),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::testutil::*;
    use tempfile::TempDir;

    #[test]
    fn jsonl_ids() {
        let dir = TempDir::new().unwrap();
        let data = br#"{"id_str":"1790000000000000001","id":1790000000000000000,"text":"x"}
{"id":1790000000000000001,"user":{"id":5}}

{"id":"tag:search.twitter.com,2005:1790000000000000003"}
{"id":"1790000000000000004"}
{"id":1.2e18}
{"id":-5}
{"id":0}
{"id":9223372036854775808}
{"id":99999999999999999999}
{"text":"no id"}
{"id":null,"id_str":null}
{"id":true}
{"id_str":"12a"}
{"id": 17
[1,2]
  {"id": 8}  
{"id": 1, "id": 2}
"123"
"#;
        let items = read_file(dir.path(), "t.jsonl", data);
        let s = summary(&items);
        assert_eq!(s[0], (1, Ok(1790000000000000001)));
        assert_eq!(s[1], (2, Ok(1790000000000000001)));
        assert_eq!(s[2], (4, Ok(1790000000000000003)));
        assert_eq!(s[3], (5, Ok(1790000000000000004)));
        assert_eq!(s[4], (6, Err(reason::NOT_AN_INTEGER.into())));
        assert_eq!(s[5], (7, Err(reason::NEGATIVE.into())));
        assert_eq!(s[6], (8, Err(reason::ZERO.into())));
        assert_eq!(s[7], (9, Err(reason::ABOVE_I64.into())));
        assert_eq!(s[8], (10, Err(reason::OUT_OF_RANGE.into())));
        assert_eq!(s[9], (11, Err(reason::NO_ID_FIELD.into())));
        assert_eq!(s[10], (12, Err(reason::NO_ID_FIELD.into())));
        assert_eq!(s[11], (13, Err(reason::ID_WRONG_TYPE.into())));
        assert_eq!(s[12], (14, Err(reason::NOT_A_NUMBER.into())));
        let Err(invalid) = &s[13].1 else { panic!() };
        assert!(invalid.starts_with("invalid JSON: "), "{invalid}");
        assert!(!invalid.contains("line 1"), "{invalid}");
        assert_eq!(s[14], (16, Err(reason::NOT_AN_OBJECT.into())));
        assert_eq!(s[15], (17, Ok(8)));
        let Err(duplicate) = &s[16].1 else { panic!() };
        assert!(
            duplicate.starts_with("unexpected JSON: duplicate field"),
            "{duplicate}"
        );
        assert_eq!(s[17], (19, Err(reason::NOT_AN_OBJECT.into())));
        assert_eq!(s.len(), 18);
    }

    #[test]
    fn json_number_edge_cases() {
        let cases: &[(&str, Result<u64, &str>)] = &[
            (r#"{"id":-1.5}"#, Err(reason::NEGATIVE)),
            (r#"{"id":1.0}"#, Err(reason::NOT_AN_INTEGER)),
            (r#"{"id":1e30}"#, Err(reason::OUT_OF_RANGE)),
            (r#"{"id":9223372036854775807}"#, Ok(i64::MAX as u64)),
            (r#"{"id_str":" 42 "}"#, Ok(42)),
            (r#"{"id_str":"","id":5}"#, Err(reason::EMPTY)),
            (r#"{"id_str":"1.23457E+18"}"#, Err(reason::SCIENTIFIC)),
            (
                r#"{"id":"tag:search.twitter.com,2005:"}"#,
                Err(reason::EMPTY),
            ),
            (r#"{"id":{"n":1}}"#, Err(reason::ID_WRONG_TYPE)),
        ];
        for (line, want) in cases {
            let got = parse_json_line(line.as_bytes());
            assert_eq!(got, want.map_err(str::to_string), "{line}");
        }
        let bad = parse_json_line(b"[1").unwrap_err();
        assert!(bad.starts_with("invalid JSON: "), "{bad}");
    }

    #[test]
    fn activity_streams_ids_only_from_tag_uris() {
        let cases: &[(&str, Result<u64, &str>)] = &[
            (r#"{"id":"tag:search.twitter.com,2005:42"}"#, Ok(42)),
            (r#"{"id":" tag:twitter.com,2013:42 "}"#, Ok(42)),
            (r#"{"id_str":"12:34"}"#, Err(reason::NOT_A_NUMBER)),
            (r#"{"id":"2024-05-01T10:30"}"#, Err(reason::NOT_A_NUMBER)),
            (
                r#"{"id":"https://x.com/u/status/42"}"#,
                Err(reason::NOT_A_NUMBER),
            ),
            (r#"{"id":"urn:tweet:42"}"#, Err(reason::NOT_A_NUMBER)),
            // A tag URI without its `:specific` part is not unwrapped.
            (r#"{"id":"tag:42"}"#, Err(reason::NOT_A_NUMBER)),
            (r#"{"id":"TAG:x,2005:42"}"#, Err(reason::NOT_A_NUMBER)),
        ];
        for (line, want) in cases {
            let got = parse_json_line(line.as_bytes());
            assert_eq!(got, want.map_err(str::to_string), "{line}");
        }
    }

    #[test]
    fn jsonl_x_api_v2_data_id() {
        let cases: &[(&str, Result<u64, &str>)] = &[
            (
                r#"{"data":{"id":"1790000000000000001","text":"hi"}}"#,
                Ok(1790000000000000001),
            ),
            (
                r#"{"data":{"id":17,"edit_history_tweet_ids":["17"]},"includes":{"users":[{"id":"5"}]}}"#,
                Ok(17),
            ),
            // Top-level id_str, then id, win over data.id.
            (r#"{"data":{"id":"1"},"id":2}"#, Ok(2)),
            (r#"{"id_str":"3","data":{"id":"1"}}"#, Ok(3)),
            (r#"{"id":null,"data":{"id":"4"}}"#, Ok(4)),
            (r#"{"data":{"id":"1.79E+18"}}"#, Err(reason::SCIENTIFIC)),
            (r#"{"data":{"id":true}}"#, Err(reason::ID_WRONG_TYPE)),
            (r#"{"data":{"id":null}}"#, Err(reason::NO_ID_FIELD)),
            (r#"{"data":{"text":"no id"}}"#, Err(reason::NO_ID_FIELD)),
            // A multi-Tweet lookup is an array: not guessed at.
            (
                r#"{"data":[{"id":"1"},{"id":"2"}]}"#,
                Err(reason::NO_ID_FIELD),
            ),
            (r#"{"data":"5"}"#, Err(reason::NO_ID_FIELD)),
            (r#"{"errors":[{"value":"5"}]}"#, Err(reason::NO_ID_FIELD)),
        ];
        for (line, want) in cases {
            let got = parse_json_line(line.as_bytes());
            assert_eq!(got, want.map_err(str::to_string), "{line}");
        }
        let dup = parse_json_line(br#"{"data":{"id":"1"},"data":{"id":"2"}}"#).unwrap_err();
        assert!(
            dup.starts_with("unexpected JSON: duplicate field `data`"),
            "{dup}"
        );
    }

    #[test]
    fn jsonl_invalid_utf8_and_bom() {
        let dir = TempDir::new().unwrap();
        let items = read_file(
            dir.path(),
            "t.ndjson",
            b"\xEF\xBB\xBF{\"id\":3}\n{\"id\":\"\xff\"}\n",
        );
        assert_eq!(
            summary(&items),
            vec![(1, Ok(3)), (2, Err(reason::INVALID_UTF8.into()))]
        );
    }
}

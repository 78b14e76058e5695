//! The text of one line or field to a Tweet ID: [`parse_id`] for bare digits,
//! [`parse_id_or_url`] for what plain-text lines and CSV ID fields accept (an
//! ID or a Tweet URL), and for anything else the [`reason`] it is not an ID.

use super::reason;

/// Parses one Tweet ID from text that has already been trimmed.
///
/// Strict on purpose: only ASCII digits are accepted, and the error is a
/// reason from [`reason`] explaining what the text looks like instead, so a
/// user can fix their export. IDs must be in `1..=i64::MAX` because the store
/// keeps them as SQLite `INTEGER`.
pub fn parse_id(text: &[u8]) -> Result<u64, &'static str> {
    if text.is_empty() {
        return Err(reason::EMPTY);
    }
    let mut value: u64 = 0;
    let mut overflow = false;
    for &b in text {
        if !b.is_ascii_digit() {
            return Err(classify_non_digits(text));
        }
        if !overflow {
            match value
                .checked_mul(10)
                .and_then(|v| v.checked_add(u64::from(b - b'0')))
            {
                Some(v) => value = v,
                // Keep scanning: a later non-digit changes the reason.
                None => overflow = true,
            }
        }
    }
    if overflow {
        Err(reason::OUT_OF_RANGE)
    } else if value == 0 {
        Err(reason::ZERO)
    } else if value > i64::MAX as u64 {
        Err(reason::ABOVE_I64)
    } else {
        Ok(value)
    }
}

/// Parses one Tweet ID, or a Tweet URL holding one, from trimmed text: what
/// plain-text lines and CSV ID fields accept.
///
/// A Tweet URL is `https://x.com/<user>/status/<ID>` or the same on
/// `twitter.com`, with or without the scheme or a `www.`/`mobile.` host
/// prefix, `/i/web/status/<ID>` in place of the user, and an optional
/// trailing `/`, query string or fragment. The ID part is judged by
/// [`parse_id`]. Any other URL is [`reason::NOT_A_TWEET_URL`]: a profile or
/// a photo page (`…/status/<ID>/photo/1`) is refused rather than guessed at.
pub fn parse_id_or_url(text: &[u8]) -> Result<u64, &'static str> {
    // Fast path: an ID starts with a digit, a URL never does.
    if text.first().is_some_and(u8::is_ascii_digit) {
        return parse_id(text);
    }
    match tweet_url(text) {
        Url::Tweet(digits) => parse_id(digits),
        Url::Other => Err(reason::NOT_A_TWEET_URL),
        Url::Absent => parse_id(text),
    }
}

enum Url<'a> {
    /// A Tweet URL; the bytes after `/status/`.
    Tweet(&'a [u8]),
    /// A URL (a scheme, or an X/Twitter host) of some other page.
    Other,
    /// Not a URL at all.
    Absent,
}

fn tweet_url(text: &[u8]) -> Url<'_> {
    fn strip_prefix_ignore_case<'t>(s: &'t [u8], prefix: &[u8]) -> Option<&'t [u8]> {
        (s.len() >= prefix.len() && s[..prefix.len()].eq_ignore_ascii_case(prefix))
            .then(|| &s[prefix.len()..])
    }
    const HOSTS: &[&[u8]] = &[
        b"x.com",
        b"www.x.com",
        b"mobile.x.com",
        b"twitter.com",
        b"www.twitter.com",
        b"mobile.twitter.com",
    ];
    let without_scheme = strip_prefix_ignore_case(text, b"https://")
        .or_else(|| strip_prefix_ignore_case(text, b"http://"));
    let rest = without_scheme.unwrap_or(text);
    let host_end = rest.iter().position(|&b| b == b'/').unwrap_or(rest.len());
    let host = &rest[..host_end];
    if !HOSTS.iter().any(|h| host.eq_ignore_ascii_case(h)) {
        return if without_scheme.is_some() {
            Url::Other
        } else {
            Url::Absent
        };
    }
    let path = &rest[host_end..];
    let path = &path[..path
        .iter()
        .position(|&b| b == b'?' || b == b'#')
        .unwrap_or(path.len())];
    let path = path.strip_suffix(b"/").unwrap_or(path);
    let mut segments = path.split(|&b| b == b'/');
    // The path starts with `/`, so the first segment is empty.
    if segments.next() != Some(b"") {
        return Url::Other;
    }
    let parts: Vec<&[u8]> = segments.collect();
    let is_user =
        |s: &[u8]| !s.is_empty() && s.iter().all(|&b| b.is_ascii_alphanumeric() || b == b'_');
    match parts[..] {
        [b"i", b"web", b"status", id] if !id.is_empty() => Url::Tweet(id),
        [user, b"status", id] if is_user(user) && !id.is_empty() => Url::Tweet(id),
        _ => Url::Other,
    }
}

fn classify_non_digits(text: &[u8]) -> &'static str {
    let Ok(s) = std::str::from_utf8(text) else {
        return reason::INVALID_UTF8;
    };
    let s = s.as_bytes();
    if let Some(rest) = s.strip_prefix(b"-") {
        if is_decimal(rest) || is_scientific(rest) {
            return reason::NEGATIVE;
        }
        return reason::NOT_A_NUMBER;
    }
    let unsigned = s.strip_prefix(b"+").unwrap_or(s);
    if is_scientific(unsigned) {
        return reason::SCIENTIFIC;
    }
    if unsigned.contains(&b'.') && is_decimal(unsigned) {
        return reason::DECIMAL;
    }
    if unsigned.len() < s.len() && is_decimal(unsigned) {
        return reason::PLUS_SIGN;
    }
    if is_thousands(s) {
        return reason::THOUSANDS;
    }
    reason::NOT_A_NUMBER
}

/// `123`, `123.`, `.5`, `123.45`.
fn is_decimal(s: &[u8]) -> bool {
    let (int, frac) = match s.iter().position(|&b| b == b'.') {
        Some(i) => (&s[..i], &s[i + 1..]),
        None => (s, &[][..]),
    };
    (!int.is_empty() || !frac.is_empty())
        && int.iter().all(u8::is_ascii_digit)
        && frac.iter().all(u8::is_ascii_digit)
}

/// `1E18`, `1.23457E+18`, `5e-3`.
fn is_scientific(s: &[u8]) -> bool {
    let Some(i) = s.iter().position(|&b| b == b'e' || b == b'E') else {
        return false;
    };
    let (mantissa, exp) = (&s[..i], &s[i + 1..]);
    let exp = exp
        .strip_prefix(b"+")
        .or_else(|| exp.strip_prefix(b"-"))
        .unwrap_or(exp);
    is_decimal(mantissa) && !exp.is_empty() && exp.iter().all(u8::is_ascii_digit)
}

/// `1,234,567`.
fn is_thousands(s: &[u8]) -> bool {
    let mut groups = s.split(|&b| b == b',');
    let Some(first) = groups.next() else {
        return false;
    };
    let mut rest = groups.peekable();
    rest.peek().is_some()
        && (1..=3).contains(&first.len())
        && first.iter().all(u8::is_ascii_digit)
        && rest.all(|g| g.len() == 3 && g.iter().all(u8::is_ascii_digit))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::testutil::*;
    use crate::ids::Record;
    use tempfile::TempDir;

    #[test]
    fn parse_id_accepts_plain_digits() {
        assert_eq!(parse_id(b"1"), Ok(1));
        assert_eq!(parse_id(b"0001790000000000000001"), Ok(1790000000000000001));
        assert_eq!(parse_id(b"9223372036854775807"), Ok(i64::MAX as u64));
    }

    #[test]
    fn parse_id_reasons() {
        let cases: &[(&[u8], &str)] = &[
            (b"", reason::EMPTY),
            (b"0", reason::ZERO),
            (b"000", reason::ZERO),
            (b"9223372036854775808", reason::ABOVE_I64),
            (b"18446744073709551615", reason::ABOVE_I64),
            (b"18446744073709551616", reason::OUT_OF_RANGE),
            (b"99999999999999999999999999", reason::OUT_OF_RANGE),
            (b"-5", reason::NEGATIVE),
            (b"-1.5", reason::NEGATIVE),
            (b"-1E5", reason::NEGATIVE),
            (b"1.23457E+18", reason::SCIENTIFIC),
            (b"1.23457e18", reason::SCIENTIFIC),
            (b"1E18", reason::SCIENTIFIC),
            (b"+1.2E+18", reason::SCIENTIFIC),
            (b"123.0", reason::DECIMAL),
            (b"123.", reason::DECIMAL),
            (b".5", reason::DECIMAL),
            (b"+123", reason::PLUS_SIGN),
            (b"1,234,567", reason::THOUSANDS),
            (b"12,34", reason::NOT_A_NUMBER),
            (b"abc", reason::NOT_A_NUMBER),
            (b"12 34", reason::NOT_A_NUMBER),
            (b"-", reason::NOT_A_NUMBER),
            (b"-abc", reason::NOT_A_NUMBER),
            (b"+", reason::NOT_A_NUMBER),
            (b".", reason::NOT_A_NUMBER),
            (b"1e", reason::NOT_A_NUMBER),
            (b"0x1F", reason::NOT_A_NUMBER),
            (b"https://x.com/u/status/123", reason::NOT_A_NUMBER),
            ("１２３".as_bytes(), reason::NOT_A_NUMBER),
            (b"12\xff34", reason::INVALID_UTF8),
            (b"99999999999999999999999x", reason::NOT_A_NUMBER),
        ];
        for (text, why) in cases {
            assert_eq!(
                parse_id(text),
                Err(*why),
                "{:?}",
                String::from_utf8_lossy(text)
            );
        }
    }

    #[test]
    fn tweet_urls_yield_their_id() {
        let ok: &[&str] = &[
            "https://x.com/someone/status/42",
            "https://twitter.com/some_one/status/42?s=20&t=abc",
            "http://mobile.twitter.com/Someone123/status/42/",
            "https://www.x.com/someone/status/42#m",
            "HTTPS://X.COM/someone/status/42",
            "x.com/someone/status/42",
            "twitter.com/someone/status/42/?s=20",
            "https://x.com/i/web/status/42",
            "mobile.x.com/i/web/status/42",
        ];
        for url in ok {
            assert_eq!(parse_id_or_url(url.as_bytes()), Ok(42), "{url}");
        }
        let bad: &[(&str, &str)] = &[
            (
                "https://x.com/someone/status/42/photo/1",
                reason::NOT_A_TWEET_URL,
            ),
            ("https://x.com/someone", reason::NOT_A_TWEET_URL),
            ("https://x.com/someone/likes", reason::NOT_A_TWEET_URL),
            ("https://x.com/status/42", reason::NOT_A_TWEET_URL),
            ("https://x.com//status/42", reason::NOT_A_TWEET_URL),
            ("https://x.com/some.one/status/42", reason::NOT_A_TWEET_URL),
            ("https://x.com/someone/status/", reason::NOT_A_TWEET_URL),
            ("https://x.com", reason::NOT_A_TWEET_URL),
            (
                "https://example.com/someone/status/42",
                reason::NOT_A_TWEET_URL,
            ),
            (
                "https://x.com.evil.example/u/status/42",
                reason::NOT_A_TWEET_URL,
            ),
            ("example.com/someone/status/42", reason::NOT_A_NUMBER),
            ("x.com/someone/status/42 extra", reason::NOT_A_NUMBER),
            // The ID part is judged like any ID.
            ("https://x.com/someone/status/0", reason::ZERO),
            ("https://x.com/someone/status/1.79E+18", reason::SCIENTIFIC),
            ("https://x.com/someone/status/abc", reason::NOT_A_NUMBER),
            (
                "https://x.com/someone/status/9223372036854775808",
                reason::ABOVE_I64,
            ),
            ("status/42", reason::NOT_A_NUMBER),
        ];
        for (text, why) in bad {
            assert_eq!(parse_id_or_url(text.as_bytes()), Err(*why), "{text}");
        }
        // Plain IDs are unchanged, and `parse_id` itself stays strict.
        assert_eq!(parse_id_or_url(b"0042"), Ok(42));
        assert_eq!(parse_id_or_url(b"1.23457E+18"), Err(reason::SCIENTIFIC));
        assert_eq!(
            parse_id(b"https://x.com/u/status/42"),
            Err(reason::NOT_A_NUMBER)
        );
    }

    #[test]
    fn tweet_urls_in_plain_csv_but_not_json() {
        let dir = TempDir::new().unwrap();
        let items = read_file(
            dir.path(),
            "u.txt",
            b"https://x.com/a/status/1\n  twitter.com/b/status/2?s=20  \nhttps://x.com/a\n",
        );
        assert_eq!(
            summary(&items),
            vec![
                (1, Ok(1)),
                (2, Ok(2)),
                (3, Err(reason::NOT_A_TWEET_URL.into()))
            ]
        );
        let items = read_file(
            dir.path(),
            "u.csv",
            b"tweet_id,account\n\"https://x.com/a/status/3?s=20\",a\nhttps://x.com/i/web/status/4,b\n",
        );
        assert_eq!(summary(&items), vec![(2, Ok(3)), (3, Ok(4))]);
        assert_eq!(
            items[0].record,
            Record::Id {
                id: 3,
                account: Some("a".into()),
                group: None,
            }
        );
        let items = read_file(
            dir.path(),
            "u.jsonl",
            b"{\"id\":\"https://x.com/a/status/5\"}\n",
        );
        assert_eq!(summary(&items), vec![(1, Err(reason::NOT_A_NUMBER.into()))]);
    }
}

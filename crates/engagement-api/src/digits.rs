//! Decimal formatting of counts and Tweet IDs without allocation: the simulator renders, the client
//! serializes and the reports write millions of them.

/// Writes `v` in decimal into the end of `buf` and returns the digits.
pub fn format_u64(buf: &mut [u8; 20], mut v: u64) -> &str {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    std::str::from_utf8(&buf[i..]).expect("digits are ASCII")
}

/// Appends `v` in decimal to `out`.
pub fn push_u64(out: &mut String, v: u64) {
    let mut buf = [0u8; 20];
    out.push_str(format_u64(&mut buf, v));
}

#[cfg(test)]
mod tests {
    #[test]
    fn formats_the_extremes() {
        let mut s = String::new();
        super::push_u64(&mut s, 0);
        s.push(',');
        super::push_u64(&mut s, u64::MAX);
        assert_eq!(s, "0,18446744073709551615");
    }
}

//! Decimal formatting of counts and Tweet IDs without allocation: the simulator renders, the client
//! serializes and the reports write millions of them.

//! `itoa` writes two digits per step; these keep the call sites' shapes.

/// Writes `v` in decimal into the end of `buf` and returns the digits.
pub fn format_u64(buf: &mut [u8; 20], v: u64) -> &str {
    let mut b = itoa::Buffer::new();
    let digits = b.format(v).as_bytes();
    let start = buf.len() - digits.len();
    buf[start..].copy_from_slice(digits);
    std::str::from_utf8(&buf[start..]).expect("digits are ASCII")
}

/// Appends `v` in decimal to `out`.
pub fn push_u64(out: &mut String, v: u64) {
    out.push_str(itoa::Buffer::new().format(v));
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

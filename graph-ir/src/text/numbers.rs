//! Number spelling shared by constants and attributes. Rust's `str::parse`
//! also accepts `NaN`, `infinity` and the like; the format allows only the
//! spellings `print` writes (plus ordinary decimal/exponent forms), so that a
//! file means the same thing to every reader.

/// `[+-]? (digits [. digits?] | . digits) ([eE] [+-]? digits)?`, or `nan`,
/// `inf`, `+inf`, `-inf`.
fn is_float_word(w: &str) -> bool {
    if matches!(w, "nan" | "inf" | "+inf" | "-inf") {
        return true;
    }
    let b = w.as_bytes();
    let mut i = 0;
    if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
        i += 1;
    }
    let int_start = i;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
    }
    let mut digits = i - int_start;
    if i < b.len() && b[i] == b'.' {
        i += 1;
        let frac_start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        digits += i - frac_start;
    }
    if digits == 0 {
        return false;
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
            i += 1;
        }
        let exp_start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == exp_start {
            return false;
        }
    }
    i == b.len()
}

/// Parses straight to f32 (not via f64) so the shortest repr round-trips
/// without double rounding.
pub(crate) fn parse_float_f32(w: &str) -> Option<f32> {
    if !is_float_word(w) {
        return None;
    }
    w.parse().ok()
}

pub(crate) fn parse_float_f64(w: &str) -> Option<f64> {
    if !is_float_word(w) {
        return None;
    }
    w.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::text::print::{f32_text, f64_text};

    #[test]
    fn spellings() {
        for ok in ["0", "1.", ".5", "-2.5e-3", "+1E9", "nan", "-inf", "inf", "3.4028235e38"] {
            assert!(parse_float_f64(ok).is_some(), "{ok}");
        }
        for bad in ["", "-", ".", "e5", "1e", "NaN", "infinity", "-nan", "1.2.3", "0x10", "1_000"] {
            assert!(parse_float_f64(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn f32_and_f64_bits_round_trip() {
        let f32s = [0.0f32, -0.0, 1.0, 0.1, 1e-7, f32::MIN_POSITIVE, 1e-45, f32::MAX, -f32::MAX, 16777217.0, f32::INFINITY, f32::NEG_INFINITY];
        for v in f32s {
            assert_eq!(parse_float_f32(&f32_text(v)).unwrap().to_bits(), v.to_bits(), "{v:?}");
        }
        let f64s = [0.0f64, -0.0, 0.1, 1.0 / 3.0, 5e-324, f64::MAX, 1e300, f64::NEG_INFINITY];
        for v in f64s {
            assert_eq!(parse_float_f64(&f64_text(v)).unwrap().to_bits(), v.to_bits(), "{v:?}");
        }
        assert!(parse_float_f32("nan").unwrap().is_nan());
    }
}

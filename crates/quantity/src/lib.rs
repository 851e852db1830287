//! Kubernetes quantities ("500m", "2", "1.5Gi", "100M", "1e3", "250u"): the one grammar Ballast
//! reads them with, and their exact value in integer arithmetic.
//!
//! A quantity is an optional sign, a decimal number (digits with at most one `.`, at least one
//! digit) and a suffix: none, a decimal SI suffix (`n u m k M G T P E`), a binary one
//! (`Ki Mi Gi Ti Pi Ei`) or a decimal exponent (`e3`, `E-2`). Surrounding whitespace is ignored.
//!
//! [`parse`] only checks the grammar and splits the text; [`Parsed::scaled_ceil`] gives the value
//! times a scale rounded up toward +∞ (as Kubernetes rounds requests and milli-values), exactly.
//! `ballast-scheduling` (resources as integers) and `ballast-api` (quantities of its objects,
//! also read as floats) both read quantities through here. No Kubernetes types.

/// Why a quantity string could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid quantity {input:?}: {why}")]
pub struct QuantityError {
    /// The text as given.
    pub input: String,
    /// What is wrong with it.
    pub why: &'static str,
}

fn err(input: &str, why: &'static str) -> QuantityError {
    QuantityError {
        input: input.to_string(),
        why,
    }
}

/// The suffix of a quantity, as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Suffix {
    /// No suffix.
    None,
    /// A decimal SI suffix: `n` (-9), `u` (-6), `m` (-3), `k` (3), `M` (6), `G` (9), `T` (12),
    /// `P` (15), `E` (18); the power of ten.
    Si(i32),
    /// A binary suffix: `Ki` (1) ... `Ei` (6); the power of 1024.
    Binary(u32),
    /// A decimal exponent (`e3`, `E-2`); the power of ten.
    Exponent(i32),
}

/// A quantity split by [`parse`]: grammatically valid, not yet evaluated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parsed<'a> {
    /// Whether the number has a leading `-`.
    pub negative: bool,
    /// The number as written, sign included ("-1.5" of "-1.5Gi").
    pub number: &'a str,
    /// Digits before the decimal point (may be empty: ".5").
    pub integer: &'a str,
    /// Digits after the decimal point (may be empty).
    pub fraction: &'a str,
    /// The suffix.
    pub suffix: Suffix,
}

/// Splits a quantity into sign, digits and suffix, or says why it is not one.
pub fn parse(input: &str) -> Result<Parsed<'_>, QuantityError> {
    let s = input.trim();
    if s.is_empty() {
        return Err(err(input, "empty"));
    }
    let (negative, body) = match s.as_bytes()[0] {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let digits_end = body
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(body.len());
    let (digits, suffix) = body.split_at(digits_end);
    if digits.is_empty() || digits == "." || digits.matches('.').count() > 1 {
        return Err(err(input, "no number"));
    }
    let (integer, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    let suffix = match suffix {
        "" => Suffix::None,
        "n" => Suffix::Si(-9),
        "u" => Suffix::Si(-6),
        "m" => Suffix::Si(-3),
        "k" => Suffix::Si(3),
        "M" => Suffix::Si(6),
        "G" => Suffix::Si(9),
        "T" => Suffix::Si(12),
        "P" => Suffix::Si(15),
        "E" => Suffix::Si(18),
        "Ki" => Suffix::Binary(1),
        "Mi" => Suffix::Binary(2),
        "Gi" => Suffix::Binary(3),
        "Ti" => Suffix::Binary(4),
        "Pi" => Suffix::Binary(5),
        "Ei" => Suffix::Binary(6),
        other => {
            let rest = other
                .strip_prefix('e')
                .or_else(|| other.strip_prefix('E'))
                .ok_or_else(|| err(input, "unknown suffix"))?;
            Suffix::Exponent(rest.parse().map_err(|_| err(input, "bad exponent"))?)
        }
    };
    Ok(Parsed {
        negative,
        number: &s[..s.len() - body.len() + digits_end],
        integer,
        fraction,
        suffix,
    })
}

impl Parsed<'_> {
    /// The value times `scale`, rounded up toward +∞ to an integer, computed exactly; `None` when
    /// an intermediate does not fit 128-bit arithmetic.
    pub fn scaled_ceil(&self, scale: i64) -> Option<i128> {
        let mut mantissa: i128 = 0;
        for d in self.integer.bytes().chain(self.fraction.bytes()) {
            mantissa = mantissa
                .checked_mul(10)?
                .checked_add(i128::from(d - b'0'))?;
        }
        let fraction_digits = i32::try_from(self.fraction.len()).ok()?;
        let (exp10, binary) = match self.suffix {
            Suffix::None => (0, 0),
            Suffix::Si(e) | Suffix::Exponent(e) => (e, 0),
            Suffix::Binary(k) => (0, k),
        };
        let exp10 = exp10.checked_sub(fraction_digits)?;
        let mut num = mantissa
            .checked_mul(i128::from(scale))?
            .checked_mul(1024i128.checked_pow(binary)?)?;
        let den = if exp10 >= 0 {
            num = num.checked_mul(10i128.checked_pow(exp10.unsigned_abs())?)?;
            1
        } else {
            10i128.checked_pow(exp10.unsigned_abs())?
        };
        if self.negative {
            num = -num;
        }
        Some(num.div_euclid(den) + i128::from(num.rem_euclid(den) != 0))
    }
}

/// Parses a quantity and returns its value multiplied by `scale` (1000 for millicores, 1 for
/// bytes or counts), rounded up toward +∞; an error when it is no quantity or does not fit an
/// `i64`.
pub fn parse_scaled(input: &str, scale: i64) -> Result<i64, QuantityError> {
    let value = parse(input)?
        .scaled_ceil(scale)
        .ok_or_else(|| err(input, "out of range"))?;
    i64::try_from(value).map_err(|_| err(input, "out of range"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_and_evaluates() {
        let cases: &[(&str, i64, i64)] = &[
            ("500m", 1000, 500),
            ("2", 1000, 2000),
            (".5", 1000, 500),
            ("1.", 1, 1),
            ("+3", 1, 3),
            ("1Ki", 1, 1024),
            ("1.5Gi", 1, 1_610_612_736),
            ("1e3", 1, 1000),
            ("1E+3", 1, 1000),
            ("5e-4", 1000, 1),
            ("1n", 1000, 1),
            ("250u", 1000, 1),
            ("-1n", 1000, 0),
            ("-1.5", 1000, -1500),
            ("-0.1", 1, 0),
            (" 4Gi ", 1, 4 << 30),
            ("123456789n", 1000, 124),
        ];
        for &(text, scale, want) in cases {
            assert_eq!(parse_scaled(text, scale), Ok(want), "{text}");
        }
        for bad in [
            "", "abc", "1.2.3", "5 m", "1Kb", "--1", "1mi", "+", ".", "1e", "1e1.5", "0x10",
        ] {
            assert!(parse(bad).is_err(), "{bad} should be rejected");
        }
        for huge in [
            "9999999999999Ei",
            "1e30",
            "99999999999999999999999999999e30",
        ] {
            assert!(parse(huge).is_ok(), "{huge} is a quantity");
            assert!(parse_scaled(huge, 1).is_err(), "{huge} does not fit");
        }
    }

    #[test]
    fn keeps_the_number_as_written() {
        let p = parse("-1.5Gi").unwrap();
        assert_eq!(
            (p.negative, p.number, p.suffix),
            (true, "-1.5", Suffix::Binary(3))
        );
        let p = parse("+.5e-3").unwrap();
        assert_eq!((p.number, p.integer, p.fraction), ("+.5", "", "5"));
        assert_eq!(p.suffix, Suffix::Exponent(-3));
    }
}

//! Kubernetes-style quantities ("500m", "1.5", "4Gi", "1e3") parsed exactly into integers.
//!
//! CPU is kept in millicores, everything else in base units (bytes, counts). Fractions that do
//! not land on a whole unit are rounded up, as the API server does for requests.

use std::fmt;

/// Why a quantity string could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid quantity {input:?}: {why}")]
pub struct QuantityError {
    pub input: String,
    pub why: &'static str,
}

fn err(input: &str, why: &'static str) -> QuantityError {
    QuantityError {
        input: input.to_string(),
        why,
    }
}

/// Parses a quantity and returns its value multiplied by `scale` (1000 for millicores, 1 for
/// bytes or counts), rounded up to an integer.
pub fn parse_scaled(input: &str, scale: i64) -> Result<i64, QuantityError> {
    let s = input.trim();
    if s.is_empty() {
        return Err(err(input, "empty"));
    }
    let (neg, body) = match s.as_bytes()[0] {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let digits_end = body
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(body.len());
    let (number, suffix) = body.split_at(digits_end);
    if number.is_empty() || number == "." || number.matches('.').count() > 1 {
        return Err(err(input, "no number"));
    }
    // Value held as mantissa * 10^exp10 * 2^exp2, mantissa an exact integer.
    let (int_part, frac_part) = number.split_once('.').unwrap_or((number, ""));
    if int_part.len() + frac_part.len() > 30 {
        return Err(err(input, "too many digits"));
    }
    let mut mantissa: i128 = 0;
    for c in int_part.bytes().chain(frac_part.bytes()) {
        mantissa = mantissa * 10 + i128::from(c - b'0');
    }
    let mut exp10: i32 = -(frac_part.len() as i32);
    let mut exp2: i32 = 0;
    match suffix {
        "" => {}
        "m" => exp10 -= 3,
        "k" => exp10 += 3,
        "M" => exp10 += 6,
        "G" => exp10 += 9,
        "T" => exp10 += 12,
        "P" => exp10 += 15,
        "E" => exp10 += 18,
        "Ki" => exp2 += 10,
        "Mi" => exp2 += 20,
        "Gi" => exp2 += 30,
        "Ti" => exp2 += 40,
        "Pi" => exp2 += 50,
        "Ei" => exp2 += 60,
        other => {
            let rest = other
                .strip_prefix('e')
                .or_else(|| other.strip_prefix('E'))
                .ok_or_else(|| err(input, "unknown suffix"))?;
            let e: i32 = rest.parse().map_err(|_| err(input, "bad exponent"))?;
            if e.abs() > 30 {
                return Err(err(input, "exponent out of range"));
            }
            exp10 += e;
        }
    }
    let mut num: i128 = mantissa * i128::from(scale);
    let mut den: i128 = 1;
    let overflow = || err(input, "out of range");
    if exp10 >= 0 {
        let scale10 = 10i128.checked_pow(exp10 as u32).ok_or_else(overflow)?;
        num = num.checked_mul(scale10).ok_or_else(overflow)?;
    } else {
        den = 10i128.checked_pow((-exp10) as u32).ok_or_else(overflow)?;
    }
    num = num.checked_mul(1i128 << exp2).ok_or_else(overflow)?;
    let value = (num + den - 1) / den;
    if value > i128::from(i64::MAX) {
        return Err(overflow());
    }
    let value = value as i64;
    Ok(if neg { -value } else { value })
}

/// CPU quantity in millicores.
pub fn parse_cpu_millis(s: &str) -> Result<i64, QuantityError> {
    parse_scaled(s, 1000)
}

/// Memory, storage or count quantity in base units.
pub fn parse_units(s: &str) -> Result<i64, QuantityError> {
    parse_scaled(s, 1)
}

/// Formats millicores the way kubectl does ("500m", "2").
pub fn format_cpu_millis(m: i64) -> String {
    if m % 1000 == 0 {
        format!("{}", m / 1000)
    } else {
        format!("{m}m")
    }
}

/// Formats bytes with the largest exact binary suffix ("4Gi", "1536Mi", "1000").
pub fn format_bytes(b: i64) -> String {
    for (suffix, shift) in [
        ("Ei", 60),
        ("Pi", 50),
        ("Ti", 40),
        ("Gi", 30),
        ("Mi", 20),
        ("Ki", 10),
    ] {
        let unit = 1i64 << shift;
        if b != 0 && b % unit == 0 {
            return format!("{}{suffix}", b / unit);
        }
    }
    b.to_string()
}

/// A human-readable amount of a named resource, for messages.
pub struct Amount<'a>(pub &'a str, pub i64);

impl fmt::Display for Amount<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            "cpu" => write!(f, "{} cpu", format_cpu_millis(self.1)),
            "memory" | "ephemeral-storage" => write!(f, "{} {}", format_bytes(self.1), self.0),
            name => write!(f, "{} {}", self.1, name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_common_forms() {
        assert_eq!(parse_cpu_millis("500m").unwrap(), 500);
        assert_eq!(parse_cpu_millis("2").unwrap(), 2000);
        assert_eq!(parse_cpu_millis("0.25").unwrap(), 250);
        assert_eq!(parse_cpu_millis("1.5").unwrap(), 1500);
        assert!(parse_cpu_millis("100u").is_err());
        assert_eq!(parse_units("4Gi").unwrap(), 4 << 30);
        assert_eq!(parse_units("1G").unwrap(), 1_000_000_000);
        assert_eq!(parse_units("1e3").unwrap(), 1000);
        assert_eq!(parse_units("1.5Ki").unwrap(), 1536);
        assert_eq!(parse_units("0.1").unwrap(), 1, "fractions round up");
        assert_eq!(parse_units("-5").unwrap(), -5);
        assert!(parse_units("").is_err());
        assert!(parse_units("abc").is_err());
        assert!(parse_units("1..2").is_err());
        assert!(parse_units("9999999999999Ei").is_err());
        assert!(parse_units("1e30E").is_err());
        assert!(parse_units("99999999999999999999999999999e30").is_err());
    }

    #[test]
    fn formats() {
        assert_eq!(format_cpu_millis(1500), "1500m");
        assert_eq!(format_cpu_millis(2000), "2");
        assert_eq!(format_bytes(4 << 30), "4Gi");
        assert_eq!(format_bytes(1000), "1000");
        assert_eq!(Amount("cpu", 300_000).to_string(), "300 cpu");
    }
}

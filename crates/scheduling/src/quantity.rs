//! Kubernetes-style quantities ("500m", "1.5", "4Gi", "1e3") parsed exactly into integers.
//!
//! CPU is kept in millicores, everything else in base units (bytes, counts). Fractions that do
//! not land on a whole unit are rounded up, as the API server does for requests.

use std::fmt;

pub use ballast_quantity::QuantityError;
use ballast_quantity::Suffix;

/// Parses a quantity and returns its value multiplied by `scale` (1000 for millicores, 1 for
/// bytes or counts), rounded up toward +∞ to an integer (the grammar and arithmetic of
/// `ballast-quantity`). Resource amounts finer than a milli (`n`, `u`) are refused here.
pub fn parse_scaled(input: &str, scale: i64) -> Result<i64, QuantityError> {
    let parsed = ballast_quantity::parse(input)?;
    if matches!(parsed.suffix, Suffix::Si(e) if e < -3) {
        return Err(QuantityError {
            input: input.to_string(),
            why: "unknown suffix",
        });
    }
    ballast_quantity::parse_scaled(input, scale)
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

    /// Edge cases where this parser and `ballast-api`'s once disagreed; both now read through
    /// `ballast-quantity`.
    #[test]
    fn edge_cases_shared_with_the_api() {
        for (text, millis) in [
            ("-0.0001", 0),                           // toward +∞ (was -1: rounded away from 0)
            ("-1.0001", -1000),                       // toward +∞ (was -1001)
            ("1e-31", 1),                             // any exponent that fits (was refused)
            ("0.0000000000000000000000000000001", 1), // any digit count that fits (was refused)
        ] {
            assert_eq!(parse_cpu_millis(text).unwrap(), millis, "{text}");
        }
        assert_eq!(parse_units("-0.1").unwrap(), 0);
        assert!(
            parse_cpu_millis("1n").is_err(),
            "finer than a milli: refused here"
        );
        assert!(
            parse_units("1e30").is_err(),
            "out of range is an error, not saturation"
        );
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

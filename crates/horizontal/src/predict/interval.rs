//! The value to provision for: a quantile of the forecast's distribution.
//!
//! The errors of the recent forecasts made as far ahead as this one (the [`ErrorWindow`]) are
//! taken as a sample of the error to come: centred on the point forecast, with the sample's root
//! mean square as the scale and a Student's t distribution of `n − 1` degrees of freedom (a small
//! sample widens the interval). A quantile of 0.5 is the point forecast; 0.9 provisions for the
//! value the load stays under nine times in ten.
//!
//! [`ErrorWindow`]: super::accuracy::ErrorWindow

use statrs::distribution::{ContinuousCDF, StudentsT};

/// The `quantile` (in (0, 1)) of a forecast `point` whose errors had a root mean square of
/// `spread` over `samples` comparisons; the point itself when fewer than 2 comparisons, a zero
/// spread or a quantile outside (0, 1) leave nothing to widen by.
pub fn quantile(point: f64, spread: f64, samples: usize, quantile: f64) -> f64 {
    if samples < 2 || spread <= 0.0 || !spread.is_finite() || !(quantile > 0.0 && quantile < 1.0) {
        return point;
    }
    let freedom = (samples - 1) as f64;
    match StudentsT::new(0.0, 1.0, freedom) {
        Ok(distribution) => point + distribution.inverse_cdf(quantile) * spread,
        Err(_) => point,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_is_the_point_and_high_quantiles_widen() {
        assert!((quantile(100.0, 10.0, 50, 0.5) - 100.0).abs() < 1e-9);
        let q90 = quantile(100.0, 10.0, 1000, 0.9);
        assert!((q90 - 112.8).abs() < 0.1, "{q90}"); // z(0.9) ≈ 1.2816
        assert!(quantile(100.0, 10.0, 5, 0.9) > q90); // few samples: wider
        assert!(quantile(100.0, 10.0, 1000, 0.1) < 100.0);
    }

    #[test]
    fn nothing_to_widen_by() {
        assert_eq!(quantile(7.0, 10.0, 1, 0.9), 7.0);
        assert_eq!(quantile(7.0, 0.0, 100, 0.9), 7.0);
        assert_eq!(quantile(7.0, 1.0, 100, 1.0), 7.0);
        assert_eq!(quantile(7.0, f64::NAN, 100, 0.9), 7.0);
    }
}

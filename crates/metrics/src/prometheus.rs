//! Prometheus metrics: one PromQL instant query through `prometheus-http-query`.
//!
//! An instant vector of one series is one value, of several series several values (the core
//! sums them); a scalar is one value. An empty vector is the error "query returned no data",
//! NaN and infinities are errors, a range vector is refused.

use std::time::Duration;

use ballast_api::horizontal::PrometheusMetricSource;
use ballast_horizontal::snapshot::MetricReading;
use base64::Engine as _;
use prometheus_http_query::response::Data;
use reqwest::header::{AUTHORIZATION, HeaderValue};

use crate::convert::float_quantity;
use crate::error::ReadError;
use crate::secrets::SecretData;

/// The reading of an instant query's result.
pub fn reading_from_data(data: &Data) -> Result<MetricReading, ReadError> {
    match data {
        Data::Scalar(s) => Ok(MetricReading { value: Some(float_quantity(s.value())?), ..Default::default() }),
        Data::Vector(series) => match series.as_slice() {
            [] => Err(ReadError::EmptyResult),
            [one] => Ok(MetricReading { value: Some(float_quantity(one.sample().value())?), ..Default::default() }),
            many => {
                let values = many.iter().map(|s| float_quantity(s.sample().value())).collect::<Result<_, _>>()?;
                Ok(MetricReading { values: Some(values), ..Default::default() })
            }
        },
        Data::Matrix(_) => Err(ReadError::UnsupportedResult(
            "the query returned a range vector; use an instant vector or a scalar (e.g. wrap it in rate() or avg_over_time())".into(),
        )),
    }
}

/// The `Authorization` header from the credentials Secret: `token` (bearer) or `username` and
/// `password` (basic).
pub fn authorization(secret: &SecretData) -> Result<HeaderValue, ReadError> {
    let value = match (
        secret.get("token")?,
        secret.get("username")?,
        secret.get("password")?,
    ) {
        (Some(token), _, _) => format!("Bearer {}", token.trim()),
        (None, Some(user), Some(password)) => {
            let raw = format!("{user}:{password}");
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(raw)
            )
        }
        (None, Some(_), None) => return Err(secret.invalid("has username but no password")),
        (None, None, Some(_)) => return Err(secret.invalid("has password but no username")),
        (None, None, None) => {
            return Err(secret.invalid("has neither token nor username and password"));
        }
    };
    let mut header = HeaderValue::from_str(&value)
        .map_err(|_| secret.invalid("credentials are not valid header text"))?;
    header.set_sensitive(true);
    Ok(header)
}

pub(crate) struct PrometheusReader {
    pub(crate) http: reqwest::Client,
    pub(crate) default_url: Option<String>,
    pub(crate) timeout: Duration,
}

impl PrometheusReader {
    /// The server a metric queries.
    pub(crate) fn server<'a>(&'a self, src: &'a PrometheusMetricSource) -> Option<&'a str> {
        src.server_address
            .as_deref()
            .filter(|s| !s.is_empty())
            .or(self.default_url.as_deref())
    }

    pub(crate) async fn read(
        &self,
        src: &PrometheusMetricSource,
        credentials: Option<&SecretData>,
    ) -> Result<MetricReading, ReadError> {
        let url = self.server(src).ok_or(ReadError::NoServerAddress)?;
        if src.query.trim().is_empty() {
            return Err(ReadError::InvalidSpec("prometheus.query is empty".into()));
        }
        let client = prometheus_http_query::Client::from(self.http.clone(), url).map_err(|e| {
            ReadError::InvalidSpec(format!("prometheus server address {url:?}: {e}"))
        })?;
        // Ask Prometheus to give up a little before we do, so its own error comes back.
        let server_timeout = self
            .timeout
            .saturating_sub(Duration::from_millis(500))
            .max(Duration::from_millis(100));
        let mut query = client
            .query(&src.query)
            .timeout(server_timeout.as_millis() as i64);
        if let Some(secret) = credentials {
            query = query.header(AUTHORIZATION, authorization(secret)?);
        }
        let result = query.get().await.map_err(|e| query_error(url, e))?;
        reading_from_data(result.data())
    }
}

/// The most points one range query asks for (Prometheus refuses more than 11,000).
pub const MAX_RANGE_POINTS: i64 = 10_000;

/// One instant of a range query: its time in milliseconds and the sum of the series' values
/// there (several series are summed, as the core sums an instant query's values).
pub type RangePoint = (i64, f64);

/// The points of a range query's result, summed across series per instant, oldest first.
/// Non-finite values are dropped (the instant then has fewer terms, or none).
pub fn points_from_data(data: &Data) -> Result<Vec<RangePoint>, ReadError> {
    let Data::Matrix(series) = data else {
        return Err(ReadError::UnsupportedResult(
            "a range query did not return a range vector".into(),
        ));
    };
    let mut sums = std::collections::BTreeMap::<i64, f64>::new();
    for one in series {
        for sample in one.samples() {
            let value = sample.value();
            if value.is_finite() {
                let at = (sample.timestamp() * 1000.0).round() as i64;
                *sums.entry(at).or_insert(0.0) += value;
            }
        }
    }
    Ok(sums.into_iter().collect())
}

impl PrometheusReader {
    /// Runs `src.query` as a range query from `start` to `end` (seconds) every `step` seconds,
    /// in pieces of at most [`MAX_RANGE_POINTS`] points.
    pub(crate) async fn read_range(
        &self,
        src: &PrometheusMetricSource,
        credentials: Option<&SecretData>,
        (start, end, step): (i64, i64, i64),
    ) -> Result<Vec<RangePoint>, ReadError> {
        let url = self.server(src).ok_or(ReadError::NoServerAddress)?;
        if src.query.trim().is_empty() {
            return Err(ReadError::InvalidSpec("prometheus.query is empty".into()));
        }
        let client = prometheus_http_query::Client::from(self.http.clone(), url).map_err(|e| {
            ReadError::InvalidSpec(format!("prometheus server address {url:?}: {e}"))
        })?;
        let step = step.max(1);
        let mut points = Vec::new();
        let mut from = start;
        while from <= end {
            let to = end.min(from + step * (MAX_RANGE_POINTS - 1));
            let mut query = client
                .query_range(&src.query, from, to, step as f64)
                .timeout(self.timeout.as_millis() as i64);
            if let Some(secret) = credentials {
                query = query.header(AUTHORIZATION, authorization(secret)?);
            }
            let result = query.get().await.map_err(|e| query_error(url, e))?;
            points.extend(points_from_data(result.data())?);
            from = to + step;
        }
        Ok(points)
    }
}

fn query_error(url: &str, e: prometheus_http_query::Error) -> ReadError {
    use prometheus_http_query::Error;
    match e {
        Error::Prometheus(p) => ReadError::Query(p.to_string()),
        Error::Client(c) => match c.inner() {
            Some(r) if r.is_timeout() => ReadError::Source(format!("request to {url} timed out")),
            Some(r) if r.is_connect() => ReadError::Connect {
                endpoint: url.to_owned(),
                message: error_chain(r),
            },
            Some(r) => match r.status() {
                Some(status) => ReadError::Source(format!("{c}: HTTP {status}")),
                None => ReadError::Source(format!("{c}: {}", error_chain(r))),
            },
            None => ReadError::Source(c.to_string()),
        },
        other => ReadError::Source(other.to_string()),
    }
}

/// An error and its causes, `a: b: c`.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cur = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn data(json: &str) -> Data {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn result_shapes_become_readings() {
        type Want<'a> = Result<(Option<&'a str>, Option<Vec<&'a str>>), &'a str>;
        let cases: Vec<(&str, &str, Want)> = vec![
            (
                "one series",
                r#"{"resultType":"vector","result":[{"metric":{"job":"a"},"value":[1700000000.5,"3"]}]}"#,
                Ok((Some("3"), None)),
            ),
            (
                "fractional value",
                r#"{"resultType":"vector","result":[{"metric":{},"value":[1700000000,"0.25"]}]}"#,
                Ok((Some("250m"), None)),
            ),
            (
                "several series",
                r#"{"resultType":"vector","result":[{"metric":{"i":"1"},"value":[1,"1"]},{"metric":{"i":"2"},"value":[1,"2.5"]}]}"#,
                Ok((None, Some(vec!["1", "2500m"]))),
            ),
            (
                "scalar",
                r#"{"resultType":"scalar","result":[1700000000,"42"]}"#,
                Ok((Some("42"), None)),
            ),
            (
                "empty vector",
                r#"{"resultType":"vector","result":[]}"#,
                Err("query returned no data"),
            ),
            (
                "NaN",
                r#"{"resultType":"vector","result":[{"metric":{},"value":[1,"NaN"]}]}"#,
                Err("value NaN is not a finite number"),
            ),
            (
                "+Inf in one of several series",
                r#"{"resultType":"vector","result":[{"metric":{"i":"1"},"value":[1,"1"]},{"metric":{"i":"2"},"value":[1,"+Inf"]}]}"#,
                Err("value inf is not a finite number"),
            ),
            (
                "scalar -Inf",
                r#"{"resultType":"scalar","result":[1,"-Inf"]}"#,
                Err("value -inf is not a finite number"),
            ),
            (
                "too large",
                r#"{"resultType":"scalar","result":[1,"1e20"]}"#,
                Err("value 100000000000000000000 is out of range"),
            ),
            (
                "range vector",
                r#"{"resultType":"matrix","result":[{"metric":{},"values":[[1,"1"],[2,"2"]]}]}"#,
                Err("unsupported result: the query returned a range vector"),
            ),
        ];
        for (name, json, want) in cases {
            let got = reading_from_data(&data(json));
            match want {
                Ok((value, values)) => {
                    let r = got.unwrap_or_else(|e| panic!("{name}: {e}"));
                    assert_eq!(r.value.map(|q| q.0).as_deref(), value, "{name}");
                    assert_eq!(
                        r.values
                            .map(|v| v.into_iter().map(|q| q.0).collect::<Vec<_>>()),
                        values.map(|v| v.into_iter().map(String::from).collect()),
                        "{name}"
                    );
                    assert!(r.pods.is_none() && r.error.is_none(), "{name}");
                }
                Err(w) => {
                    let e = got.expect_err(name).to_string();
                    assert!(e.starts_with(w), "{name}: {e:?} does not start with {w:?}");
                }
            }
        }
    }

    #[test]
    fn range_results_are_summed_per_instant() {
        let points = points_from_data(&data(
            r#"{"resultType":"matrix","result":[{"metric":{"i":"1"},"values":[[10,"1"],[12,"2"],[14,"NaN"]]},{"metric":{"i":"2"},"values":[[12,"0.5"],[14,"3"]]}]}"#,
        ))
        .unwrap();
        assert_eq!(points, vec![(10_000, 1.0), (12_000, 2.5), (14_000, 3.0)]);
        let vector = data(r#"{"resultType":"vector","result":[]}"#);
        assert!(points_from_data(&vector).is_err());
    }

    fn secret(pairs: &[(&str, &str)]) -> SecretData {
        let data: BTreeMap<String, Vec<u8>> = pairs
            .iter()
            .map(|(k, v)| ((*k).into(), v.as_bytes().to_vec()))
            .collect();
        SecretData::new("ns", "creds", data)
    }

    #[test]
    fn credentials_become_an_authorization_header() {
        let h = authorization(&secret(&[("token", "abc\n")])).unwrap();
        assert_eq!(h.to_str().unwrap(), "Bearer abc");
        assert!(h.is_sensitive());
        let h = authorization(&secret(&[
            ("username", "Aladdin"),
            ("password", "open sesame"),
        ]))
        .unwrap();
        assert_eq!(h.to_str().unwrap(), "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==");
        let h = authorization(&secret(&[
            ("token", "t"),
            ("username", "u"),
            ("password", "p"),
        ]))
        .unwrap();
        assert_eq!(h.to_str().unwrap(), "Bearer t");
        for (pairs, msg) in [
            (
                &[("username", "u")][..],
                "secret ns/creds: has username but no password",
            ),
            (
                &[("password", "p")][..],
                "secret ns/creds: has password but no username",
            ),
            (
                &[("other", "x")][..],
                "secret ns/creds: has neither token nor username and password",
            ),
        ] {
            assert_eq!(authorization(&secret(pairs)).unwrap_err().to_string(), msg);
        }
    }
}

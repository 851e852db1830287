//! Every EC2 call goes through [`call`]: the SDK's own retries are off, and throttling
//! (`RequestLimitExceeded`, `Throttling`...) and transient failures (5xx, timeouts, connection
//! errors) are retried here with bounded exponential backoff and jitter, so the number of attempts
//! is known when the budget runs out and the caller gets a typed error.

use std::collections::hash_map::RandomState;
use std::error::Error as StdError;
use std::future::Future;
use std::hash::BuildHasher;
use std::time::Duration;

use aws_sdk_ec2::config::http::HttpResponse;
use aws_sdk_ec2::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use ballast_cloud::CloudError;

/// How failed calls are retried.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryOptions {
    /// Attempts per call, the first included (at least 1).
    pub max_attempts: u32,
    /// Backoff before the second attempt; doubled for each further one.
    pub initial_backoff: Duration,
    /// Longest backoff between two attempts.
    pub max_backoff: Duration,
}

impl Default for RetryOptions {
    fn default() -> Self {
        RetryOptions {
            max_attempts: 5,
            initial_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(10),
        }
    }
}

impl RetryOptions {
    /// The backoff before attempt `attempt + 1` (`attempt` ≥ 1), before jitter.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1).min(16));
        self.initial_backoff
            .saturating_mul(factor)
            .min(self.max_backoff)
    }
}

/// Error codes EC2 (and AWS query APIs in general) use for throttling.
pub const THROTTLING_CODES: &[&str] = &[
    "RequestLimitExceeded",
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottled",
    "RequestThrottledException",
    "EC2ThrottledException",
    "TooManyRequestsException",
    "BandwidthLimitExceeded",
    "PriorRequestNotComplete",
    "SlowDown",
];

/// Error codes of server-side failures worth another attempt.
pub const TRANSIENT_CODES: &[&str] = &[
    "InternalError",
    "InternalFailure",
    "ServiceUnavailable",
    "Unavailable",
];

/// What kind of failure a call ended with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Throttled,
    Transient,
    /// The service refused the request (bad parameters, not found...): not retried.
    Service,
}

/// A failed EC2 call.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{operation}: {}{message}", code.as_ref().map(|c| format!("{c}: ")).unwrap_or_default())]
pub struct ApiError {
    pub operation: &'static str,
    pub kind: Kind,
    pub code: Option<String>,
    pub message: String,
    pub attempts: u32,
}

impl ApiError {
    pub fn code_is(&self, code: &str) -> bool {
        self.code.as_deref() == Some(code)
    }
}

impl From<ApiError> for CloudError {
    fn from(e: ApiError) -> Self {
        match e.kind {
            Kind::Throttled => CloudError::Throttled {
                operation: e.operation.to_string(),
                attempts: e.attempts,
                message: format!(
                    "{}{}",
                    e.code.map(|c| format!("{c}: ")).unwrap_or_default(),
                    e.message
                ),
            },
            Kind::Transient => CloudError::Transient(e.to_string()),
            Kind::Service => CloudError::Other(e.to_string()),
        }
    }
}

/// Classifies an error code and HTTP status.
pub fn classify(code: Option<&str>, status: Option<u16>) -> Kind {
    match code {
        Some(c) if THROTTLING_CODES.contains(&c) => Kind::Throttled,
        Some(c) if TRANSIENT_CODES.contains(&c) => Kind::Transient,
        _ if status == Some(429) => Kind::Throttled,
        _ if status.is_some_and(|s| s >= 500) => Kind::Transient,
        _ => Kind::Service,
    }
}

fn describe<E>(operation: &'static str, e: &SdkError<E, HttpResponse>, attempts: u32) -> ApiError
where
    E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
{
    let code = e.code().map(str::to_string);
    let status = e.raw_response().map(|r| r.status().as_u16());
    let kind = match e {
        SdkError::ServiceError(_) => classify(code.as_deref(), status),
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) => Kind::Transient,
        SdkError::ResponseError(_) => classify(code.as_deref(), status),
        _ => Kind::Service,
    };
    let message = match (e.message(), e) {
        (Some(m), _) => m.to_string(),
        (None, e) => DisplayErrorContext(e).to_string(),
    };
    ApiError {
        operation,
        kind,
        code,
        message,
        attempts,
    }
}

fn jitter(d: Duration) -> Duration {
    // 50–100% of the backoff, so callers that were throttled together spread out.
    let r = RandomState::new().hash_one(std::time::Instant::now());
    let frac = 0.5 + (r % 1000) as f64 / 2000.0;
    d.mul_f64(frac)
}

/// Runs `f` until it succeeds, fails for good, or the attempts run out.
pub async fn call<T, E, F, Fut>(
    opts: &RetryOptions,
    operation: &'static str,
    mut f: F,
) -> Result<T, ApiError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, SdkError<E, HttpResponse>>>,
    E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
{
    let max = opts.max_attempts.max(1);
    let mut attempt = 1;
    loop {
        match f().await {
            Ok(v) => return Ok(v),
            Err(e) => {
                let err = describe(operation, &e, attempt);
                if err.kind == Kind::Service || attempt >= max {
                    if err.kind != Kind::Service {
                        tracing::warn!(operation, attempts = attempt, error = %err, "EC2 call failed; no attempts left");
                    }
                    return Err(err);
                }
                let wait = jitter(opts.backoff(attempt));
                tracing::debug!(operation, attempt, ?wait, error = %err, "EC2 call failed; retrying");
                tokio::time::sleep(wait).await;
                attempt += 1;
            }
        }
    }
}

/// How a call that must not be made twice ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Once<T, D> {
    /// The service answered.
    Answered(T),
    /// An attempt failed in a way that may hide a success, and `made` found its effect.
    Found(D),
}

/// [`call`] for a call that must not take effect twice (a launch): after a failure that may hide
/// a success (a transient one: a timeout, a connection lost after the request was sent, a 5xx),
/// `made` is asked, before the next attempt, whether an earlier attempt took effect after all;
/// a `Some` answer ends the retries. Throttling refused the call, so it is retried unasked.
pub async fn call_once<T, D, E, F, Fut, M, MFut>(
    opts: &RetryOptions,
    operation: &'static str,
    mut f: F,
    mut made: M,
) -> Result<Once<T, D>, ApiError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, SdkError<E, HttpResponse>>>,
    E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
    M: FnMut() -> MFut,
    MFut: Future<Output = Option<D>>,
{
    let max = opts.max_attempts.max(1);
    let mut attempt = 1;
    loop {
        let err = match f().await {
            Ok(v) => return Ok(Once::Answered(v)),
            Err(e) => describe(operation, &e, attempt),
        };
        if err.kind == Kind::Transient
            && let Some(found) = made().await
        {
            tracing::info!(operation, attempts = attempt, error = %err, "EC2 call failed, but it took effect");
            return Ok(Once::Found(found));
        }
        if err.kind == Kind::Service || attempt >= max {
            if err.kind != Kind::Service {
                tracing::warn!(operation, attempts = attempt, error = %err, "EC2 call failed; no attempts left");
            }
            return Err(err);
        }
        let wait = jitter(opts.backoff(attempt));
        tracing::debug!(operation, attempt, ?wait, error = %err, "EC2 call failed; retrying");
        tokio::time::sleep(wait).await;
        attempt += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_statuses() {
        assert_eq!(
            classify(Some("RequestLimitExceeded"), Some(503)),
            Kind::Throttled
        );
        assert_eq!(classify(Some("Throttling"), Some(400)), Kind::Throttled);
        assert_eq!(classify(None, Some(429)), Kind::Throttled);
        assert_eq!(classify(Some("InternalError"), Some(500)), Kind::Transient);
        assert_eq!(classify(None, Some(502)), Kind::Transient);
        assert_eq!(
            classify(Some("InvalidParameterValue"), Some(400)),
            Kind::Service
        );
        assert_eq!(
            classify(Some("InvalidInstanceID.NotFound"), Some(400)),
            Kind::Service
        );
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let o = RetryOptions {
            max_attempts: 10,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(500),
        };
        assert_eq!(o.backoff(1), Duration::from_millis(100));
        assert_eq!(o.backoff(2), Duration::from_millis(200));
        assert_eq!(o.backoff(3), Duration::from_millis(400));
        assert_eq!(o.backoff(4), Duration::from_millis(500));
        assert_eq!(o.backoff(40), Duration::from_millis(500));
        let j = jitter(Duration::from_millis(100));
        assert!(j >= Duration::from_millis(50) && j <= Duration::from_millis(100));
    }

    #[test]
    fn throttled_becomes_the_typed_cloud_error() {
        let e = ApiError {
            operation: "CreateFleet",
            kind: Kind::Throttled,
            code: Some("RequestLimitExceeded".into()),
            message: "Request limit exceeded.".into(),
            attempts: 3,
        };
        assert_eq!(
            CloudError::from(e),
            CloudError::Throttled {
                operation: "CreateFleet".into(),
                attempts: 3,
                message: "RequestLimitExceeded: Request limit exceeded.".into()
            }
        );
    }
}

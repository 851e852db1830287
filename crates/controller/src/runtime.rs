//! Process plumbing shared by the reconcilers: the loopback HTTP endpoint serving `/metrics`
//! (prometheus-client text format), `/healthz` (liveness: the reconcile loops are not stuck) and
//! `/readyz` (readiness: the caches are synced; a standby of leader election is ready too, since
//! readiness means "can take over"), and the shutdown signal (SIGTERM or Ctrl+C).
//!
//! Owned by the horizontal reconciler's authors; the nodes reconciler may use it as is (register
//! its metrics in the same [`Registry`], pass its own health check).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::registry::Registry;

/// Why the metrics endpoint could not be served.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The address is not a loopback one and serving on any address was not allowed.
    #[error(
        "refusing to serve metrics on the non-loopback address {addr} (pass a 127.0.0.1 address)"
    )]
    NotLoopback { addr: SocketAddr },
    /// The address could not be bound (or its bound address read).
    #[error("binding {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// A health check: `true` means healthy.
pub type HealthCheck = Arc<dyn Fn() -> bool + Send + Sync>;

/// The two probes a process answers.
#[derive(Clone)]
pub struct Probes {
    /// `/healthz`: false when a reconcile loop is stuck (the kubelet restarts the container).
    pub live: HealthCheck,
    /// `/readyz`: true once the caches are synced.
    pub ready: HealthCheck,
}

#[derive(Clone)]
struct AppState {
    registry: Arc<Registry>,
    probes: Probes,
}

async fn metrics(State(s): State<AppState>) -> impl IntoResponse {
    let mut body = String::new();
    match prometheus_client::encoding::text::encode(&mut body, &s.registry) {
        Ok(()) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            body,
        ),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "text/plain")],
            e.to_string(),
        ),
    }
}

async fn healthz(State(s): State<AppState>) -> impl IntoResponse {
    if (s.probes.live)() {
        (StatusCode::OK, "ok\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "stuck\n")
    }
}

async fn readyz(State(s): State<AppState>) -> impl IntoResponse {
    if (s.probes.ready)() {
        (StatusCode::OK, "ok\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
    }
}

/// Binds `addr` (refusing anything but a loopback address unless `allow_any` is set) and returns
/// the bound address and the server future, which runs until `shutdown` resolves.
pub async fn serve(
    addr: SocketAddr,
    allow_any: bool,
    registry: Arc<Registry>,
    probes: Probes,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<
    (
        SocketAddr,
        impl std::future::Future<Output = std::io::Result<()>>,
    ),
    ServeError,
> {
    if !(allow_any || addr.ip().is_loopback()) {
        return Err(ServeError::NotLoopback { addr });
    }
    let bind = |source| ServeError::Bind { addr, source };
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(bind)?;
    let bound = listener.local_addr().map_err(bind)?;
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(AppState { registry, probes });
    let server = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .into_future();
    Ok((bound, server))
}

/// Resolves on SIGTERM or Ctrl+C (SIGINT).
pub async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}

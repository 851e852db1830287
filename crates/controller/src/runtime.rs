//! Process plumbing shared by the reconcilers: the loopback HTTP endpoint serving `/metrics`
//! (prometheus-client text format), `/healthz` (liveness: the reconcile loops are not stuck),
//! `/readyz` (readiness: the caches are synced; a standby of leader election is ready too, since
//! readiness means "can take over" and a webhook replica serves whether it leads or not) and
//! `/leaderz` (whether this process leads now), and the shutdown signal (SIGTERM or Ctrl+C).
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

use crate::leader::Leadership;

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

/// The probes a process answers.
#[derive(Clone)]
pub struct Probes {
    /// `/healthz`: false when a reconcile loop is stuck (the kubelet restarts the container).
    pub live: HealthCheck,
    /// `/readyz`: true once the caches are synced (a standby of leader election too).
    pub ready: HealthCheck,
    /// `/leaderz`: true while this process leads (always without leader election).
    pub leading: HealthCheck,
}

/// The `/leaderz` check of `leadership`.
pub fn leading(leadership: Leadership) -> HealthCheck {
    Arc::new(move || leadership.is_leading())
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

async fn leaderz(State(s): State<AppState>) -> impl IntoResponse {
    if (s.probes.leading)() {
        (StatusCode::OK, "leading\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "standby\n")
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
        .route("/leaderz", get(leaderz))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::{Heartbeats, Ready};
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// The status code of `GET path` on `addr`.
    async fn status(addr: SocketAddr, path: &str) -> u16 {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        s.write_all(request.as_bytes()).await.unwrap();
        let mut answer = String::new();
        s.read_to_string(&mut answer).await.unwrap();
        answer
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0)
    }

    /// The probes as a controller wires them: `/readyz` follows the Ready flag, `/healthz` turns
    /// 503 once a loop missed its heartbeat, and 200 again when it turns.
    #[tokio::test]
    async fn probes_follow_ready_and_heartbeats() {
        let (beats, ready) = (Heartbeats::default(), Ready::default());
        let probes = Probes {
            live: Arc::new({
                let b = beats.clone();
                move || b.healthy()
            }),
            ready: Arc::new({
                let r = ready.clone();
                move || r.get()
            }),
            leading: Arc::new(|| false),
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
        let (addr, server) = serve(loopback, false, Arc::default(), probes, async {
            let _ = stopped.await;
        })
        .await
        .unwrap();
        let server = tokio::spawn(server);
        assert_eq!(status(addr, "/readyz").await, 503);
        ready.set(true);
        assert_eq!(status(addr, "/readyz").await, 200);
        assert_eq!(status(addr, "/leaderz").await, 503);
        let limit = Duration::from_secs(60);
        beats.beat("provisioner", limit);
        assert_eq!(status(addr, "/healthz").await, 200);
        // A turn that had to come at once: late as soon as any time passed.
        beats.beat("provisioner", Duration::ZERO);
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(status(addr, "/healthz").await, 503);
        beats.beat("provisioner", limit);
        assert_eq!(status(addr, "/healthz").await, 200);
        assert_eq!(status(addr, "/metrics").await, 200);
        let _ = stop.send(());
        server.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn non_loopback_addresses_are_refused() {
        let any = SocketAddr::from(([0, 0, 0, 0], 0));
        let probes = Probes {
            live: Arc::new(|| true),
            ready: Arc::new(|| true),
            leading: Arc::new(|| true),
        };
        let e = serve(any, false, Arc::default(), probes, async {})
            .await
            .err()
            .unwrap();
        assert!(e.to_string().contains("non-loopback"), "{e}");
    }
}

//! What every `ballast controller` command does around its reconciler: serve `/metrics` (with
//! the `ballast_<reconciler>_leader` gauge) and the probes (`/leaderz` among them), run the reconciler under the leader election's guard until SIGTERM / Ctrl+C, then stop
//! the server.

use std::future::Future;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use ballast_controller::runtime;
use prometheus_client::registry::Registry;
use tokio::sync::watch;

use crate::leader_cmd::Election;

/// Where `/metrics`, `/healthz` and `/readyz` are served, and whether a non-loopback address is
/// allowed.
pub struct Endpoint {
    pub addr: SocketAddr,
    pub bind_any: bool,
}

/// Serves `registry` and `probes` on `endpoint` and runs `reconciler(stop)` under `election`,
/// where [`stopped`]`(stop)` resolves at SIGTERM / Ctrl+C (`on_signal` says, in the log, what the
/// reconciler then does). Returns once the reconciler has returned and the server stopped.
pub async fn serve_and_run<Work>(
    endpoint: Endpoint,
    mut registry: Registry,
    probes: runtime::Probes,
    election: Election,
    on_signal: &'static str,
    reconciler: impl FnOnce(watch::Receiver<bool>) -> Work,
) -> Result<ExitCode>
where
    Work: Future<Output = Result<()>>,
{
    election.register_metric(&mut registry);
    let (stop_tx, stop_rx) = watch::channel(false);
    let (addr, server) = runtime::serve(
        endpoint.addr,
        endpoint.bind_any,
        Arc::new(registry),
        probes,
        stopped(stop_rx.clone()),
    )
    .await?;
    tracing::info!(%addr, "serving /metrics, /healthz, /readyz and /leaderz");
    let server = tokio::spawn(server);
    let signal = tokio::spawn(async move {
        runtime::shutdown_signal().await;
        tracing::info!("shutdown requested: {on_signal}");
        let _ = stop_tx.send(true);
    });
    let result = election.guard(reconciler(stop_rx)).await;
    signal.abort();
    let _ = tokio::time::timeout(Duration::from_secs(5), server).await;
    result?;
    Ok(ExitCode::SUCCESS)
}

/// A future that resolves when the shutdown was asked for on `rx`.
pub async fn stopped(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

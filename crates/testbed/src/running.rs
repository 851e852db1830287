//! A controller's run loop in a task of the test: the controllers' `run(shutdown)` is spawned
//! with a shutdown future the test resolves in [`Running::stop`]; dropping a `Running` aborts the
//! task, so a failed test never leaves a controller acting on the bed. Its metrics registry stays
//! readable ([`Running::counter`]).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use prometheus_client::registry::Registry;

/// The shutdown signal handed to a controller's `run`: resolves when the test stops it.
pub type Shutdown = Pin<Box<dyn Future<Output = ()> + Send + Sync + 'static>>;

/// A controller running in a task of the test; `E` is the error its `run` returns.
pub struct Running<E> {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), E>>,
    registry: Arc<Registry>,
}

impl<E> Running<E>
where
    E: std::error::Error + Send + Sync + 'static,
{
    /// Spawns `run(shutdown)` (e.g. `|s| controller.run(s)`); `registry` is the one the
    /// controller was built with.
    pub fn spawn<F>(run: impl FnOnce(Shutdown) -> F, registry: Registry) -> Running<E>
    where
        F: Future<Output = Result<(), E>> + Send + 'static,
    {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let shutdown: Shutdown = Box::pin(async move {
            let _ = rx.await;
        });
        Running {
            stop: Some(tx),
            task: tokio::spawn(run(shutdown)),
            registry: Arc::new(registry),
        }
    }

    /// Graceful stop: the work in flight finishes, then `run` returns (its error, if any).
    pub async fn stop(mut self) -> Result<()> {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        match tokio::time::timeout(Duration::from_secs(30), &mut self.task).await {
            Ok(joined) => Ok(joined.context("the controller task panicked")??),
            Err(_) => bail!("the controller did not stop within 30s"),
        }
    }

    /// The value of a counter of the controller's /metrics (summed over the label sets whose
    /// text contains `labels`).
    pub fn counter(&self, name: &str, labels: &str) -> f64 {
        let mut text = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text.lines()
            .filter(|l| l.starts_with(&format!("{name}_total")) && l.contains(labels))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }
}

impl<E> Drop for Running<E> {
    fn drop(&mut self) {
        self.task.abort();
    }
}

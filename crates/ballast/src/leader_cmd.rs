//! The leader election flags every `ballast controller` shares, and the guard that stops a
//! reconciler the moment its process loses the lease.

use std::future::Future;
use std::time::Duration;

use anyhow::{Context as _, Result};
use ballast_controller::leader::{
    self, LeaderConfig, LeaderElector, LeaderError, Leadership, Timing,
};
use clap::Args;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Flags of leader election (every reconciler).
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Leader election")]
pub struct LeaderFlags {
    /// Run for the leadership of a coordination.k8s.io Lease: only the leader decides and
    /// writes, a standby keeps its caches warm. A leader that cannot renew the lease within the
    /// renew deadline exits with an error (Kubernetes restarts it as a standby).
    #[arg(long)]
    pub leader_elect: bool,
    /// Namespace of the Lease (default: POD_NAMESPACE, else `default`).
    #[arg(long, value_name = "NS")]
    pub leader_election_namespace: Option<String>,
    /// Name of the Lease (default: `ballast-<reconciler>`).
    #[arg(long, value_name = "NAME")]
    pub leader_election_id: Option<String>,
    /// How long the lease stays held after its last renewal (Go duration).
    #[arg(long, value_name = "DURATION", default_value = "15s", value_parser = crate::vertical_cmd::duration)]
    pub leader_election_lease_duration: Duration,
    /// How long the leader keeps leading without renewing (Go duration; below the lease duration).
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = crate::vertical_cmd::duration)]
    pub leader_election_renew_deadline: Duration,
    /// Time between two renewals, or two reads of a standby (Go duration).
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = crate::vertical_cmd::duration)]
    pub leader_election_retry_period: Duration,
}

impl LeaderFlags {
    /// The election of `reconciler` (`horizontal`, `nodes`, `vertical`), when asked for; the
    /// identity is POD_NAME, else the host name and process id.
    pub fn config(&self, reconciler: &str) -> Option<LeaderConfig> {
        self.leader_elect.then(|| LeaderConfig {
            namespace: self
                .leader_election_namespace
                .clone()
                .unwrap_or_else(leader::default_namespace),
            name: self
                .leader_election_id
                .clone()
                .unwrap_or_else(|| format!("ballast-{reconciler}")),
            identity: leader::default_identity(),
            timing: Timing {
                lease_duration: self.leader_election_lease_duration,
                renew_deadline: self.leader_election_renew_deadline,
                retry_period: self.leader_election_retry_period,
            },
            clock: Default::default(),
        })
    }

    /// Starts the election (in a task) when asked for; without it the process always leads.
    pub fn start(&self, client: &kube::Client, reconciler: &str) -> Result<Election> {
        let Some(config) = self.config(reconciler) else {
            return Ok(Election {
                leadership: Leadership::always(),
                reconciler: reconciler.to_owned(),
                task: None,
            });
        };
        let (elector, leadership) = LeaderElector::new(client.clone(), config)
            .context("--leader-elect: the election's timing")?;
        let (release, released) = oneshot::channel::<()>();
        let task = tokio::spawn(elector.run(async move {
            let _ = released.await;
        }));
        Ok(Election {
            leadership,
            reconciler: reconciler.to_owned(),
            task: Some((task, release)),
        })
    }
}

/// The elector's task and the sender that tells it the reconciler stopped (release the lease).
type Running = (JoinHandle<Result<(), LeaderError>>, oneshot::Sender<()>);

/// A running election (or none) and the leadership it grants.
pub struct Election {
    /// Whether this process leads; hand it to the reconciler.
    pub leadership: Leadership,
    /// `horizontal`, `nodes` or `vertical`.
    reconciler: String,
    task: Option<Running>,
}

impl Election {
    /// Registers the `ballast_<reconciler>_leader` gauge (1 leading, 0 standby) in `registry`.
    pub fn register_metric(&self, registry: &mut prometheus_client::registry::Registry) {
        let prefix = format!("ballast_{}", self.reconciler);
        leader::metric::register(registry, &prefix, self.leadership.clone());
    }

    /// Runs `work` (the reconciler, which stops on its own shutdown signal) and then releases
    /// the lease. If the leadership is lost first, `work` is dropped at once (nothing it has in
    /// flight writes after) and the error is returned, for the process to exit non-zero.
    pub async fn guard(self, work: impl Future<Output = Result<()>>) -> Result<()> {
        let Some((mut task, release)) = self.task else {
            return work.await;
        };
        let lost = async {
            match (&mut task).await {
                Ok(Err(e)) => anyhow::Error::new(e),
                Ok(Ok(())) => std::future::pending().await,
                Err(e) => anyhow::anyhow!("leader election stopped: {e}"),
            }
        };
        let result = tokio::select! {
            r = work => r,
            e = lost => {
                tracing::error!(error = %e, "leadership lost: exiting");
                return Err(e);
            }
        };
        let _ = release.send(());
        match task.await {
            Ok(Err(e)) => tracing::warn!(error = %e, "leader election"),
            Err(e) => tracing::warn!(error = %e, "leader election task"),
            Ok(Ok(())) => {}
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(args: &[&str]) -> LeaderFlags {
        use clap::Parser;
        let mut all = vec!["ballast", "controller", "horizontal"];
        all.extend_from_slice(args);
        match crate::cli::Cli::try_parse_from(all).unwrap().command {
            crate::cli::Command::Controller(c) => c.leader,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn off_by_default_and_named_per_reconciler() {
        assert!(flags(&[]).config("horizontal").is_none());
        let c = flags(&["--leader-elect", "--leader-election-namespace", "ops"])
            .config("nodes")
            .unwrap();
        assert_eq!(c.name, "ballast-nodes");
        assert_eq!(c.namespace, "ops");
        assert_eq!(c.timing, Timing::default());
        let c = flags(&[
            "--leader-elect",
            "--leader-election-id",
            "my-lease",
            "--leader-election-lease-duration",
            "30s",
        ])
        .config("vertical")
        .unwrap();
        assert_eq!(c.name, "my-lease");
        assert_eq!(c.timing.lease_duration, Duration::from_secs(30));
        assert!(!c.identity.is_empty());
    }
}

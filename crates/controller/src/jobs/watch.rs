//! The caches the jobs loop reads instead of listing: one reflector of the `JobAutoscaler`s
//! (each change wakes the loop, so a new or edited object is passed at once) and one of the
//! Jobs that carry the owner label. Both retry with the watcher's default backoff and keep their
//! last state meanwhile.

use std::sync::Arc;

use ballast_api::jobs::{JobAutoscaler, OWNER_LABEL};
use futures::StreamExt;
use k8s_openapi::api::batch::v1::Job;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use tokio::sync::Notify;

/// The two caches and the tasks filling them (stopped when dropped).
pub struct Caches {
    /// Every `JobAutoscaler` watched.
    pub objects: Store<JobAutoscaler>,
    /// Every Job with the owner label.
    pub jobs: Store<Job>,
    /// Notified after each change of a `JobAutoscaler`.
    pub changed: Arc<Notify>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Caches {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

fn api<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    K::DynamicType: Default,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// Starts both reflectors on `namespace` (all when None).
pub fn start(client: &Client, namespace: Option<&str>) -> Caches {
    let changed = Arc::new(Notify::new());
    let (objects, writer) = reflector::store();
    let wake = changed.clone();
    let stream = watcher(
        api::<JobAutoscaler>(client, namespace),
        watcher::Config::default(),
    )
    .default_backoff()
    .reflect(writer)
    .touched_objects();
    let objects_task = tokio::spawn(async move {
        stream
            .for_each(|r| {
                match r {
                    Ok(_) => wake.notify_one(),
                    Err(e) => tracing::debug!(error = %e, "jobautoscalers watch"),
                }
                async {}
            })
            .await;
    });
    let (jobs, writer) = reflector::store();
    let config = watcher::Config::default().labels(OWNER_LABEL);
    let stream = watcher(api::<Job>(client, namespace), config)
        .default_backoff()
        .modify(|job: &mut Job| job.managed_fields_mut().clear())
        .reflect(writer)
        .touched_objects();
    let jobs_task = tokio::spawn(async move {
        stream
            .for_each(|r| {
                if let Err(e) = r {
                    tracing::debug!(error = %e, "jobs watch");
                }
                async {}
            })
            .await;
    });
    Caches {
        objects,
        jobs,
        changed,
        tasks: vec![objects_task, jobs_task],
    }
}

impl Caches {
    /// Waits until both caches are filled once.
    pub async fn ready(&self) -> Result<(), reflector::store::WriterDropped> {
        self.objects.wait_until_ready().await?;
        self.jobs.wait_until_ready().await
    }

    /// The cached Jobs of the object `name` in `namespace`.
    pub fn jobs_of(&self, namespace: &str, name: &str) -> Vec<Arc<Job>> {
        self.jobs
            .state()
            .into_iter()
            .filter(|j| {
                j.metadata.namespace.as_deref() == Some(namespace)
                    && j.labels().get(OWNER_LABEL).map(String::as_str) == Some(name)
            })
            .collect()
    }
}

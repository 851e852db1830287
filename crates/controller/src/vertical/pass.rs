//! One pass over every autoscaler: observe, recommend, write the status, publish events.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use ballast_api::vertical::{VerticalAutoscaler, VerticalAutoscalerStatus};
use ballast_horizontal::selector::Selector;
use ballast_vertical::coordination::{self, Clash, Held};
use ballast_vertical::status::{ConfigProblem, History, Note, Observation};
use ballast_vertical::{Settings, Workload};
use futures::FutureExt;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Patch, PatchParams};
use kube::runtime::reflector::Store;
use kube::{Resource, ResourceExt};

use super::checkpoints::Saved;
use super::usage::{self, NamespaceUsage, Oom, Sample};
use super::webhook::Entry;
use super::{Metrics, Tracked, VerticalRecommender, history};
use crate::events;
use crate::scale::error_text;

/// `(namespace, name)` of an object.
pub(super) fn key(va: &VerticalAutoscaler) -> (String, String) {
    (va.namespace().unwrap_or_default(), va.name_any())
}

/// What was observed of one autoscaler's pods in a pass.
struct Observed {
    pods: usize,
    samples: Vec<Sample>,
    ooms: Vec<Oom>,
    live: HashSet<String>,
}

impl VerticalRecommender {
    pub(super) async fn pass(
        &self,
        autoscalers: &Store<VerticalAutoscaler>,
        pods: &Store<Pod>,
        tracked: &mut HashMap<(String, String), Tracked>,
        saved: &mut Saved,
    ) {
        let mut by_namespace: BTreeMap<String, Vec<Arc<VerticalAutoscaler>>> = BTreeMap::new();
        for va in autoscalers.state() {
            by_namespace
                .entry(va.namespace().unwrap_or_default())
                .or_default()
                .push(va);
        }
        let mut pods_by_namespace: HashMap<String, Vec<Arc<Pod>>> = HashMap::new();
        for p in pods.state() {
            let ns = p.namespace().unwrap_or_default();
            if by_namespace.contains_key(&ns) {
                pods_by_namespace.entry(ns).or_default().push(p);
            }
        }
        let mut present = HashSet::new();
        for (ns, list) in &by_namespace {
            let usage = usage::read_namespace(&self.client, ns).await;
            let pods = pods_by_namespace.get(ns).map_or(&[][..], |v| &v[..]);
            for va in list {
                present.insert(key(va));
                self.reconcile(va, pods, &usage, tracked, saved).await;
            }
        }
        tracked.retain(|k, _| present.contains(k));
        self.index
            .retain(&|ns, name| present.contains(&(ns.to_owned(), name.to_owned())));
        self.metrics.objects.set(tracked.len() as i64);
        let containers: usize = tracked.values().map(|t| t.workload.tracked().len()).sum();
        self.metrics.containers.set(containers as i64);
    }

    /// A standby's webhook index, from what the leader writes: each object's
    /// `status.recommendation` and its target's selector (a read). Nothing is written.
    pub(super) async fn index_from_statuses(&self, autoscalers: &Store<VerticalAutoscaler>) {
        let mut present = HashSet::new();
        for va in autoscalers.state() {
            let (ns, name) = key(&va);
            let entry = match self.selector(&ns, &va).await {
                Ok(selector) => Some(Entry {
                    selector: Arc::new(selector),
                    spec: va.spec.clone(),
                    recommendation: va.status.as_ref().and_then(|s| s.recommendation.clone()),
                    held: Held::from_clashes(&self.clashes(&va).unwrap_or_default()),
                }),
                Err(_) => None,
            };
            self.index.set(&ns, &name, entry);
            present.insert((ns, name));
        }
        self.index
            .retain(&|ns, name| present.contains(&(ns.to_owned(), name.to_owned())));
    }

    async fn reconcile(
        &self,
        va: &VerticalAutoscaler,
        pods: &[Arc<Pod>],
        usage: &Result<NamespaceUsage, String>,
        tracked: &mut HashMap<(String, String), Tracked>,
        saved: &mut Saved,
    ) {
        let (ns, name) = key(va);
        let target = &va.spec.target_ref;
        let mut observed = Observation {
            target: format!("{} {}", target.kind, target.name),
            ..Default::default()
        };
        let settings = match Settings::from_spec(&va.spec, &format!("{ns}/{name}")) {
            Ok(s) => s,
            Err(e) => {
                observed.problem = Some(problem("InvalidSpec", e.to_string()));
                self.index.set(&ns, &name, None);
                self.finish(va, &observed).await;
                return;
            }
        };
        let entry = self.track(va, &settings, tracked, saved);
        let selector = match self.selector(&ns, va).await {
            Ok(s) => s,
            Err(p) => {
                observed.problem = Some(p);
                observed.history = entry.history.clone();
                self.index.set(&ns, &name, None);
                self.finish(va, &observed).await;
                return;
            }
        };
        if entry.history == History::Fetching {
            self.finish(
                va,
                &Observation {
                    history: History::Fetching,
                    ..observed.clone()
                },
            )
            .await;
            entry.history = self.read_history(va, &settings, &mut entry.workload).await;
        }
        let seen = observe(pods, &selector, usage);
        observed.pods_matched = seen.pods;
        observed.metrics_error = usage.as_ref().err().cloned();
        observed.history = entry.history.clone();
        let samples: Vec<_> = seen.samples.iter().map(Sample::borrow).collect();
        let ooms: Vec<_> = seen.ooms.iter().map(Oom::borrow).collect();
        let counted = entry.workload.observe(&samples, &ooms, &settings);
        self.count("live", counted.samples as u64);
        self.metrics.oom_kills.inc_by(counted.oom_kills as u64);
        entry.workload.retain_pods(&|uid| seen.live.contains(uid));
        let recommendation =
            ballast_vertical::recommend(va, &entry.workload.tracked(), self.config.clock.now());
        match &recommendation {
            Ok(r) => observed.recommendation = Some(r),
            Err(e) => observed.problem = Some(problem("InvalidSpec", e.to_string())),
        }
        let clashes = self.clashes(va);
        observed.horizontal = clashes.as_deref().map(coordination::vertical_finding);
        let status = self.finish(va, &observed).await;
        let entry = Entry {
            selector: Arc::new(selector),
            spec: va.spec.clone(),
            recommendation: status.recommendation,
            held: Held::from_clashes(&clashes.unwrap_or_default()),
        };
        self.index.set(&ns, &name, Some(entry));
    }

    /// The clashes of `va` with the horizontal autoscalers of its namespace; None until their
    /// cache is filled.
    fn clashes(&self, va: &VerticalAutoscaler) -> Option<Vec<Clash>> {
        let store = self.horizontals.as_ref()?;
        store.wait_until_ready().now_or_never()?.ok()?;
        let ns = va.namespace();
        let clashes = store
            .state()
            .iter()
            .filter(|h| h.namespace() == ns && h.metadata.deletion_timestamp.is_none())
            .flat_map(|h| coordination::clashes(va, h))
            .collect();
        Some(clashes)
    }

    /// The object's entry, created (from its checkpoints when there are some) on first sight or
    /// when the object was recreated; its states follow a change of settings.
    fn track<'t>(
        &self,
        va: &VerticalAutoscaler,
        settings: &Settings,
        tracked: &'t mut HashMap<(String, String), Tracked>,
        saved: &mut Saved,
    ) -> &'t mut Tracked {
        let key = key(va);
        let uid = va.uid().unwrap_or_default();
        let history_source = self.config.history.prometheus_url.is_some();
        let entry = tracked.entry(key.clone()).or_insert_with(|| Tracked {
            uid: String::new(),
            settings: *settings,
            workload: Workload::new(),
            history: History::NotNeeded,
        });
        if entry.uid != uid {
            let (workload, restored) = restore(&key, saved.remove(&key), settings);
            entry.uid = uid;
            entry.settings = *settings;
            entry.workload = workload;
            entry.history = if restored || !history_source {
                History::NotNeeded
            } else {
                History::Fetching
            };
        } else if entry.settings != *settings {
            entry.workload = resettle(&entry.workload, settings, &key);
            entry.settings = *settings;
        }
        entry
    }

    /// The target's pod selector, or why it cannot be had.
    async fn selector(&self, ns: &str, va: &VerticalAutoscaler) -> Result<Selector, ConfigProblem> {
        let read = self.targets.read(ns, &va.spec.target_ref).await;
        if let Some(e) = read.scale.error {
            return Err(target_problem(&e));
        }
        if read.scale.selector.is_empty() {
            return Err(problem(
                "NoSelector",
                format!(
                    "spec.targetRef: the scale of {} {} has no status.selector",
                    va.spec.target_ref.kind, va.spec.target_ref.name
                ),
            ));
        }
        Selector::parse(&read.scale.selector).map_err(|e| {
            problem(
                "InvalidSelector",
                format!("spec.targetRef: the scale's selector: {e}"),
            )
        })
    }

    async fn read_history(
        &self,
        va: &VerticalAutoscaler,
        settings: &Settings,
        workload: &mut Workload,
    ) -> History {
        let ns = va.namespace().unwrap_or_default();
        let now = self.config.clock.now();
        match history::read(
            &self.config.history,
            &self.http,
            &ns,
            &va.spec.target_ref,
            now,
        )
        .await
        {
            Ok(samples) => {
                let borrowed: Vec<_> = samples.iter().map(Sample::borrow).collect();
                let counted = workload.observe(&borrowed, &[], settings);
                self.count("history", counted.samples as u64);
                History::Loaded {
                    samples: counted.samples as u64,
                }
            }
            Err(message) => History::Failed { message },
        }
    }

    fn count(&self, source: &str, n: u64) {
        self.metrics
            .samples
            .get_or_create(&Metrics::label("source", source))
            .inc_by(n);
    }

    /// Writes the status when it changed and publishes the events of the pass.
    async fn finish(
        &self,
        va: &VerticalAutoscaler,
        observed: &Observation<'_>,
    ) -> VerticalAutoscalerStatus {
        let now: Timestamp = self.config.clock.now();
        let (status, notes) = ballast_vertical::status::status(va.status.as_ref(), observed, now);
        if va.status.as_ref() != Some(&status)
            && let Err(e) = self.write_status(va, &status).await
        {
            let (ns, name) = key(va);
            tracing::warn!(object = %format!("{ns}/{name}"), error = %e, "status not written");
        }
        for note in &notes {
            self.publish(va, note).await;
        }
        status
    }

    async fn write_status(
        &self,
        va: &VerticalAutoscaler,
        status: &VerticalAutoscalerStatus,
    ) -> Result<(), String> {
        let ns = va.namespace().unwrap_or_default();
        let api: kube::Api<VerticalAutoscaler> = kube::Api::namespaced(self.client.clone(), &ns);
        let body = serde_json::json!({ "status": status });
        self.metrics.status_patches.inc();
        api.patch_status(
            &va.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&body),
        )
        .await
        .map(|_| ())
        .map_err(|e| error_text(&e))
    }

    async fn publish(&self, va: &VerticalAutoscaler, note: &Note) {
        let event = events::Event {
            warning: note.warning,
            reason: note.reason,
            note: &note.message,
            action: "Recommend",
        };
        match self.recorder.publish(&event, &va.object_ref(&())).await {
            Ok(()) => {
                self.metrics
                    .events
                    .get_or_create(&Metrics::label("reason", note.reason))
                    .inc();
            }
            Err(e) => {
                self.metrics.event_errors.inc();
                tracing::warn!(reason = note.reason, error = %e, "publishing an event failed");
            }
        }
    }
}

/// The pods of `selector` (not finished), their usage samples and OOM kills.
fn observe(
    pods: &[Arc<Pod>],
    selector: &Selector,
    usage: &Result<NamespaceUsage, String>,
) -> Observed {
    let mut out = Observed {
        pods: 0,
        samples: Vec::new(),
        ooms: Vec::new(),
        live: HashSet::new(),
    };
    let empty = BTreeMap::new();
    for pod in pods {
        let labels = pod.metadata.labels.as_ref().unwrap_or(&empty);
        let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
        if !selector.matches(labels) || matches!(phase, Some("Succeeded" | "Failed")) {
            continue;
        }
        out.pods += 1;
        out.live.insert(pod.uid().unwrap_or_default());
        if let Ok(u) = usage {
            usage::samples(pod, u, &mut out.samples);
        }
        usage::oom_kills(pod, &mut out.ooms);
    }
    out
}

/// The workload restored from an object's checkpoints; true when one was restored.
fn restore(
    key: &(String, String),
    saved: Option<BTreeMap<String, ballast_api::vertical::VerticalAutoscalerCheckpointStatus>>,
    settings: &Settings,
) -> (Workload, bool) {
    let Some(saved) = saved else {
        return (Workload::new(), false);
    };
    let mut containers = BTreeMap::new();
    for (container, status) in saved {
        let object = format!("{}/{}", key.0, super::checkpoints::name(&key.1, &container));
        match ballast_vertical::checkpoint::restore(&status, settings, &object) {
            Ok(state) => {
                containers.insert(container, state);
            }
            Err(e) => tracing::warn!(error = %e, "checkpoint ignored"),
        }
    }
    let restored = !containers.is_empty();
    (Workload::restored(containers), restored)
}

/// The workload's states carried over to new settings (half-lives, mode) through a checkpoint.
fn resettle(workload: &Workload, settings: &Settings, key: &(String, String)) -> Workload {
    let now = Timestamp::UNIX_EPOCH;
    let saved = workload
        .containers()
        .map(|(n, s)| (n.to_owned(), ballast_vertical::checkpoint::save(s, now)))
        .collect();
    restore(key, Some(saved), settings).0
}

fn problem(reason: &'static str, message: String) -> ConfigProblem {
    ConfigProblem { reason, message }
}

/// A target read error as a condition reason.
fn target_problem(error: &str) -> ConfigProblem {
    let reason = if error.contains("has no scale subresource") {
        "NoScaleSubresource"
    } else if error.contains("not found") || error.contains("no kind") {
        "TargetNotFound"
    } else if error.contains("is required") {
        "InvalidSpec"
    } else {
        "FailedGetScale"
    };
    let message = error.replace("scaleTargetRef", "spec.targetRef");
    problem(reason, format!("spec.targetRef: {message}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_errors_become_reasons() {
        let cases = [
            (
                "ConfigMap v1 has no scale subresource",
                "NoScaleSubresource",
            ),
            ("deployments.apps \"web\" not found", "TargetNotFound"),
            (
                "no kind Widget is served in example.com/v1",
                "TargetNotFound",
            ),
            (
                "scaleTargetRef.apiVersion is required for kind Widget",
                "InvalidSpec",
            ),
            ("connection refused", "FailedGetScale"),
        ];
        for (error, reason) in cases {
            assert_eq!(target_problem(error).reason, reason, "{error}");
        }
        assert_eq!(
            target_problem("scaleTargetRef.apiVersion is required for kind X").message,
            "spec.targetRef: spec.targetRef.apiVersion is required for kind X"
        );
    }
}

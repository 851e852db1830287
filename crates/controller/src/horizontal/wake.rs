//! The activation poll: objects resting at zero (or idle) replicas are woken as soon as one of
//! their event sources shows work, instead of at their next sync.
//!
//! After each decision the reconciler records whether the object now rests
//! (`ballast_horizontal::wake::resting`) with the scale it read ([`Resting::rest`]). Every tick
//! (`Config::activation_poll`, or the object's `spec.activationPollMilliseconds`) this loop, on
//! the leader only:
//!
//! 1. takes the resting objects whose poll is due, and their event sources
//!    (`wake::polled_sources`);
//! 2. reads each distinct source (namespace + the source's spec) once, whatever the number of
//!    objects sharing it, through the reconciler's own readers (same caches, concurrency limit
//!    and timeout);
//! 3. asks the core whether a decision on those readings would activate the object
//!    (`wake::would_activate`, the decision itself, on the object's last decided status);
//! 4. if so, makes the object due now and sends it to the controller's queue: the normal
//!    reconcile reads every metric again, decides and writes the scale. Nothing here writes.
//!
//! Reads of one tick run concurrently; the next tick starts after the slowest read, so a slow
//! source delays the poll but never piles reads up.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ballast_api::horizontal::{EventMetricSource, HorizontalAutoscaler};
use ballast_horizontal::snapshot::{MetricReading, Snapshot, TargetScale};
use ballast_horizontal::{Decision, effective_metrics, wake};
use futures::channel::mpsc::UnboundedSender;
use futures::future::join_all;
use kube::ResourceExt;
use kube::runtime::reflector::{ObjectRef, Store};

use super::{Context, Metrics};

/// The shortest poll interval an object may ask for.
const FLOOR: Duration = Duration::from_millis(100);
/// How long the loop sleeps when no object rests (or the poll is off).
const IDLE_TICK: Duration = Duration::from_millis(250);
/// How often an object whose poll is off (or that is gone) is looked at again.
const OFF_RECHECK: Duration = Duration::from_secs(1);

/// An object at rest, as its last decision left it.
#[derive(Clone, Debug)]
struct Rest {
    uid: String,
    /// The scale as read by that decision, with the replica count it left.
    scale: TargetScale,
    /// When its sources are read next.
    next_poll: Instant,
}

/// `namespace/name` → objects at rest.
#[derive(Default)]
pub(super) struct Resting {
    objects: Mutex<HashMap<String, Rest>>,
}

impl Resting {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Rest>> {
        self.objects.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records the outcome of a decision on `key`: at rest (polled from now on) or not.
    pub(super) fn after_decision(
        &self,
        key: &str,
        uid: &str,
        decision: &Decision,
        read: &TargetScale,
    ) {
        if !wake::resting(decision) {
            self.forget(key);
            return;
        }
        let mut scale = read.clone();
        scale.spec_replicas = decision.desired_replicas;
        let rest = Rest {
            uid: uid.to_owned(),
            scale,
            next_poll: Instant::now(),
        };
        self.lock().insert(key.to_owned(), rest);
    }

    /// Stops polling `key` (it left its rest, failed, or was deleted).
    pub(super) fn forget(&self, key: &str) {
        self.lock().remove(key);
    }

    fn len(&self) -> usize {
        self.lock().len()
    }

    /// The objects due at `now`, their next poll moved on by `interval` of each.
    fn take_due(&self, now: Instant, interval: impl Fn(&str) -> Duration) -> Vec<(String, Rest)> {
        let mut due = Vec::new();
        for (key, rest) in self.lock().iter_mut() {
            if rest.next_poll <= now {
                due.push((key.clone(), rest.clone()));
                rest.next_poll = now + interval(key);
            }
        }
        due
    }

    /// When the next object is due (none: `None`).
    fn next_due(&self) -> Option<Instant> {
        self.lock().values().map(|r| r.next_poll).min()
    }
}

/// The poll interval of `hza`: its `activationPollMilliseconds`, else `default`; zero is off.
fn interval_of(hza: &HorizontalAutoscaler, default: Duration) -> Duration {
    match hza.spec.activation_poll_milliseconds {
        Some(ms) if ms <= 0 => Duration::ZERO,
        Some(ms) => Duration::from_millis(ms as u64).max(FLOOR),
        None if default.is_zero() => Duration::ZERO,
        None => default.max(FLOOR),
    }
}

/// A source read once per tick: the namespace its Secret is in, and its spec.
type SourceKey = (String, String);

fn source_key(ns: &str, source: &EventMetricSource) -> SourceKey {
    let spec = serde_json::to_string(source).unwrap_or_default();
    (ns.to_owned(), spec)
}

/// Runs the activation poll until `stopped` resolves; `wake` is the controller's queue.
pub(super) async fn run(
    ctx: Arc<Context>,
    store: Store<HorizontalAutoscaler>,
    wake: UnboundedSender<ObjectRef<HorizontalAutoscaler>>,
    stopped: impl std::future::Future<Output = ()>,
) {
    let mut stopped = std::pin::pin!(stopped);
    let default = ctx.config.activation_poll;
    loop {
        let until = ctx
            .resting
            .next_due()
            .map_or(IDLE_TICK, |t| t.saturating_duration_since(Instant::now()))
            .clamp(Duration::from_millis(10), IDLE_TICK);
        tokio::select! {
            _ = &mut stopped => return,
            _ = tokio::time::sleep(until) => {}
        }
        ctx.metrics.resting.set(ctx.resting.len() as i64);
        if !ctx.config.leadership.is_leading() {
            continue;
        }
        let objects = |key: &str| {
            let (ns, name) = key.split_once('/')?;
            store.get(&ObjectRef::new(name).within(ns))
        };
        let due = ctx.resting.take_due(Instant::now(), |key| {
            match objects(key).map(|h| interval_of(&h, default)) {
                Some(every) if !every.is_zero() => every,
                // Off or gone: looked at again only to notice a change.
                _ => OFF_RECHECK,
            }
        });
        let mut polled = Vec::new();
        for (key, rest) in due {
            match objects(&key) {
                Some(h) if h.uid().as_deref() == Some(rest.uid.as_str()) => {
                    if !interval_of(&h, default).is_zero() {
                        polled.push((key, rest, h));
                    }
                }
                _ => ctx.resting.forget(&key),
            }
        }
        if !polled.is_empty() {
            tick(&ctx, polled, &wake).await;
        }
    }
}

/// One tick over the due objects: each distinct source read once, then each object judged.
async fn tick(
    ctx: &Context,
    objects: Vec<(String, Rest, Arc<HorizontalAutoscaler>)>,
    wake: &UnboundedSender<ObjectRef<HorizontalAutoscaler>>,
) {
    let mut sources: HashMap<SourceKey, (usize, EventMetricSource)> = HashMap::new();
    for (_, _, h) in &objects {
        let ns = h.namespace().unwrap_or_default();
        for (i, e) in wake::polled_sources(h) {
            sources.entry(source_key(&ns, &e)).or_insert((i, e));
        }
    }
    let reads = join_all(sources.into_iter().map(|(key, (i, e))| async move {
        let result = ctx.source.read_event(&key.0, i, &e).await;
        (key, result)
    }))
    .await;
    let mut readings: HashMap<SourceKey, MetricReading> = HashMap::new();
    for (key, result) in reads {
        let outcome = if result.is_ok() { "ok" } else { "error" };
        ctx.metrics
            .activation_reads
            .get_or_create(&Metrics::label("result", outcome))
            .inc();
        readings.insert(key, ballast_metrics::to_reading(result));
    }
    for (key, rest, h) in objects {
        if judge(ctx, &key, &rest, &h, &readings) {
            tracing::debug!(object = %key, "activation poll: woken");
            ctx.metrics.activation_wakes.inc();
            ctx.resting.forget(&key);
            ctx.schedule.make_due(&key);
            let ns = h.namespace().unwrap_or_default();
            let _ = wake.unbounded_send(ObjectRef::new(&h.name_any()).within(&ns));
        }
    }
}

/// Whether the decision on this object, with the poll's readings, activates it.
fn judge(
    ctx: &Context,
    key: &str,
    rest: &Rest,
    hza: &HorizontalAutoscaler,
    readings: &HashMap<SourceKey, MetricReading>,
) -> bool {
    let ns = hza.namespace().unwrap_or_default();
    let unread = || MetricReading {
        error: Some("not read by the activation poll".into()),
        ..Default::default()
    };
    let polled: HashMap<usize, SourceKey> = wake::polled_sources(hza)
        .into_iter()
        .map(|(i, e)| (i, source_key(&ns, &e)))
        .collect();
    let metrics = effective_metrics(hza)
        .iter()
        .enumerate()
        .map(|(i, m)| match polled.get(&i) {
            Some(k) => readings.get(k).cloned().unwrap_or_else(unread),
            None if is_cron(m) => MetricReading::default(),
            None => unread(),
        })
        .collect();
    // The status the next decision starts from: the one this process decided last.
    let mut autoscaler = hza.clone();
    if let Some(memo) = ctx.schedule.get(key).and_then(|s| s.memo) {
        autoscaler.status = Some((*memo.decided).clone());
    }
    let snapshot = Snapshot {
        autoscaler,
        scale: rest.scale.clone(),
        pods: Vec::new(),
        metrics,
        other_autoscalers: Vec::new(),
        demand_history: Vec::new(),
        config: ctx.config.decision.clone(),
        now: ctx.config.clock.now(),
    };
    match wake::would_activate(&snapshot) {
        Ok(wakes) => wakes,
        Err(e) => {
            tracing::debug!(object = %key, error = %e, "activation poll: no decision");
            false
        }
    }
}

fn is_cron(m: &ballast_api::horizontal::MetricSpec) -> bool {
    m.event
        .as_ref()
        .is_some_and(|e| e.type_ == ballast_api::horizontal::EventSourceType::Cron)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_poll(ms: Option<i32>) -> HorizontalAutoscaler {
        let mut h = HorizontalAutoscaler::new("q", Default::default());
        h.spec.activation_poll_milliseconds = ms;
        h
    }

    #[test]
    fn the_interval_is_the_object_s_else_the_controller_s_never_below_the_floor() {
        let ms = Duration::from_millis;
        // (object, controller, interval)
        let rows = [
            (None, 250, 250),
            (None, 0, 0),
            (None, 20, 100),
            (Some(0), 250, 0),
            (Some(1000), 250, 1000),
            (Some(1000), 0, 1000),
            (Some(5), 250, 100),
        ];
        for (object, controller, want) in rows {
            assert_eq!(
                interval_of(&with_poll(object), ms(controller)),
                ms(want),
                "object {object:?}, controller {controller} ms"
            );
        }
    }

    #[test]
    fn objects_are_due_once_per_interval() {
        let resting = Resting::default();
        let start = Instant::now();
        resting.lock().insert(
            "ns/a".into(),
            Rest {
                uid: "u".into(),
                scale: TargetScale::default(),
                next_poll: start,
            },
        );
        let every = |_: &str| Duration::from_millis(250);
        assert_eq!(resting.take_due(start, every).len(), 1);
        assert!(resting.take_due(start, every).is_empty());
        let later = start + Duration::from_millis(250);
        assert_eq!(resting.take_due(later, every).len(), 1);
        assert_eq!(resting.next_due(), Some(later + Duration::from_millis(250)));
        resting.forget("ns/a");
        assert_eq!(resting.next_due(), None);
    }
}

//! Kubernetes events (`events.k8s.io/v1`) on the autoscalers, as `kubectl describe` shows them.
//!
//! Like kube-runtime's `events::Recorder` (same object shape: `reportingController`,
//! `reportingInstance`, `regarding`, `action`, `note`), with two differences the horizontal and
//! vertical reconcilers need:
//! - the deduplication key includes the message: kube's `Recorder` keys on type, reason and
//!   action only and re-sends the *first* event's note as a series, so a second
//!   `SuccessfulRescale` within six minutes ("New size: 2") would show the first one's
//!   message ("New size: 4"). Here the same message repeated becomes a series (count,
//!   lastObservedTime), a new message a new event — as client-go's event correlator does;
//! - the cache is bounded (entries older than six minutes are dropped, and at most
//!   `MAX_ENTRIES` are kept) and its lock is never held across an API call.

use std::collections::HashMap;
use std::sync::Mutex;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::{Event as K8sEvent, EventSeries};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};

use crate::Clock;

const SERIES_WINDOW: SignedDuration = SignedDuration::from_mins(6);
const MAX_ENTRIES: usize = 50_000;

/// One event to publish.
pub struct Event<'a> {
    pub warning: bool,
    pub reason: &'a str,
    pub note: &'a str,
    pub action: &'a str,
}

#[derive(Clone, PartialEq, Eq, Hash)]
struct Key {
    uid: String,
    namespace: String,
    name: String,
    warning: bool,
    reason: String,
    note: String,
}

struct Seen {
    name: String,
    count: i32,
    last: Timestamp,
}

/// Publishes events for one reporting controller.
pub struct Recorder {
    client: Client,
    controller: String,
    instance: String,
    clock: Clock,
    cache: Mutex<HashMap<Key, Seen>>,
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

impl Recorder {
    /// A recorder writing as `controller` / `instance`, stamping events with `clock`'s time.
    pub fn new(
        client: Client,
        controller: impl Into<String>,
        instance: impl Into<String>,
        clock: Clock,
    ) -> Recorder {
        Recorder {
            client,
            controller: controller.into(),
            instance: instance.into(),
            clock,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// Creates the event, or bumps the series of the same event seen in the last six minutes.
    pub async fn publish(
        &self,
        ev: &Event<'_>,
        regarding: &ObjectReference,
    ) -> Result<(), kube::Error> {
        let now = self.clock.now();
        let namespace = regarding
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let note = truncate(ev.note, 1024);
        let key = Key {
            uid: regarding.uid.clone().unwrap_or_default(),
            namespace: namespace.clone(),
            name: regarding.name.clone().unwrap_or_default(),
            warning: ev.warning,
            reason: ev.reason.to_owned(),
            note: note.clone(),
        };
        let repeat = {
            let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            if cache.len() >= MAX_ENTRIES {
                cache.retain(|_, s| s.last + SERIES_WINDOW > now);
                if cache.len() >= MAX_ENTRIES {
                    cache.clear();
                }
            }
            match cache.get_mut(&key) {
                Some(s) if s.last + SERIES_WINDOW > now => {
                    s.count += 1;
                    s.last = now;
                    Some((s.name.clone(), s.count))
                }
                _ => None,
            }
        };
        let api: Api<K8sEvent> = Api::namespaced(self.client.clone(), &namespace);
        if let Some((name, count)) = repeat {
            let patch = serde_json::json!({
                "series": EventSeries { count, last_observed_time: MicroTime(now) }
            });
            match api
                .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => return Ok(()),
                // Expired (events have a TTL) or deleted: start a new one.
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        let name = format!(
            "{}.{:x}",
            regarding.name.as_deref().unwrap_or(&self.controller),
            now.as_nanosecond()
        );
        let event = K8sEvent {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(namespace),
                ..Default::default()
            },
            action: Some(truncate(ev.action, 128)),
            reason: Some(truncate(ev.reason, 128)),
            note: Some(note),
            type_: Some(if ev.warning { "Warning" } else { "Normal" }.into()),
            event_time: Some(MicroTime(now)),
            regarding: Some(regarding.clone()),
            reporting_controller: Some(self.controller.clone()),
            reporting_instance: Some(self.instance.clone()),
            ..Default::default()
        };
        api.create(&PostParams::default(), &event).await?;
        self.cache.lock().unwrap_or_else(|e| e.into_inner()).insert(
            key,
            Seen {
                name,
                count: 1,
                last: now,
            },
        );
        Ok(())
    }

    /// Forgets the events of one object (deleted).
    pub fn forget(&self, uid: &str) {
        self.cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|k, _| k.uid != uid);
    }
}

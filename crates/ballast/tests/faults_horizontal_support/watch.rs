//! The invariant watchers of the horizontal fault tests: one watch on the test namespace's
//! Deployments and one on its HorizontalAutoscalers, running through a whole scenario. Every
//! change is checked as it arrives against each target's [`Rules`] and the fault window the test
//! declares ([`Watch::fault_begins`], [`Watch::fault_ends`]); a broken rule is recorded with its
//! time, never panicked on, and [`Watch::finish`] returns them all.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use ballast_api::horizontal::HorizontalAutoscaler;
use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use kube::runtime::watcher;
use kube::{Api, Resource, ResourceExt};

/// What must hold for one target (a Deployment and the autoscaler of the same name).
#[derive(Clone, Debug, Default)]
pub struct Rules {
    pub min: i32,
    pub max: i32,
    /// `spec.fallback.replicas` (static): the one count a scale-down may reach while its source
    /// is down.
    pub fallback: Option<i32>,
    /// No scale-down at all during the scenario.
    pub never_down: bool,
    /// The largest change one write may make (a rate policy of the autoscaler).
    pub max_step: Option<i32>,
}

/// A part of the bed that is down, and the autoscalers that read it.
#[derive(Clone, Debug)]
struct Fault {
    part: String,
    objects: Vec<String>,
    began: Instant,
    ended: Option<Instant>,
    /// The conditions that named the failure while the part was down, by autoscaler.
    named: BTreeMap<String, String>,
}

/// One broken rule.
#[derive(Clone, Debug)]
pub struct Violation {
    pub at: Duration,
    pub what: String,
}

#[derive(Default)]
struct Record {
    rules: BTreeMap<String, Rules>,
    replicas: BTreeMap<String, i32>,
    /// When each target was first seen at each count.
    reached: BTreeMap<(String, i32), Instant>,
    /// `ScalingActive` of each autoscaler as last seen: (status is True, reason, message).
    active: BTreeMap<String, (bool, String, String)>,
    /// The instant each autoscaler was last seen with ScalingActive=True after a change to it.
    became_active: BTreeMap<String, Instant>,
    fault: Option<Fault>,
    violations: Vec<Violation>,
    changes: usize,
}

/// The watch tasks of a scenario and what they saw.
pub struct Watch {
    record: Arc<Mutex<Record>>,
    started: Instant,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

fn lock(record: &Mutex<Record>) -> MutexGuard<'_, Record> {
    record.lock().unwrap_or_else(|e| e.into_inner())
}

impl Watch {
    /// Starts watching the namespace of `client`'s APIs; `rules` by target name.
    pub fn start(ns: &ballast_testbed::TestNamespace, rules: &[(&str, Rules)]) -> Watch {
        let record = Arc::new(Mutex::new(Record {
            rules: rules
                .iter()
                .map(|(n, r)| ((*n).to_owned(), r.clone()))
                .collect(),
            ..Default::default()
        }));
        let started = Instant::now();
        let deployments = tokio::spawn(watch_each(ns.api::<Deployment>(), {
            let record = record.clone();
            move |d: Deployment| {
                let replicas = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0);
                on_replicas(&mut lock(&record), started, &d.name_any(), replicas);
            }
        }));
        let autoscalers = tokio::spawn(watch_each(ns.api::<HorizontalAutoscaler>(), {
            let record = record.clone();
            move |h: HorizontalAutoscaler| on_autoscaler(&mut lock(&record), &h)
        }));
        Watch {
            record,
            started,
            tasks: vec![deployments, autoscalers],
        }
    }

    /// Time since the watch started (violations are stamped with it).
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// `part` goes down now; `objects` read it.
    pub fn fault_begins(&self, part: &str, objects: &[&str]) {
        lock(&self.record).fault = Some(Fault {
            part: part.to_owned(),
            objects: objects.iter().map(|o| (*o).to_owned()).collect(),
            began: Instant::now(),
            ended: None,
            named: BTreeMap::new(),
        });
    }

    /// The part is back now (started and ready, or thawed).
    pub fn fault_ends(&self) -> Instant {
        let now = Instant::now();
        if let Some(f) = lock(&self.record).fault.as_mut() {
            f.ended = Some(now);
        }
        now
    }

    /// Checks that each object of the fault had a condition naming the failure (containing
    /// `fragment`) while the part was down; records a violation otherwise. Returns the messages.
    pub fn check_named(&self, fragment: &str) -> BTreeMap<String, String> {
        let mut record = lock(&self.record);
        let Some(fault) = record.fault.clone() else {
            return BTreeMap::new();
        };
        let at = self.started.elapsed();
        for object in &fault.objects {
            match fault.named.get(object) {
                Some(m) if m.contains(fragment) => {}
                Some(m) => record.violations.push(Violation {
                    at,
                    what: format!(
                        "{object}: the condition while {} was down does not name it ({fragment}): {m}",
                        fault.part
                    ),
                }),
                None => record.violations.push(Violation {
                    at,
                    what: format!(
                        "{object}: no ScalingActive=False condition while {} was down",
                        fault.part
                    ),
                }),
            }
        }
        fault.named
    }

    /// The replica count last seen of `target`.
    pub fn replicas(&self, target: &str) -> Option<i32> {
        lock(&self.record).replicas.get(target).copied()
    }

    /// When `target` was first seen at `replicas`.
    pub fn reached(&self, target: &str, replicas: i32) -> Option<Instant> {
        lock(&self.record)
            .reached
            .get(&(target.to_owned(), replicas))
            .copied()
    }

    /// Whether `object` shows ScalingActive=True, and since when (after its last change).
    pub fn active_since(&self, object: &str) -> Option<Instant> {
        let record = lock(&self.record);
        match record.active.get(object) {
            Some((true, _, _)) => record.became_active.get(object).copied(),
            _ => None,
        }
    }

    /// Changes seen so far (replica counts and conditions).
    pub fn changes(&self) -> usize {
        lock(&self.record).changes
    }

    /// Records a violation found by the test itself (a bound on recovery, a dead process).
    pub fn violation(&self, what: String) {
        let at = self.started.elapsed();
        lock(&self.record).violations.push(Violation { at, what });
    }

    /// Stops watching; every violation recorded.
    pub fn finish(self) -> Vec<Violation> {
        for t in &self.tasks {
            t.abort();
        }
        std::mem::take(&mut lock(&self.record).violations)
    }
}

/// Runs `each` on every object the watch reports, retrying 250 ms after an error (the API server
/// may be down), until aborted.
async fn watch_each<K>(api: Api<K>, mut each: impl FnMut(K) + Send)
where
    K: Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
    K::DynamicType: Default,
{
    let mut stream = watcher::watcher(api, watcher::Config::default()).boxed();
    while let Some(event) = stream.next().await {
        match event {
            Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o)) => each(o),
            Ok(_) => {}
            Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
}

fn on_replicas(record: &mut Record, started: Instant, name: &str, replicas: i32) {
    let previous = record.replicas.insert(name.to_owned(), replicas);
    if previous == Some(replicas) {
        return;
    }
    record.changes += 1;
    record
        .reached
        .entry((name.to_owned(), replicas))
        .or_insert_with(Instant::now);
    let Some(rules) = record.rules.get(name).cloned() else {
        return;
    };
    let at = started.elapsed();
    let mut broken = Vec::new();
    if replicas < rules.min || replicas > rules.max {
        broken.push(format!(
            "{name}: {replicas} replicas, outside [{}, {}]",
            rules.min, rules.max
        ));
    }
    if let Some(p) = previous {
        if replicas < p && rules.never_down {
            broken.push(format!("{name}: scaled down {p} → {replicas}"));
        }
        if let Some(step) = rules.max_step
            && (replicas - p).abs() > step
        {
            broken.push(format!(
                "{name}: one write moved {p} → {replicas} (at most {step} at once)"
            ));
        }
        let down = record
            .fault
            .as_ref()
            .filter(|f| f.ended.is_none() && f.objects.iter().any(|o| o == name));
        if let Some(f) = down
            && replicas < p
            && rules.fallback != Some(replicas)
        {
            broken.push(format!(
                "{name}: scaled down {p} → {replicas} while {} is down (fallback {:?})",
                f.part, rules.fallback
            ));
        }
    }
    for what in broken {
        eprintln!("VIOLATION at {:.1} s: {what}", at.as_secs_f64());
        record.violations.push(Violation { at, what });
    }
}

fn on_autoscaler(record: &mut Record, h: &HorizontalAutoscaler) {
    let name = h.name_any();
    let Some(c) = h
        .status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == "ScalingActive"))
    else {
        return;
    };
    let now = (c.status == "True", c.reason.clone(), c.message.clone());
    if record.active.get(&name) == Some(&now) {
        return;
    }
    record.changes += 1;
    if now.0 {
        record.became_active.insert(name.clone(), Instant::now());
    } else if let Some(f) = record.fault.as_mut()
        && f.ended.is_none()
        && f.objects.contains(&name)
        && now.1.starts_with("FailedGet")
    {
        f.named
            .entry(name.clone())
            .or_insert_with(|| format!("{}: {}", now.1, now.2));
    }
    record.active.insert(name, now);
}

//! The discrete-event loop: a queue of events in virtual time, each dispatched to the cluster
//! (`crate::world`, which models Kubernetes without Ballast) or to a decision (`crate::cores`,
//! the real Ballast cores), whose answer the cluster then carries out. It owns no cluster state.

use crate::cores::{self, AutoscalerState, VerticalState};
use crate::event::Event;
use crate::record::Recorder;
use crate::scenario::Scenario;
use crate::state::{Millis, millis};
use crate::world::{World, WorldError};
use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// One run of a scenario variant: the cluster, the autoscalers' state kept between syncs, and
/// the events to come.
pub struct Simulation {
    world: World,
    autoscalers: Vec<AutoscalerState>,
    /// The `VerticalAutoscaler` objects and the usage they have seen.
    verticals: Vec<VerticalState>,
    /// Events by time, then by the order they were asked for.
    queue: BinaryHeap<Reverse<(Millis, u64, Event)>>,
    seq: u64,
    /// When the last disruption pass that found nothing asked to look again.
    disrupt_wake: Millis,
}

/// Why a simulation cannot start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SetupError {
    /// The cluster cannot be built (catalog, start nodes).
    #[error(transparent)]
    World(#[from] WorldError),
    /// An autoscaler does not fit the scenario.
    #[error("{0}")]
    Autoscaler(String),
}

impl Simulation {
    /// Builds the start state of `sc` and queues the first events.
    pub fn new(sc: Scenario) -> Result<Simulation, SetupError> {
        let pool_timers = cores::pool_timers(&sc);
        let mut world = World::new(sc, pool_timers)?;
        let autoscalers = cores::autoscalers(&world.sc).map_err(SetupError::Autoscaler)?;
        for a in &autoscalers {
            world.autoscaled[a.workload] = true;
        }
        world.start()?;
        let verticals = cores::verticals(&world.sc, &mut world.rec);
        let mut sim = Simulation {
            world,
            autoscalers,
            verticals,
            queue: BinaryHeap::new(),
            seq: 0,
            disrupt_wake: 0,
        };
        sim.queue_first_events();
        Ok(sim)
    }

    /// Queues what the cluster asked for, then `ev` at `at`.
    fn push(&mut self, at: Millis, ev: Event) {
        self.queue_wakeups();
        self.seq += 1;
        self.queue.push(Reverse((at, self.seq, ev)));
    }

    /// Moves the cluster's wake-ups into the queue, in the order they were asked for.
    fn queue_wakeups(&mut self) {
        for (at, ev) in self.world.wakeups.take() {
            self.seq += 1;
            self.queue.push(Reverse((at, self.seq, ev)));
        }
    }

    fn queue_first_events(&mut self) {
        let world = &self.world;
        let arrivals: Vec<Millis> = world
            .sc
            .batch_pods
            .iter()
            .map(|b| millis(b.arrive))
            .collect();
        for (i, at) in arrivals.into_iter().enumerate() {
            self.push(at, Event::BatchArrive(i));
        }
        for i in 0..self.autoscalers.len() {
            let period = self.autoscalers[i].sync_period;
            self.push(period, Event::HpaSync(i));
        }
        if !self.verticals.is_empty() {
            self.push(cores::RECOMMEND_PERIOD_MS, Event::Recommend);
        }
        let schedule = self.world.sc.settings.spot_interruptions.as_ref();
        let due: Vec<Millis> = schedule
            .map(|s| s.schedule.iter().map(|e| e.at.as_str()).collect::<Vec<_>>())
            .unwrap_or_default()
            .into_iter()
            .map(|at| millis(ballast_api::common::parse_duration_seconds(at).unwrap_or(0.0)))
            .collect();
        for (i, at) in due.into_iter().enumerate() {
            self.push(at, Event::ScheduledInterrupt(i));
        }
        self.push(0, Event::Sample);
        let disruption = millis(self.world.sc.settings.disruption_interval_seconds);
        self.push(disruption, Event::Disrupt);
        self.static_pools();
        self.world.schedule_if_pending();
        self.queue_wakeups();
    }

    /// Runs to the end; `progress` is called with the fraction done now and then. Returns what
    /// the run counted, its summary included.
    pub fn run(mut self, progress: &mut dyn FnMut(f64)) -> (Recorder, crate::report::Summary) {
        let mut last_report = 0;
        let end = self.world.end;
        // CPU time is read when the phase changes, not around every event: most events are
        // autoscaler syncs in a row, and reading a thread's CPU clock is a system call that
        // cost about a sixth of a sync.
        let mut phase = ("other", thread_cpu_seconds());
        while let Some(Reverse((at, _, ev))) = self.queue.pop() {
            if at > end {
                break;
            }
            self.world.now = at;
            let p = phase_of(&ev);
            let rec = &mut self.world.rec;
            if p != phase.0 {
                let t = thread_cpu_seconds();
                *rec.phase_seconds.entry(phase.0).or_insert(0.0) += t - phase.1;
                phase = (p, t);
            }
            *rec.phase_counts.entry(p).or_insert(0) += 1;
            self.dispatch(ev);
            self.queue_wakeups();
            if at - last_report >= 3_600_000 {
                last_report = at;
                progress(at as f64 / end as f64);
            }
        }
        let rec = &mut self.world.rec;
        *rec.phase_seconds.entry(phase.0).or_insert(0.0) += thread_cpu_seconds() - phase.1;
        self.world.now = end;
        self.world.finish();
        let mut summary = crate::report::finish(&self.world);
        let mean_ready: Vec<f64> = summary.workloads.iter().map(|w| w.mean_ready).collect();
        summary.vertical =
            crate::vertical_report::summarize(&self.world, &self.verticals, &mean_ready);
        progress(1.0);
        (self.world.rec, summary)
    }

    /// Hands event `ev` to the cluster or to a decision, and queues the next periodic event.
    fn dispatch(&mut self, ev: Event) {
        let now = self.world.now;
        match ev {
            Event::Sample => {
                self.sample();
                let next = now + millis(self.world.sc.settings.sample_seconds);
                self.push(next, Event::Sample);
            }
            Event::HpaSync(i) => {
                self.horizontal(i);
                let next = now + self.autoscalers[i].sync_period;
                self.push(next, Event::HpaSync(i));
            }
            Event::Schedule => self.world.scheduling_due(),
            Event::Provision => self.provision(),
            Event::Disrupt => {
                self.static_pools();
                self.disrupt();
                let next = now + millis(self.world.sc.settings.disruption_interval_seconds);
                self.push(next, Event::Disrupt);
            }
            Event::Drain(n) => self.world.drain(n),
            Event::NodeReady(n) => self.world.node_booted(n),
            Event::PodReady(p) => self.world.pod_started(p),
            Event::PodFinish(p) => self.world.pod_finished(p),
            Event::BatchArrive(i) => self.world.batch_arrives(i),
            Event::Interrupt(n) => self.world.interrupt(n),
            Event::Reclaim(n) => self.world.reclaim(n),
            Event::ScheduledInterrupt(i) => self.world.interrupt_scheduled(i),
            Event::Recommend => {
                cores::recommend(&mut self.world, &mut self.verticals);
                cores::admit(&mut self.world, &self.verticals);
                cores::update(&mut self.world, &self.verticals);
                self.push(now + cores::RECOMMEND_PERIOD_MS, Event::Recommend);
            }
        }
    }

    /// Autoscaler `i` syncs: the horizontal core decides on what the cluster shows now.
    fn horizontal(&mut self, i: usize) {
        let w = self.autoscalers[i].workload;
        self.world.advance_backlog(w);
        if let Some(desired) = cores::horizontal(&mut self.world, &mut self.autoscalers[i], i) {
            self.world.set_desired(w, desired);
        }
    }

    /// The provisioner's batch window closed: the nodes core decides what to launch.
    fn provision(&mut self) {
        let Some(pods) = self.world.provisioning_due() else {
            return;
        };
        let plans = cores::provision(&mut self.world, &pods);
        self.world.launch_all(plans);
        self.world.provisioned(&pods);
    }

    /// Static NodePools short of their replicas get their nodes (at the start and before every
    /// disruption pass, so a node that drift or expiration removed comes back).
    fn static_pools(&mut self) {
        let plans = cores::static_pools(&mut self.world);
        self.world.launch_all(plans);
    }

    /// A disruption pass, when one is worth it: the nodes core decides what to disrupt.
    fn disrupt(&mut self) {
        let world = &mut self.world;
        if world.disrupting.is_some() {
            return;
        }
        // A pass is worth it when the cluster changed and some node's timer has run out, or when
        // the wake-up the last empty pass asked for has come.
        let prompted = world.changed_since_disruption && cores::disruption_due(world);
        if !prompted && world.now < self.disrupt_wake {
            return;
        }
        world.changed_since_disruption = false;
        *world.rec.phase_counts.entry("disrupt pass").or_insert(0) += 1;
        match cores::disrupt(world) {
            (Some(plan), _) => world.begin_disruption(plan),
            (None, wake) => self.disrupt_wake = wake,
        }
    }

    /// A sample of the time series, after the cluster's bookkeeping is checked.
    fn sample(&mut self) {
        for w in 0..self.world.workloads.len() {
            self.world.advance_backlog(w);
        }
        self.world.check_invariants();
        cores::observe_usage(&self.world, &mut self.verticals);
        let sample = crate::report::sample(&self.world);
        self.world.rec.add_sample(sample);
    }
}

/// The phase an event's CPU time is counted in.
fn phase_of(ev: &Event) -> &'static str {
    match ev {
        Event::Sample => "sample",
        Event::HpaSync(_) => "horizontal",
        Event::Schedule => "schedule",
        Event::Provision => "provision",
        Event::Disrupt => "disrupt",
        Event::Recommend => "vertical",
        _ => "other",
    }
}

/// CPU seconds this thread has used: per-phase figures that other processes on the machine
/// do not inflate (wall-clock time would count their turns on the CPU too).
#[allow(unsafe_code)] // the workspace's one audited unsafe call
fn thread_cpu_seconds() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime only writes the timespec we pass, which lives on this stack frame.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return 0.0;
    }
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

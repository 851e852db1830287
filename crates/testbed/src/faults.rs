//! Faults injected into the running test bed: one of its processes stopped and started again, or
//! frozen (SIGSTOP, a server that keeps its sockets open and answers nothing) and thawed.
//!
//! Every call goes through `tests/testbed.sh` (`kill`, `up`, `freeze`, `thaw`) with the bed's
//! runtime folder, so a part comes back on the ports it had: etcd keeps its objects across an API
//! server restart, but a restarted service (Redis, RabbitMQ, PostgreSQL, moto, Kafka) comes back
//! empty, its data made again by the test ([`crate::backlog::Backlog::restore`]).
//!
//! A test that injects faults must not run beside tests that need the same part: give fault tests
//! a test binary of their own and run them one at a time (see [`serial`]).

use std::path::PathBuf;
use std::process::Command;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};

use crate::TestBed;

/// A process of the bed that a fault can stop, as `tests/testbed.sh kill` names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    Etcd,
    ApiServer,
    ControllerManager,
    Scheduler,
    Kwok,
    Prometheus,
    Redis,
    RabbitMq,
    Postgres,
    Moto,
    Kafka,
    /// The custom and external metrics adapter. A crash leaves its APIServices registered (the
    /// aggregator answers 503); it comes back serving no values.
    CustomMetrics,
}

impl Part {
    /// The process name `tests/testbed.sh` records it under.
    pub fn name(self) -> &'static str {
        match self {
            Part::Etcd => "etcd",
            Part::ApiServer => "kube-apiserver",
            Part::ControllerManager => "kube-controller-manager",
            Part::Scheduler => "kube-scheduler",
            Part::Kwok => "kwok",
            Part::Prometheus => "prometheus",
            Part::Redis => "redis",
            Part::RabbitMq => "rabbitmq",
            Part::Postgres => "postgres",
            Part::Moto => "moto",
            Part::Kafka => "kafka",
            Part::CustomMetrics => "custom-metrics",
        }
    }

    /// The component `tests/testbed.sh up` starts it with (`kube` for the control plane's parts).
    fn component(self) -> &'static str {
        match self {
            Part::Etcd
            | Part::ApiServer
            | Part::ControllerManager
            | Part::Scheduler
            | Part::Kwok => "kube",
            other => other.name(),
        }
    }
}

/// One test at a time inside a fault-test binary: hold the guard for the whole test.
///
/// A poisoned lock (a failed test) still serializes the next one.
pub fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Stops `part` its usual way (TERM, then KILL after 20 s; the API server drains its requests
/// first, which takes about 20 s). [`start`] brings it back.
pub fn stop(bed: &TestBed, part: Part) -> Result<()> {
    testbed_sh(bed, &["kill", part.name()])
}

/// SIGKILLs `part`: a crash, with no shutdown of its own. [`start`] brings it back.
pub fn crash(bed: &TestBed, part: Part) -> Result<()> {
    testbed_sh(bed, &["kill", part.name(), "KILL"])
}

/// Starts `part` again (and whatever else of its component is down), waiting until it is ready;
/// returns how long that took.
pub fn start(bed: &TestBed, part: Part) -> Result<Duration> {
    let began = Instant::now();
    testbed_sh(bed, &["up", part.component()])?;
    Ok(began.elapsed())
}

/// Crashes `part` (SIGKILL), keeps it down for `down_for`, and starts it again; returns the
/// instant it was ready again (the moment recovery times count from).
pub async fn restart(bed: &TestBed, part: Part, down_for: Duration) -> Result<Instant> {
    crash(bed, part)?;
    tokio::time::sleep(down_for).await;
    start(bed, part)?;
    Ok(Instant::now())
}

/// SIGSTOP: the process keeps its sockets and answers nothing until [`thaw`].
pub fn freeze(bed: &TestBed, part: Part) -> Result<()> {
    testbed_sh(bed, &["freeze", part.name()])
}

/// SIGCONT after [`freeze`].
pub fn thaw(bed: &TestBed, part: Part) -> Result<()> {
    testbed_sh(bed, &["thaw", part.name()])
}

/// Thaws (if frozen) and starts (if stopped) `part` when dropped, so that a failing test leaves
/// the bed whole for the tests after it.
pub struct Heal<'a> {
    bed: &'a TestBed,
    part: Part,
}

impl<'a> Heal<'a> {
    pub fn new(bed: &'a TestBed, part: Part) -> Heal<'a> {
        Heal { bed, part }
    }
}

impl Drop for Heal<'_> {
    fn drop(&mut self) {
        let _ = testbed_sh(self.bed, &["thaw", self.part.name()]);
        if let Err(e) = start(self.bed, self.part) {
            eprintln!(
                "could not restart {} after the test: {e:#}",
                self.part.name()
            );
        }
    }
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/testbed.sh")
}

fn testbed_sh(bed: &TestBed, args: &[&str]) -> Result<()> {
    let mut command = Command::new("bash");
    command.arg(script()).args(args);
    if let Some(dir) = bed.env().get("BALLAST_TESTBED_DIR") {
        command.env("BALLAST_TESTBED_DIR", dir);
    }
    let output = command
        .output()
        .with_context(|| format!("running tests/testbed.sh {}", args.join(" ")))?;
    if !output.status.success() {
        bail!(
            "tests/testbed.sh {} failed ({}): {}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}

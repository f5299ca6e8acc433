//! The master's event loop: worker exits, restarts, and the operator's signals.
//!

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::rc::Rc;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::sync::mpsc;

use super::backoff::Backoff;
use super::notify::{Notifier, State};
use super::signals::{MasterSignal, Signals};
use super::spawn::{self, Lifeline, Spawned};
use super::{bind_all, check_shipping, prepare_log_file, Bound, MasterError};
use crate::admin::collect::{Collector, Restart};
use crate::config::Config;
use crate::health;
use crate::supervision::{self, exit_code};

/// How long a new generation has to report ready before a reload is abandoned.
const READY_DEADLINE: Duration = Duration::from_secs(30);
/// Extra time, after `gracefulWait`, before draining workers are killed.
const KILL_MARGIN: Duration = Duration::from_secs(5);

enum Event {
    Exited {
        pid: u32,
        status: std::io::Result<ExitStatus>,
    },
    Report {
        pid: u32,
        byte: u8,
    },
    Restart {
        slot: usize,
        generation: u64,
    },
}

struct Worker {
    generation: u64,
    slot: usize,
    started: Instant,
    ready: bool,
    /// Draining on its own (memory watchdog): its replacement is already started.
    retiring: bool,
}

pub(super) struct Supervisor {
    config_path: PathBuf,
    config: Config,
    bound: Vec<Bound>,
    /// The generation whose workers are kept alive.
    generation: u64,
    next_generation: u64,
    workers: HashMap<u32, Worker>,
    /// Crash backoff per worker slot of the current generation.
    backoff: HashMap<usize, Backoff>,
    events: mpsc::UnboundedSender<Event>,
    inbox: mpsc::UnboundedReceiver<Event>,
    /// Follows each worker's stats socket: snapshots, and hand-overs to new workers.
    collector: Rc<Collector>,
    /// The active health checker, when `healthCheck` is set.
    health: Option<health::Checker>,
    /// The service manager's socket, when it gave one.
    notifier: Option<Notifier>,
    /// Whether `READY=1` went out: a first generation that was not all ready at once (a worker
    /// crashed at start and came back) is announced when it is.
    announced: bool,
    /// Ends with this process; every worker watches it.
    lifeline: Lifeline,
}

impl Supervisor {
    pub(super) fn new(
        config_path: PathBuf,
        config: Config,
        bound: Vec<Bound>,
        lifeline: Lifeline,
    ) -> Self {
        let (events, inbox) = mpsc::unbounded_channel();
        Self {
            config_path,
            config,
            bound,
            generation: 0,
            next_generation: 1,
            workers: HashMap::new(),
            backoff: HashMap::new(),
            events,
            inbox,
            collector: Rc::default(),
            health: None,
            notifier: Notifier::from_env(),
            announced: false,
            lifeline,
        }
    }

    pub(super) async fn run(mut self, collector: Rc<Collector>) -> Result<(), MasterError> {
        self.collector = collector;
        let mut signals = Signals::install().map_err(MasterError::Runtime)?;
        health::follow(&mut self.health, &self.config);
        let generation = self.start_generation(self.config.server.workers)?;
        self.generation = generation;
        if self.wait_ready(generation).await {
            tracing::info!(
                workers = self.config.server.workers,
                generation,
                "workers ready"
            );
            self.notify_ready();
        } else {
            tracing::error!(
                generation,
                "workers did not all start; retrying in the background"
            );
        }
        loop {
            tokio::select! {
                signal = signals.next() => match signal {
                    MasterSignal::Terminate => break,
                    MasterSignal::Reload => self.reload().await,
                    MasterSignal::ReopenLogs => self.reopen_logs(),
                },
                Some(event) = self.inbox.recv() => self.handle(event),
            }
        }
        if let Some(notifier) = &self.notifier {
            notifier.send(State::Stopping);
        }
        self.stop_all().await;
        Ok(())
    }

    /// Tells the service manager the current generation serves, and where.
    fn notify_ready(&mut self) {
        self.announced = true;
        let Some(notifier) = &self.notifier else {
            return;
        };
        let listening: Vec<String> = self
            .bound
            .iter()
            .filter_map(|bound| bound.sockets.first())
            .map(|listener| format!("{}://{}", listener.scheme(), listener.address))
            .collect();
        notifier.send(State::Ready {
            listening: &listening,
        });
    }

    /// Starts `count` workers under a new generation number.
    fn start_generation(&mut self, count: usize) -> Result<u64, MasterError> {
        let generation = self.next_generation;
        self.next_generation += 1;
        for slot in 0..count {
            self.start_worker(generation, slot, count)?;
        }
        Ok(generation)
    }

    /// Whether `generation` has workers and every one of them reported ready.
    fn generation_ready(&self, generation: u64) -> bool {
        let of_generation = self.workers.values().filter(|w| w.generation == generation);
        of_generation.clone().all(|w| w.ready) && of_generation.count() > 0
    }

    /// Handles events until every worker of `generation` is ready (`true`), or one of them
    /// exits before being ready, or the deadline passes (`false`).
    async fn wait_ready(&mut self, generation: u64) -> bool {
        let deadline = tokio::time::Instant::now() + READY_DEADLINE;
        loop {
            if self.generation_ready(generation) {
                return true;
            }
            let Ok(Some(event)) = tokio::time::timeout_at(deadline, self.inbox.recv()).await else {
                return false;
            };
            let failed = matches!(&event, Event::Exited { pid, .. }
                if self.workers.get(pid).is_some_and(|w| w.generation == generation && !w.ready));
            self.handle(event);
            if failed {
                return false;
            }
        }
    }

    /// Starts the worker of `slot` (out of `workers` in its generation) on that slot's sockets.
    fn start_worker(
        &mut self,
        generation: u64,
        slot: usize,
        workers: usize,
    ) -> Result<(), MasterError> {
        let id = format!("{generation}.{slot}");
        let listeners = self.bound.iter().flat_map(|b| b.for_slot(slot, workers));
        let Spawned {
            mut child,
            pid,
            ready,
        } = spawn::spawn_worker(
            &self.config_path,
            listeners,
            &id,
            &self.lifeline,
            &self.collector,
        )?;
        tracing::info!(pid, worker = %id, "worker started");
        self.hand_over_to(pid);
        let worker = Worker {
            generation,
            slot,
            started: Instant::now(),
            ready: false,
            retiring: false,
        };
        self.workers.insert(pid, worker);
        let events = self.events.clone();
        tokio::task::spawn_local(async move {
            let mut pipe = ready;
            while let Some(byte) = spawn::next_report(&mut pipe).await {
                let _ = events.send(Event::Report { pid, byte });
            }
            let status = child.wait().await;
            let _ = events.send(Event::Exited { pid, status });
        });
        Ok(())
    }

    /// Hands worker `pid` (just started) the hosts a warm worker has cached: the one that has
    /// served longest among those ready (of any generation: on a reload, the one being replaced;
    /// after a crash or a retirement, a sibling or the retiring worker itself). None at the
    /// first start.
    fn hand_over_to(&self, pid: u32) {
        let donor = (self.workers.iter())
            .filter(|(&other, worker)| other != pid && worker.ready)
            .min_by_key(|(_, worker)| worker.started)
            .map(|(&donor, _)| donor);
        let Some(donor) = donor else {
            return;
        };
        let collector = self.collector.clone();
        tokio::task::spawn_local(async move {
            let hosts = collector.hand_over(donor, pid).await;
            tracing::debug!(from = donor, to = pid, hosts, "cached hosts handed over");
        });
    }

    fn handle(&mut self, event: Event) {
        match event {
            Event::Exited { pid, status } => self.on_exit(pid, status),
            Event::Report { pid, byte } => self.on_report(pid, byte),
            Event::Restart { slot, generation } => {
                let occupied = self
                    .workers
                    .values()
                    .any(|w| w.generation == generation && w.slot == slot && !w.retiring);
                if generation == self.generation && !occupied {
                    let workers = self.config.server.workers;
                    if let Err(error) = self.start_worker(generation, slot, workers) {
                        tracing::error!(error = %error, slot, "cannot restart worker");
                        self.schedule_restart(slot, Duration::from_secs(1));
                    }
                }
            }
        }
    }

    fn on_report(&mut self, pid: u32, byte: u8) {
        let current = self.generation;
        let Some(worker) = self.workers.get_mut(&pid) else {
            return;
        };
        match byte {
            supervision::READY => {
                worker.ready = true;
                tracing::debug!(pid, "worker ready");
                if !self.announced && self.generation_ready(current) {
                    self.notify_ready();
                }
            }
            supervision::RETIRING if worker.generation == current && !worker.retiring => {
                worker.retiring = true;
                let slot = worker.slot;
                tracing::info!(
                    pid,
                    "worker retiring (memory limit); starting its replacement"
                );
                let workers = self.config.server.workers;
                if let Err(error) = self.start_worker(current, slot, workers) {
                    tracing::error!(error = %error, slot, "cannot start a replacement worker");
                }
            }
            _ => {}
        }
    }

    fn on_exit(&mut self, pid: u32, status: std::io::Result<ExitStatus>) {
        let Some(worker) = self.workers.remove(&pid) else {
            return;
        };
        let lived = worker.started.elapsed();
        let code = status.as_ref().ok().and_then(|s| s.code());
        let signal = status
            .as_ref()
            .ok()
            .and_then(std::os::unix::process::ExitStatusExt::signal);
        if worker.generation != self.generation || worker.retiring {
            tracing::info!(
                pid,
                generation = worker.generation,
                ?code,
                ?signal,
                "worker exited"
            );
            return;
        }
        let restart = match code {
            Some(exit_code::RETIRED) => Restart::Retired,
            Some(exit_code::DRAINED) => Restart::Stopped,
            _ => Restart::Crash,
        };
        self.collector.restarted(restart);
        let delay = match restart {
            Restart::Retired => {
                tracing::info!(pid, "worker retired (memory limit); replacing it");
                Duration::ZERO
            }
            Restart::Stopped => {
                tracing::warn!(pid, "worker stopped unasked; replacing it");
                Duration::ZERO
            }
            Restart::Crash => {
                let delay = self
                    .backoff
                    .entry(worker.slot)
                    .or_default()
                    .after_crash(lived);
                tracing::error!(
                    pid,
                    ?code,
                    ?signal,
                    lived_ms = lived.as_millis() as u64,
                    restart_in_ms = delay.as_millis() as u64,
                    "worker died"
                );
                delay
            }
        };
        self.schedule_restart(worker.slot, delay);
    }

    fn schedule_restart(&self, slot: usize, delay: Duration) {
        let events = self.events.clone();
        let generation = self.generation;
        tokio::task::spawn_local(async move {
            tokio::time::sleep(delay).await;
            let _ = events.send(Event::Restart { slot, generation });
        });
    }

    /// A reload, framed for the service manager by `RELOADING=1` and `READY=1`.
    async fn reload(&mut self) {
        if let Some(notifier) = &self.notifier {
            notifier.send(State::Reloading);
        }
        self.reload_generation().await;
        // Whether or not the reload took, the service is ready again on what it now serves.
        self.notify_ready();
    }

    /// Loads the file again; on success starts a new generation and drains the old one once the
    /// new one is ready. Any failure keeps the running workers and configuration.
    async fn reload_generation(&mut self) {
        tracing::info!(path = %self.config_path.display(), "reloading");
        let loaded = match Config::load(&self.config_path) {
            Ok(loaded) => loaded,
            Err(error) => {
                tracing::error!(
                    error = crate::logging::chain(&error),
                    "reload failed; keeping the running configuration"
                );
                return;
            }
        };
        for warning in &loaded.warnings {
            tracing::warn!("{warning}");
        }
        if let Err(error) = crate::tls::Certificates::from_config(&loaded.config) {
            let error = crate::logging::chain(&error);
            tracing::error!(error, "reload failed; keeping the running configuration");
            return;
        }
        if let Err(error) = check_shipping(&loaded.config) {
            let error = crate::logging::chain(&error);
            tracing::error!(error, "reload failed; keeping the running configuration");
            return;
        }
        let previous = std::mem::take(&mut self.bound);
        self.bound = match bind_all(&loaded.config, &previous) {
            Ok(bound) => bound,
            Err(error) => {
                let error = crate::logging::chain(&error);
                tracing::error!(error, "reload failed; keeping the running configuration");
                self.bound = previous;
                return;
            }
        };
        let old = self.generation;
        let new = self.next_generation;
        let ready = match self.start_generation(loaded.config.server.workers) {
            Ok(generation) => {
                self.generation = generation;
                self.wait_ready(generation).await
            }
            Err(error) => {
                tracing::error!(error = %error, "cannot start new workers");
                false
            }
        };
        if !ready {
            tracing::error!("new workers not ready; keeping the running configuration");
            self.generation = old;
            self.signal_generation(new, Signal::SIGTERM);
            self.bound = previous;
            return;
        }
        self.signal_generation(old, Signal::SIGTERM);
        self.backoff.clear();
        self.config = loaded.config;
        health::follow(&mut self.health, &self.config);
        drop(previous);
        tracing::info!(generation = self.generation, "reload done");
    }

    /// Lets the workers reopen the access log by name; as root, the master creates the new file
    /// first and gives it to the workers' user, who may not create files in the log folder.
    fn reopen_logs(&self) {
        if let Some(path) = &self.config.server.access_log {
            if let Err(error) = prepare_log_file(path, &self.config.user, &self.config.group) {
                tracing::warn!(path = %path.display(), %error, "cannot prepare the new access log");
            }
        }
        for pid in self.workers.keys() {
            let _ = kill(Pid::from_raw(*pid as i32), Signal::SIGUSR1);
        }
    }

    fn signal_generation(&self, generation: u64, signal: Signal) {
        for (pid, worker) in &self.workers {
            if worker.generation == generation {
                let _ = kill(Pid::from_raw(*pid as i32), signal);
            }
        }
    }

    /// SIGTERM to every worker, then waits for them (at most `gracefulWait` and a margin) and
    /// kills whoever is left.
    async fn stop_all(&mut self) {
        tracing::info!(workers = self.workers.len(), "stopping workers");
        self.generation = 0;
        for pid in self.workers.keys() {
            let _ = kill(Pid::from_raw(*pid as i32), Signal::SIGTERM);
        }
        let deadline = tokio::time::Instant::now() + self.config.server.graceful_wait + KILL_MARGIN;
        while !self.workers.is_empty() {
            match tokio::time::timeout_at(deadline, self.inbox.recv()).await {
                Ok(Some(Event::Exited { pid, .. })) => {
                    self.workers.remove(&pid);
                }
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break,
            }
        }
        for pid in self.workers.keys() {
            tracing::warn!(pid, "worker did not drain in time; killing it");
            let _ = kill(Pid::from_raw(*pid as i32), Signal::SIGKILL);
        }
    }
}

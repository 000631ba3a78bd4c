//! Where a run is, while it runs: on a terminal a status line (the phase, its time, and
//! during cluster work the scheduler's stages and tasks of the run's jobs) with a line per
//! finished phase; in pods a progress log line at a steady interval, so that `kubectl
//! logs` on a long run's pod shows how far it is.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use procforest_cluster::{
    logging,
    progress::{JobsProgress, SchedulerProgress},
};
use procforest_pipeline::RunObserver;

/// How often the terminal's status line is drawn.
const TERMINAL_TICK: Duration = Duration::from_millis(500);

/// How progress is shown, once `auto` is decided.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Display {
    /// A status line on the terminal.
    Terminal,
    /// A log line every so often.
    Log(Duration),
}

/// What the run has told so far.
#[derive(Default)]
struct Told {
    /// Phases in the order they started.
    phases: Vec<(&'static str, Instant)>,
    /// The run's scheduler and job name.
    scheduler: Option<(SchedulerProgress, String)>,
    /// Phases whose line the terminal has printed.
    printed: usize,
}

impl Told {
    /// Prints a line for each phase that has ended since the last call (all of them when
    /// the run has `ended`), under the lock, so that the display and its end never print
    /// a phase twice.
    fn print_finished_phases(&mut self, ended: bool) {
        let now = Instant::now();
        let ends = self
            .phases
            .iter()
            .skip(1)
            .map(|(_, t)| *t)
            .chain(ended.then_some(now));
        let lines: Vec<String> = self
            .phases
            .iter()
            .zip(ends)
            .skip(self.printed)
            .map(|((phase, start), end)| {
                format!("procforest: {phase} {:.1} s", (end - *start).as_secs_f64())
            })
            .collect();
        self.printed += lines.len();
        for line in lines {
            logging::finish_status_line(&line);
        }
    }
}

/// The run's observer: records what the run tells (shared with the display).
#[derive(Clone)]
struct Observer(Arc<Mutex<Told>>);

impl Observer {
    fn told(&self) -> std::sync::MutexGuard<'_, Told> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl RunObserver for Observer {
    fn phase_started(&self, phase: &'static str) {
        self.told().phases.push((phase, Instant::now()));
    }

    fn connected(&self, scheduler_url: &str, job_name: &str) {
        self.told().scheduler = Some((SchedulerProgress::new(scheduler_url), job_name.into()));
    }
}

/// The display's task; dropping it stops the display and, on a terminal, ends the status
/// line with the last phase's time.
pub struct Progress {
    task: tokio::task::JoinHandle<()>,
    observer: Observer,
    display: Display,
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.task.abort();
        match self.display {
            Display::Terminal => self.observer.told().print_finished_phases(true),
            Display::Log(_) => logging::clear_status_line(),
        }
    }
}

/// Starts showing progress as `display` says; returns the observer to give the run.
pub fn start(display: Display) -> (Arc<dyn RunObserver>, Progress) {
    let observer = Observer(Arc::new(Mutex::new(Told::default())));
    let task = tokio::spawn({
        let observer = observer.clone();
        async move {
            match display {
                Display::Terminal => terminal(&observer).await,
                Display::Log(every) => log(&observer, every).await,
            }
        }
    });
    (
        Arc::new(observer.clone()),
        Progress {
            task,
            observer,
            display,
        },
    )
}

/// What is known now: the current phase and its time, and the run's jobs.
struct Now {
    phase: Option<(&'static str, Duration)>,
    jobs: Option<Result<JobsProgress, String>>,
}

async fn now(observer: &Observer) -> Now {
    let (phase, scheduler) = {
        let told = observer.told();
        let phase = told.phases.last().map(|(p, t)| (*p, t.elapsed()));
        (phase, told.scheduler.clone())
    };
    let jobs = match scheduler {
        Some((scheduler, job_name)) => Some(scheduler.of_jobs(&job_name).await),
        None => None,
    };
    Now { phase, jobs }
}

/// Redraws the status line; each finished phase gets a line of its own.
async fn terminal(observer: &Observer) {
    loop {
        observer.told().print_finished_phases(false);
        let line = status_line(&now(observer).await);
        {
            // Drawn under the lock: the run's end, printing the last phases, waits for it.
            let told = observer.told();
            if told.printed < told.phases.len() || told.phases.is_empty() {
                logging::set_status_line(&line);
            }
        }
        tokio::time::sleep(TERMINAL_TICK).await;
    }
}

/// Logs a progress line every `every`.
async fn log(observer: &Observer, every: Duration) {
    loop {
        tokio::time::sleep(every).await;
        let now = now(observer).await;
        let (phase, seconds) = now.phase.map_or(("starting", 0.0), |(p, t)| {
            (p, (t.as_secs_f64() * 10.0).round() / 10.0)
        });
        match now.jobs {
            Some(Ok(jobs)) => tracing::info!(
                phase,
                phase_seconds = seconds,
                jobs = jobs.jobs,
                stages_done = jobs.stages_done,
                stages = jobs.stages,
                tasks_done = jobs.tasks_done,
                tasks_started = jobs.tasks,
                "progress"
            ),
            Some(Err(problem)) => tracing::info!(
                phase,
                phase_seconds = seconds,
                scheduler = problem.as_str(),
                "progress (the scheduler did not say)"
            ),
            None => tracing::info!(phase, phase_seconds = seconds, "progress"),
        }
    }
}

/// `procforest: summaries 3.2 s · 2 jobs: stages 1/4, tasks 12/16 done`.
fn status_line(now: &Now) -> String {
    let mut line = match now.phase {
        Some((phase, t)) => format!("procforest: {phase} {:.1} s", t.as_secs_f64()),
        None => "procforest: starting".to_string(),
    };
    match &now.jobs {
        Some(Ok(jobs)) if jobs.jobs > 0 && jobs.stages == 0 => {
            line.push_str(" · planning");
        }
        Some(Ok(jobs)) if jobs.jobs > 0 => {
            let noun = if jobs.jobs == 1 { "job" } else { "jobs" };
            line.push_str(&format!(
                " · {} {noun}: stages {}/{}, tasks {}/{} done",
                jobs.jobs, jobs.stages_done, jobs.stages, jobs.tasks_done, jobs.tasks
            ));
        }
        Some(Err(_)) => line.push_str(" · the scheduler does not answer"),
        _ => {}
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_line_shows_the_phase_and_the_jobs() {
        let jobs = JobsProgress {
            jobs: 2,
            stages_done: 1,
            stages: 4,
            tasks_done: 12,
            tasks: 16,
        };
        let now = Now {
            phase: Some(("summaries", Duration::from_millis(3_240))),
            jobs: Some(Ok(jobs)),
        };
        assert_eq!(
            status_line(&now),
            "procforest: summaries 3.2 s · 2 jobs: stages 1/4, tasks 12/16 done"
        );
        let idle = Now {
            phase: Some(("fit", Duration::from_millis(400))),
            jobs: Some(Ok(JobsProgress::default())),
        };
        assert_eq!(status_line(&idle), "procforest: fit 0.4 s");
    }
}

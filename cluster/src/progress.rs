//! Where a run's jobs are, as the scheduler reports them: Ballista serves a REST API on
//! its gRPC port (procforest's scheduler and standalone alike), with each job's stages and
//! the tasks each stage has started. procforest names every job of a run after the run, so
//! the jobs of other drivers sharing the cluster are left out.

use std::time::Duration;

use serde::Deserialize;

/// The run's running jobs, summed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JobsProgress {
    /// Jobs of the run queued or running.
    pub jobs: usize,
    /// Their stages done.
    pub stages_done: usize,
    /// Their stages planned so far (adaptive planning adds stages as it goes).
    pub stages: usize,
    /// Tasks finished.
    pub tasks_done: usize,
    /// Tasks handed to executors so far (a stage not yet started counts none: Ballista
    /// reports a stage's tasks as they start).
    pub tasks: usize,
}

/// A client of one scheduler's REST API.
#[derive(Debug, Clone)]
pub struct SchedulerProgress {
    client: reqwest::Client,
    base: String,
}

#[derive(Deserialize)]
struct Job {
    job_id: String,
    job_name: String,
    status: String,
    num_stages: usize,
    completed_stages: usize,
}

#[derive(Deserialize)]
struct Stages {
    stages: Vec<Stage>,
}

#[derive(Deserialize)]
struct Stage {
    tasks: Vec<Option<Task>>,
}

#[derive(Deserialize)]
struct Task {
    status: serde_json::Value,
}

impl SchedulerProgress {
    /// For the scheduler at `scheduler_url` (`df://HOST:PORT`).
    pub fn new(scheduler_url: &str) -> Self {
        let address = scheduler_url.strip_prefix("df://").unwrap_or(scheduler_url);
        Self {
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .unwrap_or_default(),
            base: format!("http://{address}/api"),
        }
    }

    /// The progress of the queued and running jobs named `job_name`; an error says why
    /// the scheduler did not answer.
    pub async fn of_jobs(&self, job_name: &str) -> Result<JobsProgress, String> {
        let jobs: Vec<Job> = self.get(&format!("{}/jobs", self.base)).await?;
        let mut progress = JobsProgress::default();
        for job in jobs
            .iter()
            .filter(|j| j.job_name == job_name && matches!(j.status.as_str(), "Queued" | "Running"))
        {
            progress.jobs += 1;
            progress.stages += job.num_stages;
            progress.stages_done += job.completed_stages;
            let url = format!("{}/job/{}/stages", self.base, job.job_id);
            // A job can finish between the two requests: its stages are then gone.
            let Ok(stages) = self.get::<Stages>(&url).await else {
                continue;
            };
            for task in stages.stages.iter().flat_map(|s| s.tasks.iter().flatten()) {
                progress.tasks += 1;
                if task.status == "Successful" {
                    progress.tasks_done += 1;
                }
            }
        }
        Ok(progress)
    }

    async fn get<T: serde::de::DeserializeOwned>(&self, url: &str) -> Result<T, String> {
        let response = self
            .client
            .get(url)
            .send()
            .await
            .map_err(|e| format!("{url}: {e}"))?;
        if !response.status().is_success() {
            return Err(format!("{url}: HTTP {}", response.status()));
        }
        response.json().await.map_err(|e| format!("{url}: {e}"))
    }
}

//! A durable queue of work the broker owes someone else: a downstream user to disable, a
//! client to tell of a logout. Jobs live in the store (so a restart or another instance picks
//! them up), are claimed with a lease by compare-and-set (one instance runs a job at a time; a
//! crashed one's lease runs out), retried with exponential backoff, and after
//! [`MAX_ATTEMPTS`] kept as `failed` for an operator to retry from the admin API: never dropped.
//! Every job must be idempotent: a lease that ran out while a job was still running means it
//! may run twice.

use std::future::Future;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::store::{keys, AnyStore, Store, StoreError};

/// Attempts before a job is `failed` (then only an operator's retry runs it again): with the
/// backoff below, about six hours of trying.
pub const MAX_ATTEMPTS: u32 = 12;
/// The first retry waits this long, each next one twice as long, at most [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(2);
const MAX_BACKOFF: Duration = Duration::from_secs(3600);
/// How long a claimed job is left to its instance before another may take it.
const LEASE: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Waiting for its turn (`next_at_ms`), or running under a lease.
    Pending,
    /// Out of attempts: listed for an operator, run again only on their retry.
    Failed,
}

/// One unit of owed work.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    pub id: String,
    /// What to do, e.g. `deprovision`, `backchannel_logout`.
    pub kind: String,
    /// The kind's own description of the work.
    pub task: Value,
    pub state: JobState,
    pub attempts: u32,
    pub created_at_ms: u64,
    /// Not run before this.
    pub next_at_ms: u64,
    /// Claimed by an instance until this.
    #[serde(default)]
    pub lease_until_ms: u64,
    /// Why the last attempt failed (never a secret: the runner's own words).
    #[serde(default)]
    pub last_error: Option<String>,
}

/// How an attempt ended, when it did not succeed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JobError {
    /// Worth trying again later (the downstream was unreachable, rate limited, …).
    #[error("{0}")]
    Retry(String),
    /// Trying again cannot help (the job names a client that no longer exists, …): failed at once.
    #[error("{0}")]
    Permanent(String),
}

/// Runs jobs of the kinds it knows.
pub trait Runner: Send + Sync {
    fn run(&self, job: &Job) -> impl Future<Output = Result<(), JobError>> + Send;
}

/// The queue over the store.
#[derive(Clone)]
pub struct JobQueue {
    store: AnyStore,
    wake: std::sync::Arc<tokio::sync::Notify>,
}

impl JobQueue {
    pub fn new(store: AnyStore) -> JobQueue {
        JobQueue { store, wake: Default::default() }
    }

    /// Adds a job due now and wakes this instance's worker.
    pub async fn enqueue(&self, kind: &str, task: Value) -> Result<Job, StoreError> {
        let now = now_ms();
        let job = Job {
            id: uuid::Uuid::new_v4().simple().to_string(),
            kind: kind.to_owned(),
            task,
            state: JobState::Pending,
            attempts: 0,
            created_at_ms: now,
            next_at_ms: now,
            lease_until_ms: 0,
            last_error: None,
        };
        self.store.set(&key(&job.id), &encode(&job)?).await?;
        self.wake.notify_one();
        Ok(job)
    }

    /// Every job, oldest first.
    pub async fn list(&self) -> Result<Vec<Job>, StoreError> {
        let mut jobs: Vec<Job> = self
            .store
            .scan_prefix(keys::JOBS)
            .await?
            .into_iter()
            .filter_map(|(_, bytes)| serde_json::from_slice(&bytes).ok())
            .collect();
        jobs.sort_by(|a, b| (a.created_at_ms, &a.id).cmp(&(b.created_at_ms, &b.id)));
        Ok(jobs)
    }

    pub async fn get(&self, id: &str) -> Result<Option<Job>, StoreError> {
        Ok(self.store.get(&key(id)).await?.and_then(|bytes| serde_json::from_slice(&bytes).ok()))
    }

    /// Puts a job back to pending, due now, with its attempts counted afresh. Says whether
    /// there was one.
    pub async fn retry(&self, id: &str) -> Result<bool, StoreError> {
        let Some(bytes) = self.store.get(&key(id)).await? else { return Ok(false) };
        let Ok(mut job) = serde_json::from_slice::<Job>(&bytes) else { return Ok(false) };
        job.state = JobState::Pending;
        job.attempts = 0;
        job.next_at_ms = now_ms();
        job.lease_until_ms = 0;
        let replaced = self.store.replace(&key(id), Some(&bytes), &encode(&job)?).await?;
        self.wake.notify_one();
        Ok(replaced)
    }

    pub async fn delete(&self, id: &str) -> Result<(), StoreError> {
        self.store.delete(&key(id)).await
    }

    /// Runs every due job once (those another instance holds are left to it). Returns how many
    /// ran.
    pub async fn run_due<R: Runner>(&self, runner: &R) -> Result<usize, StoreError> {
        let now = now_ms();
        let mut ran = 0;
        for (stored_key, bytes) in self.store.scan_prefix(keys::JOBS).await? {
            let Ok(job) = serde_json::from_slice::<Job>(&bytes) else { continue };
            if job.state != JobState::Pending || job.next_at_ms > now || job.lease_until_ms > now {
                continue;
            }
            let mut claimed = job.clone();
            claimed.lease_until_ms = now + millis(LEASE);
            let claimed_bytes = encode(&claimed)?;
            if !self.store.replace(&stored_key, Some(&bytes), &claimed_bytes).await? {
                continue; // another instance took it
            }
            ran += 1;
            let outcome = runner.run(&claimed).await;
            self.settle(&stored_key, claimed, &claimed_bytes, outcome).await?;
        }
        Ok(ran)
    }

    async fn settle(
        &self,
        stored_key: &str,
        mut job: Job,
        claimed: &[u8],
        outcome: Result<(), JobError>,
    ) -> Result<(), StoreError> {
        let error = match outcome {
            Ok(()) => {
                crate::telemetry::count(
                    "ssobridge_jobs_total",
                    &[("kind", kind_label(&job.kind)), ("outcome", "done")],
                );
                return self.store.delete(stored_key).await;
            }
            Err(error) => error,
        };
        job.attempts += 1;
        job.lease_until_ms = 0;
        let permanent = matches!(error, JobError::Permanent(_));
        job.last_error = Some(error.to_string());
        if permanent || job.attempts >= MAX_ATTEMPTS {
            job.state = JobState::Failed;
            tracing::error!(job = %job.id, kind = %job.kind, attempts = job.attempts, error = %error, "job failed; an operator can retry it (POST /admin/jobs/{{id}}/retry)");
        } else {
            job.next_at_ms = now_ms() + millis(backoff(job.attempts));
            tracing::warn!(job = %job.id, kind = %job.kind, attempts = job.attempts, error = %error, "job will be retried");
        }
        let outcome = if job.state == JobState::Failed { "failed" } else { "retry" };
        crate::telemetry::count("ssobridge_jobs_total", &[("kind", kind_label(&job.kind)), ("outcome", outcome)]);
        // Compare-and-set against the claim: an operator's delete meanwhile stays a delete.
        self.store.replace(stored_key, Some(claimed), &encode(&job)?).await.map(|_| ())
    }

    /// Waits until this instance enqueues or retries a job, or `at_most`.
    pub async fn wait(&self, at_most: Duration) {
        let _ = tokio::time::timeout(at_most, self.wake.notified()).await;
    }
}

/// The wait before attempt `attempts + 1`.
pub fn backoff(attempts: u32) -> Duration {
    let factor = 2u32.saturating_pow(attempts.saturating_sub(1));
    FIRST_BACKOFF.saturating_mul(factor).min(MAX_BACKOFF)
}

/// The kinds this broker has, as metric labels (anything else is `other`).
fn kind_label(kind: &str) -> &'static str {
    match kind {
        "deprovision" => "deprovision",
        "reactivate" => "reactivate",
        "roles" => "roles",
        "backchannel_logout" => "backchannel_logout",
        _ => "other",
    }
}

fn key(id: &str) -> String {
    format!("{}{id}", keys::JOBS)
}

fn encode(job: &Job) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(job).map_err(|e| StoreError::Corrupt { key: key(&job.id), detail: e.to_string() })
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

fn now_ms() -> u64 {
    crate::events::now_ms()
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use serde_json::json;

    use super::*;
    use crate::store::MemoryStore;

    /// Fails `failures` times, then succeeds; counts its runs.
    struct Flaky {
        failures: usize,
        runs: Arc<AtomicUsize>,
        permanent: bool,
    }

    impl Runner for Flaky {
        async fn run(&self, _job: &Job) -> Result<(), JobError> {
            let run = self.runs.fetch_add(1, Ordering::SeqCst);
            match (run < self.failures, self.permanent) {
                (false, _) => Ok(()),
                (true, false) => Err(JobError::Retry("downstream unavailable".into())),
                (true, true) => Err(JobError::Permanent("no such client".into())),
            }
        }
    }

    fn queue() -> JobQueue {
        JobQueue::new(AnyStore::Memory(MemoryStore::new()))
    }

    /// Makes every pending job due now (instead of waiting out its backoff).
    async fn make_due(queue: &JobQueue) {
        for mut job in queue.list().await.expect("list") {
            let bytes = encode(&job).expect("encode");
            job.next_at_ms = 0;
            queue.store.replace(&key(&job.id), Some(&bytes), &encode(&job).expect("encode")).await.expect("replace");
        }
    }

    #[tokio::test]
    async fn a_job_that_succeeds_is_gone() {
        let queue = queue();
        let runs = Arc::new(AtomicUsize::new(0));
        queue.enqueue("deprovision", json!({"email": "a@b.example"})).await.expect("enqueue");
        let runner = Flaky { failures: 0, runs: runs.clone(), permanent: false };
        assert_eq!(queue.run_due(&runner).await.expect("run"), 1);
        assert!(queue.list().await.expect("list").is_empty());
        assert_eq!(queue.run_due(&runner).await.expect("run"), 0, "nothing runs twice");
    }

    #[tokio::test]
    async fn an_outage_is_retried_with_backoff_until_it_succeeds() {
        let queue = queue();
        let runs = Arc::new(AtomicUsize::new(0));
        let runner = Flaky { failures: 3, runs: runs.clone(), permanent: false };
        queue.enqueue("deprovision", json!({})).await.expect("enqueue");
        assert_eq!(queue.run_due(&runner).await.expect("run"), 1);
        let waiting = &queue.list().await.expect("list")[0];
        assert_eq!((waiting.attempts, waiting.state), (1, JobState::Pending));
        assert!(waiting.next_at_ms > now_ms(), "not due again at once");
        assert_eq!(waiting.last_error.as_deref(), Some("downstream unavailable"));
        assert_eq!(queue.run_due(&runner).await.expect("run"), 0, "the backoff is respected");
        for _ in 0..3 {
            make_due(&queue).await;
            queue.run_due(&runner).await.expect("run");
        }
        assert!(queue.list().await.expect("list").is_empty(), "done on the fourth attempt");
        assert_eq!(runs.load(Ordering::SeqCst), 4);
    }

    #[tokio::test]
    async fn a_job_out_of_attempts_is_kept_failed_until_an_operator_retries_it() {
        let queue = queue();
        let runs = Arc::new(AtomicUsize::new(0));
        let runner = Flaky { failures: usize::MAX, runs: runs.clone(), permanent: false };
        let job = queue.enqueue("deprovision", json!({})).await.expect("enqueue");
        for _ in 0..MAX_ATTEMPTS {
            make_due(&queue).await;
            queue.run_due(&runner).await.expect("run");
        }
        let failed = queue.get(&job.id).await.expect("get").expect("kept, never dropped");
        assert_eq!((failed.state, failed.attempts), (JobState::Failed, MAX_ATTEMPTS));
        make_due(&queue).await;
        assert_eq!(queue.run_due(&runner).await.expect("run"), 0, "a failed job waits for an operator");
        assert!(queue.retry(&job.id).await.expect("retry"));
        let healed = Flaky { failures: 0, runs, permanent: false };
        assert_eq!(queue.run_due(&healed).await.expect("run"), 1);
        assert!(queue.get(&job.id).await.expect("get").is_none());
    }

    #[tokio::test]
    async fn a_permanent_error_fails_at_once() {
        let queue = queue();
        let runner = Flaky { failures: 1, runs: Arc::default(), permanent: true };
        let job = queue.enqueue("deprovision", json!({})).await.expect("enqueue");
        queue.run_due(&runner).await.expect("run");
        let failed = queue.get(&job.id).await.expect("get").expect("kept");
        assert_eq!((failed.state, failed.attempts), (JobState::Failed, 1));
    }

    #[tokio::test]
    async fn a_claimed_job_is_not_run_by_another_instance_until_its_lease_runs_out() {
        let queue = queue();
        let job = queue.enqueue("deprovision", json!({})).await.expect("enqueue");
        let bytes = queue.store.get(&key(&job.id)).await.expect("get").expect("stored");
        let mut held = job.clone();
        held.lease_until_ms = now_ms() + 60_000;
        queue.store.replace(&key(&job.id), Some(&bytes), &encode(&held).expect("encode")).await.expect("claim");
        let runner = Flaky { failures: 0, runs: Arc::default(), permanent: false };
        assert_eq!(queue.run_due(&runner).await.expect("run"), 0, "held by another instance");
    }

    #[test]
    fn backoff_doubles_up_to_an_hour() {
        assert_eq!(backoff(1), Duration::from_secs(2));
        assert_eq!(backoff(2), Duration::from_secs(4));
        assert_eq!(backoff(5), Duration::from_secs(32));
        assert_eq!(backoff(30), Duration::from_secs(3600));
    }
}

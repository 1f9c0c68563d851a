//! The user's life after sign-in: what the broker owes downstreams and clients when a user
//! leaves their directory, signs out or changes groups. The work is queued durably
//! ([`crate::jobs`]) and run here, one job at a time per instance, each kind by its own module.

pub mod backchannel;
pub mod directory;

use std::sync::{Arc, Weak};
use std::time::Duration;

use crate::jobs::{Job, JobError, Runner};
use crate::state::AppState;

/// How often an instance looks for jobs it did not enqueue itself (another instance's, or
/// retries that came due).
const POLL: Duration = Duration::from_secs(2);

/// Runs each job by its kind.
struct Work<'a> {
    app: &'a AppState,
}

impl Runner for Work<'_> {
    async fn run(&self, job: &Job) -> Result<(), JobError> {
        match job.kind.as_str() {
            "deprovision" | "reactivate" | "roles" => directory::reconcile(self.app, &job.task).await,
            crate::login::logout::BACKCHANNEL_LOGOUT => backchannel::deliver(self.app, &job.task).await,
            _ => Err(JobError::Permanent(format!("ssobridge has no job of kind {:?}", job.kind))),
        }
    }
}

/// Starts this instance's job worker; it ends with the state.
pub fn spawn_worker(app: &Arc<AppState>) {
    let app: Weak<AppState> = Arc::downgrade(app);
    tokio::spawn(async move {
        loop {
            let Some(state) = app.upgrade() else { return };
            let queue = state.jobs.clone();
            if let Err(error) = queue.run_due(&Work { app: &state }).await {
                tracing::warn!(error = %error, "job queue unavailable; trying again");
            }
            drop(state);
            queue.wait(POLL).await;
        }
    });
}

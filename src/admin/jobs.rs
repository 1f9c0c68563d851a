//! `/admin/jobs`: the work the broker owes downstreams and clients (a user to disable, roles
//! to write, a client to tell of a logout). What keeps failing stays here, with its last
//! error, until an operator retries or deletes it.

use std::sync::Arc;

use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Enum, Object, OpenApi};

use super::{audit, problem, unavailable, AdminToken, Problem, Role, Tag};
use crate::jobs::{Job as StoredJob, JobState};
use crate::state::AppState;

pub struct JobsApi {
    pub state: Arc<AppState>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub enum JobStatus {
    /// Waiting for its next attempt, or running.
    Pending,
    /// Out of attempts: runs again only when retried here.
    Failed,
}

/// One job.
#[derive(Debug, Clone, Object)]
pub struct Job {
    pub id: String,
    /// `deprovision`, `reactivate`, `roles` or `backchannel_logout`.
    pub kind: String,
    pub state: JobStatus,
    /// Attempts made since it was queued or last retried.
    pub attempts: u32,
    /// RFC 3339.
    pub created_at: String,
    /// When the next attempt is due (RFC 3339).
    pub next_at: String,
    /// Why the last attempt failed.
    #[oai(skip_serializing_if_is_none)]
    pub last_error: Option<String>,
}

impl From<StoredJob> for Job {
    fn from(job: StoredJob) -> Job {
        Job {
            id: job.id,
            kind: job.kind,
            state: match job.state {
                JobState::Pending => JobStatus::Pending,
                JobState::Failed => JobStatus::Failed,
            },
            attempts: job.attempts,
            created_at: crate::events::rfc3339_millis(job.created_at_ms),
            next_at: crate::events::rfc3339_millis(job.next_at_ms),
            last_error: job.last_error,
        }
    }
}

#[derive(Debug, Clone, Object)]
pub struct JobList {
    /// Oldest first.
    pub items: Vec<Job>,
}

#[derive(ApiResponse)]
pub enum ListResponse {
    #[oai(status = 200)]
    Ok(Json<JobList>),
    #[oai(status = 401, content_type = "application/problem+json")]
    Unauthorized(Json<Problem>),
    #[oai(status = 503, content_type = "application/problem+json")]
    Unavailable(Json<Problem>),
}

#[derive(ApiResponse)]
pub enum GetResponse {
    #[oai(status = 200)]
    Ok(Json<Job>),
    #[oai(status = 401, content_type = "application/problem+json")]
    Unauthorized(Json<Problem>),
    /// No such job: done, deleted, or never queued.
    #[oai(status = 404, content_type = "application/problem+json")]
    NotFound(Json<Problem>),
    #[oai(status = 503, content_type = "application/problem+json")]
    Unavailable(Json<Problem>),
}

#[derive(ApiResponse)]
pub enum ChangeResponse {
    /// Retried: pending, due now, its attempts counted afresh.
    #[oai(status = 200)]
    Ok(Json<Job>),
    /// Deleted.
    #[oai(status = 204)]
    Deleted,
    #[oai(status = 401, content_type = "application/problem+json")]
    Unauthorized(Json<Problem>),
    /// A read-only token.
    #[oai(status = 403, content_type = "application/problem+json")]
    Forbidden(Json<Problem>),
    #[oai(status = 404, content_type = "application/problem+json")]
    NotFound(Json<Problem>),
    #[oai(status = 503, content_type = "application/problem+json")]
    Unavailable(Json<Problem>),
}

#[OpenApi(tag = "Tag::Jobs")]
impl JobsApi {
    /// List jobs
    ///
    /// Every job not yet done, oldest first: pending ones (with their next attempt) and
    /// failed ones (with their last error).
    #[oai(path = "/jobs", method = "get")]
    async fn list(&self, _auth: AdminToken) -> ListResponse {
        match self.state.jobs.list().await {
            Ok(jobs) => ListResponse::Ok(Json(JobList { items: jobs.into_iter().map(Job::from).collect() })),
            Err(error) => ListResponse::Unavailable(unavailable(error)),
        }
    }

    /// Get a job
    #[oai(path = "/jobs/:id", method = "get")]
    async fn get(&self, _auth: AdminToken, id: Path<String>) -> GetResponse {
        match self.state.jobs.get(&id.0).await {
            Ok(Some(job)) => GetResponse::Ok(Json(job.into())),
            Ok(None) => GetResponse::NotFound(problem(404, format!("no job {}", id.0))),
            Err(error) => GetResponse::Unavailable(unavailable(error)),
        }
    }

    /// Retry a job
    ///
    /// Runs it again now, with its attempts counted afresh (a failed job too).
    #[oai(path = "/jobs/:id/retry", method = "post")]
    async fn retry(&self, auth: AdminToken, id: Path<String>) -> ChangeResponse {
        if auth.0.role != Role::Write {
            return ChangeResponse::Forbidden(problem(403, "this token is read-only"));
        }
        match self.state.jobs.retry(&id.0).await {
            Ok(true) => {
                audit(&auth.0, "job.retry", &id.0, None, None);
                match self.state.jobs.get(&id.0).await {
                    Ok(Some(job)) => ChangeResponse::Ok(Json(job.into())),
                    // It ran and finished in between.
                    Ok(None) => ChangeResponse::Deleted,
                    Err(error) => ChangeResponse::Unavailable(unavailable(error)),
                }
            }
            Ok(false) => ChangeResponse::NotFound(problem(404, format!("no job {}", id.0))),
            Err(error) => ChangeResponse::Unavailable(unavailable(error)),
        }
    }

    /// Delete a job
    ///
    /// Gives up on the work it stood for: nothing will do it.
    #[oai(path = "/jobs/:id", method = "delete")]
    async fn delete(&self, auth: AdminToken, id: Path<String>) -> ChangeResponse {
        if auth.0.role != Role::Write {
            return ChangeResponse::Forbidden(problem(403, "this token is read-only"));
        }
        match self.state.jobs.get(&id.0).await {
            Ok(Some(job)) => {
                if let Err(error) = self.state.jobs.delete(&id.0).await {
                    return ChangeResponse::Unavailable(unavailable(error));
                }
                audit(&auth.0, "job.delete", &id.0, Some(&serde_json::json!({"kind": job.kind})), None);
                ChangeResponse::Deleted
            }
            Ok(None) => ChangeResponse::NotFound(problem(404, format!("no job {}", id.0))),
            Err(error) => ChangeResponse::Unavailable(unavailable(error)),
        }
    }
}

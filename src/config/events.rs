//! `[events]`: the login event log.

use serde::{Deserialize, Serialize};

use super::Problem;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EventsConfig {
    /// Keep users' email addresses in events; off: a keyed hash of each instead.
    #[serde(default)]
    pub include_email: bool,
    /// The log keeps about this many of the newest events (each a few hundred bytes, in the
    /// store: with the memory store, in the process).
    #[serde(default = "default_max_events")]
    pub max_events: u64,
    /// ... and none older than this.
    #[serde(default = "default_max_age_hours")]
    pub max_age_hours: u64,
}

impl Default for EventsConfig {
    fn default() -> Self {
        EventsConfig { include_email: false, max_events: default_max_events(), max_age_hours: default_max_age_hours() }
    }
}

fn default_max_events() -> u64 {
    10_000
}
fn default_max_age_hours() -> u64 {
    7 * 24
}

impl EventsConfig {
    pub(super) fn problems(&self) -> Vec<Problem> {
        let mut problems = Vec::new();
        if !(1..=10_000_000).contains(&self.max_events) {
            problems.push(Problem::new("events.max_events", "must be between 1 and 10000000"));
        }
        if !(1..=24 * 366).contains(&self.max_age_hours) {
            problems.push(Problem::new("events.max_age_hours", "must be between 1 and 8784 (a year)"));
        }
        problems
    }
}

//! The broker's one clock: whole seconds since the Unix epoch, the unit of every protocol
//! timestamp (`iat`, `exp`, `auth_time`), of the limiter's windows and of the records' stamps.

use std::time::{SystemTime, UNIX_EPOCH};

/// Now, in seconds since the Unix epoch (0 for a system clock set before it).
pub fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

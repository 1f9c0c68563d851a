//! One way every adapter retries a downstream call: a bounded number of attempts, the wait the
//! server asked for (`Retry-After`) or else an exponential backoff with jitter, and never past
//! the login's deadline: a wait that would end after it is not started, the last error is
//! reported at once (with the server's wait, so that the user can be told when to retry).
//!
//! No runtime is assumed: the caller passes its `sleep` (`tokio::time::sleep`).

use std::future::Future;
use std::hash::BuildHasher;
use std::time::{Duration, Instant, SystemTime};

/// How a call is retried.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// The wait before the second attempt when the server asks for none; doubled for each
    /// further one (to 64 times at most), half of it fixed and half random.
    pub first_backoff: Duration,
    /// A longer wait, even one the server asks for, is not waited out inside a sign-in.
    pub max_wait: Duration,
}

/// What one attempt of a call came to when it did not succeed.
#[derive(Debug)]
pub struct Failed<E> {
    pub error: E,
    /// Worth another attempt (a network error, 408, 429, 5xx), as opposed to a final answer.
    pub retryable: bool,
    /// The wait the server asked for, if any.
    pub asked: Option<Duration>,
}

impl<E> Failed<E> {
    /// A final answer: no retry.
    pub fn fatal(error: E) -> Self {
        Failed { error, retryable: false, asked: None }
    }

    /// Worth another attempt, after `asked` if the server said so.
    pub fn retry(error: E, asked: Option<Duration>) -> Self {
        Failed { error, retryable: true, asked }
    }
}

/// Runs `attempt` (given its number, from 1) until it succeeds, fails for good, runs out of
/// attempts, or the next wait would end after `deadline`. `on_retry` hears of each wait.
pub async fn run<T, E, Attempt, Sleep>(
    policy: Policy,
    deadline: Instant,
    mut attempt: impl FnMut(u32) -> Attempt,
    sleep: impl Fn(Duration) -> Sleep,
    mut on_retry: impl FnMut(u32, Duration, &E),
) -> Result<T, E>
where
    Attempt: Future<Output = Result<T, Failed<E>>>,
    Sleep: Future<Output = ()>,
{
    let mut number = 1;
    loop {
        let failed = match attempt(number).await {
            Ok(value) => return Ok(value),
            Err(failed) => failed,
        };
        let wait = failed.asked.unwrap_or_else(|| backoff(policy.first_backoff, number));
        let out_of_time = Instant::now() + wait >= deadline;
        if !failed.retryable || number >= policy.max_attempts || wait > policy.max_wait || out_of_time {
            return Err(failed.error);
        }
        on_retry(number, wait, &failed.error);
        sleep(wait).await;
        number += 1;
    }
}

/// "Equal jitter" exponential backoff: half of `first * 2^(attempt-1)` fixed, half random, so
/// that the retries of racing sign-ins spread out.
pub fn backoff(first: Duration, attempt: u32) -> Duration {
    let base = first.saturating_mul(1 << attempt.saturating_sub(1).min(6));
    let half = base / 2;
    let spread = u64::try_from(half.as_millis()).unwrap_or(u64::MAX).saturating_add(1);
    // A fresh RandomState is randomly keyed: jitter without a random-number crate.
    let random = std::collections::hash_map::RandomState::new().hash_one(attempt) % spread;
    half + Duration::from_millis(random)
}

/// A `Retry-After` value (RFC 9110 §10.2.3): delay-seconds, or an HTTP-date (a date already
/// past means now). Anything else, or more than an hour, is no answer.
pub fn retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    let wait = match value.parse::<u64>() {
        Ok(seconds) => Duration::from_secs(seconds),
        Err(_) => {
            let at = httpdate::parse_http_date(value).ok()?;
            at.duration_since(SystemTime::now()).unwrap_or(Duration::ZERO)
        }
    };
    (wait <= Duration::from_secs(3600)).then_some(wait)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use std::cell::Cell;

    use super::*;

    const POLICY: Policy =
        Policy { max_attempts: 3, first_backoff: Duration::from_millis(10), max_wait: Duration::from_secs(5) };

    /// Runs `run` with a sleep that only records, so the test takes no time.
    fn drive<T>(
        deadline: Duration,
        answers: Vec<Result<T, Failed<&'static str>>>,
    ) -> (Result<T, &'static str>, Vec<Duration>) {
        let answers = std::cell::RefCell::new(answers.into_iter());
        let slept = std::cell::RefCell::new(Vec::new());
        let result = block_on(run(
            POLICY,
            Instant::now() + deadline,
            |_| {
                let next = answers.borrow_mut().next().unwrap();
                async move { next }
            },
            |wait| {
                slept.borrow_mut().push(wait);
                async {}
            },
            |_, _, _| {},
        ));
        (result, slept.into_inner())
    }

    /// The futures here never wait on anything: one poll finishes them.
    fn block_on<F: Future>(future: F) -> F::Output {
        let waker = std::task::Waker::noop();
        let mut context = std::task::Context::from_waker(waker);
        let mut future = std::pin::pin!(future);
        match future.as_mut().poll(&mut context) {
            std::task::Poll::Ready(output) => output,
            std::task::Poll::Pending => panic!("nothing here waits"),
        }
    }

    #[test]
    fn a_transient_failure_is_retried_with_the_asked_wait() {
        let (result, slept) =
            drive(Duration::from_secs(10), vec![Err(Failed::retry("429", Some(Duration::from_millis(7)))), Ok(1)]);
        assert_eq!(result, Ok(1));
        assert_eq!(slept, [Duration::from_millis(7)]);
    }

    #[test]
    fn a_final_answer_is_not_retried() {
        let (result, slept) = drive::<u8>(Duration::from_secs(10), vec![Err(Failed::fatal("400"))]);
        assert_eq!((result, slept.len()), (Err("400"), 0));
    }

    #[test]
    fn attempts_are_bounded() {
        let calls = Cell::new(0);
        let answers = (0..5).map(|_| Err(Failed::retry("503", None))).collect::<Vec<Result<u8, _>>>();
        let (result, slept) = drive(Duration::from_secs(10), answers);
        calls.set(slept.len() + 1);
        assert_eq!((result, calls.get()), (Err("503"), 3));
    }

    #[test]
    fn a_wait_past_the_deadline_or_too_long_is_not_started() {
        let past = vec![Err(Failed::retry("429", Some(Duration::from_secs(2)))), Ok(1)];
        assert_eq!(drive(Duration::from_secs(1), past), (Err("429"), vec![]));
        let long = vec![Err(Failed::retry("429", Some(Duration::from_secs(60)))), Ok(1)];
        assert_eq!(drive(Duration::from_secs(600), long), (Err("429"), vec![]));
    }

    #[test]
    fn backoff_grows_and_stays_bounded() {
        let first = Duration::from_millis(100);
        for attempt in 1..10 {
            let wait = backoff(first, attempt);
            let base = first * (1 << (attempt - 1).min(6));
            assert!(wait >= base / 2 && wait <= base, "{attempt}: {wait:?}");
        }
        assert!(backoff(first, u32::MAX) <= first * 64);
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        assert_eq!(retry_after("7"), Some(Duration::from_secs(7)));
        assert_eq!(retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), Some(Duration::ZERO), "past means now");
        let later = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(120));
        let wait = retry_after(&later).unwrap();
        assert!(wait > Duration::from_secs(110) && wait <= Duration::from_secs(120), "{wait:?}");
        assert_eq!(retry_after("soon"), None);
        assert_eq!(retry_after("86400"), None, "a day is no answer inside a sign-in");
    }
}

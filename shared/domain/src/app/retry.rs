//! Optimistic concurrency, written once: read, decide with a pure rule, write on condition that
//! nothing changed since the read — and when another writer got there first, read again.
//!
//! Each attempt answers [`Attempt::Done`] with its result or [`Attempt::LostRace`] when its
//! conditional write found the item changed. A change that keeps losing is answered as
//! contended (a retryable error: 503 at the HTTP edge, a redelivery from a queue) rather than
//! retried forever. Throttling and transaction conflicts are the adapter's to retry; this is only
//! for lost races.

use std::future::Future;

use crate::ports::StoreError;

/// How many times an operation reads and decides again after losing a race. An order rarely
/// has two writers at once; a hot SKU's counters change with every reservation, so a count or a
/// receipt may lose a few races in a row.
pub const ATTEMPTS: usize = 5;

/// What one read-decide-write attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt<T> {
    Done(T),
    /// The conditional write found the item changed since it was read: read again.
    LostRace,
}

impl<T> Attempt<T> {
    /// The attempt of a conditional write: done with `value` once written, lost on
    /// [`StoreError::ConditionFailed`], any other store error an error.
    pub fn of_write<E: From<StoreError>>(
        written: Result<(), StoreError>,
        value: T,
    ) -> Result<Self, E> {
        match written {
            Ok(()) => Ok(Attempt::Done(value)),
            Err(StoreError::ConditionFailed) => Ok(Attempt::LostRace),
            Err(e) => Err(e.into()),
        }
    }
}

/// An error that can say "the item kept changing; try again".
pub trait Contended {
    fn contended() -> Self;
}

/// Runs `attempt` until it is done, up to [`ATTEMPTS`] times.
pub async fn until_written<T, E, Fut>(mut attempt: impl FnMut() -> Fut) -> Result<T, E>
where
    E: Contended,
    Fut: Future<Output = Result<Attempt<T>, E>>,
{
    for _ in 0..ATTEMPTS {
        if let Attempt::Done(value) = attempt().await? {
            return Ok(value);
        }
    }
    Err(E::contended())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    #[derive(Debug, PartialEq)]
    enum TestError {
        Contended,
        Store(StoreError),
    }

    impl Contended for TestError {
        fn contended() -> Self {
            Self::Contended
        }
    }

    impl From<StoreError> for TestError {
        fn from(e: StoreError) -> Self {
            Self::Store(e)
        }
    }

    #[tokio::test]
    async fn a_lost_race_is_read_again_and_one_that_keeps_losing_is_contended() {
        let tries = Cell::new(0);
        let result: Result<u32, TestError> = until_written(|| {
            tries.set(tries.get() + 1);
            let n = tries.get();
            async move {
                let written = if n < 3 {
                    Err(StoreError::ConditionFailed)
                } else {
                    Ok(())
                };
                Attempt::of_write(written, n)
            }
        })
        .await;
        assert_eq!(result, Ok(3));

        let always: Result<u32, TestError> =
            until_written(|| async { Attempt::of_write(Err(StoreError::ConditionFailed), 0) })
                .await;
        assert_eq!(always, Err(TestError::Contended));

        let failed: Result<u32, TestError> = until_written(|| async {
            Attempt::of_write(Err(StoreError::Failed("down".into())), 0)
        })
        .await;
        assert_eq!(
            failed,
            Err(TestError::Store(StoreError::Failed("down".into())))
        );
    }
}

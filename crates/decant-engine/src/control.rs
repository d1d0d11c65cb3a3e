//! Job control: pause, resume and cancel a running job between chunks.
//!
//! The runner asks before it starts each chunk; a chunk already in flight always runs to its
//! commit (or rolls back on its own), so pause and cancel never leave half a chunk behind.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::watch;

/// A handle shared by the runner and whoever controls the job (the HTTP service).
#[derive(Clone)]
pub struct JobControl {
    inner: Arc<Inner>,
}

struct Inner {
    paused: watch::Sender<bool>,
    cancelled: AtomicBool,
}

impl Default for JobControl {
    fn default() -> Self {
        JobControl {
            inner: Arc::new(Inner {
                paused: watch::Sender::new(false),
                cancelled: AtomicBool::new(false),
            }),
        }
    }
}

impl JobControl {
    /// No new chunk starts until [`resume`](Self::resume); chunks in flight finish.
    pub fn pause(&self) {
        self.inner.paused.send_replace(true);
    }

    pub fn resume(&self) {
        self.inner.paused.send_replace(false);
    }

    /// No new chunk starts; chunks in flight finish, then the run ends as cancelled.
    pub fn cancel(&self) {
        self.inner.cancelled.store(true, Ordering::SeqCst);
        // Wake a paused runner so that it sees the cancellation.
        self.inner.paused.send_modify(|_| {});
    }

    pub fn is_paused(&self) -> bool {
        *self.inner.paused.borrow()
    }

    pub fn is_cancelled(&self) -> bool {
        self.inner.cancelled.load(Ordering::SeqCst)
    }

    /// Waits while the job is paused; `false` when it was cancelled and nothing new may start.
    pub async fn proceed(&self) -> bool {
        let mut rx = self.inner.paused.subscribe();
        loop {
            if self.is_cancelled() {
                return false;
            }
            if !*rx.borrow_and_update() {
                return true;
            }
            if rx.changed().await.is_err() {
                return !self.is_cancelled();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn pause_holds_until_resume_and_cancel_releases() {
        let c = JobControl::default();
        assert!(c.proceed().await);
        c.pause();
        let waiter = tokio::spawn({
            let c = c.clone();
            async move { c.proceed().await }
        });
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(!waiter.is_finished(), "a paused job starts nothing");
        c.resume();
        assert!(waiter.await.unwrap());
        c.pause();
        let waiter = tokio::spawn({
            let c = c.clone();
            async move { c.proceed().await }
        });
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        c.cancel();
        assert!(
            !waiter.await.unwrap(),
            "cancel wakes a paused job and stops it"
        );
    }
}

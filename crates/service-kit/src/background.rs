//! Background work that a graceful shutdown waits for: scan and delivery workers, job runners,
//! sweepers.
//!
//! A service spawns its workers on a [`Background`] and hands it to
//! [`serve`](crate::http::serve) in its [`ServiceApp`](crate::http::ServiceApp). On SIGTERM (or
//! [`Shutdown::graceful`](crate::http::Shutdown::graceful)) the workers are told to stop while
//! requests drain, and [`Running::run`](crate::http::Running::run) waits for them, up to the
//! shutdown timeout counted from that moment, before it closes the pool.
//!
//! A worker's part of the deal: it checks [`Background::is_stopping`] before it takes new work
//! and waits through [`Background::unless_stopped`] when idle (so an idle worker ends at once),
//! but finishes and records the work it has already taken.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::watch;

/// The background tasks of a service and the signal that tells them to stop. Clones share both.
#[derive(Clone, Default)]
pub struct Background {
    inner: Arc<Inner>,
}

struct Inner {
    /// When the tasks were first told to stop; `None` while they may go on.
    stop: watch::Sender<Option<Instant>>,
    /// Stopped at once: nobody waits for the tasks (see [`Background::abandon`]).
    abandoned: AtomicBool,
    /// The tasks still running, by id: their names.
    running: watch::Sender<BTreeMap<u64, String>>,
    next_id: AtomicU64,
}

impl Default for Inner {
    fn default() -> Self {
        Self {
            stop: watch::Sender::new(None),
            abandoned: AtomicBool::new(false),
            running: watch::Sender::new(BTreeMap::new()),
            next_id: AtomicU64::new(0),
        }
    }
}

impl fmt::Debug for Background {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Background").field("stopping", &self.is_stopping()).field("running", &self.running()).finish()
    }
}

impl Background {
    pub fn new() -> Self {
        Self::default()
    }

    /// Spawns `task` on the current thread's runtime (as `actix_web::rt::spawn`); `name` is what
    /// the shutdown log shows if it is still running when the grace period ends.
    pub fn spawn(&self, name: impl Into<String>, task: impl Future<Output = ()> + 'static) {
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let name = name.into();
        self.inner.running.send_modify(|running| {
            running.insert(id, name);
        });
        // Dropped when the task ends, panics or is dropped with the runtime.
        let registered = Registered { inner: self.inner.clone(), id };
        actix_web::rt::spawn(async move {
            let _registered = registered;
            task.await;
        });
    }

    /// Whether the tasks have been told to stop: a worker checks it before it takes new work.
    pub fn is_stopping(&self) -> bool {
        self.inner.stop.borrow().is_some()
    }

    /// Resolves once the tasks are told to stop (at once if they already are).
    pub async fn stopping(&self) {
        let mut stop = self.inner.stop.subscribe();
        // The sender lives in `self`: the wait cannot fail.
        let _ = stop.wait_for(Option::is_some).await;
    }

    /// Runs `work` unless the tasks are told to stop first: then `None`, and `work` is dropped
    /// where it is. For waits and other work that may be cut (an idle worker's sleep).
    pub async fn unless_stopped<F: Future>(&self, work: F) -> Option<F::Output> {
        tokio::select! {
            biased;
            () = self.stopping() => None,
            output = work => Some(output),
        }
    }

    /// Tells the tasks to stop; returns when they were first told (a second call changes nothing).
    pub fn stop(&self) -> Instant {
        let mut at = Instant::now();
        self.inner.stop.send_if_modified(|stop| match stop {
            Some(first) => {
                at = *first;
                false
            }
            None => {
                *stop = Some(at);
                true
            }
        });
        at
    }

    /// Tells the tasks to stop and lets nobody wait for them: they end with the process, wherever
    /// they are (a crash, as far as their work is concerned).
    pub fn abandon(&self) {
        self.inner.abandoned.store(true, Ordering::Release);
        self.stop();
    }

    /// Whether [`Background::abandon`] was called.
    pub fn is_abandoned(&self) -> bool {
        self.inner.abandoned.load(Ordering::Acquire)
    }

    /// The names of the tasks still running.
    pub fn running(&self) -> Vec<String> {
        self.inner.running.borrow().values().cloned().collect()
    }

    /// Tells the tasks to stop, then waits until they have all ended or `grace` has passed since
    /// they were first told; returns the names of those still running then (none: all ended).
    pub async fn stop_and_wait(&self, grace: Duration) -> Vec<String> {
        let deadline = self.stop() + grace;
        let mut running = self.inner.running.subscribe();
        // The sender lives in `self`: the wait cannot fail.
        let _ = tokio::time::timeout_at(deadline.into(), running.wait_for(BTreeMap::is_empty)).await;
        self.running()
    }
}

/// A spawned task's entry in [`Inner::running`], removed when dropped.
struct Registered {
    inner: Arc<Inner>,
    id: u64,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.inner.running.send_modify(|running| {
            running.remove(&self.id);
        });
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::rc::Rc;
    use std::time::Duration;

    use super::Background;

    /// A worker that finishes the job it holds when told to stop, and one that sleeps past the
    /// grace period.
    #[actix_web::test]
    async fn stop_waits_for_work_in_hand_until_the_grace_ends() {
        let background = Background::new();
        let finished = Rc::new(Cell::new(0));
        for i in 0..2 {
            let (bg, finished) = (background.clone(), finished.clone());
            background.spawn(format!("worker {i}"), async move {
                while !bg.is_stopping() {
                    // The job in hand: not cut by the stop.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    finished.set(finished.get() + 1);
                }
            });
        }
        let idle = background.clone();
        background.spawn("idle", async move {
            while idle.unless_stopped(tokio::time::sleep(Duration::from_secs(3600))).await.is_some() {}
        });
        background.spawn("stuck", std::future::pending());
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(background.running(), ["worker 0", "worker 1", "idle", "stuck"]);

        let left = background.stop_and_wait(Duration::from_secs(2)).await;
        assert_eq!(left, ["stuck"], "the workers ended, the stuck one is reported");
        assert_eq!(finished.get(), 2, "each worker finished the job it held, and took no other");
        assert!(background.is_stopping());
        assert!(!background.is_abandoned());
    }
}

//! The sampler: one task that reads a [`Sources`] snapshot every second and
//! publishes it, alive only while someone watches. The first [`Watch`]
//! starts it, dropping the last one stops it (and forgets the rate
//! history), so an unwatched server runs none of this.

use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};

use super::snapshot::{Rates, Sources, Totals};

/// How often a snapshot goes out.
pub(crate) const PERIOD: Duration = Duration::from_secs(1);

/// Where snapshots go (the dashboard topic, in the binary).
pub(crate) type Publish = Arc<dyn Fn(Value) + Send + Sync>;

/// Starts and stops the sampling task with the number of watchers.
#[derive(Clone)]
pub(crate) struct Sampler {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Sampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sampler").finish_non_exhaustive()
    }
}

struct Shared {
    sources: Arc<Sources>,
    publish: Publish,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    watchers: usize,
    task: Option<JoinHandle<()>>,
    rates: Rates,
}

/// One watcher: the sampler runs while at least one exists.
pub(crate) struct Watch {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Watch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Watch")
    }
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Sampler {
    /// A sampler reading `sources` and handing snapshots to `publish`.
    pub(crate) fn new(sources: Arc<Sources>, publish: Publish) -> Self {
        Self {
            shared: Arc::new(Shared {
                sources,
                publish,
                state: Mutex::default(),
            }),
        }
    }

    /// What the sampler reads.
    pub(crate) fn sources(&self) -> &Arc<Sources> {
        &self.shared.sources
    }

    /// Registers a watcher; the first one starts the task (on the current
    /// tokio runtime).
    pub(crate) fn watch(&self) -> Watch {
        let mut state = self.shared.state();
        state.watchers += 1;
        if state.task.is_none() {
            state.task = Some(tokio::spawn(run(Arc::downgrade(&self.shared))));
            tracing::debug!("dashboard sampler started");
        }
        Watch {
            shared: self.shared.clone(),
        }
    }

    /// Whether the sampling task exists.
    #[cfg(test)]
    pub(crate) fn is_running(&self) -> bool {
        self.shared.state().task.is_some()
    }

    /// The state now with the rate history so far (a join's reply).
    pub(crate) fn current(&self) -> Value {
        let history = self.shared.state().rates.history();
        json!({
            "snapshot": self.shared.sources.snapshot(unix_ms(), None),
            "history": history,
        })
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let mut state = self.shared.state();
        state.watchers = state.watchers.saturating_sub(1);
        if state.watchers == 0 {
            if let Some(task) = state.task.take() {
                task.abort();
                tracing::debug!("dashboard sampler stopped");
            }
            state.rates = Rates::default();
        }
    }
}

async fn run(shared: Weak<Shared>) {
    let mut ticks = tokio::time::interval(PERIOD);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Skip);
    loop {
        ticks.tick().await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let totals = Totals::read(shared.sources.pubsub.counters());
        let now = unix_ms();
        let point = shared.state().rates.sample(Instant::now(), now, totals);
        let snapshot = shared.sources.snapshot(now, point);
        (shared.publish)(snapshot);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::OnceLock;

    use fawkes::PubSub;

    use super::*;

    fn sampler() -> (Sampler, Arc<Mutex<Vec<Value>>>) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        let sources = Arc::new(Sources {
            pubsub: PubSub::new(),
            presence: OnceLock::new(),
            replication: OnceLock::new(),
            redis: None,
            node: None,
        });
        let publish: Publish = Arc::new(move |snapshot| sink.lock().unwrap().push(snapshot));
        (Sampler::new(sources, publish), seen)
    }

    fn count(seen: &Mutex<Vec<Value>>) -> usize {
        seen.lock().unwrap().len()
    }

    #[tokio::test(start_paused = true)]
    async fn runs_only_while_watched() {
        let (sampler, seen) = sampler();
        tokio::time::sleep(PERIOD * 5).await;
        assert!(!sampler.is_running());
        assert_eq!(count(&seen), 0, "nobody watches: nothing sampled");

        let first = sampler.watch();
        let second = sampler.watch();
        assert!(sampler.is_running());
        tokio::time::sleep(PERIOD * 3 + PERIOD / 2).await;
        let sampled = count(&seen);
        assert_eq!(sampled, 4, "one at once, then one per period");
        {
            let seen = seen.lock().unwrap();
            assert_eq!(seen[0]["rate"], Value::Null, "no rate before two samples");
            assert_eq!(seen[3]["rate"]["messages_in"], json!(0.0));
        }
        assert_eq!(
            sampler.current()["history"].as_array().map(Vec::len),
            Some(3)
        );

        drop(first);
        tokio::time::sleep(PERIOD).await;
        assert!(sampler.is_running(), "one watcher left");
        assert_eq!(count(&seen), sampled + 1);

        drop(second);
        assert!(!sampler.is_running());
        tokio::time::sleep(PERIOD * 5).await;
        assert_eq!(count(&seen), sampled + 1, "stopped with the last watcher");
        assert_eq!(sampler.current()["history"], json!([]));

        let _again = sampler.watch();
        tokio::time::sleep(PERIOD / 2).await;
        assert_eq!(count(&seen), sampled + 2, "a new watcher starts it again");
    }
}

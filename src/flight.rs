//! Single flight: the loads in flight, by key. Concurrent loader calls for one missing key make
//! one of them the leader, which runs its loader; the others wait for its outcome, blocking
//! (a condition variable) or asynchronously (wakers, so no runtime is needed). A lock belongs
//! here (waiting is the point), and it is only taken on a miss.
//!
//! A leader that ends without an outcome (its loader panicked, or its future was dropped)
//! abandons the load: every waiter wakes and joins again, and one of them leads the next load.

use std::any::Any;
use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, Waker};

use crossbeam_utils::CachePadded;

use crate::sync::{Condvar, Mutex};

/// What a load ended with, as waiters see it.
pub(crate) enum Outcome<V> {
    Loaded(V),
    /// The loader returned an error (type-erased: waiters downcast it to their error type).
    Failed(Arc<dyn Any + Send + Sync>),
    /// The leader ended without an outcome: waiters join again (one of them leads).
    Abandoned,
}

impl<V: Clone> Clone for Outcome<V> {
    fn clone(&self) -> Self {
        match self {
            Outcome::Loaded(v) => Outcome::Loaded(v.clone()),
            Outcome::Failed(e) => Outcome::Failed(Arc::clone(e)),
            Outcome::Abandoned => Outcome::Abandoned,
        }
    }
}

/// One load in flight, shared by its leader and its waiters.
pub(crate) struct Load<V> {
    /// Set once, by the leader; read without a lock by woken waiters.
    outcome: OnceLock<Outcome<V>>,
    /// The asynchronous waiters' wakers (a waiter dropped before the outcome clears its slot),
    /// and the lock that orders registering a waker against publishing the outcome.
    wakers: Mutex<Vec<Option<Waker>>>,
    /// Blocking waiters sleep here.
    done: Condvar,
}

impl<V> Load<V> {
    fn new() -> Self {
        Load {
            outcome: OnceLock::new(),
            wakers: Mutex::new(Vec::new()),
            done: Condvar::new(),
        }
    }

    /// Sets the outcome, then wakes every waiter. A waiter checks for the outcome under the
    /// wakers' lock before it registers: it either sees the outcome or registers before the
    /// wakers are taken here. The wakers run after the lock is released.
    fn publish(&self, outcome: Outcome<V>) {
        let first = self.outcome.set(outcome).is_ok();
        debug_assert!(first, "a load has one outcome");
        let wakers = std::mem::take(&mut *self.wakers.lock());
        self.done.notify_all();
        for waker in wakers.into_iter().flatten() {
            waker.wake();
        }
    }
}

impl<V: Clone> Load<V> {
    /// Blocks until the load has an outcome.
    pub(crate) fn wait(&self) -> Outcome<V> {
        let mut wakers = self.wakers.lock();
        loop {
            if let Some(outcome) = self.outcome.get() {
                return outcome.clone();
            }
            wakers = self.done.wait(wakers);
        }
    }

    /// A future of the load's outcome.
    pub(crate) fn wait_async(self: Arc<Self>) -> Wait<V> {
        Wait {
            load: self,
            slot: None,
        }
    }
}

/// The future of a load's outcome, for an asynchronous waiter.
pub(crate) struct Wait<V> {
    load: Arc<Load<V>>,
    /// This waiter's index in the load's wakers, once registered.
    slot: Option<usize>,
}

impl<V: Clone> Future for Wait<V> {
    type Output = Outcome<V>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Outcome<V>> {
        let this = &mut *self;
        if let Some(outcome) = this.load.outcome.get() {
            return Poll::Ready(outcome.clone());
        }
        // The outcome is checked again and the waker registered under one lock hold: a publish
        // between the two would otherwise wake nobody (the negative control of
        // `tests/loom_loader.rs` splits them and loom finds the waiter asleep forever).
        let mut wakers = this.load.wakers.lock();
        if let Some(outcome) = this.load.outcome.get() {
            return Poll::Ready(outcome.clone());
        }
        #[cfg(cascache_broken_handover)]
        {
            drop(wakers);
            crate::sync::spin_wait();
            wakers = this.load.wakers.lock();
        }
        match this.slot {
            Some(i) => match &mut wakers[i] {
                Some(waker) if waker.will_wake(cx.waker()) => {}
                waker => *waker = Some(cx.waker().clone()),
            },
            None => {
                if wakers.capacity() == 0 {
                    // Waiters come in crowds (a hot key's miss): skip the smallest regrowths.
                    wakers.reserve(16);
                }
                wakers.push(Some(cx.waker().clone()));
                this.slot = Some(wakers.len() - 1);
            }
        }
        Poll::Pending
    }
}

impl<V> Drop for Wait<V> {
    fn drop(&mut self) {
        // Once the outcome is out, `publish` has taken (or is taking) the wakers.
        if let (Some(i), None) = (self.slot, self.load.outcome.get()) {
            if let Some(waker) = self.load.wakers.lock().get_mut(i) {
                *waker = None;
            }
        }
    }
}

/// The loads in flight of one shard of keys.
type Shard<K, V> = CachePadded<Mutex<HashMap<K, Arc<Load<V>>, ahash::RandomState>>>;

/// The loads in flight, by key, in shards chosen by the key's hash (so that loads of different
/// keys rarely meet on one lock).
pub(crate) struct Loading<K, V> {
    shards: Box<[Shard<K, V>]>,
}

/// Shards of the registry (a power of two). An empty shard is a lock and an empty map, on a
/// cache line of its own. One under loom: with 16 (16 loom mutexes per cache), the ABA model of
/// `tests/loom_cas.rs`, which depends on the system allocator reusing addresses alike in every
/// execution, failed loom's determinism check.
#[cfg(not(loom))]
const SHARDS: usize = 16;
#[cfg(loom)]
const SHARDS: usize = 1;

/// The caller's role for a key.
pub(crate) enum Role<'a, K: Hash + Eq, V, T> {
    /// The key was present when the caller joined: no load.
    Present(T),
    /// Run the loader, then [`Leader::finish`]. Dropping it unfinished abandons the load.
    Leader(Leader<'a, K, V>),
    /// Wait for the leader's outcome.
    Waiter(Arc<Load<V>>),
}

/// The right and duty to finish a load.
pub(crate) struct Leader<'a, K: Hash + Eq, V> {
    shard: &'a Shard<K, V>,
    key: K,
    load: Arc<Load<V>>,
    finished: bool,
}

impl<K, V> Loading<K, V> {
    pub(crate) fn new() -> Self {
        Loading {
            shards: (0..SHARDS)
                .map(|_| CachePadded::new(Mutex::new(HashMap::default())))
                .collect(),
        }
    }

    /// The shard of a key's hash (its top bits: the table uses the low ones).
    fn shard(&self, hash: u64) -> &Shard<K, V> {
        &self.shards[(hash >> 58) as usize % SHARDS]
    }
}

impl<K: Hash + Eq + Clone, V> Loading<K, V> {
    /// Joins the load of `key` (whose hash is `hash`), or starts one if `present` (a read, run
    /// under the shard's lock) finds the key absent. The read under the lock, with
    /// [`Leader::finish`] storing under it, means that a caller that joins a load joined it
    /// before its value was stored: a waiter's answer is the cache's value at an instant of the
    /// waiter's call.
    pub(crate) fn join<T>(
        &self,
        hash: u64,
        key: &K,
        present: impl FnOnce() -> Option<T>,
    ) -> Role<'_, K, V, T> {
        let shard = self.shard(hash);
        let mut in_flight = shard.lock();
        if let Some(load) = in_flight.get(key) {
            return Role::Waiter(Arc::clone(load));
        }
        if let Some(found) = present() {
            return Role::Present(found);
        }
        let load = Arc::new(Load::new());
        in_flight.insert(key.clone(), Arc::clone(&load));
        Role::Leader(Leader {
            shard,
            key: key.clone(),
            load,
            finished: false,
        })
    }
}

impl<K: Hash + Eq, V> Loading<K, V> {
    /// Whether a load of `key` (whose hash is `hash`) is in flight.
    pub(crate) fn is_loading<Q>(&self, hash: u64, key: &Q) -> bool
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.shard(hash).lock().contains_key(key)
    }
}

impl<K: Hash + Eq, V> Leader<'_, K, V> {
    /// Ends the load: `settle` (which stores the loaded value, or reads the one a racing write
    /// stored) runs under the shard's lock, then its outcome goes to every waiter. What else
    /// `settle` returns is handed back, for work that must wait until the lock is released.
    pub(crate) fn finish<R>(mut self, settle: impl FnOnce() -> (Outcome<V>, R)) -> R {
        let (outcome, rest) = {
            let mut in_flight = self.shard.lock();
            // A panic in `settle` (a weigher's, say) leaves `finished` unset: the drop abandons.
            let settled = settle();
            in_flight.remove(&self.key);
            self.finished = true;
            settled
        };
        self.load.publish(outcome);
        rest
    }
}

impl<K: Hash + Eq, V> Drop for Leader<'_, K, V> {
    fn drop(&mut self) {
        if !self.finished {
            // The loader panicked or its future was dropped: the waiters join again (one of
            // them leads) rather than wait forever.
            self.shard.lock().remove(&self.key);
            self.load.publish(Outcome::Abandoned);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;

    use super::*;

    /// A waker that counts its wakes.
    struct Counting(AtomicUsize);

    impl Wake for Counting {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn poll<V: Clone>(wait: &mut Pin<Box<Wait<V>>>, waker: &Arc<Counting>) -> Poll<Outcome<V>> {
        let waker = Waker::from(Arc::clone(waker));
        wait.as_mut().poll(&mut Context::from_waker(&waker))
    }

    #[test]
    fn a_waiter_is_woken_once_by_the_outcome_and_a_dropped_one_not_at_all() {
        let loading: Loading<u32, String> = Loading::new();
        let Role::Leader(leader) = loading.join(0, &1, || None::<String>) else {
            panic!("the first caller leads")
        };
        assert!(loading.is_loading(0, &1));
        let waiters: Vec<_> = (0..2)
            .map(|_| match loading.join(0, &1, || None::<String>) {
                Role::Waiter(load) => Box::pin(load.wait_async()),
                _ => panic!("later callers wait"),
            })
            .collect();
        let (mut kept, mut dropped) = {
            let mut it = waiters.into_iter();
            (it.next().unwrap(), it.next().unwrap())
        };
        let (woken, not_woken) = (
            Arc::new(Counting(AtomicUsize::new(0))),
            Arc::new(Counting(AtomicUsize::new(0))),
        );
        assert!(poll(&mut kept, &woken).is_pending());
        assert!(
            poll(&mut kept, &woken).is_pending(),
            "polled twice: one waker kept"
        );
        assert!(poll(&mut dropped, &not_woken).is_pending());
        drop(dropped);
        let taken = leader.finish(|| (Outcome::Loaded("v".to_string()), 7));
        assert_eq!(taken, 7);
        assert!(!loading.is_loading(0, &1));
        assert_eq!(woken.0.load(Ordering::SeqCst), 1);
        assert_eq!(not_woken.0.load(Ordering::SeqCst), 0);
        assert!(matches!(poll(&mut kept, &woken), Poll::Ready(Outcome::Loaded(v)) if v == "v"));
        assert!(matches!(
            loading.join(0, &1, || Some(())),
            Role::Present(())
        ));
    }

    #[test]
    fn a_dropped_leader_abandons_to_its_waiters() {
        let loading: Loading<u32, u32> = Loading::new();
        let Role::Leader(leader) = loading.join(0, &1, || None::<u32>) else {
            panic!("the first caller leads")
        };
        let Role::Waiter(load) = loading.join(0, &1, || None::<u32>) else {
            panic!("the second waits")
        };
        let mut wait = Box::pin(Arc::clone(&load).wait_async());
        let waker = Arc::new(Counting(AtomicUsize::new(0)));
        assert!(poll(&mut wait, &waker).is_pending());
        drop(leader);
        assert_eq!(waker.0.load(Ordering::SeqCst), 1);
        assert!(matches!(
            poll(&mut wait, &waker),
            Poll::Ready(Outcome::Abandoned)
        ));
        assert!(
            matches!(load.wait(), Outcome::Abandoned),
            "a blocking waiter sees it too"
        );
        // The next caller leads a new load.
        assert!(matches!(
            loading.join(0, &1, || None::<u32>),
            Role::Leader(_)
        ));
    }
}

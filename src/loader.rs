//! Coalesced loading: concurrent `get_or_insert_with` calls for one missing key run the loader
//! once; the others wait for its outcome. A lock belongs here (waiting is the point), and it is
//! only taken on a miss.

use std::any::Any;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Arc;

use parking_lot::{Condvar, Mutex};

/// What a load ended with, as waiters see it.
pub(crate) enum Outcome<V> {
    Loaded(V),
    /// The loader returned an error (type-erased: waiters downcast it to their error type).
    Failed(Arc<dyn Any + Send + Sync>),
    /// The loader panicked: waiters retry (one of them becomes the next loader).
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

pub(crate) struct Load<V> {
    outcome: Mutex<Option<Outcome<V>>>,
    done: Condvar,
}

impl<V: Clone> Load<V> {
    pub(crate) fn wait(&self) -> Outcome<V> {
        let mut outcome = self.outcome.lock();
        while outcome.is_none() {
            self.done.wait(&mut outcome);
        }
        outcome.clone().expect("checked above")
    }
}

/// The loads in flight, by key.
pub(crate) struct Loading<K, V> {
    in_flight: Mutex<HashMap<K, Arc<Load<V>>, ahash::RandomState>>,
}

/// The caller's role for a key.
pub(crate) enum Role<'a, K: Hash + Eq, V> {
    /// Run the loader, then [`Leader::finish`]. Dropping it unfinished (a panic) abandons.
    Leader(Leader<'a, K, V>),
    Waiter(Arc<Load<V>>),
}

pub(crate) struct Leader<'a, K: Hash + Eq, V> {
    loading: &'a Loading<K, V>,
    key: K,
    load: Arc<Load<V>>,
    finished: bool,
}

impl<K, V> Loading<K, V> {
    pub(crate) fn new() -> Self {
        Loading {
            in_flight: Mutex::new(HashMap::default()),
        }
    }
}

impl<K: Hash + Eq + Clone, V> Loading<K, V> {
    pub(crate) fn join(&self, key: &K) -> Role<'_, K, V> {
        let mut in_flight = self.in_flight.lock();
        if let Some(load) = in_flight.get(key) {
            return Role::Waiter(Arc::clone(load));
        }
        let load = Arc::new(Load {
            outcome: Mutex::new(None),
            done: Condvar::new(),
        });
        in_flight.insert(key.clone(), Arc::clone(&load));
        Role::Leader(Leader {
            loading: self,
            key: key.clone(),
            load,
            finished: false,
        })
    }
}

impl<K: Hash + Eq, V> Leader<'_, K, V> {
    pub(crate) fn finish(mut self, outcome: Outcome<V>) {
        self.publish(outcome);
    }

    fn publish(&mut self, outcome: Outcome<V>) {
        self.finished = true;
        {
            let mut in_flight = self.loading.in_flight.lock();
            if in_flight
                .get(&self.key)
                .is_some_and(|l| Arc::ptr_eq(l, &self.load))
            {
                in_flight.remove(&self.key);
            }
        }
        *self.load.outcome.lock() = Some(outcome);
        self.load.done.notify_all();
    }
}

impl<K: Hash + Eq, V> Drop for Leader<'_, K, V> {
    fn drop(&mut self) {
        if !self.finished {
            // The loader panicked: let the waiters try again rather than wait forever.
            self.publish(Outcome::Abandoned);
        }
    }
}

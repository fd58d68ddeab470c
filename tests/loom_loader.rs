//! loom model of the async loader's handover: the caller running the loader drops its future
//! (cancelled) while another caller waits, and the waiter must take the load over and get its
//! own value; no interleaving may leave it asleep or the key wedged.
//!
//! The negative control is the same model on a build whose waiter checks for the outcome and
//! registers its waker under two lock holds instead of one (`--cfg cascache_broken_handover`,
//! run by `.ci/loom.sh`): a cancellation published between the two wakes nobody, and loom must
//! find the waiter asleep forever.
#![cfg(loom)]

mod loom_support;

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use cascache::Lookup;
use crossbeam_epoch::Collector;
use loom::sync::Arc;
use loom::thread;
use loom_support::{cache, run_model};

fn cancelled_loader_handover() {
    let collector = Collector::new();
    let cache = Arc::new(cache::<u64>(&collector));
    let waiter = {
        let cache = cache.clone();
        thread::spawn(move || {
            loom::future::block_on(cache.get_or_insert_with_async(1, async { 2 }))
        })
    };
    // The caller that may lead: its loader never finishes; it polls once, then is cancelled.
    {
        let mut load = pin!(cache.get_or_insert_with_async(1, std::future::pending::<u64>()));
        let mut cx = Context::from_waker(Waker::noop());
        match load.as_mut().poll(&mut cx) {
            Poll::Pending => {}
            // The waiter loaded first: its value, found or waited for.
            Poll::Ready(value) => assert_eq!(value, 2),
        }
    }
    assert_eq!(
        waiter.join().unwrap(),
        2,
        "the waiter gets its own load's value"
    );
    assert!(
        matches!(cache.lookup(&1), Lookup::Present(2, _)),
        "the key is not wedged"
    );
}

#[cfg(not(cascache_broken_handover))]
#[test]
fn a_cancelled_loader_is_taken_over_by_its_waiter() {
    run_model("cancelled_loader_handover", 2, cancelled_loader_handover);
}

#[cfg(cascache_broken_handover)]
#[test]
#[should_panic(expected = "deadlock")]
fn negative_control_waker_registered_after_the_check() {
    run_model(
        "negative_handover_lost_wakeup",
        2,
        cancelled_loader_handover,
    );
}

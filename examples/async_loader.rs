//! A tokio service in front of a slow backend: 2,000 requests for 20 users arrive at once, and
//! the cache loads each user once, however many requests want it meanwhile. Requests that give
//! up early (a timeout drops their future) hand their load to a request still waiting.
//!
//! ```sh
//! cargo run --release --example async_loader
//! ```

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cascache::Cache;

/// The backend: 100 ms per lookup, and it counts how often it was asked.
struct Backend {
    loads: AtomicUsize,
}

impl Backend {
    async fn fetch_user(&self, id: u64) -> String {
        self.loads.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(100)).await;
        format!("user {id}")
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let cache: Arc<Cache<u64, String>> = Arc::new(Cache::new(10_000));
    let backend = Arc::new(Backend {
        loads: AtomicUsize::new(0),
    });
    let started = Instant::now();
    let requests: Vec<_> = (0..2_000u64)
        .map(|request| {
            let (cache, backend) = (cache.clone(), backend.clone());
            tokio::spawn(async move {
                let id = request % 20;
                let load = cache.get_or_insert_with_async(id, backend.fetch_user(id));
                // Every 7th request gives up after 30 ms: if it was the one loading, a request
                // still waiting takes the load over.
                if request % 7 == 0 {
                    tokio::time::timeout(Duration::from_millis(30), load)
                        .await
                        .ok()
                } else {
                    Some(load.await)
                }
            })
        })
        .collect();
    let (mut served, mut gave_up) = (0, 0);
    for (request, handle) in requests.into_iter().enumerate() {
        match handle.await.expect("a request task panicked") {
            Some(user) => {
                assert_eq!(user, format!("user {}", request % 20));
                served += 1;
            }
            None => gave_up += 1,
        }
    }
    let elapsed = started.elapsed();
    let loads = backend.loads.load(Ordering::SeqCst);
    println!(
        "{served} requests served and {gave_up} gave up, in {} ms: the backend ran {loads} loads \
         for 20 users ({} of them restarted after the request running them gave up)",
        elapsed.as_millis(),
        loads - 20
    );
    assert!(loads >= 20, "every user was loaded");
    assert_eq!(served + gave_up, 2_000);
    let stats = cache.stats();
    println!(
        "cache: {} entries, {} hits, {} misses",
        cache.len(),
        stats.hits,
        stats.misses
    );
}

//! Memory per entry: each implementation gets a process of its own (this example re-run with
//! `--memory-child NAME`), which reads its resident set size, inserts 1M `u64 → u64` entries
//! into a structure sized for 1.1M, and reads it again.

use std::hint::black_box;
use std::process::{Command, ExitCode};

use crate::workloads::peers::{self, Map};

/// Entries inserted.
pub const ENTRIES: u64 = 1_000_000;
/// The capacity (caches) or initial capacity (maps) every structure is built with.
pub const CAPACITY: u64 = 1_100_000;

/// The implementations measured, cascache first. "cascache unbounded" has no eviction policy (a
/// concurrent map with versions): the difference to "cascache" is what the policy costs.
pub const PEERS: [&str; 9] = [
    "cascache",
    "cascache unbounded",
    "moka",
    "quick_cache",
    "papaya",
    "scc",
    "dashmap",
    "Mutex<HashMap>",
    "Mutex<LruCache>",
];

pub struct Footprint {
    pub peer: String,
    pub bytes_per_entry: f64,
}

/// Resident set size in bytes.
fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .expect("VmRSS in /proc/self/status")
        * 1024
}

/// Fills `map`, lets it settle, and returns the resident set size then and how many of the
/// entries read back.
fn hold<M: Map>(map: M, settle: impl FnOnce(&M)) -> (u64, u64) {
    for key in 0..ENTRIES {
        map.insert(key, key);
    }
    settle(&map);
    let hits = (0..ENTRIES).filter(|&key| map.get(key)).count() as u64;
    let after = rss();
    black_box(&map);
    (after, hits)
}

/// Measures one implementation in this process; returns the resident bytes it added.
fn measure(peer: &str) -> Result<u64, String> {
    let before = rss();
    let (after, hits) = match peer {
        "cascache" => hold(peers::cascache(CAPACITY), |_| ()),
        "cascache unbounded" => hold(
            cascache::Cache::<u64, u64>::builder()
                .initial_capacity(CAPACITY as usize)
                .build(),
            |_| (),
        ),
        "moka" => hold(peers::moka(CAPACITY), |m| m.run_pending_tasks()),
        "quick_cache" => hold(peers::quick_cache(CAPACITY), |_| ()),
        "papaya" => hold(peers::papaya(CAPACITY as usize), |_| ()),
        "scc" => hold(peers::scc(CAPACITY as usize), |_| ()),
        "dashmap" => hold(peers::dashmap(CAPACITY as usize), |_| ()),
        "Mutex<HashMap>" => hold(peers::mutex_map(CAPACITY as usize), |_| ()),
        "Mutex<LruCache>" => hold(peers::mutex_lru(CAPACITY as usize), |_| ()),
        _ => return Err(format!("unknown implementation {peer:?}")),
    };
    if hits != ENTRIES {
        return Err(format!("{peer} holds {hits} of {ENTRIES} entries"));
    }
    Ok(after.saturating_sub(before))
}

/// In a child process (`--memory-child NAME`): measures and prints `bytes <n>`; else `None`.
pub fn child_main() -> Option<ExitCode> {
    let mut args = std::env::args().skip(1);
    if args.next().as_deref() != Some("--memory-child") {
        return None;
    }
    let peer = args.next().unwrap_or_default();
    Some(match measure(&peer) {
        Ok(bytes) => {
            println!("bytes {bytes}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("{error}");
            ExitCode::FAILURE
        }
    })
}

/// Runs every implementation in its own process.
pub fn measure_all() -> Result<Vec<Footprint>, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    PEERS
        .iter()
        .map(|&peer| {
            let out = Command::new(&exe)
                .args(["--memory-child", peer])
                .output()
                .map_err(|e| format!("{peer}: {e}"))?;
            let stdout = String::from_utf8_lossy(&out.stdout);
            let bytes: u64 = stdout
                .lines()
                .find_map(|l| l.strip_prefix("bytes "))
                .and_then(|b| b.trim().parse().ok())
                .ok_or_else(|| {
                    format!("{peer}: {}", String::from_utf8_lossy(&out.stderr).trim())
                })?;
            Ok(Footprint {
                peer: peer.to_string(),
                bytes_per_entry: bytes as f64 / ENTRIES as f64,
            })
        })
        .collect()
}

pub fn print(footprints: &[Footprint]) {
    println!(
        "\n## memory — resident bytes per u64 → u64 entry, {}M entries in a structure sized for {}M, one process each",
        ENTRIES / 1_000_000,
        CAPACITY as f64 / 1e6
    );
    for f in footprints {
        println!("{:<20} {:>8.1}", f.peer, f.bytes_per_entry);
    }
}

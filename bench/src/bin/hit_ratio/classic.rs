//! Two classic adaptive policies, as references beside the peers (`--classic`): ARC (Megiddo and
//! Modha, FAST 2003) and LIRS (Jiang and Zhang, SIGMETRICS 2002). Both update lists on every
//! hit, which a concurrent cache cannot afford; they show what a well-known policy reaches at
//! exactly the row's capacity. The ARC paper's own figures check the ARC (see the tests in
//! `main.rs`).

use crate::lru::Lru2;
use crate::{FastMap, Policy};

/// ARC as in the paper's figure 4: resident lists T1 (seen once recently) and T2 (seen at least
/// twice), their ghosts B1 and B2, and the target size `p` of T1, kept as a float.
pub struct ArcPolicy {
    cap: usize,
    p: f64,
    t1: Lru2,
    t2: Lru2,
    b1: Lru2,
    b2: Lru2,
}

impl ArcPolicy {
    pub fn new(cap: usize) -> Self {
        assert!(cap > 0);
        ArcPolicy {
            cap,
            p: 0.0,
            t1: Lru2::default(),
            t2: Lru2::default(),
            b1: Lru2::default(),
            b2: Lru2::default(),
        }
    }

    /// The paper's REPLACE: demote T1's LRU page to B1 when T1 is over its target (or at it,
    /// for a page found in B2), otherwise T2's LRU page to B2, or T1's if T2 is empty (a full
    /// T1 at `p` = capacity after a B1 hit, which the paper's figure leaves implicit).
    fn replace(&mut self, in_b2: bool) {
        let t1 = self.t1.len() as f64;
        if !self.t1.is_empty() && ((in_b2 && t1 == self.p) || t1 > self.p) {
            let k = self.t1.pop_lru().expect("T1 is not empty");
            self.b1.push(k);
        } else if let Some(k) = self.t2.pop_lru() {
            self.b2.push(k);
        } else if let Some(k) = self.t1.pop_lru() {
            self.b1.push(k);
        }
    }
}

impl Policy for ArcPolicy {
    fn name(&self) -> String {
        "ARC".into()
    }

    fn access(&mut self, k: u64) -> bool {
        if self.t1.remove(k) {
            self.t2.push(k);
            return true;
        }
        if self.t2.touch(k) {
            return true;
        }
        let (b1, b2) = (self.b1.len() as f64, self.b2.len() as f64);
        if self.b1.remove(k) {
            let delta = if b1 >= b2 { 1.0 } else { b2 / b1 };
            self.p = (self.p + delta).min(self.cap as f64);
            self.replace(false);
            self.t2.push(k);
            return false;
        }
        if self.b2.remove(k) {
            let delta = if b2 >= b1 { 1.0 } else { b1 / b2 };
            self.p = (self.p - delta).max(0.0);
            self.replace(true);
            self.t2.push(k);
            return false;
        }
        let l1 = self.t1.len() + self.b1.len();
        let total = l1 + self.t2.len() + self.b2.len();
        if l1 == self.cap {
            if self.t1.len() < self.cap {
                self.b1.pop_lru();
                self.replace(false);
            } else {
                self.t1.pop_lru();
            }
        } else if total >= self.cap {
            if total == 2 * self.cap {
                self.b2.pop_lru();
            }
            self.replace(false);
        }
        self.t1.push(k);
        false
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum LirsStatus {
    /// Resident, in the LIR set.
    Lir,
    /// Resident, in the HIR queue.
    ResidentHir,
    /// Not resident; remembered only while it is in the stack.
    GhostHir,
}

/// LIRS: the LIR set holds the pages with the shortest reuse distances (99% of the capacity, the
/// paper's setting), the rest is a FIFO queue of HIR pages. The recency stack also remembers
/// non-resident HIR pages; at most [`LirsPolicy::GHOSTS_PER_ENTRY`] × capacity of them, the
/// oldest forgotten first (the paper leaves the stack unbounded; implementations bound it).
pub struct LirsPolicy {
    lir_cap: usize,
    hir_cap: usize,
    lir_count: usize,
    status: FastMap<u64, LirsStatus>,
    /// The recency stack S: most recent first, LIR at its bottom after pruning.
    stack: Lru2,
    /// The queue Q of resident HIR pages.
    queue: Lru2,
    /// The non-resident HIR pages in the stack, oldest first (to bound their number).
    ghosts: Lru2,
}

impl LirsPolicy {
    const GHOSTS_PER_ENTRY: usize = 2;

    /// LIRS needs room for one LIR page and one HIR page: `cap` ≥ 2.
    pub fn new(cap: usize) -> Self {
        assert!(cap >= 2, "LIRS needs a capacity of at least 2");
        let hir_cap = (cap / 100).max(1);
        LirsPolicy {
            lir_cap: cap.saturating_sub(hir_cap),
            hir_cap,
            lir_count: 0,
            status: FastMap::default(),
            stack: Lru2::default(),
            queue: Lru2::default(),
            ghosts: Lru2::default(),
        }
    }

    /// Pops the stack's bottom entries until an LIR page is at the bottom (non-resident pages
    /// popped are forgotten).
    fn prune(&mut self) {
        while let Some(bottom) = self.stack.peek_lru() {
            match self.status[&bottom] {
                LirsStatus::Lir => return,
                LirsStatus::ResidentHir => {}
                LirsStatus::GhostHir => {
                    self.status.remove(&bottom);
                    self.ghosts.remove(bottom);
                }
            }
            self.stack.pop_lru();
        }
    }

    /// Turns the stack's bottom LIR page into a resident HIR page (its reuse distance is now the
    /// longest of the LIR set's), then prunes.
    fn demote_bottom_lir(&mut self) {
        let bottom = self
            .stack
            .pop_lru()
            .expect("a promotion leaves an LIR page");
        self.status.insert(bottom, LirsStatus::ResidentHir);
        self.queue.push(bottom);
        self.prune();
    }

    /// Makes an evicted HIR page non-resident, forgetting the oldest non-resident page if there
    /// are too many.
    fn remember(&mut self, page: u64) {
        self.status.insert(page, LirsStatus::GhostHir);
        self.ghosts.push(page);
        if self.ghosts.len() > Self::GHOSTS_PER_ENTRY * (self.lir_cap + self.hir_cap) {
            let oldest = self.ghosts.pop_lru().expect("over the bound");
            self.stack.remove(oldest);
            self.status.remove(&oldest);
        }
    }
}

impl Policy for LirsPolicy {
    fn name(&self) -> String {
        "LIRS".into()
    }

    fn access(&mut self, k: u64) -> bool {
        match self.status.get(&k).copied() {
            Some(LirsStatus::Lir) => {
                self.stack.touch(k);
                self.prune();
                true
            }
            Some(LirsStatus::ResidentHir) => {
                if self.stack.touch(k) {
                    // Its new reuse distance beats the bottom LIR page's recency.
                    self.status.insert(k, LirsStatus::Lir);
                    self.queue.remove(k);
                    self.demote_bottom_lir();
                } else {
                    self.stack.push(k);
                    self.queue.touch(k);
                }
                true
            }
            status => {
                if status.is_none() && self.lir_count < self.lir_cap {
                    // Warming up: the first pages fill the LIR set.
                    self.status.insert(k, LirsStatus::Lir);
                    self.stack.push(k);
                    self.lir_count += 1;
                    return false;
                }
                let returning = status == Some(LirsStatus::GhostHir);
                if returning {
                    // Out of the list first, so that making room below cannot forget it.
                    self.ghosts.remove(k);
                }
                if self.queue.len() >= self.hir_cap {
                    let out = self.queue.pop_lru().expect("the HIR queue is full");
                    if self.stack.contains(out) {
                        self.remember(out);
                    } else {
                        self.status.remove(&out);
                    }
                }
                if returning {
                    // Back within the stack: its reuse distance earns it the LIR set.
                    self.stack.touch(k);
                    self.status.insert(k, LirsStatus::Lir);
                    self.demote_bottom_lir();
                } else {
                    self.status.insert(k, LirsStatus::ResidentHir);
                    self.stack.push(k);
                    self.queue.push(k);
                }
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Random requests over a key space a few times the capacity: both policies hold at most
    /// their capacity, and every LIR page stays in LIRS's stack (a page outside it could never
    /// be demoted).
    #[test]
    fn both_hold_their_capacity_and_lirs_keeps_its_invariants() {
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        for capacity in [2, 3, 7, 50] {
            let mut arc = ArcPolicy::new(capacity);
            let mut lirs = LirsPolicy::new(capacity);
            for _ in 0..50_000 {
                state = crate::trace::mix64(state);
                // Skewed: half the requests go to the first `capacity` keys.
                let space = if state & 1 == 0 {
                    capacity
                } else {
                    4 * capacity
                };
                let key = (state >> 8) % space as u64;
                arc.access(key);
                lirs.access(key);
                assert!(arc.t1.len() + arc.t2.len() <= capacity);
                assert!(arc.t1.len() + arc.t2.len() + arc.b1.len() + arc.b2.len() <= 2 * capacity);
                let mut resident = 0;
                for (&page, &status) in &lirs.status {
                    match status {
                        LirsStatus::Lir => {
                            resident += 1;
                            assert!(
                                lirs.stack.contains(page),
                                "LIR page {page} not in the stack"
                            );
                        }
                        LirsStatus::ResidentHir => {
                            resident += 1;
                            assert!(lirs.queue.contains(page));
                        }
                        LirsStatus::GhostHir => {
                            assert!(lirs.stack.contains(page) && lirs.ghosts.contains(page));
                        }
                    }
                }
                assert!(resident <= capacity, "LIRS holds {resident} > {capacity}");
                assert_eq!(lirs.queue.len(), resident - lirs.lir_count);
            }
        }
    }
}

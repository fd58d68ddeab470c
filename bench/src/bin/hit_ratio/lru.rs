//! Exact LRU: hash map + intrusive doubly linked list over a slab.
use crate::{FastMap, Policy};

const NIL: u32 = u32::MAX;

pub struct Lru {
    cap: usize,
    map: FastMap<u64, u32>,
    key: Vec<u64>,
    prev: Vec<u32>,
    next: Vec<u32>,
    head: u32, // most recent
    tail: u32, // least recent
}

impl Lru {
    pub fn new(cap: usize) -> Self {
        assert!(cap > 0);
        let mut map = FastMap::default();
        // Preallocate at most 1M slots: a huge capacity grows on demand instead of failing up front.
        let pre = cap.min(1 << 20);
        map.reserve(pre + 1);
        Lru {
            cap,
            map,
            key: Vec::with_capacity(pre),
            prev: Vec::with_capacity(pre),
            next: Vec::with_capacity(pre),
            head: NIL,
            tail: NIL,
        }
    }
    fn unlink(&mut self, i: u32) {
        let (p, n) = (self.prev[i as usize], self.next[i as usize]);
        if p != NIL {
            self.next[p as usize] = n
        } else {
            self.head = n
        }
        if n != NIL {
            self.prev[n as usize] = p
        } else {
            self.tail = p
        }
    }
    fn push_front(&mut self, i: u32) {
        self.prev[i as usize] = NIL;
        self.next[i as usize] = self.head;
        if self.head != NIL {
            self.prev[self.head as usize] = i
        } else {
            self.tail = i
        }
        self.head = i;
    }
}

impl Policy for Lru {
    fn name(&self) -> String {
        "LRU".into()
    }
    fn access(&mut self, k: u64) -> bool {
        if let Some(&i) = self.map.get(&k) {
            if self.head != i {
                self.unlink(i);
                self.push_front(i);
            }
            return true;
        }
        let i = if self.key.len() < self.cap {
            self.key.push(k);
            self.prev.push(NIL);
            self.next.push(NIL);
            (self.key.len() - 1) as u32
        } else {
            let v = self.tail;
            self.unlink(v);
            self.map.remove(&self.key[v as usize]);
            self.key[v as usize] = k;
            v
        };
        self.map.insert(k, i);
        self.push_front(i);
        false
    }
}

/// A plain LRU list of keys (no capacity), used by the W-TinyLFU reference.
#[derive(Default)]
pub struct Lru2 {
    map: FastMap<u64, u32>,
    key: Vec<u64>,
    prev: Vec<u32>,
    next: Vec<u32>,
    free: Vec<u32>,
    head: Option<u32>,
    tail: Option<u32>,
}

impl Lru2 {
    fn h(&self) -> u32 {
        self.head.unwrap_or(NIL)
    }
    fn unlink(&mut self, i: u32) {
        let (p, n) = (self.prev[i as usize], self.next[i as usize]);
        if p != NIL {
            self.next[p as usize] = n
        } else {
            self.head = if n == NIL { None } else { Some(n) }
        }
        if n != NIL {
            self.prev[n as usize] = p
        } else {
            self.tail = if p == NIL { None } else { Some(p) }
        }
    }
    fn push_front_idx(&mut self, i: u32) {
        let h = self.h();
        self.prev[i as usize] = NIL;
        self.next[i as usize] = h;
        if h != NIL {
            self.prev[h as usize] = i
        } else {
            self.tail = Some(i)
        }
        self.head = Some(i);
    }
    pub fn len(&self) -> usize {
        self.map.len()
    }
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
    /// If present, move to MRU and return true.
    pub fn touch(&mut self, k: u64) -> bool {
        let Some(&i) = self.map.get(&k) else {
            return false;
        };
        self.unlink(i);
        self.push_front_idx(i);
        true
    }
    pub fn push(&mut self, k: u64) {
        let i = if let Some(i) = self.free.pop() {
            self.key[i as usize] = k;
            i
        } else {
            self.key.push(k);
            self.prev.push(NIL);
            self.next.push(NIL);
            (self.key.len() - 1) as u32
        };
        self.map.insert(k, i);
        self.push_front_idx(i);
    }
    pub fn contains(&self, k: u64) -> bool {
        self.map.contains_key(&k)
    }
    pub fn remove(&mut self, k: u64) -> bool {
        let Some(i) = self.map.remove(&k) else {
            return false;
        };
        self.unlink(i);
        self.free.push(i);
        true
    }
    pub fn peek_lru(&self) -> Option<u64> {
        self.tail.map(|t| self.key[t as usize])
    }
    pub fn pop_lru(&mut self) -> Option<u64> {
        let k = self.peek_lru()?;
        self.remove(k);
        Some(k)
    }
}

//! Per-thread recycling of the memory of retired value nodes and entries.
//!
//! Every write allocates a value node, and the epoch collector frees the node it replaced later,
//! in bursts of up to a few hundred (a collection runs the deferred functions of whole bags).
//! glibc's allocator takes such bursts slowly: on the founding loop (`gets` + CAS, 2 threads,
//! 1 key) `malloc`, `free` and `malloc_consolidate` were 29% of the samples. So a retired
//! node's value is dropped as before, but its memory goes to a small free list of the thread
//! that runs the collection, and that thread's next write takes it from there. Entries, retired
//! by removals and evictions, go the same way.
//!
//! Blocks are kept per memory layout, so nodes of every cache and value type with the same
//! size and alignment share them. A thread keeps at most [`kept_per_layout`] blocks per layout
//! and frees the rest, and frees all of them when it exits. Under loom the pool is bypassed:
//! the models check the protocols, not the allocator (a pool in loom's thread locals made a
//! model fail loom's determinism check once in two runs). Freed memory still comes back at the
//! same address there, from the system allocator's own per-thread cache.

#[cfg(not(loom))]
use std::alloc::Layout;
use std::mem::MaybeUninit;
use std::ptr::NonNull;

/// Blocks a thread keeps per layout, at most.
#[cfg(not(loom))]
const KEPT_BLOCKS: usize = 256;
/// Bytes a thread keeps per layout, at most (so values stored inline in big nodes do not make
/// every thread hold megabytes).
#[cfg(not(loom))]
const KEPT_BYTES: usize = 16 << 10;

/// How many free blocks of `layout` a thread keeps: 256 of the 48-byte nodes of a `u64` cache,
/// 4 of a node holding a 4 KiB array.
#[cfg(not(loom))]
fn kept_per_layout(layout: Layout) -> usize {
    (KEPT_BYTES / layout.size().max(1)).clamp(1, KEPT_BLOCKS)
}

/// `value` in a `Box` whose memory is recycled if this thread holds a block of `T`'s layout, and
/// freshly allocated otherwise.
pub(super) fn boxed<T>(value: T) -> Box<T> {
    assert!(
        std::mem::size_of::<T>() != 0,
        "nodes hold a version: never zero-sized"
    );
    #[cfg(not(loom))]
    if let Some(block) = pool::take(Layout::new::<T>()) {
        let block = block.as_ptr().cast::<T>();
        // SAFETY: blocks in the pool were allocated by the global allocator with exactly
        // `Layout::new::<T>()` (they are filed by layout), hold no live value, and are owned by
        // nobody else once taken: writing a `T` there makes it a valid `Box<T>` allocation.
        unsafe {
            block.write(value);
            return Box::from_raw(block);
        }
    }
    Box::new(value)
}

/// Moves the `T` out of `boxed` and keeps its memory for this thread's next [`boxed`] of that
/// layout (a node that was never published, taken apart again).
pub(super) fn unboxed<T>(boxed: Box<T>) -> T {
    let ptr = Box::into_raw(boxed);
    // SAFETY: `ptr` owns a live `T` (it was a `Box`); it is read out once, after which the
    // memory holds no value and is handed back as such.
    let value = unsafe { ptr.read() };
    // SAFETY: the memory is the `Box` allocation of a `T`, now uninitialised, owned by nobody.
    unsafe { keep_or_free(NonNull::new_unchecked(ptr)) };
    value
}

/// Drops the `T` at `ptr` and keeps its memory for this thread's next [`boxed`] of that layout
/// (or frees it if the thread keeps enough).
///
/// # Safety
///
/// `ptr` must own a live `T` in memory allocated as by `Box::new` (a `Box<T>` or crossbeam
/// `Owned<T>` given up with `into_raw`, or a retired `Shared` of one), which nobody else will
/// use again.
pub(super) unsafe fn release<T>(ptr: NonNull<T>) {
    // SAFETY: the caller hands over a live, owned `T`. It is dropped before the pool is touched,
    // so a `Drop` of `T` that writes to a cache (and so allocates) cannot find the pool borrowed.
    unsafe { std::ptr::drop_in_place(ptr.as_ptr()) };
    // SAFETY: the memory is the `Box` allocation of a `T` (the caller's contract), now
    // uninitialised, owned by nobody else.
    unsafe { keep_or_free(ptr) };
}

/// Keeps the memory at `ptr` for this thread's next [`boxed`] of `T`'s layout, or frees it.
///
/// # Safety
///
/// `ptr` must be the `Box` allocation of a `T` holding no value, owned by nobody else.
unsafe fn keep_or_free<T>(ptr: NonNull<T>) {
    #[cfg(not(loom))]
    if pool::keep(Layout::new::<T>(), ptr.cast()).is_ok() {
        return;
    }
    // SAFETY: the caller's contract; the pool did not take it.
    drop(unsafe { Box::from_raw(ptr.as_ptr().cast::<MaybeUninit<T>>()) });
}

/// How many free blocks of `T`'s layout this thread keeps.
#[cfg(all(test, not(loom)))]
pub(super) fn kept<T>() -> usize {
    pool::kept(Layout::new::<T>())
}

#[cfg(not(loom))]
mod pool {
    use std::alloc::Layout;
    use std::cell::RefCell;
    use std::ptr::NonNull;

    use super::kept_per_layout;

    /// Size classes found by index (align at most 8, size a multiple of 8 up to this): every
    /// node of a cache of small keys and values. Other layouts go to a short list.
    const CLASSES: usize = 32;

    /// This thread's free blocks, by layout.
    struct Pool {
        classes: [Vec<NonNull<u8>>; CLASSES],
        /// Blocks of the other layouts (a program has few: a short list).
        others: Vec<(Layout, Vec<NonNull<u8>>)>,
    }

    /// The class of a layout that has one; computed at compile time for a node type.
    #[inline]
    fn class(layout: Layout) -> Option<usize> {
        let size = layout.size();
        (layout.align() <= 8 && size % 8 == 0 && (8..=8 * CLASSES).contains(&size))
            .then(|| size / 8 - 1)
    }

    impl Pool {
        #[inline]
        fn blocks(&mut self, layout: Layout) -> &mut Vec<NonNull<u8>> {
            if let Some(class) = class(layout) {
                return &mut self.classes[class];
            }
            let index = match self.others.iter().position(|(kept, _)| *kept == layout) {
                Some(index) => index,
                None => {
                    self.others.push((layout, Vec::new()));
                    self.others.len() - 1
                }
            };
            &mut self.others[index].1
        }
    }

    impl Drop for Pool {
        fn drop(&mut self) {
            let classes = self.classes.iter_mut().enumerate().map(|(class, blocks)| {
                let layout = Layout::from_size_align(8 * (class + 1), 8).expect("a valid layout");
                (layout, std::mem::take(blocks))
            });
            let others = std::mem::take(&mut self.others);
            for (layout, blocks) in classes.collect::<Vec<_>>().into_iter().chain(others) {
                for block in blocks {
                    // SAFETY: every block was allocated by the global allocator with `layout`
                    // (blocks are filed by layout, a class holding a single one) and is owned by
                    // the pool alone.
                    unsafe { std::alloc::dealloc(block.as_ptr(), layout) };
                }
            }
        }
    }

    thread_local! {
        static POOL: RefCell<Pool> = const {
            RefCell::new(Pool {
                classes: [const { Vec::new() }; CLASSES],
                others: Vec::new(),
            })
        };
    }

    /// A free block of `layout`, if this thread keeps one.
    #[inline]
    pub(super) fn take(layout: Layout) -> Option<NonNull<u8>> {
        POOL.try_with(|pool| {
            let mut pool = pool.borrow_mut();
            let blocks = pool.blocks(layout);
            let block = blocks.pop();
            // The next write takes the next block, cold since its node was retired: start
            // loading it now.
            if let Some(next) = blocks.last() {
                crate::raw::prefetch(next.as_ptr());
            }
            block
        })
        .ok()
        .flatten()
    }

    /// How many free blocks of `layout` this thread keeps.
    #[cfg(test)]
    pub(super) fn kept(layout: Layout) -> usize {
        POOL.with(|pool| pool.borrow_mut().blocks(layout).len())
    }

    /// Keeps `block` (free memory of `layout` from the global allocator); hands it back if this
    /// thread keeps enough already, or is exiting.
    #[inline]
    pub(super) fn keep(layout: Layout, block: NonNull<u8>) -> Result<(), NonNull<u8>> {
        POOL.try_with(|pool| {
            let mut pool = pool.borrow_mut();
            let blocks = pool.blocks(layout);
            if blocks.len() < kept_per_layout(layout) {
                blocks.push(block);
                Ok(())
            } else {
                Err(block)
            }
        })
        .unwrap_or(Err(block))
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn released_memory_is_reused_by_the_next_box_of_its_layout() {
        let first = Box::into_raw(boxed(String::from("first")));
        let before = kept::<String>();
        // SAFETY: `first` is a live `Box<String>` given up with `into_raw`.
        unsafe { release(NonNull::new(first).unwrap()) };
        assert_eq!(kept::<String>(), before + 1);
        // Another layout does not take it.
        assert_eq!(*boxed(0u8), 0);
        assert_eq!(kept::<String>(), before + 1);
        let second = boxed(String::from("second"));
        assert_eq!(kept::<String>(), before);
        assert_eq!(&*second as *const String, first.cast_const());
        assert_eq!(*second, "second");
    }

    #[test]
    fn a_thread_keeps_a_bounded_number_of_blocks_and_frees_the_rest() {
        let kept_at_most = kept_per_layout(Layout::new::<[u64; 3]>());
        assert_eq!(kept_at_most, 256);
        let boxes: Vec<*mut [u64; 3]> = (0..kept_at_most + 10)
            .map(|i| Box::into_raw(boxed([i as u64; 3])))
            .collect();
        for &ptr in &boxes {
            // SAFETY: each is a live box given up with `into_raw`, released once.
            unsafe { release(NonNull::new(ptr).unwrap()) };
        }
        // The rest were freed: Miri's leak checker holds that to account.
        assert_eq!(kept::<[u64; 3]>(), kept_at_most);
        let reused: Vec<Box<[u64; 3]>> = (0..kept_at_most).map(|_| boxed([7; 3])).collect();
        assert_eq!(kept::<[u64; 3]>(), 0);
        assert!(reused.iter().all(|b| **b == [7; 3]));
    }

    /// A value whose `Drop` allocates from the pool and releases to it, while its own memory is
    /// being released.
    struct AllocatesOnDrop(u64);

    impl Drop for AllocatesOnDrop {
        fn drop(&mut self) {
            let inner = Box::into_raw(boxed(self.0 + 1));
            // SAFETY: a live box given up with `into_raw`.
            unsafe { release(NonNull::new(inner).unwrap()) };
        }
    }

    #[test]
    fn big_blocks_are_kept_by_the_byte() {
        type Page = [u8; 4096];
        let pages: Vec<*mut Page> = (0..8).map(|_| Box::into_raw(boxed([1u8; 4096]))).collect();
        for &page in &pages {
            // SAFETY: each is a live box given up with `into_raw`, released once.
            unsafe { release(NonNull::new(page).unwrap()) };
        }
        assert_eq!(kept::<Page>(), 4);
    }

    #[test]
    fn a_drop_that_allocates_does_not_find_the_pool_borrowed() {
        let outer = Box::into_raw(boxed(AllocatesOnDrop(1)));
        // SAFETY: a live box given up with `into_raw`.
        unsafe { release(NonNull::new(outer).unwrap()) };
        assert_eq!(boxed(AllocatesOnDrop(5)).0, 5);
    }

    #[test]
    fn a_block_released_on_another_thread_serves_that_thread() {
        let ptr = Box::into_raw(boxed(41u128)) as usize;
        std::thread::spawn(move || {
            // SAFETY: a live box given up with `into_raw`, handed to this thread.
            unsafe { release(NonNull::new(ptr as *mut u128).unwrap()) };
            assert_eq!(kept::<u128>(), 1);
            assert_eq!(*boxed(42u128), 42);
            assert_eq!(kept::<u128>(), 0);
        })
        .join()
        .unwrap();
        assert_eq!(
            kept::<u128>(),
            0,
            "the block stayed with the thread that released it"
        );
    }
}

//! Which items memcached 1.6.18 would still hold a reference to on this connection, so that an
//! `incr`/`decr`/`ma` gives the stored value memcached gives.
//!
//! memcached rewrites an arithmetic result in place, space-padded to the old length (`"39 "`),
//! only when nobody else references the item (`do_add_delta`: `refcount == 2`); otherwise it
//! stores a new, unpadded item (`"39"`) without the old one's stale and win-token marks. An
//! `mg` hit keeps its reference in the reply until the connection's replies are written out, so
//! a later arithmetic on the same item in that stretch stores the unpadded form. Other commands
//! release their item before the next one runs (a classic `get` writes its replies out at once).
//!
//! memcached writes replies out (and so drops the references) when:
//! - a classic `get`/`gets`/`gat`/`gats` or an `mn` ends;
//! - its read buffer holds no further complete request line: it reads at most
//!   [`READ_BUFFER_SIZE`] bytes at a time, counted from the first byte not yet used, and a
//!   request whose data runs past the buffer has the rest read straight into the item (or
//!   swallowed), after which the buffer is empty;
//! - it has run `reqs_per_event` (20) + 1 requests since the read that started the burst, or 20
//!   since the last such forced write-out.
//!
//! So this record is kept per item (a `set` over a referenced item gives an unreferenced one) and
//! cleared at those points. The server says where the client's bytes paused
//! ([`Session::handle`](crate::session::Session::handle) for a new burst,
//! [`Session::handle_more`](crate::session::Session::handle_more) for bytes that were already
//! waiting), as memcached's next read starts a new event only after it found the socket empty.
//!
//! What cannot be reproduced: references held by other connections (memcached's replies are
//! released a moment after they are sent, so across connections the result depends on timing),
//! and a write-out that finds the client's socket full (memcached then restarts its request count).

use cascache::Version;

/// memcached's per-connection read buffer (`READ_BUFFER_SIZE`).
pub const READ_BUFFER_SIZE: usize = 16384;
/// Requests memcached runs after a read before it writes replies out: `reqs_per_event` (20)
/// counts down after each request and the write-out comes when it goes below 0.
const FIRST_BURST_REQUESTS: u32 = 21;
/// Requests between two forced write-outs: the event after a yield counts its first step too.
const LATER_BURST_REQUESTS: u32 = 20;

/// The record for one connection.
#[derive(Debug)]
pub struct Unflushed {
    /// Versions of the items an `mg` hit referenced since the last write-out.
    held: Vec<Version>,
    /// Requests left before memcached's forced write-out.
    requests_left: u32,
    /// Bytes left in memcached's read buffer, from the next request on.
    buffer_left: usize,
}

impl Default for Unflushed {
    fn default() -> Self {
        Unflushed {
            held: Vec::new(),
            requests_left: FIRST_BURST_REQUESTS,
            buffer_left: READ_BUFFER_SIZE,
        }
    }
}

impl Unflushed {
    /// memcached reads anew: replies written out, a full buffer, a fresh request count.
    pub fn new_read(&mut self) {
        self.held.clear();
        self.requests_left = FIRST_BURST_REQUESTS;
        self.buffer_left = READ_BUFFER_SIZE;
    }

    /// Before a request whose bytes start `request`: if its line is not within memcached's
    /// buffer, memcached writes out and reads again first.
    pub fn before(&mut self, request: &[u8]) {
        if request.len() <= self.buffer_left {
            return;
        }
        let line = request
            .iter()
            .position(|&b| b == b'\n')
            .map_or(request.len(), |end| end + 1);
        if self.buffer_left == 0 || line > self.buffer_left {
            self.new_read();
        }
    }

    /// After a request of `len` bytes (data and swallowed bytes included); `writes_out`: a
    /// classic get or `mn`, which memcached answers at once.
    pub fn after(&mut self, len: usize, writes_out: bool) {
        if writes_out {
            self.held.clear();
        }
        self.requests_left -= 1;
        if self.requests_left == 0 {
            self.held.clear();
            self.requests_left = LATER_BURST_REQUESTS;
        }
        if len >= self.buffer_left {
            // The buffer is used up (the rest of the data went straight into the item).
            self.new_read();
        } else {
            self.buffer_left -= len;
        }
    }

    /// An `mg` hit's reply references the item of this version.
    pub fn hold(&mut self, version: Version) {
        self.held.push(version);
    }

    /// Whether an unsent reply references the item of this version.
    pub fn holds(&self, version: Version) -> bool {
        self.held.contains(&version)
    }

    /// `md … I` marks the item stale in place in memcached (here: a new version of it).
    pub fn renewed(&mut self, old: Version, new: Version) {
        if self.holds(old) {
            self.held.push(new);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forced_write_out_after_21_then_every_20_requests() {
        let mut unflushed = Unflushed::default();
        let version = Version::from_raw(7).unwrap();
        for burst in [
            FIRST_BURST_REQUESTS,
            LATER_BURST_REQUESTS,
            LATER_BURST_REQUESTS,
        ] {
            unflushed.hold(version);
            for _ in 1..burst {
                unflushed.after(9, false);
                assert!(unflushed.holds(version));
            }
            unflushed.after(9, false);
            assert!(!unflushed.holds(version));
        }
    }
}

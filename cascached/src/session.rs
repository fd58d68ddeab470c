//! One connection's side of the protocol, without IO: [`Session::handle`] takes the bytes
//! received so far, runs every complete request against the store, appends the replies, and
//! says how many bytes it used and what the connection should do next. The server's event loop
//! owns the sockets; tests and the fuzz target call this directly.

use std::io::Write as _;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use cascache::Version;

use crate::config::Config;
use crate::protocol::number::{push_i64, push_u64};
use crate::protocol::reply::{NON_NUMERIC, TOO_LARGE};
use crate::protocol::{
    base64, parse, Command, Get, Limits, MetaArithmetic, MetaDelete, MetaFlags, MetaGet, MetaSet,
    Parsed, Request, SetMode, StatsGroup, Store as StoreCommand, StoreMode,
};
use crate::stats::{Counter, Counters, ServerStats};
use crate::store::{
    ArithmeticOutcome, DeleteOutcome, Item, Lookup, Now, Store, WriteOutcome, ITEM_OVERHEAD,
};
use crate::unflushed::Unflushed;

/// What `version` and `stats` report: the memcached protocol version this server follows, then
/// its own.
pub const VERSION: &str = concat!("1.6.18-cascached-", env!("CARGO_PKG_VERSION"));

/// Replies are written out once they pass this size, before more requests run, so a client
/// that pipelines many large reads without reading replies cannot grow the buffer unbounded.
const OUTPUT_HIGH_WATER: usize = 1 << 20;

/// Everything the connections share.
pub struct Shared {
    /// The options the server runs with.
    pub config: Config,
    /// The parser's limits, from the options.
    pub limits: Limits,
    /// The items.
    pub store: Store,
    /// The counters.
    pub stats: ServerStats,
}

impl Shared {
    /// The shared state for a server with these options.
    pub fn new(config: Config) -> Arc<Shared> {
        Arc::new(Shared {
            limits: Limits {
                max_item_size: config.max_item_size,
            },
            store: Store::new(config.memory_limit, config.max_item_size),
            stats: ServerStats::default(),
            config,
        })
    }
}

/// What the connection should do after [`Session::handle`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// Every complete request ran: send the replies, then read more.
    Read,
    /// Replies reached the high-water mark: send them, then call `handle` again with the
    /// unconsumed input before reading more.
    Flush,
    /// `quit`: send the replies, then close.
    Quit,
    /// A protocol violation (line too long, HTTP): close now, dropping unsent replies.
    Close,
}

/// The result of [`Session::handle`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress {
    /// Input bytes used; the caller drops them and passes the rest (plus new bytes) next time.
    pub consumed: usize,
    /// What to do next.
    pub next: Next,
}

/// The protocol state of one connection.
pub struct Session {
    shared: Arc<Shared>,
    counters: Arc<Counters>,
    /// Bytes of a refused data block still to discard.
    swallow: usize,
    /// The items memcached's unsent replies would still reference (its in-place `incr` rule).
    unflushed: Unflushed,
}

impl Session {
    /// A session on `shared`, counting into `counters` (its worker thread's block).
    pub fn new(shared: Arc<Shared>, counters: Arc<Counters>) -> Session {
        Session {
            shared,
            counters,
            swallow: 0,
            unflushed: Unflushed::default(),
        }
    }

    /// Whether the session is discarding a refused data block: memcached's idle timeout does
    /// not close a connection in the middle of a request.
    pub fn swallowing(&self) -> bool {
        self.swallow > 0
    }

    /// Runs the complete requests at the front of `input`, appending their replies to `out`.
    ///
    /// ```
    /// use cascached::config::Config;
    /// use cascached::session::{Next, Session, Shared};
    ///
    /// let shared = Shared::new(Config::default());
    /// let mut session = Session::new(shared.clone(), shared.stats.new_block());
    /// let mut out = Vec::new();
    /// let progress = session.handle(b"set k 0 0 2\r\nhi\r\nget k\r\nget", &mut out);
    /// assert_eq!(out, b"STORED\r\nVALUE k 0 2\r\nhi\r\nEND\r\n");
    /// assert_eq!((progress.consumed, progress.next), (24, Next::Read)); // "get" waits for more
    /// ```
    pub fn handle(&mut self, input: &[u8], out: &mut Vec<u8>) -> Progress {
        self.unflushed.new_read();
        self.handle_more(input, out)
    }

    /// [`handle`](Session::handle) for input that continues the last call's without a pause:
    /// bytes that were already waiting in the socket when the last read returned (it filled the
    /// buffer), or the rest after [`Next::Flush`]. memcached would have read them in the same
    /// burst, which decides when it writes replies out (see [`crate::unflushed`]).
    pub fn handle_more(&mut self, input: &[u8], out: &mut Vec<u8>) -> Progress {
        let shared = &*self.shared;
        let now = shared.store.now();
        shared.store.run_due_flush(now);
        let executor = Executor {
            shared,
            counters: &self.counters,
            now,
        };
        let mut consumed = 0;
        loop {
            if self.swallow > 0 {
                let discard = self.swallow.min(input.len() - consumed);
                self.swallow -= discard;
                consumed += discard;
                if self.swallow > 0 {
                    // memcached reads the rest straight from the socket, emptying its buffer.
                    self.unflushed.new_read();
                    return progress(consumed, Next::Read);
                }
            }
            if consumed == input.len() {
                return progress(consumed, Next::Read);
            }
            if out.len() >= OUTPUT_HIGH_WATER {
                return progress(consumed, Next::Flush);
            }
            match parse(&input[consumed..], &shared.limits) {
                Parsed::Incomplete => return progress(consumed, Next::Read),
                Parsed::Close => return progress(consumed, Next::Close),
                Parsed::Request {
                    request,
                    consumed: used,
                } => {
                    self.unflushed.before(&input[consumed..consumed + used]);
                    consumed += used;
                    let writes_out = matches!(
                        request,
                        Request::Command(Command::Get(_) | Command::MetaNoop)
                    );
                    match request {
                        Request::Error {
                            message,
                            quiet,
                            swallow,
                        } => {
                            if !quiet {
                                line(out, message);
                            }
                            self.swallow = swallow;
                        }
                        Request::Command(Command::Quit) => return progress(consumed, Next::Quit),
                        Request::Command(command) => {
                            self.swallow = executor.run(command, &mut self.unflushed, out);
                        }
                    }
                    // A swallow that outlasts the input is accounted for when it is done.
                    let swallowed = self.swallow.min(input.len() - consumed);
                    self.unflushed.after(used + swallowed, writes_out);
                }
            }
        }
    }
}

fn progress(consumed: usize, next: Next) -> Progress {
    Progress { consumed, next }
}

fn line(out: &mut Vec<u8>, text: &str) {
    out.extend_from_slice(text.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Runs commands for one batch of input (one reading of the clock).
struct Executor<'s> {
    shared: &'s Shared,
    counters: &'s Counters,
    now: Now,
}

impl Executor<'_> {
    fn store(&self) -> &Store {
        &self.shared.store
    }

    fn count(&self, counter: Counter) {
        self.counters.count(counter);
    }

    fn deadline(&self, exptime: i32) -> u64 {
        self.store().deadline(exptime, self.now)
    }

    /// Runs one command; returns how many input bytes to swallow after it.
    fn run(&self, command: Command<'_>, unflushed: &mut Unflushed, out: &mut Vec<u8>) -> usize {
        match command {
            Command::Get(get) => self.get(&get, out),
            Command::Store(store) => self.store_command(&store, out),
            Command::Delete { key, noreply } => self.delete(key, noreply, out),
            Command::Arithmetic {
                key,
                delta,
                incr,
                noreply,
            } => self.arithmetic(key, delta, incr, noreply, unflushed, out),
            Command::Touch {
                key,
                exptime,
                noreply,
            } => self.touch(key, exptime, noreply, out),
            Command::FlushAll { delay, noreply } => {
                self.count(Counter::CmdFlush);
                self.store().flush(delay, self.now);
                if !noreply {
                    line(out, "OK");
                }
            }
            Command::Stats(group) => self.stats(group, out),
            Command::Version => {
                out.extend_from_slice(b"VERSION ");
                line(out, VERSION);
            }
            Command::Verbosity { noreply } => {
                if !noreply {
                    line(out, "OK");
                }
            }
            // Handled by the session: it ends the batch.
            Command::Quit => {}
            Command::MetaGet(get) => self.meta_get(&get, unflushed, out),
            Command::MetaSet(set) => self.meta_set(&set, out),
            Command::MetaDelete(delete) => self.meta_delete(&delete, unflushed, out),
            Command::MetaArithmetic(arithmetic) => {
                self.meta_arithmetic(&arithmetic, unflushed, out)
            }
            Command::MetaNoop => line(out, "MN"),
            Command::MetaDebug { key } => self.meta_debug(&key, out),
            Command::TooLarge(too_large) => {
                self.count(Counter::StoreTooLarge);
                if too_large.delete_old {
                    self.store().delete(&too_large.key, None, self.now);
                }
                if !too_large.quiet {
                    line(out, TOO_LARGE);
                }
                return too_large.swallow;
            }
        }
        0
    }

    fn get(&self, get: &Get<'_>, out: &mut Vec<u8>) {
        let deadline = get.touch.map(|exptime| self.deadline(exptime));
        let (command, hit, miss) = match deadline {
            Some(_) => (Counter::CmdTouch, Counter::TouchHits, Counter::TouchMisses),
            None => (Counter::CmdGet, Counter::GetHits, Counter::GetMisses),
        };
        let view = self.store().view(self.now);
        for key in get.keys() {
            self.count(command);
            match view.lookup(key) {
                Lookup::Hit(item, version) => {
                    self.count(hit);
                    if let Some(deadline) = deadline {
                        item.set_deadline(deadline);
                    }
                    item.mark_fetched(self.now);
                    out.extend_from_slice(b"VALUE ");
                    out.extend_from_slice(key);
                    out.push(b' ');
                    push_u64(out, u64::from(item.flags()));
                    out.push(b' ');
                    push_u64(out, item.data().len() as u64);
                    if get.with_cas {
                        out.push(b' ');
                        push_u64(out, version.get());
                    }
                    out.extend_from_slice(b"\r\n");
                    out.extend_from_slice(item.data());
                    out.extend_from_slice(b"\r\n");
                }
                Lookup::Expired => {
                    self.count(miss);
                    if deadline.is_none() {
                        self.count(Counter::GetExpired);
                    }
                }
                Lookup::Miss => self.count(miss),
            }
        }
        out.extend_from_slice(b"END\r\n");
    }

    fn store_command(&self, command: &StoreCommand<'_>, out: &mut Vec<u8>) {
        self.count(Counter::CmdSet);
        let (store, now) = (self.store(), self.now);
        let deadline = self.deadline(command.exptime);
        let make = || Item::new(command.data.into(), command.flags, deadline, false, now);
        let key = command.key;
        let outcome = match command.mode {
            StoreMode::Set => WriteOutcome::Stored(store.set(key, make())),
            StoreMode::Add => store.add(key, now, make),
            StoreMode::Replace => store.replace(key, now, make),
            StoreMode::Append | StoreMode::Prepend => store.concat(
                key,
                command.data,
                command.mode == StoreMode::Append,
                None,
                |old| self.shared.limits.max_data_len(key.len(), old.flags()),
                now,
            ),
            StoreMode::Cas(unique) => {
                let outcome = store.compare_and_swap(key, unique, false, now, make);
                self.count_cas(outcome);
                outcome
            }
        };
        if let WriteOutcome::Stored(_) = outcome {
            self.count(Counter::TotalItems);
        }
        if !command.noreply {
            line(
                out,
                match outcome {
                    WriteOutcome::Stored(_) => "STORED",
                    WriteOutcome::NotStored => "NOT_STORED",
                    WriteOutcome::Exists => "EXISTS",
                    WriteOutcome::NotFound => "NOT_FOUND",
                },
            );
        }
    }

    fn count_cas(&self, outcome: WriteOutcome) {
        self.count(match outcome {
            WriteOutcome::Stored(_) => Counter::CasHits,
            WriteOutcome::NotFound => Counter::CasMisses,
            WriteOutcome::Exists | WriteOutcome::NotStored => Counter::CasBadval,
        });
    }

    fn delete(&self, key: &[u8], noreply: bool, out: &mut Vec<u8>) {
        let deleted = self.store().delete(key, None, self.now) == DeleteOutcome::Deleted;
        self.count(if deleted {
            Counter::DeleteHits
        } else {
            Counter::DeleteMisses
        });
        if !noreply {
            line(out, if deleted { "DELETED" } else { "NOT_FOUND" });
        }
    }

    fn arithmetic(
        &self,
        key: &[u8],
        delta: u64,
        incr: bool,
        noreply: bool,
        unflushed: &Unflushed,
        out: &mut Vec<u8>,
    ) {
        let (hit, miss) = if incr {
            (Counter::IncrHits, Counter::IncrMisses)
        } else {
            (Counter::DecrHits, Counter::DecrMisses)
        };
        match self.store().arithmetic(
            key,
            incr,
            delta,
            None,
            None,
            |version| unflushed.holds(version),
            self.now,
        ) {
            ArithmeticOutcome::Updated { value, .. } => {
                self.count(hit);
                if !noreply {
                    push_u64(out, value);
                    out.extend_from_slice(b"\r\n");
                }
            }
            ArithmeticOutcome::NonNumeric => {
                if !noreply {
                    line(out, NON_NUMERIC);
                }
            }
            ArithmeticOutcome::NotFound | ArithmeticOutcome::Exists => {
                self.count(miss);
                if !noreply {
                    line(out, "NOT_FOUND");
                }
            }
        }
    }

    fn touch(&self, key: &[u8], exptime: i32, noreply: bool, out: &mut Vec<u8>) {
        self.count(Counter::CmdTouch);
        let touched = match self.store().view(self.now).lookup(key) {
            Lookup::Hit(item, _) => {
                item.set_deadline(self.deadline(exptime));
                item.mark_fetched(self.now);
                true
            }
            Lookup::Miss | Lookup::Expired => false,
        };
        self.count(if touched {
            Counter::TouchHits
        } else {
            Counter::TouchMisses
        });
        if !noreply {
            line(out, if touched { "TOUCHED" } else { "NOT_FOUND" });
        }
    }

    // ----- meta commands -----

    fn meta_get(&self, get: &MetaGet<'_>, unflushed: &mut Unflushed, out: &mut Vec<u8>) {
        self.count(Counter::CmdGet);
        let flags = &get.flags;
        let view = self.store().view(self.now);
        loop {
            let lookup = view.lookup(&get.key);
            if let Lookup::Hit(item, version) = lookup {
                // The reply references the item until it is written out.
                unflushed.hold(version);
                return self.meta_hit(get, item, version, out);
            }
            if flags.vivify.is_some() {
                // Anti-dogpiling: the first client to miss creates an empty item and wins the
                // token to fill it (`W`); the others see the placeholder with `Z`.
                let deadline = self.vivified_deadline(flags);
                let outcome = self.store().add(&get.key, self.now, || {
                    let item = Item::new(Box::default(), 0, deadline, flags.base64_key, self.now);
                    item.claim_token();
                    item
                });
                if let WriteOutcome::Stored(version) = outcome {
                    self.count(Counter::TotalItems);
                    unflushed.hold(version);
                    return self.meta_vivified(get, version, out);
                }
                // Someone else created it meanwhile: read theirs.
                continue;
            }
            self.count(Counter::GetMisses);
            if let Lookup::Expired = lookup {
                self.count(Counter::GetExpired);
            }
            if !flags.quiet {
                out.extend_from_slice(b"EN");
                echo_flags(flags, &get.key, flags.base64_key, out);
                out.extend_from_slice(b"\r\n");
            }
            return;
        }
    }

    /// The deadline of an item `mg … N` or `ma … N` creates: the last of `N` and `T` wins, as
    /// memcached applies them in request order.
    fn vivified_deadline(&self, flags: &MetaFlags<'_>) -> u64 {
        let mut deadline = 0;
        for token in flags.tokens() {
            match (token[0], flags.vivify, flags.ttl) {
                (b'N', Some(exptime), _) | (b'T', _, Some(exptime)) => {
                    deadline = self.deadline(exptime);
                }
                _ => {}
            }
        }
        deadline
    }

    fn meta_hit(&self, get: &MetaGet<'_>, item: &Item, version: Version, out: &mut Vec<u8>) {
        let flags = &get.flags;
        let token_was_sent = item.token_sent();
        let mut deadline = item.deadline();
        let mut touched = false;
        let mut wins = false;
        if flags.value {
            out.extend_from_slice(b"VA ");
            push_u64(out, item.data().len() as u64);
        } else {
            out.extend_from_slice(b"HD");
        }
        for token in flags.tokens() {
            match token[0] {
                b'T' => {
                    if let Some(exptime) = flags.ttl {
                        deadline = self.deadline(exptime);
                        item.set_deadline(deadline);
                        touched = true;
                    }
                }
                // Recache: the first client to see the TTL below the threshold wins.
                b'R' => {
                    if let Some(threshold) = flags.recache {
                        let threshold = self.deadline(threshold);
                        wins |= !token_was_sent && deadline != 0 && deadline < threshold;
                    }
                }
                b's' => flag_number(out, b's', item.data().len() as u64),
                b't' => {
                    out.extend_from_slice(b" t");
                    push_i64(out, self.now.seconds_until(deadline));
                }
                b'c' => flag_number(out, b'c', version.get()),
                b'f' => flag_number(out, b'f', u64::from(item.flags())),
                b'l' => flag_number(out, b'l', u64::from(item.idle_seconds(self.now))),
                b'h' => flag_number(out, b'h', u64::from(item.fetched())),
                b'O' => echo_opaque(out, token),
                b'k' => echo_key(out, &get.key, item.binary_key()),
                _ => {}
            }
        }
        let stale = item.stale();
        // A stale item's first reader is told to refresh it.
        wins |= stale && !token_was_sent;
        let won = wins && item.claim_token();
        if token_was_sent || (wins && !won) {
            out.extend_from_slice(b" Z");
        }
        if stale {
            out.extend_from_slice(b" X");
        }
        if won {
            out.extend_from_slice(b" W");
        }
        out.extend_from_slice(b"\r\n");
        if flags.value {
            out.extend_from_slice(item.data());
            out.extend_from_slice(b"\r\n");
        }
        if !flags.no_update {
            item.mark_fetched(self.now);
        }
        if touched {
            self.count(Counter::CmdTouch);
            self.count(Counter::TouchHits);
        } else {
            self.count(Counter::GetHits);
        }
    }

    /// The reply to the `mg … N` that created the (empty) item: it holds the win token.
    fn meta_vivified(&self, get: &MetaGet<'_>, version: Version, out: &mut Vec<u8>) {
        let flags = &get.flags;
        out.extend_from_slice(if flags.value { b"VA 0" } else { b"HD" });
        let mut deadline = 0;
        for token in flags.tokens() {
            match (token[0], flags.vivify, flags.ttl) {
                (b'N', Some(exptime), _) | (b'T', _, Some(exptime)) => {
                    deadline = self.deadline(exptime);
                }
                (b't', ..) => {
                    out.extend_from_slice(b" t");
                    push_i64(out, self.now.seconds_until(deadline));
                }
                (b's' | b'f' | b'l' | b'h', ..) => flag_number(out, token[0], 0),
                (b'c', ..) => flag_number(out, b'c', version.get()),
                (b'O', ..) => echo_opaque(out, token),
                (b'k', ..) => echo_key(out, &get.key, flags.base64_key),
                _ => {}
            }
        }
        out.extend_from_slice(b" W\r\n");
        if flags.value {
            out.extend_from_slice(b"\r\n");
        }
        self.count(Counter::GetHits);
    }

    /// `me`: `ME <key> exp=… la=… cas=… fetch=… cls=… size=…`, sizes as memcached counts them
    /// (this server has no slab classes: `cls` is always 1).
    fn meta_debug(&self, key: &[u8], out: &mut Vec<u8>) {
        let view = self.store().view(self.now);
        let Lookup::Hit(item, version) = view.lookup(key) else {
            return line(out, "EN");
        };
        out.extend_from_slice(b"ME ");
        if item.binary_key() {
            base64::encode_into(key, out);
        } else {
            out.extend_from_slice(key);
        }
        let flags_len = if item.flags() == 0 { 0 } else { 4 };
        let size = crate::protocol::ITEM_HEADER_LEN + key.len() + flags_len + item.data().len();
        let _ = write!(
            out,
            " exp={} la={} cas={} fetch={} cls=1 size={size}\r\n",
            // memcached 1.6.18 prints the time left negated.
            match item.deadline() {
                0 => -1,
                deadline => -self.now.seconds_until(deadline),
            },
            item.idle_seconds(self.now),
            version.get(),
            if item.fetched() { "yes" } else { "no" },
        );
    }

    fn meta_set(&self, set: &MetaSet<'_>, out: &mut Vec<u8>) {
        self.count(Counter::CmdSet);
        let (store, now, flags) = (self.store(), self.now, &set.flags);
        let deadline = flags.ttl.map_or(0, |exptime| self.deadline(exptime));
        let client_flags = flags.client_flags.unwrap_or(0);
        let make = || {
            Item::new(
                set.data.into(),
                client_flags,
                deadline,
                flags.base64_key,
                now,
            )
        };
        let key = &set.key;
        let outcome = match (set.mode, flags.compare) {
            (SetMode::Set, None) => WriteOutcome::Stored(store.set(key, make())),
            // With a CAS unique, set and replace are a cas.
            (SetMode::Set | SetMode::Replace, Some(unique)) => {
                let outcome = store.compare_and_swap(key, unique, flags.invalidate, now, make);
                self.count_cas(outcome);
                outcome
            }
            (SetMode::Replace, None) => store.replace(key, now, make),
            (SetMode::Add, _) => store.add(key, now, make),
            (SetMode::Append | SetMode::Prepend, compare) => store.concat(
                key,
                set.data,
                set.mode == SetMode::Append,
                compare,
                |old| self.shared.limits.max_data_len(key.len(), old.flags()),
                now,
            ),
        };
        let (code, unique): (&[u8], u64) = match outcome {
            WriteOutcome::Stored(version) => {
                self.count(Counter::TotalItems);
                if flags.quiet {
                    return;
                }
                (b"HD", version.get())
            }
            WriteOutcome::NotStored => (b"NS", 0),
            WriteOutcome::Exists => (b"EX", 0),
            WriteOutcome::NotFound => (b"NF", 0),
        };
        out.extend_from_slice(code);
        for token in flags.tokens() {
            match token[0] {
                b'O' => echo_opaque(out, token),
                b'k' => echo_key(out, key, flags.base64_key),
                b'c' => flag_number(out, b'c', unique),
                _ => {}
            }
        }
        out.extend_from_slice(b"\r\n");
    }

    fn meta_delete(&self, delete: &MetaDelete<'_>, unflushed: &mut Unflushed, out: &mut Vec<u8>) {
        let flags = &delete.flags;
        let outcome = if flags.invalidate {
            let deadline = flags.ttl.map(|exptime| self.deadline(exptime));
            let marked = self
                .store()
                .mark_stale(&delete.key, flags.compare, deadline, self.now);
            marked.map_or_else(
                |outcome| outcome,
                |(old, new)| {
                    unflushed.renewed(old, new);
                    DeleteOutcome::Deleted
                },
            )
        } else {
            self.store().delete(&delete.key, flags.compare, self.now)
        };
        let code: &[u8] = match outcome {
            DeleteOutcome::Deleted => {
                if !flags.invalidate {
                    self.count(Counter::DeleteHits);
                }
                if flags.quiet {
                    return;
                }
                b"HD"
            }
            DeleteOutcome::NotFound => {
                self.count(Counter::DeleteMisses);
                b"NF"
            }
            DeleteOutcome::Exists => {
                self.count(Counter::DeleteMisses);
                b"EX"
            }
        };
        out.extend_from_slice(code);
        echo_flags(flags, &delete.key, flags.base64_key, out);
        out.extend_from_slice(b"\r\n");
    }

    fn meta_arithmetic(
        &self,
        arithmetic: &MetaArithmetic<'_>,
        unflushed: &Unflushed,
        out: &mut Vec<u8>,
    ) {
        let flags = &arithmetic.flags;
        let key = &arithmetic.key;
        let (hit, miss) = if arithmetic.incr {
            (Counter::IncrHits, Counter::IncrMisses)
        } else {
            (Counter::DecrHits, Counter::DecrMisses)
        };
        let new_deadline = flags.ttl.map(|exptime| self.deadline(exptime));
        loop {
            let outcome = self.store().arithmetic(
                key,
                arithmetic.incr,
                flags.delta.unwrap_or(1),
                flags.compare,
                new_deadline,
                |version| unflushed.holds(version),
                self.now,
            );
            let code: &[u8] = match outcome {
                ArithmeticOutcome::Updated {
                    value,
                    version,
                    previous_deadline,
                } => {
                    self.count(hit);
                    if arithmetic.opaque_too_long {
                        return line(out, "CLIENT_ERROR opaque token too long");
                    }
                    if !flags.quiet {
                        self.meta_number(arithmetic, value, version, previous_deadline, false, out);
                    }
                    return;
                }
                ArithmeticOutcome::NotFound if flags.vivify.is_some() => {
                    let initial = flags.initial.unwrap_or(0);
                    let mut digits = Vec::new();
                    push_u64(&mut digits, initial);
                    let deadline = self.vivified_deadline(flags);
                    let outcome = self.store().add(key, self.now, || {
                        Item::new(
                            digits.as_slice().into(),
                            0,
                            deadline,
                            flags.base64_key,
                            self.now,
                        )
                    });
                    if let WriteOutcome::Stored(version) = outcome {
                        self.count(Counter::TotalItems);
                        return self.meta_number(arithmetic, initial, version, 0, true, out);
                    }
                    // Created by someone else meanwhile: apply the delta to theirs.
                    continue;
                }
                ArithmeticOutcome::NotFound => {
                    self.count(miss);
                    b"NF"
                }
                ArithmeticOutcome::Exists => b"EX",
                ArithmeticOutcome::NonNumeric => return line(out, NON_NUMERIC),
            };
            if arithmetic.opaque_too_long {
                return line(out, "CLIENT_ERROR opaque token too long");
            }
            out.extend_from_slice(code);
            echo_flags(flags, key, flags.base64_key, out);
            out.extend_from_slice(b"\r\n");
            return;
        }
    }

    /// `ma`'s reply with the number; `deadline` is the item's before `T`/`N` apply.
    fn meta_number(
        &self,
        arithmetic: &MetaArithmetic<'_>,
        value: u64,
        version: Version,
        mut deadline: u64,
        created: bool,
        out: &mut Vec<u8>,
    ) {
        let flags = &arithmetic.flags;
        let mut digits = Vec::with_capacity(20);
        push_u64(&mut digits, value);
        if flags.value {
            out.extend_from_slice(b"VA ");
            push_u64(out, digits.len() as u64);
        } else {
            out.extend_from_slice(b"HD");
        }
        for token in flags.tokens() {
            match (token[0], flags.vivify, flags.ttl) {
                (b'T', _, Some(exptime)) => deadline = self.deadline(exptime),
                (b'N', Some(exptime), _) if created => deadline = self.deadline(exptime),
                (b't', ..) => {
                    out.extend_from_slice(b" t");
                    push_i64(out, self.now.seconds_until(deadline));
                }
                (b'c', ..) => flag_number(out, b'c', version.get()),
                (b'O', ..) => echo_opaque(out, token),
                (b'k', ..) => echo_key(out, &arithmetic.key, flags.base64_key),
                _ => {}
            }
        }
        out.extend_from_slice(b"\r\n");
        if flags.value {
            out.extend_from_slice(&digits);
            out.extend_from_slice(b"\r\n");
        }
    }

    // ----- stats -----

    fn stats(&self, group: StatsGroup, out: &mut Vec<u8>) {
        let shared = self.shared;
        let config = &shared.config;
        match group {
            StatsGroup::Reset => {
                shared.stats.reset();
                return line(out, "RESET");
            }
            StatsGroup::Empty => {}
            StatsGroup::Settings => {
                stat(out, "maxbytes", config.memory_limit);
                stat(out, "maxconns", config.max_connections);
                stat(out, "tcpport", config.port);
                stat(out, "udpport", 0);
                stat(out, "inter", config.listen.join(","));
                stat(out, "evictions", "on");
                stat(out, "num_threads", config.threads);
                stat(out, "cas_enabled", "yes");
                stat(out, "item_size_max", config.max_item_size);
                stat(out, "idle_timeout", config.idle_timeout);
                stat(out, "maxconns_fast", "yes");
                stat(out, "flush_enabled", "yes");
            }
            StatsGroup::General => {
                let stats = &shared.stats;
                let store = self.store();
                let unix_time = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                let gauge = |value: &std::sync::atomic::AtomicU64| value.load(Ordering::Relaxed);
                stat(out, "pid", std::process::id());
                stat(out, "uptime", store.uptime().as_secs());
                stat(out, "time", unix_time);
                stat(out, "version", VERSION);
                stat(out, "pointer_size", usize::BITS);
                stat(out, "max_connections", config.max_connections);
                stat(out, "curr_connections", gauge(&stats.curr_connections));
                stat(out, "total_connections", gauge(&stats.total_connections));
                stat(
                    out,
                    "rejected_connections",
                    gauge(&stats.rejected_connections),
                );
                for (name, counter) in [
                    ("cmd_get", Counter::CmdGet),
                    ("cmd_set", Counter::CmdSet),
                    ("cmd_flush", Counter::CmdFlush),
                    ("cmd_touch", Counter::CmdTouch),
                    ("get_hits", Counter::GetHits),
                    ("get_misses", Counter::GetMisses),
                    ("get_expired", Counter::GetExpired),
                    ("delete_misses", Counter::DeleteMisses),
                    ("delete_hits", Counter::DeleteHits),
                    ("incr_misses", Counter::IncrMisses),
                    ("incr_hits", Counter::IncrHits),
                    ("decr_misses", Counter::DecrMisses),
                    ("decr_hits", Counter::DecrHits),
                    ("cas_misses", Counter::CasMisses),
                    ("cas_hits", Counter::CasHits),
                    ("cas_badval", Counter::CasBadval),
                    ("touch_hits", Counter::TouchHits),
                    ("touch_misses", Counter::TouchMisses),
                    ("store_too_large", Counter::StoreTooLarge),
                    ("bytes_read", Counter::BytesRead),
                    ("bytes_written", Counter::BytesWritten),
                ] {
                    stat(out, name, stats.sum(counter));
                }
                stat(out, "limit_maxbytes", store.limit_bytes());
                stat(out, "threads", config.threads);
                stat(out, "bytes", store.bytes());
                stat(out, "curr_items", store.len());
                stat(out, "total_items", stats.sum(Counter::TotalItems));
                stat(out, "evictions", store.evictions());
                stat(out, "item_overhead", ITEM_OVERHEAD);
                // Only with a timeout set, as memcached shows it.
                if config.idle_timeout > 0 {
                    stat(out, "idle_kicks", stats.sum(Counter::IdleKicks));
                }
            }
        }
        line(out, "END");
    }
}

fn stat(out: &mut Vec<u8>, name: &str, value: impl std::fmt::Display) {
    // Writing to a Vec cannot fail.
    let _ = write!(out, "STAT {name} {value}\r\n");
}

/// Echoes the `O` and `k` flags (for the replies that carry no item).
fn echo_flags(flags: &MetaFlags<'_>, key: &[u8], base64_key: bool, out: &mut Vec<u8>) {
    for token in flags.tokens() {
        match token[0] {
            b'O' => echo_opaque(out, token),
            b'k' => echo_key(out, key, base64_key),
            _ => {}
        }
    }
}

/// ` <letter><number>`.
fn flag_number(out: &mut Vec<u8>, letter: u8, value: u64) {
    out.push(b' ');
    out.push(letter);
    push_u64(out, value);
}

/// ` O<opaque>`: the token as the client sent it.
fn echo_opaque(out: &mut Vec<u8>, token: &[u8]) {
    out.push(b' ');
    out.extend_from_slice(token);
}

/// ` k<key>`, or ` k<base64> b` for a key the client gave in base64.
fn echo_key(out: &mut Vec<u8>, key: &[u8], base64_key: bool) {
    out.extend_from_slice(b" k");
    if base64_key {
        base64::encode_into(key, out);
        out.extend_from_slice(b" b");
    } else {
        out.extend_from_slice(key);
    }
}

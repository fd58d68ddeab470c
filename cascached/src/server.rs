//! Sockets and threads, shaped like memcached's: one thread accepts connections and hands each
//! to a worker thread round-robin; a worker owns its connections for their whole life and runs
//! one epoll loop (mio) over them. A readable connection is read, every complete request in the
//! buffer runs ([`Session::handle`]), and all the replies go out in one `write`, so pipelined
//! requests cost one read and one write per batch and a closed-loop client three syscalls per
//! request (epoll_wait, read, write), as with memcached.
//!
//! mio is edge-triggered: a connection is read until `read` returns less than the buffer's free
//! space (the socket is then drained; new data will raise a new edge) or `WouldBlock`. While
//! replies cannot be written (the client does not read), the connection stops reading and
//! waits for the writable edge, so a slow reader cannot grow the reply buffer.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};
pub use signal_hook::consts::{SIGINT, SIGTERM};
pub use signal_hook_mio::v1_0::Signals;
use socket2::{Domain, Protocol, Socket, Type};

use crate::config::Config;
use crate::protocol::reply::TOO_MANY_CONNECTIONS;
use crate::session::{Next, Session, Shared};
use crate::stats::{Counter, Counters};

/// The token of each poll's waker (connections and listeners use their index).
const WAKE: Token = Token(usize::MAX);
/// Bytes read per `read` call at least (a larger request grows the buffer).
const READ_CHUNK: usize = 16 * 1024;
/// A connection's buffers are shrunk back when idle if they grew past this.
const IDLE_BUFFER_LIMIT: usize = 64 * 1024;
/// Reads one connection may do per turn before the worker serves the others.
const READS_PER_TURN: usize = 16;
/// How often a worker looks for connections idle past `-o idle_timeout`.
const IDLE_CHECK_INTERVAL: Duration = Duration::from_secs(1);
/// How long a worker that served requests waits for more before it frees what they retired.
const COLLECT_AFTER: Duration = Duration::from_millis(20);
/// At shutdown, how long replies already computed may take to reach slow readers.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// A running server.
pub struct ServerHandle {
    addrs: Vec<SocketAddr>,
    shared: Arc<Shared>,
    shutdown: Arc<AtomicBool>,
    wakers: Vec<Arc<Waker>>,
    threads: Vec<JoinHandle<()>>,
}

impl ServerHandle {
    /// The first address listened on (with the real port when `-p 0` asked for any).
    pub fn local_addr(&self) -> SocketAddr {
        self.addrs[0]
    }

    /// Every address listened on.
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// The state the connections share (store, counters, options).
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Serves until SIGTERM or SIGINT, then shuts down (see [`shutdown`](Self::shutdown)).
    /// The signals are caught from `signals` on: create it before starting the server, so that
    /// no signal between the two kills the process.
    pub fn serve_until_signalled(self, mut signals: Signals) -> io::Result<()> {
        let mut poll = Poll::new()?;
        poll.registry()
            .register(&mut signals, Token(0), Interest::READABLE)?;
        let mut events = Events::with_capacity(4);
        while signals.pending().next().is_none() {
            match poll.poll(&mut events, None) {
                Ok(()) => {}
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => return Err(error),
            }
        }
        self.shutdown();
        Ok(())
    }

    /// Stops accepting (the listening sockets close), stops reading requests, gives replies
    /// already computed up to [`SHUTDOWN_GRACE`] to be sent, closes every connection and joins
    /// the threads. A request is either run and its whole reply queued, or not run at all.
    pub fn shutdown(mut self) {
        self.shutdown.store(true, Ordering::SeqCst);
        for waker in &self.wakers {
            let _ = waker.wake();
        }
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }

    /// Serves until the process ends.
    pub fn wait(mut self) {
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

/// A listening socket with memcached's backlog (`-b`): mio's and std's `bind` listen with 128,
/// which a burst of connections overflows before the acceptor drains it, and each connection
/// refused then waits a second for its SYN to be retransmitted.
fn listen(addr: SocketAddr, backlog: usize) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(i32::try_from(backlog).unwrap_or(i32::MAX))?;
    socket.set_nonblocking(true)?;
    Ok(TcpListener::from_std(socket.into()))
}

/// Binds the listening sockets and starts the acceptor and `config.threads` workers.
pub fn start(config: Config) -> io::Result<ServerHandle> {
    let mut listeners = Vec::new();
    for host in &config.listen {
        for addr in (host.as_str(), config.port).to_socket_addrs()? {
            listeners.push(listen(addr, config.listen_backlog)?);
        }
    }
    if listeners.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::AddrNotAvailable,
            "no address to listen on",
        ));
    }
    let addrs = listeners
        .iter()
        .map(TcpListener::local_addr)
        .collect::<io::Result<Vec<_>>>()?;
    let threads = config.threads;
    let shared = Shared::new(config);
    let shutdown = Arc::new(AtomicBool::new(false));
    let mut wakers = Vec::new();
    let mut handoffs = Vec::new();
    let mut spawned = Vec::new();
    for index in 0..threads {
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKE)?);
        let (sender, inbox) = mpsc::channel();
        let mut worker = Worker {
            poll,
            inbox,
            connections: Vec::new(),
            free: Vec::new(),
            ready: Vec::new(),
            counters: shared.stats.new_block(),
            shared: Arc::clone(&shared),
            shutdown: Arc::clone(&shutdown),
        };
        spawned.push(
            std::thread::Builder::new()
                .name(format!("cascached-worker-{index}"))
                .spawn(move || worker.run())?,
        );
        handoffs.push((sender, Arc::clone(&waker)));
        wakers.push(waker);
    }
    let poll = Poll::new()?;
    let waker = Arc::new(Waker::new(poll.registry(), WAKE)?);
    wakers.push(Arc::clone(&waker));
    let mut acceptor = Acceptor {
        poll,
        listeners,
        workers: handoffs,
        next_worker: 0,
        shared: Arc::clone(&shared),
        shutdown: Arc::clone(&shutdown),
    };
    spawned.push(
        std::thread::Builder::new()
            .name("cascached-acceptor".into())
            .spawn(move || acceptor.run())?,
    );
    Ok(ServerHandle {
        addrs,
        shared,
        shutdown,
        wakers,
        threads: spawned,
    })
}

/// Accepts connections and deals them to the workers.
struct Acceptor {
    poll: Poll,
    listeners: Vec<TcpListener>,
    workers: Vec<(Sender<TcpStream>, Arc<Waker>)>,
    next_worker: usize,
    shared: Arc<Shared>,
    shutdown: Arc<AtomicBool>,
}

impl Acceptor {
    fn run(&mut self) {
        for (index, listener) in self.listeners.iter_mut().enumerate() {
            if let Err(error) =
                self.poll
                    .registry()
                    .register(listener, Token(index), Interest::READABLE)
            {
                eprintln!("cascached: cannot watch the listening socket: {error}");
                return;
            }
        }
        let mut events = Events::with_capacity(64);
        loop {
            if let Err(error) = self.poll.poll(&mut events, None) {
                if error.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                eprintln!("cascached: acceptor poll failed: {error}");
                return;
            }
            if self.shutdown.load(Ordering::SeqCst) {
                return;
            }
            for event in &events {
                if event.token() != WAKE {
                    self.accept_all(event.token().0);
                }
            }
        }
    }

    /// Accepts until the backlog is empty (the listener is edge-triggered too).
    fn accept_all(&mut self, listener: usize) {
        loop {
            match self.listeners[listener].accept() {
                Ok((stream, _)) => self.admit(stream),
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => return,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => {
                    // Out of file descriptors, most likely: wait for connections to close.
                    eprintln!("cascached: accept failed: {error}");
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
        }
    }

    fn admit(&mut self, mut stream: TcpStream) {
        let stats = &self.shared.stats;
        // Only this thread adds connections, so the check cannot race past the limit.
        if stats.curr_connections.load(Ordering::SeqCst)
            >= self.shared.config.max_connections as u64
        {
            stats.rejected_connections.fetch_add(1, Ordering::Relaxed);
            let refusal = [TOO_MANY_CONNECTIONS.as_bytes(), b"\r\n"].concat();
            let _ = stream.write(&refusal);
            return;
        }
        let _ = stream.set_nodelay(true);
        stats.curr_connections.fetch_add(1, Ordering::SeqCst);
        stats.total_connections.fetch_add(1, Ordering::Relaxed);
        let (sender, waker) = &self.workers[self.next_worker];
        self.next_worker = (self.next_worker + 1) % self.workers.len();
        if sender.send(stream).is_ok() {
            let _ = waker.wake();
        } else {
            stats.curr_connections.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// One event loop over the connections it was given.
struct Worker {
    poll: Poll,
    inbox: Receiver<TcpStream>,
    connections: Vec<Option<Connection>>,
    free: Vec<usize>,
    /// Connections that used their turn with input left to read.
    ready: Vec<usize>,
    counters: Arc<Counters>,
    shared: Arc<Shared>,
    shutdown: Arc<AtomicBool>,
}

impl Worker {
    fn run(&mut self) {
        let mut events = Events::with_capacity(256);
        let idle_timeout = Duration::from_secs(self.shared.config.idle_timeout.into());
        let idle_tick = (!idle_timeout.is_zero()).then_some(IDLE_CHECK_INTERVAL);
        let mut idle_checked = Instant::now();
        // Whether this worker served requests since it last freed what they retired.
        let mut retired = false;
        loop {
            // With connections waiting for another turn, only look for new events; after
            // serving, wait a moment for more before freeing what the requests retired.
            let timeout = if !self.ready.is_empty() {
                Some(Duration::ZERO)
            } else if retired {
                Some(idle_tick.map_or(COLLECT_AFTER, |tick| tick.min(COLLECT_AFTER)))
            } else {
                idle_tick
            };
            if let Err(error) = self.poll.poll(&mut events, timeout) {
                if error.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                eprintln!("cascached: worker poll failed: {error}");
                return;
            }
            if events.is_empty() && self.ready.is_empty() && retired {
                // Idle: evicted and replaced values would otherwise stay allocated (deferred by
                // the epoch scheme) until this worker's next request.
                self.shared.store.collect_garbage();
                retired = false;
            }
            retired |= !events.is_empty() || !self.ready.is_empty();
            for index in std::mem::take(&mut self.ready) {
                self.serve(index, false);
            }
            for event in &events {
                if event.token() == WAKE {
                    if self.shutdown.load(Ordering::SeqCst) {
                        return self.drain();
                    }
                    self.adopt_new_connections();
                } else {
                    // Errors and hang-ups surface as a failed read or write.
                    let readable =
                        event.is_readable() || event.is_read_closed() || event.is_error();
                    self.serve(event.token().0, readable);
                }
            }
            if idle_tick.is_some() && idle_checked.elapsed() >= IDLE_CHECK_INTERVAL {
                idle_checked = Instant::now();
                self.close_idle(idle_timeout);
            }
        }
    }

    /// memcached's `-o idle_timeout`: closes the connections that have waited longer than
    /// `timeout` for their next command (a half-sent command line counts as waiting; a
    /// connection in the middle of a data block or of sending replies does not).
    fn close_idle(&mut self, timeout: Duration) {
        for index in 0..self.connections.len() {
            let idle = self.connections[index]
                .as_ref()
                .is_some_and(|connection| connection.idle_for(timeout));
            if idle {
                self.counters.count(Counter::IdleKicks);
                self.close(index);
            }
        }
    }

    /// At shutdown: sends what every connection has queued (whole replies), for up to
    /// [`SHUTDOWN_GRACE`], reading nothing more, then closes them all.
    fn drain(&mut self) {
        let deadline = Instant::now() + SHUTDOWN_GRACE;
        let mut events = Events::with_capacity(256);
        loop {
            for slot in &mut self.connections {
                if let Some(connection) = slot {
                    if !matches!(connection.send(&self.counters), Ok(false)) {
                        // Everything sent, or the client is gone.
                        *slot = None;
                    }
                }
            }
            let now = Instant::now();
            if self.connections.iter().all(Option::is_none) || now >= deadline {
                return;
            }
            if let Err(error) = self.poll.poll(&mut events, Some(deadline - now)) {
                if error.kind() != io::ErrorKind::Interrupted {
                    return;
                }
            }
        }
    }

    fn adopt_new_connections(&mut self) {
        while let Ok(mut stream) = self.inbox.try_recv() {
            let index = self.free.pop().unwrap_or_else(|| {
                self.connections.push(None);
                self.connections.len() - 1
            });
            let registered = self.poll.registry().register(
                &mut stream,
                Token(index),
                Interest::READABLE | Interest::WRITABLE,
            );
            if registered.is_err() {
                self.free.push(index);
                self.shared
                    .stats
                    .curr_connections
                    .fetch_sub(1, Ordering::SeqCst);
                continue;
            }
            let session = Session::new(Arc::clone(&self.shared), Arc::clone(&self.counters));
            self.connections[index] = Some(Connection::new(stream, session));
        }
    }

    fn serve(&mut self, index: usize, readable: bool) {
        let Some(connection) = self.connections.get_mut(index).and_then(Option::as_mut) else {
            return;
        };
        match connection.serve(readable, &self.counters) {
            Turn::Wait => {}
            Turn::Again => self.ready.push(index),
            Turn::Close => self.close(index),
        }
    }

    fn close(&mut self, index: usize) {
        if let Some(mut connection) = self.connections[index].take() {
            let _ = self.poll.registry().deregister(&mut connection.stream);
        }
        self.ready.retain(|&ready| ready != index);
        self.free.push(index);
        self.shared
            .stats
            .curr_connections
            .fetch_sub(1, Ordering::SeqCst);
    }
}

/// What a connection needs after its turn.
enum Turn {
    /// Nothing until the next readiness event.
    Wait,
    /// Another turn: it stopped with input left, to let the others run.
    Again,
    /// Close it.
    Close,
}

/// Received bytes not yet handled: `bytes[start..end]`. The vector is kept initialized to its
/// full length, so reading into it needs no zeroing.
struct InputBuffer {
    bytes: Vec<u8>,
    start: usize,
    end: usize,
}

impl InputBuffer {
    fn pending(&self) -> &[u8] {
        &self.bytes[self.start..self.end]
    }

    fn consume(&mut self, n: usize) {
        self.start += n;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
            if self.bytes.len() > IDLE_BUFFER_LIMIT {
                self.bytes.truncate(READ_CHUNK);
                self.bytes.shrink_to_fit();
            }
        }
    }

    /// Room to read into: at least [`READ_CHUNK`] bytes, made by moving the pending bytes to the
    /// front or by growing.
    fn spare(&mut self) -> &mut [u8] {
        if self.bytes.len() - self.end < READ_CHUNK {
            if self.start > 0 {
                self.bytes.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            }
            if self.bytes.len() - self.end < READ_CHUNK {
                let grown = (self.bytes.len() * 2).max(self.end + READ_CHUNK);
                self.bytes.resize(grown, 0);
            }
        }
        &mut self.bytes[self.end..]
    }
}

struct Connection {
    stream: TcpStream,
    session: Session,
    input: InputBuffer,
    output: Vec<u8>,
    /// `output[sent..]` is still to be written.
    sent: usize,
    /// The socket may hold unread bytes (it has not been drained since the last edge).
    readable: bool,
    /// Complete requests remain in the input (handling paused to send replies first).
    paused: bool,
    /// `quit` was received: close once the replies are sent.
    quitting: bool,
    /// The last read filled the buffer, so the socket may hold more of the same burst.
    burst: bool,
    /// When a request last ran (for `-o idle_timeout`).
    last_request: Instant,
}

impl Connection {
    fn new(stream: TcpStream, session: Session) -> Connection {
        Connection {
            stream,
            session,
            input: InputBuffer {
                bytes: vec![0; READ_CHUNK],
                start: 0,
                end: 0,
            },
            output: Vec::new(),
            sent: 0,
            readable: true,
            paused: false,
            quitting: false,
            burst: false,
            last_request: Instant::now(),
        }
    }

    /// Whether it has waited longer than `timeout` for its next command, in whole seconds as
    /// memcached's clock counts them (so `-o idle_timeout=2` closes after 3 to 4 seconds).
    fn idle_for(&self, timeout: Duration) -> bool {
        self.last_request.elapsed().as_secs() > timeout.as_secs()
            && self.sent == self.output.len()
            && !self.paused
            && !self.session.swallowing()
            && !self.input.pending().contains(&b'\n')
    }

    /// Reads, handles and writes as far as the socket allows.
    fn serve(&mut self, readable: bool, counters: &Counters) -> Turn {
        self.readable |= readable;
        let mut reads = 0;
        loop {
            match self.send(counters) {
                Ok(true) => {}
                Ok(false) => return Turn::Wait,
                Err(_) => return Turn::Close,
            }
            if self.quitting {
                return Turn::Close;
            }
            if self.paused {
                if !self.handle(true) {
                    return Turn::Close;
                }
                continue;
            }
            if !self.readable {
                return Turn::Wait;
            }
            if reads == READS_PER_TURN {
                return Turn::Again;
            }
            reads += 1;
            let spare = self.input.spare();
            let room = spare.len();
            match self.stream.read(spare) {
                Ok(0) => return Turn::Close,
                Ok(n) => {
                    counters.add(Counter::BytesRead, n as u64);
                    self.input.end += n;
                    // After a full read these bytes were already waiting: the same burst.
                    let same_burst = self.burst;
                    // A short read drained the socket: wait for the next edge.
                    self.readable = n == room;
                    self.burst = self.readable;
                    if !self.handle(same_burst) {
                        return Turn::Close;
                    }
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                    self.readable = false;
                    self.burst = false;
                }
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Turn::Close,
            }
        }
    }

    /// Runs the buffered requests (`same_burst`: they continue the last call's input without a
    /// pause in between); false if the connection must close at once.
    fn handle(&mut self, same_burst: bool) -> bool {
        let (input, output) = (self.input.pending(), &mut self.output);
        let progress = if same_burst {
            self.session.handle_more(input, output)
        } else {
            self.session.handle(input, output)
        };
        self.input.consume(progress.consumed);
        if progress.consumed > 0 {
            self.last_request = Instant::now();
        }
        self.paused = progress.next == Next::Flush;
        match progress.next {
            Next::Read | Next::Flush => true,
            Next::Quit => {
                self.quitting = true;
                true
            }
            Next::Close => false,
        }
    }

    /// Writes pending replies: true when all are sent, false when the socket is full.
    fn send(&mut self, counters: &Counters) -> io::Result<bool> {
        while self.sent < self.output.len() {
            match self.stream.write(&self.output[self.sent..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    counters.add(Counter::BytesWritten, n as u64);
                    self.sent += n;
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => return Err(error),
            }
        }
        self.output.clear();
        self.sent = 0;
        if self.output.capacity() > IDLE_BUFFER_LIMIT {
            self.output.shrink_to(READ_CHUNK);
        }
        Ok(true)
    }
}

//! A memcached-compatible server on [`cascache`]: memcached's text and meta protocols, where the
//! CAS unique is the cache's [`cascache::Version`].
//!
//! - [`protocol`]: the parser, pure (bytes in, request out), shared with the fuzz target.
//! - [`store`]: memcached items on a weighted, bounded `cascache::Cache`.
//! - [`session`]: one connection's protocol state, without IO: runs requests, writes replies.
//! - [`server`]: sockets and threads (an acceptor and one epoll loop per worker).
//! - [`config`]: memcached's command-line options.
//! - [`unflushed`]: which items memcached would still reference (its in-place `incr` rule).
//!
//! ```no_run
//! let config = cascached::config::Config { port: 0, ..Default::default() };
//! let server = cascached::server::start(config)?;
//! println!("listening on {}", server.local_addr());
//! server.wait();
//! # Ok::<(), std::io::Error>(())
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod config;
#[doc(hidden)]
pub mod fuzzing;
pub mod protocol;
pub mod server;
pub mod session;
pub mod stats;
pub mod store;
pub mod unflushed;

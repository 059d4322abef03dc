//! Remote drives: the rmt protocol of GNU tar's and the BSDs' `rmt`, both ways.
//!
//! - [`client`]: reel drives a remote tape (`--tape host:/dev/nst0`) through `ssh` or
//!   `--rsh-command` and the remote rmt server (GNU's `rmt`, dump's or star's, or `reel rmt`).
//! - [`server`]: `reel rmt`, an rmt server on stdin/stdout that serves reel cartridges to
//!   GNU tar, GNU mt, star, dump and reel itself.
//! - [`protocol`]: the wire format both share, with reel's extension for full fidelity
//!   between a reel client and a reel server.

pub mod client;
pub mod protocol;
pub mod server;

pub use client::{Connection, RemoteDrive, RemoteKind, RshConfig, set_commands};
pub use server::{ServerConfig, SessionEnd, serve};

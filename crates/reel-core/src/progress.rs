//! How a job reports progress and per-file problems while it runs. The CLI draws bars from
//! these calls; a library user may ignore them.

/// Receives events from a running job. All methods have empty defaults.
pub trait Progress: Sync {
    /// Totals known so far (they may grow while a background count runs).
    fn total(&self, _bytes: u64, _files: u64) {}
    /// `n` more bytes of content done.
    fn bytes(&self, _n: u64) {}
    /// Now working on this entry.
    fn entry(&self, _path: &str) {}
    /// A per-file problem (also collected in the job's report).
    fn problem(&self, _message: &str) {}
    /// Whether the job should count totals first (costs a second walk); bars want it.
    fn wants_totals(&self) -> bool {
        false
    }
}

/// Progress that goes nowhere.
pub struct NoProgress;

impl Progress for NoProgress {}

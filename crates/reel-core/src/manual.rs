//! Volumes changed by hand: a real or remote drive with no changer, and an operator.
//!
//! When a set fills the tape, or a restore needs another volume, [`ManualChanger`] ejects
//! the tape in the drive, asks the [`Operator`] to load the one wanted (a blank tape for a
//! set to continue on, or the volume with a given name), reopens the drive, waits for the
//! tape to be ready and checks that it is the right one, asking again when it is not. An
//! operator who cannot be asked (`--no-prompt`, no terminal) or who declines stops the job
//! with an error that names the volume needed.

use std::time::{Duration, Instant};

use reel_archive::VolumeState;
use reel_tape::{
    DriveParameters, EraseKind, MarkKind, MediaParameters, PartitionMethod, Position, PositionKind,
    PrepareOp, SeekTo, SetDriveParameters, TapeDrive, TapeError, Target,
};

use crate::changer::VolumeChanger;
use crate::error::{CoreError, Result};

/// The person at the drive.
pub trait Operator {
    /// Shows `request` and waits until the operator says it is done. `Err` says why the job
    /// cannot go on: the operator declined, or there is nobody to ask.
    fn ask(&mut self, request: &str) -> std::result::Result<(), String>;

    /// Why nobody can be asked at all, known before anything is done to the drive (so that
    /// the tape is not ejected for nothing).
    fn unavailable(&self) -> Option<String> {
        None
    }

    /// Shows `message` when a loaded tape is not ready at once and reel waits for the drive.
    /// Until [`Operator::done_waiting`], the operator may stop the job (Ctrl-C), as at a
    /// request.
    fn waiting(&mut self, _message: &str) {}

    /// While waiting: why the job is to stop, when the operator said so.
    fn stop_requested(&mut self) -> Option<String> {
        None
    }

    /// The wait is over.
    fn done_waiting(&mut self) {}
}

/// Nobody to ask (`--no-prompt`, or no terminal): every request fails with `why`.
pub struct NoOperator {
    pub why: String,
}

impl Operator for NoOperator {
    fn ask(&mut self, _request: &str) -> std::result::Result<(), String> {
        Err(self.why.clone())
    }

    fn unavailable(&self) -> Option<String> {
        Some(self.why.clone())
    }
}

/// A name for a tape in a real or remote drive. The device path names the drive, not the
/// tape, so each tape gets a name of its own, to be written on its sticker.
pub fn new_tape_name() -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!("REEL-{}", id[..8].to_ascii_uppercase())
}

/// Opens a drive whose tapes are changed by hand; an empty drive opens too (as a drive with
/// no tape), so that the first volume a job needs can be asked for.
pub fn open_manual(target: &Target) -> Result<Box<dyn TapeDrive>> {
    match target.open() {
        Err(TapeError::NoMediaInDrive) => Ok(Box::new(Detached::new(&drive_name(target)))),
        other => Ok(other?),
    }
}

/// How long a reopened drive may take to become ready, unless told otherwise (a real drive
/// threads and positions a newly inserted tape; half a minute is common).
pub const READY_WAIT: Duration = Duration::from_secs(180);

/// Volumes are loaded by hand into the drive `target` names.
pub struct ManualChanger {
    target: Target,
    operator: Box<dyn Operator>,
    /// How long a drive may take to become ready before the operator is asked again.
    ready_wait: Duration,
}

/// How waiting for a loaded tape ended.
enum Waited {
    Ready(Box<dyn TapeDrive>),
    /// Still not ready when the wait ran out (or some other error).
    NotReady(TapeError),
    /// The operator stopped the job while it waited: why.
    Stopped(String),
}

/// What the drive holds once the operator says the tape is in.
enum Loaded {
    Wanted,
    /// Not the tape asked for: what to tell the operator before asking again.
    Other(String),
}

impl ManualChanger {
    pub fn new(target: Target, operator: Box<dyn Operator>) -> Self {
        ManualChanger {
            target,
            operator,
            ready_wait: READY_WAIT,
        }
    }

    /// Waits up to `wait` for a loaded tape to become ready (default [`READY_WAIT`]); a
    /// drive still not ready then makes the operator be asked again.
    pub fn with_ready_wait(mut self, wait: Duration) -> Self {
        self.ready_wait = wait;
        self
    }

    /// The drive, for messages.
    pub fn device(&self) -> String {
        drive_name(&self.target)
    }

    /// Ejects the tape, then asks for another until `check` accepts what was loaded.
    fn exchange(
        &mut self,
        drive: &mut Box<dyn TapeDrive>,
        wanted: &str,
        check: &dyn Fn(VolumeState) -> Loaded,
    ) -> Result<()> {
        let device = self.device();
        let stop =
            |why: String| CoreError::Stopped(format!("{wanted} is needed in {device}, but {why}"));
        if let Some(why) = self.operator.unavailable() {
            return Err(stop(why));
        }
        // A drive that cannot eject (or has no tape) leaves it to the operator.
        let ejected = drive.prepare(PrepareOp::Unload, false).is_ok();
        let mut request = format!(
            "{}load {wanted} into {device}",
            if ejected {
                format!("The tape in {device} was ejected: ")
            } else {
                String::new()
            }
        );
        loop {
            self.operator.ask(&request).map_err(&stop)?;
            // A st device is opened by one program at a time: close it before reopening.
            *drive = Box::new(Detached::new(&device));
            let state = match self.open_ready() {
                Waited::Ready(mut d) => {
                    let state = reel_archive::read_state(&mut *d);
                    *drive = d;
                    state
                }
                Waited::NotReady(e) => {
                    request = format!("{device} is not ready ({e}); load {wanted} into it");
                    continue;
                }
                Waited::Stopped(why) => return Err(stop(why)),
            };
            match state {
                Ok(state) => match check(state) {
                    Loaded::Wanted => return Ok(()),
                    Loaded::Other(what) => {
                        let _ = drive.prepare(PrepareOp::Unload, false);
                        request = format!(
                            "{device} holds {what}, not {wanted}; it was ejected: load {wanted}"
                        );
                    }
                },
                Err(e) => {
                    let _ = drive.prepare(PrepareOp::Unload, false);
                    request = format!(
                        "the tape in {device} cannot be read ({e}); it was ejected: load {wanted}"
                    );
                }
            }
        }
    }

    /// Opens the drive and waits until its tape is ready, loading it if the drive holds one
    /// it has not loaded (a tape that was ejected and pushed back in). The operator is told
    /// when the tape is not ready at once, and may stop the job while reel waits.
    fn open_ready(&mut self) -> Waited {
        let start = Instant::now();
        let mut loaded = false;
        let mut told = false;
        let ready = loop {
            // Opened where the tape is, so that a drive without one opens at all.
            let attempt = self.target.open_no_rewind().and_then(|mut d| {
                if matches!(d.status(), Err(TapeError::NoMediaInDrive)) && !loaded {
                    loaded = true;
                    d.prepare(PrepareOp::Load, false)?;
                }
                d.set_position(SeekTo::Rewind, false)?;
                d.status().map(|()| d)
            });
            match attempt {
                Ok(d) => break Waited::Ready(d),
                Err(
                    e @ (TapeError::NotReady(_)
                    | TapeError::MediaChanged
                    | TapeError::BusReset
                    | TapeError::NoMediaInDrive),
                ) => {
                    if start.elapsed() >= self.ready_wait {
                        break Waited::NotReady(e);
                    }
                    if !told {
                        told = true;
                        self.operator.waiting(&format!(
                            "waiting up to {} s for {} to be ready ({e}); Ctrl-C stops the job",
                            self.ready_wait.as_secs(),
                            drive_name(&self.target)
                        ));
                    }
                    // A second between attempts, looking for a stop every tenth of it.
                    let next = Instant::now() + Duration::from_secs(1);
                    let stopped = loop {
                        if let Some(why) = self.operator.stop_requested() {
                            break Some(why);
                        }
                        let now = Instant::now();
                        if now >= next || start.elapsed() >= self.ready_wait {
                            break None;
                        }
                        std::thread::sleep((next - now).min(Duration::from_millis(100)));
                    };
                    if let Some(why) = stopped {
                        break Waited::Stopped(why);
                    }
                }
                Err(e) => break Waited::NotReady(e),
            }
        };
        if told {
            self.operator.done_waiting();
        }
        ready
    }
}

/// The drive a target names, for messages: `/dev/nst0`, `host:/dev/nst0`.
pub(crate) fn drive_name(target: &Target) -> String {
    match target {
        Target::Device(p) | Target::Cartridge(p) => p.display().to_string(),
        Target::Remote { host, path } => format!("{host}:{path}"),
        Target::Scsi(t) => t.to_string(),
        Target::Library(_) | Target::LibraryCartridge { .. } => "the drive".to_string(),
    }
}

/// What a tape holds, in a few words for messages.
pub(crate) fn describe_state(state: &VolumeState) -> String {
    match state {
        VolumeState::Blank => "a blank tape".to_string(),
        VolumeState::Reel(l) => format!(
            "reel volume {} (volume {} of its series, labelled {})",
            l.barcode, l.sequence, l.created
        ),
        VolumeState::Foreign { detail } => format!("a tape reel did not write ({detail})"),
    }
}

impl ManualChanger {
    /// Ejects the tape and asks for any other (`what` says what for). `Ok(false)` when the
    /// operator is done (declines) or cannot be asked.
    pub fn load_another(&mut self, drive: &mut Box<dyn TapeDrive>, what: &str) -> Result<bool> {
        match self.exchange(drive, what, &|_| Loaded::Wanted) {
            Ok(()) => Ok(true),
            Err(CoreError::Stopped(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

impl VolumeChanger for ManualChanger {
    fn next_blank(&mut self, current: &str) -> Result<String> {
        // Refused before the full tape is closed: its unfinished set is then a leftover the
        // next backup on it replaces, instead of a part continued on a tape never written.
        if let Some(why) = self.operator.unavailable() {
            return Err(CoreError::Stopped(format!(
                "{current} in {} is full and a blank tape is needed to go on, but {why}",
                self.device()
            )));
        }
        Ok(new_tape_name())
    }

    fn load_blank(&mut self, drive: &mut Box<dyn TapeDrive>, barcode: &str) -> Result<()> {
        let device = self.device();
        let wanted = format!("a blank tape (it will be named {barcode}: write that on its label)");
        self.exchange(drive, &wanted, &|state| match state {
            VolumeState::Blank => Loaded::Wanted,
            other => Loaded::Other(format!(
                "{} (erase it first with `reel --tape {device} tape erase` if it may be overwritten)",
                describe_state(&other)
            )),
        })
    }

    fn load_volume(
        &mut self,
        drive: &mut Box<dyn TapeDrive>,
        barcode: &str,
        volume_id: uuid::Uuid,
    ) -> Result<()> {
        let wanted = format!("reel volume {barcode} (id {volume_id})");
        self.exchange(drive, &wanted, &|state| match state {
            VolumeState::Reel(l) if l.volume_id == volume_id => Loaded::Wanted,
            other => Loaded::Other(describe_state(&other)),
        })
    }

    fn describe(&self) -> String {
        format!("the operator of {}", self.device())
    }
}

/// A drive without a tape (closed for a tape change, or empty when the job started): every
/// call says there is no tape, so the first volume wanted is asked for.
pub(crate) struct Detached {
    what: String,
}

impl Detached {
    pub(crate) fn new(what: &str) -> Detached {
        Detached {
            what: what.to_string(),
        }
    }
}

impl TapeDrive for Detached {
    fn describe(&self) -> String {
        format!("{} (no tape loaded)", self.what)
    }
    fn cartridge_name(&self) -> Option<String> {
        None
    }
    fn max_record_len(&self) -> usize {
        // Nothing is read or written without a tape; the bound of the drives reel knows.
        reel_tape::MAX_TRANSFER_LEN
    }
    fn read(&mut self, _: &mut [u8]) -> reel_tape::Result<usize> {
        Err(TapeError::NoMediaInDrive)
    }
    fn write(&mut self, _: &[u8]) -> reel_tape::Result<()> {
        Err(TapeError::NoMediaInDrive)
    }
    fn write_marks(&mut self, _: MarkKind, _: u32, _: bool) -> reel_tape::Result<()> {
        Err(TapeError::NoMediaInDrive)
    }
    fn set_position(&mut self, _: SeekTo, _: bool) -> reel_tape::Result<()> {
        Err(TapeError::NoMediaInDrive)
    }
    fn position(&mut self, _: PositionKind) -> reel_tape::Result<Position> {
        Err(TapeError::NoMediaInDrive)
    }
    fn status(&mut self) -> reel_tape::Result<()> {
        Err(TapeError::NoMediaInDrive)
    }
    fn prepare(&mut self, _: PrepareOp, _: bool) -> reel_tape::Result<()> {
        Err(TapeError::NoMediaInDrive)
    }
    fn erase(&mut self, _: EraseKind, _: bool) -> reel_tape::Result<()> {
        Err(TapeError::NoMediaInDrive)
    }
    fn create_partitions(&mut self, _: PartitionMethod, _: u32, _: u32) -> reel_tape::Result<()> {
        Err(TapeError::NoMediaInDrive)
    }
    fn drive_parameters(&mut self) -> reel_tape::Result<DriveParameters> {
        Err(TapeError::NoMediaInDrive)
    }
    fn media_parameters(&mut self) -> reel_tape::Result<MediaParameters> {
        Err(TapeError::NoMediaInDrive)
    }
    fn set_drive_parameters(&mut self, _: &SetDriveParameters) -> reel_tape::Result<()> {
        Err(TapeError::NoMediaInDrive)
    }
    fn set_media_parameters(&mut self, _: u32) -> reel_tape::Result<()> {
        Err(TapeError::NoMediaInDrive)
    }
    fn flush(&mut self) -> reel_tape::Result<()> {
        Err(TapeError::NoMediaInDrive)
    }
}

//! The st mapping against a scripted fake: every mtio call reel makes, and every errno and
//! status bit it reads, with the Win32 error that comes out.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use super::*;
use crate::drive::*;
use crate::error::{TapeError, code};
use crate::features::*;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Call {
    Op(MtOp, i32),
    Status,
    Tell,
    Read,
    Write(usize),
}

#[derive(Debug, Clone)]
enum Reply {
    Done,
    Status(MtStatus),
    Tell(u64),
    Data(Vec<u8>),
    Wrote(usize),
    Fail(Errno),
}

/// A fake st channel that expects exactly the scripted calls, in order.
struct Scripted {
    script: Arc<Mutex<VecDeque<(Call, Reply)>>>,
    unsupported: Vec<MtOp>,
    can_tell: bool,
}

impl Scripted {
    fn next(&mut self, call: Call) -> Reply {
        let mut s = self.script.lock().unwrap();
        let (want, reply) = s
            .pop_front()
            .unwrap_or_else(|| panic!("unexpected call {call:?}: the script is done"));
        assert_eq!(call, want, "the drive made another call than scripted");
        reply
    }
}

impl Mtio for Scripted {
    fn describe(&self) -> String {
        "/dev/nst9".into()
    }
    fn op(&mut self, op: MtOp, count: i32) -> Result<i32, Errno> {
        assert!(
            !self.unsupported.contains(&op),
            "{} was sent though the channel cannot carry it",
            op.name()
        );
        match self.next(Call::Op(op, count)) {
            Reply::Done => Ok(count),
            Reply::Tell(n) => Ok(n as i32),
            Reply::Fail(e) => Err(e),
            r => panic!("bad script reply {r:?} for an op"),
        }
    }
    fn status(&mut self) -> Result<MtStatus, Errno> {
        match self.next(Call::Status) {
            Reply::Status(s) => Ok(s),
            Reply::Fail(e) => Err(e),
            r => panic!("bad script reply {r:?} for MTIOCGET"),
        }
    }
    fn tell(&mut self) -> Result<u64, Errno> {
        match self.next(Call::Tell) {
            Reply::Tell(n) => Ok(n),
            Reply::Fail(e) => Err(e),
            r => panic!("bad script reply {r:?} for MTIOCPOS"),
        }
    }
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Errno> {
        match self.next(Call::Read) {
            Reply::Data(d) => {
                assert!(
                    d.len() <= buf.len(),
                    "scripted record larger than the buffer"
                );
                buf[..d.len()].copy_from_slice(&d);
                Ok(d.len())
            }
            Reply::Fail(e) => Err(e),
            r => panic!("bad script reply {r:?} for read"),
        }
    }
    fn write(&mut self, buf: &[u8]) -> Result<usize, Errno> {
        match self.next(Call::Write(buf.len())) {
            Reply::Wrote(n) => Ok(n),
            Reply::Fail(e) => Err(e),
            r => panic!("bad script reply {r:?} for write"),
        }
    }
    fn supports(&self, op: MtOp) -> bool {
        !self.unsupported.contains(&op)
    }
    fn can_tell(&self) -> bool {
        self.can_tell
    }
}

/// A drive status: online plus `bits`, block size `bs`, partition `part` (0-based).
fn st(bits: u64, bs: i64, part: i64, fileno: i32) -> MtStatus {
    MtStatus {
        mt_type: mtio::MT_ISSCSI2,
        resid: part,
        dsreg: bs,
        gstat: (bits | gmt::ONLINE) as i64,
        erreg: 0,
        fileno,
        blkno: 0,
    }
}

fn ok() -> MtStatus {
    st(0, 0, 0, 0)
}

struct Rig {
    script: Arc<Mutex<VecDeque<(Call, Reply)>>>,
    drive: StDrive<Scripted>,
}

impl Rig {
    fn new() -> Rig {
        Rig::with(Vec::new(), true, ok())
    }

    fn with(unsupported: Vec<MtOp>, can_tell: bool, initial: MtStatus) -> Rig {
        let script = Arc::new(Mutex::new(VecDeque::from([(
            Call::Status,
            Reply::Status(initial),
        )])));
        let drive = StDrive::open(Scripted {
            script: script.clone(),
            unsupported,
            can_tell,
        })
        .expect("open");
        Rig { script, drive }
    }

    fn expect(&mut self, calls: Vec<(Call, Reply)>) -> &mut StDrive<Scripted> {
        let mut s = self.script.lock().unwrap();
        assert!(s.is_empty(), "calls left over from the last step: {s:?}");
        s.extend(calls);
        drop(s);
        &mut self.drive
    }

    fn done(&self) {
        let s = self.script.lock().unwrap();
        assert!(s.is_empty(), "scripted calls were not made: {s:?}");
    }
}

fn code_of<T: std::fmt::Debug>(r: crate::Result<T>) -> u32 {
    match r {
        Err(e) => e.code(),
        Ok(v) => panic!("expected an error, got {v:?}"),
    }
}

#[test]
fn open_reads_the_block_size_and_refuses_what_is_no_tape() {
    let mut r = Rig::with(Vec::new(), true, st(0, 512, 0, 0));
    r.done();
    assert_eq!(r.drive.media_parameters_block_size(), 512);
    let script = Arc::new(Mutex::new(VecDeque::from([(
        Call::Status,
        Reply::Fail(Errno::ENOTTY),
    )])));
    let e = StDrive::open(Scripted {
        script,
        unsupported: vec![],
        can_tell: true,
    })
    .err()
    .expect("a file is no tape");
    assert_eq!(e.code(), code::ERROR_NOT_SUPPORTED);
    assert!(e.to_string().contains("not a tape drive"), "{e}");
}

impl StDrive<Scripted> {
    fn media_parameters_block_size(&mut self) -> u32 {
        let script = self.mtio().script.clone();
        script
            .lock()
            .unwrap()
            .push_back((Call::Status, Reply::Status(st(0, 512, 0, 0))));
        self.media_parameters().unwrap().block_size
    }
}

#[test]
fn reads_map_zero_byte_reads_by_status() {
    let mut r = Rig::new();
    let mut buf = vec![0u8; 100];
    let d = r.expect(vec![(Call::Read, Reply::Data(b"hello".to_vec()))]);
    assert_eq!(d.read(&mut buf).unwrap(), 5);
    assert_eq!(&buf[..5], b"hello");
    // A filemark: 0 bytes, GMT_EOF.
    let d = r.expect(vec![
        (Call::Read, Reply::Data(vec![])),
        (Call::Status, Reply::Status(st(gmt::EOF, 0, 0, 1))),
    ]);
    assert_eq!(code_of(d.read(&mut buf)), code::ERROR_FILEMARK_DETECTED);
    // End of data: 0 bytes, GMT_EOD.
    let d = r.expect(vec![
        (Call::Read, Reply::Data(vec![])),
        (Call::Status, Reply::Status(st(gmt::EOD, 0, 0, 1))),
    ]);
    assert_eq!(code_of(d.read(&mut buf)), code::ERROR_NO_DATA_DETECTED);
    // st's second read at end of data fails with EIO; the status says why.
    let d = r.expect(vec![
        (Call::Read, Reply::Fail(Errno::EIO)),
        (Call::Status, Reply::Status(st(gmt::EOD, 0, 0, 1))),
    ]);
    assert_eq!(code_of(d.read(&mut buf)), code::ERROR_NO_DATA_DETECTED);
    // A setmark (GMT_SM) is passed over: ReportSetmarks is off on st.
    let d = r.expect(vec![
        (Call::Read, Reply::Data(vec![])),
        (Call::Status, Reply::Status(st(gmt::SM, 0, 0, 1))),
        (Call::Read, Reply::Data(b"after".to_vec())),
    ]);
    assert_eq!(d.read(&mut buf).unwrap(), 5);
    // No tape.
    let d = r.expect(vec![(Call::Read, Reply::Fail(Errno::ENOMEDIUM))]);
    assert_eq!(code_of(d.read(&mut buf)), code::ERROR_NO_MEDIA_IN_DRIVE);
    let d = r.expect(vec![
        (Call::Read, Reply::Data(vec![])),
        (Call::Status, Reply::Status(st(gmt::DR_OPEN, 0, 0, 0))),
    ]);
    assert_eq!(code_of(d.read(&mut buf)), code::ERROR_NO_MEDIA_IN_DRIVE);
    // A medium error.
    let d = r.expect(vec![
        (Call::Read, Reply::Fail(Errno::EIO)),
        (Call::Status, Reply::Status(st(0, 0, 0, 0))),
    ]);
    assert_eq!(code_of(d.read(&mut buf)), code::ERROR_IO_DEVICE);
    r.done();
}

#[test]
fn a_short_buffer_gets_the_first_part_and_more_data() {
    let mut r = Rig::new();
    let record: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
    let mut small = [0u8; 16];
    let d = r.expect(vec![
        (Call::Read, Reply::Fail(Errno::ENOMEM)),
        (Call::Op(MtOp::Bsr, 1), Reply::Done),
        (Call::Read, Reply::Data(record.clone())),
    ]);
    match d.read(&mut small) {
        Err(TapeError::MoreData { record_len, copied }) => {
            assert_eq!((record_len, copied), (1000, 16));
        }
        other => panic!("expected MORE_DATA, got {other:?}"),
    }
    assert_eq!(small[..], record[..16]);
    r.done();
}

#[test]
fn fixed_mode_lengths_are_checked_before_any_call() {
    let mut r = Rig::new();
    let d = r.expect(vec![(Call::Op(MtOp::SetBlk, 512), Reply::Done)]);
    d.set_media_parameters(512).unwrap();
    let d = r.expect(vec![]);
    assert_eq!(
        code_of(d.write(&[0u8; 1000])),
        code::ERROR_INVALID_BLOCK_LENGTH
    );
    assert_eq!(
        code_of(d.read(&mut [0u8; 100])),
        code::ERROR_INVALID_BLOCK_LENGTH
    );
    let d = r.expect(vec![(Call::Write(1024), Reply::Wrote(1024))]);
    d.write(&[0u8; 1024]).unwrap();
    // st refuses a length the drive cannot take with EINVAL.
    let d = r.expect(vec![(Call::Write(512), Reply::Fail(Errno::EINVAL))]);
    assert_eq!(
        code_of(d.write(&[0u8; 512])),
        code::ERROR_INVALID_BLOCK_LENGTH
    );
    let d = r.expect(vec![(Call::Read, Reply::Fail(Errno::EOVERFLOW))]);
    assert_eq!(
        code_of(d.read(&mut [0u8; 512])),
        code::ERROR_INVALID_BLOCK_LENGTH
    );
    let d = r.expect(vec![(
        Call::Op(MtOp::SetBlk, 3),
        Reply::Fail(Errno::EINVAL),
    )]);
    assert_eq!(
        code_of(d.set_media_parameters(3)),
        code::ERROR_INVALID_PARAMETER
    );
    r.done();
}

#[test]
fn writes_near_the_end_follow_sts_early_warning() {
    let mut r = Rig::new();
    let rec = vec![7u8; 100];
    let d = r.expect(vec![(Call::Write(100), Reply::Wrote(100))]);
    d.write(&rec).unwrap();
    // Early warning: ENOSPC with GMT_EOT; the repeated write goes through.
    let d = r.expect(vec![
        (Call::Write(100), Reply::Fail(Errno::ENOSPC)),
        (Call::Status, Reply::Status(st(gmt::EOT, 0, 0, 0))),
        (Call::Write(100), Reply::Wrote(100)),
    ]);
    match d.write(&rec) {
        Err(TapeError::EarlyWarning) => {}
        other => panic!("expected the early warning, got {other:?}"),
    }
    // Physical end: the repeated write fails too; nothing was written.
    let d = r.expect(vec![
        (Call::Write(100), Reply::Fail(Errno::ENOSPC)),
        (Call::Status, Reply::Status(st(gmt::EOT, 0, 0, 0))),
        (Call::Write(100), Reply::Fail(Errno::ENOSPC)),
    ]);
    match d.write(&rec) {
        Err(TapeError::EndOfMedia) => {}
        other => panic!("expected END_OF_MEDIA, got {other:?}"),
    }
    // ENOSPC without the warning: the end, nothing written.
    let d = r.expect(vec![
        (Call::Write(100), Reply::Fail(Errno::ENOSPC)),
        (Call::Status, Reply::Status(ok())),
    ]);
    assert!(matches!(d.write(&rec), Err(TapeError::EndOfMedia)));
    // A partial write (fixed mode at the end).
    let d = r.expect(vec![(Call::Write(100), Reply::Wrote(60))]);
    assert_eq!(code_of(d.write(&rec)), code::ERROR_EOM_OVERFLOW);
    // Write protection.
    let d = r.expect(vec![(Call::Write(100), Reply::Fail(Errno::EACCES))]);
    assert_eq!(code_of(d.write(&rec)), code::ERROR_WRITE_PROTECT);
    let d = r.expect(vec![(Call::Write(100), Reply::Fail(Errno::EBADF))]);
    assert_eq!(code_of(d.write(&rec)), code::ERROR_WRITE_PROTECT);
    r.done();
}

#[test]
fn marks() {
    let mut r = Rig::new();
    let d = r.expect(vec![(Call::Op(MtOp::Weof, 2), Reply::Done)]);
    d.write_marks(MarkKind::Filemarks, 2, false).unwrap();
    let d = r.expect(vec![(Call::Op(MtOp::WeofI, 1), Reply::Done)]);
    d.write_marks(MarkKind::Filemarks, 1, true).unwrap();
    let d = r.expect(vec![(Call::Op(MtOp::Wsm, 1), Reply::Done)]);
    d.write_marks(MarkKind::Setmarks, 1, false).unwrap();
    // A drive without setmarks (LTO).
    let d = r.expect(vec![(Call::Op(MtOp::Wsm, 1), Reply::Fail(Errno::EINVAL))]);
    assert_eq!(
        code_of(d.write_marks(MarkKind::Setmarks, 1, false)),
        code::ERROR_NOT_SUPPORTED
    );
    let d = r.expect(vec![(Call::Op(MtOp::Weof, 1), Reply::Fail(Errno::EACCES))]);
    assert_eq!(
        code_of(d.write_marks(MarkKind::Filemarks, 1, false)),
        code::ERROR_WRITE_PROTECT
    );
    let d = r.expect(vec![
        (Call::Op(MtOp::Weof, 1), Reply::Fail(Errno::EIO)),
        (Call::Status, Reply::Status(st(gmt::EOT, 0, 0, 0))),
    ]);
    assert_eq!(
        code_of(d.write_marks(MarkKind::Filemarks, 1, false)),
        code::ERROR_END_OF_MEDIA
    );
    // Short and long filemarks: st has no such thing; a protected tape still says so.
    let d = r.expect(vec![(Call::Status, Reply::Status(ok()))]);
    assert_eq!(
        code_of(d.write_marks(MarkKind::ShortFilemarks, 1, false)),
        code::ERROR_NOT_SUPPORTED
    );
    let d = r.expect(vec![(
        Call::Status,
        Reply::Status(st(gmt::WR_PROT, 0, 0, 0)),
    )]);
    assert_eq!(
        code_of(d.write_marks(MarkKind::LongFilemarks, 1, false)),
        code::ERROR_WRITE_PROTECT
    );
    r.done();
}

#[test]
fn positioning() {
    let mut r = Rig::new();
    let d = r.expect(vec![(Call::Op(MtOp::Rew, 1), Reply::Done)]);
    d.set_position(SeekTo::Rewind, false).unwrap();
    let d = r.expect(vec![(Call::Op(MtOp::Seek, 42), Reply::Done)]);
    d.set_position(
        SeekTo::LogicalBlock {
            partition: 0,
            block: 42,
        },
        false,
    )
    .unwrap();
    // Partition 2 (Win32) is st's partition 1.
    let d = r.expect(vec![
        (Call::Op(MtOp::SetPart, 1), Reply::Done),
        (Call::Op(MtOp::Seek, 7), Reply::Done),
    ]);
    d.set_position(
        SeekTo::LogicalBlock {
            partition: 2,
            block: 7,
        },
        false,
    )
    .unwrap();
    let d = r.expect(vec![(
        Call::Op(MtOp::SetPart, 5),
        Reply::Fail(Errno::EINVAL),
    )]);
    assert_eq!(
        code_of(d.set_position(
            SeekTo::LogicalBlock {
                partition: 6,
                block: 0
            },
            false
        )),
        code::ERROR_INVALID_PARAMETER
    );
    let d = r.expect(vec![
        (Call::Op(MtOp::Seek, 99), Reply::Fail(Errno::EIO)),
        (Call::Status, Reply::Status(st(gmt::EOD, 0, 0, 3))),
    ]);
    assert_eq!(
        code_of(d.set_position(
            SeekTo::LogicalBlock {
                partition: 0,
                block: 99
            },
            false
        )),
        code::ERROR_NO_DATA_DETECTED
    );
    let d = r.expect(vec![(Call::Op(MtOp::Eom, 1), Reply::Done)]);
    d.set_position(SeekTo::EndOfData { partition: 0 }, false)
        .unwrap();
    let d = r.expect(vec![
        (Call::Op(MtOp::SetPart, 0), Reply::Done),
        (Call::Op(MtOp::Eom, 1), Reply::Done),
    ]);
    d.set_position(SeekTo::EndOfData { partition: 1 }, false)
        .unwrap();
    // Filemarks.
    let d = r.expect(vec![(Call::Op(MtOp::Fsf, 2), Reply::Done)]);
    d.set_position(SeekTo::SpaceFilemarks(2), false).unwrap();
    let d = r.expect(vec![(Call::Op(MtOp::Bsf, 3), Reply::Done)]);
    d.set_position(SeekTo::SpaceFilemarks(-3), false).unwrap();
    let d = r.expect(vec![]);
    d.set_position(SeekTo::SpaceFilemarks(0), false).unwrap();
    let d = r.expect(vec![
        (Call::Op(MtOp::Fsf, 5), Reply::Fail(Errno::EIO)),
        (Call::Status, Reply::Status(st(gmt::EOD, 0, 0, 3))),
    ]);
    assert_eq!(
        code_of(d.set_position(SeekTo::SpaceFilemarks(5), false)),
        code::ERROR_NO_DATA_DETECTED
    );
    let d = r.expect(vec![
        (Call::Op(MtOp::Bsf, 9), Reply::Fail(Errno::EIO)),
        (Call::Status, Reply::Status(st(gmt::BOT, 0, 0, 0))),
    ]);
    assert_eq!(
        code_of(d.set_position(SeekTo::SpaceFilemarks(-9), false)),
        code::ERROR_BEGINNING_OF_MEDIA
    );
    // Blocks: a filemark on the way changes the file number.
    let d = r.expect(vec![
        (Call::Status, Reply::Status(st(0, 0, 0, 0))),
        (Call::Op(MtOp::Fsr, 3), Reply::Fail(Errno::EIO)),
        (Call::Status, Reply::Status(st(gmt::EOF, 0, 0, 1))),
    ]);
    assert_eq!(
        code_of(d.set_position(SeekTo::SpaceRelativeBlocks(3), false)),
        code::ERROR_FILEMARK_DETECTED
    );
    let d = r.expect(vec![
        (Call::Status, Reply::Status(st(0, 0, 0, 1))),
        (Call::Op(MtOp::Bsr, 2), Reply::Fail(Errno::EIO)),
        (Call::Status, Reply::Status(st(0, 0, 0, 0))),
    ]);
    assert_eq!(
        code_of(d.set_position(SeekTo::SpaceRelativeBlocks(-2), false)),
        code::ERROR_FILEMARK_DETECTED
    );
    let d = r.expect(vec![
        (Call::Status, Reply::Status(st(gmt::BOT, 0, 0, 0))),
        (Call::Op(MtOp::Bsr, 1), Reply::Fail(Errno::EIO)),
        (Call::Status, Reply::Status(st(gmt::BOT, 0, 0, 0))),
    ]);
    assert_eq!(
        code_of(d.set_position(SeekTo::SpaceRelativeBlocks(-1), false)),
        code::ERROR_BEGINNING_OF_MEDIA
    );
    let d = r.expect(vec![
        (Call::Status, Reply::Status(st(0, 0, 0, 2))),
        (Call::Op(MtOp::Fsr, 1), Reply::Done),
    ]);
    d.set_position(SeekTo::SpaceRelativeBlocks(1), false)
        .unwrap();
    // Setmarks.
    let d = r.expect(vec![(Call::Op(MtOp::Fss, 1), Reply::Done)]);
    d.set_position(SeekTo::SpaceSetmarks(1), false).unwrap();
    let d = r.expect(vec![(Call::Op(MtOp::Bss, 2), Reply::Fail(Errno::EINVAL))]);
    assert_eq!(
        code_of(d.set_position(SeekTo::SpaceSetmarks(-2), false)),
        code::ERROR_NOT_SUPPORTED
    );
    let d = r.expect(vec![
        (Call::Status, Reply::Status(ok())),
        (Call::Op(MtOp::Fsr, 4), Reply::Fail(Errno::EIO)),
        (Call::Status, Reply::Status(st(gmt::SM, 0, 0, 0))),
    ]);
    assert_eq!(
        code_of(d.set_position(SeekTo::SpaceRelativeBlocks(4), false)),
        code::ERROR_SETMARK_DETECTED
    );
    // What st cannot do, and counts SCSI cannot carry.
    let d = r.expect(vec![]);
    for to in [
        SeekTo::AbsoluteBlock(3),
        SeekTo::SpaceSequentialFilemarks(2),
        SeekTo::SpaceSequentialSetmarks(2),
    ] {
        assert_eq!(
            code_of(d.set_position(to, false)),
            code::ERROR_NOT_SUPPORTED
        );
    }
    assert_eq!(
        code_of(d.set_position(SeekTo::SpaceFilemarks(1 << 40), false)),
        code::ERROR_INVALID_PARAMETER
    );
    r.done();
}

#[test]
fn position_comes_from_mtiocpos_and_the_partition_from_mt_resid() {
    let mut r = Rig::new();
    let d = r.expect(vec![
        (Call::Status, Reply::Status(st(0, 0, 1, 0))),
        (Call::Tell, Reply::Tell(42)),
    ]);
    let p = d.position(PositionKind::Logical).unwrap();
    assert_eq!((p.partition, p.offset), (2, 42));
    let d = r.expect(vec![]);
    assert_eq!(
        code_of(d.position(PositionKind::Absolute)),
        code::ERROR_NOT_SUPPORTED
    );
    let d = r.expect(vec![(
        Call::Status,
        Reply::Status(st(gmt::DR_OPEN, 0, 0, 0)),
    )]);
    assert_eq!(
        code_of(d.position(PositionKind::Logical)),
        code::ERROR_NO_MEDIA_IN_DRIVE
    );
    r.done();
    // A channel without MTIOCPOS (a remote GNU rmt) says so.
    let mut r = Rig::with(Vec::new(), false, ok());
    let d = r.expect(vec![]);
    assert_eq!(
        code_of(d.position(PositionKind::Logical)),
        code::ERROR_NOT_SUPPORTED
    );
    let f = d.drive_parameters().unwrap();
    assert_eq!(f.features_low & TAPE_DRIVE_GET_LOGICAL_BLK, 0);
}

#[test]
fn status_reads_the_status_bits() {
    let mut r = Rig::new();
    let d = r.expect(vec![(Call::Status, Reply::Status(ok()))]);
    d.status().unwrap();
    let d = r.expect(vec![(
        Call::Status,
        Reply::Status(st(gmt::DR_OPEN, 0, 0, 0)),
    )]);
    assert_eq!(code_of(d.status()), code::ERROR_NO_MEDIA_IN_DRIVE);
    let not_online = MtStatus { gstat: 0, ..ok() };
    let d = r.expect(vec![(Call::Status, Reply::Status(not_online))]);
    assert_eq!(code_of(d.status()), code::ERROR_NOT_READY);
    let d = r.expect(vec![(Call::Status, Reply::Status(st(gmt::CLN, 0, 0, 0)))]);
    assert_eq!(code_of(d.status()), code::ERROR_DEVICE_REQUIRES_CLEANING);
    let d = r.expect(vec![(Call::Status, Reply::Fail(Errno::ENOMEDIUM))]);
    assert_eq!(code_of(d.status()), code::ERROR_NO_MEDIA_IN_DRIVE);
    let d = r.expect(vec![(
        Call::Status,
        Reply::Status(st(gmt::WR_PROT, 1024, 0, 0)),
    )]);
    let m = d.media_parameters().unwrap();
    assert!(m.write_protected);
    assert_eq!(m.block_size, 1024);
    r.done();
}

#[test]
fn prepare_erase_and_partitions() {
    let mut r = Rig::new();
    let d = r.expect(vec![(Call::Op(MtOp::Load, 0), Reply::Done)]);
    d.prepare(PrepareOp::Load, false).unwrap();
    let d = r.expect(vec![(Call::Op(MtOp::Lock, 0), Reply::Done)]);
    d.prepare(PrepareOp::Lock, false).unwrap();
    // The door is locked: the unload fails and says why.
    let d = r.expect(vec![
        (Call::Op(MtOp::Unload, 0), Reply::Fail(Errno::EIO)),
        (Call::Status, Reply::Status(ok())),
    ]);
    assert_eq!(
        code_of(d.prepare(PrepareOp::Unload, false)),
        code::ERROR_UNABLE_TO_UNLOAD_MEDIA
    );
    let d = r.expect(vec![(
        Call::Op(MtOp::Unload, 0),
        Reply::Fail(Errno::EINVAL),
    )]);
    assert_eq!(
        code_of(d.prepare(PrepareOp::Unload, false)),
        code::ERROR_UNABLE_TO_UNLOAD_MEDIA
    );
    let d = r.expect(vec![(Call::Op(MtOp::Unlock, 0), Reply::Done)]);
    d.prepare(PrepareOp::Unlock, false).unwrap();
    let d = r.expect(vec![(Call::Op(MtOp::Unload, 0), Reply::Done)]);
    d.prepare(PrepareOp::Unload, false).unwrap();
    let d = r.expect(vec![(
        Call::Op(MtOp::Rew, 1),
        Reply::Fail(Errno::ENOMEDIUM),
    )]);
    assert_eq!(
        code_of(d.set_position(SeekTo::Rewind, false)),
        code::ERROR_NO_MEDIA_IN_DRIVE
    );
    let d = r.expect(vec![
        (Call::Op(MtOp::Lock, 0), Reply::Fail(Errno::EIO)),
        (Call::Status, Reply::Status(ok())),
    ]);
    assert_eq!(
        code_of(d.prepare(PrepareOp::Lock, false)),
        code::ERROR_UNABLE_TO_LOCK_MEDIA
    );
    let d = r.expect(vec![(Call::Op(MtOp::Reten, 1), Reply::Done)]);
    d.prepare(PrepareOp::Tension, false).unwrap();
    let d = r.expect(vec![(Call::Status, Reply::Status(ok()))]);
    assert_eq!(
        code_of(d.prepare(PrepareOp::Format, false)),
        code::ERROR_NOT_SUPPORTED
    );
    // Erase.
    let d = r.expect(vec![(Call::Op(MtOp::Erase, 0), Reply::Done)]);
    d.erase(EraseKind::Short, false).unwrap();
    let d = r.expect(vec![(Call::Op(MtOp::Erase, 1), Reply::Done)]);
    d.erase(EraseKind::Long, false).unwrap();
    let d = r.expect(vec![(Call::Op(MtOp::Erase, 1), Reply::Fail(Errno::EROFS))]);
    assert_eq!(
        code_of(d.erase(EraseKind::Long, false)),
        code::ERROR_WRITE_PROTECT
    );
    // Partitions: st partitions by size.
    let d = r.expect(vec![(Call::Op(MtOp::MkPart, 0), Reply::Done)]);
    d.create_partitions(PartitionMethod::Initiator, 1, 0)
        .unwrap();
    let d = r.expect(vec![(Call::Op(MtOp::MkPart, -100), Reply::Done)]);
    d.create_partitions(PartitionMethod::Initiator, 2, 100)
        .unwrap();
    let d = r.expect(vec![(Call::Status, Reply::Status(ok()))]);
    assert_eq!(d.media_parameters().unwrap().partition_count, 2);
    let d = r.expect(vec![(
        Call::Op(MtOp::MkPart, -5),
        Reply::Fail(Errno::EINVAL),
    )]);
    assert_eq!(
        code_of(d.create_partitions(PartitionMethod::Initiator, 2, 5)),
        code::ERROR_PARTITION_FAILURE
    );
    let d = r.expect(vec![]);
    assert_eq!(
        code_of(d.create_partitions(PartitionMethod::Initiator, 3, 5)),
        code::ERROR_INVALID_PARAMETER
    );
    let d = r.expect(vec![(Call::Status, Reply::Status(ok()))]);
    assert_eq!(
        code_of(d.create_partitions(PartitionMethod::Select, 2, 0)),
        code::ERROR_NOT_SUPPORTED
    );
    let d = r.expect(vec![(
        Call::Status,
        Reply::Status(st(gmt::WR_PROT, 0, 0, 0)),
    )]);
    assert_eq!(
        code_of(d.create_partitions(PartitionMethod::Fixed, 0, 0)),
        code::ERROR_WRITE_PROTECT
    );
    r.done();
}

#[test]
fn settings_flush_and_close() {
    let mut r = Rig::new();
    let mut p = SetDriveParameters {
        ecc: true,
        compression: true,
        data_padding: false,
        report_setmarks: false,
        eot_warning_zone_size: 0,
    };
    let d = r.expect(vec![(Call::Op(MtOp::Compression, 1), Reply::Done)]);
    d.set_drive_parameters(&p).unwrap();
    assert!(d.drive_parameters().unwrap().compression);
    let d = r.expect(vec![(
        Call::Op(MtOp::Compression, 0),
        Reply::Fail(Errno::EINVAL),
    )]);
    p.compression = false;
    assert_eq!(
        code_of(d.set_drive_parameters(&p)),
        code::ERROR_NOT_SUPPORTED
    );
    p.report_setmarks = true;
    let d = r.expect(vec![]);
    assert_eq!(
        code_of(d.set_drive_parameters(&p)),
        code::ERROR_NOT_SUPPORTED
    );
    // Flush: MTNOP when idle, WRITE FILEMARKS(0) after a write.
    let d = r.expect(vec![(Call::Op(MtOp::Nop, 1), Reply::Done)]);
    d.flush().unwrap();
    let d = r.expect(vec![
        (Call::Write(3), Reply::Wrote(3)),
        (Call::Op(MtOp::Weof, 0), Reply::Done),
    ]);
    d.write(b"abc").unwrap();
    d.flush().unwrap();
    r.done();
    // Dropping the drive right after a write flushes, so st adds no filemark at close.
    let script = r.script.clone();
    script.lock().unwrap().extend([
        (Call::Write(3), Reply::Wrote(3)),
        (Call::Op(MtOp::Weof, 0), Reply::Done),
    ]);
    r.drive.write(b"abc").unwrap();
    drop(r.drive);
    assert!(script.lock().unwrap().is_empty(), "no flush at close");
}

#[test]
fn feature_bits_follow_what_the_channel_carries() {
    let mut r = Rig::new();
    let p = r.drive.drive_parameters().unwrap();
    for bit in [
        TAPE_DRIVE_FIXED_BLOCK,
        TAPE_DRIVE_VARIABLE_BLOCK,
        TAPE_DRIVE_WRITE_PROTECT,
        TAPE_DRIVE_ERASE_SHORT,
        TAPE_DRIVE_ERASE_LONG,
        TAPE_DRIVE_INITIATOR,
        TAPE_DRIVE_GET_LOGICAL_BLK,
        TAPE_DRIVE_COMPRESSION,
    ] {
        assert_ne!(p.features_low & bit, 0, "low bit {bit:#x}");
    }
    for bit in [
        TAPE_DRIVE_FIXED,
        TAPE_DRIVE_SELECT,
        TAPE_DRIVE_GET_ABSOLUTE_BLK,
        TAPE_DRIVE_TAPE_CAPACITY,
        TAPE_DRIVE_TAPE_REMAINING,
        TAPE_DRIVE_SET_EOT_WZ_SIZE,
    ] {
        assert_eq!(p.features_low & bit, 0, "low bit {bit:#x}");
    }
    let has = |bit: u32| p.features_high & (bit & !TAPE_DRIVE_HIGH_FEATURES) != 0;
    for bit in [
        TAPE_DRIVE_LOAD_UNLOAD,
        TAPE_DRIVE_TENSION,
        TAPE_DRIVE_LOCK_UNLOCK,
        TAPE_DRIVE_SET_BLOCK_SIZE,
        TAPE_DRIVE_SET_COMPRESSION,
        TAPE_DRIVE_LOGICAL_BLK,
        TAPE_DRIVE_END_OF_DATA,
        TAPE_DRIVE_RELATIVE_BLKS,
        TAPE_DRIVE_FILEMARKS,
        TAPE_DRIVE_SETMARKS,
        TAPE_DRIVE_REVERSE_POSITION,
        TAPE_DRIVE_WRITE_SETMARKS,
        TAPE_DRIVE_WRITE_FILEMARKS,
        TAPE_DRIVE_WRITE_MARK_IMMED,
    ] {
        assert!(has(bit), "high bit {bit:#x}");
    }
    for bit in [
        TAPE_DRIVE_ABSOLUTE_BLK,
        TAPE_DRIVE_SEQUENTIAL_FMKS,
        TAPE_DRIVE_SEQUENTIAL_SMKS,
        TAPE_DRIVE_WRITE_SHORT_FMKS,
        TAPE_DRIVE_WRITE_LONG_FMKS,
        TAPE_DRIVE_FORMAT,
        TAPE_DRIVE_SET_REPORT_SMKS,
    ] {
        assert!(!has(bit), "high bit {bit:#x}");
    }
    assert_eq!(p.features_high & TAPE_DRIVE_HIGH_FEATURES, 0);
    // A channel that cannot carry setmarks or partitions (a version-1 rmt server).
    let mut r = Rig::with(
        vec![MtOp::Wsm, MtOp::Fss, MtOp::Bss, MtOp::MkPart, MtOp::SetPart],
        true,
        ok(),
    );
    let p = r.drive.drive_parameters().unwrap();
    assert_eq!(p.features_low & TAPE_DRIVE_INITIATOR, 0);
    assert_eq!(
        p.features_high & (TAPE_DRIVE_WRITE_SETMARKS & !TAPE_DRIVE_HIGH_FEATURES),
        0
    );
    let d = r.expect(vec![]);
    assert_eq!(
        code_of(d.write_marks(MarkKind::Setmarks, 1, false)),
        code::ERROR_NOT_SUPPORTED
    );
    assert_eq!(
        code_of(d.set_position(
            SeekTo::LogicalBlock {
                partition: 2,
                block: 0
            },
            false
        )),
        code::ERROR_NOT_SUPPORTED
    );
    r.done();
}

/// Every op in ISSUED_OPS is made by some trait call (checked against the fake).
#[test]
fn every_issued_op_is_scripted() {
    type Step = fn(&mut StDrive<Scripted>);
    let rows: &[(MtOp, i32, Step)] = &[
        (MtOp::Fsf, 1, |d| {
            d.set_position(SeekTo::SpaceFilemarks(1), false).unwrap()
        }),
        (MtOp::Bsf, 1, |d| {
            d.set_position(SeekTo::SpaceFilemarks(-1), false).unwrap()
        }),
        (MtOp::Fss, 1, |d| {
            d.set_position(SeekTo::SpaceSetmarks(1), false).unwrap()
        }),
        (MtOp::Bss, 1, |d| {
            d.set_position(SeekTo::SpaceSetmarks(-1), false).unwrap()
        }),
        (MtOp::Weof, 1, |d| {
            d.write_marks(MarkKind::Filemarks, 1, false).unwrap()
        }),
        (MtOp::WeofI, 1, |d| {
            d.write_marks(MarkKind::Filemarks, 1, true).unwrap()
        }),
        (MtOp::Wsm, 1, |d| {
            d.write_marks(MarkKind::Setmarks, 1, false).unwrap()
        }),
        (MtOp::Rew, 1, |d| {
            d.set_position(SeekTo::Rewind, false).unwrap()
        }),
        (MtOp::Nop, 1, |d| d.flush().unwrap()),
        (MtOp::Reten, 1, |d| {
            d.prepare(PrepareOp::Tension, false).unwrap()
        }),
        (MtOp::Eom, 1, |d| {
            d.set_position(SeekTo::EndOfData { partition: 0 }, false)
                .unwrap()
        }),
        (MtOp::Erase, 0, |d| {
            d.erase(EraseKind::Short, false).unwrap()
        }),
        (MtOp::SetBlk, 0, |d| d.set_media_parameters(0).unwrap()),
        (MtOp::Seek, 5, |d| {
            d.set_position(
                SeekTo::LogicalBlock {
                    partition: 0,
                    block: 5,
                },
                false,
            )
            .unwrap()
        }),
        (MtOp::MkPart, 0, |d| {
            d.create_partitions(PartitionMethod::Initiator, 1, 0)
                .unwrap()
        }),
        (MtOp::Compression, 0, |d| {
            d.set_drive_parameters(&SetDriveParameters {
                ecc: true,
                compression: false,
                data_padding: false,
                report_setmarks: false,
                eot_warning_zone_size: 0,
            })
            .unwrap()
        }),
        (MtOp::Lock, 0, |d| {
            d.prepare(PrepareOp::Lock, false).unwrap()
        }),
        (MtOp::Unlock, 0, |d| {
            d.prepare(PrepareOp::Unlock, false).unwrap()
        }),
        (MtOp::Load, 0, |d| {
            d.prepare(PrepareOp::Load, false).unwrap()
        }),
        (MtOp::Unload, 0, |d| {
            d.prepare(PrepareOp::Unload, false).unwrap()
        }),
    ];
    // Fsr, Bsr, SetPart: in `positioning`; SetDrvBuffer: in `driver_options_...`.
    let mut seen: Vec<MtOp> = vec![MtOp::Fsr, MtOp::Bsr, MtOp::SetPart, MtOp::SetDrvBuffer];
    for (op, count, step) in rows {
        let mut r = Rig::new();
        r.expect(vec![(Call::Op(*op, *count), Reply::Done)]);
        step(&mut r.drive);
        r.done();
        seen.push(*op);
    }
    for op in ISSUED_OPS {
        assert!(seen.contains(op), "{} is issued but not tested", op.name());
    }
}

/// The errno × status table: every errno and status bit the mapping reads.
#[test]
fn every_errno_and_status_bit_has_its_meaning() {
    use Doing::*;
    // (doing, errno, status bits after, file number before, locked, Win32 code)
    type Row = (Doing, Errno, Option<u64>, Option<i32>, bool, u32);
    let rows: &[Row] = &[
        (
            Read,
            Errno::ENOMEDIUM,
            None,
            None,
            false,
            code::ERROR_NO_MEDIA_IN_DRIVE,
        ),
        (
            Write,
            Errno::EACCES,
            None,
            None,
            false,
            code::ERROR_WRITE_PROTECT,
        ),
        (
            Erase,
            Errno::EROFS,
            None,
            None,
            false,
            code::ERROR_WRITE_PROTECT,
        ),
        (
            Mark,
            Errno::EBADF,
            None,
            None,
            false,
            code::ERROR_WRITE_PROTECT,
        ),
        (
            Tension,
            Errno::ENOSYS,
            None,
            None,
            false,
            code::ERROR_NOT_SUPPORTED,
        ),
        (
            Status,
            Errno::ENOTTY,
            None,
            None,
            false,
            code::ERROR_NOT_SUPPORTED,
        ),
        (
            Write,
            Errno::ENOSPC,
            None,
            None,
            false,
            code::ERROR_END_OF_MEDIA,
        ),
        (Load, Errno::EBUSY, None, None, false, code::ERROR_NOT_READY),
        (
            Load,
            Errno::EAGAIN,
            None,
            None,
            false,
            code::ERROR_NOT_READY,
        ),
        (Load, Errno::ENXIO, None, None, false, code::ERROR_NOT_READY),
        (
            Read,
            Errno::EINVAL,
            None,
            None,
            false,
            code::ERROR_INVALID_BLOCK_LENGTH,
        ),
        (
            Seek,
            Errno::EINVAL,
            None,
            None,
            false,
            code::ERROR_INVALID_PARAMETER,
        ),
        (
            Unload,
            Errno::EINVAL,
            None,
            None,
            true,
            code::ERROR_UNABLE_TO_UNLOAD_MEDIA,
        ),
        (
            Lock,
            Errno::EINVAL,
            None,
            None,
            false,
            code::ERROR_UNABLE_TO_LOCK_MEDIA,
        ),
        (
            Setmark,
            Errno::EINVAL,
            None,
            None,
            false,
            code::ERROR_NOT_SUPPORTED,
        ),
        (
            Partition,
            Errno::EINVAL,
            None,
            None,
            false,
            code::ERROR_PARTITION_FAILURE,
        ),
        (
            SetPartition,
            Errno::EINVAL,
            None,
            None,
            false,
            code::ERROR_INVALID_PARAMETER,
        ),
        (
            Compression,
            Errno::EINVAL,
            None,
            None,
            false,
            code::ERROR_NOT_SUPPORTED,
        ),
        (
            Read,
            Errno::ENOMEM,
            None,
            None,
            false,
            code::ERROR_IO_DEVICE,
        ),
        (
            Read,
            Errno::EOVERFLOW,
            None,
            None,
            false,
            code::ERROR_INVALID_BLOCK_LENGTH,
        ),
        (
            Read,
            Errno::EIO,
            Some(gmt::DR_OPEN),
            None,
            false,
            code::ERROR_NO_MEDIA_IN_DRIVE,
        ),
        (
            Read,
            Errno::EIO,
            Some(0),
            None,
            false,
            code::ERROR_IO_DEVICE,
        ),
        (
            Read,
            Errno::EIO,
            Some(gmt::EOD),
            None,
            false,
            code::ERROR_NO_DATA_DETECTED,
        ),
        (
            Read,
            Errno::EIO,
            Some(gmt::SM),
            None,
            false,
            code::ERROR_SETMARK_DETECTED,
        ),
        (
            Write,
            Errno::EIO,
            Some(gmt::EOT),
            None,
            false,
            code::ERROR_END_OF_MEDIA,
        ),
        (
            SpaceFilemarks { forward: false },
            Errno::EIO,
            Some(gmt::BOT),
            None,
            false,
            code::ERROR_BEGINNING_OF_MEDIA,
        ),
        (
            SpaceBlocks { forward: true },
            Errno::EIO,
            Some(gmt::EOF),
            Some(0),
            false,
            code::ERROR_FILEMARK_DETECTED,
        ),
        (
            SpaceBlocks { forward: true },
            Errno::EIO,
            Some(gmt::EOD),
            Some(0),
            false,
            code::ERROR_NO_DATA_DETECTED,
        ),
        (
            Unload,
            Errno::EIO,
            Some(0),
            None,
            true,
            code::ERROR_UNABLE_TO_UNLOAD_MEDIA,
        ),
        (
            Unload,
            Errno::EIO,
            Some(0),
            None,
            false,
            code::ERROR_IO_DEVICE,
        ),
        (
            Partition,
            Errno::EIO,
            Some(0),
            None,
            false,
            code::ERROR_PARTITION_FAILURE,
        ),
        (
            Rewind,
            Errno::EIO,
            Some(gmt::CLN),
            None,
            false,
            code::ERROR_DEVICE_REQUIRES_CLEANING,
        ),
        (
            Seek,
            Errno::EIO,
            Some(gmt::WR_PROT),
            None,
            false,
            code::ERROR_IO_DEVICE,
        ),
        (
            Status,
            Errno::EPERM,
            None,
            None,
            false,
            code::ERROR_IO_DEVICE,
        ),
    ];
    for (doing, e, bits, fileno, locked, want) in rows {
        let after = bits.map(|b| MtStatus {
            fileno: i32::from(b & gmt::EOF != 0),
            ..st(b, 0, 0, 0)
        });
        let got = classify("/dev/nst9", *doing, *e, after.as_ref(), *fileno, *locked);
        assert_eq!(
            got.code(),
            *want,
            "{doing:?} {e} status {bits:?}: got {} ({got})",
            got.code_name()
        );
    }
    // EIO with the drive offline.
    let offline = MtStatus { gstat: 0, ..ok() };
    let got = classify("/dev/nst9", Read, Errno::EIO, Some(&offline), None, false);
    assert_eq!(got.code(), code::ERROR_NOT_READY);
    for e in INTERPRETED_ERRNOS {
        assert!(
            rows.iter().any(|r| r.1 == *e),
            "{e} is interpreted but not in the table"
        );
    }
    for bit in INTERPRETED_STATUS_BITS {
        assert!(
            *bit == gmt::ONLINE
                || *bit == gmt::WR_PROT
                || rows.iter().any(|r| r.2.is_some_and(|b| b & bit != 0)),
            "status bit {bit:#x} is interpreted but not in the table"
        );
    }
}

/// The real ioctl path, on a device that is no tape: MTIOCGET fails with ENOTTY and the
/// drive is refused with a clear message (no tape drive is needed for this).
#[test]
fn a_character_device_that_is_no_tape_is_refused() {
    let e = open_device(std::path::Path::new("/dev/null"))
        .err()
        .expect("/dev/null is no tape");
    assert_eq!(e.code(), code::ERROR_NOT_SUPPORTED);
    assert!(
        e.to_string().contains("/dev/null is not a tape drive"),
        "{e}"
    );
    let e = open_device(std::path::Path::new("/dev/nst-does-not-exist"))
        .err()
        .expect("missing device");
    assert_eq!(e.code(), code::ERROR_INVALID_PARAMETER);
    assert!(e.to_string().contains("no such tape device"), "{e}");
}

/// Opening a local drive sets the st options reel's positions rely on and clears those
/// that would move the tape behind its back; when st refuses, a note says what to run.
#[test]
fn driver_options_are_set_or_their_absence_noted() {
    use super::drive::st_options::*;
    let mut r = Rig::new();
    r.expect(vec![
        (
            Call::Op(MtOp::SetDrvBuffer, 0x3000_0000 | 0x800 | 0x100 | 0x400),
            Reply::Done,
        ),
        (
            Call::Op(MtOp::SetDrvBuffer, 0x4000_0000 | 0x10 | 0x1000),
            Reply::Done,
        ),
    ])
    .set_driver_options();
    r.done();
    assert!(r.drive.open_notes().is_empty());
    assert_eq!(SETBOOLEANS | WANTED, 0x3000_0d00);
    // As a user st refuses (EPERM): the note names the mt-st commands.
    let mut r = Rig::new();
    r.expect(vec![
        (
            Call::Op(MtOp::SetDrvBuffer, SETBOOLEANS | WANTED),
            Reply::Fail(Errno::EPERM),
        ),
        (
            Call::Op(MtOp::SetDrvBuffer, CLEARBOOLEANS | UNWANTED),
            Reply::Fail(Errno::EPERM),
        ),
    ])
    .set_driver_options();
    r.done();
    let notes = r.drive.open_notes();
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert!(
        notes[0].contains("stsetoptions scsi2logical can-bsr can-partitions"),
        "{notes:?}"
    );
    // A channel that cannot carry MTSETDRVBUFFER (rmt) is left alone.
    let mut r = Rig::with(vec![MtOp::SetDrvBuffer], true, ok());
    r.drive.set_driver_options();
    r.done();
}

/// A tape whose block size is unknown: the drive is in 512-byte fixed mode, the tape's
/// records are 10240 bytes (a tar tape). The read fails, the drive goes to variable
/// blocks, back to where the read started, and the record is read whole.
#[test]
fn a_foreign_tape_of_unknown_block_size_is_read_in_variable_mode() {
    let mut r = Rig::with(Vec::new(), true, st(0, 512, 0, 0));
    let mut buf = vec![0u8; 65536];
    let record = vec![0x42u8; 10240];
    let n = r
        .expect(vec![
            (Call::Tell, Reply::Tell(3)),
            (Call::Read, Reply::Fail(Errno::EIO)),
            (Call::Op(MtOp::SetBlk, 0), Reply::Done),
            (Call::Tell, Reply::Tell(4)),
            (Call::Op(MtOp::Seek, 3), Reply::Done),
            (Call::Read, Reply::Data(record.clone())),
        ])
        .read(&mut buf)
        .unwrap();
    assert_eq!(n, 10240);
    assert_eq!(buf[..n], record[..]);
    let notes = r.drive.open_notes();
    assert!(
        notes
            .iter()
            .any(|n| n.contains("512-byte blocks") && n.contains("variable")),
        "{notes:?}"
    );
    // Later reads are plain variable-mode reads.
    let n = r
        .expect(vec![(Call::Read, Reply::Data(vec![1u8; 10240]))])
        .read(&mut buf)
        .unwrap();
    assert_eq!(n, 10240);
    // A read error that is not about the block size stays one after the probe.
    let mut r = Rig::with(Vec::new(), true, st(0, 512, 0, 0));
    let e = r
        .expect(vec![
            (Call::Tell, Reply::Tell(0)),
            (Call::Read, Reply::Fail(Errno::EIO)),
            (Call::Op(MtOp::SetBlk, 0), Reply::Done),
            (Call::Tell, Reply::Tell(0)),
            (Call::Read, Reply::Fail(Errno::EIO)),
            (Call::Status, Reply::Status(ok())),
        ])
        .read(&mut buf)
        .unwrap_err();
    assert_eq!(e.code(), code::ERROR_IO_DEVICE);
    r.done();
}

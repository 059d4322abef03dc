//! Property test: random operation sequences on a virtual cartridge agree with a small
//! in-memory model of a tape (a list of objects per partition and a position), in results,
//! error codes, data and positions after every step. The model walks objects one at a
//! time; the cartridge uses its index, mark lists, files and drive-state persistence.

use proptest::prelude::*;
use reel_tape::conformance::record;
use reel_tape::error::code;
use reel_tape::vtape::{
    COMPRESSION_LEVEL, DRIVE_STATE_FILE, MAX_BLOCK_SIZE, StateFile, VirtualDrive,
};
use reel_tape::{
    EraseKind, MarkKind, PartitionMethod, PositionKind, PrepareOp, SeekTo, SetDriveParameters,
    TapeDrive, TapeError, simh,
};

const CAPACITY: u64 = 4 << 20;
const ZONE: u32 = 512 << 10;
const MIB: u64 = 1 << 20;

#[derive(Debug, Clone)]
enum Op {
    Write {
        len: usize,
        seed: u32,
    },
    Marks {
        kind: u8,
        count: u32,
    },
    Read {
        size: usize,
    },
    Seek(SeekTo),
    Position,
    Erase {
        long: bool,
    },
    BlockSize(u32),
    ReportSetmarks(bool),
    Compression(bool),
    Partition {
        method: u8,
        count: u32,
        size_mb: u32,
    },
    Reopen,
    Prepare(u8),
    Media,
    Status,
}

fn op() -> impl Strategy<Value = Op> {
    let seek = prop_oneof![
        Just(SeekTo::Rewind),
        (0u32..4).prop_map(|partition| SeekTo::EndOfData { partition }),
        (0u32..4, 0u64..14)
            .prop_map(|(partition, block)| SeekTo::LogicalBlock { partition, block }),
        (0u64..24).prop_map(SeekTo::AbsoluteBlock),
        (-4i64..5).prop_map(SeekTo::SpaceFilemarks),
        (-3i64..4).prop_map(SeekTo::SpaceSetmarks),
        (-6i64..7).prop_map(SeekTo::SpaceRelativeBlocks),
        (-3i64..4).prop_map(SeekTo::SpaceSequentialFilemarks),
        (-3i64..4).prop_map(SeekTo::SpaceSequentialSetmarks),
    ];
    prop_oneof![
        10 => (prop_oneof![1usize..3000, 60_000usize..300_000, Just(1024usize), Just(2048usize)], any::<u32>())
            .prop_map(|(len, seed)| Op::Write { len, seed }),
        5 => (0u8..4, 0u32..3).prop_map(|(kind, count)| Op::Marks { kind, count }),
        8 => prop_oneof![Just(0usize), Just(16), Just(1024), Just(2048), Just(100), Just(1 << 20)]
            .prop_map(|size| Op::Read { size }),
        10 => seek.prop_map(Op::Seek),
        2 => Just(Op::Position),
        1 => any::<bool>().prop_map(|long| Op::Erase { long }),
        1 => prop_oneof![Just(0u32), Just(1024)].prop_map(Op::BlockSize),
        1 => any::<bool>().prop_map(Op::ReportSetmarks),
        1 => any::<bool>().prop_map(Op::Compression),
        1 => (0u8..3, 0u32..6, 0u32..4).prop_map(|(method, count, size_mb)| Op::Partition { method, count, size_mb }),
        1 => Just(Op::Reopen),
        2 => (0u8..6).prop_map(Op::Prepare),
        2 => Just(Op::Media),
        1 => Just(Op::Status),
    ]
}

fn data(len: usize, seed: u32) -> Vec<u8> {
    if seed.is_multiple_of(2) {
        record(seed, len)
    } else {
        (0..len)
            .map(|i| (i % 13) as u8 + (seed % 7) as u8)
            .collect()
    }
}

fn mark_kind(k: u8) -> MarkKind {
    match k {
        0 => MarkKind::Filemarks,
        1 => MarkKind::Setmarks,
        2 => MarkKind::ShortFilemarks,
        _ => MarkKind::LongFilemarks,
    }
}

fn prepare_op(k: u8) -> PrepareOp {
    match k {
        0 => PrepareOp::Load,
        1 => PrepareOp::Unload,
        2 => PrepareOp::Lock,
        3 => PrepareOp::Unlock,
        4 => PrepareOp::Tension,
        _ => PrepareOp::Format,
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Obj {
    Rec(Vec<u8>, u64),
    Fm,
    Sm,
}

impl Obj {
    fn stored(&self) -> u64 {
        match self {
            Obj::Rec(_, s) => *s,
            _ => 4,
        }
    }
}

/// The model: what a tape is, with no files, indexes or caches.
struct Model {
    parts: Vec<Vec<Obj>>,
    sizes: Vec<u64>,
    part: usize,
    pos: usize,
    rs: bool,
    compression: bool,
    bs: usize,
    unloaded: bool,
    locked: bool,
}

type R<T> = Result<T, u32>;

impl Model {
    fn cap(&self) -> u64 {
        match self.sizes.get(self.part) {
            Some(s) => *s,
            None => CAPACITY - self.sizes.iter().sum::<u64>(),
        }
    }

    fn objs(&self) -> &Vec<Obj> {
        &self.parts[self.part]
    }

    fn used_before(&self, pos: usize) -> u64 {
        self.objs()[..pos].iter().map(Obj::stored).sum()
    }

    fn media(&self) -> R<()> {
        if self.unloaded {
            Err(code::ERROR_NO_MEDIA_IN_DRIVE)
        } else {
            Ok(())
        }
    }

    fn stored(&self, d: &[u8]) -> u64 {
        let len = if self.compression {
            let c = zstd::bulk::compress(d, COMPRESSION_LEVEL).unwrap();
            if c.len() < d.len() { c.len() } else { d.len() }
        } else {
            d.len()
        };
        simh::record_size(len as u32)
    }

    fn write(&mut self, d: &[u8]) -> R<()> {
        self.media()?;
        let blocks: Vec<&[u8]> = if self.bs == 0 {
            if d.is_empty() || d.len() > MAX_BLOCK_SIZE as usize {
                return Err(code::ERROR_INVALID_BLOCK_LENGTH);
            }
            vec![d]
        } else {
            if d.is_empty() || !d.len().is_multiple_of(self.bs) {
                return Err(code::ERROR_INVALID_BLOCK_LENGTH);
            }
            d.chunks(self.bs).collect()
        };
        let stored: u64 = blocks.iter().map(|b| self.stored(b)).sum();
        if self.used_before(self.pos) + stored > self.cap() {
            return Err(code::ERROR_END_OF_MEDIA);
        }
        let (part, pos) = (self.part, self.pos);
        self.parts[part].truncate(pos);
        for b in blocks {
            let s = self.stored(b);
            self.parts[part].push(Obj::Rec(b.to_vec(), s));
            self.pos += 1;
        }
        if self.used_before(self.pos) > self.cap() - u64::from(ZONE) {
            return Err(code::ERROR_END_OF_MEDIA);
        }
        Ok(())
    }

    fn marks(&mut self, kind: MarkKind, count: u32) -> R<()> {
        self.media()?;
        if count == 0 {
            return Ok(());
        }
        if self.used_before(self.pos) + 4 * u64::from(count) > self.cap() {
            return Err(code::ERROR_END_OF_MEDIA);
        }
        let (part, pos) = (self.part, self.pos);
        self.parts[part].truncate(pos);
        for _ in 0..count {
            self.parts[part].push(if kind == MarkKind::Setmarks {
                Obj::Sm
            } else {
                Obj::Fm
            });
        }
        self.pos += count as usize;
        Ok(())
    }

    /// One record in variable mode.
    fn read_one(&mut self, size: usize) -> R<Vec<u8>> {
        loop {
            let Some(o) = self.objs().get(self.pos).cloned() else {
                return Err(code::ERROR_NO_DATA_DETECTED);
            };
            self.pos += 1;
            match o {
                Obj::Fm => return Err(code::ERROR_FILEMARK_DETECTED),
                Obj::Sm if self.rs => return Err(code::ERROR_SETMARK_DETECTED),
                Obj::Sm => {}
                Obj::Rec(d, _) if d.len() > size => return Err(code::ERROR_MORE_DATA),
                Obj::Rec(d, _) => return Ok(d),
            }
        }
    }

    fn read(&mut self, size: usize) -> R<Vec<u8>> {
        self.media()?;
        if self.bs == 0 {
            return self.read_one(size);
        }
        if size == 0 || !size.is_multiple_of(self.bs) {
            return Err(code::ERROR_INVALID_BLOCK_LENGTH);
        }
        let mut out = Vec::new();
        while out.len() < size {
            let r = match self.read_one(self.bs) {
                Ok(d) if d.len() != self.bs => Err(code::ERROR_INVALID_BLOCK_LENGTH),
                Err(code::ERROR_MORE_DATA) => Err(code::ERROR_INVALID_BLOCK_LENGTH),
                other => other,
            };
            match r {
                Ok(d) => out.extend_from_slice(&d),
                Err(e) if !out.is_empty() => {
                    if e != code::ERROR_NO_DATA_DETECTED {
                        self.pos -= 1;
                    }
                    break;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    fn select(&mut self, p: u32) -> R<()> {
        match p {
            0 => Ok(()),
            p if (p as usize) <= self.parts.len() => {
                self.part = p as usize - 1;
                Ok(())
            }
            _ => Err(code::ERROR_INVALID_PARAMETER),
        }
    }

    fn seek(&mut self, to: SeekTo) -> R<()> {
        self.media()?;
        let rs = self.rs;
        let len = self.objs().len();
        match to {
            SeekTo::Rewind => {
                self.pos = 0;
                Ok(())
            }
            SeekTo::EndOfData { partition } => {
                self.select(partition)?;
                self.pos = self.objs().len();
                Ok(())
            }
            SeekTo::LogicalBlock { partition, block } => {
                self.select(partition)?;
                self.within(block)
            }
            SeekTo::AbsoluteBlock(mut b) => {
                for i in 0..self.parts.len() {
                    let n = self.parts[i].len() as u64;
                    if b < n || i + 1 == self.parts.len() {
                        self.part = i;
                        return self.within(b);
                    }
                    b -= n;
                }
                Ok(())
            }
            SeekTo::SpaceRelativeBlocks(n) => {
                let want = n.unsigned_abs();
                let mut passed = 0;
                loop {
                    if passed == want {
                        return Ok(());
                    }
                    if n > 0 {
                        if self.pos == len {
                            return Err(code::ERROR_NO_DATA_DETECTED);
                        }
                        self.pos += 1;
                    } else {
                        if self.pos == 0 {
                            return Err(code::ERROR_BEGINNING_OF_MEDIA);
                        }
                        self.pos -= 1;
                    }
                    let o = &self.objs()[if n > 0 { self.pos - 1 } else { self.pos }];
                    match o {
                        Obj::Rec(..) => passed += 1,
                        Obj::Fm => return Err(code::ERROR_FILEMARK_DETECTED),
                        Obj::Sm if rs => return Err(code::ERROR_SETMARK_DETECTED),
                        Obj::Sm => {}
                    }
                }
            }
            SeekTo::SpaceFilemarks(n) => self.space(n, false, rs, false),
            SeekTo::SpaceSetmarks(n) => self.space(n, true, false, false),
            SeekTo::SpaceSequentialFilemarks(n) => self.space(n, false, rs, true),
            SeekTo::SpaceSequentialSetmarks(n) => self.space(n, true, false, true),
        }
    }

    /// Walks over marks (setmarks when `setmarks`), stopping at the other kind of mark
    /// when `stop_other`; `sequential` counts only consecutive marks.
    fn space(&mut self, n: i64, setmarks: bool, stop_other: bool, sequential: bool) -> R<()> {
        let want = n.unsigned_abs();
        let len = self.objs().len();
        let mut run = 0;
        if n == 0 {
            return Ok(());
        }
        loop {
            let o = if n > 0 {
                if self.pos == len {
                    return Err(code::ERROR_NO_DATA_DETECTED);
                }
                self.pos += 1;
                self.objs()[self.pos - 1].clone()
            } else {
                if self.pos == 0 {
                    return Err(code::ERROR_BEGINNING_OF_MEDIA);
                }
                self.pos -= 1;
                self.objs()[self.pos].clone()
            };
            let counted = matches!((&o, setmarks), (Obj::Fm, false) | (Obj::Sm, true));
            let other = matches!((&o, setmarks), (Obj::Sm, false) | (Obj::Fm, true));
            if counted {
                run += 1;
                if run == want {
                    return Ok(());
                }
            } else if other && stop_other {
                return Err(code::ERROR_SETMARK_DETECTED);
            } else if sequential {
                run = 0;
            }
        }
    }

    fn within(&mut self, b: u64) -> R<()> {
        let len = self.objs().len();
        if b as usize > len {
            self.pos = len;
            return Err(code::ERROR_NO_DATA_DETECTED);
        }
        self.pos = b as usize;
        Ok(())
    }

    fn partition(&mut self, method: PartitionMethod, count: u32, size_mb: u32) -> R<()> {
        self.media()?;
        let mib = |b: u64| b / MIB * MIB;
        let bad_count = count == 0 || count > 4;
        let sizes = match method {
            PartitionMethod::Fixed => vec![mib(CAPACITY / 20).max(MIB)],
            PartitionMethod::Select if bad_count => return Err(code::ERROR_INVALID_PARAMETER),
            PartitionMethod::Select => vec![mib(CAPACITY / u64::from(count)); count as usize - 1],
            PartitionMethod::Initiator if bad_count || (count > 1 && size_mb == 0) => {
                return Err(code::ERROR_INVALID_PARAMETER);
            }
            PartitionMethod::Initiator => vec![u64::from(size_mb) * MIB; count as usize - 1],
        };
        if sizes.iter().any(|s| *s < MIB) || sizes.iter().sum::<u64>() + MIB > CAPACITY {
            return Err(code::ERROR_PARTITION_FAILURE);
        }
        self.parts = vec![Vec::new(); sizes.len() + 1];
        self.sizes = sizes;
        self.part = 0;
        self.pos = 0;
        Ok(())
    }

    fn prepare(&mut self, op: PrepareOp) -> R<()> {
        if op != PrepareOp::Load {
            self.media()?;
        }
        match op {
            PrepareOp::Load => self.unloaded = false,
            PrepareOp::Unload if self.locked => return Err(code::ERROR_UNABLE_TO_UNLOAD_MEDIA),
            PrepareOp::Unload => self.unloaded = true,
            PrepareOp::Lock => self.locked = true,
            PrepareOp::Unlock => self.locked = false,
            PrepareOp::Tension => {}
            PrepareOp::Format => self.parts.iter_mut().for_each(Vec::clear),
        }
        if !matches!(op, PrepareOp::Lock | PrepareOp::Unlock) {
            self.part = 0;
            self.pos = 0;
        }
        Ok(())
    }
}

fn code_of<T>(r: Result<T, TapeError>) -> Result<T, u32> {
    r.map_err(|e| e.code())
}

fn set_params(rs: bool, compression: bool) -> SetDriveParameters {
    SetDriveParameters {
        ecc: true,
        compression,
        data_padding: false,
        report_setmarks: rs,
        eot_warning_zone_size: ZONE,
    }
}

fn run(ops: &[Op]) -> Result<(), TestCaseError> {
    let tmp = tempfile::tempdir().unwrap();
    let path = reel_testkit::new_cartridge(tmp.path(), "m", CAPACITY);
    let state = StateFile {
        path: tmp.path().join(DRIVE_STATE_FILE),
        keep_position: true,
    };
    let mut d = VirtualDrive::open_with_state(&path, state.clone()).unwrap();
    d.set_drive_parameters(&set_params(false, false)).unwrap();
    let mut m = Model {
        parts: vec![Vec::new()],
        sizes: Vec::new(),
        part: 0,
        pos: 0,
        rs: false,
        compression: false,
        bs: 0,
        unloaded: false,
        locked: false,
    };
    for (step, op) in ops.iter().enumerate() {
        let ctx = format!("step {step}: {op:?}");
        match op {
            Op::Write { len, seed } => {
                let mut len = *len;
                if m.bs > 0 && seed % 5 != 0 {
                    len = (len / m.bs).max(1) * m.bs;
                }
                let buf = data(len, *seed);
                prop_assert_eq!(code_of(d.write(&buf)), m.write(&buf), "{}", ctx);
            }
            Op::Marks { kind, count } => {
                let kind = mark_kind(*kind);
                prop_assert_eq!(
                    code_of(d.write_marks(kind, *count, false)),
                    m.marks(kind, *count),
                    "{}",
                    ctx
                );
            }
            Op::Read { size } => {
                let mut buf = vec![0u8; *size];
                let got = code_of(d.read(&mut buf)).map(|n| buf[..n].to_vec());
                let want = m.read(*size);
                prop_assert_eq!(got, want, "{}", ctx);
            }
            Op::Seek(to) => {
                prop_assert_eq!(code_of(d.set_position(*to, false)), m.seek(*to), "{}", ctx);
            }
            Op::Position => {}
            Op::Erase { long } => {
                let kind = if *long {
                    EraseKind::Long
                } else {
                    EraseKind::Short
                };
                let want = m.media().map(|()| {
                    let (p, pos) = (m.part, m.pos);
                    m.parts[p].truncate(pos);
                });
                prop_assert_eq!(code_of(d.erase(kind, false)), want, "{}", ctx);
            }
            Op::BlockSize(bs) => {
                let want = m.media().map(|()| m.bs = *bs as usize);
                prop_assert_eq!(code_of(d.set_media_parameters(*bs)), want, "{}", ctx);
            }
            Op::ReportSetmarks(rs) => {
                m.rs = *rs;
                d.set_drive_parameters(&set_params(m.rs, m.compression))
                    .unwrap();
            }
            Op::Compression(c) => {
                m.compression = *c;
                d.set_drive_parameters(&set_params(m.rs, m.compression))
                    .unwrap();
            }
            Op::Partition {
                method,
                count,
                size_mb,
            } => {
                let method = [
                    PartitionMethod::Fixed,
                    PartitionMethod::Select,
                    PartitionMethod::Initiator,
                ][*method as usize];
                let got = code_of(d.create_partitions(method, *count, *size_mb));
                prop_assert_eq!(got, m.partition(method, *count, *size_mb), "{}", ctx);
            }
            Op::Reopen => {
                drop(d);
                d = VirtualDrive::open_with_state(&path, state.clone()).unwrap();
            }
            Op::Prepare(k) => {
                let op = prepare_op(*k);
                prop_assert_eq!(code_of(d.prepare(op, false)), m.prepare(op), "{}", ctx);
            }
            Op::Media => {
                let got = code_of(d.media_parameters())
                    .map(|p| (p.capacity, p.remaining, p.block_size, p.partition_count));
                let want = m.media().map(|()| {
                    let used: u64 = m.objs().iter().map(Obj::stored).sum();
                    (m.cap(), m.cap() - used, m.bs as u32, m.parts.len() as u32)
                });
                prop_assert_eq!(got, want, "{}", ctx);
            }
            Op::Status => {
                prop_assert_eq!(code_of(d.status()), m.media(), "{}", ctx);
            }
        }
        // After every step the drive is where the model is.
        let got = code_of(d.position(PositionKind::Logical)).map(|p| (p.partition, p.offset));
        let want = m.media().map(|()| (m.part as u32 + 1, m.pos as u64));
        prop_assert_eq!(got, want, "position after {}", ctx);
        if !m.unloaded {
            let abs = d.position(PositionKind::Absolute).unwrap().offset;
            let want: usize = m.parts[..m.part].iter().map(Vec::len).sum::<usize>() + m.pos;
            prop_assert_eq!(abs, want as u64, "absolute position after {}", ctx);
        }
    }
    // The cartridge on disk holds what the model holds, also after a reopen.
    drop(d);
    let mut d = VirtualDrive::open(&path).unwrap();
    d.set_drive_parameters(&set_params(true, false)).unwrap();
    for (i, objs) in m.parts.iter().enumerate() {
        d.set_position(
            SeekTo::LogicalBlock {
                partition: i as u32 + 1,
                block: 0,
            },
            false,
        )
        .unwrap();
        for (k, o) in objs.iter().enumerate() {
            let mut buf = vec![0u8; 1 << 20];
            let r = code_of(d.read(&mut buf)).map(|n| buf[..n].to_vec());
            let want = match o {
                Obj::Rec(data, _) => Ok(data.clone()),
                Obj::Fm => Err(code::ERROR_FILEMARK_DETECTED),
                Obj::Sm => Err(code::ERROR_SETMARK_DETECTED),
            };
            prop_assert_eq!(r, want, "partition {} object {} after reopening", i + 1, k);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn cartridge_agrees_with_the_model(ops in proptest::collection::vec(op(), 1..80)) {
        run(&ops)?;
    }
}

/// A fixed sequence that exercises setmark interplay in every spacing method (kept as a
/// plain test so a regression names the case directly).
#[test]
fn setmarks_and_filemarks_interplay() {
    let mut ops = vec![Op::ReportSetmarks(true)];
    for (k, c) in [(0u8, 1u32), (1, 1), (0, 2), (1, 2), (0, 1), (1, 1)] {
        ops.push(Op::Write { len: 10, seed: 2 });
        ops.push(Op::Marks { kind: k, count: c });
    }
    ops.push(Op::Write { len: 10, seed: 2 });
    ops.push(Op::Write { len: 10, seed: 4 });
    ops.push(Op::Marks { kind: 1, count: 1 });
    ops.push(Op::Write { len: 10, seed: 6 });
    for rs in [true, false] {
        ops.push(Op::ReportSetmarks(rs));
        for to in [
            SeekTo::SpaceFilemarks(2),
            SeekTo::SpaceSetmarks(1),
            SeekTo::SpaceSequentialFilemarks(2),
            SeekTo::SpaceSequentialSetmarks(2),
            SeekTo::SpaceRelativeBlocks(3),
            SeekTo::SpaceSequentialFilemarks(-2),
            SeekTo::SpaceSequentialSetmarks(-2),
            SeekTo::SpaceRelativeBlocks(-3),
            SeekTo::SpaceFilemarks(-2),
            SeekTo::SpaceSetmarks(-1),
        ] {
            for start in 0..=12 {
                ops.push(Op::Seek(SeekTo::LogicalBlock {
                    partition: 0,
                    block: start,
                }));
                ops.push(Op::Seek(to));
                ops.push(Op::Read { size: 1 << 20 });
            }
        }
    }
    run(&ops).unwrap();
}

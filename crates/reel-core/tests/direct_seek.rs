//! Restoring one file seeks straight to it: the drive reads a handful of records, however
//! large the set. Reads are counted through the `TapeDrive` trait.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use reel_core::{BackupOptions, NoProgress, RestoreOptions, Tapes};
use reel_tape::vtape::{Cartridge, CartridgeConfig, VirtualDrive};
use reel_tape::*;

/// A drive that counts the records read through it.
struct Counting {
    inner: VirtualDrive,
    reads: Arc<AtomicU64>,
}

impl TapeDrive for Counting {
    fn describe(&self) -> String {
        self.inner.describe()
    }
    fn read(&mut self, buf: &mut [u8]) -> Result<usize> {
        self.reads.fetch_add(1, Ordering::Relaxed);
        self.inner.read(buf)
    }
    fn write(&mut self, buf: &[u8]) -> Result<()> {
        self.inner.write(buf)
    }
    fn write_marks(&mut self, kind: MarkKind, count: u32, immediate: bool) -> Result<()> {
        self.inner.write_marks(kind, count, immediate)
    }
    fn set_position(&mut self, to: SeekTo, immediate: bool) -> Result<()> {
        self.inner.set_position(to, immediate)
    }
    fn position(&mut self, kind: PositionKind) -> Result<Position> {
        self.inner.position(kind)
    }
    fn status(&mut self) -> Result<()> {
        self.inner.status()
    }
    fn prepare(&mut self, op: PrepareOp, immediate: bool) -> Result<()> {
        self.inner.prepare(op, immediate)
    }
    fn erase(&mut self, kind: EraseKind, immediate: bool) -> Result<()> {
        self.inner.erase(kind, immediate)
    }
    fn create_partitions(
        &mut self,
        method: PartitionMethod,
        count: u32,
        size_mb: u32,
    ) -> Result<()> {
        self.inner.create_partitions(method, count, size_mb)
    }
    fn drive_parameters(&mut self) -> Result<DriveParameters> {
        self.inner.drive_parameters()
    }
    fn media_parameters(&mut self) -> Result<MediaParameters> {
        self.inner.media_parameters()
    }
    fn set_drive_parameters(&mut self, params: &SetDriveParameters) -> Result<()> {
        self.inner.set_drive_parameters(params)
    }
    fn set_media_parameters(&mut self, block_size: u32) -> Result<()> {
        self.inner.set_media_parameters(block_size)
    }
    fn flush(&mut self) -> Result<()> {
        self.inner.flush()
    }
}

#[test]
fn one_small_file_is_restored_with_a_few_record_reads() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir(&src).unwrap();
    // ~96 MiB of big files around one small one: 384 records of 256 KiB.
    for i in 0..48 {
        std::fs::write(
            src.join(format!("big{i:02}")),
            reel_testkit::pseudo_random(i, 2 << 20),
        )
        .unwrap();
    }
    std::fs::write(src.join("big24-needle"), b"the needle, a small file").unwrap();
    let cart = tmp.path().join("c.vtape");
    Cartridge::create(&cart, &CartridgeConfig::new("c", 1 << 30)).unwrap();
    let reads = Arc::new(AtomicU64::new(0));
    let catalog_path = tmp.path().join("catalog.sqlite");
    {
        let drive = Counting {
            inner: VirtualDrive::open(&cart).unwrap(),
            reads: reads.clone(),
        };
        let mut tapes = Tapes::single(Box::new(drive));
        let mut catalog = reel_catalog::Catalog::open(&catalog_path).unwrap();
        reel_core::backup(
            &mut tapes,
            Some(&mut catalog),
            &BackupOptions::new(vec![src.clone()]),
            &NoProgress,
        )
        .unwrap();
    }
    let needle = format!("{}/big24-needle", src.strip_prefix("/").unwrap().display());
    for with_catalog in [true, false] {
        let drive = Counting {
            inner: VirtualDrive::open(&cart).unwrap(),
            reads: reads.clone(),
        };
        let mut tapes = Tapes::single(Box::new(drive));
        let catalog = with_catalog.then(|| reel_catalog::Catalog::open(&catalog_path).unwrap());
        let out = tmp.path().join(format!("out-{with_catalog}"));
        let opts = RestoreOptions {
            set: None,
            patterns: vec![needle.clone()],
            target: out.clone(),
            existing: reel_stream::Existing::Skip,
            policy_roots: None,
            schedule_busy: None,
        };
        reads.store(0, Ordering::Relaxed);
        let report = reel_core::restore(&mut tapes, catalog.as_ref(), &opts, &NoProgress).unwrap();
        let n = reads.load(Ordering::Relaxed);
        assert_eq!(report.files, 1);
        assert_eq!(
            std::fs::read(out.join(&needle)).unwrap(),
            b"the needle, a small file"
        );
        // Label, index header, (index), then the member's record: a handful, not 384.
        assert!(
            n <= 8,
            "restoring one file read {n} records (catalog: {with_catalog})"
        );
    }
}

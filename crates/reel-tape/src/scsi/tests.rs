//! ScsiTape against a scripted device at the SG_IO boundary: every `sg_io_hdr` the drive
//! sends is checked against the script (CDB bytes, data out) and answered with data,
//! status and sense written from the SPC-4/SSC-3 tables. This covers what tgt cannot
//! show: LOCATE, ERASE, compression by MODE SELECT, TapeAlert (LOG SENSE), MAM (READ
//! ATTRIBUTE), UNIT ATTENTION for a changed medium, early warning and the end of the tape.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use reel_scsi::Device;
use reel_scsi::sg::{SgIoHdr, SgIoctl, SgTransport};

use super::ScsiTape;
use crate::drive::*;
use crate::error::{TapeError, code};
use crate::health::check_before_backup;

/// One command the device expects and how it answers.
#[derive(Debug, Clone)]
struct Step {
    cdb: Vec<u8>,
    out: Option<Vec<u8>>,
    data: Vec<u8>,
    status: u8,
    sense: Vec<u8>,
}

fn step(cdb: &[u8]) -> Step {
    Step {
        cdb: cdb.to_vec(),
        out: None,
        data: vec![],
        status: 0,
        sense: vec![],
    }
}

impl Step {
    fn data(mut self, d: &[u8]) -> Step {
        self.data = d.to_vec();
        self
    }
    fn out(mut self, d: &[u8]) -> Step {
        self.out = Some(d.to_vec());
        self
    }
    fn check(mut self, sense: Vec<u8>) -> Step {
        self.status = 0x02;
        self.sense = sense;
        self
    }
}

/// Fixed-format sense (SPC-4 table 26): response code 70h (71h deferred), the flags and
/// key byte, INFORMATION (VALID when given), ASC/ASCQ.
fn sense(flags_key: u8, asc: u8, ascq: u8, info: Option<i32>) -> Vec<u8> {
    let mut s = vec![
        0x70, 0, flags_key, 0, 0, 0, 0, 10, 0, 0, 0, 0, asc, ascq, 0, 0, 0, 0,
    ];
    if let Some(i) = info {
        s[0] |= 0x80;
        s[3..7].copy_from_slice(&i.to_be_bytes());
    }
    s
}

struct Scripted {
    script: Arc<Mutex<VecDeque<Step>>>,
}

impl SgIoctl for Scripted {
    fn describe(&self) -> String {
        "/dev/sg7".into()
    }

    fn sg_io(&mut self, hdr: &mut SgIoHdr) -> std::io::Result<()> {
        let step =
            self.script.lock().unwrap().pop_front().unwrap_or_else(|| {
                panic!("unexpected command {:02x?}: the script is done", hdr.cdb())
            });
        assert_eq!(
            hdr.cdb(),
            &step.cdb[..],
            "the drive sent another command than scripted"
        );
        if let Some(out) = &step.out {
            assert_eq!(
                hdr.data_out(),
                Some(&out[..]),
                "data out of {:02x?}",
                step.cdb
            );
        }
        let mut resid = 0;
        if let Some(buf) = hdr.data_in() {
            let n = step.data.len().min(buf.len());
            buf[..n].copy_from_slice(&step.data[..n]);
            resid = (buf.len() - n) as i32;
        }
        hdr.complete(step.status, resid, &step.sense);
        Ok(())
    }
}

/// Standard INQUIRY data of an LTO-5 drive (SPC-4 table 142).
fn inquiry_lto() -> Vec<u8> {
    let mut d = vec![0x01, 0x80, 0x06, 0x02, 91, 0, 0, 0];
    d.extend_from_slice(b"IBM     ULT3580-TD5     D8D5");
    d.resize(96, 0);
    d
}

/// REPORT SUPPORTED OPERATION CODES, all commands (SPC-4 table 228), of `opcodes`.
fn supported(opcodes: &[u8]) -> Vec<u8> {
    let mut d = ((opcodes.len() * 8) as u32).to_be_bytes().to_vec();
    for &o in opcodes {
        d.extend_from_slice(&[o, 0, 0, 0, 0, 0, 0, 6]);
    }
    d
}

const ALL: &[u8] = &[
    0x00, 0x01, 0x03, 0x05, 0x08, 0x0a, 0x10, 0x11, 0x12, 0x15, 0x19, 0x1a, 0x1b, 0x1e, 0x2b, 0x34,
    0x44, 0x4d, 0x55, 0x5a, 0x8c, 0x92, 0xa3,
];

/// MODE SENSE(6) data: header (WP per `wp`, buffered mode 1), a block descriptor of
/// density 58h and block length `bs`.
fn mode_block(wp: bool, bs: u32) -> Vec<u8> {
    let l = bs.to_be_bytes();
    vec![
        11,
        0,
        0x10 | if wp { 0x80 } else { 0 },
        8,
        0x58,
        0,
        0,
        0,
        0,
        l[1],
        l[2],
        l[3],
    ]
}

/// MODE SENSE(6) of the data compression page (SSC-3 table 58), DCC set, DCE as given.
fn mode_compression(on: bool) -> Vec<u8> {
    vec![
        19,
        0,
        0x10,
        0,
        0x0f,
        0x0e,
        0x40 | if on { 0x80 } else { 0 },
        0x80,
        0,
        0,
        0,
        1,
        0,
        0,
        0,
        1,
        0,
        0,
        0,
        0,
    ]
}

/// READ POSITION short form (SSC-3 table 33) at block `b` of partition 0.
fn position(b: u32) -> Vec<u8> {
    let mut d = vec![0u8; 20];
    if b == 0 {
        d[0] = 0x80;
    }
    d[4..8].copy_from_slice(&b.to_be_bytes());
    d[8..12].copy_from_slice(&b.to_be_bytes());
    d
}

const MODE_SENSE_0: [u8; 6] = [0x1a, 0, 0, 0, 255, 0];
const MODE_SENSE_0_DBD: [u8; 6] = [0x1a, 0x08, 0, 0, 255, 0];
const MODE_SENSE_0F: [u8; 6] = [0x1a, 0x08, 0x0f, 0, 255, 0];
const READ_POSITION: [u8; 10] = [0x34, 0, 0, 0, 0, 0, 0, 0, 0, 0];
const TUR: [u8; 6] = [0; 6];

/// What opening the drive sends, answered as an LTO drive at the beginning of its tape.
fn open_steps(opcodes: &[u8]) -> Vec<Step> {
    vec![
        step(&[0x12, 0, 0, 0, 96, 0]).data(&inquiry_lto()),
        step(&[0xa3, 0x0c, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0]).data(&supported(opcodes)),
        step(&TUR),
        step(&MODE_SENSE_0).data(&mode_block(false, 0)),
        step(&MODE_SENSE_0F).data(&mode_compression(true)),
        step(&READ_POSITION).data(&position(0)),
    ]
}

struct Rig {
    script: Arc<Mutex<VecDeque<Step>>>,
    tape: ScsiTape,
}

impl Rig {
    fn new(opcodes: &[u8]) -> Rig {
        let script = Arc::new(Mutex::new(VecDeque::from(open_steps(opcodes))));
        let t = SgTransport::new(Scripted {
            script: script.clone(),
        });
        let tape = ScsiTape::open(Device::new(Box::new(t))).expect("open");
        let rig = Rig { script, tape };
        rig.done();
        rig
    }

    fn expect(&mut self, steps: Vec<Step>) -> &mut ScsiTape {
        self.done();
        self.script.lock().unwrap().extend(steps);
        &mut self.tape
    }

    fn done(&self) {
        let s = self.script.lock().unwrap();
        assert!(s.is_empty(), "scripted commands were not sent: {s:?}");
    }
}

fn code_of<T: std::fmt::Debug>(r: crate::Result<T>) -> u32 {
    match r {
        Err(e) => e.code(),
        Ok(v) => panic!("expected an error, got {v:?}"),
    }
}

#[test]
fn a_drive_that_reports_positions_locates_and_spaces_itself() {
    let mut r = Rig::new(ALL);
    assert!(!r.tape.counts_positions());
    assert_eq!(r.tape.position(PositionKind::Logical).unwrap().offset, 0);
    // LOCATE(10) to 1234 (SSC-3 table 27).
    r.expect(vec![step(&[0x2b, 0, 0, 0, 0, 0x04, 0xd2, 0, 0, 0])])
        .set_position(
            SeekTo::LogicalBlock {
                partition: 0,
                block: 1234,
            },
            false,
        )
        .unwrap();
    assert_eq!(r.tape.position(PositionKind::Logical).unwrap().offset, 1234);
    r.done();
    // SPACE(6) over two filemarks, then READ POSITION says where.
    r.expect(vec![step(&[0x11, 1, 0, 0, 2, 0])])
        .set_position(SeekTo::SpaceFilemarks(2), false)
        .unwrap();
    r.expect(vec![step(&READ_POSITION).data(&position(1300))]);
    assert_eq!(r.tape.position(PositionKind::Logical).unwrap().offset, 1300);
    // SPACE back over one block stopped by a filemark: FILEMARK_DETECTED.
    let fm = sense(0x80, 0, 1, Some(1));
    r.expect(vec![step(&[0x11, 0, 0xff, 0xff, 0xfe, 0]).check(fm)]);
    assert_eq!(
        code_of(r.tape.set_position(SeekTo::SpaceRelativeBlocks(-2), false)),
        code::ERROR_FILEMARK_DETECTED
    );
    // End of data.
    r.expect(vec![step(&[0x11, 3, 0, 0, 0, 0])])
        .set_position(SeekTo::EndOfData { partition: 0 }, false)
        .unwrap();
    r.done();
}

#[test]
fn without_locate_the_drive_spaces_from_where_it_is() {
    let without_locate: Vec<u8> = ALL
        .iter()
        .copied()
        .filter(|&o| o != 0x2b && o != 0x92)
        .collect();
    let mut r = Rig::new(&without_locate);
    // From 0 to 5: SPACE 4 blocks, stopped by a filemark after 2 blocks (INFORMATION 2
    // left): 3 objects moved; one more SPACE 1, then the last object by reading.
    let fm = sense(0x80, 0, 1, Some(2));
    r.expect(vec![
        step(&[0x11, 0, 0, 0, 4, 0]).check(fm),
        step(&[0x11, 0, 0, 0, 1, 0]),
        step(&[0x08, 0x02, 0, 0, 1, 0]).data(&[9]),
    ])
    .set_position(
        SeekTo::LogicalBlock {
            partition: 0,
            block: 5,
        },
        false,
    )
    .unwrap();
    assert_eq!(r.tape.position(PositionKind::Logical).unwrap().offset, 5);
    // Back to 3: SPACE -2.
    r.expect(vec![step(&[0x11, 0, 0xff, 0xff, 0xfe, 0])])
        .set_position(
            SeekTo::LogicalBlock {
                partition: 0,
                block: 3,
            },
            false,
        )
        .unwrap();
    assert_eq!(r.tape.position(PositionKind::Logical).unwrap().offset, 3);
    // The drive claims LOGICAL_BLK all the same (by spacing).
    r.done();
}

#[test]
fn reads_writes_early_warning_and_the_end() {
    let mut r = Rig::new(ALL);
    // A variable record shorter than the buffer: ILI, INFORMATION = 100 - 60.
    let ili = sense(0x20, 0, 0, Some(40));
    r.expect(vec![
        step(&[0x08, 0, 0, 0, 100, 0]).data(&[5u8; 60]).check(ili),
    ]);
    let mut buf = [0u8; 100];
    assert_eq!(r.tape.read(&mut buf).unwrap(), 60);
    assert_eq!(buf[..60], [5u8; 60]);
    // A longer record: the drive delivers the first 16 bytes, INFORMATION -984.
    let longer = sense(0x20, 0, 0, Some(-984));
    r.expect(vec![
        step(&[0x08, 0, 0, 0, 16, 0]).data(&[6u8; 16]).check(longer),
    ]);
    let mut small = [0u8; 16];
    match r.tape.read(&mut small) {
        Err(TapeError::MoreData {
            record_len: 1000,
            copied: 16,
        }) => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(small, [6u8; 16]);
    // A filemark: nothing delivered, the tape past it.
    r.expect(vec![
        step(&[0x08, 0, 0, 0, 16, 0])
            .data(&[0xee; 16])
            .check(sense(0x80, 0, 1, Some(16))),
    ]);
    let mut untouched = [0xa5u8; 16];
    assert_eq!(
        code_of(r.tape.read(&mut untouched)),
        code::ERROR_FILEMARK_DETECTED
    );
    assert_eq!(untouched, [0xa5; 16]);
    // End of data: BLANK CHECK.
    r.expect(vec![
        step(&[0x08, 0, 0, 0, 16, 0]).check(sense(0x08, 0, 5, None)),
    ]);
    assert_eq!(
        code_of(r.tape.read(&mut small)),
        code::ERROR_NO_DATA_DETECTED
    );
    assert_eq!(r.tape.position(PositionKind::Logical).unwrap().offset, 3);
    // A write into the early-warning zone: NO SENSE, EOM, 00h/02h; the data is written.
    r.expect(vec![
        step(&[0x0a, 0, 0, 0, 4, 0])
            .out(b"abcd")
            .check(sense(0x40, 0, 2, Some(0))),
    ]);
    assert!(matches!(
        r.tape.write(b"abcd"),
        Err(TapeError::EarlyWarning)
    ));
    assert_eq!(r.tape.position(PositionKind::Logical).unwrap().offset, 4);
    // Past the end: VOLUME OVERFLOW with the whole length unwritten.
    r.expect(vec![
        step(&[0x0a, 0, 0, 0, 4, 0])
            .out(b"efgh")
            .check(sense(0x4d, 0, 2, Some(4))),
    ]);
    assert!(matches!(r.tape.write(b"efgh"), Err(TapeError::EndOfMedia)));
    assert_eq!(r.tape.position(PositionKind::Logical).unwrap().offset, 4);
    // A deferred error on a buffered write is an I/O error saying so.
    let mut deferred = sense(0x03, 0x0c, 0, None);
    deferred[0] = 0x71;
    r.expect(vec![step(&[0x10, 0, 0, 0, 1, 0]).check(deferred)]);
    let e = r
        .tape
        .write_marks(MarkKind::Filemarks, 1, false)
        .unwrap_err();
    assert_eq!(e.code(), code::ERROR_IO_DEVICE);
    assert!(e.to_string().contains("deferred"), "{e}");
    r.done();
}

#[test]
fn erase_compression_block_size_and_what_is_not_supported() {
    let mut r = Rig::new(ALL);
    r.expect(vec![step(&[0x19, 0x01, 0, 0, 0, 0])])
        .erase(EraseKind::Long, false)
        .unwrap();
    // Compression off: MODE SELECT(6) of the page with DCE clear, then read back.
    let params = [
        0, 0, 0x10, 0, 0x0f, 0x0e, 0x40, 0x80, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0,
    ];
    r.expect(vec![
        step(&[0x15, 0x10, 0, 0, 20, 0]).out(&params),
        step(&MODE_SENSE_0F).data(&mode_compression(false)),
    ]);
    let mut p = r.tape.drive_parameters_offline();
    p.compression = false;
    r.tape.set_drive_parameters(&p).unwrap();
    // Fixed 512-byte blocks: MODE SELECT(6) with a block descriptor keeping density 58h.
    r.expect(vec![
        step(&[0x15, 0x10, 0, 0, 12, 0]).out(&[0, 0, 0x10, 8, 0x58, 0, 0, 0, 0, 0, 0x02, 0]),
    ])
    .set_media_parameters(512)
    .unwrap();
    assert_eq!(
        code_of(r.tape.write(&[0u8; 100])),
        code::ERROR_INVALID_BLOCK_LENGTH
    );
    // Setmarks: the medium is checked (not write-protected), then NOT_SUPPORTED.
    r.expect(vec![
        step(&TUR),
        step(&MODE_SENSE_0_DBD).data(&mode_block(false, 512)),
    ]);
    assert_eq!(
        code_of(r.tape.write_marks(MarkKind::Setmarks, 1, false)),
        code::ERROR_NOT_SUPPORTED
    );
    // On a write-protected medium the same is WRITE_PROTECT.
    r.expect(vec![
        step(&TUR),
        step(&MODE_SENSE_0_DBD).data(&mode_block(true, 512)),
    ]);
    assert_eq!(
        code_of(r.tape.create_partitions(PartitionMethod::Select, 2, 0)),
        code::ERROR_WRITE_PROTECT
    );
    r.done();
}

#[test]
fn a_changed_medium_is_reported_once() {
    let mut r = Rig::new(ALL);
    let ua = sense(0x06, 0x28, 0, None);
    r.expect(vec![
        step(&TUR).check(ua),
        step(&MODE_SENSE_0).data(&mode_block(false, 0)),
        step(&MODE_SENSE_0F).data(&mode_compression(false)),
        step(&READ_POSITION).data(&position(0)),
    ]);
    assert_eq!(code_of(r.tape.status()), code::ERROR_MEDIA_CHANGED);
    r.expect(vec![step(&TUR)]).status().unwrap();
    assert_eq!(r.tape.position(PositionKind::Logical).unwrap().offset, 0);
    // A reset: BUS_RESET, the position asked of the drive again.
    r.expect(vec![step(&TUR).check(sense(0x06, 0x29, 0, None))]);
    assert_eq!(code_of(r.tape.status()), code::ERROR_BUS_RESET);
    r.expect(vec![step(&READ_POSITION).data(&position(7))]);
    assert_eq!(r.tape.position(PositionKind::Logical).unwrap().offset, 7);
    // No medium: NOT READY, MEDIUM NOT PRESENT.
    r.expect(vec![step(&TUR).check(sense(0x02, 0x3a, 0, None))]);
    assert_eq!(code_of(r.tape.status()), code::ERROR_NO_MEDIA_IN_DRIVE);
    r.done();
}

/// A TapeAlert log page (SSC-3 table 101) with flags `set`.
fn tapealert_page(set: &[u16]) -> Vec<u8> {
    let mut d = vec![0x2e, 0, 0x01, 0x40];
    for code in 1u16..=64 {
        d.extend_from_slice(&code.to_be_bytes());
        d.extend_from_slice(&[0x03, 1, u8::from(set.contains(&code))]);
    }
    d
}

/// READ ATTRIBUTE data (SPC-4 table 330) with the load count, MB written, barcode and
/// medium serial number.
fn mam() -> Vec<u8> {
    let attr = |id: u16, fmt: u8, v: &[u8]| {
        let mut a = id.to_be_bytes().to_vec();
        a.push(0x80 | fmt);
        a.extend_from_slice(&(v.len() as u16).to_be_bytes());
        a.extend_from_slice(v);
        a
    };
    let mut body = attr(0x0003, 0, &17u64.to_be_bytes());
    body.extend(attr(0x0220, 0, &51_200u64.to_be_bytes()));
    body.extend(attr(0x0401, 1, b"1234567890                      "));
    body.extend(attr(0x0806, 1, b"REEL01L5                        "));
    let mut d = (body.len() as u32).to_be_bytes().to_vec();
    d.extend(body);
    d
}

const LOG_SENSE_2E: [u8; 10] = [0x4d, 0, 0x6e, 0, 0, 0, 0, 0x04, 0, 0];
const READ_ATTRIBUTE: [u8; 16] = [0x8c, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x20, 0, 0, 0];

#[test]
fn health_names_tapealert_flags_reads_mam_and_refuses_a_critical_drive() {
    let mut r = Rig::new(ALL);
    r.expect(vec![
        step(&LOG_SENSE_2E).data(&tapealert_page(&[4, 21])),
        step(&READ_ATTRIBUTE).data(&mam()),
        step(&TUR),
    ]);
    let h = r.tape.health().unwrap();
    let names: Vec<_> = h
        .alerts
        .as_ref()
        .unwrap()
        .iter()
        .map(|f| (f.number, f.name))
        .collect();
    assert_eq!(names, [(4, "Media"), (21, "Cleaning requested")]);
    assert!(h.cleaning_due);
    let m = h.mam.as_ref().unwrap();
    assert_eq!(m.barcode.as_deref(), Some("REEL01L5"));
    assert_eq!(m.load_count, Some(17));
    assert_eq!(m.total_mb_written, Some(51_200));
    assert_eq!(h.identity.as_deref(), Some("IBM ULT3580-TD5 D8D5"));
    let e = h.refuse_critical().unwrap_err();
    assert!(e.to_string().contains("Media (04h)"), "{e}");
    // The check a backup makes, through the trait.
    r.expect(vec![
        step(&LOG_SENSE_2E).data(&tapealert_page(&[4])),
        step(&READ_ATTRIBUTE).data(&mam()),
        step(&TUR),
    ]);
    assert!(check_before_backup(&mut r.tape).is_err());
    // Warnings only: the backup goes ahead.
    r.expect(vec![
        step(&LOG_SENSE_2E).data(&tapealert_page(&[1, 21])),
        step(&READ_ATTRIBUTE).data(&mam()),
        step(&TUR),
    ]);
    check_before_backup(&mut r.tape).unwrap();
    r.done();
}

#[test]
fn health_of_a_drive_without_log_sense_or_mam_says_so() {
    let without: Vec<u8> = ALL
        .iter()
        .copied()
        .filter(|&o| o != 0x4d && o != 0x8c)
        .collect();
    let mut r = Rig::new(&without);
    r.expect(vec![step(&TUR)]);
    let h = r.tape.health().unwrap();
    assert!(h.alerts.is_none() && h.mam.is_none());
    assert!(h.alerts_note.as_deref().unwrap().contains("LOG SENSE"));
    assert!(h.mam_note.as_deref().unwrap().contains("READ ATTRIBUTE"));
    h.refuse_critical().unwrap();
    r.done();
}

#[test]
fn a_lost_transport_is_an_io_error_naming_the_device() {
    struct Gone;
    impl SgIoctl for Gone {
        fn describe(&self) -> String {
            "/dev/sg7".into()
        }
        fn sg_io(&mut self, hdr: &mut SgIoHdr) -> std::io::Result<()> {
            hdr.set_host_driver(0x01, 0);
            Ok(())
        }
    }
    let e = ScsiTape::open(Device::new(Box::new(SgTransport::new(Gone))))
        .err()
        .expect("gone");
    assert_eq!(e.code(), code::ERROR_IO_DEVICE);
    assert!(
        e.to_string().contains("/dev/sg7") && e.to_string().contains("DID_NO_CONNECT"),
        "{e}"
    );
}

impl ScsiTape {
    /// The settable drive parameters as they are (without the READ BLOCK LIMITS that
    /// `drive_parameters` would send).
    fn drive_parameters_offline(&self) -> SetDriveParameters {
        SetDriveParameters {
            ecc: true,
            compression: self.compression_enabled(),
            data_padding: false,
            report_setmarks: false,
            eot_warning_zone_size: 0,
        }
    }
}

//! The SCSI layer against tgtd over iSCSI on 127.0.0.1: commands, sense data (fixed and
//! descriptor format) and the changer, as a target nobody here wrote answers them.

use reel_scsi::cdb::{self, ElementType, SpaceCode};
use reel_scsi::iscsi::{Chap, IscsiTransport, IscsiUrl};
use reel_scsi::sense::{SenseKey, asc};
use reel_scsi::{Data, Device, ScsiError};
use reel_testkit::tgt::{DRIVE_ELEMENT, FIRST_SLOT, Tgt, TgtConfig};

/// libiscsi is needed; say why the test skips without it (fail under REEL_REQUIRE_ALL=1).
fn have_libiscsi() -> bool {
    match reel_scsi::iscsi::library_available() {
        Ok(()) => true,
        Err(e) => reel_testkit::missing(&e),
    }
}

fn open(url: &str, chap: Option<&Chap>) -> Result<Device, String> {
    let url = IscsiUrl::parse(url)?;
    Ok(Device::new(Box::new(IscsiTransport::connect(&url, chap)?)))
}

fn start(config: TgtConfig) -> Option<Tgt> {
    if !have_libiscsi() {
        return None;
    }
    Tgt::start(&config)
}

fn write(d: &mut Device, data: &[u8]) -> Result<usize, ScsiError> {
    let c = cdb::write6(false, data.len() as u32).unwrap();
    d.run(&c, Data::Out(data), std::time::Duration::from_secs(30))
}

fn read(d: &mut Device, len: usize) -> (Vec<u8>, Result<usize, ScsiError>) {
    let c = cdb::read6(false, false, len as u32).unwrap();
    let mut buf = vec![0u8; len];
    let r = d.run(&c, Data::In(&mut buf), std::time::Duration::from_secs(30));
    (buf, r)
}

fn run(d: &mut Device, c: reel_scsi::Cdb) -> Result<usize, ScsiError> {
    d.run(&c, Data::None, std::time::Duration::from_secs(30))
}

#[test]
fn tape_commands_and_fixed_sense() {
    let Some(tgt) = start(TgtConfig {
        loaded: Some("DRV001L6".into()),
        ..TgtConfig::default()
    }) else {
        return;
    };
    let mut d = open(&tgt.drive_url(), None).unwrap();
    let q = d.inquiry().unwrap();
    assert_eq!(q.device_type, reel_scsi::inquiry::TYPE_SEQUENTIAL);
    assert_eq!(q.product, "VIRTUAL-TAPE");
    d.test_unit_ready().unwrap();
    // tgt says which commands its tape LUN implements: no LOCATE (2Bh), no ERASE (19h).
    let ops: Vec<u8> = d
        .supported_commands()
        .unwrap()
        .iter()
        .map(|c| c.opcode)
        .collect();
    for op in [0x00, 0x01, 0x08, 0x0a, 0x10, 0x11, 0x1b, 0x34] {
        assert!(ops.contains(&op), "{op:#04x} missing from {ops:02x?}");
    }
    assert!(!ops.contains(&0x2b) && !ops.contains(&0x19), "{ops:02x?}");
    let limits = d.read_block_limits().unwrap();
    assert_eq!(limits.max, 1 << 20);

    assert_eq!(write(&mut d, b"first record").unwrap(), 12);
    run(&mut d, cdb::write_filemarks6(1, false, false).unwrap()).unwrap();
    write(&mut d, &[7u8; 1000]).unwrap();
    run(&mut d, cdb::rewind(false)).unwrap();

    // A record shorter than asked: CHECK CONDITION, ILI, residue = asked - actual.
    let (buf, r) = read(&mut d, 100);
    let e = r.unwrap_err();
    let s = e.sense().expect("sense").clone();
    assert!(s.ili, "{s}");
    assert_eq!(s.residue(), Some(100 - 12));
    assert_eq!(&buf[..12], b"first record");
    // The residue is the sense INFORMATION field (SSC-3 4.2.20); tgt's iSCSI residual
    // count beside it is not (it says 12), so the tape code reads the sense.
    assert!(matches!(e, ScsiError::Check { .. }), "{e:?}");

    // The filemark: FILEMARK with NO SENSE, ASC 00h/01h.
    let (_, r) = read(&mut d, 100);
    let s = r.unwrap_err().sense().unwrap().clone();
    assert!(s.filemark);
    assert_eq!(s.code(), asc::FILEMARK_DETECTED);

    // A record longer than asked: ILI and a negative residue. SSC-3 has the drive deliver
    // the first bytes; tgt delivers none (and its residual count says so), which the tape
    // code works around by reading the record again whole.
    let (buf, r) = read(&mut d, 10);
    let e = r.unwrap_err();
    let s = e.sense().unwrap().clone();
    assert!(s.ili);
    assert_eq!(s.residue(), Some(10 - 1000));
    assert!(
        matches!(e, ScsiError::Check { transferred: 0, .. }),
        "{e:?}"
    );
    assert_eq!(buf, [0u8; 10]);

    // End of data: BLANK CHECK.
    let (_, r) = read(&mut d, 100);
    assert_eq!(r.unwrap_err().sense().unwrap().key, SenseKey::BlankCheck);

    // What tgt does not implement answers ILLEGAL REQUEST, INVALID COMMAND OPERATION CODE.
    for c in [
        cdb::locate10(0, None, false).unwrap(),
        cdb::erase6(false, false),
        cdb::log_sense(0x2e, 0, 1024),
        cdb::read_attribute(0, 0, 1024),
        cdb::report_density_support(false, 1024),
    ] {
        let mut buf = vec![0u8; 1024];
        let data = if c.opcode() == 0x2b || c.opcode() == 0x19 {
            Data::None
        } else {
            Data::In(&mut buf)
        };
        let e = d
            .run(&c, data, std::time::Duration::from_secs(30))
            .unwrap_err();
        assert!(e.is_unsupported(), "{c:?}: {e}");
    }
    // READ POSITION answers, but without a position (BPU).
    let p = d.read_position_short().unwrap();
    assert!(p.position_unknown);
    // SPACE to end of data works.
    run(&mut d, cdb::space6(SpaceCode::EndOfData, 0).unwrap()).unwrap();
}

#[test]
fn descriptor_sense_from_tgt() {
    let Some(tgt) = start(TgtConfig {
        loaded: Some("DRV002L6".into()),
        ..TgtConfig::default()
    }) else {
        return;
    };
    tgt.update_lun(1, "sense_format=1").unwrap();
    let mut d = open(&tgt.drive_url(), None).unwrap();
    // tgt fills descriptor sense with key and ASC only (no stream bits): END OF DATA
    // while spacing over a filemark on a blank tape.
    let e = run(&mut d, cdb::space6(SpaceCode::Filemarks, 1).unwrap()).unwrap_err();
    let s = e.sense().unwrap();
    assert_eq!(s.format, reel_scsi::sense::SenseFormat::Descriptor);
    assert_eq!(s.code(), asc::END_OF_DATA);
}

#[test]
fn changer_inventory_and_moves() {
    let Some(tgt) = start(TgtConfig::default()) else {
        return;
    };
    let mut c = open(&tgt.changer_url(), None).unwrap();
    assert_eq!(
        c.inquiry().unwrap().device_type,
        reel_scsi::inquiry::TYPE_MEDIUM_CHANGER
    );
    let page = c
        .mode_sense(reel_scsi::smc::PAGE_ELEMENT_ADDRESS_ASSIGNMENT, 0, true)
        .unwrap();
    let a = reel_scsi::smc::AddressAssignment::parse(page.page(0x1d, 0).unwrap()).unwrap();
    assert_eq!(a.storage.first, FIRST_SLOT);
    assert_eq!(a.storage.count, 6);
    assert_eq!(a.data_transfer.first, DRIVE_ELEMENT);
    let slots = c
        .read_element_status(ElementType::Storage, a.storage.first, a.storage.count)
        .unwrap();
    let tags: Vec<_> = slots.iter().map(|e| e.volume_tag.clone()).collect();
    assert_eq!(
        tags[..4],
        [
            Some("REEL01L6".to_string()),
            Some("REEL02L6".to_string()),
            Some("REEL03L6".to_string()),
            None
        ]
    );
    c.move_medium(a.transport.first, FIRST_SLOT + 1, DRIVE_ELEMENT)
        .unwrap();
    let drive = c
        .read_element_status(ElementType::DataTransfer, DRIVE_ELEMENT, 1)
        .unwrap();
    assert!(drive[0].full);
    assert_eq!(drive[0].volume_tag.as_deref(), Some("REEL02L6"));
    assert_eq!(drive[0].source, Some(FIRST_SLOT + 1));
    assert!(
        drive[0]
            .identifier
            .as_deref()
            .unwrap()
            .contains("VIRTUAL-TAPE")
    );
    // The drive now has the cartridge.
    let mut d = open(&tgt.drive_url(), None).unwrap();
    d.test_unit_ready().unwrap();
    // A full destination is refused with the SMC sense.
    let e = c
        .move_medium(a.transport.first, FIRST_SLOT, DRIVE_ELEMENT)
        .unwrap_err();
    assert_eq!(
        e.sense().unwrap().code(),
        asc::MEDIUM_DESTINATION_ELEMENT_FULL
    );
    // Prevented removal blocks the unload.
    d.prevent_medium_removal(true).unwrap();
    let e = c
        .move_medium(a.transport.first, DRIVE_ELEMENT, FIRST_SLOT + 1)
        .unwrap_err();
    assert_eq!(e.sense().unwrap().code(), asc::MEDIUM_REMOVAL_PREVENTED);
    d.prevent_medium_removal(false).unwrap();
    c.move_medium(a.transport.first, DRIVE_ELEMENT, FIRST_SLOT + 1)
        .unwrap();
    let e = d.test_unit_ready().unwrap_err();
    assert_eq!(e.sense().unwrap().code(), asc::MEDIUM_NOT_PRESENT);
    c.initialize_element_status().unwrap();
}

#[test]
fn chap_is_required_and_used() {
    let Some(tgt) = start(TgtConfig {
        chap: Some(("reeltest".into(), "chap-secret-42".into())),
        ..TgtConfig::default()
    }) else {
        return;
    };
    let e = open(&tgt.changer_url(), None)
        .err()
        .expect("login without CHAP");
    assert!(e.contains("cannot log in"), "{e}");
    let wrong = Chap {
        user: "reeltest".into(),
        password: "wrong-secret-42".into(),
        target_user: None,
        target_password: None,
    };
    assert!(open(&tgt.changer_url(), Some(&wrong)).is_err());
    let right = Chap {
        password: "chap-secret-42".into(),
        ..wrong
    };
    let mut c = open(&tgt.changer_url(), Some(&right)).unwrap();
    c.test_unit_ready().unwrap();
}

#[test]
fn a_killed_target_is_a_transport_error() {
    let Some(mut tgt) = start(TgtConfig {
        loaded: Some("DRV003L6".into()),
        ..TgtConfig::default()
    }) else {
        return;
    };
    let mut d = open(&tgt.drive_url(), None).unwrap();
    d.test_unit_ready().unwrap();
    tgt.kill();
    let e = d.test_unit_ready().unwrap_err();
    assert!(e.is_transport(), "{e}");
    assert!(e.to_string().contains(&tgt.drive_url()), "{e}");
}

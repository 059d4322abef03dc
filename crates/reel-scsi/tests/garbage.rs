//! Every parser is total: any bytes give a value or an error naming an offset inside (or
//! at the end of) the input, never a panic.

use proptest::prelude::*;
use reel_scsi::ssc::{
    BlockLimits, CompressionPage, LogPage, LongPosition, ModeData, ModePage, PartitionPage,
    ShortPosition, parse_density_support,
};
use reel_scsi::{Sense, inquiry, mam, smc, tapealert};

fn offset_ok<T>(r: Result<T, reel_scsi::ParseError>, len: usize) -> Result<(), TestCaseError> {
    if let Err(e) = r {
        prop_assert!(
            e.offset <= len.max(1) + 4,
            "offset {} past input of {len}: {e}",
            e.offset
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn sense(b in proptest::collection::vec(any::<u8>(), 0..300)) {
        offset_ok(Sense::parse(&b), b.len())?;
    }

    #[test]
    fn sense_with_a_valid_header(mut b in proptest::collection::vec(any::<u8>(), 8..300), code in prop::sample::select(vec![0x70u8, 0x71, 0x72, 0x73, 0xf0, 0xf2])) {
        b[0] = code;
        offset_ok(Sense::parse(&b), b.len())?;
    }

    #[test]
    fn inquiry_data(b in proptest::collection::vec(any::<u8>(), 0..120)) {
        offset_ok(inquiry::Inquiry::parse(&b), b.len())?;
        offset_ok(inquiry::unit_serial_number(&b), b.len())?;
        offset_ok(inquiry::parse_supported_opcodes(&b), b.len())?;
    }

    #[test]
    fn positions_and_limits(b in proptest::collection::vec(any::<u8>(), 0..40)) {
        offset_ok(ShortPosition::parse(&b), b.len())?;
        offset_ok(LongPosition::parse(&b), b.len())?;
        offset_ok(BlockLimits::parse(&b), b.len())?;
    }

    #[test]
    fn mode_data(b in proptest::collection::vec(any::<u8>(), 0..300)) {
        offset_ok(ModeData::parse6(&b), b.len())?;
        offset_ok(ModeData::parse10(&b), b.len())?;
        for code in [0x0f, 0x11, 0x1d] {
            let page = ModePage { code, subpage: 0, data: b.clone() };
            offset_ok(CompressionPage::parse(&page), b.len())?;
            offset_ok(PartitionPage::parse(&page), b.len())?;
            offset_ok(smc::AddressAssignment::parse(&page), b.len())?;
        }
    }

    #[test]
    fn log_and_tapealert(b in proptest::collection::vec(any::<u8>(), 0..400)) {
        offset_ok(LogPage::parse(&b), b.len())?;
        if let Ok(p) = LogPage::parse(&b) {
            let _ = tapealert::flags_set(&p);
        }
    }

    #[test]
    fn density_and_attributes(b in proptest::collection::vec(any::<u8>(), 0..400)) {
        offset_ok(parse_density_support(&b), b.len())?;
        offset_ok(mam::parse_attributes(&b), b.len())?;
    }

    #[test]
    fn element_status(b in proptest::collection::vec(any::<u8>(), 0..600)) {
        offset_ok(smc::parse_element_status(&b), b.len())?;
    }

    // Structured element status with random lengths in the headers.
    #[test]
    fn element_status_headers(kind in 0u8..6, flags in any::<u8>(), desc_len in 0u16..120, count in 0usize..5, body in proptest::collection::vec(any::<u8>(), 0..400)) {
        let mut page = vec![kind, flags];
        page.extend_from_slice(&desc_len.to_be_bytes());
        page.push(0);
        let bytes = (usize::from(desc_len) * count).min(body.len()) as u32;
        page.extend_from_slice(&bytes.to_be_bytes()[1..]);
        page.extend_from_slice(&body);
        let mut d = vec![0, 1, 0, count as u8, 0];
        d.extend_from_slice(&(page.len() as u32).to_be_bytes()[1..]);
        d.extend(page);
        offset_ok(smc::parse_element_status(&d), d.len())?;
    }
}

//! The volume map of a tape that holds a part of a set that stopped at a volume change: on
//! its own the tape says the set continues elsewhere; told that the set stopped, the map
//! makes the part a leftover the next set overwrites.

use reel_archive::index::{SetInfo, SetMode};
use reel_archive::records::RecordSink;
use reel_archive::{
    Entry, PartMarker, SetState, SetWriter, VolumeLabel, map_volume, map_volume_knowing,
};
use reel_stream::{FileKind, FileMeta};
use reel_tape::TapeDrive;
use reel_tape::vtape::VirtualDrive;

const BLOCK: usize = 4096;

fn info(label: &VolumeLabel, number: u32, name: &str) -> SetInfo {
    SetInfo {
        id: uuid::Uuid::new_v4(),
        number,
        name: name.into(),
        started: String::new(),
        finished: String::new(),
        host: String::new(),
        paths: vec![],
        mode: SetMode::Full,
        parent: None,
        block_size: BLOCK as u32,
        volume_id: label.volume_id,
        data_file: 0,
        data_first_block: 0,
        data_records: 0,
        archive_bytes: 0,
        files: 1,
        directories: 0,
        other: 0,
        content_bytes: 0,
        problems: 0,
        reel_version: String::new(),
        parts: Vec::new(),
    }
}

/// Writes a set with one member at the volume's append point, and its index.
fn complete_set(drive: &mut VirtualDrive, label: &VolumeLabel, name: &str) -> SetInfo {
    let map = map_volume(drive).unwrap();
    let mut w = SetWriter::begin(drive, map.append_file, map.append_block, BLOCK).unwrap();
    add_member(&mut w, name);
    let number = (map.append_file / 2 + 1) as u32;
    w.finish(info(label, number, name)).unwrap()
}

fn add_member<S: RecordSink>(w: &mut SetWriter<S>, name: &str) {
    add_sized_member(w, name, format!("the content of {name}").into_bytes());
}

fn add_sized_member<S: RecordSink>(w: &mut SetWriter<S>, name: &str, body: Vec<u8>) {
    let mut meta = FileMeta::new(FileKind::Regular, 0o644);
    meta.size = body.len() as u64;
    let mut content: &[u8] = &body;
    w.add(
        &Entry::new(format!("{name}/file").into_bytes(), meta),
        Some(&mut content),
        |_| {},
    )
    .unwrap();
}

/// Writes the first part of a set at the append point and closes it as a backup does when
/// the volume fills: filemark, part marker naming the next volume, filemark.
fn closed_part(drive: &mut VirtualDrive, name: &str) -> PartMarker {
    let map = map_volume(drive).unwrap();
    let mut w = SetWriter::begin(drive, map.append_file, map.append_block, BLOCK).unwrap();
    add_member(&mut w, name);
    let data = w.finish_data().unwrap();
    let mut sink = data.sink;
    let marker = PartMarker {
        set_id: uuid::Uuid::new_v4(),
        set_name: name.into(),
        part: 1,
        byte_start: 0,
        records: data.records,
        next_barcode: "REEL-NEVERCAME".into(),
    };
    marker.write(sink.drive()).unwrap();
    marker
}

/// Starts a set at the append point and stops writing after a few records, as a backup
/// killed in the middle of its data does.
fn interrupted_set(drive: &mut VirtualDrive) {
    let map = map_volume(drive).unwrap();
    let mut w = SetWriter::begin(drive, map.append_file, map.append_block, BLOCK).unwrap();
    add_sized_member(&mut w, "interrupted", vec![7u8; 3 * BLOCK + 100]);
    drop(w);
    drive.flush().unwrap();
}

fn new_volume(dir: &std::path::Path) -> (VirtualDrive, VolumeLabel) {
    let cart = reel_testkit::new_cartridge(dir, "c", 64 << 20);
    let mut drive = VirtualDrive::open(&cart).unwrap();
    let label = VolumeLabel::new("c");
    reel_archive::write_label(&mut drive, &label).unwrap();
    (drive, label)
}

#[test]
fn a_stopped_part_is_a_leftover_only_for_a_caller_that_knows_of_the_stop() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut drive, label) = new_volume(tmp.path());
    complete_set(&mut drive, &label, "first");
    let marker = closed_part(&mut drive, "big");

    // The tape alone: a part continued on another volume, after which the next set goes.
    let map = map_volume(&mut drive).unwrap();
    assert_eq!(map.sets.len(), 2);
    assert!(matches!(&map.sets[1].state, SetState::Continued(m) if *m == marker));
    assert_eq!(map.leftover, None);
    assert_eq!(map.append_file, 5);

    // Knowing the set stopped: the part is the leftover, and the next set starts where it
    // started (tape file 3), as over an interrupted backup.
    let known = map_volume_knowing(&mut drive, &[uuid::Uuid::new_v4(), marker.set_id]).unwrap();
    assert_eq!(known.sets.len(), 1);
    assert_eq!(known.unfinished.len(), 1);
    assert!(matches!(&known.unfinished[0].state, SetState::Stopped(m) if *m == marker));
    let leftover = known.leftover.clone().unwrap();
    assert!(
        leftover.starts_with("set 2 is unfinished")
            && leftover.contains("nothing of it can be restored")
            && !leftover.contains("continued on"),
        "{leftover}"
    );
    assert_eq!(known.append_file, 3);
    assert_eq!(known.append_block, map.sets[1].data_first_block);
    assert_eq!(known.append_block, known.file_starts[3]);
    let err = known.find_set(Some("2")).unwrap_err().to_string();
    assert!(
        err.contains("has no set 2") && err.contains("unfinished"),
        "{err}"
    );

    // A set written there replaces the part: the volume holds two complete sets.
    let second = complete_set_at(&mut drive, &label, &known, "second");
    let map = map_volume_knowing(&mut drive, &[marker.set_id]).unwrap();
    assert_eq!(map.leftover, None);
    let names: Vec<&str> = map
        .complete_sets()
        .map(|s| s.info.as_ref().unwrap().name.as_str())
        .collect();
    assert_eq!(names, ["first", "second"]);
    assert_eq!(map.sets[1].info.as_ref().unwrap().id, second.id);
}

/// Writes a set at the append point of `map` (which may lie before the end of data).
fn complete_set_at(
    drive: &mut VirtualDrive,
    label: &VolumeLabel,
    map: &reel_archive::VolumeMap,
    name: &str,
) -> SetInfo {
    let mut w = SetWriter::begin(drive, map.append_file, map.append_block, BLOCK).unwrap();
    add_member(&mut w, name);
    w.finish(info(label, (map.append_file / 2 + 1) as u32, name))
        .unwrap()
}

#[test]
fn a_stopped_part_with_sets_after_it_stays_where_it_is_and_cannot_be_used() {
    // What a reel that did not know of the stop left: a set appended after the dead part.
    let tmp = tempfile::tempdir().unwrap();
    let (mut drive, label) = new_volume(tmp.path());
    complete_set(&mut drive, &label, "first");
    let marker = closed_part(&mut drive, "big");
    complete_set(&mut drive, &label, "third");
    let map = map_volume_knowing(&mut drive, &[marker.set_id]).unwrap();
    assert_eq!(map.sets.len(), 3);
    assert!(matches!(&map.sets[1].state, SetState::Stopped(m) if *m == marker));
    assert_eq!(map.leftover, None);
    assert_eq!(map.append_file, 7);
    let err = map.find_set(Some("2")).unwrap_err().to_string();
    assert!(
        err.contains("cannot be used") && err.contains("never finished"),
        "{err}"
    );
    assert_eq!(map.complete_sets().count(), 2);

    // Then a backup interrupted after the third set: the next set goes where it began.
    interrupted_set(&mut drive);
    let map = map_volume_knowing(&mut drive, &[marker.set_id]).unwrap();
    assert_eq!(map.complete_sets().count(), 2);
    assert_eq!(map.append_file, 7);
    assert!(map.leftover.unwrap().starts_with("set 4 is unfinished"));
}

#[test]
fn a_stopped_part_followed_by_an_interrupted_backup_is_replaced_with_it() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut drive, label) = new_volume(tmp.path());
    complete_set(&mut drive, &label, "first");
    let marker = closed_part(&mut drive, "big");
    // A backup that did not know of the stop went after the part and was interrupted.
    interrupted_set(&mut drive);
    // Alone, the tape has one leftover (the interrupted set) after the continued part.
    let map = map_volume(&mut drive).unwrap();
    assert_eq!(map.append_file, 5);
    // Knowing of the stop, both go: the next set starts in tape file 3.
    let map = map_volume_knowing(&mut drive, &[marker.set_id]).unwrap();
    assert_eq!(map.append_file, 3);
    assert_eq!(map.unfinished.len(), 2);
    let leftover = map.leftover.unwrap();
    assert!(
        leftover.contains("set 2 is unfinished") && leftover.contains("set 3 is unfinished"),
        "{leftover}"
    );
}

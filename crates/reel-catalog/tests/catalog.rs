//! The catalog stores and finds sets and members, migrates old schemas, and refuses
//! damaged files with a message that says what to do.

use reel_archive::index::{IndexEntry, SetInfo, SetMode};
use reel_archive::{Entry, VolumeLabel};
use reel_catalog::{Catalog, CatalogError, SCHEMA_VERSION, StoppedPart};
use reel_stream::{FileKind, FileMeta};

fn info(label: &VolumeLabel, number: u32, paths: &[&str]) -> SetInfo {
    SetInfo {
        id: uuid::Uuid::new_v4(),
        number,
        name: format!("set{number}"),
        started: format!("2026-01-0{number}T00:00:00Z"),
        finished: String::new(),
        host: "h".into(),
        paths: paths.iter().map(|p| p.to_string()).collect(),
        mode: SetMode::Full,
        parent: None,
        block_size: 262144,
        volume_id: label.volume_id,
        data_file: u64::from(2 * number - 1),
        data_first_block: 0,
        data_records: 1,
        archive_bytes: 0,
        files: 0,
        directories: 0,
        other: 0,
        content_bytes: 0,
        problems: 0,
        reel_version: String::new(),
        parts: Vec::new(),
    }
}

fn entries(n: usize) -> Vec<IndexEntry> {
    (0..n)
        .map(|i| {
            let mut m = FileMeta::new(FileKind::Regular, 0o644);
            m.size = i as u64;
            let path = if i == 3 {
                vec![b'x', 0xFE]
            } else {
                format!("dir/file{i}").into_bytes()
            };
            IndexEntry::new(
                &Entry::new(path, m),
                i as u64 * 1024,
                Some(blake3::hash(&[i as u8])),
            )
        })
        .collect()
}

#[test]
fn sets_and_members_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let mut cat = Catalog::open(&dir.path().join("c.sqlite")).unwrap();
    let label = VolumeLabel::new("tape-0001");
    cat.record_volume(&label).unwrap();
    let s1 = info(&label, 1, &["/a", "/b"]);
    let s2 = info(&label, 2, &["/b", "/a"]);
    let es = entries(100);
    cat.add_set(&s1, es.iter().cloned().map(Ok::<_, String>))
        .unwrap();
    cat.add_set(&s2, entries(5).into_iter().map(Ok::<_, String>))
        .unwrap();
    assert_eq!(cat.sets().unwrap().len(), 2);
    assert_eq!(cat.entry_count(s1.id).unwrap(), 100);
    assert_eq!(cat.entry(s1.id, b"dir/file42").unwrap().unwrap(), es[42]);
    assert_eq!(cat.entry(s1.id, &[b'x', 0xFE]).unwrap().unwrap(), es[3]);
    assert!(cat.entry(s1.id, b"nope").unwrap().is_none());
    // The same paths in another order are the same backup (the incremental parent).
    assert_eq!(
        cat.latest_set_for_paths(&["/a".into(), "/b".into()])
            .unwrap()
            .unwrap()
            .id,
        s2.id
    );
    let mut seen = Vec::new();
    cat.for_each_entry(s1.id, |e| {
        seen.push(e);
        Ok::<_, CatalogError>(())
    })
    .unwrap();
    assert_eq!(seen, es);
    // Re-adding a set replaces it.
    cat.add_set(&s1, entries(7).into_iter().map(Ok::<_, String>))
        .unwrap();
    assert_eq!(cat.entry_count(s1.id).unwrap(), 7);
    assert_eq!(cat.forget_volume(label.volume_id).unwrap(), 2);
    assert!(cat.sets().unwrap().is_empty());
}

#[test]
fn an_old_schema_is_migrated_with_its_data() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.sqlite");
    {
        let conn = Catalog::create_at_version(&path, 1).unwrap();
        conn.execute(
            "INSERT INTO sets (id, volume_id, number, name, mode, parent, started, paths, info)
             VALUES ('00000000-0000-0000-0000-000000000001', 'v', 1, 'old', 'full', NULL, 's', '/a', ?1)",
            [serde_json::to_string(&info(&VolumeLabel::new("t"), 1, &["/a"])).unwrap()],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO entries (set_id, seq, path, kind, size, mode, uid, gid, mtime, offset, hash, link, meta_digest)
             VALUES ('00000000-0000-0000-0000-000000000001', 0, X'612f62', 'f', 3, 420, 0, 0, '1', 0, NULL, NULL, '0123456789abcdef0123456789abcdef')",
            [],
        )
        .unwrap();
    }
    let cat = Catalog::open(&path).unwrap();
    assert_eq!(cat.schema_version().unwrap(), SCHEMA_VERSION);
    assert_eq!(cat.sets().unwrap().len(), 1);
    let id: uuid::Uuid = "00000000-0000-0000-0000-000000000001".parse().unwrap();
    let e = cat.entry(id, b"a/b").unwrap().unwrap();
    assert_eq!(e.size, 3);
    assert_eq!(e.ctime, None);
}

fn stopped_part(label: &VolumeLabel, set_id: uuid::Uuid, part: u32, data_file: u64) -> StoppedPart {
    StoppedPart {
        set_id,
        part,
        set_name: "big".into(),
        volume_id: label.volume_id,
        barcode: label.barcode.clone(),
        data_file,
        first_block: 40 * data_file,
        next_barcode: "REEL-0000NEXT".into(),
        stopped: "2026-12-01T00:00:00Z".into(),
        why: "the operator stopped the job".into(),
    }
}

#[test]
fn a_version_4_catalog_gains_the_stopped_parts_table_and_keeps_its_data() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v4.sqlite");
    let label = VolumeLabel::new("tape-0001");
    let set = info(&label, 1, &["/a"]);
    {
        // A catalog as reel wrote it at schema 4: a volume, a set, a member, a foreign scan.
        let conn = Catalog::create_at_version(&path, 4).unwrap();
        conn.execute(
            "INSERT INTO volumes (id, barcode, series_id, sequence, labelled, seen)
             VALUES (?1, 'tape-0001', ?2, 1, 'l', 's')",
            [label.volume_id.to_string(), label.series_id.to_string()],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO sets (id, volume_id, number, name, mode, parent, started, paths, info)
             VALUES (?1, ?2, 1, 'set1', 'full', NULL, 's', '/a', ?3)",
            [
                set.id.to_string(),
                label.volume_id.to_string(),
                serde_json::to_string(&set).unwrap(),
            ],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO entries (set_id, seq, path, kind, size, mode, uid, gid, mtime, offset, hash, link,
                                  meta_digest, ctime, ino, source_set, hash_scheme)
             VALUES (?1, 0, X'612f62', 'f', 3, 420, 0, 0, '1', 0, NULL, NULL, '0123456789abcdef0123456789abcdef', '2', 7, NULL, NULL)",
            [set.id.to_string()],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO foreign_files (id, fingerprint, file, first_block, record_size, records, bytes,
                                        volume_id, barcode, drive, scanned, members, damage, globals)
             VALUES ('00000000-0000-0000-0000-0000000000f1', 'fp', 3, 9, 10240, 2, 20480,
                     NULL, NULL, '/dev/nst0', 's', 0, 0, 0)",
            [],
        )
        .unwrap();
        let no_table = conn.prepare("SELECT * FROM stopped_parts");
        assert!(no_table.is_err(), "schema 4 has no stopped_parts table");
    }
    let mut cat = Catalog::open(&path).unwrap();
    assert_eq!(cat.schema_version().unwrap(), 5);
    assert_eq!(SCHEMA_VERSION, 5);
    // What schema 4 held is still there.
    assert_eq!(cat.volumes().unwrap().len(), 1);
    assert_eq!(cat.sets().unwrap(), vec![set.clone()]);
    let e = cat.entry(set.id, b"a/b").unwrap().unwrap();
    assert_eq!((e.size, e.ino), (3, Some(7)));
    assert_eq!(cat.foreign_files().unwrap().len(), 1);
    // The new table is empty and works.
    assert!(cat.stopped_parts().unwrap().is_empty());
    let stopped_id = uuid::Uuid::new_v4();
    let part = stopped_part(&label, stopped_id, 1, 3);
    cat.record_stopped_part(&part).unwrap();
    drop(cat);
    // Reopened (read-only, as `reel list` does): the record is kept.
    let cat = Catalog::open_read_only(&path).unwrap();
    assert_eq!(
        cat.stopped_parts_on_volume(label.volume_id).unwrap(),
        vec![part]
    );
    assert_eq!(cat.stopped_set_ids().unwrap(), vec![stopped_id]);
}

#[test]
fn stopped_parts_are_kept_per_volume_and_forgotten_when_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let mut cat = Catalog::open(&dir.path().join("c.sqlite")).unwrap();
    let full = VolumeLabel::new("REEL-0000FULL");
    let second = VolumeLabel::new("REEL-00SECOND");
    let other = VolumeLabel::new("REEL-000OTHER");
    for l in [&full, &second, &other] {
        cat.record_volume(l).unwrap();
    }
    // One set stopped after two parts (on two volumes), another after one.
    let spanning = uuid::Uuid::new_v4();
    let single = uuid::Uuid::new_v4();
    let first_part = stopped_part(&full, spanning, 1, 5);
    let second_part = stopped_part(&second, spanning, 2, 1);
    let other_part = stopped_part(&other, single, 1, 3);
    for p in [&first_part, &second_part, &other_part] {
        cat.record_stopped_part(p).unwrap();
    }
    // Recording the same part again replaces it.
    cat.record_stopped_part(&first_part).unwrap();
    assert_eq!(cat.stopped_parts().unwrap().len(), 3);
    assert_eq!(
        cat.stopped_parts_on_volume(full.volume_id).unwrap(),
        vec![first_part.clone()]
    );
    let mut ids = vec![spanning, single];
    ids.sort();
    assert_eq!(cat.stopped_set_ids().unwrap(), ids);
    // A set written from tape file 7 on leaves the part in file 5 alone; one from file 5
    // overwrites it.
    assert_eq!(cat.forget_stopped_parts(full.volume_id, 7).unwrap(), 0);
    assert_eq!(cat.forget_stopped_parts(full.volume_id, 5).unwrap(), 1);
    assert!(
        cat.stopped_parts_on_volume(full.volume_id)
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        cat.stopped_parts_on_volume(second.volume_id).unwrap(),
        vec![second_part]
    );
    // A relabelled volume takes its stopped parts with it.
    cat.forget_volume(second.volume_id).unwrap();
    assert_eq!(cat.stopped_parts().unwrap(), vec![other_part]);
    assert_eq!(cat.stopped_set_ids().unwrap(), vec![single]);
}

#[test]
fn a_damaged_file_says_to_rebuild() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.sqlite");
    std::fs::write(&path, vec![0x5Au8; 8192]).unwrap();
    let err = Catalog::open(&path).err().expect("must fail");
    assert!(matches!(err, CatalogError::Damaged { .. }), "{err}");
    assert!(err.to_string().contains("reel catalog rebuild"), "{err}");
    // A real catalog with a corrupted page.
    let path2 = dir.path().join("c2.sqlite");
    {
        let mut cat = Catalog::open(&path2).unwrap();
        let label = VolumeLabel::new("t");
        cat.add_set(
            &info(&label, 1, &["/a"]),
            entries(2000).into_iter().map(Ok::<_, String>),
        )
        .unwrap();
        cat.conn_checkpoint();
    }
    let mut bytes = std::fs::read(&path2).unwrap();
    let mid = bytes.len() / 2;
    for b in &mut bytes[mid..mid + 4096] {
        *b = 0xFF;
    }
    std::fs::write(&path2, &bytes).unwrap();
    let _ = std::fs::remove_file(dir.path().join("c2.sqlite-wal"));
    // Damage is found where it is met (open does not scan the whole file): reading the
    // set's members by order and by path must run into it and say what to do.
    let err = match Catalog::open(&path2) {
        Err(e) => e,
        Ok(cat) => {
            let found = (|| -> Result<(), CatalogError> {
                let sets = cat.sets()?;
                let id = sets[0].id;
                let mut paths = Vec::new();
                cat.for_each_entry(id, |e| {
                    paths.push(e.path);
                    Ok::<_, CatalogError>(())
                })?;
                for p in &paths {
                    cat.entry(id, p)?;
                }
                Ok(())
            })();
            found.expect_err("damage went unnoticed")
        }
    };
    assert!(err.to_string().contains("reel catalog rebuild"), "{err}");
}

#[test]
fn read_only_open_reads_what_open_wrote_and_falls_back_to_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.sqlite");
    // No file yet: created (and migrated) as `open` does, so the job goes on.
    let cat = Catalog::open_read_only(&path).unwrap();
    assert_eq!(cat.schema_version().unwrap(), SCHEMA_VERSION);
    assert!(cat.sets().unwrap().is_empty());
    drop(cat);
    let label = VolumeLabel::new("tape-0001");
    let set = info(&label, 1, &["/a"]);
    {
        let mut cat = Catalog::open(&path).unwrap();
        cat.record_volume(&label).unwrap();
        cat.add_set(&set, entries(10).into_iter().map(Ok::<_, String>))
            .unwrap();
    }
    let before = std::fs::read(&path).unwrap();
    let cat = Catalog::open_read_only(&path).unwrap();
    assert_eq!(
        cat.sets_on_volume(label.volume_id).unwrap(),
        vec![set.clone()]
    );
    assert_eq!(cat.entry(set.id, b"dir/file5").unwrap().unwrap().size, 5);
    assert_eq!(cat.entry_count(set.id).unwrap(), 10);
    drop(cat);
    assert!(
        std::fs::read(&path).unwrap() == before,
        "reading changed the catalog file"
    );
    let cat = Catalog::open_read_only(&path).unwrap();
    // A second reader and a writer alongside it (a backup while a restore runs).
    let other = Catalog::open_read_only(&path).unwrap();
    assert_eq!(other.sets().unwrap().len(), 1);
    {
        let mut writer = Catalog::open(&path).unwrap();
        let set2 = info(&label, 2, &["/b"]);
        writer
            .add_set(&set2, entries(3).into_iter().map(Ok::<_, String>))
            .unwrap();
    }
    assert_eq!(cat.sets().unwrap().len(), 2, "a reader sees committed sets");
}

#[test]
fn read_only_open_migrates_old_schemas_and_refuses_newer_and_damaged_ones() {
    let dir = tempfile::tempdir().unwrap();
    // An older schema is migrated (through `open`), then read.
    let old = dir.path().join("old.sqlite");
    drop(Catalog::create_at_version(&old, 1).unwrap());
    let cat = Catalog::open_read_only(&old).unwrap();
    assert_eq!(cat.schema_version().unwrap(), SCHEMA_VERSION);
    drop(cat);
    // A newer one is refused with the version it has.
    let newer = dir.path().join("new.sqlite");
    {
        let conn = Catalog::create_at_version(&newer, SCHEMA_VERSION).unwrap();
        conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .unwrap();
    }
    match Catalog::open_read_only(&newer) {
        Err(CatalogError::TooNew { found, .. }) => assert_eq!(found, SCHEMA_VERSION + 1),
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("a newer schema was accepted"),
    }
    // Not a database: the same advice as `open`.
    let garbage = dir.path().join("garbage.sqlite");
    std::fs::write(&garbage, vec![0x5Au8; 8192]).unwrap();
    let err = Catalog::open_read_only(&garbage)
        .err()
        .expect("garbage accepted");
    assert!(matches!(err, CatalogError::Damaged { .. }), "{err}");
    assert!(err.to_string().contains("reel catalog rebuild"), "{err}");
}

#[test]
fn a_foreign_scan_is_copied_whole_with_its_time_or_not_at_all() {
    let dir = tempfile::tempdir().unwrap();
    let mut old = Catalog::open(&dir.path().join("old.sqlite")).unwrap();
    let id = reel_catalog::ForeignFile::id_for("f00d", 0);
    let mut scan = old.begin_foreign_scan(id).unwrap();
    let es = entries(40);
    for e in &es {
        scan.push(e).unwrap();
    }
    let described = reel_catalog::ForeignFile {
        id,
        fingerprint: "f00d".into(),
        file: 0,
        first_block: 0,
        record_size: 10240,
        records: 9,
        bytes: 92160,
        volume_id: None,
        barcode: Some("SHELF7".into()),
        drive: "/dev/nst0".into(),
        scanned: String::new(),
        members: 0,
        damage: 0,
        globals: false,
    };
    let scanned = scan.finish(&described).unwrap();
    assert_eq!(scanned.members, 40);

    let mut new = Catalog::open(&dir.path().join("new.sqlite")).unwrap();
    assert_eq!(new.copy_foreign_scan(&old, &scanned).unwrap(), 40);
    assert_eq!(new.foreign_files().unwrap(), vec![scanned.clone()]);
    assert_eq!(new.entry(id, b"dir/file17").unwrap().unwrap(), es[17]);

    // A description counting more members than the old file holds (its log lost with a
    // crash) copies nothing: a partial scan would hide members from restores.
    let other = reel_catalog::ForeignFile {
        id: reel_catalog::ForeignFile::id_for("beef", 2),
        members: 41,
        ..scanned.clone()
    };
    let mut scan = old.begin_foreign_scan(other.id).unwrap();
    for e in &es {
        scan.push(e).unwrap();
    }
    scan.finish(&other).unwrap();
    assert_eq!(new.copy_foreign_scan(&old, &other).unwrap(), 40);
    assert_eq!(new.foreign_files().unwrap(), vec![scanned]);
    assert_eq!(new.entry_count(other.id).unwrap(), 0);
}

//! The catalog stores and finds sets and members, migrates old schemas, and refuses
//! damaged files with a message that says what to do.

use reel_archive::index::{IndexEntry, SetInfo, SetMode};
use reel_archive::{Entry, VolumeLabel};
use reel_catalog::{Catalog, CatalogError, SCHEMA_VERSION};
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
             VALUES ('00000000-0000-0000-0000-000000000001', 0, X'612f62', 'f', 3, 420, 0, 0, '1', 0, NULL, NULL, 'd')",
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
                    paths.push(e.path());
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

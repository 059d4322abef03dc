//! The catalog's rows of a set's members do not drift: the golden index of reel-archive,
//! stored in a catalog, gives the rows reel wrote before index entries were typed
//! (`data/entries-golden.txt`, one row a line as SQLite quotes its values), and those rows
//! read back as the entries of the index.

use reel_archive::index::{IndexEntry, SetInfo};
use reel_catalog::{Catalog, CatalogError};
use reel_stream::Timestamp;

const GOLDEN_INDEX: &str = include_str!("../../reel-archive/tests/data/index-golden.jsonl");
const GOLDEN_ROWS: &str = include_str!("data/entries-golden.txt");

fn golden_set() -> (SetInfo, Vec<IndexEntry>) {
    let lines: Vec<&str> = GOLDEN_INDEX.lines().collect();
    let header: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
    let info: SetInfo = serde_json::from_value(header["set"].clone()).unwrap();
    let entries = lines[1..lines.len() - 1]
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (info, entries)
}

/// Every row of `entries`, in order, each column as SQLite quotes it.
fn rows(path: &std::path::Path) -> String {
    let conn = rusqlite::Connection::open(path).unwrap();
    let mut stmt = conn
        .prepare(
            "SELECT quote(set_id), quote(seq), quote(path), quote(kind), quote(size), quote(mode),
                    quote(uid), quote(gid), quote(mtime), quote(offset), quote(hash), quote(link),
                    quote(meta_digest), quote(ctime), quote(ino), quote(source_set),
                    quote(hash_scheme)
             FROM entries ORDER BY set_id, seq",
        )
        .unwrap();
    let mut out = String::new();
    let mut rows = stmt.query([]).unwrap();
    while let Some(r) = rows.next().unwrap() {
        let cols: Vec<String> = (0..17).map(|i| r.get::<_, String>(i).unwrap()).collect();
        out.push_str(&cols.join(" | "));
        out.push('\n');
    }
    out
}

#[test]
fn a_sets_rows_are_the_golden_ones_and_read_back_as_its_entries() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.sqlite");
    let (info, entries) = golden_set();
    {
        let mut cat = Catalog::open(&path).unwrap();
        let n = cat
            .add_set(&info, entries.iter().cloned().map(Ok::<_, String>))
            .unwrap();
        assert_eq!(n, entries.len() as u64);
        cat.conn_checkpoint();
    }
    let got = rows(&path);
    for (i, (g, w)) in got.lines().zip(GOLDEN_ROWS.lines()).enumerate() {
        assert_eq!(g, w, "row {i}");
    }
    assert_eq!(got, GOLDEN_ROWS);
    let cat = Catalog::open_read_only(&path).unwrap();
    let mut back = Vec::new();
    cat.for_each_entry(info.id, |e| {
        back.push(e);
        Ok::<_, CatalogError>(())
    })
    .unwrap();
    assert_eq!(back, entries);
}

/// A row whose kind, time or digest is not one reel writes is an error that names the value
/// and what it should be, not a member with a made-up kind.
#[test]
fn a_garbage_row_is_an_error_naming_the_value() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.sqlite");
    let set = "5eed0000-0000-4000-8000-0000000000aa";
    let good = [
        "'f'",
        "'1.5'",
        "NULL",
        "'0123456789abcdef0123456789abcdef'",
        "'2'",
        "NULL",
        "'5eed0000-0000-4000-8000-0000000000bb'",
    ];
    // (column changed, its value, what the error names)
    let cases = [
        (0, "'f'", ""),
        (0, "'z'", "\"z\" is not a member kind letter"),
        (0, "'fd'", "\"fd\" is not a member kind letter"),
        (1, "'soon'", "\"soon\" is not a time"),
        (2, "'abc'", "\"abc\" is not a BLAKE3 hash"),
        (3, "'d'", "\"d\" is not a metadata digest"),
        (4, "'1e9'", "\"1e9\" is not a time"),
        (5, "'md5'", "\"md5\" is not a hash scheme"),
        (6, "'set-7'", "\"set-7\" is not a set id"),
    ];
    {
        let conn = Catalog::create_at_version(&path, reel_catalog::SCHEMA_VERSION).unwrap();
        for (i, (column, value, _)) in cases.iter().enumerate() {
            let mut v = good;
            v[*column] = value;
            conn.execute(
                &format!(
                    "INSERT INTO entries (set_id, seq, path, kind, size, mode, uid, gid, mtime, offset,
                                          hash, link, meta_digest, ctime, ino, source_set, hash_scheme)
                     VALUES ('{set}', {i}, X'{:02x}', {}, 0, 420, 0, 0, {}, 0, {}, NULL, {}, {}, NULL,
                             {}, {})",
                    b'a' + i as u8,
                    v[0],
                    v[1],
                    v[2],
                    v[3],
                    v[4],
                    v[6],
                    v[5]
                ),
                [],
            )
            .unwrap();
        }
    }
    let cat = Catalog::open(&path).unwrap();
    let id: uuid::Uuid = set.parse().unwrap();
    // The first row, all good, reads.
    let e = cat.entry(id, b"a").unwrap().unwrap();
    assert_eq!(
        (e.mtime, e.ctime),
        (Timestamp::new(1, 500_000_000), Some(Timestamp::new(2, 0)))
    );
    assert_eq!(
        e.source_set,
        Some("5eed0000-0000-4000-8000-0000000000bb".parse().unwrap())
    );
    for (i, (_, _, wanted)) in cases.iter().enumerate().skip(1) {
        let err = cat.entry(id, &[b'a' + i as u8]).unwrap_err().to_string();
        assert!(err.contains(wanted), "{err} (wanted {wanted})");
    }
    let err = cat
        .for_each_entry(id, |_| Ok::<_, CatalogError>(()))
        .unwrap_err()
        .to_string();
    assert!(err.contains("is not a member kind letter"), "{err}");
}

//! The catalog's rows of a set's members do not drift: the golden index of reel-archive,
//! stored in a catalog, gives the rows reel wrote before index entries were typed
//! (`data/entries-golden.txt`, one row a line as SQLite quotes its values), and those rows
//! read back as the entries of the index.

use reel_archive::index::{IndexEntry, SetInfo};
use reel_catalog::{Catalog, CatalogError};

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

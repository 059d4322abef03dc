//! A hand-built corpus of hostile and damaged tar archives. The archives are committed
//! under `tests/corpus/` (they seed the fuzz target too); `tests/corpus.rs` checks the
//! files are what this code builds (`REEL_UPDATE_CORPUS=1` rewrites them).
//!
//! Every case names the members that must come through (`restored`) and the members or
//! stretches that must be reported (`reported`). Paths that would escape a restore target
//! climb into its parent, `../outside` (a directory the safety tests create and watch), or
//! are absolute names under `/reel-corpus-escape-*` (which must never appear).

#![allow(dead_code)]

use reel_archive::pax::header::{self, BLOCK, field};

/// mtime of every member (fixed, so the corpus is reproducible).
const MTIME: u64 = 1_600_000_000;

/// A tar archive built block by block, including blocks no correct writer would produce.
#[derive(Default)]
pub struct Tar {
    pub bytes: Vec<u8>,
}

pub fn header(name: &[u8], flag: u8, size: u64, link: &[u8]) -> [u8; BLOCK] {
    let mut b = [0u8; BLOCK];
    let name_field = &name[..name.len().min(100)];
    header::put_bytes(&mut b, field::NAME, name_field);
    let mode = if flag == b'5' { 0o755 } else { 0o644 };
    header::put_octal(&mut b, field::MODE, mode);
    header::put_octal(&mut b, field::UID, 0);
    header::put_octal(&mut b, field::GID, 0);
    header::put_number(&mut b, field::SIZE, size as i64);
    header::put_octal(&mut b, field::MTIME, MTIME);
    b[field::TYPEFLAG] = flag;
    header::put_bytes(&mut b, field::LINKNAME, &link[..link.len().min(100)]);
    header::put_bytes(&mut b, field::MAGIC, b"ustar\0");
    header::put_bytes(&mut b, field::VERSION, b"00");
    header::put_bytes(&mut b, field::UNAME, b"root");
    header::put_bytes(&mut b, field::GNAME, b"root");
    header::set_checksum(&mut b);
    b
}

/// A pax record with its correct length prefix.
pub fn record(key: &str, value: &[u8]) -> Vec<u8> {
    reel_archive::pax::pax_record(key, value)
}

impl Tar {
    pub fn new() -> Tar {
        Tar::default()
    }

    pub fn offset(&self) -> u64 {
        self.bytes.len() as u64
    }

    pub fn block(&mut self, b: &[u8; BLOCK]) -> &mut Self {
        self.bytes.extend_from_slice(b);
        self
    }

    /// Content, zero-padded to whole blocks.
    pub fn data(&mut self, data: &[u8]) -> &mut Self {
        self.bytes.extend_from_slice(data);
        let pad = (BLOCK - data.len() % BLOCK) % BLOCK;
        self.bytes.resize(self.bytes.len() + pad, 0);
        self
    }

    pub fn file(&mut self, name: &str, data: &[u8]) -> &mut Self {
        self.file_bytes(name.as_bytes(), data)
    }

    pub fn file_bytes(&mut self, name: &[u8], data: &[u8]) -> &mut Self {
        let h = header(name, b'0', data.len() as u64, b"");
        self.block(&h).data(data)
    }

    pub fn dir(&mut self, name: &str) -> &mut Self {
        let h = header(name.as_bytes(), b'5', 0, b"");
        self.block(&h)
    }

    pub fn symlink(&mut self, name: &str, target: &str) -> &mut Self {
        let h = header(name.as_bytes(), b'2', 0, target.as_bytes());
        self.block(&h)
    }

    pub fn hardlink(&mut self, name: &str, target: &str) -> &mut Self {
        let h = header(name.as_bytes(), b'1', 0, target.as_bytes());
        self.block(&h)
    }

    /// A pax extended header with exactly this body (lengths as given, right or wrong).
    pub fn pax_body(&mut self, body: &[u8]) -> &mut Self {
        let h = header(b"PaxHeaders/x", b'x', body.len() as u64, b"");
        self.block(&h).data(body)
    }

    pub fn pax(&mut self, records: &[(&str, &[u8])]) -> &mut Self {
        let body: Vec<u8> = records.iter().flat_map(|(k, v)| record(k, v)).collect();
        self.pax_body(&body)
    }

    pub fn end(&mut self) -> &mut Self {
        self.bytes.extend_from_slice(&[0u8; 2 * BLOCK]);
        self
    }

    pub fn take(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.bytes)
    }
}

/// What a case is and what must happen to it.
pub struct Case {
    pub name: &'static str,
    pub about: &'static str,
    pub bytes: Vec<u8>,
    /// Members that must be restored, with their content (files) or `None` (others).
    pub restored: Vec<(&'static str, Option<Vec<u8>>)>,
    /// Each must appear in some refusal or damage message.
    pub reported: Vec<&'static str>,
    /// The case is about damage (the reader must report at least one damaged stretch).
    pub damaged: bool,
}

fn case(
    name: &'static str,
    about: &'static str,
    bytes: Vec<u8>,
    restored: Vec<(&'static str, Option<Vec<u8>>)>,
    reported: Vec<&'static str>,
    damaged: bool,
) -> Case {
    Case {
        name,
        about,
        bytes,
        restored,
        reported,
        damaged,
    }
}

fn ok(name: &'static str) -> (&'static str, Option<Vec<u8>>) {
    (name, Some(format!("content of {name}\n").into_bytes()))
}

fn content(name: &str) -> Vec<u8> {
    format!("content of {name}\n").into_bytes()
}

/// A corrupted copy of a block: `f` edits it after the checksum was computed.
fn corrupted(mut b: [u8; BLOCK], f: impl FnOnce(&mut [u8; BLOCK])) -> [u8; BLOCK] {
    f(&mut b);
    b
}

/// A header whose checksum is recomputed after `f` changes it (a well-formed block with
/// hostile values).
fn resealed(mut b: [u8; BLOCK], f: impl FnOnce(&mut [u8; BLOCK])) -> [u8; BLOCK] {
    f(&mut b);
    header::set_checksum(&mut b);
    b
}

/// The corpus.
pub fn cases() -> Vec<Case> {
    let mut out = Vec::new();
    let mut t = Tar::new();

    // --- Paths that escape -------------------------------------------------------------
    t.file("/reel-corpus-escape-abs", b"x")
        .file("ok", &content("ok"))
        .end();
    out.push(case(
        "absolute-path",
        "an absolute member name",
        t.take(),
        vec![ok("ok")],
        vec!["/reel-corpus-escape-abs"],
        false,
    ));

    t.file("../escape-dotdot", b"x")
        .file("ok", &content("ok"))
        .end();
    out.push(case(
        "dotdot-plain",
        "a name starting with ..",
        t.take(),
        vec![ok("ok")],
        vec!["../escape-dotdot"],
        false,
    ));

    t.file("a/../../escape-middle", b"x")
        .file("ok", &content("ok"))
        .end();
    out.push(case(
        "dotdot-middle",
        ".. in the middle of a name",
        t.take(),
        vec![ok("ok")],
        vec!["a/../../escape-middle"],
        false,
    ));

    t.file("./../escape-dot", b"x")
        .file("ok", &content("ok"))
        .end();
    out.push(case(
        "dotdot-after-dot",
        "./.. at the start",
        t.take(),
        vec![ok("ok")],
        vec!["./../escape-dot"],
        false,
    ));

    t.file("a/b/../../../escape-deep", b"x")
        .file("ok", &content("ok"))
        .end();
    out.push(case(
        "dotdot-deep",
        "enough .. to climb out from deep",
        t.take(),
        vec![ok("ok")],
        vec!["a/b/../../../escape-deep"],
        false,
    ));

    t.pax(&[("path", b"../escape-pax")])
        .file("innocent", b"x")
        .file("ok", &content("ok"))
        .end();
    out.push(case(
        "dotdot-pax-path",
        "a pax path record with ..",
        t.take(),
        vec![ok("ok")],
        vec!["../escape-pax"],
        false,
    ));

    {
        let name = b"../../escape-gnu-long";
        let mut l = header(b"././@LongLink", b'L', name.len() as u64 + 1, b"");
        l = resealed(l, |b| {
            b[field::MAGIC.0..field::MAGIC.0 + 8].copy_from_slice(b"ustar  \0")
        });
        t.block(&l).data(&[&name[..], b"\0"].concat());
        let h = resealed(header(b"truncated-name", b'0', 1, b""), |b| {
            b[field::MAGIC.0..field::MAGIC.0 + 8].copy_from_slice(b"ustar  \0")
        });
        t.block(&h).data(b"x").file("ok", &content("ok")).end();
    }
    out.push(case(
        "dotdot-gnu-longname",
        "a GNU long name (L) with ..",
        t.take(),
        vec![ok("ok")],
        vec!["../../escape-gnu-long"],
        false,
    ));

    {
        let h = resealed(header(b"escape-prefix", b'0', 1, b""), |b| {
            header::put_bytes(b, field::PREFIX, b"..");
        });
        t.block(&h).data(b"x").file("ok", &content("ok")).end();
    }
    out.push(case(
        "dotdot-ustar-prefix",
        "a ustar prefix of ..",
        t.take(),
        vec![ok("ok")],
        vec!["../escape-prefix"],
        false,
    ));

    t.pax(&[("path", b"a\0b")])
        .file("nul", b"x")
        .file("ok", &content("ok"))
        .end();
    out.push(case(
        "nul-in-pax-path",
        "a NUL byte in a pax path",
        t.take(),
        vec![ok("ok")],
        vec!["NUL"],
        false,
    ));

    t.file("", b"x")
        .file(".", b"y")
        .file("./", b"z")
        .file("ok", &content("ok"))
        .end();
    out.push(case(
        "empty-names",
        "empty and '.' names",
        t.take(),
        vec![ok("ok")],
        vec!["empty path"],
        false,
    ));

    // --- Links ---------------------------------------------------------------------------
    t.file("inside", &content("inside"))
        .hardlink("hl", "../outside/sentinel")
        .file("ok", &content("ok"))
        .end();
    out.push(case(
        "hardlink-to-parent",
        "a hard link to a file outside the target",
        t.take(),
        vec![ok("inside"), ok("ok")],
        vec!["hl"],
        false,
    ));

    t.hardlink("hl-abs", "/reel-corpus-escape-hardlink")
        .file("ok", &content("ok"))
        .end();
    out.push(case(
        "hardlink-absolute",
        "a hard link to an absolute path",
        t.take(),
        vec![ok("ok")],
        vec!["hl-abs"],
        false,
    ));

    t.symlink("esc", "../outside")
        .file("esc/pwned", b"x")
        .file("ok", &content("ok"))
        .end();
    out.push(case(
        "symlink-then-write",
        "a symlink out of the target, then a file through it",
        t.take(),
        vec![ok("ok")],
        vec!["esc"],
        false,
    ));

    t.symlink("abs", "/reel-corpus-escape-dir")
        .file("abs/pwned", b"x")
        .file("ok", &content("ok"))
        .end();
    out.push(case(
        "absolute-symlink-then-write",
        "an absolute symlink, then a file through it",
        t.take(),
        vec![ok("ok")],
        vec!["abs"],
        false,
    ));

    t.dir("d")
        .symlink("d", "../outside")
        .file("d/after", &content("d/after"))
        .end();
    out.push(case(
        "dir-then-symlink",
        "a directory later replaced by a symlink",
        t.take(),
        vec![("d", None), ok("d/after")],
        vec!["d"],
        false,
    ));

    t.symlink("d2", "../outside")
        .dir("d2")
        .file("d2/x", b"x")
        .file("ok", &content("ok"))
        .end();
    out.push(case(
        "symlink-then-dir",
        "a symlink, then a directory of the same name, then a file in it",
        t.take(),
        vec![ok("ok")],
        vec!["d2"],
        false,
    ));

    t.symlink("s", "../outside")
        .hardlink("h", "s")
        .file("h/pwned", b"x")
        .file("ok", &content("ok"))
        .end();
    out.push(case(
        "hardlink-to-symlink",
        "a hard link to a symlink out, then a file through the link",
        t.take(),
        vec![ok("ok")],
        vec!["s"],
        false,
    ));

    t.dir("dir")
        .symlink("dir/up", "..")
        .symlink("x", "dir/up/dir/up/..")
        .file("x/pwned", b"x")
        .file("ok", &content("ok"))
        .end();
    out.push(case(
        "symlink-chain",
        "symlinks that only leave the target together",
        t.take(),
        vec![ok("ok"), ("dir/up", None)],
        vec!["x"],
        false,
    ));

    // --- Damaged headers -----------------------------------------------------------------
    {
        t.file("a", &content("a"));
        let bad = corrupted(header(b"b", b'0', 3, b""), |b| b[0] = b'B');
        t.block(&bad).data(b"bbb").file("c", &content("c")).end();
    }
    out.push(case(
        "bad-checksum",
        "a header whose checksum does not match",
        t.take(),
        vec![ok("a"), ok("c")],
        vec!["byte 1024"],
        true,
    ));

    {
        t.file("a", &content("a"));
        let bad = resealed(header(b"b", b'0', 3, b""), |b| {
            b[field::SIZE.0..field::SIZE.0 + 11].copy_from_slice(b"00000000x03")
        });
        t.block(&bad).data(b"bbb").file("c", &content("c")).end();
    }
    out.push(case(
        "non-octal-size",
        "a size field that is not octal",
        t.take(),
        vec![ok("a"), ok("c")],
        vec!["byte 1024"],
        true,
    ));

    {
        t.file("a", &content("a"));
        let bad = resealed(header(b"b", b'0', 0, b""), |b| {
            header::put_base256(b, field::SIZE, -4096)
        });
        t.block(&bad).file("c", &content("c")).end();
    }
    out.push(case(
        "negative-size",
        "a negative base-256 size",
        t.take(),
        vec![ok("a"), ok("c")],
        vec!["negative size"],
        true,
    ));

    {
        t.file("a", &content("a"));
        let bad = resealed(header(b"b", b'0', 3, b""), |b| {
            header::put_base256(b, field::UID, -1)
        });
        t.block(&bad).data(b"bbb").file("c", &content("c")).end();
    }
    out.push(case(
        "negative-uid",
        "a negative base-256 uid",
        t.take(),
        vec![ok("a"), ok("c")],
        vec!["uid"],
        true,
    ));

    {
        t.file("a", &content("a"));
        let bad = resealed(header(b"b", b'0', 3, b""), |b| {
            b[field::MODE.0..field::MODE.0 + 7].copy_from_slice(b"07z7777")
        });
        t.block(&bad).data(b"bbb").file("c", &content("c")).end();
    }
    out.push(case(
        "non-octal-mode",
        "a mode field that is not octal",
        t.take(),
        vec![ok("a"), ok("c")],
        vec!["mode"],
        true,
    ));

    t.file("a", &content("a"))
        .pax_body(b"999 path=liar\n")
        .file("b", b"bbb")
        .file("c", &content("c"))
        .end();
    out.push(case(
        "pax-length-too-long",
        "a pax record longer than its header",
        t.take(),
        vec![ok("a"), ok("c")],
        vec!["pax record length"],
        true,
    ));

    t.file("a", &content("a"))
        .pax_body(b"5 path=liar\n")
        .file("b", b"bbb")
        .file("c", &content("c"))
        .end();
    out.push(case(
        "pax-length-too-short",
        "a pax record shorter than its text",
        t.take(),
        vec![ok("a"), ok("c")],
        vec!["pax record"],
        true,
    ));

    t.file("a", &content("a"))
        .pax_body(b"12 pathliar\n")
        .file("b", b"bbb")
        .file("c", &content("c"))
        .end();
    out.push(case(
        "pax-record-without-equals",
        "a pax record without '='",
        t.take(),
        vec![ok("a"), ok("c")],
        vec!["without '='"],
        true,
    ));

    t.file("a", &content("a"))
        .pax(&[("size", b"-5")])
        .file("b", b"bbb")
        .file("c", &content("c"))
        .end();
    out.push(case(
        "pax-bad-size",
        "a pax size record that is not a number",
        t.take(),
        vec![ok("a"), ok("c")],
        vec!["size"],
        true,
    ));

    {
        t.file("a", &content("a"));
        let h = header(b"PaxHeaders/huge", b'x', 1 << 40, b"");
        t.block(&h).data(b"10 path=x\n");
    }
    out.push(case(
        "pax-absurd-size",
        "a pax header that claims a terabyte",
        t.take(),
        vec![ok("a")],
        vec!["truncated"],
        true,
    ));

    {
        t.file("a", &content("a"));
        let h = header(b"b", b'0', 0o77777777777, b"");
        t.block(&h).data(b"only a little data");
    }
    out.push(case(
        "absurd-size-at-end",
        "a member claiming 8 GiB at the end of a small archive",
        t.take(),
        vec![ok("a")],
        vec!["b"],
        true,
    ));

    t.file("a", &content("a"));
    {
        let h = header(b"b", b'0', 5000, b"");
        t.block(&h).bytes.extend_from_slice(&[7u8; 1000]);
    }
    out.push(case(
        "truncated-in-data",
        "the archive ends inside a member's data",
        t.take(),
        vec![ok("a")],
        vec!["b"],
        true,
    ));

    t.file("a", &content("a"));
    t.bytes
        .extend_from_slice(&header(b"b", b'0', 3, b"")[..200]);
    out.push(case(
        "truncated-in-header",
        "the archive ends inside a header block",
        t.take(),
        vec![ok("a")],
        vec!["header block"],
        true,
    ));

    t.file("a", &content("a"))
        .block(&[0u8; BLOCK])
        .file("c", &content("c"))
        .end();
    out.push(case(
        "lone-zero-block",
        "a single zero block between members",
        t.take(),
        vec![ok("a"), ok("c")],
        vec!["lone zero block"],
        true,
    ));

    {
        t.file("a", &content("a"));
        let mut garbage = [0u8; 3 * BLOCK];
        for (i, b) in garbage.iter_mut().enumerate() {
            *b = (i * 7 + 13) as u8;
        }
        t.bytes.extend_from_slice(&garbage);
        t.file("c", &content("c")).end();
    }
    out.push(case(
        "garbage-between-members",
        "three blocks of garbage between members",
        t.take(),
        vec![ok("a"), ok("c")],
        vec!["skipped 1536 bytes"],
        true,
    ));

    // --- Sparse maps -----------------------------------------------------------------------
    t.file("a", &content("a"))
        .pax(&[
            ("GNU.sparse.major", b"1"),
            ("GNU.sparse.minor", b"0"),
            ("GNU.sparse.name", b"s1"),
            ("GNU.sparse.realsize", b"100"),
        ])
        .file(
            "GNUSparseFile.0/s1",
            &[b"2\nzz\n".as_slice(), &[0u8; 507]].concat(),
        )
        .file("c", &content("c"))
        .end();
    out.push(case(
        "sparse-1.0-garbage-map",
        "a GNU sparse 1.0 map that is not numbers",
        t.take(),
        vec![ok("a"), ok("c")],
        vec!["sparse map"],
        true,
    ));

    t.file("a", &content("a"))
        .pax(&[
            ("GNU.sparse.size", b"100"),
            ("GNU.sparse.numblocks", b"2"),
            ("GNU.sparse.name", b"s2"),
            ("GNU.sparse.map", b"50,10,0,10"),
        ])
        .file("GNUSparseFile.0/s2", &[1u8; 20])
        .file("c", &content("c"))
        .end();
    out.push(case(
        "sparse-0.1-unsorted-map",
        "a GNU sparse 0.1 map out of order",
        t.take(),
        vec![ok("a"), ok("c")],
        vec!["sparse extent"],
        true,
    ));

    t.file("a", &content("a"))
        .pax(&[
            ("GNU.sparse.size", b"100"),
            ("GNU.sparse.numblocks", b"3"),
            ("GNU.sparse.offset", b"0"),
            ("GNU.sparse.numbytes", b"10"),
        ])
        .file("s3", &[1u8; 10])
        .file("c", &content("c"))
        .end();
    out.push(case(
        "sparse-0.0-numblocks",
        "a GNU sparse 0.0 map shorter than it says",
        t.take(),
        vec![ok("a"), ok("c")],
        vec!["numblocks"],
        true,
    ));

    t.file("a", &content("a"))
        .pax(&[("GNU.sparse.size", b"10"), ("GNU.sparse.map", b"0,1000")])
        .file("s4", &[1u8; 1000])
        .file("c", &content("c"))
        .end();
    out.push(case(
        "sparse-past-size",
        "a sparse extent past the file's size",
        t.take(),
        vec![ok("a"), ok("c")],
        vec!["past the file size"],
        true,
    ));

    {
        t.file("a", &content("a"));
        let h = resealed(header(b"s5", b'S', 512, b""), |b| {
            b[field::MAGIC.0..field::MAGIC.0 + 8].copy_from_slice(b"ustar  \0");
            header::put_bytes(b, (386, 12), b"0000000000z");
            header::put_octal(b, (398, 12), 512);
            header::put_octal(b, (483, 12), 4096);
        });
        t.block(&h).data(&[2u8; 512]).file("c", &content("c")).end();
    }
    out.push(case(
        "old-gnu-sparse-bad-entry",
        "an old GNU sparse header with a non-octal entry",
        t.take(),
        vec![ok("a"), ok("c")],
        vec!["sparse entry"],
        true,
    ));

    // --- Multi-volume continuations out of place --------------------------------------------
    {
        t.file("a", &content("a"));
        let h = resealed(header(b"big", b'M', 10, b""), |b| {
            b[field::MAGIC.0..field::MAGIC.0 + 8].copy_from_slice(&[0; 8]);
            header::put_octal(b, (369, 12), 4096);
        });
        t.block(&h).data(&[3u8; 10]).file("c", &content("c")).end();
    }
    out.push(case(
        "orphan-continuation",
        "an M header with no member to continue",
        t.take(),
        vec![ok("a"), ok("c")],
        vec!["earlier volume"],
        true,
    ));

    out
}

//! `reel policy show` and `reel policy check` on a temporary `$REEL_ROOT` and a real tree.

use std::path::Path;
use std::process::Output;

use reel_testkit::{TempHome, write_file};

fn reel(home: &TempHome, root: &Path, args: &[&str]) -> Output {
    reel_testkit::reel!(home)
        .env("REEL_ROOT", root)
        .env("TREE_FOR_TEST", home.path().join("tree"))
        .args(args)
        .output()
        .expect("run reel")
}

fn text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn setup() -> (TempHome, std::path::PathBuf) {
    let home = TempHome::new();
    let root = home.path().join("root");
    let tree = home.path().join("tree");
    write_file(
        &root.join("usr/lib/reel/files-not-to-backup.d/50-app.conf"),
        b"$TREE_FOR_TEST/tmp/* /s\n*.o\n",
    );
    write_file(
        &root.join("etc/reel/files-not-to-backup.d/60-admin.conf"),
        b"# admin\n$TREE_FOR_TEST/build/\nnot/absolute\n",
    );
    write_file(
        &root.join("etc/reel/paths-not-to-restore.d/id.conf"),
        b"$TREE_FOR_TEST/etc/machine-id\n",
    );
    write_file(
        &root.join("etc/reel/reel.conf"),
        b"max-snapshots = 5\nbackup-mode = \"incremental\"\n",
    );
    write_file(&tree.join("tmp/a/b"), b"x");
    write_file(&tree.join("build/out"), b"x");
    write_file(
        &tree.join("cache/CACHEDIR.TAG"),
        b"Signature: 8a477f597d28d172789f06886806bc55\n",
    );
    write_file(&tree.join("cache/blob"), b"x");
    write_file(&tree.join("src/main.c"), b"x");
    write_file(&tree.join("etc/machine-id"), b"x");
    (home, root)
}

#[test]
fn show_lists_every_entry_with_file_and_line_and_the_problems() {
    let (home, root) = setup();
    let o = reel(&home, &root, &["policy", "show"]);
    let out = text(&o);
    assert_eq!(
        o.status.code(),
        Some(1),
        "a malformed line makes it exit 1\n{out}"
    );
    let app = root.join("usr/lib/reel/files-not-to-backup.d/50-app.conf");
    let admin = root.join("etc/reel/files-not-to-backup.d/60-admin.conf");
    let tree = home.path().join("tree");
    assert!(
        out.contains(&format!("{}/tmp/* /s", tree.display())),
        "{out}"
    );
    assert!(out.contains(&format!("{}:1", app.display())), "{out}");
    assert!(out.contains(&format!("{}:2", app.display())), "{out}");
    assert!(out.contains(&format!("{}:2", admin.display())), "{out}");
    assert!(
        out.contains(&format!("{}:3: error", admin.display())),
        "{out}"
    );
    assert!(out.contains("max-snapshots = 5"), "{out}");
    assert!(out.contains("backup-mode = incremental"), "{out}");

    let o = reel(&home, &root, &["policy", "show", "--json"]);
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).expect("one JSON document");
    let rules = doc["rules"].as_array().unwrap();
    assert_eq!(rules.len(), 4);
    assert_eq!(rules[0]["key"], "files-not-to-backup");
    assert_eq!(rules[0]["pattern"], "$TREE_FOR_TEST/tmp/*");
    assert_eq!(rules[0]["recursive"], true);
    assert_eq!(rules[0]["line"], 1);
    assert_eq!(rules[0]["file"], app.display().to_string());
    assert_eq!(rules[3]["key"], "paths-not-to-restore");
    assert_eq!(doc["config"]["max-snapshots"]["value"], 5);
    assert_eq!(doc["config"]["max-snapshots"]["source"]["line"], 1);
    assert_eq!(doc["diagnostics"][0]["line"], 3);
}

#[test]
fn check_says_whether_and_why() {
    let (home, root) = setup();
    let tree = home.path().join("tree");
    let p = |rel: &str| tree.join(rel).display().to_string();
    let o = reel(
        &home,
        &root,
        &[
            "policy",
            "check",
            &p("tmp/a/b"),
            &p("build/out"),
            &p("cache/blob"),
            &p("src/main.c"),
            &p("etc/machine-id"),
        ],
    );
    assert_eq!(o.status.code(), Some(0));
    let out = text(&o);
    // One block a path: its line, then indented lines.
    let mut blocks: Vec<String> = Vec::new();
    for line in out.lines() {
        match blocks.last_mut() {
            Some(b) if line.starts_with(' ') => b.push_str(&format!("{line}\n")),
            _ => blocks.push(format!("{line}\n")),
        }
    }
    assert_eq!(blocks.len(), 5, "{out}");
    assert!(
        blocks[0].contains("backup:   excluded") && blocks[0].contains("50-app.conf:1"),
        "{out}"
    );
    assert!(
        blocks[1].contains(&format!("inside {}", p("build")))
            && blocks[1].contains("60-admin.conf:2"),
        "{out}"
    );
    assert!(blocks[2].contains("CACHEDIR.TAG"), "{out}");
    assert!(blocks[3].contains("backup:   backed up"), "{out}");
    assert!(
        blocks[4].contains("restore:  left as it is") && blocks[4].contains("id.conf:1"),
        "{out}"
    );

    // --exclude, relative to the current directory, and JSON.
    let o = reel_testkit::reel!(home)
        .env("REEL_ROOT", &root)
        .env("TREE_FOR_TEST", &tree)
        .current_dir(&tree)
        .args([
            "policy",
            "check",
            "--exclude",
            "src/*.c",
            "src/main.c",
            "--json",
        ])
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(doc[0]["backup"]["reason"], "rule");
    assert_eq!(doc[0]["backup"]["rule"]["source"]["from"], "command-line");
    assert!(doc[0]["restore"].is_null());

    // A bad --exclude is a usage error naming it.
    let o = reel(
        &home,
        &root,
        &["policy", "check", "--exclude", "/a*/b", "/x"],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--exclude #1"));
}

//! A drive without a changer, tapes changed by hand: a set that fills the tape asks the
//! operator for a blank one, a restore asks for each volume it needs, a wrong tape is refused
//! and asked for again, and `--no-prompt` (or no terminal) stops with the tape named.
//!
//! The drive is remote (`localhost:drive` through `reel rmt --root`), and `drive` is a
//! symbolic link to a cartridge: the test's "operator" changes the tape by pointing the link
//! at another cartridge before pressing Enter on a pseudo-terminal, as a person would swap
//! cartridges in /dev/nst0.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};

use reel_testkit::cli::{ok, reel_rmt_shell, run};
use reel_testkit::{TempHome, assert_same_tree, make_tree, pseudo_random, require_tool};

const REEL: &str = env!("CARGO_BIN_EXE_reel");
/// What every tape request ends with.
const PROMPT_END: &str = "(q and Enter to stop): ";

/// A library of small blank cartridges served by `reel rmt`, with `drive` as the slot.
struct Rack {
    home: TempHome,
    root: PathBuf,
    rsh: PathBuf,
}

impl Rack {
    fn new(cartridges: &[&str]) -> Rack {
        let home = TempHome::new();
        let root = home.path().join("rack");
        for name in cartridges {
            // Small cartridges: each holds a few MiB before early warning.
            ok(home.command(REEL).arg("--tape").arg(&root).args([
                "tape",
                "new",
                name,
                "--capacity",
                "12M",
            ]));
        }
        let rsh = reel_rmt_shell(home.path(), REEL, &root);
        Rack { home, root, rsh }
    }

    /// Puts cartridge `name` in the drive.
    fn insert(&self, name: &str) {
        let slot = self.root.join("drive");
        let _ = std::fs::remove_file(&slot);
        std::os::unix::fs::symlink(self.root.join(format!("{name}.vtape")), &slot).unwrap();
    }

    fn reel(&self) -> Command {
        self.with_drive(self.home.command(REEL))
    }

    /// `reel` in a session of its own, without the controlling terminal the test may have
    /// (as from cron).
    fn reel_detached(&self) -> Command {
        let mut c = self.home.command("setsid");
        c.args(["-w", REEL]);
        self.with_drive(c)
    }

    fn with_drive(&self, mut c: Command) -> Command {
        c.env("REEL_RSH_COMMAND", &self.rsh)
            .env("REEL_RMT_COMMAND", "rmt")
            .env_remove("REEL_NO_PROMPT")
            .args(["--tape", "localhost:drive"]);
        c
    }
}

/// A terminal for the child's stdin: the master side and the slave's path.
fn pseudo_terminal() -> (std::fs::File, PathBuf) {
    use rustix::pty::{OpenptFlags, grantpt, openpt, ptsname, unlockpt};
    let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY).expect("openpt");
    grantpt(&master).expect("grantpt");
    unlockpt(&master).expect("unlockpt");
    let name = ptsname(&master, Vec::new()).expect("ptsname");
    let path = PathBuf::from(name.to_str().expect("pts name"));
    (std::fs::File::from(master), path)
}

/// Runs `cmd` with a terminal as stdin; each tape request on stderr is passed to `answer`,
/// whose reply (a line) is typed on the terminal. Returns the exit status, stdout, stderr
/// and the requests in order.
fn run_with_operator(
    cmd: &mut Command,
    mut answer: impl FnMut(&str) -> String,
) -> (ExitStatus, String, String, Vec<String>) {
    let (mut master, slave) = pseudo_terminal();
    let tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&slave)
        .expect("open the terminal");
    let mut child = cmd
        .stdin(tty)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn reel");
    let mut stdout = child.stdout.take().unwrap();
    let out_thread = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let mut stderr = child.stderr.take().unwrap();
    let (mut all, mut pending, mut requests) = (String::new(), String::new(), Vec::new());
    let mut buf = [0u8; 4096];
    loop {
        let n = stderr.read(&mut buf).expect("read stderr");
        if n == 0 {
            break;
        }
        let text = String::from_utf8_lossy(&buf[..n]);
        all.push_str(&text);
        pending.push_str(&text);
        while let Some(end) = pending.find(PROMPT_END) {
            let asked = &pending[..end];
            let asked = asked
                .trim_end()
                .trim_end_matches("Press Enter when it is loaded");
            let request = asked[asked.rfind("reel: ").map(|i| i + 6).unwrap_or(0)..]
                .trim()
                .to_string();
            assert!(
                requests.len() < 20,
                "the operator was asked too often:\n{all}"
            );
            let reply = answer(&request);
            requests.push(request);
            master
                .write_all(format!("{reply}\n").as_bytes())
                .expect("type on the terminal");
            pending = pending[end + PROMPT_END.len()..].to_string();
        }
    }
    let status = child.wait().expect("wait for reel");
    assert!(!all.contains("panicked"), "reel panicked: {all}");
    (status, out_thread.join().unwrap(), all, requests)
}

/// The tape name after the last `marker` in a request (`REEL-…`).
fn name_after(request: &str, marker: &str) -> Option<String> {
    let at = request.rfind(marker)? + marker.len();
    Some(
        request[at..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
            .collect(),
    )
}

/// The name a request for a blank tape gives it (`… it will be named REEL-…`).
fn blank_name(request: &str) -> Option<String> {
    name_after(request, "it will be named ")
}

/// The volume a restore asks for (`load reel volume REEL-… (id …)`), the last one named.
fn wanted_volume(request: &str) -> Option<String> {
    name_after(request, "load reel volume ")
}

fn source_tree(home: &TempHome) -> PathBuf {
    let src = home.path().join("src");
    std::fs::create_dir(&src).unwrap();
    for i in 0..14 {
        std::fs::write(src.join(format!("f{i:02}")), pseudo_random(i, 2 << 20)).unwrap();
    }
    make_tree(&src.join("tree"), 100, 3);
    src
}

#[test]
fn a_set_that_fills_the_tape_asks_for_blank_ones_and_a_restore_for_each_volume() {
    let rack = Rack::new(&["c1", "c2", "c3", "c4", "c5", "c6", "c7"]);
    let src = source_tree(&rack.home);
    rack.insert("c1");

    // Backup: each blank tape asked for gets the next cartridge; the names it was given are
    // what a person would write on the stickers.
    let mut blanks = vec!["c2", "c3", "c4", "c5", "c6", "c7"].into_iter();
    let mut sticker: BTreeMap<String, String> = BTreeMap::new();
    let (status, stdout, stderr, requests) = run_with_operator(
        rack.reel().args(["backup", "--name", "big"]).arg(&src),
        |request| {
            let name = blank_name(request)
                .unwrap_or_else(|| panic!("expected a request for a blank tape: {request}"));
            let cart = blanks
                .next()
                .unwrap_or_else(|| panic!("more blank tapes than the rack holds; last: {request}"));
            rack.insert(cart);
            sticker.insert(name, cart.to_string());
            String::new()
        },
    );
    assert!(status.success(), "backup failed: {stdout}\n{stderr}");
    assert!(
        requests.len() >= 2,
        "a 28 MiB set on 12 MiB tapes needs 3+ volumes: {requests:?}\n{stderr}"
    );
    assert!(
        requests[0].contains("The tape in localhost:drive was ejected"),
        "{}",
        requests[0]
    );
    // The first tape got a name of its own too (not the drive's path).
    let listing = ok(rack.reel().arg("list"));
    let first = listing
        .split_whitespace()
        .find(|w| w.starts_with("REEL-") && !sticker.contains_key(*w))
        .unwrap_or_else(|| panic!("the first volume's name is not listed:\n{listing}"))
        .to_string();
    sticker.insert(first.clone(), "c1".into());
    for name in sticker.keys() {
        assert!(
            listing.contains(name.as_str()),
            "{name} missing:\n{listing}"
        );
    }
    assert!(!listing.contains("localhost:drive ("), "{listing}");

    // The catalog is lost: rebuilt from the tapes, the one in the drive and each one the
    // operator loads when asked, then `q`. Loading one twice is noticed.
    let files_before = ok(rack.reel().args(["list", "big"]));
    std::fs::remove_file(rack.home.path().join("reel-home/catalog.sqlite")).unwrap();
    let mut to_load: Vec<String> = sticker.values().cloned().collect();
    to_load.insert(0, to_load[0].clone());
    let mut queue = to_load.into_iter();
    let (status, stdout, stderr, requests) =
        run_with_operator(rack.reel().args(["catalog", "rebuild"]), |request| {
            assert!(
                request.contains("the next tape to read into the catalog"),
                "{request}"
            );
            match queue.next() {
                Some(cart) => {
                    rack.insert(&cart);
                    String::new()
                }
                None => "q".into(),
            }
        });
    assert!(status.success(), "rebuild failed: {stdout}\n{stderr}");
    assert_eq!(requests.len(), sticker.len() + 2, "{requests:?}");
    assert!(stderr.contains("was read already"), "{stderr}");
    for name in sticker.keys() {
        assert!(stdout.contains(name.as_str()), "{name} not read:\n{stdout}");
    }
    assert!(stdout.contains("1 sets"), "{stdout}");
    assert_eq!(ok(rack.reel().args(["list", "big"])), files_before);

    // Restore with the last tape still in the drive: reel asks for each volume by name. The
    // first time a wrong tape is loaded; reel says which one it is and asks again.
    let wrong_first = std::cell::Cell::new(true);
    let target = rack.home.path().join("restored");
    let (status, stdout, stderr, requests) = run_with_operator(
        rack.reel().args(["restore", "big", "--to"]).arg(&target),
        |request| {
            let name = wanted_volume(request)
                .unwrap_or_else(|| panic!("expected a request for a volume: {request}"));
            let cart = sticker
                .get(&name)
                .unwrap_or_else(|| panic!("asked for a volume never written: {request}"));
            if wrong_first.replace(false) {
                let other = if cart == "c1" { "c2" } else { "c1" };
                rack.insert(other);
            } else {
                rack.insert(cart);
            }
            String::new()
        },
    );
    assert!(status.success(), "restore failed: {stdout}\n{stderr}");
    assert!(
        requests[0].contains(&format!("load reel volume {first}")),
        "the restore starts with the first volume: {requests:?}"
    );
    assert!(
        requests[1].contains("holds reel volume") && requests[1].contains(", not reel volume"),
        "a wrong tape is named and refused: {requests:?}"
    );
    assert_eq!(
        requests.len(),
        sticker.len() + 1,
        "one request per volume, plus the wrong tape: {requests:?}"
    );
    assert_same_tree(&src, &target.join(src.strip_prefix("/").unwrap()));

    // The operator may stop a job instead: exit 3, naming the volume needed.
    rack.insert("c7");
    let (status, _, stderr, requests) = run_with_operator(
        rack.reel()
            .args(["restore", "big", "--to"])
            .arg(rack.home.path().join("again")),
        |_| "q".into(),
    );
    assert_eq!(status.code(), Some(3), "{stderr}");
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert!(
        stderr.contains(&format!("reel volume {first}")) && stderr.contains("stopped"),
        "{stderr}"
    );
}

#[test]
fn without_an_operator_a_full_tape_stops_the_backup_naming_what_is_needed() {
    if !require_tool("setsid") {
        return;
    }
    let rack = Rack::new(&["c1", "c2"]);
    let src = source_tree(&rack.home);
    rack.insert("c1");
    let out = run(rack
        .reel()
        .args(["--no-prompt", "backup", "--name", "big"])
        .arg(&src)
        .stdin(Stdio::null()));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("a blank tape") && stderr.contains("--no-prompt"),
        "{stderr}"
    );
    // The tape stays in the drive, and the unfinished set is one the next backup replaces
    // (not a part said to continue on a tape that was never written).
    let listing = ok(rack.reel().arg("list"));
    assert!(
        listing.contains("the next backup replaces it") && !listing.contains("continued on"),
        "{listing}"
    );
    // A rebuild with nothing in the drive and nobody to ask says that nothing was read.
    let home_catalog = rack.home.path().join("reel-home/catalog.sqlite");
    let _ = std::fs::remove_file(&home_catalog);
    ok(rack.reel().args(["tape", "unload"]));
    let out = run(rack.reel().args(["--no-prompt", "catalog", "rebuild"]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("no reel volume was read"), "{stderr}");

    // No terminal at all (a job run from cron): the same, saying why.
    rack.insert("c2");
    let out = run(rack
        .reel_detached()
        .args(["backup", "--name", "big"])
        .arg(&src)
        .stdin(Stdio::null()));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("no terminal to ask on"), "{stderr}");
}

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

    /// Puts the next of `blanks` in the drive for `request` and returns its name; running
    /// out fails the test.
    fn insert_next<'a>(
        &self,
        blanks: &mut impl Iterator<Item = &'a str>,
        request: &str,
    ) -> &'a str {
        let cart = blanks
            .next()
            .unwrap_or_else(|| panic!("more blank tapes than the rack holds; last: {request}"));
        self.insert(cart);
        cart
    }

    /// Puts cartridge `name`, ejected earlier, back in the drive, which loads it (a drive
    /// threads a tape pushed in; the virtual one is told with `reel tape load`).
    fn reinsert(&self, name: &str) {
        self.insert(name);
        ok(self.reel().args(["tape", "load"]));
    }

    fn reel(&self) -> Command {
        self.with_drive(self.home.command(REEL))
    }

    /// Takes cartridge `name`'s lock until the returned file is dropped: to reel it is then
    /// "not ready", as a drive still threading a tape is.
    fn hold(&self, name: &str) -> std::fs::File {
        let lock = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(self.root.join(format!("{name}.vtape/lock")))
            .expect("open the cartridge lock");
        rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive).expect("flock");
        lock
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

/// A reply that presses Ctrl-C instead of typing a line.
const CTRL_C: &str = "^C";
/// A reply that presses Enter, then Ctrl-C once reel says it waits for the drive.
const ENTER_THEN_CTRL_C_WHILE_WAITING: &str = "\n^C";
/// What reel shows while it waits for a loaded tape to be ready.
const WAITING: &str = "to be ready (";

/// Runs `cmd` with a terminal as stdin and stderr redirected (a pipe, as `2>>log`); each tape
/// request shown on the terminal is passed to `answer`, whose reply (a line) is typed there.
/// Returns the exit status, stdout, stderr and the requests in order.
fn run_with_operator(
    cmd: &mut Command,
    answer: impl FnMut(&str) -> String,
) -> (ExitStatus, String, String, Vec<String>) {
    operate(cmd, false, answer)
}

/// [`run_with_operator`] with `stderr_on_terminal`: stderr is the terminal too (an interactive
/// run); the returned stderr is then what the terminal showed.
// The child is reaped by `try_wait` in the loop (or killed and waited for at the deadline).
#[allow(clippy::zombie_processes)]
fn operate(
    cmd: &mut Command,
    stderr_on_terminal: bool,
    mut answer: impl FnMut(&str) -> String,
) -> (ExitStatus, String, String, Vec<String>) {
    use rustix::event::{PollFd, PollFlags, Timespec, poll};
    let (mut master, slave) = pseudo_terminal();
    let tty = || {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&slave)
            .expect("open the terminal")
    };
    cmd.stdin(tty()).stdout(Stdio::piped());
    if stderr_on_terminal {
        cmd.stderr(tty());
    } else {
        cmd.stderr(Stdio::piped());
    }
    let mut child = cmd.spawn().expect("spawn reel");
    // The Command keeps its copies of the terminal open: end of input never comes, so the
    // terminal is polled and the child watched instead.
    let mut stdout = child.stdout.take().unwrap();
    let out_thread = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err_thread = child.stderr.take().map(|mut stderr| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = stderr.read_to_end(&mut bytes);
            String::from_utf8_lossy(&bytes).into_owned()
        })
    });
    let (mut shown, mut pending, mut requests) = (String::new(), String::new(), Vec::new());
    let mut interrupt_when_waiting = false;
    let mut buf = [0u8; 4096];
    let tick = Timespec {
        tv_sec: 0,
        tv_nsec: 50_000_000,
    };
    // A request that never reaches the terminal (sent to the redirected stderr, say) would
    // leave reel waiting for an answer forever: fail instead.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(300);
    let status = loop {
        let mut fds = [PollFd::new(&master, PollFlags::IN)];
        let ready = poll(&mut fds, Some(&tick)).unwrap_or(0);
        if ready == 0 {
            if let Some(status) = child.try_wait().expect("wait for reel") {
                break status;
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                let stderr = err_thread.map(|t| t.join().unwrap()).unwrap_or_default();
                panic!(
                    "reel still runs after 5 minutes; the terminal showed:\n{shown}\nstderr:\n{stderr}"
                );
            }
            continue;
        }
        let n = master.read(&mut buf).expect("read the terminal");
        let text = String::from_utf8_lossy(&buf[..n]).replace("\r\n", "\n");
        shown.push_str(&text);
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
                "the operator was asked too often:\n{shown}"
            );
            let reply = answer(&request);
            requests.push(request);
            if reply == CTRL_C {
                interrupt(&child);
            } else if reply == ENTER_THEN_CTRL_C_WHILE_WAITING {
                master.write_all(b"\n").expect("type on the terminal");
                interrupt_when_waiting = true;
            } else {
                master
                    .write_all(format!("{reply}\n").as_bytes())
                    .expect("type on the terminal");
            }
            pending = pending[end + PROMPT_END.len()..].to_string();
        }
        if interrupt_when_waiting && pending.contains(WAITING) {
            interrupt(&child);
            interrupt_when_waiting = false;
        }
    };
    let stderr = match err_thread {
        Some(t) => t.join().unwrap(),
        None => {
            // What is left on the terminal after the last poll.
            while poll(&mut [PollFd::new(&master, PollFlags::IN)], Some(&tick)).unwrap_or(0) > 0 {
                let n = master.read(&mut buf).unwrap_or(0);
                if n == 0 {
                    break;
                }
                shown.push_str(&String::from_utf8_lossy(&buf[..n]).replace("\r\n", "\n"));
            }
            shown.clone()
        }
    };
    assert!(!stderr.contains("panicked"), "reel panicked: {stderr}");
    if !stderr_on_terminal {
        // Redirected stderr: the requests reach the terminal, and the log says what was asked.
        for r in &requests {
            // The terminal shows the request as a sentence, with a full stop.
            let r = r.strip_suffix('.').unwrap_or(r);
            assert!(
                stderr.contains(&format!("reel: asked on the terminal: {r}")),
                "request {r:?} not logged on stderr:\n{stderr}"
            );
        }
        assert!(
            !stderr.contains(PROMPT_END),
            "the prompt went to the redirected stderr:\n{stderr}"
        );
    }
    (status, out_thread.join().unwrap(), stderr, requests)
}

/// What the terminal sends the foreground job on Ctrl-C.
fn interrupt(child: &std::process::Child) {
    let pid = rustix::process::Pid::from_raw(child.id() as i32).expect("pid");
    rustix::process::kill_process(pid, rustix::process::Signal::INT).expect("send SIGINT");
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
            let cart = rack.insert_next(&mut blanks, request);
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

/// The catalog of the rack's reel home.
fn catalog_path(rack: &Rack) -> PathBuf {
    rack.home.path().join("reel-home/catalog.sqlite")
}

/// Runs a spanning backup of `src` onto the tape in the drive whose operator answers `q` at
/// the blank-tape request; checks the stop and returns the full tape's name and stderr.
fn backup_stopped_at_the_blank_tape_request(rack: &Rack, src: &std::path::Path) -> String {
    let (status, stdout, stderr, requests) = run_with_operator(
        rack.reel().args(["backup", "--name", "big"]).arg(src),
        |_| "q".into(),
    );
    assert_eq!(status.code(), Some(3), "{stdout}\n{stderr}");
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert!(blank_name(&requests[0]).is_some(), "{}", requests[0]);
    // The error says why the job stopped, that the set is lost, and what becomes of its space.
    assert!(stderr.contains("the operator stopped the job"), "{stderr}");
    assert!(
        stderr.contains("Set big was not finished: nothing of it can be restored"),
        "{stderr}"
    );
    assert!(
        stderr.contains("recorded in the catalog as unfinished")
            && stderr.contains("starts there and reuses its space"),
        "{stderr}"
    );
    let full = name_after(&stderr, "Its part on ")
        .unwrap_or_else(|| panic!("the full tape is not named: {stderr}"));
    assert!(
        stderr.contains(&format!(
            "{full} (from tape file 1) is recorded in the catalog as unfinished: the next backup on {full} starts there"
        )),
        "{stderr}"
    );
    full
}

#[test]
fn ctrl_c_at_the_blank_tape_request_stops_the_backup_as_q_does() {
    let rack = Rack::new(&["c1", "c2"]);
    let src = source_tree(&rack.home);
    rack.insert("c1");
    let (status, stdout, stderr, requests) = run_with_operator(
        rack.reel().args(["backup", "--name", "big"]).arg(&src),
        |_| CTRL_C.into(),
    );
    assert_eq!(status.code(), Some(3), "{stdout}\n{stderr}");
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert!(
        stderr.contains("the operator interrupted the job (Ctrl-C)")
            && stderr.contains("Set big was not finished: nothing of it can be restored")
            && stderr.contains("recorded in the catalog as unfinished"),
        "{stderr}"
    );
    let stopped = reel_catalog::Catalog::open_read_only(&catalog_path(&rack))
        .unwrap()
        .stopped_parts()
        .unwrap();
    assert_eq!(stopped.len(), 1, "{stopped:?}");
    assert!(stopped[0].why.contains("Ctrl-C"), "{:?}", stopped[0]);
    // The full tape is not taken for full: the next backup replaces the stopped set.
    rack.reinsert("c1");
    let listing = ok(rack.reel().arg("list"));
    assert!(
        listing.contains("the next backup replaces it") && !listing.contains("continued on"),
        "{listing}"
    );
}

#[test]
fn an_operator_who_stops_at_the_blank_tape_request_leaves_space_the_next_backup_reuses() {
    let rack = Rack::new(&["c1", "c2"]);
    let src = source_tree(&rack.home);
    rack.insert("c1");
    let full = backup_stopped_at_the_blank_tape_request(&rack, &src);
    assert!(full.starts_with("REEL-"), "{full}");

    // The catalog knows which part of which set stopped, and where it is.
    let stopped = reel_catalog::Catalog::open_read_only(&catalog_path(&rack))
        .unwrap()
        .stopped_parts()
        .unwrap();
    assert_eq!(stopped.len(), 1, "{stopped:?}");
    let part = &stopped[0];
    assert_eq!(
        (
            part.set_name.as_str(),
            part.part,
            part.barcode.as_str(),
            part.data_file
        ),
        ("big", 1, full.as_str(), 1)
    );
    assert!(
        part.why.contains("the operator stopped the job"),
        "{part:?}"
    );

    // The operator puts the full tape back: it lists as the --no-prompt case does, the set
    // being a leftover the next backup replaces, not a part continued on a tape that never
    // was.
    rack.reinsert("c1");
    let listing = ok(rack.reel().arg("list"));
    assert!(
        listing.contains(&full)
            && listing.contains("no sets yet")
            && listing.contains("the next backup replaces it")
            && listing.contains("nothing of it can be restored")
            && !listing.contains("continued on"),
        "{listing}"
    );
    // Nor can it be had by number.
    let out = run(rack.reel().args(["list", "1"]));
    assert!(!out.status.success());

    // A rebuilt catalog keeps knowing it: the tape cannot say so.
    let (status, stdout, stderr, _) =
        run_with_operator(rack.reel().args(["catalog", "rebuild"]), |_| "q".into());
    assert!(status.success(), "{stdout}\n{stderr}");
    assert!(
        stderr.contains(&format!("{full}: tape file 1 is part 1 of set big"))
            && stderr.contains(&format!("the next backup on {full} replaces it")),
        "{stderr}"
    );
    // The rebuild ejected the tape to ask for the next one.
    rack.reinsert("c1");
    let listing = ok(rack.reel().arg("list"));
    assert!(
        listing.contains("the next backup replaces it") && !listing.contains("continued on"),
        "{listing}"
    );

    // The next backup on that tape starts where the stopped set started, and nobody is asked
    // for anything.
    let second = rack.home.path().join("second");
    // Smaller than a tape (about 4 MiB): it fits where the stopped set began.
    for i in 0..20u64 {
        let dir = second.join(format!("d{}", i % 3));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join(format!("f{i}")),
            pseudo_random(100 + i, 20_000 * i as usize),
        )
        .unwrap();
    }
    std::os::unix::fs::symlink("d1/f4", second.join("link")).unwrap();
    let (status, stdout, stderr, requests) = run_with_operator(
        rack.reel()
            .args(["backup", "--name", "second"])
            .arg(&second),
        |request| panic!("nothing should be asked: {request}"),
    );
    assert!(status.success(), "{stdout}\n{stderr}");
    assert!(requests.is_empty());
    assert!(
        stdout.contains("replaced the remains of an unfinished backup")
            && stdout.contains(&format!("on {full}:")),
        "{stdout}"
    );
    let listing: serde_json::Value =
        serde_json::from_str(&ok(rack.reel().args(["list", "--json"]))).unwrap();
    let sets = listing["sets"].as_array().unwrap();
    assert_eq!(sets.len(), 1, "one restorable set: {listing}");
    assert_eq!(sets[0]["state"], "complete");
    assert_eq!(sets[0]["info"]["name"], "second");
    assert_eq!(sets[0]["data_file"], 1);
    assert_eq!(sets[0]["info"]["data_first_block"], part.first_block);
    assert!(listing["leftover"].is_null(), "{listing}");
    // Its record went with the part it described.
    let cat = reel_catalog::Catalog::open_read_only(&catalog_path(&rack)).unwrap();
    assert!(cat.stopped_parts().unwrap().is_empty());
    drop(cat);

    let target = rack.home.path().join("restored");
    ok(rack.reel().args(["restore", "second", "--to"]).arg(&target));
    assert_same_tree(&second, &target.join(second.strip_prefix("/").unwrap()));
}

#[test]
fn a_rebuild_without_the_catalog_that_recorded_a_stop_reports_the_part_nothing_finishes() {
    let rack = Rack::new(&["c1", "c2"]);
    let src = source_tree(&rack.home);
    rack.insert("c1");
    let full = backup_stopped_at_the_blank_tape_request(&rack, &src);
    // The catalog is lost: the tape alone says the set continues on another tape.
    std::fs::remove_file(catalog_path(&rack)).unwrap();
    rack.reinsert("c1");
    let (status, stdout, stderr, _) =
        run_with_operator(rack.reel().args(["catalog", "rebuild"]), |_| "q".into());
    assert_eq!(status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        stderr.contains(&format!("{full}: tape file 1 is part 1 of set big"))
            && stderr.contains("no volume read holds the rest of that set")
            && stderr.contains("nothing of it can be restored"),
        "{stderr}"
    );
    assert!(stdout.contains("0 sets"), "{stdout}");
    // Not presented as restorable: the tape alone lists the part as continued elsewhere,
    // and the set is not found.
    rack.reinsert("c1");
    let listing = ok(rack.reel().arg("list"));
    assert!(
        listing.contains("no sets yet") || listing.contains("continued on"),
        "{listing}"
    );
    for args in [
        &["list", "big"][..],
        &["restore", "big", "--to", "/nonexistent/r"][..],
    ] {
        let out = run(rack.reel().args(args));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}: {stderr}");
        assert!(
            stderr.contains("no set named \"big\""),
            "{args:?}: {stderr}"
        );
    }
}

#[test]
fn a_backup_onto_a_full_tape_asks_for_a_blank_one_and_labels_it_with_the_name_given() {
    let rack = Rack::new(&["c1", "c2", "c3", "c4", "c5", "c6", "c7", "c8", "c9"]);
    let src = source_tree(&rack.home);
    rack.insert("c1");
    let mut blanks = vec!["c2", "c3", "c4", "c5", "c6", "c7", "c8"].into_iter();
    let (status, stdout, stderr, _) = run_with_operator(
        rack.reel().args(["backup", "--name", "big"]).arg(&src),
        |request| {
            rack.insert_next(&mut blanks, request);
            String::new()
        },
    );
    assert!(status.success(), "{stdout}\n{stderr}");

    // c1 is full: big filled it and continues on the next tape. A backup onto it asks for
    // a blank tape, names it, and leaves c1 as it was.
    rack.reinsert("c1");
    let c1 = std::fs::read(rack.root.join("c1.vtape/p1.tap")).unwrap();
    let small = rack.home.path().join("small");
    make_tree(&small, 20, 8);
    let mut named = None;
    // Run as at a terminal, stderr included: the request is shown there, and only once.
    let (status, stdout, stderr, requests) = operate(
        rack.reel().args(["backup", "--name", "small"]).arg(&small),
        true,
        |request| {
            named = blank_name(request);
            rack.insert("c9");
            String::new()
        },
    );
    assert!(status.success(), "{stdout}\n{stderr}");
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert!(!stderr.contains("asked on the terminal"), "{stderr}");
    let name = named.unwrap_or_else(|| panic!("not a request for a blank tape: {requests:?}"));
    assert!(
        stderr.contains("is full (set big")
            && stderr.contains(&format!("the set starts on {name}")),
        "{stderr}"
    );
    assert!(
        std::fs::read(rack.root.join("c1.vtape/p1.tap")).unwrap() == c1,
        "c1 changed"
    );
    // The blank tape carries the name the operator was told to write on it.
    let listing = ok(rack.reel().arg("list"));
    assert!(
        listing.contains(&format!("volume {name} ")) && listing.contains("small"),
        "{listing}"
    );
    let target = rack.home.path().join("out");
    ok(rack.reel().args(["restore", "small", "--to"]).arg(&target));
    assert_same_tree(&small, &target.join(small.strip_prefix("/").unwrap()));
}

#[test]
fn a_drive_not_ready_is_waited_for_then_the_tape_asked_for_again() {
    let rack = Rack::new(&["c1", "c2", "c3", "c4", "c5"]);
    let src = source_tree(&rack.home);
    rack.insert("c1");
    let mut held = None;
    let mut asked = 0;
    let mut loaded_at: Option<std::time::Instant> = None;
    let mut asked_again_after = None;
    let mut blanks = vec!["c3", "c4", "c5"].into_iter();
    let (status, stdout, stderr, requests) = run_with_operator(
        rack.reel()
            .args(["--tape-ready-wait", "2", "backup", "--name", "big"])
            .arg(&src),
        |request| {
            asked += 1;
            match asked {
                1 => {
                    // c2 goes in, but stays not ready for longer than reel waits.
                    held = Some(rack.hold("c2"));
                    rack.insert("c2");
                    loaded_at = Some(std::time::Instant::now());
                }
                2 => {
                    asked_again_after = loaded_at.map(|t| t.elapsed());
                    assert!(request.contains("is not ready"), "{request}");
                    held = None; // ready now
                }
                _ => {
                    rack.insert_next(&mut blanks, request);
                }
            }
            String::new()
        },
    );
    assert!(status.success(), "{stdout}\n{stderr}");
    assert!(requests.len() >= 2, "{requests:?}");
    let waited = asked_again_after.expect("asked again");
    assert!(
        waited >= std::time::Duration::from_secs(2) && waited < std::time::Duration::from_secs(60),
        "asked again after {waited:?} (--tape-ready-wait 2): {requests:?}"
    );
    // The set continued on c2 once it was ready.
    let listing = ok(rack.reel().arg("list"));
    assert!(listing.contains("big"), "{listing}");
}

#[test]
fn ctrl_c_while_the_drive_is_waited_for_stops_the_backup_as_q_does() {
    let rack = Rack::new(&["c1", "c2"]);
    let src = source_tree(&rack.home);
    rack.insert("c1");
    let mut held = None;
    let started = std::time::Instant::now();
    let (status, stdout, stderr, requests) = run_with_operator(
        rack.reel()
            .args(["--tape-ready-wait", "120", "backup", "--name", "big"])
            .arg(&src),
        |_| {
            // c2 goes in but is not ready; the operator gives up while reel waits.
            held = Some(rack.hold("c2"));
            rack.insert("c2");
            ENTER_THEN_CTRL_C_WHILE_WAITING.to_string()
        },
    );
    drop(held);
    assert_eq!(status.code(), Some(3), "{stdout}\n{stderr}");
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(60),
        "the wait ran on after Ctrl-C"
    );
    // Told on the terminal and in the log, then stopped as at the request, stop recorded.
    assert!(
        stderr.contains("waiting up to 120 s for localhost:drive"),
        "{stderr}"
    );
    assert_eq!(
        stderr.matches("not ready").count(),
        1,
        "said once: {stderr}"
    );
    assert!(stderr.contains("interrupted the job (Ctrl-C)"), "{stderr}");
    assert!(
        stderr.contains("recorded in the catalog as unfinished"),
        "{stderr}"
    );
}

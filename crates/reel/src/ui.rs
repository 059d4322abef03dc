//! Output helpers: sizes, member lines, JSON documents, progress bars, asking the operator for
//! tapes.

use std::io::{BufRead, IsTerminal, Write};
use std::sync::Mutex;

use anyhow::Result;
use indicatif::{ProgressBar, ProgressStyle};
use reel_archive::{EntryKind, IndexEntry};
use reel_stream::Timestamp;
use serde::Serialize;

use crate::Global;
use crate::exit::UsageError;

/// Parses a size such as `16G`, `512M`, `4096`, `1.5T` (binary multiples; reel-policy's
/// parser): a bad one is a usage error.
pub fn parse_size(text: &str) -> Result<u64, UsageError> {
    reel_policy::parse_size(text).map_err(|e| UsageError(e.to_string()))
}

/// As [`parse_size`], but a bare number counts `unit`s (`8` with `1 << 20` is 8 MiB).
pub fn parse_size_in(text: &str, unit: u64) -> Result<u64, UsageError> {
    reel_policy::parse_size_in(text, unit).map_err(|e| UsageError(e.to_string()))
}

/// A size for people: `1.5 GiB`.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// One member as `reel list` shows it.
pub fn entry_line(e: &IndexEntry) -> String {
    let link = match (e.kind, &e.link) {
        (EntryKind::Symlink, Some(t)) => format!(" -> {t}"),
        (EntryKind::HardLink, Some(t)) => format!(" link to {t}"),
        _ => String::new(),
    };
    format!(
        "{} {:>6}/{:<6} {:>12} {} {}{}",
        kind_mode(e),
        e.uid,
        e.gid,
        e.size,
        when(e.mtime),
        e.display_path(),
        link
    )
}

fn kind_mode(e: &IndexEntry) -> String {
    // As `ls -l` shows it.
    let kind = match e.kind {
        EntryKind::File | EntryKind::HardLink => '-',
        EntryKind::Directory => 'd',
        EntryKind::Symlink => 'l',
        EntryKind::Fifo => 'p',
        EntryKind::CharDevice => 'c',
        EntryKind::BlockDevice => 'b',
        EntryKind::Socket => 's',
    };
    let mut s = String::from(kind);
    let bits = [
        (0o400, 'r'),
        (0o200, 'w'),
        (0o100, 'x'),
        (0o040, 'r'),
        (0o020, 'w'),
        (0o010, 'x'),
        (0o004, 'r'),
        (0o002, 'w'),
        (0o001, 'x'),
    ];
    for (bit, c) in bits {
        s.push(if e.mode & bit != 0 { c } else { '-' });
    }
    s
}

fn when(mtime: Timestamp) -> String {
    time::OffsetDateTime::from_unix_timestamp(mtime.secs)
        .ok()
        .and_then(|t| {
            t.format(&time::macros::format_description!(
                "[year]-[month]-[day] [hour]:[minute]"
            ))
            .ok()
        })
        .unwrap_or_else(|| mtime.to_decimal())
}

/// Prints one JSON document on stdout.
pub fn print_json<T: Serialize>(value: &T) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// A progress bar on stderr when it is a terminal and progress is wanted; hidden otherwise.
pub fn progress_bar(global: &Global, total: u64) -> ProgressBar {
    if global.quiet || global.no_progress || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:30} {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta} {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    bar
}

/// The bar on screen, hidden while the operator is asked for a tape.
static SHOWN_BAR: Mutex<Option<ProgressBar>> = Mutex::new(None);

/// A warning on stderr, above the progress bar if one is shown.
pub fn warn(text: &str) {
    let line = format!("reel: warning: {text}");
    match SHOWN_BAR.lock().ok().and_then(|b| b.clone()) {
        Some(bar) => bar.println(line),
        None => eprintln!("{line}"),
    }
}

/// Asks for tapes on the terminal: the answer is a line read from stdin when it is a
/// terminal, else from /dev/tty, and the request is shown on that same terminal (on stderr
/// when stderr is it). With stderr redirected (`reel backup /srv 2>>log` at a terminal) the
/// request still reaches the operator, and the log gets a line saying what was asked. Enter
/// goes on; `q` (or end of input) stops the job, as does Ctrl-C at a request or while reel
/// waits for the drive to be ready.
pub struct TerminalOperator {
    /// While a loaded tape is waited for: Ctrl-C is taken as a stop.
    waiting: Option<CtrlCAnswers>,
}

impl TerminalOperator {
    /// The operator for this run: the terminal, or nobody with `--no-prompt` or without one.
    pub fn for_run(global: &Global) -> Box<dyn reel_core::Operator> {
        if global.no_prompt {
            return Box::new(reel_core::NoOperator {
                why: "--no-prompt was given".into(),
            });
        }
        if std::io::stdin().is_terminal() || std::fs::File::open("/dev/tty").is_ok() {
            return Box::new(TerminalOperator { waiting: None });
        }
        Box::new(reel_core::NoOperator {
            why: "there is no terminal to ask on (load it and run again)".into(),
        })
    }

    fn ask_on(
        input: &mut dyn BufRead,
        output: &mut dyn Write,
        request: &str,
    ) -> std::io::Result<Option<String>> {
        write!(
            output,
            "reel: {request}.\nPress Enter when it is loaded (q and Enter to stop): "
        )?;
        output.flush()?;
        let mut line = String::new();
        if input.read_line(&mut line)? == 0 {
            return Ok(Some("the input ended".into()));
        }
        let answer = line.trim();
        Ok(match answer {
            "q" | "quit" | "Q" => Some("the operator stopped the job".into()),
            _ => None,
        })
    }
}

impl reel_core::Operator for TerminalOperator {
    fn waiting(&mut self, message: &str) {
        // Ctrl-C is taken as a stop from before the message shows.
        self.waiting = CtrlCAnswers::install();
        let show = || {
            let line = format!("reel: {message}");
            if let Some(mut terminal) = terminal_beside_redirected_stderr() {
                let _ = writeln!(terminal, "{line}");
            }
            eprintln!("{line}");
        };
        match SHOWN_BAR.lock().ok().and_then(|b| b.clone()) {
            Some(bar) => bar.suspend(show),
            None => show(),
        }
    }

    fn stop_requested(&mut self) -> Option<String> {
        (self.waiting.is_some() && CTRL_C.load(std::sync::atomic::Ordering::SeqCst))
            .then(|| "the operator interrupted the job (Ctrl-C)".to_string())
    }

    fn done_waiting(&mut self) {
        self.waiting = None;
    }

    fn ask(&mut self, request: &str) -> std::result::Result<(), String> {
        let bar = SHOWN_BAR.lock().ok().and_then(|b| b.clone());
        let ask = || -> std::io::Result<Option<String>> {
            let _ctrl_c = CtrlCAnswers::install();
            let stdin = std::io::stdin();
            let stderr_is_terminal = std::io::stderr().is_terminal();
            if stdin.is_terminal() {
                let fd = std::os::fd::AsFd::as_fd(&stdin);
                let mut input = std::io::BufReader::new(InterruptibleInput(fd));
                return match terminal_beside_redirected_stderr() {
                    Some(mut terminal) => {
                        log_request(request);
                        Self::ask_on(&mut input, &mut terminal, request)
                    }
                    None => Self::ask_on(&mut input, &mut std::io::stderr(), request),
                };
            }
            let tty = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open("/dev/tty")?;
            let mut out = tty.try_clone()?;
            let fd = std::os::fd::AsFd::as_fd(&tty);
            if !stderr_is_terminal {
                log_request(request);
            }
            Self::ask_on(
                &mut std::io::BufReader::new(InterruptibleInput(fd)),
                &mut out,
                request,
            )
        };
        let answer = match bar {
            Some(bar) => bar.suspend(ask),
            None => ask(),
        };
        match answer {
            Ok(None) => Ok(()),
            Ok(Some(why)) => Err(why),
            Err(e) if e.get_ref().is_some_and(|inner| inner.is::<CtrlC>()) => {
                eprintln!();
                Err("the operator interrupted the job (Ctrl-C)".into())
            }
            Err(e) => Err(format!("the terminal could not be read ({e})")),
        }
    }
}

/// When stderr is not a terminal but the operator has one (stdin's, else /dev/tty): that
/// terminal, open for writing, to show what stderr's log would hide. Stdin's is reopened
/// through /proc/self/fd/0: the request then shows where the answer is typed, whatever the
/// controlling terminal.
fn terminal_beside_redirected_stderr() -> Option<std::fs::File> {
    if std::io::stderr().is_terminal() {
        return None;
    }
    let own = if std::io::stdin().is_terminal() {
        "/proc/self/fd/0"
    } else {
        "/dev/tty"
    };
    std::fs::OpenOptions::new().write(true).open(own).ok()
}

/// The request, as one line on a redirected stderr: the log says what reel waited for.
fn log_request(request: &str) {
    eprintln!("reel: asked on the terminal: {request}");
}

/// Set by SIGINT while the operator is asked.
static CTRL_C: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

extern "C" fn note_ctrl_c(_: libc::c_int) {
    CTRL_C.store(true, std::sync::atomic::Ordering::SeqCst);
}

/// While alive, Ctrl-C at a tape request answers it like `q` instead of killing reel: the
/// job then stops the way it does for `q`, saying what it leaves behind (a set stopped at a
/// tape change is recorded, so that its space is reused).
struct CtrlCAnswers {
    previous: libc::sigaction,
}

impl CtrlCAnswers {
    fn install() -> Option<CtrlCAnswers> {
        CTRL_C.store(false, std::sync::atomic::Ordering::SeqCst);
        // SAFETY: a zeroed sigaction is a valid "no flags, empty mask" value; the handler
        // only stores to an atomic, which is async-signal-safe.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = note_ctrl_c as *const () as libc::sighandler_t;
            libc::sigemptyset(&mut action.sa_mask);
            let mut previous: libc::sigaction = std::mem::zeroed();
            (libc::sigaction(libc::SIGINT, &action, &mut previous) == 0)
                .then_some(CtrlCAnswers { previous })
        }
    }
}

impl Drop for CtrlCAnswers {
    fn drop(&mut self) {
        // SAFETY: puts back the action `install` replaced.
        unsafe {
            libc::sigaction(libc::SIGINT, &self.previous, std::ptr::null_mut());
        }
    }
}

/// The terminal read directly, so that Ctrl-C ends the answer: `std`'s readers retry every
/// EINTR, and the signal may land on another of reel's threads, leaving this read blocked.
/// So the read waits in short polls and looks at the flag between them.
struct InterruptibleInput<'a>(std::os::fd::BorrowedFd<'a>);

impl std::io::Read for InterruptibleInput<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        use rustix::event::{PollFd, PollFlags, Timespec, poll};
        use rustix::io::Errno;
        let tick = Timespec {
            tv_sec: 0,
            tv_nsec: 100_000_000,
        };
        loop {
            if CTRL_C.load(std::sync::atomic::Ordering::SeqCst) {
                // Not `Interrupted`: `read_line` would retry that.
                return Err(std::io::Error::other(CtrlC));
            }
            let mut fds = [PollFd::from_borrowed_fd(self.0, PollFlags::IN)];
            match poll(&mut fds, Some(&tick)) {
                Ok(0) | Err(Errno::INTR) => continue,
                Ok(_) => {}
                Err(e) => return Err(e.into()),
            }
            match rustix::io::read(self.0, &mut *buf) {
                Ok(n) => return Ok(n),
                Err(Errno::INTR | Errno::AGAIN) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// The error an interrupted answer ends with.
#[derive(Debug)]
struct CtrlC;

impl std::fmt::Display for CtrlC {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("interrupted by Ctrl-C")
    }
}

impl std::error::Error for CtrlC {}

/// Progress of a job on a bar (on a terminal) with problems printed as they happen.
pub struct JobProgress {
    bar: ProgressBar,
    verbose: bool,
    visible: bool,
}

impl JobProgress {
    pub fn new(global: &Global) -> JobProgress {
        let bar = progress_bar(global, 0);
        if !bar.is_hidden()
            && let Ok(mut shown) = SHOWN_BAR.lock()
        {
            *shown = Some(bar.clone());
        }
        JobProgress {
            visible: !bar.is_hidden(),
            bar,
            verbose: global.verbose > 0,
        }
    }

    pub fn finish(&self) {
        if let Ok(mut shown) = SHOWN_BAR.lock() {
            *shown = None;
        }
        self.bar.finish_and_clear();
    }

    fn line(&self, text: &str) {
        if self.visible {
            self.bar.println(text);
        } else {
            eprintln!("{text}");
        }
    }
}

impl reel_core::Progress for JobProgress {
    fn total(&self, bytes: u64, _files: u64) {
        self.bar.set_length(bytes);
    }

    fn bytes(&self, n: u64) {
        self.bar.inc(n);
    }

    fn entry(&self, path: &str) {
        if self.verbose {
            self.line(path);
        }
    }

    fn problem(&self, message: &str) {
        self.line(&format!("reel: {message}"));
    }

    fn wants_totals(&self) -> bool {
        self.visible
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_operator_goes_on_with_enter_and_stops_with_q_or_the_end_of_input() {
        let ask = |typed: &str| {
            let mut shown = Vec::new();
            let answer =
                TerminalOperator::ask_on(&mut typed.as_bytes(), &mut shown, "load tape X").unwrap();
            (answer, String::from_utf8(shown).unwrap())
        };
        let (answer, shown) = ask("\n");
        assert_eq!(answer, None);
        assert!(
            shown.starts_with("reel: load tape X.\nPress Enter"),
            "{shown}"
        );
        assert_eq!(ask("  \n").0, None);
        assert_eq!(
            ask("q\n").0.as_deref(),
            Some("the operator stopped the job")
        );
        assert_eq!(
            ask("quit\n").0.as_deref(),
            Some("the operator stopped the job")
        );
        assert_eq!(ask("").0.as_deref(), Some("the input ended"));
    }

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert_eq!(parse_size("256K").unwrap(), 256 << 10);
        assert_eq!(parse_size("16G").unwrap(), 16 << 30);
        assert_eq!(parse_size("16GiB").unwrap(), 16 << 30);
        assert_eq!(parse_size("1.5T").unwrap(), 3 << 39);
        assert!(parse_size("lots").is_err());
        assert!(parse_size("-1G").is_err());
        assert_eq!(human_size(1536), "1.5 KiB");
    }
}

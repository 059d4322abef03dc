//! Hooks run for real: order, environment, failures, time limit, abort request.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use reel_policy::{HOOK_ABORT_STATUS, HookContext, HookPhase, HookStatus, Policy, Roots};
use reel_testkit::write_file;

fn script(root: &Path, rel: &str, body: &str) {
    let p = root.join(rel);
    write_file(&p, format!("#!/bin/sh\n{body}\n").as_bytes());
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn hooks_run_in_order_with_environment_and_report_failures() {
    if !reel_testkit::require_tool("sh") {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let root = t.path();
    let log = root.join("log");
    let l = log.display();
    script(
        root,
        "etc/reel/pre-backup.d/10-env",
        &format!(
            "echo \"$REEL_HOOK $REEL_SET_ID $REEL_HOOK_ABORT_STATUS $REEL_ROOT\" >> {l}; pwd >> {l}"
        ),
    );
    script(
        root,
        "usr/lib/reel/pre-backup.d/20-fail",
        &format!("echo 20 >> {l}; echo 'db would not flush' >&2; exit 3"),
    );
    script(
        root,
        "run/reel/pre-backup.d/30-after",
        &format!("echo 30 >> {l}; read x; echo \"stdin:$x\" >> {l}"),
    );
    write_file(&root.join("etc/reel/reel.conf"), b"hook-timeout = 5\n");
    let policy = Policy::load(&Roots::new(root));
    assert!(policy.diagnostics.is_empty(), "{:?}", policy.diagnostics);
    let report = policy.run_hooks(HookPhase::PreBackup, &HookContext::new().set_id("set-42"));
    let statuses: Vec<_> = report
        .outcomes
        .iter()
        .map(|o| (o.hook.name.as_str(), o.status.clone()))
        .collect();
    assert_eq!(
        statuses,
        [
            ("10-env", HookStatus::Ok),
            ("20-fail", HookStatus::Failed { code: 3 }),
            ("30-after", HookStatus::Ok)
        ]
    );
    assert!(
        !report.abort_requested(),
        "exit 3 is a failure, not an abort"
    );
    let failures: Vec<String> = report.failures().map(|f| f.to_string()).collect();
    assert_eq!(failures.len(), 1);
    assert!(
        failures[0].contains("exit status 3") && failures[0].contains("db would not flush"),
        "{failures:?}"
    );
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        text,
        format!(
            "pre-backup set-42 {HOOK_ABORT_STATUS} {}\n/\n20\n30\nstdin:\n",
            root.display()
        )
    );
}

#[test]
fn a_hook_past_its_time_limit_is_killed_with_its_children() {
    if !reel_testkit::require_tool("sleep") {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let root = t.path();
    let marker = root.join("survived");
    // The hook starts a child that would write a marker after 3 s; both must die at 1 s.
    script(
        root,
        "etc/reel/post-backup.d/slow",
        &format!(
            "(sleep 3; touch {}) &\necho started\nsleep 30",
            marker.display()
        ),
    );
    write_file(&root.join("etc/reel/reel.conf"), b"hook-timeout = \"1s\"\n");
    let policy = Policy::load(&Roots::new(root));
    let start = Instant::now();
    let report = policy.run_hooks(HookPhase::PostBackup, &HookContext::new().status("ok"));
    let took = start.elapsed();
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(5),
        "{took:?}"
    );
    assert_eq!(
        report.outcomes[0].status,
        HookStatus::TimedOut { after_secs: 1 }
    );
    assert_eq!(report.outcomes[0].output, "started\n");
    std::thread::sleep(Duration::from_millis(3500));
    assert!(
        !marker.exists(),
        "the hook's background child outlived the kill"
    );
}

#[test]
fn pre_backup_abort_status_and_unstartable_hooks() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path();
    script(
        root,
        "etc/reel/pre-backup.d/10-veto",
        "exit \"$REEL_HOOK_ABORT_STATUS\"",
    );
    // Executable but not runnable: a missing interpreter.
    let bad = root.join("etc/reel/pre-backup.d/20-bad");
    write_file(&bad, b"#!/nonexistent/interpreter\n");
    std::fs::set_permissions(&bad, std::fs::Permissions::from_mode(0o755)).unwrap();
    let policy = Policy::load(&Roots::new(root));
    let report = policy.run_hooks(HookPhase::PreBackup, &HookContext::new());
    assert!(report.abort_requested());
    assert!(
        matches!(report.outcomes[1].status, HookStatus::NotStarted { .. }),
        "{:?}",
        report.outcomes[1]
    );
    // The same status from a post-backup hook is only a failure.
    script(root, "etc/reel/post-backup.d/10-veto", "exit 99");
    let policy = Policy::load(&Roots::new(root));
    let report = policy.run_hooks(HookPhase::PostBackup, &HookContext::new());
    assert!(!report.abort_requested());
    assert_eq!(report.failures().count(), 1);
}

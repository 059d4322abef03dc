//! Which members a restore reads, and how the reader gets from one to the next.
//!
//! Both restores that go by an index — of reel's own sets ([`crate::restore`]) and of a
//! foreign tape file scanned into the catalog ([`crate::foreign`]) — plan alike:
//!
//! - the patterns select members ([`Planner::offer`]);
//! - a selected hard link pulls in the regular file it links to, since the restore makes the
//!   link from that file ([`Planner::finish`]);
//! - each member is planned once, even when overlapping patterns offer it twice;
//! - the members are read per data source, each source in archive order ([`Plan::groups`]).
//!
//! Walking a plan, the reader seeks to a member far ahead and reads on to a near one
//! ([`Approach`]). Nothing here touches a tape: the callers read and restore.

use std::collections::{BTreeMap, HashMap, HashSet};

use reel_archive::{EntryKind, IndexEntry};

use crate::select::Selector;

/// Where a member's data is: `None` = the set (or tape file) restored; `Some(id)` = an
/// earlier set of an incremental chain, which holds the unchanged file.
pub(crate) type Source = Option<uuid::Uuid>;

/// One member to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Planned<T> {
    /// Byte offset of the member's first header in its source's data.
    pub offset: u64,
    /// Content size (progress totals; the copy buffer a group needs).
    pub size: u64,
    /// What the caller keeps about the member (the hash it must match, the path to check).
    pub detail: T,
}

/// The members to read.
#[derive(Debug)]
pub(crate) struct Plan<T> {
    /// Per source, in archive order.
    pub groups: BTreeMap<Source, Vec<Planned<T>>>,
    pub total_bytes: u64,
    pub members: u64,
    /// Hard-link targets planned because a selected link needs them (the patterns did not
    /// select them).
    pub added_link_targets: Vec<String>,
}

impl<T> Plan<T> {
    fn new() -> Self {
        Plan {
            groups: BTreeMap::new(),
            total_bytes: 0,
            members: 0,
            added_link_targets: Vec::new(),
        }
    }

    fn push(&mut self, source: Source, planned: Planned<T>) {
        self.total_bytes += planned.size;
        self.members += 1;
        self.groups.entry(source).or_default().push(planned);
    }
}

/// What the planner reads of an index entry's kind. The one place it does: the index's
/// representation of kinds stays out of the planning.
enum Role<'e> {
    /// A regular file: what hard links name.
    File,
    /// A hard link to the member with this path.
    HardLink(&'e str),
    Other,
}

fn role(e: &IndexEntry) -> Role<'_> {
    match (e.kind, &e.link) {
        (EntryKind::File, _) => Role::File,
        (EntryKind::HardLink, Some(target)) => Role::HardLink(target),
        _ => Role::Other,
    }
}

/// Builds a [`Plan`] from the members of an index, offered one by one.
pub(crate) struct Planner<'s, T> {
    selector: &'s Selector,
    /// A member path (or hard-link target) as the patterns and link targets see it.
    key: fn(&[u8]) -> &[u8],
    detail: fn(&IndexEntry) -> T,
    /// Everything selected: members go straight into the plan, with none of the
    /// bookkeeping patterns and link targets need (a third of the memory per member).
    whole: Option<Plan<T>>,
    rows: Vec<(Source, Planned<T>)>,
    chosen: Vec<bool>,
    /// Regular files by key, so hard links can pull in their target.
    files: HashMap<Vec<u8>, usize>,
    /// Targets of selected hard links, by key.
    link_targets: Vec<Vec<u8>>,
}

impl<'s, T> Planner<'s, T> {
    /// A planner for the members `selector` takes; `key` gives the path patterns and link
    /// targets see, `detail` what the plan keeps of each member.
    pub fn new(
        selector: &'s Selector,
        key: fn(&[u8]) -> &[u8],
        detail: fn(&IndexEntry) -> T,
    ) -> Self {
        Planner {
            selector,
            key,
            detail,
            whole: selector.is_everything().then(Plan::new),
            rows: Vec::new(),
            chosen: Vec::new(),
            files: HashMap::new(),
            link_targets: Vec::new(),
        }
    }

    fn planned(&self, e: &IndexEntry) -> Planned<T> {
        Planned {
            offset: e.offset,
            size: e.size,
            detail: (self.detail)(e),
        }
    }

    /// Takes one member of the index into account.
    pub fn offer(&mut self, e: &IndexEntry) {
        let planned = self.planned(e);
        if let Some(plan) = &mut self.whole {
            plan.push(e.source_set, planned);
            return;
        }
        let key = (self.key)(&e.path);
        let selected = self.selector.matches(key);
        match role(e) {
            Role::File => {
                self.files.insert(key.to_vec(), self.rows.len());
            }
            Role::HardLink(target) if selected => {
                self.link_targets
                    .push((self.key)(target.as_bytes()).to_vec());
            }
            _ => {}
        }
        self.rows.push((e.source_set, planned));
        self.chosen.push(selected);
    }

    /// The plan: the selected members, the regular files selected hard links need, each
    /// member once, each source's members in archive order. `look_up` finds a link target
    /// that was not offered (`Ok(None)`: there is none); a target found that is not a
    /// regular file is left out.
    pub fn finish<E>(
        mut self,
        mut look_up: impl FnMut(&[u8]) -> Result<Option<IndexEntry>, E>,
    ) -> Result<Plan<T>, E> {
        if let Some(mut plan) = self.whole.take() {
            sort_groups(&mut plan);
            return Ok(plan);
        }
        let mut added_link_targets = Vec::new();
        for target in std::mem::take(&mut self.link_targets) {
            let row = match self.files.get(&target) {
                Some(&row) => row,
                None => match look_up(&target)? {
                    Some(e) if matches!(role(&e), Role::File) => {
                        self.files.insert(target.clone(), self.rows.len());
                        let planned = self.planned(&e);
                        self.rows.push((e.source_set, planned));
                        self.chosen.push(false);
                        self.rows.len() - 1
                    }
                    _ => continue,
                },
            };
            if !self.chosen[row] {
                self.chosen[row] = true;
                added_link_targets.push(String::from_utf8_lossy(&target).into_owned());
            }
        }
        let mut plan = Plan::new();
        plan.added_link_targets = added_link_targets;
        // Overlapping patterns offer some members twice: each is restored once.
        let mut seen = HashSet::new();
        for ((source, planned), chosen) in self.rows.into_iter().zip(self.chosen) {
            if chosen && seen.insert((source, planned.offset)) {
                plan.push(source, planned);
            }
        }
        sort_groups(&mut plan);
        Ok(plan)
    }
}

/// Every group is read in archive order (the members of several lookups interleave).
fn sort_groups<T>(plan: &mut Plan<T>) {
    for group in plan.groups.values_mut() {
        group.sort_by_key(|p| p.offset);
    }
}

/// How the reader gets to the next planned member: it seeks when the member is behind it,
/// when it is more than two records ahead, or when where the reader stands is not known
/// (at the start, after a failed read); otherwise it reads on over the members in between,
/// which costs less than a seek (a reposition and a record read).
#[derive(Debug, Clone)]
pub(crate) struct Approach {
    record_size: u64,
    lost: bool,
}

impl Approach {
    /// At the start, for data in records of `record_size` bytes: the first member is sought.
    pub fn new(record_size: usize) -> Self {
        Approach {
            record_size: record_size as u64,
            lost: true,
        }
    }

    /// Whether to seek to the member at byte `next` when the reader is at byte `at`.
    pub fn must_seek(&self, at: u64, next: u64) -> bool {
        self.lost || next < at || next - at > 2 * self.record_size
    }

    /// A seek put the reader where it was asked to.
    pub fn arrived(&mut self) {
        self.lost = false;
    }

    /// A read or seek failed: the next member is sought.
    pub fn lost(&mut self) {
        self.lost = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reel_archive::Entry;
    use reel_stream::{FileKind, FileMeta};

    fn member(path: &str, kind: FileKind, offset: u64, size: u64) -> IndexEntry {
        let mut meta = FileMeta::new(kind, 0o644);
        meta.size = size;
        IndexEntry::new(&Entry::new(path, meta), offset, None)
    }

    fn file(path: &str, offset: u64, size: u64) -> IndexEntry {
        member(path, FileKind::Regular, offset, size)
    }

    fn dir(path: &str, offset: u64) -> IndexEntry {
        member(path, FileKind::Directory, offset, 0)
    }

    fn hard_link(path: &str, target: &str, offset: u64) -> IndexEntry {
        let mut entry = Entry::new(path, FileMeta::new(FileKind::Regular, 0o644));
        entry.hardlink = Some(target.as_bytes().to_vec());
        IndexEntry::new(&entry, offset, None)
    }

    fn selector(patterns: &[&str]) -> Selector {
        Selector::new(&patterns.iter().map(|p| p.to_string()).collect::<Vec<_>>()).unwrap()
    }

    fn same(p: &[u8]) -> &[u8] {
        p
    }

    fn offset(e: &IndexEntry) -> u64 {
        e.offset
    }

    /// A plan made in a test.
    struct Made {
        /// (source, offsets) per group.
        groups: Vec<(Source, Vec<u64>)>,
        plan: Plan<u64>,
        /// How many link targets were looked up outside the members offered.
        lookups: usize,
    }

    /// The plan of `entries` (offered in this order); link targets are looked up in
    /// `outside`.
    fn plan_of(patterns: &[&str], entries: &[IndexEntry], outside: &[IndexEntry]) -> Made {
        let sel = selector(patterns);
        let mut planner = Planner::new(&sel, same, offset);
        for e in entries {
            planner.offer(e);
        }
        let mut lookups = 0;
        let plan = planner
            .finish(|target| {
                lookups += 1;
                Ok::<_, ()>(outside.iter().find(|e| e.path == target).cloned())
            })
            .unwrap();
        let groups = plan
            .groups
            .iter()
            .map(|(s, g)| (*s, g.iter().map(|p| p.offset).collect()))
            .collect();
        Made {
            groups,
            plan,
            lookups,
        }
    }

    fn tree() -> Vec<IndexEntry> {
        vec![
            dir("a", 0),
            file("a/one", 512, 100),
            file("a/two", 1536, 2000),
            dir("b", 4096),
            hard_link("b/link-to-one", "a/one", 4608),
            file("b/three", 5120, 10),
        ]
    }

    #[test]
    fn everything_is_every_member_once_with_its_size() {
        let Made { groups, plan, .. } = plan_of(&[], &tree(), &[]);
        assert_eq!(groups, vec![(None, vec![0, 512, 1536, 4096, 4608, 5120])]);
        assert_eq!(plan.members, 6);
        assert_eq!(plan.total_bytes, 2110);
        assert!(plan.added_link_targets.is_empty());
    }

    #[test]
    fn patterns_select_members_and_what_is_under_them() {
        let Made { groups, plan, .. } = plan_of(&["a"], &tree(), &[]);
        assert_eq!(groups, vec![(None, vec![0, 512, 1536])]);
        assert_eq!(plan.total_bytes, 2100);
        let Made { groups, .. } = plan_of(&["*/t*"], &tree(), &[]);
        assert_eq!(groups, vec![(None, vec![1536, 5120])]);
    }

    #[test]
    fn a_selected_hard_link_pulls_in_its_target() {
        let Made { groups, plan, .. } = plan_of(&["b"], &tree(), &[]);
        assert_eq!(groups, vec![(None, vec![512, 4096, 4608, 5120])]);
        assert_eq!(plan.added_link_targets, vec!["a/one".to_string()]);
        assert_eq!(plan.members, 4);
        assert_eq!(plan.total_bytes, 110);
        // A target the patterns select anyway is not "added".
        let Made { groups, plan, .. } = plan_of(&["a/one", "b/link-to-one"], &tree(), &[]);
        assert_eq!(groups, vec![(None, vec![512, 4608])]);
        assert!(plan.added_link_targets.is_empty());
    }

    #[test]
    fn a_target_outside_the_offered_members_is_looked_up_once() {
        // As a catalog range lookup of `b` offers: only what is under b.
        let offered = vec![
            dir("b", 4096),
            hard_link("b/link-to-one", "a/one", 4608),
            hard_link("b/again-one", "a/one", 5632),
            hard_link("b/link-to-dir", "a", 6144),
        ];
        let outside = vec![dir("a", 0), file("a/one", 512, 100)];
        let Made {
            groups,
            plan,
            lookups,
        } = plan_of(&["b"], &offered, &outside);
        assert_eq!(groups, vec![(None, vec![512, 4096, 4608, 5632, 6144])]);
        assert_eq!(plan.added_link_targets, vec!["a/one".to_string()]);
        assert_eq!(lookups, 2, "a/one once, a once");
        // No such member: the link is planned alone (the restore reports it).
        let Made { groups, plan, .. } = plan_of(&["b"], &offered, &[]);
        assert_eq!(groups, vec![(None, vec![4096, 4608, 5632, 6144])]);
        assert!(plan.added_link_targets.is_empty());
    }

    #[test]
    fn a_member_offered_twice_is_planned_once() {
        // Two overlapping range lookups offer the same members.
        let mut offered = tree();
        offered.extend(tree().into_iter().filter(|e| e.path.starts_with(b"a")));
        let Made { groups, plan, .. } = plan_of(&["a", "a/one"], &offered, &[]);
        assert_eq!(groups, vec![(None, vec![0, 512, 1536])]);
        assert_eq!(plan.members, 3);
    }

    #[test]
    fn groups_are_per_source_and_in_archive_order() {
        let earlier = uuid::Uuid::from_u128(7);
        let mut entries = tree();
        let mut unchanged = file("a/unchanged", 99_000, 5);
        unchanged.source_set = Some(earlier);
        let mut older = file("a/older", 1_000, 5);
        older.source_set = Some(earlier);
        // Out of archive order, as lookups of two patterns return them.
        entries.insert(0, unchanged);
        entries.push(older);
        entries.swap(1, 6);
        for patterns in [&[][..], &["a", "b"][..]] {
            let Made { groups, .. } = plan_of(patterns, &entries, &[]);
            assert_eq!(
                groups,
                vec![
                    (None, vec![0, 512, 1536, 4096, 4608, 5120]),
                    (Some(earlier), vec![1_000, 99_000]),
                ],
                "{patterns:?}"
            );
        }
    }

    #[test]
    fn the_key_is_what_patterns_and_link_targets_see() {
        // Foreign archives: `./` in front of names, in links too.
        fn bare(mut p: &[u8]) -> &[u8] {
            while let Some(rest) = p.strip_prefix(b"./") {
                p = rest;
            }
            p
        }
        let entries = vec![
            file("./a/one", 0, 1),
            hard_link("./b/link", "./a/one", 1024),
        ];
        let sel = selector(&["b"]);
        let mut planner = Planner::new(&sel, bare, |e| e.path.clone());
        for e in &entries {
            planner.offer(e);
        }
        let plan = planner.finish(|_| Ok::<_, ()>(None)).unwrap();
        let paths: Vec<Vec<u8>> = plan.groups[&None]
            .iter()
            .map(|p| p.detail.clone())
            .collect();
        assert_eq!(paths, vec![b"./a/one".to_vec(), b"./b/link".to_vec()]);
        assert_eq!(plan.added_link_targets, vec!["a/one".to_string()]);
    }

    #[test]
    fn near_members_are_read_on_to_and_far_ones_sought() {
        let mut a = Approach::new(10240);
        assert!(a.must_seek(0, 0), "the first member is sought");
        a.arrived();
        assert!(!a.must_seek(0, 0));
        assert!(
            !a.must_seek(1000, 1000 + 20480),
            "two records ahead: read on"
        );
        assert!(a.must_seek(1000, 1000 + 20481), "more than two: seek");
        assert!(a.must_seek(1000, 999), "behind: seek");
        a.lost();
        assert!(a.must_seek(1000, 1512), "after a failed read: seek");
    }

    #[test]
    fn walking_a_plan_seeks_over_long_stretches_only() {
        // Members of a set in records of 4 KiB; the reader ends each member at the end of
        // its data (header block, content rounded to blocks).
        let entries = [
            file("a", 0, 100),
            file("b", 1024, 100),
            file("c", 2048, 100),
            file("far", 100_000, 30_000),
            file("near", 130_720, 0),
            file("d", 139_776, 0),
            file("e", 148_480, 0),
        ];
        let sel = selector(&["a", "c", "far", "near", "d", "e"]);
        let mut planner = Planner::new(&sel, same, offset);
        for e in &entries {
            planner.offer(e);
        }
        let plan = planner.finish(|_| Ok::<_, ()>(None)).unwrap();
        let mut approach = Approach::new(4096);
        let mut at = 0;
        let mut seeks = Vec::new();
        for p in &plan.groups[&None] {
            if approach.must_seek(at, p.offset) {
                seeks.push(p.offset);
                approach.arrived();
            }
            at = p.offset + 512 + p.size.div_ceil(512) * 512;
        }
        // a: the start; c: read on over b; far: 97 KiB ahead; near: right after it; d:
        // 8544 bytes ahead, more than two records; e: two records ahead, read on.
        assert_eq!(seeks, vec![0, 100_000, 139_776]);
    }
}

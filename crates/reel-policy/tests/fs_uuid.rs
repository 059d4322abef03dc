//! `filesystem_uuid` against what util-linux reads from the superblock, on loop-mounted
//! ext4, XFS and btrfs images (root).

use reel_testkit::{LoopFs, require_tool};

#[test]
fn the_kernel_names_the_same_uuid_as_the_superblock() {
    if !require_tool("findmnt") {
        return;
    }
    for (fstype, size) in [("ext4", 32 << 20), ("xfs", 300 << 20), ("btrfs", 300 << 20)] {
        let Some(fs) = LoopFs::new(fstype, size) else {
            return;
        };
        let want = fs.uuid();
        std::fs::create_dir(fs.path().join("sub")).unwrap();
        // Any path inside names its file system.
        for p in [fs.path().to_path_buf(), fs.path().join("sub")] {
            assert_eq!(
                reel_policy::filesystem_uuid(&p).as_deref(),
                Some(want.as_str()),
                "{fstype} at {}",
                p.display()
            );
        }
    }
    // proc has no UUID.
    assert_eq!(
        reel_policy::filesystem_uuid(std::path::Path::new("/proc")),
        None
    );
}

//! Encrypted files in sets: always captured raw.
//!
//! An encrypted file's bytes are already its ciphertext (an age file), so the backup copies
//! them like any file — no key is needed — and moves its marker from the `user.reel.efs`
//! xattr to the set's own pax key `REEL.efs`. A restore turns the key back into the xattr,
//! after checking it is a valid marker. GNU tar and bsdtar restore the bytes: an age file
//! `age -d` opens.

use reel_archive::Entry;

/// Pax key that carries the marker of an encrypted file or directory.
pub const PAX_KEY: &str = "REEL.efs";

/// Moves the marker of an encrypted file from its xattrs to the `REEL.efs` key.
pub fn capture_marker(entry: &mut Entry) {
    let name = reel_efs::marker::XATTR_NAME.as_bytes();
    let Some(pos) = entry.meta.xattrs.iter().position(|x| x.name == name) else {
        return;
    };
    let xattr = entry.meta.xattrs.remove(pos);
    // An unreadable marker stays an ordinary xattr: the file is backed up as it is.
    match reel_efs::Marker::decode(&xattr.value).and_then(|m| m.to_pax_value()) {
        Ok(value) => entry.extra.push((PAX_KEY.to_string(), value.into_bytes())),
        Err(_) => entry.meta.xattrs.insert(pos, xattr),
    }
}

/// Turns a `REEL.efs` key back into the `user.reel.efs` xattr the restore applies.
pub fn restore_marker(entry: &mut Entry) -> Result<(), String> {
    let Some(pos) = entry.extra.iter().position(|(k, _)| k == PAX_KEY) else {
        return Ok(());
    };
    let (_, value) = entry.extra.remove(pos);
    let text =
        String::from_utf8(value).map_err(|_| "the REEL.efs marker is not text".to_string())?;
    let marker = reel_efs::Marker::from_pax_value(&text)
        .map_err(|e| format!("damaged REEL.efs marker: {e}"))?;
    let bytes = marker
        .encode()
        .map_err(|e| format!("REEL.efs marker: {e}"))?;
    entry.meta.xattrs.push(reel_stream::Xattr::new(
        reel_efs::marker::XATTR_NAME.as_bytes().to_vec(),
        bytes,
    ));
    Ok(())
}

//! Files and directories the tool writes, created owner-only (0600 and 0700) whatever the umask:
//! journals, leases, reports, exports and logs can name tables, keys and principals.

use std::fs::{DirBuilder, File, OpenOptions, Permissions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

pub const FILE_MODE: u32 = 0o600;
pub const DIR_MODE: u32 = 0o700;

/// Creates `dir` and any missing parents as 0700. Existing directories are left as they are:
/// the operator's own (`--report-dir .`) are not ours to change.
pub fn create_dir_all(dir: &Path) -> io::Result<()> {
    DirBuilder::new().recursive(true).mode(DIR_MODE).create(dir)
}

/// [`create_dir_all`], then 0700 even if it existed: for directories only the tool uses.
pub fn own_dir(dir: &Path) -> io::Result<()> {
    create_dir_all(dir)?;
    std::fs::set_permissions(dir, Permissions::from_mode(DIR_MODE))
}

/// Opens `path` for writing, created 0600, and made 0600 if it already existed.
fn open(path: &Path, options: &mut OpenOptions) -> io::Result<File> {
    let f = options.mode(FILE_MODE).open(path)?;
    f.set_permissions(Permissions::from_mode(FILE_MODE))?;
    Ok(f)
}

/// Creates or truncates `path`, owner-only.
pub fn create(path: &Path) -> io::Result<File> {
    open(
        path,
        OpenOptions::new().write(true).create(true).truncate(true),
    )
}

/// Opens `path` to append to, owner-only.
pub fn append(path: &Path) -> io::Result<File> {
    open(path, OpenOptions::new().append(true).create(true))
}

/// Opens `path` for writing without truncating it, owner-only (lock files).
pub fn keep(path: &Path) -> io::Result<File> {
    open(
        path,
        OpenOptions::new().write(true).create(true).truncate(false),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn files_and_directories_are_owner_only_even_when_they_existed() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("a/b");
        create_dir_all(&sub).unwrap();
        assert_eq!(mode(&sub), DIR_MODE);
        assert_eq!(mode(&dir.path().join("a")), DIR_MODE);
        let loose = dir.path().join("loose");
        std::fs::write(&loose, "x").unwrap();
        std::fs::set_permissions(&loose, Permissions::from_mode(0o666)).unwrap();
        create(&loose).unwrap();
        assert_eq!(mode(&loose), FILE_MODE);
        let log = dir.path().join("log");
        append(&log).unwrap();
        assert_eq!(mode(&log), FILE_MODE);
        let shared = dir.path().join("shared");
        std::fs::create_dir(&shared).unwrap();
        std::fs::set_permissions(&shared, Permissions::from_mode(0o755)).unwrap();
        own_dir(&shared).unwrap();
        assert_eq!(mode(&shared), DIR_MODE);
    }
}

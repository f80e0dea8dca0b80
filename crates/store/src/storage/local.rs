//! [`LocalDir`]: segments as files under the data directory, the embedded
//! default. A key is a path relative to the root; a new segment is written
//! in place by the segment writer (temporary name, fsync, rename, fsync of
//! the directory), so [`SegmentStore::put_file`] has nothing left to do.

use super::{Listed, SegmentStore, not_found};
use skald_chunk::{FileRange, RangeRead};
use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct LocalDir {
    root: PathBuf,
}

impl LocalDir {
    pub fn new(root: impl Into<PathBuf>) -> LocalDir {
        LocalDir { root: root.into() }
    }

    fn path(&self, key: &str) -> PathBuf {
        self.root.join(key)
    }
}

/// Fsyncs the directory holding `path`.
fn sync_parent(path: &Path) -> io::Result<()> {
    match path.parent() {
        Some(dir) => File::open(dir)?.sync_all(),
        None => Ok(()),
    }
}

impl SegmentStore for LocalDir {
    fn readable_after_delete(&self) -> bool {
        true
    }

    fn describe(&self) -> String {
        format!("directory {}", self.root.display())
    }

    fn location(&self, key: &str) -> PathBuf {
        self.path(key)
    }

    fn local_path(&self, key: &str) -> Option<PathBuf> {
        Some(self.path(key))
    }

    fn put_file(&self, key: &str, local: &Path) -> io::Result<()> {
        let target = self.path(key);
        if local == target {
            // Written in place: the writer renamed and fsynced it.
            return Ok(());
        }
        if let Some(dir) = target.parent() {
            std::fs::create_dir_all(dir)?;
        }
        if std::fs::rename(local, &target).is_err() {
            // Another file system: copy under a temporary name, then rename.
            let tmp = tmp_path(&target);
            std::fs::copy(local, &tmp)?;
            File::open(&tmp)?.sync_all()?;
            std::fs::rename(&tmp, &target)?;
        }
        sync_parent(&target)
    }

    fn put_bytes(&self, key: &str, bytes: &[u8]) -> io::Result<()> {
        let target = self.path(key);
        if let Some(dir) = target.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = tmp_path(&target);
        {
            let mut f = File::create(&tmp)?;
            f.write_all(bytes)?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, &target)?;
        sync_parent(&target)
    }

    fn get(&self, key: &str) -> io::Result<Vec<u8>> {
        std::fs::read(self.path(key))
    }

    fn open(&self, key: &str) -> io::Result<Box<dyn RangeRead>> {
        Ok(Box::new(FileRange::open(&self.path(key))?))
    }

    fn list(&self, prefix: &str) -> io::Result<Vec<Listed>> {
        // Keys are paths: list the deepest directory the prefix names
        // whole, then keep what matches the rest.
        let dir_part = match prefix.rfind('/') {
            Some(i) => &prefix[..i],
            None => "",
        };
        let mut out = Vec::new();
        walk(&self.root.join(dir_part), dir_part, &mut out)?;
        out.retain(|l| l.key.starts_with(prefix));
        Ok(out)
    }

    fn delete(&self, key: &str) -> io::Result<()> {
        match std::fs::remove_file(self.path(key)) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            other => other,
        }
    }

    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        let (from_path, to_path) = (self.path(from), self.path(to));
        if !from_path.exists() {
            return Err(not_found(from));
        }
        if let Some(dir) = to_path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::rename(&from_path, &to_path)?;
        sync_parent(&to_path)?;
        sync_parent(&from_path)
    }

    fn sync_deletes(&self, key: &str) -> io::Result<()> {
        sync_parent(&self.path(key))
    }
}

/// `<path>.tmp`: the name the segment writer uses too, so the catalog
/// clears leftovers of either kind at start.
fn tmp_path(path: &Path) -> PathBuf {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    PathBuf::from(tmp)
}

/// Appends every file under `dir` (whose key prefix is `key`) to `out`.
fn walk(dir: &Path, key: &str, out: &mut Vec<Listed>) -> io::Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let Some(name) = entry.file_name().to_str().map(str::to_string) else {
            continue;
        };
        let child = if key.is_empty() {
            name
        } else {
            format!("{key}/{name}")
        };
        let kind = entry.file_type()?;
        if kind.is_dir() {
            walk(&entry.path(), &child, out)?;
        } else if kind.is_file() {
            let size = entry.metadata()?.len();
            out.push(Listed { key: child, size });
        }
    }
    Ok(())
}

//! Where export files live.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use super::s3::{S3Config, S3ExportStorage};

/// A file being written; it appears under its name only when committed, so a reader never sees
/// half a file. Dropping it uncommitted discards it.
pub trait StagedFile: Write + Send {
    /// Makes the file visible under its name.
    fn commit(self: Box<Self>) -> io::Result<()>;
}

/// Storage of export files.
pub trait ExportStorage: Send + Sync + 'static {
    /// Starts writing file `name`.
    fn create(&self, name: &str) -> io::Result<Box<dyn StagedFile>>;
    /// Starts writing file `name`, to be served as `content_type` by storages that keep one
    /// (object storage); the others ignore it.
    fn create_typed(&self, name: &str, content_type: &'static str) -> io::Result<Box<dyn StagedFile>> {
        let _ = content_type;
        self.create(name)
    }
    /// Opens file `name` for download through this server, if it exists here.
    fn open(&self, name: &str) -> io::Result<Option<File>>;
    /// Deletes file `name`; a missing file is not an error.
    fn delete(&self, name: &str) -> io::Result<()>;
    /// A direct, expiring download URL (object storage), when the storage has one.
    fn direct_url(&self, name: &str, ttl: Duration) -> Option<String>;
}

/// Export files in a local folder.
#[derive(Debug, Clone)]
pub struct LocalExportStorage {
    dir: PathBuf,
}

impl LocalExportStorage {
    /// Files in `dir`, created if missing.
    pub fn new(dir: impl Into<PathBuf>) -> io::Result<Self> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir)?;
        Ok(Self { dir })
    }

    fn path(&self, name: &str) -> io::Result<PathBuf> {
        check_name(name)?;
        Ok(self.dir.join(name))
    }
}

/// Names are generated ids; refuse anything that could leave the folder or the key prefix.
pub(super) fn check_name(name: &str) -> io::Result<()> {
    if name.is_empty()
        || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
        || name.starts_with('.')
    {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "bad export file name"));
    }
    Ok(())
}

struct LocalStaged {
    out: Option<BufWriter<File>>,
    tmp: PathBuf,
    dest: PathBuf,
}

impl Write for LocalStaged {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.out.as_mut().ok_or_else(|| io::Error::other("committed"))?.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.out.as_mut().ok_or_else(|| io::Error::other("committed"))?.flush()
    }
}

impl StagedFile for LocalStaged {
    fn commit(mut self: Box<Self>) -> io::Result<()> {
        let out = self.out.take().ok_or_else(|| io::Error::other("committed twice"))?;
        let file = out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        std::fs::rename(&self.tmp, &self.dest)
    }
}

impl Drop for LocalStaged {
    fn drop(&mut self) {
        if self.out.take().is_some() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

impl ExportStorage for LocalExportStorage {
    fn create(&self, name: &str) -> io::Result<Box<dyn StagedFile>> {
        let dest = self.path(name)?;
        let tmp = self.dir.join(format!(".{name}.partial"));
        let file = File::create(&tmp)?;
        Ok(Box::new(LocalStaged { out: Some(BufWriter::with_capacity(256 * 1024, file)), tmp, dest }))
    }

    fn open(&self, name: &str) -> io::Result<Option<File>> {
        match File::open(self.path(name)?) {
            Ok(f) => Ok(Some(f)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn delete(&self, name: &str) -> io::Result<()> {
        match std::fs::remove_file(self.path(name)?) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    fn direct_url(&self, _name: &str, _ttl: Duration) -> Option<String> {
        None
    }
}

/// The folder of a local storage (for operators' messages).
impl AsRef<Path> for LocalExportStorage {
    fn as_ref(&self) -> &Path {
        &self.dir
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn files_appear_only_when_committed() {
        let dir = tempfile::tempdir().unwrap();
        let s = LocalExportStorage::new(dir.path().join("exports")).unwrap();
        let mut f = s.create("abc.json").unwrap();
        f.write_all(b"hello").unwrap();
        assert!(s.open("abc.json").unwrap().is_none());
        f.commit().unwrap();
        let mut text = String::new();
        s.open("abc.json").unwrap().unwrap().read_to_string(&mut text).unwrap();
        assert_eq!(text, "hello");
        s.delete("abc.json").unwrap();
        assert!(s.open("abc.json").unwrap().is_none());
        s.delete("abc.json").unwrap();

        let mut dropped = s.create("gone.json").unwrap();
        dropped.write_all(b"partial").unwrap();
        drop(dropped);
        assert_eq!(std::fs::read_dir(dir.path().join("exports")).unwrap().count(), 0);

        assert!(s.create("../escape").is_err());
        assert!(s.open(".hidden").is_err());
    }
}

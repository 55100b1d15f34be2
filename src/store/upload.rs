//! An upload on the shard that receives it: the body goes into a temporary
//! file in the target's directory (a new one, or a spare old version of a
//! neighbour), is flushed, and waits for the owner's commit
//! (`commit.rs`); a failed or refused upload leaves nothing behind.

use std::ffi::OsStr;
use std::io;
use std::os::unix::ffi::OsStrExt;

use percore_io::{Dir, File};

use super::{spares::dir_key, temp_options, Store};

/// An upload under way: its temporary file, open until flushed.
pub(crate) struct Upload {
    dir: Dir,
    temp: Vec<u8>,
    file: Option<File>,
    /// The old modification time, when the file is a reused spare.
    reused: Option<(i64, i64)>,
}

impl Store {
    /// Starts an upload to `path` (checked), of `len` bytes when known: a
    /// spare is reused rather than a file created when the length is known
    /// and covers the spare's old content. Missing directories are created.
    /// The error says which step failed ("cannot create the directory",
    /// "cannot store the file").
    pub(crate) async fn begin_upload(
        &self,
        path: &[u8],
        len: Option<u64>,
    ) -> Result<Upload, (&'static str, io::Error)> {
        self.begin_upload_under(path, len, 0).await
    }

    /// [`Store::begin_upload`], creating no directory among the first
    /// `existing` components of the path: if one is missing, the error is
    /// `NotFound` ("no such directory").
    pub(crate) async fn begin_upload_under(
        &self,
        path: &[u8],
        len: Option<u64>,
        existing: usize,
    ) -> Result<Upload, (&'static str, io::Error)> {
        let (dir, _leaf) =
            super::parent_dir(&self.root, &self.durability, path, Some(existing)).await.map_err(|e| {
                match e.kind() {
                    io::ErrorKind::NotFound => ("no such directory", e),
                    _ => ("cannot create the directory", e),
                }
            })?;
        let spare = len.and_then(|n| self.spares.borrow_mut().take(dir_key(path), n));
        if let Some(spare) = spare {
            return Ok(Upload { dir, temp: spare.name, file: Some(spare.file), reused: Some(spare.mtime) });
        }
        let temp = self.temp_name();
        match dir.open_file(OsStr::from_bytes(&temp), &temp_options()).await {
            Ok(file) => Ok(Upload { dir, temp, file: Some(file), reused: None }),
            Err(err) => Err(("cannot store the file", err)),
        }
    }
}

impl Upload {
    /// The temporary file, to write the body into (until [`Upload::flush`]).
    pub(crate) fn file(&self) -> &File {
        self.file.as_ref().expect("written only before the flush")
    }

    /// The temporary file's name, for the commit.
    pub(crate) fn temp(&self) -> &[u8] {
        &self.temp
    }

    /// Flushes and closes the body (`Durability::flush_body`); returns the
    /// new version's ETag.
    pub(crate) async fn flush(&mut self, store: &Store) -> io::Result<String> {
        self.flush_with(store, None).await
    }

    /// [`Upload::flush`], setting `attribute` on the file first.
    pub(crate) async fn flush_with(
        &mut self,
        store: &Store,
        attribute: Option<super::Attribute<'_>>,
    ) -> io::Result<String> {
        let file = self.file.take().expect("flushed once");
        store.durability.flush_body(&file, self.reused, attribute).await
    }

    /// Removes the temporary file: the upload failed or was refused, or its
    /// commit never ran.
    pub(crate) async fn discard(self) {
        drop(self.file);
        let _ = self.dir.unlink(OsStr::from_bytes(&self.temp)).await;
    }
}

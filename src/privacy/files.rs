//! Deleting recording files off the async runtime (the storage API is blocking I/O).

use std::sync::Arc;

use crate::media::storage::{RecordingStorage, StorageError};

/// The outcome of deleting one recording's file.
#[derive(Debug)]
pub(crate) enum Deleted {
    /// The file was removed.
    Removed,
    /// There was no file (already deleted by an earlier run): the row may go.
    Missing,
    /// The storage failed: keep the row so the next run retries.
    Failed(StorageError),
}

/// Deletes the files stored under `keys`, in order, on a blocking thread.
pub(crate) async fn delete_files(
    storage: &Arc<dyn RecordingStorage>,
    keys: Vec<String>,
) -> Vec<Deleted> {
    let storage = storage.clone();
    let n = keys.len();
    tokio::task::spawn_blocking(move || {
        keys.iter()
            .map(|key| match storage.delete(key) {
                Ok(()) => Deleted::Removed,
                Err(StorageError::NotFound { .. }) => Deleted::Missing,
                Err(e) => Deleted::Failed(e),
            })
            .collect()
    })
    .await
    .unwrap_or_else(|_| {
        (0..n)
            .map(|_| {
                Deleted::Failed(StorageError::Io {
                    key: String::new(),
                    op: "delete",
                    source: std::io::Error::other("delete task panicked"),
                })
            })
            .collect()
    })
}

//! Call recording as a leg tap: every tick's caller frame and sent frame go to a
//! [`Recorder`]; the file is finalized when the leg stops (hangup or shutdown).

use crate::leg::LegTap;
use crate::media::recorder::{Recorder, RecordingFormat};
use crate::media::storage::RecordingStorage;

/// Writes both directions of a leg into one stereo recording.
pub struct RecordingTap {
    recorder: Option<Recorder>,
    /// Set after the first write error, so a full disk is logged once per call.
    failed: bool,
}

impl RecordingTap {
    /// Starts a recording under `key` at the leg's PCM rate.
    pub fn start(
        storage: &dyn RecordingStorage,
        key: &str,
        rate: u32,
        format: RecordingFormat,
    ) -> Result<RecordingTap, crate::media::recorder::RecorderError> {
        Ok(RecordingTap {
            recorder: Some(Recorder::create_with_format(storage, key, rate, format)?),
            failed: false,
        })
    }

    /// Records one tick of the caller only (the `record` app).
    pub fn push_caller(&mut self, tick: u64, caller: Option<&[i16]>) {
        self.push(tick, caller, None);
    }
}

impl LegTap for RecordingTap {
    fn push(&mut self, tick: u64, caller: Option<&[i16]>, sent: Option<&[i16]>) {
        let Some(rec) = self.recorder.as_mut() else {
            return;
        };
        if let Err(e) = rec.push(tick, caller, sent)
            && !self.failed
        {
            self.failed = true;
            tracing::warn!(key = rec.key(), error = %e, "recording stopped");
        }
    }

    fn finish(&mut self) -> Option<String> {
        let rec = self.recorder.take()?;
        let key = rec.key().to_string();
        match rec.finish() {
            Ok(info) => {
                tracing::info!(key = %info.key, duration_ms = info.duration.as_millis() as u64,
                    bytes = info.bytes, "recording saved");
                Some(info.key)
            }
            Err(e) => {
                tracing::warn!(%key, error = %e, "recording could not be finalized");
                None
            }
        }
    }
}

/// A storage key for a call's recording: time, call id and a random suffix, so that keys
/// never collide across restarts.
pub fn recording_key(prefix: &str, call: &str, format: RecordingFormat) -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let call: String = call
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    format!(
        "{prefix}-{secs}-{call}-{:06x}.{}",
        rand::random::<u32>() & 0xff_ffff,
        format.extension()
    )
}

//! Audio inside a call: 16-bit PCM frames, the paced playout queue with marks. The prompt
//! player and recorder join here in the media issue.

pub mod dtmf_detect;
pub mod playout;
pub mod prompt;
pub mod quality;
pub mod recorder;
pub mod storage;

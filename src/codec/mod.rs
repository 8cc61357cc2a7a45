//! Audio codecs. This slice has G.711 µ-law/A-law sample conversion; Opus, G.722 and
//! resampling come with the media issue.

pub mod g711;

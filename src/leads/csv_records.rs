//! Push CSV record splitter shared by the lead and DNC importers (sans-IO, on `csv-core`).
//!
//! Fed arbitrary byte chunks; hands out complete records with the physical line on which each
//! starts. Handles a UTF-8 BOM split across chunks, CRLF/LF, and quoted fields with commas and
//! newlines. Memory is bounded: a field longer than `max_field_bytes` and fields past
//! `max_columns` are discarded (and reported on the record) instead of buffered.

use csv_core::{ReadFieldResult, Reader};

const BOM: &[u8] = b"\xEF\xBB\xBF";
/// Bytes written per parser call at most; a field grows its buffer by this much.
const CHUNK: usize = 8 * 1024;

/// Why a record's contents are incomplete.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RecordProblem {
    /// The field at this index (0-based) exceeded `max_field_bytes`; its contents were dropped.
    FieldTooLarge(usize),
    /// The record had more than `max_columns` fields; the rest were dropped.
    TooManyColumns,
}

/// One record as parsed: its fields, first physical line (1-based), and any problem.
pub(crate) struct RawRecord<'a> {
    /// Physical line (counted by `\n`, quoted newlines included) where the record starts.
    pub line: u64,
    data: &'a [u8],
    ends: &'a [usize],
    /// Set when fields were dropped for exceeding a limit.
    pub problem: Option<RecordProblem>,
}

impl<'a> RawRecord<'a> {
    /// Number of fields kept.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// The bytes of field `i`.
    pub fn field(&self, i: usize) -> Option<&'a [u8]> {
        let end = *self.ends.get(i)?;
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        Some(&self.data[start..end])
    }
}

/// The push splitter.
pub(crate) struct RecordSplitter {
    csv: Reader,
    /// Leading bytes held back until we know whether they are a BOM.
    bom_pending: Vec<u8>,
    bom_done: bool,
    max_field_bytes: usize,
    max_columns: usize,
    /// Contents of the kept fields of the current record, back to back.
    data: Vec<u8>,
    /// Bytes of `data` in use.
    len: usize,
    ends: Vec<usize>,
    /// Fields seen in the current record (kept or not).
    fields_seen: usize,
    /// Bytes of the current field seen so far (kept or not).
    field_len: usize,
    /// The current field is being discarded.
    discarding: bool,
    problem: Option<RecordProblem>,
    /// `\n` bytes inside the current record's fields, to find its first line.
    newlines: u64,
    scratch: Box<[u8; CHUNK]>,
}

impl RecordSplitter {
    /// A splitter with the given limits.
    pub fn new(max_field_bytes: usize, max_columns: usize) -> Self {
        RecordSplitter {
            csv: Reader::new(),
            bom_pending: Vec::with_capacity(3),
            bom_done: false,
            max_field_bytes,
            max_columns: max_columns.max(1),
            data: Vec::new(),
            len: 0,
            ends: Vec::new(),
            fields_seen: 0,
            field_len: 0,
            discarding: false,
            problem: None,
            newlines: 0,
            scratch: Box::new([0; CHUNK]),
        }
    }

    /// Feeds bytes; calls `on_record` for every record completed by them.
    pub fn push(&mut self, mut input: &[u8], on_record: &mut impl FnMut(RawRecord<'_>)) {
        if !self.bom_done {
            let take = (3 - self.bom_pending.len()).min(input.len());
            self.bom_pending.extend_from_slice(&input[..take]);
            input = &input[take..];
            let pending = self.bom_pending.len();
            if pending < 3 && BOM.starts_with(&self.bom_pending) {
                return;
            }
            self.bom_done = true;
            if self.bom_pending != BOM {
                let held = std::mem::take(&mut self.bom_pending);
                self.feed(&held, false, on_record);
            }
        }
        self.feed(input, false, on_record);
    }

    /// Signals end of input; completes a last record without a trailing newline.
    pub fn finish(&mut self, on_record: &mut impl FnMut(RawRecord<'_>)) {
        if !self.bom_done {
            self.bom_done = true;
            let held = std::mem::take(&mut self.bom_pending);
            if held != BOM {
                self.feed(&held, false, on_record);
            }
        }
        self.feed(&[], true, on_record);
    }

    fn feed(&mut self, mut input: &[u8], eof: bool, on_record: &mut impl FnMut(RawRecord<'_>)) {
        loop {
            if input.is_empty() && !eof {
                return;
            }
            let keep = !self.discarding && self.fields_seen < self.max_columns;
            let (res, nin, nout) = if keep {
                // Room for the rest of the allowed field plus one byte to detect overflow.
                let room = (self.max_field_bytes - self.field_len + 1).min(CHUNK);
                if self.data.len() < self.len + room {
                    self.data.resize(self.len + room, 0);
                }
                let out = &mut self.data[self.len..self.len + room];
                let r = self.csv.read_field(input, out);
                self.newlines += count_newlines(&out[..r.2]);
                self.len += r.2;
                r
            } else {
                let r = self.csv.read_field(input, &mut self.scratch[..]);
                self.newlines += count_newlines(&self.scratch[..r.2]);
                r
            };
            let consumed = &input[..nin];
            input = &input[nin..];
            self.field_len += nout;
            if keep && self.field_len > self.max_field_bytes {
                // Drop what we kept of this field and skip the rest of it.
                self.len -= self.field_len;
                self.discarding = true;
                self.problem
                    .get_or_insert(RecordProblem::FieldTooLarge(self.fields_seen));
            }
            match res {
                ReadFieldResult::InputEmpty => {
                    if !eof {
                        return;
                    }
                }
                ReadFieldResult::OutputFull => {}
                ReadFieldResult::Field { record_end } => {
                    if self.fields_seen < self.max_columns {
                        self.ends.push(self.len);
                    } else {
                        self.problem.get_or_insert(RecordProblem::TooManyColumns);
                    }
                    self.fields_seen += 1;
                    self.field_len = 0;
                    self.discarding = false;
                    if record_end {
                        let terminator = u64::from(consumed.last() == Some(&b'\n'));
                        let line = self.csv.line() - self.newlines - terminator;
                        on_record(RawRecord {
                            line,
                            data: &self.data[..self.len],
                            ends: &self.ends,
                            problem: self.problem,
                        });
                        self.len = 0;
                        self.ends.clear();
                        self.fields_seen = 0;
                        self.problem = None;
                        self.newlines = 0;
                    }
                }
                ReadFieldResult::End => return,
            }
        }
    }
}

fn count_newlines(bytes: &[u8]) -> u64 {
    bytes.iter().filter(|&&b| b == b'\n').count() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    type Rec = (u64, Vec<String>, Option<RecordProblem>);

    fn split_chunks(chunks: &[&[u8]], max_field: usize, max_cols: usize) -> Vec<Rec> {
        let mut s = RecordSplitter::new(max_field, max_cols);
        let mut out = Vec::new();
        let mut sink = |r: RawRecord<'_>| {
            let fields = (0..r.len())
                .map(|i| String::from_utf8_lossy(r.field(i).unwrap()).into_owned())
                .collect();
            out.push((r.line, fields, r.problem));
        };
        for c in chunks {
            s.push(c, &mut sink);
        }
        s.finish(&mut sink);
        out
    }

    fn split(input: &[u8]) -> Vec<Rec> {
        let whole = split_chunks(&[input], 1024, 16);
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        assert_eq!(
            split_chunks(&bytes, 1024, 16),
            whole,
            "byte-at-a-time differs"
        );
        whole
    }

    fn rec(line: u64, fields: &[&str]) -> Rec {
        (line, fields.iter().map(|s| s.to_string()).collect(), None)
    }

    #[test]
    fn lines_with_lf_crlf_blank_lines_and_quoted_newlines() {
        let input = b"\xEF\xBB\xBFa,b\r\n1,\"x\r\ny\"\r\n\r\n2,\"q,\"\"z\"\"\"\n\"3\n\n\",w";
        assert_eq!(
            split(input),
            vec![
                rec(1, &["a", "b"]),
                rec(2, &["1", "x\r\ny"]),
                rec(5, &["2", "q,\"z\""]),
                rec(6, &["3\n\n", "w"]),
            ]
        );
    }

    #[test]
    fn lone_bom_prefix_bytes_are_data() {
        assert_eq!(split(b"\xEF\xBBx,y\n"), vec![rec(1, &["\u{FFFD}x", "y"])]);
        assert_eq!(split(b"\xEF\xBB\xBF"), vec![]);
        assert_eq!(split(b"ab"), vec![rec(1, &["ab"])]);
    }

    #[test]
    fn oversized_field_is_dropped_and_reported() {
        let mut input = b"h1,h2\nok,".to_vec();
        input.extend(std::iter::repeat_n(b'x', 100));
        input.extend_from_slice(b"\nnext,row\n");
        for chunks in [vec![&input[..]], input.chunks(7).collect()] {
            let got = split_chunks(&chunks, 10, 16);
            assert_eq!(got[0], rec(1, &["h1", "h2"]));
            assert_eq!(
                got[1],
                (
                    2,
                    vec!["ok".into(), "".into()],
                    Some(RecordProblem::FieldTooLarge(1))
                )
            );
            assert_eq!(got[2], rec(3, &["next", "row"]));
        }
    }

    #[test]
    fn field_of_exactly_the_limit_is_kept() {
        let got = split_chunks(&[b"0123456789,a\n"], 10, 16);
        assert_eq!(got, vec![rec(1, &["0123456789", "a"])]);
    }

    #[test]
    fn too_many_columns_is_reported_and_bounded() {
        let got = split_chunks(&[b"a,b,c,d,e\nx\n"], 100, 3);
        assert_eq!(
            got[0],
            (
                1,
                vec!["a".into(), "b".into(), "c".into()],
                Some(RecordProblem::TooManyColumns)
            )
        );
        assert_eq!(got[1], rec(2, &["x"]));
    }
}

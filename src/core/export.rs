//! Reading an NDJSON body (`GET /v1/runs/export`) line by line as it arrives, with memory
//! bounded by one network chunk plus one line, whatever the size of the export.

use bytes::{Bytes, BytesMut};

/// Longest line accepted; a longer one means the body is not an event export.
pub const MAX_LINE_BYTES: usize = 64 * 1024 * 1024;

/// Why a body could not be split into lines.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SplitError {
    /// A line grew past [`MAX_LINE_BYTES`] without a newline.
    #[error("NDJSON line {line} is longer than {max} bytes", max = MAX_LINE_BYTES)]
    LineTooLong { line: u64 },
}

/// Splits bytes fed in arbitrary chunks into non-empty lines, each stripped of the ASCII
/// whitespace Python's `bytes.strip()` removes. The last line needs no trailing newline.
#[derive(Debug, Default)]
pub struct LineSplitter {
    buf: BytesMut,
    /// Bytes of `buf` already searched for a newline (none found).
    scanned: usize,
    eof: bool,
    /// Non-empty lines handed out so far.
    lines: u64,
}

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

fn strip(mut line: Bytes) -> Bytes {
    let start = line
        .iter()
        .position(|b| !is_space(*b))
        .unwrap_or(line.len());
    let end = line
        .iter()
        .rposition(|b| !is_space(*b))
        .map_or(start, |i| i + 1);
    line.truncate(end.max(start));
    line.split_off(start)
}

impl LineSplitter {
    /// A splitter over a body that is already complete.
    pub fn complete(body: &[u8]) -> Self {
        let mut s = Self::default();
        s.feed(body);
        s.finish();
        s
    }

    /// Appends received bytes.
    pub fn feed(&mut self, chunk: &[u8]) {
        self.buf.extend_from_slice(chunk);
    }

    /// Marks the end of the body: what is left is the last line.
    pub fn finish(&mut self) {
        self.eof = true;
    }

    /// Whether the end of the body was reached.
    pub fn is_finished(&self) -> bool {
        self.eof
    }

    /// Non-empty lines handed out so far.
    pub fn lines(&self) -> u64 {
        self.lines
    }

    /// The next non-empty line, or `Ok(None)` when more bytes are needed (or, after
    /// [`finish`](Self::finish), when the body is exhausted).
    ///
    /// # Errors
    /// [`SplitError::LineTooLong`] when a line outgrows [`MAX_LINE_BYTES`].
    pub fn next_line(&mut self) -> Result<Option<Bytes>, SplitError> {
        loop {
            let found = self.buf[self.scanned..].iter().position(|b| *b == b'\n');
            let raw = match found {
                Some(i) => {
                    let raw = self.buf.split_to(self.scanned + i + 1).freeze();
                    self.scanned = 0;
                    raw
                }
                None if self.eof && !self.buf.is_empty() => {
                    self.scanned = 0;
                    self.buf.split().freeze()
                }
                None => {
                    self.scanned = self.buf.len();
                    if self.buf.len() > MAX_LINE_BYTES {
                        return Err(SplitError::LineTooLong {
                            line: self.lines + 1,
                        });
                    }
                    return Ok(None);
                }
            };
            let line = strip(raw);
            if !line.is_empty() {
                self.lines += 1;
                return Ok(Some(line));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(s: &mut LineSplitter) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        while let Some(l) = s.next_line().unwrap() {
            out.push(l.to_vec());
        }
        out
    }

    #[test]
    fn splits_across_chunks_and_strips_like_python() {
        let body = b" {\"a\": 1}\r\n\n\t{\"b\": 2}  \n{\"c\": 3}";
        for size in 1..body.len() {
            let mut s = LineSplitter::default();
            let mut got = Vec::new();
            for chunk in body.chunks(size) {
                s.feed(chunk);
                got.extend(all(&mut s));
            }
            s.finish();
            got.extend(all(&mut s));
            let want: Vec<Vec<u8>> = body
                .split(|b| *b == b'\n')
                .map(|l| l.trim_ascii().to_vec())
                .filter(|l| !l.is_empty())
                .collect();
            assert_eq!(got, want, "chunk size {size}");
            assert_eq!(s.lines(), 3);
        }
    }

    #[test]
    fn holds_a_partial_line_until_its_newline_or_the_end() {
        let mut s = LineSplitter::default();
        s.feed(b"{\"a\"");
        assert_eq!(s.next_line().unwrap(), None);
        s.feed(b": 1}");
        assert_eq!(s.next_line().unwrap(), None);
        s.finish();
        assert_eq!(s.next_line().unwrap().as_deref(), Some(&b"{\"a\": 1}"[..]));
        assert_eq!(s.next_line().unwrap(), None);
    }

    #[test]
    fn empty_and_blank_bodies_have_no_lines() {
        assert!(all(&mut LineSplitter::complete(b"")).is_empty());
        assert!(all(&mut LineSplitter::complete(b"\n \r\n\n")).is_empty());
    }

    #[test]
    fn an_endless_line_is_an_error() {
        let mut s = LineSplitter::default();
        s.feed(b"{}\n");
        assert!(s.next_line().unwrap().is_some());
        s.feed(&vec![b'x'; MAX_LINE_BYTES + 1]);
        assert_eq!(s.next_line(), Err(SplitError::LineTooLong { line: 2 }));
    }
}

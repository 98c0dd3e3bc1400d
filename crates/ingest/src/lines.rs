//! A line reader with a memory bound.
//!
//! `BufRead::read_until` buffers a line of any length: a 50 MB file without a
//! newline would be held whole. Logs are untrusted input, so this reader keeps
//! at most `max` bytes of a line; the rest of an over-long line is skipped
//! and the line is reported as [`Line::TooLong`] (with its head, for
//! quarantine). Line numbers count from 1; offsets are byte offsets of the
//! line start in the input.

use std::io::{self, BufRead};

pub struct LineReader<R> {
    inner: R,
    max: usize,
    buf: Vec<u8>,
    line_no: u64,
    offset: u64,
}

/// One line, without its `\n` or `\r\n`.
#[derive(Debug, PartialEq, Eq)]
pub enum Line<'a> {
    Complete {
        number: u64,
        offset: u64,
        bytes: &'a [u8],
    },
    /// Longer than the limit: `head` holds its first `max` bytes, `length` its full length.
    TooLong {
        number: u64,
        offset: u64,
        head: &'a [u8],
        length: u64,
    },
}

impl<R: BufRead> LineReader<R> {
    pub fn new(inner: R, max: usize) -> Self {
        LineReader {
            inner,
            max: max.max(1),
            buf: Vec::new(),
            line_no: 0,
            offset: 0,
        }
    }

    /// Bytes consumed so far.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The next line, or `None` at the end of the input.
    pub fn next_line(&mut self) -> io::Result<Option<Line<'_>>> {
        self.buf.clear();
        let start = self.offset;
        let mut length: u64 = 0;
        let mut saw_any = false;
        loop {
            let available = match self.inner.fill_buf() {
                Ok(b) => b,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if available.is_empty() {
                break;
            }
            saw_any = true;
            let (chunk, used, done) = match memchr::memchr(b'\n', available) {
                Some(i) => (&available[..i], i + 1, true),
                None => (available, available.len(), false),
            };
            let room = self.max.saturating_sub(self.buf.len());
            self.buf.extend_from_slice(&chunk[..chunk.len().min(room)]);
            length += chunk.len() as u64;
            self.inner.consume(used);
            self.offset += used as u64;
            if done {
                break;
            }
        }
        if !saw_any {
            return Ok(None);
        }
        self.line_no += 1;
        if length > self.max as u64 {
            return Ok(Some(Line::TooLong {
                number: self.line_no,
                offset: start,
                head: &self.buf,
                length,
            }));
        }
        if self.buf.last() == Some(&b'\r') {
            self.buf.pop();
        }
        Ok(Some(Line::Complete {
            number: self.line_no,
            offset: start,
            bytes: &self.buf,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_lines_and_bounds_long_ones() {
        let input = b"one\r\ntwo\n0123456789abcdef\nlast";
        let mut r = LineReader::new(&input[..], 8);
        assert_eq!(
            r.next_line().unwrap(),
            Some(Line::Complete {
                number: 1,
                offset: 0,
                bytes: b"one"
            })
        );
        assert_eq!(
            r.next_line().unwrap(),
            Some(Line::Complete {
                number: 2,
                offset: 5,
                bytes: b"two"
            })
        );
        assert_eq!(
            r.next_line().unwrap(),
            Some(Line::TooLong {
                number: 3,
                offset: 9,
                head: b"01234567",
                length: 16
            })
        );
        assert_eq!(
            r.next_line().unwrap(),
            Some(Line::Complete {
                number: 4,
                offset: 26,
                bytes: b"last"
            })
        );
        assert_eq!(r.next_line().unwrap(), None);
    }

    #[test]
    fn huge_single_line_uses_bounded_memory() {
        let big = vec![b'x'; 5_000_000];
        let mut r = LineReader::new(io::BufReader::new(&big[..]), 1024);
        match r.next_line().unwrap() {
            Some(Line::TooLong { head, length, .. }) => {
                assert_eq!(head.len(), 1024);
                assert_eq!(length, 5_000_000);
            }
            other => panic!("expected TooLong, got {other:?}"),
        }
        assert!(r.buf.capacity() < 1024 * 1024);
        assert_eq!(r.next_line().unwrap(), None);
    }
}

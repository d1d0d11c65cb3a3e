//! Splitting CSV text into raw records and records into fields. One splitter serves planning
//! (record starts, counts), counting and reading, so all three agree on what a record is, and a
//! malformed record is still one record: its raw bytes go to the quarantine.

use std::io::{self, Read};

/// Longest record accepted, so a file without line breaks cannot grow the process.
const MAX_RECORD_BYTES: usize = 64 << 20;
const READ_BYTES: usize = 1 << 20;

/// The syntax of one CSV flavour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Syntax {
    pub delimiter: u8,
    pub quote: Option<u8>,
    /// Escapes the next byte inside a quoted field; `None`: quotes are doubled.
    pub escape: Option<u8>,
    pub newlines_in_quotes: bool,
}

/// One record as it stands in the file, without its line terminator.
#[derive(Debug)]
pub struct RawRecord<'a> {
    pub bytes: &'a [u8],
    /// Line number (1-based) of the record's first line.
    pub line: u64,
    /// A quoted field was still open when the record ended (a line break with
    /// `newlines_in_quotes = false`, or the end of the input).
    pub open_quote: bool,
}

/// Reads raw records from a byte stream, buffering at most one record past 1 MiB.
pub struct RecordReader<R> {
    inner: R,
    syntax: Syntax,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    eof: bool,
    /// File offset of `buf[start]`.
    offset: u64,
    line: u64,
}

impl<R: Read> RecordReader<R> {
    /// `offset` and `line` are where `inner` starts in the file.
    pub fn new(inner: R, syntax: Syntax, offset: u64, line: u64) -> Self {
        RecordReader {
            inner,
            syntax,
            buf: vec![0; READ_BYTES],
            start: 0,
            end: 0,
            eof: false,
            offset,
            line,
        }
    }

    /// Skips a UTF-8 byte order mark at the current position.
    pub fn skip_bom(&mut self) -> io::Result<()> {
        while self.end - self.start < 3 && !self.eof {
            self.fill()?;
        }
        if self.buf[self.start..self.end].starts_with(&[0xEF, 0xBB, 0xBF]) {
            self.start += 3;
            self.offset += 3;
        }
        Ok(())
    }

    /// Byte offset in the file of the next record (after any blank lines it skipped so far).
    pub fn position(&self) -> (u64, u64) {
        (self.offset, self.line)
    }

    /// Reads more input after `end`, moving the pending bytes to the front (or growing the
    /// buffer when one record fills it).
    fn fill(&mut self) -> io::Result<usize> {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.buf.len() {
            if self.buf.len() >= MAX_RECORD_BYTES {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "a record longer than {} MiB (no line break?)",
                        MAX_RECORD_BYTES >> 20
                    ),
                ));
            }
            self.buf.resize(self.buf.len() * 2, 0);
        }
        let n = loop {
            match self.inner.read(&mut self.buf[self.end..]) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        };
        if n == 0 {
            self.eof = true;
        }
        self.end += n;
        Ok(n)
    }

    /// The next record, skipping blank lines; `None` at the end of the input.
    pub fn next_record(&mut self) -> io::Result<Option<RawRecord<'_>>> {
        let (rec_start, len, line, open_quote) = loop {
            let Some((mut len, consumed, newlines, open_quote)) = self.scan()? else {
                return Ok(None);
            };
            let rec_start = self.start;
            let line = self.line;
            self.start += consumed;
            self.offset += consumed as u64;
            self.line += newlines;
            if len > 0 && self.buf[rec_start + len - 1] == b'\r' {
                len -= 1;
            }
            if len > 0 || open_quote {
                break (rec_start, len, line, open_quote);
            }
        };
        Ok(Some(RawRecord {
            bytes: &self.buf[rec_start..rec_start + len],
            line,
            open_quote,
        }))
    }

    /// Finds the end of the record at `start`: (its length without the line break, bytes
    /// consumed, line breaks consumed, whether a quote was left open).
    fn scan(&mut self) -> io::Result<Option<(usize, usize, u64, bool)>> {
        let Syntax {
            delimiter,
            quote,
            escape,
            newlines_in_quotes,
        } = self.syntax;
        let mut pos = self.start;
        let mut in_quote = false;
        let mut newlines = 0u64;
        loop {
            let hay = &self.buf[pos..self.end];
            let hit = match (in_quote, quote) {
                (false, None) => memchr::memchr(b'\n', hay),
                (false, Some(q)) => memchr::memchr2(b'\n', q, hay),
                (true, Some(q)) => match (escape, newlines_in_quotes) {
                    (Some(e), true) if e != q => memchr::memchr2(q, e, hay),
                    (Some(e), false) if e != q => memchr::memchr3(q, e, b'\n', hay),
                    (_, true) => memchr::memchr(q, hay),
                    (_, false) => memchr::memchr2(q, b'\n', hay),
                },
                (true, None) => unreachable!("no quote, never in a quoted field"),
            };
            if in_quote {
                // Line breaks inside a quoted field are no hits; count them for line numbers.
                let upto = hit.unwrap_or(hay.len());
                newlines += memchr::memchr_iter(b'\n', &hay[..upto]).count() as u64;
            }
            let Some(i) = hit else {
                if self.eof {
                    if self.end == self.start {
                        return Ok(None);
                    }
                    let len = self.end - self.start;
                    // A quote left open to the end keeps the file's last line break out of it.
                    let kept = if in_quote && self.buf[self.end - 1] == b'\n' {
                        len - 1
                    } else {
                        len
                    };
                    return Ok(Some((kept, len, newlines, in_quote)));
                }
                let scanned = self.end - self.start;
                self.fill()?;
                pos = self.start + scanned;
                continue;
            };
            let at = pos + i;
            let b = self.buf[at];
            if b == b'\n' {
                if in_quote {
                    // Only reached with newlines_in_quotes = false: the line ends the record.
                    let len = at - self.start;
                    return Ok(Some((len, len + 1, newlines + 1, true)));
                }
                let len = at - self.start;
                return Ok(Some((len, len + 1, newlines + 1, false)));
            }
            if in_quote {
                if Some(b) == escape && Some(b) != quote {
                    pos = at + 2;
                    if pos > self.end {
                        // The escaped byte is not read yet.
                        pos = at;
                        if self.eof {
                            let len = self.end - self.start;
                            return Ok(Some((len, len, newlines, true)));
                        }
                        let rel = pos - self.start;
                        self.fill()?;
                        pos = self.start + rel;
                    }
                    continue;
                }
                // A quote: doubled (stays quoted) or closing. Look at the next byte.
                if at + 1 >= self.end && !self.eof {
                    let rel = at - self.start;
                    self.fill()?;
                    pos = self.start + rel;
                    continue;
                }
                if escape.is_none() && self.buf.get(at + 1) == Some(&b) && at + 1 < self.end {
                    pos = at + 2;
                } else {
                    in_quote = false;
                    pos = at + 1;
                }
                continue;
            }
            // A quote opens a quoted field only at the start of a field.
            if at == self.start || self.buf[at - 1] == delimiter {
                in_quote = true;
                pos = at + 1;
                continue;
            }
            pos = at + 1;
        }
    }
}

/// The fields of one record, unquoted and unescaped, in one buffer.
#[derive(Debug, Default)]
pub struct Fields {
    data: Vec<u8>,
    ends: Vec<usize>,
    quoted: Vec<bool>,
}

impl Fields {
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Field `i`'s bytes and whether it was quoted.
    pub fn get(&self, i: usize) -> (&[u8], bool) {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        (&self.data[start..self.ends[i]], self.quoted[i])
    }

    /// Splits `record` into fields; an error says what is malformed, in words.
    pub fn split(&mut self, record: &[u8], syntax: &Syntax) -> Result<(), String> {
        self.data.clear();
        self.ends.clear();
        self.quoted.clear();
        let d = syntax.delimiter;
        let mut i = 0;
        loop {
            let quoted = syntax.quote.is_some() && record.get(i).copied() == syntax.quote;
            if quoted {
                let q = syntax.quote.unwrap_or(b'"');
                i += 1;
                let opened = i;
                loop {
                    let Some(&b) = record.get(i) else {
                        return Err(format!(
                            "unbalanced quote: the quoted field opened at byte {} is never closed",
                            opened - 1
                        ));
                    };
                    if Some(b) == syntax.escape && b != q {
                        match record.get(i + 1) {
                            Some(&n) => self.data.push(n),
                            None => {
                                return Err("unbalanced quote: the record ends after an escape \
                                            character inside a quoted field"
                                    .into());
                            }
                        }
                        i += 2;
                    } else if b == q {
                        if syntax.escape.is_none() && record.get(i + 1) == Some(&q) {
                            self.data.push(q);
                            i += 2;
                        } else {
                            i += 1;
                            break;
                        }
                    } else {
                        self.data.push(b);
                        i += 1;
                    }
                }
                self.ends.push(self.data.len());
                self.quoted.push(true);
                match record.get(i) {
                    None => return Ok(()),
                    Some(&b) if b == d => i += 1,
                    Some(_) => {
                        return Err(format!(
                            "unbalanced quote: text follows the closing quote of field {} at byte {i}",
                            self.ends.len()
                        ));
                    }
                }
            } else {
                let rest = &record[i..];
                let n = memchr::memchr(d, rest).unwrap_or(rest.len());
                self.data.extend_from_slice(&rest[..n]);
                self.ends.push(self.data.len());
                self.quoted.push(false);
                if n == rest.len() {
                    return Ok(());
                }
                i += n + 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CSV: Syntax = Syntax {
        delimiter: b',',
        quote: Some(b'"'),
        escape: None,
        newlines_in_quotes: true,
    };

    fn records(text: &[u8], syntax: Syntax, buf: usize) -> Vec<(String, u64, u64, bool)> {
        // (record, the reader's position before it, line, open quote)
        let mut r = RecordReader::new(text, syntax, 0, 1);
        r.buf = vec![0; buf];
        let mut out = vec![];
        loop {
            let before = r.position().0;
            let Some(rec) = r.next_record().unwrap() else {
                break;
            };
            out.push((
                String::from_utf8_lossy(rec.bytes).into_owned(),
                before,
                rec.line,
                rec.open_quote,
            ));
        }
        out
    }

    #[test]
    fn records_split_on_unquoted_line_breaks() {
        let text = b"a,b\r\n1,\"x\ny\"\n\n2,\"say \"\"hi\"\"\"\n3,last";
        for buf in [1, 2, 3, 7, 1024] {
            let r = records(text, CSV, buf);
            assert_eq!(r.len(), 4, "buffer {buf}: {r:?}");
            assert_eq!(r[0], ("a,b".into(), 0, 1, false));
            assert_eq!(r[1], ("1,\"x\ny\"".into(), 5, 2, false));
            assert_eq!(r[2].2, 5, "blank line skipped, line numbers kept");
            assert_eq!(
                r[2].1, 13,
                "the blank line belongs to the next record's range"
            );
            assert_eq!(r[3], ("3,last".into(), 29, 6, false));
        }
    }

    #[test]
    fn open_quotes_are_reported() {
        let r = records(b"1,\"abc\n2,x", CSV, 4);
        assert_eq!(r.len(), 1);
        assert!(r[0].3);
        let no_nl = Syntax {
            newlines_in_quotes: false,
            ..CSV
        };
        let r = records(b"1,\"abc\n2,x\n", no_nl, 4);
        assert_eq!(r.len(), 2);
        assert!(r[0].3 && !r[1].3);
        assert_eq!(r[1].2, 2);
        // A quote inside an unquoted field is a literal.
        let r = records(b"5\" pipe,x\n2,y\n", CSV, 4);
        assert_eq!(r.len(), 2);
    }

    #[test]
    fn fields_unquote_and_report_malformed_records() {
        let mut f = Fields::default();
        f.split(b"1,\"a,\"\"b\"\"\",,\"\"", &CSV).unwrap();
        assert_eq!(f.len(), 4);
        assert_eq!(f.get(1), (&b"a,\"b\""[..], true));
        assert_eq!(f.get(2), (&b""[..], false));
        assert_eq!(f.get(3), (&b""[..], true));
        assert!(
            f.split(b"1,\"abc", &CSV)
                .unwrap_err()
                .contains("never closed")
        );
        assert!(f.split(b"1,\"ab\"c", &CSV).unwrap_err().contains("follows"));
        let esc = Syntax {
            escape: Some(b'\\'),
            ..CSV
        };
        f.split(b"\"a\\\"b\",c", &esc).unwrap();
        assert_eq!(f.get(0).0, b"a\"b");
        let r = records(b"\"a\\\"b\nc\",d\nx\n", esc, 3);
        assert_eq!(r.len(), 2);
    }
}

//! Splitting JSON files into raw records: one per line (JSON Lines, through the CSV record
//! reader with quoting off, so both agree on offsets and line numbers), or the elements of one
//! top-level array, found by a small scanner that tracks strings and bracket depth and holds at
//! most one element in memory.

use std::io::{self, Read};

use decant_core::files::JsonFormat;

use super::records::{RecordReader, Syntax};

/// Longest element accepted, so a broken file cannot grow the process.
const MAX_ELEMENT_BYTES: usize = 64 << 20;
const READ_BYTES: usize = 1 << 20;

/// JSON Lines as records: a JSON string cannot hold a raw line break, so every line is one.
pub const LINES: Syntax = Syntax {
    delimiter: 0,
    quote: None,
    escape: None,
    newlines_in_quotes: false,
};

/// One raw record and where it starts.
#[derive(Debug)]
pub struct RawJson<'a> {
    pub bytes: &'a [u8],
    /// 1-based line of the record's first byte.
    pub line: u64,
    /// The file ended inside this array element (an unclosed bracket or string).
    pub truncated: bool,
}

/// Where an array scan stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Before the opening `[`.
    Start,
    /// Inside the array; `first`: no element read yet.
    Elements { first: bool },
    /// After the closing `]` (or a truncated last element).
    Done,
}

/// Reads the elements of one top-level JSON array.
pub struct ArrayReader<R> {
    inner: R,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    eof: bool,
    line: u64,
    state: State,
}

fn invalid(line: u64, what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("line {line}: {what}"))
}

impl<R: Read> ArrayReader<R> {
    pub fn new(inner: R) -> Self {
        ArrayReader {
            inner,
            buf: vec![0; READ_BYTES],
            start: 0,
            end: 0,
            eof: false,
            line: 1,
            state: State::Start,
        }
    }

    /// Reads more after `end`, keeping `buf[start..end]` (moved to the front).
    fn fill(&mut self) -> io::Result<()> {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.buf.len() {
            if self.buf.len() >= MAX_ELEMENT_BYTES {
                return Err(invalid(
                    self.line,
                    &format!(
                        "an array element longer than {} MiB",
                        MAX_ELEMENT_BYTES >> 20
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
        self.eof = n == 0;
        self.end += n;
        Ok(())
    }

    /// Skips a UTF-8 byte order mark at the start of the file.
    fn skip_bom(&mut self) -> io::Result<()> {
        while self.end - self.start < 3 && !self.eof {
            self.fill()?;
        }
        if self.buf[self.start..self.end].starts_with(&[0xEF, 0xBB, 0xBF]) {
            self.start += 3;
        }
        Ok(())
    }

    /// The next byte that is not white space, not consumed; `None` at the end.
    fn peek_token(&mut self) -> io::Result<Option<u8>> {
        loop {
            while self.start < self.end {
                match self.buf[self.start] {
                    b'\n' => self.line += 1,
                    b' ' | b'\t' | b'\r' => {}
                    b => return Ok(Some(b)),
                }
                self.start += 1;
            }
            if self.eof {
                return Ok(None);
            }
            self.fill()?;
        }
    }

    /// The next element, or `None` after the closing `]`. A broken structure between elements
    /// (no `[`, a missing comma, text after `]`) is an error: the elements after it cannot be
    /// told apart.
    pub fn next_element(&mut self) -> io::Result<Option<RawJson<'_>>> {
        loop {
            match self.state {
                State::Done => return Ok(None),
                State::Start => match self.skip_bom().and_then(|()| self.peek_token())? {
                    None => {
                        self.state = State::Done;
                        return Ok(None);
                    }
                    Some(b'[') => {
                        self.start += 1;
                        self.state = State::Elements { first: true };
                    }
                    Some(_) => {
                        return Err(invalid(
                            self.line,
                            "a JSON array file starts with `[` (set format = \"lines\" for JSON Lines)",
                        ));
                    }
                },
                State::Elements { first } => {
                    let mut b = self.peek_token()?;
                    if !first && b == Some(b',') {
                        self.start += 1;
                        b = self.peek_token()?;
                    } else if !first && !matches!(b, Some(b']') | None) {
                        return Err(invalid(self.line, "expected `,` or `]` after an element"));
                    }
                    match b {
                        None => {
                            return Err(invalid(
                                self.line,
                                "the file ends before the array's closing `]`",
                            ));
                        }
                        Some(b']') => {
                            self.start += 1;
                            if self.peek_token()?.is_some() {
                                return Err(invalid(
                                    self.line,
                                    "text after the array's closing `]`",
                                ));
                            }
                            self.state = State::Done;
                            return Ok(None);
                        }
                        Some(_) => return self.element().map(Some),
                    }
                }
            }
        }
    }

    /// Scans the element at `start` (not white space) to its end.
    fn element(&mut self) -> io::Result<RawJson<'_>> {
        let line = self.line;
        let (mut depth, mut in_str, mut esc) = (0u32, false, false);
        let mut newlines = 0u64;
        let mut i = 0usize; // relative to `start`, so a refill keeps it valid
        let len = loop {
            if self.start + i == self.end {
                if self.eof {
                    self.state = State::Done;
                    let len = self.end - self.start;
                    self.start = self.end;
                    self.line += newlines;
                    return Ok(RawJson {
                        bytes: &self.buf[self.end - len..self.end],
                        line,
                        truncated: true,
                    });
                }
                self.fill()?;
                continue;
            }
            let b = self.buf[self.start + i];
            if b == b'\n' {
                newlines += 1;
            }
            if in_str {
                match (esc, b) {
                    (true, _) => esc = false,
                    (false, b'\\') => esc = true,
                    (false, b'"') => in_str = false,
                    _ => {}
                }
                i += 1;
                continue;
            }
            match b {
                b'"' => in_str = true,
                b'{' | b'[' => depth += 1,
                b'}' | b']' if depth == 0 => break i,
                b'}' | b']' => {
                    depth -= 1;
                    if depth == 0 {
                        break i + 1;
                    }
                }
                b',' | b' ' | b'\t' | b'\r' | b'\n' if depth == 0 => {
                    if b == b'\n' {
                        newlines -= 1; // counted again as white space after the element
                    }
                    break i;
                }
                _ => {}
            }
            i += 1;
        };
        self.state = State::Elements { first: false };
        let from = self.start;
        self.start += len;
        self.line += newlines;
        Ok(RawJson {
            bytes: &self.buf[from..from + len],
            line,
            truncated: false,
        })
    }
}

/// The format of a file: by extension, and for `.json` by its first byte (`[` is an array).
pub fn detect(option: JsonFormat, file: &str, head: &[u8]) -> JsonFormat {
    if option != JsonFormat::Auto {
        return option;
    }
    let name = file.to_ascii_lowercase();
    if name.contains(".jsonl") || name.contains(".ndjson") {
        return JsonFormat::Lines;
    }
    let head = head.strip_prefix(&[0xEF, 0xBB, 0xBF][..]).unwrap_or(head);
    match head.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'[') => JsonFormat::Array,
        _ => JsonFormat::Lines,
    }
}

/// Records of either format behind one interface.
pub enum JsonRecords<R> {
    Lines(RecordReader<R>),
    Array(ArrayReader<R>),
}

impl<R: Read> JsonRecords<R> {
    /// `offset`/`line`: where `inner` starts (lines only; an array is read from its start).
    pub fn new(inner: R, format: JsonFormat, offset: u64, line: u64) -> io::Result<Self> {
        Ok(match format {
            JsonFormat::Array => JsonRecords::Array(ArrayReader::new(inner)),
            _ => {
                let mut r = RecordReader::new(inner, LINES, offset, line);
                if offset == 0 {
                    r.skip_bom()?;
                }
                JsonRecords::Lines(r)
            }
        })
    }

    /// Byte offset and line of the next record; only lines can start a chunk there.
    pub fn position(&self) -> Option<(u64, u64)> {
        match self {
            JsonRecords::Lines(r) => Some(r.position()),
            JsonRecords::Array(_) => None,
        }
    }

    pub fn next_record(&mut self) -> io::Result<Option<RawJson<'_>>> {
        match self {
            JsonRecords::Lines(r) => Ok(r.next_record()?.map(|rec| RawJson {
                bytes: rec.bytes,
                line: rec.line,
                truncated: false,
            })),
            JsonRecords::Array(a) => a.next_element(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn elements(text: &str, buf: usize) -> io::Result<Vec<(String, u64, bool)>> {
        let mut r = ArrayReader::new(text.as_bytes());
        r.buf = vec![0; buf];
        let mut out = vec![];
        while let Some(e) = r.next_element()? {
            out.push((
                String::from_utf8_lossy(e.bytes).into_owned(),
                e.line,
                e.truncated,
            ));
        }
        Ok(out)
    }

    #[test]
    fn array_elements_split_on_top_level_commas() {
        let text = "\u{feff} [\n {\"a\": \"x,]}\\\"\"},\n  {\"b\": [1, {\"c\": 2}]}\n , 3 ,\n\"s\", {} ]\n";
        for buf in [1, 2, 5, 1024] {
            let e = elements(text, buf).unwrap();
            assert_eq!(
                e,
                [
                    ("{\"a\": \"x,]}\\\"\"}".to_string(), 2, false),
                    ("{\"b\": [1, {\"c\": 2}]}".to_string(), 3, false),
                    ("3".to_string(), 4, false),
                    ("\"s\"".to_string(), 5, false),
                    ("{}".to_string(), 5, false),
                ],
                "buffer {buf}"
            );
        }
        assert!(elements("[]", 4).unwrap().is_empty());
        assert!(elements("", 4).unwrap().is_empty());
    }

    #[test]
    fn broken_arrays_say_where() {
        let e = elements("[{\"a\": 1},\n{\"a\": [2}", 8).unwrap();
        assert_eq!(e[1], ("{\"a\": [2}".to_string(), 2, true));
        let err = |t: &str| elements(t, 8).unwrap_err().to_string();
        assert!(err("{\"a\": 1}").contains("starts with `[`"));
        assert!(err("[{\"a\": 1}\n {\"a\": 2}]").contains("line 2: expected `,`"));
        assert!(err("[{\"a\": 1},").contains("closing `]`"));
        assert!(err("[1] x").contains("text after"));
    }

    #[test]
    fn formats_are_detected_by_extension_and_first_byte() {
        use JsonFormat::*;
        assert_eq!(detect(Auto, "a.jsonl.gz", b"["), Lines);
        assert_eq!(detect(Auto, "a.ndjson", b""), Lines);
        assert_eq!(detect(Auto, "a.json", b"\xef\xbb\xbf \n[{"), Array);
        assert_eq!(detect(Auto, "a.json", b"{\"a\":1}\n"), Lines);
        assert_eq!(detect(Array, "a.jsonl", b"{"), Array);
    }

    #[test]
    fn lines_keep_offsets_and_line_numbers() {
        let text = b"{\"a\":1}\r\n\n{\"a\":2}\n";
        let mut r = JsonRecords::new(&text[..], JsonFormat::Lines, 0, 1).unwrap();
        assert_eq!(r.position(), Some((0, 1)));
        let first = r.next_record().unwrap().unwrap();
        assert_eq!((first.bytes, first.line), (&b"{\"a\":1}"[..], 1));
        let second = r.next_record().unwrap().unwrap();
        assert_eq!((second.bytes, second.line), (&b"{\"a\":2}"[..], 3));
        assert!(r.next_record().unwrap().is_none());
    }
}

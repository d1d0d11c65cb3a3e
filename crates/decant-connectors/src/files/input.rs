//! Opening file bytes (plain, gzip, zstd; a byte range of a plain file) and decoding text from
//! the file's encoding to UTF-8.

use std::borrow::Cow;
use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use crate::error::ConnectorError;

/// How a file is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    /// `auto` decides by the file's extension.
    pub fn resolve(option: &str, path: &Path) -> Result<Compression, ConnectorError> {
        Ok(match option.to_ascii_lowercase().as_str() {
            "auto" => match path.extension().and_then(|e| e.to_str()) {
                Some("gz" | "gzip") => Compression::Gzip,
                Some("zst" | "zstd") => Compression::Zstd,
                _ => Compression::None,
            },
            "none" => Compression::None,
            "gzip" | "gz" => Compression::Gzip,
            "zstd" | "zst" => Compression::Zstd,
            other => {
                return Err(ConnectorError::Config(format!(
                    "source.csv.compression = \"{other}\": use auto, none, gzip or zstd"
                )));
            }
        })
    }

    /// Only plain files can be read from a byte offset.
    pub fn seekable(self) -> bool {
        self == Compression::None
    }
}

/// Opens `path` for reading from `start` (plain files only) to `end` (exclusive).
pub fn open(
    path: &str,
    compression: Compression,
    start: u64,
    end: Option<u64>,
) -> io::Result<Box<dyn Read + Send>> {
    let mut file = File::open(path)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot open {path}: {e}")))?;
    Ok(match compression {
        Compression::None => {
            if start > 0 {
                file.seek(SeekFrom::Start(start))?;
            }
            match end {
                Some(end) => Box::new(file.take(end.saturating_sub(start))),
                None => Box::new(file),
            }
        }
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(BufReader::with_capacity(
            1 << 16,
            file,
        ))),
        Compression::Zstd => Box::new(zstd::Decoder::new(file)?),
    })
}

/// The text encoding of a file; values become UTF-8.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// UTF-8 (a leading byte order mark is skipped); invalid bytes make a record a reject.
    Utf8,
    /// ISO-8859-1: every byte is the code point of the same number.
    Latin1,
    Windows1252,
}

impl Encoding {
    pub fn parse(option: &str) -> Result<Encoding, ConnectorError> {
        Ok(
            match option.to_ascii_lowercase().replace('_', "-").as_str() {
                "utf-8" | "utf8" | "utf-8-bom" | "utf8-bom" => Encoding::Utf8,
                "latin-1" | "latin1" | "iso-8859-1" => Encoding::Latin1,
                "windows-1252" | "cp1252" => Encoding::Windows1252,
                other => {
                    return Err(ConnectorError::Config(format!(
                        "source.csv.encoding = \"{other}\": use utf-8, utf-8-bom, latin-1 or windows-1252"
                    )));
                }
            },
        )
    }

    /// The text of `bytes`; an error names the first invalid byte.
    pub fn decode(self, bytes: &[u8]) -> Result<Cow<'_, str>, String> {
        if bytes.is_ascii() {
            // ASCII is the same in all three: no copy.
            return Ok(Cow::Borrowed(
                std::str::from_utf8(bytes).expect("ASCII is UTF-8"),
            ));
        }
        match self {
            Encoding::Utf8 => std::str::from_utf8(bytes).map(Cow::Borrowed).map_err(|e| {
                let at = e.valid_up_to();
                format!(
                    "invalid UTF-8 at byte {at} of the field (0x{:02x}); set source.csv.encoding if the file is latin-1 or windows-1252",
                    bytes[at]
                )
            }),
            Encoding::Latin1 => Ok(Cow::Owned(bytes.iter().map(|&b| b as char).collect())),
            Encoding::Windows1252 => Ok(encoding_rs::WINDOWS_1252
                .decode_without_bom_handling(bytes)
                .0),
        }
    }

    /// The text of a whole raw record for the quarantine: never fails.
    pub fn lossy(self, bytes: &[u8]) -> String {
        match self.decode(bytes) {
            Ok(s) => s.into_owned(),
            Err(_) => String::from_utf8_lossy(bytes).into_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodings_decode_to_utf8() {
        assert_eq!(Encoding::Latin1.decode(b"caf\xe9").unwrap(), "café");
        assert_eq!(Encoding::Windows1252.decode(b"\x80 5").unwrap(), "€ 5");
        assert_eq!(Encoding::Latin1.decode(b"\x80").unwrap(), "\u{80}");
        assert!(
            Encoding::Utf8
                .decode(b"caf\xe9")
                .unwrap_err()
                .contains("byte 3")
        );
        assert_eq!(Encoding::Utf8.decode("café".as_bytes()).unwrap(), "café");
        assert!(Encoding::parse("ebcdic").is_err());
    }
}

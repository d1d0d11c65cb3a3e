//! Masking: keyed HMAC, redaction, partial masks and format-preserving fakes. A mask runs on the
//! column's final value, before anything (target, quarantine, logs) can see it.

use std::fmt;
use std::sync::Arc;

use arrow_array::builder::StringBuilder;
use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef};
use arrow_schema::DataType;
use decant_core::transform::Mask;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::error::TransformError;

/// A key read from the environment, kept as a keyed HMAC state that each value clones (the key
/// schedule runs once); `Debug` never prints it.
#[derive(Clone)]
pub struct MaskKey(Hmac<Sha256>);

impl fmt::Debug for MaskKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl MaskKey {
    fn from_env(var: &str, column: &str) -> Result<MaskKey, TransformError> {
        match std::env::var(var) {
            Ok(k) if !k.is_empty() => Ok(MaskKey::new(k.as_bytes())),
            _ => Err(TransformError::Plan {
                column: column.to_string(),
                message: format!(
                    "the mask key variable {var} is not set (or empty); export it before the run"
                ),
            }),
        }
    }

    fn new(key: &[u8]) -> MaskKey {
        MaskKey(<Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key"))
    }

    fn mac(&self, value: &[u8]) -> [u8; 32] {
        let mut m = self.0.clone();
        m.update(value);
        m.finalize().into_bytes().into()
    }
}

/// A mask ready to run, with its key resolved.
#[derive(Debug, Clone)]
pub enum CompiledMask {
    Hmac { key: MaskKey, length: usize },
    Redact(String),
    Partial(usize),
    Fake(Option<MaskKey>),
}

impl CompiledMask {
    pub fn compile(mask: &Mask, column: &str) -> Result<CompiledMask, TransformError> {
        Ok(match mask {
            Mask::Hmac { key_env, length } => CompiledMask::Hmac {
                key: MaskKey::from_env(key_env, column)?,
                length: length.unwrap_or(64).clamp(1, 64),
            },
            Mask::Redact { text } => {
                CompiledMask::Redact(text.clone().unwrap_or_else(|| "[redacted]".into()))
            }
            Mask::Partial { keep } => CompiledMask::Partial(keep.unwrap_or(4)),
            Mask::Fake { key_env } => CompiledMask::Fake(
                key_env
                    .as_deref()
                    .map(|v| MaskKey::from_env(v, column))
                    .transpose()?,
            ),
        })
    }

    /// The method's name, for counts and the summary.
    pub fn name(&self) -> &'static str {
        match self {
            CompiledMask::Hmac { .. } => "hmac",
            CompiledMask::Redact(_) => "redact",
            CompiledMask::Partial(_) => "partial",
            CompiledMask::Fake(_) => "fake",
        }
    }

    /// Masks one value.
    pub fn mask_value(&self, v: &str, out: &mut String) {
        match self {
            CompiledMask::Hmac { key, length } => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                for b in key.mac(v.as_bytes()) {
                    out.push(HEX[(b >> 4) as usize] as char);
                    out.push(HEX[(b & 15) as usize] as char);
                }
                out.truncate(*length);
            }
            CompiledMask::Redact(text) => out.push_str(text),
            CompiledMask::Partial(keep) => {
                let n = v.chars().count();
                // A value no longer than what would be kept is masked whole.
                let keep = if n > *keep { *keep } else { 0 };
                out.extend(std::iter::repeat_n('*', n - keep));
                out.extend(v.chars().skip(n - keep));
            }
            CompiledMask::Fake(key) => {
                let seed = match key {
                    Some(k) => k.mac(v.as_bytes()),
                    None => {
                        let h = xxhash_rust::xxh3::xxh3_128(v.as_bytes()).to_le_bytes();
                        let mut s = [0u8; 32];
                        s[..16].copy_from_slice(&h);
                        s[16..].copy_from_slice(&h);
                        s
                    }
                };
                // A stream of pseudo-random bytes from the seed, one per character.
                let mut state = u64::from_le_bytes(seed[..8].try_into().expect("8 bytes"));
                let mut next = || {
                    state = state
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    (state >> 33) as u32
                };
                for c in v.chars() {
                    out.push(match c {
                        'a'..='z' => (b'a' + (next() % 26) as u8) as char,
                        'A'..='Z' => (b'A' + (next() % 26) as u8) as char,
                        '0'..='9' => (b'0' + (next() % 10) as u8) as char,
                        c if c.is_alphabetic() => (b'a' + (next() % 26) as u8) as char,
                        c => c,
                    });
                }
            }
        }
    }

    /// Masks a column: any type is masked as its text form; NULL stays NULL.
    pub fn apply(&self, col: &ArrayRef) -> Result<ArrayRef, TransformError> {
        let text = if *col.data_type() == DataType::Utf8 {
            col.clone()
        } else {
            arrow_cast::cast(col, &DataType::Utf8)
                .map_err(|e| TransformError::Eval(format!("mask {}: {e}", self.name())))?
        };
        let text = text.as_string::<i32>();
        let mut b = StringBuilder::with_capacity(text.len(), text.len() * 16);
        let mut s = String::new();
        for v in text.iter() {
            match v {
                Some(v) => {
                    s.clear();
                    self.mask_value(v, &mut s);
                    b.append_value(&s);
                }
                None => b.append_null(),
            }
        }
        Ok(Arc::new(b.finish()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(mask: &CompiledMask, v: &str) -> String {
        let mut s = String::new();
        mask.mask_value(v, &mut s);
        s
    }

    #[test]
    fn masks_are_deterministic_and_hide_the_value() {
        let key = MaskKey::new(b"k1");
        let h = CompiledMask::Hmac {
            key: key.clone(),
            length: 64,
        };
        assert_eq!(m(&h, "alice@example.com"), m(&h, "alice@example.com"));
        assert_ne!(m(&h, "alice@example.com"), m(&h, "bob@example.com"));
        assert_eq!(m(&h, "x").len(), 64);
        let other = CompiledMask::Hmac {
            key: MaskKey::new(b"k2"),
            length: 64,
        };
        assert_ne!(m(&h, "x"), m(&other, "x"), "another key, another mask");
        assert_eq!(
            m(&CompiledMask::Partial(4), "4111222233334444"),
            "************4444"
        );
        assert_eq!(m(&CompiledMask::Partial(4), "123"), "***");
        let f = CompiledMask::Fake(Some(key));
        let fake = m(&f, "Alice.Smith-42@example.com");
        assert_eq!(fake, m(&f, "Alice.Smith-42@example.com"));
        assert_ne!(fake, "Alice.Smith-42@example.com");
        assert_eq!(fake.len(), "Alice.Smith-42@example.com".len());
        assert_eq!(fake.find('@'), Some(14));
        assert!(fake.chars().next().unwrap().is_ascii_uppercase());
        assert!(fake.chars().nth(12).unwrap().is_ascii_digit());
        assert_eq!(format!("{:?}", MaskKey::new(b"secret")), "***");
    }
}

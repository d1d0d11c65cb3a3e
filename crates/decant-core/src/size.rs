//! Human-readable byte sizes (`"64MiB"`, `"256MB"`) for plans and flags.

use crate::error::CoreError;

/// Parses `"256MB"`, `"64MiB"`, `"1GB"` or a plain byte count.
pub fn parse_size(text: &str) -> Result<u64, CoreError> {
    let t = text.trim();
    let split = t
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let value: f64 = num.parse().map_err(|_| CoreError::Size(text.into()))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1_000,
        "kib" => 1 << 10,
        "m" | "mb" => 1_000_000,
        "mib" => 1 << 20,
        "g" | "gb" => 1_000_000_000,
        "gib" => 1 << 30,
        _ => return Err(CoreError::Size(text.into())),
    };
    Ok((value * mult as f64) as u64)
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_units() {
        assert_eq!(super::parse_size("256MB").unwrap(), 256_000_000);
        assert_eq!(super::parse_size("64MiB").unwrap(), 64 << 20);
        assert_eq!(super::parse_size("1024").unwrap(), 1024);
        assert!(super::parse_size("12 parsecs").is_err());
    }
}

//! Data hazards — values a target cannot hold as they are — and the policies that resolve them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A kind of value the target cannot hold as it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HazardKind {
    /// MySQL `0000-00-00` dates and date-times.
    ZeroDate,
    /// MySQL partial-zero dates (`2020-00-15`, `2020-01-00`).
    InvalidDate,
    /// Text holding a 0x00 byte, which PostgreSQL text cannot hold.
    NulByte,
    /// Text longer than the target column's length.
    TooLong,
    /// Numbers, dates or timestamps outside the target type's range (`infinity` included).
    OutOfRange,
    /// NaN or ±Infinity into a target type without them.
    NotANumber,
    /// Bytes that are not valid in the target's character set.
    InvalidEncoding,
    /// A value larger than the target's limit or the configured `policies.max_lob`.
    LobTooLarge,
}

impl HazardKind {
    pub const ALL: [HazardKind; 8] = [
        HazardKind::ZeroDate,
        HazardKind::InvalidDate,
        HazardKind::NulByte,
        HazardKind::TooLong,
        HazardKind::OutOfRange,
        HazardKind::NotANumber,
        HazardKind::InvalidEncoding,
        HazardKind::LobTooLarge,
    ];

    pub fn name(self) -> &'static str {
        match self {
            HazardKind::ZeroDate => "zero_date",
            HazardKind::InvalidDate => "invalid_date",
            HazardKind::NulByte => "nul_byte",
            HazardKind::TooLong => "too_long",
            HazardKind::OutOfRange => "out_of_range",
            HazardKind::NotANumber => "not_a_number",
            HazardKind::InvalidEncoding => "invalid_encoding",
            HazardKind::LobTooLarge => "lob_too_large",
        }
    }

    /// The policies that make sense for this kind (`fail` always does).
    pub fn allows(self, policy: ValuePolicy) -> bool {
        match policy {
            ValuePolicy::Fail | ValuePolicy::Null => true,
            ValuePolicy::Reject => false,
            ValuePolicy::Coerce => matches!(
                self,
                HazardKind::NulByte
                    | HazardKind::TooLong
                    | HazardKind::OutOfRange
                    | HazardKind::InvalidEncoding
            ),
        }
    }
}

impl std::fmt::Display for HazardKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What to do with a value that has a hazard.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum ValuePolicy {
    /// Stop before the target is touched (planning), or fail the chunk naming table, column and
    /// key range (load). The default: nothing is changed silently.
    #[default]
    Fail,
    /// Load NULL instead (the target column is made nullable).
    Null,
    /// Change the value so it fits: `nul_byte` strips the 0x00 bytes, `too_long` truncates to the
    /// target length (in characters), `out_of_range` clamps to the nearest value the type holds,
    /// `invalid_encoding` replaces each invalid byte sequence with U+FFFD.
    Coerce,
    /// Send the row to the quarantine (needs the transformation issue's quarantine; refused until then).
    Reject,
}

/// One policy per hazard kind; unset kinds fall back to the next level (column → type → global).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PolicySet {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zero_date: Option<ValuePolicy>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub invalid_date: Option<ValuePolicy>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nul_byte: Option<ValuePolicy>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub too_long: Option<ValuePolicy>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub out_of_range: Option<ValuePolicy>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_a_number: Option<ValuePolicy>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub invalid_encoding: Option<ValuePolicy>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lob_too_large: Option<ValuePolicy>,
}

impl PolicySet {
    pub fn get(&self, kind: HazardKind) -> Option<ValuePolicy> {
        match kind {
            HazardKind::ZeroDate => self.zero_date,
            HazardKind::InvalidDate => self.invalid_date,
            HazardKind::NulByte => self.nul_byte,
            HazardKind::TooLong => self.too_long,
            HazardKind::OutOfRange => self.out_of_range,
            HazardKind::NotANumber => self.not_a_number,
            HazardKind::InvalidEncoding => self.invalid_encoding,
            HazardKind::LobTooLarge => self.lob_too_large,
        }
    }

    pub fn set(&mut self, kind: HazardKind, policy: ValuePolicy) {
        let slot = match kind {
            HazardKind::ZeroDate => &mut self.zero_date,
            HazardKind::InvalidDate => &mut self.invalid_date,
            HazardKind::NulByte => &mut self.nul_byte,
            HazardKind::TooLong => &mut self.too_long,
            HazardKind::OutOfRange => &mut self.out_of_range,
            HazardKind::NotANumber => &mut self.not_a_number,
            HazardKind::InvalidEncoding => &mut self.invalid_encoding,
            HazardKind::LobTooLarge => &mut self.lob_too_large,
        };
        *slot = Some(policy);
    }
}

/// How much of the source the planning phase scans for hazards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScanMode {
    /// One aggregate scan per table, pushed down to the source (the default).
    #[default]
    Full,
    /// Schema hazards only; data hazards met during the load follow their policy.
    Schema,
    /// No scan.
    Off,
}

/// Values a reader changed by policy (a MySQL zero date loaded as NULL), counted per column and
/// kind, so that the run's summary reports them like the changes made during conversion.
#[derive(Debug, Clone, Default)]
pub struct ChangeLog(std::sync::Arc<std::sync::Mutex<ChangeCounts>>);

/// Changed values per (column, kind, policy).
pub type ChangeCounts = BTreeMap<(String, HazardKind, ValuePolicy), u64>;

impl ChangeLog {
    pub fn add(&self, column: &str, kind: HazardKind, policy: ValuePolicy) {
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        *m.entry((column.to_string(), kind, policy)).or_default() += 1;
    }

    pub fn snapshot(&self) -> ChangeCounts {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// Change logs carry no configuration: any two compare equal, so plans still compare by value.
impl PartialEq for ChangeLog {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

/// The `[policies]` section: global policies, per-type policies, the scan and the LOB limit.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Policies {
    /// Global policies, one key per hazard kind (`zero_date = "null"`).
    #[serde(flatten)]
    pub global: PolicySet,
    /// Policies for columns of one source type, keyed by the type's base name (`"datetime"`).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub by_type: BTreeMap<String, PolicySet>,
    /// The planning phase's scan of the source: "full", "schema" or "off".
    pub scan: ScanMode,
    /// Values larger than this are `lob_too_large` (e.g. "64MB"); default: the target's limit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_lob: Option<String>,
    /// Per-column policies resolved by the planner (column name → set), for the readers.
    #[serde(skip)]
    pub resolved: BTreeMap<String, PolicySet>,
    /// Where readers count the values they changed by policy (set per chunk by the runner).
    #[serde(skip)]
    pub changes: ChangeLog,
    /// Columns whose text the target cannot hold with a NUL byte (PostgreSQL) and whose
    /// `nul_byte` policy is `fail` (set by the planner). A reader with a quarantine (files, APIs)
    /// rejects such a record, naming its place, instead of letting the target fail the chunk.
    #[serde(skip)]
    pub reject_nul: std::collections::BTreeSet<String>,
}

impl Policies {
    /// The policy of `kind` for a column: the column's own, then its type's, then the global one.
    pub fn resolve(
        &self,
        kind: HazardKind,
        column: Option<&PolicySet>,
        native_base: &str,
    ) -> ValuePolicy {
        column
            .and_then(|c| c.get(kind))
            .or_else(|| {
                self.by_type
                    .get(&native_base.to_ascii_lowercase())
                    .and_then(|t| t.get(kind))
            })
            .or_else(|| self.global.get(kind))
            .unwrap_or_default()
    }

    /// The resolved policy of `kind` for a column being read (set by the planner; `fail` if unset).
    pub fn for_column(&self, column: &str, kind: HazardKind) -> ValuePolicy {
        self.resolved
            .get(column)
            .and_then(|p| p.get(kind))
            .or_else(|| self.global.get(kind))
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_beats_type_beats_global() {
        let mut p = Policies::default();
        p.global.set(HazardKind::NulByte, ValuePolicy::Null);
        let mut t = PolicySet::default();
        t.set(HazardKind::NulByte, ValuePolicy::Coerce);
        p.by_type.insert("varchar".into(), t);
        let mut c = PolicySet::default();
        c.set(HazardKind::NulByte, ValuePolicy::Fail);
        assert_eq!(
            p.resolve(HazardKind::NulByte, Some(&c), "varchar"),
            ValuePolicy::Fail
        );
        assert_eq!(
            p.resolve(HazardKind::NulByte, None, "VARCHAR"),
            ValuePolicy::Coerce
        );
        assert_eq!(
            p.resolve(HazardKind::NulByte, None, "text"),
            ValuePolicy::Null
        );
        assert_eq!(
            p.resolve(HazardKind::TooLong, None, "text"),
            ValuePolicy::Fail
        );
    }

    #[test]
    fn policies_parse_from_toml() {
        let p: Policies = toml::from_str(
            "zero_date = \"null\"\nscan = \"schema\"\nmax_lob = \"64MB\"\n[by_type.datetime]\ninvalid_date = \"null\"\n",
        )
        .unwrap();
        assert_eq!(p.global.zero_date, Some(ValuePolicy::Null));
        assert_eq!(p.scan, ScanMode::Schema);
        assert_eq!(p.by_type["datetime"].invalid_date, Some(ValuePolicy::Null));
        assert!(toml::from_str::<Policies>("zero_dates = \"null\"").is_err());
    }
}

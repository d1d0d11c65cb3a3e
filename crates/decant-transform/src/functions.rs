//! Cleansing functions DataFusion lacks, registered as scalar UDFs so plans can call them in any
//! expression: `null_if`, `normalize_space`, `nfc`, `parse_date`, `parse_timestamp`,
//! `parse_number`.

use std::sync::Arc;

use arrow_array::builder::{Date32Builder, StringBuilder, TimestampMicrosecondBuilder};
use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef, StringArray};
use arrow_schema::{DataType, TimeUnit};
use datafusion::common::{Result, ScalarValue, exec_err, plan_err};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use unicode_normalization::UnicodeNormalization;

/// Which cleansing function a [`Cleanse`] UDF computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    /// `null_if(x, 'N/A', '-', ...)`: NULL when x equals one of the sentinels (as text).
    NullIf,
    /// `normalize_space(x)`: trims and turns every run of white space into one space.
    NormalizeSpace,
    /// `nfc(x)`: Unicode normalization form C.
    Nfc,
    /// `parse_date(x, '%d.%m.%Y')`: a date by an explicit chrono format; NULL if it does not parse.
    ParseDate,
    /// `parse_timestamp(x, '%d/%m/%Y %H:%M')`: a naive timestamp by an explicit format.
    ParseTimestamp,
    /// `parse_number(x, ',', '.')`: number text with the given decimal and grouping
    /// separators, as canonical decimal text (`1.234,50` → `1234.50`), exact; cast it to the
    /// type you need. NULL if it is not a number.
    ParseNumber,
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct Cleanse {
    kind: Kind,
    name: &'static str,
    signature: Signature,
}

/// Every cleansing UDF, for registration in a session.
pub fn cleansing_udfs() -> Vec<ScalarUDF> {
    let utf8 = |n| Signature::uniform(n, vec![DataType::Utf8], Volatility::Immutable);
    [
        (
            Kind::NullIf,
            "null_if",
            Signature::variadic(vec![DataType::Utf8], Volatility::Immutable),
        ),
        (Kind::NormalizeSpace, "normalize_space", utf8(1)),
        (Kind::Nfc, "nfc", utf8(1)),
        (Kind::ParseDate, "parse_date", utf8(2)),
        (Kind::ParseTimestamp, "parse_timestamp", utf8(2)),
        (Kind::ParseNumber, "parse_number", utf8(3)),
    ]
    .into_iter()
    .map(|(kind, name, signature)| {
        ScalarUDF::new_from_impl(Cleanse {
            kind,
            name,
            signature,
        })
    })
    .collect()
}

/// A constant text argument (a format, a separator, a sentinel).
fn literal(arg: &ColumnarValue, func: &str) -> Result<Option<String>> {
    match arg {
        ColumnarValue::Scalar(
            ScalarValue::Utf8(v) | ScalarValue::LargeUtf8(v) | ScalarValue::Utf8View(v),
        ) => Ok(v.clone()),
        _ => exec_err!("{func}: this argument must be a constant text"),
    }
}

fn map_text(input: &StringArray, mut f: impl FnMut(&str, &mut String) -> bool) -> ArrayRef {
    let mut b = StringBuilder::with_capacity(input.len(), input.value_data().len());
    let mut s = String::new();
    for v in input.iter() {
        match v {
            Some(v) => {
                s.clear();
                if f(v, &mut s) {
                    b.append_value(&s);
                } else {
                    b.append_null();
                }
            }
            None => b.append_null(),
        }
    }
    Arc::new(b.finish())
}

/// Canonical decimal text of `text` written with `decimal` and `group` separators.
pub fn parse_number_text(text: &str, decimal: &str, group: &str, out: &mut String) -> bool {
    let t = text.trim();
    let t = if group.is_empty() {
        t.to_string()
    } else {
        t.replace(group, "")
    };
    let t = if decimal.is_empty() || decimal == "." {
        t
    } else {
        t.replace(decimal, ".")
    };
    let (sign, digits) = match t.strip_prefix('-') {
        Some(d) => ("-", d),
        None => ("", t.strip_prefix('+').unwrap_or(&t)),
    };
    let mut parts = digits.splitn(2, '.');
    let int = parts.next().unwrap_or("");
    let frac = parts.next();
    let ok_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if (int.is_empty() && frac.is_none_or(str::is_empty))
        || !ok_digits(int)
        || !frac.is_none_or(ok_digits)
    {
        return false;
    }
    out.push_str(sign);
    out.push_str(if int.is_empty() { "0" } else { int });
    if let Some(f) = frac.filter(|f| !f.is_empty()) {
        out.push('.');
        out.push_str(f);
    }
    true
}

impl ScalarUDFImpl for Cleanse {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        if self.kind == Kind::NullIf && args.len() < 2 {
            return plan_err!("null_if needs a value and at least one sentinel: null_if(x, 'N/A')");
        }
        Ok(match self.kind {
            Kind::ParseDate => DataType::Date32,
            Kind::ParseTimestamp => DataType::Timestamp(TimeUnit::Microsecond, None),
            _ => DataType::Utf8,
        })
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let input = args.args[0].clone().into_array(rows)?;
        let input = arrow_cast::cast(&input, &DataType::Utf8)?;
        let input = input.as_string::<i32>();
        let out: ArrayRef = match self.kind {
            Kind::NullIf => {
                let mut sentinels = Vec::new();
                for a in &args.args[1..] {
                    sentinels.extend(literal(a, self.name)?);
                }
                map_text(input, |v, s| {
                    if sentinels.iter().any(|x| x == v) {
                        false
                    } else {
                        s.push_str(v);
                        true
                    }
                })
            }
            Kind::NormalizeSpace => map_text(input, |v, s| {
                for (i, w) in v.split_whitespace().enumerate() {
                    if i > 0 {
                        s.push(' ');
                    }
                    s.push_str(w);
                }
                true
            }),
            Kind::Nfc => map_text(input, |v, s| {
                s.extend(v.nfc());
                true
            }),
            Kind::ParseNumber => {
                let decimal = literal(&args.args[1], self.name)?.unwrap_or_default();
                let group = literal(&args.args[2], self.name)?.unwrap_or_default();
                map_text(input, |v, s| parse_number_text(v, &decimal, &group, s))
            }
            Kind::ParseDate => {
                let format = literal(&args.args[1], self.name)?.unwrap_or_default();
                let mut b = Date32Builder::with_capacity(rows);
                let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid date");
                for v in input.iter() {
                    b.append_option(
                        v.and_then(|v| chrono::NaiveDate::parse_from_str(v.trim(), &format).ok())
                            .map(|d| (d - epoch).num_days() as i32),
                    );
                }
                Arc::new(b.finish())
            }
            Kind::ParseTimestamp => {
                let format = literal(&args.args[1], self.name)?.unwrap_or_default();
                let mut b = TimestampMicrosecondBuilder::with_capacity(rows);
                for v in input.iter() {
                    b.append_option(
                        v.and_then(|v| {
                            chrono::NaiveDateTime::parse_from_str(v.trim(), &format).ok()
                        })
                        .map(|t| t.and_utc().timestamp_micros()),
                    );
                }
                Arc::new(b.finish())
            }
        };
        Ok(ColumnarValue::Array(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_parse_exactly_with_locale_separators() {
        let p = |t: &str, d: &str, g: &str| {
            let mut s = String::new();
            parse_number_text(t, d, g, &mut s).then_some(s)
        };
        assert_eq!(p("1.234,50", ",", ".").as_deref(), Some("1234.50"));
        assert_eq!(p("-1,234.5", ".", ",").as_deref(), Some("-1234.5"));
        assert_eq!(
            p("12345678901234567890.123456789", ".", "").as_deref(),
            Some("12345678901234567890.123456789")
        );
        assert_eq!(p(",5", ",", ".").as_deref(), Some("0.5"));
        assert_eq!(p("abc", ".", ","), None);
        assert_eq!(p("", ".", ","), None);
        assert_eq!(p("1.2.3", ".", ""), None);
    }
}

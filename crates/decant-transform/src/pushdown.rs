//! The part of a table's filter that its source database can evaluate exactly as the engine
//! would, written in the source's SQL so that the rows it leaves out are never read.
//!
//! The filter is split into its conjuncts (`a AND b AND c`). A conjunct is pushed only when every
//! column it reads is a plain copy of a source column whose values reach the engine unchanged
//! (the engine tells which: no hazard policy rewrites them) and every comparison in it means the
//! same in the database as on the Arrow batch:
//! - integers and decimals compare as numbers in both;
//! - text compares bytewise on Arrow, so the source compares bytes too: `COLLATE "C"` on
//!   PostgreSQL, the UTF-8 bytes against a hex literal on MariaDB (no case-insensitive or
//!   PAD SPACE collation can apply), `COLLATE BINARY` on SQLite;
//! - PostgreSQL booleans; dates and timestamps without time zone on PostgreSQL and MariaDB.
//!
//! SQLite stores any value in any column, so a pushed SQLite conjunct also keeps every row whose
//! value has another storage class: the engine sees it and decides (convert, quarantine, fail).
//!
//! The engine still evaluates the whole filter on the rows it reads, so a pushed conjunct can
//! only save work: the rows it keeps pass through the same filter as before.

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;

use chrono::{DateTime, NaiveDate};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use datafusion::logical_expr::utils::split_conjunction;
use datafusion::logical_expr::{Between, BinaryExpr, Expr, Operator};
use decant_core::{Dialect, quote_ident};
use serde::{Deserialize, Serialize};

use crate::table::TableTransform;

/// How the source can compare a column, when it can compare it exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushKind {
    Int,
    Decimal,
    Text,
    Bool,
    Date,
    /// Without time zone, to the microsecond.
    Timestamp,
}

/// A table's filter split between the source and the engine.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Pushdown {
    /// The pushed conjuncts in the source's SQL, ANDed; `None` when nothing could be pushed.
    pub sql: Option<String>,
    /// Each pushed conjunct, as DataFusion reads it.
    pub pushed: Vec<String>,
    /// The conjuncts only the engine evaluates.
    pub engine: Vec<String>,
}

impl TableTransform {
    /// The part of the filter `dialect` can evaluate, given how each source column compares
    /// there (`kinds`, by source column name; a column not in it is never pushed).
    pub fn pushdown(&self, dialect: Dialect, kinds: &HashMap<String, PushKind>) -> Pushdown {
        let mut out = Pushdown::default();
        let Some(filter) = self.filter_expr() else {
            return out;
        };
        if !matches!(
            dialect,
            Dialect::Postgres | Dialect::Mysql | Dialect::Sqlite
        ) {
            out.engine = split_conjunction(filter)
                .iter()
                .map(|e| e.human_display().to_string())
                .collect();
            return out;
        }
        let mut sql = Vec::new();
        for conjunct in split_conjunction(filter) {
            let mut w = Writer {
                dialect,
                transform: self,
                kinds,
                guards: BTreeSet::new(),
            };
            match w.condition(conjunct) {
                Some(s) => {
                    let s = if w.guards.is_empty() {
                        s
                    } else {
                        // SQLite: a value of another storage class is the engine's to judge.
                        let mut g = format!("(({s})");
                        for (col, class) in &w.guards {
                            let _ = write!(g, " OR typeof({col}) NOT IN ('{class}', 'null')");
                        }
                        g.push(')');
                        g
                    };
                    sql.push(s);
                    out.pushed.push(conjunct.human_display().to_string());
                }
                None => out.engine.push(conjunct.human_display().to_string()),
            }
        }
        if !sql.is_empty() {
            out.sql = Some(sql.join(" AND "));
        }
        out
    }
}

struct Writer<'a> {
    dialect: Dialect,
    transform: &'a TableTransform,
    kinds: &'a HashMap<String, PushKind>,
    /// SQLite columns a pushed condition compares, with the storage class it expects.
    guards: BTreeSet<(String, &'static str)>,
}

fn sql_op(op: Operator) -> Option<&'static str> {
    Some(match op {
        Operator::Eq => "=",
        Operator::NotEq => "<>",
        Operator::Lt => "<",
        Operator::LtEq => "<=",
        Operator::Gt => ">",
        Operator::GtEq => ">=",
        _ => return None,
    })
}

fn flipped(op: Operator) -> Operator {
    match op {
        Operator::Lt => Operator::Gt,
        Operator::LtEq => Operator::GtEq,
        Operator::Gt => Operator::Lt,
        Operator::GtEq => Operator::LtEq,
        other => other,
    }
}

fn is_integer(dt: &DataType) -> bool {
    dt.is_integer()
}

impl Writer<'_> {
    /// A boolean condition in the source's SQL, or `None` when any part of it cannot go there.
    fn condition(&mut self, e: &Expr) -> Option<String> {
        match e {
            Expr::BinaryExpr(BinaryExpr { left, op, right }) => match op {
                Operator::And | Operator::Or => {
                    let (l, r) = (self.condition(left)?, self.condition(right)?);
                    let word = if *op == Operator::And { "AND" } else { "OR" };
                    Some(format!("({l} {word} {r})"))
                }
                _ => {
                    let (col, op, lit) = match (self.column(left), self.column(right)) {
                        (Some(c), None) => (c, *op, right.as_ref()),
                        (None, Some(c)) => (c, flipped(*op), left.as_ref()),
                        _ => return None,
                    };
                    let sym = sql_op(op)?;
                    let value = self.literal(col.1, lit)?;
                    Some(format!("{} {sym} {value}", self.operand(&col)))
                }
            },
            Expr::Not(inner) => Some(format!("NOT ({})", self.condition(inner)?)),
            Expr::IsNull(inner) | Expr::IsNotNull(inner) => {
                let col = self.column(inner)?;
                let what = if matches!(e, Expr::IsNull(_)) {
                    "IS NULL"
                } else {
                    "IS NOT NULL"
                };
                Some(format!("{} {what}", col.0))
            }
            Expr::InList(list) => {
                let col = self.column(&list.expr)?;
                if list.list.is_empty() {
                    return None;
                }
                let values: Option<Vec<String>> =
                    list.list.iter().map(|l| self.literal(col.1, l)).collect();
                let not = if list.negated { "NOT " } else { "" };
                Some(format!(
                    "{} {not}IN ({})",
                    self.operand(&col),
                    values?.join(", ")
                ))
            }
            Expr::Between(Between {
                expr,
                negated,
                low,
                high,
            }) => {
                let col = self.column(expr)?;
                let (lo, hi) = (self.literal(col.1, low)?, self.literal(col.1, high)?);
                let not = if *negated { "NOT " } else { "" };
                Some(format!("{} {not}BETWEEN {lo} AND {hi}", self.operand(&col)))
            }
            // A boolean column on its own, and its IS TRUE / IS FALSE forms (PostgreSQL only).
            Expr::Column(_) => {
                let col = self.column(e)?;
                (col.1 == PushKind::Bool).then(|| col.0.clone())
            }
            Expr::IsTrue(inner)
            | Expr::IsFalse(inner)
            | Expr::IsNotTrue(inner)
            | Expr::IsNotFalse(inner) => {
                let col = self.column(inner)?;
                if col.1 != PushKind::Bool {
                    return None;
                }
                let what = match e {
                    Expr::IsTrue(_) => "IS TRUE",
                    Expr::IsFalse(_) => "IS FALSE",
                    Expr::IsNotTrue(_) => "IS NOT TRUE",
                    _ => "IS NOT FALSE",
                };
                Some(format!("{} {what}", col.0))
            }
            _ => None,
        }
    }

    /// A copied source column (possibly widened by a lossless cast the planner added to
    /// compare it), quoted, with its kind.
    fn column(&mut self, e: &Expr) -> Option<(String, PushKind)> {
        let (inner, cast_to) = match e {
            Expr::Cast(c) => (c.expr.as_ref(), Some(c.field.data_type())),
            other => (other, None),
        };
        let Expr::Column(c) = inner else {
            return None;
        };
        if c.relation.is_some() {
            return None;
        }
        let source = self.transform.copied_source(&c.name)?;
        let kind = *self.kinds.get(source)?;
        let widening = match (kind, cast_to) {
            (_, None) => true,
            (PushKind::Int, Some(dt)) => is_integer(dt) || matches!(dt, DataType::Decimal128(..)),
            (PushKind::Decimal, Some(dt)) => matches!(dt, DataType::Decimal128(..)),
            (PushKind::Timestamp, Some(DataType::Timestamp(_, None))) => true,
            _ => false,
        };
        if !widening {
            return None;
        }
        let quoted = quote_ident(self.dialect, source);
        if self.dialect == Dialect::Sqlite {
            let class = match kind {
                PushKind::Int => "integer",
                PushKind::Text => "text",
                _ => return None, // the engine gives SQLite no other kinds
            };
            self.guards.insert((quoted.clone(), class));
        }
        Some((quoted, kind))
    }

    /// The column as the comparison reads it: text compared as bytes.
    fn operand(&self, col: &(String, PushKind)) -> String {
        if col.1 != PushKind::Text {
            return col.0.clone();
        }
        match self.dialect {
            Dialect::Postgres => format!("({} COLLATE \"C\")", col.0),
            Dialect::Mysql => format!("CAST(CONVERT({} USING utf8mb4) AS BINARY)", col.0),
            _ => format!("({} COLLATE BINARY)", col.0),
        }
    }

    /// A literal of `kind` in the source's SQL; `None` for NULL, a type that does not match
    /// the column, or a value the source cannot spell exactly.
    fn literal(&self, kind: PushKind, e: &Expr) -> Option<String> {
        let Expr::Literal(v, _) = e else {
            return None;
        };
        match (kind, v) {
            (PushKind::Int | PushKind::Decimal, v) => integer_or_decimal(v),
            (
                PushKind::Text,
                ScalarValue::Utf8(Some(s))
                | ScalarValue::LargeUtf8(Some(s))
                | ScalarValue::Utf8View(Some(s)),
            ) => self.text(s),
            (PushKind::Bool, ScalarValue::Boolean(Some(b))) => {
                Some(if *b { "TRUE" } else { "FALSE" }.into())
            }
            (PushKind::Date, ScalarValue::Date32(Some(days))) => {
                let d = NaiveDate::from_num_days_from_ce_opt(719_163 + *days)?;
                four_digit_year(d).then(|| format!("DATE '{}'", d.format("%Y-%m-%d")))
            }
            (PushKind::Timestamp, ts) => {
                let micros = match ts {
                    ScalarValue::TimestampSecond(Some(v), None) => v.checked_mul(1_000_000)?,
                    ScalarValue::TimestampMillisecond(Some(v), None) => v.checked_mul(1_000)?,
                    ScalarValue::TimestampMicrosecond(Some(v), None) => *v,
                    ScalarValue::TimestampNanosecond(Some(v), None) if v % 1_000 == 0 => v / 1_000,
                    _ => return None,
                };
                let t = DateTime::from_timestamp_micros(micros)?.naive_utc();
                four_digit_year(t.date())
                    .then(|| format!("TIMESTAMP '{}'", t.format("%Y-%m-%d %H:%M:%S%.6f")))
            }
            _ => None,
        }
    }

    fn text(&self, s: &str) -> Option<String> {
        match self.dialect {
            Dialect::Mysql => {
                let mut hex = String::with_capacity(s.len() * 2 + 3);
                hex.push_str("X'");
                for b in s.as_bytes() {
                    let _ = write!(hex, "{b:02X}");
                }
                hex.push('\'');
                Some(hex)
            }
            _ if s.contains('\0') => None,
            Dialect::Postgres => {
                // An escape string reads the same whatever standard_conforming_strings says.
                let mut q = String::with_capacity(s.len() + 3);
                q.push_str("E'");
                for c in s.chars() {
                    if c == '\\' || c == '\'' {
                        q.push('\\');
                    }
                    q.push(c);
                }
                q.push('\'');
                Some(q)
            }
            _ => Some(format!("'{}'", s.replace('\'', "''"))),
        }
    }
}

fn four_digit_year(d: NaiveDate) -> bool {
    use chrono::Datelike;
    (1..=9999).contains(&d.year())
}

fn integer_or_decimal(v: &ScalarValue) -> Option<String> {
    Some(match v {
        ScalarValue::Int8(Some(i)) => i.to_string(),
        ScalarValue::Int16(Some(i)) => i.to_string(),
        ScalarValue::Int32(Some(i)) => i.to_string(),
        ScalarValue::Int64(Some(i)) => i.to_string(),
        ScalarValue::UInt8(Some(i)) => i.to_string(),
        ScalarValue::UInt16(Some(i)) => i.to_string(),
        ScalarValue::UInt32(Some(i)) => i.to_string(),
        ScalarValue::UInt64(Some(i)) => i.to_string(),
        ScalarValue::Decimal128(Some(v), _, scale) => decimal_text(*v, *scale)?,
        _ => return None,
    })
}

/// `v × 10^-scale` in plain decimal notation (no exponent, which MariaDB would read as a double).
fn decimal_text(v: i128, scale: i8) -> Option<String> {
    let digits = v.unsigned_abs().to_string();
    let sign = if v < 0 { "-" } else { "" };
    if scale <= 0 {
        return Some(format!("{sign}{digits}{}", "0".repeat((-scale) as usize)));
    }
    let scale = scale as usize;
    let padded = format!("{digits:0>width$}", width = scale + 1);
    let (int, frac) = padded.split_at(padded.len() - scale);
    Some(format!("{sign}{int}.{frac}"))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_schema::{Field, Schema, TimeUnit};

    use super::*;
    use crate::{OutputSpec, TransformSpec};

    fn transform(filter: &str) -> TableTransform {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("status", DataType::Utf8, false),
            Field::new("amount", DataType::Decimal128(12, 2), false),
            Field::new("flag", DataType::Boolean, false),
            Field::new(
                "at",
                DataType::Timestamp(TimeUnit::Microsecond, None),
                false,
            ),
            Field::new("score", DataType::Float64, true),
        ]));
        let mut outputs: Vec<OutputSpec> = schema
            .fields()
            .iter()
            .map(|f| OutputSpec {
                name: f.name().clone(),
                target_name: f.name().clone(),
                source: Some(f.name().clone()),
                expr: None,
                value: None,
                mask: None,
            })
            .collect();
        outputs.push(OutputSpec {
            name: "big".into(),
            target_name: "big".into(),
            source: None,
            expr: Some("amount * 2".into()),
            value: None,
            mask: None,
        });
        let spec = TransformSpec {
            outputs,
            filter: Some(filter.into()),
            ..Default::default()
        };
        TableTransform::compile(&spec, schema).unwrap()
    }

    fn kinds() -> HashMap<String, PushKind> {
        [
            ("id", PushKind::Int),
            ("status", PushKind::Text),
            ("amount", PushKind::Decimal),
            ("flag", PushKind::Bool),
            ("at", PushKind::Timestamp),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    #[test]
    fn exact_conjuncts_go_to_the_source_and_the_rest_stays() {
        let t = transform(
            "status = 'paid' AND amount >= 100 AND score > 0.5 AND big < 10 AND id % 2 = 0",
        );
        let p = t.pushdown(Dialect::Postgres, &kinds());
        assert_eq!(
            p.sql.as_deref(),
            Some("(\"status\" COLLATE \"C\") = E'paid' AND \"amount\" >= 100.00")
        );
        assert_eq!(p.pushed.len(), 2);
        assert_eq!(p.engine.len(), 3, "{:?}", p.engine);
        let m = t.pushdown(Dialect::Mysql, &kinds());
        assert_eq!(
            m.sql.as_deref(),
            Some(
                "CAST(CONVERT(`status` USING utf8mb4) AS BINARY) = X'70616964' AND `amount` >= 100.00"
            )
        );
    }

    #[test]
    fn a_column_the_engine_does_not_vouch_for_is_not_pushed() {
        let t = transform("status = 'paid' AND id > 3");
        let mut k = kinds();
        k.remove("status");
        let p = t.pushdown(Dialect::Postgres, &k);
        assert_eq!(p.sql.as_deref(), Some("\"id\" > 3"));
        assert_eq!(p.engine.len(), 1);
        let none = t.pushdown(Dialect::File, &kinds());
        assert_eq!(none.sql, None);
        assert_eq!(none.engine.len(), 2);
    }

    #[test]
    fn hostile_literals_stay_literals() {
        let t = transform("status = 'x'' OR 1=1 --\\' OR status IN ('a', 'b')");
        let pg = t.pushdown(Dialect::Postgres, &kinds()).sql.unwrap();
        assert!(pg.contains("E'x\\' OR 1=1 --\\\\'"), "{pg}");
        let my = t.pushdown(Dialect::Mysql, &kinds()).sql.unwrap();
        assert!(!my.contains("OR 1=1"), "{my}");
        let lite = t.pushdown(Dialect::Sqlite, &kinds()).sql.unwrap();
        assert!(lite.contains("'x'' OR 1=1 --\\'"), "{lite}");
        assert!(
            lite.contains("typeof(\"status\") NOT IN ('text', 'null')"),
            "{lite}"
        );
    }

    #[test]
    fn booleans_dates_and_negations() {
        let t = transform("flag AND at >= '2024-01-02 03:04:05' AND NOT (id BETWEEN 5 AND 9)");
        let p = t.pushdown(Dialect::Postgres, &kinds());
        let sql = p.sql.unwrap();
        assert!(sql.contains("\"flag\""), "{sql}");
        assert!(
            sql.contains("TIMESTAMP '2024-01-02 03:04:05.000000'"),
            "{sql}"
        );
        assert!(sql.contains("5") && sql.contains("9"), "{sql}");
        assert!(p.engine.is_empty(), "{:?}", p.engine);
    }

    #[test]
    fn decimals_are_spelled_without_exponent() {
        assert_eq!(decimal_text(12345, 2).unwrap(), "123.45");
        assert_eq!(decimal_text(-5, 3).unwrap(), "-0.005");
        assert_eq!(decimal_text(7, 0).unwrap(), "7");
        assert_eq!(decimal_text(7, -2).unwrap(), "700");
    }
}

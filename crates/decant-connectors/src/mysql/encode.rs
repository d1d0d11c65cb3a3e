//! Encoding Arrow batches for the MySQL target: `LOAD DATA` text (tab-separated, backslash
//! escapes, `\N` for NULL; binary values byte for byte), streamed by an encoder task into the
//! infile handler, and bound parameters for the INSERT path.

use arrow_array::cast::AsArray;
use arrow_array::types::*;
use std::io;
use std::sync::Arc;

use arrow_array::{Array, RecordBatch};
use arrow_schema::{DataType, TimeUnit};
use bytes::Bytes;
use mysql_async::Value;
use tokio::sync::{mpsc, oneshot};

use super::ident;
use super::types::NativeType;
use crate::batch::{write_text, write_timestamp};
use crate::error::ConnectorError;
use crate::traits::{ChunkReceiver, TargetColumn};

/// A server-side conversion of the value sent for a column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conversion {
    /// WKT text → spatial value; invalid WKT fails instead of loading NULL.
    Geometry,
    /// A string of `0`/`1` → `bit(n)`.
    BitString,
    /// A number as text → `bit(n)`.
    Unsigned,
}

impl Conversion {
    pub fn for_column(col: &TargetColumn) -> Option<Conversion> {
        let native = NativeType::parse(&col.native_type);
        if native.is_geometry() {
            Some(Conversion::Geometry)
        } else if native.is_bit() {
            Some(match col.logical {
                decant_core::LogicalType::Bit { .. } => Conversion::BitString,
                _ => Conversion::Unsigned,
            })
        } else {
            None
        }
    }

    /// How many times [`Conversion::expr`] uses its value (an INSERT binds it that often).
    pub fn uses(self) -> usize {
        match self {
            Conversion::Geometry => 2,
            Conversion::BitString | Conversion::Unsigned => 1,
        }
    }

    /// The SQL expression computing the column from `value` (a `@var` or `?`).
    pub fn expr(self, value: &str) -> String {
        match self {
            // A string assigned to a spatial column is an error: so is invalid WKT then.
            Conversion::Geometry => format!(
                "IF({value} IS NULL, NULL, COALESCE(ST_GeomFromText({value}), 'invalid WKT'))"
            ),
            Conversion::BitString => format!("CAST(CONV({value}, 2, 10) AS UNSIGNED)"),
            Conversion::Unsigned => format!("CAST({value} AS UNSIGNED)"),
        }
    }
}

/// True when the column stores bytes, so values are sent raw rather than as text.
pub fn is_binary_native(native: &str) -> bool {
    matches!(
        NativeType::parse(native).base.as_str(),
        "binary" | "varbinary" | "tinyblob" | "blob" | "mediumblob" | "longblob" | "long varbinary"
    )
}

/// The `LOAD DATA` statement for `columns` of `table` (already quoted).
pub fn load_statement(table: &str, columns: &[TargetColumn]) -> String {
    let mut fields = Vec::with_capacity(columns.len());
    let mut sets = Vec::new();
    for (i, c) in columns.iter().enumerate() {
        match Conversion::for_column(c) {
            Some(conv) => {
                let var = format!("@v{i}");
                sets.push(format!("{} = {}", ident(&c.name), conv.expr(&var)));
                fields.push(var);
            }
            None => fields.push(ident(&c.name)),
        }
    }
    let mut sql = format!(
        "LOAD DATA LOCAL INFILE 'decant.tsv' INTO TABLE {table} CHARACTER SET utf8mb4 \
         FIELDS TERMINATED BY '\\t' ESCAPED BY '\\\\' LINES TERMINATED BY '\\n' ({})",
        fields.join(", ")
    );
    if !sets.is_empty() {
        sql.push_str(" SET ");
        sql.push_str(&sets.join(", "));
    }
    sql
}

/// `INSERT INTO table (cols) VALUES (?, ...), ...` for `rows` rows.
pub fn insert_statement(table: &str, columns: &[TargetColumn], rows: usize) -> String {
    let names: Vec<String> = columns.iter().map(|c| ident(&c.name)).collect();
    let one: Vec<String> = columns
        .iter()
        .map(|c| Conversion::for_column(c).map_or_else(|| "?".to_string(), |conv| conv.expr("?")))
        .collect();
    let one = format!("({})", one.join(", "));
    let mut sql = format!("INSERT INTO {table} ({}) VALUES ", names.join(", "));
    for r in 0..rows {
        if r > 0 {
            sql.push(',');
        }
        sql.push_str(&one);
    }
    sql
}

/// Appends `v` with `LOAD DATA`'s escapes for the characters that would end a field or line.
fn escape_into(out: &mut Vec<u8>, v: &[u8]) {
    let mut start = 0;
    for (i, &b) in v.iter().enumerate() {
        let esc = match b {
            b'\\' => b'\\',
            b'\t' => b't',
            b'\n' => b'n',
            b'\r' => b'r',
            0 => b'0',
            _ => continue,
        };
        out.extend_from_slice(&v[start..i]);
        out.push(b'\\');
        out.push(esc);
        start = i + 1;
    }
    out.extend_from_slice(&v[start..]);
}

/// Writes the text of a non-binary, non-string value; false for NULL.
fn text_value(array: &dyn Array, row: usize, out: &mut String) -> bool {
    match array.data_type() {
        // Without an offset: MariaDB reads no `+00:00`, and the session zone is UTC.
        DataType::Timestamp(TimeUnit::Microsecond, _) if !array.is_null(row) => {
            let us = array.as_primitive::<TimestampMicrosecondType>().value(row);
            write_timestamp(out, us);
            true
        }
        _ => write_text(array, row, out),
    }
}

/// Encodes every row of `batch` as `LOAD DATA` text into `out`. `raw[i]` says whether column
/// `i` stores bytes.
pub fn encode_load(batch: &RecordBatch, raw: &[bool], out: &mut Vec<u8>) {
    let mut scratch = String::new();
    let columns = batch.columns();
    for row in 0..batch.num_rows() {
        for (i, array) in columns.iter().enumerate() {
            if i > 0 {
                out.push(b'\t');
            }
            if array.is_null(row) {
                out.extend_from_slice(b"\\N");
                continue;
            }
            match array.data_type() {
                DataType::Utf8 => escape_into(out, array.as_string::<i32>().value(row).as_bytes()),
                DataType::LargeUtf8 => {
                    escape_into(out, array.as_string::<i64>().value(row).as_bytes())
                }
                DataType::Binary => escape_into(out, array.as_binary::<i32>().value(row)),
                DataType::LargeBinary => escape_into(out, array.as_binary::<i64>().value(row)),
                DataType::FixedSizeBinary(_) if raw[i] => {
                    escape_into(out, array.as_fixed_size_binary().value(row))
                }
                _ => {
                    scratch.clear();
                    text_value(array.as_ref(), row, &mut scratch);
                    escape_into(out, scratch.as_bytes());
                }
            }
        }
        out.push(b'\n');
    }
}

/// How many parameters each column binds in [`insert_statement`].
pub fn insert_uses(columns: &[TargetColumn]) -> Vec<usize> {
    columns
        .iter()
        .map(|c| Conversion::for_column(c).map_or(1, Conversion::uses))
        .collect()
}

/// Appends row `row` of `batch` as bound parameters, column `i` `uses[i]` times.
pub fn push_params(
    batch: &RecordBatch,
    raw: &[bool],
    uses: &[usize],
    row: usize,
    params: &mut Vec<Value>,
) {
    for (i, array) in batch.columns().iter().enumerate() {
        let v = param(array.as_ref(), raw[i], row);
        for _ in 1..uses[i] {
            params.push(v.clone());
        }
        params.push(v);
    }
}

fn param(array: &dyn Array, raw: bool, row: usize) -> Value {
    if array.is_null(row) {
        return Value::NULL;
    }
    match array.data_type() {
        DataType::Boolean => Value::Int(array.as_boolean().value(row) as i64),
        DataType::Int8 => Value::Int(array.as_primitive::<Int8Type>().value(row) as i64),
        DataType::Int16 => Value::Int(array.as_primitive::<Int16Type>().value(row) as i64),
        DataType::Int32 => Value::Int(array.as_primitive::<Int32Type>().value(row) as i64),
        DataType::Int64 => Value::Int(array.as_primitive::<Int64Type>().value(row)),
        DataType::UInt8 => Value::UInt(array.as_primitive::<UInt8Type>().value(row) as u64),
        DataType::UInt16 => Value::UInt(array.as_primitive::<UInt16Type>().value(row) as u64),
        DataType::UInt32 => Value::UInt(array.as_primitive::<UInt32Type>().value(row) as u64),
        DataType::UInt64 => Value::UInt(array.as_primitive::<UInt64Type>().value(row)),
        DataType::Float32 => Value::Float(array.as_primitive::<Float32Type>().value(row)),
        DataType::Float64 => Value::Double(array.as_primitive::<Float64Type>().value(row)),
        DataType::Binary => Value::Bytes(array.as_binary::<i32>().value(row).to_vec()),
        DataType::LargeBinary => Value::Bytes(array.as_binary::<i64>().value(row).to_vec()),
        DataType::FixedSizeBinary(_) if raw => {
            Value::Bytes(array.as_fixed_size_binary().value(row).to_vec())
        }
        _ => {
            let mut s = String::new();
            text_value(array, row, &mut s);
            Value::Bytes(s.into_bytes())
        }
    }
}

pub fn check_width(batch: &RecordBatch, ncols: usize) -> Result<(), ConnectorError> {
    if batch.num_columns() != ncols {
        return Err(ConnectorError::Internal(format!(
            "a batch of {} columns for a table of {ncols}",
            batch.num_columns()
        )));
    }
    Ok(())
}

/// How the encoder ended.
pub enum Encoded {
    Rows(u64),
    /// The batch stream failed (or the sender stopped without finishing): nothing may commit.
    Failed(ConnectorError),
    /// The load ended first; its own error says why.
    Stopped,
}

/// Encodes batches from `rx` as LOAD DATA text on a blocking thread and feeds them to the
/// infile stream, one batch ahead at most.
pub async fn encode_stream(
    mut rx: ChunkReceiver,
    raw: Arc<[bool]>,
    ncols: usize,
    data_tx: mpsc::Sender<io::Result<Bytes>>,
    mut stop: oneshot::Receiver<()>,
) -> Encoded {
    let mut rows = 0u64;
    loop {
        let next = tokio::select! {
            next = rx.recv() => next,
            _ = &mut stop => return Encoded::Stopped,
        };
        let batch = match next.and_then(|b| match &b {
            Some(batch) => check_width(batch, ncols).map(|_| b),
            None => Ok(b),
        }) {
            Ok(Some(batch)) => batch,
            Ok(None) => return Encoded::Rows(rows),
            Err(e) => {
                // Aborts the LOAD; the caller rolls the transaction back.
                let _ = data_tx.send(Err(io::Error::other(e.to_string()))).await;
                return Encoded::Failed(e);
            }
        };
        rows += batch.num_rows() as u64;
        let raw = raw.clone();
        let encoded = tokio::task::spawn_blocking(move || {
            let mut out =
                Vec::with_capacity(batch.get_array_memory_size() + batch.num_rows() * ncols);
            encode_load(&batch, &raw, &mut out);
            Bytes::from(out)
        })
        .await;
        let bytes = match encoded {
            Ok(b) => b,
            Err(e) => {
                let _ = data_tx.send(Err(io::Error::other(e.to_string()))).await;
                return Encoded::Failed(e.into());
            }
        };
        tokio::select! {
            sent = data_tx.send(Ok(bytes)) => if sent.is_err() { return Encoded::Stopped },
            _ = &mut stop => return Encoded::Stopped,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use arrow_array::{BinaryArray, StringArray};
    use arrow_schema::{Field, Schema};

    #[test]
    fn escapes_every_special_byte() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("s", DataType::Utf8, true),
            Field::new("b", DataType::Binary, true),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(vec![Some("a\tb\\N"), None])),
                Arc::new(BinaryArray::from(vec![
                    Some(&[0u8, 9, 10, 0x5c, 13, 0xff][..]),
                    Some(&b""[..]),
                ])),
            ],
        )
        .unwrap();
        let mut out = Vec::new();
        encode_load(&batch, &[false, true], &mut out);
        assert_eq!(out, b"a\\tb\\\\N\t\\0\\t\\n\\\\\\r\xff\n\\N\t\n".to_vec());
    }
}

//! A piece of a batch as one Arrow IPC stream (schema and one record batch), and its
//! operations as a short text of op codes (`uuud`), carried beside it.

use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_ipc::reader::StreamReader;
use arrow_ipc::writer::StreamWriter;

use highwater_pipeline::batch::Op;
use highwater_pipeline::schema::TableSchema;

/// The rows as Arrow IPC stream bytes.
pub fn encode(rows: &RecordBatch) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let mut writer = StreamWriter::try_new(&mut out, &rows.schema()).map_err(|e| e.to_string())?;
    writer.write(rows).map_err(|e| e.to_string())?;
    writer.finish().map_err(|e| e.to_string())?;
    drop(writer);
    Ok(out)
}

/// Rows written by [`encode`], checked against the table's schema.
pub fn decode(table: &Arc<TableSchema>, bytes: &[u8]) -> Result<RecordBatch, String> {
    let reader =
        StreamReader::try_new(bytes, None).map_err(|e| format!("{}: not an Arrow IPC stream: {e}", table.id))?;
    let mut batches = Vec::new();
    for b in reader {
        batches.push(b.map_err(|e| format!("{}: a damaged Arrow IPC stream: {e}", table.id))?);
    }
    let [rows] = <[RecordBatch; 1]>::try_from(batches)
        .map_err(|b| format!("{}: {} record batches in one message, not 1", table.id, b.len()))?;
    if rows.schema().fields() != table.arrow.fields() {
        return Err(format!("{}: the message's columns differ from the table schema it carries", table.id));
    }
    Ok(rows)
}

/// `uuud`.
pub fn ops_text(ops: &[Op]) -> String {
    ops.iter().map(|o| o.code()).collect()
}

pub fn parse_ops(text: &str, rows: usize) -> Result<Vec<Op>, String> {
    let ops: Vec<Op> = text
        .chars()
        .map(|c| match c {
            'u' => Ok(Op::Upsert),
            'd' => Ok(Op::Delete),
            other => Err(format!("unknown operation {other:?}")),
        })
        .collect::<Result<_, _>>()?;
    if ops.len() != rows {
        return Err(format!("{} operations for {rows} rows", ops.len()));
    }
    Ok(ops)
}

#[cfg(test)]
mod tests {
    use arrow_array::{ArrayRef, Int64Array};
    use arrow_schema::DataType;

    use super::*;
    use highwater_pipeline::schema::{ColumnSchema, TableId};

    #[test]
    fn rows_and_ops_round_trip() {
        let column = ColumnSchema {
            name: "id".into(),
            source_type: "bigint(20)".into(),
            charset: None,
            collation: None,
            source_nullable: false,
            data_type: DataType::Int64,
            nullable: false,
            default: None,
            default_computed: false,
        };
        let table =
            Arc::new(TableSchema::new(TableId { database: "d".into(), table: "t".into() }, vec![column], vec![0], 0));
        let ids: ArrayRef = Arc::new(Int64Array::from(vec![1, 2, 3]));
        let rows = RecordBatch::try_new(table.arrow.clone(), vec![ids]).expect("batch");
        let bytes = encode(&rows).expect("encodes");
        assert_eq!(decode(&table, &bytes).expect("decodes"), rows);
        assert!(decode(&table, &bytes[..bytes.len() / 2]).is_err(), "a cut stream is an error");
        let ops = [Op::Upsert, Op::Delete, Op::Upsert];
        assert_eq!(parse_ops(&ops_text(&ops), 3).expect("parses"), ops);
        assert!(parse_ops("ux", 2).is_err() && parse_ops("u", 2).is_err());
    }
}

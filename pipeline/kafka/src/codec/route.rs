//! Partitions by primary key: FNV-1a over a canonical byte form of the key columns, stable
//! across runs and versions, so a row's versions always land on the same partition.

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Decimal128Type, Decimal256Type, DurationMicrosecondType, Int8Type, Int16Type, Int32Type, Int64Type,
    TimestampMicrosecondType, UInt8Type, UInt16Type, UInt32Type, UInt64Type,
};
use arrow_array::{Array, RecordBatch, UInt32Array};
use arrow_schema::DataType;

use highwater_pipeline::batch::ChangeBatch;

/// The partition of each row of `rows`, whose key columns are `key`.
pub fn partitions(rows: &RecordBatch, key: &[usize], partitions: u32) -> Vec<u32> {
    let mut hashes = vec![FNV_OFFSET; rows.num_rows()];
    for &k in key {
        let column = rows.column(k);
        for (row, h) in hashes.iter_mut().enumerate() {
            *h = fnv(*h, &[0xff]); // column separator
            *h = if column.is_null(row) { fnv(*h, &[0]) } else { hash_value(*h, column.as_ref(), row) };
        }
    }
    hashes.into_iter().map(|h| (h % u64::from(partitions.max(1))) as u32).collect()
}

/// Splits a batch into one piece per partition that has rows, in partition order; each piece
/// keeps the rows' read order, the batch's `after` and `upto`, and says its partition.
pub fn split(batch: &ChangeBatch, partition_count: u32) -> Vec<(u32, ChangeBatch)> {
    let of_row = partitions(&batch.rows, &batch.table.key, partition_count);
    let mut out = Vec::new();
    for p in 0..partition_count.max(1) {
        let rows: Vec<u32> = (0..of_row.len() as u32).filter(|&r| of_row[r as usize] == p).collect();
        if rows.is_empty() {
            continue;
        }
        let indices = UInt32Array::from(rows.clone());
        let columns = batch
            .rows
            .columns()
            .iter()
            .map(|c| arrow_select::take::take(c.as_ref(), &indices, None))
            .collect::<Result<Vec<_>, _>>();
        let Ok(columns) = columns else { continue };
        let Ok(rows_batch) = RecordBatch::try_new(batch.rows.schema(), columns) else { continue };
        let piece = ChangeBatch {
            table: batch.table.clone(),
            rows: rows_batch,
            ops: rows.iter().map(|&r| batch.ops[r as usize]).collect(),
            after: batch.after.clone(),
            upto: batch.upto.clone(),
            stats: batch.stats,
            piece: Some((p as i32, 0)),
        };
        out.push((p, piece));
    }
    out
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

fn fnv(mut h: u64, bytes: &[u8]) -> u64 {
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(FNV_PRIME);
    }
    h
}

/// Folds the canonical bytes of one non-null key value into `h`, without allocating.
fn hash_value(h: u64, a: &dyn Array, i: usize) -> u64 {
    match a.data_type() {
        DataType::Int8 => fnv(h, &i64::from(a.as_primitive::<Int8Type>().value(i)).to_le_bytes()),
        DataType::Int16 => fnv(h, &i64::from(a.as_primitive::<Int16Type>().value(i)).to_le_bytes()),
        DataType::Int32 => fnv(h, &i64::from(a.as_primitive::<Int32Type>().value(i)).to_le_bytes()),
        DataType::Int64 => fnv(h, &a.as_primitive::<Int64Type>().value(i).to_le_bytes()),
        DataType::UInt8 => fnv(h, &u64::from(a.as_primitive::<UInt8Type>().value(i)).to_le_bytes()),
        DataType::UInt16 => fnv(h, &u64::from(a.as_primitive::<UInt16Type>().value(i)).to_le_bytes()),
        DataType::UInt32 => fnv(h, &u64::from(a.as_primitive::<UInt32Type>().value(i)).to_le_bytes()),
        DataType::UInt64 => fnv(h, &a.as_primitive::<UInt64Type>().value(i).to_le_bytes()),
        DataType::Decimal128(_, _) => fnv(h, &a.as_primitive::<Decimal128Type>().value(i).to_le_bytes()),
        DataType::Decimal256(_, _) => fnv(h, &a.as_primitive::<Decimal256Type>().value(i).to_le_bytes()),
        DataType::Date32 => fnv(h, &i64::from(a.as_primitive::<Date32Type>().value(i)).to_le_bytes()),
        DataType::Timestamp(_, _) => fnv(h, &a.as_primitive::<TimestampMicrosecondType>().value(i).to_le_bytes()),
        DataType::Duration(_) => fnv(h, &a.as_primitive::<DurationMicrosecondType>().value(i).to_le_bytes()),
        DataType::Utf8 => fnv(h, a.as_string::<i32>().value(i).as_bytes()),
        DataType::Binary => fnv(h, a.as_binary::<i32>().value(i)),
        DataType::FixedSizeBinary(_) => fnv(h, a.as_fixed_size_binary().value(i)),
        // Floats and booleans cannot be keys (the source refuses them); hash their display.
        _ => fnv(h, format!("{:?}", a.slice(i, 1)).as_bytes()),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{ArrayRef, Int64Array, StringArray};

    use super::*;

    fn batch(ids: &[i64]) -> RecordBatch {
        let id: ArrayRef = Arc::new(Int64Array::from(ids.to_vec()));
        let name: ArrayRef = Arc::new(StringArray::from(ids.iter().map(|i| format!("n{i}")).collect::<Vec<_>>()));
        RecordBatch::try_from_iter([("id", id), ("name", name)]).expect("batch")
    }

    #[test]
    fn a_key_always_lands_on_the_same_partition() {
        let a = partitions(&batch(&[1, 2, 3, 4711]), &[0], 3);
        let b = partitions(&batch(&[4711, 3, 2, 1]), &[0], 3);
        assert_eq!(a, b.into_iter().rev().collect::<Vec<_>>(), "by key, not by position");
        // Pinned: a change here would move every row of every topic to another partition.
        assert_eq!(a, [0, 1, 1, 1]);
    }

    #[test]
    fn keys_spread_over_the_partitions() {
        let ids: Vec<i64> = (0..3000).collect();
        let parts = partitions(&batch(&ids), &[0], 3);
        for p in 0..3 {
            let n = parts.iter().filter(|&&x| x == p).count();
            assert!((800..1200).contains(&n), "partition {p}: {n} of 3000");
        }
    }
}

//! The Parquet sink.
//!
//! Layout: `path/<table>/date=YYYY-MM-DD/part-<after>-<upto>.parquet`, the date being that of
//! the rows' cursor values (`date=__HIVE_DEFAULT_PARTITION__` for NULL cursors; tables read by
//! their key alone have no date level) and
//! `<after>`/`<upto>` the batch's positions. A batch whose rows span several dates becomes
//! one file per date, under the same part name. Each file carries the table's columns plus
//! `_hw_op` (`u` upsert, `d` delete) and `_hw_written_at`, zstd-compressed (but the columns
//! that are NULL in every row of the file: see [`file_properties`]).
//!
//! Durability: files are written in full to `.part-....tmp` beside their final names and made
//! durable together, fsynced, renamed and their directories fsynced, once they add up to
//! `sink.commit_mb` or when a pass ends ([`group`]); only then is a write `Durable`. A crash
//! leaves hidden temporary files, removed by the next `prepare`, or a group's renamed files
//! the checkpoint does not cover, removed by `discard_after`.

pub mod config;
mod group;
mod spill;

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Date32Type, TimestampMicrosecondType};
use arrow_array::{Array, ArrayRef, RecordBatch, StringArray, TimestampMicrosecondArray, UInt32Array};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow_select::take::take_record_batch;
use config::ParquetSinkConfig;
use highwater_pipeline::batch::ChangeBatch;
use highwater_pipeline::civil;
use highwater_pipeline::cursor::Position;
use highwater_pipeline::ident::path_component;
use highwater_pipeline::schema::{TableId, TableSchema};
use highwater_pipeline::sink::{Durability, Sink, SinkError};
use highwater_pipeline::source::BatchShape;

use self::group::Group;
use self::spill::Spill;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;

/// The operation column added to every file.
pub const OP_COLUMN: &str = "_hw_op";
/// When the row was written (UTC): of two versions of a row with the same cursor (a row
/// re-read after it changed in place, see `reread_secs`), the later written is the newer.
pub const WRITTEN_AT_COLUMN: &str = "_hw_written_at";
/// The Hive partition of rows whose cursor is NULL.
pub const NULL_PARTITION: &str = "__HIVE_DEFAULT_PARTITION__";
/// zstd level 1: most of the size win of higher levels at a fraction of their CPU.
const ZSTD_LEVEL: i32 = 1;
/// Where the sink merges dates ([`ParquetSink::merging_dates`]): a batch that spans more dates
/// than this has its table's rows kept by date ([`spill`]), not written as a file per date.
const MAX_DATES_PER_BATCH: usize = 8;
/// The rows kept by date (uncompressed, in memory and on disk) at which they are written and
/// made durable, in multiples of `sink.commit_mb` (64 MiB by default: 512 MiB, which Parquet
/// makes several times smaller: 249 MB of Matomo actions became 39 MB).
pub const SPILL_COMMITS: u64 = 8;

pub struct ParquetSink {
    root: PathBuf,
    /// Each table's writer settings (see [`writer_properties`]).
    props: HashMap<TableId, WriterProperties>,
    /// The files written and not yet durable.
    group: Group,
    /// The size of the files at which a write makes them durable (`sink.commit_mb`).
    commit_bytes: u64,
    /// Why the sink takes nothing more: a group failed to become durable (this path, this
    /// error), and its batches must be read again by a new run.
    broken: Option<(PathBuf, String)>,
    /// Batches of many dates are kept by date and written as a file per date per group (see
    /// [`Self::merging_dates`]).
    merge_dates: bool,
    /// The tables whose rows are kept by date, not yet written.
    spills: HashMap<TableId, Spill>,
    /// The tables whose directory was rid of what a crash left: once a run, at its first
    /// `prepare`. A later one (the table's columns changed) must not remove the files and the
    /// rows kept by date that this run holds.
    cleaned: HashSet<TableId>,
    /// The bytes of rows a table keeps by date in memory before they go to disk.
    spill_held_bytes: usize,
}

impl ParquetSink {
    pub fn new(config: &ParquetSinkConfig) -> Self {
        ParquetSink {
            root: config.path.clone(),
            props: HashMap::new(),
            group: Group::default(),
            commit_bytes: (config.commit_mb as u64) << 20,
            broken: None,
            merge_dates: false,
            spills: HashMap::new(),
            spill_held_bytes: spill::HELD_BYTES,
            cleaned: Default::default(),
        }
    }

    /// Keeps the rows of batches that span many dates (a first copy in key order of a table
    /// whose cursor does not follow its key) by date, and writes them as one file per date per
    /// group, named after the first and the last batch kept ([`spill`]). Only for batches of
    /// one extractor that resumes from the sink's own checkpoint (the channel bus): an
    /// extractor that publishes to Kafka may send batches again after a restart, and they must
    /// land under the names of the files already written, a file per date and batch.
    pub fn merging_dates(mut self) -> Self {
        self.merge_dates = true;
        self
    }

    /// What the sink needs of a first copy's batches: merging dates, any; otherwise batches on
    /// few dates, since it writes a file per date and batch.
    pub fn batch_shape(merging_dates: bool) -> BatchShape {
        if merging_dates { BatchShape::Any } else { BatchShape::FewDates }
    }

    /// `path/<table>`: the name as one path component (see [`path_component`]).
    fn table_dir(&self, table: &TableSchema) -> PathBuf {
        self.root.join(path_component(&table.id.table))
    }

    /// Writes `rows` in full to a hidden temporary file beside `path` (not fsynced) and holds
    /// it in the group; on an error no temporary file is left.
    fn stage_file(
        &mut self,
        table_dir: &Path,
        after: &Position,
        path: PathBuf,
        rows: &RecordBatch,
        props: &WriterProperties,
    ) -> Result<(), SinkError> {
        let props = file_properties(props, rows.schema_ref(), &has_values(rows));
        let (tmp, bytes) = write_file(&path, rows.schema_ref(), props, [Ok(rows.clone())])?;
        self.group.add(table_dir, after, tmp, path, bytes)
    }

    /// Writes the rows kept by date of table `id` into the group: a file per date, under the
    /// part name of the first and the last batch kept.
    fn write_spill(&mut self, id: &TableId) -> Result<(), SinkError> {
        let Some(mut spill) = self.spills.remove(id) else { return Ok(()) };
        let dir = self.table_dir(&spill.table);
        let name = format!("part-{}-{}.parquet", spill.after.file_token(), spill.upto.file_token());
        // Not the cached settings: the table may have changed since these rows were read.
        let props = writer_properties(&spill.table);
        let schema = spill.schema().clone();
        let (dates, rounds) = spill.finish()?;
        // The files are independent: written on as many threads as there are cores (the
        // copy's read is over), each reading the rounds on its own.
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 4);
        let mut shares: Vec<Vec<spill::DateRows>> = (0..threads).map(|_| Vec::new()).collect();
        for (i, date) in dates.into_iter().enumerate() {
            shares[i % threads].push(date);
        }
        let write_share = |share: Vec<spill::DateRows>, written: &mut Vec<Written>| {
            let mut readers = rounds.open()?;
            for date in share {
                let path = dir.join(format!("date={}", date.date)).join(&name);
                let props = file_properties(&props, &schema, &date.has_values);
                let chunks = date.chunks.into_iter().map(|c| readers.read(c));
                let (tmp, bytes) = write_file(&path, &schema, props, chunks)?;
                written.push((path, tmp, bytes));
            }
            Ok::<_, SinkError>(())
        };
        let results: Vec<(Vec<Written>, Result<(), SinkError>)> = std::thread::scope(|scope| {
            let workers: Vec<_> = (shares.into_iter())
                .map(|share| {
                    scope.spawn(|| {
                        let mut written = Vec::new();
                        let result = write_share(share, &mut written);
                        (written, result)
                    })
                })
                .collect();
            workers.into_iter().map(|w| w.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))).collect()
        });
        let mut files: Vec<Written> = Vec::new();
        let mut failed = None;
        for (written, result) in results {
            files.extend(written);
            failed = failed.or(result.err());
        }
        if let Some(e) = failed {
            for (_, tmp, _) in files {
                let _ = std::fs::remove_file(tmp);
            }
            return Err(e);
        }
        files.sort();
        for (path, tmp, bytes) in files {
            self.group.add(&dir, &spill.after, tmp, path, bytes)?;
        }
        Ok(())
    }

    /// Writes every table's rows kept by date into the group ([`Self::write_spill`]).
    fn write_spills(&mut self) -> Result<(), SinkError> {
        let tables: Vec<TableId> = self.spills.keys().cloned().collect();
        for table in tables {
            self.write_spill(&table)?;
        }
        Ok(())
    }

    /// Keeps `rows`, all of `batch`, by date ([`spill`]).
    fn keep_by_date(&mut self, batch: &ChangeBatch, rows: RecordBatch, dir: &Path) -> Result<(), SinkError> {
        let id = &batch.table.id;
        let kept = (|| {
            if self.spills.get(id).is_some_and(|s| s.schema() != rows.schema_ref()) {
                // The table's columns changed: the rows kept before are written on their own.
                self.write_spill(id)?;
            }
            let spill = match self.spills.entry(id.clone()) {
                std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::hash_map::Entry::Vacant(e) => {
                    // The files are added to the group when written, after the table's files
                    // of earlier batches (if any): its record starts where the first one did.
                    let (schema, after) = (rows.schema(), batch.after.clone());
                    e.insert(Spill::new(batch.table.clone(), dir.to_owned(), schema, after, self.spill_held_bytes))
                }
            };
            spill.keep(rows, &batch.upto)
        })();
        // Rows kept before may be lost with the failure: nothing more until a new run.
        kept.inspect_err(|e| self.break_on(e))
    }

    /// The rows kept by date, in all tables.
    fn spilled_bytes(&self) -> u64 {
        self.spills.values().map(Spill::bytes).sum()
    }

    /// The sink takes nothing more: `e` lost what it held since the last durable group.
    fn break_on(&mut self, e: &SinkError) {
        self.broken = Some(match e {
            SinkError::Io { path, source } => (path.clone(), source.to_string()),
            other => (self.root.clone(), other.to_string()),
        });
        self.spills.clear();
        self.group.abandon();
    }

    /// Makes the group durable, with the rows kept by date; after a failure the sink takes
    /// nothing more.
    fn make_durable(&mut self) -> Result<(), SinkError> {
        self.refuse_if_broken()?;
        if let Err(e) = self.write_spills() {
            self.break_on(&e);
            return Err(e);
        }
        // Whatever the failure, the group is gone: a flush that then found nothing to do
        // would let the runner checkpoint batches no file holds.
        self.group.make_durable().inspect_err(|e| self.break_on(e))
    }

    fn refuse_if_broken(&self) -> Result<(), SinkError> {
        match &self.broken {
            None => Ok(()),
            Some((path, why)) => Err(SinkError::Io {
                path: path.clone(),
                source: std::io::Error::other(format!(
                    "files written since the last checkpoint could not be made durable ({why}); a new run reads them again"
                )),
            }),
        }
    }
}

impl Sink for ParquetSink {
    fn name(&self) -> &'static str {
        "parquet"
    }

    fn commits_checkpoints(&self) -> bool {
        false
    }

    async fn prepare(&mut self, tables: &[Arc<TableSchema>]) -> Result<(), SinkError> {
        for t in tables {
            // The table's columns may have changed.
            self.props.remove(&t.id);
            let dir = self.table_dir(t);
            std::fs::create_dir_all(&dir).map_err(|source| SinkError::Io { path: dir.clone(), source })?;
            if self.cleaned.insert(t.id.clone()) {
                remove_temporaries(&dir)?;
            }
        }
        Ok(())
    }

    async fn discard_after(&mut self, table: &TableSchema, checkpoint: &Position) -> Result<(), SinkError> {
        group::discard_uncommitted(&self.table_dir(table), checkpoint)
    }

    async fn write(&mut self, batch: &ChangeBatch) -> Result<Durability, SinkError> {
        self.refuse_if_broken()?;
        let rows = with_op_column(batch)?;
        let props = self.props.entry(batch.table.id.clone()).or_insert_with(|| writer_properties(&batch.table)).clone();
        let piece = batch.piece.map_or(String::new(), |(partition, index)| format!("-p{partition}.{index}"));
        let name = format!("part-{}-{}{piece}.parquet", batch.after.file_token(), batch.upto.file_token());
        let dir = self.table_dir(&batch.table);
        let cursor = rows.column(batch.table.cursor);
        if !matches!(cursor.data_type(), DataType::Timestamp(_, _) | DataType::Date32) {
            // A table read by its key alone has no date to partition by.
            self.stage_file(&dir, &batch.after, dir.join(&name), &rows, &props)?;
        } else {
            let dates = row_dates(cursor);
            let keep = self.merge_dates
                && (self.spills.contains_key(&batch.table.id) || distinct_dates(&dates) > MAX_DATES_PER_BATCH);
            if keep {
                self.keep_by_date(batch, rows, &dir)?;
            } else {
                for (date, part) in date_groups(&dates) {
                    let path = dir.join(format!("date={date}")).join(&name);
                    let part = match part {
                        Rows::Run(offset, len) => rows.slice(offset, len),
                        Rows::Picked(indices) => {
                            take_record_batch(&rows, &UInt32Array::from(indices)).map_err(|e| SinkError::Data {
                                table: batch.table.id.clone(),
                                reason: format!("cannot group rows by date: {e}"),
                            })?
                        }
                    };
                    self.stage_file(&dir, &batch.after, path, &part, &props)?;
                }
            }
        }
        if self.group.bytes() < self.commit_bytes && self.spilled_bytes() < self.commit_bytes * SPILL_COMMITS {
            return Ok(Durability::Buffered);
        }
        self.make_durable()?;
        Ok(Durability::Durable)
    }

    async fn flush(&mut self) -> Result<(), SinkError> {
        self.make_durable()
    }

    async fn shutdown(mut self) -> Result<(), SinkError> {
        // What was not flushed was not checkpointed either: it is read again by the next run.
        self.spills.clear();
        self.group.abandon();
        Ok(())
    }
}

/// A file written in full: its final name, its temporary name, its size.
type Written = (PathBuf, PathBuf, u64);

/// Writes `rows` (all of `schema`) in full to a hidden temporary file beside `path`, not
/// fsynced: its name and size. On an error no temporary file is left.
fn write_file(
    path: &Path,
    schema: &SchemaRef,
    props: WriterProperties,
    rows: impl IntoIterator<Item = Result<RecordBatch, SinkError>>,
) -> Result<(PathBuf, u64), SinkError> {
    let io = |source| SinkError::Io { path: path.to_owned(), source };
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io)?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("part");
    let tmp = dir.join(format!(".{name}.tmp"));
    let written = (|| {
        let file = File::create(&tmp).map_err(io)?;
        let mut writer =
            ArrowWriter::try_new(file, schema.clone(), Some(props)).map_err(|e| io(std::io::Error::other(e)))?;
        for chunk in rows {
            writer.write(&chunk?).map_err(|e| io(std::io::Error::other(e)))?;
        }
        let file = writer.into_inner().map_err(|e| io(std::io::Error::other(e)))?;
        file.metadata().map(|m| m.len()).map_err(io)
    })();
    match written {
        Ok(bytes) => Ok((tmp, bytes)),
        Err(e) => {
            // The final name was never touched.
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// zstd, and dictionary encoding only for the columns whose few distinct values it pays for
/// ([`few_distinct_values`]): building a dictionary of unique values costs time for nothing.
/// No min/max statistics for the strings and bytes of many distinct values (notes, JSON,
/// tokens) but the key: their range in a file seldom rules it out of a query, and comparing
/// every value took about 2% of an `orders` copy's CPU.
fn writer_properties(table: &TableSchema) -> WriterProperties {
    let level = ZstdLevel::try_new(ZSTD_LEVEL).unwrap_or_default();
    let mut props = WriterProperties::builder().set_compression(Compression::ZSTD(level)).set_dictionary_enabled(false);
    for (i, c) in table.columns.iter().enumerate() {
        let path = ColumnPath::from(c.name.as_str());
        if few_distinct_values(&c.source_type) {
            props = props.set_column_dictionary_enabled(path, true);
        } else if is_bytes(&c.data_type) && !table.key.contains(&i) {
            props = props.set_column_statistics_enabled(path, EnabledStatistics::None);
        }
    }
    for name in [OP_COLUMN, WRITTEN_AT_COLUMN] {
        props = props.set_column_dictionary_enabled(ColumnPath::from(name), true);
    }
    props.build()
}

fn is_bytes(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Binary | DataType::LargeBinary | DataType::FixedSizeBinary(_)
    )
}

/// The table's settings, but no compression (nor dictionary) for the columns that are NULL in
/// every row of the file: there is nothing to compress, and setting up zstd for each such
/// column chunk took 13% of the CPU of a copy of Matomo's log tables (45 columns, most NULL).
/// `has_values`: per column of `schema`, whether some row of the file has a value.
fn file_properties(table: &WriterProperties, schema: &Schema, has_values: &[bool]) -> WriterProperties {
    let empty: Vec<&str> =
        (schema.fields().iter().zip(has_values)).filter(|(_, has)| !**has).map(|(f, _)| f.name().as_str()).collect();
    if empty.is_empty() {
        return table.clone();
    }
    let mut props = table.clone().into_builder();
    for name in empty {
        props = props
            .set_column_compression(ColumnPath::from(name), Compression::UNCOMPRESSED)
            .set_column_dictionary_enabled(ColumnPath::from(name), false);
    }
    props.build()
}

/// Per column of `rows`: whether some row has a value (an empty column counts as one).
fn has_values(rows: &RecordBatch) -> Vec<bool> {
    rows.columns().iter().map(|c| c.is_empty() || c.null_count() < c.len()).collect()
}

/// Whether a source column type usually holds few distinct values: enums and sets, short
/// character columns (codes, states), the small integers (flags) and dates.
fn few_distinct_values(source_type: &str) -> bool {
    let t = source_type.trim().to_ascii_lowercase();
    let width =
        |prefix: &str| -> Option<u32> { t.strip_prefix(prefix)?.strip_prefix('(')?.split(')').next()?.parse().ok() };
    ["enum", "set", "tinyint", "smallint", "bit", "bool", "year"].iter().any(|p| t.starts_with(p))
        || t == "date"
        || width("char").or_else(|| width("varchar")).is_some_and(|n| n <= 32)
}

/// The batch's rows with the `_hw_op` column appended.
fn with_op_column(batch: &ChangeBatch) -> Result<RecordBatch, SinkError> {
    let mut fields: Vec<Arc<Field>> = batch.rows.schema().fields().iter().cloned().collect();
    fields.push(Arc::new(Field::new(OP_COLUMN, DataType::Utf8, false)));
    fields.push(Arc::new(Field::new(
        WRITTEN_AT_COLUMN,
        DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        false,
    )));
    let mut columns: Vec<ArrayRef> = batch.rows.columns().to_vec();
    columns.push(Arc::new(batch.ops.iter().map(|op| Some(op.code())).collect::<StringArray>()));
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_micros() as i64);
    let written = TimestampMicrosecondArray::from(vec![now; batch.num_rows()]).with_timezone("UTC");
    columns.push(Arc::new(written));
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
        .map_err(|e| SinkError::Data { table: batch.table.id.clone(), reason: format!("cannot add {OP_COLUMN}: {e}") })
}

/// The rows of one date in a batch.
#[derive(Debug, PartialEq)]
enum Rows {
    /// Consecutive: `(offset, len)`.
    Run(usize, usize),
    /// Scattered (a first copy reads by key, not by cursor): their indices, in batch order.
    Picked(Vec<u32>),
}

/// The date of each row's cursor (days since 1970-01-01), `None` for a NULL cursor.
fn row_dates(cursor: &ArrayRef) -> Vec<Option<i32>> {
    let valid = |i: usize| !cursor.is_null(i);
    match cursor.data_type() {
        DataType::Timestamp(_, _) => (cursor.as_primitive::<TimestampMicrosecondType>().values().iter().enumerate())
            .map(|(i, us)| valid(i).then(|| us.div_euclid(civil::MICROS_PER_DAY) as i32))
            .collect(),
        DataType::Date32 => (cursor.as_primitive::<Date32Type>().values().iter().enumerate())
            .map(|(i, &days)| valid(i).then_some(days))
            .collect(),
        _ => vec![None; cursor.len()],
    }
}

/// How many dates `dates` holds.
fn distinct_dates(dates: &[Option<i32>]) -> usize {
    let mut distinct: Vec<Option<i32>> = dates.to_vec();
    distinct.sort_unstable();
    distinct.dedup();
    distinct.len()
}

/// The Hive partition of `date` (see [`row_dates`]).
fn date_name(date: Option<i32>) -> String {
    match date {
        Some(days) => {
            let (y, m, d) = civil::civil_from_days(days);
            format!("{y:04}-{m:02}-{d:02}")
        }
        None => NULL_PARTITION.to_owned(),
    }
}

/// The batch's rows by cursor date (see [`row_dates`]), each date once, in the order dates
/// first appear. Rows read in cursor order make one run per date; a key-order copy may scatter
/// a date's rows.
fn date_groups(dates: &[Option<i32>]) -> Vec<(String, Rows)> {
    let mut runs: Vec<(Option<i32>, usize, usize)> = Vec::new();
    for (i, &d) in dates.iter().enumerate() {
        match runs.last_mut() {
            Some((last, _, len)) if *last == d => *len += 1,
            _ => runs.push((d, i, 1)),
        }
    }
    let distinct = distinct_dates(&runs.iter().map(|r| r.0).collect::<Vec<_>>());
    let groups: Vec<(Option<i32>, Rows)> = if distinct == runs.len() {
        runs.into_iter().map(|(d, offset, len)| (d, Rows::Run(offset, len))).collect()
    } else {
        let mut groups: Vec<(Option<i32>, Vec<u32>)> = Vec::with_capacity(distinct);
        for (d, offset, len) in runs {
            let rows = offset as u32..(offset + len) as u32;
            match groups.iter_mut().find(|(g, _)| *g == d) {
                Some((_, indices)) => indices.extend(rows),
                None => groups.push((d, rows.collect())),
            }
        }
        groups.into_iter().map(|(d, indices)| (d, Rows::Picked(indices))).collect()
    };
    groups.into_iter().map(|(d, rows)| (date_name(d), rows)).collect()
}

/// Removes the `.part-*.tmp` files (and a group record's temporary) a crash left under `dir`.
fn remove_temporaries(dir: &Path) -> Result<(), SinkError> {
    let record = format!("{}.tmp", group::RECORD);
    let half_written = |name: &str| (name.starts_with(".part-") && name.ends_with(".tmp")) || name == record;
    remove_files(dir, &half_written, "a file left half-written by an earlier run")
}

/// Removes the files below `dir` whose name `matches`, logging each with `why`.
fn remove_files(dir: &Path, matches: &dyn Fn(&str) -> bool, why: &str) -> Result<(), SinkError> {
    let io = |path: &Path, source| SinkError::Io { path: path.to_owned(), source };
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io(dir, e)),
    };
    for entry in entries {
        let path = entry.map_err(|e| io(dir, e))?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        if path.is_dir() {
            remove_files(&path, matches, why)?;
        } else if matches(name) {
            std::fs::remove_file(&path).map_err(|e| io(&path, e))?;
            tracing::info!(path = %path.display(), "removed {why}");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::TimestampMicrosecondArray;

    #[test]
    fn prepare_removes_what_a_crash_left_half_written_and_nothing_else() {
        let root = tempfile::tempdir().expect("tempdir");
        let day = root.path().join("t/date=2026-01-01");
        std::fs::create_dir_all(&day).expect("dirs");
        std::fs::write(day.join(".part-a-b.parquet.tmp"), b"half").expect("writes");
        std::fs::write(root.path().join("t/.part-spill-0.tmp"), b"rows kept by date").expect("writes");
        std::fs::write(day.join("part-a-b.parquet"), b"whole").expect("writes");
        let table = root.path().join("t");
        std::fs::write(table.join(".hw-group.json.tmp"), b"half").expect("writes");
        std::fs::write(table.join(".hw-group.json"), b"whole").expect("writes");
        remove_temporaries(&table).expect("cleans");
        let left: Vec<_> = std::fs::read_dir(&day).expect("dir").map(|e| e.expect("entry").file_name()).collect();
        assert_eq!(left, ["part-a-b.parquet"]);
        let mut left: Vec<_> = std::fs::read_dir(&table).expect("dir").map(|e| e.expect("entry").file_name()).collect();
        left.sort();
        assert_eq!(left, [".hw-group.json", "date=2026-01-01"]);
    }

    /// A sink writing under `root`, its group made durable at `commit_bytes`.
    fn sink_at(root: &Path, commit_bytes: u64) -> ParquetSink {
        let config: ParquetSinkConfig =
            toml::from_str(&format!("type = \"parquet\"\npath = {root:?}")).expect("config");
        ParquetSink { commit_bytes, ..ParquetSink::new(&config) }
    }

    /// The position after key `k` of the test's cursor order.
    fn at(k: i64) -> Position {
        use highwater_pipeline::cursor::{DateTime, KeyValue};
        Position::At {
            cursor: "2026-01-01 10:00:00".parse::<DateTime>().expect("datetime"),
            key: vec![KeyValue::Int(k)],
            nulls: None,
        }
    }

    /// Rows `(after, upto]` of `d.orders` (key, cursor), two per key: the first on 2026-01-01,
    /// the second on 2026-01-02.
    fn orders_batch(after: i64, upto: i64) -> ChangeBatch {
        dated_batch(after, upto, 2)
    }

    /// Rows `(after, upto]` of `d.orders` (key, cursor), key `k` on day `k % days` of 2026.
    fn dated_batch(after: i64, upto: i64, days: i64) -> ChangeBatch {
        let batch = noted_batch(after, upto, days);
        let table = Arc::new(TableSchema::new(batch.table.id.clone(), batch.table.columns[..2].to_vec(), vec![0], 1));
        let rows = batch.rows.project(&[0, 1]).expect("projects");
        let rows = RecordBatch::try_new(table.arrow.clone(), rows.columns().to_vec()).expect("batch");
        ChangeBatch { table, rows, ..batch }
    }

    /// [`dated_batch`] with a third column, `note` (`n<k>`): the table after a column was added.
    fn noted_batch(after: i64, upto: i64, days: i64) -> ChangeBatch {
        use highwater_pipeline::batch::{BatchStats, Op};
        use highwater_pipeline::schema::ColumnSchema;
        let column = |name: &str, source_type: &str, data_type: DataType| ColumnSchema {
            name: name.into(),
            source_type: source_type.into(),
            charset: None,
            collation: None,
            source_nullable: false,
            data_type,
            nullable: false,
            default: None,
            default_computed: false,
        };
        let table = Arc::new(TableSchema::new(
            TableId { database: "d".into(), table: "orders".into() },
            vec![
                column("id", "bigint", DataType::Int64),
                column("update_time", "datetime(6)", DataType::Timestamp(TimeUnit::Microsecond, None)),
                ColumnSchema { nullable: true, source_nullable: true, ..column("note", "varchar(16)", DataType::Utf8) },
            ],
            vec![0],
            1,
        ));
        let keys: Vec<i64> = (after + 1..=upto).collect();
        let notes: Vec<String> = keys.iter().map(|k| format!("n{k}")).collect();
        let day = civil::MICROS_PER_DAY;
        let base = 20_454 * day; // 2026-01-01
        let times: Vec<i64> = keys.iter().map(|k| base + (k % days) * day).collect();
        let rows = RecordBatch::try_new(
            table.arrow.clone(),
            vec![
                Arc::new(arrow_array::Int64Array::from(keys)),
                Arc::new(TimestampMicrosecondArray::from(times)),
                Arc::new(StringArray::from(notes)),
            ],
        )
        .expect("batch");
        ChangeBatch {
            table,
            ops: vec![Op::Upsert; rows.num_rows()],
            rows,
            after: at(after),
            upto: at(upto),
            stats: BatchStats::default(),
            piece: None,
        }
    }

    /// The files under `dir`, relative, sorted; hidden ones too.
    fn files_under(dir: &Path) -> Vec<String> {
        fn walk(root: &Path, dir: &Path, found: &mut Vec<String>) {
            for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    walk(root, &path, found);
                } else {
                    found.push(path.strip_prefix(root).expect("below").display().to_string());
                }
            }
        }
        let mut found = Vec::new();
        walk(dir, dir, &mut found);
        found.sort();
        found
    }

    #[tokio::test]
    async fn files_appear_under_their_names_only_once_the_group_is_made_durable() {
        let root = tempfile::tempdir().expect("tempdir");
        let mut sink = sink_at(root.path(), 1 << 20);
        assert_eq!(sink.write(&orders_batch(0, 4)).await.expect("writes"), Durability::Buffered);
        assert_eq!(sink.write(&orders_batch(4, 8)).await.expect("writes"), Durability::Buffered);
        let dir = root.path().join("orders");
        let (first, second) = (
            format!("part-{}-{}", at(0).file_token(), at(4).file_token()),
            format!("part-{}-{}", at(4).file_token(), at(8).file_token()),
        );
        let hidden = |name: &str| ["date=2026-01-01", "date=2026-01-02"].map(|d| format!("{d}/.{name}.parquet.tmp"));
        let mut expected: Vec<String> = [hidden(&first), hidden(&second)].concat();
        expected.sort();
        assert_eq!(files_under(&dir), expected, "written in full, under hidden names");

        sink.flush().await.expect("flushes");
        let visible = |name: &str| ["date=2026-01-01", "date=2026-01-02"].map(|d| format!("{d}/{name}.parquet"));
        let mut expected: Vec<String> = [visible(&first), visible(&second)].concat();
        expected.push(group::RECORD.to_owned());
        expected.sort();
        assert_eq!(files_under(&dir), expected);
        let record: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join(group::RECORD)).expect("record")).expect("json");
        assert_eq!(record["after"], serde_json::to_value(at(0)).expect("json"), "where the group started");
        assert_eq!(record["files"].as_array().map(Vec::len), Some(4));

        // At the commit size, the write itself makes the group durable.
        sink.commit_bytes = 1;
        assert_eq!(sink.write(&orders_batch(8, 10)).await.expect("writes"), Durability::Durable);
        assert!(files_under(&dir).iter().all(|f| !f.ends_with(".tmp")), "{:?}", files_under(&dir));
    }

    #[tokio::test]
    async fn a_group_renamed_but_never_checkpointed_is_discarded_and_nothing_else() {
        let root = tempfile::tempdir().expect("tempdir");
        let mut sink = sink_at(root.path(), 1 << 20);
        let dir = root.path().join("orders");
        // A group the checkpoint covers (up to key 8), then one it does not (8 to 12).
        for (after, upto) in [(0, 4), (4, 8)] {
            sink.write(&orders_batch(after, upto)).await.expect("writes");
        }
        sink.flush().await.expect("flushes");
        let mut committed = files_under(&dir);
        committed.retain(|f| f.ends_with(".parquet"));
        let table = orders_batch(0, 0).table;
        sink.write(&orders_batch(8, 12)).await.expect("writes");
        sink.flush().await.expect("flushes");
        assert_eq!(files_under(&dir).len(), committed.len() + 3, "two dates of the second group and its record");

        // A new run: the checkpoint still says key 8.
        let mut sink = sink_at(root.path(), 1 << 20);
        sink.discard_after(&table, &at(8)).await.expect("discards");
        assert_eq!(files_under(&dir), committed, "the second group's files are gone, the first's stay");

        // Once the checkpoint moved past a group, its files stay.
        sink.write(&orders_batch(8, 12)).await.expect("writes");
        sink.flush().await.expect("flushes");
        sink.discard_after(&table, &at(12)).await.expect("nothing to discard");
        assert_eq!(files_under(&dir).len(), committed.len() + 2, "every file stays; the record is gone");
    }

    #[tokio::test]
    async fn a_group_that_cannot_be_made_durable_fails_and_the_sink_takes_nothing_more() {
        let root = tempfile::tempdir().expect("tempdir");
        let mut sink = sink_at(root.path(), 1 << 20);
        sink.write(&orders_batch(0, 4)).await.expect("writes");
        let dir = root.path().join("orders");
        let lost = dir.join("date=2026-01-01").join(format!(
            ".part-{}-{}.parquet.tmp",
            at(0).file_token(),
            at(4).file_token()
        ));
        std::fs::remove_file(&lost).expect("a written file");
        let error = sink.flush().await.expect_err("a file is missing").to_string();
        assert!(error.contains(&lost.display().to_string()), "{error}");
        let again = sink.write(&orders_batch(4, 8)).await.expect_err("refused").to_string();
        assert!(again.contains(&lost.display().to_string()), "{again}");
        // Whether the fsync thread or a rename found the file gone, no temporary file is left.
        // A rename failing after another succeeded leaves that file visible, and the record
        // that names it: the next run, its checkpoint still where the group started, removes
        // both.
        assert!(files_under(&dir).iter().all(|f| !f.ends_with(".tmp")), "{:?}", files_under(&dir));
        let mut next = sink_at(root.path(), 1 << 20);
        next.discard_after(&orders_batch(0, 0).table, &at(0)).await.expect("discards");
        assert_eq!(files_under(&dir), Vec::<String>::new(), "nothing visible after the next run's discard");
    }

    /// The keys in the Parquet files under `dir`, with the directory of their date, sorted.
    fn keys_by_date(dir: &Path) -> Vec<(i64, String)> {
        use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
        let mut rows = Vec::new();
        for f in files_under(dir).into_iter().filter(|f| f.ends_with(".parquet")) {
            let date = f.split('/').next().expect("a date").to_owned();
            let file = File::open(dir.join(&f)).expect("opens");
            for batch in ParquetRecordBatchReaderBuilder::try_new(file).expect("parquet").build().expect("reader") {
                let batch = batch.expect("reads");
                let keys = batch.column(0).as_primitive::<arrow_array::types::Int64Type>();
                rows.extend(keys.values().iter().map(|&k| (k, date.clone())));
            }
        }
        rows.sort();
        rows
    }

    #[tokio::test]
    async fn batches_of_many_dates_become_a_file_per_date_per_group_from_memory_and_from_disk() {
        // Held in memory until the flush; then sorted to disk at every batch.
        for (held, on_disk) in [(spill::HELD_BYTES, vec![]), (1, vec![".part-spill-0.tmp", ".part-spill-1.tmp"])] {
            let root = tempfile::tempdir().expect("tempdir");
            let mut sink = ParquetSink { spill_held_bytes: held, ..sink_at(root.path(), 1 << 30).merging_dates() };
            // A batch of 2 dates is written as it comes; the next, of 30 dates, is kept, and so
            // is every later batch of the table.
            for (after, upto, days) in [(0, 10, 2), (10, 100, 30), (100, 150, 2)] {
                let durability = sink.write(&dated_batch(after, upto, days)).await.expect("writes");
                assert_eq!(durability, Durability::Buffered);
            }
            let dir = root.path().join("orders");
            let hidden: Vec<String> = files_under(&dir).into_iter().filter(|f| !f.contains('/')).collect();
            assert_eq!(hidden, on_disk);

            sink.flush().await.expect("flushes");
            let first = format!("part-{}-{}.parquet", at(0).file_token(), at(10).file_token());
            let kept = format!("part-{}-{}.parquet", at(10).file_token(), at(150).file_token());
            let mut expected: Vec<String> = (1..=30).map(|d| format!("date=2026-01-{d:02}/{kept}")).collect();
            expected.extend((1..=2).map(|d| format!("date=2026-01-{d:02}/{first}")));
            expected.push(group::RECORD.to_owned());
            expected.sort();
            assert_eq!(files_under(&dir), expected, "a file per date of the batches kept");
            let mut expected: Vec<(i64, String)> = (1..=150)
                .map(|k| {
                    let days = if (11..=100).contains(&k) { 30 } else { 2 };
                    (k, format!("date=2026-01-{:02}", k % days + 1))
                })
                .collect();
            expected.sort();
            assert_eq!(keys_by_date(&dir), expected, "every row once, under its date");

            // Never checkpointed: the next run removes them all.
            let record: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(dir.join(group::RECORD)).expect("record")).expect("json");
            assert_eq!(record["after"], serde_json::to_value(at(0)).expect("json"));
            let mut next = sink_at(root.path(), 1 << 20);
            next.discard_after(&orders_batch(0, 0).table, &at(0)).await.expect("discards");
            assert_eq!(files_under(&dir), Vec::<String>::new());
        }
    }

    #[tokio::test]
    async fn a_table_that_gains_a_column_while_its_rows_are_kept_by_date_loses_none_of_them() {
        let root = tempfile::tempdir().expect("tempdir");
        let mut sink = ParquetSink { spill_held_bytes: 1, ..sink_at(root.path(), 1 << 30).merging_dates() };
        let before = dated_batch(0, 100, 30);
        sink.prepare(std::slice::from_ref(&before.table)).await.expect("prepares");
        sink.write(&before).await.expect("writes");
        // The runner prepares the sink again for the new columns, then writes.
        let after = noted_batch(100, 200, 30);
        sink.prepare(std::slice::from_ref(&after.table)).await.expect("prepares");
        sink.write(&after).await.expect("writes");
        sink.flush().await.expect("flushes");
        let dir = root.path().join("orders");
        let mut expected: Vec<(i64, String)> =
            (1..=200).map(|k| (k, format!("date=2026-01-{:02}", k % 30 + 1))).collect();
        expected.sort();
        assert_eq!(keys_by_date(&dir), expected, "every row once, under its date");
        let files: Vec<String> = files_under(&dir).into_iter().filter(|f| f.ends_with(".parquet")).collect();
        assert_eq!(files.len(), 60, "a file per date for the rows before the change, one for those after: {files:?}");
    }

    #[tokio::test]
    async fn a_column_null_in_every_row_of_a_round_on_disk_comes_back_null_and_typed() {
        use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
        for held in [spill::HELD_BYTES, 1] {
            let root = tempfile::tempdir().expect("tempdir");
            let mut sink = ParquetSink { spill_held_bytes: held, ..sink_at(root.path(), 1 << 30).merging_dates() };
            // Keys 1-100 have no note; 101-200 have one.
            let mut first = noted_batch(0, 100, 30);
            let mut columns = first.rows.columns().to_vec();
            columns[2] = Arc::new(StringArray::from(vec![None::<&str>; 100]));
            first.rows = RecordBatch::try_new(first.rows.schema(), columns).expect("batch");
            sink.write(&first).await.expect("writes");
            sink.write(&noted_batch(100, 200, 30)).await.expect("writes");
            sink.flush().await.expect("flushes");
            let dir = root.path().join("orders");
            let mut notes = Vec::new();
            for f in files_under(&dir).into_iter().filter(|f| f.ends_with(".parquet")) {
                let file = File::open(dir.join(&f)).expect("opens");
                for batch in ParquetRecordBatchReaderBuilder::try_new(file).expect("parquet").build().expect("reader") {
                    let batch = batch.expect("reads");
                    assert_eq!(batch.schema().field(2).data_type(), &DataType::Utf8, "{f}");
                    let keys = batch.column(0).as_primitive::<arrow_array::types::Int64Type>();
                    let note = batch.column(2).as_string::<i32>();
                    notes.extend(
                        (0..batch.num_rows())
                            .map(|i| (keys.value(i), note.is_valid(i).then(|| note.value(i).to_owned()))),
                    );
                }
            }
            notes.sort();
            let expected: Vec<(i64, Option<String>)> =
                (1..=200).map(|k| (k, (k > 100).then(|| format!("n{k}")))).collect();
            assert_eq!(notes, expected, "held {held}");
        }
    }

    #[tokio::test]
    async fn a_date_file_that_cannot_be_written_fails_the_flush_and_leaves_no_temporary_file() {
        let root = tempfile::tempdir().expect("tempdir");
        let mut sink = ParquetSink { spill_held_bytes: 1, ..sink_at(root.path(), 1 << 30).merging_dates() };
        sink.write(&dated_batch(0, 100, 30)).await.expect("writes");
        sink.write(&dated_batch(100, 200, 30)).await.expect("writes");
        // A file where one date's directory must go: that date's file cannot be written.
        let dir = root.path().join("orders");
        std::fs::write(dir.join("date=2026-01-05"), b"in the way").expect("writes");
        let error = sink.flush().await.expect_err("a date cannot be written").to_string();
        assert!(error.contains("date=2026-01-05"), "{error}");
        assert_eq!(files_under(&dir), ["date=2026-01-05"], "no round, no other date's file");
        assert!(sink.write(&dated_batch(200, 300, 30)).await.is_err(), "the sink takes nothing more");
    }

    #[tokio::test]
    async fn rows_kept_by_date_go_with_their_files_when_a_run_stops_without_its_flush() {
        let root = tempfile::tempdir().expect("tempdir");
        let mut sink = ParquetSink { spill_held_bytes: 1, ..sink_at(root.path(), 1 << 30).merging_dates() };
        sink.write(&dated_batch(0, 100, 30)).await.expect("writes");
        assert_eq!(files_under(&root.path().join("orders")), [".part-spill-0.tmp"]);
        sink.shutdown().await.expect("shuts down");
        assert_eq!(files_under(&root.path().join("orders")), Vec::<String>::new());
    }

    #[tokio::test]
    async fn without_merging_a_batch_of_many_dates_is_a_file_per_date() {
        let root = tempfile::tempdir().expect("tempdir");
        let mut sink = sink_at(root.path(), 1 << 30);
        sink.write(&dated_batch(0, 100, 30)).await.expect("writes");
        sink.write(&dated_batch(100, 200, 30)).await.expect("writes");
        sink.flush().await.expect("flushes");
        let files = files_under(&root.path().join("orders"));
        assert_eq!(files.iter().filter(|f| f.ends_with(".parquet")).count(), 60, "{files:?}");
    }

    #[tokio::test]
    async fn a_run_that_stops_without_its_flush_leaves_no_temporary_file() {
        let root = tempfile::tempdir().expect("tempdir");
        let mut sink = sink_at(root.path(), 1 << 20);
        sink.write(&orders_batch(0, 4)).await.expect("writes");
        sink.shutdown().await.expect("shuts down");
        assert_eq!(files_under(&root.path().join("orders")), Vec::<String>::new());
    }

    #[test]
    fn runs_split_by_date_with_nulls_in_the_hive_default_partition() {
        let day = civil::MICROS_PER_DAY;
        let cursor: ArrayRef =
            Arc::new(TimestampMicrosecondArray::from(vec![None, None, Some(0), Some(day - 1), Some(day), Some(-1)]));
        assert_eq!(
            date_groups(&row_dates(&cursor)),
            [
                (NULL_PARTITION.to_owned(), Rows::Run(0, 2)),
                ("1970-01-01".to_owned(), Rows::Run(2, 2)),
                ("1970-01-02".to_owned(), Rows::Run(4, 1)),
                ("1969-12-31".to_owned(), Rows::Run(5, 1)),
            ]
        );
    }

    #[test]
    fn dictionaries_only_where_values_repeat() {
        for few in ["enum('a','b')", "char(3)", "varchar(16)", "tinyint(1)", "smallint unsigned", "date", "set('x')"] {
            assert!(few_distinct_values(few), "{few}");
        }
        for many in ["varchar(255)", "bigint unsigned", "json", "text", "varbinary(16)", "datetime(6)", "decimal(12,2)"]
        {
            assert!(!few_distinct_values(many), "{many}");
        }
    }

    #[test]
    fn all_null_columns_are_stored_uncompressed_and_strings_of_many_values_carry_no_statistics() {
        use highwater_pipeline::schema::ColumnSchema;
        use parquet::file::reader::{FileReader, SerializedFileReader};
        let column = |name: &str, source_type: &str, data_type: DataType| ColumnSchema {
            name: name.into(),
            source_type: source_type.into(),
            charset: None,
            collation: None,
            source_nullable: true,
            data_type,
            nullable: true,
            default: None,
            default_computed: false,
        };
        let table = TableSchema::new(
            TableId { database: "d".into(), table: "t".into() },
            vec![
                column("id", "varchar(36)", DataType::Utf8),
                column("note", "varchar(255)", DataType::Utf8),
                column("unused", "int(11)", DataType::Int32),
                column("state", "char(2)", DataType::Utf8),
            ],
            vec![0],
            2,
        );
        let rows = RecordBatch::try_new(
            table.arrow.clone(),
            vec![
                Arc::new(StringArray::from(vec!["k1", "k2"])),
                Arc::new(StringArray::from(vec!["a long note", "another"])),
                Arc::new(arrow_array::Int32Array::from(vec![None, None])),
                Arc::new(StringArray::from(vec!["NY", "CA"])),
            ],
        )
        .expect("batch");
        let mut file = Vec::new();
        let props = file_properties(&writer_properties(&table), rows.schema_ref(), &has_values(&rows));
        let mut writer = ArrowWriter::try_new(&mut file, rows.schema(), Some(props)).expect("writer");
        writer.write(&rows).expect("writes");
        writer.close().expect("closes");
        let reader = SerializedFileReader::new(bytes::Bytes::from(file)).expect("reads");
        let group = reader.metadata().row_group(0);
        let chunk = |i: usize| (group.column(i).compression(), group.column(i).statistics().is_some());
        assert!(matches!(chunk(0), (Compression::ZSTD(_), true)), "the key keeps its statistics");
        assert!(matches!(chunk(1), (Compression::ZSTD(_), false)), "a note prunes nothing");
        assert_eq!(chunk(2).0, Compression::UNCOMPRESSED, "NULL in every row");
        assert!(matches!(chunk(3), (Compression::ZSTD(_), true)), "a short code keeps its statistics");
    }

    #[test]
    fn scattered_dates_of_a_key_order_copy_are_gathered_once_each() {
        let day = civil::MICROS_PER_DAY;
        let cursor: ArrayRef =
            Arc::new(TimestampMicrosecondArray::from(vec![Some(day), Some(0), Some(1), None, Some(day + 5), Some(2)]));
        assert_eq!(
            date_groups(&row_dates(&cursor)),
            [
                ("1970-01-02".to_owned(), Rows::Picked(vec![0, 4])),
                ("1970-01-01".to_owned(), Rows::Picked(vec![1, 2, 5])),
                (NULL_PARTITION.to_owned(), Rows::Picked(vec![3])),
            ]
        );
    }
}

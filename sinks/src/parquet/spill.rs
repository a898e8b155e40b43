//! Rows whose dates scatter over the batches, kept by date until their group is made durable.
//!
//! A first copy reads in primary-key order: the clustered index, each page once. Where the
//! cursor does not follow the key (rows changed long after they were inserted, an import of
//! old rows, Matomo actions loaded out of order), every batch holds rows of many dates, and a
//! file per date and batch would be thousands of small files. Reading in cursor order instead
//! costs a clustered-index lookup per row, in random order: 10 times the time of the copy
//! when the table does not fit the server's buffer pool.
//!
//! So the Parquet sink keeps such a table's batches ([`Spill`]): in memory up to
//! [`HELD_BYTES`], then sorted by date into one hidden Arrow IPC file per round
//! (`.part-spill-<n>.tmp` in the table's directory, uncompressed, written through the page
//! cache, one record batch per date). When the group is made durable, each date's rows, from
//! every round and from memory, become one Parquet file: one file per date for up to
//! `sink.commit_mb` times [`super::SPILL_COMMITS`] of rows.
//!
//! Nothing here is durable: a crash leaves hidden temporaries, which `prepare` removes, and the
//! rows are read again from the checkpoint.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::BufReader;
use std::path::PathBuf;
use std::sync::Arc;

use arrow_array::{Array, ArrayRef, NullArray, RecordBatch, new_null_array};
use arrow_ipc::reader::FileReader;
use arrow_ipc::writer::FileWriter;
use arrow_schema::{ArrowError, DataType, Field, Schema, SchemaRef};
use arrow_select::interleave::interleave;
use highwater_pipeline::cursor::Position;
use highwater_pipeline::schema::{TableId, TableSchema};
use highwater_pipeline::sink::SinkError;

use super::{date_name, row_dates};

/// The batches kept in memory before they are sorted into a round on disk.
pub const HELD_BYTES: usize = 16 << 20;

/// A date's rows in a sorted batch: (date, offset, length).
type Run = (Option<i32>, usize, usize);

/// A table's batches kept by date: those in memory, and the rounds on disk.
pub struct Spill {
    pub table: Arc<TableSchema>,
    dir: PathBuf,
    schema: SchemaRef,
    /// The position the first batch kept started from, and the one the last ended at.
    pub after: Position,
    pub upto: Position,
    held: Vec<RecordBatch>,
    held_bytes: usize,
    /// The bytes held at which they go to disk ([`HELD_BYTES`]).
    held_limit: usize,
    /// The rounds on disk, in the order written.
    rounds: Vec<PathBuf>,
    spilled_bytes: u64,
    /// Per date (`None`: a NULL cursor): where its rows are, and which columns have a value.
    dates: BTreeMap<Option<i32>, Date>,
}

/// One date's rows in the rounds on disk.
#[derive(Default)]
struct Date {
    /// (round, record batch in it).
    chunks: Vec<(usize, usize)>,
    /// Per column: a value that is not NULL was seen.
    has_values: Vec<bool>,
}

impl Date {
    fn saw(&mut self, rows: &RecordBatch) {
        self.has_values.resize(rows.num_columns(), false);
        for (seen, c) in self.has_values.iter_mut().zip(rows.columns()) {
            *seen |= c.logical_null_count() < c.len();
        }
    }
}

/// One date's rows, as [`Spill::finish`] hands them out.
pub struct DateRows {
    /// `YYYY-MM-DD`, or the NULL partition.
    pub date: String,
    /// Per column: some row has a value (the others are NULL in the whole file).
    pub has_values: Vec<bool>,
    /// Yields the rows, from disk and then from memory.
    pub chunks: Vec<Chunk>,
}

/// Where some of a date's rows are.
pub enum Chunk {
    /// Record batch `.1` of round `.0`.
    OnDisk(usize, usize),
    /// In memory.
    Held(RecordBatch),
}

impl Spill {
    /// Keeps batches of `table`'s rows (`schema`: its columns and the sink's) under `dir`, the
    /// first one starting after `after`, up to `held_limit` bytes in memory.
    pub fn new(table: Arc<TableSchema>, dir: PathBuf, schema: SchemaRef, after: Position, held_limit: usize) -> Self {
        Spill {
            table,
            dir,
            schema,
            upto: after.clone(),
            after,
            held: Vec::new(),
            held_bytes: 0,
            held_limit,
            rounds: Vec::new(),
            spilled_bytes: 0,
            dates: BTreeMap::new(),
        }
    }

    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// The rows kept, in memory and on disk (Arrow's uncompressed size).
    pub fn bytes(&self) -> u64 {
        self.spilled_bytes + self.held_bytes as u64
    }

    /// Keeps `rows`, a batch that ended at `upto`; past its limit in memory, sorts what is held
    /// into a round on disk.
    pub fn keep(&mut self, rows: RecordBatch, upto: &Position) -> Result<(), SinkError> {
        self.held_bytes += rows.get_array_memory_size();
        self.held.push(rows);
        self.upto = upto.clone();
        if self.held_bytes >= self.held_limit {
            self.write_round()?;
        }
        Ok(())
    }

    /// The rows held, sorted by date (stable: each date's rows in the order they came), with
    /// each date's run in the sorted batch.
    fn sort_held(&mut self) -> Result<Option<(RecordBatch, Vec<Run>)>, SinkError> {
        if self.held.is_empty() {
            return Ok(None);
        }
        let mut rows: Vec<(Option<i32>, usize, usize)> = Vec::new();
        for (b, batch) in self.held.iter().enumerate() {
            rows.extend(row_dates(batch.column(self.table.cursor)).into_iter().enumerate().map(|(i, d)| (d, b, i)));
        }
        rows.sort_by_key(|r| r.0);
        let indices: Vec<(usize, usize)> = rows.iter().map(|r| (r.1, r.2)).collect();
        let mut fields = Vec::with_capacity(self.schema.fields().len());
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(fields.capacity());
        for (c, field) in self.schema.fields().iter().enumerate() {
            let values: Vec<&dyn Array> = self.held.iter().map(|b| b.column(c).as_ref()).collect();
            if values.iter().all(|v| v.logical_null_count() == v.len()) {
                // NULL in every row held: nothing to sort, and nothing to write to disk, where
                // Arrow would keep a value's width under each NULL (see `restore`).
                fields.push(Field::new(field.name(), DataType::Null, true));
                columns.push(Arc::new(NullArray::new(indices.len())));
            } else {
                fields.push(field.as_ref().clone());
                columns.push(interleave(&values, &indices).map_err(|e| SinkError::Data {
                    table: self.table.id.clone(),
                    reason: format!("cannot sort rows by date: {e}"),
                })?);
            }
        }
        let sorted = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).map_err(|e| SinkError::Data {
            table: self.table.id.clone(),
            reason: format!("cannot sort rows by date: {e}"),
        })?;
        self.held.clear();
        self.held_bytes = 0;
        let mut runs: Vec<Run> = Vec::new();
        for (i, (d, ..)) in rows.iter().enumerate() {
            match runs.last_mut() {
                Some((last, _, len)) if last == d => *len += 1,
                _ => runs.push((*d, i, 1)),
            }
        }
        Ok(Some((sorted, runs)))
    }

    /// Sorts the rows held by date into a new round on disk, a record batch per date.
    fn write_round(&mut self) -> Result<(), SinkError> {
        let Some((sorted, runs)) = self.sort_held()? else { return Ok(()) };
        let round = self.rounds.len();
        let path = self.dir.join(format!(".part-spill-{round}.tmp"));
        let io = |source| SinkError::Io { path: path.clone(), source };
        std::fs::create_dir_all(&self.dir).map_err(io)?;
        let file = File::create(&path).map_err(io)?;
        self.rounds.push(path.clone());
        let mut writer =
            FileWriter::try_new_buffered(file, sorted.schema_ref()).map_err(|e| io(std::io::Error::other(e)))?;
        for (n, (date, offset, len)) in runs.into_iter().enumerate() {
            let rows = sorted.slice(offset, len);
            writer.write(&rows).map_err(|e| io(std::io::Error::other(e)))?;
            let d = self.dates.entry(date).or_default();
            d.saw(&rows);
            d.chunks.push((round, n));
        }
        let file = writer.into_inner().map_err(|e| io(std::io::Error::other(e)))?;
        let file = file.into_inner().map_err(|e| io(e.into_error()))?;
        self.spilled_bytes += file.metadata().map_err(io)?.len();
        Ok(())
    }

    /// Each date's rows, in date order (the NULL partition first). Read the chunks with
    /// [`RoundFiles::open`].
    pub fn finish(&mut self) -> Result<(Vec<DateRows>, RoundFiles), SinkError> {
        let mut in_memory: BTreeMap<Option<i32>, RecordBatch> = BTreeMap::new();
        if let Some((sorted, runs)) = self.sort_held()? {
            for (date, offset, len) in runs {
                let rows = sorted.slice(offset, len);
                self.dates.entry(date).or_default().saw(&rows);
                in_memory.insert(date, rows);
            }
        }
        let dates = std::mem::take(&mut self.dates)
            .into_iter()
            .map(|(date, d)| {
                let mut chunks: Vec<Chunk> = d.chunks.into_iter().map(|(r, b)| Chunk::OnDisk(r, b)).collect();
                chunks.extend(in_memory.remove(&date).map(Chunk::Held));
                DateRows { date: date_name(date), has_values: d.has_values, chunks }
            })
            .collect();
        let (paths, schema, table) = (std::mem::take(&mut self.rounds), self.schema.clone(), self.table.id.clone());
        Ok((dates, RoundFiles { paths, schema, table }))
    }
}

impl Drop for Spill {
    /// Removes the rounds on disk not handed to [`RoundFiles`] (a spill never finished).
    fn drop(&mut self) {
        for path in &self.rounds {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// The rounds on disk of a finished spill; removed when dropped.
pub struct RoundFiles {
    paths: Vec<PathBuf>,
    /// The table's rows (see [`restore`]).
    schema: SchemaRef,
    table: TableId,
}

impl RoundFiles {
    /// Opens every round for reading (each thread that reads them opens its own).
    pub fn open(&self) -> Result<Rounds<'_>, SinkError> {
        let mut readers = Vec::with_capacity(self.paths.len());
        for path in &self.paths {
            let io = |source| SinkError::Io { path: path.clone(), source };
            let file = File::open(path).map_err(io)?;
            readers.push(FileReader::try_new_buffered(file, None).map_err(|e| io(std::io::Error::other(e)))?);
        }
        Ok(Rounds { paths: &self.paths, schema: &self.schema, table: &self.table, readers })
    }
}

impl Drop for RoundFiles {
    fn drop(&mut self) {
        for path in &self.paths {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// The rounds of a finished spill, open for reading.
pub struct Rounds<'a> {
    paths: &'a [PathBuf],
    schema: &'a SchemaRef,
    table: &'a TableId,
    readers: Vec<FileReader<BufReader<File>>>,
}

impl Rounds<'_> {
    /// The rows of `chunk`.
    pub fn read(&mut self, chunk: Chunk) -> Result<RecordBatch, SinkError> {
        let (round, batch) = match chunk {
            Chunk::Held(rows) => {
                return restore(rows, self.schema).map_err(|e| SinkError::Data {
                    table: self.table.clone(),
                    reason: format!("rows kept by date: {e}"),
                });
            }
            Chunk::OnDisk(round, batch) => (round, batch),
        };
        let path = &self.paths[round];
        let io = |e: ArrowError| SinkError::Io { path: path.clone(), source: std::io::Error::other(e) };
        let reader = &mut self.readers[round];
        reader.set_index(batch).map_err(io)?;
        match reader.next() {
            Some(rows) => restore(rows.map_err(io)?, self.schema).map_err(io),
            None => Err(io(ArrowError::IpcError(format!("record batch {batch} is missing")))),
        }
    }
}

/// `rows` of a round, as the table's `schema` has them: a column NULL in every row of the
/// round was kept as Arrow's `Null` type, without values.
fn restore(rows: RecordBatch, schema: &SchemaRef) -> Result<RecordBatch, ArrowError> {
    let columns = (schema.fields().iter().zip(rows.columns()))
        .map(|(field, column)| match column.data_type() {
            DataType::Null if field.data_type() != &DataType::Null => new_null_array(field.data_type(), column.len()),
            _ => column.clone(),
        })
        .collect();
    RecordBatch::try_new(schema.clone(), columns)
}

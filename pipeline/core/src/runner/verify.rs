//! Before reading: is the source still the one the checkpoints and the sink were made from?
//!
//! At the start of a run, per table, against what [`SourceState`] kept from earlier runs:
//! - the columns: one dropped, renamed or retyped stops the table (see
//!   [`crate::schema::Evolution`]), unless `--accept-schema-change`;
//! - the server's identity, and the table's newest cursor against its checkpoint: another
//!   server, or a source whose newest row is older than the checkpoint (restored from a
//!   backup), stops the table unless `--accept-source-reset`, which reads it again from the
//!   start.
//!
//! During a run the extractor checks the columns before each pass (the source's `begin_pass`)
//! and the server and newest cursor again whenever a read succeeded after failing, which is
//! how a failover or a restore under a running daemon shows.

use crate::checkpoint::{Checkpoint, CheckpointStore};
use crate::cursor::Position;
use crate::schema::Evolution;
use crate::source::{Source, SourceError};
use crate::source_state::SourceState;

use super::{RunError, RunOptions};

/// Checks every table at the start of a run; accepted resets rewind `checkpoints` (and the
/// store). Returns, per table, the error that stops it before anything is read.
pub(super) async fn at_start<Src: Source, St: CheckpointStore>(
    source: &mut Src,
    store: &St,
    checkpoints: &mut [Checkpoint],
    options: &RunOptions,
) -> Result<Vec<Option<SourceError>>, RunError> {
    let tables = source.tables().to_vec();
    let mut stopped: Vec<Option<SourceError>> = tables.iter().map(|_| None).collect();
    let Some(state) = &options.source_state else { return Ok(stopped) };
    let server = source.server_id().await?;
    let other_server = match (state.server(), &server) {
        (Some(was), Some(now)) if &was != now => {
            Some(format!("the source is another server (server id {was}, now {now})"))
        }
        _ => None,
    };
    for (i, table) in tables.iter().enumerate() {
        // What changed since the last run; `None`: never seen.
        let evolution = state.schema(&table.id).map(|seen| seen.evolution(table));
        if let Some(evolution) = &evolution {
            match evolution {
                Evolution::Breaking(change) if !options.accept_schema_change => {
                    let change = change.clone();
                    stopped[i] = Some(SourceError::SchemaChanged { table: table.id.clone(), change });
                    continue;
                }
                Evolution::Breaking(change) => {
                    tracing::warn!(table = %table.id, %change, "schema change accepted (--accept-schema-change)");
                }
                Evolution::Added(columns) => tracing::info!(table = %table.id, ?columns, "the table has new columns"),
                Evolution::Same => {}
            }
        }
        let reset = match &other_server {
            Some(what) => Some(what.clone()),
            None => went_back(source, i, &checkpoints[i].position).await?,
        };
        if let Some(what) = reset {
            if !options.accept_source_reset {
                stopped[i] = Some(SourceError::SourceReset { table: table.id.clone(), what });
                continue;
            }
            tracing::warn!(table = %table.id, %what, "source reset accepted (--accept-source-reset): reading the table again from the start");
            store.reset(&table.id).await?;
            checkpoints[i] = Checkpoint::default();
        }
        if evolution != Some(Evolution::Same) {
            state.set_schema(table)?;
        }
    }
    let refused = stopped.iter().any(|s| matches!(s, Some(SourceError::SourceReset { .. })));
    if let Some(now) = &server
        && state.server().as_ref() != Some(now)
        && !refused
    {
        state.set_server(now)?;
    }
    Ok(stopped)
}

/// During a run, after reads of `tables()[i]` recovered from failures: the same server, and
/// not gone back behind `position`? `Some(what)` when not.
pub(super) async fn after_recovery<Src: Source>(
    source: &mut Src,
    i: usize,
    position: &Position,
    state: Option<&SourceState>,
) -> Result<Option<String>, SourceError> {
    if let Some(state) = state
        && let (Some(was), Some(now)) = (state.server(), source.server_id().await?)
        && was != now
    {
        return Ok(Some(format!("the source is another server (server id {was}, now {now})")));
    }
    went_back(source, i, position).await
}

/// `Some(what)` when the table's newest cursor is older than `position`'s.
async fn went_back<Src: Source>(
    source: &mut Src,
    i: usize,
    position: &Position,
) -> Result<Option<String>, SourceError> {
    let Position::At { cursor, .. } = position else { return Ok(None) };
    let newest = source.highest_cursor(i).await?;
    let column = &source.tables()[i].cursor_column().name;
    Ok(match newest {
        Some(n) if n >= *cursor => None,
        Some(n) => Some(format!(
            "its newest {column} is {n}, older than the checkpoint's {cursor}: was the source restored from a backup?"
        )),
        None => Some(format!("it has no row with a {column} any more, but the checkpoint is at {cursor}")),
    })
}

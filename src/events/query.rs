//! Reading the log: filters, cursor paging (newest first), one event by id, the export.

use super::{Event, EventLog, Kind, Outcome, LOG_KEY};
use crate::store::{parse_log_id, Store, StoreError};

/// Entries read per store round trip while filtering.
const SCAN_BATCH: usize = 200;
/// Entries one page may look through before it answers with what it found and a cursor.
const SCAN_LIMIT: usize = 10_000;

/// What to keep. Every set field must match; `since` and `until` are RFC 3339 times.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub kind: Option<Kind>,
    pub client: Option<String>,
    pub organization: Option<String>,
    pub outcome: Option<Outcome>,
    pub reason: Option<String>,
    pub since_ms: Option<u64>,
    pub until_ms: Option<u64>,
    /// Only events newer than this log id (`<ms>-<seq>`): what a live view has not seen yet.
    pub after: Option<(u64, u64)>,
}

impl Filter {
    fn keeps(&self, event: &Event) -> bool {
        let same = |wanted: &Option<String>, value: &Option<String>| wanted.is_none() || wanted == value;
        self.kind.is_none_or(|kind| kind == event.kind)
            && self.outcome.is_none_or(|outcome| outcome == event.outcome)
            && same(&self.client, &event.client)
            && same(&self.organization, &event.organization)
            && same(&self.reason, &event.reason)
    }
}

/// Events newest first, and where to go on from (absent on the last page).
#[derive(Debug, Clone, Default)]
pub struct Page {
    pub events: Vec<Event>,
    pub next_cursor: Option<String>,
}

impl EventLog {
    /// Up to `limit` events matching `filter`, older than `cursor` (an event id).
    pub async fn page(&self, filter: &Filter, limit: usize, cursor: Option<&str>) -> Result<Page, StoreError> {
        // The newest position: the cursor, else just after `until`.
        let mut before = match (cursor.filter(|c| parse_log_id(c).is_some()), filter.until_ms) {
            (Some(cursor), _) => Some(cursor.to_owned()),
            (None, Some(until)) => Some(format!("{}-0", until.saturating_add(1))),
            (None, None) => None,
        };
        let since = filter.since_ms.unwrap_or(0).max(filter.after.map_or(0, |(ms, _)| ms));
        let mut page = Page::default();
        let mut scanned = 0;
        loop {
            let batch = self.store.log_range(LOG_KEY, before.as_deref(), since, SCAN_BATCH).await?;
            let exhausted = batch.len() < SCAN_BATCH;
            for (id, bytes) in batch {
                scanned += 1;
                before = Some(id.clone());
                if filter.after.is_some_and(|after| parse_log_id(&id).is_none_or(|id| id <= after)) {
                    continue; // the same millisecond as `after`, not newer
                }
                // An entry that does not read as an event (a newer version's?) is skipped.
                let Ok(mut event) = serde_json::from_slice::<Event>(&bytes) else { continue };
                event.id = id;
                if filter.keeps(&event) {
                    page.events.push(event);
                    if page.events.len() == limit {
                        page.next_cursor = before;
                        return Ok(page);
                    }
                }
            }
            if exhausted {
                return Ok(page);
            }
            if scanned >= SCAN_LIMIT {
                // Long stretches that match nothing: answer what was found, and where to go on.
                page.next_cursor = before;
                return Ok(page);
            }
        }
    }

    /// The event with this id, if the log still holds it.
    pub async fn get(&self, id: &str) -> Result<Option<Event>, StoreError> {
        let Some((ms, seq)) = parse_log_id(id) else { return Ok(None) };
        let after = format!("{ms}-{}", seq.saturating_add(1));
        let found = self.store.log_range(LOG_KEY, Some(&after), ms, 1).await?;
        Ok(found.into_iter().find(|(found, _)| found == id).and_then(|(id, bytes)| {
            let mut event: Event = serde_json::from_slice(&bytes).ok()?;
            event.id = id;
            Some(event)
        }))
    }
}

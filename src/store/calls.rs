//! Calls: the CDR of every call, its transcript turns and its recordings.

use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::any::AnyRow;

use super::accounts::json;
use super::ids::new_id;
use super::{AccountId, Page, PageRequest, Store, StoreError, corrupt, list_page, now_ms};

/// Who placed the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// The lead (or a carrier) called us.
    Inbound,
    /// We called the lead.
    Outbound,
}

impl Direction {
    fn as_str(self) -> &'static str {
        match self {
            Self::Inbound => "inbound",
            Self::Outbound => "outbound",
        }
    }
}

/// A finished (or running) call's record.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CallRecordRow {
    /// Its id.
    pub id: String,
    /// Inbound or outbound.
    pub direction: Direction,
    /// Caller (URI or E.164).
    pub from: String,
    /// Callee (URI or E.164).
    pub to: String,
    /// The trunk it came in or went out on.
    pub trunk: Option<String>,
    /// The campaign that placed it.
    pub campaign_id: Option<String>,
    /// The lead it was for.
    pub lead_id: Option<String>,
    /// SIP Call-ID.
    pub sip_call_id: Option<String>,
    /// `ringing`, `answered`, `ended`.
    pub status: String,
    /// When the INVITE was received or sent, epoch ms.
    pub setup_at: i64,
    /// When it started ringing.
    pub ring_at: Option<i64>,
    /// When it was answered.
    pub answer_at: Option<i64>,
    /// When it ended.
    pub end_at: Option<i64>,
    /// Answer to end, ms.
    pub duration_ms: Option<i64>,
    /// What the app concluded (`completed`, `agent_error`, `media timeout`...).
    pub outcome: Option<String>,
    /// The agent's disposition (`booked`, `not_interested`, `do_not_call`...).
    pub disposition: Option<String>,
    /// The agent's notes.
    pub notes: Option<String>,
    /// Why it ended (`remote_bye`, `local_bye`, `cancelled`...).
    pub hangup_cause: Option<String>,
    /// The final SIP status when it failed.
    pub sip_code: Option<i32>,
    /// Media counters and quality (JSON).
    pub media_stats: serde_json::Value,
    /// Per-turn latency records (JSON array).
    pub latency: serde_json::Value,
    /// Tool calls the agent made (JSON array).
    pub tool_calls: serde_json::Value,
}

/// One turn of a transcript.
#[derive(utoipa::ToSchema, Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TranscriptTurn {
    /// Order in the call.
    pub seq: i32,
    /// `agent` or `caller`.
    pub speaker: String,
    /// What was said (for the agent: what the caller heard).
    pub text: String,
    /// Start, ms from answer.
    pub start_ms: i64,
    /// End, ms from answer.
    pub end_ms: i64,
    /// The agent was cut off by barge-in.
    pub interrupted: bool,
}

/// A stored recording's metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecordingRow {
    /// Its id.
    pub id: String,
    /// The call recorded.
    pub call_id: String,
    /// Key in the recording storage.
    pub storage_key: String,
    /// `wav` or `ogg`.
    pub format: String,
    /// Plain audio size in bytes.
    pub bytes: i64,
    /// Duration, ms.
    pub duration_ms: i64,
    /// Master key id its data key is wrapped with.
    pub key_id: String,
    /// When it was stored, epoch ms.
    pub created_at: i64,
}

const CALL_COLUMNS: &str = "id, direction, from_number, to_number, trunk, campaign_id, lead_id, \
    sip_call_id, status, setup_at, ring_at, answer_at, end_at, duration_ms, outcome, disposition, \
    notes, hangup_cause, sip_code, media_stats, latency, tool_calls";
const RECORDING_COLUMNS: &str =
    "id, call_id, storage_key, format, bytes, duration_ms, key_id, created_at";

fn json_col(row: &AnyRow, col: &str) -> Result<serde_json::Value, StoreError> {
    let text: String = row.try_get(col)?;
    serde_json::from_str(&text).map_err(|e| corrupt("calls", e))
}

fn call_from_row(row: &AnyRow) -> Result<CallRecordRow, StoreError> {
    let direction: String = row.try_get("direction")?;
    Ok(CallRecordRow {
        id: row.try_get("id")?,
        direction: match direction.as_str() {
            "inbound" => Direction::Inbound,
            "outbound" => Direction::Outbound,
            other => return Err(corrupt("calls", format!("direction {other:?}"))),
        },
        from: row.try_get("from_number")?,
        to: row.try_get("to_number")?,
        trunk: row.try_get("trunk")?,
        campaign_id: row.try_get("campaign_id")?,
        lead_id: row.try_get("lead_id")?,
        sip_call_id: row.try_get("sip_call_id")?,
        status: row.try_get("status")?,
        setup_at: row.try_get("setup_at")?,
        ring_at: row.try_get("ring_at")?,
        answer_at: row.try_get("answer_at")?,
        end_at: row.try_get("end_at")?,
        duration_ms: row.try_get("duration_ms")?,
        outcome: row.try_get("outcome")?,
        disposition: row.try_get("disposition")?,
        notes: row.try_get("notes")?,
        hangup_cause: row.try_get("hangup_cause")?,
        sip_code: row.try_get("sip_code")?,
        media_stats: json_col(row, "media_stats")?,
        latency: json_col(row, "latency")?,
        tool_calls: json_col(row, "tool_calls")?,
    })
}

fn recording_from_row(row: &AnyRow) -> Result<RecordingRow, StoreError> {
    Ok(RecordingRow {
        id: row.try_get("id")?,
        call_id: row.try_get("call_id")?,
        storage_key: row.try_get("storage_key")?,
        format: row.try_get("format")?,
        bytes: row.try_get("bytes")?,
        duration_ms: row.try_get("duration_ms")?,
        key_id: row.try_get("key_id")?,
        created_at: row.try_get("created_at")?,
    })
}

impl Store {
    /// Stores a call record (id assigned here when empty); returns its id.
    pub async fn insert_call(
        &self,
        account: &AccountId,
        c: &CallRecordRow,
    ) -> Result<String, StoreError> {
        let id = if c.id.is_empty() {
            new_id("call", c.setup_at)
        } else {
            c.id.clone()
        };
        sqlx::query(
            "INSERT INTO calls (id, account_id, direction, from_number, to_number, trunk, campaign_id, \
             lead_id, sip_call_id, status, setup_at, ring_at, answer_at, end_at, duration_ms, outcome, \
             disposition, notes, hangup_cause, sip_code, media_stats, latency, tool_calls, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, \
             $19, $20, $21, $22, $23, $24)",
        )
        .bind(&id)
        .bind(account.as_str())
        .bind(c.direction.as_str())
        .bind(&c.from)
        .bind(&c.to)
        .bind(c.trunk.clone())
        .bind(c.campaign_id.clone())
        .bind(c.lead_id.clone())
        .bind(c.sip_call_id.clone())
        .bind(&c.status)
        .bind(c.setup_at)
        .bind(c.ring_at)
        .bind(c.answer_at)
        .bind(c.end_at)
        .bind(c.duration_ms)
        .bind(c.outcome.clone())
        .bind(c.disposition.clone())
        .bind(c.notes.clone())
        .bind(c.hangup_cause.clone())
        .bind(c.sip_code)
        .bind(json(&c.media_stats))
        .bind(json(&c.latency))
        .bind(json(&c.tool_calls))
        .bind(now_ms())
        .execute(self.pool())
        .await?;
        Ok(id)
    }

    /// The call `id` of `account`.
    pub async fn call(&self, account: &AccountId, id: &str) -> Result<CallRecordRow, StoreError> {
        let row = sqlx::query(sql!(
            "SELECT {CALL_COLUMNS} FROM calls WHERE account_id = $1 AND id = $2"
        ))
        .bind(account.as_str())
        .bind(id)
        .fetch_one(self.pool())
        .await?;
        call_from_row(&row)
    }

    /// The account's calls, newest first (filter: status).
    pub async fn list_calls(
        &self,
        account: &AccountId,
        page: &PageRequest,
    ) -> Result<Page<CallRecordRow>, StoreError> {
        let rows = list_page(
            self,
            "calls",
            CALL_COLUMNS,
            account,
            page,
            Some("status"),
            None,
        )
        .await?;
        let rows = rows
            .iter()
            .map(call_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Page::from_rows(rows, page.limit(), |c| &c.id))
    }

    /// Appends a call's transcript turns.
    pub async fn add_transcript(
        &self,
        account: &AccountId,
        call_id: &str,
        turns: &[TranscriptTurn],
    ) -> Result<(), StoreError> {
        let mut tx = self.pool().begin().await?;
        let now = now_ms();
        for t in turns {
            sqlx::query(
                "INSERT INTO transcript_turns (id, account_id, call_id, seq, speaker, text, start_ms, \
                 end_ms, interrupted, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            )
            .bind(new_id("turn", now))
            .bind(account.as_str())
            .bind(call_id)
            .bind(t.seq)
            .bind(&t.speaker)
            .bind(&t.text)
            .bind(t.start_ms)
            .bind(t.end_ms)
            .bind(t.interrupted)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// A call's transcript in order (404 when the call is not the account's).
    pub async fn transcript(
        &self,
        account: &AccountId,
        call_id: &str,
    ) -> Result<Vec<TranscriptTurn>, StoreError> {
        self.call(account, call_id).await?;
        let rows = sqlx::query(
            "SELECT seq, speaker, text, start_ms, end_ms, \
             CASE WHEN interrupted THEN 1 ELSE 0 END AS interrupted FROM transcript_turns \
             WHERE account_id = $1 AND call_id = $2 ORDER BY seq",
        )
        .bind(account.as_str())
        .bind(call_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(TranscriptTurn {
                    seq: r.try_get("seq")?,
                    speaker: r.try_get("speaker")?,
                    text: r.try_get("text")?,
                    start_ms: r.try_get("start_ms")?,
                    end_ms: r.try_get("end_ms")?,
                    interrupted: r.try_get::<i32, _>("interrupted")? != 0,
                })
            })
            .collect()
    }

    /// Records a stored recording of `call_id`.
    pub async fn insert_recording(
        &self,
        account: &AccountId,
        r: &RecordingRow,
    ) -> Result<String, StoreError> {
        let id = new_id("rec", r.created_at);
        sqlx::query(
            "INSERT INTO recordings (id, account_id, call_id, storage_key, format, bytes, duration_ms, \
             key_id, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&id)
        .bind(account.as_str())
        .bind(&r.call_id)
        .bind(&r.storage_key)
        .bind(&r.format)
        .bind(r.bytes)
        .bind(r.duration_ms)
        .bind(&r.key_id)
        .bind(r.created_at)
        .execute(self.pool())
        .await?;
        Ok(id)
    }

    /// The recording `id` of `account`.
    pub async fn recording(
        &self,
        account: &AccountId,
        id: &str,
    ) -> Result<RecordingRow, StoreError> {
        let row = sqlx::query(sql!(
            "SELECT {RECORDING_COLUMNS} FROM recordings WHERE account_id = $1 AND id = $2"
        ))
        .bind(account.as_str())
        .bind(id)
        .fetch_one(self.pool())
        .await?;
        recording_from_row(&row)
    }

    /// The account's recordings, newest first.
    pub async fn list_recordings(
        &self,
        account: &AccountId,
        page: &PageRequest,
    ) -> Result<Page<RecordingRow>, StoreError> {
        let rows = list_page(
            self,
            "recordings",
            RECORDING_COLUMNS,
            account,
            page,
            None,
            None,
        )
        .await?;
        let rows = rows
            .iter()
            .map(recording_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Page::from_rows(rows, page.limit(), |r| &r.id))
    }
}

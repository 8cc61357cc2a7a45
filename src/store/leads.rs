//! Leads (the people a campaign calls) and their append-only consent history.

use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::any::AnyRow;

use super::ids::new_id;
use super::sqlite_bulk::SqliteLeadWriter;
use super::{AccountId, Engine, Page, PageRequest, Store, StoreError, corrupt, list_page, now_ms};

pub use crate::leads::csv_import::ConsentStatus;

/// The fields of a lead a client provides.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LeadFields {
    /// Campaign the lead belongs to (empty: none yet).
    pub campaign_id: Option<String>,
    /// E.164 number (normalized before it gets here).
    pub phone: String,
    /// Given name.
    pub first_name: Option<String>,
    /// Family name.
    pub last_name: Option<String>,
    /// Email address.
    pub email: Option<String>,
    /// IANA time zone.
    pub timezone: Option<String>,
    /// Where the timezone came from: `explicit`, `inferred`, `account_default`.
    pub timezone_source: Option<String>,
    /// Consent given.
    pub consent_status: Option<ConsentStatus>,
    /// Where consent was collected (form URL, campaign...).
    pub consent_source: Option<String>,
    /// When consent was given, epoch ms.
    pub consent_at: Option<i64>,
    /// The consent language shown.
    pub consent_text: Option<String>,
    /// The customer's own id for the lead.
    pub external_id: Option<String>,
    /// Any other columns.
    pub custom: serde_json::Map<String, serde_json::Value>,
}

impl LeadFields {
    /// The consent status as stored (`none` when not given).
    pub(crate) fn consent(&self) -> ConsentStatus {
        self.consent_status.unwrap_or(ConsentStatus::None)
    }

    /// Where the timezone came from, as stored (`account_default` when not given).
    pub(crate) fn timezone_source_or_default(&self) -> &str {
        self.timezone_source.as_deref().unwrap_or("account_default")
    }

    /// The custom fields as the stored JSON text.
    pub(crate) fn custom_json(&self) -> String {
        // The same compact text as `Value::Object(custom).to_string()`, without the copy.
        serde_json::to_string(&self.custom).unwrap_or_else(|_| "{}".to_owned())
    }
}

/// A lead row.
#[derive(Debug, Clone, PartialEq)]
pub struct Lead {
    /// Its id.
    pub id: String,
    /// Its fields.
    pub fields: LeadFields,
    /// Dialling state: `new`, `dnc`, ...
    pub status: String,
    /// Creation time, epoch ms.
    pub created_at: i64,
    /// Last change, epoch ms.
    pub updated_at: i64,
}

/// One entry of a lead's consent history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConsentEvent {
    /// Its id.
    pub id: String,
    /// The lead.
    pub lead_id: String,
    /// The consent status from this point on.
    pub status: ConsentStatus,
    /// Where it came from (`import`, `api`, `call`, a form URL...).
    pub source: Option<String>,
    /// The consent language, if any.
    pub text: Option<String>,
    /// The call in which it was captured (opt-outs).
    pub call_id: Option<String>,
    /// When, epoch ms.
    pub at: i64,
}

/// The outcome of inserting a batch of leads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchOutcome {
    /// Rows inserted.
    pub imported: usize,
    /// Indexes (in the batch) of rows skipped because the number is already in the campaign.
    pub duplicates: Vec<usize>,
}

const COLUMNS: &str = "id, campaign_id, phone, first_name, last_name, email, timezone, timezone_source, \
    consent_status, consent_source, consent_at, consent_text, external_id, custom, status, created_at, updated_at";

fn from_row(row: &AnyRow) -> Result<Lead, StoreError> {
    let campaign: String = row.try_get("campaign_id")?;
    let consent: String = row.try_get("consent_status")?;
    let custom: String = row.try_get("custom")?;
    let tz_source: String = row.try_get("timezone_source")?;
    Ok(Lead {
        id: row.try_get("id")?,
        fields: LeadFields {
            campaign_id: (!campaign.is_empty()).then_some(campaign),
            phone: row.try_get("phone")?,
            first_name: row.try_get("first_name")?,
            last_name: row.try_get("last_name")?,
            email: row.try_get("email")?,
            timezone: row.try_get("timezone")?,
            timezone_source: Some(tz_source),
            consent_status: Some(
                consent
                    .parse::<ConsentStatus>()
                    .map_err(|()| corrupt("leads", "consent_status"))?,
            ),
            consent_source: row.try_get("consent_source")?,
            consent_at: row.try_get("consent_at")?,
            consent_text: row.try_get("consent_text")?,
            external_id: row.try_get("external_id")?,
            custom: serde_json::from_str(&custom).map_err(|e| corrupt("leads", e))?,
        },
        status: row.try_get("status")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

async fn insert_one(
    conn: &mut sqlx::AnyConnection,
    account: &AccountId,
    f: &LeadFields,
    status: &str,
    now: i64,
) -> Result<Option<String>, StoreError> {
    let id = new_id("lead", now);
    let consent = f.consent();
    let query = sqlx::query(
        "INSERT INTO leads (id, account_id, campaign_id, phone, first_name, last_name, email, timezone, \
         timezone_source, consent_status, consent_source, consent_at, consent_text, external_id, custom, \
         status, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $17) \
         ON CONFLICT (account_id, campaign_id, phone) DO NOTHING",
    )
    .bind(&id)
    .bind(account.as_str())
    .bind(f.campaign_id.clone().unwrap_or_default());
    let done = bind_fields(query, f)
        .bind(status)
        .bind(now)
        .execute(&mut *conn)
        .await?;
    if done.rows_affected() == 0 {
        return Ok(None);
    }
    if consent != ConsentStatus::None {
        append_consent(
            conn,
            account,
            &id,
            consent,
            f.consent_source.as_deref(),
            f.consent_text.as_deref(),
            None,
            f.consent_at.unwrap_or(now),
        )
        .await?;
    }
    Ok(Some(id))
}

/// Rows per multi-row `INSERT` of `insert_leads`: `PARAMS_PER_LEAD` parameters a row, far
/// under SQLite's 32766 and PostgreSQL's 65535 bound parameters; one prepared statement per
/// size (every full chunk, then the rest).
const ROWS_PER_INSERT: usize = 100;
/// Parameters bound per row by `insert_chunk`.
const PARAMS_PER_LEAD: usize = 17;
/// Parameters bound per row by `insert_consents`.
const PARAMS_PER_CONSENT: usize = 7;
const _: () = assert!(ROWS_PER_INSERT * PARAMS_PER_LEAD <= 32_766);

/// `VALUES` tuples for `rows` rows of `per_row` parameters each, then `tail` in every tuple.
/// SQLite gets anonymous `?` (sqlx looks up each named parameter's name, which SQLite finds by
/// a linear scan: quadratic in a statement of a thousand `$N`); PostgreSQL gets `$1, $2, ...`.
fn values_sql(sql: &mut String, engine: Engine, rows: usize, per_row: usize, tail: &str) {
    use std::fmt::Write;
    let mut n = 0;
    for r in 0..rows {
        sql.push_str(if r == 0 { "(" } else { ", (" });
        for k in 0..per_row {
            if k > 0 {
                sql.push_str(", ");
            }
            n += 1;
            match engine {
                Engine::Sqlite => sql.push('?'),
                _ => {
                    let _ = write!(sql, "${n}");
                }
            }
        }
        sql.push_str(tail);
        sql.push(')');
    }
}

/// Inserts `chunk` (at most `ROWS_PER_INSERT` leads) with status `new` in one statement; the
/// new id of each row, `None` for a row whose number was already in its campaign (or earlier
/// in the chunk).
async fn insert_chunk(
    conn: &mut sqlx::AnyConnection,
    engine: Engine,
    account: &AccountId,
    chunk: &[LeadFields],
    now: i64,
) -> Result<Vec<Option<String>>, StoreError> {
    let mut sql = String::from(
        "INSERT INTO leads (id, campaign_id, phone, first_name, last_name, email, timezone, \
         timezone_source, consent_status, consent_source, consent_at, consent_text, external_id, \
         custom, account_id, created_at, updated_at, status) VALUES ",
    );
    values_sql(&mut sql, engine, chunk.len(), PARAMS_PER_LEAD, ", 'new'");
    sql.push_str(" ON CONFLICT (account_id, campaign_id, phone) DO NOTHING RETURNING id");
    let ids: Vec<String> = chunk.iter().map(|_| new_id("lead", now)).collect();
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
    for (id, f) in ids.iter().zip(chunk) {
        query = bind_fields(
            query
                .bind(id.clone())
                .bind(f.campaign_id.clone().unwrap_or_default()),
            f,
        )
        .bind(account.as_str())
        .bind(now)
        .bind(now);
    }
    let rows = query.fetch_all(&mut *conn).await?;
    let mut returned = std::collections::HashSet::with_capacity(rows.len());
    for row in &rows {
        returned.insert(row.try_get::<String, _>("id")?);
    }
    Ok(ids
        .into_iter()
        .map(|id| returned.contains(&id).then_some(id))
        .collect())
}

/// Appends the import consent event of each new lead (`(lead id, fields)`), in one `INSERT`.
async fn insert_consents(
    conn: &mut sqlx::AnyConnection,
    engine: Engine,
    account: &AccountId,
    leads: &[(&str, &LeadFields)],
    now: i64,
) -> Result<(), StoreError> {
    let mut sql = String::from(
        "INSERT INTO consent_events (id, account_id, lead_id, status, source, text, at, call_id) \
         VALUES ",
    );
    values_sql(&mut sql, engine, leads.len(), PARAMS_PER_CONSENT, ", NULL");
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
    for (lead_id, f) in leads {
        let consent = f.consent();
        query = query
            .bind(new_id("cns", now))
            .bind(account.as_str())
            .bind(lead_id.to_string())
            .bind(consent.as_str())
            .bind(f.consent_source.clone())
            .bind(f.consent_text.clone())
            .bind(f.consent_at.unwrap_or(now));
    }
    query.execute(&mut *conn).await?;
    Ok(())
}

/// Binds a lead's fields, phone first, in the column order both `INSERT` and `UPDATE` use.
fn bind_fields<'q>(
    query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>,
    f: &LeadFields,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
    let consent = f.consent();
    query
        .bind(f.phone.clone())
        .bind(f.first_name.clone())
        .bind(f.last_name.clone())
        .bind(f.email.clone())
        .bind(f.timezone.clone())
        .bind(f.timezone_source_or_default().to_owned())
        .bind(consent.as_str())
        .bind(f.consent_source.clone())
        .bind(f.consent_at)
        .bind(f.consent_text.clone())
        .bind(f.external_id.clone())
        .bind(f.custom_json())
}

#[allow(clippy::too_many_arguments)]
async fn append_consent(
    conn: &mut sqlx::AnyConnection,
    account: &AccountId,
    lead_id: &str,
    status: ConsentStatus,
    source: Option<&str>,
    text: Option<&str>,
    call_id: Option<&str>,
    at: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO consent_events (id, account_id, lead_id, status, source, text, call_id, at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(new_id("cns", now_ms()))
    .bind(account.as_str())
    .bind(lead_id)
    .bind(status.as_str())
    .bind(source.map(str::to_owned))
    .bind(text.map(str::to_owned))
    .bind(call_id.map(str::to_owned))
    .bind(at)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

impl Store {
    /// Creates one lead; a number already in the campaign is a conflict.
    pub async fn create_lead(
        &self,
        account: &AccountId,
        f: &LeadFields,
    ) -> Result<Lead, StoreError> {
        if let Some(c) = &f.campaign_id {
            self.campaign(account, c).await?;
        }
        let mut tx = self.pool().begin().await?;
        let id = insert_one(&mut tx, account, f, "new", now_ms()).await?;
        tx.commit().await?;
        match id {
            Some(id) => self.lead(account, &id).await,
            None => Err(StoreError::Conflict(format!(
                "{} is already a lead of this campaign",
                f.phone
            ))),
        }
    }

    /// Inserts a batch of leads in one transaction; duplicates (a number already in the
    /// campaign, or earlier in the batch) are skipped and reported. An import of many batches
    /// should use one [`Store::lead_writer`] instead.
    pub async fn insert_leads(
        &self,
        account: &AccountId,
        batch: &[LeadFields],
    ) -> Result<BatchOutcome, StoreError> {
        self.lead_writer(account.clone())
            .insert(batch.to_vec())
            .await
    }

    /// A writer for one import's batches into `account`: on a SQLite file, a dedicated
    /// connection on a blocking thread (`sqlite_bulk`); otherwise the pool.
    pub fn lead_writer(&self, account: AccountId) -> LeadWriter {
        LeadWriter {
            store: self.clone(),
            account,
            sqlite: None,
        }
    }

    /// `insert_leads` through the pool, 100 rows a statement (PostgreSQL, in-memory SQLite).
    async fn insert_leads_pooled(
        &self,
        account: &AccountId,
        batch: &[LeadFields],
    ) -> Result<BatchOutcome, StoreError> {
        let mut out = BatchOutcome::default();
        let mut tx = self.pool().begin().await?;
        let now = now_ms();
        for (n, chunk) in batch.chunks(ROWS_PER_INSERT).enumerate() {
            let first = n * ROWS_PER_INSERT;
            let inserted = insert_chunk(&mut tx, self.engine(), account, chunk, now).await?;
            out.imported += inserted.iter().filter(|i| i.is_some()).count();
            out.duplicates.extend(
                inserted
                    .iter()
                    .enumerate()
                    .filter(|(_, id)| id.is_none())
                    .map(|(i, _)| first + i),
            );
            let consents: Vec<(&str, &LeadFields)> = inserted
                .iter()
                .zip(chunk)
                .filter_map(|(id, f)| Some((id.as_deref()?, f)))
                .filter(|(_, f)| f.consent() != ConsentStatus::None)
                .collect();
            if !consents.is_empty() {
                insert_consents(&mut tx, self.engine(), account, &consents, now).await?;
            }
        }
        tx.commit().await?;
        Ok(out)
    }

    /// The lead `id` of `account`.
    pub async fn lead(&self, account: &AccountId, id: &str) -> Result<Lead, StoreError> {
        let row = sqlx::query(sql!(
            "SELECT {COLUMNS} FROM leads WHERE account_id = $1 AND id = $2"
        ))
        .bind(account.as_str())
        .bind(id)
        .fetch_one(self.pool())
        .await?;
        from_row(&row)
    }

    /// The account's leads, newest first (filters: status, campaign).
    pub async fn list_leads(
        &self,
        account: &AccountId,
        page: &PageRequest,
        campaign_id: Option<&str>,
    ) -> Result<Page<Lead>, StoreError> {
        let extra = campaign_id.map(|c| ("campaign_id", c));
        let rows = list_page(self, "leads", COLUMNS, account, page, Some("status"), extra).await?;
        let rows = rows.iter().map(from_row).collect::<Result<Vec<_>, _>>()?;
        Ok(Page::from_rows(rows, page.limit(), |l| &l.id))
    }

    /// Replaces a lead's fields (a correction); a consent change is appended to its history.
    pub async fn update_lead(
        &self,
        account: &AccountId,
        id: &str,
        f: &LeadFields,
        consent_source: &str,
    ) -> Result<Lead, StoreError> {
        let before = self.lead(account, id).await?;
        let mut tx = self.pool().begin().await?;
        let consent = f.consent();
        let query = sqlx::query(
            "UPDATE leads SET phone = $1, first_name = $2, last_name = $3, email = $4, timezone = $5, \
             timezone_source = $6, consent_status = $7, consent_source = $8, consent_at = $9, \
             consent_text = $10, external_id = $11, custom = $12, updated_at = $13 \
             WHERE account_id = $14 AND id = $15",
        );
        bind_fields(query, f)
            .bind(now_ms())
            .bind(account.as_str())
            .bind(id)
            .execute(&mut *tx)
            .await?;
        if before.fields.consent_status != Some(consent) {
            append_consent(
                &mut tx,
                account,
                id,
                consent,
                Some(f.consent_source.as_deref().unwrap_or(consent_source)),
                f.consent_text.as_deref(),
                None,
                now_ms(),
            )
            .await?;
        }
        tx.commit().await?;
        self.lead(account, id).await
    }

    /// A lead's consent history, oldest first.
    pub async fn consent_history(
        &self,
        account: &AccountId,
        lead_id: &str,
    ) -> Result<Vec<ConsentEvent>, StoreError> {
        self.lead(account, lead_id).await?;
        let rows = sqlx::query(
            "SELECT id, lead_id, status, source, text, call_id, at FROM consent_events \
             WHERE account_id = $1 AND lead_id = $2 ORDER BY id",
        )
        .bind(account.as_str())
        .bind(lead_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| {
                let status: String = row.try_get("status")?;
                Ok(ConsentEvent {
                    id: row.try_get("id")?,
                    lead_id: row.try_get("lead_id")?,
                    status: status
                        .parse::<ConsentStatus>()
                        .map_err(|()| corrupt("consent_events", "status"))?,
                    source: row.try_get("source")?,
                    text: row.try_get("text")?,
                    call_id: row.try_get("call_id")?,
                    at: row.try_get("at")?,
                })
            })
            .collect()
    }

    /// Deletes a lead and its consent history.
    pub async fn delete_lead(&self, account: &AccountId, id: &str) -> Result<(), StoreError> {
        let mut tx = self.pool().begin().await?;
        sqlx::query("DELETE FROM consent_events WHERE account_id = $1 AND lead_id = $2")
            .bind(account.as_str())
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let done = sqlx::query("DELETE FROM leads WHERE account_id = $1 AND id = $2")
            .bind(account.as_str())
            .bind(id)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        tx.commit().await?;
        Ok(())
    }
}

/// Inserts one import's batches into one account, each batch in its own transaction (see
/// [`Store::lead_writer`]).
pub struct LeadWriter {
    store: Store,
    account: AccountId,
    /// The open bulk connection between batches (SQLite files only).
    sqlite: Option<SqliteLeadWriter>,
}

impl LeadWriter {
    /// Inserts `batch` (status `new`, with each consenting lead's first consent event);
    /// rows whose number is already in their campaign, or earlier in the batch, are skipped
    /// and reported by index.
    pub async fn insert(&mut self, batch: Vec<LeadFields>) -> Result<BatchOutcome, StoreError> {
        let Some(path) = self.store.sqlite_file.clone() else {
            return self.store.insert_leads_pooled(&self.account, &batch).await;
        };
        let writer = self.sqlite.take();
        let account = self.account.clone();
        let (writer, out) = tokio::task::spawn_blocking(move || {
            let mut writer = match writer {
                Some(w) => w,
                None => SqliteLeadWriter::open(&path)?,
            };
            let out = writer.insert(account.as_str(), &batch, now_ms());
            Ok::<_, StoreError>((writer, out))
        })
        .await
        .map_err(|_| StoreError::Db(sqlx::Error::WorkerCrashed))??;
        self.sqlite = Some(writer);
        out
    }
}

//! `crm_pull`: the connected Location's contacts, staged as a batch for
//! review (source `crm_pull`), through the same normalization, validation,
//! duplicate flagging and review as a CSV: each HighLevel contact becomes a
//! record under a fixed header ([`HEADER`], mapped like a CSV header) and
//! goes through the import's `Stager`, the daily import-row allowance and
//! the import's closing step.
//!
//! Pages of `POST /contacts/search` in order of last update (500 per page;
//! page numbers up to HighLevel's 10,000 records, `searchAfter` beyond),
//! each page's rows, progress and paging cursor committed together: a
//! killed run resumes after the last committed page and no row is staged
//! twice (the batch's `(import_id, row_number)` key refuses it anyway).
//!
//! Incremental: the first pull is full; later ones ask only for contacts
//! updated since the last pull's high-water mark (`crm_connections
//! .pulled_through`, moved forward when a pull ends), and a contact whose
//! content is what was last staged from it (`crm_pulled`, a hash per
//! HighLevel contact) is not staged again. Every request waits for
//! the Location's shared budget. Tags and custom fields are kept in the
//! row's extra data.

use crate::crm_push::CrmWork;
use crate::import::{close, open_batch};
use anyhow::Context;
use async_trait::async_trait;
use bizcontacts_domain::batch::{ImportStatus, Source};
use bizcontacts_domain::Permission;
use bizcontacts_domain::TenantId;
use bizcontacts_highlevel::{Client, SearchFrom};
use bizcontacts_ingest::{Layout, Stager};
use bizcontacts_queue::args::{JobArgs, Worker};
use bizcontacts_queue::handler::{JobContext, JobError, RetryPolicy, Starter};
use bizcontacts_queue::scheduler::Schedule;
use bizcontacts_store::crm;
use bizcontacts_store::imports::{self, NewImport, Progress};
use bizcontacts_store::staged_rows::{self, CopyRows};
use bizcontacts_store::{packages, tenants, usage};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// A webhook-started pull waits this long after the first contact event,
/// so that a burst of events for one Location becomes one pull.
pub const DEBOUNCE: Duration = Duration::from_secs(60);

/// Contacts per search page (HighLevel allows up to 500).
const PAGE: u32 = 500;

/// The record a HighLevel contact becomes, as a CSV header would name it.
pub const HEADER: [&str; 12] = [
    "Company",
    "First Name",
    "Last Name",
    "Email",
    "Phone",
    "Website",
    "Address",
    "City",
    "Postcode",
    "Region",
    "Country",
    "Notes",
];

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CrmPullArgs {
    /// The batch the pulled contacts are staged in; absent for pulls the
    /// platform starts (nightly, after webhooks): the job then makes its
    /// batch on its first run, keyed by the job, so a re-run finds it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub import_id: Option<Uuid>,
}

/// Nightly pulls: 02:00 UTC, each connected tenant's spread over the next
/// hour (by its id), one job per tenant per night whatever the number of
/// schedulers (the tick's idempotency key).
pub fn schedule() -> Schedule {
    Schedule::new(
        CrmPullArgs::KIND,
        "0 0 2 * * *",
        Arc::new(|tick, pool| {
            Box::pin(async move {
                let tenants = crm::connected_tenants(&pool).await?;
                Ok(tenants
                    .into_iter()
                    .map(|t| {
                        let spread = (t.0.as_u128() % 3600) as i64;
                        CrmPullArgs::default()
                            .job()
                            .tenant(t)
                            .key(Some(format!("nightly:{}", t.0)))
                            .after(tick + chrono::Duration::seconds(spread))
                    })
                    .collect())
            })
        }),
    )
    .expect("static cron expression")
}

impl JobArgs for CrmPullArgs {
    const KIND: &'static str = "crm_pull";

    fn retry() -> RetryPolicy {
        RetryPolicy::new(8, Duration::from_secs(10), Duration::from_secs(900))
    }
}

pub struct CrmPullJob(pub CrmWork);

#[async_trait]
impl Worker for CrmPullJob {
    type Args = CrmPullArgs;

    fn starter(&self) -> Starter {
        Starter::Intake(Permission::CrmSync)
    }

    #[tracing::instrument(skip_all, fields(job_id = %ctx.job_id))]
    async fn work(&self, ctx: &mut JobContext, params: CrmPullArgs) -> Result<(), JobError> {
        let pool = ctx.pool().clone();
        let Some(tenant_id) = ctx.tenant_id else {
            return Err(JobError::Permanent(anyhow::anyhow!(
                "a pull belongs to a tenant"
            )));
        };
        let import_id = match params.import_id {
            Some(id) => id,
            None => own_batch(&pool, tenant_id, ctx.job_id).await?,
        };
        let Some(batch) = open_batch(ctx, ctx.tenant_id, import_id).await? else {
            return Ok(());
        };
        let tenant = tenants::get(&pool, batch.tenant_id)
            .await
            .context("tenant")?;
        let limits = packages::get(&pool, tenant.package)
            .await
            .context("package")?;
        let mut session = self
            .0
            .crm(&pool)
            .session(tenant.id)
            .await
            .map_err(crate::crm_push::session_error)?;
        let layout = Layout::from_header(b',', HEADER).map_err(|e| anyhow::anyhow!("{e}"))?;
        let stager = Stager::new(&layout);
        let mut cursor: PullCursor = match imports::pull_cursor(&pool, batch.id)
            .await
            .context("cursor")?
        {
            Some(c) => serde_json::from_value(c).context("stored cursor")?,
            None => {
                let mut tx = pool.begin().await?;
                imports::set_layout(
                    &mut *tx,
                    batch.id,
                    ",",
                    &layout.header,
                    &layout.mapping_names(),
                )
                .await
                .context("layout")?;
                tx.commit().await?;
                PullCursor {
                    from: SearchFrom::Page(1),
                    since: crm::pulled_through(&pool, tenant.id)
                        .await
                        .context("high-water mark")?,
                    high: None,
                }
            }
        };
        let mut row = batch.rows_done;
        loop {
            ctx.checkpoint().await?;
            let location = session.location_id.clone();
            let page = {
                let (loc, at, since) = (location.clone(), cursor.from.clone(), cursor.since);
                crate::crm_push::within_budget(
                    &self.0,
                    &mut session,
                    move |client: Client, token| {
                        let (loc, at) = (loc.clone(), at.clone());
                        async move { client.search_contacts(&token, &loc, PAGE, &at, since).await }
                    },
                )
                .await?
                .map_err(|e| JobError::Permanent(e.into()))?
            };
            // What this page would stage, and what of it changed since it
            // was last staged from the same HighLevel contact.
            let records: Vec<(String, [String; 12], Vec<u8>)> = page
                .contacts
                .iter()
                .filter_map(|c| {
                    let id = c["id"].as_str()?.to_string();
                    let record = record_of(c);
                    let hash = Sha256::digest(record.join("\u{1f}").as_bytes()).to_vec();
                    Some((id, record, hash))
                })
                .collect();
            for c in &page.contacts {
                let at = c["dateUpdated"]
                    .as_str()
                    .and_then(|d| chrono::DateTime::parse_from_rfc3339(d).ok())
                    .map(|d| d.with_timezone(&chrono::Utc));
                cursor.high = cursor.high.max(at);
            }
            let ids: Vec<String> = records.iter().map(|r| r.0.clone()).collect();
            let hashes: Vec<Vec<u8>> = records.iter().map(|r| r.2.clone()).collect();
            let mut tx = pool.begin().await?;
            let changed = crm::changed_since_pulled(&mut *tx, tenant.id, &ids, &hashes)
                .await
                .context("changed contacts")?;
            let fresh: Vec<&(String, [String; 12], Vec<u8>)> =
                records.iter().filter(|r| changed.contains(&r.0)).collect();
            let mut rows = CopyRows::new(batch.id);
            let after_row = row;
            for (_, record, _) in &fresh {
                row += 1;
                let record = csv::StringRecord::from(record.to_vec());
                rows.push(&stager.stage(row, &record));
            }
            let granted = usage::consume_import_rows(
                &mut tx,
                tenant.id,
                chrono::Utc::now().date_naive(),
                rows.len() as i32,
                limits.import_rows_per_day,
            )
            .await
            .context("import rows per day")?;
            if granted > 0 {
                staged_rows::copy(&mut tx, &rows, granted as usize)
                    .await
                    .context("stage rows")?;
                let staged = &fresh[..granted as usize];
                let ids: Vec<String> = staged.iter().map(|r| r.0.clone()).collect();
                let hashes: Vec<Vec<u8>> = staged.iter().map(|r| r.2.clone()).collect();
                crm::record_pulled(&mut *tx, tenant.id, &ids, &hashes)
                    .await
                    .context("pulled contacts")?;
            }
            let valid = rows.valid_in_first(granted as usize) as i32;
            imports::advance(
                &mut *tx,
                batch.id,
                Progress {
                    after_row,
                    last_row: row,
                    valid,
                    invalid: granted - valid,
                    not_staged: rows.len() as i32 - granted,
                },
            )
            .await
            .context("checkpoint")?;
            match &page.next {
                Some(next) => {
                    cursor.from = next.clone();
                    let stored = serde_json::to_value(&cursor).context("cursor")?;
                    imports::set_pull_cursor(&mut *tx, batch.id, &stored)
                        .await
                        .context("cursor")?;
                    tx.commit().await?;
                    // The message names the batch: a pull the platform
                    // started has no import_id in its params.
                    let message = format!("{row} contacts staged in import {}", batch.id);
                    ctx.progress(row as i64, None, Some(&message)).await?;
                }
                None => {
                    if let Some(high) = cursor.high {
                        crm::set_pulled_through(&mut *tx, tenant.id, high)
                            .await
                            .context("high-water mark")?;
                    }
                    if row == 0 {
                        // An incremental pull that found nothing new.
                        let message = "no contact changed since the last pull";
                        imports::finish(&mut tx, batch.id, ImportStatus::Staged, Some(message))
                            .await
                            .context("finish import")?;
                        ctx.progress(0, Some(0), Some(message)).await?;
                        ctx.complete_in(&mut tx).await?;
                    } else {
                        close(
                            ctx,
                            &mut tx,
                            batch.id,
                            limits.import_rows_per_day,
                            true,
                            row as i64,
                        )
                        .await?;
                    }
                    tx.commit().await?;
                    tracing::info!(import_id = %batch.id, rows = row, "CRM pull staged");
                    return Ok(());
                }
            }
        }
    }
}

/// Where a pull stands: the next page, the high-water mark it asks from
/// (None: a full pull), and the latest `dateUpdated` seen so far (the next
/// pull's mark once this one ends).
#[derive(Debug, Serialize, Deserialize)]
struct PullCursor {
    from: SearchFrom,
    since: Option<chrono::DateTime<chrono::Utc>>,
    high: Option<chrono::DateTime<chrono::Utc>>,
}

/// The batch of a pull the platform started: made once, keyed by the job.
async fn own_batch(pool: &sqlx::PgPool, tenant: TenantId, job: Uuid) -> Result<Uuid, JobError> {
    let key = format!("crm_pull:{job}");
    let mut tx = pool.begin().await?;
    let made = imports::create(
        &mut tx,
        NewImport {
            tenant_id: tenant,
            source: Source::CrmPull,
            status: ImportStatus::Processing,
            idempotency_key: Some(key.clone()),
            filename: Some("HighLevel (scheduled pull)".into()),
            created_by: None,
        },
    )
    .await
    .context("pull batch")?;
    let id = match made {
        Some(batch) => {
            imports::set_job(&mut *tx, batch.id, job)
                .await
                .context("pull batch")?;
            batch.id
        }
        None => {
            imports::find_by_key(&mut *tx, tenant, &key)
                .await
                .context("pull batch")?
                .context("the pull's batch vanished")?
                .id
        }
    };
    tx.commit().await?;
    Ok(id)
}

/// A HighLevel contact as a record under [`HEADER`]; its tags and custom
/// fields, when present, go to `Notes` as JSON (extra data the review shows).
fn record_of(c: &serde_json::Value) -> [String; 12] {
    let s = |k: &str| c[k].as_str().unwrap_or("").to_string();
    let extra: serde_json::Map<String, serde_json::Value> = ["tags", "customFields"]
        .iter()
        .filter_map(|k| {
            c.get(*k)
                .filter(|v| !v.is_null() && v.as_array().is_none_or(|a| !a.is_empty()))
                .map(|v| (k.to_string(), v.clone()))
        })
        .collect();
    [
        s("companyName"),
        s("firstName"),
        s("lastName"),
        s("email"),
        s("phone"),
        s("website"),
        s("address1"),
        s("city"),
        s("postalCode"),
        s("state"),
        s("country"),
        if extra.is_empty() {
            String::new()
        } else {
            serde_json::Value::Object(extra).to_string()
        },
    ]
}

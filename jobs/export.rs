//! `export`: a tenant's own data as a ZIP (privacy policy: "access ...
//! export"): one JSON Lines file per kind of record (members without
//! password hashes, API keys without their hashes, invitations, imports and
//! their staged rows, saved contacts, corrections, CRM push history, daily
//! usage, the tenant's audit events) and a `manifest.json` with the row
//! count of each. Which columns go out is fixed in
//! `bizcontacts_store::exports::FILES`: no hash, token or sealed secret is
//! ever selected.
//!
//! Bounded memory: rows stream from Postgres and are compressed into a
//! spool file (deleted by the OS even if the process dies) as they come;
//! the file is then stored in 1 MiB chunks with the export marked ready and
//! the job succeeded, all in one transaction. A killed run leaves nothing
//! half-stored; its retry builds the ZIP again and replaces any chunks.
//! Idempotent: an export already ready completes at once.

use async_trait::async_trait;
use bizcontacts_domain::Permission;
use bizcontacts_queue::args::{JobArgs, Worker};
use bizcontacts_queue::handler::{JobContext, JobError, RetryPolicy, Starter};
use bizcontacts_store::{exports, tenants};
use chrono::Utc;
use futures::TryStreamExt;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::io::{Read, Seek, Write};
use std::time::Duration;
use uuid::Uuid;
use zip::write::SimpleFileOptions;

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportArgs {
    pub export_id: Uuid,
}

impl JobArgs for ExportArgs {
    const KIND: &'static str = "export";

    fn retry() -> RetryPolicy {
        RetryPolicy::new(5, Duration::from_secs(30), Duration::from_secs(1800))
    }
}

pub struct ExportJob;

fn io(e: impl std::fmt::Display) -> JobError {
    JobError::Retryable(anyhow::anyhow!("writing the export: {e}"))
}

fn store(e: bizcontacts_store::StoreError) -> JobError {
    JobError::Retryable(e.into())
}

#[async_trait]
impl Worker for ExportJob {
    type Args = ExportArgs;

    fn starter(&self) -> Starter {
        Starter::Intake(Permission::UsersManage)
    }

    async fn work(&self, ctx: &mut JobContext, args: ExportArgs) -> Result<(), JobError> {
        let tenant = ctx
            .tenant_id
            .ok_or_else(|| JobError::Permanent(anyhow::anyhow!("an export belongs to a tenant")))?;
        let pool = ctx.pool().clone();
        let export = exports::get(&pool, tenant, args.export_id)
            .await
            .map_err(store)?
            .ok_or_else(|| JobError::Permanent(anyhow::anyhow!("no such export")))?;
        if export.status == "ready" {
            let mut tx = pool.begin().await?;
            ctx.complete_in(&mut tx).await?;
            tx.commit().await?;
            return Ok(());
        }
        let t = tenants::get(&pool, tenant).await.map_err(store)?;
        // The ZIP writer is synchronous; its writes go to the page cache of a
        // local spool file, a few microseconds each.
        let mut zip = zip::ZipWriter::new(tempfile::tempfile().map_err(io)?);
        let options =
            SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
        let mut counts = serde_json::Map::new();
        for (name, sql) in exports::FILES {
            ctx.checkpoint().await?;
            zip.start_file(*name, options).map_err(io)?;
            let mut rows = sqlx::query_scalar::<_, String>(sql)
                .bind(tenant.0)
                .fetch(&pool);
            let mut n = 0u64;
            while let Some(line) = rows.try_next().await? {
                zip.write_all(line.as_bytes()).map_err(io)?;
                zip.write_all(b"\n").map_err(io)?;
                n += 1;
            }
            counts.insert(name.to_string(), json!(n));
        }
        let files = serde_json::Value::Object(counts);
        let manifest = json!({
            "export_id": export.id,
            "tenant_id": tenant,
            "tenant_name": t.name,
            "package": t.package,
            "generated_at": Utc::now(),
            "format": "JSON Lines: one JSON object per line, UTF-8; times in RFC 3339, UTC",
            "files": files,
            "not_included": "password hashes, API key hashes, tokens and other secrets; the shared corpus (only this tenant's own records and its links to it)",
        });
        zip.start_file("manifest.json", options).map_err(io)?;
        zip.write_all(
            serde_json::to_string_pretty(&manifest)
                .expect("json")
                .as_bytes(),
        )
        .map_err(io)?;
        let mut file = zip.finish().map_err(io)?;
        file.rewind().map_err(io)?;

        ctx.checkpoint().await?;
        let mut tx = pool.begin().await?;
        exports::clear_chunks(&mut tx, export.id)
            .await
            .map_err(store)?;
        let mut buf = vec![0u8; exports::CHUNK];
        let (mut seq, mut size) = (0i32, 0i64);
        loop {
            let mut filled = 0;
            while filled < buf.len() {
                match file.read(&mut buf[filled..]).map_err(io)? {
                    0 => break,
                    n => filled += n,
                }
            }
            if filled == 0 {
                break;
            }
            exports::put_chunk(&mut tx, export.id, seq, &buf[..filled])
                .await
                .map_err(store)?;
            seq += 1;
            size += filled as i64;
        }
        exports::mark_ready(&mut tx, export.id, size, &files)
            .await
            .map_err(store)?;
        ctx.complete_in(&mut tx).await?;
        tx.commit().await?;
        tracing::info!(export_id = %export.id, bytes = size, "export ready");
        Ok(())
    }
}

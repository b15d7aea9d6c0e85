//! `bizcontacts-bench crm-push`: saved contacts pushed to a fake HighLevel
//! that allows 100 requests per 10 s per Location (as HighLevel does), by 1
//! and by 3 worker processes sharing the Location's budget in Redis.
//!
//! The baseline is the fake's own limit: at best the first 100 requests go
//! at once and each next 100 a window later, so the ideal wall time is
//! (contacts / 100 - 1) x 10 s. Reported: requests admitted per 10 s over the
//! run as a fraction of the limit, 429s received, duplicates in the fake,
//! and the wall time beside the ideal. The pushes are split into several
//! jobs so that several workers push for the one Location at once.

use crate::jobs::{cleanup_redis, scratch, spawn_worker_with};
use bizcontacts::runtime;
use bizcontacts_config::Settings;
use bizcontacts_fakes::highlevel::FakeHighLevel;
use bizcontacts_jobs::CrmPushArgs;
use bizcontacts_queue::args::JobArgs;
use bizcontacts_store::crm::{self, Method, NewConnection};
use std::time::{Duration, Instant};
use uuid::Uuid;

const LOCATION: &str = "bench-location";
const KEY: &str = "bench-private-integration-key";

pub async fn run(
    settings: &Settings,
    contacts: usize,
    workers: &[usize],
    jobs: usize,
) -> anyhow::Result<()> {
    let ideal = (contacts.div_ceil(100).max(1) - 1) as f64 * 10.0;
    println!(
        "bench crm-push: {contacts} saved contacts in {jobs} jobs, fake HighLevel at 100 requests / 10 s; \
         ideal {ideal:.0} s"
    );
    for &n in workers {
        let (settings, url, store, redis) = scratch(settings).await?;
        let fake = FakeHighLevel::start().await;
        fake.add_location(LOCATION, "Bench Location");
        fake.private_key(KEY, LOCATION);

        let tenant = bizcontacts_store::tenants::create(
            &store.pool,
            "Push bench",
            bizcontacts_domain::PackageName::Enterprise,
        )
        .await?
        .id;
        let keyring = runtime::keyring(&settings)?;
        crm::connect(
            &store.pool,
            NewConnection {
                tenant_id: tenant,
                method: Method::PrivateIntegration,
                location_id: LOCATION,
                location_name: None,
                company_id: None,
                scopes: &[],
                token: keyring.seal(KEY, &crm::secret_place(tenant, "token")),
                refresh: None,
                expires_at: None,
                connected_by: None,
            },
        )
        .await?;
        let ids: Vec<Uuid> = (0..contacts).map(|_| Uuid::now_v7()).collect();
        let emails: Vec<String> = (0..contacts)
            .map(|i| format!("lead{i}@bench.example"))
            .collect();
        sqlx::query(
            "INSERT INTO contacts (id, company_name, first_name, email, country)
             SELECT id, 'Bench Lead ' || email, 'Lee', email, 'GB'
             FROM unnest($1::uuid[], $2::text[]) AS t(id, email)",
        )
        .bind(&ids)
        .bind(&emails)
        .execute(&store.pool)
        .await?;
        sqlx::query(
            "INSERT INTO saved_contacts (id, tenant_id, contact_id)
             SELECT gen_random_uuid(), $1, id FROM unnest($2::uuid[]) AS t(id)",
        )
        .bind(tenant.0)
        .bind(&ids)
        .execute(&store.pool)
        .await?;

        let registry = runtime::registry(&settings, &redis)?;
        let ledger = runtime::ledger(&settings, &store, &redis, &registry);
        let mut job_ids = Vec::new();
        let per_job = contacts.div_ceil(jobs.max(1));
        for chunk in ids.chunks(per_job.max(1)) {
            let mut tx = store.pool.begin().await?;
            let job = CrmPushArgs {
                contact_ids: chunk.to_vec(),
            }
            .job()
            .tenant(tenant);
            let (enqueued, pending) = ledger.enqueue(&mut tx, job).await?;
            tx.commit().await?;
            ledger.push(pending).await;
            job_ids.push(enqueued.job.id);
        }
        let started = Instant::now();
        let env = [("BIZCONTACTS__HIGHLEVEL__API_BASE_URL", fake.base.as_str())];
        let mut procs = Vec::new();
        for _ in 0..n {
            procs.push(spawn_worker_with(
                &url,
                &settings.redis.key_prefix,
                None,
                &env,
            )?);
        }
        loop {
            let (done, bad): (i64, i64) = sqlx::query_as(
                "SELECT count(*) FILTER (WHERE status = 'succeeded'),
                        count(*) FILTER (WHERE status IN ('dead', 'failed', 'cancelled'))
                 FROM jobs WHERE id = ANY($1)",
            )
            .bind(&job_ids)
            .fetch_one(&store.pool)
            .await?;
            anyhow::ensure!(bad == 0, "a push job failed");
            if done as usize == job_ids.len() {
                break;
            }
            anyhow::ensure!(
                started.elapsed() < Duration::from_secs(3600),
                "the push took over an hour"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        let wall = started.elapsed().as_secs_f64();
        let stored = fake.contacts(LOCATION);
        let mut unique: Vec<&str> = stored
            .iter()
            .filter_map(|(_, f)| f["email"].as_str())
            .collect();
        unique.sort_unstable();
        unique.dedup();
        let rate = fake.admitted_rate(Duration::from_secs(10));
        println!(
            "{n} worker process(es): {} contacts in the fake ({} duplicates), {:.1} requests / 10 s \
             admitted ({:.2} of the limit), {} 429s, {wall:.0} s wall ({:.2} of ideal)",
            stored.len(),
            stored.len() - unique.len(),
            rate,
            rate / 100.0,
            fake.rejected(),
            ideal / wall
        );
        for mut p in procs {
            let _ = p.start_kill();
            let _ = p.wait().await;
        }
        cleanup_redis(&redis).await;
    }
    Ok(())
}

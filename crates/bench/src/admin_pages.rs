//! The admin dashboard with 1,000,000 jobs in the ledger: every page and
//! the job list's filters over HTTP, with the indexes issue 20 added, then
//! again without them (the baseline: the schema before), on one scratch
//! database.
//!
//! The jobs are written by one `INSERT ... SELECT generate_series` (ids
//! time-ordered like uuid v7, spread over 30 days; 96 % succeeded, 2 %
//! failed, 1 % dead, the rest cancelled, queued or deferred; errors with
//! a few distinct texts), then `VACUUM ANALYZE`.

use crate::intake::Intake;
use crate::jobs::{cleanup_redis, scratch};
use bizcontacts::runtime;
use bizcontacts_config::Settings;
use bizcontacts_domain::{Email, SystemRole};
use std::time::Instant;

const SEED: &str = "
INSERT INTO jobs (id, tenant_id, kind, params, status, attempts, max_attempts, last_error,
                  created_at, queued_at, started_at, finished_at, waiting_reason)
SELECT (lpad(to_hex((extract(epoch FROM t.at) * 1000)::bigint), 12, '0') || '7'
        || substr(md5(i::text), 1, 3) || '8' || substr(md5(i::text), 4, 15))::uuid,
       ten.ids[1 + (i % $2)::int],
       (ARRAY['import', 'dedupe', 'crm_pull', 'crm_push', 'export', 'retention'])[1 + (i * 7) % 6],
       jsonb_build_object('n', i),
       s.status, 1, 5,
       CASE WHEN s.status IN ('failed', 'dead') THEN
            (ARRAY['HighLevel answered 429 (rate limited) after 3 tries',
                   'connection refused by 10.0.0.' || (i % 200),
                   'import ' || md5(i::text) || ': malformed CSV on line ' || (i % 9000),
                   'the worker running this job stopped responding (lease expired)'])[1 + i % 4] END,
       t.at, t.at, t.at + interval '1 second',
       CASE WHEN s.status IN ('succeeded', 'failed', 'dead', 'cancelled') THEN t.at + interval '3 seconds' END,
       CASE WHEN s.status = 'deferred' THEN 'tenant at concurrent-job limit 4/4' END
FROM generate_series(1, $1) AS i
CROSS JOIN (SELECT array_agg(id ORDER BY id) AS ids FROM tenants) ten
CROSS JOIN LATERAL (SELECT now() - (($1 - i)::float8 / $1) * interval '30 days' AS at) t
CROSS JOIN LATERAL (SELECT CASE WHEN i % 100 < 96 THEN 'succeeded' WHEN i % 100 < 98 THEN 'failed'
                               WHEN i % 100 = 98 THEN 'dead'
                               WHEN i % 1000 < 995 THEN 'cancelled'
                               WHEN i % 1000 < 998 THEN 'queued' ELSE 'deferred' END AS status) s";

/// The indexes the dashboard added, and the schema before them.
const DROP_NEW: &str = "DROP INDEX jobs_failed_list; DROP INDEX jobs_last_error_trgm;
    DROP INDEX jobs_kind_status_list; ANALYZE jobs";

pub async fn run(
    settings: &Settings,
    jobs: i64,
    tenants: i64,
    repeat: usize,
) -> anyhow::Result<()> {
    let (settings, _url, store, redis) = scratch(settings).await?;
    let started = Instant::now();
    for i in 0..tenants {
        bizcontacts_store::tenants::create(
            &store.pool,
            &format!("Tenant {i:02}"),
            bizcontacts_domain::PackageName::Pro,
        )
        .await?;
    }
    sqlx::query(SEED)
        .bind(jobs)
        .bind(tenants)
        .execute(&store.pool)
        .await?;
    sqlx::raw_sql("VACUUM ANALYZE jobs")
        .execute(&store.pool)
        .await?;
    println!(
        "admin-pages: {jobs} jobs of {tenants} tenants seeded in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let intake = Intake::start(&settings, &store, "bench admin", &[]).await?;
    let password = "bench-admin-password";
    let hash = runtime::passwords(&settings)?.hash(password)?;
    let email = Email::parse("ops@bench.example.com")?;
    let user = bizcontacts_store::users::create(&store.pool, &email, Some(&hash)).await?;
    bizcontacts_store::users::grant_system_role(&store.pool, user.id, SystemRole::PlatformAdmin)
        .await?;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    // The sign-in form's CSRF guard: its cookie and its hidden token.
    let form = http
        .get(format!("{}/admin/login", intake.base))
        .send()
        .await?;
    let form_cookie = cookie_of(&form)?;
    let html = form.text().await?;
    let at = html
        .find("name=\"csrf\" value=\"")
        .ok_or_else(|| anyhow::anyhow!("no CSRF token in the sign-in form"))?
        + 19;
    let token = html[at..at + 32].to_string();
    let res = http
        .post(format!("{}/admin/login", intake.base))
        .header("cookie", form_cookie)
        .form(&[
            ("email", email.as_str()),
            ("password", password),
            ("csrf", &token),
        ])
        .send()
        .await?;
    let cookie = cookie_of(&res)?;

    let (tenant, failed, middle): (uuid::Uuid, uuid::Uuid, uuid::Uuid) = sqlx::query_as(
        "SELECT (SELECT id FROM tenants ORDER BY id LIMIT 1),
                (SELECT id FROM jobs WHERE status = 'failed' ORDER BY id DESC LIMIT 1),
                (SELECT id FROM jobs ORDER BY id OFFSET $1 LIMIT 1)",
    )
    .bind(jobs / 2)
    .fetch_one(&store.pool)
    .await?;
    let day = (chrono::Utc::now() - chrono::Duration::days(10)).format("%Y-%m-%dT%H:%M");
    let next = (chrono::Utc::now() - chrono::Duration::days(9)).format("%Y-%m-%dT%H:%M");
    let pages = vec![
        ("overview (live section)", "/admin/live".to_string()),
        ("jobs, newest", "/admin/jobs".into()),
        (
            "jobs, page in the middle",
            format!("/admin/jobs?before={middle}"),
        ),
        ("jobs, failed", "/admin/jobs?status=failed".into()),
        (
            "jobs, kind + dead",
            "/admin/jobs?kind=crm_push&status=dead".into(),
        ),
        (
            "jobs, kind + queued",
            "/admin/jobs?kind=export&status=queued".into(),
        ),
        (
            "jobs, one tenant",
            format!("/admin/jobs?tenant_id={tenant}"),
        ),
        ("jobs, error text", "/admin/jobs?error=10.0.0.17".into()),
        (
            "jobs, error text + failed",
            "/admin/jobs?status=failed&error=malformed".into(),
        ),
        ("jobs, one day", format!("/admin/jobs?from={day}&to={next}")),
        ("job detail", format!("/admin/jobs/{failed}")),
        ("workers", "/admin/workers".into()),
        ("schedules", "/admin/schedules".into()),
        ("tenants", "/admin/tenants".into()),
    ];
    let with = measure(&http, &intake.base, &cookie, &pages, repeat).await?;
    sqlx::raw_sql(DROP_NEW).execute(&store.pool).await?;
    let without = measure(&http, &intake.base, &cookie, &pages, repeat).await?;
    println!("| page | p50 ms | p99 ms | p50 ms without the new indexes | p99 ms without |");
    println!("|---|---|---|---|---|");
    for ((name, _), (a, b)) in pages.iter().zip(with.iter().zip(&without)) {
        println!(
            "| {name} | {:.1} | {:.1} | {:.1} | {:.1} |",
            a.0, a.1, b.0, b.1
        );
    }
    drop(intake);
    cleanup_redis(&redis).await;
    Ok(())
}

/// The `name=value` of a response's cookie.
fn cookie_of(res: &reqwest::Response) -> anyhow::Result<String> {
    res.headers()
        .get("set-cookie")
        .and_then(|c| c.to_str().ok())
        .and_then(|c| c.split(';').next())
        .map(str::to_string)
        .ok_or_else(|| anyhow::anyhow!("no cookie: {}", res.status()))
}

/// (p50, p99) in ms of `repeat` sequential GETs of each page, after one warm-up.
async fn measure(
    http: &reqwest::Client,
    base: &str,
    cookie: &str,
    pages: &[(&str, String)],
    repeat: usize,
) -> anyhow::Result<Vec<(f64, f64)>> {
    let mut out = Vec::new();
    for (name, path) in pages {
        let mut took = Vec::with_capacity(repeat);
        for i in 0..=repeat {
            let t = Instant::now();
            let res = http
                .get(format!("{base}{path}"))
                .header("cookie", cookie)
                .send()
                .await?;
            anyhow::ensure!(res.status() == 200, "{name}: {}", res.status());
            res.bytes().await?;
            if i > 0 {
                took.push(t.elapsed().as_secs_f64() * 1000.0);
            }
        }
        took.sort_by(f64::total_cmp);
        let at = |p: f64| took[((took.len() - 1) as f64 * p).round() as usize];
        out.push((at(0.5), at(0.99)));
    }
    Ok(out)
}

//! Dedupe end to end: reviewed rows become canonical contacts once, with
//! provenance; possible matches wait for a reviewer; corrections, quarantine
//! and sweeps; concurrency and crashes.

use crate::harness::{problem, wait_until, TestApp, TestUser};
use crate::imports::Imports;
use bizcontacts_domain::{PackageName, SystemRole};
use serde_json::{json, Value};
use uuid::Uuid;

pub(crate) const HEADER: &str =
    "company,first name,last name,email,phone,website,city,postcode,country\n";

impl Imports {
    /// Upload `rows` (CSV lines under [`HEADER`]), wait for staging, approve
    /// every valid row; returns (import id, dedupe job id).
    pub(crate) async fn approved(&self, rows: &str) -> (String, String) {
        let id = self.accepted(format!("{HEADER}{rows}")).await;
        let view = self.finished(&id).await;
        assert_eq!(view["status"], "staged", "{view}");
        let res = self.review(&id, json!({ "approve": "all_valid" })).await;
        assert_eq!(res.status(), 202);
        let out: Value = res.json().await.unwrap();
        (id, out["job_id"].as_str().unwrap().to_string())
    }

    /// [`Self::approved`], then wait for its dedupe job.
    pub(crate) async fn merged(&self, rows: &str) -> String {
        let (id, job) = self.approved(rows).await;
        self.job_done(&job).await;
        id
    }

    pub(crate) async fn job_done(&self, job: &str) {
        let job: Uuid = job.parse().unwrap();
        for _ in 0..1_200 {
            let (status, attempts, error): (String, i32, Option<String>) =
                sqlx::query_as("SELECT status, attempts, last_error FROM jobs WHERE id = $1")
                    .bind(job)
                    .fetch_one(&self.app.store.pool)
                    .await
                    .unwrap();
            match status.as_str() {
                "succeeded" => return,
                "failed" | "dead" => panic!("dedupe job {status}: {error:?}"),
                _ if attempts > 1 => panic!("dedupe job retried ({status}): {error:?}"),
                _ => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
            }
        }
        let state: String = sqlx::query_scalar(
            "SELECT row_to_json(j)::text FROM (SELECT status, attempts, waiting_reason, pushed_at,
             heartbeat_at, run_after, push_seq, now() AS db_now FROM jobs WHERE id = $1) j",
        )
        .bind(job)
        .fetch_one(&self.app.store.pool)
        .await
        .unwrap();
        panic!("dedupe job {job} did not finish in 60 s: {state}");
    }

    /// A job's last progress message.
    pub(crate) async fn job_message(&self, job: &str) -> String {
        sqlx::query_scalar("SELECT progress_message FROM jobs WHERE id = $1::uuid")
            .bind(job)
            .fetch_one(&self.app.store.pool)
            .await
            .unwrap()
    }

    /// The contact of each row of a batch, in row order.
    pub(crate) async fn links(&self, id: &str) -> Vec<Option<String>> {
        let links: Vec<Option<Uuid>> = sqlx::query_scalar(
            "SELECT contact_id FROM staged_rows WHERE import_id = $1::uuid ORDER BY row_number",
        )
        .bind(id)
        .fetch_all(&self.app.store.pool)
        .await
        .unwrap();
        links
            .into_iter()
            .map(|l| l.map(|u| u.to_string()))
            .collect()
    }

    async fn contact(&self, as_user: &TestUser, id: &str) -> reqwest::Response {
        self.app
            .get(
                &format!("/v1/tenants/{}/contacts/{id}", self.tenant),
                &as_user.token,
            )
            .send()
            .await
            .unwrap()
    }

    async fn contact_view(&self, id: &str) -> Value {
        let res = self.contact(&self.reviewer, id).await;
        assert_eq!(res.status(), 200);
        res.json().await.unwrap()
    }
}

pub(crate) async fn active_contacts(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM contacts WHERE active")
        .fetch_one(&app.store.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn spellings_of_one_business_become_one_contact_with_provenance() {
    let t = Imports::new(PackageName::Pro).await;
    let _worker = t.app.worker().await;
    let first = t
        .merged(
            "ACME Inc.,,,sales@acme.example,+44 20 7946 0018,https://acme.example,London,,GB\n\
             Blue Bottle Coffee,,,hello@bluebottle.example,,bluebottle.example,Oakland,,US\n",
        )
        .await;
    // Same email in another case; the phone in national format; a new address.
    let second = t
        .merged("\"Acme, Inc\",,,SALES@ACME.EXAMPLE,020 7946 0018,,London,EC1A 1BB,GB\n")
        .await;
    // Only the phone (formatted otherwise) and the name ties this one.
    let third = t
        .merged("ACME INCORPORATED,,,,020-7946-0018,,london,,GB\n")
        .await;
    assert_eq!(active_contacts(&t.app).await, 2);

    let acme = t.links(&first).await[0].clone().unwrap();
    assert_eq!(t.links(&second).await, [Some(acme.clone())]);
    assert_eq!(t.links(&third).await, [Some(acme.clone())]);
    let counts = |v: &Value| {
        (
            v["counts"]["created"].clone(),
            v["counts"]["merged"].clone(),
        )
    };
    assert_eq!(
        counts(&t.get(&format!("/{first}")).await),
        (json!(2), json!(0))
    );
    assert_eq!(
        counts(&t.get(&format!("/{second}")).await),
        (json!(0), json!(1))
    );
    assert_eq!(
        counts(&t.get(&format!("/{third}")).await),
        (json!(0), json!(1))
    );

    // Survivorship: the newest non-empty value of each field.
    let c = t.contact_view(&acme).await;
    assert_eq!(c["company_name"], "ACME INCORPORATED");
    assert_eq!(c["email"], "SALES@acme.example", "the newest spelling");
    assert_eq!(c["phone"], "+442079460018");
    assert_eq!(c["website"], "https://acme.example");
    assert_eq!(c["postcode"], "EC1A 1BB");
    assert_eq!(c["corrected_fields"], json!([]));

    // Provenance: each contributing row says where it went and when; the
    // stored values are the fold of those rows.
    let sources: Vec<(Uuid, String, String)> = sqlx::query_as(
        "SELECT s.import_id, i.source, s.outcome FROM staged_rows s JOIN imports i ON i.id = s.import_id
         WHERE s.contact_id = $1 AND s.merged_at IS NOT NULL ORDER BY s.merged_at",
    )
    .bind(acme.parse::<Uuid>().unwrap())
    .fetch_all(&t.app.store.pool)
    .await
    .unwrap();
    let imports: Vec<String> = sources.iter().map(|s| s.0.to_string()).collect();
    assert_eq!(imports, [first, second, third]);
    assert_eq!(sources[0].2, "created");
    assert!(sources[1..].iter().all(|s| s.2 == "merged" && s.1 == "csv"));
    let stored = bizcontacts_store::corpus::load(&t.app.store.pool, &[acme.parse().unwrap()])
        .await
        .unwrap();
    let mut tx = t.app.store.pool.begin().await.unwrap();
    bizcontacts_store::corpus::rederive(&mut tx, &[acme.parse().unwrap()])
        .await
        .unwrap();
    let derived = bizcontacts_store::corpus::load(&mut *tx, &[acme.parse().unwrap()])
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    assert_eq!(stored[0].values, derived[0].values);

    // An exact repeat of an earlier batch's row adds a source, not a contact.
    let fourth = t
        .merged("ACME INCORPORATED,,,,020-7946-0018,,london,,GB\n")
        .await;
    assert_eq!(t.links(&fourth).await, [Some(acme.clone())]);
    assert_eq!(active_contacts(&t.app).await, 2);
}

#[tokio::test]
async fn near_misses_and_other_people_stay_apart() {
    let t = Imports::new(PackageName::Pro).await;
    let _worker = t.app.worker().await;
    t.merged(
        "Blue Bottle Coffee,,,hello@bluebottle.example,,bluebottle.example,Oakland,,US\n\
         Blue Bottle Coffee,,,ny@bluebottle-ny.example,,bluebottle-ny.example,New York,,US\n\
         Globex Ltd,Ann,Smith,ann@globex.example,+44 20 7946 0100,,Leeds,,GB\n\
         Globex Ltd,Bob,Jones,bob@globex.example,+44 20 7946 0100,,Leeds,,GB\n",
    )
    .await;
    // Same name, other city and domain: two businesses. Same switchboard,
    // other person and email: two contacts.
    assert_eq!(active_contacts(&t.app).await, 4);
    let open: i64 = sqlx::query_scalar("SELECT count(*) FROM match_candidates")
        .fetch_one(&t.app.store.pool)
        .await
        .unwrap();
    assert_eq!(open, 0, "nothing here is close enough to ask about");
}

#[tokio::test]
async fn two_rows_of_one_contact_in_one_batch_make_one_contact() {
    let t = Imports::new(PackageName::Pro).await;
    let _worker = t.app.worker().await;
    let id = t
        .merged(
            "Initech LLC,,,info@initech.example,,,Austin,,US\n\
             INITECH,,,Info@Initech.example,+1 512 555 0134,,Austin,,US\n",
        )
        .await;
    let links = t.links(&id).await;
    assert_eq!(links[0], links[1]);
    assert_eq!(active_contacts(&t.app).await, 1);
    let view = t.get(&format!("/{id}")).await;
    assert_eq!(
        (
            view["counts"]["created"].clone(),
            view["counts"]["merged"].clone()
        ),
        (json!(1), json!(1))
    );
}

#[tokio::test]
async fn possible_matches_wait_for_a_reviewer_who_decides() {
    let t = Imports::new(PackageName::Pro).await;
    let _worker = t.app.worker().await;
    t.merged(
        "Delta Widgets GmbH,,,info@delta.example,+49 30 2222222,delta.example,Berlin,,DE\n\
         Omega Tools,,,o@omega.example,+49 228 999999,omega.example,Bonn,,DE\n",
    )
    .await;
    // The same name in the same city, with another phone and another
    // website: possible, not certain.
    let (id, job) = t
        .approved(
            "DELTA WIDGETS,,,,+49 30 901820,deltawidgets.example,Berlin,,DE\n\
             Omega Tools AG,,,,+49 228 123456,omega-tools.example,Bonn,,DE\n",
        )
        .await;
    t.job_done(&job).await;
    assert_eq!(active_contacts(&t.app).await, 2, "nothing merged blindly");
    let view = t.get(&format!("/{id}")).await;
    assert_eq!(view["counts"]["possible_match"], 2);
    assert_eq!(t.rows(&id, "&status=approved").await.len(), 2);

    let page = t.get(&format!("/{id}/matches?limit=1")).await;
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    let first = page["items"][0].clone();
    assert_eq!(first["row"]["company_name"], "DELTA WIDGETS");
    assert_eq!(first["contact"]["company_name"], "Delta Widgets GmbH");
    // The weight in bits, between the thresholds, and why: name and city
    // agree, phone and website do not.
    let why = &first["explanation"];
    let p = why["probability"].as_f64().unwrap();
    assert!((0.5..0.95).contains(&p), "{why}");
    // The explanation shows the weight to two decimals.
    assert!((first["score"].as_f64().unwrap() - why["weight"].as_f64().unwrap()).abs() < 0.006);
    let level = |field: &str| {
        why["fields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["field"] == field)
            .map(|f| {
                (
                    f["level"].as_str().unwrap().to_string(),
                    f["bits"].as_f64().unwrap(),
                )
            })
            .unwrap()
    };
    assert_eq!(level("company_name").0, "exact");
    assert!(level("company_name").1 > 0.0);
    assert_eq!(level("city").0, "exact");
    assert!(level("phone").1 < 0.0 && level("domain").1 < 0.0);
    let second = t
        .get(&format!(
            "/{id}/matches?cursor={}",
            page["next_cursor"].as_str().unwrap()
        ))
        .await;
    let second = second["items"][0].clone();

    let decide = |body: Value| {
        t.app
            .post(&t.path(&format!("/{id}/matches")), &t.reviewer.token)
            .json(&body)
            .send()
    };
    let bad = decide(json!({ "decisions": [{ "row_id": first["row_id"], "contact_id": first["contact_id"], "decision": "maybe" }] }))
        .await
        .unwrap();
    problem(bad, 422).await;
    let res = decide(json!({ "decisions": [
        { "row_id": first["row_id"], "contact_id": first["contact_id"], "decision": "same" },
        { "row_id": second["row_id"], "contact_id": second["contact_id"], "decision": "different" },
    ] }))
    .await
    .unwrap();
    assert_eq!(res.status(), 202);
    let out: Value = res.json().await.unwrap();
    assert_eq!(out["decided"], 2);
    t.job_done(out["job_id"].as_str().unwrap()).await;

    let links = t.links(&id).await;
    assert_eq!(
        links[0].as_deref(),
        first["contact_id"].as_str(),
        "merged as decided"
    );
    assert_ne!(links[1].as_deref(), second["contact_id"].as_str());
    assert_eq!(
        active_contacts(&t.app).await,
        3,
        "the 'different' row is a contact of its own"
    );
    let merged = t.contact_view(first["contact_id"].as_str().unwrap()).await;
    assert_eq!(merged["phone"], "+4930901820");
    // Decided pairs cannot be decided again.
    let again = decide(json!({ "decisions": [{ "row_id": first["row_id"], "contact_id": first["contact_id"], "decision": "different" }] }))
        .await
        .unwrap();
    assert_eq!(again.status(), 200);
    assert_eq!(again.json::<Value>().await.unwrap()["decided"], 0);
}

/// Rows whose contacts overlap: the same 300 businesses in two batches.
fn overlapping(batch: usize) -> String {
    (0..300)
        .map(|i| {
            let email = if batch == 0 {
                format!("c{i}@biz{i}.example")
            } else {
                format!("C{i}@BIZ{i}.EXAMPLE")
            };
            format!("Business {i} Ltd,,,{email},,,City {},,GB\n", i % 7)
        })
        .collect()
}

#[tokio::test]
async fn parallel_dedupe_jobs_on_the_same_contacts_create_each_once() {
    let t = Imports::new(PackageName::Enterprise).await;
    // Two workers, small chunks: the jobs interleave chunk by chunk.
    let mut app = t.app;
    app.settings.dedupe.chunk_rows = 25;
    let t = Imports { app, ..t };
    let a = t.accepted(format!("{HEADER}{}", overlapping(0))).await;
    let b = t.accepted(format!("{HEADER}{}", overlapping(1))).await;
    let workers = [t.app.worker().await, t.app.worker().await];
    t.finished(&a).await;
    t.finished(&b).await;
    let ra: Value = t
        .review(&a, json!({ "approve": "all_valid" }))
        .await
        .json()
        .await
        .unwrap();
    let rb: Value = t
        .review(&b, json!({ "approve": "all_valid" }))
        .await
        .json()
        .await
        .unwrap();
    t.job_done(ra["job_id"].as_str().unwrap()).await;
    t.job_done(rb["job_id"].as_str().unwrap()).await;
    let counts = (
        t.get(&format!("/{a}")).await["counts"].clone(),
        t.get(&format!("/{b}")).await["counts"].clone(),
    );
    assert_eq!(active_contacts(&t.app).await, 300, "{counts:?}");
    let (la, lb) = (t.links(&a).await, t.links(&b).await);
    assert_eq!(la.len(), 300);
    assert_eq!(la, lb, "row i of both batches is the same contact");
    let emails_twice: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT lower(email) FROM contacts WHERE active GROUP BY 1 HAVING count(*) > 1) d",
    )
    .fetch_one(&t.app.store.pool)
    .await
    .unwrap();
    assert_eq!(emails_twice, 0);
    for w in workers {
        w.stop().await;
    }
}

#[tokio::test]
async fn keys_moved_into_the_main_index_still_find_their_contacts() {
    let t = Imports::new(PackageName::Enterprise).await;
    // Small chunks and a small recent level: keys move every few chunks.
    let mut app = t.app;
    app.settings.dedupe.chunk_rows = 20;
    app.settings.dedupe.recent_keys_max = 150;
    let t = Imports { app, ..t };
    let _worker = t.app.worker().await;
    let count = |sql: &'static str| {
        let pool = t.app.store.pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>(sql)
                .fetch_one(&pool)
                .await
                .unwrap()
        }
    };
    let a = t.merged(&overlapping(0)).await;
    // 300 contacts, two keys each (email, company + city).
    let (settled, recent, taken) = (
        count("SELECT count(*) FROM contact_keys").await,
        count("SELECT count(*) FROM contact_keys_recent").await,
        count("SELECT keys FROM contact_keys_recent_count").await,
    );
    // 40 keys a chunk: a move after every fourth of the 15 chunks; the last
    // three chunks' keys wait.
    assert_eq!((settled, recent), (480, 120));
    assert_eq!(taken, recent);
    // The same businesses again: each is found, in whichever level its keys are.
    let b = t.merged(&overlapping(1)).await;
    assert_eq!(t.links(&a).await, t.links(&b).await);
    assert_eq!(active_contacts(&t.app).await, 300);
    let filed = count("SELECT count(*) FROM contact_keys_filed").await;
    let distinct =
        count("SELECT count(*) FROM (SELECT DISTINCT key, contact_id FROM contact_keys_filed) k")
            .await;
    assert_eq!((filed, distinct), (600, 600), "no key filed twice");
}

#[tokio::test]
async fn a_worker_killed_mid_dedupe_leaves_no_second_contact() {
    let mut app = TestApp::spawn().await;
    app.settings.dedupe.chunk_rows = 200;
    let t = Imports::on(app, PackageName::Enterprise).await;
    let rows: String = (0..6_000)
        .map(|i| {
            format!(
                "Firm {i} Ltd,,,f{i}@firm{i}.example,,,Town {},,GB\n",
                i % 50
            )
        })
        .collect();
    let id = {
        let _staging = t.app.worker().await;
        let id = t.accepted(format!("{HEADER}{rows}")).await;
        t.finished(&id).await;
        id
    };
    let res: Value = t
        .review(&id, json!({ "approve": "all_valid" }))
        .await
        .json()
        .await
        .unwrap();
    let job: Uuid = res["job_id"].as_str().unwrap().parse().unwrap();

    let mut victim = t
        .app
        .spawn_process("worker", &[("BIZCONTACTS__DEDUPE__CHUNK_ROWS", "200")]);
    wait_until(60, "dedupe under way", || async {
        let done: i64 = sqlx::query_scalar("SELECT progress_done FROM jobs WHERE id = $1")
            .bind(job)
            .fetch_one(&t.app.store.pool)
            .await
            .unwrap();
        done >= 400
    })
    .await;
    victim.start_kill().unwrap();
    victim.wait().await.unwrap();
    let linked_at_kill: i64 =
        sqlx::query_scalar("SELECT count(*) FROM staged_rows WHERE contact_id IS NOT NULL")
            .fetch_one(&t.app.store.pool)
            .await
            .unwrap();
    assert!(linked_at_kill < 6_000, "killed before the end");

    // The lease runs out; another worker takes the job over.
    let _rescuer = t
        .app
        .spawn_process("worker", &[("BIZCONTACTS__DEDUPE__CHUNK_ROWS", "200")]);
    wait_until(120, "dedupe finished after the crash", || async {
        t.app.job_status(job).await == "succeeded"
    })
    .await;
    assert_eq!(active_contacts(&t.app).await, 6_000);
    let view = t.get(&format!("/{id}")).await;
    assert_eq!(
        (
            view["counts"]["created"].clone(),
            view["counts"]["merged"].clone()
        ),
        (json!(6000), json!(0))
    );
    let twice: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM staged_rows WHERE import_id = $1::uuid AND (contact_id IS NULL OR status <> 'merged')",
    )
    .bind(&id)
    .fetch_one(&t.app.store.pool)
    .await
    .unwrap();
    assert_eq!(twice, 0, "every row placed exactly once");
}

#[tokio::test]
async fn quarantine_withdraws_a_batch_and_contacts_fall_back() {
    let t = Imports::new(PackageName::Pro).await;
    let _worker = t.app.worker().await;
    let good = t
        .merged("Umbrella Corp,,,info@umbrella.example,,,Raccoon City,,US\n")
        .await;
    // The bad batch overwrites Umbrella's city and brings a contact of its own.
    let bad = t
        .merged(
            "Umbrella Corporation,,,info@umbrella.example,,,Springfield,,US\n\
             Spam Inc,,,spam@spam.example,,,Nowhere,,US\n",
        )
        .await;
    let umbrella = t.links(&good).await[0].clone().unwrap();
    let spam = t.links(&bad).await[1].clone().unwrap();
    assert_eq!(t.contact_view(&umbrella).await["city"], "Springfield");

    let steward = t.app.system_user(SystemRole::DataSteward).await;
    let quarantine = |who: &TestUser| {
        t.app
            .post(&format!("/v1/admin/imports/{bad}/quarantine"), &who.token)
            .json(&json!({ "reason": "scraped list" }))
            .send()
    };
    problem(quarantine(&t.reviewer).await.unwrap(), 403).await;
    let res = quarantine(&steward).await.unwrap();
    assert_eq!(res.status(), 200);
    let out: Value = res.json().await.unwrap();
    assert_eq!(
        (
            out["contacts_touched"].clone(),
            out["contacts_withdrawn"].clone()
        ),
        (json!(2), json!(1))
    );
    problem(quarantine(&steward).await.unwrap(), 409).await;

    problem(t.contact(&t.reviewer, &spam).await, 404).await;
    let c = t.contact_view(&umbrella).await;
    assert_eq!(
        (c["company_name"].clone(), c["city"].clone()),
        (json!("Umbrella Corp"), json!("Raccoon City"))
    );
    // The withdrawn values no longer match anything.
    let filed = |key: &'static str| {
        let pool = t.app.store.pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>("SELECT count(*) FROM contact_keys_filed WHERE key = $1")
                .bind(bizcontacts_matching::block_id(key))
                .fetch_one(&pool)
                .await
                .unwrap()
        }
    };
    assert_eq!(filed("c:umbrella|raccoon city").await, 1);
    assert_eq!(filed("c:umbrella|springfield").await, 0);
    assert_eq!(filed("e:spam@spam.example").await, 0);
    let audited: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_events WHERE action = 'import.quarantined' AND target_id = $1 AND actor_user_id = $2",
    )
    .bind(&bad)
    .bind(steward.id.0)
    .fetch_one(&t.app.store.pool)
    .await
    .unwrap();
    assert_eq!(audited, 1);
    // A quarantined batch cannot be reviewed any more.
    problem(t.review(&bad, json!({ "approve": "all_valid" })).await, 409).await;
}

#[tokio::test]
async fn corrections_show_at_once_and_join_the_corpus_after_review() {
    let t = Imports::new(PackageName::Pro).await;
    let _worker = t.app.worker().await;
    let id = t
        .merged("Hooli,,,press@hooli.example,,,Palo Alto,,US\n")
        .await;
    let hooli = t.links(&id).await[0].clone().unwrap();
    let member = t
        .app
        .member(t.tenant, bizcontacts_domain::Role::Member)
        .await;
    let second_tenant = t.app.tenant(PackageName::Pro).await;
    let outsider = t
        .app
        .member(second_tenant, bizcontacts_domain::Role::Reviewer)
        .await;
    let outsider_view = || async {
        let res = t
            .app
            .get(
                &format!("/v1/tenants/{second_tenant}/contacts/{hooli}"),
                &outsider.token,
            )
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        res.json::<Value>().await.unwrap()
    };

    let correct = |body: Value| {
        t.app
            .post(
                &format!("/v1/tenants/{}/contacts/{hooli}/corrections", t.tenant),
                &member.token,
            )
            .json(&body)
            .send()
    };
    let p = problem(
        correct(json!({ "field": "phone", "value": "not a phone" }))
            .await
            .unwrap(),
        422,
    )
    .await;
    assert_eq!(p["errors"][0]["field"], "value");
    problem(
        correct(json!({ "field": "category", "value": "x" }))
            .await
            .unwrap(),
        422,
    )
    .await;
    let res =
        correct(json!({ "field": "phone", "value": "(650) 555-0199", "note": "their new line" }))
            .await
            .unwrap();
    assert_eq!(res.status(), 201);
    let created: Value = res.json().await.unwrap();

    // At once for this tenant; others see the corpus as it is.
    let mine = t.contact_view(&hooli).await;
    assert_eq!(mine["phone"], "+16505550199");
    assert_eq!(mine["corrected_fields"], json!(["phone"]));
    assert!(outsider_view().await["phone"].is_null());

    // Reviewed like any batch, it reaches the corpus for everyone.
    let batch = created["import_id"].as_str().unwrap();
    let view = t.get(&format!("/{batch}")).await;
    assert_eq!(view["source"], "correction");
    let res: Value = t
        .review(batch, json!({ "approve": "all_valid" }))
        .await
        .json()
        .await
        .unwrap();
    t.job_done(res["job_id"].as_str().unwrap()).await;
    let theirs = outsider_view().await;
    assert_eq!(theirs["phone"], "+16505550199");
    assert_eq!(theirs["corrected_fields"], json!(["phone"]));
    assert_eq!(
        theirs["company_name"], "Hooli",
        "only the corrected field changed"
    );
    assert_eq!(t.links(batch).await, [Some(hooli.clone())]);
    // A later import does not overwrite a reviewed correction.
    t.merged("Hooli,,,press@hooli.example,+1 650 555 0100,,Palo Alto,,US\n")
        .await;
    assert_eq!(outsider_view().await["phone"], "+16505550199");
    assert_eq!(active_contacts(&t.app).await, 1);
}

#[tokio::test]
async fn a_sweep_reports_candidates_and_merges_only_when_asked() {
    // Intake that never merges nor asks: every row becomes a contact.
    let mut app = TestApp::spawn().await;
    let defaults = app.settings.dedupe.clone();
    app.settings.dedupe.merge_probability = 1.0 - 1e-15;
    app.settings.dedupe.possible_probability = 1.0 - 2e-15;
    let t = Imports::on(app, PackageName::Pro).await;
    {
        let _worker = t.app.worker().await;
        t.merged(
            "Vandelay Industries,,,art@vandelay.example,,,New York,,US\n\
             Vandelay Industries Inc,,,ART@vandelay.example,,,New York,,US\n\
             Kramerica,,,k@kramerica.example,,,New York,,US\n",
        )
        .await;
    }
    assert_eq!(active_contacts(&t.app).await, 3);
    let mut app = t.app;
    app.settings.dedupe = defaults;
    let _worker = app.worker().await;
    let admin = app.system_user(SystemRole::PlatformAdmin).await;
    let sweep = |apply: bool| {
        app.post("/v1/admin/dedupe/sweep", &admin.token)
            .json(&json!({ "apply": apply }))
            .send()
    };
    let report = |job: String| {
        let app = &app;
        let token = admin.token.clone();
        async move {
            let job_id: Uuid = job.parse().unwrap();
            wait_until(60, "sweep finished", || async {
                app.job_status(job_id).await == "succeeded"
            })
            .await;
            let res = app
                .get(&format!("/v1/admin/dedupe/sweeps/{job}"), &token)
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 200);
            res.json::<Value>().await.unwrap()
        }
    };
    let res = sweep(false).await.unwrap();
    assert_eq!(res.status(), 202);
    let dry = report(
        res.json::<Value>().await.unwrap()["job_id"]
            .as_str()
            .unwrap()
            .to_string(),
    )
    .await;
    assert_eq!(
        (
            dry["checked"].clone(),
            dry["candidates"].clone(),
            dry["merged"].clone()
        ),
        (json!(3), json!(1), json!(0))
    );
    assert_eq!(dry["pairs"]["items"][0]["merged"], false);
    assert_eq!(active_contacts(&app).await, 3, "a report changes nothing");

    let res = sweep(true).await.unwrap();
    let applied = report(
        res.json::<Value>().await.unwrap()["job_id"]
            .as_str()
            .unwrap()
            .to_string(),
    )
    .await;
    assert_eq!(applied["merged"], 1);
    assert_eq!(active_contacts(&app).await, 2);
    let (a, b) = (
        applied["pairs"]["items"][0]["contact_a"]
            .as_str()
            .unwrap()
            .to_string(),
        applied["pairs"]["items"][0]["contact_b"]
            .as_str()
            .unwrap()
            .to_string(),
    );
    let moved: i64 =
        sqlx::query_scalar("SELECT count(*) FROM staged_rows WHERE contact_id = $1::uuid")
            .bind(&a)
            .fetch_one(&app.store.pool)
            .await
            .unwrap();
    assert_eq!(moved, 2, "the merged contact's rows moved to the survivor");
    let gone: Option<Uuid> =
        sqlx::query_scalar("SELECT merged_into FROM contacts WHERE id = $1::uuid")
            .bind(&b)
            .fetch_one(&app.store.pool)
            .await
            .unwrap();
    assert_eq!(gone.map(|g| g.to_string()), Some(a));
}

#[tokio::test]
async fn a_row_rejected_while_its_chunk_merges_waits_and_keeps_its_provenance() {
    // No worker: the test plays the dedupe chunk itself, to hold it open.
    let t = Imports::new(PackageName::Pro).await;
    let res = t
        .manual(json!({ "company_name": "Race Condition Ltd", "email": "race@cond.example" }))
        .await;
    assert_eq!(res.status(), 201);
    let entry: Value = res.json().await.unwrap();
    let (import, row) = (
        entry["import_id"].as_str().unwrap().to_string(),
        entry["row_id"].as_str().unwrap().to_string(),
    );
    let res = t.review(&import, json!({ "approve": "all_valid" })).await;
    assert_eq!(res.status(), 202);

    // The chunk reads its approved rows...
    let pool = &t.app.store.pool;
    let mut chunk = pool.begin().await.unwrap();
    let rows = bizcontacts_store::corpus::pending_rows(
        &mut *chunk,
        import.parse().unwrap(),
        0,
        10,
        bizcontacts_store::corpus::Read::Lock,
    )
    .await
    .unwrap();
    assert_eq!(rows.len(), 1);

    // ...a reviewer rejects the row meanwhile: the review waits for the chunk.
    let reject = {
        let (client, url, token) = (
            t.app.client.clone(),
            t.app.url(&t.path(&format!("/{import}/review"))),
            t.reviewer.token.clone(),
        );
        let body = json!({ "reject": [row] });
        tokio::spawn(async move {
            client
                .post(url)
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .unwrap()
        })
    };
    wait_until(10, "the review waits on the chunk's row lock", || async {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()
             AND wait_event_type = 'Lock' AND query LIKE '%FROM staged_rows%FOR UPDATE%'",
        )
        .fetch_one(pool)
        .await
        .unwrap();
        waiting == 1
    })
    .await;

    // The chunk creates the contact and links the row (as `corpus::write`
    // does), and commits.
    let contact = Uuid::now_v7();
    sqlx::query("INSERT INTO contacts (id, company_name) VALUES ($1, 'Race Condition Ltd')")
        .bind(contact)
        .execute(&mut *chunk)
        .await
        .unwrap();
    sqlx::query(
        "UPDATE staged_rows SET status = 'merged', contact_id = $2, merged_at = now(), outcome = 'created'
         WHERE id = $1 AND status = 'approved'",
    )
    .bind(rows[0].id)
    .bind(contact)
    .execute(&mut *chunk)
    .await
    .unwrap();
    chunk.commit().await.unwrap();

    // The review then finds the row in the corpus and changes nothing.
    let res = reject.await.unwrap();
    let body = problem(res, 422).await;
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("already in the corpus"),
        "{body}"
    );
    let (status, linked): (String, Option<Uuid>) =
        sqlx::query_as("SELECT status, contact_id FROM staged_rows WHERE id = $1")
            .bind(rows[0].id)
            .fetch_one(pool)
            .await
            .unwrap();
    assert_eq!((status.as_str(), linked), ("merged", Some(contact)));
}

#[tokio::test]
async fn dedupe_jobs_of_reviews_count_against_jobs_per_day() {
    // No worker: only the charging is looked at.
    let t = Imports::new(PackageName::Free).await; // 20 jobs per day
    let entry = |name: &str| {
        t.manual(json!({ "company_name": name, "email": format!("hello@{}.example", name.len()) }))
    };
    let first: Value = entry("Counted Ltd").await.json().await.unwrap();
    let second: Value = entry("Refused Ltd").await.json().await.unwrap();
    let jobs_today = || async {
        sqlx::query_scalar::<_, i32>("SELECT jobs FROM usage_daily WHERE tenant_id = $1")
            .bind(t.tenant.0)
            .fetch_optional(&t.app.store.pool)
            .await
            .unwrap()
            .unwrap_or(0)
    };
    let before = jobs_today().await;
    let res = t
        .review(
            first["import_id"].as_str().unwrap(),
            json!({ "approve": "all_valid" }),
        )
        .await;
    assert_eq!(res.status(), 202);
    assert_eq!(
        jobs_today().await,
        before + 1,
        "the review's dedupe job was charged"
    );

    // At the limit, the review is refused whole: no job, no decision written.
    sqlx::query("UPDATE usage_daily SET jobs = 20 WHERE tenant_id = $1")
        .bind(t.tenant.0)
        .execute(&t.app.store.pool)
        .await
        .unwrap();
    let import = second["import_id"].as_str().unwrap();
    let body = problem(
        t.review(import, json!({ "approve": "all_valid" })).await,
        429,
    )
    .await;
    assert_eq!(body["limit"], "jobs_per_day");
    let approved: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM staged_rows WHERE import_id = $1::uuid AND status = 'approved'",
    )
    .bind(import)
    .fetch_one(&t.app.store.pool)
    .await
    .unwrap();
    assert_eq!(approved, 0);
}

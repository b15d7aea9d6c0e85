//! Dedupe reading ahead (`dedupe.read_ahead`): the next chunk is read and
//! planned while the one before writes, and the corpus comes out exactly
//! as when every chunk is read after the one before has committed, with
//! another writer taking the corpus lock in between or not.

use crate::harness::{TestApp, TestDb};
use crate::imports::Imports;
use bizcontacts_domain::PackageName;
use serde_json::Value;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// 40 businesses, three records each, a record's copies about a chunk
/// apart (so most merges reach into the chunk before, whose writes a read
/// ahead cannot see yet): the second with typos and the email in capitals,
/// the third with no email and the phone's digits transposed. Every eighth shares a switchboard,
/// so that phone's key passes the cap of 3 halfway through the batch.
fn rows() -> String {
    let firsts = ["Zoe", "Amir", "Lena", "Tom", "Ines"];
    let lasts = [
        "Khan", "Smith", "Okafor", "Novak", "Silva", "Berg", "Rossi", "Tanaka",
    ];
    let mut records = vec![];
    for j in 0..3 {
        for e in 0..40usize {
            let phone = if e % 8 == 0 {
                "+44 20 7000 0000".to_string()
            } else {
                format!("+44 20 7{:03} {:04}", e, 1234 + e)
            };
            // 40 different people.
            let (first, last) = (firsts[e % 5], lasts[e / 5]);
            let line = match j {
                0 => format!(
                    "Acme {e} Plumbing,{first},{last},{}@acme{e}.example,{phone},,Leeds,LS{} 4AP,GB",
                    first.to_lowercase(),
                    e % 9
                ),
                1 => format!(
                    "ACME {e} Plumbnig Ltd,{first},{},{}@ACME{e}.EXAMPLE,{phone},,Leeds,LS{} 4AP,GB",
                    last.to_uppercase(),
                    first.to_uppercase(),
                    e % 9
                ),
                _ => format!(
                    "Acme {e} Plumbing,{first},{last},,{},,Leeds,,GB",
                    phone.replace("1234", "1243").replace("0000", "0001")
                ),
            };
            records.push((3 * e + 11 * j, line));
        }
    }
    records.sort_by_key(|(at, _)| *at);
    records.into_iter().map(|(_, l)| l + "\n").collect()
}

/// The outcome, in row numbers (ids differ between databases): each row's
/// contact (as the row number that created it), each contact's values,
/// the pairs left for a reviewer, the keys filed, the batch's counters.
async fn outcome(t: &Imports, import: &str) -> Value {
    let pool = &t.app.store.pool;
    let one = |sql: &'static str| async move {
        sqlx::query_scalar::<_, Option<Value>>(sql)
            .bind(import)
            .fetch_one(pool)
            .await
            .unwrap()
            .unwrap_or(Value::Null)
    };
    serde_json::json!({
        "links": one(
            "SELECT json_agg(c.row_number ORDER BY s.row_number) FROM staged_rows s
             LEFT JOIN staged_rows c ON c.id = s.contact_id WHERE s.import_id = $1::uuid"
        ).await,
        "contacts": one(
            "SELECT json_agg(json_build_array(s.row_number, to_jsonb(c) - 'id' - 'created_at'
                 - 'updated_at') ORDER BY s.row_number)
             FROM contacts c JOIN staged_rows s ON s.id = c.id WHERE s.import_id = $1::uuid"
        ).await,
        "review": one(
            "SELECT json_agg(json_build_array(s.row_number, c.row_number, m.score, m.explanation)
                 ORDER BY s.row_number, c.row_number)
             FROM match_candidates m JOIN staged_rows s ON s.id = m.row_id
             JOIN staged_rows c ON c.id = m.contact_id WHERE s.import_id = $1::uuid"
        ).await,
        "keys": one(
            "SELECT json_agg(DISTINCT jsonb_build_array(k.key::text, s.row_number))
             FROM contact_keys_filed k JOIN staged_rows s ON s.id = k.contact_id
             WHERE s.import_id = $1::uuid"
        ).await,
        "counts": one(
            "SELECT json_build_array(merged_rows, created_rows) FROM imports WHERE id = $1::uuid"
        ).await,
    })
}

/// The batch taken in with chunks of 10 rows; its outcome and the job's
/// last progress message.
async fn take_in(read_ahead: bool, interfere: bool) -> (Value, String) {
    let app = TestApp::spawn_with(TestDb::new().await, |s| {
        s.dedupe.chunk_rows = 10;
        s.dedupe.max_block_size = 3;
        s.dedupe.read_ahead = read_ahead;
    })
    .await;
    let t = Imports::on(app, PackageName::Enterprise).await;
    let _worker = t.app.worker().await;
    // Another corpus writer taking the lock as often as it can: the plan
    // made ahead is mostly stale by the time its chunk gets the lock.
    let stop = CancellationToken::new();
    let other = interfere.then(|| {
        let (pool, stop) = (t.app.store.pool.clone(), stop.clone());
        tokio::spawn(async move {
            while !stop.is_cancelled() {
                let mut tx = pool.begin().await.unwrap();
                bizcontacts_store::corpus::lock(&mut tx).await.unwrap();
                tokio::time::sleep(Duration::from_millis(2)).await;
                tx.commit().await.unwrap();
            }
        })
    });
    let (import, job) = t.approved(&rows()).await;
    t.job_done(&job).await;
    stop.cancel();
    if let Some(other) = other {
        other.await.unwrap();
    }
    let message = t.job_message(&job).await;
    (outcome(&t, &import).await, message)
}

#[tokio::test]
async fn reading_ahead_plans_what_reading_after_each_commit_does() {
    let (after_commit, message) = take_in(false, false).await;
    assert!(!message.contains("ahead"), "{message}");
    // The data does what the test is about: merges into the chunk before,
    // the switchboard's key over the cap.
    let links = after_commit["links"].as_array().unwrap();
    assert_eq!(links.len(), 120);
    let merged = after_commit["counts"][0].as_i64().unwrap();
    assert_eq!(merged, 80, "every business one contact: {after_commit}");
    assert!(
        message.contains("blocking keys over the cap of 3"),
        "{message}"
    );
    assert!(!message.starts_with("0 merged"), "{message}");

    let (ahead, message) = take_in(true, false).await;
    // 12 chunks: every one after the first planned while the one before wrote.
    assert!(
        message.ends_with("; 11 chunks planned ahead, 0 read again"),
        "{message}"
    );
    assert_eq!(ahead, after_commit);
}

#[tokio::test]
async fn a_plan_made_ahead_is_read_again_when_another_writer_came_between() {
    let (after_commit, _) = take_in(false, false).await;
    let (ahead, message) = take_in(true, true).await;
    let again: u32 = message
        .rsplit(", ")
        .next()
        .and_then(|m| m.strip_suffix(" read again"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{message}"));
    assert!(again > 0, "{message}");
    assert_eq!(ahead, after_commit);
}

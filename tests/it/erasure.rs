//! Contact erasure (issue 19): the contact and its rows' values go, saved
//! lists show it withdrawn, and the same person imported again waits for a
//! reviewer who may not merge them back.

use crate::harness::problem;
use crate::imports::Imports;
use bizcontacts_domain::{PackageName, SystemRole};
use serde_json::{json, Value};

#[tokio::test]
async fn an_erased_contact_is_gone_and_its_return_waits_for_review() {
    let t = Imports::new(PackageName::Pro).await;
    let app = &t.app;
    let _worker = app.worker().await;
    let first = t
        .merged("Erin Erasable Ltd,Erin,Erase,erin@erasable.example,+44 20 7946 0958,,Leeds,,GB\n")
        .await;
    let contact = t.links(&first).await[0].clone().unwrap();
    let steward = app.system_user(SystemRole::DataSteward).await.token;
    let support = app.system_user(SystemRole::Support).await.token;
    let erase = |token: String, reason: &'static str| {
        let req = app
            .post(&format!("/v1/admin/contacts/{contact}/erase"), &token)
            .json(&json!({ "reason": reason }));
        async move { req.send().await.unwrap() }
    };
    problem(erase(support, "request").await, 403).await;
    let res = erase(steward.clone(), "the person asked (ticket 77)").await;
    assert_eq!(res.status(), 200);
    problem(erase(steward, "again").await, 404).await;

    // Nothing of the person is left in the corpus or the rows.
    let left: Value = sqlx::query_scalar(
        "SELECT json_build_object('contact', (SELECT row_to_json(c) FROM contacts c WHERE id = $1::uuid),
                                  'rows', (SELECT json_agg(s) FROM staged_rows s WHERE contact_id = $1::uuid))",
    )
    .bind(&contact)
    .fetch_one(&app.store.pool)
    .await
    .unwrap();
    let text = left.to_string();
    for value in ["Erasable", "erin@", "7946", "Leeds", "Erin"] {
        assert!(!text.contains(value), "{value} left: {text}");
    }
    assert_eq!(left["contact"]["active"], false);
    let keys: i64 =
        sqlx::query_scalar("SELECT count(*) FROM erased_keys WHERE contact_id = $1::uuid")
            .bind(&contact)
            .fetch_one(&app.store.pool)
            .await
            .unwrap();
    assert!(keys > 0, "a tombstone of key hashes");
    let audit: Value = sqlx::query_scalar(
        "SELECT details FROM audit_events WHERE action = 'contact.erased' AND target_id = $1",
    )
    .bind(&contact)
    .fetch_one(&app.store.pool)
    .await
    .unwrap();
    assert!(!audit.to_string().contains("erin@"), "{audit}");

    // The same person again: not created, not merged, waiting for review.
    let (again, job) = t
        .approved("Erin Erasable Ltd,Erin,Erase,erin@erasable.example,,,Leeds,,GB\n")
        .await;
    t.job_done(&job).await;
    assert_eq!(t.links(&again).await, vec![None]);
    let matches = t.get(&format!("/{again}/matches")).await;
    let pair = matches["items"][0].clone();
    assert_eq!(pair["contact_id"], contact.as_str(), "{matches}");
    let decide = |decision: &'static str| {
        t.app
            .post(&t.path(&format!("/{again}/matches")), &t.reviewer.token)
            .json(&json!({ "decisions": [{ "row_id": pair["row_id"], "contact_id": pair["contact_id"], "decision": decision }] }))
            .send()
    };
    let p = problem(decide("same").await.unwrap(), 422).await;
    assert_eq!(p["errors"][0]["field"], "decisions[0].decision");
    // "Different" (a namesake): the row goes on as a new contact.
    let res = decide("different").await.unwrap();
    assert_eq!(res.status(), 202);
    t.job_done(
        res.json::<Value>().await.unwrap()["job_id"]
            .as_str()
            .unwrap(),
    )
    .await;
    let link = t.links(&again).await[0].clone().unwrap();
    assert_ne!(link, contact);
}

//! Dedupe recall (issue 17) end to end: duplicates with typos and no shared
//! exact key merge and say why; merges do not chain; oversized blocks are
//! left out and reported.

use crate::dedupe::active_contacts;
use crate::harness::TestApp;
use crate::imports::Imports;
use bizcontacts_domain::PackageName;
use serde_json::Value;

fn field<'a>(why: &'a Value, name: &str) -> &'a Value {
    why["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["field"] == name)
        .unwrap_or_else(|| panic!("no {name} in {why}"))
}

#[tokio::test]
async fn a_duplicate_with_typos_and_no_shared_exact_key_merges_and_says_why() {
    let t = Imports::new(PackageName::Pro).await;
    let _worker = t.app.worker().await;
    let first = t
        .merged("Acme Plumbing,Zoe,Khan,zoe@acme.example,+44 20 7842 2413,,Leeds,LS1 4AP,GB\n")
        .await;
    // Company, both names and the phone each one typo away; no email.
    let second = t
        .merged("ACME Plumbnig Ltd,Zeo,Kahn,,+44 20 7842 2431,,Leeds,LS1 4AP,GB\n")
        .await;
    let (a, b) = (t.links(&first).await, t.links(&second).await);
    assert_eq!(a, b, "one contact");
    assert_eq!(active_contacts(&t.app).await, 1);

    // The row's provenance says why it merged.
    let rows = t.rows(&second, "").await;
    let why = &rows[0]["match_explanation"];
    assert!(why["probability"].as_f64().unwrap() >= 0.95, "{why}");
    assert_eq!(field(why, "phone")["level"], "one_edit");
    assert_eq!(field(why, "first_name")["level"], "jaro_winkler_0.92");
    assert!(field(why, "postcode")["bits"].as_f64().unwrap() > 0.0);
    assert!(why.get("person").is_some(), "both name someone: {why}");
    // The first row created the contact: nothing to explain.
    assert!(t.rows(&first, "").await[0]["match_explanation"].is_null());
}

#[tokio::test]
async fn merges_do_not_chain_through_a_record_without_a_person() {
    let t = Imports::new(PackageName::Pro).await;
    let _worker = t.app.worker().await;
    // John Smith; the company's switchboard record that names no one (the
    // same contact as far as it can tell); Mary Jones, who shares everything
    // with the switchboard record and her name with no one. Merging her
    // through it would make her John Smith.
    let (id, job) = t
        .approved(
            "Acme,John,Smith,john@acme.example,+1 617 555 0100,,Boston,02108,US\n\
             Acme,,,,+1 617 555 0100,,Boston,02108,US\n\
             Acme,Mary,Jones,,+1 617 555 0100,,Boston,02108,US\n",
        )
        .await;
    t.job_done(&job).await;
    let links = t.links(&id).await;
    assert_eq!(
        links[0], links[1],
        "the switchboard record joins John Smith"
    );
    assert_eq!(
        links[2],
        None,
        "Mary Jones waits: {}",
        t.rows(&id, "").await[2]
    );
    let matches = t.get(&format!("/{id}/matches")).await;
    let pair = &matches["items"][0];
    assert_eq!(pair["row_number"], 3);
    assert_eq!(
        pair["contact_id"].as_str(),
        links[0].as_deref(),
        "for a reviewer"
    );
    assert_eq!(active_contacts(&t.app).await, 1);
}

#[tokio::test]
async fn a_key_shared_by_too_many_contacts_finds_no_candidates_and_is_reported() {
    let mut app = TestApp::spawn().await;
    app.settings.dedupe.max_block_size = 3;
    let t = Imports::on(app, PackageName::Pro).await;
    let _worker = t.app.worker().await;
    // Four businesses behind one call centre's number.
    t.merged(
        "Alpha Ltd,,,a@alpha.example,+1 617 555 0199,,Boston,,US\n\
         Beta Ltd,,,b@beta.example,+1 617 555 0199,,Denver,,US\n\
         Gamma Ltd,,,c@gamma.example,+1 617 555 0199,,Austin,,US\n\
         Delta Ltd,,,d@delta.example,+1 617 555 0199,,Miami,,US\n",
    )
    .await;
    assert_eq!(active_contacts(&t.app).await, 4);
    // A fifth business with that number is compared with none of them.
    let (id, job) = t
        .approved("Epsilon Ltd,,,e@epsilon.example,+1 617 555 0199,,Seattle,,US\n")
        .await;
    t.job_done(&job).await;
    assert_eq!(active_contacts(&t.app).await, 5);
    let none: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM match_candidates m JOIN staged_rows s ON s.id = m.row_id
         WHERE s.import_id = $1::uuid",
    )
    .bind(&id)
    .fetch_one(&t.app.store.pool)
    .await
    .unwrap();
    assert_eq!(none, 0);
    let message = t.job_message(&job).await;
    assert!(
        message.contains("blocking keys over the cap of 3") && !message.contains(" 0 blocking"),
        "{message}"
    );
}

#[tokio::test]
async fn agreeing_on_a_common_name_counts_for_less_and_says_so() {
    let mut app = TestApp::spawn().await;
    // Count at every job, and from six on: a small corpus stands in for a big one.
    app.settings.dedupe.term_frequency_min_count = 6;
    app.settings.dedupe.term_frequency_max_age_secs = 0;
    let t = Imports::on(app, PackageName::Pro).await;
    let _worker = t.app.worker().await;
    // A chain in six towns, one person each, and one business of its own.
    let chain: String = ["Lee", "Ng", "Kim", "Park", "Cho", "Wu"]
        .iter()
        .enumerate()
        .map(|(i, last)| {
            let town = [
                "Springfield",
                "Shelbyville",
                "Ogdenville",
                "Brockway",
                "Cypress Creek",
                "Waverly",
            ][i];
            format!("Main Street Dental,Ann,{last},,+1 617 555 010{i},,{town},1000{i},US\n")
        })
        .collect();
    t.merged(&format!(
        "{chain}Quarrington Orthodontics,Ann,Quill,,+1 617 555 0109,,Capital City,10009,US\n"
    ))
    .await;
    let counted: Vec<(String, String, i64)> =
        sqlx::query_as("SELECT field, value, count FROM term_frequencies ORDER BY 1, 2")
            .fetch_all(&t.app.store.pool)
            .await
            .unwrap();
    // Counted when this job started, on an empty corpus.
    assert_eq!(counted, vec![]);
    // The same people again: each merges; the chain's name is worth less.
    let again = t
        .merged(
            "MAIN STREET DENTAL INC,Ann,Lee,,+1 617 555 0100,,Springfield,10000,US\n\
             Quarrington Orthodontics Inc,Ann,Quill,,+1 617 555 0109,,Capital City,10009,US\n",
        )
        .await;
    assert_eq!(active_contacts(&t.app).await, 7);
    let counted: Vec<(String, String, i64)> =
        sqlx::query_as("SELECT field, value, count FROM term_frequencies ORDER BY 1, 2")
            .fetch_all(&t.app.store.pool)
            .await
            .unwrap();
    assert_eq!(
        counted,
        vec![
            ("company_name".into(), "main street dental".into(), 6),
            ("first_name".into(), "ann".into(), 7),
        ]
    );
    let rows = t.rows(&again, "").await;
    let (chain, own) = (&rows[0]["match_explanation"], &rows[1]["match_explanation"]);
    // u(exact) 0.002 against a share of 6 places in 7.
    let tf = field(chain, "company_name")["term_frequency"]
        .as_f64()
        .unwrap();
    assert!(
        (tf - (0.002f64 / (6.0 / 7.0)).log2()).abs() < 0.01,
        "{chain}"
    );
    assert!(
        field(own, "company_name").get("term_frequency").is_none(),
        "{own}"
    );
    assert!(
        field(chain, "company_name")["bits"].as_f64() < field(own, "company_name")["bits"].as_f64()
    );
    // Ann is every contact's name: worth less on both.
    assert!(field(own, "first_name")["term_frequency"].as_f64().unwrap() < 0.0);
    assert!(chain["business"].as_f64() < own["business"].as_f64());
}

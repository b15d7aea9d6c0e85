//! Contact search, facets and saved contacts, against a corpus written
//! straight into `contacts` (the way dedupe leaves it).

use crate::harness::{problem, TestApp, TestUser};
use bizcontacts_domain::contact::Mcc;
use bizcontacts_domain::{PackageName, Role, TenantId};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use uuid::Uuid;

/// (company, first, last, country, mcc, segment, type)
type Row<'a> = (
    &'a str,
    &'a str,
    &'a str,
    &'a str,
    &'a str,
    &'a str,
    &'a str,
);

async fn contact(app: &TestApp, r: Row<'_>) -> Uuid {
    let id = Uuid::now_v7();
    let category = Mcc::parse(r.4).unwrap().category();
    sqlx::query(
        "INSERT INTO contacts (id, company_name, first_name, last_name, country, mcc, category, segment, type, city)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'Springfield')",
    )
    .bind(id)
    .bind(r.0)
    .bind(r.1)
    .bind(r.2)
    .bind(r.3)
    .bind(r.4)
    .bind(category)
    .bind(r.5)
    .bind(r.6)
    .execute(&app.store.pool)
    .await
    .unwrap();
    id
}

struct Searcher {
    app: TestApp,
    tenant: TenantId,
    user: TestUser,
}

impl Searcher {
    async fn new(package: PackageName) -> Self {
        let app = TestApp::spawn().await;
        let tenant = app.tenant(package).await;
        let user = app.member(tenant, Role::Member).await;
        Searcher { app, tenant, user }
    }

    async fn get(&self, query: &str) -> reqwest::Response {
        self.app
            .get(
                &format!("/v1/tenants/{}/contacts/search?{query}", self.tenant),
                &self.user.token,
            )
            .send()
            .await
            .unwrap()
    }

    /// The companies a search finds, in order.
    async fn names(&self, query: &str) -> Vec<String> {
        let res = self.get(query).await;
        assert_eq!(res.status(), 200, "{query}");
        let page: Value = res.json().await.unwrap();
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["company_name"].as_str().unwrap().to_string())
            .collect()
    }
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

#[tokio::test]
async fn each_filter_alone_and_combined() {
    let s = Searcher::new(PackageName::Pro).await;
    let app = &s.app;
    contact(
        app,
        (
            "Alpha Retail",
            "Anna",
            "Adler",
            "DE",
            "5411",
            "smb",
            "merchant",
        ),
    )
    .await;
    contact(
        app,
        (
            "Bistro Bleu",
            "Bruno",
            "Blanc",
            "FR",
            "5812",
            "enterprise",
            "prospect",
        ),
    )
    .await;
    contact(
        app,
        (
            "Cafe Central",
            "Carla",
            "Conti",
            "DE",
            "5814",
            "mid_market",
            "supplier",
        ),
    )
    .await;
    contact(
        app,
        ("Dakota Vets", "Dan", "Doe", "US", "0742", "smb", "partner"),
    )
    .await;
    contact(
        app,
        (
            "Brightwater Logistics",
            "Eve",
            "Evans",
            "GB",
            "4214",
            "enterprise",
            "supplier",
        ),
    )
    .await;
    let gone = contact(
        app,
        (
            "Ghost Retail",
            "Gil",
            "Gray",
            "DE",
            "5411",
            "smb",
            "merchant",
        ),
    )
    .await;
    sqlx::query("UPDATE contacts SET active = false WHERE id = $1")
        .bind(gone)
        .execute(&app.store.pool)
        .await
        .unwrap();

    let s = &s;
    let found =
        |q: &'static str| async move { s.names(q).await.into_iter().collect::<BTreeSet<_>>() };
    assert_eq!(
        found("country=DE").await,
        set(&["Alpha Retail", "Cafe Central"])
    );
    assert_eq!(
        found("country=de&country=France").await,
        set(&["Alpha Retail", "Bistro Bleu", "Cafe Central"])
    );
    assert_eq!(
        found("country=DE&segment=smb").await,
        set(&["Alpha Retail"])
    );
    assert_eq!(found("segment=Mid-Market").await, set(&["Cafe Central"]));
    assert_eq!(
        found("type=prospect&type=partner").await,
        set(&["Bistro Bleu", "Dakota Vets"])
    );
    assert_eq!(
        found("mcc=5811-5814").await,
        set(&["Bistro Bleu", "Cafe Central"])
    );
    assert_eq!(
        found("mcc=0742&mcc=5411").await,
        set(&["Alpha Retail", "Dakota Vets"])
    );
    assert_eq!(
        found("category=retail%20outlets").await,
        set(&["Alpha Retail"])
    );
    assert_eq!(
        found("mcc=5800-5899&country=FR").await,
        set(&["Bistro Bleu"])
    );
    // Three filters; a category and an MCC are both held (AND), so a code
    // outside the category finds nothing rather than ignoring either.
    assert_eq!(
        found("country=DE&segment=mid_market&type=supplier").await,
        set(&["Cafe Central"])
    );
    assert_eq!(
        found("category=retail%20outlets&mcc=5400-5499&country=DE").await,
        set(&["Alpha Retail"])
    );
    assert_eq!(found("category=retail%20outlets&mcc=0742").await, set(&[]));
    assert_eq!(
        found("q=brightwater&country=GB&type=supplier").await,
        set(&["Brightwater Logistics"])
    );
    // Free text with a typo, over company and person names.
    assert_eq!(found("q=brightwatr").await, set(&["Brightwater Logistics"]));
    assert_eq!(found("q=Conti").await, set(&["Cafe Central"]));
    // A quarantined-away contact never shows; nothing matches is an empty page.
    assert!(!found("").await.contains("Ghost Retail"));
    assert_eq!(found("country=JP").await, set(&[]));
    // SQL metacharacters are data.
    assert_eq!(
        found("q=%27%3B%20DROP%20TABLE%20contacts%3B%20--").await,
        set(&[])
    );
    assert_eq!(app.count("contacts").await, 6);

    for (query, field) in [
        ("country=Atlantis", "country"),
        ("country=DE%27%20OR%201%3D1", "country"),
        ("category=Spaceships", "category"),
        ("segment=huge", "segment"),
        ("type=friend", "type"),
        ("mcc=58a1", "mcc"),
        ("mcc=5814-5811", "mcc"),
        ("mcc=0001", "mcc"),
        ("limit=0", "limit"),
        ("limit=many", "limit"),
        ("colour=blue", "colour"),
        ("cursor=not-a-cursor", "cursor"),
    ] {
        let body = problem(s.get(query).await, 422).await;
        assert_eq!(body["errors"][0]["field"], field, "{query}: {body}");
    }
}

#[tokio::test]
async fn pages_return_every_match_once_in_order_while_contacts_arrive() {
    let s = Searcher::new(PackageName::Pro).await;
    let mut expected = BTreeSet::new();
    for i in 0..23 {
        let name = format!("Paged {i:02}");
        contact(&s.app, (&name, "P", "Q", "NL", "5411", "smb", "merchant")).await;
        expected.insert(name);
    }
    contact(
        &s.app,
        ("Elsewhere", "P", "Q", "BE", "5411", "smb", "merchant"),
    )
    .await;
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let query = match &cursor {
            Some(c) => format!("country=NL&limit=5&cursor={c}"),
            None => "country=NL&limit=5".to_string(),
        };
        let page: Value = s.get(&query).await.json().await.unwrap();
        for c in page["items"].as_array().unwrap() {
            seen.push((
                c["contact_id"].as_str().unwrap().to_string(),
                c["company_name"].as_str().unwrap().to_string(),
            ));
        }
        pages += 1;
        // Contacts created between pages: new ids sort last, so they come
        // in a later page, and nothing already seen comes again.
        if pages == 2 {
            let name = "Paged late".to_string();
            contact(&s.app, (&name, "P", "Q", "NL", "5411", "smb", "merchant")).await;
            expected.insert(name);
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    let ids: Vec<&String> = seen.iter().map(|(id, _)| id).collect();
    let mut sorted = ids.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(ids, sorted, "in id order, each once");
    let names: BTreeSet<String> = seen.into_iter().map(|(_, n)| n).collect();
    assert_eq!(names, expected);
    assert_eq!(pages, 5);

    // A cursor belongs to its query and its tenant.
    let first: Value = s.get("country=NL&limit=5").await.json().await.unwrap();
    let c = first["next_cursor"].as_str().unwrap();
    let body = problem(s.get(&format!("country=BE&limit=5&cursor={c}")).await, 422).await;
    assert_eq!(body["errors"][0]["field"], "cursor");
    let other = s.app.tenant(PackageName::Pro).await;
    let stranger = s.app.member(other, Role::Member).await;
    let res = s
        .app
        .get(
            &format!("/v1/tenants/{other}/contacts/search?country=NL&limit=5&cursor={c}"),
            &stranger.token,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(problem(res, 422).await["errors"][0]["field"], "cursor");
}

#[tokio::test]
async fn searches_per_day_hold_exactly_under_a_hundred_parallel_requests() {
    let s = Searcher::new(PackageName::Free).await; // 50 searches, 25 per search
    for i in 0..30 {
        let name = format!("Limited {i}");
        contact(&s.app, (&name, "L", "M", "IE", "5411", "smb", "merchant")).await;
    }
    // The per-search cap, said in the answer and the headers.
    let res = s.get("country=IE&limit=100").await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["x-usage-limit"], "50");
    assert_eq!(res.headers()["x-usage-remaining"], "49");
    let page: Value = res.json().await.unwrap();
    assert_eq!(page["limit_applied"], 25);
    assert_eq!(page["items"].as_array().unwrap().len(), 25);

    // 100 at once with 49 searches left: exactly 49 succeed.
    let url = s.app.url(&format!(
        "/v1/tenants/{}/contacts/search?country=IE",
        s.tenant
    ));
    let requests = (0..100).map(|_| {
        let (client, url, token) = (s.app.client.clone(), url.clone(), s.user.token.clone());
        tokio::spawn(async move { client.get(url).bearer_auth(token).send().await.unwrap() })
    });
    let mut ok = 0;
    let mut limited = 0;
    for r in futures::future::join_all(requests).await {
        let res = r.unwrap();
        match res.status().as_u16() {
            200 => ok += 1,
            429 => {
                limited += 1;
                let retry: u64 = res.headers()["retry-after"]
                    .to_str()
                    .unwrap()
                    .parse()
                    .unwrap();
                assert!((1..=86_400).contains(&retry));
                assert_eq!(res.headers()["x-usage-remaining"], "0");
                let body = problem(res, 429).await;
                assert_eq!(body["limit"], "searches_per_day");
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!((ok, limited), (49, 51));
    let used: i32 = sqlx::query_scalar("SELECT searches FROM usage_daily WHERE tenant_id = $1")
        .bind(s.tenant.0)
        .fetch_one(&s.app.store.pool)
        .await
        .unwrap();
    assert_eq!(used, 50);
    // Facets count as a search too, and so are refused now.
    let res = s
        .app
        .get(
            &format!("/v1/tenants/{}/contacts/facets?by=country", s.tenant),
            &s.user.token,
        )
        .send()
        .await
        .unwrap();
    problem(res, 429).await;
    // Usage shows it.
    let usage: Value = s
        .app
        .get_json(&format!("/v1/tenants/{}/usage", s.tenant), &s.user.token)
        .await;
    assert_eq!(usage["searches"]["used"], 50, "{usage}");
    assert_eq!(usage["searches"]["remaining"], 0, "{usage}");
}

#[tokio::test]
async fn corrections_and_saved_flags_are_each_tenants_own() {
    let s = Searcher::new(PackageName::Pro).await;
    let x = contact(
        &s.app,
        ("Xylo Partners", "X", "Y", "ES", "5411", "smb", "merchant"),
    )
    .await;
    let other = s.app.tenant(PackageName::Pro).await;
    let neighbour = s.app.member(other, Role::Member).await;

    let res = s
        .app
        .post(
            &format!("/v1/tenants/{}/contacts/{x}/corrections", s.tenant),
            &s.user.token,
        )
        .json(&json!({ "field": "city", "value": "Sevilla" }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let res = s
        .app
        .post(
            &format!("/v1/tenants/{}/saved-contacts", s.tenant),
            &s.user.token,
        )
        .json(&json!({ "contact_ids": [x] }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);

    let mine: Value = s.get("country=ES").await.json().await.unwrap();
    assert_eq!(mine["items"][0]["city"], "Sevilla");
    assert_eq!(mine["items"][0]["corrected_fields"], json!(["city"]));
    assert_eq!(mine["items"][0]["saved"], true);
    let theirs: Value = s
        .app
        .get_json(
            &format!("/v1/tenants/{other}/contacts/search?country=ES"),
            &neighbour.token,
        )
        .await;
    assert_eq!(theirs["items"][0]["city"], "Springfield");
    assert_eq!(theirs["items"][0]["corrected_fields"], json!([]));
    assert_eq!(theirs["items"][0]["saved"], false);
    let one: Value = s
        .app
        .get_json(
            &format!("/v1/tenants/{}/contacts/{x}", s.tenant),
            &s.user.token,
        )
        .await;
    assert_eq!(one["saved"], true);
}

#[tokio::test]
async fn saved_contacts_report_per_id_and_show_withdrawn_ones() {
    let s = Searcher::new(PackageName::Pro).await;
    let a = contact(
        &s.app,
        ("Keeper One", "K", "O", "IT", "5411", "smb", "merchant"),
    )
    .await;
    let b = contact(
        &s.app,
        ("Keeper Two", "K", "T", "IT", "5411", "smb", "merchant"),
    )
    .await;
    let path = format!("/v1/tenants/{}/saved-contacts", s.tenant);
    let save = |ids: Value| {
        s.app
            .post(&path, &s.user.token)
            .json(&json!({ "contact_ids": ids }))
            .send()
    };
    let unknown = Uuid::now_v7();
    let res: Value = save(json!([a, b, unknown]))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let outcomes: Vec<&str> = res["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["saved", "saved", "not_available"]);
    let res: Value = save(json!([a])).await.unwrap().json().await.unwrap();
    assert_eq!(res["results"][0]["outcome"], "already_saved");

    // B's only batch is quarantined away: it stays on the list, withdrawn.
    sqlx::query("UPDATE contacts SET active = false WHERE id = $1")
        .bind(b)
        .execute(&s.app.store.pool)
        .await
        .unwrap();
    let list: Value = s.app.get_json(&path, &s.user.token).await;
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["status"], "active");
    assert_eq!(items[0]["company_name"], "Keeper One");
    assert_eq!(items[1]["status"], "withdrawn");
    assert!(items[1].get("company_name").is_none());

    let one = format!("{path}/{a}");
    assert_eq!(
        s.app
            .delete(&one, &s.user.token)
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    problem(s.app.delete(&one, &s.user.token).send().await.unwrap(), 404).await;
    // Another tenant's list is its own.
    let other = s.app.tenant(PackageName::Pro).await;
    let neighbour = s.app.member(other, Role::Member).await;
    let theirs: Value = s
        .app
        .get_json(
            &format!("/v1/tenants/{other}/saved-contacts"),
            &neighbour.token,
        )
        .await;
    assert_eq!(theirs["items"], json!([]));
}

#[tokio::test]
async fn facets_count_the_values_of_a_search() {
    let s = Searcher::new(PackageName::Pro).await;
    for (name, country, segment) in [
        ("F1", "DE", "smb"),
        ("F2", "DE", "smb"),
        ("F3", "FR", "smb"),
        ("F4", "FR", "enterprise"),
        ("F5", "AT", "smb"),
    ] {
        contact(
            &s.app,
            (name, "F", "G", country, "5411", segment, "merchant"),
        )
        .await;
    }
    let res = s
        .app
        .get(
            &format!(
                "/v1/tenants/{}/contacts/facets?by=country&segment=smb",
                s.tenant
            ),
            &s.user.token,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers().contains_key("x-usage-remaining"));
    let facets: Value = res.json().await.unwrap();
    assert_eq!(facets["estimated"], false);
    assert_eq!(
        facets["values"],
        json!([{ "value": "DE", "count": 2 }, { "value": "AT", "count": 1 }, { "value": "FR", "count": 1 }])
    );
    // Categories are counted by MCC and summed: two retail codes, one not.
    for (name, mcc) in [("C1", "5411"), ("C2", "5499"), ("C3", "5812")] {
        contact(&s.app, (name, "F", "G", "GB", mcc, "smb", "merchant")).await;
    }
    let category = |code: &str| {
        bizcontacts_domain::contact::Mcc::parse(code)
            .unwrap()
            .category()
    };
    assert_eq!(category("5499"), "Retail outlets");
    let res = s
        .app
        .get(
            &format!(
                "/v1/tenants/{}/contacts/facets?by=category&country=GB",
                s.tenant
            ),
            &s.user.token,
        )
        .send()
        .await
        .unwrap();
    let facets: Value = res.json().await.unwrap();
    assert_eq!(
        facets["values"],
        json!([{ "value": "Retail outlets", "count": 2 }, { "value": category("5812"), "count": 1 }])
    );
    let res = s
        .app
        .get(
            &format!("/v1/tenants/{}/contacts/facets?by=colour", s.tenant),
            &s.user.token,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(problem(res, 422).await["errors"][0]["field"], "by");
}

/// Searches run on connections of their own whose sessions carry the search
/// settings (time bound, custom plans, no parallel workers, the `q`
/// threshold, and the counter's commit without a WAL flush); the main pool
/// keeps Postgres's defaults, so job and ledger writes stay durable.
#[tokio::test]
async fn search_connections_carry_their_settings_and_no_one_else_does() {
    use bizcontacts_store::search_pool::{settings, SearchPool};
    let app = TestApp::spawn().await;
    let search = SearchPool::connect(&app.db.url, 1, std::time::Duration::from_secs(5))
        .await
        .unwrap();
    // Load pg_trgm's library, so its setting reads back through its own definition.
    sqlx::query("SELECT word_similarity('a', 'a')")
        .execute(search.pool())
        .await
        .unwrap();
    for (name, value) in settings() {
        let on_search: String = sqlx::query_scalar("SELECT current_setting($1)")
            .bind(name)
            .fetch_one(search.pool())
            .await
            .unwrap();
        let expected = match name {
            "statement_timeout" => "3s".to_string(),
            _ => value,
        };
        assert_eq!(on_search, expected, "{name} on a search connection");
        let on_main: Option<String> = sqlx::query_scalar("SELECT current_setting($1, true)")
            .bind(name)
            .fetch_one(&app.store.pool)
            .await
            .unwrap();
        assert_ne!(
            on_main.as_deref(),
            Some(expected.as_str()),
            "{name} on the main pool"
        );
    }
    // The time bound holds: a statement past it is cancelled, not waited for.
    let err = sqlx::query("SELECT pg_sleep(5)")
        .execute(search.pool())
        .await
        .unwrap_err();
    assert_eq!(
        err.as_database_error().and_then(|e| e.code()).as_deref(),
        Some("57014")
    );
}

//! Imports end to end: upload or API rows in, an in-process worker stages
//! them, reviewers read and decide. Every bad input of the issue has a test.

use crate::harness::{problem, wait_until, TestApp, TestDb, TestUser};
use bizcontacts_domain::{PackageName, Role, TenantId};
use serde_json::{json, Value};

pub struct Imports {
    pub app: TestApp,
    pub tenant: TenantId,
    pub importer: TestUser,
    pub reviewer: TestUser,
}

impl Imports {
    pub async fn new(package: PackageName) -> Self {
        Self::on(TestApp::spawn().await, package).await
    }

    pub async fn on(app: TestApp, package: PackageName) -> Self {
        let tenant = app.tenant(package).await;
        let importer = app.member(tenant, Role::Importer).await;
        let reviewer = app.member(tenant, Role::Reviewer).await;
        Self {
            app,
            tenant,
            importer,
            reviewer,
        }
    }

    pub fn path(&self, rest: &str) -> String {
        format!("/v1/tenants/{}/imports{rest}", self.tenant)
    }

    pub async fn upload(&self, body: impl Into<reqwest::Body>) -> reqwest::Response {
        self.app
            .post(&self.path("/csv"), &self.importer.token)
            .header("content-type", "text/csv")
            .body(body)
            .send()
            .await
            .unwrap()
    }

    /// Upload and return the import id (202 expected).
    pub async fn accepted(&self, body: impl Into<reqwest::Body>) -> String {
        import_id(self.upload(body).await).await
    }

    /// `POST /imports/manual` as the importer.
    pub async fn manual(&self, contact: Value) -> reqwest::Response {
        self.app
            .post(&self.path("/manual"), &self.importer.token)
            .json(&contact)
            .send()
            .await
            .unwrap()
    }

    pub async fn get(&self, rest: &str) -> Value {
        let res = self
            .app
            .get(&self.path(rest), &self.reviewer.token)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{rest}");
        res.json().await.unwrap()
    }

    /// Wait until the batch leaves queued/processing; returns its view.
    pub async fn finished(&self, id: &str) -> Value {
        let path = format!("/{id}");
        wait_until(60, "import finished", || async {
            let view = self.get(&path).await;
            !matches!(view["status"].as_str(), Some("queued" | "processing"))
        })
        .await;
        self.get(&path).await
    }

    pub async fn rows(&self, id: &str, query: &str) -> Vec<Value> {
        let page = self.get(&format!("/{id}/rows?limit=200{query}")).await;
        page["items"].as_array().unwrap().clone()
    }

    pub async fn review(&self, id: &str, body: Value) -> reqwest::Response {
        self.app
            .post(&self.path(&format!("/{id}/review")), &self.reviewer.token)
            .json(&body)
            .send()
            .await
            .unwrap()
    }
}

/// The import id of a 202 that accepted a batch with its job.
async fn import_id(res: reqwest::Response) -> String {
    assert_eq!(res.status(), 202);
    let v: Value = res.json().await.unwrap();
    assert!(v["job_id"].is_string());
    v["import_id"].as_str().unwrap().to_string()
}

const GOOD_HEADER: &str =
    "Business Name;E-Mail;Phone;Website;Country;MCC;Segment;Type;Favourite colour";

#[tokio::test]
async fn a_csv_is_staged_row_by_row_with_every_error_named() {
    let t = Imports::new(PackageName::Pro).await;
    let _worker = t.app.worker().await;
    // BOM, semicolons, CRLF / LF / CR endings, a quoted newline and escaped
    // quotes, HTML and SQL metacharacters, an unknown and a shortened MCC.
    let csv = format!(
        "\u{feff}{GOOD_HEADER}\r\n\
         \"Acme \"\"Best\"\" Inc\";Sales@ACME.com;(415) 555-2671;www.acme.com;USA;0742;SMB;merchant;blue\n\
         \"Multi\nLine GmbH\";info@multi.de;030 901820;multi.de;Germany;5411;enterprise;supplier;\r\
         <script>alert(1)</script>;x@evil.example;;;FR;0001;huge;;red\n\
         \"Robert'); DROP TABLE staged_rows;--\";bobby@tables.example;;;GB;742;;;\n\
         \"Acme \"\"Best\"\" Inc\";Sales@ACME.com;(415) 555-2671;www.acme.com;USA;0742;SMB;merchant;blue\n"
    );
    let id = t.accepted(csv).await;
    let view = t.finished(&id).await;
    assert_eq!(view["status"], "staged", "{view}");
    let c = &view["counts"];
    assert_eq!(
        (
            c["total"].as_i64(),
            c["valid"].as_i64(),
            c["invalid"].as_i64()
        ),
        (Some(5), Some(3), Some(2))
    );
    assert_eq!(c["duplicate_in_batch"], 1);
    assert_eq!(view["delimiter"], ";");
    assert_eq!(
        view["columns"][0],
        json!({ "name": "Business Name", "field": "company_name" })
    );
    assert_eq!(
        view["columns"][8],
        json!({ "name": "Favourite colour", "field": null })
    );
    assert_eq!(view["progress"]["done"], 5);

    let rows = t.rows(&id, "").await;
    assert_eq!(rows.len(), 5);
    let acme = &rows[0];
    assert_eq!(acme["row_number"], 1);
    assert_eq!(acme["raw"]["Business Name"], "Acme \"Best\" Inc");
    let n = &acme["normalized"];
    assert_eq!(n["email"], "Sales@acme.com");
    assert_eq!(n["phone"], "+14155552671");
    assert_eq!(n["domain"], "acme.com");
    assert_eq!(n["country"], "US");
    assert_eq!(n["mcc"], "0742");
    assert_eq!(n["category"], "Agricultural services");
    assert_eq!(n["extra"], json!({ "Favourite colour": "blue" }));
    assert_eq!(rows[1]["normalized"]["company_name"], "Multi Line GmbH");
    assert_eq!(rows[1]["raw"]["Business Name"], "Multi\nLine GmbH");
    assert_eq!(rows[1]["normalized"]["phone"], "+4930901820");

    // The HTML row: stored verbatim, errors for MCC and segment.
    let html = &rows[2];
    assert_eq!(html["status"], "invalid");
    assert_eq!(html["raw"]["Business Name"], "<script>alert(1)</script>");
    let fields: Vec<&str> = html["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["segment", "mcc"]);
    let sql = &rows[3];
    assert_eq!(
        sql["normalized"]["company_name"],
        "Robert'); DROP TABLE staged_rows;--"
    );
    assert_eq!(sql["errors"][0]["field"], "mcc");
    assert_eq!(sql["errors"][0]["value"], "742");
    assert!(sql["errors"][0]["reason"]
        .as_str()
        .unwrap()
        .contains("did you mean 0742"));
    assert_eq!(rows[4]["duplicate_of"], 1);

    let invalid = t.rows(&id, "&status=invalid").await;
    assert_eq!(invalid.len(), 2);
    assert_eq!(
        t.app.count("staged_rows").await,
        5,
        "the DROP TABLE stayed data"
    );
    assert_eq!(
        t.app.count("import_uploads").await,
        0,
        "the upload is gone once staged"
    );

    // errors.csv: one line per error, formula-like values defused.
    let res = t
        .app
        .get(&t.path(&format!("/{id}/errors.csv")), &t.importer.token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    let text = res.text().await.unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("row_number,field,value,reason"));
    let body: Vec<&str> = lines.collect();
    assert_eq!(body.len(), 3, "{text}");
    assert!(body[0].starts_with("3,segment,huge,"));
    assert!(body[2].starts_with("4,mcc,742,"));
}

#[tokio::test]
async fn formula_values_are_escaped_in_errors_csv() {
    let t = Imports::new(PackageName::Pro).await;
    let _worker = t.app.worker().await;
    let id = t
        .accepted("company,email,phone,country\n=HYPERLINK(\"http://x\"),=1+2,@SUM(A1),-3\n")
        .await;
    t.finished(&id).await;
    let text = t
        .app
        .get(&t.path(&format!("/{id}/errors.csv")), &t.importer.token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let values: Vec<String> = reader
        .records()
        .map(|r| r.unwrap()[2].to_string())
        .collect();
    assert!(values.contains(&"'=1+2".to_string()), "{values:?}");
    assert!(values.contains(&"'-3".to_string()), "{values:?}");
    for v in &values {
        assert!(!v.starts_with(['=', '+', '-', '@']), "{v}");
    }
}

#[tokio::test]
async fn latin1_and_other_delimiters_are_read() {
    let t = Imports::new(PackageName::Pro).await;
    let _worker = t.app.worker().await;
    let id = t
        .accepted(&b"Company\tCity\tEmail\nCaf\xE9 M\xFCller\tK\xF6ln\tcafe@muller.de\n"[..])
        .await;
    let view = t.finished(&id).await;
    assert_eq!(view["encoding"], "windows-1252");
    assert_eq!(view["delimiter"], "\t");
    let rows = t.rows(&id, "").await;
    assert_eq!(rows[0]["normalized"]["company_name"], "Café Müller");
    assert_eq!(rows[0]["normalized"]["city"], "Köln");

    let id = t.accepted("company|email\nPipe Co|p@pipe.example\n").await;
    assert_eq!(t.finished(&id).await["counts"]["valid"], 1);
}

#[tokio::test]
async fn damaged_utf8_keeps_the_good_rows_and_names_the_bad_bytes() {
    let t = Imports::new(PackageName::Pro).await;
    let _worker = t.app.worker().await;
    let mut file = "company,city,email\nCafé Müller,Zürich,c@muller.example\n"
        .as_bytes()
        .to_vec();
    file.extend_from_slice(b"Bro\xFFken,G\xF6teborg,b@broken.example\n");
    let id = t.accepted(file).await;
    let view = t.finished(&id).await;
    assert_eq!(view["encoding"], "utf-8");
    let rows = t.rows(&id, "").await;
    assert_eq!(rows[0]["normalized"]["city"], "Zürich");
    assert_eq!(rows[1]["status"], "invalid");
    let fields: Vec<&str> = rows[1]["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["company_name", "city"]);
    assert!(rows[1]["errors"][0]["reason"]
        .as_str()
        .unwrap()
        .contains("not valid UTF-8"));
}

#[tokio::test]
async fn files_that_cannot_be_read_fail_as_a_whole_with_a_message() {
    let t = Imports::new(PackageName::Pro).await;
    let _worker = t.app.worker().await;
    // Refused at the door: nothing written.
    let p = problem(t.upload("").await, 422).await;
    assert_eq!(p["errors"][0]["field"], "file");
    assert_eq!(p["errors"][0]["reason"], "the file is empty");
    let garbage: Vec<u8> = (0..50_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let p = problem(t.upload(garbage).await, 422).await;
    assert!(
        p["errors"][0]["reason"]
            .as_str()
            .unwrap()
            .starts_with("the file is not text"),
        "{p}"
    );
    assert_eq!(t.app.count("imports").await, 0);
    assert_eq!(t.app.count("import_uploads").await, 0);
    assert_eq!(t.app.count("jobs").await, 0);

    // Accepted, then failed by the job with a message and no rows.
    for (file, message) in [
        (
            "company,email\n",
            "the file has a header row but no data rows",
        ),
        (
            "Acme Inc,sales@acme.com\nBeta,b@beta.com\n",
            "no recognizable header row",
        ),
    ] {
        let id = t.accepted(file).await;
        let view = t.finished(&id).await;
        assert_eq!(view["status"], "failed", "{file:?}");
        assert!(
            view["message"].as_str().unwrap().starts_with(message),
            "{view}"
        );
        assert!(t.rows(&id, "").await.is_empty());
    }
}

#[tokio::test]
async fn huge_rows_and_fields_are_row_errors() {
    let t = Imports::new(PackageName::Pro).await;
    let _worker = t.app.worker().await;
    let wide: Vec<String> = (0..1000).map(|i| format!("v{i}")).collect();
    let big = "x".repeat(1 << 20);
    let csv = format!(
        "company,email,notes\nWide Co,w@wide.example,{}\nBig Co,b@big.example,{big}\n\"{big}\",c@big.example,\n",
        wide[2..].join(",")
    );
    let id = t.accepted(csv).await;
    let view = t.finished(&id).await;
    assert_eq!(view["counts"]["invalid"], 3, "{view}");
    let rows = t.rows(&id, "").await;
    assert_eq!(
        rows[0]["errors"][0]["reason"],
        "has 1000 fields; the header has 3"
    );
    assert_eq!(
        rows[0]["raw"].as_object().unwrap().len(),
        1000,
        "every field is kept"
    );
    assert!(rows[1]["errors"][0]["reason"]
        .as_str()
        .unwrap()
        .contains("1048576 bytes"));
    assert_eq!(rows[1]["errors"][0]["field"], "notes");
    assert_eq!(rows[2]["errors"][0]["field"], "company_name");
    assert!(rows[2]["raw"]["company"].as_str().unwrap().len() <= 8192);
}

#[tokio::test]
async fn uploads_over_the_limit_are_refused_and_leave_nothing() {
    let app = TestApp::spawn_with(TestDb::new().await, |s| {
        s.imports.max_upload_bytes = 64 * 1024
    })
    .await;
    let t = Imports::on(app, PackageName::Pro).await;
    let big = format!("company,email\n{}", "Acme,a@acme.example\n".repeat(5_000));
    let p = problem(t.upload(big.clone()).await, 413).await;
    assert!(p["detail"].as_str().unwrap().contains("65536 bytes"), "{p}");
    // Chunked, with no Content-Length: counted while streaming.
    let stream = futures::stream::iter(
        big.into_bytes()
            .chunks(4096)
            .map(|c| Ok::<_, std::io::Error>(c.to_vec()))
            .collect::<Vec<_>>(),
    );
    let p = problem(t.upload(reqwest::Body::wrap_stream(stream)).await, 413).await;
    assert_eq!(p["status"], 413);
    // Multipart too.
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(vec![b'a'; 100 * 1024]).file_name("big.csv"),
    );
    let res = t
        .app
        .post(&t.path("/csv"), &t.importer.token)
        .multipart(form)
        .send()
        .await
        .unwrap();
    problem(res, 413).await;
    assert_eq!(t.app.count("imports").await, 0);
    assert_eq!(t.app.count("import_uploads").await, 0);
}

#[tokio::test]
async fn multipart_uploads_keep_their_file_name() {
    let t = Imports::new(PackageName::Pro).await;
    let _worker = t.app.worker().await;
    let form = reqwest::multipart::Form::new()
        .text("note", "ignored")
        .part(
            "file",
            reqwest::multipart::Part::bytes(b"company,website\nAcme,acme.com\n".to_vec())
                .file_name("leads.csv"),
        );
    let res = t
        .app
        .post(&t.path("/csv"), &t.importer.token)
        .multipart(form)
        .send()
        .await
        .unwrap();
    let id = import_id(res).await;
    let view = t.finished(&id).await;
    assert_eq!(view["filename"], "leads.csv");
    assert_eq!(view["counts"]["valid"], 1);
    let form = reqwest::multipart::Form::new().text("other", "x");
    let res = t
        .app
        .post(&t.path("/csv"), &t.importer.token)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(problem(res, 422).await["errors"][0]["field"], "file");
    let res = t
        .app
        .post(&t.path("/csv"), &t.importer.token)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    problem(res, 415).await;
}

#[tokio::test]
async fn the_same_idempotency_key_returns_the_same_batch() {
    let t = Imports::new(PackageName::Pro).await;
    let send = || {
        t.app
            .post(&t.path("/csv"), &t.importer.token)
            .header("content-type", "text/csv")
            .header("idempotency-key", "upload-1")
            .body("company,email\nAcme,a@acme.example\n")
            .send()
    };
    let first = send().await.unwrap();
    assert_eq!(first.status(), 202);
    let first: Value = first.json().await.unwrap();
    let again = send().await.unwrap();
    assert_eq!(again.status(), 200);
    assert_eq!(again.json::<Value>().await.unwrap(), first);
    assert_eq!(t.app.count("imports").await, 1);
    assert_eq!(t.app.count("jobs").await, 1);
}

#[tokio::test]
async fn an_idempotency_key_names_one_request() {
    let t = Imports::new(PackageName::Pro).await;
    let csv = |key: &str, body: &'static str| {
        t.app
            .post(&t.path("/csv"), &t.importer.token)
            .header("content-type", "text/csv")
            .header("idempotency-key", key)
            .body(body)
            .send()
    };
    let keyed = |path: &str, key: &str, body: Value| {
        t.app
            .post(path, &t.importer.token)
            .header("idempotency-key", key)
            .json(&body)
            .send()
    };
    assert_eq!(
        csv("k1", "company,email\nAcme,a@acme.example\n")
            .await
            .unwrap()
            .status(),
        202
    );

    // Another file under the same key.
    let body = problem(
        csv("k1", "company,email\nOther,o@other.example\n")
            .await
            .unwrap(),
        422,
    )
    .await;
    assert_eq!(body["errors"][0]["field"], "Idempotency-Key");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("different request"),
        "{body}"
    );

    // The same key on other endpoints: refused, naming where it was used.
    let manual = t.path("/manual");
    let body = problem(
        keyed(&manual, "k1", json!({ "company_name": "Acme" }))
            .await
            .unwrap(),
        422,
    )
    .await;
    assert!(
        body["detail"].as_str().unwrap().contains("/imports/csv"),
        "{body}"
    );
    let body = problem(
        keyed(
            &t.path(""),
            "k1",
            json!({ "rows": [{ "company_name": "Acme" }] }),
        )
        .await
        .unwrap(),
        422,
    )
    .await;
    assert!(
        body["detail"].as_str().unwrap().contains("/imports/csv"),
        "{body}"
    );
    let jobs = format!("/v1/tenants/{}/jobs", t.tenant);
    problem(
        keyed(&jobs, "k1", json!({ "kind": "test_noop" }))
            .await
            .unwrap(),
        422,
    )
    .await;

    // A CSV that cannot be read keeps its key for its own batch: reusing it
    // on a manual entry is a 422, not a 409 about a batch with no row.
    assert_eq!(csv("k2", "\u{0}\u{1}binary").await.unwrap().status(), 422);
    let bad = csv("k3", "just one line that names no field\n")
        .await
        .unwrap();
    assert_eq!(bad.status(), 202);
    problem(
        keyed(&manual, "k3", json!({ "company_name": "Acme" }))
            .await
            .unwrap(),
        422,
    )
    .await;

    // The same manual entry twice is one entry; another entry under its key is refused.
    let first = keyed(
        &manual,
        "m1",
        json!({ "company_name": "Acme", "email": "a@acme.example" }),
    )
    .await
    .unwrap();
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.unwrap();
    let again = keyed(
        &manual,
        "m1",
        json!({ "company_name": "Acme", "email": "a@acme.example" }),
    )
    .await
    .unwrap();
    assert_eq!(again.status(), 200);
    assert_eq!(again.json::<Value>().await.unwrap(), first);
    problem(
        keyed(&manual, "m1", json!({ "company_name": "Beta" }))
            .await
            .unwrap(),
        422,
    )
    .await;

    // API imports likewise.
    let rows = json!({ "rows": [{ "company_name": "Acme" }, { "company_name": "Beta" }] });
    let first = keyed(&t.path(""), "a1", rows.clone()).await.unwrap();
    assert_eq!(first.status(), 202);
    let first: Value = first.json().await.unwrap();
    let again = keyed(&t.path(""), "a1", rows).await.unwrap();
    assert_eq!(again.status(), 200);
    assert_eq!(again.json::<Value>().await.unwrap(), first);
    problem(
        keyed(
            &t.path(""),
            "a1",
            json!({ "rows": [{ "company_name": "Gamma" }] }),
        )
        .await
        .unwrap(),
        422,
    )
    .await;
    // k1, k3 (CSV), m1 (manual) and a1 (API): four batches, nothing else.
    assert_eq!(t.app.count("imports").await, 4);
}

#[tokio::test]
async fn rows_beyond_the_daily_limit_are_counted_not_staged() {
    let t = Imports::new(PackageName::Free).await; // 1,000 import rows per day
    let _worker = t.app.worker().await;
    let mut csv = String::from("company,email\n");
    for i in 0..1_200 {
        csv.push_str(&format!("Company {i},c{i}@example.com\n"));
    }
    let id = t.accepted(csv).await;
    let view = t.finished(&id).await;
    assert_eq!(view["status"], "staged");
    assert_eq!(view["counts"]["total"], 1_000);
    assert_eq!(view["counts"]["not_staged"], 200);
    assert!(
        view["message"]
            .as_str()
            .unwrap()
            .contains("200 rows were not staged"),
        "{view}"
    );
    // The day is used up: the next upload is refused at once.
    let res = t.upload("company,email\nX,x@x.example\n").await;
    assert!(res.headers().contains_key("retry-after"));
    let p = problem(res, 429).await;
    assert!(p["detail"]
        .as_str()
        .unwrap()
        .contains("import rows per day"));
}

#[tokio::test]
async fn a_long_file_over_the_daily_limit_stages_only_the_allowance() {
    // Five chunks: the first ones are copied before the allowance is known
    // and trimmed; those after it skip the copy. Either way only 1,000 stay.
    let t = Imports::new(PackageName::Free).await; // 1,000 import rows per day
    let _worker = t.app.worker().await;
    let id = t.accepted(long_csv(25_000)).await;
    let view = t.finished(&id).await;
    assert_eq!(view["status"], "staged", "{view}");
    assert_eq!(view["counts"]["total"], 1_000);
    assert_eq!(view["counts"]["not_staged"], 24_000);
    let (n, max): (i64, Option<i32>) = sqlx::query_as(
        "SELECT count(*), max(row_number) FROM staged_rows WHERE import_id = $1::uuid",
    )
    .bind(&id)
    .fetch_one(&t.app.store.pool)
    .await
    .unwrap();
    assert_eq!((n, max), (1_000, Some(1_000)), "the first 1,000 rows, once");
}

#[tokio::test]
async fn api_import_and_manual_entry_stage_like_csv() {
    let t = Imports::new(PackageName::Pro).await;
    let _worker = t.app.worker().await;
    let res = t
        .app
        .post(&t.path(""), &t.importer.token)
        .json(&json!({ "rows": [
            { "company_name": "Api One", "email": "one@api.example", "mcc": 5411, "source_id": 17 },
            { "company_name": "Api Two", "phone": "+44 20 7946 0958", "mcc": 742 },
        ]}))
        .send()
        .await
        .unwrap();
    let id = import_id(res).await;
    let view = t.finished(&id).await;
    assert_eq!(view["source"], "api");
    assert_eq!(
        (
            view["counts"]["valid"].as_i64(),
            view["counts"]["invalid"].as_i64()
        ),
        (Some(1), Some(1))
    );
    let rows = t.rows(&id, "").await;
    assert_eq!(rows[0]["normalized"]["extra"], json!({ "source_id": "17" }));
    assert!(rows[1]["errors"][0]["reason"]
        .as_str()
        .unwrap()
        .contains("0742"));

    // Nested values and empty batches are refused, naming the field.
    let res = t
        .app
        .post(&t.path(""), &t.importer.token)
        .json(&json!({ "rows": [{ "company_name": "X", "email": ["a@b.c"] }] }))
        .send()
        .await
        .unwrap();
    assert_eq!(
        problem(res, 422).await["errors"][0]["field"],
        "rows[0].email"
    );
    let res = t
        .app
        .post(&t.path(""), &t.importer.token)
        .json(&json!({ "rows": [] }))
        .send()
        .await
        .unwrap();
    assert_eq!(problem(res, 422).await["errors"][0]["field"], "rows");

    // Manual entry answers at once, errors included, and stages the row either way.
    let res = t
        .manual(json!({ "company_name": "Hand Made", "email": "not-an-email" }))
        .await;
    assert_eq!(res.status(), 201);
    let entry: Value = res.json().await.unwrap();
    assert_eq!(entry["status"], "invalid");
    assert_eq!(entry["errors"][0]["field"], "email");
    let id = entry["import_id"].as_str().unwrap();
    let view = t.get(&format!("/{id}")).await;
    assert_eq!(
        (view["source"].as_str(), view["status"].as_str()),
        (Some("manual"), Some("staged"))
    );
    let res = t.manual(json!({ "colour": "red" })).await;
    assert_eq!(problem(res, 422).await["errors"][0]["field"], "body");
}

#[tokio::test]
async fn review_approves_valid_rows_only_and_is_audited() {
    let t = Imports::new(PackageName::Pro).await;
    let _worker = t.app.worker().await;
    let id = t
        .accepted("company,email\nGood One,g1@ok.example\nGood Two,g2@ok.example\nBad,nope\nGood One,g1@ok.example\n")
        .await;
    t.finished(&id).await;
    let rows = t.rows(&id, "").await;
    let row_id = |i: usize| rows[i]["row_id"].as_str().unwrap().to_string();

    // Invalid rows cannot be approved; rows of another batch are unknown; nothing changes.
    let p = problem(
        t.review(&id, json!({ "approve": [row_id(0), row_id(2)] }))
            .await,
        422,
    )
    .await;
    assert_eq!(p["errors"][0]["field"], "approve");
    let other: Value = t
        .manual(json!({ "company_name": "Else", "email": "e@else.example" }))
        .await
        .json()
        .await
        .unwrap();
    let p = problem(
        t.review(&id, json!({ "reject": [other["row_id"]] })).await,
        422,
    )
    .await;
    assert_eq!(p["errors"][0]["field"], "rows");
    problem(t.review(&id, json!({ "approve": "everything" })).await, 422).await;
    problem(
        t.review(
            &id,
            json!({ "approve": [row_id(0)], "reject": [row_id(0)] }),
        )
        .await,
        422,
    )
    .await;
    assert_eq!(t.rows(&id, "&status=approved").await.len(), 0);

    // An importer may not review.
    let res = t
        .app
        .post(&t.path(&format!("/{id}/review")), &t.importer.token)
        .json(&json!({ "approve": "all_valid" }))
        .send()
        .await
        .unwrap();
    problem(res, 403).await;

    let res = t
        .review(
            &id,
            json!({ "approve": "all_valid", "reject": [row_id(2)] }),
        )
        .await;
    assert_eq!(res.status(), 202, "approval enqueues the dedupe job");
    let out: Value = res.json().await.unwrap();
    assert_eq!(
        (out["approved"].as_u64(), out["rejected"].as_u64()),
        (Some(2), Some(1))
    );
    assert!(out["job_id"].is_string());
    let view = t.get(&format!("/{id}")).await;
    assert_eq!(
        (
            view["counts"]["approved"].as_i64(),
            view["counts"]["rejected"].as_i64()
        ),
        (Some(2), Some(1))
    );
    assert_eq!(
        t.rows(&id, "&status=valid").await.len(),
        1,
        "the in-file duplicate waits for a decision"
    );
    // A rejected row with errors stays unapprovable.
    let p = problem(t.review(&id, json!({ "approve": [row_id(2)] })).await, 422).await;
    assert_eq!(p["errors"][0]["field"], "approve");

    let audited: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_events WHERE action = 'import.reviewed' AND target_id = $1 AND actor_user_id = $2",
    )
    .bind(&id)
    .bind(t.reviewer.id.0)
    .fetch_one(&t.app.store.pool)
    .await
    .unwrap();
    assert_eq!(audited, 1);
}

#[tokio::test]
async fn another_tenants_imports_are_not_found() {
    let t = Imports::new(PackageName::Pro).await;
    let entry: Value = t
        .manual(json!({ "company_name": "Mine", "email": "m@mine.example" }))
        .await
        .json()
        .await
        .unwrap();
    let other = t.app.tenant(PackageName::Pro).await;
    let admin = t.app.member(other, Role::OrgAdmin).await;
    let id = entry["import_id"].as_str().unwrap();
    for path in [
        format!("/v1/tenants/{other}/imports/{id}"),
        format!("/v1/tenants/{other}/imports/{id}/rows"),
    ] {
        let res = t.app.get(&path, &admin.token).send().await.unwrap();
        problem(res, 404).await;
    }
    let res = t
        .app
        .post(
            &format!("/v1/tenants/{other}/imports/{id}/review"),
            &admin.token,
        )
        .json(&json!({ "approve": [entry["row_id"]] }))
        .send()
        .await
        .unwrap();
    problem(res, 404).await;
}

#[tokio::test]
async fn raw_values_round_trip_exactly_and_leave_with_their_batch() {
    let t = Imports::new(PackageName::Pro).await;
    let _worker = t.app.worker().await;
    // What COPY's formats escape or frame: backslashes, tabs, braces and
    // commas of array literals, quotes, the word NULL, non-ASCII, nothing.
    let notes = [
        "back\\slash \\N",
        "tab\there",
        "{brace},\"quote\"",
        "NULL",
        "Zürich — 東京",
        "unit\u{1f}separator \\s",
        "",
    ];
    let mut csv = String::from("company;email;notes\n");
    for (i, n) in notes.iter().enumerate() {
        csv.push_str(&format!(
            "Acme {i};a{i}@acme.example;\"{}\"\n",
            n.replace('"', "\"\"")
        ));
    }
    let id = t.accepted(csv).await;
    let view = t.finished(&id).await;
    assert_eq!(view["counts"]["valid"], notes.len(), "{view}");
    let rows = t.rows(&id, "").await;
    for (row, n) in rows.iter().zip(notes) {
        assert_eq!(row["raw"]["notes"], n);
    }

    // The batch goes and its rows go with it, as the foreign key's cascade did.
    let pool = &t.app.store.pool;
    sqlx::query("DELETE FROM imports WHERE id = $1::uuid")
        .bind(&id)
        .execute(pool)
        .await
        .unwrap();
    assert_eq!(t.app.count("staged_rows").await, 0);
    // Rows of a batch that does not exist are refused, as the key refused them.
    let err = sqlx::query(
        "INSERT INTO staged_rows (id, import_id, row_number, status, raw, fingerprint)
         VALUES (gen_random_uuid(), $1::uuid, 1, 'valid', '{}', '\\x00')",
    )
    .bind(&id)
    .execute(pool)
    .await
    .unwrap_err();
    let code = err.as_database_error().and_then(|e| e.code());
    assert_eq!(code.as_deref(), Some("23503"), "{err}");
}

/// A file long enough that a worker can be killed in the middle of it.
fn long_csv(rows: usize) -> String {
    let mut csv = String::from("company,email,phone,country,mcc\n");
    for i in 0..rows {
        csv.push_str(&format!(
            "Company {i},c{i}@example.com,+1 415 555 {:04},US,5411\n",
            i % 10_000
        ));
    }
    csv
}

#[tokio::test]
async fn a_worker_killed_mid_file_resumes_from_its_checkpoint() {
    let t = Imports::new(PackageName::Enterprise).await;
    const ROWS: i64 = 100_000;
    let id = t.accepted(long_csv(ROWS as usize)).await;
    let rows_done = || async {
        sqlx::query_scalar::<_, i32>("SELECT rows_done FROM imports WHERE id = $1::uuid")
            .bind(&id)
            .fetch_one(&t.app.store.pool)
            .await
            .unwrap() as i64
    };
    let mut first = t.app.spawn_worker_process();
    wait_until(60, "a first checkpoint", || async { rows_done().await > 0 }).await;
    first.start_kill().unwrap(); // SIGKILL, mid-file
    first.wait().await.unwrap();
    let at_kill = rows_done().await;
    assert!(
        at_kill < ROWS,
        "the worker died before the end of the file ({at_kill} rows)"
    );
    let staged_at_kill = t.app.count("staged_rows").await;
    assert_eq!(
        staged_at_kill, at_kill,
        "checkpoint and staged rows commit together"
    );

    let _second = t.app.spawn_worker_process();
    let view = t.finished(&id).await;
    assert_eq!(view["status"], "staged", "{view}");
    assert_eq!(view["counts"]["total"], ROWS);
    assert_eq!(view["counts"]["valid"], ROWS);
    let (n, distinct, max): (i64, i64, i32) = sqlx::query_as(
        "SELECT count(*), count(DISTINCT row_number), max(row_number) FROM staged_rows WHERE import_id = $1::uuid",
    )
    .bind(&id)
    .fetch_one(&t.app.store.pool)
    .await
    .unwrap();
    assert_eq!(
        (n, distinct, max as i64),
        (ROWS, ROWS, ROWS),
        "every row staged once"
    );
    let used: i32 = sqlx::query_scalar("SELECT import_rows FROM usage_daily WHERE tenant_id = $1")
        .bind(t.tenant.0)
        .fetch_one(&t.app.store.pool)
        .await
        .unwrap();
    assert_eq!(
        used as i64, ROWS,
        "the resumed run did not charge rows twice"
    );
    let attempts: i32 = sqlx::query_scalar("SELECT attempts FROM jobs WHERE id = $1::uuid")
        .bind(view["job_id"].as_str().unwrap())
        .fetch_one(&t.app.store.pool)
        .await
        .unwrap();
    assert_eq!(attempts, 2);
}

#[tokio::test]
async fn cancelling_an_import_mid_file_unstages_what_it_staged() {
    let t = Imports::new(PackageName::Enterprise).await;
    let res = t.upload(long_csv(100_000)).await;
    let accepted: Value = res.json().await.unwrap();
    let id = accepted["import_id"].as_str().unwrap().to_string();
    let _worker = t.app.worker().await;
    wait_until(60, "staging under way", || async {
        t.app.count("staged_rows").await > 0
    })
    .await;
    let job = accepted["job_id"].as_str().unwrap();
    let res = t
        .app
        .post(
            &format!("/v1/tenants/{}/jobs/{job}/cancel", t.tenant),
            &t.importer.token,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let view = t.finished(&id).await;
    assert_eq!(view["status"], "cancelled", "{view}");
    wait_until(30, "rows removed", || async {
        t.app.count("staged_rows").await == 0
    })
    .await;
    problem(t.review(&id, json!({ "approve": "all_valid" })).await, 409).await;
}

//! Tenant data export (issue 19): a job makes a ZIP of the tenant's own
//! records, with a manifest, and no secret or other tenant's data in it.

use crate::harness::{problem, wait_until};
use crate::imports::Imports;
use bizcontacts_domain::{PackageName, Permission, Role};
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::Read;

#[tokio::test]
async fn an_export_holds_the_tenants_own_data_and_no_secret() {
    let t = Imports::new(PackageName::Pro).await;
    let app = &t.app;
    let tenant = t.tenant;
    let admin = app.member(tenant, Role::OrgAdmin).await;
    let key = app
        .key(Some(tenant), admin.id, &[Permission::ContactsSearch])
        .await;
    // Another tenant, whose data must not appear.
    let other = app.tenant(PackageName::Pro).await;
    let stranger = app.member(other, Role::OrgAdmin).await;
    let worker = app.worker().await;
    let import = t
        .accepted("company,email\nAcme Exported,ana@acme.example\nBeta Exported,bo@beta.example\n")
        .await;
    wait_until(30, "the import is staged", || async {
        let v = app
            .get_json(&t.path(&format!("/{import}")), &t.importer.token)
            .await;
        v["status"] == "staged"
    })
    .await;

    let start = app
        .post(&format!("/v1/tenants/{tenant}/exports"), &admin.token)
        .send()
        .await
        .unwrap();
    assert_eq!(start.status(), 202);
    let started: Value = start.json().await.unwrap();
    let export = started["export_id"].as_str().unwrap().to_string();
    let path = format!("/v1/tenants/{tenant}/exports/{export}");
    // Not the importer's (users:manage), not another tenant's.
    problem(app.get(&path, &t.importer.token).send().await.unwrap(), 403).await;
    let theirs = format!("/v1/tenants/{other}/exports/{export}");
    problem(app.get(&theirs, &stranger.token).send().await.unwrap(), 404).await;

    wait_until(30, "the export is ready", || async {
        let res = app.get(&path, &admin.token).send().await.unwrap();
        res.status() != 202
    })
    .await;
    let res = app.get(&path, &admin.token).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/zip");
    let zip_bytes = res.bytes().await.unwrap().to_vec();
    worker.stop().await;

    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(zip_bytes)).unwrap();
    let mut files: BTreeMap<String, String> = BTreeMap::new();
    for i in 0..archive.len() {
        let mut f = archive.by_index(i).unwrap();
        let mut text = String::new();
        f.read_to_string(&mut text).unwrap();
        files.insert(f.name().to_string(), text);
    }
    let manifest: Value = serde_json::from_str(&files["manifest.json"]).unwrap();
    assert_eq!(manifest["tenant_id"], tenant.to_string());
    // Every file listed, with its true row count.
    for (name, count) in manifest["files"].as_object().unwrap() {
        let lines = files[name].lines().count() as u64;
        assert_eq!(Some(lines), count.as_u64(), "{name}");
        for line in files[name].lines() {
            serde_json::from_str::<Value>(line).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }
    assert_eq!(manifest["files"]["members.jsonl"], 3);
    assert_eq!(manifest["files"]["staged_rows.jsonl"], 2);
    assert_eq!(manifest["files"]["api_keys.jsonl"], 1);
    assert!(files["members.jsonl"].contains(&admin.email));
    assert!(files["staged_rows.jsonl"].contains("Acme Exported"));
    assert!(files["audit_events.jsonl"].contains("tenant.export_started"));
    // Nothing of the other tenant; no secret, no hash.
    let everything: String = files.values().cloned().collect();
    assert!(!everything.contains(&stranger.email));
    let hashes: Vec<String> = sqlx::query_scalar(
        "SELECT password_hash FROM users WHERE password_hash IS NOT NULL
         UNION ALL SELECT encode(key_hash, 'hex') FROM api_keys
         UNION ALL SELECT encode(token_hash, 'hex') FROM sessions",
    )
    .fetch_all(&app.store.pool)
    .await
    .unwrap();
    for secret in [admin.password.as_str(), key.as_str(), admin.token.as_str()]
        .into_iter()
        .chain(hashes.iter().map(String::as_str))
    {
        assert!(
            !everything.contains(secret),
            "{secret:.10}... in the export"
        );
    }
    assert!(
        !everything.contains("argon2"),
        "a password hash in the export"
    );

    // Expired: gone, and the retention job drops its bytes.
    sqlx::query("UPDATE exports SET expires_at = now() - interval '1 second' WHERE id = $1::uuid")
        .bind(&export)
        .execute(&app.store.pool)
        .await
        .unwrap();
    problem(app.get(&path, &admin.token).send().await.unwrap(), 410).await;
}

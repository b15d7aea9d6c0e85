//! The intake, served from the benchmark's own process on a free port, with
//! a tenant and an API key for the requests.

use bizcontacts::runtime;
use bizcontacts_config::Settings;
use bizcontacts_domain::{Email, PackageName, Permission, Role, TenantId};
use bizcontacts_store::Store;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub struct Intake {
    /// `http://127.0.0.1:<port>`
    pub base: String,
    pub tenant: TenantId,
    /// A bearer API key of the tenant's org admin with `permissions`.
    pub key: String,
    stop: CancellationToken,
}

impl Intake {
    /// A new Enterprise tenant named `name`, its admin, a key, and the
    /// intake listening.
    pub async fn start(
        settings: &Settings,
        store: &Store,
        name: &str,
        permissions: &[Permission],
    ) -> anyhow::Result<Intake> {
        let tenant =
            bizcontacts_store::tenants::create(&store.pool, name, PackageName::Enterprise).await?;
        let email = Email::parse(&format!(
            "bench-{}@example.com",
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        ))?;
        let user = bizcontacts_store::users::create(&store.pool, &email, None).await?;
        let mut conn = store.pool.acquire().await?;
        bizcontacts_store::users::add_member(&mut conn, tenant.id, user.id, Role::OrgAdmin).await?;
        let key = bizcontacts_http::identity::issue_api_key(
            &mut conn,
            Some(tenant.id),
            user.id,
            "bench",
            permissions,
            None,
        )
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .secret;
        drop(conn);

        let state = runtime::app_state(settings, store.clone()).await?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let base = format!("http://{}", listener.local_addr()?);
        let stop = CancellationToken::new();
        tokio::spawn(bizcontacts_http::serve(
            listener,
            state,
            stop.clone(),
            Duration::from_secs(1),
        ));
        Ok(Intake {
            base,
            tenant: tenant.id,
            key,
            stop,
        })
    }
}

impl Drop for Intake {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

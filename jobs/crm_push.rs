//! `crm_push`: a tenant's saved contacts into its HighLevel Location.
//!
//! Never a duplicate from our side. Per contact: the content to send (the
//! canonical values with the tenant's corrections) is hashed; already
//! pushed with the same hash, it is skipped, nothing sent. Otherwise an
//! intent row (`pending`) commits before the call, and the outcome after
//! it. A contact we pushed before is updated by its stored HighLevel id; a
//! new one goes through `POST /contacts/upsert`, which HighLevel matches by
//! email or phone. A row still `pending` from an attempt whose outcome was
//! lost (a worker killed between HighLevel's answer and our commit) is
//! reconciled first: HighLevel is searched by email and phone, and the
//! contact found is updated, not created again. Contacts with neither email
//! nor phone are not sent (HighLevel could not match them, so a retry could
//! create a second one); they are recorded as skipped with the reason.
//!
//! Every request waits for the Location's shared budget
//! (`bizcontacts_highlevel::limiter`); a 429 anyway waits as told and
//! retries the same contact. A refused token ends the job permanently
//! (the connection then needs reconnecting); outages retry the job, which
//! resumes where it was because finished contacts are skipped by hash.

use anyhow::Context;
use async_trait::async_trait;
use bizcontacts_domain::{Permission, TenantId};
use bizcontacts_highlevel::limiter::Limiter;
use bizcontacts_highlevel::oauth::App;
use bizcontacts_highlevel::session::{Crm, HighLevelSession, SessionError};
use bizcontacts_highlevel::{Client, ContactBody, Error as HlError};
use bizcontacts_queue::args::{JobArgs, Worker};
use bizcontacts_queue::handler::{JobContext, JobError, RetryPolicy, Starter};
use bizcontacts_security::sealing::Keyring;
use bizcontacts_store::{corpus, corrections, crm_pushes, search};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// Most contacts one push may carry.
pub const MAX_PUSH: usize = 10_000;

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CrmPushArgs {
    /// Saved contacts to push, in order.
    pub contact_ids: Vec<Uuid>,
}

impl JobArgs for CrmPushArgs {
    const KIND: &'static str = "crm_push";

    fn retry() -> RetryPolicy {
        RetryPolicy::new(8, Duration::from_secs(10), Duration::from_secs(900))
    }

    fn check(&self) -> Result<(), String> {
        match self.contact_ids.len() {
            0 => Err("contact_ids is empty".into()),
            n if n > MAX_PUSH => Err(format!("at most {MAX_PUSH} contacts per push")),
            _ => Ok(()),
        }
    }
}

/// What CRM jobs need besides the job context: HighLevel, our app, the
/// keys the tokens are sealed with, and the shared request budget.
#[derive(Clone)]
pub struct CrmWork {
    pub client: Client,
    pub app: App,
    pub keyring: Arc<Keyring>,
    pub limiter: Limiter,
}

impl CrmWork {
    pub(crate) fn crm(&self, pool: &sqlx::PgPool) -> Crm {
        Crm {
            client: self.client.clone(),
            app: self.app.clone(),
            keyring: self.keyring.clone(),
            pool: pool.clone(),
        }
    }
}

pub struct CrmPushJob(pub CrmWork);

/// What pushing one contact did.
enum Outcome {
    Pushed,
    Unchanged,
    Failed,
    Skipped,
}

#[async_trait]
impl Worker for CrmPushJob {
    type Args = CrmPushArgs;

    fn starter(&self) -> Starter {
        Starter::Intake(Permission::CrmSync)
    }

    #[tracing::instrument(skip_all, fields(job_id = %ctx.job_id))]
    async fn work(&self, ctx: &mut JobContext, params: CrmPushArgs) -> Result<(), JobError> {
        let tenant = ctx
            .tenant_id
            .ok_or_else(|| JobError::Permanent(anyhow::anyhow!("a push belongs to a tenant")))?;
        let pool = ctx.pool().clone();
        let mut session = self
            .0
            .crm(&pool)
            .session(tenant)
            .await
            .map_err(session_error)?;
        let total = params.contact_ids.len() as i64;
        let (mut pushed, mut unchanged, mut failed, mut skipped) = (0, 0, 0, 0);
        for (i, id) in params.contact_ids.iter().enumerate() {
            ctx.checkpoint().await?;
            match self
                .push_one(&pool, &mut session, tenant, *id, ctx.job_id)
                .await?
            {
                Outcome::Pushed => pushed += 1,
                Outcome::Unchanged => unchanged += 1,
                Outcome::Failed => failed += 1,
                Outcome::Skipped => skipped += 1,
            }
            let message = format!(
                "{pushed} pushed, {unchanged} unchanged, {failed} failed, {skipped} skipped"
            );
            ctx.progress(i as i64 + 1, Some(total), Some(&message))
                .await?;
        }
        let mut tx = pool.begin().await?;
        ctx.complete_in(&mut tx).await?;
        tx.commit().await?;
        tracing::info!(pushed, unchanged, failed, skipped, "push finished");
        Ok(())
    }
}

pub(crate) fn session_error(e: SessionError) -> JobError {
    if e.is_transient() {
        JobError::Retryable(e.into())
    } else {
        JobError::Permanent(e.into())
    }
}

impl CrmPushJob {
    async fn push_one(
        &self,
        pool: &sqlx::PgPool,
        session: &mut HighLevelSession,
        tenant: TenantId,
        id: Uuid,
        job: Uuid,
    ) -> Result<Outcome, JobError> {
        if !search::is_saved(pool, tenant, id).await.context("saved")? {
            // Taken off the lead list since the push was asked for.
            return Ok(Outcome::Skipped);
        }
        let location = session.location_id.clone();
        let contact = corpus::load(pool, &[id]).await.context("contact")?.pop();
        let Some(contact) = contact.filter(|c| c.active) else {
            return self
                .skip(
                    pool,
                    tenant,
                    id,
                    &location,
                    job,
                    "the contact left the corpus",
                )
                .await;
        };
        let own = corrections::overlay_many(pool, tenant.0, &[id])
            .await
            .context("corrections")?
            .remove(&id)
            .unwrap_or_default();
        let contact = corrections::apply(contact, &own);
        let body = body_of(&contact.values);
        if body.email.is_none() && body.phone.is_none() {
            let why = "neither email nor phone: HighLevel could not match it, so it is not sent";
            return self.skip(pool, tenant, id, &location, job, why).await;
        }
        let hash = content_hash(&location, &body);
        let prior = crm_pushes::get(pool, tenant, id)
            .await
            .context("push record")?;
        let same_place = prior.as_ref().filter(|p| p.location_id == location);
        if same_place.is_some_and(|p| p.status == "pushed" && p.content_hash == hash) {
            return Ok(Outcome::Unchanged);
        }
        let mut known = same_place.and_then(|p| p.crm_contact_id.clone());
        if known.is_none() && same_place.is_some_and(|p| p.status == "pending") {
            // An attempt whose outcome was lost: find what it made, if anything.
            let (email, phone) = (body.email.clone(), body.phone.clone());
            let loc = location.clone();
            known = within_budget(&self.0, session, move |client, token| {
                let (email, phone, loc) = (email.clone(), phone.clone(), loc.clone());
                async move {
                    client
                        .find_duplicate(&token, &loc, email.as_deref(), phone.as_deref())
                        .await
                }
            })
            .await?
            .map_err(|e| JobError::Permanent(e.into()))?;
        }
        crm_pushes::intend(pool, tenant, id, &location, &hash, Some(job))
            .await
            .context("push intent")?;
        let sent = match known {
            Some(crm_id) => {
                let (b, cid) = (body.clone(), crm_id.clone());
                within_budget(&self.0, session, move |client, token| {
                    let (b, cid) = (b.clone(), cid.clone());
                    async move { client.update_contact(&token, &cid, &b).await }
                })
                .await?
                .map(|()| crm_id)
            }
            None => {
                let (b, loc) = (body.clone(), location.clone());
                within_budget(&self.0, session, move |client, token| {
                    let (b, loc) = (b.clone(), loc.clone());
                    async move { client.upsert_contact(&token, &loc, &b).await }
                })
                .await?
                .map(|u| u.id)
            }
        };
        match sent {
            Ok(crm_id) => {
                crm_pushes::settle(pool, tenant, id, "pushed", Some(&crm_id), None)
                    .await
                    .context("push outcome")?;
                Ok(Outcome::Pushed)
            }
            Err(e) => {
                // HighLevel refused this contact (4xx): recorded, the next
                // push retries it; the rest of this push goes on.
                crm_pushes::settle(pool, tenant, id, "failed", None, Some(&e.to_string()))
                    .await
                    .context("push outcome")?;
                Ok(Outcome::Failed)
            }
        }
    }

    async fn skip(
        &self,
        pool: &sqlx::PgPool,
        tenant: TenantId,
        id: Uuid,
        location: &str,
        job: Uuid,
        why: &str,
    ) -> Result<Outcome, JobError> {
        crm_pushes::intend(pool, tenant, id, location, &[], Some(job))
            .await
            .context("push record")?;
        crm_pushes::settle(pool, tenant, id, "skipped", None, Some(why))
            .await
            .context("push record")?;
        Ok(Outcome::Skipped)
    }
}

/// One HighLevel request within the Location's budget: waits for a
/// slot, and after a 429 waits as told and sends it again. Outer error:
/// the job stops (retryable or not); inner: HighLevel refused this
/// request for this contact.
pub(crate) async fn within_budget<T, F, Fut>(
    work: &CrmWork,
    session: &mut HighLevelSession,
    f: F,
) -> Result<Result<T, HlError>, JobError>
where
    F: Fn(Client, secrecy::SecretString) -> Fut,
    Fut: std::future::Future<Output = Result<T, HlError>>,
{
    loop {
        match work.limiter.acquire(&session.location_id).await {
            Ok(Ok(())) => {}
            Ok(Err(wait)) => {
                // Not a failure: the job waits, unretried, until the budget opens.
                return Err(JobError::Wait {
                    reason: format!(
                        "HighLevel's daily request budget for this Location is spent; \
                         resuming when it opens again, in {} min",
                        wait.as_secs() / 60 + 1
                    ),
                    delay: wait,
                });
            }
            Err(e) => return Err(JobError::Retryable(e.into())),
        }
        session.client().wait_for(&session.location_id).await;
        match session.call(&f).await {
            Ok(v) => return Ok(Ok(v)),
            Err(SessionError::HighLevel(HlError::RateLimited { retry_after, .. })) => {
                tracing::warn!(?retry_after, "HighLevel answered 429; waiting");
                tokio::time::sleep(retry_after).await;
            }
            Err(SessionError::HighLevel(e)) if !e.is_transient() => return Ok(Err(e)),
            Err(e) => return Err(session_error(e)),
        }
    }
}

/// Our values as HighLevel's contact fields.
fn body_of(v: &corpus::Values) -> ContactBody {
    let get = |f: &str| v.get(f).map(str::to_string);
    ContactBody {
        first_name: get("first_name"),
        last_name: get("last_name"),
        email: get("email"),
        phone: get("phone"),
        company_name: get("company_name"),
        website: get("website"),
        address1: get("address"),
        city: get("city"),
        state: get("region"),
        postal_code: get("postcode"),
        country: get("country"),
        source: "Business Contacts".into(),
    }
}

/// What a push sends, to the Location it is sent to.
fn content_hash(location: &str, body: &ContactBody) -> Vec<u8> {
    let json = serde_json::to_vec(body).expect("a contact body serializes");
    Sha256::new()
        .chain_update(location.as_bytes())
        .chain_update([0u8])
        .chain_update(json)
        .finalize()
        .to_vec()
}

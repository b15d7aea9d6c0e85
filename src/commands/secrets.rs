//! `secrets rotate`: re-seal every stored secret with the current key.
//!
//! An operator sets a new `secrets.encryption_key`, moves the old one to
//! `secrets.previous_encryption_keys`, restarts, and runs this: every secret
//! sealed with another key is opened and sealed again with the new one, in
//! one transaction (all or nothing). Then the old key can go.

use crate::runtime;
use bizcontacts_config::Settings;
use bizcontacts_store::crm;

pub async fn rotate(settings: &Settings) -> anyhow::Result<usize> {
    let keyring = runtime::keyring(settings)?;
    let store = runtime::store(settings).await?;
    let mut tx = store.pool.begin().await?;
    let old = crm::sealed_with_other_keys(&mut tx, keyring.current_id()).await?;
    for (tenant, which, sealed) in &old {
        let place = crm::secret_place(*tenant, which);
        let plain = keyring.open(sealed, &place)?;
        let again = keyring.seal(secrecy::ExposeSecret::expose_secret(&plain), &place);
        crm::reseal(&mut tx, *tenant, which, again).await?;
    }
    tx.commit().await?;
    tracing::info!(
        resealed = old.len(),
        key_id = keyring.current_id(),
        "secrets re-sealed"
    );
    Ok(old.len())
}

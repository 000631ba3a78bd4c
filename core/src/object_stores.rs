//! Object stores every process can resolve on its own: local files, and Azure Blob / ADLS
//! Gen2 (`az://`, `abfs[s]://`, `azure://`, `adl://`) configured from the environment.
//!
//! Executors learn a table's location only from the plan, so the registry creates an Azure
//! store the first time a URL needs it, from `AZURE_*` variables (account key, SAS, client
//! secret, workload identity federated token, managed identity; `AZURE_STORAGE_USE_EMULATOR`
//! for Azurite), plus any options the process was given.
//!
//! Azure stores are kept per container: DataFusion's default registry keys a store by
//! scheme, host and port, which for `abfss://container@account.dfs.core.windows.net` drops
//! the container, and would hand the events' container's store to a scratch in another
//! container of the same account.

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
};

use datafusion::{
    common::{DataFusionError, Result},
    execution::object_store::{DefaultObjectStoreRegistry, ObjectStoreRegistry},
};
use object_store::{ObjectStore, azure::MicrosoftAzureBuilder};
use url::Url;

/// URL schemes served by the Azure store.
pub const AZURE_SCHEMES: &[&str] = &["az", "abfs", "abfss", "azure", "adl"];

/// The registry; see the module documentation.
#[derive(Debug, Default)]
pub struct ObjectStores {
    inner: DefaultObjectStoreRegistry,
    /// Azure stores by `scheme://authority`, the container included.
    azure: RwLock<HashMap<String, Arc<dyn ObjectStore>>>,
    /// Extra Azure options (`object_store` config keys), applied after the environment.
    azure_options: HashMap<String, String>,
}

impl ObjectStores {
    /// A registry with extra Azure options on top of the environment.
    pub fn with_azure_options(azure_options: HashMap<String, String>) -> Self {
        Self {
            inner: DefaultObjectStoreRegistry::default(),
            azure: RwLock::default(),
            azure_options,
        }
    }

    fn azure_store(&self, url: &Url) -> Result<Arc<dyn ObjectStore>> {
        let mut builder = MicrosoftAzureBuilder::from_env().with_url(url.as_str());
        for (key, value) in &self.azure_options {
            let key = key.parse().map_err(|e| {
                DataFusionError::Configuration(format!("unknown Azure storage option {key}: {e}"))
            })?;
            builder = builder.with_config(key, value);
        }
        let store = builder.build().map_err(|e| {
            DataFusionError::Configuration(format!(
                "cannot configure Azure storage for {}: {e}",
                url_without_secrets(url)
            ))
        })?;
        Ok(Arc::new(store))
    }
}

/// The URL without query string or user info, safe to log.
pub fn url_without_secrets(url: &Url) -> String {
    format!(
        "{}://{}{}",
        url.scheme(),
        url.host_str().unwrap_or(""),
        url.path()
    )
}

/// The key of an Azure URL's store: scheme and authority, the container (user info of an
/// `abfss://` URL) included.
fn azure_key(url: &Url) -> Option<String> {
    AZURE_SCHEMES
        .contains(&url.scheme())
        .then(|| format!("{}://{}", url.scheme(), url.authority()))
}

impl ObjectStoreRegistry for ObjectStores {
    fn register_store(
        &self,
        url: &Url,
        store: Arc<dyn ObjectStore>,
    ) -> Option<Arc<dyn ObjectStore>> {
        match azure_key(url) {
            Some(key) => self.azure.write().ok()?.insert(key, store),
            None => self.inner.register_store(url, store),
        }
    }

    fn deregister_store(&self, url: &Url) -> Result<Arc<dyn ObjectStore>> {
        let Some(key) = azure_key(url) else {
            return self.inner.deregister_store(url);
        };
        let removed = self.azure.write().ok().and_then(|mut m| m.remove(&key));
        removed.ok_or_else(|| {
            DataFusionError::Configuration(format!("no object store registered for {key}"))
        })
    }

    fn get_store(&self, url: &Url) -> Result<Arc<dyn ObjectStore>> {
        let Some(key) = azure_key(url) else {
            return self.inner.get_store(url);
        };
        if let Some(store) = self.azure.read().ok().and_then(|m| m.get(&key).cloned()) {
            return Ok(store);
        }
        let store = self.azure_store(url)?;
        let mut stores = self
            .azure
            .write()
            .map_err(|_| DataFusionError::Internal("the Azure stores' lock".into()))?;
        Ok(stores.entry(key).or_insert(store).clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_containers_of_one_account_get_their_own_stores() {
        let stores = ObjectStores::default();
        let url = |u: &str| Url::parse(u).unwrap();
        let events = url("abfss://events@tenant.dfs.core.windows.net/securityevent");
        let scratch = url("abfss://scratch@tenant.dfs.core.windows.net/procforest");
        let events_store = stores.get_store(&events).unwrap();
        let scratch_store = stores.get_store(&scratch).unwrap();
        assert!(
            events_store.to_string().contains("events"),
            "{events_store}"
        );
        assert!(
            scratch_store.to_string().contains("scratch"),
            "{scratch_store}"
        );
        let again = stores.get_store(&url("abfss://scratch@tenant.dfs.core.windows.net/x"));
        assert!(
            Arc::ptr_eq(&scratch_store, &again.unwrap()),
            "kept per container"
        );
        // A store registered for one container (as delta-rs registers a table's) is not
        // handed to another.
        let other = url("abfss://other@tenant.dfs.core.windows.net/");
        stores.register_store(&events, Arc::new(object_store::memory::InMemory::new()));
        assert!(
            !stores
                .get_store(&other)
                .unwrap()
                .to_string()
                .contains("InMemory")
        );
        assert!(
            stores
                .get_store(&events)
                .unwrap()
                .to_string()
                .contains("InMemory")
        );
    }
}

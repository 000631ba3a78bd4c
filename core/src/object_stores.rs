//! Object stores every process can resolve on its own: local files, and Azure Blob / ADLS
//! Gen2 (`az://`, `abfs[s]://`, `azure://`, `adl://`) configured from the environment.
//!
//! Executors learn a table's location only from the plan, so the registry creates an Azure
//! store the first time a URL needs it, from `AZURE_*` variables (account key, SAS, client
//! secret, workload identity federated token, managed identity; `AZURE_STORAGE_USE_EMULATOR`
//! for Azurite), plus any options the process was given.

use std::{collections::HashMap, sync::Arc};

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
    /// Extra Azure options (`object_store` config keys), applied after the environment.
    azure_options: HashMap<String, String>,
}

impl ObjectStores {
    /// A registry with extra Azure options on top of the environment.
    pub fn with_azure_options(azure_options: HashMap<String, String>) -> Self {
        Self {
            inner: DefaultObjectStoreRegistry::default(),
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

impl ObjectStoreRegistry for ObjectStores {
    fn register_store(
        &self,
        url: &Url,
        store: Arc<dyn ObjectStore>,
    ) -> Option<Arc<dyn ObjectStore>> {
        self.inner.register_store(url, store)
    }

    fn deregister_store(&self, url: &Url) -> Result<Arc<dyn ObjectStore>> {
        self.inner.deregister_store(url)
    }

    fn get_store(&self, url: &Url) -> Result<Arc<dyn ObjectStore>> {
        match self.inner.get_store(url) {
            Ok(store) => Ok(store),
            Err(_) if AZURE_SCHEMES.contains(&url.scheme()) => {
                let store = self.azure_store(url)?;
                let base = Url::parse(&format!("{}://{}", url.scheme(), url.authority()))
                    .map_err(|e| DataFusionError::Configuration(e.to_string()))?;
                self.inner.register_store(&base, store.clone());
                Ok(store)
            }
            Err(e) => Err(e),
        }
    }
}

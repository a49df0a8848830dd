//! `[store]` configuration.
use serde::Deserialize;

/// The `[store]` table.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// Run the bundled store inside the daemon.
    #[serde(default)]
    pub enabled: bool,
}

/// An invalid `[store]` key.
#[derive(Debug)]
pub struct ConfigError {
    /// Key within `[store]`.
    pub key: String,
    /// What is wrong.
    pub reason: String,
}

impl StoreConfig {
    /// Semantic checks beyond types.
    pub fn validate(&self) -> Result<(), ConfigError> {
        Ok(())
    }
}

//! Per-session async locks: concurrent requests of one session take turns where only one
//! of them should do the work (a refresh).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

/// One async lock per key hash, dropped from the map once nobody holds or awaits it.
#[derive(Default)]
pub struct KeyedLocks(Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>);

impl KeyedLocks {
    /// The lock of `key_hash`.
    pub fn get(&self, key_hash: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        // Drop locks nobody holds any more, so the map does not grow with sessions.
        map.retain(|_, l| Arc::strong_count(l) > 1);
        map.entry(key_hash.to_owned()).or_default().clone()
    }
}

//! One refresh per session at a time within a process: a lock per session key hash.
//! (Across replicas the store's refresh lease does the same; see `auth::refresh`.)

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

/// Per-session locks, so N concurrent requests of one session cause one refresh.
#[derive(Default)]
pub struct RefreshLocks(Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>);

impl RefreshLocks {
    /// The lock of one session, created on first use.
    pub fn get(&self, key_hash: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        // Drop locks nobody holds any more, so the map does not grow with sessions.
        map.retain(|_, l| Arc::strong_count(l) > 1);
        map.entry(key_hash.to_owned()).or_default().clone()
    }
}

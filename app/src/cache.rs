//! In-memory caches: installation ids per repository, tokens per scope (single-flight), webhook
//! deliveries already processed.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, Utc};
use ssm_core::broker::{InstallationToken, Permissions, RepoName};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Repository → installation id, kept current by `installation*` webhooks.
#[derive(Debug, Default)]
pub struct InstallationCache {
    map: Mutex<HashMap<RepoName, u64>>,
}

impl InstallationCache {
    pub fn get(&self, repo: &RepoName) -> Option<u64> {
        lock(&self.map).get(repo).copied()
    }

    pub fn insert(&self, repo: RepoName, installation_id: u64) {
        lock(&self.map).insert(repo, installation_id);
    }

    pub fn remove(&self, repo: &RepoName) {
        lock(&self.map).remove(repo);
    }

    /// Forgets every repository of an installation (uninstalled or suspended).
    pub fn remove_installation(&self, installation_id: u64) {
        lock(&self.map).retain(|_, id| *id != installation_id);
    }
}

/// What a cached token covers.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ScopeKey {
    pub installation_id: u64,
    pub repository: RepoName,
    pub permissions: Permissions,
}

/// A token GitHub issued, as cached.
#[derive(Debug, Clone)]
pub struct CachedToken {
    pub token: InstallationToken,
    pub expires_at: DateTime<Utc>,
    pub permissions: BTreeMap<String, String>,
}

/// What one scope's slot holds.
#[derive(Debug, Default)]
pub struct SlotState {
    /// The token handed out for this scope, until it expires (minus the margin) or a caller
    /// shows it was rejected.
    pub token: Option<CachedToken>,
    /// When a rejected token of this scope was last replaced (the replacement rate limit).
    pub replaced_at: Option<std::time::Instant>,
}

/// One slot per scope; the async mutex makes concurrent misses for one scope wait for a single
/// mint instead of each calling GitHub.
pub type Slot = Arc<tokio::sync::Mutex<SlotState>>;

/// Tokens per scope, until `expires_at` minus the refresh margin.
#[derive(Debug, Default)]
pub struct TokenCache {
    slots: Mutex<HashMap<ScopeKey, Slot>>,
}

impl TokenCache {
    /// The slot for `key`; lock it, use the token if fresh, otherwise mint and store.
    pub fn slot(&self, key: &ScopeKey) -> Slot {
        lock(&self.slots).entry(key.clone()).or_default().clone()
    }

    /// Drops every token of an installation (GitHub revokes them when it goes away).
    pub fn forget_installation(&self, installation_id: u64) {
        lock(&self.slots).retain(|k, _| k.installation_id != installation_id);
    }

    /// Drops the tokens of one repository.
    pub fn forget_repository(&self, repo: &RepoName) {
        lock(&self.slots).retain(|k, _| &k.repository != repo);
    }

    pub fn len(&self) -> usize {
        lock(&self.slots).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The last `capacity` webhook delivery ids, to acknowledge redeliveries without reprocessing.
#[derive(Debug)]
pub struct Deliveries {
    inner: Mutex<(HashSet<String>, VecDeque<String>)>,
    capacity: usize,
}

impl Deliveries {
    pub fn new(capacity: usize) -> Self {
        Self {
            inner: Mutex::new((HashSet::new(), VecDeque::new())),
            capacity,
        }
    }

    pub fn seen(&self, id: &str) -> bool {
        lock(&self.inner).0.contains(id)
    }

    /// Records `id` as processed, evicting the oldest beyond capacity.
    pub fn record(&self, id: &str) {
        let mut guard = lock(&self.inner);
        let (set, order) = &mut *guard;
        if set.insert(id.to_owned()) {
            order.push_back(id.to_owned());
            while order.len() > self.capacity {
                if let Some(old) = order.pop_front() {
                    set.remove(&old);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deliveries_are_bounded() {
        let d = Deliveries::new(2);
        d.record("a");
        d.record("b");
        d.record("a");
        assert!(d.seen("a") && d.seen("b"));
        d.record("c");
        assert!(!d.seen("a") && d.seen("b") && d.seen("c"));
    }

    #[test]
    fn installation_removal_forgets_its_repositories_and_tokens() {
        let repo = RepoName::parse("acme/infra").expect("repo");
        let other = RepoName::parse("acme/web").expect("repo");
        let c = InstallationCache::default();
        c.insert(repo.clone(), 1);
        c.insert(other.clone(), 2);
        c.remove_installation(1);
        assert_eq!(c.get(&repo), None);
        assert_eq!(c.get(&other), Some(2));

        let t = TokenCache::default();
        let key = |id, r: &RepoName| ScopeKey {
            installation_id: id,
            repository: r.clone(),
            permissions: Permissions::new(),
        };
        let a = t.slot(&key(1, &repo));
        assert!(
            Arc::ptr_eq(&a, &t.slot(&key(1, &repo))),
            "same scope, same slot"
        );
        t.slot(&key(2, &other));
        t.forget_installation(1);
        assert_eq!(t.len(), 1);
        t.forget_repository(&other);
        assert!(t.is_empty());
    }
}

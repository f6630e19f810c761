//! The ids of namespaces, repositories and performers this process has seen committed.
//!
//! Names are never deleted or renamed (retention removes entries, not names), so an id once read
//! from a committed row stays right for the life of the database. Writers look names up here
//! first and ask the database only for the rest; readers resolve a query's names the same way.
//! Only committed rows enter the cache: a writer's new names after its transaction commits, a
//! reader's after it has read them.
//!
//! Each map holds at most [`MAX_NAMES`] names; when one is full it starts over empty, which
//! costs lookups, never correctness.
//!
//! A performer's e-mail is kept with its id so that a batch repeating the e-mail already stored
//! writes nothing. With several servers on one database, another server's newer e-mail is not
//! seen here until the cache starts over; the e-mail of a batch that differs from the one this
//! process last saw is always written.

use std::collections::HashMap;
use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// Most names per map (namespaces, repositories, performers).
pub(crate) const MAX_NAMES: usize = 100_000;

/// A performer's id and the e-mail stored for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PerformerRow {
    pub(crate) id: i64,
    pub(crate) email: Option<String>,
}

#[derive(Debug, Default)]
struct Repositories {
    by_namespace: HashMap<i64, HashMap<String, i64>>,
    /// Id → name, the same repositories the other way round.
    names: HashMap<i64, String>,
}

/// See the module documentation.
#[derive(Debug, Default)]
pub(crate) struct NameCache {
    namespaces: RwLock<HashMap<String, i64>>,
    repositories: RwLock<Repositories>,
    performers: RwLock<HashMap<String, PerformerRow>>,
}

fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

fn write<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(PoisonError::into_inner)
}

/// Inserts into a bounded map, emptying it first when it is full.
fn bounded_insert<V>(map: &mut HashMap<String, V>, name: &str, value: V) {
    if map.len() >= MAX_NAMES && !map.contains_key(name) {
        map.clear();
    }
    map.insert(name.to_owned(), value);
}

/// Splits `names` into those `lookup` knows (with their values) and the rest.
fn split<'n, V>(
    names: impl IntoIterator<Item = &'n str>,
    lookup: impl Fn(&str) -> Option<V>,
) -> (HashMap<String, V>, Vec<&'n str>) {
    let (mut found, mut missing) = (HashMap::new(), Vec::new());
    for n in names {
        match lookup(n) {
            Some(v) => {
                found.insert(n.to_owned(), v);
            }
            None => missing.push(n),
        }
    }
    (found, missing)
}

impl NameCache {
    pub(crate) fn namespace(&self, name: &str) -> Option<i64> {
        read(&self.namespaces).get(name).copied()
    }

    pub(crate) fn repository(&self, namespace_id: i64, name: &str) -> Option<i64> {
        read(&self.repositories).by_namespace.get(&namespace_id).and_then(|m| m.get(name)).copied()
    }

    pub(crate) fn performer(&self, name: &str) -> Option<PerformerRow> {
        read(&self.performers).get(name).cloned()
    }

    /// Looks up several namespaces under one lock; returns the found ones and the rest.
    pub(crate) fn namespaces<'n>(
        &self,
        names: impl IntoIterator<Item = &'n str>,
    ) -> (HashMap<String, i64>, Vec<&'n str>) {
        let map = read(&self.namespaces);
        split(names, |n| map.get(n).copied())
    }

    /// Looks up several performers under one lock; returns the found ones and the rest.
    pub(crate) fn performers<'n>(
        &self,
        names: impl IntoIterator<Item = &'n str>,
    ) -> (HashMap<String, PerformerRow>, Vec<&'n str>) {
        let map = read(&self.performers);
        split(names, |n| map.get(n).cloned())
    }

    /// Looks up one namespace's repositories under one lock; returns the found ones and the rest.
    pub(crate) fn repositories<'n>(
        &self,
        namespace_id: i64,
        names: impl IntoIterator<Item = &'n str>,
    ) -> (HashMap<String, i64>, Vec<&'n str>) {
        let repos = read(&self.repositories);
        let known = repos.by_namespace.get(&namespace_id);
        split(names, |n| known.and_then(|m| m.get(n)).copied())
    }

    /// Names of several repository ids under one lock; returns the found ones and the rest.
    pub(crate) fn repository_names(&self, ids: impl IntoIterator<Item = i64>) -> (HashMap<i64, String>, Vec<i64>) {
        let repos = read(&self.repositories);
        let (mut found, mut missing) = (HashMap::new(), Vec::new());
        for id in ids {
            if found.contains_key(&id) || missing.contains(&id) {
                continue;
            }
            match repos.names.get(&id) {
                Some(name) => {
                    found.insert(id, name.clone());
                }
                None => missing.push(id),
            }
        }
        (found, missing)
    }

    /// Records committed namespaces.
    pub(crate) fn remember_namespaces<'n>(&self, rows: impl IntoIterator<Item = (&'n str, i64)>) {
        let mut map = write(&self.namespaces);
        for (name, id) in rows {
            if map.get(name) != Some(&id) {
                bounded_insert(&mut map, name, id);
            }
        }
    }

    /// Records committed repositories of one namespace.
    pub(crate) fn remember_repositories<'n>(&self, namespace_id: i64, rows: impl IntoIterator<Item = (&'n str, i64)>) {
        let mut repos = write(&self.repositories);
        for (name, id) in rows {
            if repos.names.get(&id).is_some_and(|known| known == name) {
                continue;
            }
            if repos.names.len() >= MAX_NAMES && !repos.names.contains_key(&id) {
                repos.by_namespace.clear();
                repos.names.clear();
            }
            repos.by_namespace.entry(namespace_id).or_default().insert(name.to_owned(), id);
            repos.names.insert(id, name.to_owned());
        }
    }

    /// Records committed performers with the e-mail stored for each.
    pub(crate) fn remember_performers<'n>(&self, rows: impl IntoIterator<Item = (&'n str, &'n PerformerRow)>) {
        let mut map = write(&self.performers);
        for (name, row) in rows {
            if map.get(name) != Some(row) {
                bounded_insert(&mut map, name, row.clone());
            }
        }
    }

    /// Records a committed performer whose e-mail is not known (a reader's lookup): an e-mail
    /// already cached for it is kept, else it is recorded as unknown, which only means the next
    /// batch naming an e-mail for it writes that e-mail.
    pub(crate) fn remember_performer_id(&self, name: &str, id: i64) {
        let mut map = write(&self.performers);
        if !map.contains_key(name) {
            bounded_insert(&mut map, name, PerformerRow { id, email: None });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_split_known_from_missing() {
        let cache = NameCache::default();
        cache.remember_namespaces([("acme", 1)]);
        cache.remember_repositories(1, [("web", 7)]);
        let row = PerformerRow { id: 3, email: Some("a@example.com".into()) };
        cache.remember_performers([("alice", &row)]);

        let (found, missing) = cache.namespaces(["acme", "other"]);
        assert_eq!(found.get("acme"), Some(&1));
        assert_eq!(missing, vec!["other"]);
        assert_eq!(cache.repository(1, "web"), Some(7));
        let (names, missing) = cache.repository_names([7, 8, 7]);
        assert_eq!((names.get(&7).map(String::as_str), missing), (Some("web"), vec![8]));
        assert_eq!(cache.repository(2, "web"), None);
        let (found, missing) = cache.repositories(1, ["web", "api"]);
        assert_eq!((found.get("web"), missing), (Some(&7), vec!["api"]));
        assert_eq!(cache.performer("alice"), Some(row.clone()));
        // A reader's lookup does not forget the e-mail already known.
        cache.remember_performer_id("alice", 3);
        assert_eq!(cache.performer("alice"), Some(row));
        cache.remember_performer_id("bob", 4);
        assert_eq!(cache.performer("bob"), Some(PerformerRow { id: 4, email: None }));
    }

    #[test]
    fn a_full_map_starts_over() {
        let cache = NameCache::default();
        let names: Vec<String> = (0..MAX_NAMES).map(|i| format!("n{i}")).collect();
        cache.remember_namespaces(names.iter().enumerate().map(|(i, n)| (n.as_str(), i as i64)));
        assert_eq!(cache.namespace("n0"), Some(0));
        cache.remember_namespaces([("late", -1)]);
        assert_eq!(cache.namespace("late"), Some(-1));
        assert_eq!(cache.namespace("n0"), None);
        assert_eq!(read(&cache.namespaces).len(), 1);

        cache.remember_repositories(1, names.iter().enumerate().map(|(i, n)| (n.as_str(), i as i64)));
        cache.remember_repositories(2, [("late", -1)]);
        assert_eq!(cache.repository(2, "late"), Some(-1));
        assert_eq!(cache.repository_names([-1]).0.get(&-1).map(String::as_str), Some("late"));
        assert_eq!(cache.repository(1, "n0"), None);
        assert_eq!(cache.repository_names([0]).1, vec![0]);
    }
}

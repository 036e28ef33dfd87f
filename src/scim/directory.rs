//! Where provisioned users and groups live: one JSON document per resource, with unique
//! indexes (a user's `userName` and `externalId`, a group's `displayName` and `externalId`),
//! a group-ID → name entry for identities, and tombstones of deleted users. Written over a
//! small key-value interface (`Kv`) that the in-process map and Redis both implement, so the
//! logic (and its conformance tests) is one.
//!
//! Every Redis command names one key, as the session store's do, so Cluster needs no hash
//! tags. A group's members live inside its document: a PATCH is read-modify-write, which
//! is fine for Entra (it sends one object's changes at a time).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use serde_json::Value;

use crate::session::StoreError;

/// The key-value operations the directory needs.
#[async_trait]
pub trait Kv: Send + Sync {
    /// `memory` or `redis`: for messages.
    fn kind(&self) -> &'static str;
    async fn get(&self, key: String) -> Result<Option<String>, StoreError>;
    async fn get_many(&self, keys: Vec<String>) -> Result<Vec<Option<String>>, StoreError>;
    async fn set(&self, key: String, value: String) -> Result<(), StoreError>;
    /// Sets `key` only if it is absent; `false` if it was there.
    async fn set_nx(&self, key: String, value: String) -> Result<bool, StoreError>;
    async fn del(&self, key: String) -> Result<(), StoreError>;
    async fn add(&self, set: String, member: String) -> Result<(), StoreError>;
    async fn remove(&self, set: String, member: String) -> Result<(), StoreError>;
    async fn members(&self, set: String) -> Result<Vec<String>, StoreError>;
    async fn card(&self, set: String) -> Result<u64, StoreError>;
}

/// The in-process directory (one replica; lost on restart).
#[derive(Default)]
pub struct MemoryKv {
    values: Mutex<HashMap<String, String>>,
    sets: Mutex<HashMap<String, HashSet<String>>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[async_trait]
impl Kv for MemoryKv {
    fn kind(&self) -> &'static str {
        "memory"
    }
    async fn get(&self, key: String) -> Result<Option<String>, StoreError> {
        Ok(lock(&self.values).get(&key).cloned())
    }
    async fn get_many(&self, keys: Vec<String>) -> Result<Vec<Option<String>>, StoreError> {
        let v = lock(&self.values);
        Ok(keys.iter().map(|k| v.get(k).cloned()).collect())
    }
    async fn set(&self, key: String, value: String) -> Result<(), StoreError> {
        lock(&self.values).insert(key, value);
        Ok(())
    }
    async fn set_nx(&self, key: String, value: String) -> Result<bool, StoreError> {
        let mut v = lock(&self.values);
        if v.contains_key(&key) {
            return Ok(false);
        }
        v.insert(key, value);
        Ok(true)
    }
    async fn del(&self, key: String) -> Result<(), StoreError> {
        lock(&self.values).remove(&key);
        Ok(())
    }
    async fn add(&self, set: String, member: String) -> Result<(), StoreError> {
        lock(&self.sets).entry(set).or_default().insert(member);
        Ok(())
    }
    async fn remove(&self, set: String, member: String) -> Result<(), StoreError> {
        if let Some(s) = lock(&self.sets).get_mut(&set) {
            s.remove(&member);
        }
        Ok(())
    }
    async fn members(&self, set: String) -> Result<Vec<String>, StoreError> {
        Ok(lock(&self.sets)
            .get(&set)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default())
    }
    async fn card(&self, set: String) -> Result<u64, StoreError> {
        Ok(lock(&self.sets).get(&set).map_or(0, |s| s.len() as u64))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    User,
    Group,
}

impl Kind {
    pub fn tag(self) -> &'static str {
        match self {
            Kind::User => "u",
            Kind::Group => "g",
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Kind::User => "User",
            Kind::Group => "Group",
        }
    }
    pub fn endpoint(self) -> &'static str {
        match self {
            Kind::User => "Users",
            Kind::Group => "Groups",
        }
    }
    /// The unique, indexed attributes: (attribute, index tag). Values are compared
    /// case-insensitively (lower-cased in the key).
    pub fn unique(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Kind::User => &[("userName", "un"), ("externalId", "x")],
            Kind::Group => &[("displayName", "dn"), ("externalId", "x")],
        }
    }
}

/// A write the directory refused.
#[derive(Debug, thiserror::Error)]
pub enum DirError {
    #[error("{0}")]
    Store(#[from] StoreError),
    /// Another resource already has this value of a unique attribute.
    #[error("another {0} already has this {1}")]
    Conflict(&'static str, &'static str),
}

/// The top-level string attribute `name` of `doc` (attribute names are case-insensitive).
pub fn attr<'a>(doc: &'a Value, name: &str) -> Option<&'a Value> {
    doc.as_object()?
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

pub fn attr_str<'a>(doc: &'a Value, name: &str) -> Option<&'a str> {
    attr(doc, name).and_then(Value::as_str)
}

pub struct Directory {
    kv: Arc<dyn Kv>,
}

impl Directory {
    pub fn new(kv: Arc<dyn Kv>) -> Self {
        Self { kv }
    }

    pub fn kind(&self) -> &'static str {
        self.kv.kind()
    }

    fn doc_key(kind: Kind, id: &str) -> String {
        format!("{}:{id}", kind.tag())
    }
    fn all_key(kind: Kind) -> String {
        format!("{}s", kind.tag())
    }
    fn index_key(kind: Kind, tag: &str, value: &str) -> String {
        format!("i{}{tag}:{}", kind.tag(), value.to_lowercase())
    }
    /// Group external ID (an Entra group object ID, as tokens carry it) → display name.
    fn name_key(external: &str) -> String {
        format!("gn:{}", external.to_lowercase())
    }
    /// A deleted user, by the key it was matched with.
    fn tomb_key(match_tag: &str, value: &str) -> String {
        format!("t{match_tag}:{}", value.to_lowercase())
    }
    /// A user seen signing in (for the first-sign-in webhook).
    pub fn seen_key(provider: &str, user: &str) -> String {
        format!("seen:{provider}\n{user}")
    }

    fn parse(raw: Option<String>, key: &str) -> Option<Value> {
        let raw = raw?;
        match serde_json::from_str::<Value>(&raw) {
            Ok(v) if v.is_object() => Some(v),
            _ => {
                log::warn!("SCIM directory: record {key:?} is not a JSON object; ignored");
                None
            }
        }
    }

    pub async fn get(&self, kind: Kind, id: &str) -> Result<Option<Value>, StoreError> {
        let key = Self::doc_key(kind, id);
        Ok(Self::parse(self.kv.get(key.clone()).await?, &key))
    }

    /// The id of the resource whose unique attribute `attr` equals `value`.
    pub async fn lookup(
        &self,
        kind: Kind,
        attr: &str,
        value: &str,
    ) -> Result<Option<String>, StoreError> {
        let Some((_, tag)) = kind
            .unique()
            .iter()
            .find(|(a, _)| a.eq_ignore_ascii_case(attr))
        else {
            return Ok(None);
        };
        self.kv.get(Self::index_key(kind, tag, value)).await
    }

    /// Every id of `kind`, sorted (a stable order for paging).
    pub async fn ids(&self, kind: Kind) -> Result<Vec<String>, StoreError> {
        let mut ids = self.kv.members(Self::all_key(kind)).await?;
        ids.sort_unstable();
        Ok(ids)
    }

    pub async fn get_many(&self, kind: Kind, ids: &[String]) -> Result<Vec<Value>, StoreError> {
        let keys: Vec<String> = ids.iter().map(|id| Self::doc_key(kind, id)).collect();
        let raw = self.kv.get_many(keys.clone()).await?;
        Ok(raw
            .into_iter()
            .zip(&keys)
            .filter_map(|(r, k)| Self::parse(r, k))
            .collect())
    }

    /// Stores `doc` as resource `id`, replacing `old` (what was stored, if anything): claims
    /// the new unique values first, so a conflict leaves everything as it was.
    pub async fn put(
        &self,
        kind: Kind,
        id: &str,
        doc: &Value,
        old: Option<&Value>,
    ) -> Result<(), DirError> {
        let value_of = |d: Option<&Value>, a: &str| {
            d.and_then(|d| attr_str(d, a))
                .filter(|s| !s.is_empty())
                .map(str::to_lowercase)
        };
        let mut claimed = Vec::new();
        for (a, tag) in kind.unique() {
            let (new, was) = (value_of(Some(doc), a), value_of(old, a));
            let Some(new) = new.filter(|n| Some(n) != was.as_ref()) else {
                continue;
            };
            let key = Self::index_key(kind, tag, &new);
            let mine = self.kv.set_nx(key.clone(), id.to_string()).await?
                || self.kv.get(key.clone()).await?.as_deref() == Some(id);
            if !mine {
                for k in claimed {
                    self.kv.del(k).await?;
                }
                return Err(DirError::Conflict(kind.name(), a));
            }
            claimed.push(key);
        }
        self.kv
            .set(Self::doc_key(kind, id), doc.to_string())
            .await?;
        self.kv.add(Self::all_key(kind), id.to_string()).await?;
        for (a, tag) in kind.unique() {
            let (new, was) = (value_of(Some(doc), a), value_of(old, a));
            if let Some(was) = was.filter(|w| Some(w) != new.as_ref()) {
                self.release(Self::index_key(kind, tag, &was), id).await?;
            }
        }
        if kind == Kind::Group {
            let external = |d: Option<&Value>| {
                d.and_then(|d| attr_str(d, "externalId"))
                    .map(str::to_string)
            };
            if let Some(x) = external(old).filter(|x| Some(x) != external(Some(doc)).as_ref()) {
                self.kv.del(Self::name_key(&x)).await?;
            }
            if let (Some(x), Some(name)) = (external(Some(doc)), attr_str(doc, "displayName")) {
                self.kv.set(Self::name_key(&x), name.to_string()).await?;
            }
        }
        Ok(())
    }

    /// Deletes an index entry if it still names `id`.
    async fn release(&self, key: String, id: &str) -> Result<(), StoreError> {
        if self.kv.get(key.clone()).await?.as_deref() == Some(id) {
            self.kv.del(key).await?;
        }
        Ok(())
    }

    /// Deletes resource `id`; returns what was stored.
    pub async fn delete(&self, kind: Kind, id: &str) -> Result<Option<Value>, StoreError> {
        let Some(old) = self.get(kind, id).await? else {
            return Ok(None);
        };
        for (a, tag) in kind.unique() {
            if let Some(v) = attr_str(&old, a).filter(|v| !v.is_empty()) {
                self.release(Self::index_key(kind, tag, v), id).await?;
            }
        }
        if kind == Kind::Group {
            if let Some(x) = attr_str(&old, "externalId") {
                self.kv.del(Self::name_key(x)).await?;
            }
        }
        self.kv.del(Self::doc_key(kind, id)).await?;
        self.kv.remove(Self::all_key(kind), id.to_string()).await?;
        Ok(Some(old))
    }

    /// The display names the directory knows for these group external IDs (in order).
    pub async fn group_names(&self, externals: &[&str]) -> Result<Vec<Option<String>>, StoreError> {
        if externals.is_empty() {
            return Ok(Vec::new());
        }
        let keys = externals.iter().map(|x| Self::name_key(x)).collect();
        self.kv.get_many(keys).await
    }

    /// Marks a user (by the matched attribute's index tag and value) deleted, or not.
    pub async fn set_tombstone(
        &self,
        tag: &str,
        value: &str,
        dead: bool,
    ) -> Result<(), StoreError> {
        let key = Self::tomb_key(tag, value);
        if dead {
            self.kv
                .set(key, crate::session::now_secs().to_string())
                .await
        } else {
            self.kv.del(key).await
        }
    }

    pub async fn tombstoned(&self, tag: &str, value: &str) -> Result<bool, StoreError> {
        Ok(self.kv.get(Self::tomb_key(tag, value)).await?.is_some())
    }

    /// First time `key` is marked (the first sign-in); `false` after.
    pub async fn mark(&self, key: String) -> Result<bool, StoreError> {
        self.kv
            .set_nx(key, crate::session::now_secs().to_string())
            .await
    }

    pub async fn unmark(&self, key: String) -> Result<(), StoreError> {
        self.kv.del(key).await
    }

    pub async fn count(&self, kind: Kind) -> Result<u64, StoreError> {
        self.kv.card(Self::all_key(kind)).await
    }
}

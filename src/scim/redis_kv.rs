//! The directory on Redis (standalone, Sentinel or Cluster, as `session.redis` says), so
//! every replica sees what Entra provisioned through any of them. Its own connection
//! (`Link`), keys under `<key_prefix>scim:`.

use std::sync::Arc;

use async_trait::async_trait;
use fred::prelude::*;
use fred::types::SetOptions;

use super::directory::Kv;
use crate::session::redis::Link;
use crate::session::RedisConfig;
use crate::session::StoreError;

pub struct RedisKv {
    link: Arc<Link>,
    prefix: String,
}

impl RedisKv {
    pub fn connect(cfg: &RedisConfig) -> Result<Self, String> {
        // The revocation channel's pushes are the session store's business.
        let link = Link::connect(cfg, Arc::new(|_: &str| {}))?;
        Ok(Self {
            link,
            prefix: format!("{}scim:", cfg.key_prefix),
        })
    }

    /// Redis answers (tests wait for it before a conformance run).
    pub fn healthy(&self) -> bool {
        self.link.healthy()
    }

    fn key(&self, k: &str) -> String {
        format!("{}{k}", self.prefix)
    }
}

#[async_trait]
impl Kv for RedisKv {
    fn kind(&self) -> &'static str {
        "redis"
    }
    async fn get(&self, key: String) -> Result<Option<String>, StoreError> {
        let key = self.key(&key);
        self.link
            .run("SCIM read", move |r| async move {
                r.get::<Option<String>, _>(key).await
            })
            .await
    }
    async fn get_many(&self, keys: Vec<String>) -> Result<Vec<Option<String>>, StoreError> {
        // One key per command (Cluster), sent together.
        let keys: Vec<String> = keys.iter().map(|k| self.key(k)).collect();
        self.link
            .run("SCIM read", move |r| async move {
                let tasks: Vec<_> = keys
                    .into_iter()
                    .map(|k| {
                        let c = r.next().clone();
                        tokio::spawn(async move { c.get::<Option<String>, _>(k).await })
                    })
                    .collect();
                let mut out = Vec::with_capacity(tasks.len());
                for t in tasks {
                    let v = t.await.map_err(|e| {
                        fred::error::Error::new(fred::error::ErrorKind::Unknown, e.to_string())
                    })??;
                    out.push(v);
                }
                Ok(out)
            })
            .await
    }
    async fn set(&self, key: String, value: String) -> Result<(), StoreError> {
        let key = self.key(&key);
        self.link
            .run("SCIM write", move |r| async move {
                r.set::<(), _, _>(key, value, None, None, false).await
            })
            .await
    }
    async fn set_nx(&self, key: String, value: String) -> Result<bool, StoreError> {
        let key = self.key(&key);
        self.link
            .run("SCIM write", move |r| async move {
                let set: Option<String> =
                    r.set(key, value, None, Some(SetOptions::NX), false).await?;
                Ok(set.is_some())
            })
            .await
    }
    async fn del(&self, key: String) -> Result<(), StoreError> {
        let key = self.key(&key);
        self.link
            .run(
                "SCIM write",
                move |r| async move { r.del::<(), _>(key).await },
            )
            .await
    }
    async fn add(&self, set: String, member: String) -> Result<(), StoreError> {
        let set = self.key(&set);
        self.link
            .run("SCIM write", move |r| async move {
                r.sadd::<(), _, _>(set, member).await
            })
            .await
    }
    async fn remove(&self, set: String, member: String) -> Result<(), StoreError> {
        let set = self.key(&set);
        self.link
            .run("SCIM write", move |r| async move {
                r.srem::<(), _, _>(set, member).await
            })
            .await
    }
    async fn members(&self, set: String) -> Result<Vec<String>, StoreError> {
        let set = self.key(&set);
        self.link
            .run("SCIM read", move |r| async move {
                r.smembers::<Vec<String>, _>(set).await
            })
            .await
    }
    async fn card(&self, set: String) -> Result<u64, StoreError> {
        let set = self.key(&set);
        self.link
            .run(
                "SCIM read",
                move |r| async move { r.scard::<u64, _>(set).await },
            )
            .await
    }
}

//! What provisioning does to sign-ins and sessions: the directory is asked at every sign-in
//! (and, cached briefly, for every bearer token) whether the user is deprovisioned,
//! provisioned, in which named groups and with which attributes; a deprovisioning ends the
//! user's sessions everywhere; the webhook hears of first sign-ins and of changes.

use std::sync::Arc;

use serde_json::{json, Value};

use super::directory::{attr, attr_str, Directory, Kind};
use super::path::ENTERPRISE;
use super::{Attribute, OnFailure, Scim, Status};
use crate::identity::{Identity, List};
use crate::session::{now_secs, StoreError};

/// Why a sign-in (or a bearer token) does not pass provisioning.
#[derive(Debug)]
pub enum Refusal {
    /// Inactive or deleted in the directory.
    Deprovisioned,
    /// The directory cannot be read: fail closed.
    Unavailable(StoreError),
    /// The first-sign-in webhook failed, and `on_failure: deny`.
    Webhook(String),
}

fn is_active(doc: &Value) -> bool {
    attr(doc, "active").and_then(Value::as_bool).unwrap_or(true)
}

/// An enterprise-extension (or, for `title`, core) string attribute of a user.
fn attribute(doc: &Value, a: Attribute) -> Option<&str> {
    match a {
        Attribute::Title => attr_str(doc, "title"),
        Attribute::Manager => attr(doc, ENTERPRISE)
            .and_then(|e| attr(e, "manager"))
            .and_then(|m| attr_str(m, "value").or(m.as_str())),
        other => attr(doc, ENTERPRISE).and_then(|e| attr_str(e, other.key())),
    }
}

impl Scim {
    /// The directory's word on the user whose key (the matched attribute) is `key`.
    pub async fn status(&self, key: &str) -> Result<Status, StoreError> {
        let m = self.cfg.match_attribute;
        if let Some(id) = self.dir.lookup(Kind::User, m.attr(), key).await? {
            if let Some(doc) = self.dir.get(Kind::User, &id).await? {
                return Ok(if is_active(&doc) {
                    Status::Active(Arc::new(doc))
                } else {
                    Status::Deprovisioned
                });
            }
        }
        Ok(if self.dir.tombstoned(m.tag(), key).await? {
            Status::Deprovisioned
        } else {
            Status::Unknown
        })
    }

    /// A sign-in the IdP vouched for, before its session is made: refused if the user is
    /// deprovisioned; otherwise marked provisioned (or not), given group names and the
    /// configured attributes; the webhook told of a first sign-in.
    pub async fn admit(&self, mut identity: Identity) -> Result<Identity, Refusal> {
        if !self.covers(&identity.provider) {
            return Ok(identity);
        }
        let status = self
            .status(&identity.user)
            .await
            .map_err(Refusal::Unavailable)?;
        let doc = match status {
            Status::Deprovisioned => return Err(Refusal::Deprovisioned),
            Status::Active(doc) => Some(doc),
            Status::Unknown => None,
        };
        identity.provisioned = doc.is_some();
        if let Some(doc) = &doc {
            let attributes = self.attributes(doc).await.map_err(Refusal::Unavailable)?;
            identity.more.set(|r| &mut r.attributes, attributes);
        }
        self.name_groups(&mut identity)
            .await
            .map_err(Refusal::Unavailable)?;
        if self.cfg.webhook.is_some() {
            self.first_sign_in(&identity, doc.as_deref()).await?;
        }
        Ok(identity)
    }

    /// The configured attributes of a user, the manager by their `userName` when known.
    async fn attributes(&self, doc: &Value) -> Result<Vec<(String, String)>, StoreError> {
        let mut out = Vec::new();
        for (a, _) in &self.cfg.headers {
            let Some(v) = attribute(doc, *a) else {
                continue;
            };
            let v = if *a == Attribute::Manager {
                match self.dir.get(Kind::User, v).await? {
                    Some(m) => attr_str(&m, "userName").unwrap_or(v).to_string(),
                    None => v.to_string(),
                }
            } else {
                v.to_string()
            };
            out.push((a.key().to_string(), v));
        }
        Ok(out)
    }

    /// The names upstreams see for the identity's groups: the provider's own `group_names`
    /// first, then the directory's, else the ID. Only set when the directory named one.
    async fn name_groups(&self, identity: &mut Identity) -> Result<(), StoreError> {
        if identity.groups.is_empty() {
            return Ok(());
        }
        let owned: Vec<_> = identity.groups.iter().collect();
        let ids: Vec<&str> = owned.iter().map(|g| &**g).collect();
        let names = self.dir.group_names(&ids).await?;
        let fixed = self
            .providers
            .iter()
            .find(|p| *p.name == *identity.provider)
            .map(|p| &p.group_names);
        let mut any = false;
        let shown: Vec<String> = ids
            .iter()
            .zip(names)
            .map(|(id, name)| {
                if let Some(n) = fixed.and_then(|f| f.get(*id)) {
                    return n.clone();
                }
                // A name a header cannot carry as one list entry (a comma, non-ASCII) would
                // cost the whole header: the ID is sent instead.
                let sendable = |n: &String| {
                    !n.is_empty() && n.bytes().all(|b| (0x20..0x7f).contains(&b) && b != b',')
                };
                match name.filter(sendable) {
                    Some(n) => {
                        any = true;
                        n
                    }
                    None => id.to_string(),
                }
            })
            .collect();
        if any {
            identity.more.group_names = Some(List::new(shown));
        }
        Ok(())
    }

    async fn first_sign_in(&self, identity: &Identity, doc: Option<&Value>) -> Result<(), Refusal> {
        let key = Directory::seen_key(&identity.provider, &identity.user);
        if !self
            .dir
            .mark(key.clone())
            .await
            .map_err(Refusal::Unavailable)?
        {
            return Ok(());
        }
        let event = json!({
            "event": "first_sign_in",
            "provider": &*identity.provider,
            "user": identity.user,
            "email": identity.email,
            "name": identity.name,
            "tenant": identity.tenant.as_deref(),
            "scim_id": doc.and_then(|d| attr_str(d, "id")),
        });
        match self.call_webhook("first_sign_in", &event).await {
            Ok(()) => Ok(()),
            Err(why) => match self.cfg.webhook.as_ref().map(|w| w.on_failure) {
                Some(OnFailure::Allow) => Ok(()),
                _ => {
                    // Not seen after all: the next sign-in calls again.
                    let _ = self.dir.unmark(key).await;
                    Err(Refusal::Webhook(why))
                }
            },
        }
    }

    /// POSTs `event` to the webhook; the reason when it did not answer 2xx in time.
    async fn call_webhook(&self, kind: &'static str, event: &Value) -> Result<(), String> {
        let Some(w) = &self.cfg.webhook else {
            return Ok(());
        };
        let mut req = self.effects.http.post(w.url.clone()).json(event);
        if let Some(t) = &w.token {
            req = req.bearer_auth(&t.0);
        }
        let result = match req.send().await {
            Ok(r) if r.status().is_success() => Ok(()),
            Ok(r) => Err(format!("webhook answered {}", r.status())),
            Err(e) if e.is_timeout() => {
                Err(format!("webhook did not answer within {:?}", w.timeout))
            }
            Err(e) => Err(format!("webhook unreachable: {e}")),
        };
        let label = if result.is_ok() { "ok" } else { "failed" };
        self.metrics
            .scim_webhooks
            .with_label_values(&[kind, label])
            .inc();
        if let Err(why) = &result {
            log::warn!("SCIM webhook ({kind}) failed: {why}");
        }
        result
    }

    /// Tells the webhook of a change, without holding up the SCIM answer.
    pub(crate) fn notify(self: &Arc<Self>, kind: &'static str, doc: &Value) {
        if self.cfg.webhook.is_none() {
            return;
        }
        let event = json!({
            "event": kind,
            "scim_id": attr_str(doc, "id"),
            "userName": attr_str(doc, "userName"),
            "externalId": attr_str(doc, "externalId"),
            "active": is_active(doc),
        });
        let me = self.clone();
        tokio::spawn(async move {
            let _ = me.call_webhook(kind, &event).await;
        });
    }

    /// A bearer token's identity, held to the same rule as a sign-in (cached briefly).
    pub async fn check_bearer(&self, identity: Arc<Identity>) -> Result<Arc<Identity>, Refusal> {
        if !self.covers(&identity.provider) {
            return Ok(identity);
        }
        let key = (identity.provider.clone(), identity.user.to_string());
        let status = match self.effects.bearer.get(&key) {
            Some(s) => s,
            None => {
                let s = self
                    .status(&identity.user)
                    .await
                    .map_err(Refusal::Unavailable)?;
                self.effects.bearer.insert(key, s.clone());
                s
            }
        };
        match status {
            Status::Deprovisioned => Err(Refusal::Deprovisioned),
            Status::Unknown => Ok(identity),
            Status::Active(_) => {
                let mut id = (*identity).clone();
                id.provisioned = true;
                Ok(Arc::new(id))
            }
        }
    }

    /// The user `doc` is deprovisioned (inactive or deleted): every session of theirs, with
    /// every provider SCIM covers, ends on every replica. Returns how many stored sessions
    /// ended, or the store's error.
    pub async fn end_sessions(&self, key: &str) -> Result<u64, StoreError> {
        let now = now_secs();
        let mut ended = 0;
        for p in self.providers.iter().filter(|p| self.covers(&p.name)) {
            ended += self.sessions.revoke_user(&p.name, key, now).await?;
        }
        self.effects.bearer.invalidate_all();
        Ok(ended)
    }

    /// A user was created, changed or deleted (`new` None): tombstones kept right, and every
    /// session ended of a user now inactive or deleted (and of a key the user no longer has).
    /// Failing to end them is an error (503): Entra retries, and the retry ends them.
    pub async fn after_user_change(
        self: &Arc<Self>,
        old: Option<&Value>,
        new: Option<&Value>,
    ) -> Result<(), StoreError> {
        let m = self.cfg.match_attribute;
        let key = |d: Option<&Value>| d.and_then(|d| attr_str(d, m.attr())).map(str::to_string);
        let (old_key, new_key) = (key(old), key(new));
        let mut doomed = Vec::new();
        match (new, &new_key) {
            (Some(doc), Some(k)) => {
                self.dir.set_tombstone(m.tag(), k, false).await?;
                if !is_active(doc) {
                    doomed.push(k.clone());
                }
            }
            (None, _) => {
                if let Some(k) = &old_key {
                    self.dir.set_tombstone(m.tag(), k, true).await?;
                }
            }
            _ => {}
        }
        if let Some(k) = old_key.filter(|k| new.is_none() || Some(k) != new_key.as_ref()) {
            doomed.push(k);
        }
        let gone = new.is_none_or(|d| !is_active(d));
        if gone && doomed.is_empty() {
            log::warn!(
                "SCIM: user {:?} deprovisioned but has no {}: no session could be matched to end (map the attribute in Entra's provisioning settings)",
                new.or(old).and_then(|d| attr_str(d, "userName")).unwrap_or("?"),
                m.attr()
            );
        }
        for k in &doomed {
            let ended = self.end_sessions(k).await?;
            crate::logging::audit(
                "scim_sessions_ended",
                json!({"user": k, "stored_sessions": ended}),
            );
        }
        let was = old.is_some_and(is_active);
        let is = new.is_some_and(is_active);
        match (was, is, new.or(old)) {
            (true, false, Some(d)) => self.notify("deprovisioned", d),
            (false, true, Some(d)) => self.notify("provisioned", d),
            _ => {}
        }
        Ok(())
    }

    /// The directory's size gauge for `kind`, counted again after a change.
    pub async fn count(&self, kind: Kind) {
        if let Ok(n) = self.dir.count(kind).await {
            let g = match kind {
                Kind::User => &self.metrics.scim_users,
                Kind::Group => &self.metrics.scim_groups,
            };
            g.set(i64::try_from(n).unwrap_or(i64::MAX));
        }
    }
}

/// The audit line of a change to a resource.
pub(crate) fn audit(kind: Kind, what: &str, doc: &Value) {
    crate::logging::audit(
        &format!("scim_{}_{what}", kind.name().to_ascii_lowercase()),
        json!({
            "id": attr_str(doc, "id"),
            "externalId": attr_str(doc, "externalId"),
            "userName": attr_str(doc, "userName"),
            "displayName": attr_str(doc, "displayName"),
            "active": (kind == Kind::User).then(|| is_active(doc)),
        }),
    );
}

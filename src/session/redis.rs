//! Sessions in Redis (`SESSION_STORE=redis`): a hash per session that expires with the
//! session, sets indexing sessions by subject and provider session id, and a lease key
//! for the one-refresh-at-a-time rule. The audit log and redeemed states stay in SQL.

use std::{collections::HashMap, time::Duration};

use anyhow::Context;
use redis::{aio::ConnectionManager, AsyncCommands, Script};

use async_trait::async_trait;

use super::backend::{SessionBackend, SessionMeta, Stored};

/// Redis side of the store.
#[derive(Clone)]
pub struct RedisSessions {
    client: redis::Client,
    conn: ConnectionManager,
    prefix: String,
}

const UPDATE_TOKENS: &str = r"
local v = redis.call('HGET', KEYS[1], 'version')
if not v or tonumber(v) ~= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'tokens', ARGV[2], 'token_expires_at', ARGV[3], 'version', tonumber(ARGV[1]) + 1)
if ARGV[4] ~= '' then redis.call('HSET', KEYS[1], 'name', ARGV[4]) end
if ARGV[5] ~= '' then redis.call('HSET', KEYS[1], 'email', ARGV[5]) end
redis.call('DEL', KEYS[2])
redis.call('PUBLISH', KEYS[3], ARGV[6])
return 1
";

const UPDATE_STATE: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'state', ARGV[1])
redis.call('PUBLISH', KEYS[2], ARGV[2])
return 1
";

const TOUCH: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'last_seen', ARGV[1], 'idle_expires_at', ARGV[2])
redis.call('EXPIREAT', KEYS[1], ARGV[3])
return 1
";

fn text(h: &HashMap<String, Vec<u8>>, k: &str) -> Option<String> {
    h.get(k).map(|v| String::from_utf8_lossy(v).into_owned())
}

fn num(h: &HashMap<String, Vec<u8>>, k: &str) -> anyhow::Result<i64> {
    text(h, k)
        .and_then(|v| v.parse().ok())
        .with_context(|| format!("session field {k} missing"))
}

impl RedisSessions {
    /// Connects with short timeouts, so a Redis outage fails requests fast.
    pub async fn connect(url: &str, prefix: &str) -> anyhow::Result<Self> {
        let client = redis::Client::open(url).context("REDIS_URL is not a valid Redis URL")?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Duration::from_secs(2))
            .set_response_timeout(Duration::from_secs(2))
            .set_number_of_retries(1);
        let conn = ConnectionManager::new_with_config(client.clone(), config)
            .await
            .context("cannot connect to Redis")?;
        Ok(Self {
            client,
            conn,
            prefix: prefix.to_owned(),
        })
    }

    /// The client, for the session-change subscription.
    pub fn client(&self) -> redis::Client {
        self.client.clone()
    }

    /// Where deletes and token updates announce the key hash they changed.
    pub fn changes_channel(&self) -> String {
        format!("{}{}", self.prefix, super::cache::CHANNEL)
    }

    fn key(&self, kind: &str, v: &str) -> String {
        format!("{}{kind}:{v}", self.prefix)
    }

    async fn members(&self, index: String) -> anyhow::Result<Vec<Stored>> {
        let mut c = self.conn.clone();
        let hashes: Vec<String> = c.smembers(&index).await.context("read session index")?;
        let mut out = Vec::new();
        for h in hashes {
            match self.load(&h).await? {
                Some(s) => out.push(s),
                None => {
                    // The session expired on its own; drop it from the index.
                    let _: () = c.srem(&index, &h).await.context("prune session index")?;
                }
            }
        }
        out.sort_by_key(|s| s.meta.created_at);
        Ok(out)
    }
}

#[async_trait]
impl SessionBackend for RedisSessions {
    /// Whether Redis answers.
    async fn ping(&self) -> bool {
        let mut c = self.conn.clone();
        redis::cmd("PING").query_async::<String>(&mut c).await.is_ok()
    }

    /// Stores a session and indexes it.
    async fn create(&self, s: &Stored) -> anyhow::Result<()> {
        let m = &s.meta;
        let mut c = self.conn.clone();
        let key = self.key("s", &s.key_hash);
        let mut fields: Vec<(&str, Vec<u8>)> = vec![
            ("key_hash", s.key_hash.clone().into_bytes()),
            ("id", m.id.clone().into_bytes()),
            ("sub", m.sub.clone().into_bytes()),
            ("tokens", s.sealed.clone()),
            ("token_expires_at", s.token_expires_at.to_string().into_bytes()),
            ("version", m.version.to_string().into_bytes()),
            ("created_at", m.created_at.to_string().into_bytes()),
            ("last_seen", m.last_seen.to_string().into_bytes()),
            ("idle_expires_at", m.idle_expires_at.to_string().into_bytes()),
            ("expires_at", m.expires_at.to_string().into_bytes()),
            ("state", serde_json::to_vec(&m.state)?),
        ];
        for (k, v) in [
            ("sid", &m.sid),
            ("name", &m.name),
            ("email", &m.email),
            ("user_agent", &m.user_agent),
            ("ip", &m.ip),
        ] {
            if let Some(v) = v {
                fields.push((k, v.clone().into_bytes()));
            }
        }
        let mut p = redis::pipe();
        p.atomic()
            .hset_multiple(&key, &fields)
            .ignore()
            .expire_at(&key, m.idle_expires_at.min(m.expires_at))
            .ignore()
            .sadd(self.key("u", &m.sub), &s.key_hash)
            .ignore()
            .expire_at(self.key("u", &m.sub), m.expires_at)
            .ignore();
        if let Some(sid) = &m.sid {
            p.sadd(self.key("d", sid), &s.key_hash)
                .ignore()
                .expire_at(self.key("d", sid), m.expires_at)
                .ignore();
        }
        p.query_async::<()>(&mut c)
            .await
            .context("store session in Redis")?;
        Ok(())
    }

    /// One session by key hash.
    async fn load(&self, key_hash: &str) -> anyhow::Result<Option<Stored>> {
        let mut c = self.conn.clone();
        let h: HashMap<String, Vec<u8>> = c.hgetall(self.key("s", key_hash)).await.context("load session")?;
        if h.is_empty() {
            return Ok(None);
        }
        Ok(Some(Stored {
            key_hash: key_hash.to_owned(),
            meta: SessionMeta {
                id: text(&h, "id").context("id")?,
                sub: text(&h, "sub").context("sub")?,
                sid: text(&h, "sid"),
                name: text(&h, "name"),
                email: text(&h, "email"),
                version: num(&h, "version")?,
                created_at: num(&h, "created_at")?,
                last_seen: num(&h, "last_seen")?,
                idle_expires_at: num(&h, "idle_expires_at")?,
                expires_at: num(&h, "expires_at")?,
                user_agent: text(&h, "user_agent"),
                ip: text(&h, "ip"),
                state: h
                    .get("state")
                    .and_then(|v| serde_json::from_slice(v).ok())
                    .unwrap_or_default(),
            },
            sealed: h.get("tokens").cloned().context("tokens")?,
            token_expires_at: num(&h, "token_expires_at")?,
        }))
    }

    /// Every session of a subject.
    async fn by_sub(&self, sub: &str) -> anyhow::Result<Vec<Stored>> {
        self.members(self.key("u", sub)).await
    }

    /// Every session with a provider session id.
    async fn by_sid(&self, sid: &str) -> anyhow::Result<Vec<Stored>> {
        self.members(self.key("d", sid)).await
    }

    /// Moves `last_seen` and the idle deadline (and the key's expiry with it).
    async fn touch(
        &self,
        key_hash: &str,
        now: i64,
        idle_expires_at: i64,
        expires_at: i64,
    ) -> anyhow::Result<()> {
        let mut c = self.conn.clone();
        Script::new(TOUCH)
            .key(self.key("s", key_hash))
            .arg(now)
            .arg(idle_expires_at)
            .arg(idle_expires_at.min(expires_at))
            .invoke_async::<i64>(&mut c)
            .await
            .context("touch session")?;
        Ok(())
    }

    /// Compare-and-set of the sealed tokens on `version`; releases the refresh lease.
    async fn update_tokens(
        &self,
        key_hash: &str,
        expected_version: i64,
        sealed: &[u8],
        token_expires_at: i64,
        name: Option<&str>,
        email: Option<&str>,
    ) -> anyhow::Result<bool> {
        let mut c = self.conn.clone();
        let done: i64 = Script::new(UPDATE_TOKENS)
            .key(self.key("s", key_hash))
            .key(self.key("lease", key_hash))
            .key(self.changes_channel())
            .arg(expected_version)
            .arg(sealed)
            .arg(token_expires_at)
            .arg(name.unwrap_or(""))
            .arg(email.unwrap_or(""))
            .arg(key_hash)
            .invoke_async(&mut c)
            .await
            .context("update session tokens")?;
        Ok(done == 1)
    }

    /// Takes the refresh lease until `until` (Unix seconds) unless someone holds it.
    async fn update_state(&self, key_hash: &str, state: &HashMap<String, String>) -> anyhow::Result<()> {
        let mut c = self.conn.clone();
        Script::new(UPDATE_STATE)
            .key(self.key("s", key_hash))
            .key(self.changes_channel())
            .arg(serde_json::to_vec(state)?)
            .arg(key_hash)
            .invoke_async::<i64>(&mut c)
            .await
            .context("update session state")?;
        Ok(())
    }

    async fn take_refresh_lease(&self, key_hash: &str, _now: i64, until: i64) -> anyhow::Result<bool> {
        let mut c = self.conn.clone();
        let set: Option<String> = redis::cmd("SET")
            .arg(self.key("lease", key_hash))
            .arg(1)
            .arg("NX")
            .arg("EXAT")
            .arg(until)
            .query_async(&mut c)
            .await
            .context("take refresh lease")?;
        Ok(set.is_some())
    }

    /// Gives the refresh lease back early.
    async fn release_refresh_lease(&self, key_hash: &str) -> anyhow::Result<()> {
        let mut c = self.conn.clone();
        let _: () = c
            .del(self.key("lease", key_hash))
            .await
            .context("release refresh lease")?;
        Ok(())
    }

    /// Deletes a session and its index entries, and tells every replica's cache.
    async fn delete(&self, key_hash: &str) -> anyhow::Result<()> {
        let s = self.load(key_hash).await?;
        let mut c = self.conn.clone();
        let mut p = redis::pipe();
        p.atomic()
            .del(self.key("s", key_hash))
            .ignore()
            .del(self.key("lease", key_hash))
            .ignore()
            .publish(self.changes_channel(), key_hash)
            .ignore();
        if let Some(s) = &s {
            p.srem(self.key("u", &s.meta.sub), key_hash).ignore();
            if let Some(sid) = &s.meta.sid {
                p.srem(self.key("d", sid), key_hash).ignore();
            }
        }
        p.query_async::<()>(&mut c).await.context("delete session")?;
        Ok(())
    }
}

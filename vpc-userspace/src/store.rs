//! The deployment's store: one SQLite database per deployment,
//! `/run/vpc/<name>/store.db`, holding everything the agent must not lose
//! (the applied template and its model with every Hyperplane ENI and
//! allocation: `state`; functions, their lifecycle, versions and timers:
//! `lifecycle`; the clock). Each document is a JSON value in one table, so
//! the shapes stay the serde types the rest of the code uses, and every
//! change is one SQLite transaction: a crash (SIGKILL included) leaves the
//! store as it was before or after a change, never half of one.
//!
//! Why SQLite (rusqlite, bundled): several processes use a deployment at
//! once (the agent, `vpc status`, `vpc apply`, `vpc down`), and SQLite is the
//! embedded database built for that: ACID transactions across processes
//! with a write-ahead log, crash-safe, no server. redb and sled lock the
//! database file to one process.
use std::{path::Path, time::Duration};

use anyhow::{Context, Result};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior};
use serde::{de::DeserializeOwned, Serialize};

pub const FILE: &str = "store.db";

pub struct Store {
    conn: Connection,
}

/// An open write transaction: documents read and written here commit
/// together, or not at all.
pub struct Tx<'a> {
    tx: rusqlite::Transaction<'a>,
}

impl Store {
    /// Opens (creating) the store of the deployment whose state directory is `dir`.
    pub fn open_dir(dir: &Path) -> Result<Self> {
        let path = dir.join(FILE);
        let conn =
            Connection::open(&path).with_context(|| format!("opening store {}", path.display()))?;
        // Concurrent writers wait for each other rather than fail.
        conn.busy_timeout(Duration::from_secs(10))?;
        // WAL: readers never block the writer; FULL: a committed change is
        // on disk before the commit returns.
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS documents (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        )?;
        Ok(Self { conn })
    }

    pub fn open(name: &str) -> Result<Self> {
        Self::open_dir(&crate::paths::state_dir(name))
    }

    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        get(&self.conn, key)
    }

    /// Runs `f` in one write transaction (taken at once, so two
    /// read-modify-write cycles never interleave); commits if `f` succeeds.
    pub fn transact<R>(&mut self, f: impl FnOnce(&Tx) -> Result<R>) -> Result<R> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let t = Tx { tx };
        let r = f(&t)?;
        t.tx.commit().context("committing to the store")?;
        Ok(r)
    }

    pub fn put<T: Serialize>(&mut self, key: &str, v: &T) -> Result<()> {
        self.transact(|t| t.put(key, v))
    }
}

impl Tx<'_> {
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        get(&self.tx, key)
    }
    pub fn put<T: Serialize>(&self, key: &str, v: &T) -> Result<()> {
        self.tx.execute(
            "INSERT INTO documents (key, value) VALUES (?1, ?2)
             ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, serde_json::to_string(v)?),
        )?;
        Ok(())
    }
    pub fn delete(&self, key: &str) -> Result<()> {
        self.tx
            .execute("DELETE FROM documents WHERE key = ?1", [key])?;
        Ok(())
    }
}

fn get<T: DeserializeOwned>(c: &Connection, key: &str) -> Result<Option<T>> {
    let v: Option<String> = c
        .query_row("SELECT value FROM documents WHERE key = ?1", [key], |r| {
            r.get(0)
        })
        .optional()?;
    v.map(|s| serde_json::from_str(&s).with_context(|| format!("store document {key:?}")))
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_transaction_leaves_nothing() {
        let dir = std::env::temp_dir().join(format!("vpc-store-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut s = Store::open_dir(&dir).unwrap();
        s.put("a", &1u32).unwrap();
        let r: Result<()> = s.transact(|t| {
            t.put("a", &2u32)?;
            t.put("b", &3u32)?;
            anyhow::bail!("half way")
        });
        assert!(r.is_err());
        assert_eq!(s.get::<u32>("a").unwrap(), Some(1));
        assert_eq!(s.get::<u32>("b").unwrap(), None);
        // Another connection (another process) sees the committed value.
        let other = Store::open_dir(&dir).unwrap();
        assert_eq!(other.get::<u32>("a").unwrap(), Some(1));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

//! Servers that follow the deployment's state: one task per thing the
//! state says should be served (a VPC's resolver, an endpoint's service),
//! started when it appears, stopped when it goes, checked every two
//! seconds. Used by [`crate::resolver`] and [`crate::services`], whose
//! sockets live in namespaces: `bind` runs on the blocking pool, where it
//! may enter one for a moment (a runtime worker never does).
use std::{collections::HashMap, future::Future, hash::Hash, time::Duration};

use anyhow::{Context, Result};
use tokio::sync::watch;

/// How often the state is read again.
pub const CHECK: Duration = Duration::from_secs(2);

/// Serves, until `shutdown` turns true (or its sender is gone), every key
/// `wanted()` lists (blocking: the store): `bind` opens what is new
/// (blocking), `serve` turns each into the task that answers it. A task
/// whose key is no longer wanted is aborted. At the first check an error
/// (reading the state, binding) is returned before anything is served;
/// later ones are logged and the next check tries again. `what` names the
/// servers in the log.
pub async fn follow<K, D, L, Fut>(
    what: &'static str,
    shutdown: watch::Receiver<bool>,
    wanted: impl Fn() -> Result<Vec<(K, D)>> + Send + Clone + 'static,
    bind: impl Fn(Vec<(K, D)>) -> Result<Vec<(K, L)>> + Send + Clone + 'static,
    mut serve: impl FnMut(&K, L) -> Result<Fut>,
) -> Result<()>
where
    K: Eq + Hash + Clone + Send + 'static,
    D: Send + 'static,
    L: Send + 'static,
    Fut: Future<Output = Result<()>> + Send + 'static,
{
    let mut running: HashMap<K, tokio::task::AbortHandle> = HashMap::new();
    let mut tasks = tokio::task::JoinSet::new();
    let mut check = tokio::time::interval(CHECK);
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut stop = shutdown;
    let stopped = async move {
        let _ = stop.wait_for(|s| *s).await;
    };
    tokio::pin!(stopped);
    let mut first = true;
    loop {
        tokio::select! {
            () = &mut stopped => break,
            Some(r) = tasks.join_next(), if !tasks.is_empty() => {
                if let Ok(Err(e)) = r {
                    tracing::error!("{what}: a server stopped: {e:#}");
                }
            }
            _ = check.tick() => {
                let (wanted, bind) = (wanted.clone(), bind.clone());
                let have: Vec<K> = running.keys().cloned().collect();
                let opened = tokio::task::spawn_blocking(move || {
                    let want = wanted()?;
                    let keys: Vec<K> = want.iter().map(|(k, _)| k.clone()).collect();
                    let new = want.into_iter().filter(|(k, _)| !have.contains(k)).collect();
                    Ok::<_, anyhow::Error>((keys, bind(new)?))
                })
                .await
                .with_context(|| format!("{what}: reading the state"))?;
                let (keys, opened) = match opened {
                    Ok(x) => x,
                    Err(e) if first => return Err(e),
                    Err(e) => {
                        tracing::warn!("{what}: {e:#}");
                        continue;
                    }
                };
                first = false;
                running.retain(|k, h| {
                    let keep = keys.contains(k) && !h.is_finished();
                    if !keep {
                        h.abort();
                    }
                    keep
                });
                for (key, l) in opened {
                    let task = serve(&key, l)?;
                    running.insert(key, tasks.spawn(task));
                }
            }
        }
    }
    // Each server sees the shutdown itself and finishes what it answers.
    while tasks.join_next().await.is_some() {}
    Ok(())
}

//! What the control socket asks of the IKE thread: start connections, `up`,
//! `down`, reload, and the waiters that answer `up`/`down` when the engine
//! reports the outcome.

use super::*;

impl State {
    pub(super) fn start_connections(&mut self) {
        let starts: Vec<String> = self
            .conns
            .iter()
            .filter_map(|(n, c)| match c {
                ConnState::Loaded(l) if l.start_action == StartAction::Start => Some(n.clone()),
                _ => None,
            })
            .collect();
        for name in starts {
            match self.ike.initiate(Instant::now(), &name) {
                Ok(id) => {
                    tracing::info!(connection = %name, "initiating IKE SA {id} (start_action = start)")
                }
                Err(e) => tracing::error!(connection = %name, "cannot initiate: {e}"),
            }
        }
        let names: Vec<String> = self.conns.keys().cloned().collect();
        for name in names {
            self.install_traps(&name, false);
        }
        self.pump();
    }

    pub(super) fn loaded(&self, name: &str) -> Result<&Loaded, String> {
        match self.conns.get(name) {
            Some(ConnState::Loaded(l)) => Ok(l),
            Some(ConnState::Refused(e)) => Err(format!("connection `{name}` is not loaded: {e}")),
            None => {
                let known: Vec<&str> = self.conns.keys().map(String::as_str).collect();
                Err(if known.is_empty() {
                    format!("no connection `{name}`: the config has no [[connection]]")
                } else {
                    format!("no connection `{name}`; configured: {}", known.join(", "))
                })
            }
        }
    }

    pub(super) fn up(&mut self, name: &str, reply: mpsc::Sender<Result<String, String>>) {
        if let Err(e) = self.loaded(name) {
            let _ = reply.send(Err(e));
            return;
        }
        if let Some(id) = self
            .ike_sas_of(name)
            .into_iter()
            .find(|id| self.ike.is_established(*id))
        {
            let n = self
                .children
                .values()
                .filter(|c| c.ike_sa == id && !c.replaced)
                .count();
            let _ = reply.send(Ok(format!(
                "connection `{name}` is already up (IKE SA {id}, {n} CHILD_SA{})",
                if n == 1 { "" } else { "s" }
            )));
            return;
        }
        match self.ike.initiate(Instant::now(), name) {
            Ok(id) => {
                tracing::info!(connection = %name, "initiating IKE SA {id} (palisade up)");
                self.waiters.push(Waiter {
                    what: WaitFor::Up(id),
                    connection: name.to_string(),
                    deadline: Instant::now() + UP_TIMEOUT,
                    reply,
                });
                self.pump();
            }
            Err(e) => {
                let _ = reply.send(Err(format!("connection `{name}`: cannot initiate: {e}")));
            }
        }
    }

    pub(super) fn down(&mut self, name: &str, reply: mpsc::Sender<Result<String, String>>) {
        if let Err(e) = self.loaded(name) {
            let _ = reply.send(Err(e));
            return;
        }
        let ids = self.ike_sas_of(name);
        if ids.is_empty() {
            let _ = reply.send(Ok(format!(
                "connection `{name}` has no IKE SA; nothing to do"
            )));
            return;
        }
        for id in &ids {
            if let Err(e) = self.ike.delete_ike_sa(Instant::now(), *id) {
                tracing::debug!("delete of IKE SA {id}: {e}");
            }
        }
        self.waiters.push(Waiter {
            what: WaitFor::Down(ids),
            connection: name.to_string(),
            deadline: Instant::now() + DOWN_TIMEOUT,
            reply,
        });
        self.pump();
    }

    /// Every IKE SA of `name`, half-open ones included.
    pub(super) fn ike_sas_of(&self, name: &str) -> Vec<IkeSaId> {
        let mut ids: Vec<IkeSaId> = self
            .ike
            .ike_sas()
            .into_iter()
            .filter(|id| {
                self.ike
                    .ike_sa_info(*id)
                    .is_some_and(|i| i.connection == name)
            })
            .collect();
        ids.dedup();
        ids
    }

    pub(super) fn apply(
        &mut self,
        removed: Vec<String>,
        added: Vec<(String, Result<Loaded, String>)>,
    ) -> Result<(), String> {
        let now = Instant::now();
        for name in removed {
            self.remove_traps(&name);
            if let Some(ConnState::Loaded(_)) = self.conns.remove(&name) {
                if let Err(e) = self.ike.remove_connection(now, &name) {
                    tracing::warn!(connection = %name, "removing: {e}");
                }
                tracing::info!(connection = %name, "connection removed; its IKE SAs are being deleted");
            }
        }
        self.pump();
        let mut starts = Vec::new();
        for (name, c) in added {
            match c {
                Ok(l) => {
                    self.ike
                        .add_connection(l.engine.clone())
                        .map_err(|e| format!("connection `{name}`: {e}"))?;
                    if l.start_action == StartAction::Start {
                        starts.push(name.clone());
                    }
                    self.conns
                        .insert(name.clone(), ConnState::Loaded(Box::new(l)));
                    self.install_traps(&name, false);
                }
                Err(e) => {
                    tracing::error!(connection = %name, "not loaded: {e}");
                    self.conns.insert(name, ConnState::Refused(e));
                }
            }
        }
        for name in starts {
            if let Err(e) = self.ike.initiate(now, &name) {
                tracing::error!(connection = %name, "cannot initiate: {e}");
            }
        }
        self.pump();
        Ok(())
    }

    pub(super) fn expire_waiters(&mut self, now: Instant) {
        let (due, keep): (Vec<Waiter>, Vec<Waiter>) =
            self.waiters.drain(..).partition(|w| w.deadline <= now);
        self.waiters = keep;
        for w in due {
            let msg = match w.what {
                WaitFor::Up(id) => Err(format!(
                    "connection `{}`: no CHILD_SA after {} s (IKE SA {id} is still trying; see the log and `palisade status`)",
                    w.connection,
                    UP_TIMEOUT.as_secs()
                )),
                WaitFor::Down(_) => Ok(format!(
                    "connection `{}`: IKE SAs deleted (the peer did not confirm in {} s)",
                    w.connection,
                    DOWN_TIMEOUT.as_secs()
                )),
            };
            let _ = w.reply.send(msg);
        }
    }

    /// Answer the waiters `f` resolves.
    pub(super) fn resolve(
        &mut self,
        mut f: impl FnMut(&mut Waiter) -> Option<Result<String, String>>,
    ) {
        let mut keep = Vec::new();
        for mut w in std::mem::take(&mut self.waiters) {
            match f(&mut w) {
                Some(r) => {
                    let _ = w.reply.send(r);
                }
                None => keep.push(w),
            }
        }
        self.waiters = keep;
    }
}

//! The engine's events, and the data plane's trap and lifetime reports,
//! turned into changes of the data plane and answers to waiters.

use super::*;

impl State {
    pub(super) fn on_event(&mut self, ev: Event) {
        match ev {
            Event::IkeSaUp {
                ike_sa,
                connection,
                local,
                remote,
                remote_id,
                nat_detected,
                ..
            } => {
                tracing::info!(
                    connection = %connection,
                    "IKE SA {ike_sa} established between {local} and {remote}[{}]{}",
                    remote_id.as_ref().map_or("?".to_string(), |i| i.to_string()),
                    if nat_detected { ", NAT detected: ESP in UDP" } else { "" }
                );
            }
            Event::IkeSaDown {
                ike_sa,
                connection,
                reason,
            } => {
                let why = match &reason {
                    DownReason::DeletedLocally => "deleted".to_string(),
                    DownReason::DeletedByPeer => "deleted by the peer".to_string(),
                    DownReason::Timeout => "the peer stopped answering".to_string(),
                    DownReason::DeadPeer { action } => format!(
                        "dead peer detected{}",
                        match action {
                            palisade_ike::DpdAction::Clear => "",
                            palisade_ike::DpdAction::Restart => ", restarting",
                            palisade_ike::DpdAction::Trap => ", waiting for traffic to start again",
                        }
                    ),
                    DownReason::Replaced => "replaced by a new IKE SA from the peer".to_string(),
                    DownReason::Failed(s) => s.clone(),
                };
                tracing::info!(connection = %connection, "IKE SA {ike_sa} down: {why}");
                if reason
                    == (DownReason::DeadPeer {
                        action: palisade_ike::DpdAction::Trap,
                    })
                {
                    self.install_traps(&connection, true);
                }
                // The engine reports each CHILD_SA's deletion; anything it
                // did not (a failed IKE SA) goes now.
                let orphans: Vec<u32> = self
                    .children
                    .iter()
                    .filter(|(_, c)| c.ike_sa == ike_sa)
                    .map(|(s, _)| *s)
                    .collect();
                for spi in orphans {
                    self.remove_child(spi);
                }
                self.resolve(|w| match &mut w.what {
                    WaitFor::Up(id) if *id == ike_sa => Some(Err(format!(
                        "connection `{connection}`: IKE SA {ike_sa} failed: {why}"
                    ))),
                    WaitFor::Down(ids) => {
                        ids.retain(|i| *i != ike_sa);
                        ids.is_empty()
                            .then(|| Ok(format!("connection `{}` is down", w.connection)))
                    }
                    _ => None,
                });
            }
            Event::ChildSaInstalled(info) => {
                let (ike_sa, first, conn, child) = (
                    info.ike_sa,
                    info.rekeys.is_none(),
                    info.connection.clone(),
                    info.name.clone(),
                );
                let result = self.install_child(&info);
                let (spi_in, spi_out) = (info.inbound_spi, info.outbound_spi);
                drop(info);
                match &result {
                    Ok(()) => tracing::info!(
                        connection = %conn,
                        "CHILD_SA {child} installed, SPIs {spi_in:08x} (in) {spi_out:08x} (out)"
                    ),
                    Err(e) => tracing::error!(connection = %conn, "CHILD_SA {child}: {e}"),
                }
                if first {
                    self.resolve(|w| match w.what {
                        WaitFor::Up(id) if id == ike_sa => Some(match &result {
                            Ok(()) => Ok(format!(
                                "connection `{conn}` established: IKE SA {ike_sa}, CHILD_SA {child} with SPIs {spi_in:08x}/{spi_out:08x}"
                            )),
                            Err(e) => Err(format!(
                                "connection `{conn}`: CHILD_SA {child} negotiated but not installed: {e}"
                            )),
                        }),
                        _ => None,
                    });
                }
            }
            Event::ChildSaDeleted {
                name, inbound_spi, ..
            } => {
                tracing::info!("CHILD_SA {name} with SPIs {inbound_spi:08x} (in) deleted");
                // A rekeyed SA hands outbound traffic to its successor now and
                // keeps its inbound half a little longer.
                if let Some(c) = self.children.get_mut(&inbound_spi).filter(|c| c.replaced) {
                    let policies = std::mem::take(&mut c.installed.policies);
                    self.remove_policies(policies);
                    self.lingering
                        .push((Instant::now() + REKEYED_INBOUND_LINGER, inbound_spi));
                } else {
                    self.remove_child(inbound_spi);
                }
            }
            Event::IkeSaMoved {
                ike_sa,
                local,
                remote,
            } => {
                tracing::info!("IKE SA {ike_sa} moved to {local} <-> {remote} (the NAT rebound or the peer moved); its CHILD_SAs follow");
                let moved: Vec<(u32, Installed)> = self
                    .children
                    .iter_mut()
                    .filter(|(_, c)| c.ike_sa == ike_sa)
                    .map(|(spi, c)| {
                        c.local = local;
                        c.remote = remote;
                        (*spi, c.installed.clone())
                    })
                    .collect();
                for (spi, installed) in moved {
                    let r = self.dp.query(move |plane: &mut Plane| {
                        manual::move_endpoints(plane, &installed, local, remote)
                    });
                    let failed = match r {
                        Ok(Ok(())) => continue,
                        Ok(Err(e)) => e.to_string(),
                        Err(e) => e.to_string(),
                    };
                    tracing::warn!("CHILD_SA {spi:08x} could not follow its IKE SA: {failed}");
                }
            }
            Event::IkeSaRekeyed { old, new } => {
                tracing::info!("IKE SA {old} rekeyed, now {new}");
                for c in self.children.values_mut().filter(|c| c.ike_sa == old) {
                    c.ike_sa = new;
                }
                self.resolve(|w| match &mut w.what {
                    WaitFor::Up(id) if *id == old => {
                        *id = new;
                        None
                    }
                    WaitFor::Down(ids) => {
                        for i in ids.iter_mut().filter(|i| **i == old) {
                            *i = new;
                        }
                        None
                    }
                    _ => None,
                });
            }
            Event::ChildSaFailed {
                ike_sa,
                name,
                reason,
            } => {
                tracing::warn!("CHILD_SA {name} not established: {reason}");
                self.resolve(|w| match w.what {
                    WaitFor::Up(id) if id == ike_sa => Some(Err(format!(
                        "connection `{}`: IKE SA {ike_sa} is up but CHILD_SA {name} failed: {reason}",
                        w.connection
                    ))),
                    _ => None,
                });
            }
        }
    }

    /// An SA reached `rekey_bytes`/`rekey_packets` (soft: rekey) or
    /// `life_bytes`/`life_packets` (hard: delete).
    pub(super) fn on_lifetime(&mut self, hit: LifetimeHit) {
        let Some(spi) = self.sa_owner.get(&hit.sa).copied() else {
            return;
        };
        let Some(c) = self.children.get(&spi) else {
            return;
        };
        let (ike_sa, name, conn) = (c.ike_sa, c.child.clone(), c.connection.clone());
        tracing::info!(
            connection = %conn,
            "CHILD_SA {name} ({spi:08x}) reached its {} volume limit: {}",
            if hit.hard { "hard" } else { "soft" },
            if hit.hard { "deleting it" } else { "rekeying" }
        );
        if let Err(e) = self
            .ike
            .child_sa_expired(Instant::now(), ike_sa, spi, hit.hard)
        {
            tracing::debug!("lifetime report for {spi:08x}: {e}");
        }
        self.pump();
    }

    pub(super) fn on_acquire(&mut self, a: Acquire) {
        let Some((conn, child)) = self.traps.get(&a.policy).cloned() else {
            return;
        };
        let packet = palisade_ike::TriggerPacket {
            src: a.key.src,
            dst: a.key.dst,
            protocol: a.key.proto,
            src_port: a.key.sport.unwrap_or(0),
            dst_port: a.key.dport.unwrap_or(0),
        };
        match self
            .ike
            .acquire(Instant::now(), &conn, &child, Some(packet))
        {
            Ok(id) => {
                tracing::info!(connection = %conn, "trap hit by {} -> {}: negotiating child {child} (IKE SA {id})", a.key.src, a.key.dst)
            }
            Err(e) => tracing::warn!(connection = %conn, "trap for child {child}: {e}"),
        }
        self.pump();
    }
}

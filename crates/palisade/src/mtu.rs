//! The TUN's MTU while SAs come and go. Every installed SA pair, manual or
//! negotiated, may lower it: [`manual::tun_mtu`] (the configured `tun_mtu`,
//! lowered where a full packet sealed by that pair would not fit the route to
//! its peer) is asked once per pair when the pair is installed, and the TUN
//! gets the smallest answer. The link and the plane's
//! [`Plane::inner_mtu`](palisade_dataplane::plane::Plane::inner_mtu) change
//! only when that smallest value does, so a rekey (a new pair with the same
//! overhead replacing an old one) leaves the link alone.
//!
//! Shared by the manual side ([`crate::userspace`]) and the IKE thread
//! ([`crate::ike`]) as a [`SharedMtu`]; whoever changes the set of pairs calls
//! [`TunMtu::apply`] afterwards.

use palisade_dataplane::manual::{self, ManualSpec};
use palisade_dataplane::netcfg::NetConfig;
use palisade_dataplane::plane::Plane;
use palisade_dataplane::worker::Handle;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// The TUN MTU bookkeeping, shared between threads.
pub type SharedMtu = Arc<Mutex<TunMtu>>;

pub struct TunMtu {
    dev: String,
    /// `tun_mtu` from the config: the MTU with no SA that needs less.
    configured: u16,
    /// Per SA pair that needs less than `configured`: what it allows. Keyed
    /// by [`TunMtu::manual_key`] or [`TunMtu::child_key`].
    limits: BTreeMap<String, u16>,
    /// What the link and the plane were last given.
    current: u16,
    /// The worker whose plane learns the new MTU (`None` before it exists).
    dp: Option<Handle>,
}

impl TunMtu {
    /// Bookkeeping for TUN `dev` with `configured` as the largest MTU; the
    /// link is assumed to have `configured` until [`TunMtu::apply`] or
    /// [`TunMtu::set_current`] says otherwise.
    pub fn new(dev: &str, configured: u16) -> TunMtu {
        TunMtu {
            dev: dev.to_string(),
            configured,
            limits: BTreeMap::new(),
            current: configured,
            dp: None,
        }
    }

    pub fn manual_key(name: &str) -> String {
        format!("manual {name}")
    }

    /// Key of a negotiated CHILD_SA pair, by its name in the plane.
    pub fn child_key(plane_name: &str) -> String {
        format!("child {plane_name}")
    }

    /// The worker to tell about changes from now on.
    pub fn set_worker(&mut self, dp: Handle) {
        self.dp = Some(dp);
    }

    /// Record the MTU the pair described by `spec` allows (measured now,
    /// against the route to its peer), under `key`.
    pub fn add(&mut self, key: String, spec: &ManualSpec) {
        let fit = manual::tun_mtu(self.configured, std::slice::from_ref(spec));
        if fit < self.configured {
            self.limits.insert(key, fit);
        } else {
            self.limits.remove(&key);
        }
    }

    /// Forget the pair under `key` (removed from the plane).
    pub fn remove(&mut self, key: &str) {
        self.limits.remove(key);
    }

    /// The MTU the installed pairs allow.
    pub fn wanted(&self) -> u16 {
        self.limits
            .values()
            .copied()
            .min()
            .unwrap_or(self.configured)
            .min(self.configured)
    }

    /// What the link has (as far as palisade set it).
    pub fn current(&self) -> u16 {
        self.current
    }

    /// The link was given `mtu` by someone else (at start, with the link).
    pub fn set_current(&mut self, mtu: u16) {
        self.current = mtu;
    }

    /// Give the link and the plane [`TunMtu::wanted`] if it differs from what
    /// they have. A failure is logged and retried at the next change.
    pub fn apply(&mut self) {
        let want = self.wanted();
        if want == self.current {
            return;
        }
        if let Err(e) = NetConfig::new().link_mtu(&self.dev, u32::from(want)) {
            tracing::warn!("TUN `{}`: cannot change the MTU to {want}: {e}", self.dev);
            return;
        }
        tracing::info!(
            "TUN `{}` MTU {} -> {want} (the installed SAs' overhead towards their peers)",
            self.dev,
            self.current
        );
        self.current = want;
        if let Some(dp) = &self.dp {
            let _ = dp.query(move |plane: &mut Plane| plane.inner_mtu = want);
        }
    }
}

//! The daemon's IKE side: one thread that owns the palisade-ike [`Endpoint`],
//! the UDP 500 sockets and the sending half of the data plane's UDP 4500
//! sockets. It feeds the engine datagrams and time, turns the engine's events
//! into SAs, policies and routes in the data plane, and answers the control
//! socket's `up`, `down` and status questions.
//!
//! ```text
//!   UDP 500 ──────────────────────────────┐
//!   UDP 4500 ─> data-plane worker ─ IKE ─>├─> IKE thread ─ Endpoint
//!                      ^                  │        │
//!                      └── install SAs ───┴────────┘   (Handle::query)
//! ```
//!
//! IKE on port 4500 arrives on the worker's socket (ESP and IKE share it,
//! told apart by the non-ESP marker, RFC 3948 2.2); the worker hands those
//! datagrams over through [`IkeHandle::datagram_sink`]. The engine is
//! single-threaded and sans-IO, so everything that touches it runs on this
//! thread, as closures sent over a channel with an eventfd to wake `poll`.
//!
//! This file is the thread and its I/O; `control` answers the control socket
//! (`up`, `down`, reload), `events` acts on the engine's events and the data
//! plane's reports, `install` puts CHILD_SAs, traps and routes into the data
//! plane, `status` builds the status rows, `convert` reads the config.

mod control;
pub mod convert;
mod events;
mod install;
mod status;

use crate::config::StartAction;
use crate::control::protocol::{zero_drops, IkeSaStatus, Lifetime, PolicyStatus, SaStatus};
use convert::Loaded;
use palisade_dataplane::manual::{self, DirKeys, Installed, ManualSpec, Wire, BYPASS_MARK};
use palisade_dataplane::netcfg::NetConfig;
use palisade_dataplane::plane::{Acquire, LifetimeHit, Plane};
use palisade_dataplane::wake::{pollin as pollfd, Waker};
use palisade_dataplane::worker::{AcquireSink, Handle as DpHandle, IkeSink, LifetimeSink};
use palisade_ike::{
    AddressRange, ChildSaInfo, DownReason, Endpoint, Event, IkeSaId, Mode, SystemRng,
    TrafficSelector,
};
use palisade_sa::spd::{Action, Bundle, PolicyId, PolicySpec, Protect};
use std::collections::{BTreeMap, HashMap};
use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub const IKE_PORT: u16 = 500;
pub const NATT_PORT: u16 = 4500;
/// How long `palisade up` waits for the CHILD_SA.
pub const UP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long `palisade down` waits for the peer to confirm the Delete.
const DOWN_TIMEOUT: Duration = Duration::from_secs(5);
/// Outbound policies of negotiated CHILD_SAs rank after manual SAs' (which
/// use 100 + their position in the config), each newer one before the older
/// ones: the n-th CHILD_SA installed gets `CHILD_PRIORITY_BASE - n`, except
/// that a rekey the peer asked for ranks right after the SA it replaces (see
/// `install_child`).
const CHILD_PRIORITY_BASE: u32 = 3_000_000_000;
/// Trap policies rank after every CHILD_SA, so a trapped child's installed SA
/// takes the traffic and the trap only sees what no SA covers.
const TRAP_PRIORITY: u32 = 4_000_000_000;
/// How long the inbound SA of a rekeyed CHILD_SA outlives its Delete, for
/// packets the peer sealed with it before it switched (RFC 7296 2.8 leaves
/// the overlap to the implementation; without one a packet in flight is lost).
const REKEYED_INBOUND_LINGER: Duration = Duration::from_secs(2);
/// A traffic-selector range that would need more routes than this is routed
/// by its covering prefixes only up to this count (and logged).
const MAX_ROUTES_PER_TS: usize = 64;

/// The sockets the IKE thread sends and receives on.
pub struct IkeSockets {
    /// Bound to port 500 (IKE) on each local address (or a wildcard).
    pub ike: Vec<UdpSocket>,
    /// Clones of the data plane's port-4500 sockets, for sending only: what
    /// arrives on them is read by the worker.
    pub natt: Vec<UdpSocket>,
}

/// Open UDP 500 on `local` (a wildcard address for "any"), marked so that
/// transport-mode routing does not send IKE into the TUN.
pub fn open_ike_socket(local: SocketAddr) -> io::Result<UdpSocket> {
    let sock = manual::bind_udp(local)?;
    palisade_dataplane::sock::set_mark(sock.as_raw_fd(), BYPASS_MARK)?;
    Ok(sock)
}

enum Cmd {
    Acquire(Acquire),
    Lifetime(LifetimeHit),
    Datagram {
        local: SocketAddr,
        remote: SocketAddr,
        bytes: Vec<u8>,
    },
    Run(Box<dyn FnOnce(&mut State) + Send>),
    Stop,
}

/// Controls the IKE thread; cheap to clone.
#[derive(Clone)]
pub struct IkeHandle {
    tx: mpsc::Sender<Cmd>,
    wake: Waker,
}

/// A connection the daemon knows: loaded into the engine, or refused with
/// the reason.
#[derive(Debug, Clone)]
pub enum ConnState {
    Loaded(Box<Loaded>),
    Refused(String),
}

/// One installed CHILD_SA pair, as status shows it (no keys).
#[derive(Debug, Clone)]
struct ChildEntry {
    /// Its outbound policies' SPD priority.
    priority: u32,
    ike_sa: IkeSaId,
    connection: String,
    child: String,
    /// Name of its SAs in the plane ("conn/child[inbound SPI] in|out").
    plane_name: String,
    inbound_spi: u32,
    outbound_spi: u32,
    mode: Mode,
    local: SocketAddr,
    remote: SocketAddr,
    encap: bool,
    algorithms: String,
    esn: bool,
    replay_window: u32,
    installed: Installed,
    /// Route keys this pair holds a reference on.
    routes: Vec<String>,
    local_ts: Vec<String>,
    remote_ts: Vec<String>,
    /// Replaced by a rekey: its outbound policy is gone, its inbound SA stays
    /// until the engine deletes it.
    replaced: bool,
}

enum WaitFor {
    /// `up`: the first CHILD_SA of this IKE SA.
    Up(IkeSaId),
    /// `down`: these IKE SAs gone.
    Down(Vec<IkeSaId>),
}

struct Waiter {
    what: WaitFor,
    connection: String,
    deadline: Instant,
    reply: mpsc::Sender<Result<String, String>>,
}

/// Everything the IKE thread owns.
pub struct State {
    ike: Endpoint,
    dp: DpHandle,
    tun: String,
    /// The TUN MTU, which installed CHILD_SAs may lower (shared with the
    /// manual SAs' side).
    mtu: crate::mtu::SharedMtu,
    ike_socks: Vec<(SocketAddr, UdpSocket)>,
    natt_socks: Vec<(SocketAddr, UdpSocket)>,
    conns: BTreeMap<String, ConnState>,
    children: BTreeMap<u32, ChildEntry>,
    /// Route key -> (references, the change that made it).
    routes: HashMap<String, (usize, NetConfig)>,
    waiters: Vec<Waiter>,
    /// CHILD_SAs installed so far (their policies' priorities count down).
    installs: u32,
    /// Rekeyed CHILD_SAs (by inbound SPI) whose inbound SA goes at this time.
    lingering: Vec<(Instant, u32)>,
    /// The CHILD_SA (by inbound SPI) each installed SA belongs to, for the
    /// data plane's lifetime reports.
    sa_owner: HashMap<palisade_sa::sad::SaHandle, u32>,
    /// Trap policies: which (connection, child) each stands for.
    traps: HashMap<PolicyId, (String, String)>,
    /// Per trapped (connection, child): its policies and route keys.
    trap_entries: BTreeMap<(String, String), (Vec<PolicyId>, Vec<String>)>,
}

impl IkeHandle {
    fn send(&self, cmd: Cmd) -> Result<(), String> {
        self.tx
            .send(cmd)
            .map_err(|_| "the IKE thread has stopped".to_string())?;
        self.wake.wake();
        Ok(())
    }

    /// What the data-plane worker calls with IKE messages from port 4500.
    pub fn datagram_sink(&self) -> IkeSink {
        let h = self.clone();
        Box::new(move |local, remote, bytes| {
            let _ = h.send(Cmd::Datagram {
                local,
                remote,
                bytes: bytes.to_vec(),
            });
        })
    }

    /// What the data-plane worker calls when a packet hits a trap policy.
    pub fn acquire_sink(&self) -> AcquireSink {
        let h = self.clone();
        Box::new(move |a| {
            let _ = h.send(Cmd::Acquire(a));
        })
    }

    /// What the data-plane worker calls when an SA reaches a volume limit.
    pub fn lifetime_sink(&self) -> LifetimeSink {
        let h = self.clone();
        Box::new(move |hit| {
            let _ = h.send(Cmd::Lifetime(hit));
        })
    }

    /// Run `f` on the IKE thread's state and return its result.
    fn query<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut State) -> R + Send + 'static,
    ) -> Result<R, String> {
        let (rtx, rrx) = mpsc::channel();
        self.send(Cmd::Run(Box::new(move |st| {
            let _ = rtx.send(f(st));
        })))?;
        rrx.recv()
            .map_err(|_| "the IKE thread has stopped".to_string())
    }

    /// Run `start` on the IKE thread; it may register a waiter that answers
    /// later. Waits at most `limit` for that answer.
    fn wait(
        &self,
        limit: Duration,
        start: impl FnOnce(&mut State, mpsc::Sender<Result<String, String>>) + Send + 'static,
    ) -> Result<String, String> {
        let (rtx, rrx) = mpsc::channel();
        self.send(Cmd::Run(Box::new(move |st| start(st, rtx))))?;
        match rrx.recv_timeout(limit + Duration::from_secs(1)) {
            Ok(r) => r,
            Err(_) => Err("no answer from the IKE thread in time".into()),
        }
    }

    /// `palisade up NAME`: set up the connection's IKE SA and first CHILD_SA
    /// and wait until it is installed (or failed).
    pub fn up(&self, name: &str) -> Result<String, String> {
        let name = name.to_string();
        self.wait(UP_TIMEOUT, move |st, reply| st.up(&name, reply))
    }

    /// `palisade down NAME`: delete the connection's IKE SAs (and with them
    /// their CHILD_SAs), waiting briefly for the peer's confirmation.
    pub fn down(&self, name: &str) -> Result<String, String> {
        let name = name.to_string();
        self.wait(DOWN_TIMEOUT, move |st, reply| st.down(&name, reply))
    }

    /// Add, replace or remove connections on reload.
    pub fn apply(
        &self,
        removed: Vec<String>,
        added: Vec<(String, Result<Loaded, String>)>,
    ) -> Result<(), String> {
        self.query(move |st| st.apply(removed, added))?
    }

    pub fn ike_sas(&self) -> Vec<IkeSaStatus> {
        self.query(|st| st.ike_sa_rows()).unwrap_or_default()
    }

    /// Status rows of the negotiated SAs, with counters from the plane.
    pub fn sas(&self) -> Vec<SaStatus> {
        self.query(|st| st.sa_rows()).unwrap_or_default()
    }

    pub fn policies(&self) -> Vec<PolicyStatus> {
        self.query(|st| st.policy_rows()).unwrap_or_default()
    }

    /// The engine's message counters by name.
    pub fn stats(&self) -> BTreeMap<String, u64> {
        self.query(|st| {
            st.ike
                .stats()
                .named()
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect()
        })
        .unwrap_or_default()
    }

    /// Per connection: (state text, whether it is up).
    pub fn connection_states(&self) -> BTreeMap<String, String> {
        self.query(|st| st.connection_states()).unwrap_or_default()
    }
}

/// The running IKE thread.
pub struct IkeService {
    handle: IkeHandle,
    thread: Option<JoinHandle<()>>,
}

impl IkeService {
    /// Start the thread with `conns` (name -> loaded or refused), then start
    /// the connections whose `start_action` is `start`.
    pub fn start(
        retransmit: palisade_ike::Retransmit,
        conns: Vec<(String, Result<Loaded, String>)>,
        sockets: IkeSockets,
        dp: DpHandle,
        tun: String,
        mtu: crate::mtu::SharedMtu,
    ) -> io::Result<IkeService> {
        let wake = Waker::new()?;
        let (tx, rx) = mpsc::channel();
        let handle = IkeHandle {
            tx,
            wake: wake.clone(),
        };
        let with_addr = |socks: Vec<UdpSocket>| -> io::Result<Vec<(SocketAddr, UdpSocket)>> {
            socks
                .into_iter()
                .map(|s| {
                    s.set_nonblocking(true)?;
                    Ok((s.local_addr()?, s))
                })
                .collect()
        };
        let ike_socks = with_addr(sockets.ike)?;
        let natt_socks = with_addr(sockets.natt)?;
        let mut engine_config = palisade_ike::Config {
            retransmit,
            ..palisade_ike::Config::default()
        };
        let mut known = BTreeMap::new();
        for (name, c) in conns {
            match c {
                Ok(l) => {
                    engine_config.connections.push(l.engine.clone());
                    known.insert(name, ConnState::Loaded(Box::new(l)));
                }
                Err(e) => {
                    tracing::error!(connection = %name, "not loaded: {e}");
                    known.insert(name, ConnState::Refused(e));
                }
            }
        }
        let mut state = State {
            ike: Endpoint::new(engine_config, SystemRng),
            dp,
            tun,
            mtu,
            ike_socks,
            natt_socks,
            conns: known,
            children: BTreeMap::new(),
            routes: HashMap::new(),
            waiters: Vec::new(),
            lingering: Vec::new(),
            installs: 0,
            traps: HashMap::new(),
            trap_entries: BTreeMap::new(),
            sa_owner: HashMap::new(),
        };
        let thread = std::thread::Builder::new()
            .name("palisade-ike".into())
            .spawn(move || {
                state.start_connections();
                state.run(rx, wake)
            })?;
        Ok(IkeService {
            handle,
            thread: Some(thread),
        })
    }

    pub fn handle(&self) -> &IkeHandle {
        &self.handle
    }

    /// Delete every IKE SA (telling the peers, briefly), remove what was
    /// installed, and end the thread.
    pub fn stop(&mut self) {
        let _ = self.handle.send(Cmd::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for IkeService {
    fn drop(&mut self) {
        self.stop();
    }
}

impl State {
    fn run(&mut self, rx: mpsc::Receiver<Cmd>, wake: Waker) {
        let mut buf = vec![0u8; 65536];
        loop {
            let now = Instant::now();
            let mut fds: Vec<libc::pollfd> = Vec::with_capacity(1 + self.ike_socks.len());
            fds.push(pollfd(wake.fd()));
            fds.extend(self.ike_socks.iter().map(|(_, s)| pollfd(s.as_raw_fd())));
            let mut next = self.ike.poll_timeout();
            for t in self
                .waiters
                .iter()
                .map(|w| w.deadline)
                .chain(self.lingering.iter().map(|l| l.0))
            {
                next = Some(next.map_or(t, |n| n.min(t)));
            }
            let timeout_ms = match next {
                Some(t) => t.saturating_duration_since(now).as_millis().min(1000) as libc::c_int,
                None => 1000,
            };
            // SAFETY: fds is a live array of pollfd of the given length.
            let rc = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
            if rc < 0 && io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
                tracing::error!("IKE thread: poll failed: {}", io::Error::last_os_error());
                return;
            }
            if fds[0].revents != 0 {
                wake.clear();
            }
            loop {
                match rx.try_recv() {
                    Ok(Cmd::Datagram {
                        local,
                        remote,
                        bytes,
                    }) => self
                        .ike
                        .handle_datagram(Instant::now(), local, remote, &bytes),
                    Ok(Cmd::Run(f)) => f(self),
                    Ok(Cmd::Acquire(a)) => self.on_acquire(a),
                    Ok(Cmd::Lifetime(hit)) => self.on_lifetime(hit),
                    Ok(Cmd::Stop) | Err(mpsc::TryRecvError::Disconnected) => {
                        self.shutdown();
                        return;
                    }
                    Err(mpsc::TryRecvError::Empty) => break,
                }
                self.pump();
            }
            for i in 0..self.ike_socks.len() {
                if fds[1 + i].revents == 0 {
                    continue;
                }
                loop {
                    let (local, sock) = &self.ike_socks[i];
                    match sock.recv_from(&mut buf) {
                        Ok((n, remote)) => {
                            let local = *local;
                            self.ike
                                .handle_datagram(Instant::now(), local, remote, &buf[..n]);
                            self.pump();
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) => {
                            tracing::debug!("IKE socket receive failed: {e}");
                            break;
                        }
                    }
                }
            }
            let now = Instant::now();
            if self.ike.poll_timeout().is_some_and(|t| t <= now) {
                self.ike.handle_timeout(now);
            }
            self.pump();
            self.expire_waiters(now);
            let due: Vec<u32> = self
                .lingering
                .iter()
                .filter(|(t, _)| *t <= now)
                .map(|(_, spi)| *spi)
                .collect();
            if !due.is_empty() {
                self.lingering.retain(|(t, _)| *t > now);
                for spi in due {
                    self.remove_child(spi);
                }
            }
        }
    }

    /// Act on the engine's events, then send what it wants sent. In this
    /// order a responder's new inbound SA is in the data plane before the
    /// response that lets the peer use it leaves (otherwise the peer's first
    /// packets on a rekeyed SA can beat the install and be dropped).
    fn pump(&mut self) {
        loop {
            let mut idle = true;
            while let Some(ev) = self.ike.poll_event() {
                idle = false;
                self.on_event(ev);
            }
            while let Some(t) = self.ike.poll_transmit() {
                idle = false;
                self.transmit(&t.local, &t.remote, &t.bytes);
            }
            if idle {
                return;
            }
        }
    }

    fn transmit(&self, local: &SocketAddr, remote: &SocketAddr, bytes: &[u8]) {
        let pool = if local.port() == IKE_PORT {
            &self.ike_socks
        } else {
            &self.natt_socks
        };
        let pick = palisade_dataplane::sock::pick_bound(
            pool,
            |(a, _)| *a,
            Some(local.ip()),
            local.port(),
            *remote,
        );
        match pick {
            Some((_, s)) => {
                if let Err(e) = s.send_to(bytes, remote) {
                    tracing::debug!(%remote, "sending IKE failed: {e}");
                }
            }
            None => tracing::warn!(%local, %remote, "no socket to send IKE from"),
        }
    }
}

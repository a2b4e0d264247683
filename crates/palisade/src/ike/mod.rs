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

pub mod convert;

use crate::config::StartAction;
use crate::control::protocol::{zero_drops, IkeSaStatus, Lifetime, PolicyStatus, SaStatus};
use convert::Loaded;
use palisade_dataplane::manual::{self, DirKeys, Installed, ManualSpec, Wire, BYPASS_MARK};
use palisade_dataplane::netcfg::NetConfig;
use palisade_dataplane::plane::{Acquire, LifetimeHit, Plane};
use palisade_dataplane::worker::{AcquireSink, Handle as DpHandle, IkeSink, LifetimeSink};
use palisade_ike::{
    AddressRange, ChildSaInfo, DownReason, Endpoint, Event, IkeSaId, Mode, SystemRng,
    TrafficSelector,
};
use palisade_sa::spd::{Action, Bundle, PolicyId, PolicySpec, Protect};
use std::collections::{BTreeMap, HashMap};
use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub const IKE_PORT: u16 = 500;
pub const NATT_PORT: u16 = 4500;
/// How long `palisade up` waits for the CHILD_SA.
pub const UP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long `palisade down` waits for the peer to confirm the Delete.
const DOWN_TIMEOUT: Duration = Duration::from_secs(5);
/// Outbound policies of negotiated CHILD_SAs rank after manual SAs' (which
/// use 100 + their position in the config).
const CHILD_PRIORITY: u32 = 10_000;
/// Trap policies rank after the CHILD_SAs they stand in for, so a trapped
/// child's installed SA takes the traffic and the trap only sees what no SA
/// covers.
const TRAP_PRIORITY: u32 = 20_000;
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
    wake: RawFd,
    _wake_owner: Arc<OwnedFd>,
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
    ike_socks: Vec<(SocketAddr, UdpSocket)>,
    natt_socks: Vec<(SocketAddr, UdpSocket)>,
    conns: BTreeMap<String, ConnState>,
    children: BTreeMap<u32, ChildEntry>,
    /// Route key -> (references, the change that made it).
    routes: HashMap<String, (usize, NetConfig)>,
    waiters: Vec<Waiter>,
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
        let one: u64 = 1;
        // SAFETY: writing 8 bytes from a live u64 to an eventfd we keep open.
        unsafe { libc::write(self.wake, &one as *const u64 as *const libc::c_void, 8) };
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
    ) -> io::Result<IkeService> {
        // SAFETY: eventfd(2) with constant flags; checked below.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd is fresh and owned by nothing else.
        let wake = Arc::new(unsafe { OwnedFd::from_raw_fd(fd) });
        let (tx, rx) = mpsc::channel();
        let handle = IkeHandle {
            tx,
            wake: wake.as_raw_fd(),
            _wake_owner: wake.clone(),
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
            ike_socks,
            natt_socks,
            conns: known,
            children: BTreeMap::new(),
            routes: HashMap::new(),
            waiters: Vec::new(),
            lingering: Vec::new(),
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

fn pollfd(fd: RawFd) -> libc::pollfd {
    libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    }
}

impl State {
    fn run(&mut self, rx: mpsc::Receiver<Cmd>, wake: Arc<OwnedFd>) {
        let mut buf = vec![0u8; 65536];
        loop {
            let now = Instant::now();
            let mut fds: Vec<libc::pollfd> = Vec::with_capacity(1 + self.ike_socks.len());
            fds.push(pollfd(wake.as_raw_fd()));
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
                let mut counter = [0u8; 8];
                // SAFETY: reading 8 bytes into a live buffer from our eventfd.
                unsafe {
                    libc::read(
                        wake.as_raw_fd(),
                        counter.as_mut_ptr() as *mut libc::c_void,
                        8,
                    )
                };
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
        let pick = pool
            .iter()
            .find(|(a, _)| a == local)
            .or_else(|| {
                pool.iter().find(|(a, _)| {
                    a.port() == local.port()
                        && a.is_ipv6() == remote.is_ipv6()
                        && a.ip().is_unspecified()
                })
            })
            .or_else(|| {
                pool.iter()
                    .find(|(a, _)| a.port() == local.port() && a.is_ipv6() == remote.is_ipv6())
            });
        match pick {
            Some((_, s)) => {
                if let Err(e) = s.send_to(bytes, remote) {
                    tracing::debug!(%remote, "sending IKE failed: {e}");
                }
            }
            None => tracing::warn!(%local, %remote, "no socket to send IKE from"),
        }
    }

    fn start_connections(&mut self) {
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

    fn loaded(&self, name: &str) -> Result<&Loaded, String> {
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

    fn up(&mut self, name: &str, reply: mpsc::Sender<Result<String, String>>) {
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

    fn down(&mut self, name: &str, reply: mpsc::Sender<Result<String, String>>) {
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
    fn ike_sas_of(&self, name: &str) -> Vec<IkeSaId> {
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

    fn apply(
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

    fn expire_waiters(&mut self, now: Instant) {
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
    fn resolve(&mut self, mut f: impl FnMut(&mut Waiter) -> Option<Result<String, String>>) {
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

    fn on_event(&mut self, ev: Event) {
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
                    let _ = self.dp.query(move |plane: &mut Plane| {
                        for id in policies {
                            plane.spd.remove(id);
                        }
                    });
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

    fn replay_window(&self, conn: &str, child: &str) -> u32 {
        match self.conns.get(conn) {
            Some(ConnState::Loaded(l)) => l
                .engine
                .children
                .iter()
                .position(|c| c.name == child)
                .and_then(|i| l.replay_windows.get(i).copied())
                .unwrap_or(convert::DEFAULT_REPLAY_WINDOW),
            _ => convert::DEFAULT_REPLAY_WINDOW,
        }
    }

    /// The byte and packet limits of a child, as SA lifetimes (time limits
    /// are the engine's: it rekeys and deletes on its own timers).
    fn volume_limits(&self, conn: &str, child: &str) -> palisade_sa::lifetime::LifetimeConfig {
        use palisade_sa::lifetime::{LifetimeConfig, Limits};
        let Some(ConnState::Loaded(l)) = self.conns.get(conn) else {
            return LifetimeConfig::default();
        };
        let Some(c) = l.engine.children.iter().find(|c| c.name == child) else {
            return LifetimeConfig::default();
        };
        LifetimeConfig {
            soft: Limits {
                time: None,
                bytes: c.rekey_bytes,
                packets: c.rekey_packets,
            },
            hard: Limits {
                time: None,
                bytes: c.life_bytes,
                packets: c.life_packets,
            },
        }
    }

    fn install_child(&mut self, info: &ChildSaInfo) -> Result<(), String> {
        let plane_name = format!(
            "{}/{}[{:08x}]",
            info.connection, info.name, info.inbound_spi
        );
        let allow_insecure = match self.conns.get(&info.connection) {
            Some(ConnState::Loaded(l)) => l.allow_insecure,
            _ => false,
        };
        let keys = |enc: &palisade_crypto::Secret, auth: &palisade_crypto::Secret| DirKeys {
            enc: Some(enc.clone()),
            esp_auth: info.integ.map(|_| auth.clone()),
            ah_auth: None,
        };
        let remote_cidrs: Vec<(IpAddr, u8)> = info.remote_ts.iter().flat_map(ts_cidrs).collect();
        let local_cidrs: Vec<(IpAddr, u8)> = info.local_ts.iter().flat_map(ts_cidrs).collect();
        let spec = ManualSpec {
            name: plane_name.clone(),
            tunnel: info.mode == Mode::Tunnel,
            local: info.local.ip(),
            remote: info.remote.ip(),
            wire: if info.encap {
                Wire::EspUdp {
                    local_port: info.local.port(),
                    remote_port: info.remote.port(),
                }
            } else {
                Wire::Esp
            },
            spi_in: info.inbound_spi,
            spi_out: info.outbound_spi,
            ah_spi_in: 0,
            ah_spi_out: 0,
            encr: Some(info.encr),
            esp_integ: info.integ,
            ah_integ: None,
            keys_in: keys(&info.inbound_encr_key, &info.inbound_integ_key),
            keys_out: keys(&info.outbound_encr_key, &info.outbound_integ_key),
            local_ts: local_cidrs.clone(),
            remote_ts: remote_cidrs.clone(),
            esn: info.esn,
            replay_window: self.replay_window(&info.connection, &info.name),
            tfc_pad_to: 0,
            tfc_pad_to_mtu: false,
            allow_insecure,
            lifetime: self.volume_limits(&info.connection, &info.name),
        };
        let selectors = info.selectors();
        if selectors.is_empty() {
            return Err("the negotiated traffic selectors give no usable policy".into());
        }
        let for_plane = spec.clone();
        let installed = self
            .dp
            .query(move |plane: &mut Plane| {
                manual::install_with_selectors(plane, &for_plane, selectors, CHILD_PRIORITY)
            })
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        // A rekey: the old SA keeps outbound traffic until the engine deletes
        // it (its policy was inserted first, so it still wins). The rekey's
        // initiator deletes it at once; its responder only when the peer's
        // Delete arrives, which proves the peer has installed the new SA -
        // switching earlier would send packets the peer cannot open yet.
        if let Some(old) = info.rekeys {
            if let Some(o) = self.children.get_mut(&old) {
                o.replaced = true;
            }
        }
        let routes = self.add_routes(
            info.mode,
            &local_cidrs,
            &remote_cidrs,
            info.local.ip(),
            info.remote.ip(),
        );
        for h in &installed.sas {
            self.sa_owner.insert(*h, info.inbound_spi);
        }
        let show = |t: &TrafficSelector| palisade_ike::ts_display(std::slice::from_ref(t));
        self.children.insert(
            info.inbound_spi,
            ChildEntry {
                ike_sa: info.ike_sa,
                connection: info.connection.clone(),
                child: info.name.clone(),
                plane_name,
                inbound_spi: info.inbound_spi,
                outbound_spi: info.outbound_spi,
                mode: info.mode,
                local: info.local,
                remote: info.remote,
                encap: info.encap,
                algorithms: algorithms(info),
                esn: info.esn,
                replay_window: spec.replay_window,
                installed,
                routes,
                local_ts: info.local_ts.iter().map(show).collect(),
                remote_ts: info.remote_ts.iter().map(show).collect(),
                replaced: false,
            },
        );
        Ok(())
    }

    /// Routes into the TUN for a CHILD_SA or trap: the remote selectors
    /// (tunnel mode) or the peer itself through palisade's table (transport
    /// mode). Returns the route keys referenced.
    fn add_routes(
        &mut self,
        mode: Mode,
        local_cidrs: &[(IpAddr, u8)],
        remote_cidrs: &[(IpAddr, u8)],
        local: IpAddr,
        remote: IpAddr,
    ) -> Vec<String> {
        let mut routes = Vec::new();
        if mode == Mode::Tunnel {
            // A host selector on our side is the natural source for locally
            // originated traffic into the tunnel.
            let src = local_cidrs
                .iter()
                .find(|(a, l)| *l == if a.is_ipv4() { 32 } else { 128 })
                .map(|(a, _)| a.to_string());
            for (addr, len) in remote_cidrs {
                let key = format!("{addr}/{len}");
                let (tun, src) = (self.tun.clone(), src.clone());
                if self.route_ref(&key, |net| net.route_add(&key, &tun, None, src.as_deref())) {
                    routes.push(key);
                }
            }
        } else {
            let host = if remote.is_ipv4() { 32 } else { 128 };
            let cidr = format!("{remote}/{host}");
            let key = format!("transport {cidr}");
            let (tun, local) = (self.tun.clone(), local.to_string());
            if self.route_ref(&key, |net| {
                net.route_add(&cidr, &tun, Some(manual::TRANSPORT_TABLE), Some(&local))?;
                net.rule_add(&cidr, BYPASS_MARK, manual::TRANSPORT_TABLE, 1000)
            }) {
                routes.push(key);
            }
        }
        routes
    }

    /// Install trap policies (and their routes) for the children of `conn`
    /// that trap, or for all of them when `all` (DPD's `trap` action).
    fn install_traps(&mut self, conn: &str, all: bool) {
        let Some(ConnState::Loaded(l)) = self.conns.get(conn) else {
            return;
        };
        let l = l.clone();
        let (Some(local), Some(remote)) = (l.engine.local_addr, l.engine.remote_addr) else {
            if !l.trap_children.is_empty() || all {
                tracing::warn!(connection = %conn, "start_action/dpd_action = trap needs local_addrs and remote_addrs that name one address each; no trap installed");
            }
            return;
        };
        for ch in &l.engine.children {
            let key = (conn.to_string(), ch.name.clone());
            if !(all || l.trap_children.contains(&ch.name)) || self.trap_entries.contains_key(&key)
            {
                continue;
            }
            let selectors = palisade_ike::ts_selectors(&ch.local_ts, &ch.remote_ts);
            let mode = match ch.mode {
                Mode::Tunnel => palisade_sa::spd::Mode::Tunnel,
                Mode::Transport => palisade_sa::spd::Mode::Transport,
            };
            let ids = self
                .dp
                .query(move |plane: &mut Plane| {
                    selectors
                        .into_iter()
                        .map(|selector| {
                            plane.spd.insert(PolicySpec {
                                priority: TRAP_PRIORITY,
                                direction: palisade_sa::selector::Direction::Outbound,
                                selector,
                                action: Action::Protect(Protect {
                                    bundle: Bundle::Esp { sa: None },
                                    mode,
                                }),
                            })
                        })
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default();
            let local_cidrs: Vec<(IpAddr, u8)> = ch.local_ts.iter().flat_map(ts_cidrs).collect();
            let remote_cidrs: Vec<(IpAddr, u8)> = ch.remote_ts.iter().flat_map(ts_cidrs).collect();
            let routes = self.add_routes(
                ch.mode,
                &local_cidrs,
                &remote_cidrs,
                local.ip(),
                remote.ip(),
            );
            for id in &ids {
                self.traps.insert(*id, key.clone());
            }
            tracing::info!(connection = %conn, "trap installed for child {}: the first packet starts it", ch.name);
            self.trap_entries.insert(key, (ids, routes));
        }
    }

    fn remove_traps(&mut self, conn: &str) {
        let keys: Vec<(String, String)> = self
            .trap_entries
            .keys()
            .filter(|(c, _)| c == conn)
            .cloned()
            .collect();
        for key in keys {
            if let Some((ids, routes)) = self.trap_entries.remove(&key) {
                for id in &ids {
                    self.traps.remove(id);
                }
                let _ = self.dp.query(move |plane: &mut Plane| {
                    for id in ids {
                        plane.spd.remove(id);
                    }
                });
                for r in routes {
                    self.route_unref(&r);
                }
            }
        }
    }

    /// An SA reached `rekey_bytes`/`rekey_packets` (soft: rekey) or
    /// `life_bytes`/`life_packets` (hard: delete).
    fn on_lifetime(&mut self, hit: LifetimeHit) {
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

    fn on_acquire(&mut self, a: Acquire) {
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

    /// Take a reference on route `key`, making it with `make` if it is new.
    /// False if it could not be made (logged; the SA still works for traffic
    /// routed into the TUN some other way).
    fn route_ref(
        &mut self,
        key: &str,
        make: impl FnOnce(&mut NetConfig) -> Result<(), palisade_dataplane::netcfg::NetCfgError>,
    ) -> bool {
        if let Some((n, _)) = self.routes.get_mut(key) {
            *n += 1;
            return true;
        }
        let mut net = NetConfig::new();
        match make(&mut net) {
            Ok(()) => {
                self.routes.insert(key.to_string(), (1, net));
                true
            }
            Err(e) => {
                net.undo();
                tracing::warn!("route {key}: {e}");
                false
            }
        }
    }

    fn route_unref(&mut self, key: &str) {
        if let Some((n, _)) = self.routes.get_mut(key) {
            *n -= 1;
            if *n == 0 {
                if let Some((_, mut net)) = self.routes.remove(key) {
                    net.undo();
                }
            }
        }
    }

    fn remove_child(&mut self, inbound_spi: u32) {
        let Some(c) = self.children.remove(&inbound_spi) else {
            return;
        };
        for h in &c.installed.sas {
            self.sa_owner.remove(h);
        }
        let installed = c.installed.clone();
        let _ = self
            .dp
            .query(move |plane: &mut Plane| manual::uninstall(plane, &installed));
        for key in &c.routes {
            self.route_unref(key);
        }
    }

    fn shutdown(&mut self) {
        let now = Instant::now();
        for id in self.ike.ike_sas() {
            let _ = self.ike.delete_ike_sa(now, id);
        }
        // The Deletes go out once; there is no waiting for answers at exit.
        while let Some(t) = self.ike.poll_transmit() {
            self.transmit(&t.local, &t.remote, &t.bytes);
        }
        let spis: Vec<u32> = self.children.keys().copied().collect();
        for spi in spis {
            self.remove_child(spi);
        }
        let trapped: Vec<String> = self.trap_entries.keys().map(|(c, _)| c.clone()).collect();
        for c in trapped {
            self.remove_traps(&c);
        }
        for (_, (_, mut net)) in self.routes.drain() {
            net.undo();
        }
        for w in self.waiters.drain(..) {
            let _ = w.reply.send(Err("the daemon is stopping".into()));
        }
    }

    fn connection_states(&self) -> BTreeMap<String, String> {
        self.conns
            .iter()
            .map(|(name, c)| {
                let state = match c {
                    ConnState::Refused(e) => format!("not loaded: {e}"),
                    ConnState::Loaded(_) => {
                        let ids = self.ike_sas_of(name);
                        if ids.iter().any(|id| self.ike.is_established(*id)) {
                            "established".to_string()
                        } else if !ids.is_empty() {
                            "connecting".to_string()
                        } else {
                            "down".to_string()
                        }
                    }
                };
                (name.clone(), state)
            })
            .collect()
    }

    fn ike_sa_rows(&self) -> Vec<IkeSaStatus> {
        let now = Instant::now();
        self.ike
            .ike_sa_infos()
            .into_iter()
            .map(|i| {
                let children = self
                    .children
                    .values()
                    .filter(|c| c.ike_sa == i.id)
                    .map(|c| {
                        format!(
                            "{} {:08x}/{:08x}{}",
                            c.child,
                            c.inbound_spi,
                            c.outbound_spi,
                            if c.replaced { " (rekeyed)" } else { "" }
                        )
                    })
                    .collect();
                IkeSaStatus {
                    id: i.id.to_string(),
                    connection: i.connection,
                    state: i.state.to_string(),
                    initiator: i.initiator,
                    local: i.local.to_string(),
                    remote: i.remote.to_string(),
                    remote_id: i.remote_id.map(|r| r.to_string()),
                    nat: i.nat,
                    algorithms: i.transforms.as_ref().map(ike_algorithms),
                    established_s: i.established.map(|t| now.duration_since(t).as_secs()),
                    children,
                }
            })
            .collect()
    }

    fn sa_rows(&self) -> Vec<SaStatus> {
        type Counts = (u64, u64, BTreeMap<String, u64>);
        let names: Vec<String> = self
            .children
            .values()
            .map(|c| c.plane_name.clone())
            .collect();
        let counters: HashMap<String, Counts> = self
            .dp
            .query(move |plane: &mut Plane| {
                plane
                    .sad
                    .iter()
                    .filter(|(_, e)| {
                        e.name
                            .rsplit_once(' ')
                            .is_some_and(|(n, _)| names.iter().any(|x| x == n))
                    })
                    .map(|(_, e)| {
                        let c = e.sa.counters();
                        let inbound = e.name.ends_with(" in");
                        let (p, b) = if inbound {
                            (c.packets_in, c.bytes_in)
                        } else {
                            (c.packets_out, c.bytes_out)
                        };
                        let drops = c
                            .drops
                            .iter()
                            .map(|(r, n)| (r.name().to_string(), n))
                            .collect();
                        (e.name.clone(), (p, b, drops))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let mut rows = Vec::new();
        for c in self.children.values() {
            for (dir, spi, src, dst) in [
                ("in", c.inbound_spi, c.remote, c.local),
                ("out", c.outbound_spi, c.local, c.remote),
            ] {
                if dir == "out" && c.replaced {
                    continue;
                }
                let (packets, bytes, drops) = counters
                    .get(&format!("{} {dir}", c.plane_name))
                    .cloned()
                    .unwrap_or_else(|| (0, 0, zero_drops()));
                let mut all = zero_drops();
                all.extend(drops);
                rows.push(SaStatus {
                    name: format!("{}/{}", c.connection, c.child),
                    direction: dir.into(),
                    protocol: "esp".into(),
                    spi,
                    mode: match c.mode {
                        Mode::Tunnel => "tunnel".into(),
                        Mode::Transport => "transport".into(),
                    },
                    src: src.ip().to_string(),
                    dst: dst.ip().to_string(),
                    encapsulation: if c.encap {
                        format!("esp-udp({}->{})", src.port(), dst.port())
                    } else {
                        "esp".into()
                    },
                    algorithms: c.algorithms.clone(),
                    esn: c.esn,
                    replay_window: c.replay_window,
                    state: if c.replaced {
                        "rekeyed".into()
                    } else {
                        "installed".into()
                    },
                    packets,
                    bytes,
                    drops: all,
                    lifetime: Lifetime::default(),
                });
            }
        }
        rows
    }

    fn policy_rows(&self) -> Vec<PolicyStatus> {
        let mut rows = Vec::new();
        for c in self.children.values().filter(|c| !c.replaced) {
            let mode = match c.mode {
                Mode::Tunnel => "tunnel esp",
                Mode::Transport => "transport esp",
            };
            for (dir, spi) in [("out", c.outbound_spi), ("in", c.inbound_spi)] {
                rows.push(PolicyStatus {
                    name: format!("{}/{}", c.connection, c.child),
                    direction: dir.into(),
                    local_ts: c.local_ts.clone(),
                    remote_ts: c.remote_ts.clone(),
                    action: "protect".into(),
                    mode: mode.into(),
                    spis: vec![spi],
                });
            }
        }
        rows
    }
}

/// strongSwan-style names of a CHILD_SA's transforms, for status.
fn algorithms(info: &ChildSaInfo) -> String {
    let encr = palisade_crypto::registry::encr_info(info.encr.0, info.encr.1)
        .map(|e| e.name.to_string())
        .unwrap_or_else(|_| format!("ENCR {}", info.encr.0));
    match info.integ {
        None => encr,
        Some(i) => format!("{encr}/{}", integ_name(i)),
    }
}

fn integ_name(id: u16) -> String {
    palisade_crypto::registry::integ_name(id).map_or_else(|| format!("INTEG {id}"), str::to_string)
}

/// The IKE SA's transforms by IANA name.
fn ike_algorithms(t: &palisade_ike::IkeTransforms) -> String {
    use palisade_crypto::registry;
    let encr = registry::encr_info(t.encr.0, t.encr.1)
        .map(|e| e.name.to_string())
        .unwrap_or_else(|_| format!("ENCR {}", t.encr.0));
    let prf = registry::prf_name(t.prf).map_or_else(|| format!("PRF {}", t.prf), str::to_string);
    let ke = palisade_crypto::kex::group_name(t.ke)
        .map_or_else(|| format!("KE {}", t.ke), str::to_string);
    match t.integ {
        None => format!("{encr}/{prf}/{ke}"),
        Some(i) => format!("{encr}/{}/{prf}/{ke}", integ_name(i)),
    }
}

/// The prefixes that exactly cover a traffic selector's address range.
pub fn ts_cidrs(t: &TrafficSelector) -> Vec<(IpAddr, u8)> {
    let (start, end, bits, v6) = match t.addresses {
        AddressRange::V4 { start, end } => (
            u32::from(start) as u128,
            u32::from(end) as u128,
            32u32,
            false,
        ),
        AddressRange::V6 { start, end } => (u128::from(start), u128::from(end), 128u32, true),
    };
    let mut out = Vec::new();
    if start > end {
        return out;
    }
    // A block of 2^k addresses at `cur` fits if it ends at or before `end`.
    let fits = |cur: u128, k: u32| {
        if k == 128 {
            cur == 0 && end == u128::MAX
        } else {
            cur.checked_add((1u128 << k) - 1)
                .is_some_and(|last| last <= end)
        }
    };
    let mut cur = start;
    loop {
        let mut k = if cur == 0 {
            bits
        } else {
            cur.trailing_zeros().min(bits)
        };
        while k > 0 && !fits(cur, k) {
            k -= 1;
        }
        let addr = if v6 {
            IpAddr::V6(cur.into())
        } else {
            IpAddr::V4((cur as u32).into())
        };
        out.push((addr, (bits - k) as u8));
        if out.len() >= MAX_ROUTES_PER_TS {
            tracing::warn!(
                "a traffic selector needs more than {MAX_ROUTES_PER_TS} routes; only the first are installed"
            );
            break;
        }
        match (k < 128).then(|| cur.checked_add(1u128 << k)).flatten() {
            Some(next) if next <= end => cur = next,
            _ => break,
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(s: &str, e: &str) -> TrafficSelector {
        TrafficSelector {
            ip_protocol: 0,
            start_port: 0,
            end_port: 65535,
            addresses: AddressRange::V4 {
                start: s.parse().unwrap(),
                end: e.parse().unwrap(),
            },
        }
    }

    #[test]
    fn ranges_become_covering_prefixes() {
        let p = |v: Vec<(IpAddr, u8)>| {
            v.iter()
                .map(|(a, l)| format!("{a}/{l}"))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            p(ts_cidrs(&v4("10.1.0.0", "10.1.255.255"))),
            ["10.1.0.0/16"]
        );
        assert_eq!(p(ts_cidrs(&v4("10.0.0.1", "10.0.0.1"))), ["10.0.0.1/32"]);
        assert_eq!(
            p(ts_cidrs(&v4("0.0.0.0", "255.255.255.255"))),
            ["0.0.0.0/0"]
        );
        assert_eq!(
            p(ts_cidrs(&v4("10.0.0.1", "10.0.0.6"))),
            ["10.0.0.1/32", "10.0.0.2/31", "10.0.0.4/31", "10.0.0.6/32"]
        );
        assert!(ts_cidrs(&v4("10.0.0.9", "10.0.0.1")).is_empty());
        let all6 = TrafficSelector {
            ip_protocol: 0,
            start_port: 0,
            end_port: 65535,
            addresses: AddressRange::V6 {
                start: std::net::Ipv6Addr::UNSPECIFIED,
                end: u128::MAX.into(),
            },
        };
        assert_eq!(p(ts_cidrs(&all6)), ["::/0"]);
        let net6 = TrafficSelector {
            addresses: AddressRange::V6 {
                start: "fd00:200:1::".parse().unwrap(),
                end: "fd00:200:1:0:ffff:ffff:ffff:ffff".parse().unwrap(),
            },
            ..all6
        };
        assert_eq!(p(ts_cidrs(&net6)), ["fd00:200:1::/64"]);
    }
}

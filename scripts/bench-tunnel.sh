#!/usr/bin/env bash
# bench-tunnel.sh - iperf3 TCP throughput, in one run, through:
#   veth     plain veth between two namespaces (no tunnel)
#   relay    a TUN <-> UDP relay without crypto, same batching as palisade
#            (the user-space ceiling; `tunnel_bench relay`)
#   floor    the same relay sealing/opening every packet with AES-256-GCM and
#            nothing else (`tunnel_bench relay --seal`): the crypto floor, what
#            palisade GCM would reach if its own per-packet work cost nothing
#   gcm      palisade ESP tunnel, AES-256-GCM-16, ESP-in-UDP 4500
#   gcm6     the same tunnel, TCP over IPv6 inside (fd00:200:1::1 ->
#            fd00:200:2::1; not in the default cases)
#   cbc      palisade ESP tunnel, AES-256-CBC + HMAC-SHA-256-128, ESP-in-UDP 4500
#   sw-gcm   strongSwan 5.9.8 kernel-libipsec, IKEv2 PSK, ESP aes256gcm16
#   sw-cbc   strongSwan kernel-libipsec, IKEv2 PSK, ESP aes256-sha256
# and prints Gbit/s (median of RUNS) with the ratios palisade/relay and
# palisade/strongSwan. The runs go round-robin (one of each case per round,
# each tunnel set up afresh), so slow drift of a shared machine reaches every
# case alike; CPU per GB is printed for each run.
#
#   scripts/bench-tunnel.sh [RUNS] [SECONDS]        default 3 x 10 s
#   BENCH_CASES="relay gcm" scripts/bench-tunnel.sh 1 5
#   BENCH_RAW=1 ...     palisade over raw IP protocol 50 instead of UDP 4500
#   BENCH_PERF=1 ...    also record `perf record -g` of each tunnel side (the
#                       last round's run; $OUT/perf-LABEL-a|b.data)
#   BENCH_PERF=stat ... count each side's syscalls, context switches and CPU time
#                       instead (perf stat; $OUT/stat-LABEL-a|b.txt)
#   PALISADE_NO_OFFLOAD=1  TUN without IFF_VNET_HDR (no TSO split / GRO coalescing)
#   BENCH_BIN=path      use that tunnel_bench binary (e.g. an older build) as is
#   BENCH_NICE=-10 ...  run every process of the measurement (iperf3, tunnel
#                       processes, charons) at this nice level, so that other
#                       work on a shared machine disturbs the comparison less
#
# Topology (as shared/peers' "basic"): netns pbtA [pbtA0 192.0.2.1/24] <-veth->
# [pbtB0 192.0.2.2/24] pbtB, inner 10.200.1.1/32 and 10.200.2.1/32 on lo; the
# tunnels carry 10.200.1.0/24 <-> 10.200.2.0/24 through TUN devices of MTU 1400
# (as libipsec's). strongSwan runs in its own namespaces pbsA/pbsB (same
# addresses), made and driven by the repo's scripts/checks/strongswan/peer.sh
# (one charon per side, each with a private state dir and /run).
# Everything this script creates is removed on exit; nothing touches the host
# network. Needs root.
set -u -o pipefail

ROOT="$(cd "$(dirname "$(readlink -f "$0")")/.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target-bench}"
RUNS="${1:-3}"
SECS="${2:-10}"
CASES="${BENCH_CASES:-veth relay floor gcm cbc sw-gcm sw-cbc}"
V6=0
case " $CASES " in *" gcm6 "*) V6=1 ;; esac
NSA=pbtA
NSB=pbtB
OUT="${BENCH_OUT:-/tmp/palisade-bench-tunnel}"
BIN="${BENCH_BIN:-$CARGO_TARGET_DIR/release/examples/tunnel_bench}"
PIDS=()
SW_USED=0
NICE="${BENCH_NICE:-0}"

die() { echo "bench-tunnel: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "needs root (network namespaces, TUN devices)"

stop_pids() {
  local p
  for p in "${PIDS[@]}"; do
    kill -TERM "$p" 2>/dev/null
  done
  for p in "${PIDS[@]}"; do
    wait "$p" 2>/dev/null
  done
  PIDS=()
}

cleanup() {
  stop_pids
  ip netns del "$NSA" 2>/dev/null
  ip netns del "$NSB" 2>/dev/null
  if [ "$SW_USED" = 1 ]; then
    sw_down
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The strongSwan driver shared with the interop checks (ss_* functions), in
# namespaces of our own: SS_NS=pbs gives pbsA/pbsB with the bench's addresses.
# shellcheck source=checks/strongswan/peer.sh
. "$ROOT/scripts/checks/strongswan/peer.sh"
SS_NS=pbs

mkdir -p "$OUT"
rm -f "$OUT"/*.json "$OUT/results.tsv"

# --- what we need ------------------------------------------------------------
command -v iperf3 >/dev/null || apt-get install -y iperf3 >/dev/null || die "cannot install iperf3"
case " $CASES " in
  *" sw-"*)
    ss_install || die "strongSwan install failed"
    missing=$(ss_installed) || die "strongSwan is missing: $missing" ;;
esac
if [ -z "${BENCH_BIN:-}" ]; then
  echo "== building (release)"
  (cd "$ROOT" && cargo build --release -q -p palisade-dataplane --example tunnel_bench) || die "build failed"
else
  echo "== using $BIN (BENCH_BIN, not rebuilt)"
fi

# --- topology ----------------------------------------------------------------
net_up() {
  local ns
  for ns in "$NSA" "$NSB"; do
    ip netns del "$ns" 2>/dev/null
    ip netns add "$ns" || die "netns add $ns"
    ip -n "$ns" link set lo up
    if [ "$V6" = 1 ]; then
      ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=0 net.ipv6.conf.default.disable_ipv6=0
    else
      ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1
    fi
  done
  ip -n "$NSA" link add pbtA0 type veth peer name pbtB0 netns "$NSB" || die "veth"
  ip -n "$NSA" addr add 192.0.2.1/24 dev pbtA0
  ip -n "$NSB" addr add 192.0.2.2/24 dev pbtB0
  ip -n "$NSA" addr add 10.200.1.1/32 dev lo
  ip -n "$NSB" addr add 10.200.2.1/32 dev lo
  if [ "$V6" = 1 ]; then
    ip -n "$NSA" addr add fd00:200:1::1/128 dev lo nodad
    ip -n "$NSB" addr add fd00:200:2::1/128 dev lo nodad
  fi
  ip -n "$NSA" link set pbtA0 up
  ip -n "$NSB" link set pbtB0 up
  local i
  for i in $(seq 1 50); do
    ip netns exec "$NSA" ping -c1 -W1 192.0.2.2 >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  die "veth did not come up"
}

# spawn NS LOG CMD... : start in the background, remember the PID
spawn() {
  local ns=$1 log=$2
  shift 2
  ip netns exec "$ns" nice -n "$NICE" "$@" >"$log" 2>&1 </dev/null &
  PIDS+=("$!")
}

# wait_ping NS SRC DST : until one ping goes through (max 5 s)
wait_ping() {
  local i
  for i in $(seq 1 50); do
    ip netns exec "$1" ping -c1 -W1 -I "$2" "$3" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  return 1
}

# measure LABEL NS_CLIENT NS_SERVER DST SRC : one iperf3 run (number $ROUND)
measure() {
  local label=$1 nsc=$2 nss=$3 dst=$4 src=$5 i=$ROUND w
  spawn "$nss" "$OUT/iperf3-server-$label.log" iperf3 -s -p 5201
  local srv=${PIDS[-1]}
  for w in $(seq 1 50); do
    ip netns exec "$nss" ss -ltn 2>/dev/null | grep -q ':5201 ' && break
    sleep 0.1
  done
  local load; load=$(cut -d' ' -f1 /proc/loadavg)
  local jf="$OUT/iperf-$label-$i.json"
  # iperf3 3.12 can spin after a lost control exchange: bound it.
  timeout -k 5 $((SECS + 30)) ip netns exec "$nsc" nice -n "$NICE" iperf3 -c "$dst" -B "$src" -p 5201 -t "$SECS" -J >"$jf" 2>&1
  python3 - "$label" "$jf" "$load" >>"$OUT/results.tsv" <<'EOF'
import json, sys
label, jf, load = sys.argv[1:4]
try:
    e = json.load(open(jf))['end']
    if e['sum_received']['bytes'] == 0:
        raise ValueError("no data")
    print("%s\t%.3f\t%d\t%s" % (label, e['sum_received']['bits_per_second'] / 1e9,
                                e['sum_sent'].get('retransmits', -1), load))
except Exception as ex:
    print("%s\tNA\t-1\t%s" % (label, load))
EOF
  printf '   %-7s run %d: %s Gbit/s, retransmits %s, load %s\n' "$label" "$i" \
    "$(tail -1 "$OUT/results.tsv" | cut -f2)" "$(tail -1 "$OUT/results.tsv" | cut -f3)" "$load"
  sleep 1
  kill -TERM "$srv" 2>/dev/null
  wait "$srv" 2>/dev/null
  unset 'PIDS[-1]'
}

# ticks PID: "utime,stime" of the process, in clock ticks
ticks() {
  awk '{print $14","$15}' /proc/"$1"/stat
}

# machine_ticks: the "cpu" line of /proc/stat (user,nice,system,idle,iowait,
# irq,softirq,steal), in clock ticks summed over all CPUs
machine_ticks() {
  awk '$1 == "cpu" {print $2","$3","$4","$5","$6","$7","$8","$9; exit}' /proc/stat
}

# tunnel LABEL ARGS... [-- OPTS...] : run tunnel_bench ARGS a|b OPTS in the
# two namespaces
tunnel() {
  local label=$1 args=() opts=()
  shift
  while [ $# -gt 0 ] && [ "$1" != -- ]; do args+=("$1"); shift; done
  [ $# -gt 0 ] && shift && opts=("$@")
  [ "${BENCH_RAW:-0}" = 1 ] && [ "${args[0]}" = esp ] && opts+=(--raw)
  spawn "$NSA" "$OUT/$label-a.log" "$BIN" "${args[@]}" a "${opts[@]}"
  spawn "$NSB" "$OUT/$label-b.log" "$BIN" "${args[@]}" b "${opts[@]}"
  local pa=${PIDS[-2]} pb=${PIDS[-1]}
  local src=10.200.1.1 dst=10.200.2.1
  if [ "$label" = gcm6 ]; then src=fd00:200:1::1; dst=fd00:200:2::1; fi
  if ! wait_ping "$NSA" "$src" "$dst"; then
    echo "   $label: no ping through the tunnel; logs:" >&2
    cat "$OUT/$label-a.log" "$OUT/$label-b.log" >&2
    stop_pids
    return 1
  fi
  ip netns exec "$NSA" nstat -n >/dev/null 2>&1; ip netns exec "$NSB" nstat -n >/dev/null 2>&1
  local perfpids=()
  if [ "${BENCH_PERF:-0}" = 1 ] && command -v perf >/dev/null; then
    perf record -F 999 -g -p "$pa" -o "$OUT/perf-$label-a.data" >/dev/null 2>&1 &
    perfpids+=("$!")
    perf record -F 999 -g -p "$pb" -o "$OUT/perf-$label-b.data" >/dev/null 2>&1 &
    perfpids+=("$!")
  elif [ "${BENCH_PERF:-0}" = stat ] && command -v perf >/dev/null; then
    local ev=syscalls:sys_enter_read,syscalls:sys_enter_write,syscalls:sys_enter_sendmmsg,syscalls:sys_enter_recvmmsg,syscalls:sys_enter_poll,syscalls:sys_enter_ppoll,context-switches,cpu-migrations,task-clock
    perf stat -e "$ev" -p "$pa" -o "$OUT/stat-$label-a.txt" >/dev/null 2>&1 &
    perfpids+=("$!")
    perf stat -e "$ev" -p "$pb" -o "$OUT/stat-$label-b.txt" >/dev/null 2>&1 &
    perfpids+=("$!")
  fi
  local ta0 tb0 t0 t1 ta1 tb1 m0 m1
  ta0=$(ticks "$pa"); tb0=$(ticks "$pb"); m0=$(machine_ticks)
  t0=$(date +%s%N)
  measure "$label" "$NSA" "$NSB" "$dst" "$src"
  t1=$(date +%s%N)
  ta1=$(ticks "$pa"); tb1=$(ticks "$pb"); m1=$(machine_ticks)
  # CPU per byte is steadier than Gbit/s on a shared machine: it does not
  # depend on how much CPU the iperf3 ends and other work left over.
  python3 - "$label" "$OUT/iperf-$label-$ROUND.json" "$(getconf CLK_TCK)" "$t0" "$t1" "$ta0" "$ta1" "$tb0" "$tb1" "$m0" "$m1" <<'EOF2'
import json, sys
label, run = sys.argv[1], sys.argv[2]
hz, t0, t1 = map(float, sys.argv[3:6])
ta0, ta1, tb0, tb1 = ([float(x) for x in a.split(",")] for a in sys.argv[6:10])
m0, m1 = ([float(x) for x in a.split(",")] for a in sys.argv[10:12])
el = (t1 - t0) / 1e9
# user seconds and user + system seconds of each side
def used(before, after):
    user, system = ((a - b) / hz for a, b in zip(after, before))
    return user, user + system
(ua, sa), (ub, sb) = used(ta0, ta1), used(tb0, tb1)
# this run's bytes (the CPU ticks are this run's too)
try:
    moved = json.load(open(run))["end"]["sum_received"]["bytes"]
except Exception:
    moved = 0
line = "   %s: sender side %.0f%% CPU, receiver side %.0f%% CPU (of one core, incl. the idle gaps)" % (
    label, 100 * sa / el, 100 * sb / el)
if moved:
    g = 1e12 / moved
    line += "; per GB moved: sender %.0f ms (user %.0f), receiver %.0f ms (user %.0f) of CPU" % (
        sa * g, ua * g, sb * g, ub * g)
print(line)
# The whole machine over the run (/proc/stat, all CPUs): a tunnel that leaves
# CPUs idle is waiting, not working; steal is time the hypervisor took away.
d = [b - a for a, b in zip(m0, m1)]
tot = sum(d) or 1.0
print("   %s: machine %.0f%% idle, %.0f%% steal, %.0f%% softirq, %.0f%% system, %.0f%% user" % (
    label, 100 * (d[3] + d[4]) / tot, 100 * d[7] / tot, 100 * d[6] / tot,
    100 * d[2] / tot, 100 * (d[0] + d[1]) / tot))
EOF2
  local ns
  for ns in "$NSA" "$NSB"; do
    echo "   $ns drops: $(ip netns exec "$ns" nstat 2>/dev/null | awk '/RcvbufErrors|SndbufErrors|InErrors|TcpRetransSegs/ {printf "%s=%s ", $1, $2}')$(ip -n "$ns" -j -s link show pbt0 2>/dev/null | python3 -c 'import json,sys; s=json.load(sys.stdin)[0]["stats64"]; print("pbt0 tx_dropped=%d rx_dropped=%d" % (s["tx"]["dropped"], s["rx"]["dropped"]))' 2>/dev/null)"
  done
  local p
  for p in "${perfpids[@]}"; do kill -INT "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
  stop_pids
  cat "$OUT/$label-a.log" "$OUT/$label-b.log" | grep -v ready | sed 's/^/   /'
}

# sw_down: stop both charons and remove their namespaces
sw_down() {
  SS_DIR="$OUT/sw-b" ss_stop TERM
  SS_DIR="$OUT/sw-a" ss_stop TERM
  ss_net_down
}

# strongswan LABEL ESP-PROPOSAL: one charon per side, A initiates, then measure
strongswan() {
  local label=$1 esp=$2
  SW_USED=1
  sw_down
  ss_net basic >"$OUT/sw-net-$label.log" 2>&1 || { echo "   $label: namespaces failed (see $OUT)"; return 1; }
  mkdir -p "$OUT/sw-a" "$OUT/sw-b"
  SS_DIR="$OUT/sw-b" ss_start pbsB --role responder --local 192.0.2.2 --remote 192.0.2.1 \
    --local-ts 10.200.2.0/24 --remote-ts 10.200.1.0/24 --esp "$esp" \
    >"$OUT/sw-b.out" 2>&1 || { echo "   $label: charon B failed (see $OUT/sw-b)"; sw_down; return 1; }
  local pid_b=$SS_PID
  SS_DIR="$OUT/sw-a" ss_start pbsA --role initiator --local 192.0.2.1 --remote 192.0.2.2 \
    --local-ts 10.200.1.0/24 --remote-ts 10.200.2.0/24 --esp "$esp" \
    >"$OUT/sw-a.out" 2>&1 || { echo "   $label: charon A failed (see $OUT/sw-a)"; sw_down; return 1; }
  local pid_a=$SS_PID
  SS_DIR="$OUT/sw-a" ss_initiate >"$OUT/sw-init-$label.log" 2>&1 \
    || { echo "   $label: initiate failed (see $OUT/sw-init-$label.log)"; sw_down; return 1; }
  wait_ping pbsA 10.200.1.1 10.200.2.1 || echo "   $label: ping through the tunnel failed"
  local pid t
  for pid in $pid_a $pid_b; do
    for t in /proc/"$pid"/task/*; do renice -n "$NICE" -p "${t##*/}" >/dev/null 2>&1; done
  done
  measure "$label" pbsA pbsB 10.200.2.1 10.200.1.1
  sw_down
}

echo "== $(date -u +%FT%TZ), $RUNS x ${SECS}s per case, nice $NICE, load $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) CPUs"
echo "   commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null)$(git -C "$ROOT" diff --quiet -- crates/palisade-dataplane 2>/dev/null || echo '+dirty')"
net_up
# Round-robin: one run of every case per round, so that the machine's drift
# over the minutes of a bench (other guests, load) falls on every case alike
# and the ratios compare runs made close together.
for ROUND in $(seq 1 "$RUNS"); do
  for c in $CASES; do
    echo "== $c (round $ROUND of $RUNS)"
    case "$c" in
      veth) measure veth "$NSA" "$NSB" 192.0.2.2 192.0.2.1 ;;
      relay) tunnel relay relay ;;
      floor) tunnel floor relay -- --seal ;;
      gcm) tunnel gcm esp gcm ;;
      gcm6) tunnel gcm6 esp gcm ;;
      cbc) tunnel cbc esp cbc ;;
      sw-gcm) strongswan sw-gcm aes256gcm16 ;;
      sw-cbc) strongswan sw-cbc aes256-sha256 ;;
      *) echo "   unknown case $c" ;;
    esac
  done
done

python3 - "$OUT/results.tsv" <<'EOF'
import sys, statistics
rows = {}
for line in open(sys.argv[1]):
    f = line.rstrip("\n").split("\t")
    if len(f) < 4: continue
    rows.setdefault(f[0], []).append((f[1], int(f[2]), float(f[3])))
def med(label):
    v = [float(x[0]) for x in rows.get(label, []) if x[0] != "NA"]
    return statistics.median(v) if v else None
names = {"veth": "plain veth", "relay": "TUN relay, no crypto (ceiling)",
         "floor": "TUN relay + AES-256-GCM only (crypto floor)",
         "gcm": "palisade AES-256-GCM", "gcm6": "palisade AES-256-GCM, IPv6 inside",
         "cbc": "palisade AES-256-CBC+HMAC-SHA-256",
         "sw-gcm": "strongSwan libipsec AES-256-GCM", "sw-cbc": "strongSwan libipsec AES-256-CBC+SHA-256"}
print()
print("| path | Gbit/s median (min-max) | runs | TCP retransmits (median) | load avg at start |")
print("| --- | --- | --- | --- | --- |")
for k in ["veth", "relay", "floor", "gcm", "gcm6", "cbc", "sw-gcm", "sw-cbc"]:
    if k not in rows: continue
    v = [float(x[0]) for x in rows[k] if x[0] != "NA"]
    r = statistics.median([x[1] for x in rows[k]])
    l = " ".join("%.1f" % x[2] for x in rows[k])
    s = "%.3f (%.3f-%.3f)" % (statistics.median(v), min(v), max(v)) if v else "failed"
    print("| %s | %s | %d | %d | %s |" % (names[k], s, len(rows[k]), r, l))
print()
def ratio(a, b):
    x, y = med(a), med(b)
    return "%.2fx" % (x / y) if x and y else "n/a"
print("| ratio | AES-256-GCM | AES-256-CBC+HMAC-SHA-256 |")
print("| --- | --- | --- |")
print("| palisade / TUN relay | %s | %s |" % (ratio("gcm", "relay"), ratio("cbc", "relay")))
if "floor" in rows:
    print("| crypto floor / TUN relay | %s | |" % ratio("floor", "relay"))
    print("| palisade / crypto floor | %s | |" % ratio("gcm", "floor"))
print("| palisade / strongSwan libipsec | %s | %s |" % (ratio("gcm", "sw-gcm"), ratio("cbc", "sw-cbc")))
print("| palisade / plain veth | %s | %s |" % (ratio("gcm", "veth"), ratio("cbc", "veth")))
EOF
echo "(raw results: $OUT/results.tsv, iperf3 JSON: $OUT/iperf-*.json)"

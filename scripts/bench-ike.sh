#!/usr/bin/env bash
# Initiate -> CHILD_SA up: palisade and strongSwan 5.9 on the same topology in
# one run, and the ratio.
#
#   sudo ./scripts/bench-ike.sh [CYCLES]      (default 10)
#
# Two namespaces joined by a veth (scripts/checks/strongswan/peer.sh's
# "basic" topology, namespace prefix pib), IKEv2 with a PSK,
# aes256gcm16-prfsha256-x25519 / aes256gcm16, tunnel 10.200.1.0/24 <->
# 10.200.2.0/24. Per cycle, the initiator is told to connect, waits for the
# CHILD_SA, and the SAs are deleted again.
#
#   strongSwan: two charons (kernel-libipsec); `swanctl --initiate --child`.
#   palisade:   two `palisade daemon`s (release build); `palisade up`.
#
# Two numbers per implementation:
#   log   the initiator's own timestamps, from starting the IKE SA to the
#         CHILD_SA being installed (protocol + crypto + SA install);
#   wall  the whole command (client start-up, control socket, the above).
# Medians (min-max) are printed with the ratio strongSwan/palisade (> 1 means
# palisade is faster). The machine is shared: compare within one run only.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-10}
export SS_NS=pib
BASE=$(mktemp -d /tmp/palisade-bench-ike.XXXXXX)
export SS_DIR=$BASE/unused
. scripts/checks/strongswan/peer.sh
PSK=bench-ike-psk-0123456789abcdef

[ "$(id -u)" = 0 ] || { echo "needs root (network namespaces)"; exit 2; }
missing=$(ss_installed) || { echo "strongSwan missing: $missing (install: scripts/checks/strongswan/peer.sh install)"; exit 2; }

cargo build -q --release -p palisade
PAL=${CARGO_TARGET_DIR:-$PWD/target}/release/palisade

cleanup() {
    for s in a b; do
        [ -S "$BASE/$s.sock" ] && "$PAL" --socket "$BASE/$s.sock" stop >/dev/null 2>&1 || true
    done
    sleep 0.3
    SS_DIR=$BASE/alice ss_stop TERM
    SS_DIR=$BASE/bob ss_stop TERM
    ss_net_down
}
trap cleanup EXIT
ss_net basic >/dev/null 2>&1

ms() { # HH:MM:SS.mmm[uuu] -> milliseconds since midnight
    awk -F'[:.]' '{ printf "%.3f\n", ($1*3600 + $2*60 + $3) * 1000 + ("0." $4) * 1000 }' <<<"$1"
}
stats() { # numbers on stdin -> "median (min-max)"
    sort -n | awk '{ a[NR] = $1 } END {
        if (NR == 0) { print "n/a"; exit }
        m = (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2
        printf "%.1f (%.1f-%.1f)\n", m, a[1], a[NR] }'
}
median() { stats | awk '{ print $1 }'; }
durations() { # "start T" / "up T" lines on stdin -> milliseconds from each start to its up
    local kind t start=""
    while read -r kind t; do
        if [ "$kind" = start ]; then start=$(ms "$t"); elif [ -n "$start" ]; then
            echo "$(ms "$t") - $start" | bc; start=""; fi
    done
}

# --- strongSwan -----------------------------------------------------------
echo "strongSwan: two charons, $N cycles of swanctl --initiate / --terminate"
SS_DIR=$BASE/bob ss_start ${SS_NS}B --role responder --local 192.0.2.2 --remote %any \
    --local-id bob.bench --remote-id alice.bench --local-ts 10.200.2.0/24 --remote-ts 10.200.1.0/24 --psk "$PSK"
SS_DIR=$BASE/alice ss_start ${SS_NS}A --role initiator --local 192.0.2.1 --remote 192.0.2.2 \
    --local-id alice.bench --remote-id bob.bench --local-ts 10.200.1.0/24 --remote-ts 10.200.2.0/24 --psk "$PSK"
: >"$BASE/ss.wall"
for i in $(seq "$N"); do
    t0=$(date +%s%N)
    SS_DIR=$BASE/alice ss_initiate 10 >/dev/null || { echo "strongSwan initiate failed (cycle $i)"; tail -20 "$BASE/alice/charon.log"; exit 1; }
    t1=$(date +%s%N)
    echo "scale=3; ($t1 - $t0) / 1000000" | bc >>"$BASE/ss.wall"
    SS_DIR=$BASE/alice ss_terminate_ike 10 >/dev/null || true
    sleep 0.2
done
# charon: "HH:MM:SS.mmm 00[IKE] <pal|1> initiating IKE_SA pal[1] to ..." and
# "... CHILD_SA net{1} established with SPIs ...".
awk '/initiating IKE_SA pal\[/ { print "start", $1 } /CHILD_SA net\{[0-9]+\} established/ { print "up", $1 }' \
    "$BASE/alice/charon.log" >"$BASE/ss.events"
durations <"$BASE/ss.events" >"$BASE/ss.log"
SS_DIR=$BASE/alice ss_stop TERM
SS_DIR=$BASE/bob ss_stop TERM

# --- palisade -------------------------------------------------------------
echo "palisade: two daemons, $N cycles of palisade up / down"
conf() { # side local remote lid rid lts rts
    cat >"$BASE/$1.toml" <<EOF
[daemon]
control_socket = "$BASE/$1.sock"
tun_name = "pib$1"
log_level = "info"

[[connection]]
name = "bench"
local_addrs = ["$2"]
remote_addrs = ["$3"]
local_id = "$4"
remote_id = "$5"
auth = "psk"
psk = "$PSK"
ike_proposals = ["aes256gcm16-prfsha256-x25519"]

  [[connection.child]]
  name = "net"
  local_ts = ["$6"]
  remote_ts = ["$7"]
  esp_proposals = ["aes256gcm16"]
EOF
}
conf a 192.0.2.1 192.0.2.2 alice.bench bob.bench 10.200.1.0/24 10.200.2.0/24
conf b 192.0.2.2 192.0.2.1 bob.bench alice.bench 10.200.2.0/24 10.200.1.0/24
for s in a b; do
    ns=${SS_NS}$(tr a-b A-B <<<"$s")
    ip netns exec "$ns" "$PAL" daemon --config "$BASE/$s.toml" 2>"$BASE/$s.log" &
done
for _ in $(seq 100); do
    [ -S "$BASE/a.sock" ] && [ -S "$BASE/b.sock" ] && break
    sleep 0.05
done
: >"$BASE/pal.wall"
for i in $(seq "$N"); do
    t0=$(date +%s%N)
    "$PAL" --socket "$BASE/a.sock" up bench >/dev/null || { echo "palisade up failed (cycle $i)"; tail -20 "$BASE/a.log"; exit 1; }
    t1=$(date +%s%N)
    echo "scale=3; ($t1 - $t0) / 1000000" | bc >>"$BASE/pal.wall"
    "$PAL" --socket "$BASE/a.sock" down bench >/dev/null || true
    sleep 0.2
done
# palisade: RFC 3339 timestamps; "initiating IKE SA ... (palisade up)" and
# "CHILD_SA net installed" (after the data plane has it).
sed 's/\x1b\[[0-9;]*m//g' "$BASE/a.log" |
    awk '/initiating IKE SA .*palisade up/ { print "start", substr($1, 12, 15) }
         /palisade::ike[a-z_:]*: CHILD_SA net installed/ { print "up", substr($1, 12, 15) }' >"$BASE/pal.events"
durations <"$BASE/pal.events" >"$BASE/pal.log"

# --- result ---------------------------------------------------------------
echo
printf '%-12s %-28s %-28s\n' "" "log ms median (min-max)" "wall ms median (min-max)"
printf '%-12s %-28s %-28s\n' strongSwan "$(stats <"$BASE/ss.log")" "$(stats <"$BASE/ss.wall")"
printf '%-12s %-28s %-28s\n' palisade "$(stats <"$BASE/pal.log")" "$(stats <"$BASE/pal.wall")"
ratio() { echo "scale=2; $(median <"$1") / $(median <"$2")" | bc; }
echo
echo "strongSwan/palisade: log $(ratio "$BASE/ss.log" "$BASE/pal.log")x, wall $(ratio "$BASE/ss.wall" "$BASE/pal.wall")x  (> 1: palisade is faster)"
echo "(logs and configs in $BASE)"

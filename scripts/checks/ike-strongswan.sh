#!/usr/bin/env bash
# Interop of palisade's IKEv2 with strongSwan 5.9 (charon with kernel-libipsec),
# each in its own network namespace. The strongSwan side is
# scripts/checks/strongswan/peer.sh (self-contained: generated configs, one
# charon at a time). The palisade side is either the ike_interop example of
# crates/palisade-ike over real UDP sockets (start_palisade_side: sees every
# engine event and the keys' digests, takes delete/rekey commands) or
# `palisade daemon` with a generated [[connection]] (start_palisade_daemon:
# real ESP through its TUN and data plane).
#
# Cases (PSK, tunnel 10.200.1.0/24 <-> 10.200.2.0/24 unless noted), each
# printing what it checked and, on failure, the tail of both logs:
#   pi-*, si-*  for each of  aes256gcm16-prfsha256-x25519 / aes256gcm16,
#               aes256-sha256-modp2048 / aes256-sha256,
#               aes128gcm16-prfsha384-ecp384 / aes128gcm16,
#               chacha20poly1305-prfsha256-curve25519 / chacha20poly1305,
#               both directions (pi: palisade initiator -> strongSwan
#               responder, si: strongSwan initiator -> palisade responder):
#               IKE SA and CHILD_SA up on both sides, SPIs mirrored, the
#               CHILD_SA keys (encryption and integrity, both directions)
#               equal to the ones strongSwan logs (compared as SHA-256
#               prefixes). Then the CHILD_SA and the IKE SA are deleted, by
#               strongSwan when palisade initiated and by palisade when
#               strongSwan did, and the other side must drop them.
#   pi-v6 si-v6 the same with IPv6 outside (2001:db8:2::/64) and inside
#               (fd00:200:1::/64 <-> fd00:200:2::/64).
#   nat         palisade in A behind an nftables MASQUERADE router: IKE floats
#               to 4500, strongSwan sees palisade at the NAT's address and a
#               mapped port (20000-20999), palisade sees the NAT.
#   dpd         palisade with DPD 2 s: its probe is answered while strongSwan
#               lives; then strongSwan is SIGKILLed and palisade must declare
#               the peer dead within the DPD delay + its retransmits.
#   strongswan-rekeys  strongSwan rekeys the CHILD_SA (4 s) and the IKE SA
#               (7 s), DPD 2 s, against palisade as responder;
#   palisade-rekeys    palisade rekeys the CHILD_SA with PFS (3 s) and the
#               IKE SA (5 s): nothing goes down, SPIs still mirrored.
#   daemon-configs     the daemon configs generated here pass check-config.
#   daemon-rekey       strongSwan rekeys CHILD_SA (3 s) and IKE SA (5 s) while
#               40 pings cross the daemon: at most 1 lost, SPIs mirrored after.
#   daemon-dpd  the daemon (initiator, DPD 1 s, IKE retransmits 0.2/0.4/0.4 s)
#               stays established with pings and answered probes for 3 s;
#               strongSwan SIGKILLed: with dpd_action = "clear" the connection
#               is down without SAs within DPD + retransmits (limit 4.5 s
#               with slack; prints the time); with "restart" and keyingtries
#               = 0 the daemon keeps initiating and is back up by itself,
#               pings passing, once charon runs again.
#   daemon-collide  the daemon (initiator) and strongSwan both rekey the
#               CHILD_SA every 3 s and the IKE SA every 5 s without jitter, so
#               their rekeys collide (RFC 7296 2.8.1, 2.8.2; at least one
#               collision required; without one in 15 s, up to two more
#               rounds), while 75 pings run per 15 s: at most 1 lost each;
#               then one established IKE SA and one installed CHILD_SA
#               on each side, SPIs mirrored (SAs only lingering for their
#               Delete or inbound stragglers allowed). Prints the rekey and
#               collision counts of both logs.
#   daemon-lossy the daemon behind the NAT router, strongSwan rekeying the
#               CHILD_SA (3 s) and the IKE SA (5 s), while the router loses
#               and repeats 20 % of the IKE messages each way (nftables
#               numgen; ESP untouched) under 15 s of ping: both retransmit
#               and answer repeats from their caches; at most 1 ping lost,
#               then one IKE SA and one CHILD_SA each, SPIs mirrored.
#   daemon-pi daemon-si daemon-v6 daemon-si-v6 daemon-nat
#               `palisade daemon` against strongSwan (AES-256-GCM, CBC+HMAC,
#               over IPv6 ChaCha20-Poly1305 and AES-128-GCM/ECP-384, behind
#               the NAT): up by `palisade up` or by strongSwan, SPIs
#               mirrored, 3 pings each way between the inner addresses with
#               both sides counting the ESP, then `palisade down` or swanctl
#               --terminate removes the SAs on the other side. daemon-nat
#               also runs [daemon] nat_keepalive = "2s": tshark on the
#               router's outside interface sees 1-byte 0xFF keepalives to
#               UDP 4500 every ~2 s while idle (skipped without tshark
#               unless PALISADE_REQUIRE_TSHARK=1).
#
# Whole run: about 120 s here (24 cases, 2 vCPUs) once the binaries are built;
# daemon-collide (~17 s), daemon-lossy (~17 s) and daemon-dpd (~15 s) are the
# long ones.
#
# Environment:
#   PALISADE_REQUIRE_STRONGSWAN=1  fail (instead of skipping) when this cannot
#                                  run: not root, strongSwan missing, no netns.
#                                  scripts/test sets it.
#   PALISADE_REQUIRE_TSHARK=1      fail (instead of skipping that check) when
#                                  tshark is missing.
#   IKE_STRONGSWAN_CASES=REGEX     run only the cases whose name matches.
#   IKE_STRONGSWAN_KEEP=1          keep the logs ($LOG) after a passing run too.
#   IKE_STRONGSWAN_PCAP=1          capture A's outside interface per case
#                                  ($LOG/CASE.pcap, needs dumpcap; for debugging).
#   SS_NS                          namespace prefix (default pis: pisA pisB pisR).
set -uo pipefail
cd "$(dirname "$0")/../.."
. scripts/checks/strongswan/peer.sh

t_start=$(date +%s)
require=${PALISADE_REQUIRE_STRONGSWAN:-0}
only=${IKE_STRONGSWAN_CASES:-.}
PSK=palisade-interop-psk-0123456789

cannot_run() {
    if [ "$require" = 1 ]; then
        echo "FAIL: $1 (PALISADE_REQUIRE_STRONGSWAN=1; set it to 0 to allow skipping)"; exit 1
    fi
    echo "SKIP: $1"; exit 0
}
[ "$(id -u)" = 0 ] || cannot_run "needs root (network namespaces, charon's private /run)"
missing=$(ss_installed) || cannot_run "strongSwan incomplete, missing: $missing (install: scripts/checks/strongswan/peer.sh install)"

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
# Debug build: scripts/test has built these (and the dependencies) for the tests already.
cargo build -q -p palisade-ike --example ike_interop -p palisade --bin palisade ||
    { echo "FAIL: cargo build of the ike_interop example and the palisade binary"; exit 1; }
BIN="$CARGO_TARGET_DIR/debug/examples/ike_interop"
PALISADE_BIN="$CARGO_TARGET_DIR/debug/palisade"

LOG=$(mktemp -d /tmp/ike-strongswan.XXXXXX)
export SS_DIR="$LOG/strongswan"
mkdir -p "$SS_DIR"
A=${SS_NS}A B=${SS_NS}B
pass=0; fail=0; failed=""
PAL_PID=; PAL_CTL=; PAL_OUT=/dev/null; CASE=; PCAP_PID=

cleanup() {
    stop_palisade_side
    ss_down
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ------------------------------------------------------- palisade side --
# The ike_interop example as the palisade side. A case that needs traffic
# uses start_palisade_daemon (below) instead; to move another case to the
# daemon, its checks on $PAL_OUT (the example's event lines "CHILD_SA
# installed", "IKE_SA down: REASON", "ChildSaDeleted", "IkeSaRekeyed", "key
# digests:") become pald_query calls on `palisade status --json`, and
# palisade_side_cmd becomes `pald up|down strongswan`.
#
# start_palisade_side ROLE NS LOCAL REMOTE|- LOCAL_TS REMOTE_TS IKE ESP [example flags]
# Output goes to $PAL_OUT; commands (delete-child, delete-ike, quit) are
# written to its stdin by palisade_side_cmd.
start_palisade_side() {
    local role=$1 ns=$2 local=$3 remote=$4 lts=$5 rts=$6 ike=$7 esp=$8; shift 8
    local lid=alice.pal.test rid=bob.sw.test
    [ "$role" = responder ] && { lid=bob.pal.test; rid=alice.sw.test; }
    PAL_OUT="$LOG/$CASE.palisade.log"
    rm -f "$LOG/$CASE.ctl"; mkfifo "$LOG/$CASE.ctl"
    exec {PAL_CTL}<>"$LOG/$CASE.ctl"
    # shellcheck disable=SC2046
    ip netns exec "$ns" "$BIN" --role "$role" --local "$local" $([ "$remote" = - ] || echo --remote "$remote") \
        --local-id "$lid" --remote-id "$rid" --psk "$PSK" --local-ts "$lts" --remote-ts "$rts" \
        --ike "$ike" --esp "$esp" --key-digests --stay --timeout 40 \
        --retransmit 500 --retransmit-tries 3 "$@" <&"$PAL_CTL" >"$PAL_OUT" 2>&1 &
    PAL_PID=$!
    palisade_side_wait '^listening on' 5
}

palisade_side_cmd() { echo "$1" >&"$PAL_CTL"; }

# palisade_side_wait REGEX [SECS] [COUNT]: until COUNT lines of the output match.
palisade_side_wait() {
    local re=$1 secs=${2:-10} n=${3:-1} end
    end=$(( $(date +%s%N) + secs * 1000000000 ))
    while [ "$(date +%s%N)" -lt "$end" ]; do
        [ "$(grep -cE "$re" "$PAL_OUT")" -ge "$n" ] && return 0
        kill -0 "$PAL_PID" 2>/dev/null || break
        sleep 0.05
    done
    [ "$(grep -cE "$re" "$PAL_OUT")" -ge "$n" ] && return 0
    echo "  palisade: no '$re' (x$n) within ${secs}s$(kill -0 "$PAL_PID" 2>/dev/null || echo ', and it exited')"
    return 1
}

# palisade_side_exit [SECS]: wait for it to exit by itself; status 0 only if it exited 0.
palisade_side_exit() {
    local secs=${1:-10} i rc
    [ -n "$PAL_PID" ] || return 1
    for i in $(seq $((secs * 20))); do kill -0 "$PAL_PID" 2>/dev/null || break; sleep 0.05; done
    if kill -0 "$PAL_PID" 2>/dev/null; then
        echo "  palisade still running after ${secs}s"; stop_palisade_side; return 1
    fi
    wait "$PAL_PID"; rc=$?
    PAL_PID=
    [ "$rc" = 0 ] || echo "  palisade exited with $rc"
    return "$rc"
}

stop_palisade_side() {
    local i
    if [ -n "$PAL_PID" ] && kill -0 "$PAL_PID" 2>/dev/null; then
        kill "$PAL_PID"
        for i in $(seq 100); do kill -0 "$PAL_PID" 2>/dev/null || break; sleep 0.05; done
        kill -0 "$PAL_PID" 2>/dev/null && { echo "  palisade ignored SIGTERM for 5 s; SIGKILL"; kill -s KILL "$PAL_PID"; }
        wait "$PAL_PID" 2>/dev/null
    fi
    PAL_PID=
    if [ -n "$PAL_CTL" ]; then exec {PAL_CTL}>&-; PAL_CTL=; fi
}

# A config for `palisade daemon` with one [[connection]] "strongswan",
# equivalent to start_palisade_side's arguments (ROLE LOCAL REMOTE|- LOCAL_TS
# REMOTE_TS IKE ESP). The initiator is brought up with `palisade up`. A case
# adds keys (TOML lines) to [daemon], the [[connection]] and its child with
# PAL_DAEMON_EXTRA, PAL_CONN_EXTRA (default: DPD every 2 s) and PAL_CHILD_EXTRA.
palisade_daemon_toml() {
    local role=$1 local=$2 remote=$3 lts=$4 rts=$5 ike=$6 esp=$7
    local lid=alice.pal.test rid=bob.sw.test
    [ "$role" = responder ] && { lid=bob.pal.test; rid=alice.sw.test; }
    [ "$remote" = - ] && remote=%any
    local conn_extra=${PAL_CONN_EXTRA-'dpd_delay = "2s"'}
    cat <<TOML
[daemon]
control_socket = "$LOG/$CASE.palisade.sock"
tun_name = "${SS_NS}tun"
${PAL_DAEMON_EXTRA:-}

[[connection]]
name = "strongswan"
version = 2
local_addrs = ["$local"]
remote_addrs = ["$remote"]
local_id = "$lid"
remote_id = "$rid"
auth = "psk"
psk = "$PSK"
ike_proposals = ["$ike"]
start_action = "none"
$conn_extra

  [[connection.child]]
  name = "net"
  local_ts = ["$lts"]
  remote_ts = ["$rts"]
  esp_proposals = ["$esp"]
  mode = "tunnel"
${PAL_CHILD_EXTRA:-}
TOML
}

# ------------------------------------------------------------- checks --
# check_spis: palisade's newest CHILD_SA and strongSwan's list mirror each other.
check_spis() {
    local line in_spi out_spi
    line=$(grep '^CHILD_SA installed' "$PAL_OUT" | tail -1)
    [ -n "$line" ] || { echo "  no CHILD_SA in palisade's output"; return 1; }
    read -r in_spi out_spi < <(sed -E 's/.* in ([0-9a-f]{8}) out ([0-9a-f]{8}) .*/\1 \2/' <<<"$line")
    check_spi_pair "$in_spi" "$out_spi"
}

# check_spi_pair IN OUT: palisade's inbound/outbound SPIs (hex) are strongSwan's out/in.
check_spi_pair() {
    local in_spi=$1 out_spi=$2 sas
    sas=$(ss_list_sas 2>&1)
    grep -q ESTABLISHED <<<"$sas" || { echo "  strongSwan: IKE SA not ESTABLISHED"; echo "$sas"; return 1; }
    grep -q INSTALLED <<<"$sas" || { echo "  strongSwan: CHILD_SA not INSTALLED"; echo "$sas"; return 1; }
    # strongSwan lists "in  <its inbound SPI>," and "out <its outbound SPI>,".
    if grep -Eq "^ +in +${out_spi}," <<<"$sas" && grep -Eq "^ +out +${in_spi}," <<<"$sas"; then
        echo "  ok: IKE SA + CHILD_SA up on both sides, SPIs mirrored (palisade in $in_spi out $out_spi)"
    else
        echo "  SPI mismatch: palisade in $in_spi out $out_spi; strongSwan:"; echo "$sas"; return 1
    fi
}

# check_keys ROLE: the first CHILD_SA's keys (RFC 7296 2.17 KEYMAT) are the
# ones strongSwan logged at chd level 4, compared as SHA-256 prefixes.
check_keys() {
    python3 - "$SS_DIR/charon.log" "$1" "$(grep -m1 '^key digests:' "$PAL_OUT")" <<'PY'
import hashlib, re, sys
log, role, ours = sys.argv[1], sys.argv[2], sys.argv[3]
if not ours:
    print("  no key digests from palisade"); sys.exit(1)
lines = open(log, errors="replace").read().splitlines()
keys = {}
for i, l in enumerate(lines):
    m = re.search(r"(encryption|integrity) (initiator|responder) key => (\d+) bytes", l)
    if not m or (m.group(1), m.group(2)) in keys:  # the first CHILD_SA's keys only
        continue
    n, data = int(m.group(3)), bytearray()
    for l2 in lines[i + 1:]:
        h = re.search(r">\s+\d+: ((?:[0-9A-F]{2} ){1,16})", l2)
        if not h or len(data) >= n:
            break
        data += bytes.fromhex(h.group(1))
    keys[(m.group(1), m.group(2))] = hashlib.sha256(bytes(data[:n])).hexdigest()[:16]
empty = hashlib.sha256(b"").hexdigest()[:16]
f = dict(zip(ours.split()[3::2], ours.split()[4::2]))
me, peer = ("initiator", "responder") if role == "initiator" else ("responder", "initiator")
ok, checked = True, []
for kind, tag in (("encryption", "encr"), ("integrity", "integ")):
    for who, d in ((me, "out"), (peer, "in")):
        want = keys.get((kind, who), empty if kind == "integrity" else None)
        got = f.get(f"{d}-{tag}")
        if want is None or want != got:
            ok = False
            print(f"  KEY MISMATCH {kind} {who}: strongSwan {want} palisade {d} {got}")
        elif want != empty:
            checked.append(f"{kind} {who}")
if not any(k[0] == "encryption" for k in keys):
    print("  strongSwan logged no CHILD_SA keys (chd log level 4?)"); ok = False
if ok:
    print(f"  ok: keys equal to strongSwan's ({', '.join(checked)})")
sys.exit(0 if ok else 1)
PY
}

# ss_wait_sas REGEX SECS [absent]: until strongSwan's --list-sas (does not) match.
ss_wait_sas() {
    local re=$1 secs=$2 absent=${3:-} i
    for i in $(seq $((secs * 10))); do
        if ss_list_sas 2>/dev/null | grep -Eq "$re"; then [ -z "$absent" ] && return 0
        else [ -n "$absent" ] && return 0; fi
        sleep 0.1
    done
    echo "  strongSwan: --list-sas ${absent:+still }${absent:-never }matches '$re' after ${secs}s"
    ss_list_sas 2>&1 | sed 's/^/    /'
    return 1
}

# ----------------------------------------------------------- framework --
begin() {
    CASE=$1
    if ! [[ $CASE =~ $only ]]; then return 1; fi
    echo "== $CASE: $2"
    PAL_OUT=/dev/null
    if [ "${IKE_STRONGSWAN_PCAP:-0}" = 1 ]; then
        ip netns exec "$A" dumpcap -q -i "${SS_NS}A0" -w "$LOG/$CASE.pcap" >/dev/null 2>&1 &
        PCAP_PID=$!
        sleep 0.5
    fi
    return 0
}

end_case() {
    local rc=$1
    stop_palisade_side
    if [ -n "$PCAP_PID" ]; then kill "$PCAP_PID" 2>/dev/null; wait "$PCAP_PID" 2>/dev/null; PCAP_PID=; fi
    cp "$SS_DIR/charon.log" "$LOG/$CASE.charon.log" 2>/dev/null
    ss_stop TERM
    if [ "$rc" = 0 ]; then
        echo "RESULT $CASE: PASS"; pass=$((pass + 1))
    else
        echo "  -- palisade (tail, all in $PAL_OUT)"; tail -n 25 "$PAL_OUT" 2>/dev/null | cut -c1-240 | sed 's/^/  | /'
        echo "  -- strongSwan (tail, all in $LOG/$CASE.charon.log)"
        grep -Ev '> +[0-9]+: ([0-9A-F]{2} )' "$LOG/$CASE.charon.log" 2>/dev/null | tail -n 25 | sed 's/^/  | /'
        echo "RESULT $CASE: FAIL"; fail=$((fail + 1)); failed="$failed $CASE"
    fi
}

# Addresses of the basic topology by family.
addrs() {
    if [ "$1" = 6 ]; then
        IP_A=2001:db8:2::1 IP_B=2001:db8:2::2 TS_A=fd00:200:1::/64 TS_B=fd00:200:2::/64
    else
        IP_A=192.0.2.1 IP_B=192.0.2.2 TS_A=10.200.1.0/24 TS_B=10.200.2.0/24
    fi
}

# palisade initiates from A; strongSwan (responder in B) deletes CHILD_SA, then IKE SA.
case_palisade_initiates() {
    local fam=$1 ike=$2 esp=$3
    addrs "$fam"
    ss_start "$B" --role responder --local "$IP_B" --remote %any --local-id bob.sw.test \
        --remote-id alice.pal.test --local-ts "$TS_B" --remote-ts "$TS_A" --psk "$PSK" \
        --ike "$ike" --esp "$esp" --keylog || return 1
    start_palisade_side initiator "$A" "$IP_A" "$IP_B" "$TS_A" "$TS_B" "$ike" "$esp" || return 1
    palisade_side_wait '^CHILD_SA installed' 10 || return 1
    check_spis || return 1
    check_keys initiator || return 1
    ss_terminate_child >"$LOG/$CASE.terminate-child.out" 2>&1 || { echo "  swanctl --terminate --child failed"; return 1; }
    palisade_side_wait '^ChildSaDeleted' 5 || return 1
    grep -q '^IKE_SA down' "$PAL_OUT" && { echo "  the IKE SA went down with the CHILD_SA"; return 1; }
    echo "  ok: strongSwan deleted the CHILD_SA, palisade dropped it and kept the IKE SA"
    ss_terminate_ike >"$LOG/$CASE.terminate-ike.out" 2>&1 || { echo "  swanctl --terminate --ike failed"; return 1; }
    palisade_side_wait '^IKE_SA down: DeletedByPeer' 5 || return 1
    palisade_side_exit 5 || return 1
    echo "  ok: strongSwan deleted the IKE SA, palisade dropped it"
}

# strongSwan initiates from A; palisade (responder in B) deletes CHILD_SA, then IKE SA.
case_strongswan_initiates() {
    local fam=$1 ike=$2 esp=$3
    addrs "$fam"
    start_palisade_side responder "$B" "$IP_B" - "$TS_B" "$TS_A" "$ike" "$esp" || return 1
    ss_start "$A" --role initiator --local "$IP_A" --remote "$IP_B" --local-id alice.sw.test \
        --remote-id bob.pal.test --local-ts "$TS_A" --remote-ts "$TS_B" --psk "$PSK" \
        --ike "$ike" --esp "$esp" --keylog || return 1
    ss_initiate 15 >"$LOG/$CASE.initiate.out" 2>&1 || { echo "  swanctl --initiate failed:"; tail -n 5 "$LOG/$CASE.initiate.out"; return 1; }
    palisade_side_wait '^CHILD_SA installed' 5 || return 1
    check_spis || return 1
    check_keys responder || return 1
    palisade_side_cmd delete-child
    palisade_side_wait '^ChildSaDeleted' 5 || return 1
    ss_wait_sas INSTALLED 5 absent || return 1
    ss_wait_sas ESTABLISHED 1 || return 1
    echo "  ok: palisade deleted the CHILD_SA, strongSwan dropped it and kept the IKE SA"
    palisade_side_cmd delete-ike
    palisade_side_wait '^IKE_SA down: DeletedLocally' 5 || return 1
    palisade_side_exit 5 || return 1
    ss_wait_sas ESTABLISHED 5 absent || return 1
    echo "  ok: palisade deleted the IKE SA, strongSwan dropped it"
}

# palisade (behind the NAT, in A) initiates to strongSwan in B.
case_nat() {
    local ike=aes256gcm16-prfsha256-x25519 esp=aes256gcm16 sas port
    ss_start "$B" --role responder --local 203.0.113.2 --remote %any --local-id bob.sw.test \
        --remote-id alice.pal.test --local-ts 10.200.2.0/24 --remote-ts 10.200.1.0/24 --psk "$PSK" \
        --ike "$ike" --esp "$esp" --keylog || return 1
    start_palisade_side initiator "$A" 198.51.100.10 203.0.113.2 10.200.1.0/24 10.200.2.0/24 "$ike" "$esp" || return 1
    palisade_side_wait '^CHILD_SA installed' 10 || return 1
    check_spis || return 1
    check_keys initiator || return 1
    grep -Eq '^IKE_SA up: .* 198\.51\.100\.10:4500 <-> 203\.0\.113\.2:4500 .* nat true' "$PAL_OUT" || {
        echo "  palisade: IKE SA not floated to 4500 with NAT seen:"; grep '^IKE_SA up' "$PAL_OUT"; return 1; }
    grep -Eq '^CHILD_SA installed: .* encap true .* via 198\.51\.100\.10:4500 <-> 203\.0\.113\.2:4500' "$PAL_OUT" || {
        echo "  palisade: CHILD_SA not ESP-in-UDP on 4500"; return 1; }
    sas=$(ss_list_sas 2>&1)
    port=$(sed -nE "s/^ +remote +'alice.pal.test' @ 203\.0\.113\.1\[([0-9]+)\].*/\1/p" <<<"$sas")
    if [ -z "$port" ] || [ "$port" -lt 20000 ] || [ "$port" -gt 20999 ]; then
        echo "  strongSwan does not see palisade at the NAT's 203.0.113.1 with a mapped port:"; echo "$sas"; return 1
    fi
    grep -q 'remote host is behind NAT' "$SS_DIR/charon.log" || { echo "  strongSwan did not log 'remote host is behind NAT'"; return 1; }
    echo "  ok: floated to 4500, strongSwan sees palisade as 203.0.113.1[$port] behind NAT, palisade sees the NAT"
    ss_terminate_ike >"$LOG/$CASE.terminate-ike.out" 2>&1 || { echo "  swanctl --terminate --ike failed"; return 1; }
    palisade_side_wait '^IKE_SA down: DeletedByPeer' 5 || return 1
    palisade_side_exit 5 || return 1
    echo "  ok: strongSwan's delete reached palisade through the NAT"
}

# DPD: palisade (delay 2 s, retransmits after 0.5, 1, 2 s) against a strongSwan that is SIGKILLed.
case_dpd() {
    local ike=aes256gcm16-prfsha256-x25519 esp=aes256gcm16 t0 ms
    addrs 4
    ss_start "$B" --role responder --local "$IP_B" --remote %any --local-id bob.sw.test \
        --remote-id alice.pal.test --local-ts "$TS_B" --remote-ts "$TS_A" --psk "$PSK" \
        --ike "$ike" --esp "$esp" || return 1
    start_palisade_side initiator "$A" "$IP_A" "$IP_B" "$TS_A" "$TS_B" "$ike" "$esp" --dpd 2 || return 1
    palisade_side_wait '^CHILD_SA installed' 10 || return 1
    # A DPD probe is an empty INFORMATIONAL request; wait until strongSwan answered one.
    local i
    for i in $(seq 60); do grep -q 'parsed INFORMATIONAL request [0-9]* \[ \]' "$SS_DIR/charon.log" && break; sleep 0.1; done
    grep -q 'parsed INFORMATIONAL request [0-9]* \[ \]' "$SS_DIR/charon.log" || { echo "  no DPD probe reached strongSwan within 6 s"; return 1; }
    sleep 0.3
    grep -q '^IKE_SA down' "$PAL_OUT" && { echo "  palisade dropped a live peer"; return 1; }
    echo "  ok: palisade's DPD probe was answered and the IKE SA stayed up"
    t0=$(date +%s%N)
    ss_stop KILL
    palisade_side_wait '^IKE_SA down: DeadPeer' 10 || return 1
    ms=$(( ($(date +%s%N) - t0) / 1000000 ))
    palisade_side_exit 3 || return 1
    # Probe at most 2 s after the kill, given up 0.5 + 1 + 2 s later.
    if [ "$ms" -lt 3000 ] || [ "$ms" -gt 7000 ]; then
        echo "  DeadPeer ${ms} ms after the SIGKILL; expected 3500-5500 (+ 1.5 s slack)"; return 1
    fi
    echo "  ok: strongSwan SIGKILLed, palisade reported DeadPeer after ${ms} ms (DPD 2 s + retransmits 3.5 s)"
}

# $1 = at least this many CHILD_SAs; plus an IKE SA rekey; the IKE SA never went down.
check_rekeys() {
    local n
    n=$(grep -c '^CHILD_SA installed' "$PAL_OUT")
    if grep -q '^IKE_SA down' "$PAL_OUT"; then echo "  palisade: the IKE SA went down"; return 1; fi
    grep -q '^IkeSaRekeyed' "$PAL_OUT" || { echo "  no IKE SA rekey seen"; return 1; }
    [ "$n" -ge "$1" ] || { echo "  only $n CHILD_SAs installed"; return 1; }
    echo "  ok: $n CHILD_SAs installed, $(grep -c '^ChildSaDeleted' "$PAL_OUT") deleted, IKE SA rekeyed, never down"
}

case_strongswan_rekeys() {
    local ike=aes256gcm16-prfsha256-x25519 esp=aes256gcm16
    addrs 4
    start_palisade_side responder "$B" "$IP_B" - "$TS_B" "$TS_A" "$ike" "$esp" || return 1
    ss_start "$A" --role initiator --local "$IP_A" --remote "$IP_B" --local-id alice.sw.test \
        --remote-id bob.pal.test --local-ts "$TS_A" --remote-ts "$TS_B" --psk "$PSK" \
        --ike "$ike" --esp "$esp" --rekey 4 --ike-rekey 7 --dpd 2 || return 1
    ss_initiate 15 >"$LOG/$CASE.initiate.out" 2>&1 || { echo "  swanctl --initiate failed"; return 1; }
    palisade_side_wait '^IkeSaRekeyed' 15 || return 1
    palisade_side_wait '^CHILD_SA installed' 10 3 || return 1
    check_rekeys 3 || return 1
    check_spis || return 1
    grep -q "parsed INFORMATIONAL response [0-9]* \[ \]" "$SS_DIR/charon.log" && echo "  ok: palisade answered strongSwan's DPD"
    ss_wait_sas '^pal: #' 1 || return 1
    [ "$(ss_list_sas | grep -c '^pal: #')" = 1 ] || { echo "  strongSwan holds more than one IKE SA"; return 1; }
}

case_palisade_rekeys() {
    local ike=aes256gcm16-prfsha256-x25519 esp=aes256gcm16-x25519
    addrs 4
    ss_start "$B" --role responder --local "$IP_B" --remote %any --local-id bob.sw.test \
        --remote-id alice.pal.test --local-ts "$TS_B" --remote-ts "$TS_A" --psk "$PSK" \
        --ike "$ike" --esp "$esp" || return 1
    start_palisade_side initiator "$A" "$IP_A" "$IP_B" "$TS_A" "$TS_B" "$ike" "$esp" \
        --rekey 3 --ike-rekey 5 --dpd 2 || return 1
    palisade_side_wait '^IkeSaRekeyed' 12 || return 1
    palisade_side_wait '^CHILD_SA installed' 10 3 || return 1
    check_rekeys 3 || return 1
    grep -q '^CHILD_SA installed: .* pfs Some(31)' "$PAL_OUT" || { echo "  no CHILD_SA rekeyed with PFS (X25519)"; return 1; }
    echo "  ok: CHILD_SA rekeyed with PFS (X25519)"
    check_spis || return 1
    [ "$(ss_list_sas | grep -c '^pal: #')" = 1 ] || { echo "  strongSwan holds more than one IKE SA"; return 1; }
}

# --------------------------------------------------------- the daemon --
# `palisade daemon` as the palisade side, for real ESP through the tunnel.
# start_palisade_daemon ROLE NS LOCAL REMOTE|- LOCAL_TS REMOTE_TS IKE ESP
start_palisade_daemon() {
    local ns=$2 i
    PAL_OUT="$LOG/$CASE.daemon.log"
    palisade_daemon_toml "$1" "${@:3}" >"$LOG/$CASE.toml"
    RUST_LOG=info,palisade_ike=debug ip netns exec "$ns" "$PALISADE_BIN" daemon \
        --config "$LOG/$CASE.toml" >"$PAL_OUT" 2>&1 </dev/null &
    PAL_PID=$!
    for i in $(seq 200); do
        pald status >/dev/null 2>&1 && return 0
        kill -0 "$PAL_PID" 2>/dev/null || break
        sleep 0.05
    done
    echo "  palisade daemon did not start"; return 1
}

pald() { "$PALISADE_BIN" --socket "$LOG/$CASE.palisade.sock" "$@"; }

# pald_query PY: evaluate the Python expression PY over `status --json` (as s).
pald_query() {
    pald status --json 2>/dev/null | python3 -c "import json,sys; s=json.load(sys.stdin); print($1)" 2>/dev/null
}

# pald_wait_state STATE SECS: connection "strongswan" reaches STATE.
pald_wait_state() {
    local want=$1 secs=$2 i st=
    for i in $(seq $((secs * 10))); do
        st=$(pald_query "next((c['state'] for c in s['connections'] if c['name']=='strongswan'),'')")
        [ "$st" = "$want" ] && return 0
        sleep 0.1
    done
    echo "  palisade daemon: connection is '$st', wanted '$want' after ${secs}s"; return 1
}

# check_daemon_spis: the daemon's installed CHILD_SA mirrors strongSwan's.
check_daemon_spis() {
    local in_spi out_spi
    in_spi=$(pald_query "'%08x' % next(a['spi'] for a in s['sas'] if a['name']=='strongswan/net' and a['direction']=='in' and a['state']=='installed')")
    out_spi=$(pald_query "'%08x' % next(a['spi'] for a in s['sas'] if a['name']=='strongswan/net' and a['direction']=='out' and a['state']=='installed')")
    [ -n "$in_spi" ] && [ -n "$out_spi" ] || { echo "  palisade daemon lists no installed CHILD_SA"; pald sa list; return 1; }
    check_spi_pair "$in_spi" "$out_spi"
}

# ping_through SRC_A DST_B: 3 pings A -> B and 3 B -> A over the inner
# addresses; both sides must count them on the CHILD_SA.
ping_through() {
    local ia=$1 ib=$2 n_pal n_sw
    ip netns exec "$A" ping -q -c 3 -i 0.2 -W 2 -I "$ia" "$ib" >"$LOG/$CASE.ping" 2>&1 &&
        ip netns exec "$B" ping -q -c 3 -i 0.2 -W 2 -I "$ib" "$ia" >>"$LOG/$CASE.ping" 2>&1 || {
        echo "  ping through the tunnel failed:"; sed 's/^/    /' "$LOG/$CASE.ping"; return 1; }
    n_pal=$(pald_query "sum(a['packets'] for a in s['sas'] if a['name']=='strongswan/net' and a['direction']=='in')")
    n_sw=$(ss_list_sas | sed -nE 's/^ +in +[0-9a-f]+, +[0-9]+ bytes, +([0-9]+) packets.*/\1/p' | head -1)
    if [ "${n_pal:-0}" -lt 6 ] || [ "${n_sw:-0}" -lt 6 ]; then
        echo "  ESP packets received: palisade ${n_pal:-?}, strongSwan ${n_sw:-?}; expected 6 each"; return 1
    fi
    echo "  ok: ping $ia <-> $ib through the tunnel; ESP received: palisade $n_pal, strongSwan $n_sw packets"
}

# check_nat_keepalives: with the tunnel idle, the daemon behind the NAT
# ([daemon] nat_keepalive = "2s") sends RFC 3948 NAT-keepalives (one 0xFF
# byte to UDP 4500): tshark on the router's outside interface must see at
# least two in 5 s, from the NAT's address, about 2 s apart. Skipped without
# tshark unless PALISADE_REQUIRE_TSHARK=1.
check_nat_keepalives() {
    local pcap="$LOG/$CASE.keepalive.pcapng" lines
    if ! command -v tshark >/dev/null; then
        if [ "${PALISADE_REQUIRE_TSHARK:-0}" = 1 ]; then
            echo "  tshark missing (PALISADE_REQUIRE_TSHARK=1): cannot check the NAT-keepalives"; return 1
        fi
        echo "  skip: NAT-keepalive check (no tshark; scripts/test installs it)"; return 0
    fi
    ip netns exec "${SS_NS}R" timeout 20 tshark -q -i "${SS_NS}Rb" -f 'udp port 4500' -a duration:5 \
        -w "$pcap" >"$LOG/$CASE.tshark.out" 2>&1 || {
        echo "  tshark capture on ${SS_NS}Rb failed:"; sed 's/^/    /' "$LOG/$CASE.tshark.out"; return 1; }
    lines=$(tshark -r "$pcap" -Y udpencap.nat_keepalive -T fields -e frame.time_relative \
        -e ip.src -e udp.srcport -e ip.dst -e udp.dstport -e udp.length 2>/dev/null)
    python3 - "$lines" >"$LOG/$CASE.keepalive.out" <<'PY' || { cat "$LOG/$CASE.keepalive.out"; echo "  NAT-keepalives seen on ${SS_NS}Rb in 5 s idle (time src port dst port udp-length):"; sed 's/^/    /' <<<"$lines"; return 1; }
import sys
rows = [l.split("\t") for l in sys.argv[1].splitlines() if l.strip()]
ours = [r for r in rows if r[1] == "203.0.113.1" and r[3] == "203.0.113.2" and r[4] == "4500" and r[5] == "9"]
gaps = [float(b[0]) - float(a[0]) for a, b in zip(ours, ours[1:])]
ok = len(ours) >= 2 and all(1.5 <= g <= 3.0 for g in gaps)
if not ok:
    print(f"  expected 2 or more NAT-keepalives 203.0.113.1 -> 203.0.113.2:4500 about 2 s apart; got {len(ours)}, gaps {['%.2f' % g for g in gaps]}")
else:
    print(len(ours))
sys.exit(0 if ok else 1)
PY
    echo "  ok: $(cat "$LOG/$CASE.keepalive.out") NAT-keepalives (1 byte 0xFF, UDP 4500) from the NAT's 203.0.113.1 in 5 s idle, ~2 s apart"
}

# pald_up: `palisade up strongswan` on the case's daemon (20 s at most).
pald_up() {
    timeout 20 "$PALISADE_BIN" --socket "$LOG/$CASE.palisade.sock" up strongswan >"$LOG/$CASE.up" 2>&1 || {
        echo "  palisade up failed:"; sed 's/^/    /' "$LOG/$CASE.up"; return 1; }
}

# daemon_up DIR IKE ESP [STRONGSWAN-OPTION...]: start strongSwan (with the
# extra ss_start options) and the daemon, and bring the connection up. DIR pi:
# the daemon in A initiates with `palisade up`; si: strongSwan in A initiates
# with swanctl. Returns once the daemon reports the IKE SA established.
daemon_up() {
    local dir=$1 ike=$2 esp=$3
    shift 3
    if [ "$dir" = pi ]; then
        ss_start "$B" --role responder --local "$IP_B" --remote %any --local-id bob.sw.test \
            --remote-id alice.pal.test --local-ts "$TS_B" --remote-ts "$TS_A" --psk "$PSK" \
            --ike "$ike" --esp "$esp" "$@" || return 1
        start_palisade_daemon initiator "$A" "$IP_A" "$IP_B" "$TS_A" "$TS_B" "$ike" "$esp" || return 1
        pald_up || return 1
    else
        start_palisade_daemon responder "$B" "$IP_B" - "$TS_B" "$TS_A" "$ike" "$esp" || return 1
        ss_start "$A" --role initiator --local "$IP_A" --remote "$IP_B" --local-id alice.sw.test \
            --remote-id bob.pal.test --local-ts "$TS_A" --remote-ts "$TS_B" --psk "$PSK" \
            --ike "$ike" --esp "$esp" "$@" || return 1
        ss_initiate 15 >"$LOG/$CASE.initiate.out" 2>&1 || { echo "  swanctl --initiate failed"; return 1; }
    fi
    pald_wait_state established 5
}

# case_daemon DIR FAMILY|nat IKE ESP: DIR pi = the daemon (in A) initiates
# with `palisade up` and deletes with `palisade down`; si = strongSwan (in A)
# initiates and deletes with swanctl --terminate.
case_daemon() {
    local dir=$1 fam=$2 ike=$3 esp=$4 ia=10.200.1.1 ib=10.200.2.1
    local PAL_DAEMON_EXTRA=${PAL_DAEMON_EXTRA:-}
    if [ "$fam" = nat ]; then
        IP_A=198.51.100.10 IP_B=203.0.113.2 TS_A=10.200.1.0/24 TS_B=10.200.2.0/24
        PAL_DAEMON_EXTRA='nat_keepalive = "2s"'
    else
        addrs "$fam"
        [ "$fam" = 6 ] && { ia=fd00:200:1::1; ib=fd00:200:2::1; }
    fi
    daemon_up "$dir" "$ike" "$esp" || return 1
    check_daemon_spis || return 1
    ping_through "$ia" "$ib" || return 1
    if [ "$fam" = nat ]; then
        ss_list_sas | grep -Eq "remote +'alice.pal.test' @ 203\.0\.113\.1\[20[0-9]{3}\]" || {
            echo "  strongSwan does not see the daemon behind the NAT"; ss_list_sas; return 1; }
        echo "  ok: strongSwan sees the daemon at the NAT's 203.0.113.1, mapped port"
        check_nat_keepalives || return 1
    fi
    if [ "$dir" = pi ]; then
        pald down strongswan >"$LOG/$CASE.down" 2>&1 || { echo "  palisade down failed"; cat "$LOG/$CASE.down"; return 1; }
        ss_wait_sas ESTABLISHED 5 absent || return 1
        echo "  ok: palisade down deleted the SAs on strongSwan too"
    else
        ss_terminate_ike >"$LOG/$CASE.terminate-ike.out" 2>&1 || { echo "  swanctl --terminate failed"; return 1; }
        pald_wait_state down 5 || return 1
        [ "$(pald_query "len([a for a in s['sas'] if a['name']=='strongswan/net'])")" = 0 ] || {
            echo "  the daemon still lists CHILD_SAs"; pald sa list; return 1; }
        echo "  ok: strongSwan's delete removed the daemon's SAs"
    fi
}

# strongSwan rekeys the CHILD_SA (3 s) and the IKE SA (5 s) under a steady
# ping through the daemon: the data plane must move to the new SAs.
case_daemon_rekey() {
    local ike=aes256gcm16-prfsha256-x25519 esp=aes256gcm16 lost sent
    addrs 4
    start_palisade_daemon responder "$B" "$IP_B" - "$TS_B" "$TS_A" "$ike" "$esp" || return 1
    ss_start "$A" --role initiator --local "$IP_A" --remote "$IP_B" --local-id alice.sw.test \
        --remote-id bob.pal.test --local-ts "$TS_A" --remote-ts "$TS_B" --psk "$PSK" \
        --ike "$ike" --esp "$esp" --rekey 3 --ike-rekey 5 || return 1
    ss_initiate 15 >"$LOG/$CASE.initiate.out" 2>&1 || { echo "  swanctl --initiate failed"; return 1; }
    pald_wait_state established 5 || return 1
    ip netns exec "$A" ping -c 40 -i 0.2 -W 1 -I 10.200.1.1 10.200.2.1 >"$LOG/$CASE.ping" 2>&1
    read -r sent lost < <(sed -nE 's/^([0-9]+) packets transmitted, ([0-9]+) received.*/\1 \2/p' "$LOG/$CASE.ping")
    lost=$(( ${sent:-0} - ${lost:-0} ))
    local rekeys
    rekeys=$(grep -c 'CHILD_SA .* established' "$SS_DIR/charon.log")
    grep -q 'IKE_SA pal\[[0-9]*\] rekeyed' "$SS_DIR/charon.log" || { echo "  strongSwan did not rekey the IKE SA"; return 1; }
    [ "$rekeys" -ge 3 ] || { echo "  strongSwan established only $rekeys CHILD_SAs"; return 1; }
    if [ "${sent:-0}" -lt 40 ] || [ "$lost" -gt 1 ]; then
        echo "  $lost of ${sent:-0} pings lost across the rekeys"; tail -n 3 "$LOG/$CASE.ping"; return 1
    fi
    echo "  ok: $rekeys CHILD_SAs and an IKE SA rekey by strongSwan under ping; $lost of $sent lost"
    check_daemon_spis || return 1
}

# The daemon's IKE retransmission for the DPD case: resends after 0.2 and
# 0.6 s, given up 1 s after the first send.
PAL_FAST_RETRANSMIT='retransmit_timeout = "200ms"
retransmit_limit = "400ms"
retransmit_tries = 3'

# pald_conn_gone: connection "strongswan" is down and the daemon holds no SAs
# (IKE, CHILD) for it.
pald_conn_gone() {
    [ "$(pald_query "(next((c['state'] for c in s['connections'] if c['name']=='strongswan'),''), len([a for a in s['sas'] if a['name'].startswith('strongswan/')]), len([i for i in s.get('ike_sas', []) if i['connection']=='strongswan']))")" = "('down', 0, 0)" ]
}

# strongSwan's count of answered DPD probes (empty INFORMATIONAL requests).
ss_dpd_answered() { grep -c 'parsed INFORMATIONAL request [0-9]* \[ \]' "$SS_DIR/charon.log"; }

# The daemon (initiator in A, DPD 1 s, fast retransmits) against a strongSwan
# responder in B that is SIGKILLed: with dpd_action = "clear" the connection
# must stay up while strongSwan lives and be down without SAs within the DPD
# delay + the retransmits; with "restart" (and keyingtries = 0) the daemon
# keeps initiating and is back up by itself once a new charon runs.
case_daemon_dpd() {
    local ike=aes256gcm16-prfsha256-x25519 esp=aes256gcm16 ia=10.200.1.1 ib=10.200.2.1
    local ike_id probes t0 ms i n0 n1 state
    local PAL_DAEMON_EXTRA=$PAL_FAST_RETRANSMIT
    local PAL_CONN_EXTRA='dpd_delay = "1s"
dpd_action = "clear"'
    addrs 4
    ss_responder() {
        ss_start "$B" --role responder --local "$IP_B" --remote %any --local-id bob.sw.test \
            --remote-id alice.pal.test --local-ts "$TS_B" --remote-ts "$TS_A" --psk "$PSK" \
            --ike "$ike" --esp "$esp"
    }
    # -- dpd_action = "clear"
    ss_responder || return 1
    start_palisade_daemon initiator "$A" "$IP_A" "$IP_B" "$TS_A" "$TS_B" "$ike" "$esp" || return 1
    pald_up || return 1
    pald_wait_state established 5 || return 1
    check_daemon_spis || return 1
    ping_through "$ia" "$ib" || return 1
    ike_id=$(pald_query "s['ike_sas'][0]['id']")
    probes=$(ss_dpd_answered)
    sleep 3
    probes=$(( $(ss_dpd_answered) - probes ))
    [ "$probes" -ge 2 ] || { echo "  strongSwan answered $probes DPD probes in 3 s idle (DPD 1 s); expected 2 or more"; return 1; }
    [ "$(pald_query "(next(c['state'] for c in s['connections'] if c['name']=='strongswan'), [i['id'] for i in s['ike_sas']])")" = "('established', ['$ike_id'])" ] || {
        echo "  the connection did not stay established on IKE SA $ike_id with a live peer:"; pald status; return 1; }
    grep -q 'dead peer' "$PAL_OUT" && { echo "  palisade declared a live peer dead"; return 1; }
    ping_through "$ia" "$ib" || return 1
    echo "  ok: $probes DPD probes answered by strongSwan in 3 s idle, still established on IKE SA $ike_id"
    t0=$(date +%s%N)
    ss_stop KILL
    for i in $(seq 100); do pald_conn_gone && break; sleep 0.1; done
    ms=$(( ($(date +%s%N) - t0) / 1000000 ))
    pald_conn_gone || { echo "  10 s after the SIGKILL the daemon still shows the connection or SAs:"; pald status; return 1; }
    grep -Eq 'IKE SA [0-9a-f]+ down: dead peer detected( |$)' "$PAL_OUT" || { echo "  no 'dead peer detected' in the daemon's log"; return 1; }
    # DPD probe at most 1 s after the kill, given up 1 s after it; 2.5 s slack for a loaded machine.
    if [ "$ms" -gt 4500 ]; then
        echo "  connection down ${ms} ms after the SIGKILL; expected at most 2000 (DPD 1 s + retransmits 1 s) + 2500 slack"; return 1
    fi
    echo "  ok: strongSwan SIGKILLed; connection down, no SAs after ${ms} ms (DPD 1 s + retransmits 0.2/0.4/0.4 s)"
    stop_palisade_side
    mv "$PAL_OUT" "$LOG/$CASE.daemon-clear.log"
    cp "$SS_DIR/charon.log" "$LOG/$CASE.charon-clear.log"
    # -- dpd_action = "restart", keep trying
    PAL_CONN_EXTRA='dpd_delay = "1s"
dpd_action = "restart"
keyingtries = 0'
    ss_responder || return 1
    start_palisade_daemon initiator "$A" "$IP_A" "$IP_B" "$TS_A" "$TS_B" "$ike" "$esp" || return 1
    pald_up || return 1
    pald_wait_state established 5 || return 1
    ike_id=$(pald_query "s['ike_sas'][0]['id']")
    n0=$(grep -c 'initiating IKE SA' "$PAL_OUT")
    t0=$(date +%s%N)
    ss_stop KILL
    cp "$SS_DIR/charon.log" "$LOG/$CASE.charon-restart1.log"
    for i in $(seq 100); do grep -q 'down: dead peer detected, restarting' "$PAL_OUT" && break; sleep 0.1; done
    grep -q 'down: dead peer detected, restarting' "$PAL_OUT" || { echo "  no 'dead peer detected, restarting' 10 s after the SIGKILL"; return 1; }
    ms=$(( ($(date +%s%N) - t0) / 1000000 ))
    # Two more attempts: the restart and a keying retry after it timed out.
    for i in $(seq 50); do [ "$(grep -c 'initiating IKE SA' "$PAL_OUT")" -ge $((n0 + 2)) ] && break; sleep 0.1; done
    n1=$(grep -c 'initiating IKE SA' "$PAL_OUT")
    [ "$n1" -ge $((n0 + 2)) ] || { echo "  the daemon initiated $((n1 - n0)) times after the dead peer; expected a restart and retries"; return 1; }
    state=$(pald_query "next(c['state'] for c in s['connections'] if c['name']=='strongswan')")
    echo "  ok: dead peer after ${ms} ms, the daemon re-initiated $((n1 - n0)) times against the dead peer (state '$state')"
    ss_responder || return 1
    t0=$(date +%s%N)
    pald_wait_state established 10 || return 1
    ms=$(( ($(date +%s%N) - t0) / 1000000 ))
    [ "$(pald_query "s['ike_sas'][0]['id'] != '$ike_id'")" = True ] || { echo "  still the old IKE SA $ike_id"; return 1; }
    check_daemon_spis || return 1
    ping_through "$ia" "$ib" || return 1
    echo "  ok: back up by itself ${ms} ms after charon was started again"
}

# collide_settled: one IKE SA and one installed CHILD_SA on each side, SPIs
# mirrored (a snapshot between two rekeys). Rekeyed SAs that only linger for
# inbound stragglers (palisade "rekeyed" 2 s, strongSwan DELETED 5 s) are
# allowed. Sets COLLIDE_STATE to what it saw.
collide_settled() {
    local pal sas in_spi out_spi a b rest n_ike n_inst n_other
    # IKE SAs by state: established, being set up or rekeyed (must be none),
    # deleting (a rekeyed or redundant SA waiting for the peer's Delete).
    pal=$(pald_query "' '.join([str(len([i for i in s['ike_sas'] if i['state']==st])) for st in ('established', 'deleting')] + [str(len([i for i in s['ike_sas'] if i['state'] not in ('established', 'deleting')]))] + ['%08x' % a['spi'] for d in ('in', 'out') for a in s['sas'] if a['name']=='strongswan/net' and a['direction']==d and a['state']=='installed'])")
    sas=$(ss_list_sas 2>/dev/null)
    n_ike=$(grep -c '^pal: #' <<<"$sas")
    n_inst=$(grep -c '^  net: #.*, INSTALLED,' <<<"$sas")
    n_other=$(grep '^  net: #' <<<"$sas" | grep -Ev ', (INSTALLED|DELETED),' -c)
    read -r a b c in_spi out_spi rest <<<"$pal"
    COLLIDE_STATE="palisade: IKE SAs $a established, $b deleting, ${c:-?} other; installed CHILD_SA SPIs (in, out) ${in_spi:-} ${out_spi:-} ${rest:-}; strongSwan: $n_ike IKE SAs, $n_inst CHILD_SAs INSTALLED, $n_other neither INSTALLED nor DELETED"
    [ "$a $c" = "1 0" ] && [ -n "$out_spi" ] && [ -z "$rest" ] || return 1
    [ "$n_ike" = 1 ] && [ "$n_inst" = 1 ] && [ "$n_other" = 0 ] || return 1
    grep -Eq "^ +in +${out_spi}," <<<"$sas" && grep -Eq "^ +out +${in_spi}," <<<"$sas"
}

# wait_settled TRIES GAP: collide_settled within TRIES snapshots GAP seconds
# apart; otherwise say so with the last states seen and both sides' SAs.
wait_settled() {
    local tries=$1 gap=$2 seen="" i
    for i in $(seq "$tries"); do
        if collide_settled; then
            echo "  ok: one IKE SA and one installed CHILD_SA on each side, SPIs mirrored ($COLLIDE_STATE)"
            return 0
        fi
        seen="$seen    $(date +%T.%N | cut -c1-12) $COLLIDE_STATE"$'\n'
        sleep "$gap"
    done
    echo "  never one IKE SA and one CHILD_SA on each side with SPIs mirrored in $tries tries $gap s apart:"
    printf '%s' "$seen" | tail -n 6
    pald status
    ss_list_sas
    return 1
}

# Both sides rekey the CHILD_SA every 3 s and the IKE SA every 5 s, no
# jitter, so their rekeys start at nearly the same moment and collide
# (RFC 7296 2.8.1, 2.8.2), while a ping runs through the daemon for 15 s.
case_daemon_collide() {
    local dir=$1 ike=aes256gcm16-prfsha256-x25519 esp=aes256gcm16 sent recv lost i
    local PAL_CONN_EXTRA='rekey_time = "5s"
over_time = "10s"
rand_time = "0s"'
    local PAL_CHILD_EXTRA='  rekey_time = "3s"
  life_time = "13s"
  rand_time = "0s"'
    addrs 4
    daemon_up "$dir" "$ike" "$esp" --rekey 3 --ike-rekey 5 || return 1
    # Whether two rekeys cross is decided by sub-millisecond offsets of the
    # two sides' timers (one run in ~25 had none in 15 s): without a
    # collision, up to two more rounds of 15 s, each with the same bounds.
    local ss_child ss_ike ss_cc ss_ic pal_child pal_ike pal_cl pal_iw pal_il round ping
    for round in 1 2 3; do
        ping="$LOG/$CASE.ping$([ "$round" = 1 ] || echo ".$round")"
        ip netns exec "$A" ping -D -O -c 75 -i 0.2 -W 1 -I 10.200.1.1 10.200.2.1 >"$ping" 2>&1
        read -r sent recv < <(sed -nE 's/^([0-9]+) packets transmitted, ([0-9]+) received.*/\1 \2/p' "$ping")
        lost=$(( ${sent:-0} - ${recv:-0} ))
        if [ "${sent:-0}" -lt 75 ] || [ "$lost" -gt 1 ]; then
            echo "  $lost of ${sent:-0} pings lost across the rekeys (round $round); unanswered (UTC, to match the logs; ping does not list the last one):"
            python3 -c 'import re,sys,datetime as d
for t,n in re.findall(r"\[([0-9.]+)\] no answer yet for icmp_seq=(\d+)", open(sys.argv[1]).read()):
    print("    icmp_seq", n, "sent", d.datetime.fromtimestamp(float(t) - 0.2, d.timezone.utc).strftime("%H:%M:%S.%f")[:-3])' "$ping"
            sed -n 1p "$ping"; tail -n 2 "$ping"; return 1
        fi
        echo "  ok: $lost of $sent pings lost across the rekeys (round $round)"
        ss_cc=$(grep -c 'detected CHILD_REKEY collision with CHILD_REKEY' "$SS_DIR/charon.log")
        ss_ic=$(grep -c 'detected IKE_REKEY collision with IKE_REKEY' "$SS_DIR/charon.log")
        [ $((ss_cc + ss_ic)) -ge 1 ] && break
        [ "$round" -lt 3 ] && echo "  no rekey collision yet (strongSwan detected none): another 15 s"
    done
    ss_child=$(grep -c 'CHILD_SA net{[0-9]*} established' "$SS_DIR/charon.log")
    ss_ike=$(grep -c 'IKE_SA pal\[[0-9]*\] rekeyed' "$SS_DIR/charon.log")
    pal_child=$(grep -c 'palisade::ike[a-z_:]*: CHILD_SA net installed' "$PAL_OUT")
    pal_ike=$(grep -c 'palisade::ike[a-z_:]*: IKE SA [0-9a-f]* rekeyed' "$PAL_OUT")
    pal_cl=$(grep -c 'simultaneous rekey lost' "$PAL_OUT")
    pal_iw=$(grep -c 'simultaneous IKE SA rekey won' "$PAL_OUT")
    pal_il=$(grep -c 'simultaneous IKE SA rekey lost' "$PAL_OUT")
    echo "  strongSwan: $ss_child CHILD_SAs established (rekey or collision), $ss_ike IKE SA rekeys;" \
        "collisions detected: $ss_cc CHILD_SA, $ss_ic IKE SA"
    echo "  palisade: $pal_child CHILD_SAs installed, $pal_ike IKE SA rekeys;" \
        "CHILD_SA collisions lost $pal_cl (won ones are not logged), IKE SA collisions won $pal_iw, lost $pal_il"
    grep -E 'collision (won|lost)|did not notice' "$SS_DIR/charon.log" | sed -E 's/^/    strongSwan: /'
    [ $((ss_cc + ss_ic)) -ge 1 ] || { echo "  no rekey collision happened in 45 s (strongSwan detected none): the case tested nothing"; return 1; }
    [ "$ss_ike" -ge 1 ] && [ "$pal_ike" -ge 1 ] || { echo "  an IKE SA rekey is missing"; return 1; }
    [ "$pal_child" -ge 4 ] || { echo "  palisade installed only $pal_child CHILD_SAs in 15 s (rekey 3 s)"; return 1; }
    # A snapshot may fall into a rekey: a few tries over ~3 s.
    wait_settled 12 0.1
}

# lossy_router on|off: in the NAT router, lose and repeat 20 % of the IKE
# messages each way (scripts/checks/lossy-ike.nft; ESP is left alone).
# `off` removes the rules and sets LOSSY to what they did.
lossy_router() {
    local r=${SS_NS}R chain
    if [ "$1" = on ]; then
        ip netns exec "$r" nft -D ra="${SS_NS}Ra" -D rb="${SS_NS}Rb" -D a=198.51.100.10 \
            -D b=203.0.113.2 -D pct=20 -f "$PWD/scripts/checks/lossy-ike.nft"
        return
    fi
    LOSSY=""
    for chain in lose repeat; do
        LOSSY="$LOSSY $chain $(ip netns exec "$r" nft list chain ip lossy_ike "$chain" |
            grep -o 'packets [0-9]*' | awk '{n += $2} END {print n + 0}')"
    done
    ip netns exec "$r" nft delete table ip lossy_ike
}

# The daemon behind the NAT router against strongSwan, which rekeys the
# CHILD_SA every 3 s and the IKE SA every 5 s, while the router loses and
# repeats 20 % of the IKE messages each way (lossy_router) and a ping runs
# for 15 s: both sides must retransmit what is lost and answer a repeat from
# their cache (RFC 7296 2.1) rather than act on it twice, so at most 1 ping
# is lost, and afterwards there is one IKE SA and one CHILD_SA on each side,
# SPIs mirrored.
case_daemon_lossy() {
    local ike=aes256gcm16-prfsha256-x25519 esp=aes256gcm16 sent recv lost i lose repeat
    local PAL_DAEMON_EXTRA='retransmit_timeout = "250ms"
retransmit_limit = "1s"
retransmit_tries = 10'
    # strongSwan runs one exchange at a time, so a rekey waits behind a
    # Delete being retransmitted: its SAs get a minute past their rekey time
    # (not 10 s) before they expire, and 6 resends instead of 2.
    local SS_RETRANSMIT_TRIES=6 SS_LIFE_SLACK=60
    IP_A=198.51.100.10 IP_B=203.0.113.2 TS_A=10.200.1.0/24 TS_B=10.200.2.0/24
    daemon_up pi "$ike" "$esp" --rekey 3 --ike-rekey 5 || return 1
    lossy_router on || { echo "  nftables rules for the lossy router failed"; return 1; }
    ip netns exec "$A" ping -D -O -c 75 -i 0.2 -W 1 -I 10.200.1.1 10.200.2.1 >"$LOG/$CASE.ping" 2>&1
    lossy_router off
    read -r _ lose _ repeat <<<"$LOSSY"
    read -r sent recv < <(sed -nE 's/^([0-9]+) packets transmitted, ([0-9]+) received.*/\1 \2/p' "$LOG/$CASE.ping")
    lost=$(( ${sent:-0} - ${recv:-0} ))
    echo "  the router lost $lose and repeated $repeat IKE messages;" \
        "strongSwan retransmitted $(grep -c 'retransmit [0-9]* of request' "$SS_DIR/charon.log") times," \
        "palisade $(pald_query "s['ike_stats'].get('retransmits', '?')") times and answered" \
        "$(pald_query "s['ike_stats'].get('duplicate_requests', '?')") repeated requests from its cache"
    [ "${lose:-0}" -ge 1 ] && [ "${repeat:-0}" -ge 1 ] || {
        echo "  the wire was not bad enough to test anything"; return 1; }
    if [ "${sent:-0}" -lt 75 ] || [ "$lost" -gt 1 ]; then
        echo "  $lost of ${sent:-0} pings lost"; sed -n 1p "$LOG/$CASE.ping"; tail -n 2 "$LOG/$CASE.ping"; return 1
    fi
    echo "  ok: $lost of $sent pings lost; strongSwan made $(grep -c 'CHILD_SA net{[0-9]*} established' "$SS_DIR/charon.log") CHILD_SAs and $(grep -c 'IKE_SA pal\[[0-9]*\] rekeyed' "$SS_DIR/charon.log") IKE SA rekeys"
    # Exchanges cut short by the losses finish by retransmission.
    wait_settled 60 0.2
}

# The [[connection]] configs the daemon would run for these cases must pass
# `palisade check-config` (keeps palisade_daemon_toml honest until it is used).
case_daemon_configs() {
    local p ike esp n=0 f="$LOG/$CASE.toml"
    for p in "${PROPOSALS[@]}"; do
        read -r ike esp <<<"$p"
        palisade_daemon_toml initiator 192.0.2.1 192.0.2.2 10.200.1.0/24 10.200.2.0/24 "$ike" "$esp" >"$f"
        "$PALISADE_BIN" check-config "$f" >/dev/null || { cat "$f"; return 1; }
        palisade_daemon_toml responder 2001:db8:2::2 - fd00:200:2::/64 fd00:200:1::/64 "$ike" "$esp" >"$f"
        "$PALISADE_BIN" check-config "$f" >/dev/null || { cat "$f"; return 1; }
        n=$((n + 2))
    done
    echo "  ok: $n generated daemon configs (both roles, IPv4 and IPv6) pass palisade check-config"
}

# -------------------------------------------------------------- run --
PROPOSALS=(
    "aes256gcm16-prfsha256-x25519 aes256gcm16"
    "aes256-sha256-modp2048 aes256-sha256"
    "aes128gcm16-prfsha384-ecp384 aes128gcm16"
    "chacha20poly1305-prfsha256-curve25519 chacha20poly1305"
)

if begin daemon-configs "palisade_daemon_toml's configs are valid"; then
    case_daemon_configs; end_case $?
fi

ss_net basic || cannot_run "could not create network namespaces ${SS_NS}A/${SS_NS}B"
for p in "${PROPOSALS[@]}"; do
    read -r ike esp <<<"$p"
    if begin "pi-$ike" "palisade initiator -> strongSwan responder, $ike / $esp"; then
        case_palisade_initiates 4 "$ike" "$esp"; end_case $?
    fi
    if begin "si-$ike" "strongSwan initiator -> palisade responder, $ike / $esp"; then
        case_strongswan_initiates 4 "$ike" "$esp"; end_case $?
    fi
done
if begin pi-v6 "palisade initiator -> strongSwan responder over IPv6, IPv6 inside"; then
    case_palisade_initiates 6 aes256gcm16-prfsha256-x25519 aes256gcm16; end_case $?
fi
if begin si-v6 "strongSwan initiator -> palisade responder over IPv6, IPv6 inside"; then
    case_strongswan_initiates 6 aes256gcm16-prfsha256-x25519 aes256gcm16; end_case $?
fi
if begin daemon-pi "palisade daemon initiator -> strongSwan responder, ping through, palisade down"; then
    case_daemon pi 4 aes256gcm16-prfsha256-x25519 aes256gcm16; end_case $?
fi
if begin daemon-si "strongSwan initiator -> palisade daemon, AES-CBC/HMAC, ping through, swanctl --terminate"; then
    case_daemon si 4 aes256-sha256-modp2048 aes256-sha256; end_case $?
fi
if begin daemon-v6 "palisade daemon initiator -> strongSwan over IPv6, ChaCha20-Poly1305, ping through"; then
    case_daemon pi 6 chacha20poly1305-prfsha256-curve25519 chacha20poly1305; end_case $?
fi
if begin daemon-si-v6 "strongSwan initiator -> palisade daemon over IPv6, AES-128-GCM/ECP-384, ping through"; then
    case_daemon si 6 aes128gcm16-prfsha384-ecp384 aes128gcm16; end_case $?
fi
if begin daemon-rekey "strongSwan rekeys CHILD_SA (3 s) and IKE SA (5 s) under ping through the daemon"; then
    case_daemon_rekey; end_case $?
fi
if begin daemon-collide "daemon (initiator) and strongSwan both rekey CHILD_SA (3 s) and IKE SA (5 s) under ping"; then
    case_daemon_collide pi; end_case $?
fi
if begin dpd "palisade's DPD against a SIGKILLed strongSwan"; then case_dpd; end_case $?; fi
if begin daemon-dpd "palisade daemon's DPD (1 s) against a SIGKILLed strongSwan: clear, then restart"; then
    case_daemon_dpd; end_case $?
fi
if begin strongswan-rekeys "strongSwan rekeys CHILD_SA (4 s) and IKE SA (7 s) with palisade as responder"; then
    case_strongswan_rekeys; end_case $?
fi
if begin palisade-rekeys "palisade rekeys CHILD_SA with PFS (3 s) and IKE SA (5 s) against strongSwan"; then
    case_palisade_rekeys; end_case $?
fi
ss_net_down
if [[ nat =~ $only ]] || [[ daemon-nat =~ $only ]] || [[ daemon-lossy =~ $only ]]; then
    ss_net nat || cannot_run "could not create the NAT topology"
    if begin nat "palisade behind an nftables MASQUERADE router -> strongSwan responder"; then
        case_nat; end_case $?
    fi
    if begin daemon-nat "palisade daemon behind the MASQUERADE router -> strongSwan, ping through"; then
        case_daemon pi nat aes256gcm16-prfsha256-x25519 aes256gcm16; end_case $?
    fi
    if begin daemon-lossy "daemon behind the NAT, strongSwan rekeys (3 s, 5 s), 20 % of IKE lost and 20 % repeated"; then
        case_daemon_lossy; end_case $?
    fi
fi

cleanup
ok=0; [ "$fail" = 0 ] && [ "$pass" -gt 0 ] || ok=1
# The logs (strongSwan's hold the test SAs' keys) are kept when something failed.
if [ $ok = 0 ] && [ "${IKE_STRONGSWAN_KEEP:-0}" != 1 ]; then rm -rf "$LOG"; kept=""; else kept="; logs in $LOG"; fi
echo "$pass passed, $fail failed${failed:+ (${failed# })} in $(( $(date +%s) - t_start ))s$kept"
exit $ok

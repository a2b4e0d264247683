#!/usr/bin/env bash
# Interop of palisade's IKEv2 engine (crates/palisade-ike, run over real UDP
# sockets by its ike_interop example) with strongSwan 5.9 in network
# namespaces, using the shared harness /work/shared/peers/strongswan-peer.sh:
#
#   1. palisade initiator in swA (192.0.2.1) -> strongSwan responder in swB
#   2. strongSwan initiator in swA           -> palisade responder in swB (192.0.2.2)
#
# both with PSK, aes256gcm16-prfsha256-x25519 / aes256gcm16, tunnel
# 10.200.1.0/24 <-> 10.200.2.0/24. Each passes only if the IKE_SA and the
# CHILD_SA are up on both sides with matching SPIs.
#
# Skips (exit 0) when not root or when strongSwan is not installed
# (install it once with: /work/shared/peers/strongswan-peer.sh install).
# Only addresses inside the harness's namespaces are used; `down` at the end.
set -uo pipefail
cd "$(dirname "$0")/../.."

PEERS=${PEERS:-/work/shared/peers}
# Our own harness state, so that `down` ends only what this script started
# even when someone else drives the harness from the default state dir.
export SWP_STATE=${SWP_STATE:-/tmp/swpeers-ike}
SWP_STATE_DIR=$SWP_STATE
P="$PEERS/strongswan-peer.sh"
PSK=${SW_PSK:-sw-test-psk-0123456789abcdef}
IKE=${SW_IKE:-aes256gcm16-prfsha256-x25519}
ESP=${SW_ESP:-aes256gcm16}

if [ "$(id -u)" != 0 ]; then echo "SKIP: needs root (network namespaces)"; exit 0; fi
if ! command -v swanctl >/dev/null || [ ! -x "$P" ]; then
    echo "SKIP: strongSwan or $P missing (run $P install)"; exit 0
fi

# The harness's namespace names are fixed: refuse to run over another run.
"$P" down >/dev/null 2>&1
for ns in swA swB swR; do
    if ip netns list | grep -qw "$ns"; then
        echo "FAIL: netns $ns exists and is not ours (another run of $P?); try again when it is gone"
        exit 2
    fi
done

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
cargo build -q -p palisade-ike --example ike_interop || { echo "FAIL: build"; exit 1; }
BIN="$CARGO_TARGET_DIR/debug/examples/ike_interop"
LOG=$(mktemp -d /tmp/ike-strongswan.XXXXXX)
pass=0; fail=0
PAL_PID=

cleanup() {
    if [ -n "$PAL_PID" ] && kill -0 "$PAL_PID" 2>/dev/null; then kill "$PAL_PID"; fi
    "$P" down >/dev/null 2>&1
}
trap cleanup EXIT

# $1 = palisade output, $2 = strongSwan instance: SPIs must mirror.
check_spis() {
    local out=$1 inst=$2 line in_spi out_spi sas
    # The newest CHILD_SA (after rekeys) is the one both sides must hold.
    line=$(grep '^CHILD_SA installed' "$out" | tail -1)
    [ -n "$line" ] || { echo "  no CHILD_SA in palisade's output"; return 1; }
    in_spi=$(sed -E 's/.* in ([0-9a-f]{8}) out ([0-9a-f]{8}).*/\1/' <<<"$line")
    out_spi=$(sed -E 's/.* in ([0-9a-f]{8}) out ([0-9a-f]{8}).*/\2/' <<<"$line")
    sas=$("$P" swanctl "$inst" --list-sas 2>&1)
    echo "$sas" | sed 's/^/  strongSwan: /'
    grep -q ESTABLISHED <<<"$sas" || { echo "  strongSwan IKE_SA not ESTABLISHED"; return 1; }
    grep -q INSTALLED <<<"$sas" || { echo "  strongSwan CHILD_SA not INSTALLED"; return 1; }
    # strongSwan lists "in  <its inbound SPI>," and "out <its outbound SPI>,".
    { grep -Eq "^ +in +${out_spi}," <<<"$sas" && grep -Eq "^ +out +${in_spi}," <<<"$sas"; } || {
        echo "  SPI mismatch: palisade in $in_spi out $out_spi"; return 1; }
    echo "  SPIs match: palisade in $in_spi out $out_spi"
}

# $1 = palisade output, $2 = strongSwan instance, $3 = palisade's role:
# the CHILD_SA encryption keys (RFC 7296 2.17 KEYMAT, both directions) must
# be the ones strongSwan logged (SW_LOGLEVEL=4); compared as SHA-256 prefixes.
check_keys() {
    local out=$1 inst=$2 role=$3 ours
    ours=$(grep -m1 '^key digests:' "$out") || { echo "  no key digests from palisade"; return 1; }
    python3 - "$SWP_STATE_DIR/inst/$inst/charon.log" "$role" "$ours" <<'PY'
import hashlib, re, sys
log, role, ours = sys.argv[1], sys.argv[2], sys.argv[3]
lines = open(log, errors="replace").read().splitlines()
keys = {}
for i, l in enumerate(lines):
    m = re.search(r"encryption (initiator|responder) key => (\d+) bytes", l)
    if not m:
        continue
    n, data = int(m.group(2)), bytearray()
    for l2 in lines[i + 1:]:
        h = re.search(r">\s+\d+: ((?:[0-9A-F]{2} ){1,16})", l2)
        if not h or len(data) >= n:
            break
        data += bytes.fromhex(h.group(1))
    if m.group(1) not in keys:  # the first CHILD_SA's keys
        keys[m.group(1)] = hashlib.sha256(bytes(data[:n])).hexdigest()[:16]
f = dict(zip(ours.split()[3::2], ours.split()[4::2]))
want_out = keys.get("initiator" if role == "initiator" else "responder")
want_in = keys.get("responder" if role == "initiator" else "initiator")
print(f"  strongSwan keys: initiator {keys.get('initiator')} responder {keys.get('responder')}")
print(f"  palisade keys:   out {f.get('out-encr')} in {f.get('in-encr')}")
ok = want_out == f.get("out-encr") and want_in == f.get("in-encr")
print("  keys match" if ok else "  KEY MISMATCH")
sys.exit(0 if ok else 1)
PY
}

result() {
    if [ "$2" = 0 ]; then echo "RESULT $1: PASS"; pass=$((pass + 1));
    else echo "RESULT $1: FAIL (logs in $LOG)"; fail=$((fail + 1)); fi
}

# 1. palisade initiates.
echo "== palisade initiator -> strongSwan responder"
"$P" net basic >/dev/null
SW_LOGLEVEL=4 "$P" start --name bob --netns swB --role responder --local 192.0.2.2 --remote %any \
    --local-id bob.sw.test --remote-id %any --local-ts 10.200.2.0/24 --remote-ts 10.200.1.0/24 \
    --psk "$PSK" --ike "$IKE" --esp "$ESP" >"$LOG/bob-start.log" 2>&1
rc=0
ip netns exec swA "$BIN" --role initiator --local 192.0.2.1 --remote 192.0.2.2 \
    --local-id alice.sw.test --remote-id bob.sw.test --psk "$PSK" \
    --local-ts 10.200.1.0/24 --remote-ts 10.200.2.0/24 --ike "$IKE" --esp "$ESP" \
    --timeout 30 --linger 2 --key-digests >"$LOG/palisade-init.log" 2>&1 || rc=1
sed 's/^/  palisade: /' "$LOG/palisade-init.log"
[ $rc = 0 ] && { check_spis "$LOG/palisade-init.log" bob || rc=1; }
[ $rc = 0 ] && { check_keys "$LOG/palisade-init.log" bob initiator || rc=1; }
result "palisade-initiator" $rc
"$P" down >/dev/null 2>&1

# 2. strongSwan initiates.
echo "== strongSwan initiator -> palisade responder"
"$P" net basic >/dev/null
ip netns exec swB "$BIN" --role responder --local 192.0.2.2 \
    --local-id bob.sw.test --remote-id alice.sw.test --psk "$PSK" \
    --local-ts 10.200.2.0/24 --remote-ts 10.200.1.0/24 --ike "$IKE" --esp "$ESP" \
    --timeout 60 --linger 5 --key-digests >"$LOG/palisade-resp.log" 2>&1 &
PAL_PID=$!
sleep 0.5
SW_LOGLEVEL=4 "$P" start --name alice --netns swA --role initiator --local 192.0.2.1 --remote 192.0.2.2 \
    --local-id alice.sw.test --remote-id bob.sw.test --local-ts 10.200.1.0/24 --remote-ts 10.200.2.0/24 \
    --psk "$PSK" --ike "$IKE" --esp "$ESP" >"$LOG/alice-start.log" 2>&1
rc=0
timeout 40 "$P" initiate alice >"$LOG/alice-initiate.log" 2>&1 || rc=1
sed 's/^/  strongSwan initiate: /' "$LOG/alice-initiate.log" | tail -5
check_spis "$LOG/palisade-resp.log" alice || rc=1
wait "$PAL_PID" || rc=1
PAL_PID=
sed 's/^/  palisade: /' "$LOG/palisade-resp.log"
check_keys "$LOG/palisade-resp.log" alice responder || rc=1
result "palisade-responder" $rc
"$P" down >/dev/null 2>&1

# $1 = palisade output: at least $2 CHILD_SAs installed, an IKE SA rekey,
# and the IKE SA never went down.
check_rekeys() {
    local n
    n=$(grep -c '^CHILD_SA installed' "$1")
    echo "  palisade installed $n CHILD_SAs, $(grep -c '^ChildSaDeleted' "$1") deleted"
    [ "$n" -ge "$2" ] || { echo "  expected at least $2 CHILD_SAs (rekeys)"; return 1; }
    grep -q '^IkeSaRekeyed' "$1" || { echo "  no IKE SA rekey seen"; return 1; }
    if grep -q '^IKE_SA down' "$1"; then echo "  the IKE SA went down"; return 1; fi
}

# 3. strongSwan initiates and rekeys CHILD_SA (10 s) and IKE SA (25 s), DPD 5 s.
echo "== strongSwan rekeys -> palisade responder"
"$P" net basic >/dev/null
ip netns exec swB "$BIN" --role responder --local 192.0.2.2 \
    --local-id bob.sw.test --remote-id alice.sw.test --psk "$PSK" \
    --local-ts 10.200.2.0/24 --remote-ts 10.200.1.0/24 --ike "$IKE" --esp "$ESP" \
    --timeout 90 --linger 40 >"$LOG/palisade-resp-rekey.log" 2>&1 &
PAL_PID=$!
sleep 0.5
"$P" start --name alice --netns swA --role initiator --local 192.0.2.1 --remote 192.0.2.2 \
    --local-id alice.sw.test --remote-id bob.sw.test --local-ts 10.200.1.0/24 --remote-ts 10.200.2.0/24 \
    --psk "$PSK" --ike "$IKE" --esp "$ESP" --rekey-time 10s --ike-rekey-time 25s --dpd 5 \
    >"$LOG/alice-start-rekey.log" 2>&1
rc=0
timeout 40 "$P" initiate alice >"$LOG/alice-initiate-rekey.log" 2>&1 || rc=1
wait "$PAL_PID" || rc=1
PAL_PID=
sed 's/^/  palisade: /' "$LOG/palisade-resp-rekey.log" | cut -c1-200
check_rekeys "$LOG/palisade-resp-rekey.log" 3 || rc=1
check_spis "$LOG/palisade-resp-rekey.log" alice || rc=1
result "strongswan-rekeys" $rc
"$P" down >/dev/null 2>&1

# 4. palisade initiates and rekeys: CHILD_SA every 8 s with PFS (X25519),
#    the IKE SA after 15 s, DPD 4 s.
echo "== palisade rekeys (CHILD_SA with PFS, IKE SA) -> strongSwan responder"
"$P" net basic >/dev/null
"$P" start --name bob --netns swB --role responder --local 192.0.2.2 --remote %any \
    --local-id bob.sw.test --remote-id %any --local-ts 10.200.2.0/24 --remote-ts 10.200.1.0/24 \
    --psk "$PSK" --ike "$IKE" --esp "${ESP}-x25519" >"$LOG/bob-start-rekey.log" 2>&1
rc=0
ip netns exec swA "$BIN" --role initiator --local 192.0.2.1 --remote 192.0.2.2 \
    --local-id alice.sw.test --remote-id bob.sw.test --psk "$PSK" \
    --local-ts 10.200.1.0/24 --remote-ts 10.200.2.0/24 --ike "$IKE" --esp "${ESP}-x25519" \
    --rekey 8 --ike-rekey 15 --dpd 4 --timeout 60 --linger 30 >"$LOG/palisade-init-rekey.log" 2>&1 || rc=1
sed 's/^/  palisade: /' "$LOG/palisade-init-rekey.log" | cut -c1-200
check_rekeys "$LOG/palisade-init-rekey.log" 3 || rc=1
check_spis "$LOG/palisade-init-rekey.log" bob || rc=1
grep -q 'pfs_group\|PFS' "$LOG/palisade-init-rekey.log" || true
result "palisade-rekeys" $rc

echo "$pass passed, $fail failed"
[ $fail = 0 ]

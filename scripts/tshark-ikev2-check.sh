#!/usr/bin/env bash
# Independent check of the IKEv2 encoder: write a capture holding every IKEv2
# payload type (crates/palisade-wire/examples/ikev2_pcap.rs) and let tshark's
# ISAKMP dissector judge it. Fails if tshark flags any packet as malformed or
# raises an error-level expert item, or if a payload type is missing from the
# dissection.
#
# Usage: scripts/tshark-ikev2-check.sh [out.pcap]
set -euo pipefail

cd "$(dirname "$0")/.."
command -v tshark >/dev/null || {
    echo "tshark not found: apt-get install -y tshark" >&2
    exit 2
}
pcap=${1:-${TMPDIR:-/tmp}/palisade-ikev2.pcap}

cargo run -q -p palisade-wire --example ikev2_pcap -- "$pcap"

frames=$(tshark -r "$pcap" 2>/dev/null | wc -l)
[ "$frames" -eq 10 ] || { echo "FAIL: expected 10 frames, tshark read $frames" >&2; exit 1; }

bad=$(tshark -r "$pcap" -Y '_ws.malformed || _ws.expert.severity >= error' 2>/dev/null)
if [ -n "$bad" ]; then
    echo "FAIL: tshark reports malformed packets or expert errors:" >&2
    echo "$bad" >&2
    tshark -r "$pcap" -q -z expert 2>/dev/null >&2
    exit 1
fi

dissection=$(tshark -r "$pcap" -V 2>/dev/null)
missing=0
for name in \
    "Security Association (33)" "Key Exchange (34)" "Identification - Initiator (35)" \
    "Identification - Responder (36)" "Certificate (37)" "Certificate Request (38)" \
    "Authentication (39)" "Nonce (40)" "Notify (41)" "Delete (42)" "Vendor ID (43)" \
    "Traffic Selector - Initiator (44)" "Traffic Selector - Responder (45)" \
    "Encrypted and Authenticated (46)" "Configuration (47)" \
    "Extensible Authentication (48)" "Encrypted and Authenticated Fragment (53)"; do
    if ! grep -qF "Payload: $name" <<<"$dissection"; then
        echo "FAIL: payload '$name' not found in the dissection" >&2
        missing=1
    fi
done
[ "$missing" -eq 0 ] || exit 1

echo "OK: $frames IKEv2 frames, every payload type dissected, no malformed packets or expert errors ($pcap)"

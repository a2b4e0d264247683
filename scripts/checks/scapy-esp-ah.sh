#!/usr/bin/env bash
# Independent cross-check of palisade's ESP and AH against scapy's
# scapy.layers.ipsec.SecurityAssociation: for every case of
# crates/palisade-sa/tests/cross/scapy_matrix.json (algorithm x transport/tunnel
# x IPv4/IPv6 x ESN off/on x raw/UDP-encapsulated, and AH with each integrity
# algorithm), packets sealed by palisade must open in scapy to the original, and
# packets sealed by scapy must open in palisade to the original.
#
# Installs nothing (scripts/test pip-installs scapy and cryptography). Fails if
# python3, scapy or cryptography is missing instead of skipping.
#
# Usage: scripts/checks/scapy-esp-ah.sh            run the check
#        scripts/checks/scapy-esp-ah.sh --selftest  also run scapy against itself
#                                                   over the matrix (slow, ~1 min)
set -euo pipefail
cd "$(dirname "$0")/../.."

python3 -c 'import scapy, cryptography' 2>/dev/null || {
    echo "FAIL: python3 with scapy and cryptography is needed (python3 -m pip install 'scapy>=2.6' cryptography)" >&2
    exit 1
}

matrix=crates/palisade-sa/tests/cross/scapy_matrix.json
python3 scripts/checks/scapy_ipsec.py check-matrix "$matrix"
if [ "${1:-}" = --selftest ]; then
    python3 scripts/checks/scapy_ipsec.py selftest "$matrix"
fi

export PALISADE_REQUIRE_SCAPY=1
cargo test -q -p palisade-sa --test cross_scapy -- --nocapture

#!/usr/bin/env bash
# Measure palisade's ESP transforms and openssl's, in the same run, and print a
# palisade/openssl ratio table.
#
#   scripts/bench-crypto.sh [openssl-seconds] [palisade-cpu-seconds]   (defaults 1, 0.4)
#
# palisade: `cargo bench --bench sym_throughput` (crates/palisade-crypto/benches),
# which seals each payload as ESP does (8-byte AAD, 8-byte IV, detached ICV).
# Both count CPU time (openssl speed does by default; sym_throughput uses the
# thread CPU clock), so load from other processes does not skew the ratio.
# openssl: `openssl speed -evp <cipher> -bytes N` for the same sizes. For a
# cipher+integrity pair openssl has no single EVP, so its figure is the two
# passes combined: 1 / (1/cipher + 1/hmac), from `openssl speed -hmac`.
# Ratio > 1 means palisade is faster. Set CARGO_TARGET_DIR to reuse a build.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS="${1:-1}"          # openssl speed -seconds takes whole seconds
PSECS="${2:-0.4}"       # CPU seconds per palisade point
SIZES="64 576 1420 9000"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

echo "== palisade (cargo bench --bench sym_throughput, ${PSECS} CPU s per point)" >&2
cargo bench -q -p palisade-crypto --bench sym_throughput -- --seconds "$PSECS" | tee "$tmp/palisade" >&2

# openssl speed -mr prints "+F:<n>:<alg>:<bytes per second>" for the one size.
ossl_evp() { # $1 = evp cipher, $2 = size -> MB/s
    openssl speed -mr -seconds "$SECS" -bytes "$2" -evp "$1" 2>/dev/null |
        awk -F: '/^\+F:/ {printf "%.1f\n", $4 / 1e6}'
}
ossl_hmac() { # $1 = digest, $2 = size -> MB/s
    openssl speed -mr -seconds "$SECS" -bytes "$2" -hmac "$1" 2>/dev/null |
        awk -F: '/^\+F:/ {printf "%.1f\n", $4 / 1e6}'
}

# palisade case -> "evp:<cipher>" or "pair:<cipher>:<hmac digest>"
declare -A REF=(
    [aes128gcm16]="evp:aes-128-gcm"
    [aes256gcm16]="evp:aes-256-gcm"
    [aes256gcm12]="evp:aes-256-gcm"
    [aes256gcm8]="evp:aes-256-gcm"
    [chacha20poly1305]="evp:chacha20-poly1305"
    [aes128cbc-sha1]="pair:aes-128-cbc:sha1"
    [aes128cbc-sha256]="pair:aes-128-cbc:sha256"
    [aes256cbc-sha256]="pair:aes-256-cbc:sha256"
    [aes256cbc-sha512]="pair:aes-256-cbc:sha512"
    [aes256ctr-sha256]="pair:aes-256-ctr:sha256"
    [3des-sha1]="pair:des-ede3-cbc:sha1"
)

echo "== openssl $(openssl version | awk '{print $2}') (openssl speed -evp / -hmac, ${SECS}s per point)" >&2
declare -A CACHE
ref_mbps() { # $1 = ref spec, $2 = size
    local key="$1/$2"
    if [[ -z "${CACHE[$key]:-}" ]]; then
        IFS=: read -r kind a b <<<"$1"
        if [[ $kind == evp ]]; then
            CACHE[$key]="$(ossl_evp "$a" "$2")"
        else
            local c h
            c="$(ossl_evp "$a" "$2")"
            h="$(ossl_hmac "$b" "$2")"
            CACHE[$key]="$(awk -v c="$c" -v h="$h" 'BEGIN {printf "%.1f", 1 / (1 / c + 1 / h)}')"
        fi
        echo "  $1 $2: ${CACHE[$key]} MB/s" >&2
    fi
    echo "${CACHE[$key]}"
}

printf '\n%-20s %6s %12s %12s %7s  %s\n' transform bytes palisade openssl ratio "openssl reference"
while read -r tag name size mbps; do
    [[ $tag == RESULT ]] || continue
    spec="${REF[$name]:-}"
    if [[ -z $spec ]]; then
        printf '%-20s %6s %12s %12s %7s  %s\n' "$name" "$size" "$mbps" - - "(no openssl equivalent)"
        continue
    fi
    ref="$(ref_mbps "$spec" "$size")"
    ratio="$(awk -v p="$mbps" -v o="$ref" 'BEGIN {if (o > 0) printf "%.2f", p / o; else print "-"}')"
    printf '%-20s %6s %12s %12s %7s  %s\n' "$name" "$size" "$mbps" "$ref" "${ratio}x" "${spec#*:}"
done <"$tmp/palisade"

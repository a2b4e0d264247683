#!/usr/bin/env bash
# strongSwan 5.9 (charon + kernel-libipsec) as an IKEv2 peer for palisade's
# interop checks, in network namespaces. Sourced by scripts/checks/*.sh for
# its ss_* functions, or run by hand:
#
#   peer.sh install              apt-get the packages (Debian 12: strongSwan 5.9.8)
#   peer.sh net basic|nat        create the namespaces (names below)
#   peer.sh start NS OPTIONS     one charon in NS, config generated (see ss_start)
#   peer.sh initiate | list-sas | terminate | log | stop | kill
#   peer.sh down                 stop charon, delete our namespaces
#
# Topologies (namespaces ${SS_NS}A/B/R, default SS_NS=pis):
#   basic: A [A0 192.0.2.1/24 2001:db8:2::1/64] <-veth-> [B0 192.0.2.2/24 2001:db8:2::2/64] B
#   nat:   A [A0 198.51.100.10/24] <-> [Ra 198.51.100.1] R [Rb 203.0.113.1] <-> [B0 203.0.113.2/24] B
#          R masquerades A's UDP to source ports 20000-20999 (nftables), so
#          IKE from A reaches B from 203.0.113.1:20xxx; B has no route to A.
#   inner: 10.200.1.1/32 fd00:200:1::1/128 on lo of A, 10.200.2.1/32 fd00:200:2::1/128 on B.
#
# What this strongSwan does (each seen on this project's test machines):
#  * kernel-libipsec is the only IPsec backend here (the kernel has no ESP).
#    It must be loaded before kernel-netlink (first kernel-ipsec wins), and
#    kernel-netlink is still needed for addresses and routes.
#  * libipsec can only do ESP in UDP, so charon fakes NAT detection: every
#    IKE SA floats to port 4500 and both sides see "peer behind NAT".
#  * No AH, no transport mode, no ESN: those CHILD_SAs are refused.
#  * charon hard-codes /run/charon.pid: each instance gets its own /run by a
#    bind mount in a private mount namespace, so it never clashes with
#    another charon on the machine.
#  * swanctl's default hard lifetime is 10 % over the rekey time in whole
#    seconds, i.e. none for rekey times under 10 s: ss_start sets it.
#  * State (configs, charon.log) lives in $SS_DIR, kept after `down`.
#    SS_LOGLEVELS='net=2 enc=2 ike=3' (say) raises charon's log levels per
#    subsystem when debugging an exchange.
set -u -o pipefail

SS_NS=${SS_NS:-pis}
SS_DIR=${SS_DIR:-/tmp/palisade-strongswan}
SS_CHARON=${SS_CHARON:-/usr/lib/ipsec/charon}
SS_PACKAGES="strongswan-charon strongswan-swanctl libstrongswan-standard-plugins libstrongswan-extra-plugins libcharon-extra-plugins"
# Plugin order is priority: aesni before aes/gcm (speed), kernel-libipsec
# before kernel-netlink (see above); openssl brings ecp384, chapoly ChaCha20.
SS_PLUGINS="aesni aes sha2 sha1 random nonce openssl gmp curve25519 chapoly hmac kdf gcm pem pkcs1 pkcs8 x509 pubkey kernel-libipsec kernel-netlink socket-default vici"

ss_log() { printf '[strongswan] %s\n' "$*" >&2; }

# Whether charon, swanctl and the plugins we load are installed. Prints what is missing.
ss_installed() {
    local p missing=()
    [ -x "$SS_CHARON" ] || missing+=("$SS_CHARON")
    command -v swanctl >/dev/null || missing+=(swanctl)
    for p in $SS_PLUGINS; do
        [ -e "/usr/lib/ipsec/plugins/libstrongswan-$p.so" ] || missing+=("plugin $p")
    done
    [ ${#missing[@]} = 0 ] && return 0
    echo "${missing[*]}"
    return 1
}

ss_install() {
    ss_installed >/dev/null && return 0
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq || true
    # shellcheck disable=SC2086
    apt-get install -y -qq $SS_PACKAGES >/dev/null
}

# ------------------------------------------------------------ namespaces --
ss_ns_add() {
    ip netns add "$1" || return 1
    ip -n "$1" link set lo up
    # no router solicitations on the veths / TUN (charon log noise)
    ip netns exec "$1" sysctl -qw net.ipv6.conf.all.router_solicitations=0 \
        net.ipv6.conf.default.router_solicitations=0 2>/dev/null || true
}

# ss_veth NS1 IF1 NS2 IF2
ss_veth() {
    ip link add "$2" netns "$1" type veth peer name "$4" netns "$3" || return 1
    ip -n "$1" link set "$2" up && ip -n "$3" link set "$4" up
}

# ss_net basic|nat
ss_net() {
    local a=${SS_NS}A b=${SS_NS}B r=${SS_NS}R ns
    for ns in $a $b $r; do
        if ip netns list | grep -qw "$ns"; then
            ss_log "netns $ns exists already (another run? 'peer.sh down' removes ours)"; return 1
        fi
    done
    ss_ns_add "$a" && ss_ns_add "$b" || return 1
    case "$1" in
        basic)
            ss_veth "$a" "${SS_NS}A0" "$b" "${SS_NS}B0" || return 1
            ip -n "$a" addr add 192.0.2.1/24 dev "${SS_NS}A0"
            ip -n "$b" addr add 192.0.2.2/24 dev "${SS_NS}B0"
            ip -n "$a" addr add 2001:db8:2::1/64 dev "${SS_NS}A0" nodad
            ip -n "$b" addr add 2001:db8:2::2/64 dev "${SS_NS}B0" nodad
            ;;
        nat)
            ss_ns_add "$r" || return 1
            ss_veth "$a" "${SS_NS}A0" "$r" "${SS_NS}Ra" || return 1
            ss_veth "$r" "${SS_NS}Rb" "$b" "${SS_NS}B0" || return 1
            ip -n "$a" addr add 198.51.100.10/24 dev "${SS_NS}A0"
            ip -n "$r" addr add 198.51.100.1/24 dev "${SS_NS}Ra"
            ip -n "$r" addr add 203.0.113.1/24 dev "${SS_NS}Rb"
            ip -n "$b" addr add 203.0.113.2/24 dev "${SS_NS}B0"
            ip -n "$a" route add default via 198.51.100.1
            ip netns exec "$r" sysctl -qw net.ipv4.ip_forward=1
            ip netns exec "$r" nft -f - <<NFT || { ss_log "nft masquerade in $r failed"; return 1; }
table ip pisnat {
  chain post {
    type nat hook postrouting priority srcnat; policy accept;
    oifname "${SS_NS}Rb" meta l4proto udp masquerade to :20000-20999
    oifname "${SS_NS}Rb" masquerade
  }
}
NFT
            ;;
        *) ss_log "ss_net: basic or nat, not '$1'"; return 1 ;;
    esac
    ip -n "$a" addr add 10.200.1.1/32 dev lo
    ip -n "$a" addr add fd00:200:1::1/128 dev lo
    ip -n "$b" addr add 10.200.2.1/32 dev lo
    ip -n "$b" addr add fd00:200:2::1/128 dev lo
}

ss_net_down() {
    local ns
    for ns in ${SS_NS}A ${SS_NS}B ${SS_NS}R; do
        ip netns list | grep -qw "$ns" && ip netns del "$ns"
    done
    return 0
}

# --------------------------------------------------------------- charon --
# swanctl against the running instance
ss_swanctl() {
    STRONGSWAN_CONF="$SS_DIR/strongswan.conf" swanctl "$@" --uri "unix://$SS_DIR/charon.vici"
}

# ss_start NS [--role initiator|responder] [--local A] [--remote A|%any]
#   [--local-id ID] [--remote-id ID] [--local-ts CIDR] [--remote-ts CIDR]
#   [--psk S] [--ike P] [--esp P] [--dpd SECS] [--rekey SECS] [--ike-rekey SECS]
#   [--keylog]   (chd log level 4: charon logs the CHILD_SA keys, for comparison)
# Starts charon in NS with a generated strongswan.conf and swanctl.conf
# (connection "pal", child "net") and loads them. SS_PID is charon's PID.
ss_start() {
    local ns=$1; shift
    local role=responder local=%any remote=%any lid="" rid=%any lts=10.200.2.0/24 rts=10.200.1.0/24
    local psk=palisade-interop-psk ike=aes256gcm16-prfsha256-x25519 esp=aes256gcm16
    local dpd=0 rekey=0 ikerekey=0 chd=2
    while [ $# -gt 0 ]; do
        case "$1" in
            --role) role=$2 ;; --local) local=$2 ;; --remote) remote=$2 ;;
            --local-id) lid=$2 ;; --remote-id) rid=$2 ;; --local-ts) lts=$2 ;; --remote-ts) rts=$2 ;;
            --psk) psk=$2 ;; --ike) ike=$2 ;; --esp) esp=$2 ;; --dpd) dpd=$2 ;;
            --rekey) rekey=$2 ;; --ike-rekey) ikerekey=$2 ;;
            --keylog) chd=4; shift; continue ;;
            *) ss_log "ss_start: unknown option $1"; return 1 ;;
        esac
        shift 2
    done
    [ -n "$lid" ] || lid=$local
    # strongSwan's default hard limit is 10 % over the rekey time, in whole
    # seconds: 0 s for short test times, and the SA would expire instead of
    # being rekeyed. No random jitter either, so a test knows when to expect it.
    # SS_LIFE_SLACK (default 10 s) is how much longer the hard limit is.
    local ike_life="" child_life="" slack=${SS_LIFE_SLACK:-10}
    [ "$ikerekey" = 0 ] || ike_life=$'\n    over_time = '"$slack"$'s\n    rand_time = 0s'
    [ "$rekey" = 0 ] || child_life=$'\n        life_time = '"$((rekey + slack))"$'s\n        rand_time = 0s'
    local d=$SS_DIR
    rm -rf "$d/run" "$d/swanctl" "$d/charon.log" "$d/charon.vici"
    mkdir -p "$d/run" "$d"/swanctl/{conf.d,x509,x509ca,x509ocsp,x509aa,x509ac,x509crl,pubkey,private,rsa,ecdsa,bliss,pkcs8,pkcs12}
    cat >"$d/strongswan.conf" <<CONF
# generated by scripts/checks/strongswan/peer.sh
charon {
  load_modular = no
  load = $SS_PLUGINS
  # a dead peer is given up after 1 + 1.4 + 2 s, not minutes (more sends
  # with SS_RETRANSMIT_TRIES, for a lossy wire)
  retransmit_timeout = 1.0
  retransmit_base = 1.4
  retransmit_tries = ${SS_RETRANSMIT_TRIES:-2}
  plugins {
    vici { socket = unix://$d/charon.vici }
  }
  filelog {
    main {
      path = $d/charon.log
      time_format = %H:%M:%S
      time_add_ms = yes
      ike_name = yes
      flush_line = yes
      default = 1
      ike = 2
      cfg = 2
      chd = $chd
$(for l in ${SS_LOGLEVELS:-}; do echo "      ${l%%=*} = ${l#*=}"; done)
    }
  }
  syslog { daemon { default = -1 } auth { default = -1 } }
}
swanctl {
  load = pem pkcs1 pkcs8 x509 pubkey openssl random nonce
}
CONF
    cat >"$d/swanctl/swanctl.conf" <<CONF
connections {
  pal {
    version = 2
    local_addrs = $local
    remote_addrs = $remote
    proposals = $ike
    mobike = no
    dpd_delay = ${dpd}s
    rekey_time = ${ikerekey}s$ike_life
    local { auth = psk
            id = $lid }
    remote { auth = psk
             id = $rid }
    children {
      net {
        local_ts = $lts
        remote_ts = $rts
        esp_proposals = $esp
        rekey_time = ${rekey}s$child_life
        dpd_action = clear
        start_action = none
      }
    }
  }
}
secrets {
  ike-pal {
    id-1 = $lid
    id-2 = $rid
    secret = "$psk"
  }
}
CONF
    chmod 600 "$d/swanctl/swanctl.conf"
    echo "$role" >"$d/role"
    # ip, unshare and sh all exec: $! is charon's PID.
    ip netns exec "$ns" unshare -m --propagation private sh -c \
        "mount --bind '$d/run' /run && STRONGSWAN_CONF='$d/strongswan.conf' exec '$SS_CHARON'" \
        >"$d/charon.out" 2>&1 </dev/null &
    SS_PID=$!
    echo "$SS_PID" >"$d/pid"
    local i
    for i in $(seq 100); do
        [ -S "$d/charon.vici" ] && break
        kill -0 "$SS_PID" 2>/dev/null || break
        sleep 0.05
    done
    if [ ! -S "$d/charon.vici" ]; then
        ss_log "charon did not start in $ns:"; tail -n 20 "$d/charon.out" "$d/charon.log" >&2 2>/dev/null
        return 1
    fi
    SWANCTL_DIR="$d/swanctl" ss_swanctl --load-all --noprompt >"$d/load.out" 2>&1 || {
        ss_log "swanctl --load-all failed:"; cat "$d/load.out" >&2; return 1; }
}

ss_initiate() { ss_swanctl --initiate --child net --timeout "${1:-20}"; }
ss_terminate_ike() { ss_swanctl --terminate --ike pal --timeout "${1:-10}"; }
ss_terminate_child() { ss_swanctl --terminate --child net --timeout "${1:-10}"; }
ss_list_sas() { ss_swanctl --list-sas; }

# ss_stop [TERM|KILL]: end the charon we started (by PID, after checking it is charon).
ss_stop() {
    local pid i
    pid=$(cat "$SS_DIR/pid" 2>/dev/null) || return 0
    # (stderr off for the whole block: bash reports a killed job where it reaps it)
    {
        if [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = charon ]; then
            kill -s "${1:-TERM}" "$pid"
            for i in $(seq 50); do kill -0 "$pid" || break; sleep 0.05; done
            kill -0 "$pid" && kill -s KILL "$pid"
        fi
        wait "$pid"
    } 2>/dev/null
    rm -f "$SS_DIR/pid"
    return 0
}

ss_down() { ss_stop TERM; ss_net_down; }

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    cmd=${1:-help}; shift || true
    mkdir -p "$SS_DIR"
    case "$cmd" in
        install) ss_install ;;
        net) ss_net "${1:-basic}" ;;
        start) ss_start "$@" && ss_log "charon pid $SS_PID, log $SS_DIR/charon.log" ;;
        initiate) ss_initiate "$@" ;;
        terminate) ss_terminate_ike "$@" ;;
        list-sas) ss_list_sas ;;
        log) cat "$SS_DIR/charon.log" ;;
        stop) ss_stop TERM ;;
        kill) ss_stop KILL ;;
        down) ss_down ;;
        *) sed -n '2,12p' "$0"; exit 2 ;;
    esac
fi

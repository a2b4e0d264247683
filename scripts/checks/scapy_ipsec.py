#!/usr/bin/env python3
"""scapy as an independent ESP/AH oracle for palisade.

scapy's `scapy.layers.ipsec.SecurityAssociation` is a separate implementation
of ESP (RFC 4303) and AH (RFC 4302), built on pyca/cryptography.  This script is
the scapy half of the cross-check run by
`crates/palisade-sa/tests/cross_scapy.rs`:

    scapy_ipsec.py gen-matrix           print the case matrix (JSON, one case a line)
    scapy_ipsec.py check-matrix FILE    fail if FILE is not what gen-matrix prints
    scapy_ipsec.py selftest FILE        scapy seals and opens every case itself
    scapy_ipsec.py run DIR              the cross-check step (below)

`run DIR` reads DIR/palisade.json, written by the Rust test:

    {"cases": [{"name": ..., "packets": [{"seq": <u64>, "sealed": <hex>}, ...]}]}

and, for every case of the matrix named there, for every packet:

  1. palisade -> scapy: checks the outer headers palisade wrote (IPv4 header
     checksum, lengths, UDP ports/checksum), then opens palisade's packet with
     scapy and compares the result with the original inner packet, byte for byte;
  2. same bytes: seals the original again with scapy, reusing palisade's IV and
     outer header fields (TTL, ID, ...), and reports whether the two sealed
     packets are identical (informational: padding is the sender's choice);
  3. scapy -> palisade: seals the original with scapy (IV derived from the case
     name, so a failure reproduces) for the Rust test to open with palisade.

The results go to DIR/scapy.json; the Rust test prints the table.

Where scapy departs from an RFC, this script follows the RFC and says so at the
place it does (search for "RFC wins"):

  * ENCR_AES_GCM_8/12 (RFC 4106 ICV 8/12): scapy's 'AES-GCM' uses the
    cryptography AEAD API, which always emits a 16-octet tag; `crypt_icv_size`
    only changes how many octets scapy *reads* as ICV on decryption.  Sealed
    packets are therefore 16-octet-ICV packets whatever was asked, and a real
    8-octet-ICV packet cannot be opened.  For these we hand the SA a CryptAlgo
    built on cryptography's streaming GCM mode (modes.GCM), which truncates and
    verifies truncated tags; everything else (framing, nonce = salt||IV, AAD)
    is still scapy's code.
  * ESP-in-UDP over IPv6: scapy always sends UDP checksum 0 (RFC 3948 2.1 allows
    that for IPv4).  RFC 8200 8.1 forbids a zero UDP checksum over IPv6 (RFC 6936
    only allows it for tunnel protocols that opt in, and RFC 3948 does not), so
    we fill in the real checksum on scapy's IPv6 packets before palisade sees them.
  * scapy's ESP padding is the RFC 4303 2.4 default (1, 2, 3, ...) to a 4-octet
    multiple of the block size, without TFC padding; a different padding length
    from palisade is legal, so "same bytes" is reported, never failed.  palisade
    pads AES-GCM to whole 16-octet blocks (legal, and cheaper to encrypt), so for
    the "same bytes" re-seal only, scapy's GCM is given block size 16; the
    packets scapy seals for palisade to open keep scapy's 4-octet padding.
"""

import copy
import hashlib
import json
import os
import struct
import sys
import traceback
import warnings

# scapy prints a banner/warnings on import of scapy.all; import only the layers.
from scapy.compat import raw
from scapy.layers.inet import ICMP, IP, UDP, IPOption_Router_Alert, IPOption_RR, in4_chksum
from scapy.layers.inet6 import (
    HBHOptUnknown,
    ICMPv6EchoRequest,
    IPv6,
    IPv6ExtHdrHopByHop,
    RouterAlert,
    in6_chksum,
)
from scapy.layers import ipsec as scapy_ipsec
from scapy.layers.ipsec import AH, ESP, SecurityAssociation
from scapy.packet import Raw

from cryptography.hazmat.primitives.ciphers import algorithms, modes

# scapy runs single-DES as TripleDES with one 8-octet key, which cryptography
# flags as deprecated on every packet; DES is under test here on purpose.
warnings.filterwarnings("ignore", message="Single-key TripleDES")

# --------------------------------------------------------------------------
# Algorithms: IANA IKEv2 transform IDs (RFC 7296 3.3.2 registry), the name
# scapy gives the same algorithm, and the key material layout.
# --------------------------------------------------------------------------

# name -> (ENCR id, key bits, salt octets, ICV octets, scapy crypt_algo, insecure)
# The keymat of an ESP SA is key || salt (RFC 4106 8.1, 4309 7.1, 4543 3.2,
# 3686 5.1, 7634 2), which is also how scapy wants `crypt_key`.
ENCR = {
    "null": (11, 0, 0, 0, "NULL", False),
    "aes128": (12, 128, 0, 0, "AES-CBC", False),
    "aes192": (12, 192, 0, 0, "AES-CBC", False),
    "aes256": (12, 256, 0, 0, "AES-CBC", False),
    "aes128ctr": (13, 128, 4, 0, "AES-CTR", False),
    "aes192ctr": (13, 192, 4, 0, "AES-CTR", False),
    "aes256ctr": (13, 256, 4, 0, "AES-CTR", False),
    "des": (2, 64, 0, 0, "DES", True),
    "3des": (3, 192, 0, 0, "3DES", True),
    "chacha20poly1305": (28, 256, 4, 16, "CHACHA20-POLY1305", False),
    # scapy implements these, palisade deliberately does not (cases below
    # check that palisade refuses them instead of mis-sealing).
    "cast128": (6, 128, 0, 0, "CAST", True),
    "blowfish128": (7, 128, 0, 0, "Blowfish", True),
}
for _bits in (128, 192, 256):
    for _icv, _gcm_id, _ccm_id in ((8, 18, 14), (12, 19, 15), (16, 20, 16)):
        ENCR["aes%dgcm%d" % (_bits, _icv)] = (_gcm_id, _bits, 4, _icv, "AES-GCM", False)
        ENCR["aes%dccm%d" % (_bits, _icv)] = (_ccm_id, _bits, 3, _icv, "AES-CCM", False)
    ENCR["aes%dgmac" % _bits] = (21, _bits, 4, 16, "AES-NULL-GMAC", False)

# name -> (INTEG id, key octets, ICV octets, scapy auth_algo, insecure)
INTEG = {
    "md5": (1, 16, 12, "HMAC-MD5-96", True),
    "sha1": (2, 20, 12, "HMAC-SHA1-96", False),
    "aescmac": (8, 16, 12, "AES-CMAC-96", False),
    "sha256": (12, 32, 16, "SHA2-256-128", False),
    "sha384": (13, 48, 24, "SHA2-384-192", False),
    "sha512": (14, 64, 32, "SHA2-512-256", False),
}

# ESP suites of the full matrix (strongSwan proposal syntax), each crossed with
# mode x IP version x ESN x encapsulation.  Every scapy encryption algorithm and
# key size appears, every ICV length of GCM and CCM, every integrity algorithm
# with NULL encryption (deterministic, so byte identity is meaningful) and with
# a cipher.
ESP_SUITES = [
    "null-sha1", "null-sha256", "null-sha384", "null-sha512", "null-md5", "null-aescmac",
    "aes128-sha1", "aes192-sha384", "aes256-sha256", "aes256-sha512",
    "aes128-md5", "aes128-aescmac",
    "aes128ctr-sha256", "aes192ctr-sha1", "aes256ctr-sha512",
    "aes128gcm16", "aes192gcm16", "aes256gcm16", "aes128gcm8", "aes256gcm12",
    "aes128ccm16", "aes192ccm16", "aes256ccm16", "aes128ccm8", "aes256ccm12",
    "aes128gmac", "aes192gmac", "aes256gmac",
    "chacha20poly1305",
    "des-sha1", "3des-sha1", "3des-md5",
]
# One case each: palisade must refuse these transforms (not implemented).
ESP_UNSUPPORTED = ["cast128-sha1", "blowfish128-sha256"]
AH_SUITES = ["sha1", "sha256", "sha384", "sha512", "md5", "aescmac"]

# Addresses from the documentation ranges (RFC 5737, RFC 3849) and ULAs.
HOST4 = ("192.0.2.1", "198.51.100.2")  # transport-mode endpoints
HOST6 = ("2001:db8:1::1", "2001:db8:2::2")
GW4 = ("203.0.113.1", "203.0.113.2")  # tunnel-mode outer header
GW6 = ("2001:db8:ffff::1", "2001:db8:ffff::2")
LAN4 = ("10.1.0.5", "10.2.0.7")  # tunnel-mode inner packets
LAN6 = ("fd00:1::5", "fd00:2::7")

NAT_T_PORTS = (4500, 4500)
# Sequence numbers: without ESN the first three of a fresh SA; with ESN three
# that cross a 2^32 boundary with a non-zero high half, so the high 32 bits are
# exercised in the ICV/AAD and a wrong order (low||high) would show.
START_SEQ_NO_ESN = 1
START_SEQ_ESN = (2 << 32) | 0xFFFFFFFE
PACKETS_PER_CASE = 3


def derive(name, label, n):
    """n octets deterministically derived from a case name (test keys, IVs)."""
    return hashlib.shake_256(("palisade-scapy:%s:%s" % (label, name)).encode()).digest(n)


# --------------------------------------------------------------------------
# Inner packets, by name.  Built here once so that the matrix file holds the
# exact bytes both sides start from.
# --------------------------------------------------------------------------

def _payload(n):
    return bytes((i * 7 + 3) & 0xFF for i in range(n))


def inner_packets():
    """name -> raw inner packet.  't' = transport (host addresses), 'n' = tunnel
    (LAN addresses).  Payload sizes 1, 22, 45 give different ESP pad lengths."""
    pkts = {}
    for n in (1, 22, 45):
        pkts["t4-udp-%d" % n] = IP(src=HOST4[0], dst=HOST4[1], id=0x1234, ttl=64) / UDP(sport=5001, dport=5002) / Raw(_payload(n))
        pkts["t4-icmp-%d" % n] = IP(src=HOST4[0], dst=HOST4[1], id=0x1235, ttl=64) / ICMP(id=7, seq=n) / Raw(_payload(n))
        pkts["t6-udp-%d" % n] = IPv6(src=HOST6[0], dst=HOST6[1], hlim=64) / UDP(sport=5001, dport=5002) / Raw(_payload(n))
        pkts["t6-icmp-%d" % n] = IPv6(src=HOST6[0], dst=HOST6[1], hlim=64) / ICMPv6EchoRequest(id=7, seq=n, data=_payload(n))
        pkts["n4-udp-%d" % n] = IP(src=LAN4[0], dst=LAN4[1], id=0x4321, ttl=63, tos=0x28) / UDP(sport=6001, dport=6002) / Raw(_payload(n))
        pkts["n6-icmp-%d" % n] = IPv6(src=LAN6[0], dst=LAN6[1], hlim=63, tc=0x28, fl=0x12345) / ICMPv6EchoRequest(id=9, seq=n, data=_payload(n))
    # Headers AH must treat field by field (RFC 4302 3.3.3.1 and Appendix A):
    # IPv4 options, one immutable (Router Alert) and one mutable (Record Route,
    # zeroed for the ICV); an IPv6 Hop-by-Hop header with an immutable option
    # (Router Alert) and one whose type has the "may change en route" bit 0x20
    # set (its data is zeroed for the ICV).  Also non-zero TOS/DF, zeroed too.
    pkts["t4-opts-udp-22"] = IP(src=HOST4[0], dst=HOST4[1], id=0x1236, ttl=64, tos=0xB8, flags="DF",
                                options=[IPOption_Router_Alert(), IPOption_RR(routers=["192.0.2.1"])]) \
        / UDP(sport=5001, dport=5002) / Raw(_payload(22))
    pkts["t6-hbh-udp-22"] = IPv6(src=HOST6[0], dst=HOST6[1], hlim=64, tc=0xB8, fl=0xABCDE) \
        / IPv6ExtHdrHopByHop(options=[RouterAlert(), HBHOptUnknown(otype=0x3E, optdata=b"\x11\x22\x33\x44")]) \
        / UDP(sport=5001, dport=5002) / Raw(_payload(22))
    # raw() fills every length and checksum; re-dissect so nothing is lazy.
    return {k: raw(v) for k, v in pkts.items()}


def packets_for(mode, ip, edge=None):
    if edge:
        return [edge] * PACKETS_PER_CASE
    if mode == "tunnel":  # inner family alternates: 4-in-x and 6-in-x
        return ["n4-udp-1", "n6-icmp-22", "n4-udp-45"]
    return ["t%d-udp-1" % ip, "t%d-icmp-22" % ip, "t%d-udp-45" % ip]


# --------------------------------------------------------------------------
# The matrix.
# --------------------------------------------------------------------------

def _case(proto, suite, mode, ip, esn, udp, edge=None, expect="supported", note=None):
    parts = [proto, suite, mode, "v%d" % ip, "esn" if esn else "noesn"]
    if proto == "esp":
        parts.append("udp" if udp else "raw")
    if edge:
        parts.append(edge.split("-")[1])  # "opts" / "hbh"
    name = "-".join(parts)

    case = {
        "name": name,
        "proto": proto,
        "mode": mode,
        "ip": ip,
        "esn": esn,
        "spi": 0x10000000 | int.from_bytes(derive(name, "spi", 4), "big") & 0x0FFFFFFF,
        "start_seq": START_SEQ_ESN if esn else START_SEQ_NO_ESN,
        "packets": packets_for(mode, ip, edge),
        "expect": expect,
        "insecure": False,
        "encr": None,
        "integ": None,
        "tunnel": None,
        "udp_encap": None,
    }
    if mode == "tunnel":
        src, dst = GW4 if ip == 4 else GW6
        case["tunnel"] = {"src": src, "dst": dst}
    if udp:
        case["udp_encap"] = {"sport": NAT_T_PORTS[0], "dport": NAT_T_PORTS[1]}

    if proto == "esp":
        encr_name, _, integ_name = suite.partition("-")
    else:
        encr_name, integ_name = None, suite
    if encr_name:
        eid, bits, salt, icv, sname, insecure = ENCR[encr_name]
        case["encr"] = {"name": encr_name, "id": eid, "key_bits": bits, "salt_len": salt,
                        "icv_len": icv, "scapy": sname,
                        "keymat": derive(name, "encr", bits // 8 + salt).hex()}
        case["insecure"] |= insecure
    if integ_name:
        iid, klen, icv, sname, insecure = INTEG[integ_name]
        case["integ"] = {"name": integ_name, "id": iid, "icv_len": icv, "scapy": sname,
                         "key": derive(name, "integ", klen).hex()}
        case["insecure"] |= insecure
    if note:
        case["note"] = note
    return case


def gen_matrix():
    cases = []
    for suite in ESP_SUITES:
        for mode in ("transport", "tunnel"):
            for ip in (4, 6):
                for esn in (False, True):
                    for udp in (False, True):
                        cases.append(_case("esp", suite, mode, ip, esn, udp))
    for suite in AH_SUITES:
        for mode in ("transport", "tunnel"):
            for ip in (4, 6):
                for esn in (False, True):
                    cases.append(_case("ah", suite, mode, ip, esn, False))
    # Edge cases: mutable/immutable IPv4 options and IPv6 extension headers.
    for proto, suite in (("ah", "sha256"), ("ah", "sha1"), ("esp", "aes128gcm16"), ("esp", "aes128-sha256")):
        cases.append(_case(proto, suite, "transport", 4, False, False, edge="t4-opts-udp-22",
                           note="IPv4 options: Router Alert (immutable) + Record Route (mutable, zeroed in the AH ICV)"))
        cases.append(_case(proto, suite, "transport", 6, False, False, edge="t6-hbh-udp-22",
                           note="IPv6 Hop-by-Hop: Router Alert + option 0x3e (change-en-route bit: data zeroed in the AH ICV); ESP/AH go after it"))
    for suite in ESP_UNSUPPORTED:
        cases.append(_case("esp", suite, "tunnel", 4, False, False, expect="unsupported",
                           note="scapy implements it; palisade must refuse to build the SA (not implemented)"))
    names = [c["name"] for c in cases]
    assert len(names) == len(set(names)), "duplicate case names"
    return {
        "comment": "Generated by scripts/checks/scapy_ipsec.py gen-matrix; do not edit by hand. "
                   "keymat = key || salt; keys are derived from the case name. "
                   "Sequence numbers are start_seq, start_seq+1, ... (64-bit when esn).",
        "inner_packets": {k: v.hex() for k, v in sorted(inner_packets().items())},
        "cases": cases,
    }


def dump_matrix(m):
    """JSON with one case (and one inner packet) a line: diffs and grep name a case."""
    out = ['{', '  "comment": %s,' % json.dumps(m["comment"]), '  "inner_packets": {']
    items = list(m["inner_packets"].items())
    out += ['    %s: %s%s' % (json.dumps(k), json.dumps(v), "," if i + 1 < len(items) else "")
            for i, (k, v) in enumerate(items)]
    out += ['  },', '  "cases": [']
    out += ['    %s%s' % (json.dumps(c, sort_keys=True), "," if i + 1 < len(m["cases"]) else "")
            for i, c in enumerate(m["cases"])]
    out += ['  ]', '}']
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------
# scapy Security Associations for a case.
# --------------------------------------------------------------------------

def _gcm_truncated_icv():
    """AES-GCM through cryptography's streaming GCM mode, which can emit and
    verify 8/12-octet tags.  RFC wins over scapy's 'AES-GCM' (see module doc)."""
    return scapy_ipsec.CryptAlgo(
        "AES-GCM", cipher=algorithms.AES, mode=modes.GCM, key_size=(16, 24, 32),
        block_size=1, iv_size=8, salt_size=4, icv_size=16,
        format_mode_iv=lambda sa, iv, **kw: sa.crypt_salt + iv)


def split_seq(seq):
    return seq >> 32, seq & 0xFFFFFFFF


def outer_template(case, sealed=None):
    """The tunnel header for scapy.  With `sealed` (palisade's packet), copy the
    fields palisade chose (TTL, ID, DF, TOS/TC, flow label) so that scapy's
    packet can be compared byte for byte."""
    if case["mode"] != "tunnel":
        return None
    t = case["tunnel"]
    if case["ip"] == 4:
        hdr = IP(src=t["src"], dst=t["dst"], ttl=64, id=0)
        if sealed is not None:
            o = IP(sealed)
            hdr.ttl, hdr.id, hdr.flags, hdr.tos = o.ttl, o.id, o.flags, o.tos
    else:
        hdr = IPv6(src=t["src"], dst=t["dst"], hlim=64)
        if sealed is not None:
            o = IPv6(sealed)
            hdr.hlim, hdr.tc, hdr.fl = o.hlim, o.tc, o.fl
    return hdr


def scapy_sa(case, seq, sealed=None):
    """A fresh scapy SA positioned at 64-bit sequence number `seq`.

    scapy keeps the ESN high half as a fixed SA attribute (`esn`) and never
    carries into it, so every packet gets its own SA.  Note scapy's
    `seq_num or self.seq_num`: a per-call seq_num of 0 would be ignored, which
    is why the sequence number is given to the constructor instead."""
    high, low = split_seq(seq)
    kw = dict(spi=case["spi"], seq_num=low, esn_en=case["esn"], esn=high if case["esn"] else 0,
              tunnel_header=outer_template(case, sealed))
    if case["integ"]:
        kw["auth_algo"] = case["integ"]["scapy"]
        kw["auth_key"] = bytes.fromhex(case["integ"]["key"])
    if case["proto"] == "ah":
        return SecurityAssociation(AH, **kw)

    e = case["encr"]
    kw["crypt_algo"] = e["scapy"]
    kw["crypt_key"] = bytes.fromhex(e["keymat"]) or None
    if e["icv_len"]:
        kw["crypt_icv_size"] = e["icv_len"]
    if case["udp_encap"]:
        if sealed is not None:
            sport, dport = _udp_of(sealed).sport, _udp_of(sealed).dport
        else:
            sport, dport = case["udp_encap"]["sport"], case["udp_encap"]["dport"]
        kw["nat_t_header"] = UDP(sport=sport, dport=dport)
    sa = SecurityAssociation(ESP, **kw)
    if e["scapy"] == "AES-GCM" and e["icv_len"] != 16:
        sa.crypt_algo = _gcm_truncated_icv()  # salt split above is the same (4)
    return sa


def parse_ip(data):
    return IP(data) if data[0] >> 4 == 4 else IPv6(data)


def _udp_of(data):
    return parse_ip(data)[UDP]


def iv_len(case):
    if case["proto"] != "esp":
        return 0
    return scapy_ipsec.CRYPT_ALGOS[case["encr"]["scapy"]].iv_size


def seal_with_scapy(case, inner, seq, iv, sealed_template=None):
    sa = scapy_sa(case, seq, sealed_template)
    if sealed_template is not None and case["proto"] == "esp" and sa.crypt_algo.name == "AES-GCM":
        # Pad as palisade does (see the module doc), on a copy of the algorithm.
        algo = copy.copy(sa.crypt_algo)
        algo.block_size = 16
        sa.crypt_algo = algo
    pkt = parse_ip(inner)
    if case["proto"] == "ah":
        out = raw(sa.encrypt(pkt))
    else:
        out = raw(sa.encrypt(pkt, iv=iv))
    if case["udp_encap"] and case["ip"] == 6:
        # RFC wins: scapy leaves the UDP checksum 0 even over IPv6, which RFC
        # 8200 8.1 forbids.  Recompute it.
        p = IPv6(out)
        del p[UDP].chksum
        out = raw(p)
    return out


def open_with_scapy(case, sealed, seq):
    return raw(scapy_sa(case, seq).decrypt(parse_ip(sealed)))


# --------------------------------------------------------------------------
# Checks on palisade's packets.
# --------------------------------------------------------------------------

def _ip_checksum_ok(data):
    ihl = (data[0] & 0xF) * 4
    s = sum(struct.unpack("!%dH" % (ihl // 2), data[:ihl]))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s == 0xFFFF


def outer_problems(case, sealed, seq):
    """What is wrong with the headers palisade put around the ESP/AH payload
    (scapy would not complain about these itself)."""
    probs = []
    pkt = parse_ip(sealed)
    if pkt.version != case["ip"]:
        return ["outer IP version %d, expected %d" % (pkt.version, case["ip"])]
    if case["ip"] == 4:
        if pkt.len != len(sealed):
            probs.append("IPv4 total length %d != packet length %d" % (pkt.len, len(sealed)))
        if not _ip_checksum_ok(sealed):
            probs.append("IPv4 header checksum wrong")
    else:
        if pkt.plen != len(sealed) - 40:
            probs.append("IPv6 payload length %d != %d" % (pkt.plen, len(sealed) - 40))
    if case["mode"] == "tunnel":
        want = (case["tunnel"]["src"], case["tunnel"]["dst"])
        if (pkt.src, pkt.dst) != want:
            probs.append("outer addresses %s->%s, expected %s->%s" % (pkt.src, pkt.dst) + want)
    if case["udp_encap"]:
        if UDP not in pkt:
            probs.append("no UDP header (UDP encapsulation expected)")
        else:
            u = pkt[UDP]
            if (u.sport, u.dport) != (case["udp_encap"]["sport"], case["udp_encap"]["dport"]):
                probs.append("UDP ports %d->%d" % (u.sport, u.dport))
            if u.len != len(raw(u)):
                probs.append("UDP length %d != %d" % (u.len, len(raw(u))))
            if case["ip"] == 6 and u.chksum == 0:
                probs.append("UDP checksum 0 over IPv6 (RFC 8200 8.1)")
            elif u.chksum != 0 and u.chksum != _udp_checksum(pkt):
                probs.append("UDP checksum 0x%04x, correct is 0x%04x" % (u.chksum, _udp_checksum(pkt)))
    layer = AH if case["proto"] == "ah" else ESP
    if layer not in pkt:
        probs.append("no %s header where expected" % layer.name)
    else:
        hdr = pkt[layer]
        if hdr.spi != case["spi"]:
            probs.append("SPI 0x%08x, expected 0x%08x" % (hdr.spi, case["spi"]))
        if hdr.seq != seq & 0xFFFFFFFF:
            probs.append("sequence number %d, expected %d" % (hdr.seq, seq & 0xFFFFFFFF))
    return probs


def _udp_checksum(pkt):
    """The correct UDP checksum of the (first) UDP header in pkt."""
    u = raw(pkt[UDP])
    u = u[:6] + b"\x00\x00" + u[8:]
    ip = pkt[IP] if pkt.version == 4 else pkt[IPv6]
    csum = (in4_chksum if pkt.version == 4 else in6_chksum)(17, ip, u)
    return csum or 0xFFFF  # RFC 768: a computed 0 is sent as all ones


def esp_padding(case, sealed, seq):
    """Pad length and whether the pad is RFC 4303 2.4's default 1, 2, 3, ..."""
    sa = scapy_sa(case, seq)
    pkt = parse_ip(sealed)
    icv = (sa.crypt_icv_size or sa.crypt_algo.icv_size or sa.auth_algo.icv_size)
    plain = sa.crypt_algo.decrypt(sa, pkt[ESP], sa.crypt_key, icv,
                                  esn_en=sa.esn_en, esn=sa.esn)
    default = plain.padding == bytes(range(1, plain.padlen + 1))
    return plain.padlen, default


def first_difference(a, b):
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return min(len(a), len(b))


def check_case(case, inner_by_name, palisade_packets):
    """All scapy-side checks of one case; returns the result record."""
    res = {"name": case["name"], "packets": []}
    for idx, pp in enumerate(palisade_packets):
        seq = pp["seq"]
        inner = inner_by_name[case["packets"][idx]]
        rec = {"seq": seq}
        # Seal with scapy first: it does not depend on palisade at all.
        iv = derive(case["name"], "iv-%d" % seq, iv_len(case))
        try:
            rec["scapy_sealed"] = seal_with_scapy(case, inner, seq, iv).hex()
        except Exception as ex:  # report, do not stop the other cases
            rec["scapy_sealed"] = None
            rec["scapy_seal_error"] = "%s: %s" % (type(ex).__name__, ex)

        sealed = bytes.fromhex(pp["sealed"]) if pp.get("sealed") else None
        if sealed is None:
            rec["palisade_to_scapy"] = "not run: %s" % pp.get("error", "palisade did not seal")
            res["packets"].append(rec)
            continue
        try:
            probs = outer_problems(case, sealed, seq)
            opened = open_with_scapy(case, sealed, seq)
            if opened != inner:
                at = first_difference(opened, inner)
                probs.append("scapy opened it but got different bytes (first difference at octet %d):\n"
                             "      got  %s\n      want %s" % (at, opened.hex(), inner.hex()))
            rec["palisade_to_scapy"] = "ok" if not probs else "; ".join(probs)
        except Exception as ex:
            rec["palisade_to_scapy"] = "scapy could not open it: %s: %s" % (type(ex).__name__, ex)
            res["packets"].append(rec)
            continue

        # Informational: would scapy, given palisade's IV and outer fields,
        # produce the very same packet?
        try:
            again = seal_with_scapy(case, inner, seq, sealed_iv(case, sealed), sealed_template=sealed)
            if again == sealed:
                rec["same_bytes"] = "identical"
            else:
                rec["same_bytes"] = "differ from octet %d (palisade %d octets, scapy %d)" % (
                    first_difference(again, sealed), len(sealed), len(again))
            if case["proto"] == "esp":
                padlen, default = esp_padding(case, sealed, seq)
                rec["pad"] = "%d%s" % (padlen, "" if default else " (not 1,2,3,...)")
        except Exception as ex:
            rec["same_bytes"] = "not compared: %s: %s" % (type(ex).__name__, ex)
        res["packets"].append(rec)
    return res


def sealed_iv(case, sealed):
    n = iv_len(case)
    if case["proto"] != "esp" or n == 0:
        return None
    return bytes(parse_ip(sealed)[ESP].data[:n])


# --------------------------------------------------------------------------
# Commands.
# --------------------------------------------------------------------------

def load_matrix(path):
    with open(path) as f:
        m = json.load(f)
    inner = {k: bytes.fromhex(v) for k, v in m["inner_packets"].items()}
    return m, inner


def cmd_run(dirpath, matrix_path):
    m, inner = load_matrix(matrix_path)
    by_name = {c["name"]: c for c in m["cases"]}
    with open(os.path.join(dirpath, "palisade.json")) as f:
        pal = json.load(f)
    results = []
    for pc in pal["cases"]:
        case = by_name.get(pc["name"])
        if case is None:
            results.append({"name": pc["name"], "error": "not in the matrix"})
            continue
        try:
            results.append(check_case(case, inner, pc["packets"]))
        except Exception:
            results.append({"name": pc["name"], "error": traceback.format_exc()})
    with open(os.path.join(dirpath, "scapy.json"), "w") as f:
        json.dump({"scapy_version": __import__("scapy").__version__, "results": results}, f, indent=1)
    return 0


def cmd_selftest(matrix_path):
    """scapy against itself over the whole matrix: proves the matrix and the
    plumbing in this script before palisade is involved."""
    m, inner = load_matrix(matrix_path)
    bad = 0
    for case in m["cases"]:
        try:
            for i, pname in enumerate(case["packets"]):
                seq = case["start_seq"] + i
                iv = derive(case["name"], "iv-%d" % seq, iv_len(case))
                sealed = seal_with_scapy(case, inner[pname], seq, iv)
                probs = outer_problems(case, sealed, seq)
                if open_with_scapy(case, sealed, seq) != inner[pname]:
                    probs.append("round trip changed the packet")
                if probs:
                    raise AssertionError("; ".join(probs))
        except Exception as ex:
            bad += 1
            print("FAIL %s: %s: %s" % (case["name"], type(ex).__name__, ex))
    print("selftest: %d cases, %d failed" % (len(m["cases"]), bad))
    return 1 if bad else 0


def main(argv):
    here = os.path.dirname(os.path.abspath(__file__))
    default_matrix = os.path.join(here, "..", "..", "crates", "palisade-sa", "tests", "cross", "scapy_matrix.json")
    if len(argv) >= 2 and argv[1] == "gen-matrix":
        sys.stdout.write(dump_matrix(gen_matrix()))
        return 0
    if len(argv) == 3 and argv[1] == "check-matrix":
        with open(argv[2]) as f:
            if f.read() != dump_matrix(gen_matrix()):
                print("%s is stale: regenerate it with `%s gen-matrix > %s`" % (argv[2], argv[0], argv[2]))
                return 1
        return 0
    if len(argv) in (2, 3) and argv[1] == "selftest":
        return cmd_selftest(argv[2] if len(argv) == 3 else default_matrix)
    if len(argv) in (3, 4) and argv[1] == "run":
        return cmd_run(argv[2], argv[3] if len(argv) == 4 else default_matrix)
    sys.stderr.write(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))

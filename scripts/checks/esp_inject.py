#!/usr/bin/env python3
"""Inject captured ESP again, with scapy, as an attacker on the wire would.

Usage: esp_inject.py PCAP IFACE SPI REPLAYS TAMPERS

Reads the Ethernet frames in PCAP (written by the e2e test from its own
capture), keeps the ESP packets (raw or UDP-encapsulated, IPv4 or IPv6) with
SPI, and sends out of IFACE with scapy's sendp:

  - REPLAYS replays: captured packets sent again unchanged (the first ones,
    cycling), which the receiver has already accepted: anti-replay drops;
  - TAMPERS tampered copies: the last captured packet with a fresh sequence
    number (above anything sent, so it passes the replay check and reaches
    the ICV) and one ciphertext bit flipped: ICV failures. The sequence
    number is authenticated too (ESP header and, for AEAD, the AAD), so the
    copy fails its ICV for two reasons; neither can be forged without the key.

Prints one JSON line: {"replayed": n, "tampered": m}.
"""
import json
import sys

from scapy.all import ESP, UDP, rdpcap, sendp  # noqa: E402
from scapy.layers.l2 import Ether


def esp_of(frame):
    if ESP in frame:
        return frame[ESP]
    # ESP-in-UDP (RFC 3948): scapy leaves the payload raw on port 4500.
    if UDP in frame and 4500 in (frame[UDP].sport, frame[UDP].dport):
        body = bytes(frame[UDP].payload)
        if len(body) > 8 and body[:4] != b"\0\0\0\0":
            frame[UDP].remove_payload()
            frame[UDP].add_payload(ESP(body))
            return frame[ESP]
    return None


def main():
    if len(sys.argv) != 6:
        sys.exit(__doc__)
    pcap, iface = sys.argv[1], sys.argv[2]
    spi, replays, tampers = int(sys.argv[3], 0), int(sys.argv[4]), int(sys.argv[5])
    mine = []
    for f in rdpcap(pcap):
        f = Ether(bytes(f))
        esp = esp_of(f)
        if esp is not None and esp.spi == spi:
            mine.append(f)
    if not mine:
        sys.exit(f"no ESP with SPI {spi:#x} in {pcap}")
    out = []
    for i in range(replays):
        f = mine[i % len(mine)].copy()
        if UDP in f:
            # A capture may hold a partial checksum (checksum offload on
            # veth); the ESP bytes stay as they were, the checksum is redone.
            del f[UDP].chksum
        out.append(f)
    for i in range(tampers):
        f = mine[-1].copy()
        esp = esp_of(f)
        esp.seq = 0x100000 + i
        data = bytearray(esp.data)
        # A bit in the middle of the ciphertext (after any IV, before the ICV).
        data[len(data) // 2] ^= 0x01 << (i % 8)
        esp.data = bytes(data)
        if UDP in f:
            del f[UDP].chksum  # recomputed by scapy on send
        out.append(f)
    sendp(out, iface=iface, verbose=False)
    print(json.dumps({"replayed": replays, "tampered": tampers}))


if __name__ == "__main__":
    main()

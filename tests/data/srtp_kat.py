#!/usr/bin/env python3
"""Independent SRTP/SRTCP known-answer vectors for src/rtp/srtp.rs.

Implements RFC 3711 (AES-CM + HMAC-SHA1), RFC 6188 (AES-256 PRF) and RFC 7714 (AES-GCM)
directly on top of the `cryptography` package, checks itself against the published
vectors (RFC 3711 B.2/B.3, RFC 6188 7.2, libsrtp srtp_driver.c, pion/srtp GCM), then
prints the packets the Rust tests compare against.  Run: python3 tests/data/srtp_kat.py
"""
import hashlib
import hmac

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

H = bytes.fromhex


def aes_ctr(key, iv16, n):
    enc = Cipher(algorithms.AES(key), modes.CTR(iv16)).encryptor()
    return enc.update(bytes(n)) + enc.finalize()


def kdf(master_key, master_salt, label, n):
    """RFC 3711 4.3.1/4.3.3 with kdr = 0; the AES-256 PRF of RFC 6188 is the same shape.

    A 96-bit (GCM) master salt is left-aligned in the 112-bit field and zero padded, as
    libsrtp does; the published GCM vector below pins that convention."""
    salt = master_salt.ljust(14, b"\0")
    x = bytearray(salt)
    x[7] ^= label
    return aes_ctr(master_key, bytes(x) + b"\0\0", n)


def xor(a, b):
    return bytes(p ^ q for p, q in zip(a, b))


def rtp_header_len(pkt):
    cc = pkt[0] & 0x0F
    n = 12 + 4 * cc
    if pkt[0] & 0x10:
        n += 4 + 4 * int.from_bytes(pkt[n + 2 : n + 4], "big")
    return n


def cm_keys(mk, ms, rtcp):
    base = 3 if rtcp else 0
    return (
        kdf(mk, ms, base + 0, len(mk)),
        kdf(mk, ms, base + 1, 20),
        kdf(mk, ms, base + 2, 14),
    )


def srtp_cm(mk, ms, pkt, roc, tag_len):
    ke, ka, ks = cm_keys(mk, ms, False)
    hl = rtp_header_len(pkt)
    seq = int.from_bytes(pkt[2:4], "big")
    ssrc = pkt[8:12]
    iv = xor(ks + b"\0\0", bytes(4) + ssrc + roc.to_bytes(4, "big") + seq.to_bytes(2, "big") + b"\0\0")
    body = xor(pkt[hl:], aes_ctr(ke, iv, len(pkt) - hl))
    out = pkt[:hl] + body
    tag = hmac.new(ka, out + roc.to_bytes(4, "big"), hashlib.sha1).digest()[:tag_len]
    return out + tag


def srtcp_cm(mk, ms, pkt, index):
    ke, ka, ks = cm_keys(mk, ms, True)
    ssrc = pkt[4:8]
    iv = xor(ks + b"\0\0", bytes(4) + ssrc + bytes(2) + index.to_bytes(4, "big") + b"\0\0")
    body = xor(pkt[8:], aes_ctr(ke, iv, len(pkt) - 8))
    out = pkt[:8] + body + (index | 0x80000000).to_bytes(4, "big")
    return out + hmac.new(ka, out, hashlib.sha1).digest()[:10]


def srtp_gcm(mk, ms, pkt, roc):
    ke, ks = kdf(mk, ms, 0, len(mk)), kdf(mk, ms, 2, 12)
    hl = rtp_header_len(pkt)
    seq = int.from_bytes(pkt[2:4], "big")
    iv = xor(ks, bytes(2) + pkt[8:12] + roc.to_bytes(4, "big") + seq.to_bytes(2, "big"))
    return pkt[:hl] + AESGCM(ke).encrypt(iv, pkt[hl:], pkt[:hl])


def srtcp_gcm(mk, ms, pkt, index):
    ke, ks = kdf(mk, ms, 3, len(mk)), kdf(mk, ms, 5, 12)
    esrtcp = (index | 0x80000000).to_bytes(4, "big")
    iv = xor(ks, bytes(2) + pkt[4:8] + bytes(2) + index.to_bytes(4, "big"))
    return pkt[:8] + AESGCM(ke).encrypt(iv, pkt[8:], pkt[:8] + esrtcp) + esrtcp


# --- self-checks against published vectors -------------------------------------------
# RFC 3711 B.2: AES-CM keystream.
ks = aes_ctr(H("2B7E151628AED2A6ABF7158809CF4F3C"), H("F0F1F2F3F4F5F6F7F8F9FAFBFCFD0000"), 48)
assert ks == H(
    "E03EAD0935C95E80E166B16DD92B4EB4D23513162B02D0F72A43A2FE4A5F97AB41E95B3BB0A2E8DD477901E4FCA894C0"
), ks.hex()
# RFC 3711 B.3: key derivation.
MK, MS = H("E1F97A0D3E018BE0D64FA32C06DE4139"), H("0EC675AD498AFEEBB6960B3AABE6")
assert kdf(MK, MS, 0, 16) == H("C61E7A93744F39EE10734AFE3FF7A087")
assert kdf(MK, MS, 2, 14) == H("30CBBC08863D8C85D49DB34A9AE1")
assert kdf(MK, MS, 1, 20) == H("CEBE321F6FF7716B6FD4AB49AF256A156D38BAA4")
# RFC 6188 7.2: AES-256 PRF.
MK256 = H("F0F04914B513F2763A1B1FA130F10E2998F6F6E43E4309D1E622A0E332B9F1B6")
MS256 = H("3B04803DE51EE7C96423AB5B78D2")
assert kdf(MK256, MS256, 0, 32) == H("5BA1064E30EC51613CAD926C5A28EF731EC7FB397F70A960653CAF06554CD8C4")
assert kdf(MK256, MS256, 2, 14) == H("FA31791685CA444A9E07C6C64E93")
assert kdf(MK256, MS256, 1, 20) == H("FD9C32D39ED5FBB5A9DC96B30818454D1313DC05")
# libsrtp test/srtp_driver.c srtp_validate(): AES_CM_128_HMAC_SHA1_80, RTP and SRTCP.
RTP = H("800f1234decafbadcafebabe") + b"\xab" * 16
RTCP = H("81c8000bcafebabe") + b"\xab" * 16
assert srtp_cm(MK, MS, RTP, 0, 10) == H(
    "800f1234decafbadcafebabe4e55dc4ce79978d88ca4d215949d2402b78d6acc99ea179b8dbb"
)
assert srtcp_cm(MK, MS, RTCP, 1) == H(
    "81c8000bcafebabe7128035be487b9bdbef89041f977a5a880000001993e08cd54d6c1230798"
)
# pion/srtp AEAD_AES_128_GCM vectors (key 00..0f, salt a0..ab): RTP and SRTCP index 1.
GK, GS = bytes(range(16)), bytes(range(0xA0, 0xAC))
assert srtp_gcm(GK, GS, RTP, 0) == H(
    "800f1234decafbadcafebabec5002ede04cfdd2eb91159e0880aa06ed2976826f796b201df3131a127e8a392"
)
assert srtcp_gcm(GK, GS, RTCP, 1) == H(
    "81c8000bcafebabec98b8b5df0392a55852b6c21ac8e7025c52c6fbea2b3b446ea31123ba88ce61e80000001"
)

# --- vectors for the Rust tests ------------------------------------------------------
def show(name, b):
    print(f"{name} = {b.hex()}")

show("cm80_roc0", srtp_cm(MK, MS, RTP, 0, 10))
show("cm32_roc0", srtp_cm(MK, MS, RTP, 0, 4))
# seq 0x0000 after 0xffff: ROC = 1 enters both the IV and the HMAC.
RTP0 = H("800f0000decafbadcafebabe") + b"\xab" * 16
show("cm80_roc1_seq0", srtp_cm(MK, MS, RTP0, 1, 10))
show("cm_srtcp_idx1", srtcp_cm(MK, MS, RTCP, 1))
# 256-bit CM and GCM with the RFC 6188 master key; GCM salt = first 12 salt bytes.
show("cm256_80_roc0", srtp_cm(MK256, MS256, RTP, 0, 10))
show("gcm128_roc1_seq0", srtp_gcm(GK, GS, RTP0, 1))
show("gcm256_roc0", srtp_gcm(MK256, MS256[:12], RTP, 0))
show("gcm256_roc1_seq0", srtp_gcm(MK256, MS256[:12], RTP0, 1))
show("gcm256_srtcp_idx1", srtcp_gcm(MK256, MS256[:12], RTCP, 1))
# RTP with one CSRC and a one-byte-header extension: the header stays in the clear.
RTPX = H("910f1234decafbadcafebabe11223344bede0001" "10aa0000") + b"\xab" * 16
show("cm80_csrc_ext", srtp_cm(MK, MS, RTPX, 0, 10))
show("gcm256_csrc_ext", srtp_gcm(MK256, MS256[:12], RTPX, 0))

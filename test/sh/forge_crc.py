#!/usr/bin/env python3
"""Forges dltrain model values with a chosen CRC-32C (a checksum is no identity).

    forge_crc.py TARGET_B64 MODEL_B64 SEED   (base64 text of two models)

prints MODEL with the low four bytes of its seed option changed so that its
checksum equals TARGET's.  The seed is a field any value of which is valid,
so the forged model is a well-formed model: only the identity shortcut that
trusts the checksum is fooled.  Header: magic, version, pad, total, crc
(16 bytes); the CRC covers the rest.
"""
import base64
import struct
import sys

POLY = 0x82F63B78
TABLE = []
for i in range(256):
    c = i
    for _ in range(8):
        c = (c >> 1) ^ POLY if c & 1 else c >> 1
    TABLE.append(c)


def crc32c(data):
    c = 0xFFFFFFFF
    for b in data:
        c = TABLE[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def forge(target, model, seed):
    want = struct.unpack_from("<I", target, 12)[0]
    body = bytearray(model[16:])
    pos = body.find(struct.pack("<q", seed))
    if pos < 0:
        sys.exit("seed not found in the model")
    base = crc32c(body)
    # the CRC is affine in the message bits: solve for the 32 bits at pos
    cols = []
    for bit in range(32):
        b = bytearray(body)
        b[pos + bit // 8] ^= 1 << (bit % 8)
        cols.append(crc32c(b) ^ base)
    need = base ^ want
    # Gaussian elimination over GF(2): rows are (vector, combination)
    rows = [(cols[i], 1 << i) for i in range(32)]
    basis = []
    for v, comb in rows:
        for bv, bc in basis:
            if v ^ bv < v:
                v, comb = v ^ bv, comb ^ bc
        if v:
            basis.append((v, comb))
            basis.sort(reverse=True)
    sol = 0
    for bv, bc in basis:
        if need ^ bv < need:
            need, sol = need ^ bv, sol ^ bc
    if need:
        sys.exit("no solution")
    for bit in range(32):
        if sol >> bit & 1:
            body[pos + bit // 8] ^= 1 << (bit % 8)
    out = bytearray(model[:16]) + body
    struct.pack_into("<I", out, 12, crc32c(body))
    assert crc32c(body) == want
    return bytes(out)


if __name__ == "__main__":
    t = base64.b64decode(sys.argv[1])
    m = base64.b64decode(sys.argv[2])
    print(base64.b64encode(forge(t, m, int(sys.argv[3]))).decode())

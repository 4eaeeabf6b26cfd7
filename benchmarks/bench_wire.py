"""Wire benchmarks, every figure a ratio measured side by side in one run:

1. C pack/unpack vs numpy vs memcpy of the same bytes, 4 bits, 36x64x256 (the paper's Table 6 shape);
   then "the wire at memory speed": pack GB/s against memcpy of the same output bytes for several b,
   CRC32 against zlib.crc32 and the byte-wise table the codec used before (kept here as the
   baseline), and unpack+dequantise into a new array against into a preallocated `out=`;
2. C pack/unpack across b = 1..8, "channel" (NHWC) vs "height-width" (CHW) layout;
3. the receiver's frames/s against the number of cameras, cloud model excluded and included
   (bench_receiver.py);
4. our socket protocol vs Python xmlrpc sending the same 4-bit 36x64x256 tensor and getting a small
   answer back (the paper's Table 4 comparison); both servers unpack and dequantise with the same C.

Prints Markdown tables. `python benchmarks/bench_wire.py [--quick]`.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import socket
import socketserver
import subprocess
import sys
import tempfile
import threading
import time
import timeit
import xmlrpc.client
import xmlrpc.server
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from splitsdk import wire  # noqa: E402
from splitsdk.wire.client import WireClient  # noqa: E402
from splitsdk.wire.packing import unpack_dequantize  # noqa: E402

SHAPE = (36, 64, 256)


def best_us(fn: Callable[[], object], number: int, repeat: int = 7) -> float:
    """Best-of-`repeat` mean time per call in microseconds (the least disturbed run)."""
    return min(timeit.repeat(fn, number=number, repeat=repeat)) / number * 1e6


def numpy_pack(codes: np.ndarray, bits: int) -> bytes:
    """Generic numpy packer: bit planes then np.packbits (LSB-first), any b."""
    flat = codes.reshape(-1)
    planes = ((flat[:, None] >> np.arange(bits, dtype=np.uint8)) & 1).reshape(-1)
    return np.packbits(planes, bitorder="little").tobytes()


def numpy_unpack(data: bytes, n: int, bits: int) -> np.ndarray:
    planes = np.unpackbits(np.frombuffer(data, np.uint8), bitorder="little")[: n * bits].reshape(n, bits)
    return (planes << np.arange(bits, dtype=np.uint8)).sum(axis=1, dtype=np.uint8)


def numpy_pack4(codes: np.ndarray) -> bytes:
    """The best case for numpy: b = 4, two codes per byte, fully vectorised."""
    flat = codes.reshape(-1)
    return (flat[0::2] | (flat[1::2] << 4)).tobytes()


def numpy_unpack4(data: bytes) -> np.ndarray:
    b = np.frombuffer(data, np.uint8)
    out = np.empty(b.size * 2, np.uint8)
    out[0::2], out[1::2] = b & 15, b >> 4
    return out


def table_pack4(number: int) -> str:
    codes = np.random.default_rng(0).integers(0, 16, SHAPE, dtype=np.uint8)
    n = codes.size
    packed = wire.pack(codes, 4)
    src, dst = np.frombuffer(packed, np.uint8).copy(), np.empty(len(packed), np.uint8)
    raw_src, raw_dst = codes.reshape(-1).copy(), np.empty(n, np.uint8)
    assert numpy_pack(codes, 4) == packed == numpy_pack4(codes)
    rows = [
        ("memcpy of the packed bytes (reference)", best_us(lambda: np.copyto(dst, src), number * 10)),
        ("memcpy of the unpacked codes", best_us(lambda: np.copyto(raw_dst, raw_src), number * 10)),
        ("C pack (channel)", best_us(lambda: wire.pack(codes, 4), number)),
        ("C unpack (channel)", best_us(lambda: wire.unpack(packed, n, 4), number)),
        ("C pack (height-width)", best_us(lambda: wire.pack_hw(codes, 4), number)),
        ("numpy pack, 4-bit special case", best_us(lambda: numpy_pack4(codes), number)),
        ("numpy unpack, 4-bit special case", best_us(lambda: numpy_unpack4(packed), number)),
        ("numpy pack, generic bit planes", best_us(lambda: numpy_pack(codes, 4), max(1, number // 10))),
        ("numpy unpack, generic bit planes", best_us(lambda: numpy_unpack(packed, n, 4), max(1, number // 10))),
    ]
    ref = rows[0][1]
    out = [
        f"### Packing a 4-bit {SHAPE[0]}x{SHAPE[1]}x{SHAPE[2]} tensor ({n} codes -> {len(packed)} bytes)",
        "",
        "| operation | µs | × memcpy of packed bytes | codes/ns |",
        "|---|---:|---:|---:|",
    ]
    for name, us in rows:
        out.append(f"| {name} | {us:.1f} | {us / ref:.1f} | {n / (us * 1e3):.2f} |")
    return "\n".join(out)


def table_bits(number: int) -> str:
    rng = np.random.default_rng(1)
    out = [
        f"### C packing across bit widths, {SHAPE[0]}x{SHAPE[1]}x{SHAPE[2]}",
        "",
        "| bits | bytes | pack channel µs | unpack channel µs | pack height-width µs | unpack height-width µs "
        "| height-width / channel (pack) |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for bits in range(1, 9):
        codes = rng.integers(0, 1 << bits, SHAPE, dtype=np.uint8)
        packed, packed_hw = wire.pack(codes, bits), wire.pack_hw(codes, bits)
        n = codes.size
        pc = best_us(lambda c=codes, b=bits: wire.pack(c, b), number)
        uc = best_us(lambda p=packed, b=bits, k=n: wire.unpack(p, k, b), number)
        ph = best_us(lambda c=codes, b=bits: wire.pack_hw(c, b), number)
        uh = best_us(lambda p=packed_hw, b=bits: wire.unpack_hw(p, SHAPE, b), number)
        out.append(f"| {bits} | {len(packed)} | {pc:.1f} | {uc:.1f} | {ph:.1f} | {uh:.1f} | {ph / pc:.1f} |")
    return "\n".join(out)


# The codec's CRC32 before slice-by-8 / PCLMULQDQ, compiled here only as the baseline.
_BYTEWISE_CRC_C = r"""
#include <stddef.h>
#include <stdint.h>
static uint32_t table[256];
void crc_init(void) {
    for (uint32_t i = 0; i < 256; ++i) {
        uint32_t c = i;
        for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1u)));
        table[i] = c;
    }
}
uint32_t crc_bytewise(uint32_t crc, const uint8_t *data, size_t len) {
    crc = ~crc;
    for (size_t i = 0; i < len; ++i) crc = table[(crc ^ data[i]) & 0xffu] ^ (crc >> 8);
    return ~crc;
}
"""


def _bytewise_crc() -> Callable[[bytes], int]:
    """Build the old byte-wise CRC (gcc -O3, same flags as the extension) and return a caller."""
    tmp = Path(tempfile.mkdtemp(prefix="bench-crc-"))
    (tmp / "crc.c").write_text(_BYTEWISE_CRC_C)
    subprocess.run(["gcc", "-O3", "-shared", "-fPIC", str(tmp / "crc.c"), "-o", str(tmp / "crc.so")], check=True)
    lib = ctypes.CDLL(str(tmp / "crc.so"))
    lib.crc_init()
    lib.crc_bytewise.restype = ctypes.c_uint32
    lib.crc_bytewise.argtypes = (ctypes.c_uint32, ctypes.c_char_p, ctypes.c_size_t)
    return lambda data: int(lib.crc_bytewise(0, data, len(data)))


def table_memory_speed(number: int) -> str:
    """Pack vs memcpy of its output, CRC32 vs zlib vs the old byte-wise table, dequantise with out=."""
    rng = np.random.default_rng(3)
    n = int(np.prod(SHAPE))
    out = [
        f"### The wire at memory speed, {SHAPE[0]}x{SHAPE[1]}x{SHAPE[2]} ({n} codes)",
        "",
        "| b | packed bytes | pack GB/s | memcpy GB/s (same bytes) | pack / memcpy |",
        "|---:|---:|---:|---:|---:|",
    ]
    for bits in (2, 3, 4, 5, 6, 8):
        codes = rng.integers(0, 1 << bits, SHAPE, dtype=np.uint8)
        size = wire.packed_size(n, bits)
        src, dst = np.empty(size, np.uint8), np.empty(size, np.uint8)
        src[:] = 1
        pack_us = best_us(lambda c=codes, b=bits: wire.pack(c, b), number * 5)
        copy_us = best_us(lambda s=src, d=dst: np.copyto(d, s), number * 5)
        out.append(
            f"| {bits} | {size} | {size / pack_us / 1e3:.1f} | {size / copy_us / 1e3:.1f} | {copy_us / pack_us:.2f} |"
        )
    frame = wire.pack(rng.integers(0, 16, SHAPE, dtype=np.uint8), 4)
    old = _bytewise_crc()
    assert old(frame) == wire.crc32(frame) == zlib.crc32(frame)
    crc_rows = [
        ("ours (sp_crc32)", best_us(lambda: wire.crc32(frame), number * 5)),
        ("zlib.crc32", best_us(lambda: zlib.crc32(frame), number * 5)),
        ("old byte-wise table (baseline)", best_us(lambda: old(frame), number)),
    ]
    out += [
        "",
        f"| CRC32 over {len(frame)} bytes | µs | GB/s | × ours |",
        "|---|---:|---:|---:|",
    ]
    for name, us in crc_rows:
        out.append(f"| {name} | {us:.1f} | {len(frame) / us / 1e3:.2f} | {us / crc_rows[0][1]:.2f} |")
    into = np.empty(SHAPE, np.float32)
    fresh_us = best_us(lambda: unpack_dequantize(frame, SHAPE, 4, 0.05, 8), number * 2)
    into_us = best_us(lambda: unpack_dequantize(frame, SHAPE, 4, 0.05, 8, out=into), number * 2)
    out += [
        "",
        "| unpack + dequantise, 4 bits | µs | × with out= |",
        "|---|---:|---:|",
        f"| new array | {fresh_us:.1f} | {fresh_us / into_us:.2f} |",
        f"| out= (preallocated) | {into_us:.1f} | 1.00 |",
    ]
    return "\n".join(out)


# ---- protocol vs xmlrpc: same tensor, same server-side unpack + dequantise ----


def _server_work(payload: bytes, bits: int, scale: float, zp: int) -> bytes:
    x = wire.unpack_dequantize(payload, SHAPE, bits, scale, zp)
    return f'{{"sum": {float(x[0, 0, :8].sum()):.3f}}}'.encode()


class _ProtocolHandler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        sock: socket.socket = self.request
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        f = sock.makefile("rb")
        while True:
            prefix = f.read(wire.PREFIX_LEN)
            if len(prefix) < wire.PREFIX_LEN:
                return
            length, _ = wire.peek(prefix)
            msg, _ = wire.decode(prefix + f.read(length - wire.PREFIX_LEN))
            if isinstance(msg, wire.Hello):
                sock.sendall(wire.encode(msg))
                continue
            assert isinstance(msg, wire.Frame)
            t = msg.tensors[0]
            sock.sendall(wire.encode(wire.Result(msg.seq, 0, _server_work(t.payload, t.bits, t.scale, t.zero_point))))


class _Threaded(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    allow_reuse_address = True


def table_protocol(number: int) -> str:
    codes = np.random.default_rng(2).integers(0, 16, SHAPE, dtype=np.uint8)
    packed = wire.pack(codes, 4)
    frame = wire.Frame(0, 0, (wire.WireTensor(wire.TensorKind.PACKED, 4, 0.05, 8, SHAPE, packed),))

    proto = _Threaded(("127.0.0.1", 0), _ProtocolHandler)
    threading.Thread(target=proto.serve_forever, daemon=True).start()
    rpc = xmlrpc.server.SimpleXMLRPCServer(("127.0.0.1", 0), logRequests=False, allow_none=True)
    rpc.register_function(lambda blob, bits, scale, zp: _server_work(blob.data, bits, scale, zp).decode(), "infer")
    threading.Thread(target=rpc.serve_forever, daemon=True).start()
    try:
        client = WireClient("127.0.0.1", proto.server_address[1])
        client.hello("bench", "00" * 32)
        proxy = xmlrpc.client.ServerProxy(f"http://127.0.0.1:{rpc.server_address[1]}", allow_none=True)
        blob = xmlrpc.client.Binary(packed)
        assert client.send_frame(frame).body.decode() == proxy.infer(blob, 4, 0.05, 8)
        ours = best_us(lambda: client.send_frame(frame), number, repeat=5)
        theirs = best_us(lambda: proxy.infer(xmlrpc.client.Binary(packed), 4, 0.05, 8), max(1, number // 4), repeat=5)
        wire_bytes = len(wire.encode(frame))
        xml_bytes = len(xmlrpc.client.dumps((blob, 4, 0.05, 8), "infer"))
        client.close()
    finally:
        proto.shutdown()
        rpc.shutdown()
    out = [
        "### Sending a 4-bit 36x64x256 tensor and getting the answer (loopback, one client)",
        "",
        "| transport | request bytes | round trip µs | × ours |",
        "|---|---:|---:|---:|",
        f"| splitsdk frame over TCP | {wire_bytes} | {ours:.0f} | 1.0 |",
        f"| Python xmlrpc (Binary) | {xml_bytes} | {theirs:.0f} | {theirs / ours:.1f} |",
    ]
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions, fewer receiver points")
    args = parser.parse_args()
    number = 5 if args.quick else 20
    started = time.perf_counter()
    print(table_pack4(number), end="\n\n")
    print(table_bits(number), end="\n\n")
    print(table_memory_speed(number), end="\n\n")
    print(table_protocol(number), end="\n\n")
    from bench_receiver import markdown, receiver_throughput

    counts = (1, 16) if args.quick else (1, 4, 16, 64)
    print(
        "### Receiver throughput (plain TCP loopback, SQLite WAL, max batch 32, max wait 2 ms;"
        " crossing tensor 36x64x32 at 4 bits)\n"
    )
    print(markdown(receiver_throughput(counts, seconds=1.0 if args.quick else 2.0)), end="\n\n")
    print(f"_{os.cpu_count()} CPUs, total {time.perf_counter() - started:.0f} s_")


if __name__ == "__main__":
    main()

"""cffi (API mode) build of `splitsdk._native` from the shared C sources in this folder.

setup.py names `ffibuilder` in `cffi_modules`, so every `pip install` / `pip wheel` compiles the
extension; the C files themselves stay free of anything Python-specific because the same files are
copied into the generated edge projects.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from cffi import FFI

SOURCES = ["splitpack.c", "splitframe.c"]

CDEF = """
const char *splitsdk_native_hash(void);
size_t sp_packed_size(size_t n, unsigned bits);
int sp_pack(const uint8_t *codes, size_t n, unsigned bits, uint8_t *out, size_t out_len);
int sp_unpack(const uint8_t *in, size_t in_len, size_t n, unsigned bits, uint8_t *codes);
int sp_pack_hw(const uint8_t *codes, size_t h, size_t w, size_t c, unsigned bits, uint8_t *out,
               size_t out_len);
int sp_unpack_hw(const uint8_t *in, size_t in_len, size_t h, size_t w, size_t c, unsigned bits,
                 uint8_t *codes);
void sp_requantize_lut(const int8_t *values, size_t n, const uint8_t lut[256], uint8_t *codes);
int sp_requantize_pack(const int8_t *values, size_t n, const uint8_t lut[256], unsigned bits, uint8_t *out,
                       size_t out_len);
void sp_dequantize(const uint8_t *codes, size_t n, int32_t zero_point, float scale, float *out);
int sp_unpack_dequantize(const uint8_t *in, size_t in_len, size_t n, unsigned bits, int32_t zero_point,
                         float scale, float *out);
int sp_build_lut(float in_scale, int32_t in_zero_point, float scale, int32_t zero_point, unsigned bits,
                 uint8_t lut[256]);

#define SP_VERSION ...
#define SP_PREFIX_LEN ...
#define SP_HEADER_LEN ...
#define SP_PLAN_HASH_LEN ...
#define SP_MAX_DEVICE_ID ...
#define SP_MAX_RANK ...

enum sp_msg_type { SP_MSG_HELLO = 1, SP_MSG_FRAME = 2, SP_MSG_RESULT = 3, SP_MSG_ERROR = 4, SP_MSG_STATS = 5 };

typedef struct sp_limits {
    uint32_t max_frame_bytes;
    uint32_t max_tensors;
    uint32_t max_rank;
    uint32_t max_dim;
    uint64_t max_elements;
} sp_limits;

typedef struct sp_tensor {
    uint8_t kind;
    uint8_t bits;
    uint8_t rank;
    float scale;
    int32_t zero_point;
    uint32_t dims[8];
    uint32_t payload_len;
    const uint8_t *payload;
} sp_tensor;

typedef struct sp_message {
    uint8_t version;
    uint8_t type;
    uint64_t seq;
    int64_t timestamp_us;
    uint8_t plan_hash[32];
    const uint8_t *device_id;
    uint16_t device_id_len;
    sp_tensor *tensors;
    uint16_t tensor_count;
    uint16_t tensor_capacity;
    uint16_t status;
    const uint8_t *body;
    uint32_t body_len;
} sp_message;

sp_limits sp_default_limits(void);
const char *sp_strerror(int status);
uint32_t sp_crc32(uint32_t crc, const uint8_t *data, size_t len);
uint64_t sp_payload_size(uint8_t kind, uint8_t bits, uint64_t elements);
int sp_frame_peek(const uint8_t *buf, size_t len, const sp_limits *limits, uint32_t *frame_len,
                  uint8_t *type);
size_t sp_encoded_size(const sp_message *msg);
int sp_encode(const sp_message *msg, uint8_t *out, size_t cap, size_t *written);
int sp_decode(const uint8_t *buf, size_t len, const sp_limits *limits, sp_message *msg,
              size_t *consumed);
"""


def _source_hash() -> str:
    """Same digest as splitsdk.native.source_hash(), computed without importing the package."""
    digest = hashlib.sha256()
    for name in ("splitpack.h", "splitpack.c", "splitframe.h", "splitframe.c"):
        digest.update(name.encode() + b"\0" + (Path(__file__).resolve().parent / name).read_bytes())
    return digest.hexdigest()


ffibuilder = FFI()
ffibuilder.cdef(CDEF)
ffibuilder.set_source(
    "splitsdk._native",
    '#include "splitpack.h"\n#include "splitframe.h"\n'
    f'static const char *splitsdk_native_hash(void) {{ return "{_source_hash()}"; }}\n',
    # Relative paths: setuptools refuses absolute source paths in wheels.
    sources=[f"sdk/native/{name}" for name in SOURCES],
    include_dirs=["sdk/native"],
    extra_compile_args=["-std=c99", "-O3", "-Wall", "-Wextra"],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)

/*
 * Self-checking driver for the shared C core, built by tests/test_native_c.py with
 * -Wall -Wextra -Werror and -fsanitize=address,undefined. Exits non-zero on the first failure.
 * A bit-by-bit reference packer is the oracle for the word-based packer.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "splitcodec.h"
#include "splitframe.h"
#include "splitpack.h"

static int failures = 0;

#define CHECK(cond)                                                                                    \
    do {                                                                                               \
        if (!(cond)) {                                                                                 \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);                   \
            ++failures;                                                                                \
        }                                                                                              \
    } while (0)

static uint32_t rng_state = 12345u;

static uint32_t rnd(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 17;
    rng_state ^= rng_state << 5;
    return rng_state;
}

static void reference_pack(const uint8_t *codes, size_t n, unsigned bits, uint8_t *out) {
    memset(out, 0, sp_packed_size(n, bits));
    for (size_t i = 0; i < n; ++i) {
        for (unsigned k = 0; k < bits; ++k) {
            const size_t bit = i * bits + k;
            if ((codes[i] >> k) & 1u) {
                out[bit / 8u] |= (uint8_t)(1u << (bit % 8u));
            }
        }
    }
}

static void test_pack(void) {
    enum { MAXN = 1031 };
    static uint8_t codes[MAXN], back[MAXN], out[MAXN + 8], ref[MAXN + 8];
    for (unsigned bits = 1; bits <= 8; ++bits) {
        for (size_t n = 0; n < MAXN; n += 1 + n / 3) {
            for (size_t i = 0; i < n; ++i) {
                codes[i] = (uint8_t)(rnd() & ((1u << bits) - 1u));
            }
            const size_t size = sp_packed_size(n, bits);
            CHECK(size == (n * bits + 7u) / 8u);
            CHECK(sp_pack(codes, n, bits, out, size) == SP_PACK_OK);
            reference_pack(codes, n, bits, ref);
            CHECK(memcmp(out, ref, size) == 0);
            CHECK(sp_unpack(out, size, n, bits, back) == SP_PACK_OK);
            CHECK(memcmp(codes, back, n) == 0);
            if (size > 0) {
                CHECK(sp_pack(codes, n, bits, out, size - 1) == SP_PACK_ESPACE);
                CHECK(sp_unpack(out, size - 1, n, bits, back) == SP_PACK_ESPACE);
            }
        }
    }
    CHECK(sp_pack(codes, 4, 0, out, 8) == SP_PACK_EBITS);
    CHECK(sp_pack(codes, 4, 9, out, 8) == SP_PACK_EBITS);
    /* high bits beyond `bits` are ignored */
    const uint8_t wide[2] = {0xff, 0xf1};
    CHECK(sp_pack(wide, 2, 4, out, 1) == SP_PACK_OK && out[0] == 0x1f);
}

static void test_pack_hw(void) {
    const size_t h = 3, w = 5, c = 7;
    uint8_t codes[105], chw[105], out[105], ref[105], back[105];
    for (unsigned bits = 1; bits <= 8; ++bits) {
        for (size_t i = 0; i < h * w * c; ++i) {
            codes[i] = (uint8_t)(rnd() & ((1u << bits) - 1u));
        }
        for (size_t ch = 0; ch < c; ++ch) {
            for (size_t p = 0; p < h * w; ++p) {
                chw[ch * h * w + p] = codes[p * c + ch];
            }
        }
        const size_t size = sp_packed_size(h * w * c, bits);
        CHECK(sp_pack_hw(codes, h, w, c, bits, out, size) == SP_PACK_OK);
        reference_pack(chw, h * w * c, bits, ref);
        CHECK(memcmp(out, ref, size) == 0);
        CHECK(sp_unpack_hw(out, size, h, w, c, bits, back) == SP_PACK_OK);
        CHECK(memcmp(codes, back, h * w * c) == 0);
    }
}

static void test_lut(void) {
    uint8_t lut[256];
    /* identity-like: int8 scale 1 zp 0 -> 8-bit scale 1 zp 128 maps k-128 to k */
    CHECK(sp_build_lut(1.0f, 0, 1.0f, 128, 8, lut) == SP_PACK_OK);
    for (int k = 0; k < 256; ++k) {
        CHECK(lut[k] == k);
    }
    CHECK(sp_build_lut(0.1f, -3, 0.4f, 2, 3, lut) == SP_PACK_OK);
    for (int k = 0; k < 256; ++k) {
        CHECK(lut[k] <= 7);
    }
    CHECK(sp_build_lut(1.0f, 0, 0.0f, 0, 4, lut) != SP_PACK_OK);
    const int8_t values[4] = {-128, -1, 0, 127};
    uint8_t codes[4];
    CHECK(sp_build_lut(1.0f, 0, 1.0f, 128, 8, lut) == SP_PACK_OK);
    sp_requantize_lut(values, 4, lut, codes);
    CHECK(codes[0] == 0 && codes[1] == 127 && codes[2] == 128 && codes[3] == 255);
    float deq[4];
    sp_dequantize(codes, 4, 128, 0.5f, deq);
    CHECK(deq[0] == -64.0f && deq[3] == 63.5f);
}

static void test_codec(void) {
    static uint8_t payload[1000], buf[4096], mutated[4096];
    for (size_t i = 0; i < sizeof payload; ++i) {
        payload[i] = (uint8_t)rnd();
    }
    sp_tensor tensors[2];
    memset(tensors, 0, sizeof tensors);
    tensors[0].kind = SP_KIND_PACKED;
    tensors[0].bits = 3;
    tensors[0].rank = 3;
    tensors[0].scale = 0.25f;
    tensors[0].zero_point = 4;
    tensors[0].dims[0] = 3;
    tensors[0].dims[1] = 5;
    tensors[0].dims[2] = 7;
    tensors[0].payload_len = (uint32_t)sp_packed_size(105, 3);
    tensors[0].payload = payload;
    tensors[1].kind = SP_KIND_FLOAT;
    tensors[1].bits = 32;
    tensors[1].rank = 1;
    tensors[1].scale = 1.0f;
    tensors[1].dims[0] = 10;
    tensors[1].payload_len = 40;
    tensors[1].payload = payload + 100;
    sp_message msg;
    memset(&msg, 0, sizeof msg);
    msg.type = SP_MSG_FRAME;
    msg.seq = 0x0102030405060708ull;
    msg.timestamp_us = -5;
    msg.tensors = tensors;
    msg.tensor_count = 2;
    size_t written = 0;
    CHECK(sp_encode(&msg, buf, sizeof buf, &written) == SP_OK);
    CHECK(written == sp_encoded_size(&msg));
    CHECK(sp_encode(&msg, buf, written - 1, &written) == SP_E_SPACE);
    CHECK(sp_encode(&msg, buf, sizeof buf, &written) == SP_OK);

    const sp_limits limits = sp_default_limits();
    sp_tensor dec_tensors[4];
    sp_message dec;
    memset(&dec, 0, sizeof dec);
    dec.tensors = dec_tensors;
    dec.tensor_capacity = 4;
    size_t consumed = 0;
    CHECK(sp_decode(buf, written, &limits, &dec, &consumed) == SP_OK);
    CHECK(consumed == written && dec.seq == msg.seq && dec.timestamp_us == -5 && dec.tensor_count == 2);
    CHECK(dec_tensors[0].bits == 3 && dec_tensors[0].dims[2] == 7 && dec_tensors[0].zero_point == 4);
    CHECK(memcmp(dec_tensors[0].payload, payload, dec_tensors[0].payload_len) == 0);
    CHECK(memcmp(dec_tensors[1].payload, payload + 100, 40) == 0);

    /* every truncation is refused, every single-byte change is refused or decodes cleanly */
    for (size_t cut = 0; cut < written; ++cut) {
        CHECK(sp_decode(buf, cut, &limits, &dec, &consumed) != SP_OK);
    }
    for (size_t i = 0; i < written; ++i) {
        memcpy(mutated, buf, written);
        mutated[i] ^= (uint8_t)(1u + rnd() % 255u);
        CHECK(sp_decode(mutated, written, &limits, &dec, &consumed) != SP_OK);
    }

    /* HELLO, RESULT and ERROR round trips */
    sp_message hello;
    memset(&hello, 0, sizeof hello);
    hello.type = SP_MSG_HELLO;
    memset(hello.plan_hash, 0xab, sizeof hello.plan_hash);
    hello.device_id = (const uint8_t *)"cam-01";
    hello.device_id_len = 6;
    CHECK(sp_encode(&hello, buf, sizeof buf, &written) == SP_OK);
    CHECK(sp_decode(buf, written, &limits, &dec, &consumed) == SP_OK);
    CHECK(dec.type == SP_MSG_HELLO && dec.device_id_len == 6 && memcmp(dec.device_id, "cam-01", 6) == 0);
    CHECK(dec.plan_hash[31] == 0xab);
    sp_message err;
    memset(&err, 0, sizeof err);
    err.type = SP_MSG_ERROR;
    err.status = 7;
    err.body = (const uint8_t *)"bad";
    err.body_len = 3;
    CHECK(sp_encode(&err, buf, sizeof buf, &written) == SP_OK);
    CHECK(sp_decode(buf, written, &limits, &dec, &consumed) == SP_OK);
    CHECK(dec.type == SP_MSG_ERROR && dec.status == 7 && dec.body_len == 3);

    /* limits: a frame over max_frame_bytes is refused from its prefix alone */
    sp_limits tight = limits;
    tight.max_frame_bytes = 16;
    uint32_t flen = 0;
    uint8_t type = 0;
    CHECK(sp_frame_peek(buf, SP_PREFIX_LEN, &tight, &flen, &type) == SP_E_TOO_LARGE);
    /* invalid messages are not encoded */
    tensors[0].payload_len += 1;
    CHECK(sp_encoded_size(&msg) == 0);
    CHECK(sp_crc32(0, (const uint8_t *)"123456789", 9) == 0xcbf43926u);
}

/* The byte-wise CRC the codec used before slice-by-8 / PCLMULQDQ: the oracle for every length. */
static uint32_t reference_crc32(uint32_t crc, const uint8_t *data, size_t len) {
    crc = ~crc;
    for (size_t i = 0; i < len; ++i) {
        crc ^= data[i];
        for (int k = 0; k < 8; ++k) {
            crc = (crc >> 1) ^ (0xedb88320u & (0u - (crc & 1u)));
        }
    }
    return ~crc;
}

static void test_crc(void) {
    static uint8_t data[4200];
    for (size_t i = 0; i < sizeof data; ++i) {
        data[i] = (uint8_t)rnd();
    }
    for (size_t start = 0; start < 16u; ++start) {
        for (size_t len = 0; len + start <= sizeof data; len += 1 + len / 5) {
            CHECK(sp_crc32(start, data + start, len) == reference_crc32(start, data + start, len));
        }
    }
    /* continuing a CRC over a split buffer gives the CRC of the whole */
    CHECK(sp_crc32(sp_crc32(0, data, 1000), data + 1000, 3000) == sp_crc32(0, data, 4000));
}

/*
 * Fused requantise+pack and unpack+dequantise against the two-call paths, at misaligned starts and
 * across block boundaries; the vector kernels' bulk and the portable tails both run.
 */
static void test_fused(void) {
    enum { MAXN = 1800 };
    static int8_t values[MAXN + 16];
    static uint8_t lut[256], codes[MAXN], two[MAXN + 8], one[MAXN + 8];
    static float f_two[MAXN], f_one[MAXN];
    for (size_t i = 0; i < sizeof values; ++i) {
        values[i] = (int8_t)(rnd() & 0xffu);
    }
    for (unsigned bits = 1; bits <= 8; ++bits) {
        for (int k = 0; k < 256; ++k) {
            lut[k] = (uint8_t)(rnd() & ((1u << bits) - 1u));
        }
        for (size_t start = 0; start < 16u; start += 5u) {
            for (size_t n = 0; n <= MAXN; n += 1 + n / 2) {
                const size_t size = sp_packed_size(n, bits);
                sp_requantize_lut(values + start, n, lut, codes);
                CHECK(sp_pack(codes, n, bits, two, size) == SP_PACK_OK);
                CHECK(sp_requantize_pack(values + start, n, lut, bits, one, size) == SP_PACK_OK);
                CHECK(memcmp(one, two, size) == 0);
                CHECK(sp_unpack(two, size, n, bits, codes) == SP_PACK_OK);
                sp_dequantize(codes, n, 3, 0.25f, f_two);
                CHECK(sp_unpack_dequantize(two, size, n, bits, 3, 0.25f, f_one) == SP_PACK_OK);
                CHECK(memcmp(f_one, f_two, n * sizeof(float)) == 0);
                if (size > 0) {
                    CHECK(sp_requantize_pack(values, n, lut, bits, one, size - 1) == SP_PACK_ESPACE);
                    CHECK(sp_unpack_dequantize(two, size - 1, n, bits, 3, 0.25f, f_one) == SP_PACK_ESPACE);
                }
            }
        }
    }
    CHECK(sp_requantize_pack(values, 4, lut, 0, one, 8) == SP_PACK_EBITS);
    CHECK(sp_unpack_dequantize(one, 8, 4, 9, 0, 1.0f, f_one) == SP_PACK_EBITS);
}

/*
 * `driver digest`: one line per bit width with the CRC of the packed stream of fixed pseudo-random
 * codes (several lengths and misaligned starts), so a cross-compiled build can be compared with the
 * host's byte for byte.
 */
static int digest(void) {
    enum { MAXN = 5000 };
    static uint8_t codes[MAXN + 32], out[MAXN + 8];
    static int8_t values[MAXN + 32];
    static uint8_t lut[256];
    for (unsigned bits = 1; bits <= 8; ++bits) {
        rng_state = 777u + bits;
        for (size_t i = 0; i < sizeof codes; ++i) {
            codes[i] = (uint8_t)rnd(); /* high bits set on purpose: the packer masks them */
            values[i] = (int8_t)rnd();
        }
        for (int k = 0; k < 256; ++k) {
            lut[k] = (uint8_t)(rnd() & ((1u << bits) - 1u));
        }
        uint32_t crc = 0;
        for (size_t start = 0; start < 32u; start += 7u) {
            for (size_t n = 0; n <= MAXN; n += 1 + n / 3) {
                const size_t size = sp_packed_size(n, bits);
                CHECK(sp_pack(codes + start, n, bits, out, size) == SP_PACK_OK);
                crc = sp_crc32(crc, out, size);
                CHECK(sp_requantize_pack(values + start, n, lut, bits, out, size) == SP_PACK_OK);
                crc = sp_crc32(crc, out, size);
            }
        }
        printf("bits %u crc %08x\n", bits, (unsigned)crc);
    }
    return failures != 0;
}

/* zstd payloads: for every bits value, requantise + pack + compress, a FRAME with codec 1 through the
 * frame codec, and a bounded decompression back to the packed bytes; then the refusals. */
static void test_zstd(void) {
    enum { N = 3000 };
    static int8_t values[N];
    static uint8_t lut[256], packed[N], comp[N + 1024], back[N + 64], frame[N + 1024];
    sp_zstd_cctx *cctx = sp_zstd_cctx_new();
    sp_zstd_dctx *dctx = sp_zstd_dctx_new();
    CHECK(cctx != NULL && dctx != NULL);
    for (unsigned bits = 1; bits <= 8; ++bits) {
        for (size_t i = 0; i < N; ++i) { /* ReLU-like activations: mostly the zero code */
            values[i] = (int8_t)(rnd() % 4u == 0u ? (int)(rnd() % 128u) : -128);
        }
        for (int k = 0; k < 256; ++k) {
            lut[k] = (uint8_t)(k >> (8u - bits));
        }
        const size_t size = sp_packed_size(N, bits);
        CHECK(sp_requantize_pack(values, N, lut, bits, packed, size) == SP_PACK_OK);
        size_t clen = 0;
        CHECK(sp_compress_bound(size) <= sizeof comp);
        CHECK(sp_compress(cctx, packed, size, 0, comp, sizeof comp, &clen) == SP_OK && clen > 0u);
        sp_tensor t;
        memset(&t, 0, sizeof t);
        t.kind = SP_KIND_PACKED;
        t.bits = (uint8_t)bits;
        t.rank = 2;
        t.dims[0] = 30;
        t.dims[1] = 100;
        t.scale = 0.5f;
        t.codec = SP_CODEC_ZSTD;
        t.payload = comp;
        t.payload_len = (uint32_t)clen;
        CHECK(sp_tensor_raw_size(&t) == size);
        sp_message msg;
        memset(&msg, 0, sizeof msg);
        msg.type = SP_MSG_FRAME;
        msg.tensors = &t;
        msg.tensor_count = 1;
        size_t written = 0, consumed = 0;
        CHECK(sp_encode(&msg, frame, sizeof frame, &written) == SP_OK);
        sp_tensor dt;
        sp_message dec;
        memset(&dec, 0, sizeof dec);
        dec.tensors = &dt;
        dec.tensor_capacity = 1;
        const sp_limits limits = sp_default_limits();
        CHECK(sp_decode(frame, written, &limits, &dec, &consumed) == SP_OK && dec.version == SP_VERSION);
        CHECK(dt.codec == SP_CODEC_ZSTD && dt.payload_len == clen && dec.split == 0u);
        CHECK(sp_decompress(dctx, dt.payload, dt.payload_len, back, (size_t)sp_tensor_raw_size(&dt)) == SP_OK);
        CHECK(memcmp(back, packed, size) == 0);
        CHECK(sp_decompress(NULL, comp, clen, back, size) == SP_OK); /* a temporary context */
        /* the implied size must be exactly the declared one, in both directions */
        CHECK(sp_decompress(dctx, comp, clen, back, size - 1u) == SP_E_INFLATE);
        CHECK(sp_decompress(dctx, comp, clen, back, size + 1u) == SP_E_INFLATE);
        /* one frame and nothing after it; a truncated or corrupt frame */
        comp[clen] = 0;
        CHECK(sp_decompress(dctx, comp, clen + 1u, back, size) == SP_E_ZSTD);
        CHECK(sp_decompress(dctx, comp, clen - 1u, back, size) != SP_OK);
        CHECK(sp_decompress(dctx, packed, size, back, size) == SP_E_ZSTD);
    }
    /* a bomb whose header lies: 200 bytes compressed, content size patched to 100 */
    static uint8_t zeros[200];
    size_t clen = 0;
    CHECK(sp_compress(cctx, zeros, sizeof zeros, 3, comp, sizeof comp, &clen) == SP_OK);
    CHECK(comp[4] == 0x20 && comp[5] == 200); /* single segment, 1-byte content size */
    CHECK(sp_decompress(dctx, comp, clen, back, 200) == SP_OK);
    comp[5] = 100;
    memset(back, 0xee, sizeof back);
    CHECK(sp_decompress(dctx, comp, clen, back, 100) == SP_E_INFLATE);
    CHECK(back[100] == 0xee); /* nothing written past the bound */
    CHECK(sp_compress(cctx, zeros, sizeof zeros, 3, comp, 4, &clen) == SP_E_SPACE);
    CHECK(sp_compress(cctx, zeros, sizeof zeros, 99, comp, sizeof comp, &clen) == SP_E_ARG);
    /* an unknown codec is refused by encoder and decoder */
    sp_tensor t;
    memset(&t, 0, sizeof t);
    t.kind = SP_KIND_PACKED;
    t.bits = 8;
    t.rank = 1;
    t.dims[0] = 4;
    t.scale = 1.0f;
    t.codec = 2;
    t.payload = zeros;
    t.payload_len = 4;
    sp_message msg;
    memset(&msg, 0, sizeof msg);
    msg.type = SP_MSG_FRAME;
    msg.tensors = &t;
    msg.tensor_count = 1;
    CHECK(sp_encoded_size(&msg) == 0u);
    /* version 1 on request (a receiver answering an old camera), without version 2 fields */
    t.codec = SP_CODEC_NONE;
    msg.version = 1;
    size_t written = 0, consumed = 0;
    CHECK(sp_encode(&msg, frame, sizeof frame, &written) == SP_OK && frame[4] == 1u);
    sp_tensor dt;
    sp_message dec;
    memset(&dec, 0, sizeof dec);
    dec.tensors = &dt;
    dec.tensor_capacity = 1;
    const sp_limits limits = sp_default_limits();
    CHECK(sp_decode(frame, written, &limits, &dec, &consumed) == SP_OK && dec.version == 1u);
    t.codec = SP_CODEC_ZSTD;
    CHECK(sp_encoded_size(&msg) == 0u);
    t.codec = SP_CODEC_NONE;
    msg.split = 1;
    CHECK(sp_encoded_size(&msg) == 0u);
    msg.split = 0;
    msg.version = 3;
    CHECK(sp_encoded_size(&msg) == 0u);
    sp_zstd_cctx_free(cctx);
    sp_zstd_dctx_free(dctx);
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "digest") == 0) {
        return digest();
    }
    test_pack();
    test_pack_hw();
    test_lut();
    test_codec();
    test_zstd();
    test_crc();
    test_fused();
    if (failures != 0) {
        fprintf(stderr, "%d failures\n", failures);
        return 1;
    }
    puts("native driver: all checks passed");
    return 0;
}

/*
 * splitpack: see splitpack.h for the layout contract.
 *
 * Every b in 1..8 packs 8 codes into exactly b bytes, so the hot loops work on groups of 8 codes
 * through a 64-bit word; the bit width is a compile-time constant inside each switch case (the
 * helpers are inlined), which lets the compiler unroll and specialise them. The tail (< 8 codes)
 * starts byte-aligned and goes through the same word, truncated.
 */
#include "splitpack.h"

#include <string.h>

size_t sp_packed_size(size_t n, unsigned bits) {
    if (bits < 1u || bits > 8u) {
        return 0;
    }
    /* n * bits may overflow for absurd n; split it so it cannot. */
    return (n / 8u) * bits + ((n % 8u) * bits + 7u) / 8u;
}

static inline uint64_t gather_word(const uint8_t *codes, size_t count, unsigned bits) {
    const uint64_t mask = (1u << bits) - 1u;
    uint64_t word = 0;
    for (size_t j = 0; j < count; ++j) {
        word |= ((uint64_t)codes[j] & mask) << (j * bits);
    }
    return word;
}

static inline void put_bytes(uint64_t word, uint8_t *out, size_t nbytes) {
    for (size_t k = 0; k < nbytes; ++k) {
        out[k] = (uint8_t)(word >> (8u * k));
    }
}

static inline uint64_t get_bytes(const uint8_t *in, size_t nbytes) {
    uint64_t word = 0;
    for (size_t k = 0; k < nbytes; ++k) {
        word |= (uint64_t)in[k] << (8u * k);
    }
    return word;
}

static inline void scatter_word(uint64_t word, uint8_t *codes, size_t count, unsigned bits) {
    const uint64_t mask = (1u << bits) - 1u;
    for (size_t j = 0; j < count; ++j) {
        codes[j] = (uint8_t)((word >> (j * bits)) & mask);
    }
}

/*
 * On little-endian hosts a group's b bytes are the low bytes of its 64-bit word, so one 8-byte memcpy
 * replaces the byte loop wherever 8 bytes fit in the buffer (the upper bytes written are zero and the
 * next group overwrites them); elsewhere, and on other hosts, the portable byte loop runs.
 */
#if defined(__BYTE_ORDER__) && defined(__ORDER_LITTLE_ENDIAN__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define SP_LITTLE_ENDIAN 1
#else
#define SP_LITTLE_ENDIAN 0
#endif

static inline void pack_body(const uint8_t *codes, size_t n, unsigned bits, uint8_t *out) {
    const size_t groups = n / 8u;
    const size_t total = sp_packed_size(n, bits);
    size_t g = 0;
    if (SP_LITTLE_ENDIAN) {
        for (; g < groups && (size_t)bits * g + 8u <= total; ++g) {
            const uint64_t word = gather_word(codes + 8u * g, 8u, bits);
            memcpy(out + (size_t)bits * g, &word, 8u);
        }
    }
    for (; g < groups; ++g) {
        put_bytes(gather_word(codes + 8u * g, 8u, bits), out + (size_t)bits * g, bits);
    }
    const size_t rest = n % 8u;
    if (rest != 0u) {
        put_bytes(gather_word(codes + 8u * groups, rest, bits), out + (size_t)bits * groups,
                  (rest * bits + 7u) / 8u);
    }
}

static inline void unpack_body(const uint8_t *in, size_t n, unsigned bits, uint8_t *codes) {
    const size_t groups = n / 8u;
    const size_t total = sp_packed_size(n, bits);
    size_t g = 0;
    if (SP_LITTLE_ENDIAN) {
        for (; g < groups && (size_t)bits * g + 8u <= total; ++g) {
            uint64_t word;
            memcpy(&word, in + (size_t)bits * g, 8u);
            scatter_word(word, codes + 8u * g, 8u, bits);
        }
    }
    for (; g < groups; ++g) {
        scatter_word(get_bytes(in + (size_t)bits * g, bits), codes + 8u * g, 8u, bits);
    }
    const size_t rest = n % 8u;
    if (rest != 0u) {
        scatter_word(get_bytes(in + (size_t)bits * groups, (rest * bits + 7u) / 8u), codes + 8u * groups,
                     rest, bits);
    }
}

/*
 * b in {1, 2, 4}: codes never straddle a byte, so one output byte is 8/b codes. These loops have no
 * 64-bit shifts and vectorise well, which the group-of-8 path does not.
 */
static inline void pack_aligned(const uint8_t *codes, size_t n, unsigned bits, uint8_t *out) {
    const unsigned per = 8u / bits;
    const unsigned mask = (1u << bits) - 1u;
    const size_t full = n / per;
    for (size_t i = 0; i < full; ++i) {
        unsigned v = 0;
        for (unsigned j = 0; j < per; ++j) {
            v |= ((unsigned)codes[i * per + j] & mask) << (j * bits);
        }
        out[i] = (uint8_t)v;
    }
    const size_t rest = n - full * per;
    if (rest != 0u) {
        unsigned v = 0;
        for (size_t j = 0; j < rest; ++j) {
            v |= ((unsigned)codes[full * per + j] & mask) << (j * bits);
        }
        out[full] = (uint8_t)v;
    }
}

static inline void unpack_aligned(const uint8_t *in, size_t n, unsigned bits, uint8_t *codes) {
    const unsigned per = 8u / bits;
    const unsigned mask = (1u << bits) - 1u;
    const size_t full = n / per;
    for (size_t i = 0; i < full; ++i) {
        const unsigned v = in[i];
        for (unsigned j = 0; j < per; ++j) {
            codes[i * per + j] = (uint8_t)((v >> (j * bits)) & mask);
        }
    }
    for (size_t j = 0; j < n - full * per; ++j) {
        codes[full * per + j] = (uint8_t)(((unsigned)in[full] >> (j * bits)) & mask);
    }
}

/*
 * b in {1, 2}: one input byte expands to 8 or 4 codes; a 256-row table built on the stack (2 KiB,
 * endian-independent) turns each byte into one fixed-size copy, which the per-bit loop does not match.
 */
static inline void unpack_table(const uint8_t *in, size_t n, unsigned bits, uint8_t *codes) {
    const unsigned per = 8u / bits;
    const unsigned mask = (1u << bits) - 1u;
    uint8_t table[256][8];
    for (unsigned v = 0; v < 256u; ++v) {
        for (unsigned j = 0; j < 8u; ++j) {
            table[v][j] = j < per ? (uint8_t)((v >> (j * bits)) & mask) : 0u;
        }
    }
    const size_t full = n / per;
    for (size_t i = 0; i < full; ++i) {
        memcpy(codes + i * per, table[in[i]], per);
    }
    for (size_t j = 0; j < n - full * per; ++j) {
        codes[full * per + j] = table[in[full]][j];
    }
}

int sp_pack(const uint8_t *codes, size_t n, unsigned bits, uint8_t *out, size_t out_len) {
    if (bits < 1u || bits > 8u) {
        return SP_PACK_EBITS;
    }
    if (out_len < sp_packed_size(n, bits)) {
        return SP_PACK_ESPACE;
    }
    switch (bits) {
    case 1: pack_aligned(codes, n, 1, out); break;
    case 2: pack_aligned(codes, n, 2, out); break;
    case 3: pack_body(codes, n, 3, out); break;
    case 4: pack_aligned(codes, n, 4, out); break;
    case 5: pack_body(codes, n, 5, out); break;
    case 6: pack_body(codes, n, 6, out); break;
    case 7: pack_body(codes, n, 7, out); break;
    default:
        if (n != 0u) {
            memcpy(out, codes, n);
        }
        break;
    }
    return SP_PACK_OK;
}

int sp_unpack(const uint8_t *in, size_t in_len, size_t n, unsigned bits, uint8_t *codes) {
    if (bits < 1u || bits > 8u) {
        return SP_PACK_EBITS;
    }
    if (in_len < sp_packed_size(n, bits)) {
        return SP_PACK_ESPACE;
    }
    switch (bits) {
    case 1: unpack_table(in, n, 1, codes); break;
    case 2: unpack_table(in, n, 2, codes); break;
    case 3: unpack_body(in, n, 3, codes); break;
    case 4: unpack_aligned(in, n, 4, codes); break;
    case 5: unpack_body(in, n, 5, codes); break;
    case 6: unpack_body(in, n, 6, codes); break;
    case 7: unpack_body(in, n, 7, codes); break;
    default:
        if (n != 0u) {
            memcpy(codes, in, n);
        }
        break;
    }
    return SP_PACK_OK;
}

/* Height-width layout: element i of the stream is channel i / (h*w), pixel i % (h*w). */
int sp_pack_hw(const uint8_t *codes, size_t h, size_t w, size_t c, unsigned bits, uint8_t *out,
               size_t out_len) {
    const size_t plane = h * w;
    const size_t n = plane * c;
    if (bits < 1u || bits > 8u) {
        return SP_PACK_EBITS;
    }
    if (out_len < sp_packed_size(n, bits)) {
        return SP_PACK_ESPACE;
    }
    uint8_t group[8];
    size_t filled = 0;
    uint8_t *dst = out;
    for (size_t ch = 0; ch < c; ++ch) {
        for (size_t p = 0; p < plane; ++p) {
            group[filled++] = codes[p * c + ch];
            if (filled == 8u) {
                put_bytes(gather_word(group, 8u, bits), dst, bits);
                dst += bits;
                filled = 0;
            }
        }
    }
    if (filled != 0u) {
        put_bytes(gather_word(group, filled, bits), dst, (filled * bits + 7u) / 8u);
    }
    return SP_PACK_OK;
}

int sp_unpack_hw(const uint8_t *in, size_t in_len, size_t h, size_t w, size_t c, unsigned bits,
                 uint8_t *codes) {
    const size_t plane = h * w;
    const size_t n = plane * c;
    if (bits < 1u || bits > 8u) {
        return SP_PACK_EBITS;
    }
    if (in_len < sp_packed_size(n, bits)) {
        return SP_PACK_ESPACE;
    }
    uint8_t group[8];
    size_t avail = 0, used = 0, left = n;
    const uint8_t *src = in;
    for (size_t ch = 0; ch < c; ++ch) {
        for (size_t p = 0; p < plane; ++p) {
            if (used == avail) {
                avail = left < 8u ? left : 8u;
                const size_t nbytes = (avail * bits + 7u) / 8u;
                scatter_word(get_bytes(src, nbytes), group, avail, bits);
                src += nbytes;
                left -= avail;
                used = 0;
            }
            codes[p * c + ch] = group[used++];
        }
    }
    return SP_PACK_OK;
}

void sp_requantize_lut(const int8_t *values, size_t n, const uint8_t lut[256], uint8_t *codes) {
    for (size_t i = 0; i < n; ++i) {
        codes[i] = lut[(uint8_t)((int)values[i] + 128)];
    }
}

void sp_dequantize(const uint8_t *codes, size_t n, int32_t zero_point, float scale, float *out) {
    const float zp = (float)zero_point;
    for (size_t i = 0; i < n; ++i) {
        out[i] = ((float)codes[i] - zp) * scale;
    }
}

/* Round half away from zero without libm; |x| is bounded by the caller. */
static double round_half_away(double x) {
    return x >= 0.0 ? (double)(int64_t)(x + 0.5) : -(double)(int64_t)(-x + 0.5);
}

int sp_build_lut(float in_scale, int32_t in_zero_point, float scale, int32_t zero_point, unsigned bits,
                 uint8_t lut[256]) {
    if (bits < 1u || bits > 8u) {
        return SP_PACK_EBITS;
    }
    if (!(scale > 0.0f)) {
        return SP_PACK_ESPACE;
    }
    const double top = (double)((1u << bits) - 1u);
    for (int k = 0; k < 256; ++k) {
        double q = (double)((int64_t)k - 128 - (int64_t)in_zero_point) * (double)in_scale / (double)scale;
        if (!(q > -1e12)) { /* also catches NaN */
            q = -1e12;
        } else if (q > 1e12) {
            q = 1e12;
        }
        double v = round_half_away(q) + (double)zero_point;
        if (v < 0.0) {
            v = 0.0;
        } else if (v > top) {
            v = top;
        }
        lut[k] = (uint8_t)v;
    }
    return SP_PACK_OK;
}

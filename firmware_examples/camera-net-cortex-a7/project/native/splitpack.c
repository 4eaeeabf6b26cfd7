/*
 * splitpack: see splitpack.h for the layout contract.
 *
 * Every b in 1..8 packs 8 codes into exactly b bytes, so the portable loops work on groups of 8 codes
 * through a 64-bit word: squeeze8/spread8 merge or split the group's bytes in three shift-and-mask
 * steps (SWAR); the bit width is a compile-time constant inside each switch case (the helpers are
 * inlined), which lets the compiler specialise them. Vector kernels (AVX2 picked at run time on
 * x86-64, NEON on ARM) do the same on 4 or 2 groups at a time, b = 4 has its own nibble kernels, and
 * the portable code finishes every tail (< 8 codes: byte-aligned, through the same word, truncated).
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

#if defined(__BYTE_ORDER__) && defined(__ORDER_LITTLE_ENDIAN__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define SP_LITTLE_ENDIAN 1
#else
#define SP_LITTLE_ENDIAN 0
#endif

/*
 * Vector paths. x86-64: SSE2 is the baseline, AVX2 kernels are compiled with a target attribute and
 * chosen at run time (__builtin_cpu_supports), so the extension still runs on any x86-64 and nothing
 * needs -march. ARM: NEON when the compiler targets it (the edge builds use -mfpu=neon-vfpv4).
 * Every other target runs the portable code below, which is also what finishes every tail.
 */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define SP_X86 1
#else
#define SP_X86 0
#endif
#if defined(__ARM_NEON) || defined(__ARM_NEON__)
#include <arm_neon.h>
#define SP_NEON 1
#else
#define SP_NEON 0
#endif

/* Codes per block of the fused requantise+pack and unpack+dequantise: a multiple of 8, on the stack. */
#define SP_BLOCK 512u

/* Eight copies of a byte. */
static inline uint64_t bytes8(unsigned v) {
    return 0x0101010101010101u * (uint64_t)v;
}

/*
 * SWAR: eight codes, code j in byte j (already masked to `bits`), become the 8*bits-bit LSB-first
 * stream of the group in three merge steps (pairs into 16-bit lanes, then 32, then 64).
 */
static inline uint64_t squeeze8(uint64_t w, unsigned bits) {
    w = (w & 0x00ff00ff00ff00ffu) | ((w & 0xff00ff00ff00ff00u) >> (8u - bits));
    w = (w & 0x0000ffff0000ffffu) | ((w & 0xffff0000ffff0000u) >> (16u - 2u * bits));
    return (w & 0x00000000ffffffffu) | ((w & 0xffffffff00000000u) >> (32u - 4u * bits));
}

/* Inverse of squeeze8: the low 8*bits bits of w (anything above is ignored) -> code j in byte j. */
static inline uint64_t spread8(uint64_t w, unsigned bits) {
    const uint64_t m32 = ((uint64_t)1 << (4u * bits)) - 1u;
    const uint64_t m16 = (((uint64_t)1 << (2u * bits)) - 1u) * 0x0000000100000001u;
    const uint64_t m8 = (((uint64_t)1 << bits) - 1u) * 0x0001000100010001u;
    w = (w & m32) | ((w << (32u - 4u * bits)) & (m32 << 32));
    w = (w & m16) | ((w << (16u - 2u * bits)) & (m16 << 16));
    return (w & m8) | ((w << (8u - bits)) & (m8 << 8));
}

/*
 * Portable group-of-8 packing from group `g` on; `room` is how many bytes out may hold. On
 * little-endian hosts a group's b bytes are the low bytes of its 64-bit word, so one 8-byte store
 * replaces the byte loop wherever 8 bytes fit (the next group overwrites the extra bytes).
 */
static inline void pack_groups(const uint8_t *codes, size_t n, unsigned bits, uint8_t *out, size_t room,
                               size_t g) {
    const size_t groups = n / 8u;
    if (SP_LITTLE_ENDIAN) {
        const uint64_t mask = bytes8((1u << bits) - 1u);
        for (; g < groups && (size_t)bits * g + 8u <= room; ++g) {
            uint64_t word;
            memcpy(&word, codes + 8u * g, 8u);
            word = squeeze8(word & mask, bits);
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

/* Portable unpacking from group `g` on; `room` is how many bytes `in` holds. */
static inline void unpack_groups(const uint8_t *in, size_t n, unsigned bits, uint8_t *codes, size_t room,
                                 size_t g) {
    const size_t groups = n / 8u;
    if (SP_LITTLE_ENDIAN) {
        for (; g < groups && (size_t)bits * g + 8u <= room; ++g) {
            uint64_t word;
            memcpy(&word, in + (size_t)bits * g, 8u);
            word = spread8(word, bits);
            memcpy(codes + 8u * g, &word, 8u);
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

#if SP_X86
static int have_avx2(void) {
    return __builtin_cpu_supports("avx2");
}

/* b = 4, 64 codes -> 32 bytes per step: maddubs forms c0 + 16 * c1 in each 16-bit lane. */
__attribute__((target("avx2"))) static size_t pack4_avx2(const uint8_t *codes, size_t n, uint8_t *out) {
    const __m256i low = _mm256_set1_epi8(0x0f);
    const __m256i weights = _mm256_set1_epi16(0x1001);
    size_t i = 0;
    for (; i + 64u <= n; i += 64u) {
        const __m256i a = _mm256_loadu_si256((const __m256i *)(const void *)(codes + i));
        const __m256i b = _mm256_loadu_si256((const __m256i *)(const void *)(codes + i + 32u));
        const __m256i pa = _mm256_maddubs_epi16(_mm256_and_si256(a, low), weights);
        const __m256i pb = _mm256_maddubs_epi16(_mm256_and_si256(b, low), weights);
        const __m256i packed = _mm256_permute4x64_epi64(_mm256_packus_epi16(pa, pb), 0xd8);
        _mm256_storeu_si256((__m256i *)(void *)(out + i / 2u), packed);
    }
    return i;
}

/* b = 4 on baseline x86-64 (SSE2), 32 codes -> 16 bytes per step. */
static size_t pack4_sse2(const uint8_t *codes, size_t n, uint8_t *out) {
    const __m128i lo = _mm_set1_epi16(0x000f), hi = _mm_set1_epi16(0x00f0);
    size_t i = 0;
    for (; i + 32u <= n; i += 32u) {
        const __m128i a = _mm_loadu_si128((const __m128i *)(const void *)(codes + i));
        const __m128i b = _mm_loadu_si128((const __m128i *)(const void *)(codes + i + 16u));
        const __m128i pa = _mm_or_si128(_mm_and_si128(a, lo), _mm_and_si128(_mm_srli_epi16(a, 4), hi));
        const __m128i pb = _mm_or_si128(_mm_and_si128(b, lo), _mm_and_si128(_mm_srli_epi16(b, 4), hi));
        _mm_storeu_si128((__m128i *)(void *)(out + i / 2u), _mm_packus_epi16(pa, pb));
    }
    return i;
}

/*
 * Any b in 1..7, 32 codes (four groups) per step, squeeze8 on four 64-bit lanes with multiply-adds
 * for the first two merges (maddubs: c0 + 2^b c1, b <= 6; madd: p0 + 2^2b p1) and shifts for the
 * last; a byte shuffle brings each 128-bit half's two groups together (2b bytes), and two
 * overlapping 16-byte stores place them. Stops where a store would pass `room`; returns the codes
 * done (a multiple of 32).
 */
__attribute__((target("avx2"))) static size_t pack_avx2(const uint8_t *codes, size_t n, unsigned bits,
                                                        uint8_t *out, size_t room) {
    uint8_t order[32];
    for (unsigned k = 0; k < 16u; ++k) {
        const unsigned src = k < bits ? k : (k < 2u * bits ? 8u + k - bits : 0x80u);
        order[k] = order[16u + k] = (uint8_t)src;
    }
    const __m256i shuffle = _mm256_loadu_si256((const __m256i *)(const void *)order);
    const __m256i mask = _mm256_set1_epi8((char)((1u << bits) - 1u));
    const __m256i pairs = _mm256_set1_epi16((short)(1u | (1u << (8u + bits))));
    const __m256i quads = _mm256_set1_epi32((int)(1u | (1u << (16u + 2u * bits))));
    const __m256i m8 = _mm256_set1_epi16(0x00ff), m32 = _mm256_set1_epi64x(0xffffffff);
    const __m128i s8 = _mm_cvtsi32_si128((int)(8u - bits)), s32 = _mm_cvtsi32_si128((int)(32u - 4u * bits));
    size_t i = 0, o = 0;
    for (; i + 32u <= n && o + 2u * bits + 16u <= room; i += 32u, o += 4u * bits) {
        __m256i w = _mm256_and_si256(_mm256_loadu_si256((const __m256i *)(const void *)(codes + i)), mask);
        if (bits <= 6u) { /* 2^b must fit a signed byte */
            w = _mm256_maddubs_epi16(w, pairs);
        } else {
            w = _mm256_or_si256(_mm256_and_si256(w, m8), _mm256_srl_epi64(_mm256_andnot_si256(m8, w), s8));
        }
        w = _mm256_madd_epi16(w, quads);
        w = _mm256_or_si256(_mm256_and_si256(w, m32), _mm256_srl_epi64(_mm256_andnot_si256(m32, w), s32));
        w = _mm256_shuffle_epi8(w, shuffle);
        _mm_storeu_si128((__m128i *)(void *)(out + o), _mm256_castsi256_si128(w));
        _mm_storeu_si128((__m128i *)(void *)(out + o + 2u * bits), _mm256_extracti128_si256(w, 1));
    }
    return i;
}
#endif

#if SP_NEON
/* b = 4, 32 codes -> 16 bytes per step: de-interleaving load, then shift-left-and-insert. */
static size_t pack4_neon(const uint8_t *codes, size_t n, uint8_t *out) {
    const uint8x16_t low = vdupq_n_u8(0x0f);
    size_t i = 0;
    for (; i + 32u <= n; i += 32u) {
        const uint8x16x2_t v = vld2q_u8(codes + i);
        vst1q_u8(out + i / 2u, vsliq_n_u8(vandq_u8(v.val[0], low), v.val[1], 4));
    }
    return i;
}

/* Any b in 1..7, 16 codes (two groups) per step: squeeze8 on two 64-bit lanes, two 8-byte stores. */
static size_t pack_neon(const uint8_t *codes, size_t n, unsigned bits, uint8_t *out, size_t room) {
    const uint8x16_t mask = vdupq_n_u8((uint8_t)((1u << bits) - 1u));
    const uint64x2_t m8 = vdupq_n_u64(0x00ff00ff00ff00ffu), m16 = vdupq_n_u64(0x0000ffff0000ffffu);
    const uint64x2_t m32 = vdupq_n_u64(0x00000000ffffffffu);
    const int64x2_t s8 = vdupq_n_s64(-(int64_t)(8u - bits)), s16 = vdupq_n_s64(-(int64_t)(16u - 2u * bits));
    const int64x2_t s32 = vdupq_n_s64(-(int64_t)(32u - 4u * bits));
    size_t i = 0, o = 0;
    for (; i + 16u <= n && o + bits + 8u <= room; i += 16u, o += 2u * bits) {
        uint64x2_t w = vreinterpretq_u64_u8(vandq_u8(vld1q_u8(codes + i), mask));
        w = vorrq_u64(vandq_u64(w, m8), vshlq_u64(vbicq_u64(w, m8), s8));
        w = vorrq_u64(vandq_u64(w, m16), vshlq_u64(vbicq_u64(w, m16), s16));
        w = vorrq_u64(vandq_u64(w, m32), vshlq_u64(vbicq_u64(w, m32), s32));
        vst1_u8(out + o, vreinterpret_u8_u64(vget_low_u64(w)));
        vst1_u8(out + o + bits, vreinterpret_u8_u64(vget_high_u64(w)));
    }
    return i;
}
#endif

/*
 * b = 4: codes never straddle a byte. The vector kernel does the bulk; the tail (or everything on
 * other targets) runs the scalar byte loop, which compilers vectorise too.
 */
static void pack4(const uint8_t *codes, size_t n, uint8_t *out) {
    size_t i = 0;
#if SP_X86
    /* Misaligned AVX2 loads cost ~20% here: the scalar loop first reaches a 64-byte boundary. */
    size_t head = (size_t)(0u - (uintptr_t)codes) & 63u;
    if (head % 2u != 0u || head > n) {
        head = 0;
    }
    for (; i < head; i += 2u) {
        out[i / 2u] = (uint8_t)((codes[i] & 0x0fu) | ((unsigned)(codes[i + 1u] & 0x0fu) << 4));
    }
    i += have_avx2() ? pack4_avx2(codes + i, n - i, out + i / 2u) : pack4_sse2(codes + i, n - i, out + i / 2u);
#elif SP_NEON
    i = pack4_neon(codes, n, out);
#endif
    for (; i + 2u <= n; i += 2u) {
        out[i / 2u] = (uint8_t)((codes[i] & 0x0fu) | ((unsigned)(codes[i + 1u] & 0x0fu) << 4));
    }
    if (i < n) {
        out[i / 2u] = (uint8_t)(codes[i] & 0x0fu);
    }
}

/* Any b in 1..7 except 4: the vector kernel where there is one, then pack_groups. */
static inline void pack_bits(const uint8_t *codes, size_t n, unsigned bits, uint8_t *out, size_t room) {
    size_t done = 0;
#if SP_X86
    if (have_avx2()) {
        done = pack_avx2(codes, n, bits, out, room);
    }
#elif SP_NEON
    done = pack_neon(codes, n, bits, out, room);
#endif
    pack_groups(codes, n, bits, out, room, done / 8u);
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

/* b = 4: one byte, two codes. */
static void unpack4(const uint8_t *in, size_t n, uint8_t *codes) {
    const size_t full = n / 2u;
    for (size_t i = 0; i < full; ++i) {
        codes[2u * i] = (uint8_t)(in[i] & 0x0fu);
        codes[2u * i + 1u] = (uint8_t)(in[i] >> 4);
    }
    if (n % 2u != 0u) {
        codes[n - 1u] = (uint8_t)(in[full] & 0x0fu);
    }
}

/* Checked arguments; `room` >= sp_packed_size(n, bits) bytes are writable at out. */
static void pack_any(const uint8_t *codes, size_t n, unsigned bits, uint8_t *out, size_t room) {
    switch (bits) {
    case 1: pack_bits(codes, n, 1, out, room); break;
    case 2: pack_bits(codes, n, 2, out, room); break;
    case 3: pack_bits(codes, n, 3, out, room); break;
    case 4: pack4(codes, n, out); break;
    case 5: pack_bits(codes, n, 5, out, room); break;
    case 6: pack_bits(codes, n, 6, out, room); break;
    case 7: pack_bits(codes, n, 7, out, room); break;
    default:
        if (n != 0u) {
            memcpy(out, codes, n);
        }
        break;
    }
}

/* Checked arguments; `room` >= sp_packed_size(n, bits) bytes are readable at in. */
static void unpack_any(const uint8_t *in, size_t n, unsigned bits, uint8_t *codes, size_t room) {
    switch (bits) {
    case 1: unpack_table(in, n, 1, codes); break;
    case 2: unpack_table(in, n, 2, codes); break;
    case 3: unpack_groups(in, n, 3, codes, room, 0); break;
    case 4: unpack4(in, n, codes); break;
    case 5: unpack_groups(in, n, 5, codes, room, 0); break;
    case 6: unpack_groups(in, n, 6, codes, room, 0); break;
    case 7: unpack_groups(in, n, 7, codes, room, 0); break;
    default:
        if (n != 0u) {
            memcpy(codes, in, n);
        }
        break;
    }
}

/* The argument check every packing entry point starts with: bits in 1..8, `len` bytes enough for n codes. */
static int check_packed(size_t n, unsigned bits, size_t len) {
    if (bits < 1u || bits > 8u) {
        return SP_PACK_EBITS;
    }
    return len < sp_packed_size(n, bits) ? SP_PACK_ESPACE : SP_PACK_OK;
}

int sp_pack(const uint8_t *codes, size_t n, unsigned bits, uint8_t *out, size_t out_len) {
    const int status = check_packed(n, bits, out_len);
    if (status != SP_PACK_OK) {
        return status;
    }
    pack_any(codes, n, bits, out, out_len);
    return SP_PACK_OK;
}

int sp_unpack(const uint8_t *in, size_t in_len, size_t n, unsigned bits, uint8_t *codes) {
    const int status = check_packed(n, bits, in_len);
    if (status != SP_PACK_OK) {
        return status;
    }
    unpack_any(in, n, bits, codes, in_len);
    return SP_PACK_OK;
}

/* Height-width layout: element i of the stream is channel i / (h*w), pixel i % (h*w). */
int sp_pack_hw(const uint8_t *codes, size_t h, size_t w, size_t c, unsigned bits, uint8_t *out,
               size_t out_len) {
    const size_t plane = h * w;
    const size_t n = plane * c;
    const int status = check_packed(n, bits, out_len);
    if (status != SP_PACK_OK) {
        return status;
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
    const int status = check_packed(n, bits, in_len);
    if (status != SP_PACK_OK) {
        return status;
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

/*
 * The LUT lookup stays scalar: on ARMv7 NEON a 256-entry lookup is eight 32-byte vtbl/vtbx steps per 8
 * values with the tables spilling out of the register file, which measured ~1.2x more executed
 * instructions under qemu-arm than this six-instruction loop (and unrolling it did not help either).
 */
static void requantize(const int8_t *values, size_t n, const uint8_t lut[256], uint8_t *codes) {
    for (size_t i = 0; i < n; ++i) {
        codes[i] = lut[(uint8_t)((int)values[i] + 128)];
    }
}

void sp_requantize_lut(const int8_t *values, size_t n, const uint8_t lut[256], uint8_t *codes) {
    requantize(values, n, lut, codes);
}

int sp_requantize_pack(const int8_t *values, size_t n, const uint8_t lut[256], unsigned bits, uint8_t *out,
                       size_t out_len) {
    const int status = check_packed(n, bits, out_len);
    if (status != SP_PACK_OK) {
        return status;
    }
    if (bits == 8u) {
        requantize(values, n, lut, out);
        return SP_PACK_OK;
    }
    uint8_t block[SP_BLOCK];
    for (size_t i = 0; i < n; i += SP_BLOCK) {
        const size_t m = n - i < SP_BLOCK ? n - i : SP_BLOCK;
        const size_t at = i / 8u * bits; /* blocks are whole groups, so each starts on a byte */
        requantize(values + i, m, lut, block);
        pack_any(block, m, bits, out + at, out_len - at);
    }
    return SP_PACK_OK;
}

void sp_dequantize(const uint8_t *codes, size_t n, int32_t zero_point, float scale, float *out) {
    const float zp = (float)zero_point;
    for (size_t i = 0; i < n; ++i) {
        out[i] = ((float)codes[i] - zp) * scale;
    }
}

int sp_unpack_dequantize(const uint8_t *in, size_t in_len, size_t n, unsigned bits, int32_t zero_point,
                         float scale, float *out) {
    const int status = check_packed(n, bits, in_len);
    if (status != SP_PACK_OK) {
        return status;
    }
    uint8_t block[SP_BLOCK];
    for (size_t i = 0; i < n; i += SP_BLOCK) {
        const size_t m = n - i < SP_BLOCK ? n - i : SP_BLOCK;
        const size_t at = i / 8u * bits;
        unpack_any(in + at, m, bits, block, in_len - at);
        sp_dequantize(block, m, zero_point, scale, out + i);
    }
    return SP_PACK_OK;
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

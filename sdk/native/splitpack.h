/*
 * splitpack: b-bit code packing, int8 -> code requantisation and code -> float dequantisation.
 *
 * One source of truth shared by the cloud receiver (through cffi) and by every generated edge
 * application (copied verbatim). Portable C99, no allocation, no global state.
 *
 * Layout contract (docs/wire-protocol.md, "Bit packing"):
 *   - codes are unsigned b-bit integers, 1 <= b <= 8;
 *   - "channel" layout: codes flattened in NHWC order (the tensor's natural order), the fast layout
 *     of the AUTO-SPLIT paper's Table 6;
 *   - the bitstream is LSB-first: code i occupies bits [i*b, (i+1)*b) of the little-endian stream,
 *     so with b = 4, byte 0 holds code 0 in its low nibble and code 1 in its high nibble;
 *   - the last byte is zero-padded.
 * The "height-width" layout (codes gathered channel by channel, i.e. CHW order) exists only for the
 * benchmark that reproduces the paper's layout comparison.
 *
 * Requantisation LUT contract: lut[k] is the b-bit code of the int8 value (k - 128).
 */
#ifndef SPLITPACK_H
#define SPLITPACK_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum {
    SP_PACK_OK = 0,
    SP_PACK_EBITS = -1, /* bits outside 1..8 */
    SP_PACK_ESPACE = -2 /* destination or source buffer too small */
};

/* Bytes needed for n codes of b bits: ceil(n * b / 8). Returns 0 for bits outside 1..8. */
size_t sp_packed_size(size_t n, unsigned bits);

/*
 * Pack n codes (NHWC order) into out (out_len >= sp_packed_size(n, bits)). Only the low `bits` bits
 * of each code are used. Returns SP_PACK_OK or a negative SP_PACK_* error.
 */
int sp_pack(const uint8_t *codes, size_t n, unsigned bits, uint8_t *out, size_t out_len);

/* Unpack n codes from in (in_len >= sp_packed_size(n, bits)) into codes. */
int sp_unpack(const uint8_t *in, size_t in_len, size_t n, unsigned bits, uint8_t *codes);

/*
 * Height-width layout: codes is an HWC tensor (one image); the bitstream holds it in CHW order.
 * Same size as the channel layout; slower because the gather is strided.
 */
int sp_pack_hw(const uint8_t *codes, size_t h, size_t w, size_t c, unsigned bits, uint8_t *out,
               size_t out_len);
int sp_unpack_hw(const uint8_t *in, size_t in_len, size_t h, size_t w, size_t c, unsigned bits,
                 uint8_t *codes);

/* codes[i] = lut[values[i] + 128]: the edge's int8 -> b-bit requantisation. */
void sp_requantize_lut(const int8_t *values, size_t n, const uint8_t lut[256], uint8_t *codes);

/*
 * sp_requantize_lut then sp_pack in one pass (the edge's path): the codes go through a small block on
 * the stack, never a full intermediate array. Same result and return codes as the two calls.
 */
int sp_requantize_pack(const int8_t *values, size_t n, const uint8_t lut[256], unsigned bits, uint8_t *out,
                       size_t out_len);

/* out[i] = (codes[i] - zero_point) * scale: the cloud's dequantisation. */
void sp_dequantize(const uint8_t *codes, size_t n, int32_t zero_point, float scale, float *out);

/*
 * sp_unpack then sp_dequantize in one pass (the receiver's path), through a small block on the stack.
 * Same result and return codes as the two calls.
 */
int sp_unpack_dequantize(const uint8_t *in, size_t in_len, size_t n, unsigned bits, int32_t zero_point,
                         float scale, float *out);

/*
 * Build the requantisation LUT from the edge tensor's int8 quantisation (in_scale, in_zero_point)
 * to the wire's b-bit quantisation (scale, zero_point):
 *   lut[k] = clamp(round_half_away((k - 128 - in_zero_point) * in_scale / scale) + zero_point, 0, 2^b - 1)
 * computed in double precision. Returns SP_PACK_OK, SP_PACK_EBITS, or SP_PACK_ESPACE when scale <= 0.
 */
int sp_build_lut(float in_scale, int32_t in_zero_point, float scale, int32_t zero_point, unsigned bits,
                 uint8_t lut[256]);

#ifdef __cplusplus
}
#endif

#endif /* SPLITPACK_H */

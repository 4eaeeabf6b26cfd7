/*
 * splitcodec: zstd compression of a tensor's wire payload (docs/wire-protocol.md, "Compressed payloads").
 *
 * Shared, like splitframe and splitpack, by the cloud receiver (through cffi) and every generated edge
 * application; it links the system libzstd. Compression writes one zstd frame that declares its content
 * size. Decompression is bounded: the caller says how many bytes the payload must decompress to (the
 * tensor's kind, bits and dims imply it, sp_tensor_raw_size), the frame must declare exactly that
 * content size and be one whole frame, and it is decompressed into a buffer of exactly that size, so a
 * hostile frame (a decompression bomb, a frame whose declared size lies, trailing data) is refused with
 * SP_E_INFLATE or SP_E_ZSTD without writing past the buffer or allocating beyond it.
 *
 * The contexts hold zstd's working memory; reuse one per thread (creating one per call works but costs
 * an allocation each time). Passing NULL for a context uses a temporary one.
 */
#ifndef SPLITCODEC_H
#define SPLITCODEC_H

#include <stddef.h>
#include <stdint.h>

#include "splitframe.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SP_ZSTD_LEVEL 3 /* the level writers use unless told otherwise */

typedef struct sp_zstd_cctx sp_zstd_cctx; /* a ZSTD_CCtx */
typedef struct sp_zstd_dctx sp_zstd_dctx; /* a ZSTD_DCtx */

sp_zstd_cctx *sp_zstd_cctx_new(void);
void sp_zstd_cctx_free(sp_zstd_cctx *cctx);
sp_zstd_dctx *sp_zstd_dctx_new(void);
void sp_zstd_dctx_free(sp_zstd_dctx *dctx);

/* Capacity sp_compress() needs for `len` input bytes in the worst case (ZSTD_compressBound). */
size_t sp_compress_bound(size_t len);

/*
 * Compress src[0..len) at `level` (1..19; SP_ZSTD_LEVEL if 0) into out[0..cap) as one zstd frame with
 * its content size; sets *written. SP_E_SPACE if cap is below what the frame needs, SP_E_ZSTD on any
 * other zstd failure, SP_E_ARG on NULL pointers or a level out of range.
 */
sp_status sp_compress(sp_zstd_cctx *cctx, const uint8_t *src, size_t len, int level, uint8_t *out, size_t cap,
                      size_t *written);

/*
 * Decompress the zstd frame src[0..len) into out[0..expected), which must be exactly what it holds:
 * SP_E_INFLATE if the frame does not declare content size `expected` or would write more or fewer
 * bytes; SP_E_ZSTD if it is not one valid zstd frame (corrupt, truncated, or followed by more data).
 */
sp_status sp_decompress(sp_zstd_dctx *dctx, const uint8_t *src, size_t len, uint8_t *out, size_t expected);

#ifdef __cplusplus
}
#endif

#endif /* SPLITCODEC_H */

/*
 * splitcodec: see splitcodec.h. The only code in sdk/native that allocates (zstd's contexts).
 */
#include "splitcodec.h"

#include <zstd.h>
#include <zstd_errors.h>

sp_zstd_cctx *sp_zstd_cctx_new(void) { return (sp_zstd_cctx *)ZSTD_createCCtx(); }

void sp_zstd_cctx_free(sp_zstd_cctx *cctx) { ZSTD_freeCCtx((ZSTD_CCtx *)cctx); }

sp_zstd_dctx *sp_zstd_dctx_new(void) { return (sp_zstd_dctx *)ZSTD_createDCtx(); }

void sp_zstd_dctx_free(sp_zstd_dctx *dctx) { ZSTD_freeDCtx((ZSTD_DCtx *)dctx); }

size_t sp_compress_bound(size_t len) { return ZSTD_compressBound(len); }

sp_status sp_compress(sp_zstd_cctx *cctx, const uint8_t *src, size_t len, int level, uint8_t *out, size_t cap,
                      size_t *written) {
    if ((src == NULL && len != 0u) || out == NULL || written == NULL) {
        return SP_E_ARG;
    }
    if (level == 0) {
        level = SP_ZSTD_LEVEL;
    }
    if (level < 1 || level > ZSTD_maxCLevel()) {
        return SP_E_ARG;
    }
    ZSTD_CCtx *ctx = cctx != NULL ? (ZSTD_CCtx *)cctx : ZSTD_createCCtx();
    if (ctx == NULL) {
        return SP_E_ZSTD;
    }
    /* ZSTD_compressCCtx writes the content size into the frame header (the size is known up front). */
    const size_t n = ZSTD_compressCCtx(ctx, out, cap, src, len, level);
    if (cctx == NULL) {
        ZSTD_freeCCtx(ctx);
    }
    if (ZSTD_isError(n)) {
        return ZSTD_getErrorCode(n) == ZSTD_error_dstSize_tooSmall ? SP_E_SPACE : SP_E_ZSTD;
    }
    *written = n;
    return SP_OK;
}

sp_status sp_decompress(sp_zstd_dctx *dctx, const uint8_t *src, size_t len, uint8_t *out, size_t expected) {
    if (src == NULL || (out == NULL && expected != 0u)) {
        return SP_E_ARG;
    }
    /* The frame header's content size, read before anything is decompressed: it must be the implied size. */
    const unsigned long long declared = ZSTD_getFrameContentSize(src, len);
    if (declared == ZSTD_CONTENTSIZE_ERROR) {
        return SP_E_ZSTD;
    }
    if (declared == ZSTD_CONTENTSIZE_UNKNOWN || declared != (unsigned long long)expected) {
        return SP_E_INFLATE;
    }
    /* Exactly one frame: a second one appended would decompress past the declared size. */
    const size_t frame_len = ZSTD_findFrameCompressedSize(src, len);
    if (ZSTD_isError(frame_len) || frame_len != len) {
        return SP_E_ZSTD;
    }
    ZSTD_DCtx *ctx = dctx != NULL ? (ZSTD_DCtx *)dctx : ZSTD_createDCtx();
    if (ctx == NULL) {
        return SP_E_ZSTD;
    }
    /* Into exactly `expected` bytes: blocks that expand further fail with dstSize_tooSmall (a declared
     * size that lies), and zstd checks the result against the declared content size. */
    const size_t n = ZSTD_decompressDCtx(ctx, out, expected, src, len);
    if (dctx == NULL) {
        ZSTD_freeDCtx(ctx);
    }
    if (ZSTD_isError(n)) {
        return ZSTD_getErrorCode(n) == ZSTD_error_dstSize_tooSmall ? SP_E_INFLATE : SP_E_ZSTD;
    }
    return n == expected ? SP_OK : SP_E_INFLATE;
}

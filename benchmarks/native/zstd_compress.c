/* Compress payloads the way the edge app does (sdk/native/splitcodec.c: sp_compress, one context reused,
 * level 3), for benchmarks/bench_compression.py to count instructions under qemu-arm.
 *
 *   zstd_compress PAYLOADS SIZE COUNT [LEVEL]
 *
 * PAYLOADS holds COUNT (or more) payloads of SIZE bytes back to back; the first COUNT are compressed one
 * by one and each compressed size is printed as "bytes I N". COUNT 0 does everything but the compression
 * (the baseline the instruction counts subtract). */
#include <stdio.h>
#include <stdlib.h>

#include "splitcodec.h"

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: %s PAYLOADS SIZE COUNT [LEVEL]\n", argv[0]);
        return 2;
    }
    const size_t size = (size_t)strtoul(argv[2], NULL, 10);
    const size_t count = (size_t)strtoul(argv[3], NULL, 10);
    const int level = argc > 4 ? atoi(argv[4]) : SP_ZSTD_LEVEL;
    FILE *f = fopen(argv[1], "rb");
    if (f == NULL || size == 0u) {
        fprintf(stderr, "cannot read %s\n", argv[1]);
        return 2;
    }
    uint8_t *in = (uint8_t *)malloc(size * (count ? count : 1u));
    const size_t cap = sp_compress_bound(size);
    uint8_t *out = (uint8_t *)malloc(cap);
    sp_zstd_cctx *cctx = sp_zstd_cctx_new();
    if (in == NULL || out == NULL || cctx == NULL || fread(in, size, count, f) != count) {
        fprintf(stderr, "cannot read %zu payloads of %zu bytes\n", count, size);
        return 2;
    }
    fclose(f);
    for (size_t i = 0; i < count; ++i) {
        size_t written = 0;
        const sp_status st = sp_compress(cctx, in + i * size, size, level, out, cap, &written);
        if (st != SP_OK) {
            fprintf(stderr, "sp_compress: %d\n", (int)st);
            return 1;
        }
        printf("bytes %zu %zu\n", i, written);
    }
    sp_zstd_cctx_free(cctx);
    free(in);
    free(out);
    return 0;
}

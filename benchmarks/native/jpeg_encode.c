/* Encode raw 8-bit frames with libjpeg-turbo as the camera would: one compressor reused across frames,
 * libjpeg's defaults (baseline, 4:2:0 for colour, no Huffman optimisation) at the given quality.
 *
 *   jpeg_encode FRAMES.raw WIDTH HEIGHT CHANNELS QUALITY COUNT [FIRST.jpg]
 *
 * FRAMES.raw holds frames of HEIGHT x WIDTH x CHANNELS bytes (HWC, 1 or 3 channels); the first COUNT are
 * encoded (0: read only, the baseline an instruction count subtracts). Prints "bytes I N" per frame; writes
 * the first frame's JPEG to FIRST.jpg when given. benchmarks/bench_jpeg.py cross-compiles it against the
 * target's sysroot and counts its instructions under qemu-arm. */
#include <stdio.h>
#include <stdlib.h>

#include <jpeglib.h>

static int fail(const char *what) {
    fprintf(stderr, "jpeg_encode: %s\n", what);
    return 1;
}

int main(int argc, char **argv) {
    if (argc != 7 && argc != 8) return fail("usage: FRAMES.raw WIDTH HEIGHT CHANNELS QUALITY COUNT [FIRST.jpg]");
    const int width = atoi(argv[2]), height = atoi(argv[3]), channels = atoi(argv[4]);
    const int quality = atoi(argv[5]), count = atoi(argv[6]);
    if (width <= 0 || height <= 0 || (channels != 1 && channels != 3) || quality < 1 || quality > 100 || count < 0)
        return fail("bad WIDTH, HEIGHT, CHANNELS (1 or 3), QUALITY (1..100) or COUNT");
    const size_t frame = (size_t)width * height * channels;

    FILE *in = fopen(argv[1], "rb");
    if (in == NULL) return fail("cannot open the frames file");
    unsigned char *pixels = malloc(frame * (count > 0 ? count : 1));
    if (pixels == NULL) return fail("out of memory");
    const size_t got = fread(pixels, frame, count > 0 ? count : 1, in);
    fclose(in);
    if (got != (size_t)(count > 0 ? count : 1)) return fail("the frames file holds fewer frames than COUNT");

    struct jpeg_compress_struct cinfo;
    struct jpeg_error_mgr jerr;
    cinfo.err = jpeg_std_error(&jerr);
    jpeg_create_compress(&cinfo);
    cinfo.image_width = (JDIMENSION)width;
    cinfo.image_height = (JDIMENSION)height;
    cinfo.input_components = channels;
    cinfo.in_color_space = channels == 1 ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_set_defaults(&cinfo);
    jpeg_set_quality(&cinfo, quality, TRUE);

    unsigned long capacity = (unsigned long)frame + 4096;
    unsigned char *out = malloc(capacity);
    if (out == NULL) return fail("out of memory");
    for (int i = 0; i < count; ++i) {
        unsigned char *buf = out;
        unsigned long size = capacity;
        jpeg_mem_dest(&cinfo, &buf, &size);
        jpeg_start_compress(&cinfo, TRUE);
        const unsigned char *src = pixels + frame * i;
        while (cinfo.next_scanline < cinfo.image_height) {
            JSAMPROW row = (JSAMPROW)(src + (size_t)cinfo.next_scanline * width * channels);
            jpeg_write_scanlines(&cinfo, &row, 1);
        }
        jpeg_finish_compress(&cinfo);
        printf("bytes %d %lu\n", i, size);
        if (i == 0 && argc == 8) {
            FILE *f = fopen(argv[7], "wb");
            if (f == NULL || fwrite(buf, 1, size, f) != size || fclose(f) != 0) return fail("cannot write FIRST.jpg");
        }
        if (buf != out) free(buf); /* libjpeg grew its own buffer */
    }
    jpeg_destroy_compress(&cinfo);
    free(out);
    free(pixels);
    return 0;
}

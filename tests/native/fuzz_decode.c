/*
 * libFuzzer target for the frame decoder (built by tests/test_native_fuzz.py with
 * clang -fsanitize=fuzzer,address,undefined). Each input is decoded twice: as is (exercising the
 * prefix and CRC checks), and with its length field and CRC repaired so the fuzzer reaches the body
 * parser. A frame that decodes must re-encode to the same length and decode again, and each of its
 * compressed payloads must decompress (bounded to the size its dims imply) or be refused cleanly.
 */
#include <stdlib.h>
#include <string.h>

#include "splitcodec.h"
#include "splitframe.h"

static void check(int cond) {
    if (!cond) {
        abort();
    }
}

static void decode_and_reencode(const uint8_t *data, size_t size) {
    sp_limits limits = sp_default_limits();
    limits.max_frame_bytes = 1u << 16;
    limits.max_elements = 1u << 16;
    sp_tensor tensors[4];
    sp_message msg;
    memset(&msg, 0, sizeof msg);
    msg.tensors = tensors;
    msg.tensor_capacity = 4;
    size_t consumed = 0;
    if (sp_decode(data, size, &limits, &msg, &consumed) != SP_OK) {
        return;
    }
    check(consumed <= size);
    const size_t need = sp_encoded_size(&msg);
    check(need == consumed);
    uint8_t *out = (uint8_t *)malloc(need);
    check(out != NULL);
    size_t written = 0;
    check(sp_encode(&msg, out, need, &written) == SP_OK && written == need);
    sp_tensor tensors2[4];
    sp_message again;
    memset(&again, 0, sizeof again);
    again.tensors = tensors2;
    again.tensor_capacity = 4;
    check(sp_decode(out, written, &limits, &again, &consumed) == SP_OK);
    check(again.seq == msg.seq && again.type == msg.type && again.tensor_count == msg.tensor_count);
    free(out);
    for (unsigned i = 0; msg.type == SP_MSG_FRAME && i < msg.tensor_count; ++i) {
        if (tensors[i].codec != SP_CODEC_ZSTD) {
            continue;
        }
        const size_t raw = (size_t)sp_tensor_raw_size(&tensors[i]);
        uint8_t *plain = (uint8_t *)malloc(raw);
        check(plain != NULL);
        const sp_status st = sp_decompress(NULL, tensors[i].payload, tensors[i].payload_len, plain, raw);
        check(st == SP_OK || st == SP_E_INFLATE || st == SP_E_ZSTD);
        free(plain);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    decode_and_reencode(data, size);
    if (size < SP_HEADER_LEN + SP_CRC_LEN || size > (1u << 16)) {
        return 0;
    }
    uint8_t *fixed = (uint8_t *)malloc(size);
    check(fixed != NULL);
    memcpy(fixed, data, size);
    memcpy(fixed, "SPLF", 4);
    fixed[4] = SP_VERSION;
    const uint32_t len = (uint32_t)size;
    for (unsigned k = 0; k < 4u; ++k) {
        fixed[8 + k] = (uint8_t)(len >> (8u * k));
    }
    const uint32_t crc = sp_crc32(0, fixed, size - 4u);
    for (unsigned k = 0; k < 4u; ++k) {
        fixed[size - 4u + k] = (uint8_t)(crc >> (8u * k));
    }
    decode_and_reencode(fixed, size);
    free(fixed);
    return 0;
}

/*
 * splitframe: the splitsdk wire protocol's frame codec (docs/wire-protocol.md, "Frames").
 *
 * One source of truth shared by the cloud receiver (through cffi) and by every generated edge
 * application (copied verbatim). Portable C99; encoding writes into a caller buffer and decoding
 * returns views into the caller's buffer, so neither allocates. The decoder checks every limit and
 * every length before it reads a byte it has not bounds-checked.
 *
 * Frame layout, all integers little-endian:
 *
 *   off  size  field
 *     0     4  magic "SPLF"
 *     4     1  protocol version (SP_VERSION)
 *     5     1  message type (SP_MSG_*)
 *     6     2  flags (0; reserved)
 *     8     4  frame length in bytes, CRC included
 *    12     8  sequence number (u64)
 *    20     8  capture timestamp, microseconds since the Unix epoch (i64)
 *    28     -  body (by type, below)
 *   L-4     4  CRC32 (IEEE, as zlib) of bytes [0, L-4)
 *
 *   HELLO : plan hash (32 bytes, SHA-256), device id length (u16), device id (UTF-8, <= 128 bytes)
 *   FRAME : tensor count (u16), split (u16: which split of the bundle the tensors cross, 0 for a
 *           single-split bundle), then per tensor:
 *           kind (u8: SP_KIND_*), bits (u8), rank (u8), codec (u8: SP_CODEC_*), scale (f32),
 *           zero point (i32), dims (u32 x rank), payload length (u32), payload. With SP_CODEC_ZSTD the
 *           payload is one zstd frame of the sp_payload_size() bytes kind/bits/dims imply, and the
 *           payload length is the compressed length (splitcodec.h decompresses it, bounded). With
 *           SP_CODEC_JPEG (kind PACKED, bits 8, dims H, W, C with C 1 or 3) the payload is one baseline
 *           JPEG of the uint8 pixels; the receiver decodes it, bounded by the dims.
 *   RESULT: status (u16), reserved (u16), result length (u32), result bytes
 *   ERROR : error code (u16), reserved (u16), message length (u32), message (UTF-8)
 *   STATS : code (u16, 0), reserved (u16), text length (u32), text (UTF-8 JSON: the edge app's
 *           per-stage timings and counters, sent once before it closes; the receiver stores it
 *           and does not answer)
 *
 * A reader first reads SP_PREFIX_LEN bytes and calls sp_frame_peek(), which validates magic,
 * version, type and the frame length against the limits, so it knows how much to read (or that it
 * must refuse) before it allocates anything.
 *
 * Versions: writers write SP_VERSION (2); readers accept SP_VERSION_MIN (1) to SP_VERSION. A version 1
 * frame has no split and no codec (its reserved fields are read as split 0 and codec 0). A receiver
 * answers a camera in the version of the camera's HELLO (sp_message.version), so a version 1 camera
 * keeps working.
 */
#ifndef SPLITFRAME_H
#define SPLITFRAME_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SP_VERSION 2u
#define SP_VERSION_MIN 1u
#define SP_PREFIX_LEN 12u
#define SP_HEADER_LEN 28u
#define SP_CRC_LEN 4u
#define SP_PLAN_HASH_LEN 32u
#define SP_MAX_DEVICE_ID 128u
#define SP_MAX_RANK 8u
#define SP_TENSOR_FIXED_LEN 16u /* kind..zero point, without dims and payload length */

enum sp_msg_type { SP_MSG_HELLO = 1, SP_MSG_FRAME = 2, SP_MSG_RESULT = 3, SP_MSG_ERROR = 4, SP_MSG_STATS = 5 };

/* How a tensor's payload is coded: b-bit packed codes (b in 1..8), or plain little-endian values. */
enum sp_kind { SP_KIND_PACKED = 0, SP_KIND_INT = 1 /* bits 8, 16 or 32, signed */, SP_KIND_FLOAT = 2 /* 32 */ };

/* How a tensor's payload is coded on the wire (version 2): as it is, one zstd frame of it, or (a camera
 * frame, CLOUD_ONLY) one baseline JPEG of the H x W x C uint8 pixels: kind PACKED, 8 bits, rank 3, C 1 or 3. */
enum sp_codec { SP_CODEC_NONE = 0, SP_CODEC_ZSTD = 1, SP_CODEC_JPEG = 2 };

typedef enum sp_status {
    SP_OK = 0,
    SP_E_TRUNCATED = 1, /* the buffer ends before the frame does (read more, or the peer hung up) */
    SP_E_MAGIC = 2,
    SP_E_VERSION = 3,
    SP_E_TYPE = 4,
    SP_E_TOO_LARGE = 5, /* frame length over the limit */
    SP_E_LENGTH = 6,    /* frame length inconsistent with its content */
    SP_E_CRC = 7,
    SP_E_TENSORS = 8, /* tensor count over the limit or the caller's capacity */
    SP_E_RANK = 9,
    SP_E_DIMS = 10,    /* a zero dim, a dim over the limit, or too many elements */
    SP_E_BITS = 11,    /* kind/bits combination not allowed */
    SP_E_PAYLOAD = 12, /* payload length does not match kind, bits and dims */
    SP_E_SCALE = 13,   /* scale not finite and positive */
    SP_E_DEVICE_ID = 14,
    SP_E_SPACE = 15,   /* encode: the output buffer is too small */
    SP_E_ARG = 16,     /* invalid argument (NULL pointer, bad field in a message to encode) */
    SP_E_CODEC = 17,   /* a tensor's codec is not one this reader knows */
    SP_E_INFLATE = 18, /* a compressed payload does not decompress to exactly the implied size */
    SP_E_ZSTD = 19,    /* a compressed payload is not one valid zstd frame (or compression failed) */
    SP_E_JPEG = 20     /* a JPEG payload that is not one baseline JPEG of exactly the tensor's dims (the
                          receiver's decoder reports it; the codec only checks kind, bits and rank) */
} sp_status;

typedef struct sp_limits {
    uint32_t max_frame_bytes;
    uint32_t max_tensors;
    uint32_t max_rank; /* capped at SP_MAX_RANK */
    uint32_t max_dim;
    uint64_t max_elements; /* per tensor */
} sp_limits;

typedef struct sp_tensor {
    uint8_t kind;
    uint8_t bits;
    uint8_t rank;
    uint8_t codec; /* SP_CODEC_*; payload_len is the compressed length when not SP_CODEC_NONE */
    float scale;
    int32_t zero_point;
    uint32_t dims[SP_MAX_RANK];
    uint32_t payload_len;
    const uint8_t *payload; /* decode: points into the decoded buffer */
} sp_tensor;

typedef struct sp_message {
    uint8_t version; /* decode: the frame's version; encode: 0 writes SP_VERSION, SP_VERSION_MIN..SP_VERSION
                        that version (a version 1 FRAME cannot carry a split or a codec), others are refused */
    uint8_t type;
    uint64_t seq;
    int64_t timestamp_us;
    /* HELLO */
    uint8_t plan_hash[SP_PLAN_HASH_LEN];
    const uint8_t *device_id;
    uint16_t device_id_len;
    /* FRAME: the caller provides `tensors` with room for `tensor_capacity` entries */
    sp_tensor *tensors;
    uint16_t tensor_count;
    uint16_t tensor_capacity;
    uint16_t split; /* 0 for a single-split bundle; a version 1 frame decodes as 0 */
    /* RESULT (status, result bytes), ERROR (code, message) and STATS (0, JSON text) */
    uint16_t status;
    const uint8_t *body;
    uint32_t body_len;
} sp_message;

/* Limits suited to a receiver: 64 MiB frames, 16 tensors, rank 8, dims <= 2^20, 2^26 elements. */
sp_limits sp_default_limits(void);

/* A short, static, English description of a status code. */
const char *sp_strerror(int status);

/* CRC32 (IEEE 802.3, reflected, as zlib.crc32), continuing from `crc` (0 to start). */
uint32_t sp_crc32(uint32_t crc, const uint8_t *data, size_t len);

/* Bytes the (uncompressed) payload of a tensor of this kind, bits and element count has; 0 if invalid. */
uint64_t sp_payload_size(uint8_t kind, uint8_t bits, uint64_t elements);

/*
 * Validate the first SP_PREFIX_LEN bytes of a frame: magic, version, type, and a frame length within
 * [SP_HEADER_LEN + SP_CRC_LEN, limits->max_frame_bytes]. Sets *frame_len and *type on success.
 */
sp_status sp_frame_peek(const uint8_t *buf, size_t len, const sp_limits *limits, uint32_t *frame_len,
                        uint8_t *type);

/* Size sp_encode() will write for this message, or 0 if the message is invalid. */
size_t sp_encoded_size(const sp_message *msg);

/* Encode msg into out[0..cap); sets *written. Validates the message like the decoder would. */
sp_status sp_encode(const sp_message *msg, uint8_t *out, size_t cap, size_t *written);

/* Bytes a tensor's payload has once decompressed (sp_payload_size of its kind, bits and dims); 0 if invalid. */
uint64_t sp_tensor_raw_size(const sp_tensor *t);

/*
 * Decode one frame from buf[0..len). On SP_OK, msg holds views into buf and *consumed is the frame
 * length. msg->tensors / msg->tensor_capacity must be set by the caller for FRAME messages.
 */
sp_status sp_decode(const uint8_t *buf, size_t len, const sp_limits *limits, sp_message *msg,
                    size_t *consumed);

#ifdef __cplusplus
}
#endif

#endif /* SPLITFRAME_H */

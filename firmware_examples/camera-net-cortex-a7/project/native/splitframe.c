/*
 * splitframe: see splitframe.h for the frame layout.
 *
 * The decoder walks the buffer with a cursor whose every read is preceded by a bounds check, and it
 * validates the frame length and CRC before it interprets the body, so a hostile frame can at worst
 * be refused. Nothing here allocates.
 */
#include "splitframe.h"

#include <string.h>

static const uint8_t kMagic[4] = {'S', 'P', 'L', 'F'};

static const uint32_t kCrcTable[256] = {
    0x00000000u, 0x77073096u, 0xee0e612cu, 0x990951bau, 0x076dc419u, 0x706af48fu,
    0xe963a535u, 0x9e6495a3u, 0x0edb8832u, 0x79dcb8a4u, 0xe0d5e91eu, 0x97d2d988u,
    0x09b64c2bu, 0x7eb17cbdu, 0xe7b82d07u, 0x90bf1d91u, 0x1db71064u, 0x6ab020f2u,
    0xf3b97148u, 0x84be41deu, 0x1adad47du, 0x6ddde4ebu, 0xf4d4b551u, 0x83d385c7u,
    0x136c9856u, 0x646ba8c0u, 0xfd62f97au, 0x8a65c9ecu, 0x14015c4fu, 0x63066cd9u,
    0xfa0f3d63u, 0x8d080df5u, 0x3b6e20c8u, 0x4c69105eu, 0xd56041e4u, 0xa2677172u,
    0x3c03e4d1u, 0x4b04d447u, 0xd20d85fdu, 0xa50ab56bu, 0x35b5a8fau, 0x42b2986cu,
    0xdbbbc9d6u, 0xacbcf940u, 0x32d86ce3u, 0x45df5c75u, 0xdcd60dcfu, 0xabd13d59u,
    0x26d930acu, 0x51de003au, 0xc8d75180u, 0xbfd06116u, 0x21b4f4b5u, 0x56b3c423u,
    0xcfba9599u, 0xb8bda50fu, 0x2802b89eu, 0x5f058808u, 0xc60cd9b2u, 0xb10be924u,
    0x2f6f7c87u, 0x58684c11u, 0xc1611dabu, 0xb6662d3du, 0x76dc4190u, 0x01db7106u,
    0x98d220bcu, 0xefd5102au, 0x71b18589u, 0x06b6b51fu, 0x9fbfe4a5u, 0xe8b8d433u,
    0x7807c9a2u, 0x0f00f934u, 0x9609a88eu, 0xe10e9818u, 0x7f6a0dbbu, 0x086d3d2du,
    0x91646c97u, 0xe6635c01u, 0x6b6b51f4u, 0x1c6c6162u, 0x856530d8u, 0xf262004eu,
    0x6c0695edu, 0x1b01a57bu, 0x8208f4c1u, 0xf50fc457u, 0x65b0d9c6u, 0x12b7e950u,
    0x8bbeb8eau, 0xfcb9887cu, 0x62dd1ddfu, 0x15da2d49u, 0x8cd37cf3u, 0xfbd44c65u,
    0x4db26158u, 0x3ab551ceu, 0xa3bc0074u, 0xd4bb30e2u, 0x4adfa541u, 0x3dd895d7u,
    0xa4d1c46du, 0xd3d6f4fbu, 0x4369e96au, 0x346ed9fcu, 0xad678846u, 0xda60b8d0u,
    0x44042d73u, 0x33031de5u, 0xaa0a4c5fu, 0xdd0d7cc9u, 0x5005713cu, 0x270241aau,
    0xbe0b1010u, 0xc90c2086u, 0x5768b525u, 0x206f85b3u, 0xb966d409u, 0xce61e49fu,
    0x5edef90eu, 0x29d9c998u, 0xb0d09822u, 0xc7d7a8b4u, 0x59b33d17u, 0x2eb40d81u,
    0xb7bd5c3bu, 0xc0ba6cadu, 0xedb88320u, 0x9abfb3b6u, 0x03b6e20cu, 0x74b1d29au,
    0xead54739u, 0x9dd277afu, 0x04db2615u, 0x73dc1683u, 0xe3630b12u, 0x94643b84u,
    0x0d6d6a3eu, 0x7a6a5aa8u, 0xe40ecf0bu, 0x9309ff9du, 0x0a00ae27u, 0x7d079eb1u,
    0xf00f9344u, 0x8708a3d2u, 0x1e01f268u, 0x6906c2feu, 0xf762575du, 0x806567cbu,
    0x196c3671u, 0x6e6b06e7u, 0xfed41b76u, 0x89d32be0u, 0x10da7a5au, 0x67dd4accu,
    0xf9b9df6fu, 0x8ebeeff9u, 0x17b7be43u, 0x60b08ed5u, 0xd6d6a3e8u, 0xa1d1937eu,
    0x38d8c2c4u, 0x4fdff252u, 0xd1bb67f1u, 0xa6bc5767u, 0x3fb506ddu, 0x48b2364bu,
    0xd80d2bdau, 0xaf0a1b4cu, 0x36034af6u, 0x41047a60u, 0xdf60efc3u, 0xa867df55u,
    0x316e8eefu, 0x4669be79u, 0xcb61b38cu, 0xbc66831au, 0x256fd2a0u, 0x5268e236u,
    0xcc0c7795u, 0xbb0b4703u, 0x220216b9u, 0x5505262fu, 0xc5ba3bbeu, 0xb2bd0b28u,
    0x2bb45a92u, 0x5cb36a04u, 0xc2d7ffa7u, 0xb5d0cf31u, 0x2cd99e8bu, 0x5bdeae1du,
    0x9b64c2b0u, 0xec63f226u, 0x756aa39cu, 0x026d930au, 0x9c0906a9u, 0xeb0e363fu,
    0x72076785u, 0x05005713u, 0x95bf4a82u, 0xe2b87a14u, 0x7bb12baeu, 0x0cb61b38u,
    0x92d28e9bu, 0xe5d5be0du, 0x7cdcefb7u, 0x0bdbdf21u, 0x86d3d2d4u, 0xf1d4e242u,
    0x68ddb3f8u, 0x1fda836eu, 0x81be16cdu, 0xf6b9265bu, 0x6fb077e1u, 0x18b74777u,
    0x88085ae6u, 0xff0f6a70u, 0x66063bcau, 0x11010b5cu, 0x8f659effu, 0xf862ae69u,
    0x616bffd3u, 0x166ccf45u, 0xa00ae278u, 0xd70dd2eeu, 0x4e048354u, 0x3903b3c2u,
    0xa7672661u, 0xd06016f7u, 0x4969474du, 0x3e6e77dbu, 0xaed16a4au, 0xd9d65adcu,
    0x40df0b66u, 0x37d83bf0u, 0xa9bcae53u, 0xdebb9ec5u, 0x47b2cf7fu, 0x30b5ffe9u,
    0xbdbdf21cu, 0xcabac28au, 0x53b39330u, 0x24b4a3a6u, 0xbad03605u, 0xcdd70693u,
    0x54de5729u, 0x23d967bfu, 0xb3667a2eu, 0xc4614ab8u, 0x5d681b02u, 0x2a6f2b94u,
    0xb40bbe37u, 0xc30c8ea1u, 0x5a05df1bu, 0x2d02ef8du,
};

sp_limits sp_default_limits(void) {
    sp_limits limits;
    limits.max_frame_bytes = 64u * 1024u * 1024u;
    limits.max_tensors = 16u;
    limits.max_rank = SP_MAX_RANK;
    limits.max_dim = 1u << 20;
    limits.max_elements = (uint64_t)1u << 26;
    return limits;
}

const char *sp_strerror(int status) {
    switch (status) {
    case SP_OK: return "ok";
    case SP_E_TRUNCATED: return "truncated frame";
    case SP_E_MAGIC: return "bad magic (not a splitsdk frame)";
    case SP_E_VERSION: return "unsupported protocol version";
    case SP_E_TYPE: return "unknown message type";
    case SP_E_TOO_LARGE: return "frame larger than the limit";
    case SP_E_LENGTH: return "frame length does not match its content";
    case SP_E_CRC: return "CRC mismatch";
    case SP_E_TENSORS: return "too many tensors";
    case SP_E_RANK: return "tensor rank over the limit";
    case SP_E_DIMS: return "tensor dims zero or over the limit";
    case SP_E_BITS: return "unsupported kind/bits combination";
    case SP_E_PAYLOAD: return "payload length does not match dims and bits";
    case SP_E_SCALE: return "scale not finite and positive";
    case SP_E_DEVICE_ID: return "device id too long";
    case SP_E_SPACE: return "output buffer too small";
    case SP_E_ARG: return "invalid argument";
    default: return "unknown status";
    }
}

uint32_t sp_crc32(uint32_t crc, const uint8_t *data, size_t len) {
    crc = ~crc;
    for (size_t i = 0; i < len; ++i) {
        crc = kCrcTable[(crc ^ data[i]) & 0xffu] ^ (crc >> 8);
    }
    return ~crc;
}

uint64_t sp_payload_size(uint8_t kind, uint8_t bits, uint64_t elements) {
    switch (kind) {
    case SP_KIND_PACKED:
        if (bits < 1u || bits > 8u) {
            return 0;
        }
        return (elements / 8u) * bits + ((elements % 8u) * bits + 7u) / 8u;
    case SP_KIND_INT:
        if (bits != 8u && bits != 16u && bits != 32u) {
            return 0;
        }
        return elements * (bits / 8u);
    case SP_KIND_FLOAT:
        return bits == 32u ? elements * 4u : 0u;
    default: return 0;
    }
}

/* ---- little-endian helpers ---- */

static void put_u16(uint8_t *p, uint16_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void put_u32(uint8_t *p, uint32_t v) {
    for (unsigned k = 0; k < 4u; ++k) {
        p[k] = (uint8_t)(v >> (8u * k));
    }
}

static void put_u64(uint8_t *p, uint64_t v) {
    for (unsigned k = 0; k < 8u; ++k) {
        p[k] = (uint8_t)(v >> (8u * k));
    }
}

static uint16_t get_u16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }

static uint32_t get_u32(const uint8_t *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static uint64_t get_u64(const uint8_t *p) { return (uint64_t)get_u32(p) | ((uint64_t)get_u32(p + 4) << 32); }

static uint32_t float_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static float bits_float(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static int scale_ok(float s) {
    /* finite and > 0, without <math.h>: NaN fails the comparison, inf fails s - s == 0 */
    return s > 0.0f && (s - s) == 0.0f;
}

/* ---- validation shared by encoder and decoder ---- */

static uint32_t rank_cap(const sp_limits *limits) {
    return limits->max_rank < SP_MAX_RANK ? limits->max_rank : SP_MAX_RANK;
}

static sp_status check_tensor(const sp_tensor *t, const sp_limits *limits, uint64_t *payload_size) {
    if (t->rank > rank_cap(limits)) {
        return SP_E_RANK;
    }
    uint64_t elements = 1;
    for (unsigned d = 0; d < t->rank; ++d) {
        const uint32_t dim = t->dims[d];
        if (dim == 0u || dim > limits->max_dim) {
            return SP_E_DIMS;
        }
        /* elements <= max_elements and dim <= 2^32, so this cannot overflow for sane limits */
        if (elements > limits->max_elements / dim) {
            return SP_E_DIMS;
        }
        elements *= dim;
    }
    if (elements > limits->max_elements) {
        return SP_E_DIMS;
    }
    const uint64_t size = sp_payload_size(t->kind, t->bits, elements);
    if (size == 0u) {
        return SP_E_BITS;
    }
    if (!scale_ok(t->scale)) {
        return SP_E_SCALE;
    }
    *payload_size = size;
    return SP_OK;
}

static sp_limits encoder_limits(void) {
    sp_limits limits = sp_default_limits();
    limits.max_frame_bytes = 0xffffffffu;
    limits.max_tensors = 0xffffu;
    limits.max_dim = 0xffffffffu;
    limits.max_elements = (uint64_t)1u << 40;
    return limits;
}

static uint64_t body_size(const sp_message *msg) {
    const sp_limits limits = encoder_limits();
    switch (msg->type) {
    case SP_MSG_HELLO:
        if (msg->device_id_len > SP_MAX_DEVICE_ID || (msg->device_id_len != 0u && msg->device_id == NULL)) {
            return UINT64_MAX;
        }
        return SP_PLAN_HASH_LEN + 2u + msg->device_id_len;
    case SP_MSG_FRAME: {
        if (msg->tensor_count != 0u && msg->tensors == NULL) {
            return UINT64_MAX;
        }
        uint64_t size = 4u;
        for (unsigned i = 0; i < msg->tensor_count; ++i) {
            const sp_tensor *t = &msg->tensors[i];
            uint64_t payload = 0;
            if (check_tensor(t, &limits, &payload) != SP_OK || payload != t->payload_len ||
                (payload != 0u && t->payload == NULL)) {
                return UINT64_MAX;
            }
            size += SP_TENSOR_FIXED_LEN - 4u + 4u * (uint64_t)t->rank + 4u + payload;
        }
        return size;
    }
    case SP_MSG_RESULT:
    case SP_MSG_ERROR:
    case SP_MSG_STATS:
        if (msg->body_len != 0u && msg->body == NULL) {
            return UINT64_MAX;
        }
        return 8u + (uint64_t)msg->body_len;
    default: return UINT64_MAX;
    }
}

size_t sp_encoded_size(const sp_message *msg) {
    if (msg == NULL) {
        return 0;
    }
    const uint64_t body = body_size(msg);
    if (body == UINT64_MAX || body > 0xffffffffu - SP_HEADER_LEN - SP_CRC_LEN) {
        return 0;
    }
    return (size_t)(SP_HEADER_LEN + body + SP_CRC_LEN);
}

sp_status sp_encode(const sp_message *msg, uint8_t *out, size_t cap, size_t *written) {
    if (written == NULL || out == NULL) {
        return SP_E_ARG;
    }
    const size_t total = sp_encoded_size(msg);
    if (total == 0u) {
        return SP_E_ARG;
    }
    if (cap < total) {
        return SP_E_SPACE;
    }
    uint8_t *p = out;
    memcpy(p, kMagic, 4);
    p[4] = (uint8_t)SP_VERSION;
    p[5] = msg->type;
    put_u16(p + 6, 0);
    put_u32(p + 8, (uint32_t)total);
    put_u64(p + 12, msg->seq);
    put_u64(p + 20, (uint64_t)msg->timestamp_us);
    p += SP_HEADER_LEN;
    switch (msg->type) {
    case SP_MSG_HELLO:
        memcpy(p, msg->plan_hash, SP_PLAN_HASH_LEN);
        put_u16(p + SP_PLAN_HASH_LEN, msg->device_id_len);
        p += SP_PLAN_HASH_LEN + 2u;
        if (msg->device_id_len != 0u) {
            memcpy(p, msg->device_id, msg->device_id_len);
        }
        p += msg->device_id_len;
        break;
    case SP_MSG_FRAME:
        put_u16(p, msg->tensor_count);
        put_u16(p + 2, 0);
        p += 4;
        for (unsigned i = 0; i < msg->tensor_count; ++i) {
            const sp_tensor *t = &msg->tensors[i];
            p[0] = t->kind;
            p[1] = t->bits;
            p[2] = t->rank;
            p[3] = 0;
            put_u32(p + 4, float_bits(t->scale));
            put_u32(p + 8, (uint32_t)t->zero_point);
            p += 12;
            for (unsigned d = 0; d < t->rank; ++d, p += 4) {
                put_u32(p, t->dims[d]);
            }
            put_u32(p, t->payload_len);
            p += 4;
            if (t->payload_len != 0u) {
                memcpy(p, t->payload, t->payload_len);
            }
            p += t->payload_len;
        }
        break;
    default: /* RESULT, ERROR, STATS */
        put_u16(p, msg->status);
        put_u16(p + 2, 0);
        put_u32(p + 4, msg->body_len);
        p += 8;
        if (msg->body_len != 0u) {
            memcpy(p, msg->body, msg->body_len);
        }
        p += msg->body_len;
        break;
    }
    put_u32(p, sp_crc32(0, out, (size_t)(p - out)));
    *written = total;
    return SP_OK;
}

sp_status sp_frame_peek(const uint8_t *buf, size_t len, const sp_limits *limits, uint32_t *frame_len,
                        uint8_t *type) {
    if (buf == NULL || limits == NULL || frame_len == NULL || type == NULL) {
        return SP_E_ARG;
    }
    if (len < SP_PREFIX_LEN) {
        return SP_E_TRUNCATED;
    }
    if (memcmp(buf, kMagic, 4) != 0) {
        return SP_E_MAGIC;
    }
    if (buf[4] != SP_VERSION) {
        return SP_E_VERSION;
    }
    if (buf[5] < SP_MSG_HELLO || buf[5] > SP_MSG_STATS) {
        return SP_E_TYPE;
    }
    const uint32_t flen = get_u32(buf + 8);
    if (flen > limits->max_frame_bytes) {
        return SP_E_TOO_LARGE;
    }
    if (flen < SP_HEADER_LEN + SP_CRC_LEN) {
        return SP_E_LENGTH;
    }
    *frame_len = flen;
    *type = buf[5];
    return SP_OK;
}

/* A bounds-checked reader over [pos, end). */
typedef struct cursor {
    const uint8_t *pos;
    const uint8_t *end;
} cursor;

static const uint8_t *take(cursor *c, uint64_t n) {
    if ((uint64_t)(c->end - c->pos) < n) {
        return NULL;
    }
    const uint8_t *p = c->pos;
    c->pos += n;
    return p;
}

static sp_status decode_tensor(cursor *c, const sp_limits *limits, sp_tensor *t) {
    const uint8_t *p = take(c, 12);
    if (p == NULL) {
        return SP_E_LENGTH;
    }
    t->kind = p[0];
    t->bits = p[1];
    t->rank = p[2];
    t->scale = bits_float(get_u32(p + 4));
    t->zero_point = (int32_t)get_u32(p + 8);
    if (t->rank > rank_cap(limits)) {
        return SP_E_RANK;
    }
    p = take(c, 4u * (uint64_t)t->rank + 4u);
    if (p == NULL) {
        return SP_E_LENGTH;
    }
    for (unsigned d = 0; d < t->rank; ++d) {
        t->dims[d] = get_u32(p + 4u * d);
    }
    for (unsigned d = t->rank; d < SP_MAX_RANK; ++d) {
        t->dims[d] = 0;
    }
    t->payload_len = get_u32(p + 4u * t->rank);
    uint64_t expected = 0;
    const sp_status st = check_tensor(t, limits, &expected);
    if (st != SP_OK) {
        return st;
    }
    if (expected != t->payload_len) {
        return SP_E_PAYLOAD;
    }
    t->payload = take(c, t->payload_len);
    return t->payload == NULL ? SP_E_LENGTH : SP_OK;
}

static sp_status decode_body(cursor *c, const sp_limits *limits, sp_message *msg) {
    const uint8_t *p;
    switch (msg->type) {
    case SP_MSG_HELLO:
        if ((p = take(c, SP_PLAN_HASH_LEN + 2u)) == NULL) {
            return SP_E_LENGTH;
        }
        memcpy(msg->plan_hash, p, SP_PLAN_HASH_LEN);
        msg->device_id_len = get_u16(p + SP_PLAN_HASH_LEN);
        if (msg->device_id_len > SP_MAX_DEVICE_ID) {
            return SP_E_DEVICE_ID;
        }
        msg->device_id = take(c, msg->device_id_len);
        return msg->device_id == NULL ? SP_E_LENGTH : SP_OK;
    case SP_MSG_FRAME: {
        if ((p = take(c, 4)) == NULL) {
            return SP_E_LENGTH;
        }
        const uint16_t count = get_u16(p);
        if (count > limits->max_tensors || count > msg->tensor_capacity ||
            (count != 0u && msg->tensors == NULL)) {
            return SP_E_TENSORS;
        }
        msg->tensor_count = count;
        for (unsigned i = 0; i < count; ++i) {
            const sp_status st = decode_tensor(c, limits, &msg->tensors[i]);
            if (st != SP_OK) {
                return st;
            }
        }
        return SP_OK;
    }
    default: /* RESULT, ERROR, STATS */
        if ((p = take(c, 8)) == NULL) {
            return SP_E_LENGTH;
        }
        msg->status = get_u16(p);
        msg->body_len = get_u32(p + 4);
        msg->body = take(c, msg->body_len);
        return msg->body == NULL ? SP_E_LENGTH : SP_OK;
    }
}

sp_status sp_decode(const uint8_t *buf, size_t len, const sp_limits *limits, sp_message *msg,
                    size_t *consumed) {
    if (msg == NULL || consumed == NULL) {
        return SP_E_ARG;
    }
    uint32_t flen = 0;
    uint8_t type = 0;
    sp_status st = sp_frame_peek(buf, len, limits, &flen, &type);
    if (st != SP_OK) {
        return st;
    }
    if (len < flen) {
        return SP_E_TRUNCATED;
    }
    const size_t body_end = flen - SP_CRC_LEN;
    if (sp_crc32(0, buf, body_end) != get_u32(buf + body_end)) {
        return SP_E_CRC;
    }
    msg->version = buf[4];
    msg->type = type;
    msg->seq = get_u64(buf + 12);
    msg->timestamp_us = (int64_t)get_u64(buf + 20);
    msg->device_id = NULL;
    msg->device_id_len = 0;
    msg->tensor_count = 0;
    msg->status = 0;
    msg->body = NULL;
    msg->body_len = 0;
    cursor c;
    c.pos = buf + SP_HEADER_LEN;
    c.end = buf + body_end;
    st = decode_body(&c, limits, msg);
    if (st != SP_OK) {
        return st;
    }
    if (c.pos != c.end) {
        return SP_E_LENGTH;
    }
    *consumed = flen;
    return SP_OK;
}

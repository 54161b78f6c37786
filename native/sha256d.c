/*
 * sha256d core: SHA-256 compression, sha256d, the header midstate and the nonce scan.
 *
 * Engines, picked by the caller from what sha256d_engine_available() reports at run time:
 *   SHA256D_PORTABLE  plain C, builds anywhere (ARM included)
 *   SHA256D_AVX2      8 nonces per batch in 256-bit lanes
 *   SHA256D_AVX512    16 nonces per batch in 512-bit lanes (AVX-512F + BW)
 *   SHA256D_SHANI     the x86 SHA extensions, SHANI_STREAMS nonces interleaved to hide rnds2 latency
 *   SHA256D_NEON      aarch64: 4 nonces per batch in 128-bit NEON lanes (any ARMv8-A, e.g. Cortex-A72)
 *   SHA256D_ARMV8_SHA2  aarch64: the ARMv8 SHA-256 instructions (e.g. Cortex-A76), two nonces interleaved
 * The x86 and ARM engines are compiled with per-function target attributes, so this file needs no
 * special compiler flags and the same binary runs on a CPU that has none of them.
 *
 * There is no global mutable state: every call works on its own stack, so any number of threads
 * may scan at once (the Python binding releases the GIL around these calls).
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "sha256d.h"

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#define SHA256D_X86 1
#include <cpuid.h>
#include <immintrin.h>
#endif

#if defined(__aarch64__) && (defined(__GNUC__) || defined(__clang__))
#define SHA256D_ARM64 1
#include <arm_neon.h>
#if defined(__linux__)
#include <sys/auxv.h>
#endif
#endif

static const uint32_t K256[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

static const uint32_t IV256[8] = {
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
};

/* K + W for rounds 8..15 of the third chunk, whose message words are all padding. */
static const uint32_t KW3[16] = {
    [8] = 0xd807aa98u + 0x80000000u, [9] = 0x12835b01, [10] = 0x243185be, [11] = 0x550c7dc3,
    [12] = 0x72be5d74, [13] = 0x80deb1fe, [14] = 0x9bdc06a7, [15] = 0xc19bf174u + 256u,
};

#define ROTR32(x, n) (((x) >> (n)) | ((x) << (32 - (n))))
#define SSIG0_C(x) (ROTR32((x), 7) ^ ROTR32((x), 18) ^ ((x) >> 3))
#define SSIG1_C(x) (ROTR32((x), 17) ^ ROTR32((x), 19) ^ ((x) >> 10))
#define BSIG0_C(x) (ROTR32((x), 2) ^ ROTR32((x), 13) ^ ROTR32((x), 22))
#define BSIG1_C(x) (ROTR32((x), 6) ^ ROTR32((x), 11) ^ ROTR32((x), 25))
#define CH_C(e, f, g) ((g) ^ ((e) & ((f) ^ (g))))
#define MAJ_C(a, b, c) (((a) & (b)) | ((c) & ((a) | (b))))

#if defined(__GNUC__) || defined(__clang__)
#define BSWAP32(x) __builtin_bswap32(x)
#define CTZ32(x) ((uint32_t)__builtin_ctz(x))
#else
static inline uint32_t BSWAP32(uint32_t x)
{
    return (x << 24) | ((x << 8) & 0x00ff0000u) | ((x >> 8) & 0x0000ff00u) | (x >> 24);
}
static inline uint32_t CTZ32(uint32_t x)
{
    uint32_t n = 0;
    while (!(x & 1)) {
        x >>= 1;
        n++;
    }
    return n;
}
#endif

static inline uint32_t load_be32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static inline void store_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* One SHA-256 compression of the 16 message words w into state. */
static void compress(uint32_t state[8], const uint32_t block[16])
{
    uint32_t w[64];
    uint32_t a = state[0], b = state[1], c = state[2], d = state[3];
    uint32_t e = state[4], f = state[5], g = state[6], h = state[7];
    memcpy(w, block, 16 * sizeof(uint32_t));
    for (int i = 16; i < 64; i++)
        w[i] = SSIG1_C(w[i - 2]) + w[i - 7] + SSIG0_C(w[i - 15]) + w[i - 16];
    for (int i = 0; i < 64; i++) {
        uint32_t t1 = h + BSIG1_C(e) + CH_C(e, f, g) + K256[i] + w[i];
        uint32_t t2 = BSIG0_C(a) + MAJ_C(a, b, c);
        h = g; g = f; f = e; e = d + t1;
        d = c; c = b; b = a; a = t1 + t2;
    }
    state[0] += a; state[1] += b; state[2] += c; state[3] += d;
    state[4] += e; state[5] += f; state[6] += g; state[7] += h;
}

static void block_from_bytes(uint32_t block[16], const uint8_t *p)
{
    for (int i = 0; i < 16; i++)
        block[i] = load_be32(p + 4 * i);
}

/* Plain SHA-256 of any message, as state words. */
static void sha256_words(const uint8_t *data, size_t len, uint32_t out[8])
{
    uint32_t block[16];
    uint8_t last[128];
    size_t full = len / 64, rest = len % 64, tail_len;

    memcpy(out, IV256, sizeof(IV256));
    for (size_t i = 0; i < full; i++) {
        block_from_bytes(block, data + 64 * i);
        compress(out, block);
    }
    memset(last, 0, sizeof(last));
    if (rest)
        memcpy(last, data + 64 * full, rest);
    last[rest] = 0x80;
    tail_len = rest < 56 ? 64 : 128;
    uint64_t bits = (uint64_t)len * 8;
    for (int i = 0; i < 8; i++)
        last[tail_len - 1 - i] = (uint8_t)(bits >> (8 * i));
    for (size_t off = 0; off < tail_len; off += 64) {
        block_from_bytes(block, last + off);
        compress(out, block);
    }
}

void sha256d_hash(const uint8_t *data, size_t len, uint8_t out[32])
{
    uint32_t first[8], second[8];
    uint8_t digest[32];
    sha256_words(data, len, first);
    for (int i = 0; i < 8; i++)
        store_be32(digest + 4 * i, first[i]);
    sha256_words(digest, 32, second);
    for (int i = 0; i < 8; i++)
        store_be32(out + 4 * i, second[i]);
}

void sha256d_midstate(const uint8_t header[64], uint8_t out[32])
{
    uint32_t state[8], block[16];
    memcpy(state, IV256, sizeof(IV256));
    block_from_bytes(block, header);
    compress(state, block);
    for (int i = 0; i < 8; i++)
        store_be32(out + 4 * i, state[i]);
}

void sha256_blocks(uint8_t state[32], const uint8_t *data, size_t nblocks)
{
    uint32_t words[8], block[16];
    for (int i = 0; i < 8; i++)
        words[i] = load_be32(state + 4 * i);
    for (size_t b = 0; b < nblocks; b++) {
        block_from_bytes(block, data + 64 * b);
        compress(words, block);
    }
    for (int i = 0; i < 8; i++)
        store_be32(state + 4 * i, words[i]);
}

/* Everything about a header that does not depend on the nonce, worked out once per scan. */
struct scan_ctx {
    uint32_t ms[8];       /* midstate: the state after the first 64 header bytes */
    uint32_t tail[3];     /* W0..W2 of the second chunk: merkle root tail, ntime, nbits */
    uint32_t st4[8];      /* state before round 4 of the second chunk, less the nonce terms */
    uint32_t a4, e4;      /* a and e before round 4, to which W3 (the nonce) is added */
    uint32_t kw2[18];     /* K + W of the second chunk where W is constant (rounds 4..17) */
    uint32_t w2[32];      /* constant parts of W16..W31 of the second chunk */
    uint32_t a1, e1;      /* a and e after round 0 of the third chunk, less W0 */
    uint32_t target[8];   /* the target as little-endian words, target[7] the most significant */
    int nonce_be;         /* count the nonce as the big-endian word W3 itself (USB sticks do) */
};

/* From the midstate (words stored big-endian) and header bytes 64..75, as hashing chips get them. */
static void scan_ctx_init_midstate(struct scan_ctx *ctx, const uint8_t ms_bytes[32], const uint8_t tail[12],
                                   const uint8_t target[32], int nonce_be)
{
    uint32_t w[16] = {0};
    ctx->nonce_be = nonce_be;
    for (int i = 0; i < 8; i++) {
        ctx->ms[i] = load_be32(ms_bytes + 4 * i);
        ctx->target[i] = (uint32_t)target[4 * i] | ((uint32_t)target[4 * i + 1] << 8) |
                         ((uint32_t)target[4 * i + 2] << 16) | ((uint32_t)target[4 * i + 3] << 24);
    }
    for (int i = 0; i < 3; i++)
        w[i] = ctx->tail[i] = load_be32(tail + 4 * i);
    w[4] = 0x80000000u;
    w[15] = 640;

    /* Rounds 0..2 use W0..W2 only. */
    uint32_t a = ctx->ms[0], b = ctx->ms[1], c = ctx->ms[2], d = ctx->ms[3];
    uint32_t e = ctx->ms[4], f = ctx->ms[5], g = ctx->ms[6], h = ctx->ms[7];
    for (int i = 0; i < 3; i++) {
        uint32_t t1 = h + BSIG1_C(e) + CH_C(e, f, g) + K256[i] + w[i];
        uint32_t t2 = BSIG0_C(a) + MAJ_C(a, b, c);
        h = g; g = f; f = e; e = d + t1;
        d = c; c = b; b = a; a = t1 + t2;
    }
    /* Round 3 without W3: T1 and T2 are constants to which the nonce word is added. */
    uint32_t t1 = h + BSIG1_C(e) + CH_C(e, f, g) + K256[3];
    uint32_t t2 = BSIG0_C(a) + MAJ_C(a, b, c);
    ctx->a4 = t1 + t2;
    ctx->e4 = d + t1;
    ctx->st4[1] = a; ctx->st4[2] = b; ctx->st4[3] = c;
    ctx->st4[5] = e; ctx->st4[6] = f; ctx->st4[7] = g;
    ctx->st4[0] = ctx->st4[4] = 0;

    uint32_t w16 = SSIG0_C(w[1]) + w[0];
    uint32_t w17 = SSIG1_C(640u) + SSIG0_C(w[2]) + w[1];
    for (int i = 4; i < 16; i++)
        ctx->kw2[i] = K256[i] + w[i];
    ctx->kw2[16] = K256[16] + w16;
    ctx->kw2[17] = K256[17] + w17;
    memset(ctx->w2, 0, sizeof(ctx->w2));
    ctx->w2[16] = w16;
    ctx->w2[17] = w17;
    ctx->w2[18] = SSIG1_C(w16) + w[2];
    ctx->w2[19] = SSIG1_C(w17) + SSIG0_C(0x80000000u);
    ctx->w2[31] = SSIG0_C(w16) + 640u;

    /* Third chunk, round 0 from the IV: everything but W0. */
    uint32_t t1c = IV256[7] + BSIG1_C(IV256[4]) + CH_C(IV256[4], IV256[5], IV256[6]) + K256[0];
    ctx->e1 = IV256[3] + t1c;
    ctx->a1 = t1c + BSIG0_C(IV256[0]) + MAJ_C(IV256[0], IV256[1], IV256[2]);
}

static void scan_ctx_init(struct scan_ctx *ctx, const uint8_t header[80], const uint8_t target[32])
{
    uint8_t ms_bytes[32];
    sha256d_midstate(header, ms_bytes);
    scan_ctx_init_midstate(ctx, ms_bytes, header + 64, target, 0);
}

/* W3 of the second chunk for a nonce counter value. */
static inline uint32_t nonce_word(const struct scan_ctx *ctx, uint32_t nonce)
{
    return ctx->nonce_be ? nonce : BSWAP32(nonce);
}

/* Full sha256d of the header with this nonce, compared in full against the target. */
static int check_nonce(const struct scan_ctx *ctx, uint32_t nonce)
{
    uint32_t state[8], block[16] = {0};
    memcpy(state, ctx->ms, sizeof(state));
    memcpy(block, ctx->tail, sizeof(ctx->tail));
    block[3] = nonce_word(ctx, nonce);
    block[4] = 0x80000000u;
    block[15] = 640;
    compress(state, block);
    memcpy(block, state, sizeof(state));
    memset(block + 8, 0, 8 * sizeof(uint32_t));
    block[8] = 0x80000000u;
    block[15] = 256;
    memcpy(state, IV256, sizeof(state));
    compress(state, block);
    /* The hash as a little-endian number: its top word is the byte-swapped H7. */
    for (int i = 7; i >= 0; i--) {
        uint32_t word = BSWAP32(state[i]);
        if (word != ctx->target[i])
            return word < ctx->target[i];
    }
    return 1;
}

/* The nonces after the last whole batch of lanes or streams, checked one by one in full. */
static uint32_t scan_tail(const struct scan_ctx *ctx, uint32_t start, uint64_t i, uint64_t count,
                          uint32_t *found, uint32_t n_found, uint32_t cap, uint64_t *scanned)
{
    for (; i < count; i++) {
        uint32_t nonce = start + (uint32_t)i;
        if (check_nonce(ctx, nonce)) {
            found[n_found++] = nonce;
            if (n_found == cap) {
                *scanned = i + 1;
                return n_found;
            }
        }
    }
    *scanned = count;
    return n_found;
}

/*
 * The stream engines' test: a stream whose H7 passes the target's top word is checked in full.
 * Returns 1 when the result buffer filled (*scanned then says how far the scan got).
 */
static inline int take_streams(const struct scan_ctx *ctx, uint32_t first, const uint32_t *h7, int streams,
                               uint64_t i, uint32_t *found, uint32_t *n_found, uint32_t cap, uint64_t *scanned)
{
    for (int s = 0; s < streams; s++) {
        if (BSWAP32(h7[s]) <= ctx->target[7] && check_nonce(ctx, first + (uint32_t)s)) {
            found[(*n_found)++] = first + (uint32_t)s;
            if (*n_found == cap) {
                *scanned = i + (uint64_t)s + 1;
                return 1;
            }
        }
    }
    return 0;
}

/* ---------------------------------------------------------------- portable engine */
/*
 * With GCC or clang, generic vector extensions give eight lanes that the compiler maps to whatever
 * the target has (SSE2 on any x86-64, NEON on ARM); any other C compiler gets one lane.
 */
#if defined(__GNUC__) || defined(__clang__)
typedef uint32_t v8u32 __attribute__((vector_size(32)));
typedef int32_t v8i32 __attribute__((vector_size(32)));
#define V v8u32
#define LANES 8
#define VSET1(x) ((v8u32){0} + (uint32_t)(x))
#define VROR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))
#define BSIG0(x) (VROR(x, 2) ^ VROR(x, 13) ^ VROR(x, 22))
#define BSIG1(x) (VROR(x, 6) ^ VROR(x, 11) ^ VROR(x, 25))
#define SSIG0(x) (VROR(x, 7) ^ VROR(x, 18) ^ ((x) >> 3))
#define SSIG1(x) (VROR(x, 17) ^ VROR(x, 19) ^ ((x) >> 10))
#define VBSWAP(x) (((x) << 24) | (((x) << 8) & 0x00ff0000u) | (((x) >> 8) & 0x0000ff00u) | ((x) >> 24))
#define VNONCES(start) (VSET1(start) + (v8u32){0, 1, 2, 3, 4, 5, 6, 7})
static inline uint32_t v8_le_mask(const v8u32 *x, uint32_t t)
{
    v8i32 le = (v8i32)(*x <= t);
    uint32_t mask = 0;
    for (int j = 0; j < 8; j++)
        mask |= (uint32_t)(le[j] & 1) << j;
    return mask;
}
#define VLE_MASK(x, t) ({ v8u32 x_ = (x); v8_le_mask(&x_, t); })
#else
#define V uint32_t
#define LANES 1
#define VSET1(x) ((uint32_t)(x))
#define BSIG0(x) BSIG0_C(x)
#define BSIG1(x) BSIG1_C(x)
#define SSIG0(x) SSIG0_C(x)
#define SSIG1(x) SSIG1_C(x)
#define VBSWAP(x) BSWAP32(x)
#define VNONCES(start) (start)
#define VLE_MASK(x, t) ((uint32_t)((x) <= (t)))
#endif
#define FN(name) name##_portable
#define ENGINE_TARGET
#define VADD(a, b) ((a) + (b))
#define CH(e, f, g) CH_C(e, f, g)
#define MAJ(a, b, c) MAJ_C(a, b, c)
#include "sha256d_lanes.h"

#ifdef SHA256D_X86
/* ---------------------------------------------------------------- AVX2 engine, eight lanes */
#define V __m256i
#define LANES 8
#define FN(name) name##_avx2
#define ENGINE_TARGET __attribute__((target("avx2")))
#define VSET1(x) _mm256_set1_epi32((int)(x))
#define VADD(a, b) _mm256_add_epi32(a, b)
#define VXOR(a, b) _mm256_xor_si256(a, b)
#define VROR(x, n) _mm256_or_si256(_mm256_srli_epi32(x, n), _mm256_slli_epi32(x, 32 - (n)))
#define BSIG0(x) VXOR(VXOR(VROR(x, 2), VROR(x, 13)), VROR(x, 22))
#define BSIG1(x) VXOR(VXOR(VROR(x, 6), VROR(x, 11)), VROR(x, 25))
#define SSIG0(x) VXOR(VXOR(VROR(x, 7), VROR(x, 18)), _mm256_srli_epi32(x, 3))
#define SSIG1(x) VXOR(VXOR(VROR(x, 17), VROR(x, 19)), _mm256_srli_epi32(x, 10))
#define CH(e, f, g) VXOR(g, _mm256_and_si256(e, VXOR(f, g)))
#define MAJ(a, b, c) _mm256_or_si256(_mm256_and_si256(a, b), _mm256_and_si256(c, _mm256_or_si256(a, b)))
#define VBSWAP(x) _mm256_shuffle_epi8(x, _mm256_setr_epi8(3, 2, 1, 0, 7, 6, 5, 4, 11, 10, 9, 8, 15, 14, 13, 12, \
                                                          3, 2, 1, 0, 7, 6, 5, 4, 11, 10, 9, 8, 15, 14, 13, 12))
#define VNONCES(start) _mm256_add_epi32(VSET1(start), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7))
#define VLE_MASK(x, t) \
    ((uint32_t)_mm256_movemask_ps(_mm256_castsi256_ps(_mm256_cmpeq_epi32(_mm256_min_epu32(x, VSET1(t)), x))))
#include "sha256d_lanes.h"
#undef VXOR

/* ---------------------------------------------------------------- AVX-512 engine, sixteen lanes */
#define V __m512i
#define LANES 16
#define FN(name) name##_avx512
#define ENGINE_TARGET __attribute__((target("avx512f,avx512bw")))
#define VSET1(x) _mm512_set1_epi32((int)(x))
#define VADD(a, b) _mm512_add_epi32(a, b)
/* vpternlogd immediates: 0x96 = a^b^c, 0xca = a?b:c (Ch), 0xe8 = majority */
#define VXOR3(a, b, c) _mm512_ternarylogic_epi32(a, b, c, 0x96)
#define BSIG0(x) VXOR3(_mm512_ror_epi32(x, 2), _mm512_ror_epi32(x, 13), _mm512_ror_epi32(x, 22))
#define BSIG1(x) VXOR3(_mm512_ror_epi32(x, 6), _mm512_ror_epi32(x, 11), _mm512_ror_epi32(x, 25))
#define SSIG0(x) VXOR3(_mm512_ror_epi32(x, 7), _mm512_ror_epi32(x, 18), _mm512_srli_epi32(x, 3))
#define SSIG1(x) VXOR3(_mm512_ror_epi32(x, 17), _mm512_ror_epi32(x, 19), _mm512_srli_epi32(x, 10))
#define CH(e, f, g) _mm512_ternarylogic_epi32(e, f, g, 0xca)
#define MAJ(a, b, c) _mm512_ternarylogic_epi32(a, b, c, 0xe8)
#define VBSWAP(x) _mm512_shuffle_epi8(x, _mm512_set4_epi32(0x0c0d0e0f, 0x08090a0b, 0x04050607, 0x00010203))
#define VNONCES(start) \
    _mm512_add_epi32(VSET1(start), _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15))
#define VLE_MASK(x, t) ((uint32_t)_mm512_cmple_epu32_mask(x, VSET1(t)))
#include "sha256d_lanes.h"
#undef VXOR3

/* ---------------------------------------------------------------- SHA-NI engine, several streams */
/*
 * sha256rnds2 keeps the state as two registers, ABEF and CDGH (lane 3 holds A resp. C), and does
 * two rounds per instruction. Its latency is four times its issue interval (Zen 3: 4 core cycles,
 * one issued per cycle; benchmarks/bench_shani_ports.py), and one nonce is a single dependent chain
 * of rnds2, so SHANI_STREAMS nonces are hashed side by side: each step is issued for every stream
 * before the next step, and the streams' chains overlap in the unit. Measured on Zen 3 (TSC ticks
 * per nonce, best of many short runs): 2 streams ~98, 3 ~86, 4 ~88. Each stream needs six xmm
 * registers (state and message words) of the sixteen there are, so beyond three the state spills
 * and store-to-load latency lands on the very chain the streams are meant to hide. With three the
 * loop runs within ~5-15% of the throughput its own instruction mix allows on Zen 3's vector pipes
 * (rnds2, msg2 -- two cycles per issue -- and the shuffles and adds share them), measured against
 * cpuminer-opt 26.x side by side at 1.36-1.42x: README.md "How fast sha-ni is, and why it stops there".
 */
#ifndef SHANI_STREAMS
#define SHANI_STREAMS 3
#endif
#define SHANI_TARGET __attribute__((target("sha,sse4.1")))
/*
 * GCC does not schedule instructions before register allocation on x86 by default; for this loop
 * doing it, pressure-aware, orders the streams' rnds2 chains so fewer state registers spill (about
 * 4% faster on Zen 3; the same flags slow the portable engine, so they are set here only).
 */
#if defined(__GNUC__) && !defined(__clang__)
#define SHANI_SCHEDULE __attribute__((optimize("schedule-insns", "sched-pressure")))
#else
#define SHANI_SCHEDULE
#endif
#define KV(i) _mm_set_epi32((int)K256[(i) + 3], (int)K256[(i) + 2], (int)K256[(i) + 1], (int)K256[i])

/* The statement after it, once per stream (a constant trip count: the compiler unrolls it). */
#define EACH_STREAM(s) _Pragma("GCC unroll 8") for (int s = 0; s < SHANI_STREAMS; s++)

/* Four rounds with the four K+W words in wk. */
#define ROUNDS4(abef, cdgh, wk)                                                  \
    do {                                                                         \
        cdgh = _mm_sha256rnds2_epu32(cdgh, abef, wk);                            \
        abef = _mm_sha256rnds2_epu32(abef, cdgh, _mm_shuffle_epi32(wk, 0x0e));   \
    } while (0)

/* The next four message words into m0 from the four groups before them (m0 oldest). */
#define SCHED4(m0, m1, m2, m3) \
    m0 = _mm_sha256msg2_epu32(_mm_add_epi32(_mm_sha256msg1_epu32(m0, m1), _mm_alignr_epi8(m3, m2, 4)), m3)

/* Group g of four rounds for every stream, its message words scheduled first. */
#define SCHED_ROUNDS(g, m0, m1, m2, m3)                                         \
    EACH_STREAM(s) {                                                            \
        SCHED4(m0[s], m1[s], m2[s], m3[s]);                                     \
        ROUNDS4(abef[s], cdgh[s], _mm_add_epi32(m0[s], KV(4 * (g))));           \
    }

/* Groups 8..14 (rounds 32..59) of either chunk. */
#define ROUNDS_32_TO_59()                                                       \
    SCHED_ROUNDS(8, w0, w1, w2, w3)                                             \
    SCHED_ROUNDS(9, w1, w2, w3, w0)                                             \
    SCHED_ROUNDS(10, w2, w3, w0, w1)                                            \
    SCHED_ROUNDS(11, w3, w0, w1, w2)                                            \
    SCHED_ROUNDS(12, w0, w1, w2, w3)                                            \
    SCHED_ROUNDS(13, w1, w2, w3, w0)                                            \
    SCHED_ROUNDS(14, w2, w3, w0, w1)

/* ABEF/CDGH back to the state words A..D and E..H in lane order. */
#define STATE_TO_WORDS(abef, cdgh, lo, hi)                                      \
    do {                                                                        \
        __m128i fe_ba = _mm_shuffle_epi32(abef, 0x1b);                          \
        __m128i hg_dc = _mm_shuffle_epi32(cdgh, 0xb1);                          \
        lo = _mm_blend_epi16(fe_ba, hg_dc, 0xf0);                               \
        hi = _mm_alignr_epi8(hg_dc, fe_ba, 8);                                  \
    } while (0)

SHANI_TARGET SHANI_SCHEDULE
static uint32_t scan_shani(const struct scan_ctx *ctx, uint32_t start, uint64_t count,
                           uint32_t *found, uint32_t cap, uint64_t *scanned)
{
    const __m128i ms_abef = _mm_set_epi32((int)ctx->ms[0], (int)ctx->ms[1], (int)ctx->ms[4], (int)ctx->ms[5]);
    const __m128i ms_cdgh = _mm_set_epi32((int)ctx->ms[2], (int)ctx->ms[3], (int)ctx->ms[6], (int)ctx->ms[7]);
    const __m128i iv_abef = _mm_set_epi32((int)IV256[0], (int)IV256[1], (int)IV256[4], (int)IV256[5]);
    const __m128i iv_cdgh = _mm_set_epi32((int)IV256[2], (int)IV256[3], (int)IV256[6], (int)IV256[7]);
    const __m128i pad2_1 = _mm_set_epi32(0, 0, 0, (int)0x80000000u);   /* W4..W7 of chunk two */
    const __m128i pad2_3 = _mm_set_epi32(640, 0, 0, 0);                  /* W12..W15 */
    const __m128i pad3_3 = _mm_set_epi32(256, 0, 0, 0);                  /* W12..W15 of chunk three */
    const __m128i zero = _mm_setzero_si128();
    /*
     * Rounds 0..3 of chunk two are done once per scan (scan_ctx_init_midstate): the nonce, W3,
     * enters only round 3, where it is added to A and E. So the state before round 4 is a
     * constant ABEF plus the nonce word in lanes A and E, and a constant CDGH.
     */
    const __m128i abef4 = _mm_set_epi32((int)ctx->a4, (int)ctx->st4[1], (int)ctx->e4, (int)ctx->st4[5]);
    const __m128i cdgh4 = _mm_set_epi32((int)ctx->st4[2], (int)ctx->st4[3], (int)ctx->st4[6], (int)ctx->st4[7]);
    const __m128i lanes_a_e = _mm_set_epi32(-1, 0, -1, 0);
    const __m128i wk_4 = _mm_add_epi32(pad2_1, KV(4)), wk_8 = KV(8), wk_12 = _mm_add_epi32(pad2_3, KV(12));
    const __m128i wk3_8 = _mm_add_epi32(pad2_1, KV(8)), wk3_12 = _mm_add_epi32(pad3_3, KV(12));
    /*
     * Message words 16..31 of chunk two where W4..W15 are padding and only W3 varies: W16, W17 are
     * constants, W18 = const + sigma0(W3), W19 = const + W3 (scan_ctx's w2[]). For groups 5..7 the
     * msg1 half (and for group 5 the alignr too) sees only constant words, so it is done here once.
     */
    const __m128i w16_19 = _mm_set_epi32((int)ctx->w2[19], (int)ctx->w2[18], (int)ctx->w2[17], (int)ctx->w2[16]);
    const __m128i pre20 = _mm_add_epi32(_mm_sha256msg1_epu32(pad2_1, zero), _mm_alignr_epi8(w16_19, pad2_3, 4));
    const __m128i pre24 = _mm_sha256msg1_epu32(zero, pad2_3);
    const __m128i pre28 = _mm_sha256msg1_epu32(pad2_3, w16_19);
    const __m128i pre3_24 = _mm_sha256msg1_epu32(pad2_1, pad3_3);
    uint32_t n_found = 0;
    uint64_t i = 0;

    for (; i + SHANI_STREAMS <= count; i += SHANI_STREAMS) {
        const uint32_t first = start + (uint32_t)i;
        __m128i abef[SHANI_STREAMS], cdgh[SHANI_STREAMS];
        __m128i w0[SHANI_STREAMS], w1[SHANI_STREAMS], w2[SHANI_STREAMS], w3[SHANI_STREAMS];
        uint32_t h7[SHANI_STREAMS];

        /* chunk two: the header tail, the nonce, padding; W16..W19 folded (see w16_19 above) */
        EACH_STREAM(s) {
            uint32_t wn = nonce_word(ctx, first + (uint32_t)s);
            w0[s] = _mm_add_epi32(w16_19, _mm_set_epi32((int)wn, (int)SSIG0_C(wn), 0, 0));
            abef[s] = _mm_add_epi32(abef4, _mm_and_si128(_mm_set1_epi32((int)wn), lanes_a_e));
            cdgh[s] = cdgh4;
        }
        EACH_STREAM(s) ROUNDS4(abef[s], cdgh[s], wk_4);
        EACH_STREAM(s) ROUNDS4(abef[s], cdgh[s], wk_8);
        EACH_STREAM(s) ROUNDS4(abef[s], cdgh[s], wk_12);
        EACH_STREAM(s) ROUNDS4(abef[s], cdgh[s], _mm_add_epi32(w0[s], KV(16)));
        EACH_STREAM(s) {
            w1[s] = _mm_sha256msg2_epu32(pre20, w0[s]);
            ROUNDS4(abef[s], cdgh[s], _mm_add_epi32(w1[s], KV(20)));
        }
        EACH_STREAM(s) {
            w2[s] = _mm_sha256msg2_epu32(_mm_add_epi32(pre24, _mm_alignr_epi8(w1[s], w0[s], 4)), w1[s]);
            ROUNDS4(abef[s], cdgh[s], _mm_add_epi32(w2[s], KV(24)));
        }
        EACH_STREAM(s) {
            w3[s] = _mm_sha256msg2_epu32(_mm_add_epi32(pre28, _mm_alignr_epi8(w2[s], w1[s], 4)), w2[s]);
            ROUNDS4(abef[s], cdgh[s], _mm_add_epi32(w3[s], KV(28)));
        }
        ROUNDS_32_TO_59()
        SCHED_ROUNDS(15, w3, w0, w1, w2)

        /* chunk three: the 32-byte digest (state plus midstate), padding */
        EACH_STREAM(s) {
            STATE_TO_WORDS(_mm_add_epi32(abef[s], ms_abef), _mm_add_epi32(cdgh[s], ms_cdgh), w0[s], w1[s]);
            w2[s] = pad2_1;
            w3[s] = pad3_3;
            abef[s] = iv_abef;
            cdgh[s] = iv_cdgh;
        }
        EACH_STREAM(s) ROUNDS4(abef[s], cdgh[s], _mm_add_epi32(w0[s], KV(0)));
        EACH_STREAM(s) ROUNDS4(abef[s], cdgh[s], _mm_add_epi32(w1[s], KV(4)));
        EACH_STREAM(s) ROUNDS4(abef[s], cdgh[s], wk3_8);
        EACH_STREAM(s) ROUNDS4(abef[s], cdgh[s], wk3_12);
        SCHED_ROUNDS(4, w0, w1, w2, w3)
        SCHED_ROUNDS(5, w1, w2, w3, w0)
        EACH_STREAM(s) { /* group 6: W8..W15 are padding, so msg1(W8..11, W12..15) is a constant */
            w2[s] = _mm_sha256msg2_epu32(_mm_add_epi32(pre3_24, _mm_alignr_epi8(w1[s], w0[s], 4)), w1[s]);
            ROUNDS4(abef[s], cdgh[s], _mm_add_epi32(w2[s], KV(24)));
        }
        SCHED_ROUNDS(7, w3, w0, w1, w2)
        ROUNDS_32_TO_59()
        /* Rounds 60 and 61 only: after them F holds what H will be at the end, so H7 is known. */
        EACH_STREAM(s) {
            SCHED4(w3[s], w0[s], w1[s], w2[s]);
            cdgh[s] = _mm_sha256rnds2_epu32(cdgh[s], abef[s], _mm_add_epi32(w3[s], KV(60)));
            h7[s] = (uint32_t)_mm_cvtsi128_si32(cdgh[s]) + IV256[7];
        }

        if (take_streams(ctx, first, h7, SHANI_STREAMS, i, found, &n_found, cap, scanned))
            return n_found;
    }
    return scan_tail(ctx, start, i, count, found, n_found, cap, scanned);
}

static uint64_t xgetbv0(void)
{
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}

static int x86_has(int engine)
{
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d))
        return 0;
    int ssse3 = (c >> 9) & 1, sse41 = (c >> 19) & 1, osxsave = (c >> 27) & 1;
    uint64_t xcr0 = osxsave ? xgetbv0() : 0;
    int os_avx = (xcr0 & 0x6) == 0x6;           /* XMM and YMM state saved by the OS */
    int os_avx512 = (xcr0 & 0xe6) == 0xe6;      /* plus opmask and ZMM state */
    if (__get_cpuid_max(0, NULL) < 7)
        return 0;
    __cpuid_count(7, 0, a, b, c, d);
    switch (engine) {
    case SHA256D_SHANI:
        return ssse3 && sse41 && ((b >> 29) & 1);
    case SHA256D_AVX2:
        return os_avx && ((b >> 5) & 1);
    case SHA256D_AVX512:
        return os_avx512 && ((b >> 16) & 1) && ((b >> 30) & 1);
    default:
        return 0;
    }
}
#endif /* SHA256D_X86 */

#ifdef SHA256D_ARM64
/* ---------------------------------------------------------------- NEON engine, four lanes */
#define V uint32x4_t
#define LANES 4
#define FN(name) name##_neon
#define ENGINE_TARGET
#define VSET1(x) vdupq_n_u32((uint32_t)(x))
#define VADD(a, b) vaddq_u32(a, b)
/* a rotate is a shift left plus a shift right inserted into it (vsri) */
#define VROR(x, n) vsriq_n_u32(vshlq_n_u32(x, 32 - (n)), x, n)
#define BSIG0(x) veorq_u32(veorq_u32(VROR(x, 2), VROR(x, 13)), VROR(x, 22))
#define BSIG1(x) veorq_u32(veorq_u32(VROR(x, 6), VROR(x, 11)), VROR(x, 25))
#define SSIG0(x) veorq_u32(veorq_u32(VROR(x, 7), VROR(x, 18)), vshrq_n_u32(x, 3))
#define SSIG1(x) veorq_u32(veorq_u32(VROR(x, 17), VROR(x, 19)), vshrq_n_u32(x, 10))
/* bit select: Ch takes f where e is set, else g; Maj takes c where a and b differ, else a */
#define CH(e, f, g) vbslq_u32(e, f, g)
#define MAJ(a, b, c) vbslq_u32(veorq_u32(a, b), c, a)
#define VBSWAP(x) vreinterpretq_u32_u8(vrev32q_u8(vreinterpretq_u8_u32(x)))
#define VNONCES(start) vaddq_u32(VSET1(start), (uint32x4_t){0, 1, 2, 3})
#define VLE_MASK(x, t) vaddvq_u32(vandq_u32(vcleq_u32(x, VSET1(t)), (uint32x4_t){1, 2, 4, 8}))
#include "sha256d_lanes.h"

/* ---------------------------------------------------------------- ARMv8 SHA-2 engine, two streams */
/*
 * sha256h/sha256h2 do four rounds on the state held as ABCD and EFGH (lane 0 = A resp. E) and
 * sha256su0/su1 schedule four message words. The rounds of one nonce are one dependent chain, so
 * two nonces are interleaved to keep the unit busy.
 */
#define ARM_STREAMS 2
/* GCC 12's arm_neon.h gates the SHA-2 intrinsics on "+crypto" (newer compilers also take "+sha2"). */
#define ARM_SHA2_TARGET __attribute__((target("+crypto")))
#define ARM_EACH_STREAM(s) _Pragma("GCC unroll 4") for (int s = 0; s < ARM_STREAMS; s++)
#define ARM_ROUNDS4(abcd, efgh, wk)                                             \
    do {                                                                        \
        uint32x4_t abcd_ = abcd;                                                \
        abcd = vsha256hq_u32(abcd, efgh, wk);                                   \
        efgh = vsha256h2q_u32(efgh, abcd_, wk);                                 \
    } while (0)
/* the next four message words into m0 from the four groups before them (m0 oldest) */
#define ARM_SCHED4(m0, m1, m2, m3) m0 = vsha256su1q_u32(vsha256su0q_u32(m0, m1), m2, m3)
#define ARM_SCHED_ROUNDS(g, m0, m1, m2, m3)                                     \
    ARM_EACH_STREAM(s) {                                                        \
        ARM_SCHED4(m0[s], m1[s], m2[s], m3[s]);                                 \
        ARM_ROUNDS4(abcd[s], efgh[s], vaddq_u32(m0[s], vld1q_u32(K256 + 4 * (g)))); \
    }
#define ARM_ROUNDS_16_TO_59()                                                   \
    ARM_SCHED_ROUNDS(4, w0, w1, w2, w3)                                         \
    ARM_SCHED_ROUNDS(5, w1, w2, w3, w0)                                         \
    ARM_SCHED_ROUNDS(6, w2, w3, w0, w1)                                         \
    ARM_SCHED_ROUNDS(7, w3, w0, w1, w2)                                         \
    ARM_SCHED_ROUNDS(8, w0, w1, w2, w3)                                         \
    ARM_SCHED_ROUNDS(9, w1, w2, w3, w0)                                         \
    ARM_SCHED_ROUNDS(10, w2, w3, w0, w1)                                        \
    ARM_SCHED_ROUNDS(11, w3, w0, w1, w2)                                        \
    ARM_SCHED_ROUNDS(12, w0, w1, w2, w3)                                        \
    ARM_SCHED_ROUNDS(13, w1, w2, w3, w0)                                        \
    ARM_SCHED_ROUNDS(14, w2, w3, w0, w1)

ARM_SHA2_TARGET
static uint32_t scan_armv8_sha2(const struct scan_ctx *ctx, uint32_t start, uint64_t count,
                                uint32_t *found, uint32_t cap, uint64_t *scanned)
{
    const uint32x4_t ms_abcd = vld1q_u32(ctx->ms), ms_efgh = vld1q_u32(ctx->ms + 4);
    const uint32x4_t iv_abcd = vld1q_u32(IV256), iv_efgh = vld1q_u32(IV256 + 4);
    const uint32x4_t head = {ctx->tail[0], ctx->tail[1], ctx->tail[2], 0};
    const uint32x4_t pad2_1 = {0x80000000u, 0, 0, 0};   /* W4..W7 of chunk two, W8..W11 of chunk three */
    const uint32x4_t pad2_3 = {0, 0, 0, 640};           /* W12..W15 of chunk two */
    const uint32x4_t pad3_3 = {0, 0, 0, 256};           /* W12..W15 of chunk three */
    const uint32x4_t zero = vdupq_n_u32(0);
    /* Rounds 0..3 of chunk two are done once per scan; the nonce word W3 adds to A and E only. */
    const uint32x4_t abcd4 = {ctx->a4, ctx->st4[1], ctx->st4[2], ctx->st4[3]};
    const uint32x4_t efgh4 = {ctx->e4, ctx->st4[5], ctx->st4[6], ctx->st4[7]};
    const uint32x4_t lane_0 = {0xffffffffu, 0, 0, 0};
    const uint32x4_t wk_4 = vaddq_u32(pad2_1, vld1q_u32(K256 + 4)), wk_8 = vld1q_u32(K256 + 8);
    const uint32x4_t wk_12 = vaddq_u32(pad2_3, vld1q_u32(K256 + 12));
    const uint32x4_t wk3_8 = vaddq_u32(pad2_1, vld1q_u32(K256 + 8)), wk3_12 = vaddq_u32(pad3_3, vld1q_u32(K256 + 12));
    uint32_t n_found = 0;
    uint64_t i = 0;

    for (; i + ARM_STREAMS <= count; i += ARM_STREAMS) {
        const uint32_t first = start + (uint32_t)i;
        uint32x4_t abcd[ARM_STREAMS], efgh[ARM_STREAMS];
        uint32x4_t w0[ARM_STREAMS], w1[ARM_STREAMS], w2[ARM_STREAMS], w3[ARM_STREAMS];
        uint32_t h7[ARM_STREAMS];

        /* chunk two: the header tail, the nonce, padding */
        ARM_EACH_STREAM(s) {
            uint32_t wn = nonce_word(ctx, first + (uint32_t)s);
            uint32x4_t wnv = vandq_u32(vdupq_n_u32(wn), lane_0);
            w0[s] = vsetq_lane_u32(wn, head, 3);
            w1[s] = pad2_1;
            w2[s] = zero;
            w3[s] = pad2_3;
            abcd[s] = vaddq_u32(abcd4, wnv);
            efgh[s] = vaddq_u32(efgh4, wnv);
        }
        ARM_EACH_STREAM(s) ARM_ROUNDS4(abcd[s], efgh[s], wk_4);
        ARM_EACH_STREAM(s) ARM_ROUNDS4(abcd[s], efgh[s], wk_8);
        ARM_EACH_STREAM(s) ARM_ROUNDS4(abcd[s], efgh[s], wk_12);
        ARM_ROUNDS_16_TO_59()
        ARM_SCHED_ROUNDS(15, w3, w0, w1, w2)

        /* chunk three: the 32-byte digest (state plus midstate), padding */
        ARM_EACH_STREAM(s) {
            w0[s] = vaddq_u32(abcd[s], ms_abcd);
            w1[s] = vaddq_u32(efgh[s], ms_efgh);
            w2[s] = pad2_1;
            w3[s] = pad3_3;
            abcd[s] = iv_abcd;
            efgh[s] = iv_efgh;
        }
        ARM_EACH_STREAM(s) ARM_ROUNDS4(abcd[s], efgh[s], vaddq_u32(w0[s], vld1q_u32(K256)));
        ARM_EACH_STREAM(s) ARM_ROUNDS4(abcd[s], efgh[s], vaddq_u32(w1[s], vld1q_u32(K256 + 4)));
        ARM_EACH_STREAM(s) ARM_ROUNDS4(abcd[s], efgh[s], wk3_8);
        ARM_EACH_STREAM(s) ARM_ROUNDS4(abcd[s], efgh[s], wk3_12);
        ARM_ROUNDS_16_TO_59()
        /*
         * Rounds 60..63: H at the end is E after round 60, and sha256h2 alone gives the new EFGH,
         * so the ABCD half of the last four rounds is never computed.
         */
        ARM_EACH_STREAM(s) {
            ARM_SCHED4(w3[s], w0[s], w1[s], w2[s]);
            efgh[s] = vsha256h2q_u32(efgh[s], abcd[s], vaddq_u32(w3[s], vld1q_u32(K256 + 60)));
            h7[s] = vgetq_lane_u32(efgh[s], 3) + IV256[7];
        }

        if (take_streams(ctx, first, h7, ARM_STREAMS, i, found, &n_found, cap, scanned))
            return n_found;
    }
    return scan_tail(ctx, start, i, count, found, n_found, cap, scanned);
}

/* Linux reports the CPU's optional features in the auxiliary vector (asm/hwcap.h values). */
#define ARM64_HWCAP_ASIMD (1ul << 1)
#define ARM64_HWCAP_SHA2 (1ul << 6)

static int arm64_has(int engine)
{
#if defined(__linux__)
    unsigned long hwcap = getauxval(AT_HWCAP);
#else
    unsigned long hwcap = ARM64_HWCAP_ASIMD; /* NEON is part of every aarch64 ABI; SHA-2 unknown */
#endif
    switch (engine) {
    case SHA256D_NEON:
        return (hwcap & ARM64_HWCAP_ASIMD) != 0;
    case SHA256D_ARMV8_SHA2:
        return (hwcap & ARM64_HWCAP_SHA2) != 0;
    default:
        return 0;
    }
}
#endif /* SHA256D_ARM64 */

int sha256d_engine_available(int engine)
{
    if (engine == SHA256D_PORTABLE)
        return 1;
#ifdef SHA256D_X86
    /*
     * cpuid traps to the hypervisor on a virtual machine (tens of microseconds), so its answer is
     * kept. This is the file's only static; every thread computes and stores the same bits, so a
     * race between first callers is harmless.
     */
    static volatile int known = 0; /* bit 0: filled in; bit 1 + engine: available */
    int bits = known;
    if (!(bits & 1)) {
        bits = 1;
        for (int e = SHA256D_AVX2; e <= SHA256D_SHANI; e++)
            bits |= x86_has(e) << (1 + e);
        known = bits;
    }
    return engine >= SHA256D_AVX2 && engine <= SHA256D_SHANI && ((bits >> (1 + engine)) & 1);
#elif defined(SHA256D_ARM64)
    /* getauxval is a plain memory read: no need to keep its answer */
    return arm64_has(engine);
#else
    return 0;
#endif
}

static uint32_t scan_with(int engine, const struct scan_ctx *ctx, uint32_t start, uint64_t count,
                          uint32_t *found, uint32_t cap, uint64_t *scanned);

uint32_t sha256d_scan(int engine, const uint8_t header[80], uint32_t start, uint64_t count,
                      const uint8_t target[32], uint32_t *found, uint32_t cap, uint64_t *scanned)
{
    struct scan_ctx ctx;
    *scanned = 0;
    /* The caller checks these; refusing here too keeps a bad call from reading past the range. */
    if (cap == 0 || count > ((uint64_t)1 << 32) - start || !sha256d_engine_available(engine))
        return 0;
    scan_ctx_init(&ctx, header, target);
    return scan_with(engine, &ctx, start, count, found, cap, scanned);
}

uint32_t sha256d_scan_midstate(int engine, const uint8_t midstate[32], const uint8_t tail[12], int nonce_be,
                               uint32_t start, uint64_t count, const uint8_t target[32], uint32_t *found,
                               uint32_t cap, uint64_t *scanned)
{
    struct scan_ctx ctx;
    *scanned = 0;
    if (cap == 0 || count > ((uint64_t)1 << 32) - start || !sha256d_engine_available(engine))
        return 0;
    scan_ctx_init_midstate(&ctx, midstate, tail, target, nonce_be != 0);
    return scan_with(engine, &ctx, start, count, found, cap, scanned);
}

static uint32_t scan_with(int engine, const struct scan_ctx *ctx_, uint32_t start, uint64_t count,
                          uint32_t *found, uint32_t cap, uint64_t *scanned)
{
    const struct scan_ctx ctx = *ctx_;
    switch (engine) {
#ifdef SHA256D_X86
    case SHA256D_SHANI:
        return scan_shani(&ctx, start, count, found, cap, scanned);
    case SHA256D_AVX2:
        return scan_avx2(&ctx, start, count, found, cap, scanned);
    case SHA256D_AVX512:
        return scan_avx512(&ctx, start, count, found, cap, scanned);
#endif
#ifdef SHA256D_ARM64
    case SHA256D_NEON:
        return scan_neon(&ctx, start, count, found, cap, scanned);
    case SHA256D_ARMV8_SHA2:
        return scan_armv8_sha2(&ctx, start, count, found, cap, scanned);
#endif
    default:
        return scan_portable(&ctx, start, count, found, cap, scanned);
    }
}

/*
 * Self-test of the sha256d core for every engine this CPU can run, against a plain SHA-256
 * written out here (not the core's own compression), so it checks the core on machines where
 * Python is not at hand: cross-built for aarch64 and run under qemu-user in CI
 * (tests/system/test_native_cross.py), and natively.
 *
 *   cc -O2 -Inative native/selftest.c native/sha256d.c -o selftest && ./selftest
 *
 * Prints one line per engine, "PASS <engine> <checks>" or "FAIL <engine> ...", or "SKIP <engine>"
 * for one the CPU lacks; exits 0 when nothing failed.
 */
#include <stdio.h>
#include <string.h>

#include "sha256d.h"

static const char *const ENGINE_NAMES[] = {"portable", "avx2", "avx512", "sha-ni", "neon", "armv8-sha2"};
#define N_ENGINES ((int)(sizeof(ENGINE_NAMES) / sizeof(ENGINE_NAMES[0])))

/* ---------------------------------------------------------------- the reference, FIPS 180-4 as written */
static const uint32_t K[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

static uint32_t rotr(uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }

static void ref_compress(uint32_t h[8], const uint8_t block[64])
{
    uint32_t w[64], v[8];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)block[4 * i] << 24 | (uint32_t)block[4 * i + 1] << 16 | (uint32_t)block[4 * i + 2] << 8 |
               block[4 * i + 3];
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    memcpy(v, h, sizeof(v));
    for (int i = 0; i < 64; i++) {
        uint32_t t1 = v[7] + (rotr(v[4], 6) ^ rotr(v[4], 11) ^ rotr(v[4], 25)) + ((v[4] & v[5]) ^ (~v[4] & v[6])) +
                      K[i] + w[i];
        uint32_t t2 = (rotr(v[0], 2) ^ rotr(v[0], 13) ^ rotr(v[0], 22)) + ((v[0] & v[1]) ^ (v[0] & v[2]) ^ (v[1] & v[2]));
        memmove(v + 1, v, 7 * sizeof(uint32_t));
        v[4] += t1;
        v[0] = t1 + t2;
    }
    for (int i = 0; i < 8; i++)
        h[i] += v[i];
}

/* SHA-256 of a message of at most 119 bytes (two blocks with padding): all this test needs. */
static void ref_sha256(const uint8_t *msg, size_t len, uint8_t out[32])
{
    uint32_t h[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    uint8_t buf[128] = {0};
    size_t blocks = len < 56 ? 1 : 2;
    memcpy(buf, msg, len);
    buf[len] = 0x80;
    for (int i = 0; i < 8; i++)
        buf[64 * blocks - 1 - i] = (uint8_t)((uint64_t)len * 8 >> (8 * i));
    for (size_t b = 0; b < blocks; b++)
        ref_compress(h, buf + 64 * b);
    for (int i = 0; i < 8; i++) {
        out[4 * i] = (uint8_t)(h[i] >> 24);
        out[4 * i + 1] = (uint8_t)(h[i] >> 16);
        out[4 * i + 2] = (uint8_t)(h[i] >> 8);
        out[4 * i + 3] = (uint8_t)h[i];
    }
}

static void ref_sha256d(const uint8_t *msg, size_t len, uint8_t out[32])
{
    uint8_t first[32];
    ref_sha256(msg, len, first);
    ref_sha256(first, 32, out);
}

/* The hash of header+nonce compared with a target as little-endian 256-bit numbers: <= ? */
static int ref_meets(const uint8_t header[80], uint32_t nonce, int nonce_be, const uint8_t target[32])
{
    uint8_t h[80], d[32];
    memcpy(h, header, 76);
    for (int i = 0; i < 4; i++)
        h[76 + i] = (uint8_t)(nonce >> (nonce_be ? 24 - 8 * i : 8 * i));
    ref_sha256d(h, 80, d);
    for (int i = 31; i >= 0; i--)
        if (d[i] != target[i])
            return d[i] < target[i];
    return 1;
}

/* ---------------------------------------------------------------- test plumbing */
static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint32_t rand32(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 16);
}

static int failures, checks;
#define CHECK(cond, ...)                                                                       \
    do {                                                                                       \
        checks++;                                                                              \
        if (!(cond)) {                                                                         \
            if (failures++ < 10) {                                                             \
                printf("  failed: " __VA_ARGS__);                                              \
                printf("\n");                                                                  \
            }                                                                                  \
        }                                                                                      \
    } while (0)

static int hexval(char c) { return c <= '9' ? c - '0' : (c | 32) - 'a' + 10; }
static void from_hex(uint8_t *out, const char *hex, size_t n)
{
    for (size_t i = 0; i < n; i++)
        out[i] = (uint8_t)(hexval(hex[2 * i]) << 4 | hexval(hex[2 * i + 1]));
}

/* One scan by the engine against the reference, nonce by nonce; the engine's result buffer is
 * small so that a scan that fills it mid-batch is resumed, as the Python binding does. */
static void check_scan(int engine, const uint8_t header[80], int midstate, int nonce_be, uint32_t start,
                       uint32_t count, const uint8_t target[32])
{
    uint32_t expected[400], got[400], found[7];
    uint32_t n_expected = 0, n_got = 0;
    uint8_t ms[32];
    for (uint32_t i = 0; i < count; i++)
        if (ref_meets(header, start + i, nonce_be, target))
            expected[n_expected++] = start + i;
    if (midstate)
        sha256d_midstate(header, ms);
    uint64_t pos = start, left = count;
    while (left > 0) {
        uint64_t scanned = 0;
        uint32_t n = midstate ? sha256d_scan_midstate(engine, ms, header + 64, nonce_be, (uint32_t)pos, left, target,
                                                      found, 7, &scanned)
                              : sha256d_scan(engine, header, (uint32_t)pos, left, target, found, 7, &scanned);
        if (scanned == 0 || scanned > left) {
            CHECK(0, "%s scan refused or overran at %llu", ENGINE_NAMES[engine], (unsigned long long)pos);
            return;
        }
        for (uint32_t j = 0; j < n && n_got < 400; j++)
            got[n_got++] = found[j];
        pos += scanned;
        left -= scanned;
    }
    int same = n_got == n_expected && memcmp(got, expected, n_got * sizeof(uint32_t)) == 0;
    CHECK(same, "%s scan%s%s start %u count %u: %u found, reference %u", ENGINE_NAMES[engine],
          midstate ? "_midstate" : "", nonce_be ? " (nonce_be)" : "", start, count, n_got, n_expected);
}

static void target_from_top(uint8_t target[32], int bits)
{
    /* 2**bits - 1, little-endian */
    memset(target, 0, 32);
    for (int i = 0; i < bits / 8; i++)
        target[i] = 0xff;
    if (bits % 8)
        target[bits / 8] = (uint8_t)((1 << (bits % 8)) - 1);
}

static void test_engine(int engine)
{
    uint8_t header[80], target[32];
    /* random headers, ranges (some against the top of the nonce space) and targets */
    for (int round = 0; round < 60; round++) {
        for (int i = 0; i < 80; i++)
            header[i] = (uint8_t)rand32();
        uint32_t count = rand32() % 301;
        uint32_t start = round % 3 == 0 ? 0u - count - rand32() % 3 : rand32();
        if (round % 3 == 0 && start < (uint32_t)0 - count)
            start = (uint32_t)0 - count;
        if ((uint64_t)start + count > ((uint64_t)1 << 32))
            count = (uint32_t)(((uint64_t)1 << 32) - start);
        target_from_top(target, 248 + (int)(rand32() % 9));
        check_scan(engine, header, round % 2, round % 4 == 1, start, count, target);
    }
    /* the early exit: targets sharing the top word with a hash, at every slot of a batch */
    for (int i = 0; i < 80; i++)
        header[i] = (uint8_t)(i * 3 + 1);
    for (uint32_t slot = 0; slot < 17; slot++) {
        uint8_t h[80], d[32];
        uint32_t nonce = 5000 + slot;
        memcpy(h, header, 76);
        memcpy(h + 76, &(uint8_t[4]){(uint8_t)nonce, (uint8_t)(nonce >> 8), (uint8_t)(nonce >> 16), (uint8_t)(nonce >> 24)}, 4);
        ref_sha256d(h, 80, d);
        for (int variant = 0; variant < 4; variant++) {
            memcpy(target, d, 32);
            if (variant == 1)      /* the hash minus one: just missed */
                for (int i = 0; i < 32 && target[i]-- == 0; i++) {}
            else if (variant == 2) /* same top word, everything below it zero */
                memset(target, 0, 28);
            else if (variant == 3) /* same top word, everything below it set */
                memset(target, 0xff, 28);
            check_scan(engine, header, 0, 0, 5000, 17, target);
            check_scan(engine, header, 1, 0, 5000, 17, target);
        }
    }
    /* ranges of every short length, and ending exactly at 2**32 */
    target_from_top(target, 254);
    for (uint32_t count = 1; count < 40; count++) {
        check_scan(engine, header, 0, 0, 77, count, target);
        check_scan(engine, header, 1, 1, 0u - count, count, target);
    }
}

int main(void)
{
    /* the genesis block: its hash and midstate are known (tests/vectors/headers.json) */
    static const char genesis_hex[] =
        "0100000000000000000000000000000000000000000000000000000000000000000000003ba3edfd7a7b12b27ac72c3e67768f61"
        "7fc81bc3888a51323a9fb8aa4b1e5e4a29ab5f49ffff001d1dac2b7c";
    static const char genesis_hash_hex[] = "000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f";
    static const char genesis_midstate_hex[] = "bc909a336358bff090ccac7d1e59caa8c3c8d8e94f0103c896b187364719f91b";
    uint8_t genesis[80], want[32], got[32], ref[32];
    from_hex(genesis, genesis_hex, 80);
    from_hex(want, genesis_hash_hex, 32);
    sha256d_hash(genesis, 80, got);
    ref_sha256d(genesis, 80, ref);
    int ok = 1;
    for (int i = 0; i < 32; i++)
        ok &= got[i] == want[31 - i] && ref[i] == want[31 - i];
    CHECK(ok, "genesis hash");
    from_hex(want, genesis_midstate_hex, 32);
    sha256d_midstate(genesis, got);
    CHECK(memcmp(got, want, 32) == 0, "genesis midstate");
    printf("%s core (genesis hash and midstate)\n", failures ? "FAIL" : "PASS");
    int failed = failures;

    for (int engine = 0; engine < N_ENGINES; engine++) {
        if (!sha256d_engine_available(engine)) {
            printf("SKIP %s\n", ENGINE_NAMES[engine]);
            continue;
        }
        failures = checks = 0;
        uint8_t target[32];
        uint32_t found[4];
        uint64_t scanned;
        /* the genesis nonce, found by a scan around it and nothing else */
        target_from_top(target, 224);
        uint32_t n = sha256d_scan(engine, genesis, 2083236893u - 1000, 2001, target, found, 4, &scanned);
        CHECK(n == 1 && found[0] == 2083236893u && scanned == 2001, "%s genesis scan", ENGINE_NAMES[engine]);
        test_engine(engine);
        printf("%s %s %d\n", failures ? "FAIL" : "PASS", ENGINE_NAMES[engine], checks);
        failed += failures;
    }
    return failed ? 1 : 0;
}

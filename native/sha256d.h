/* Public interface of the sha256d core; the cffi binding declares the same prototypes. */
#ifndef SHA256D_H
#define SHA256D_H

#include <stddef.h>
#include <stdint.h>

enum {
    SHA256D_PORTABLE = 0,
    SHA256D_AVX2 = 1,
    SHA256D_AVX512 = 2,
    SHA256D_SHANI = 3,
    SHA256D_NEON = 4,
    SHA256D_ARMV8_SHA2 = 5,
};

/* sha256(sha256(data)) in digest byte order. */
void sha256d_hash(const uint8_t *data, size_t len, uint8_t out[32]);

/* State words after compressing the first 64 header bytes, each stored big-endian. */
void sha256d_midstate(const uint8_t header[64], uint8_t out[32]);

/* Continue a SHA-256 from `state` (8 words stored big-endian, updated in place) over nblocks
 * whole 64-byte blocks: for devices handed "the state after these bytes" (Avalon jobs). */
void sha256_blocks(uint8_t state[32], const uint8_t *data, size_t nblocks);

/* 1 when this CPU (and its OS) can run the engine. */
int sha256d_engine_available(int engine);

/*
 * Hash the 80-byte header with nonces start .. start+count-1 (bytes 76..79 are ignored) and
 * store, in increasing order, every nonce whose sha256d read as a little-endian 256-bit number is
 * <= target (32 bytes, little-endian). Stops early once cap nonces are stored. Returns how many
 * were stored; *scanned tells how many nonces were examined, so a caller can resume after it.
 */
uint32_t sha256d_scan(int engine, const uint8_t header[80], uint32_t start, uint64_t count,
                      const uint8_t target[32], uint32_t *found, uint32_t cap, uint64_t *scanned);

/*
 * The same scan from what a hashing chip is given instead of a header: the midstate (state words
 * stored big-endian, as sha256d_midstate writes them) and header bytes 64..75. With nonce_be the
 * counter is the big-endian reading of header bytes 76..79 (what USB sticks count and report),
 * otherwise the header's little-endian nonce as in sha256d_scan.
 */
uint32_t sha256d_scan_midstate(int engine, const uint8_t midstate[32], const uint8_t tail[12], int nonce_be,
                               uint32_t start, uint64_t count, const uint8_t target[32], uint32_t *found,
                               uint32_t cap, uint64_t *scanned);

#endif

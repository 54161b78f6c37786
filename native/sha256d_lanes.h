/*
 * One nonce-scan loop, written once for any lane width.
 *
 * Included by sha256d.c once per engine, after it defines (and undefined again at the end, so the
 * next engine defines its own):
 *   V            the lane vector type (uint32_t for the portable engine)
 *   LANES        nonces hashed per batch
 *   FN(name)     the engine's suffix for the function defined here
 *   ENGINE_TARGET  a function attribute (the ISA the engine needs) or nothing
 *   VSET1 VADD BSIG0 BSIG1 SSIG0 SSIG1 CH MAJ VBSWAP  lane-wise SHA-256 pieces
 *   VNONCES(start)   lanes start, start+1, ...
 *   VLE_MASK(x, t)   bit j set when lane j of x <= t (unsigned)
 *
 * The work per nonce is the known minimum for a Bitcoin header: the midstate of the first 64 bytes
 * is reused, rounds 0..2 of the second chunk and half of round 3 are done once per scan, message
 * words that are padding constants are folded in, the third chunk starts from the constant IV, and
 * only the top word of the final hash (H7, which is e after round 60 plus IV[7]) is computed before
 * the lane-mask test. Lanes that pass are rechecked in full by the scalar code.
 */

#define RND(a, b, c, d, e, f, g, h, x)                                          \
    do {                                                                        \
        V t1_ = VADD(VADD(h, BSIG1(e)), VADD(CH(e, f, g), (x)));                \
        d = VADD(d, t1_);                                                       \
        h = VADD(t1_, VADD(BSIG0(a), MAJ(a, b, c)));                            \
    } while (0)

#define SCHED(w, wm2, wm7, wm15) \
    w = VADD(VADD(SSIG1(wm2), wm7), VADD(SSIG0(wm15), w))

ENGINE_TARGET
static uint32_t FN(scan)(const struct scan_ctx *ctx, uint32_t start, uint64_t count,
                         uint32_t *found, uint32_t cap, uint64_t *scanned)
{
    uint32_t n_found = 0;
    uint64_t i = 0;
    V nonces = VNONCES(start);

    for (; i + LANES <= count; i += LANES) {
        V a, b, c_, d, e, f, g, h, h7;
        V w0, w1, w2, w3, w4, w5, w6, w7, w8, w9, w10, w11, w12, w13, w14, w15;
        /* W3: the nonce as the big-endian word SHA-256 reads (or the counter itself, nonce_be) */
        V wn = ctx->nonce_be ? nonces : VBSWAP(nonces);

        a = VADD(VSET1(ctx->a4), wn);
        e = VADD(VSET1(ctx->e4), wn);
        b = VSET1(ctx->st4[1]); c_ = VSET1(ctx->st4[2]); d = VSET1(ctx->st4[3]);
        f = VSET1(ctx->st4[5]); g = VSET1(ctx->st4[6]); h = VSET1(ctx->st4[7]);

        /* second chunk, rounds 4..15: message words are constants of the scan */
        RND(a,b,c_,d,e,f,g,h, VSET1(ctx->kw2[4]));
        RND(h,a,b,c_,d,e,f,g, VSET1(ctx->kw2[5]));
        RND(g,h,a,b,c_,d,e,f, VSET1(ctx->kw2[6]));
        RND(f,g,h,a,b,c_,d,e, VSET1(ctx->kw2[7]));
        RND(e,f,g,h,a,b,c_,d, VSET1(ctx->kw2[8]));
        RND(d,e,f,g,h,a,b,c_, VSET1(ctx->kw2[9]));
        RND(c_,d,e,f,g,h,a,b, VSET1(ctx->kw2[10]));
        RND(b,c_,d,e,f,g,h,a, VSET1(ctx->kw2[11]));
        RND(a,b,c_,d,e,f,g,h, VSET1(ctx->kw2[12]));
        RND(h,a,b,c_,d,e,f,g, VSET1(ctx->kw2[13]));
        RND(g,h,a,b,c_,d,e,f, VSET1(ctx->kw2[14]));
        RND(f,g,h,a,b,c_,d,e, VSET1(ctx->kw2[15]));
        /* second chunk, rounds 16..63; W16..W31 lose their zero terms */
        RND(e,f,g,h,a,b,c_,d, VSET1(ctx->kw2[16]));
        w0 = VSET1(ctx->w2[16]);
        RND(d,e,f,g,h,a,b,c_, VSET1(ctx->kw2[17]));
        w1 = VSET1(ctx->w2[17]);
        w2 = VADD(VSET1(ctx->w2[18]), SSIG0(wn));
        RND(c_,d,e,f,g,h,a,b, VADD(w2, VSET1(K256[18])));
        w3 = VADD(VSET1(ctx->w2[19]), wn);
        RND(b,c_,d,e,f,g,h,a, VADD(w3, VSET1(K256[19])));
        w4 = VADD(SSIG1(w2), VSET1(0x80000000u));
        RND(a,b,c_,d,e,f,g,h, VADD(w4, VSET1(K256[20])));
        w5 = SSIG1(w3);
        RND(h,a,b,c_,d,e,f,g, VADD(w5, VSET1(K256[21])));
        w6 = VADD(SSIG1(w4), VSET1(640u));
        RND(g,h,a,b,c_,d,e,f, VADD(w6, VSET1(K256[22])));
        w7 = VADD(SSIG1(w5), w0);
        RND(f,g,h,a,b,c_,d,e, VADD(w7, VSET1(K256[23])));
        w8 = VADD(SSIG1(w6), w1);
        RND(e,f,g,h,a,b,c_,d, VADD(w8, VSET1(K256[24])));
        w9 = VADD(SSIG1(w7), w2);
        RND(d,e,f,g,h,a,b,c_, VADD(w9, VSET1(K256[25])));
        w10 = VADD(SSIG1(w8), w3);
        RND(c_,d,e,f,g,h,a,b, VADD(w10, VSET1(K256[26])));
        w11 = VADD(SSIG1(w9), w4);
        RND(b,c_,d,e,f,g,h,a, VADD(w11, VSET1(K256[27])));
        w12 = VADD(SSIG1(w10), w5);
        RND(a,b,c_,d,e,f,g,h, VADD(w12, VSET1(K256[28])));
        w13 = VADD(SSIG1(w11), w6);
        RND(h,a,b,c_,d,e,f,g, VADD(w13, VSET1(K256[29])));
        w14 = VADD(VADD(SSIG1(w12), w7), VSET1(SSIG0_C(640u)));
        RND(g,h,a,b,c_,d,e,f, VADD(w14, VSET1(K256[30])));
        w15 = VADD(VADD(SSIG1(w13), w8), VSET1(ctx->w2[31]));
        RND(f,g,h,a,b,c_,d,e, VADD(w15, VSET1(K256[31])));
        SCHED(w0, w14, w9, w1);
        RND(e,f,g,h,a,b,c_,d, VADD(w0, VSET1(K256[32])));
        SCHED(w1, w15, w10, w2);
        RND(d,e,f,g,h,a,b,c_, VADD(w1, VSET1(K256[33])));
        SCHED(w2, w0, w11, w3);
        RND(c_,d,e,f,g,h,a,b, VADD(w2, VSET1(K256[34])));
        SCHED(w3, w1, w12, w4);
        RND(b,c_,d,e,f,g,h,a, VADD(w3, VSET1(K256[35])));
        SCHED(w4, w2, w13, w5);
        RND(a,b,c_,d,e,f,g,h, VADD(w4, VSET1(K256[36])));
        SCHED(w5, w3, w14, w6);
        RND(h,a,b,c_,d,e,f,g, VADD(w5, VSET1(K256[37])));
        SCHED(w6, w4, w15, w7);
        RND(g,h,a,b,c_,d,e,f, VADD(w6, VSET1(K256[38])));
        SCHED(w7, w5, w0, w8);
        RND(f,g,h,a,b,c_,d,e, VADD(w7, VSET1(K256[39])));
        SCHED(w8, w6, w1, w9);
        RND(e,f,g,h,a,b,c_,d, VADD(w8, VSET1(K256[40])));
        SCHED(w9, w7, w2, w10);
        RND(d,e,f,g,h,a,b,c_, VADD(w9, VSET1(K256[41])));
        SCHED(w10, w8, w3, w11);
        RND(c_,d,e,f,g,h,a,b, VADD(w10, VSET1(K256[42])));
        SCHED(w11, w9, w4, w12);
        RND(b,c_,d,e,f,g,h,a, VADD(w11, VSET1(K256[43])));
        SCHED(w12, w10, w5, w13);
        RND(a,b,c_,d,e,f,g,h, VADD(w12, VSET1(K256[44])));
        SCHED(w13, w11, w6, w14);
        RND(h,a,b,c_,d,e,f,g, VADD(w13, VSET1(K256[45])));
        SCHED(w14, w12, w7, w15);
        RND(g,h,a,b,c_,d,e,f, VADD(w14, VSET1(K256[46])));
        SCHED(w15, w13, w8, w0);
        RND(f,g,h,a,b,c_,d,e, VADD(w15, VSET1(K256[47])));
        SCHED(w0, w14, w9, w1);
        RND(e,f,g,h,a,b,c_,d, VADD(w0, VSET1(K256[48])));
        SCHED(w1, w15, w10, w2);
        RND(d,e,f,g,h,a,b,c_, VADD(w1, VSET1(K256[49])));
        SCHED(w2, w0, w11, w3);
        RND(c_,d,e,f,g,h,a,b, VADD(w2, VSET1(K256[50])));
        SCHED(w3, w1, w12, w4);
        RND(b,c_,d,e,f,g,h,a, VADD(w3, VSET1(K256[51])));
        SCHED(w4, w2, w13, w5);
        RND(a,b,c_,d,e,f,g,h, VADD(w4, VSET1(K256[52])));
        SCHED(w5, w3, w14, w6);
        RND(h,a,b,c_,d,e,f,g, VADD(w5, VSET1(K256[53])));
        SCHED(w6, w4, w15, w7);
        RND(g,h,a,b,c_,d,e,f, VADD(w6, VSET1(K256[54])));
        SCHED(w7, w5, w0, w8);
        RND(f,g,h,a,b,c_,d,e, VADD(w7, VSET1(K256[55])));
        SCHED(w8, w6, w1, w9);
        RND(e,f,g,h,a,b,c_,d, VADD(w8, VSET1(K256[56])));
        SCHED(w9, w7, w2, w10);
        RND(d,e,f,g,h,a,b,c_, VADD(w9, VSET1(K256[57])));
        SCHED(w10, w8, w3, w11);
        RND(c_,d,e,f,g,h,a,b, VADD(w10, VSET1(K256[58])));
        SCHED(w11, w9, w4, w12);
        RND(b,c_,d,e,f,g,h,a, VADD(w11, VSET1(K256[59])));
        SCHED(w12, w10, w5, w13);
        RND(a,b,c_,d,e,f,g,h, VADD(w12, VSET1(K256[60])));
        SCHED(w13, w11, w6, w14);
        RND(h,a,b,c_,d,e,f,g, VADD(w13, VSET1(K256[61])));
        SCHED(w14, w12, w7, w15);
        RND(g,h,a,b,c_,d,e,f, VADD(w14, VSET1(K256[62])));
        SCHED(w15, w13, w8, w0);
        RND(f,g,h,a,b,c_,d,e, VADD(w15, VSET1(K256[63])));
        /* digest of the header = state + midstate; it is the message of the third chunk */
        w0 = VADD(e, VSET1(ctx->ms[0]));
        w1 = VADD(f, VSET1(ctx->ms[1]));
        w2 = VADD(g, VSET1(ctx->ms[2]));
        w3 = VADD(h, VSET1(ctx->ms[3]));
        w4 = VADD(a, VSET1(ctx->ms[4]));
        w5 = VADD(b, VSET1(ctx->ms[5]));
        w6 = VADD(c_, VSET1(ctx->ms[6]));
        w7 = VADD(d, VSET1(ctx->ms[7]));
        /* third chunk, round 0 is half precomputed (the state is the IV) */
        a = VADD(VSET1(ctx->a1), w0); e = VADD(VSET1(ctx->e1), w0);
        b = VSET1(IV256[0]); c_ = VSET1(IV256[1]); d = VSET1(IV256[2]);
        f = VSET1(IV256[4]); g = VSET1(IV256[5]); h = VSET1(IV256[6]);
        RND(a,b,c_,d,e,f,g,h, VADD(w1, VSET1(K256[1])));
        RND(h,a,b,c_,d,e,f,g, VADD(w2, VSET1(K256[2])));
        RND(g,h,a,b,c_,d,e,f, VADD(w3, VSET1(K256[3])));
        RND(f,g,h,a,b,c_,d,e, VADD(w4, VSET1(K256[4])));
        RND(e,f,g,h,a,b,c_,d, VADD(w5, VSET1(K256[5])));
        RND(d,e,f,g,h,a,b,c_, VADD(w6, VSET1(K256[6])));
        RND(c_,d,e,f,g,h,a,b, VADD(w7, VSET1(K256[7])));
        RND(b,c_,d,e,f,g,h,a, VSET1(KW3[8]));
        RND(a,b,c_,d,e,f,g,h, VSET1(KW3[9]));
        RND(h,a,b,c_,d,e,f,g, VSET1(KW3[10]));
        RND(g,h,a,b,c_,d,e,f, VSET1(KW3[11]));
        RND(f,g,h,a,b,c_,d,e, VSET1(KW3[12]));
        RND(e,f,g,h,a,b,c_,d, VSET1(KW3[13]));
        RND(d,e,f,g,h,a,b,c_, VSET1(KW3[14]));
        RND(c_,d,e,f,g,h,a,b, VSET1(KW3[15]));
        /* third chunk, rounds 16..60; only e of round 60 is needed, it becomes H7 */
        w0 = VADD(SSIG0(w1), w0);
        RND(b,c_,d,e,f,g,h,a, VADD(w0, VSET1(K256[16])));
        w1 = VADD(VADD(SSIG0(w2), w1), VSET1(SSIG1_C(256u)));
        RND(a,b,c_,d,e,f,g,h, VADD(w1, VSET1(K256[17])));
        w2 = VADD(VADD(SSIG1(w0), SSIG0(w3)), w2);
        RND(h,a,b,c_,d,e,f,g, VADD(w2, VSET1(K256[18])));
        w3 = VADD(VADD(SSIG1(w1), SSIG0(w4)), w3);
        RND(g,h,a,b,c_,d,e,f, VADD(w3, VSET1(K256[19])));
        w4 = VADD(VADD(SSIG1(w2), SSIG0(w5)), w4);
        RND(f,g,h,a,b,c_,d,e, VADD(w4, VSET1(K256[20])));
        w5 = VADD(VADD(SSIG1(w3), SSIG0(w6)), w5);
        RND(e,f,g,h,a,b,c_,d, VADD(w5, VSET1(K256[21])));
        w6 = VADD(VADD(VADD(SSIG1(w4), SSIG0(w7)), w6), VSET1(256u));
        RND(d,e,f,g,h,a,b,c_, VADD(w6, VSET1(K256[22])));
        w7 = VADD(VADD(VADD(SSIG1(w5), w0), w7), VSET1(SSIG0_C(0x80000000u)));
        RND(c_,d,e,f,g,h,a,b, VADD(w7, VSET1(K256[23])));
        w8 = VADD(VADD(SSIG1(w6), w1), VSET1(0x80000000u));
        RND(b,c_,d,e,f,g,h,a, VADD(w8, VSET1(K256[24])));
        w9 = VADD(SSIG1(w7), w2);
        RND(a,b,c_,d,e,f,g,h, VADD(w9, VSET1(K256[25])));
        w10 = VADD(SSIG1(w8), w3);
        RND(h,a,b,c_,d,e,f,g, VADD(w10, VSET1(K256[26])));
        w11 = VADD(SSIG1(w9), w4);
        RND(g,h,a,b,c_,d,e,f, VADD(w11, VSET1(K256[27])));
        w12 = VADD(SSIG1(w10), w5);
        RND(f,g,h,a,b,c_,d,e, VADD(w12, VSET1(K256[28])));
        w13 = VADD(SSIG1(w11), w6);
        RND(e,f,g,h,a,b,c_,d, VADD(w13, VSET1(K256[29])));
        w14 = VADD(VADD(SSIG1(w12), w7), VSET1(SSIG0_C(256u)));
        RND(d,e,f,g,h,a,b,c_, VADD(w14, VSET1(K256[30])));
        w15 = VADD(VADD(VADD(SSIG1(w13), w8), SSIG0(w0)), VSET1(256u));
        RND(c_,d,e,f,g,h,a,b, VADD(w15, VSET1(K256[31])));
        SCHED(w0, w14, w9, w1);
        RND(b,c_,d,e,f,g,h,a, VADD(w0, VSET1(K256[32])));
        SCHED(w1, w15, w10, w2);
        RND(a,b,c_,d,e,f,g,h, VADD(w1, VSET1(K256[33])));
        SCHED(w2, w0, w11, w3);
        RND(h,a,b,c_,d,e,f,g, VADD(w2, VSET1(K256[34])));
        SCHED(w3, w1, w12, w4);
        RND(g,h,a,b,c_,d,e,f, VADD(w3, VSET1(K256[35])));
        SCHED(w4, w2, w13, w5);
        RND(f,g,h,a,b,c_,d,e, VADD(w4, VSET1(K256[36])));
        SCHED(w5, w3, w14, w6);
        RND(e,f,g,h,a,b,c_,d, VADD(w5, VSET1(K256[37])));
        SCHED(w6, w4, w15, w7);
        RND(d,e,f,g,h,a,b,c_, VADD(w6, VSET1(K256[38])));
        SCHED(w7, w5, w0, w8);
        RND(c_,d,e,f,g,h,a,b, VADD(w7, VSET1(K256[39])));
        SCHED(w8, w6, w1, w9);
        RND(b,c_,d,e,f,g,h,a, VADD(w8, VSET1(K256[40])));
        SCHED(w9, w7, w2, w10);
        RND(a,b,c_,d,e,f,g,h, VADD(w9, VSET1(K256[41])));
        SCHED(w10, w8, w3, w11);
        RND(h,a,b,c_,d,e,f,g, VADD(w10, VSET1(K256[42])));
        SCHED(w11, w9, w4, w12);
        RND(g,h,a,b,c_,d,e,f, VADD(w11, VSET1(K256[43])));
        SCHED(w12, w10, w5, w13);
        RND(f,g,h,a,b,c_,d,e, VADD(w12, VSET1(K256[44])));
        SCHED(w13, w11, w6, w14);
        RND(e,f,g,h,a,b,c_,d, VADD(w13, VSET1(K256[45])));
        SCHED(w14, w12, w7, w15);
        RND(d,e,f,g,h,a,b,c_, VADD(w14, VSET1(K256[46])));
        SCHED(w15, w13, w8, w0);
        RND(c_,d,e,f,g,h,a,b, VADD(w15, VSET1(K256[47])));
        SCHED(w0, w14, w9, w1);
        RND(b,c_,d,e,f,g,h,a, VADD(w0, VSET1(K256[48])));
        SCHED(w1, w15, w10, w2);
        RND(a,b,c_,d,e,f,g,h, VADD(w1, VSET1(K256[49])));
        SCHED(w2, w0, w11, w3);
        RND(h,a,b,c_,d,e,f,g, VADD(w2, VSET1(K256[50])));
        SCHED(w3, w1, w12, w4);
        RND(g,h,a,b,c_,d,e,f, VADD(w3, VSET1(K256[51])));
        SCHED(w4, w2, w13, w5);
        RND(f,g,h,a,b,c_,d,e, VADD(w4, VSET1(K256[52])));
        SCHED(w5, w3, w14, w6);
        RND(e,f,g,h,a,b,c_,d, VADD(w5, VSET1(K256[53])));
        SCHED(w6, w4, w15, w7);
        RND(d,e,f,g,h,a,b,c_, VADD(w6, VSET1(K256[54])));
        SCHED(w7, w5, w0, w8);
        RND(c_,d,e,f,g,h,a,b, VADD(w7, VSET1(K256[55])));
        SCHED(w8, w6, w1, w9);
        RND(b,c_,d,e,f,g,h,a, VADD(w8, VSET1(K256[56])));
        SCHED(w9, w7, w2, w10);
        RND(a,b,c_,d,e,f,g,h, VADD(w9, VSET1(K256[57])));
        SCHED(w10, w8, w3, w11);
        RND(h,a,b,c_,d,e,f,g, VADD(w10, VSET1(K256[58])));
        SCHED(w11, w9, w4, w12);
        RND(g,h,a,b,c_,d,e,f, VADD(w11, VSET1(K256[59])));
        SCHED(w12, w10, w5, w13);
        h7 = VADD(VADD(VADD(a, e), VADD(BSIG1(b), CH(b,c_,d))),
                  VADD(w12, VSET1(K256[60] + IV256[7])));


        uint32_t mask = VLE_MASK(VBSWAP(h7), ctx->target[7]);
        while (mask) {
            uint32_t lane = CTZ32(mask);
            uint32_t nonce = start + (uint32_t)i + lane;
            mask &= mask - 1;
            if (check_nonce(ctx, nonce)) {
                found[n_found++] = nonce;
                if (n_found == cap) {
                    *scanned = i + lane + 1;
                    return n_found;
                }
            }
        }
        nonces = VADD(nonces, VSET1((uint32_t)LANES));
    }
    return scan_tail(ctx, start, i, count, found, n_found, cap, scanned);
}

#undef RND
#undef SCHED
#undef V
#undef LANES
#undef FN
#undef ENGINE_TARGET
#undef VSET1
#undef VADD
#undef VROR
#undef BSIG0
#undef BSIG1
#undef SSIG0
#undef SSIG1
#undef CH
#undef MAJ
#undef VBSWAP
#undef VNONCES
#undef VLE_MASK

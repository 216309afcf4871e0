/* runtime/gemm_q_tiles.h — the tile kernels of gemm_q.c as a template,
 * included once per instruction set (gemm_q.c: AVX2, gemm_q_vnni.c:
 * AVX-512 VNNI on 256-bit vectors). The includer defines
 *   GQ_TARGET        the target attribute of every function here
 *   GQ_DOT4(u, s)    8 int32 lanes, each the sum of 4 consecutive u8 × s8
 *                    products (AVX2: maddubs + madd; VNNI: one dpbusd; the
 *                    same exact integers for the operands used here, since
 *                    maddubs never saturates on them: |w| ≤ 128, |a| ≤ 127)
 *   GQ_ROWS          the name of the exported row function
 * and includes rt_cpu.h, formats.h, quant.h first. */
#define ALWAYS_INLINE __attribute__((always_inline)) inline
#define UNROLL _Pragma("GCC unroll 8")

static const uint8_t *wrow(const rt_weight *w, int64_t r) { return (const uint8_t *)w->data + (uint64_t)r * w->row_bytes; }


GQ_TARGET static ALWAYS_INLINE float h2f(uint16_t h) { return _cvtsh_ss(h); }

/* 16 bytes of nibbles -> 32 bytes: low nibbles (elements 0-15) then high (16-31) */
GQ_TARGET static ALWAYS_INLINE __m256i nibbles32(const uint8_t *p) {
    const __m128i v = _mm_loadu_si128((const __m128i *)p);
    return _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(v, 4), v), _mm256_set1_epi8(0x0F));
}

/* 32 bits -> 32 bytes, 0x10 where the bit is set (the fifth bit of Q5_0/Q5_1) */
GQ_TARGET static ALWAYS_INLINE __m256i fifth_bits(const uint8_t *qh4) {
    uint32_t bits;
    __builtin_memcpy(&bits, qh4, 4);
    const __m256i shuf = _mm256_setr_epi64x(0, 0x0101010101010101LL, 0x0202020202020202LL, 0x0303030303030303LL);
    const __m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32((int)bits), shuf);
    const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ULL);
    return _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(v, bit), bit), _mm256_set1_epi8(0x10));
}

/* per 8-token group and Q8_K block, built once per group (K-quant 1 × 8
 * tiles): the 8 activation scales, and the bsums regrouped token-major so a
 * madd yields one per-token int32 in each lane. v[k][t] holds the int16 pair
 * (bsum 2k, bsum 2k+1) of token t for Q6_K, and for Q4_K/Q5_K (k < 4) the
 * pair (bsum 4k + bsum 4k+1, bsum 4k+2 + bsum 4k+3) — sums ≤ 2·16·127. */
typedef struct {
    float da[8];
    int32_t v[8][8];
} kq_prep;

typedef struct {
    const uint8_t *ar[8]; /* the group's activation rows */
    const float *as[8];   /* Q8_0 activations: their block scales as fp32 */
    const kq_prep *kp;    /* K-quant 8-token groups: nb entries, else NULL */
} gq_group;

/* ---------------- 32-element blocks × Q8_0 ----------------
 * One weight block as 32 int8 values (signed for type 0, unsigned 0..31 for
 * type 1 = d·q + m) with its float scale d and offset m. */
GQ_TARGET static ALWAYS_INLINE __m256i w32_unpack(uint32_t type, const uint8_t *row, int64_t b, float *d, float *m) {
    switch (type) {
    case GGML_T_Q8_0: {
        const q_block_q8_0 *x = (const q_block_q8_0 *)row + b;
        *d = h2f(x->d);
        return _mm256_loadu_si256((const __m256i *)x->qs);
    }
    case GGML_T_Q4_0: {
        const q_block_q4_0 *x = (const q_block_q4_0 *)row + b;
        *d = h2f(x->d);
        return _mm256_sub_epi8(nibbles32(x->qs), _mm256_set1_epi8(8));
    }
    case GGML_T_IQ4_NL: {
        const q_block_iq4_nl *x = (const q_block_iq4_nl *)row + b;
        const __m128i lut = _mm_loadu_si128((const __m128i *)q_iq4nl_values);
        *d = h2f(x->d);
        return _mm256_shuffle_epi8(_mm256_set_m128i(lut, lut), nibbles32(x->qs));
    }
    case GGML_T_Q5_0: {
        const q_block_q5_0 *x = (const q_block_q5_0 *)row + b;
        *d = h2f(x->d);
        return _mm256_sub_epi8(_mm256_or_si256(nibbles32(x->qs), fifth_bits(x->qh)), _mm256_set1_epi8(16));
    }
    case GGML_T_Q4_1: {
        const q_block_q4_1 *x = (const q_block_q4_1 *)row + b;
        *d = h2f(x->d);
        *m = h2f(x->m);
        return nibbles32(x->qs);
    }
    default: { /* GGML_T_Q5_1 */
        const q_block_q5_1 *x = (const q_block_q5_1 *)row + b;
        *d = h2f(x->d);
        *m = h2f(x->m);
        return _mm256_or_si256(nibbles32(x->qs), fifth_bits(x->qh));
    }
    }
}

/* out[r][t] = W[r]·A[t] over nb blocks (vec_dot's acc_block0 / acc_block1 per pair) */
GQ_TARGET static ALWAYS_INLINE void tile32(uint32_t type, int RM, int RN, const uint8_t *const *wr,
                                         const uint8_t *const *ar, const float *const *as, int64_t nb,
                                         float *out /* [RM][RN] */) {
    const bool type1 = type == GGML_T_Q4_1 || type == GGML_T_Q5_1;
    const __m256i ones8 = _mm256_set1_epi8(1);
    __m256 acc[4][8];
    UNROLL for (int r = 0; r < RM; r++) UNROLL for (int t = 0; t < RN; t++) acc[r][t] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        __m256i q[4], qabs[4];
        float dw[4], mw[4] = {0, 0, 0, 0};
        UNROLL for (int r = 0; r < RM; r++) {
            q[r] = w32_unpack(type, wr[r], b, &dw[r], &mw[r]);
            qabs[r] = type1 ? q[r] : _mm256_sign_epi8(q[r], q[r]);
        }
        UNROLL for (int t = 0; t < RN; t++) {
            const q_block_q8_0 *a = (const q_block_q8_0 *)ar[t] + b;
            const __m256i qa = _mm256_loadu_si256((const __m256i *)a->qs);
            const float da = as[t][b]; /* the block's fp16 d, widened once per call */
            if (type1) {
                const __m256 sa = _mm256_cvtepi32_ps(GQ_DOT4(ones8, qa));
                UNROLL for (int r = 0; r < RM; r++) {
                    const __m256i si = GQ_DOT4(q[r], qa);
                    acc[r][t] = _mm256_fmadd_ps(_mm256_set1_ps(dw[r] * da), _mm256_cvtepi32_ps(si), acc[r][t]);
                    acc[r][t] = _mm256_fmadd_ps(_mm256_set1_ps(mw[r] * da), sa, acc[r][t]);
                }
            } else {
                UNROLL for (int r = 0; r < RM; r++) {
                    /* |w|·sign(a, w): maddubs needs its first operand unsigned */
                    const __m256i si = GQ_DOT4(qabs[r], _mm256_sign_epi8(qa, q[r]));
                    acc[r][t] = _mm256_fmadd_ps(_mm256_set1_ps(dw[r] * da), _mm256_cvtepi32_ps(si), acc[r][t]);
                }
            }
        }
    }
    UNROLL for (int r = 0; r < RM; r++) UNROLL for (int t = 0; t < RN; t++) out[r * RN + t] = hq_hsum_ps(acc[r][t]);
}

/* ---------------- K-quants × Q8_K ---------------- */
/* the eight 6-bit scales and mins of a Q4_K/Q5_K super-block, as bytes, by
 * 32-bit word arithmetic on the 12 packed bytes s (u0 = s[0..3], u1 =
 * s[4..7], u2 = s[8..11]): sub-blocks 0-3 keep the low 6 bits of u0 / u1,
 * sub-blocks 4-7 take a nibble of u2 plus the top 2 bits of u0 / u1 */
static ALWAYS_INLINE void k4_scales_mins(const uint8_t *s, uint8_t sc[8], uint8_t mn[8]) {
    uint32_t u0, u1, u2;
    __builtin_memcpy(&u0, s, 4);
    __builtin_memcpy(&u1, s + 4, 4);
    __builtin_memcpy(&u2, s + 8, 4);
    const uint32_t lo6 = 0x3f3f3f3fu, lo4 = 0x0f0f0f0fu, lo2 = 0x03030303u;
    const uint32_t w[4] = {u0 & lo6, (u2 & lo4) | (((u0 >> 6) & lo2) << 4), u1 & lo6,
                           ((u2 >> 4) & lo4) | (((u1 >> 6) & lo2) << 4)};
    __builtin_memcpy(sc, w, 8);
    __builtin_memcpy(mn, w + 2, 8);
}

GQ_TARGET static ALWAYS_INLINE __m256i pair_scales(int s0, int s1) {
    return _mm256_set_m128i(_mm_set1_epi16((short)s1), _mm_set1_epi16((short)s0));
}

/* Q4_K (q5 = false) / Q5_K: d_a·(d·Σ_j sc_j·Σ q·q_a − dmin·Σ_j m_j·Σ q_a) per super-block */
GQ_TARGET static ALWAYS_INLINE void tile_k45(bool q5, int RM, int RN, const uint8_t *const *wr,
                                           const uint8_t *const *ar, const float *const *as, int64_t nb,
                                           float *out) {
    (void)as; /* Q8_K keeps d as fp32 */
    const __m256i m4 = _mm256_set1_epi8(0x0F), m1b = _mm256_set1_epi8(1);
    UNROLL for (int i = 0; i < RM * RN; i++) out[i] = 0;
    for (int64_t b = 0; b < nb; b++) {
        const q_block_q8_K *a[8];
        UNROLL for (int t = 0; t < RN; t++) a[t] = (const q_block_q8_K *)ar[t] + b;
        UNROLL for (int r = 0; r < RM; r++) {
            const uint8_t *blk = wr[r] + (uint64_t)b * (q5 ? sizeof(q_block_q5_K) : sizeof(q_block_q4_K));
            const q_block_q4_K *x4 = (const q_block_q4_K *)blk;
            const q_block_q5_K *x5 = (const q_block_q5_K *)blk;
            const uint8_t *scales = q5 ? x5->scales : x4->scales, *qs = q5 ? x5->qs : x4->qs;
            const float d = h2f(q5 ? x5->d : x4->d), dmin = h2f(q5 ? x5->dmin : x4->dmin);
            const __m256i hb = q5 ? _mm256_loadu_si256((const __m256i *)x5->qh) : _mm256_setzero_si256();
            /* Σ_j m_j·(bsum_2j + bsum_2j+1): pair sums of the 16 bsums (hadd)
             * times the 8 mins in one madd — the same exact integer as vec_dot's
             * scalar loop */
            uint8_t sc[8], mn[8];
            k4_scales_mins(scales, sc, mn);
            int64_t mn8;
            __builtin_memcpy(&mn8, mn, 8);
            const __m128i mins = _mm_cvtepu8_epi16(_mm_cvtsi64_si128(mn8));
            __m256i sumi[8];
            int32_t summ[8];
            UNROLL for (int t = 0; t < RN; t++) {
                sumi[t] = _mm256_setzero_si256();
                const __m128i b0 = _mm_loadu_si128((const __m128i *)a[t]->bsums);
                const __m128i b1 = _mm_loadu_si128((const __m128i *)(a[t]->bsums + 8));
                __m128i p = _mm_madd_epi16(_mm_hadd_epi16(b0, b1), mins); /* pair sums ≤ 4064 fit int16 */
                p = _mm_add_epi32(p, _mm_shuffle_epi32(p, 0x4e));
                p = _mm_add_epi32(p, _mm_shuffle_epi32(p, 0xb1));
                summ[t] = _mm_cvtsi128_si32(p);
            }
            for (int c = 0; c < 4; c++) {
                const __m256i bq = _mm256_loadu_si256((const __m256i *)(qs + 32 * c));
                __m256i q0 = _mm256_and_si256(bq, m4), q1 = _mm256_and_si256(_mm256_srli_epi16(bq, 4), m4);
                if (q5) {
                    q0 = _mm256_or_si256(q0, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 2 * c), m1b), 4));
                    q1 = _mm256_or_si256(q1,
                                         _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 2 * c + 1), m1b), 4));
                }
                const __m256i s0 = pair_scales(sc[2 * c], sc[2 * c]), s1 = pair_scales(sc[2 * c + 1], sc[2 * c + 1]);
                UNROLL for (int t = 0; t < RN; t++) {
                    const __m256i a0 = _mm256_loadu_si256((const __m256i *)(a[t]->qs + 64 * c));
                    const __m256i a1 = _mm256_loadu_si256((const __m256i *)(a[t]->qs + 64 * c + 32));
                    sumi[t] = _mm256_add_epi32(sumi[t], _mm256_madd_epi16(_mm256_maddubs_epi16(q0, a0), s0));
                    sumi[t] = _mm256_add_epi32(sumi[t], _mm256_madd_epi16(_mm256_maddubs_epi16(q1, a1), s1));
                }
            }
            UNROLL for (int t = 0; t < RN; t++)
                out[r * RN + t] += a[t]->d * (d * (float)hq_hsum_epi32(sumi[t]) - dmin * (float)summ[t]);
        }
    }
}

/* Q6_K: d_a·d·(Σ_j sc_j·Σ q·q_a − 32·Σ_j sc_j·bsum_j), q unsigned 0..63 */
GQ_TARGET static ALWAYS_INLINE void tile_q6k(int RM, int RN, const uint8_t *const *wr, const uint8_t *const *ar,
                                           const float *const *as, int64_t nb, float *out) {
    (void)as;
    const __m256i m4 = _mm256_set1_epi8(0x0F), m2 = _mm256_set1_epi8(3);
    UNROLL for (int i = 0; i < RM * RN; i++) out[i] = 0;
    for (int64_t b = 0; b < nb; b++) {
        const q_block_q8_K *a[8];
        UNROLL for (int t = 0; t < RN; t++) a[t] = (const q_block_q8_K *)ar[t] + b;
        UNROLL for (int r = 0; r < RM; r++) {
            const q_block_q6_K *x = (const q_block_q6_K *)wr[r] + b;
            __m256i sumi[8];
            int32_t corr[8];
            /* Σ_j sc_j·bsum_j as one madd of the 16 scales (int16) with the 16 bsums */
            const __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)x->scales));
            UNROLL for (int t = 0; t < RN; t++) {
                corr[t] = hq_hsum_epi32(_mm256_madd_epi16(sc16, _mm256_loadu_si256((const __m256i *)a[t]->bsums)));
                sumi[t] = _mm256_setzero_si256();
            }
            for (int h = 0; h < 2; h++) {
                const uint8_t *ql = x->ql + 64 * h, *qh = x->qh + 32 * h;
                const __m256i l0 = _mm256_loadu_si256((const __m256i *)ql);
                const __m256i l1 = _mm256_loadu_si256((const __m256i *)(ql + 32));
                const __m256i hv = _mm256_loadu_si256((const __m256i *)qh);
                __m256i q[4];
                q[0] = _mm256_or_si256(_mm256_and_si256(l0, m4), _mm256_slli_epi16(_mm256_and_si256(hv, m2), 4));
                q[1] = _mm256_or_si256(_mm256_and_si256(l1, m4),
                                       _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hv, 2), m2), 4));
                q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), m4),
                                       _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hv, 4), m2), 4));
                q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4),
                                       _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hv, 6), m2), 4));
                for (int k = 0; k < 4; k++) {
                    const int sb = 8 * h + 2 * k;
                    const __m256i sv = pair_scales(x->scales[sb], x->scales[sb + 1]);
                    UNROLL for (int t = 0; t < RN; t++) {
                        const __m256i qa = _mm256_loadu_si256((const __m256i *)(a[t]->qs + 128 * h + 32 * k));
                        sumi[t] = _mm256_add_epi32(sumi[t], _mm256_madd_epi16(_mm256_maddubs_epi16(q[k], qa), sv));
                    }
                }
            }
            const float dw = h2f(x->d);
            UNROLL for (int t = 0; t < RN; t++) {
                const int32_t tot = hq_hsum_epi32(sumi[t]) - 32 * corr[t];
                out[r * RN + t] += a[t]->d * dw * (float)tot;
            }
        }
    }
}

/* the 8 lane-sums of s[0..7] as one vector (lane t = Σ s[t]), exact integers */
GQ_TARGET static ALWAYS_INLINE __m256i hsum8_epi32(const __m256i *s) {
    const __m256i a = _mm256_hadd_epi32(s[0], s[1]), b = _mm256_hadd_epi32(s[2], s[3]);
    const __m256i c = _mm256_hadd_epi32(s[4], s[5]), d = _mm256_hadd_epi32(s[6], s[7]);
    const __m256i ab = _mm256_hadd_epi32(a, b), cd = _mm256_hadd_epi32(c, d);
    return _mm256_add_epi32(_mm256_permute2x128_si256(ab, cd, 0x20), _mm256_permute2x128_si256(ab, cd, 0x31));
}

/* Q4_K / Q5_K, one row × 8 tokens with the per-token scalar work of
 * tile_k45 done in the 8 lanes: the same integers, and per lane the same
 * float operations in the same order (d·Σ, dmin·Σm, difference, ·d_a, +=) */
GQ_TARGET static ALWAYS_INLINE void tile_k45_x8(bool q5, const uint8_t *wr, const gq_group *g, int64_t nb,
                                                float *out) {
    const __m256i m4 = _mm256_set1_epi8(0x0F), m1b = _mm256_set1_epi8(1);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        const kq_prep *kp = &g->kp[b];
        const uint8_t *blk = wr + (uint64_t)b * (q5 ? sizeof(q_block_q5_K) : sizeof(q_block_q4_K));
        const q_block_q4_K *x4 = (const q_block_q4_K *)blk;
        const q_block_q5_K *x5 = (const q_block_q5_K *)blk;
        const uint8_t *scales = q5 ? x5->scales : x4->scales, *qs = q5 ? x5->qs : x4->qs;
        const float d = h2f(q5 ? x5->d : x4->d), dmin = h2f(q5 ? x5->dmin : x4->dmin);
        const __m256i hb = q5 ? _mm256_loadu_si256((const __m256i *)x5->qh) : _mm256_setzero_si256();
        uint8_t sc[8], mn[8];
        k4_scales_mins(scales, sc, mn);
        __m256i summ = _mm256_setzero_si256();
        for (int k = 0; k < 4; k++)
            summ = _mm256_add_epi32(summ, _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)kp->v[k]),
                                                            _mm256_set1_epi32(mn[2 * k] | (mn[2 * k + 1] << 16))));
        __m256i sumi[8];
        UNROLL for (int t = 0; t < 8; t++) sumi[t] = _mm256_setzero_si256();
        for (int c = 0; c < 4; c++) {
            const __m256i bq = _mm256_loadu_si256((const __m256i *)(qs + 32 * c));
            __m256i q0 = _mm256_and_si256(bq, m4), q1 = _mm256_and_si256(_mm256_srli_epi16(bq, 4), m4);
            if (q5) {
                q0 = _mm256_or_si256(q0, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 2 * c), m1b), 4));
                q1 = _mm256_or_si256(q1, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 2 * c + 1), m1b), 4));
            }
            const __m256i s0 = pair_scales(sc[2 * c], sc[2 * c]), s1 = pair_scales(sc[2 * c + 1], sc[2 * c + 1]);
            UNROLL for (int t = 0; t < 8; t++) {
                const q_block_q8_K *a = (const q_block_q8_K *)g->ar[t] + b;
                const __m256i a0 = _mm256_loadu_si256((const __m256i *)(a->qs + 64 * c));
                const __m256i a1 = _mm256_loadu_si256((const __m256i *)(a->qs + 64 * c + 32));
                sumi[t] = _mm256_add_epi32(sumi[t], _mm256_madd_epi16(_mm256_maddubs_epi16(q0, a0), s0));
                sumi[t] = _mm256_add_epi32(sumi[t], _mm256_madd_epi16(_mm256_maddubs_epi16(q1, a1), s1));
            }
        }
        const __m256 f = _mm256_sub_ps(_mm256_mul_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(hsum8_epi32(sumi))),
                                       _mm256_mul_ps(_mm256_set1_ps(dmin), _mm256_cvtepi32_ps(summ)));
        acc = _mm256_add_ps(acc, _mm256_mul_ps(_mm256_loadu_ps(kp->da), f));
    }
    _mm256_storeu_ps(out, acc);
}

/* Q6_K, one row × 8 tokens: tile_q6k with the per-token tail in lanes */
GQ_TARGET static ALWAYS_INLINE void tile_q6k_x8(const uint8_t *wr, const gq_group *g, int64_t nb, float *out) {
    const __m256i m4 = _mm256_set1_epi8(0x0F), m2 = _mm256_set1_epi8(3);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        const kq_prep *kp = &g->kp[b];
        const q_block_q6_K *x = (const q_block_q6_K *)wr + b;
        __m256i corr = _mm256_setzero_si256();
        for (int k = 0; k < 8; k++) {
            const uint32_t pair = (uint16_t)(int16_t)x->scales[2 * k] | ((uint32_t)(uint16_t)(int16_t)x->scales[2 * k + 1] << 16);
            corr = _mm256_add_epi32(corr, _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)kp->v[k]),
                                                            _mm256_set1_epi32((int)pair)));
        }
        __m256i sumi[8];
        UNROLL for (int t = 0; t < 8; t++) sumi[t] = _mm256_setzero_si256();
        for (int h = 0; h < 2; h++) {
            const uint8_t *ql = x->ql + 64 * h, *qh = x->qh + 32 * h;
            const __m256i l0 = _mm256_loadu_si256((const __m256i *)ql);
            const __m256i l1 = _mm256_loadu_si256((const __m256i *)(ql + 32));
            const __m256i hv = _mm256_loadu_si256((const __m256i *)qh);
            __m256i q[4];
            q[0] = _mm256_or_si256(_mm256_and_si256(l0, m4), _mm256_slli_epi16(_mm256_and_si256(hv, m2), 4));
            q[1] = _mm256_or_si256(_mm256_and_si256(l1, m4),
                                   _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hv, 2), m2), 4));
            q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), m4),
                                   _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hv, 4), m2), 4));
            q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4),
                                   _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hv, 6), m2), 4));
            for (int k = 0; k < 4; k++) {
                const int sb = 8 * h + 2 * k;
                const __m256i sv = pair_scales(x->scales[sb], x->scales[sb + 1]);
                UNROLL for (int t = 0; t < 8; t++) {
                    const q_block_q8_K *a = (const q_block_q8_K *)g->ar[t] + b;
                    const __m256i qa = _mm256_loadu_si256((const __m256i *)(a->qs + 128 * h + 32 * k));
                    sumi[t] = _mm256_add_epi32(sumi[t], _mm256_madd_epi16(_mm256_maddubs_epi16(q[k], qa), sv));
                }
            }
        }
        const __m256i tot = _mm256_sub_epi32(hsum8_epi32(sumi), _mm256_slli_epi32(corr, 5));
        const __m256 dd = _mm256_mul_ps(_mm256_loadu_ps(kp->da), _mm256_set1_ps(h2f(x->d)));
        acc = _mm256_add_ps(acc, _mm256_mul_ps(dd, _mm256_cvtepi32_ps(tot)));
    }
    _mm256_storeu_ps(out, acc);
}

/* the per-group table of tile_k45_x8 / tile_q6k_x8 */
static void kq_prep_build(kq_prep *kp, const uint8_t *const *ar, int64_t nb, bool q6) {
    for (int64_t b = 0; b < nb; b++) {
        for (int t = 0; t < 8; t++) {
            const q_block_q8_K *a = (const q_block_q8_K *)ar[t] + b;
            kp[b].da[t] = a->d;
            for (int k = 0; k < (q6 ? 8 : 4); k++) {
                int16_t lo, hi;
                if (q6) {
                    lo = a->bsums[2 * k];
                    hi = a->bsums[2 * k + 1];
                } else {
                    lo = (int16_t)(a->bsums[4 * k] + a->bsums[4 * k + 1]);
                    hi = (int16_t)(a->bsums[4 * k + 2] + a->bsums[4 * k + 3]);
                }
                kp[b].v[k][t] = (int32_t)((uint32_t)(uint16_t)lo | ((uint32_t)(uint16_t)hi << 16));
            }
        }
    }
}

/* one specialised function per (type, shape): the type and tile sizes are
 * constants inside, so the switches and loops above fold away */
typedef void (*tile_fn)(const uint8_t *const *wr, const gq_group *g, int64_t nb, float *out);
#define TILE_FNS(NAME, CALL, CALL8)                                                                             \
    GQ_TARGET static void NAME##_1x8(const uint8_t *const *wr, const gq_group *g, int64_t nb, float *o) {     \
        CALL8;                                                                                                  \
    }                                                                                                           \
    GQ_TARGET static void NAME##_1x4(const uint8_t *const *wr, const gq_group *g, int64_t nb, float *o) {     \
        CALL(1, 4);                                                                                             \
    }                                                                                                           \
    GQ_TARGET static void NAME##_1x1(const uint8_t *const *wr, const gq_group *g, int64_t nb, float *o) {     \
        CALL(1, 1);                                                                                             \
    }
#define C_Q80(M, N) tile32(GGML_T_Q8_0, M, N, wr, g->ar, g->as, nb, o)
#define C_Q40(M, N) tile32(GGML_T_Q4_0, M, N, wr, g->ar, g->as, nb, o)
#define C_Q41(M, N) tile32(GGML_T_Q4_1, M, N, wr, g->ar, g->as, nb, o)
#define C_Q50(M, N) tile32(GGML_T_Q5_0, M, N, wr, g->ar, g->as, nb, o)
#define C_Q51(M, N) tile32(GGML_T_Q5_1, M, N, wr, g->ar, g->as, nb, o)
#define C_IQ4(M, N) tile32(GGML_T_IQ4_NL, M, N, wr, g->ar, g->as, nb, o)
#define C_Q4K(M, N) tile_k45(false, M, N, wr, g->ar, g->as, nb, o)
#define C_Q5K(M, N) tile_k45(true, M, N, wr, g->ar, g->as, nb, o)
#define C_Q6K(M, N) tile_q6k(M, N, wr, g->ar, g->as, nb, o)
TILE_FNS(q8_0, C_Q80, C_Q80(1, 8))
TILE_FNS(q4_0, C_Q40, C_Q40(1, 8))
TILE_FNS(q4_1, C_Q41, C_Q41(1, 8))
TILE_FNS(q5_0, C_Q50, C_Q50(1, 8))
TILE_FNS(q5_1, C_Q51, C_Q51(1, 8))
TILE_FNS(iq4_nl, C_IQ4, C_IQ4(1, 8))
TILE_FNS(q4_K, C_Q4K, tile_k45_x8(false, wr[0], g, nb, o))
TILE_FNS(q5_K, C_Q5K, tile_k45_x8(true, wr[0], g, nb, o))
TILE_FNS(q6_K, C_Q6K, tile_q6k_x8(wr[0], g, nb, o))

typedef struct { tile_fn t1x8, t1x4, t1x1; } tile_set;
#define SET(NAME) {NAME##_1x8, NAME##_1x4, NAME##_1x1}
static const tile_set *tiles_for(uint32_t type) {
    static const tile_set q80 = SET(q8_0), q40 = SET(q4_0), q41 = SET(q4_1), q50 = SET(q5_0), q51 = SET(q5_1),
                          iq4 = SET(iq4_nl), q4k = SET(q4_K), q5k = SET(q5_K), q6k = SET(q6_K);
    switch (type) {
    case GGML_T_Q8_0: return &q80;
    case GGML_T_Q4_0: return &q40;
    case GGML_T_Q4_1: return &q41;
    case GGML_T_Q5_0: return &q50;
    case GGML_T_Q5_1: return &q51;
    case GGML_T_IQ4_NL: return &iq4;
    case GGML_T_Q4_K: return &q4k;
    case GGML_T_Q5_K: return &q5k;
    case GGML_T_Q6_K: return &q6k;
    default: return NULL;
    }
}

#define GQ_STACK_BLOCKS 512 /* activation scales on the stack up to n_in = 16384 (Q8_0 blocks) */

GQ_TARGET static void widen_scales(const uint8_t *act, float *dst, int64_t nb) {
    const q_block_q8_0 *a = (const q_block_q8_0 *)act;
    for (int64_t b = 0; b < nb; b++) dst[b] = h2f(a[b].d);
}

/* returns false (nothing written) only when a scratch buffer cannot be had */
bool GQ_ROWS(const rt_weight *w, const void *act, uint64_t act_bytes, float *y, int64_t n_tok, int64_t o0, int64_t o1) {
    const tile_set *ts = tiles_for(w->type);
    const q_type_traits *tr = q_traits(w->type);
    const int64_t nb = w->n_in / tr->blck, n_out = w->n_out;
    const bool q8 = tr->vec_dot_type == GGML_T_Q8_0;
    const uint8_t *A = act;
    float stack_sc[8 * GQ_STACK_BLOCKS], *sc = stack_sc;
    kq_prep *kp = NULL;
    if (q8 && nb > GQ_STACK_BLOCKS && !(sc = hq_malloc_array((size_t)nb, 8 * sizeof(float)))) return false;
    if (!q8 && n_tok >= 8 && !(kp = hq_malloc_array((size_t)nb, sizeof(kq_prep)))) return false;
    float out[8];
    /* prefill: token groups of 8 (then 4, then 1) over every row; the group's
     * activation blocks stay in L1 while the rows stream past.
     * decode (one token): one row at a time. A 4-row × 1-token tile (four
     * weight streams sharing each activation load) measured 0.4-0.6× this on
     * Q8_0 and Q6_K here (2026-12), so rows run one after another and the
     * gain over vec_dot is the F16C scales and the inlined types. */
    for (int64_t t = 0; t < n_tok;) {
        const int64_t rn = n_tok - t >= 8 ? 8 : n_tok - t >= 4 ? 4 : 1;
        tile_fn fn = rn == 8 ? ts->t1x8 : rn == 4 ? ts->t1x4 : ts->t1x1;
        gq_group g = {.kp = rn == 8 ? kp : NULL};
        for (int64_t k = 0; k < rn; k++) {
            g.ar[k] = A + (uint64_t)(t + k) * act_bytes;
            g.as[k] = sc + k * nb;
            if (q8) widen_scales(g.ar[k], sc + k * nb, nb);
        }
        if (g.kp) kq_prep_build(kp, g.ar, nb, w->type == GGML_T_Q6_K);
        for (int64_t o = o0; o < o1; o++) {
            const uint8_t *wr = wrow(w, o);
            fn(&wr, &g, nb, rn == 1 ? &y[t * n_out + o] : out);
            if (rn > 1)
                for (int64_t k = 0; k < rn; k++) y[(t + k) * n_out + o] = out[k];
        }
        t += rn;
    }
    if (sc != stack_sc) hq_free(sc);
    hq_free(kp);
    return true;
}

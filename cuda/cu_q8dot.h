/* cuda/cu_q8dot.h — int8 dot products of one 32-element weight sub-block
 * ("item") of any ggml block type with a Q8 activation sub-block (int8 qs,
 * scale d, Σq as matmul_q.cu stores them); shared by matmul_q.cu and
 * cdmoe.cu. cu_q8_unpack decodes the weight once into 8 int8x4 words;
 * cu_q8_contrib multiplies them with one token's item (__dp4a) using the
 * float formula of the type's quant/ vec_dot_ref:
 *   kind 0  (float)(Σ(q−off)·a)·d_w·d_a                       Q8_0 Q4_0 Q5_0 IQ4_NL
 *   kind 1  (float)(Σq·a)·d_w·d_a + (float)(Σa)·m_w·d_a        Q4_1 Q5_1
 *   kind 2  d_a·(d_w·(float)(sc·Σq·a) − dmin·(float)(m·Σa))    Q4_K Q5_K
 *   kind 3  d_a·d_w·(float)(sc0·Σ₀(q−off)·a + sc1·Σ₁(q−off)·a) Q6_K (off 32), Q3_K (off 4)
 *                                                               (two 16-element halves)
 *   kind 4  d_a·(d_w·(float)(sc0·Σ₀q·a + sc1·Σ₁q·a)
 *                − dmin·(float)(m0·Σ₀a + m1·Σ₁a))                Q2_K (two 16-halves) */
#ifndef HQ_CU_Q8DOT_H
#define HQ_CU_Q8DOT_H
#include "cu_kern.h"

/* 32 bytes at a 16-byte aligned address as 8 ints (two 16-byte loads) */
HQ_DEVICE void cu_ld_32b(const uint8_t *p, int *w) {
    const uint4 *v = (const uint4 *)(const void *)p;
    uint4 a = v[0], b = v[1];
    w[0] = (int)a.x, w[1] = (int)a.y, w[2] = (int)a.z, w[3] = (int)a.w;
    w[4] = (int)b.x, w[5] = (int)b.y, w[6] = (int)b.z, w[7] = (int)b.w;
}

typedef struct {
    int q[8];
    int off, kind, s0, s1, m0, m1; /* m0, m1: Q2_K's per-16 mins */
    float dw, mw;
} cu_witem;

/* 4 qh bits starting at element j0, as bit 4 of 4 bytes */
HQ_DEVICE int cu_q8_qh4(uint32_t qh, int j0) {
    return (int)((((qh >> j0) & 1u) << 4) | (((qh >> (j0 + 1)) & 1u) << 12) | (((qh >> (j0 + 2)) & 1u) << 20) |
                 (((qh >> (j0 + 3)) & 1u) << 28));
}
/* IQ4_NL levels of 4 nibbles (low or high) of qs[4k..4k+3] as int8x4 */
HQ_DEVICE int cu_q8_iq4x4(const uint8_t *qs, int k, int hi) {
    uint32_t r = 0;
    HQ_UNROLL
    for (int b = 0; b < 4; b++) {
        int nib = hi ? qs[4 * k + b] >> 4 : qs[4 * k + b] & 0xF;
        r |= (uint32_t)(uint8_t)(int8_t)cu_iq4nl(nib) << (8 * b);
    }
    return (int)r;
}

/* item `it` (elements 32·it .. 32·it+31) of a weight row */
HQ_DEVICE void cu_q8_unpack(uint32_t type, const uint8_t *row, int64_t it, cu_witem *wi) {
    wi->off = 0, wi->kind = 0, wi->s0 = 0, wi->s1 = 0, wi->m0 = 0, wi->m1 = 0, wi->mw = 0.0f;
    switch (type) {
    case GGML_T_Q8_0: {
        const uint8_t *b = row + it * 34;
        wi->dw = cu_ld_f16(b);
        HQ_UNROLL
        for (int k = 0; k < 8; k++) wi->q[k] = cu_ld_i32_a2(b + 2 + 4 * k);
        break;
    }
    case GGML_T_Q4_0: case GGML_T_Q4_1: {
        int one = type == GGML_T_Q4_1;
        const uint8_t *b = row + it * (one ? 20 : 18), *qs = b + (one ? 4 : 2);
        wi->dw = cu_ld_f16(b);
        if (one) wi->mw = cu_ld_f16(b + 2), wi->kind = 1;
        else wi->off = 8;
        HQ_UNROLL
        for (int k = 0; k < 4; k++) {
            int v = cu_ld_i32_a2(qs + 4 * k);
            wi->q[k] = v & 0x0F0F0F0F;
            wi->q[k + 4] = (v >> 4) & 0x0F0F0F0F;
        }
        break;
    }
    case GGML_T_Q5_0: case GGML_T_Q5_1: {
        int one = type == GGML_T_Q5_1;
        const uint8_t *b = row + it * (one ? 24 : 22), *qs = b + (one ? 8 : 6);
        uint32_t qh = (uint32_t)cu_ld_i32_a2(b + (one ? 4 : 2));
        wi->dw = cu_ld_f16(b);
        if (one) wi->mw = cu_ld_f16(b + 2), wi->kind = 1;
        else wi->off = 16;
        HQ_UNROLL
        for (int k = 0; k < 4; k++) {
            int v = cu_ld_i32_a2(qs + 4 * k);
            wi->q[k] = (v & 0x0F0F0F0F) | cu_q8_qh4(qh, 4 * k);
            wi->q[k + 4] = ((v >> 4) & 0x0F0F0F0F) | cu_q8_qh4(qh, 16 + 4 * k);
        }
        break;
    }
    case GGML_T_IQ4_NL: {
        const uint8_t *b = row + it * 18;
        wi->dw = cu_ld_f16(b);
        HQ_UNROLL
        for (int k = 0; k < 4; k++) {
            wi->q[k] = cu_q8_iq4x4(b + 2, k, 0);
            wi->q[k + 4] = cu_q8_iq4x4(b + 2, k, 1);
        }
        break;
    }
    case GGML_T_Q4_K: case GGML_T_Q5_K: {
        int five = type == GGML_T_Q5_K, sub = (int)(it % 8);
        const uint8_t *b = row + (it / 8) * (five ? 176 : 144), *qs = b + (five ? 48 : 16) + 32 * (sub / 2);
        wi->dw = cu_ld_f16(b);
        wi->mw = cu_ld_f16(b + 2);
        cu_scale_min_k4(sub, b + 4, &wi->s0, &wi->s1);
        wi->kind = 2;
        /* 144- and 176-byte blocks: qs and qh are 16-byte aligned, so two
         * 16-byte loads fetch an item's 32 bytes (2-byte loads held Q4_K to
         * 20 % of an H200's bandwidth) */
        int qw[8], hw[8];
        cu_ld_32b(qs, qw);
        if (five) cu_ld_32b(b + 16, hw);
        HQ_UNROLL
        for (int k = 0; k < 8; k++) {
            int v = (qw[k] >> (4 * (sub & 1))) & 0x0F0F0F0F;
            if (five) v |= ((hw[k] >> sub) & 0x01010101) << 4;
            wi->q[k] = v;
        }
        break;
    }
    case GGML_T_Q2_K: case GGML_T_Q3_K: {
        /* element 128h + 32kk + l: bits 2kk of qs[32h + l]; item sub covers
         * the 16-element sub-blocks 2·sub and 2·sub + 1. 84- / 110-byte
         * blocks are only 2-byte aligned: 2-byte loads */
        int sub = (int)(it % 8), h = sub / 4, kk = sub % 4, three = type == GGML_T_Q3_K;
        const uint8_t *b = row + (it / 8) * (three ? 110 : 84), *qs = b + (three ? 32 : 16) + 32 * h;
        if (three) {
            wi->dw = cu_ld_f16(b + 108);
            wi->s0 = cu_scale_q3k(2 * sub, b + 96);
            wi->s1 = cu_scale_q3k(2 * sub + 1, b + 96);
            wi->kind = 3;
            wi->off = 4;
        } else {
            wi->dw = cu_ld_f16(b + 80);
            wi->mw = cu_ld_f16(b + 82);
            wi->s0 = b[2 * sub] & 0xF, wi->m0 = b[2 * sub] >> 4;
            wi->s1 = b[2 * sub + 1] & 0xF, wi->m1 = b[2 * sub + 1] >> 4;
            wi->kind = 4;
        }
        HQ_UNROLL
        for (int k = 0; k < 8; k++) {
            int v = (cu_ld_i32_a2(qs + 4 * k) >> (2 * kk)) & 0x03030303;
            if (three) v |= ((cu_ld_i32_a2(b + 4 * k) >> (4 * h + kk)) & 0x01010101) << 2;
            wi->q[k] = v;
        }
        break;
    }
    default: { /* Q6_K: element e = 128h + 32kk + l of the super-block */
        int sub = (int)(it % 8), h = sub / 4, kk = sub % 4;
        const uint8_t *b = row + (it / 8) * 210;
        const uint8_t *ql = b + 64 * h + 32 * (kk & 1), *qh = b + 128 + 32 * h;
        wi->dw = cu_ld_f16(b + 208);
        wi->s0 = (int8_t)b[192 + 2 * sub];
        wi->s1 = (int8_t)b[192 + 2 * sub + 1];
        wi->kind = 3;
        wi->off = 32;
        HQ_UNROLL
        for (int k = 0; k < 8; k++)
            wi->q[k] = ((cu_ld_i32_a2(ql + 4 * k) >> (4 * (kk >> 1))) & 0x0F0F0F0F) |
                       (((cu_ld_i32_a2(qh + 4 * k) >> (2 * kk)) & 0x03030303) << 4);
        break;
    }
    }
}

/* contribution of one token's activation item (aq: 32 int8, 16-byte aligned:
 * items are 32 bytes from a 256-byte aligned scratch) */
HQ_DEVICE float cu_q8_contrib(const cu_witem *wi, const int8_t *aq, float da, int sa) {
    int av[8];
    cu_ld_32b((const uint8_t *)aq, av);
    if (wi->kind >= 3) {
        int si0 = 0, si1 = 0, sa0 = 0;
        HQ_UNROLL
        for (int k = 0; k < 4; k++) {
            si0 = __dp4a(wi->q[k], av[k], si0);
            sa0 = __dp4a(0x01010101, av[k], sa0);
        }
        HQ_UNROLL
        for (int k = 4; k < 8; k++) si1 = __dp4a(wi->q[k], av[k], si1);
        if (wi->kind == 4)
            return da * (wi->dw * (float)(wi->s0 * si0 + wi->s1 * si1) -
                         wi->mw * (float)(wi->m0 * sa0 + wi->m1 * (sa - sa0)));
        si0 -= wi->off * sa0;
        si1 -= wi->off * (sa - sa0);
        return da * wi->dw * (float)(wi->s0 * si0 + wi->s1 * si1);
    }
    int si = 0;
    HQ_UNROLL
    for (int k = 0; k < 8; k++) si = __dp4a(wi->q[k], av[k], si);
    si -= wi->off * sa;
    if (wi->kind == 0) return (float)si * wi->dw * da;
    if (wi->kind == 1) return (float)si * wi->dw * da + (float)sa * wi->mw * da;
    return da * (wi->dw * (float)(wi->s0 * si) - wi->mw * (float)(wi->s1 * sa));
}
#endif

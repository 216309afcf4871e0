/* runtime/rope.c — rotary position embedding, rotate_half convention, with
 * the dynamic-NTK base (spec §4.3). HF: inv_freq = 1/(base^(arange(0,P,2)/P));
 * freqs = pos·inv_freq (fp32); q' = q·cos + rotate_half(q)·sin. */
#include "rt_cpu.h" // defines: RT_OMP

#include <math.h>

float rt_rope_base(float theta, float factor, int64_t M, int64_t P, int64_t max_pos) {
    int64_t T = max_pos + 1;
    if (factor <= 1.0f || M <= 0 || T <= M || P <= 2) return theta;
    /* base' = θ·((f·T/M) − (f − 1))^(P/(P−2)) */
    double b = (double)theta * pow((double)factor * (double)T / (double)M - ((double)factor - 1.0),
                                   (double)P / (double)(P - 2));
    return (float)b;
}

static void rope_token(float *xt, int64_t n_heads, int64_t P, int64_t pos, float base, float *cs, float *sn) {
    int64_t half = P / 2;
    for (int64_t j = 0; j < half; j++) {
        /* inv_freq in fp32 as torch computes it: base ** (2j/P) then 1/x */
        float expo = (float)(2 * j) / (float)P;
        float inv = 1.0f / powf(base, expo);
        float ang = (float)pos * inv;
        cs[j] = cosf(ang);
        sn[j] = sinf(ang);
    }
    for (int64_t h = 0; h < n_heads; h++) {
        float *v = xt + h * P;
        for (int64_t j = 0; j < half; j++) {
            float a = v[j], b = v[j + half];
            v[j] = a * cs[j] - b * sn[j];
            v[j + half] = b * cs[j] + a * sn[j];
        }
    }
}

void rt_rope_ref(float *x, int64_t n_tok, int64_t n_heads, int64_t P, const int64_t *pos, float base) {
    float cs[512], sn[512]; /* P <= 1024 is checked at model load */
    for (int64_t t = 0; t < n_tok; t++) rope_token(x + t * n_heads * P, n_heads, P, pos[t], base, cs, sn);
}

void rt_rope(float *x, int64_t n_tok, int64_t n_heads, int64_t P, const int64_t *pos, float base) {
    if (rt_ops_ref()) {
        rt_rope_ref(x, n_tok, n_heads, P, pos, base);
        return;
    }
    /* same arithmetic per token; parallel over tokens (the table is per position) */
    RT_OMP("omp parallel for schedule(static) if(n_tok > 8)")
    for (int64_t t = 0; t < n_tok; t++) {
        float cs[512], sn[512];
        rope_token(x + t * n_heads * P, n_heads, P, pos[t], base, cs, sn);
    }
}

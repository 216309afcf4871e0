/* runtime/conv1d.c — causal depthwise conv1d with a rolling state (OTCE's
 * Mamba mixer, spec §4.10/§5). The state holds the last K inputs of each
 * channel, oldest first, exactly as the authors' decode step keeps it:
 *   conv_state = torch.roll(conv_state, -1); conv_state[:, :, -1] = x
 *   y = sum(conv_state * conv1d.weight[:, 0, :], -1) + conv1d.bias */
#include "otce_ops.h" // defines: rt_conv1d, rt_conv1d_ref
#include "rt_cpu.h"   // defines: RT_OMP

#include <string.h>

void rt_conv1d_ref(const float *x, int64_t ldx, int64_t n, int64_t C, int64_t K, const float *w, const float *b,
                   float *state, bool silu, float *y) {
    for (int64_t t = 0; t < n; t++)
        for (int64_t c = 0; c < C; c++) {
            float *s = state + c * K;
            for (int64_t j = 0; j + 1 < K; j++) s[j] = s[j + 1];
            s[K - 1] = x[t * ldx + c];
            float acc = 0;
            for (int64_t j = 0; j < K; j++) acc += w[c * K + j] * s[j];
            if (b) acc += b[c];
            y[t * C + c] = silu ? rt_silu(acc) : acc;
        }
}

/* Same sums in the same order, one channel per iteration: the window slides
 * in a small local copy instead of rolling the state for every token. */
void rt_conv1d(const float *x, int64_t ldx, int64_t n, int64_t C, int64_t K, const float *w, const float *b,
               float *state, bool silu, float *y) {
    if (rt_ops_ref() || K > 64) {
        rt_conv1d_ref(x, ldx, n, C, K, w, b, state, silu, y);
        return;
    }
    RT_OMP("omp parallel for schedule(static) if(n * C > 8192)")
    for (int64_t c = 0; c < C; c++) {
        float win[128]; /* 2K: state then inputs, shifted in halves */
        float *s = state + c * K;
        const float *wc = w + c * K;
        memcpy(win, s, (size_t)K * sizeof *win);
        int64_t filled = K; /* win[filled-K .. filled) is the current window */
        for (int64_t t = 0; t < n; t++) {
            if (filled == 2 * K) {
                memmove(win, win + K, (size_t)K * sizeof *win);
                filled = K;
            }
            win[filled++] = x[t * ldx + c];
            const float *cur = win + filled - K;
            float acc = 0;
            for (int64_t j = 0; j < K; j++) acc += wc[j] * cur[j];
            if (b) acc += b[c];
            y[t * C + c] = silu ? rt_silu(acc) : acc;
        }
        memcpy(s, win + filled - K, (size_t)K * sizeof *win);
    }
}

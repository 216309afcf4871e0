/* tests/test_gptq.c — GPTQ on a synthetic least-squares problem: with
 * correlated inputs X, ‖WX − ŴX‖² must be lower than round-to-nearest and
 * than imatrix (diag-weighted) rounding in the same block format. The loss
 * is computed here directly from X (independent of q_gptq_loss, which is
 * checked against it). */
#include "test.h"
#define TU_SEED 0x2545F4914F6CDD1Dull
#include "test_util.h" // defines: urand, nrand
#include "../formats/ggml_types.h"
#include "../quant/gptq.h"
#include "../quant/quant.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Σ_t Σ_r ((W − Ŵ) x_t)_r² */
static double direct_loss(const float *W, const float *Wq, const float *X, int64_t rows, int64_t n, int64_t T) {
    double s = 0;
    for (int64_t r = 0; r < rows; r++)
        for (int64_t t = 0; t < T; t++) {
            double e = 0;
            for (int64_t j = 0; j < n; j++) e += (double)(W[r * n + j] - Wq[r * n + j]) * X[t * n + j];
            s += e * e;
        }
    return s;
}

static void dequant(uint32_t type, const void *q, float *y, int64_t rows, int64_t n) {
    uint64_t rb = 0;
    ggml_row_bytes(type, (uint64_t)n, &rb);
    for (int64_t r = 0; r < rows; r++) q_traits(type)->to_float_ref((const uint8_t *)q + r * rb, y + r * n, n);
}

int main(void) {
    const bool san = getenv("HQ_SANITIZED") != NULL;
    const int64_t n = san ? 256 : 512, rows = 16, T = san ? 384 : 1024;
    float *X = malloc(sizeof(float) * (size_t)(T * n));
    float *H = calloc((size_t)(n * n), sizeof(float));
    float *W = malloc(sizeof(float) * (size_t)(rows * n));
    float *Wc = malloc(sizeof(float) * (size_t)(rows * n));
    float *Y = malloc(sizeof(float) * (size_t)(rows * n));
    float *diag = malloc(sizeof(float) * (size_t)n);
    void *q = malloc((size_t)(2 * rows * n)); /* up to 8.5 bits per weight */
    /* correlated inputs: x = z·A with A = I + banded mixing; per-column scales
     * spread over 10x; one dead column (always 0) */
    float *z = malloc(sizeof(float) * (size_t)n);
    float *scale = malloc(sizeof(float) * (size_t)n);
    for (int64_t j = 0; j < n; j++) scale[j] = (float)(0.3 + 3.0 * urand());
    for (int64_t t = 0; t < T; t++) {
        for (int64_t j = 0; j < n; j++) z[j] = nrand();
        float common = nrand();
        for (int64_t j = 0; j < n; j++) {
            float v = z[j] + 0.6f * (j ? z[j - 1] : 0) + 0.4f * (j > 1 ? z[j - 2] : 0) + 0.5f * common;
            X[t * n + j] = j == 7 ? 0.0f : v * scale[j];
        }
    }
    for (int64_t t = 0; t < T; t++)
        for (int64_t a = 0; a < n; a++) {
            float xa = X[t * n + a];
            if (xa == 0) continue;
            for (int64_t b = 0; b < n; b++) H[a * n + b] += xa * X[t * n + b];
        }
    for (int64_t j = 0; j < n; j++) diag[j] = H[j * n + j] > 0 ? H[j * n + j] : 1e-6f;
    for (int64_t i = 0; i < rows * n; i++) W[i] = nrand() * 0.05f;

    const uint32_t types[] = {GGML_T_Q4_0, GGML_T_Q4_1, GGML_T_Q5_0, GGML_T_IQ4_NL,
                              GGML_T_Q8_0, GGML_T_Q4_K, GGML_T_Q5_K, GGML_T_Q6_K,
                              GGML_T_Q2_K, GGML_T_Q3_K};
    for (size_t k = 0; k < sizeof types / sizeof *types; k++) {
        const uint32_t ty = types[k];
        const q_type_traits *tr = q_traits(ty);
        CHECK(tr != NULL, "type %u", ty);
        if (!tr) continue;
        uint64_t rb = 0;
        ggml_row_bytes(ty, (uint64_t)n, &rb);
        /* round to nearest */
        for (int64_t r = 0; r < rows; r++) tr->from_float_ref(W + r * n, (uint8_t *)q + r * rb, n);
        dequant(ty, q, Y, rows, n);
        double l_rtn = direct_loss(W, Y, X, rows, n, T);
        /* imatrix rounding with diag(H) */
        for (int64_t r = 0; r < rows; r++) {
            if (tr->quantize_imatrix) tr->quantize_imatrix(W + r * n, (uint8_t *)q + r * rb, n, diag);
            else tr->from_float_ref(W + r * n, (uint8_t *)q + r * rb, n);
        }
        dequant(ty, q, Y, rows, n);
        double l_imx = direct_loss(W, Y, X, rows, n, T);
        double l_imx_h = q_gptq_loss(ty, W, q, rows, n, H);
        CHECK(fabs(l_imx_h - l_imx) <= 1e-3 * l_imx, "%s: q_gptq_loss %g vs direct %g", tr->name, l_imx_h, l_imx);
        /* GPTQ */
        memcpy(Wc, W, sizeof(float) * (size_t)(rows * n));
        char err[HQ_ERR_LEN] = "";
        hq_status st = q_gptq_quantize(ty, Wc, rows, n, H, 0.01, q, err);
        CHECK(st == HQ_OK, "%s: gptq failed: %s", tr->name, err);
        if (st) continue;
        dequant(ty, q, Y, rows, n);
        bool fin = true;
        for (int64_t i = 0; i < rows * n; i++) fin &= isfinite(Y[i]) != 0;
        CHECK(fin, "%s: gptq output finite", tr->name);
        if (ty == GGML_T_Q4_0 || ty == GGML_T_Q5_0 || ty == GGML_T_Q8_0 || ty == GGML_T_Q6_K)
            CHECK(Y[7] == 0 && Y[n + 7] == 0, "%s: dead column zeroed (%g)", tr->name, Y[7]);
        double l_gptq = direct_loss(W, Y, X, rows, n, T);
        printf("%-7s loss rtn %.4e  imatrix %.4e  gptq %.4e  (gptq/imatrix %.3f)\n", tr->name, l_rtn, l_imx,
               l_gptq, l_gptq / l_imx);
        CHECK(l_gptq < l_rtn, "%s: gptq %g not below rtn %g", tr->name, l_gptq, l_rtn);
        CHECK(l_gptq < 0.9 * l_imx, "%s: gptq %g not 10%% below imatrix rounding %g", tr->name, l_gptq, l_imx);
    }
    /* unsupported type: refused without touching W */
    memcpy(Wc, W, sizeof(float) * (size_t)(rows * n));
    char err[HQ_ERR_LEN];
    CHECK(q_gptq_quantize(GGML_T_Q8_K, Wc, rows, n, H, 0.01, q, err) == HQ_ERR_UNSUPPORTED &&
              !memcmp(Wc, W, sizeof(float) * (size_t)(rows * n)), "unsupported type refused");
    CHECK(q_gptq_quantize(GGML_T_Q4_K, Wc, rows, 96, H, 0.01, q, err) == HQ_ERR_UNSUPPORTED, "misfit refused");
    free(X), free(H), free(W), free(Wc), free(Y), free(diag), free(q), free(z), free(scale);
    TEST_END();
}

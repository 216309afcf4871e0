/* bench/quant_peers.c — hyquant's quant/ block quantizers next to ggml's, on the
 * same data, in one process (built by bench/bench_quant_peers.py, never part of
 * `make`; links the hyquant library objects and a ggml built from llama.cpp's
 * sources under bench/work/, which is not committed).
 *
 * usage: quant_peers ROWS COLS REPS MIN_SECONDS TYPE...   (TYPE = ggml id)
 * Prints one JSON object per line:
 *   {"type": "Q4_K", "op": "chunk", "hq": [r1..], "ggml": [r1..],
 *    "rmse_hq": e, "rmse_ggml": e, "same_bytes": f}
 * rates in parameters per second on ONE thread, REPS interleaved repeats
 * (hq then ggml each repeat, so load changes hit both alike).
 * ops: ref   = from_float_ref (plain scalar row quantizer) on both sides
 *      fast  = hyquant from_float (SIMD) vs ggml-cpu from_float
 *      chunk = what the quantize CLIs run without an imatrix:
 *              q_quantize_rows(.., NULL) vs ggml_quantize_chunk(.., NULL)
 *      imat  = the same with one importance vector (synthetic, heavy-tailed)
 * rmse: of the dequantized weights (imatrix-weighted for op imat);
 * same_bytes: fraction of output bytes identical between the two. */
#include "quant/quant.h"
#include "core/hq.h"

#include "ggml.h"
#include "ggml-cpu.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static uint64_t rs = 0x9E3779B97F4A7C15ull;
static double urand(void) {
    rs ^= rs >> 12, rs ^= rs << 25, rs ^= rs >> 27;
    return ((rs * 0x2545F4914F6CDD1Dull) >> 11) * (1.0 / 9007199254740992.0);
}
static float gauss(void) {
    double u = urand(), v = urand();
    if (u < 1e-300) u = 1e-300;
    return (float)(sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v));
}

enum { OP_REF, OP_FAST, OP_CHUNK, OP_IMAT, N_OP };
static const char *op_name[N_OP] = {"ref", "fast", "chunk", "imat"};

typedef struct {
    int type, op;
    int64_t rows, cols;
    const float *x, *imp;
    void *y;
} job;

static void run_hq(const job *j) {
    const q_type_traits *t = q_traits((uint32_t)j->type);
    const int64_t n = j->rows * j->cols;
    if (j->op == OP_REF) t->from_float_ref(j->x, j->y, n);
    else if (j->op == OP_FAST) t->from_float(j->x, j->y, n);
    else q_quantize_rows((uint32_t)j->type, j->x, j->y, j->rows, j->cols, j->op == OP_IMAT ? j->imp : NULL);
}

static void run_ggml(const job *j) {
    const enum ggml_type t = (enum ggml_type)j->type;
    const int64_t n = j->rows * j->cols;
    if (j->op == OP_REF) ggml_get_type_traits(t)->from_float_ref(j->x, j->y, n);
    else if (j->op == OP_FAST) ggml_get_type_traits_cpu(t)->from_float(j->x, j->y, n);
    else ggml_quantize_chunk(t, j->x, j->y, 0, j->rows, j->cols, j->op == OP_IMAT ? j->imp : NULL);
}

/* parameters per second: repeat the call until min_s has passed */
static double rate(void (*fn)(const job *), const job *j, double min_s) {
    int reps = 0;
    double t0 = now_s(), el;
    do {
        fn(j);
        reps++;
        el = now_s() - t0;
    } while (el < min_s);
    return (double)reps * (double)(j->rows * j->cols) / el;
}

static double rmse(const float *x, const float *d, const float *imp, int64_t rows, int64_t cols) {
    double num = 0, den = 0;
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < cols; c++) {
            double w = imp ? imp[c] : 1.0, e = (double)x[r * cols + c] - d[r * cols + c];
            num += w * e * e;
            den += w;
        }
    return sqrt(num / den);
}

int main(int argc, char **argv) {
    if (argc < 6) {
        fprintf(stderr, "usage: %s ROWS COLS REPS MIN_SECONDS TYPE...\n", argv[0]);
        return 2;
    }
    const int64_t rows = atoll(argv[1]), cols = atoll(argv[2]);
    const int reps = atoi(argv[3]);
    const double min_s = atof(argv[4]);
    if (rows <= 0 || cols <= 0 || cols % 256 || reps <= 0 || rows > (1 << 20) || cols > (1 << 20)) {
        fprintf(stderr, "bad sizes\n");
        return 2;
    }
    ggml_cpu_init();
    const int64_t n = rows * cols;
    float *x = malloc((size_t)n * 4), *d = malloc((size_t)n * 4), *imp = malloc((size_t)cols * 4);
    uint8_t *yh = malloc((size_t)n * 4 + 4096), *yg = malloc((size_t)n * 4 + 4096);
    if (!x || !d || !imp || !yh || !yg) return 1;
    /* weights: Gaussian rows with per-row scale spread (like trained
     * matrices) and 0.1 % outliers at 8σ; importance: log-normal per column */
    for (int64_t r = 0; r < rows; r++) {
        float s = 0.02f * expf(0.5f * gauss());
        for (int64_t c = 0; c < cols; c++) {
            float v = gauss();
            if (urand() < 0.001) v = v > 0 ? 8.0f : -8.0f;
            x[r * cols + c] = s * v;
        }
    }
    for (int64_t c = 0; c < cols; c++) imp[c] = expf(1.5f * gauss());

    for (int a = 5; a < argc; a++) {
        const int type = atoi(argv[a]);
        const q_type_traits *t = q_traits((uint32_t)type);
        if (!t || !ggml_get_type_traits((enum ggml_type)type)->from_float_ref) {
            fprintf(stderr, "type %d: not available on both sides\n", type);
            continue;
        }
        ggml_quantize_init((enum ggml_type)type);
        const uint64_t qbytes = (uint64_t)(n / t->blck) * t->type_size;
        for (int op = 0; op < N_OP; op++) {
            job j = {type, op, rows, cols, x, imp, NULL};
            double rh[64], rg[64];
            int R = reps > 64 ? 64 : reps;
            for (int k = 0; k < R; k++) {
                j.y = yh;
                rh[k] = rate(run_hq, &j, min_s);
                j.y = yg;
                rg[k] = rate(run_ggml, &j, min_s);
            }
            /* outputs of the last call of each, compared */
            uint64_t same = 0;
            for (uint64_t i = 0; i < qbytes; i++) same += yh[i] == yg[i];
            t->to_float_ref(yh, d, n);
            const double eh = rmse(x, d, op == OP_IMAT ? imp : NULL, rows, cols);
            ggml_get_type_traits((enum ggml_type)type)->to_float(yg, d, n);
            const double eg = rmse(x, d, op == OP_IMAT ? imp : NULL, rows, cols);
            printf("{\"type\": \"%s\", \"op\": \"%s\", \"params\": %lld, \"hq\": [", t->name, op_name[op], (long long)n);
            for (int k = 0; k < R; k++) printf("%s%.6g", k ? ", " : "", rh[k]);
            printf("], \"ggml\": [");
            for (int k = 0; k < R; k++) printf("%s%.6g", k ? ", " : "", rg[k]);
            printf("], \"rmse_hq\": %.6g, \"rmse_ggml\": %.6g, \"same_bytes\": %.6f, \"avx2\": %s}\n", eh, eg,
                   (double)same / (double)qbytes, q_simd_avx2() ? "true" : "false");
            fflush(stdout);
        }
    }
    free(x), free(d), free(imp), free(yh), free(yg);
    return 0;
}

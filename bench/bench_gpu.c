/* bench/bench_gpu.c — throughput of the CUDA backend on a real GPU (built
 * and run by bench/bench_gpu.sh). Without a device (or without nvcc-built
 * kernels) it says so and exits 0.
 *   bench_gpu model.gguf [n_prefill=512] [n_decode=128] [backend=cuda]
 *   bench_gpu --kernels       matmul kernels alone + device copy bandwidth
 * Model mode: prefill tokens/s (one rt_forward_last after a warm-up) and
 * decode tokens/s, with the decode graph (default) and eager
 * (HQ_CUDA_GRAPH=0). Decode GB/s counts the GGUF's bytes as read once per
 * token — an upper bound of the true traffic for CDMoE models (only the
 * retrieved expert rows are read) and for an untied embedding (one row) —
 * against the device's peak from cudaGetDeviceProperties (memory clock × bus
 * width × 2) and against a measured device-to-device copy.
 * Kernel mode: y = x·Wᵀ for one token and for 512 tokens on a 16384×4096
 * weight of each type (random bytes; larger than the L2), the GB/s of the
 * weight bytes for one token, and GFLOP/s for 512. */
#include "../cuda/backend.h"
#include "../cuda/cu_ops.h"
#include "../runtime/runtime.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* device-to-device copy of 1 GiB, bytes read + written per second (GB/s) */
static double copy_gbs(const cu_ops *T) {
    uint64_t n = 1ull << 30;
    void *a = T->alloc(n), *b = T->alloc(n);
    char msg[256];
    double best = 0;
    if (a && b && T->zero(a, n) == 0) {
        for (int r = 0; r < 6; r++) {
            double t0 = now();
            T->d2d(b, a, n);
            if (T->sync(msg, sizeof msg) != 0) break;
            double g = 2.0 * (double)n / (now() - t0) / 1e9;
            if (r > 0 && g > best) best = g;
        }
    }
    T->free(a), T->free(b);
    return best;
}

static uint64_t xs = 88172645463325252ull;
static uint32_t rnd(void) {
    xs ^= xs << 13, xs ^= xs >> 7, xs ^= xs << 17;
    return (uint32_t)(xs >> 32);
}

/* one weight type: the mean over reps after a warm-up launch */
static int kernel_bench(const cu_ops *T, uint32_t type, int json, int small) {
    const int64_t n_out = small ? 64 : 16384, n_in = small ? 512 : 4096, big = small ? 8 : 512;
    uint64_t rb = 0;
    if (!ggml_row_bytes(type, (uint64_t)n_in, &rb) || !T->matmul_supported(type, n_in)) return 0;
    uint64_t wbytes = rb * (uint64_t)n_out;
    uint8_t *hw = malloc(wbytes);
    float *hx = malloc((size_t)(big * n_in) * 4);
    if (!hw || !hx) return -1;
    for (uint64_t i = 0; i < wbytes; i++) hw[i] = (uint8_t)rnd();
    if (type == GGML_T_F32 || type == GGML_T_F16 || type == GGML_T_BF16) { /* finite values */
        for (uint64_t i = 0; i + 1 < wbytes; i += 2) hw[i + 1] = (uint8_t)(0x30 + (hw[i + 1] & 7)) | (hw[i + 1] & 0x80);
        if (type == GGML_T_F32)
            for (uint64_t i = 0; i + 3 < wbytes; i += 4) hw[i + 3] = (uint8_t)(0x3c | (hw[i + 3] & 0x80)), hw[i + 2] &= 0x7f;
    } else if (type != GGML_T_IQ4_NL) { /* keep the fp16 scales finite: clear exponent top bits everywhere (cheap) */
        for (uint64_t i = 1; i < wbytes; i += 2) hw[i] &= 0x3b;
    }
    for (int64_t i = 0; i < big * n_in; i++) hx[i] = (float)(rnd() % 2001) / 1000.0f - 1.0f;
    cu_wt w = {T->alloc(wbytes), type, n_in, n_out, rb};
    float *dx = T->alloc((uint64_t)(big * n_in) * 4u), *dy = T->alloc((uint64_t)(big * n_out) * 4u);
    uint64_t sb = T->matmul_scratch(&w, big);
    void *scr = sb ? T->alloc(sb) : NULL;
    char msg[256] = "";
    int rc = (!w.data || !dx || !dy || (sb && !scr)) ? -1 : 0;
    if (rc == 0) rc = T->h2d((void *)w.data, hw, wbytes) || T->h2d(dx, hx, (uint64_t)(big * n_in) * 4u);
    double t1 = 0, tb = 0;
    for (int pass = 0; pass < 2 && rc == 0; pass++) {
        int64_t nt = pass ? big : 1;
        int reps = small ? 1 : pass ? 5 : 200;
        rc |= T->matmul(&w, dx, dy, nt, NULL, scr, 0);
        rc |= T->sync(msg, sizeof msg);
        double t0 = now();
        for (int r = 0; r < reps && rc == 0; r++) rc |= T->matmul(&w, dx, dy, nt, NULL, scr, 0);
        rc |= T->sync(msg, sizeof msg);
        double dt = (now() - t0) / reps;
        if (pass) tb = dt;
        else t1 = dt;
    }
    if (rc == 0) {
        double gbs = (double)wbytes / t1 / 1e9, gfl = 2.0 * (double)n_out * (double)n_in * (double)big / tb / 1e9;
        if (json)
            printf("{\"kernel\": \"matmul\", \"type\": \"%s\", \"n_out\": %lld, \"n_in\": %lld, \"us_1tok\": %.2f, "
                   "\"gbs_1tok\": %.1f, \"ms_%lldtok\": %.3f, \"gflops_%lldtok\": %.0f}\n",
                   ggml_type_name(type), (long long)n_out, (long long)n_in, t1 * 1e6, gbs, (long long)big, tb * 1e3,
                   (long long)big, gfl);
        else
            printf("  %-7s %9.1f MiB  1 tok %8.1f us %7.0f GB/s   %lld tok %8.3f ms %7.0f GFLOP/s\n",
                   ggml_type_name(type), (double)wbytes / 1048576.0, t1 * 1e6, gbs, (long long)big, tb * 1e3, gfl);
    } else {
        printf("  %-7s failed: %s\n", ggml_type_name(type), msg[0] ? msg : "launch");
    }
    T->free((void *)w.data), T->free(dx), T->free(dy), T->free(scr);
    free(hw), free(hx);
    return rc ? -1 : 0;
}

/* small: a smoke run on the emulator (bench_gpu --kernels-emu) */
static int kernels_mode(int small) {
    const cu_ops *T = small ? cu_table_emu() : cu_table_gpu();
    char name[300] = "emulator";
    double peak = 0;
    if (!small) cu_gpu_info(name, sizeof name, &peak);
    double cp = small ? 0 : copy_gbs(T);
    printf("device:  %s, peak %.0f GB/s (spec), device copy %.0f GB/s (measured, read+write)\n", name, peak, cp);
    printf("matmul y = x·Wᵀ, W 16384 x 4096:\n");
    static const uint32_t types[] = {GGML_T_F32, GGML_T_F16, GGML_T_BF16, GGML_T_Q8_0, GGML_T_Q4_0, GGML_T_Q4_1,
                                     GGML_T_Q5_0, GGML_T_Q5_1, GGML_T_IQ4_NL, GGML_T_Q4_K, GGML_T_Q5_K, GGML_T_Q6_K};
    int bad = 0;
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) bad |= kernel_bench(T, types[i], 0, small) != 0;
    printf("{\"device\": \"%s\", \"peak_gbs\": %.1f, \"copy_gbs\": %.1f}\n", name, peak, cp);
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) bad |= kernel_bench(T, types[i], 1, small) != 0;
    return bad ? 1 : 0;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: bench_gpu model.gguf [n_prefill=512] [n_decode=128] [backend=cuda]\n");
        return 2;
    }
    if (!strcmp(argv[1], "--kernels-emu")) return kernels_mode(1);
    int kern = !strcmp(argv[1], "--kernels");
    int64_t np = argc > 2 ? atoll(argv[2]) : 512, nd = argc > 3 ? atoll(argv[3]) : 128;
    const char *be = argc > 4 ? argv[4] : "cuda";
    char msg[300] = "", name[300] = "", err[HQ_ERR_LEN] = "", note[400] = "";
    double peak = 0;
    if (kern || strcmp(be, "cuda-emu") != 0) {
        if (!cu_table_gpu || !cu_gpu_devices) {
            printf("no GPU: this build has no nvcc-built kernels (nvcc absent or NO_CUDA=1); nothing to measure\n");
            return 0;
        }
        if (cu_gpu_devices(msg, sizeof msg) <= 0) {
            printf("no GPU: %s; nothing to measure\n", msg[0] ? msg : "0 CUDA devices");
            return 0;
        }
        cu_gpu_info(name, sizeof name, &peak);
    }
    if (kern) return kernels_mode(0);
    rt_model *m = NULL;
    if (rt_model_load(argv[1], &m, err) != HQ_OK || cu_backend_select(m, be, note, sizeof note, err) != HQ_OK) {
        fprintf(stderr, "bench_gpu: %s\n", err);
        return 1;
    }
    if (note[0]) printf("note: %s\n", note);
    struct stat sb;
    double wbytes = stat(argv[1], &sb) == 0 ? (double)sb.st_size : 0;
    int64_t V = rt_model_n_vocab(m);
    rt_state *s = NULL;
    if (rt_state_new(m, np + nd + 1, &s, err) != HQ_OK) return fprintf(stderr, "bench_gpu: %s\n", err), 1;
    int32_t *tok = malloc((size_t)(np + nd) * 4);
    float *lg = malloc((size_t)V * 4);
    for (int64_t i = 0; i < np + nd; i++) tok[i] = (int32_t)((i * 7919 + 13) % V);
    /* warm-up: the first launches load the kernels; the full-size prefill
     * sizes the scratch and two decode steps capture the decode graph */
    if (rt_forward_last(m, s, tok, np, lg, err) != HQ_OK || rt_forward(m, s, tok, 1, lg, err) != HQ_OK ||
        rt_forward(m, s, tok + 1, 1, lg, err) != HQ_OK)
        return fprintf(stderr, "bench_gpu: %s\n", err), 1;
    rt_state_reset(s);
    double t0 = now();
    hq_status st = rt_forward_last(m, s, tok, np, lg, err);
    double t1 = now();
    for (int64_t i = 0; i < nd && st == HQ_OK; i++) st = rt_forward(m, s, tok + np + i, 1, lg, err);
    double t2 = now();
    if (st != HQ_OK) return fprintf(stderr, "bench_gpu: %s\n", err), 1;
    /* the same decode without the graph (every op launched from the host) */
    rt_state_reset(s);
    setenv("HQ_CUDA_GRAPH", "0", 1);
    st = rt_forward_last(m, s, tok, np, lg, err);
    double t3 = now();
    for (int64_t i = 0; i < nd && st == HQ_OK; i++) st = rt_forward(m, s, tok + np + i, 1, lg, err);
    double t4 = now();
    unsetenv("HQ_CUDA_GRAPH");
    if (st != HQ_OK) return fprintf(stderr, "bench_gpu: %s\n", err), 1;
    double pf = (double)np / (t1 - t0), dc = (double)nd / (t2 - t1), de = (double)nd / (t4 - t3), gbs = wbytes * dc / 1e9;
    printf("device:  %s, peak %.0f GB/s\n", name[0] ? name : cu_backend_name(m), peak);
    printf("model:   %s (%.1f MiB), backend %s\n", argv[1], wbytes / 1048576.0, cu_backend_name(m));
    printf("prefill: %lld tokens in %.3f s = %.1f tok/s\n", (long long)np, t1 - t0, pf);
    printf("decode:  %lld tokens in %.3f s = %.1f tok/s, ~%.1f GB/s of weights (%.1f%% of peak); eager (no graph) %.1f tok/s\n",
           (long long)nd, t2 - t1, dc, gbs, peak > 0 ? 100.0 * gbs / peak : 0.0, de);
    printf("{\"model\": \"%s\", \"mib\": %.1f, \"device\": \"%s\", \"peak_gbs\": %.1f, \"n_prefill\": %lld, "
           "\"prefill_tok_s\": %.2f, \"decode_tok_s\": %.2f, \"decode_eager_tok_s\": %.2f, \"decode_gbs\": %.2f}\n",
           argv[1], wbytes / 1048576.0, name, peak, (long long)np, pf, dc, de, gbs);
    rt_state_free(s);
    rt_model_free(m);
    free(tok);
    free(lg);
    return 0;
}

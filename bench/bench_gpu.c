/* bench/bench_gpu.c — prefill / decode throughput of the CUDA backend on a
 * real GPU (built and run by bench/bench_gpu.sh). Without a device (or
 * without nvcc-built kernels) it says so and exits 0.
 * Decode GB/s counts the GGUF's tensor bytes as read once per token — an
 * upper bound of the true traffic for CDMoE models (only the retrieved expert
 * rows are read) and for the embedding (one row) — against the device's peak
 * from cudaGetDeviceProperties (memory clock × bus width × 2). */
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

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: bench_gpu model.gguf [n_prefill=512] [n_decode=128] [backend=cuda]\n");
        return 2;
    }
    int64_t np = argc > 2 ? atoll(argv[2]) : 512, nd = argc > 3 ? atoll(argv[3]) : 128;
    const char *be = argc > 4 ? argv[4] : "cuda";
    char msg[300] = "", name[300] = "", err[HQ_ERR_LEN] = "", note[400] = "";
    double peak = 0;
    if (strcmp(be, "cuda-emu") != 0) {
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
    /* warm-up (first launches load the kernels) */
    if (rt_forward_last(m, s, tok, np < 8 ? np : 8, lg, err) != HQ_OK) return fprintf(stderr, "bench_gpu: %s\n", err), 1;
    rt_state_reset(s);
    double t0 = now();
    hq_status st = rt_forward_last(m, s, tok, np, lg, err);
    double t1 = now();
    for (int64_t i = 0; i < nd && st == HQ_OK; i++) st = rt_forward(m, s, tok + np + i, 1, lg, err);
    double t2 = now();
    if (st != HQ_OK) return fprintf(stderr, "bench_gpu: %s\n", err), 1;
    double pf = (double)np / (t1 - t0), dc = (double)nd / (t2 - t1), gbs = wbytes * dc / 1e9;
    printf("device:  %s, peak %.0f GB/s\n", name[0] ? name : cu_backend_name(m), peak);
    printf("model:   %s (%.1f MiB), backend %s\n", argv[1], wbytes / 1048576.0, cu_backend_name(m));
    printf("prefill: %lld tokens in %.3f s = %.1f tok/s\n", (long long)np, t1 - t0, pf);
    printf("decode:  %lld tokens in %.3f s = %.1f tok/s, ~%.1f GB/s of weights (%.1f%% of peak)\n", (long long)nd,
           t2 - t1, dc, gbs, peak > 0 ? 100.0 * gbs / peak : 0.0);
    printf("{\"device\": \"%s\", \"peak_gbs\": %.1f, \"prefill_tok_s\": %.2f, \"decode_tok_s\": %.2f, \"decode_gbs\": %.2f}\n",
           name, peak, pf, dc, gbs);
    rt_state_free(s);
    rt_model_free(m);
    free(tok);
    free(lg);
    return 0;
}

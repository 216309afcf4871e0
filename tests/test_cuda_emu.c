/* tests/test_cuda_emu.c — the SIMT emulator itself: correct kernels give
 * exact results in every thread order; broken kernels (missing barrier,
 * barrier divergence, lanes missing from a shuffle mask) are reported. */
#include "../cuda/selftest.cu"
#include "test.h"

#include <math.h>
#include <stdlib.h>

int main(void) {
    enum { N = 1000 };
    float x[N], out[1024];
    double ref = 0;
    for (int i = 0; i < N; i++) x[i] = (float)((i * 37) % 101) - 50.0f, ref += x[i];
    int orders[3] = {CU_EMU_ORDER_FORWARD, CU_EMU_ORDER_REVERSE, CU_EMU_ORDER_RANDOM};
    for (int o = 0; o < 3; o++) {
        cu_emu_set_order(orders[o], 7);
        out[0] = 0;
        k_sum_args a = {x, out, N};
        int rc = HQ_LAUNCH(k_block_sum, k_sum_args, hq_dim3((N + 127) / 128, 1, 1), hq_dim3(128, 1, 1), a);
        CHECK(rc == 0 && out[0] == (float)ref, "block sum order %d: rc %d, %g vs %g", o, rc, out[0], ref);
    }
    /* missing barrier: forward and reverse orders disagree */
    float y0[256], y1[256];
    k_sum_args b0 = {x, y0, 256}, b1 = {x, y1, 256};
    cu_emu_set_order(CU_EMU_ORDER_FORWARD, 1);
    HQ_LAUNCH(k_missing_sync, k_sum_args, hq_dim3(1, 1, 1), hq_dim3(256, 1, 1), b0);
    cu_emu_set_order(CU_EMU_ORDER_REVERSE, 1);
    HQ_LAUNCH(k_missing_sync, k_sum_args, hq_dim3(1, 1, 1), hq_dim3(256, 1, 1), b1);
    int differ = 0;
    for (int i = 0; i < 256; i++) differ += !(y0[i] == y1[i]);
    CHECK(differ > 0, "a missing __syncthreads must change results between thread orders");
    cu_emu_set_order(CU_EMU_ORDER_FORWARD, 1);

    k_sum_args c = {x, out, 64};
    fprintf(stderr, "(the next three emulator errors are expected)\n");
    CHECK(HQ_LAUNCH(k_divergent_barrier, k_sum_args, hq_dim3(1, 1, 1), hq_dim3(64, 1, 1), c) != 0,
          "barrier divergence must be reported");
    CHECK(HQ_LAUNCH(k_partial_shuffle, k_sum_args, hq_dim3(1, 1, 1), hq_dim3(32, 1, 1), c) != 0,
          "a shuffle whose mask names absent lanes must be reported");
    CHECK(HQ_LAUNCH(k_block_sum, k_sum_args, hq_dim3(1, 1, 1), hq_dim3(48, 1, 1), c) != 0,
          "a full-mask shuffle in a partial warp must be reported");
    k_sum_args d = {x, out, 96};
    CHECK(HQ_LAUNCH(k_count_positive, k_sum_args, hq_dim3(1, 1, 1), hq_dim3(96, 1, 1), d) == 0, "ballot runs");
    for (int w = 0; w < 3; w++) {
        int cnt = 0;
        for (int l = 0; l < 32; l++) cnt += x[w * 32 + l] > 0;
        CHECK(out[w] == (float)cnt, "ballot warp %d: %g vs %d", w, out[w], cnt);
    }
    TEST_END();
}

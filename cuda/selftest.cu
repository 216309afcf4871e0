/* cuda/selftest.cu — kernels that exercise the emulator's contract (shared
 * memory, barriers, warp shuffles, ballots, atomics) and deliberately broken
 * kernels the emulator must catch. Compiled by nvcc as CUDA and included by
 * tests/test_cuda_emu.c as C. */
#include "hq_cuda.h"

typedef struct { const float *x; float *out; int n; } k_sum_args;

/* out[0] += Σ x: per-warp shuffle reduction, warp sums in shared memory,
 * first warp reduces them, one atomicAdd per block. blockDim.x % 32 == 0. */
HQ_KERNEL(k_block_sum, k_sum_args) {
    HQ_SHARED(float, warp_sums, 32);
    int tid = (int)threadIdx.x, i = (int)(blockIdx.x * blockDim.x) + tid;
    float v = i < a.n ? a.x[i] : 0.0f;
    for (int off = 16; off > 0; off >>= 1) v += __shfl_down_sync(0xffffffffu, v, off);
    if ((tid & 31) == 0) warp_sums[tid >> 5] = v;
    __syncthreads();
    int nw = (int)blockDim.x >> 5;
    if (tid < 32) {
        float s = tid < nw ? warp_sums[tid] : 0.0f;
        for (int off = 16; off > 0; off >>= 1) s += __shfl_xor_sync(0xffffffffu, s, off);
        if (tid == 0) atomicAdd(a.out, s);
    }
}

/* Broken: reads a neighbour's shared slot without a barrier. Its result
 * depends on the thread order, which the emulator varies. */
HQ_KERNEL(k_missing_sync, k_sum_args) {
    HQ_SHARED(float, buf, 1024);
    int tid = (int)threadIdx.x;
    buf[tid] = a.x[tid];
    int nb = (tid + 1) % (int)blockDim.x;
    a.out[tid] = buf[nb];
}

/* Broken: thread 0 returns before the barrier the others wait at. */
HQ_KERNEL(k_divergent_barrier, k_sum_args) {
    if (threadIdx.x == 0) return;
    __syncthreads();
    a.out[threadIdx.x] = 1.0f;
}

/* Broken: a full-mask shuffle inside a branch only half the warp takes. */
HQ_KERNEL(k_partial_shuffle, k_sum_args) {
    float v = a.x[threadIdx.x];
    if (threadIdx.x < 16) v += __shfl_down_sync(0xffffffffu, v, 1);
    a.out[threadIdx.x] = v;
}

/* ballot: out[w] = number of lanes of warp w whose x is positive */
HQ_KERNEL(k_count_positive, k_sum_args) {
    unsigned b = __ballot_sync(0xffffffffu, a.x[threadIdx.x] > 0.0f);
    if ((threadIdx.x & 31) == 0) a.out[threadIdx.x >> 5] = (float)hq_popc(b);
}

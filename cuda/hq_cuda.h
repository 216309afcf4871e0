/* cuda/hq_cuda.h — one kernel source, two compilers.
 *
 * Kernels are written once in cuda/<op>.cu against the macros below. nvcc
 * compiles them as CUDA; gcc compiles the same file as C (-x c -DHQ_CUDA_EMU)
 * against the strict CPU SIMT emulator in cuda/emu.c, which runs each CUDA
 * thread of a block as its own lightweight context (file-formats.md §5.2).
 *
 * Writing a kernel:
 *   typedef struct { const float *x; float *y; int n; } k_scale_args;
 *   HQ_KERNEL(k_scale, k_scale_args) {                // argument is `a`
 *       int i = blockIdx.x * blockDim.x + threadIdx.x;
 *       HQ_SHARED(float, tile, 256);                   // per-block shared array
 *       if (i < a.n) a.y[i] = 2.0f * a.x[i];
 *       __syncthreads();
 *   }
 *   HQ_LAUNCH(k_scale, k_scale_args, hq_dim3(nb,1,1), hq_dim3(256,1,1), args);
 *
 * Rules the emulator enforces (it is a checker, not just a runner):
 *  - every thread of a block reaches each __syncthreads (a thread that exits
 *    while others wait is reported as barrier divergence);
 *  - every lane named in a *_sync mask arrives at the same warp operation;
 *  - shared memory is poisoned (0xFF bytes = NaN floats) before each block;
 *  - the scheduling order of threads between barriers can be forward,
 *    reversed or seeded-random (cu_emu_set_order) to expose missing syncs.
 * Kernels must not rely on warp lock-step without __syncwarp / *_sync ops.
 * Vector types uint4/float4 (16-byte aligned loads) exist in both builds.
 * Supported warp ops: __shfl_sync, __shfl_down_sync, __shfl_up_sync,
 * __shfl_xor_sync (32-bit int/unsigned/float), __ballot_sync, __syncwarp.
 * Atomics: atomicAdd (float, int, unsigned), atomicMax/atomicMin (int),
 * atomicCAS (int, unsigned). Integer: __dp4a, __float2int_rn. HQ_UNROLL
 * before a constant-trip loop asks nvcc to unroll it (keeps small per-thread
 * arrays in registers; the emulator ignores it).
 */
#ifndef HQ_CUDA_H
#define HQ_CUDA_H

#ifdef __CUDACC__
/* ------------------------------------------------------------ real CUDA */
#include <cuda_runtime.h>
#include <stdint.h>
#define HQ_DEVICE __device__ __forceinline__
#define HQ_KERNEL(name, T) __global__ void name(const T a)
#define HQ_SHARED(type, name, count) __shared__ type name[count]
/* every launch goes to the backend's stream (cuda/table.cu), so a decode
 * step can be captured into a CUDA graph */
extern "C" cudaStream_t hq_cu_stream(void);
#define HQ_LAUNCH(name, T, grid, block, args) name<<<(grid), (block), 0, hq_cu_stream()>>>(args)
static inline dim3 hq_dim3(unsigned x, unsigned y, unsigned z) { return dim3(x, y, z); }
#define HQ_RESTRICT __restrict__
#define hq_popc(x) __popc(x)
#define HQ_UNROLL _Pragma("unroll")

#else
/* ------------------------------------------------------------ emulator */
#include <math.h>
#include <stdint.h>

typedef struct { unsigned x, y, z; } dim3;
typedef struct { unsigned x, y, z; } uint3;
/* CUDA's 16-byte vector types (loads through them must be 16-byte aligned) */
typedef struct { unsigned x, y, z, w; } __attribute__((aligned(16))) uint4;
typedef struct { float x, y, z, w; } __attribute__((aligned(16))) float4;
static inline dim3 hq_dim3(unsigned x, unsigned y, unsigned z) { dim3 d = {x, y, z}; return d; }

typedef void (*cu_emu_kernel_fn)(const void *args);

/* current thread / block coordinates */
uint3 cu_emu_thread_idx(void);
uint3 cu_emu_block_idx(void);
dim3 cu_emu_block_dim(void);
dim3 cu_emu_grid_dim(void);
#define threadIdx (cu_emu_thread_idx())
#define blockIdx (cu_emu_block_idx())
#define blockDim (cu_emu_block_dim())
#define gridDim (cu_emu_grid_dim())
#define warpSize 32

#define HQ_DEVICE static inline
#define HQ_RESTRICT restrict
#define hq_popc(x) __builtin_popcount(x)
#define HQ_UNROLL
#define __device__
#define __forceinline__ inline

#define HQ_KERNEL(name, T)                                                   \
    static void name##_body(const T a);                                      \
    static void name(const void *p) { name##_body(*(const T *)p); }          \
    static void name##_body(const T a)

/* the k-th HQ_SHARED of a kernel gets the same block-wide array in every thread */
void *cu_emu_shared(unsigned long long bytes, const char *name);
#define HQ_SHARED(type, name, count) type *name = (type *)cu_emu_shared(sizeof(type) * (unsigned long long)(count), #name)

/* Runs the kernel on the emulator; returns 0, or -1 after printing the
 * violation (barrier divergence, missing lanes, deadlock) to stderr. */
int cu_emu_launch(cu_emu_kernel_fn fn, const char *name, dim3 grid, dim3 block, const void *args);
#define HQ_LAUNCH(name, T, grid, block, args) cu_emu_launch(name, #name, (grid), (block), &(args))

void __syncthreads(void);
void __syncwarp(unsigned mask);

enum { CU_EMU_SHFL_IDX, CU_EMU_SHFL_DOWN, CU_EMU_SHFL_UP, CU_EMU_SHFL_XOR, CU_EMU_BALLOT };
uint32_t cu_emu_warp_op(int op, unsigned mask, uint32_t bits, int arg, int width);
static inline uint32_t cu_emu_fbits(float f) { union { float f; uint32_t u; } v; v.f = f; return v.u; }
static inline float cu_emu_bitsf(uint32_t u) { union { float f; uint32_t u; } v; v.u = u; return v.f; }
#define CU_EMU_SHFL(op, mask, v, arg, w)                                                            \
    _Generic((v),                                                                                    \
        float: cu_emu_bitsf(cu_emu_warp_op(op, mask, cu_emu_fbits((float)(v)), arg, w)),             \
        int: (int)cu_emu_warp_op(op, mask, (uint32_t)(v), arg, w),                                   \
        unsigned: (unsigned)cu_emu_warp_op(op, mask, (uint32_t)(v), arg, w))
#define __shfl_sync(mask, v, lane) CU_EMU_SHFL(CU_EMU_SHFL_IDX, mask, v, lane, 32)
#define __shfl_down_sync(mask, v, d) CU_EMU_SHFL(CU_EMU_SHFL_DOWN, mask, v, d, 32)
#define __shfl_up_sync(mask, v, d) CU_EMU_SHFL(CU_EMU_SHFL_UP, mask, v, d, 32)
#define __shfl_xor_sync(mask, v, m) CU_EMU_SHFL(CU_EMU_SHFL_XOR, mask, v, m, 32)
#define __ballot_sync(mask, pred) cu_emu_warp_op(CU_EMU_BALLOT, mask, (pred) ? 1u : 0u, 0, 32)

/* Only one emulated thread runs at a time and switches happen only at
 * barriers and warp ops, so read-modify-write is atomic here. */
static inline float cu_emu_atomic_add_f(float *p, float v) { float o = *p; *p = o + v; return o; }
static inline int cu_emu_atomic_add_i(int *p, int v) { int o = *p; *p = o + v; return o; }
static inline unsigned cu_emu_atomic_add_u(unsigned *p, unsigned v) { unsigned o = *p; *p = o + v; return o; }
#define atomicAdd(p, v) _Generic((p), float *: cu_emu_atomic_add_f, int *: cu_emu_atomic_add_i, unsigned *: cu_emu_atomic_add_u)(p, v)
static inline int atomicMax(int *p, int v) { int o = *p; if (v > o) *p = v; return o; }
static inline int atomicMin(int *p, int v) { int o = *p; if (v < o) *p = v; return o; }
static inline int cu_emu_cas_i(int *p, int c, int v) { int o = *p; if (o == c) *p = v; return o; }
static inline unsigned cu_emu_cas_u(unsigned *p, unsigned c, unsigned v) { unsigned o = *p; if (o == c) *p = v; return o; }
#define atomicCAS(p, c, v) _Generic((p), int *: cu_emu_cas_i, unsigned *: cu_emu_cas_u)(p, c, v)

static inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
/* int8×4 dot product with accumulate (signed bytes), as the sm_61+ instruction */
static inline int __dp4a(int a, int b, int c) {
    for (int k = 0; k < 4; k++) c += (int)(int8_t)(uint8_t)((unsigned)a >> (8 * k)) * (int)(int8_t)(uint8_t)((unsigned)b >> (8 * k));
    return c;
}
/* round to nearest even (the default FP environment), as the intrinsic */
static inline int __float2int_rn(float x) { return (int)rintf(x); }
/* __expf: glibc already declares one with the same meaning (expf) */
static inline float __fdividef(float a, float b) { return a / b; }

/* ---- emulator control (tests) ---- */
enum { CU_EMU_ORDER_FORWARD, CU_EMU_ORDER_REVERSE, CU_EMU_ORDER_RANDOM };
void cu_emu_set_order(int order, unsigned seed);
/* number of context switches since start (cost accounting in tests) */
unsigned long long cu_emu_switches(void);
#endif /* __CUDACC__ */

/* ---- helpers usable from kernels in both builds ---- */
#ifdef __CUDACC__
#include <cuda_fp16.h>
/* the hardware conversion (exact, like the emulator's bit manipulation) */
HQ_DEVICE float hq_dev_f16_to_f32(uint16_t h) { return __half2float(__ushort_as_half(h)); }
#else
HQ_DEVICE float hq_dev_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, exp = (h >> 10) & 0x1fu, man = h & 0x3ffu, u;
    if (exp == 0x1f) u = sign | 0x7f800000u | (man << 13);
    else if (exp == 0) {
        float v = (float)man * 5.9604644775390625e-8f;
        return sign ? -v : v;
    } else u = sign | ((exp + 112u) << 23) | (man << 13);
    union { uint32_t u; float f; } c;
    c.u = u;
    return c.f;
}
#endif
HQ_DEVICE float hq_dev_bf16_to_f32(uint16_t h) {
    union { uint32_t u; float f; } c;
    c.u = (uint32_t)h << 16;
    return c.f;
}
#endif

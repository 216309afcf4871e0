/* cuda/table.cu — fills the cu_ops table of this build (cu_table_gpu under
 * nvcc, cu_table_emu under the emulator): device memory, synchronization,
 * the matmul type dispatch (matmul_f.cu for F32/F16/BF16, matmul_q.cu for
 * block types) and every op's host wrapper. */
#include "cu_kern.h"

#ifdef __CUDACC__
#include <stdio.h>
/* One non-blocking stream for every kernel and copy of the backend: the
 * legacy default stream cannot be captured into a graph. Created on first
 * use (the CUDA runtime is not touched before a model selects "cuda"). */
static cudaStream_t tb_stream;
extern "C" cudaStream_t hq_cu_stream(void) {
    if (!tb_stream && cudaStreamCreateWithFlags(&tb_stream, cudaStreamNonBlocking) != cudaSuccess) tb_stream = 0;
    return tb_stream;
}
static void *tb_alloc(uint64_t n) {
    void *p = NULL;
    return cudaMalloc(&p, n ? n : 1) == cudaSuccess ? p : NULL;
}
static void tb_free(void *p) {
    if (p) cudaFree(p);
}
/* synchronous copies: ordered after the stream's kernels, finished on return */
static int tb_copy(void *d, const void *s, uint64_t n, cudaMemcpyKind k) {
    cudaStream_t st = hq_cu_stream();
    if (cudaMemcpyAsync(d, s, n, k, st) != cudaSuccess) return -1;
    return cudaStreamSynchronize(st) == cudaSuccess ? 0 : -1;
}
static int tb_h2d(void *d, const void *s, uint64_t n) { return tb_copy(d, s, n, cudaMemcpyHostToDevice); }
static int tb_d2h(void *d, const void *s, uint64_t n) { return tb_copy(d, s, n, cudaMemcpyDeviceToHost); }
static int tb_d2d(void *d, const void *s, uint64_t n) {
    return cudaMemcpyAsync(d, s, n, cudaMemcpyDeviceToDevice, hq_cu_stream()) == cudaSuccess ? 0 : -1;
}
static int tb_zero(void *p, uint64_t n) { return cudaMemsetAsync(p, 0, n, hq_cu_stream()) == cudaSuccess ? 0 : -1; }
static void *tb_host_alloc(uint64_t n) {
    void *p = NULL;
    return cudaMallocHost(&p, n ? n : 1) == cudaSuccess ? p : NULL;
}
static void tb_host_free(void *p) {
    if (p) cudaFreeHost(p);
}
static int tb_h2d_async(void *d, const void *s, uint64_t n) {
    return cudaMemcpyAsync(d, s, n, cudaMemcpyHostToDevice, hq_cu_stream()) == cudaSuccess ? 0 : -1;
}
static int tb_d2h_async(void *d, const void *s, uint64_t n) {
    return cudaMemcpyAsync(d, s, n, cudaMemcpyDeviceToHost, hq_cu_stream()) == cudaSuccess ? 0 : -1;
}
static int tb_graph_begin(void) {
    cudaStream_t st = hq_cu_stream();
    return st && cudaStreamBeginCapture(st, cudaStreamCaptureModeThreadLocal) == cudaSuccess ? 0 : -1;
}
static int tb_graph_end(void **exec) {
    cudaGraph_t g = NULL;
    cudaGraphExec_t e = NULL;
    *exec = NULL;
    cudaError_t r = cudaStreamEndCapture(hq_cu_stream(), &g);
    if (r == cudaSuccess) r = cudaGraphInstantiate(&e, g, 0);
    if (g) cudaGraphDestroy(g);
    if (r != cudaSuccess) {
        cudaGetLastError(); /* a failed capture is not a sticky error: clear it */
        return -1;
    }
    *exec = (void *)e;
    return 0;
}
static int tb_graph_launch(void *exec) {
    return cudaGraphLaunch((cudaGraphExec_t)exec, hq_cu_stream()) == cudaSuccess ? 0 : -1;
}
static void tb_graph_free(void *exec) {
    if (exec) cudaGraphExecDestroy((cudaGraphExec_t)exec);
}
CU_API int cu_gpu_info(char *name, int name_len, double *peak_gbs) {
    cudaDeviceProp p;
    int dev = 0, clk = 0, bus = 0;
    if (cudaGetDevice(&dev) != cudaSuccess || cudaGetDeviceProperties(&p, dev) != cudaSuccess) return -1;
    if (name && name_len > 0) snprintf(name, (size_t)name_len, "%s (sm_%d%d, %.1f GiB)", p.name, p.major, p.minor,
                                       (double)p.totalGlobalMem / (1024.0 * 1024.0 * 1024.0));
    cudaDeviceGetAttribute(&clk, cudaDevAttrMemoryClockRate, dev);     /* kHz */
    cudaDeviceGetAttribute(&bus, cudaDevAttrGlobalMemoryBusWidth, dev); /* bits */
    /* double data rate: 2 transfers per clock */
    if (peak_gbs) *peak_gbs = 2.0 * (double)clk * 1e3 * (double)bus / 8.0 / 1e9;
    return 0;
}
CU_API int cu_gpu_devices(char *msg, int msg_len) {
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e == cudaSuccess) return n;
    if (msg && msg_len > 0) snprintf(msg, (size_t)msg_len, "%s (CUDA error %d)", cudaGetErrorString(e), (int)e);
    return -1;
}
static int tb_sync(char *err, int err_len) {
    cudaError_t e = cudaStreamSynchronize(hq_cu_stream());
    if (e == cudaSuccess) e = cudaGetLastError();
    if (e == cudaSuccess) return 0;
    if (err && err_len > 0) snprintf(err, (size_t)err_len, "CUDA error %d: %s", (int)e, cudaGetErrorString(e));
    return -1;
}
#else
#include "../core/hq.h" // defines: hq_malloc, hq_free
#include <string.h>
static void *tb_alloc(uint64_t n) { return hq_malloc((size_t)(n ? n : 1)); }
static void tb_free(void *p) { hq_free(p); }
static int tb_h2d(void *d, const void *s, uint64_t n) { memcpy(d, s, (size_t)n); return 0; }
static int tb_d2h(void *d, const void *s, uint64_t n) { memcpy(d, s, (size_t)n); return 0; }
static int tb_d2d(void *d, const void *s, uint64_t n) { memmove(d, s, (size_t)n); return 0; }
static int tb_zero(void *p, uint64_t n) { memset(p, 0, (size_t)n); return 0; }
static int tb_sync(char *err, int err_len) { (void)err; (void)err_len; return 0; }
static void *tb_host_alloc(uint64_t n) { return hq_malloc((size_t)(n ? n : 1)); }
static void tb_host_free(void *p) { hq_free(p); }
static int tb_graph_begin(void) { return -1; } /* no graphs: the backend runs the ops eagerly */
static int tb_graph_end(void **exec) { *exec = NULL; return -1; }
static int tb_graph_launch(void *exec) { (void)exec; return -1; }
static void tb_graph_free(void *exec) { (void)exec; }
#define tb_h2d_async tb_h2d
#define tb_d2h_async tb_d2h
#endif

/* the op wrappers: declared in cu_kern.h */
static int tb_float(uint32_t t) { return cu_act_type(t) == GGML_T_F32; }

static int tb_matmul_supported(uint32_t type, int64_t n_in) {
    return tb_float(type) ? CU_SYM(cu_matmul_f_supported)(type, n_in) : CU_SYM(cu_matmul_q_supported)(type, n_in);
}
static uint64_t tb_matmul_scratch(const cu_wt *w, int64_t n_tok) {
    return tb_float(w->type) ? 0 : cu_q8_act_bytes(n_tok, w->n_in);
}
static int tb_matmul(const cu_wt *w, const float *x, float *y, int64_t n_tok, const float *bias, void *scratch,
                     int act_ready) {
    if (tb_float(w->type)) return CU_SYM(cu_matmul_f)(w, x, y, n_tok, bias);
    return CU_SYM(cu_matmul_q)(w, x, y, n_tok, bias, scratch, act_ready);
}

static const cu_ops tb_table = {
#ifdef __CUDACC__
    "gpu",
#else
    "emu",
#endif
    tb_alloc, tb_free, tb_h2d, tb_d2h, tb_d2d, tb_zero, tb_sync,
    tb_host_alloc, tb_host_free, tb_h2d_async, tb_d2h_async, tb_graph_begin, tb_graph_end, tb_graph_launch,
    tb_graph_free,
    CU_SYM(cu_rmsnorm), CU_SYM(cu_rmsnorm_supported),
    CU_SYM(cu_rope), CU_SYM(cu_rope_supported),
    tb_matmul, tb_matmul_scratch, tb_matmul_supported, CU_SYM(cu_quant_act),
    CU_SYM(cu_swiglu), CU_SYM(cu_softplus_bias), CU_SYM(cu_residual), CU_SYM(cu_kv_append),
    CU_SYM(cu_embed),
    CU_SYM(cu_ssd_scan), CU_SYM(cu_ssd_supported),
    CU_SYM(cu_attn), CU_SYM(cu_attn_scratch), CU_SYM(cu_attn_supported),
    CU_SYM(cu_route_router), CU_SYM(cu_route_pk), CU_SYM(cu_route_pk_scratch), CU_SYM(cu_route_supported),
    CU_SYM(cu_experts), CU_SYM(cu_experts_scratch),
    CU_SYM(cu_logsoftmax), CU_SYM(cu_nll), CU_SYM(cu_kl),
};

CU_API const cu_ops *CU_SYM(cu_table)(void) { return &tb_table; }

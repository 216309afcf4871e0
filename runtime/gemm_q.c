/* runtime/gemm_q.c — tiled y = x·Wᵀ for block-quantized weights (contract in
 * gemm_q.h: every output is bit-identical to the AVX2 vec_dot of
 * quant/dot_avx2.c, so the tiles only change loads, never sums): dispatch,
 * the scalar twin, and the AVX2 instance of the kernels in gemm_q_tiles.h
 * (the AVX-512 VNNI instance is gemm_q_vnni.c).
 *
 * Tile shapes (RM weight rows × RN tokens, chosen per call):
 *   - prefill: 1 × 8 (then 1 × 4, 1 × 1 for the tail tokens): a weight block
 *     is loaded and unpacked once and multiplied with 8 activation blocks that
 *     stay in L1; the 8 accumulators fit the 16 ymm registers with room for
 *     the unpacked weights.
 *   - decode: 1 × 1, one row after another (see GQ_ROWS in gemm_q_tiles.h for why not 4 × 1).
 * Per output the float work is exactly vec_dot's: Q8_0 family — one 8-lane
 * accumulator per (row, token), fmadd(d_w·d_a, Σ_block) in block order, one
 * hq_hsum_ps at the end; K-quants — an integer super-block sum, the same
 * scalar combination and `sum +=` in block order. The fp16 scales are widened
 * with F16C (_cvtsh_ss), which is exact, like hq_f16_to_f32. */
#include "gemm_q.h"
#include "../core/cpu.h"
#include "rt_cpu.h"        // defines: RT_AVX2, RT_X86
#include "../quant/formats.h" // defines: q_block_*, Q_QK_K, q_iq4nl_values
#include "../quant/quant.h"   // defines: q_traits, q_simd_avx2

#include <stdlib.h> // defines: getenv
#include <string.h> // defines: strcmp

static int g_gemm_on = -1; /* -1: not read yet; HQ_NO_GEMM=1 turns the tiles off (before/after benchmarks) */
static int g_isa_cap = RT_GEMM_COUNT - 1; /* tests lower it to exercise each path */
void rt_gemm_q_enable(bool on) { __atomic_store_n(&g_gemm_on, on ? 1 : 0, __ATOMIC_RELAXED); }

rt_gemm_isa rt_gemm_q_isa(void) {
    int on = __atomic_load_n(&g_gemm_on, __ATOMIC_RELAXED);
    if (on < 0) {
        const char *e = getenv("HQ_NO_GEMM");
        on = !(e && *e && strcmp(e, "0") != 0);
        __atomic_store_n(&g_gemm_on, on, __ATOMIC_RELAXED);
    }
#if RT_X86
    /* the kernels must equal vec_dot's AVX2 path, so both switches apply */
    if (!on || !rt_cpu_has_avx2() || !q_simd_avx2()) return RT_GEMM_NONE;
    /* one detector (core/cpu.h): VNNI only at the avx512 level HQ_CPU allows */
    bool vnni = hq_cpu_has(HQ_CPU_AVX512) && hq_cpu_has_feature(HQ_CPU_F_AVX512VNNI);
    rt_gemm_isa best = vnni ? RT_GEMM_AVX512VNNI : RT_GEMM_AVX2;
    int cap = __atomic_load_n(&g_isa_cap, __ATOMIC_RELAXED);
    return (int)best < cap ? best : (rt_gemm_isa)cap;
#else
    (void)on;
    return RT_GEMM_NONE;
#endif
}

void rt_gemm_q_cap_isa(rt_gemm_isa isa) { __atomic_store_n(&g_isa_cap, (int)isa, __ATOMIC_RELAXED); }

const char *rt_gemm_q_isa_name(rt_gemm_isa isa) {
    return isa == RT_GEMM_AVX512VNNI ? "avx512vnni" : isa == RT_GEMM_AVX2 ? "avx2" : "none";
}

static bool type_has_tiles(uint32_t t) {
    switch (t) {
    case GGML_T_Q8_0: case GGML_T_Q4_0: case GGML_T_Q4_1: case GGML_T_Q5_0: case GGML_T_Q5_1:
    case GGML_T_IQ4_NL: case GGML_T_Q4_K: case GGML_T_Q5_K: case GGML_T_Q6_K: return true;
    default: return false;
    }
}

bool rt_gemm_q_supported(uint32_t type) { return rt_gemm_q_isa() != RT_GEMM_NONE && type_has_tiles(type); }

#if RT_X86
bool rt_gemm_q_rows_avx2(const rt_weight *w, const void *act, uint64_t act_bytes, float *y, int64_t n_tok, int64_t o0,
                         int64_t o1);
bool rt_gemm_q_rows_vnni(const rt_weight *w, const void *act, uint64_t act_bytes, float *y, int64_t n_tok, int64_t o0,
                         int64_t o1);
#define GQ_TARGET RT_AVX2
#define GQ_DOT4(u, s) _mm256_madd_epi16(_mm256_maddubs_epi16((u), (s)), _mm256_set1_epi16(1))
#define GQ_ROWS rt_gemm_q_rows_avx2
#include "gemm_q_tiles.h" // defines: rt_gemm_q_rows_avx2
#else
static const uint8_t *wrow(const rt_weight *w, int64_t r) { return (const uint8_t *)w->data + (uint64_t)r * w->row_bytes; }
#endif

void rt_gemm_q_rows_ref(const rt_weight *w, const void *act, uint64_t act_bytes, float *y, int64_t n_tok,
                        int64_t o0, int64_t o1) {
    const q_type_traits *tr = q_traits(w->type);
    for (int64_t o = o0; o < o1; o++)
        for (int64_t t = 0; t < n_tok; t++)
            tr->vec_dot_ref(w->n_in, &y[t * w->n_out + o], wrow(w, o), (const uint8_t *)act + (uint64_t)t * act_bytes);
}

void rt_gemm_q_rows(const rt_weight *w, const void *act, uint64_t act_bytes, float *y, int64_t n_tok, int64_t o0,
                    int64_t o1) {
#if RT_X86
    rt_gemm_isa isa = rt_gemm_q_isa();
    if (isa != RT_GEMM_NONE && type_has_tiles(w->type)) {
        if ((isa == RT_GEMM_AVX512VNNI ? rt_gemm_q_rows_vnni : rt_gemm_q_rows_avx2)(w, act, act_bytes, y, n_tok, o0,
                                                                                      o1))
            return; /* else no memory for the scales (n_in > 16384): the per-element dots below */
    }
#endif
    /* no tiles here: the per-element dot (callers normally check first) */
    const q_type_traits *tr = q_traits(w->type);
    for (int64_t o = o0; o < o1; o++)
        for (int64_t t = 0; t < n_tok; t++)
            tr->vec_dot(w->n_in, &y[t * w->n_out + o], wrow(w, o), (const uint8_t *)act + (uint64_t)t * act_bytes);
}

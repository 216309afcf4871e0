/* runtime/gemm_q_vnni.c — the gemm_q.c tiles with AVX-512 VNNI on 256-bit
 * vectors (avx512vl): vpdpbusd does maddubs + madd in one instruction with
 * the same int32 lanes, so outputs stay bit-identical to vec_dot. Called
 * only when rt_gemm_q_isa() found avx512vnni + avx512vl. */
#include "gemm_q.h"
#include "rt_cpu.h"           // defines: RT_X86
#include "../quant/formats.h" // defines: q_block_*, Q_QK_K, q_iq4nl_values
#include "../quant/quant.h"   // defines: q_traits

#if RT_X86
bool rt_gemm_q_rows_vnni(const rt_weight *w, const void *act, uint64_t act_bytes, float *y, int64_t n_tok, int64_t o0,
                         int64_t o1);
#define GQ_TARGET __attribute__((target("avx2,fma,f16c,avx512f,avx512vl,avx512vnni")))
#define GQ_DOT4(u, s) _mm256_dpbusd_epi32(_mm256_setzero_si256(), (u), (s))
#define GQ_ROWS rt_gemm_q_rows_vnni
#include "gemm_q_tiles.h" // defines: rt_gemm_q_rows_vnni
#endif

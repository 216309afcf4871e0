/* runtime/topk_torch.c — rt_topk_torch: torch.topk's set on the CPU, ties
 * included; the algorithm is core/topk_torch.h (shared with cuda/attn.cu). */
#include "ops.h" // defines: rt_vj, rt_topk_torch

void rt_topk_torch(rt_vj *a, int64_t n, int64_t k) { hq_topk_torch(a, n, k); }

/* cuda/backend.h — the CUDA backend of the runtime: one dispatch point.
 *
 * cu_backend_select(m, name) chooses where rt_forward runs for model m:
 *   "cpu"      — the CPU runtime (default);
 *   "cuda"     — the real GPU when this binary was built with nvcc and a
 *                device is present; otherwise the model stays on the CPU and
 *                `note` says why ("no CUDA device: running on CPU (...)") —
 *                the command prints it once;
 *   "cuda-emu" — the same CUDA kernels on the CPU SIMT emulator (slow;
 *                checks the whole CUDA path without a GPU).
 * Before switching, every op the model needs is checked against the
 * kernels' limits (cu_*_supported); if one is missing the model stays on
 * the CPU and `note` names it — the CUDA path never computes an op it does
 * not support. Then all weights (and the fp32 norm/bias vectors) are
 * uploaded once. Where each op runs on the CUDA path: everything on the
 * device (embedding, RMSNorm, RoPE, every matmul, SSD, DMAttn, CDMoE
 * routing and experts, residuals, lm_head); the host only receives logits
 * and the new cache rows.
 *
 * State: the device keeps a mirror of one rt_state per model. After a
 * device forward the new KV/β rows and SSD states stay on the device
 * (s->dev_newer); they come back to the host only when something needs them
 * there: a CPU forward on that state (cu_state_pull), the mirror moving to
 * another state, or the backend being released. A reset or freed state is
 * forgotten (cu_state_forget). Copying the caches back after every token
 * cost more than the decode step itself on a GPU.
 * Decode (one token, logits wanted, no hooks) runs as a CUDA graph captured
 * on the first step and replayed (HQ_CUDA_GRAPH=0 turns that off).
 * Hooks (calibrate/verify) work: their inputs are copied to the host. */
#ifndef HQ_CU_BACKEND_H
#define HQ_CU_BACKEND_H
#include "../runtime/runtime.h"

#include <stddef.h>

hq_status cu_backend_select(rt_model *m, const char *name, char *note, size_t note_len, char *err);
/* For hq_cmd_* only (prints): selects `name` for m and prints the note, if
 * any, once to stderr as "hyquant <cmd>: <note>". NULL name = "cpu". */
hq_status cu_cmd_backend(const char *cmd, rt_model *m, const char *name, char *err);
/* "cpu", "gpu" or "emu" */
const char *cu_backend_name(const rt_model *m);
/* Releases the device copy of m (rt_model_free calls it). */
void cu_backend_release(rt_model *m);
/* The forward pass on the device (called by rt_forward for CUDA models;
 * arguments already validated): logits rows r0..n−1, s->pos advanced. */
hq_status cu_forward(rt_model *m, rt_state *s, const int32_t *tokens, int64_t n, float *logits, int64_t r0,
                     char *err);
/* Copies s's device-only rows back to its host arrays (runtime/forward.c,
 * before a CPU forward on a state that last ran on the device). */
hq_status cu_state_pull(rt_state *s, char *err);
/* s was reset or is being freed: its device mirror no longer stands for it. */
void cu_state_forget(rt_state *s);
#endif

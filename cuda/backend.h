/* cuda/backend.h — selecting the CUDA backend for a model.
 *
 * cu_backend_select(m, name) chooses where rt_forward runs for model m:
 *   "cpu"      — the CPU runtime (default);
 *   "cuda"     — the real GPU when this binary was built with nvcc and a
 *                device is present; otherwise the model stays on the CPU and
 *                `note` says why ("no CUDA device: running on CPU (...)") —
 *                the command prints it once;
 *   "cuda-emu" — the same CUDA kernels on the CPU SIMT emulator (slow;
 *                checks the whole CUDA path without a GPU).
 * It registers an op table (cuda/backend.c) with rt_model_set_backend
 * (runtime/backend_ops.h): the runtime checks every op the model needs
 * against the kernels' limits (cu_*_supported) — if one is missing the
 * model stays on the CPU and `note` names it; the CUDA path never computes
 * an op it does not support — then uploads all weights (and the fp32
 * norm/bias vectors) once. The walk of the model is runtime/forward.c's;
 * every op runs on the device (embedding, RMSNorm, RoPE, every matmul, SSD,
 * DMAttn, CDMoE routing and experts, residuals, lm_head); the host only
 * receives logits and the new cache rows.
 *
 * State: the backend context keeps a device mirror of one rt_state at a
 * time. After a device forward the new KV/β rows and SSD states stay on the
 * device (the state's mirror is `newer`); they come back to the host only
 * when something needs them there: a CPU forward on that state (state_pull),
 * the mirror moving to another state, or the backend being released. A
 * reset or freed state is forgotten (state_forget). Copying the caches back
 * after every token cost more than the decode step itself on a GPU.
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
/* "cpu", "gpu" or "emu" (rt_model_backend_name) */
const char *cu_backend_name(const rt_model *m);
#endif

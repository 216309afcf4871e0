/* runtime/cpu.c — run-time CPU feature checks, thread count, the
 * reference-kernels switch, and weight-row helpers shared by the ops. */
#include "rt_cpu.h"      // defines: RT_OMP, RT_AVX2
#include "runtime.h"     // defines: rt_set_threads
#include "../quant/quant.h"

#include "model_internal.h" // defines: rt_model (threads, ref), rt_settings_saved

#include <stdlib.h>
#include <string.h>

/* The reference switch: a process default, and inside a forward call the
 * model's own setting (thread-local: two models may run on two threads). */
static bool g_ref = false;
static _Thread_local int t_ref = -1;

void rt_ops_set_ref(bool on) { g_ref = on; }
bool rt_ops_ref(void) { return t_ref >= 0 ? t_ref != 0 : g_ref; }

/* The thread count is the calling thread's OpenMP setting (omp_set_num_threads
 * is per thread): a model with its own count sets it for the call and puts
 * the previous one back. */
void rt_settings_enter(const rt_model *m, rt_settings_saved *sv) {
    sv->ref = t_ref;
    sv->threads = 0;
    if (m->ref >= 0) t_ref = m->ref;
#ifdef _OPENMP
    if (m->threads > 0) {
        sv->threads = omp_get_max_threads();
        omp_set_num_threads(m->threads);
    }
#endif
}

void rt_settings_leave(const rt_settings_saved *sv) {
    t_ref = sv->ref;
#ifdef _OPENMP
    if (sv->threads > 0) omp_set_num_threads(sv->threads);
#endif
}

void rt_set_threads(int n) {
#ifdef _OPENMP
    omp_set_num_threads(n > 0 ? n : omp_get_num_procs());
#else
    (void)n;
#endif
}

int rt_n_threads(void) {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

hq_status rt_weight_check(const rt_weight *w, char *err) {
    if (w->n_in <= 0 || w->n_out <= 0)
        return hq_fail(err, HQ_ERR_FORMAT, "tensor '%s': empty matrix", w->name);
    if (w->type == GGML_T_F32 || w->type == GGML_T_F16 || w->type == GGML_T_BF16) return HQ_OK;
    const q_type_traits *tr = q_traits(w->type);
    if (!tr || !tr->vec_dot || !tr->to_float)
        return hq_fail(err, HQ_ERR_UNSUPPORTED, "tensor '%s': type %s not supported by this build", w->name,
                       ggml_type_name(w->type));
    if (tr->vec_dot_type == GGML_T_F32) {
        if (tr->blck <= 0 || w->n_in % tr->blck != 0)
            return hq_fail(err, HQ_ERR_FORMAT, "tensor '%s': row length %lld is not a multiple of the %s block (%lld)",
                           w->name, (long long)w->n_in, tr->name, (long long)tr->blck);
        return HQ_OK;
    }
    const q_type_traits *vt = q_traits(tr->vec_dot_type);
    if (!vt || !vt->from_float)
        return hq_fail(err, HQ_ERR_UNSUPPORTED, "tensor '%s': activation type %s of %s not supported", w->name,
                       ggml_type_name(tr->vec_dot_type), ggml_type_name(w->type));
    if (tr->blck <= 0 || w->n_in % tr->blck != 0 || w->n_in % vt->blck != 0)
        return hq_fail(err, HQ_ERR_FORMAT, "tensor '%s': row length %lld is not a multiple of the %s block (%lld)",
                       w->name, (long long)w->n_in, tr->name, (long long)tr->blck);
    return HQ_OK;
}

void rt_weight_row_f32(const rt_weight *w, int64_t r, float *dst) {
    const uint8_t *row = (const uint8_t *)w->data + (uint64_t)r * w->row_bytes;
    if (w->type == GGML_T_F32) memcpy(dst, row, (size_t)w->n_in * 4); /* no call for the common case */
    else q_row_to_f32(w->type, row, dst, w->n_in); /* quant.h: the one row -> f32 */
}

/* quant/calibrate.h — the imatrix collector: fed by the runtime's hooks
 * (rt_hooks.on_matmul_input / on_experts, whose signatures the two q_cal_on_*
 * functions match), it builds a q_imatrix (imatrix.h) and a coverage report.
 * The chunking of the calibration text (llama-imatrix's protocol) is the
 * caller's: cli/cmd_calibrate.c. Not thread-safe: the hooks run on the
 * thread that calls the forward pass. */
#ifndef HQ_QUANT_CALIBRATE_H
#define HQ_QUANT_CALIBRATE_H
#include "../core/hq.h"
#include "imatrix.h"

#include <stdio.h>

typedef struct q_cal q_cal;

/* NULL when out of memory. full_hessian: also accumulate Σxxᵀ per plain
 * matrix (for --method gptq). */
q_cal *q_cal_new(bool full_hessian);
/* Reads the model's GGUF directory: its fingerprint, and an [E, d] entry for
 * every expert table up front (the expert hook only sees ids). */
hq_status q_cal_prepare(q_cal *c, const char *model_path, char *err);
void q_cal_on_matmul(void *ud, const char *name, const float *x, int64_t n_tok, int64_t n_in);
void q_cal_on_experts(void *ud, int32_t layer, const char *name, const int32_t *ids, int64_t k_total,
                      const float *x, int64_t n_tok, int64_t n_in);
/* After a forward pass: an allocation that failed inside a hook
 * (HQ_ERR_NOMEM) or a matrix that changed shape between calls. */
hq_status q_cal_check(const q_cal *c, char *err);
/* Coverage of the expert tables (never / rarely routed) and the inputs with
 * the largest max x² / mean x². */
void q_cal_report(const q_cal *c, FILE *f, uint64_t tokens, uint64_t chunks);
/* MPI (core/par.h): adds every rank's statistics in rank order; every rank
 * gets the sums. A no-op in a world of one. Collective. */
hq_status q_cal_reduce(q_cal *c, char *err);
/* Stores the double accumulators into the imatrix (before report and save). */
void q_cal_finish(q_cal *c);
/* The matrix being built; still owned by c. */
q_imatrix *q_cal_imatrix(q_cal *c);
void q_cal_free(q_cal *c);
#endif

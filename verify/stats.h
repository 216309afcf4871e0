/* verify/stats.h — per-token drift statistics following llama-perplexity's
 * --kl-divergence (spec file-formats §6 1.7; tools/perplexity):
 *  - per scored token: candidate NLL, base NLL, KL(base‖quant) over the
 *    vocabulary (terms with log p_base ≤ −16 skipped, as llama does),
 *    same top token, Δp = p_quant(correct) − p_base(correct);
 *  - means with the standard error of the mean sqrt((E[x²]−E[x]²)/(N−1))
 *    (0 when N ≤ 10, as llama), the ln-PPL ratio's error from both variances
 *    and their covariance, RMS Δp's error by the delta method, the top-1
 *    proportion's error sqrt(p(1−p)/(N−1));
 *  - percentiles by linear interpolation at fraction·(N−1) of the sorted
 *    values (median = mean of the two middle values for even N). */
#ifndef HQ_VF_STATS_H
#define HQ_VF_STATS_H
#include "../core/hq.h"

typedef struct {
    double sum_nll, sum_nll2, sum_nll_base, sum_nll_base2, sum_nll_nll_base;
    double sum_kld, sum_kld2, sum_dp, sum_dp2, sum_dp4, max_abs_dp;
    uint64_t n_same_top, count;
} vf_acc;

/* log-softmax of n logits into out (computed in double, stored as float);
 * returns the index of the first maximum of out. Base and candidate rows both
 * go through this, so identical logits give bit-identical log-probs. */
int64_t vf_log_softmax(const float *logits, int64_t n, float *out);
int64_t vf_argmax(const float *x, int64_t n); /* first maximum */

/* One scored token. lp_q / lp_b: log-probs (n floats) of candidate and base;
 * nll_q / nll_b: −log p of the correct token as the perplexity command
 * computes it (double); top_q / top_b: the argmax indices. Accumulates into a
 * and returns this token's KLD and Δp through kld / dp (may be NULL). */
void vf_token(const float *lp_q, const float *lp_b, int64_t n, double nll_q, double nll_b, int64_t top_q,
              int64_t top_b, vf_acc *a, double *kld, double *dp);
void vf_acc_add(vf_acc *dst, const vf_acc *src);

typedef struct {
    double val, err;
} vf_pm;

typedef struct {
    uint64_t count;
    vf_pm ppl_q, ppl_b, ln_ratio, ppl_ratio, ppl_diff, kld, dp, dp_rms, top1;
    double cor; /* Cor(ln PPL_q, ln PPL_b) */
    double kld_min, kld_median, kld_p90, kld_p95, kld_p99, kld_p999, kld_max;
    double dp_min, dp_p01, dp_p05, dp_median, dp_p95, dp_p99, dp_max, dp_max_abs;
} vf_summary;

/* mean and standard error of a sum / sum of squares over count values */
vf_pm vf_mean_err(double sum, double sum2, uint64_t count);
/* covariance of the two means (llama's: (E[ab] − E[a]E[b])/(N−1), 0 below 10) */
double vf_mean_cov(double suma, double sumb, double sumab, uint64_t count);
/* percentile of sorted values (n ≥ 1), fraction in [0, 1] */
double vf_percentile(const double *sorted, uint64_t n, double fraction);
double vf_median(const double *sorted, uint64_t n);
/* Everything above from the accumulators; kld / dp (count values each, may
 * be NULL when count is 0) are sorted in place. */
void vf_summarize(const vf_acc *a, double *kld, double *dp, vf_summary *s);
#endif

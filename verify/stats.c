/* verify/stats.c — drift statistics (see stats.h for the definitions). */
#include "stats.h" // defines: vf_token, vf_summarize, vf_percentile, vf_mean_err
#include "../core/vec.h" // defines: hq_lse

#include <math.h>
#include <stdlib.h>

int64_t vf_argmax(const float *x, int64_t n) {
    int64_t im = 0;
    for (int64_t i = 1; i < n; i++)
        if (x[i] > x[im]) im = i;
    return im;
}

/* log p_i = z_i − max − log Σ exp(z_j − max) */
int64_t vf_log_softmax(const float *lg, int64_t n, float *out) {
    float mx;
    double lz = hq_lse(lg, n, &mx); /* core/vec.h */
    for (int64_t i = 0; i < n; i++) out[i] = (float)((double)lg[i] - mx - lz);
    return vf_argmax(out, n);
}

void vf_token(const float *lp_q, const float *lp_b, int64_t n, double nll_q, double nll_b, int64_t top_q,
              int64_t top_b, vf_acc *a, double *kld_out, double *dp_out) {
    a->sum_nll += nll_q;
    a->sum_nll2 += nll_q * nll_q;
    a->sum_nll_base += nll_b;
    a->sum_nll_base2 += nll_b * nll_b;
    a->sum_nll_nll_base += nll_q * nll_b;
    /* KL(base‖q) = Σ_i p_b,i (log p_b,i − log p_q,i); llama skips log p_b ≤ −16
     * (below the 16-bit storage floor, p < 1.1e-7) */
    double kld = 0;
    for (int64_t i = 0; i < n; i++) {
        double lb = lp_b[i];
        if (lb > -16.0) kld += exp(lb) * (lb - (double)lp_q[i]);
    }
    a->sum_kld += kld;
    a->sum_kld2 += kld * kld;
    if (top_q == top_b) a->n_same_top++;
    a->count++;
    double dp = exp(-nll_q) - exp(-nll_b);
    a->sum_dp += dp;
    a->sum_dp2 += dp * dp;
    a->sum_dp4 += dp * dp * dp * dp;
    if (fabs(dp) > a->max_abs_dp) a->max_abs_dp = fabs(dp);
    if (kld_out) *kld_out = kld;
    if (dp_out) *dp_out = dp;
}

void vf_acc_add(vf_acc *d, const vf_acc *s) {
    d->sum_nll += s->sum_nll;
    d->sum_nll2 += s->sum_nll2;
    d->sum_nll_base += s->sum_nll_base;
    d->sum_nll_base2 += s->sum_nll_base2;
    d->sum_nll_nll_base += s->sum_nll_nll_base;
    d->sum_kld += s->sum_kld;
    d->sum_kld2 += s->sum_kld2;
    d->sum_dp += s->sum_dp;
    d->sum_dp2 += s->sum_dp2;
    d->sum_dp4 += s->sum_dp4;
    if (s->max_abs_dp > d->max_abs_dp) d->max_abs_dp = s->max_abs_dp;
    d->n_same_top += s->n_same_top;
    d->count += s->count;
}

vf_pm vf_mean_err(double sum, double sum2, uint64_t count) {
    vf_pm r = {0, 0};
    if (count < 1) return r;
    r.val = sum / (double)count;
    double v = sum2 / (double)count - r.val * r.val;
    r.err = v > 0 && count > 10 ? sqrt(v / (double)(count - 1)) : 0.0;
    return r;
}

double vf_mean_cov(double suma, double sumb, double sumab, uint64_t count) {
    if (count < 10) return 0.0;
    double c = (double)count;
    return (sumab / c - (suma / c) * (sumb / c)) / (c - 1);
}

double vf_percentile(const double *v, uint64_t n, double f) {
    if (f <= 0) return v[0];
    if (f >= 1) return v[n - 1];
    double p = f * (double)(n - 1);
    uint64_t ip = (uint64_t)p;
    p -= (double)ip;
    uint64_t i1 = ip + 1 < n ? ip + 1 : n - 1;
    return (1 - p) * v[ip] + p * v[i1];
}

double vf_median(const double *v, uint64_t n) {
    return n % 2 == 0 ? 0.5 * (v[n / 2] + v[n / 2 - 1]) : v[n / 2];
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

void vf_summarize(const vf_acc *a, double *kld, double *dp, vf_summary *s) {
    *s = (vf_summary){0};
    uint64_t n = a->count;
    s->count = n;
    if (n == 0) return;
    vf_pm lq = vf_mean_err(a->sum_nll, a->sum_nll2, n);
    vf_pm lb = vf_mean_err(a->sum_nll_base, a->sum_nll_base2, n);
    double cov = vf_mean_cov(a->sum_nll, a->sum_nll_base, a->sum_nll_nll_base, n);
    s->ppl_q = (vf_pm){exp(lq.val), exp(lq.val) * lq.err};
    s->ppl_b = (vf_pm){exp(lb.val), exp(lb.val) * lb.err};
    s->cor = lq.err > 0 && lb.err > 0 ? cov / (lq.err * lb.err) : (lq.err == 0 && lb.err == 0 ? 1.0 : 0.0);
    /* var(a − b) = var a + var b − 2 cov(a, b): the two runs see the same tokens */
    double v = lq.err * lq.err + lb.err * lb.err - 2 * cov;
    s->ln_ratio = (vf_pm){lq.val - lb.val, v > 0 ? sqrt(v) : 0.0};
    s->ppl_ratio = (vf_pm){exp(s->ln_ratio.val), exp(s->ln_ratio.val) * s->ln_ratio.err};
    double pcov = s->ppl_q.val * s->ppl_b.val * cov;
    double pv = s->ppl_q.err * s->ppl_q.err + s->ppl_b.err * s->ppl_b.err - 2 * pcov;
    s->ppl_diff = (vf_pm){s->ppl_q.val - s->ppl_b.val, pv > 0 ? sqrt(pv) : 0.0};
    s->kld = vf_mean_err(a->sum_kld, a->sum_kld2, n);
    s->dp = vf_mean_err(a->sum_dp, a->sum_dp2, n);
    vf_pm mse = vf_mean_err(a->sum_dp2, a->sum_dp4, n);
    /* d sqrt(x) = dx / (2 sqrt x) */
    s->dp_rms.val = sqrt(mse.val);
    s->dp_rms.err = s->dp_rms.val > 0 ? 0.5 / s->dp_rms.val * mse.err : 0.0;
    double p = (double)a->n_same_top / (double)n;
    s->top1 = (vf_pm){p, n > 1 ? sqrt(p * (1 - p) / (double)(n - 1)) : 0.0};
    s->dp_max_abs = a->max_abs_dp;
    if (kld) {
        qsort(kld, n, sizeof *kld, cmp_d);
        s->kld_min = kld[0];
        s->kld_median = vf_median(kld, n);
        s->kld_p90 = vf_percentile(kld, n, 0.90);
        s->kld_p95 = vf_percentile(kld, n, 0.95);
        s->kld_p99 = vf_percentile(kld, n, 0.99);
        s->kld_p999 = vf_percentile(kld, n, 0.999);
        s->kld_max = kld[n - 1];
    }
    if (dp) {
        qsort(dp, n, sizeof *dp, cmp_d);
        s->dp_min = dp[0];
        s->dp_p01 = vf_percentile(dp, n, 0.01);
        s->dp_p05 = vf_percentile(dp, n, 0.05);
        s->dp_median = vf_median(dp, n);
        s->dp_p95 = vf_percentile(dp, n, 0.95);
        s->dp_p99 = vf_percentile(dp, n, 0.99);
        s->dp_max = dp[n - 1];
    }
}

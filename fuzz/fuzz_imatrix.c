/* fuzz/fuzz_imatrix.c — the imatrix reader (q_imatrix_load: GGUF + imatrix
 * layout checks) on arbitrary bytes. q_imatrix_load takes a path, so the
 * input goes into an in-memory file (memfd) opened as /proc/self/fd/N.
 * Accepted files: importance of a few rows must be finite and > 0, and a
 * save + reload must give the same entries. */
#include "fuzz_common.h"
#include "../quant/imatrix.h"

#include <math.h>
#include <sys/mman.h>
#include <unistd.h>

static char im_dir[256];

static void im_cleanup(void) { fz_rm_flat_dir(im_dir); }

static bool im_same(const q_imatrix *a, const q_imatrix *b) {
    if (a->n != b->n || a->model_fp != b->model_fp) return false;
    for (int64_t i = 0; i < a->n; i++) {
        const q_imatrix_entry *x = &a->e[i], *y = q_imatrix_find(b, a->e[i].name);
        if (!y || x->ncols != y->ncols || x->n_mat != y->n_mat || (!x->xtx) != (!y->xtx)) return false;
        if (memcmp(x->in_sum2, y->in_sum2, (size_t)(x->ncols * x->n_mat) * sizeof(float)) ||
            memcmp(x->counts, y->counts, (size_t)x->n_mat * sizeof(float)))
            return false;
        if (x->xtx && memcmp(x->xtx, y->xtx, (size_t)(x->ncols * x->ncols) * sizeof(float))) return false;
    }
    return true;
}

int fuzz_imatrix(const uint8_t *d, size_t n) {
    char path[64];
    int fd = fz_memfd("fuzz_imatrix", d, n, path, sizeof path);
    if (fd < 0) return 0;
    char err[HQ_ERR_LEN] = "";
    q_imatrix *im = NULL;
    hq_status st = q_imatrix_load(path, &im, err);
    close(fd);
    if (st) {
        fz_check_err(st, err);
        FZ_ASSERT(im == NULL, "imatrix returned on failure");
        return 0;
    }
    for (int64_t i = 0; i < im->n; i++) {
        const q_imatrix_entry *e = &im->e[i];
        FZ_ASSERT(e->ncols > 0 && e->n_mat > 0, "entry '%s' with empty shape", e->name);
        if (e->ncols > (1 << 16)) continue;
        float *imp = hq_malloc((size_t)e->ncols * sizeof(float));
        if (!imp) continue;
        for (int64_t r = 0; r < e->n_mat && r < 4; r++) {
            (void)q_imatrix_row_importance(e, r, imp);
            for (int64_t j = 0; j < e->ncols; j++)
                FZ_ASSERT(isfinite(imp[j]) && imp[j] > 0, "entry '%s' row %lld col %lld: importance %g", e->name,
                          (long long)r, (long long)j, (double)imp[j]);
        }
        hq_free(imp);
    }
    /* round trip through the writer */
    if (!im_dir[0]) {
        fz_tmp_template(im_dir, sizeof im_dir, "imatrix");
        if (!mkdtemp(im_dir)) im_dir[0] = 0;
        else atexit(im_cleanup);
    }
    if (im_dir[0]) {
        char out[300];
        snprintf(out, sizeof out, "%s/rt.gguf", im_dir);
        err[0] = 0;
        st = q_imatrix_save(im, out, err);
        if (st == HQ_OK) {
            q_imatrix *back = NULL;
            st = q_imatrix_load(out, &back, err);
            if (st != HQ_ERR_NOMEM) {
                FZ_ASSERT(st == HQ_OK, "reloading a saved imatrix failed: %s", err);
                FZ_ASSERT(im_same(im, back), "imatrix changed through save + load");
            }
            q_imatrix_free(back);
            unlink(out);
        } else {
            fz_check_err(st, err);
        }
    }
    q_imatrix_free(im);
    return 0;
}

#ifndef FUZZ_NO_ENTRY
int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);
int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { return fuzz_imatrix(d, n); }
#endif

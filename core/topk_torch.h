/* core/topk_torch.h — which k entries torch.topk(x, k, largest=True,
 * sorted=False) picks on the CPU, ties included (docs/doge-keep-window.md).
 *
 * transformers' Doge keeps the keep_window_size keys with the largest β by
 * torch.topk over a mask row. When β values tie at the cut (every β is 1 while
 * A = 0, transformers' initialisation), the kept set is whatever PyTorch's CPU
 * kernel returns, and that is deterministic: ATen's topk_impl_loop
 * (aten/src/ATen/native/cpu/SortingKernel.cpp) fills a vector of
 * (value, index) pairs in index order and calls
 *     k·64 <= n ? std::partial_sort(q, q + k, q + n, gt)
 *               : std::nth_element(q, q + k − 1, q + n, gt)
 * with gt(x, y) = (isnan(x) && !isnan(y)) || x > y; the first k pairs are the
 * answer. Both calls are reproduced here step for step as libstdc++
 * (bits/stl_algo.h, bits/stl_heap.h) implements them: introselect with
 * depth limit 2·⌊log2 n⌋, median-of-three pivot moved to the front,
 * unguarded Hoare partition, insertion sort below 4 elements, heap select.
 * Checked against torch.topk on tie-heavy rows (tests/fixtures/topk, made by
 * tools/make_keep_window_fixtures.py). Plain scalar code, header-only so that the CPU runtime
 * (runtime/topk_torch.c) and the CUDA kernel (cuda/attn.cu, one thread per
 * row) run the same lines: the includer may define HQ_TT_FN (default static
 * inline; __device__ for nvcc). It is its own _ref. */
#ifndef HQ_TOPK_TORCH_H
#define HQ_TOPK_TORCH_H
#ifndef __CUDACC__
#include <math.h>
#include <stdbool.h>
#endif
#include <stdint.h>

#ifndef HQ_TT_FN
#define HQ_TT_FN static inline
#endif

/* one entry of the row: value and key index (fill a[i] = {v_i, i}) */
typedef struct {
    float v;
    int64_t j;
} hq_vj;

HQ_TT_FN bool hq_tt_gt(const hq_vj *x, const hq_vj *y) { return (isnan(x->v) && !isnan(y->v)) || x->v > y->v; }
HQ_TT_FN void hq_tt_swap_vj(hq_vj *a, hq_vj *b) {
    hq_vj t = *a;
    *a = *b;
    *b = t;
}

/* std::__push_heap */
HQ_TT_FN void hq_tt_push_heap(hq_vj *a, int64_t hole, int64_t top, hq_vj val) {
    int64_t parent = (hole - 1) / 2;
    while (hole > top && hq_tt_gt(&a[parent], &val)) {
        a[hole] = a[parent];
        hole = parent;
        parent = (hole - 1) / 2;
    }
    a[hole] = val;
}

/* std::__adjust_heap */
HQ_TT_FN void hq_tt_adjust_heap(hq_vj *a, int64_t hole, int64_t len, hq_vj val) {
    int64_t top = hole, child = hole;
    while (child < (len - 1) / 2) {
        child = 2 * (child + 1);
        if (hq_tt_gt(&a[child], &a[child - 1])) child--;
        a[hole] = a[child];
        hole = child;
    }
    if ((len & 1) == 0 && child == (len - 2) / 2) {
        child = 2 * (child + 1);
        a[hole] = a[child - 1];
        hole = child - 1;
    }
    hq_tt_push_heap(a, hole, top, val);
}

/* std::__heap_select: make_heap(a, a + mid), then every later element that
 * beats the heap top replaces it (std::__pop_heap) */
HQ_TT_FN void hq_tt_heap_select(hq_vj *a, int64_t mid, int64_t n) {
    if (mid >= 2)
        for (int64_t parent = (mid - 2) / 2;; parent--) {
            hq_tt_adjust_heap(a, parent, mid, a[parent]);
            if (parent == 0) break;
        }
    for (int64_t i = mid; i < n; i++)
        if (hq_tt_gt(&a[i], &a[0])) {
            hq_vj val = a[i];
            a[i] = a[0];
            hq_tt_adjust_heap(a, 0, mid, val);
        }
}

/* std::__insertion_sort over [f, l) */
HQ_TT_FN void hq_tt_insertion_sort(hq_vj *a, int64_t f, int64_t l) {
    if (f == l) return;
    for (int64_t i = f + 1; i < l; i++) {
        hq_vj val = a[i];
        if (hq_tt_gt(&val, &a[f])) {
            for (int64_t j = i; j > f; j--) a[j] = a[j - 1];
            a[f] = val;
        } else { /* std::__unguarded_linear_insert */
            int64_t j = i;
            while (hq_tt_gt(&val, &a[j - 1])) {
                a[j] = a[j - 1];
                j--;
            }
            a[j] = val;
        }
    }
}

/* std::__move_median_to_first(result, x, y, z) */
HQ_TT_FN void hq_tt_median_to_first(hq_vj *a, int64_t r, int64_t x, int64_t y, int64_t z) {
    int64_t pick;
    if (hq_tt_gt(&a[x], &a[y])) pick = hq_tt_gt(&a[y], &a[z]) ? y : hq_tt_gt(&a[x], &a[z]) ? z : x;
    else pick = hq_tt_gt(&a[x], &a[z]) ? x : hq_tt_gt(&a[y], &a[z]) ? z : y;
    hq_tt_swap_vj(&a[r], &a[pick]);
}

/* std::__unguarded_partition(first, last, pivot) */
HQ_TT_FN int64_t hq_tt_partition(hq_vj *a, int64_t f, int64_t l, int64_t piv) {
    for (;;) {
        while (hq_tt_gt(&a[f], &a[piv])) f++;
        l--;
        while (hq_tt_gt(&a[piv], &a[l])) l--;
        if (!(f < l)) return f;
        hq_tt_swap_vj(&a[f], &a[l]);
        f++;
    }
}

HQ_TT_FN int64_t hq_tt_floor_log2(int64_t n) {
    int64_t r = 0;
    while (n >>= 1) r++;
    return r;
}

HQ_TT_FN void hq_topk_torch(hq_vj *a, int64_t n, int64_t k) {
    if (k <= 0 || k >= n) return; /* the whole row (torch requires k <= n) */
    if (k * 64 <= n) {
        hq_tt_heap_select(a, k, n); /* std::partial_sort; its final sort_heap only orders the k */
        return;
    }
    /* std::nth_element(a, a + k − 1, a + n) = std::__introselect */
    int64_t f = 0, l = n, nth = k - 1, depth = 2 * hq_tt_floor_log2(n);
    while (l - f > 3) {
        if (depth == 0) {
            hq_tt_heap_select(a + f, nth + 1 - f, l - f);
            hq_tt_swap_vj(&a[f], &a[nth]);
            return;
        }
        depth--;
        hq_tt_median_to_first(a, f, f + 1, f + (l - f) / 2, l - 1);
        int64_t cut = hq_tt_partition(a, f + 1, l, f);
        if (cut <= nth) f = cut;
        else l = cut;
    }
    hq_tt_insertion_sort(a, f, l);
}
#endif

/* runtime/topk_torch.c — which k entries torch.topk(x, k, largest=True,
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
 * tools/make_keep_window_fixtures.py). Plain scalar code: it is its own _ref. */
#include "ops.h" // defines: rt_vj, rt_topk_torch

#include <math.h>

static bool gt(const rt_vj *x, const rt_vj *y) { return (isnan(x->v) && !isnan(y->v)) || x->v > y->v; }
static void swap_vj(rt_vj *a, rt_vj *b) {
    rt_vj t = *a;
    *a = *b;
    *b = t;
}

/* std::__push_heap */
static void push_heap(rt_vj *a, int64_t hole, int64_t top, rt_vj val) {
    int64_t parent = (hole - 1) / 2;
    while (hole > top && gt(&a[parent], &val)) {
        a[hole] = a[parent];
        hole = parent;
        parent = (hole - 1) / 2;
    }
    a[hole] = val;
}

/* std::__adjust_heap */
static void adjust_heap(rt_vj *a, int64_t hole, int64_t len, rt_vj val) {
    int64_t top = hole, child = hole;
    while (child < (len - 1) / 2) {
        child = 2 * (child + 1);
        if (gt(&a[child], &a[child - 1])) child--;
        a[hole] = a[child];
        hole = child;
    }
    if ((len & 1) == 0 && child == (len - 2) / 2) {
        child = 2 * (child + 1);
        a[hole] = a[child - 1];
        hole = child - 1;
    }
    push_heap(a, hole, top, val);
}

/* std::__heap_select: make_heap(a, a + mid), then every later element that
 * beats the heap top replaces it (std::__pop_heap) */
static void heap_select(rt_vj *a, int64_t mid, int64_t n) {
    if (mid >= 2)
        for (int64_t parent = (mid - 2) / 2;; parent--) {
            adjust_heap(a, parent, mid, a[parent]);
            if (parent == 0) break;
        }
    for (int64_t i = mid; i < n; i++)
        if (gt(&a[i], &a[0])) {
            rt_vj val = a[i];
            a[i] = a[0];
            adjust_heap(a, 0, mid, val);
        }
}

/* std::__insertion_sort over [f, l) */
static void insertion_sort(rt_vj *a, int64_t f, int64_t l) {
    if (f == l) return;
    for (int64_t i = f + 1; i < l; i++) {
        rt_vj val = a[i];
        if (gt(&val, &a[f])) {
            for (int64_t j = i; j > f; j--) a[j] = a[j - 1];
            a[f] = val;
        } else { /* std::__unguarded_linear_insert */
            int64_t j = i;
            while (gt(&val, &a[j - 1])) {
                a[j] = a[j - 1];
                j--;
            }
            a[j] = val;
        }
    }
}

/* std::__move_median_to_first(result, x, y, z) */
static void median_to_first(rt_vj *a, int64_t r, int64_t x, int64_t y, int64_t z) {
    int64_t pick;
    if (gt(&a[x], &a[y])) pick = gt(&a[y], &a[z]) ? y : gt(&a[x], &a[z]) ? z : x;
    else pick = gt(&a[x], &a[z]) ? x : gt(&a[y], &a[z]) ? z : y;
    swap_vj(&a[r], &a[pick]);
}

/* std::__unguarded_partition(first, last, pivot) */
static int64_t partition(rt_vj *a, int64_t f, int64_t l, int64_t piv) {
    for (;;) {
        while (gt(&a[f], &a[piv])) f++;
        l--;
        while (gt(&a[piv], &a[l])) l--;
        if (!(f < l)) return f;
        swap_vj(&a[f], &a[l]);
        f++;
    }
}

static int64_t floor_log2(int64_t n) {
    int64_t r = 0;
    while (n >>= 1) r++;
    return r;
}

void rt_topk_torch(rt_vj *a, int64_t n, int64_t k) {
    if (k <= 0 || k >= n) return; /* the whole row (torch requires k <= n) */
    if (k * 64 <= n) {
        heap_select(a, k, n); /* std::partial_sort; its final sort_heap only orders the k */
        return;
    }
    /* std::nth_element(a, a + k − 1, a + n) = std::__introselect */
    int64_t f = 0, l = n, nth = k - 1, depth = 2 * floor_log2(n);
    while (l - f > 3) {
        if (depth == 0) {
            heap_select(a + f, nth + 1 - f, l - f);
            swap_vj(&a[f], &a[nth]);
            return;
        }
        depth--;
        median_to_first(a, f, f + 1, f + (l - f) / 2, l - 1);
        int64_t cut = partition(a, f + 1, l, f);
        if (cut <= nth) f = cut;
        else l = cut;
    }
    insertion_sort(a, f, l);
}

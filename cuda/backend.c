/* cuda/backend.c — the runtime's CUDA backend (see backend.h): an op table
 * for runtime/forward.c (runtime/backend_ops.h) over a cu_ops table — the
 * GPU's, or the emulator's for "cuda-emu" and the tests — plus the device
 * copy of the parameters, the device mirror of one sequence state, and the
 * decode step as a CUDA graph. The walk of the model is the runtime's; this
 * file only maps each op to its kernel. (SSD prefill uses the recurrence
 * kernel rather than the CPU's chunked form — same math, different
 * rounding.) The context belongs to the model (rt_model_set_backend). */
#include "backend.h"
#include "cu_ops.h"
#include "../runtime/backend_ops.h" // defines: rt_backend_ops, rt_exec, rt_state_buf

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const void *host;
    void *dev;
} cu_map;

typedef struct {
    const cu_ops *T;
    rt_backend_ops ops; /* this context's table (name, label per cu_ops) */
    char label[24];
    /* parameters: host pointer → device copy (sorted on first lookup) */
    cu_map *up;
    int64_t n_up, cap_up;
    bool sorted;
    /* device mirror of one rt_state: its buffers (rt_state_buf_at order) */
    rt_state *s;
    int64_t s_pos, s_cap, n_buf;
    cu_map *buf;        /* host array → device array */
    uint64_t state_gen; /* bumped whenever the mirror buffers are reallocated */
    /* what the op scratch holds quantized: x, n tokens, as act_type (cu_act_type) */
    const float *act_x;
    int64_t act_n;
    uint32_t act_type;
    /* decode graph: one token's forward captured once and replayed with the
     * token and position written into page-locked memory */
    int32_t *tok_host;
    int64_t *pos_host, *pos_dev;
    float *lg_host;
    void *graph;
    uint64_t graph_arena, graph_gen;
    const void *graph_tok, *graph_lg; /* where the captured step reads the token and writes the logits */
    bool graph_off; /* capture failed, or HQ_CUDA_GRAPH=0: eager decode */
} cu_ctx;

/* ---------------- parameters ---------------- */
static int map_cmp(const void *a, const void *b) {
    uintptr_t x = (uintptr_t)((const cu_map *)a)->host, y = (uintptr_t)((const cu_map *)b)->host;
    return x < y ? -1 : x > y;
}

static int cu_upload(void *be, const void *host, uint64_t bytes, bool dedupe) {
    cu_ctx *c = be;
    if (dedupe)
        for (int64_t i = 0; i < c->n_up; i++)
            if (c->up[i].host == host) return 0;
    if (c->n_up == c->cap_up) {
        int64_t nc = c->cap_up ? 2 * c->cap_up : 64;
        void *p = hq_realloc(c->up, (size_t)nc * sizeof c->up[0]);
        if (!p) return -1;
        c->up = p;
        c->cap_up = nc;
    }
    void *d = c->T->alloc(bytes);
    if (!d) return -1;
    c->up[c->n_up].host = host;
    c->up[c->n_up++].dev = d;
    c->sorted = false;
    return bytes && c->T->h2d(d, host, bytes) != 0 ? -1 : 0;
}

/* the device copy of a parameter or of a mirrored state array (NULL for NULL) */
static void *dev(cu_ctx *c, const void *host) {
    if (!host) return NULL;
    for (int64_t i = 0; i < c->n_buf; i++)
        if (c->buf[i].host == host) return c->buf[i].dev;
    if (!c->sorted) {
        qsort(c->up, (size_t)c->n_up, sizeof c->up[0], map_cmp);
        c->sorted = true;
    }
    cu_map key = {host, NULL}, *hit = bsearch(&key, c->up, (size_t)c->n_up, sizeof c->up[0], map_cmp);
    return hit ? hit->dev : NULL;
}

static cu_wt wt(cu_ctx *c, const rt_weight *w) {
    return (cu_wt){dev(c, w->data), w->type, w->n_in, w->n_out, w->row_bytes};
}

/* ---------------- state mirror ---------------- */
static void drop_graph(cu_ctx *c) {
    if (c->graph) c->T->graph_free(c->graph);
    c->graph = NULL;
}

static void free_state(cu_ctx *c) {
    drop_graph(c);
    for (int64_t i = 0; i < c->n_buf; i++) c->T->free(c->buf[i].dev);
    hq_free(c->buf);
    c->buf = NULL;
    c->n_buf = 0;
    if (c->s) {
        rt_state_mirror *mr = rt_state_mirror_of(c->s);
        mr->be = NULL, mr->newer = false;
    }
    c->s = NULL;
}

/* copies rows pos0..pos0+n−1 of the positional buffers and the recurrent states back */
static int state_sync_out(cu_ctx *c, rt_state *s, int64_t pos0, int64_t n) {
    for (int64_t i = 0; i < c->n_buf; i++) {
        rt_state_buf b = rt_state_buf_at(s, i);
        float *d = c->buf[i].dev;
        if (!b.by_pos) {
            if (c->T->d2h(b.host, d, (uint64_t)(b.nseg * b.seg_rows * b.row) * 4u)) return -1;
            continue;
        }
        for (int64_t g = 0; g < b.nseg; g++) {
            uint64_t off = (uint64_t)((g * b.seg_rows + pos0) * b.row), bytes = (uint64_t)(n * b.row) * 4u;
            if (c->T->d2h(b.host + off, d + off, bytes)) return -1;
        }
    }
    return 0;
}

/* the mirrored state's device rows back to the host (before the mirror is
 * reused for another state or released) */
static int pull_mirror(cu_ctx *c) {
    rt_state *s = c->s;
    if (!s) return 0;
    rt_state_mirror *mr = rt_state_mirror_of(s);
    if (!mr->newer) return 0;
    if (state_sync_out(c, s, 0, rt_state_pos(s)) == 0) {
        mr->newer = false;
        return 0;
    }
    mr->be = NULL; /* newer stays: the rows are lost and the sequence is refused until reset */
    c->s = NULL;
    return -1;
}

/* makes the device mirror hold s: 0, -1 (device memory / copy failed) or
 * -2 (s's newest rows were on a device and are lost) */
static int state_sync_in(cu_ctx *c, rt_state *s) {
    const cu_ops *T = c->T;
    rt_state_mirror *mr = rt_state_mirror_of(s);
    int64_t pos = rt_state_pos(s), cap = rt_state_cap(s);
    if (c->s == s && c->s_pos == pos && c->s_cap == cap) return 0;
    if (mr->newer && c->s != s) return -2;
    if (c->s != s) { /* the mirror moves to s: the previous state's device rows go home first */
        if (pull_mirror(c) != 0) return -1;
        if (c->s) rt_state_mirror_of(c->s)->be = NULL;
        c->s = NULL;
    }
    if (c->s_cap != cap) free_state(c);
    if (!c->buf) {
        c->state_gen++;
        int64_t nb = rt_state_n_bufs(s);
        c->buf = hq_calloc((size_t)(nb ? nb : 1), sizeof c->buf[0]);
        if (!c->buf) return -1;
        c->n_buf = nb;
        for (int64_t i = 0; i < nb; i++) {
            rt_state_buf b = rt_state_buf_at(s, i);
            c->buf[i].dev = T->alloc((uint64_t)(b.nseg * b.seg_rows * b.row) * 4u);
            if (!c->buf[i].dev) return -1;
        }
    }
    c->s_cap = cap;
    /* upload the host state (positions < pos) */
    for (int64_t i = 0; i < c->n_buf; i++) {
        rt_state_buf b = rt_state_buf_at(s, i);
        float *d = c->buf[i].dev;
        c->buf[i].host = b.host;
        if (!b.by_pos) {
            if (T->h2d(d, b.host, (uint64_t)(b.nseg * b.seg_rows * b.row) * 4u)) return -1;
            continue;
        }
        if (pos > 0)
            for (int64_t g = 0; g < b.nseg; g++) {
                uint64_t off = (uint64_t)(g * b.seg_rows * b.row), bytes = (uint64_t)(pos * b.row) * 4u;
                if (T->h2d(d + off, b.host + off, bytes)) return -1;
            }
    }
    c->s = s;
    mr->ops = &c->ops;
    mr->be = c;
    c->s_pos = pos;
    return 0;
}

static hq_status cu_state_pull(void *be, rt_state *s, char *err) {
    cu_ctx *c = be;
    if (c->s != s || pull_mirror(c) != 0)
        return hq_fail(err, HQ_ERR_INTERNAL, "cuda (%s): copying the sequence state back from the device failed",
                       c->T->name);
    return HQ_OK;
}

static void cu_state_forget(void *be, rt_state *s) {
    cu_ctx *c = be;
    if (c->s == s) c->s = NULL;
}

/* ---------------- lifetime ---------------- */
static void cu_release(void *be) {
    cu_ctx *c = be;
    if (!c) return;
    pull_mirror(c);
    free_state(c);
    for (int64_t i = 0; i < c->n_up; i++) c->T->free(c->up[i].dev);
    c->T->free(c->pos_dev);
    c->T->host_free(c->tok_host);
    c->T->host_free(c->pos_host);
    c->T->host_free(c->lg_host);
    hq_free(c->up);
    hq_free(c);
}
static void *cu_alloc(void *be, uint64_t bytes) { return ((cu_ctx *)be)->T->alloc(bytes); }
static void cu_free(void *be, void *p) {
    cu_ctx *c = be;
    drop_graph(c); /* the arena moves: a captured step would write the old one */
    c->T->free(p);
}
static int cu_d2h(void *be, void *dst, const void *src, uint64_t bytes) {
    return ((cu_ctx *)be)->T->d2h(dst, src, bytes);
}

/* ---------------- support and scratch ---------------- */
static cu_attn_params cu_ap(const rt_attn_params *ap) {
    /* rt_keep_rule and cu_attn_params.keep_rule share their values */
    return (cu_attn_params){ap->H, ap->KV, ap->P, ap->M, ap->cap, ap->window, ap->keep_window, ap->scale,
                            (int)ap->keep_rule};
}
static bool cu_matmul_ok(void *be, uint32_t type, int64_t n_in) {
    return ((cu_ctx *)be)->T->matmul_supported(type, n_in);
}
static bool cu_rope_ok(void *be, int64_t P) { return ((cu_ctx *)be)->T->rope_supported(P); }
static bool cu_attn_ok(void *be, const rt_attn_params *ap) {
    cu_ctx *c = be;
    cu_attn_params a = cu_ap(ap);
    return c->T->attn_supported(&a) != 0;
}
static bool cu_ssd_ok(void *be, const rt_ssd_dims *dm) {
    cu_ssd_dims d = {dm->H, dm->P, dm->G, dm->N};
    return ((cu_ctx *)be)->T->ssd_supported(&d);
}
static bool cu_route_ok(void *be, int64_t Kk, int64_t k) { return ((cu_ctx *)be)->T->route_supported(Kk, k); }
static uint64_t cu_matmul_scratch(void *be, const rt_weight *w, int64_t n) {
    cu_ctx *c = be;
    cu_wt d = wt(c, w);
    return c->T->matmul_scratch(&d, n);
}
static uint64_t cu_attn_scratch(void *be, const rt_attn_params *ap, int64_t n) {
    cu_attn_params a = cu_ap(ap);
    return ((cu_ctx *)be)->T->attn_scratch(&a, n);
}
static uint64_t cu_route_pk_scratch(void *be, int64_t n, int64_t Hr, int64_t Kk) {
    return ((cu_ctx *)be)->T->route_pk_scratch(n, Hr, Kk);
}
static uint64_t cu_experts_scratch(void *be, const rt_weight *down, int64_t n, int64_t k_total) {
    cu_ctx *c = be;
    cu_wt d = wt(c, down);
    return c->T->experts_scratch(&d, n, k_total);
}

/* ---------------- ops ---------------- */
#define CTX cu_ctx *c = x->be
#define GO(e, what) do { if ((e) != 0) { x->fail = what; return HQ_ERR_INTERNAL; } } while (0)

static hq_status cu_embed(rt_exec *x, const rt_weight *w, const int32_t *tok, int64_t n, float *out) {
    CTX;
    cu_wt d = wt(c, w);
    GO(c->T->embed(&d, tok, n, out), "embedding");
    return HQ_OK;
}
static hq_status cu_rmsnorm(rt_exec *x, const float *in, const float *w, float *y, int64_t rows, int64_t d, float eps) {
    CTX;
    GO(c->T->rmsnorm(in, dev(c, w), y, rows, d, eps), "rmsnorm");
    return HQ_OK;
}
/* same_x: the previous matmul read the same x and nothing since touched the
 * op scratch, so its quantized activations are reused when the type family
 * matches (q/k/v, gate/up, the SSD projections) */
static hq_status cu_matmul(rt_exec *x, const rt_weight *w, const float *in, float *y, int64_t n, const float *bias,
                           void *scratch, bool same_x) {
    CTX;
    cu_wt d = wt(c, w);
    uint32_t at = cu_act_type(w->type);
    bool quant = at != GGML_T_F32; /* float weights leave the scratch as it is */
    int ready = same_x && quant && c->act_x == in && c->act_n == n && c->act_type == at;
    GO(c->T->matmul(&d, in, y, n, dev(c, bias), scratch, ready), w->name);
    if (quant) c->act_x = in, c->act_n = n, c->act_type = at;
    return HQ_OK;
}
static hq_status cu_rope(rt_exec *x, float *v, int64_t n, int64_t heads, int64_t P, int64_t pos0, const int64_t *dpos,
                         float base) {
    CTX;
    GO(c->T->rope(v, n, heads, P, pos0, dpos, base), "rope");
    return HQ_OK;
}
static hq_status cu_swiglu(rt_exec *x, float *g, const float *u, int64_t n) {
    CTX;
    GO(c->T->swiglu(g, u, n), "swiglu");
    return HQ_OK;
}
static hq_status cu_softplus_bias(rt_exec *x, float *dt, const float *bias, int64_t n, int64_t H) {
    CTX;
    GO(c->T->softplus_bias(dt, dev(c, bias), n, H), "ssd dt");
    return HQ_OK;
}
static hq_status cu_residual(rt_exec *x, float *h, const float *r, const float *br, int64_t n, int64_t d) {
    CTX;
    GO(c->T->residual(h, dev(c, r), br, n, d), "residual");
    return HQ_OK;
}
static hq_status cu_copy(rt_exec *x, void *dst, const void *src, uint64_t bytes) {
    CTX;
    GO(c->T->d2d(dst, src, bytes), "router quirk");
    return HQ_OK;
}
static hq_status cu_kv_append(rt_exec *x, float *kc, float *vc, float *beta, const float *k, const float *v,
                              const float *dt, const float *A, int64_t n, int64_t KV, int64_t P, int64_t M, int64_t cap,
                              int64_t pos0, const int64_t *dpos) {
    CTX;
    GO(c->T->kv_append(dev(c, kc), dev(c, vc), dev(c, beta), k, v, dt, dev(c, A), n, KV, P, M, cap, pos0, dpos),
       "kv append");
    return HQ_OK;
}
static hq_status cu_attn(rt_exec *x, const rt_attn_params *ap, const float *q, const float *kc, const float *vc,
                         const float *beta, int64_t pos0, const int64_t *dpos, int64_t n, float *out, void *scratch) {
    CTX;
    cu_attn_params a = cu_ap(ap);
    GO(c->T->attn(&a, q, dev(c, kc), dev(c, vc), dev(c, beta), pos0, dpos, n, out, scratch), "attention");
    return HQ_OK;
}
static hq_status cu_ssd(rt_exec *x, const rt_ssd_dims *dm, int64_t n, int64_t chunk, const float *xs, const float *b,
                        const float *cc, const float *dt, const float *A, const float *D, float *state, float *y,
                        void *scratch) {
    CTX;
    (void)chunk, (void)scratch; /* the recurrence kernel for every n */
    cu_ssd_dims d = {dm->H, dm->P, dm->G, dm->N};
    GO(c->T->ssd_scan(&d, n, xs, b, cc, dt, dev(c, A), dev(c, D), dev(c, state), y), "ssd scan");
    return HQ_OK;
}
static hq_status cu_route_router(rt_exec *x, const float *lg, int64_t n, int64_t Kk, int64_t k, int32_t *ids, float *w) {
    CTX;
    GO(c->T->route_router(lg, n, Kk, k, ids, w), "routing");
    return HQ_OK;
}
static hq_status cu_route_pk(rt_exec *x, const float *q, const float *keys, int64_t n, int64_t Hr, int64_t R, int64_t Kk,
                             int64_t k, int32_t *ids, float *w, void *scratch) {
    CTX;
    GO(c->T->route_pk(q, dev(c, keys), n, Hr, R, Kk, k, ids, w, scratch), "product-key routing");
    return HQ_OK;
}
static hq_status cu_experts(rt_exec *x, const rt_weight *down, const rt_weight *up, const float *in, int64_t n,
                            const int32_t *ids, const float *w, int64_t k_total, float *out, void *scratch) {
    CTX;
    cu_wt dd = wt(c, down), du = wt(c, up);
    GO(c->T->experts(&dd, &du, in, n, ids, w, k_total, out, scratch), "experts");
    return HQ_OK;
}

/* ---------------- execution ---------------- */
/* Decode steps run as one CUDA graph: the first captures the step with the
 * token and position read from page-locked host memory by copies inside the
 * graph, later ones write those two numbers and replay it. Valid while the
 * arena, the call's buffers and the cache buffers stay where they were
 * (graph_arena, graph_tok/graph_lg, graph_gen).
 * Not for hooks (host copies), dynamic RoPE (the base changes with the
 * position) or HQ_CUDA_GRAPH=0 (x->graphable, graph_off). On the emulator
 * graph_begin fails and the same graph-form step runs eagerly, so the
 * device-position path is tested. Returns 1 when the step must run eagerly. */
static int decode_step(cu_ctx *c, rt_exec *x, hq_status *st) {
    const cu_ops *T = c->T;
    uint64_t V = (uint64_t)x->V;
    if (!c->tok_host) {
        c->tok_host = T->host_alloc(4);
        c->pos_host = T->host_alloc(8);
        c->lg_host = T->host_alloc(V * 4u);
        c->pos_dev = T->alloc(8);
        if (!c->tok_host || !c->pos_host || !c->lg_host || !c->pos_dev) {
            x->fail = "decode buffers";
            return -1;
        }
    }
    *c->tok_host = x->tokens[0];
    *c->pos_host = x->pos0;
    if (c->graph && (c->graph_arena != x->arena_gen || c->graph_gen != c->state_gen || c->graph_tok != x->dtok ||
                     c->graph_lg != x->dlogits))
        drop_graph(c);
    bool ran = false; /* the step already ran eagerly (emulator, or no stream to capture) */
    if (!c->graph) {
        bool capturing = T->graph_begin() == 0;
        int rc = T->h2d_async(x->dtok, c->tok_host, 4u);
        if (rc == 0) rc = T->h2d_async(c->pos_dev, c->pos_host, 8u);
        /* the kernels must take the position from dpos (a replay runs at a new
         * one): the by-value position is poisoned, so a kernel that ignored
         * dpos would fail the emulator tests, not only a GPU's */
        if (rc == 0 && (*st = x->body(x, x->dtok, -1, c->pos_dev, x->dlogits)) != HQ_OK) rc = -1;
        if (rc == 0) rc = T->d2h_async(c->lg_host, x->dlogits, V * 4u);
        if (!capturing) {
            if (rc != 0) return rc;
            ran = true;
        } else {
            void *g = NULL;
            if (T->graph_end(&g) != 0 || rc != 0) {
                /* this step again without a graph; decode stays eager from now on */
                c->graph_off = true;
                *st = HQ_OK;
                x->fail = NULL;
                return 1;
            }
            c->graph = g;
            c->graph_arena = x->arena_gen;
            c->graph_gen = c->state_gen;
            c->graph_tok = x->dtok;
            c->graph_lg = x->dlogits;
        }
    }
    if (!ran && T->graph_launch(c->graph) != 0) {
        x->fail = "graph launch";
        return -1;
    }
    char msg[256] = "";
    if (T->sync(msg, sizeof msg) != 0) {
        x->fail = "decode step";
        return -1;
    }
    memcpy(x->logits, c->lg_host, (size_t)V * 4u);
    return 0;
}

static hq_status cu_execute(rt_exec *x) {
    cu_ctx *c = x->be;
    const cu_ops *T = c->T;
    rt_state *s = x->s;
    int64_t n = x->n, pos0 = x->pos0;
    char *err = x->err;
    int sr = state_sync_in(c, s);
    if (sr == -2)
        return hq_fail(err, HQ_ERR_INTERNAL, "cuda (%s): this sequence's state was lost with a failed device step; "
                       "reset it", T->name);
    if (sr != 0)
        return hq_fail(err, HQ_ERR_NOMEM, "cuda (%s): out of device memory for the state of %lld tokens", T->name,
                       (long long)rt_state_cap(s));
    c->act_x = NULL; /* nothing quantized yet in this call's op scratch */
    hq_status st = HQ_OK;
    int rc = 1;
    const char *e = getenv("HQ_CUDA_GRAPH");
    if (x->graphable && !c->graph_off && !(e && !strcmp(e, "0"))) rc = decode_step(c, x, &st);
    if (rc == 1) { /* eager: every op launched from here */
        rc = T->h2d(x->dtok, x->tokens, (uint64_t)n * 4u);
        if (rc == 0 && (st = x->body(x, x->dtok, pos0, NULL, x->dlogits)) != HQ_OK) rc = -1;
        if (rc == 0 && x->dlogits &&
            (rc = T->d2h(x->logits, x->dlogits, (uint64_t)((n - x->r0) * x->V) * 4u)) != 0)
            x->fail = "logits copy";
    }
    char msg[256] = "";
    if (T->sync(msg, sizeof msg) != 0 || rc != 0) {
        c->s = NULL; /* device state unknown: the sequence must be reset (or was host-newest: re-uploaded) */
        rt_state_mirror_of(s)->be = NULL;
        if (st != HQ_OK && !x->fail) return st; /* a runtime error (arena, hooks) with its own message */
        if (msg[0])
            return hq_fail(err, HQ_ERR_INTERNAL, "cuda (%s): %s%s%s", T->name, msg, x->fail ? " in " : "",
                           x->fail ? x->fail : "");
        return hq_fail(err, HQ_ERR_INTERNAL, "cuda (%s): %s failed (kernel launch or scratch)", T->name,
                       x->fail ? x->fail : "forward");
    }
    rt_state_mirror_of(s)->newer = true; /* the new rows stay on the device until the host needs them */
    c->s_pos = pos0 + n;
    return HQ_OK;
}

/* ---------------- selection ---------------- */
static const rt_backend_ops cu_backend_ops = {
    .host_memory = false,
    .host_addressable = false,
    .release = cu_release,
    .alloc = cu_alloc,
    .free = cu_free,
    .upload = cu_upload,
    .d2h = cu_d2h,
    .execute = cu_execute,
    .state_pull = cu_state_pull,
    .state_forget = cu_state_forget,
    .matmul_ok = cu_matmul_ok,
    .rope_ok = cu_rope_ok,
    .attn_ok = cu_attn_ok,
    .ssd_ok = cu_ssd_ok,
    .route_ok = cu_route_ok,
    .matmul_scratch = cu_matmul_scratch,
    .attn_scratch = cu_attn_scratch,
    .route_pk_scratch = cu_route_pk_scratch,
    .experts_scratch = cu_experts_scratch,
    .embed = cu_embed,
    .rmsnorm = cu_rmsnorm,
    .matmul = cu_matmul,
    .rope = cu_rope,
    .swiglu = cu_swiglu,
    .softplus_bias = cu_softplus_bias,
    .residual = cu_residual,
    .copy = cu_copy,
    .kv_append = cu_kv_append,
    .attn = cu_attn,
    .ssd = cu_ssd,
    .route_router = cu_route_router,
    .route_pk = cu_route_pk,
    .experts = cu_experts,
};

const char *cu_backend_name(const rt_model *m) { return rt_model_backend_name(m); }

hq_status cu_backend_select(rt_model *m, const char *name, char *note, size_t note_len, char *err) {
    if (note && note_len) note[0] = 0;
    hq_status st = rt_model_set_backend(m, NULL, NULL, NULL, 0, err); /* releases the current device copy */
    if (st != HQ_OK || !strcmp(name, "cpu")) return st;
    const cu_ops *T = NULL;
    if (!strcmp(name, "cuda-emu")) {
        T = cu_table_emu();
    } else if (!strcmp(name, "cuda")) {
        char msg[256] = "";
        if (!cu_table_gpu || !cu_gpu_devices) {
            snprintf(note, note_len, "no CUDA device: running on CPU (this hyquant was built without nvcc)");
            return HQ_OK;
        }
        int nd = cu_gpu_devices(msg, sizeof msg);
        if (nd <= 0) {
            snprintf(note, note_len, "no CUDA device: running on CPU (%s)", nd < 0 ? msg : "0 devices");
            return HQ_OK;
        }
        T = cu_table_gpu();
    } else {
        return hq_fail(err, HQ_ERR_ARG, "unknown backend '%s' (cpu, cuda or cuda-emu)", name);
    }
    cu_ctx *c = hq_calloc(1, sizeof *c);
    if (!c) return hq_fail(err, HQ_ERR_NOMEM, "cuda: out of memory");
    c->T = T;
    c->ops = cu_backend_ops;
    c->ops.name = T->name;
    snprintf(c->label, sizeof c->label, "cuda (%s)", T->name);
    c->ops.label = c->label;
    char why[300];
    st = rt_model_set_backend(m, &c->ops, c, why, sizeof why, err); /* the model owns c from here */
    if (st == HQ_OK && why[0]) snprintf(note, note_len, "cuda: %s: running on CPU", why);
    return st;
}

hq_status cu_cmd_backend(const char *cmd, rt_model *m, const char *name, char *err) {
    char note[400] = "";
    hq_status st = cu_backend_select(m, name ? name : "cpu", note, sizeof note, err);
    if (st == HQ_OK && note[0]) fprintf(stderr, "hyquant %s: %s\n", cmd, note);
    return st;
}

/* cuda/backend.c — the runtime's CUDA backend (see backend.h): device copy
 * of a loaded model, support checks, and the forward pass on the device,
 * mirroring runtime/forward.c op for op:
 *   h = Emb[tokens]; per layer: x̂ = RMSNorm(h); h = r₁⊙h + Mixer(x̂);
 *   x̂ = RMSNorm(h); h = r₂⊙h + FFN(x̂);  logits = W_lm·RMSNorm(h)
 * (SSD prefill uses the recurrence kernel rather than the CPU's chunked
 * form — same math, different rounding.) Every op goes through a cu_ops
 * table: the GPU's, or the emulator's for "cuda-emu" and the tests. */
#include "backend.h"
#include "cu_ops.h"
#include "../runtime/model_internal.h" // defines: rt_model, rt_layer, rt_state

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    float *attn_norm, *attn_res, *ffn_norm, *ffn_res;
    cu_wt q, k, v, o, dt, sx, sb, sc, sdt, sout, gate, up, down, router, pk_query, ex_down, ex_up;
    float *bq, *bk, *bv, *bo, *q_norm, *k_norm, *b_dt, *attn_a;
    float *b_sx, *b_sb, *b_sc, *b_sdt, *b_sout, *ssm_dt_bias, *ssm_a, *ssm_d;
    float *b_gate, *b_up, *b_down, *b_router, *pk_keys;
} cu_layer;

typedef struct cu_model {
    rt_model *m;
    const cu_ops *T;
    cu_wt tok_embd, output;
    float *out_norm;
    cu_layer *layers;
    struct { const void *host; void *dev; } *up; /* uploaded buffers (weights deduplicated by host pointer) */
    int64_t n_up, cap_up;
    /* device mirror of one rt_state (s->dev_mirror points back here) */
    rt_state *s;
    int64_t s_pos, s_cap;
    float **kc, **vc, **beta, **ssm;
    uint64_t state_gen; /* bumped whenever the cache buffers are reallocated */
    void *arena;
    uint64_t arena_cap;
    /* decode graph: one token's forward captured once and replayed with the
     * token and position written into page-locked memory (cu_forward) */
    int32_t *tok_host;
    int64_t *pos_host, *pos_dev;
    float *lg_host;
    void *graph;
    void *graph_arena;
    uint64_t graph_gen;
    bool graph_off; /* capture failed, or HQ_CUDA_GRAPH=0: eager decode */
    struct cu_model *next;
} cu_model;

static cu_model *g_models;

static cu_model *find(const rt_model *m) {
    for (cu_model *c = g_models; c; c = c->next)
        if (c->m == m) return c;
    return NULL;
}

const char *cu_backend_name(const rt_model *m) {
    const cu_model *c = m->backend == RT_BACKEND_CUDA ? find(m) : NULL;
    return c ? c->T->name : "cpu";
}

/* ---------------- upload ---------------- */
static void *upload(cu_model *c, const void *host, uint64_t bytes, bool dedupe) {
    if (!host) return NULL;
    if (dedupe)
        for (int64_t i = 0; i < c->n_up; i++)
            if (c->up[i].host == host) return c->up[i].dev;
    if (c->n_up == c->cap_up) {
        int64_t nc = c->cap_up ? 2 * c->cap_up : 64;
        void *p = hq_realloc(c->up, (size_t)nc * sizeof c->up[0]);
        if (!p) return NULL;
        c->up = p;
        c->cap_up = nc;
    }
    void *d = c->T->alloc(bytes);
    if (!d) return NULL;
    c->up[c->n_up].host = host;
    c->up[c->n_up++].dev = d;
    if (bytes && c->T->h2d(d, host, bytes) != 0) return NULL;
    return d;
}

typedef struct {
    cu_model *c;
    bool fail;
} up_ctx;

static cu_wt up_w(up_ctx *u, const rt_weight *w) {
    cu_wt r = {NULL, w->type, w->n_in, w->n_out, w->row_bytes};
    if (!w->data) return r;
    r.data = upload(u->c, w->data, w->row_bytes * (uint64_t)w->n_out, true);
    if (!r.data) u->fail = true;
    return r;
}
static float *up_v(up_ctx *u, const float *v, int64_t n) {
    if (!v) return NULL;
    float *d = upload(u->c, v, (uint64_t)n * 4u, false);
    if (!d) u->fail = true;
    return d;
}

static void drop_graph(cu_model *c) {
    if (c->graph) c->T->graph_free(c->graph);
    c->graph = NULL;
}

static void free_state(cu_model *c) {
    drop_graph(c);
    if (!c->kc) return;
    for (int64_t i = 0; i < c->m->L; i++) {
        c->T->free(c->kc[i]);
        c->T->free(c->vc[i]);
        c->T->free(c->beta[i]);
        c->T->free(c->ssm[i]);
    }
    hq_free(c->kc), hq_free(c->vc), hq_free(c->beta), hq_free(c->ssm);
    c->kc = c->vc = c->beta = c->ssm = NULL;
    if (c->s) c->s->dev_mirror = NULL, c->s->dev_newer = false;
    c->s = NULL;
}

static int state_sync_out(cu_model *c, rt_state *s, int64_t pos0, int64_t n);

/* the mirrored state's device rows back to the host (before the mirror is
 * reused for another state or released) */
static int pull_mirror(cu_model *c) {
    rt_state *s = c->s;
    if (!s || !s->dev_newer) return 0;
    if (state_sync_out(c, s, 0, s->pos) == 0) {
        s->dev_newer = false;
        return 0;
    }
    s->dev_mirror = NULL; /* dev_newer stays: the rows are lost and the sequence is refused until reset */
    c->s = NULL;
    return -1;
}

static void destroy(cu_model *c) {
    pull_mirror(c);
    free_state(c);
    for (int64_t i = 0; i < c->n_up; i++) c->T->free(c->up[i].dev);
    c->T->free(c->arena);
    c->T->free(c->pos_dev);
    c->T->host_free(c->tok_host);
    c->T->host_free(c->pos_host);
    c->T->host_free(c->lg_host);
    hq_free(c->up);
    hq_free(c->layers);
    hq_free(c);
}

void cu_backend_release(rt_model *m) {
    for (cu_model **pp = &g_models; *pp; pp = &(*pp)->next)
        if ((*pp)->m == m) {
            cu_model *c = *pp;
            *pp = c->next;
            destroy(c);
            break;
        }
    m->backend = RT_BACKEND_CPU;
}

/* ---------------- support check ---------------- */
static const char *why_not(const cu_ops *T, const rt_model *m, char *buf, size_t len) {
    const rt_weight *ws[24];
    if (!T->rope_supported(m->P)) return snprintf(buf, len, "head dim %lld has no RoPE kernel", (long long)m->P), buf;
    for (int64_t li = -1; li < m->L; li++) {
        int nw = 0;
        if (li < 0) {
            ws[nw++] = &m->output;
        } else {
            const rt_layer *ly = &m->layers[li];
            if (ly->mixer == RT_MIX_ATTN) {
                ws[nw++] = &ly->q, ws[nw++] = &ly->k, ws[nw++] = &ly->v, ws[nw++] = &ly->o, ws[nw++] = &ly->dt;
                cu_attn_params ap = {m->H, m->KV, m->P, ly->M, 1, m->window, m->keep_topk ? m->keep_window : 0, 1, 0};
                if (!T->attn_supported(&ap))
                    return snprintf(buf, len, "layer %lld: attention shape has no kernel (P %lld)", (long long)li,
                                    (long long)m->P), buf;
            } else {
                ws[nw++] = &ly->sx, ws[nw++] = &ly->sb, ws[nw++] = &ly->sc, ws[nw++] = &ly->sdt, ws[nw++] = &ly->sout;
                cu_ssd_dims dm = {m->H, m->P, m->H, m->P};
                if (!T->ssd_supported(&dm))
                    return snprintf(buf, len, "layer %lld: SSD state size %lld has no kernel", (long long)li,
                                    (long long)m->P), buf;
            }
            ws[nw++] = &ly->gate, ws[nw++] = &ly->up, ws[nw++] = &ly->down;
            if (ly->ffn != RT_FFN_MLP) {
                ws[nw++] = ly->ffn == RT_FFN_ROUTER ? &ly->router : &ly->pk_query;
                ws[nw++] = &ly->ex_down, ws[nw++] = &ly->ex_up;
                if (!T->route_supported(ly->Kk, ly->topk))
                    return snprintf(buf, len, "layer %lld: routing Kk %lld top-%lld has no kernel", (long long)li,
                                    (long long)ly->Kk, (long long)ly->topk), buf;
            }
        }
        for (int i = 0; i < nw; i++)
            if (!T->matmul_supported(ws[i]->type, ws[i]->n_in))
                return snprintf(buf, len, "tensor '%s' (%s, row %lld) has no CUDA kernel", ws[i]->name,
                                ggml_type_name(ws[i]->type), (long long)ws[i]->n_in), buf;
    }
    if (!T->matmul_supported(m->tok_embd.type, m->tok_embd.n_in))
        return snprintf(buf, len, "tensor '%s' (%s) has no CUDA kernel", m->tok_embd.name,
                        ggml_type_name(m->tok_embd.type)), buf;
    return NULL;
}

hq_status cu_backend_select(rt_model *m, const char *name, char *note, size_t note_len, char *err) {
    if (note && note_len) note[0] = 0;
    cu_backend_release(m);
    if (!strcmp(name, "cpu")) return HQ_OK;
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
    char why[300];
    if (why_not(T, m, why, sizeof why)) {
        snprintf(note, note_len, "cuda: %s: running on CPU", why);
        return HQ_OK;
    }
    cu_model *c = hq_calloc(1, sizeof *c);
    if (!c) return hq_fail(err, HQ_ERR_NOMEM, "cuda: out of memory");
    c->m = m;
    c->T = T;
    c->layers = hq_calloc((size_t)m->L, sizeof(cu_layer));
    up_ctx u = {c, c->layers == NULL};
    int64_t d = m->d, HP = m->H * m->P, KVP = m->KV * m->P, I = m->I;
    if (!u.fail) {
        c->tok_embd = up_w(&u, &m->tok_embd);
        c->output = up_w(&u, &m->output);
        c->out_norm = up_v(&u, m->out_norm, d);
        for (int64_t li = 0; li < m->L && !u.fail; li++) {
            const rt_layer *ly = &m->layers[li];
            cu_layer *cl = &c->layers[li];
            cl->attn_norm = up_v(&u, ly->attn_norm, d), cl->attn_res = up_v(&u, ly->attn_res, d);
            cl->ffn_norm = up_v(&u, ly->ffn_norm, d), cl->ffn_res = up_v(&u, ly->ffn_res, d);
            if (ly->mixer == RT_MIX_ATTN) {
                cl->q = up_w(&u, &ly->q), cl->k = up_w(&u, &ly->k), cl->v = up_w(&u, &ly->v);
                cl->o = up_w(&u, &ly->o), cl->dt = up_w(&u, &ly->dt);
                cl->bq = up_v(&u, ly->bq, HP), cl->bk = up_v(&u, ly->bk, KVP), cl->bv = up_v(&u, ly->bv, KVP);
                cl->bo = up_v(&u, ly->bo, d);
                cl->q_norm = up_v(&u, ly->q_norm, m->P), cl->k_norm = up_v(&u, ly->k_norm, m->P);
                cl->b_dt = up_v(&u, ly->b_dt, ly->M), cl->attn_a = up_v(&u, ly->attn_a, ly->M);
            } else {
                cl->sx = up_w(&u, &ly->sx), cl->sb = up_w(&u, &ly->sb), cl->sc = up_w(&u, &ly->sc);
                cl->sdt = up_w(&u, &ly->sdt), cl->sout = up_w(&u, &ly->sout);
                cl->b_sx = up_v(&u, ly->b_sx, HP), cl->b_sb = up_v(&u, ly->b_sb, HP), cl->b_sc = up_v(&u, ly->b_sc, HP);
                cl->b_sdt = up_v(&u, ly->b_sdt, m->H), cl->b_sout = up_v(&u, ly->b_sout, d);
                cl->ssm_dt_bias = up_v(&u, ly->ssm_dt_bias, m->H), cl->ssm_a = up_v(&u, ly->ssm_a, m->H);
                cl->ssm_d = up_v(&u, ly->ssm_d, m->H);
            }
            cl->gate = up_w(&u, &ly->gate), cl->up = up_w(&u, &ly->up), cl->down = up_w(&u, &ly->down);
            cl->b_gate = up_v(&u, ly->b_gate, I), cl->b_up = up_v(&u, ly->b_up, I), cl->b_down = up_v(&u, ly->b_down, d);
            if (ly->ffn == RT_FFN_ROUTER) {
                cl->router = up_w(&u, &ly->router);
                cl->b_router = up_v(&u, ly->b_router, 2 * ly->Kk);
            } else if (ly->ffn == RT_FFN_PK) {
                cl->pk_query = up_w(&u, &ly->pk_query);
                cl->pk_keys = up_v(&u, ly->pk_keys, ly->Hr * ly->Kk * ly->R);
            }
            if (ly->ffn != RT_FFN_MLP) cl->ex_down = up_w(&u, &ly->ex_down), cl->ex_up = up_w(&u, &ly->ex_up);
        }
    }
    if (u.fail) {
        destroy(c);
        return hq_fail(err, HQ_ERR_NOMEM, "cuda (%s): out of device memory uploading the weights", T->name);
    }
    c->next = g_models;
    g_models = c;
    m->backend = RT_BACKEND_CUDA;
    return HQ_OK;
}

hq_status cu_cmd_backend(const char *cmd, rt_model *m, const char *name, char *err) {
    char note[400] = "";
    hq_status st = cu_backend_select(m, name ? name : "cpu", note, sizeof note, err);
    if (st == HQ_OK && note[0]) fprintf(stderr, "hyquant %s: %s\n", cmd, note);
    return st;
}

/* ---------------- state mirror ---------------- */
/* makes the device mirror hold s: 0, -1 (device memory / copy failed) or
 * -2 (s's newest rows were on a device and are lost) */
static int state_sync_in(cu_model *c, rt_state *s) {
    const rt_model *m = c->m;
    const cu_ops *T = c->T;
    if (c->s == s && c->s_pos == s->pos && c->s_cap == s->cap) return 0;
    if (s->dev_newer && c->s != s) return -2;
    if (c->s != s) { /* the mirror moves to s: the previous state's device rows go home first */
        if (pull_mirror(c) != 0) return -1;
        if (c->s) c->s->dev_mirror = NULL;
        c->s = NULL;
    }
    if (c->s_cap != s->cap) free_state(c);
    if (!c->kc) {
        c->state_gen++;
        c->kc = hq_calloc((size_t)m->L, sizeof(float *));
        c->vc = hq_calloc((size_t)m->L, sizeof(float *));
        c->beta = hq_calloc((size_t)m->L, sizeof(float *));
        c->ssm = hq_calloc((size_t)m->L, sizeof(float *));
        if (!c->kc || !c->vc || !c->beta || !c->ssm) return -1;
        for (int64_t i = 0; i < m->L; i++) {
            const rt_layer *ly = &m->layers[i];
            if (ly->mixer == RT_MIX_ATTN) {
                c->kc[i] = T->alloc((uint64_t)(m->KV * m->P * s->cap) * 4u);
                c->vc[i] = T->alloc((uint64_t)(m->KV * m->P * s->cap) * 4u);
                c->beta[i] = T->alloc((uint64_t)(ly->M * s->cap) * 4u);
                if (!c->kc[i] || !c->vc[i] || !c->beta[i]) return -1;
            } else {
                c->ssm[i] = T->alloc((uint64_t)(m->H * m->P * m->P) * 4u);
                if (!c->ssm[i]) return -1;
            }
        }
    }
    c->s_cap = s->cap;
    /* upload the host state (positions < pos): the caches are [·, cap, P] */
    for (int64_t i = 0; i < m->L; i++) {
        const rt_layer *ly = &m->layers[i];
        if (ly->mixer == RT_MIX_ATTN) {
            if (s->pos > 0) {
                for (int64_t g = 0; g < m->KV; g++) {
                    uint64_t off = (uint64_t)(g * s->cap * m->P), bytes = (uint64_t)(s->pos * m->P) * 4u;
                    if (T->h2d(c->kc[i] + off, s->kc[i] + off, bytes) || T->h2d(c->vc[i] + off, s->vc[i] + off, bytes))
                        return -1;
                }
                for (int64_t mm = 0; mm < ly->M; mm++)
                    if (T->h2d(c->beta[i] + mm * s->cap, s->beta[i] + mm * s->cap, (uint64_t)s->pos * 4u)) return -1;
            }
        } else if (T->h2d(c->ssm[i], s->ssm[i], (uint64_t)(m->H * m->P * m->P) * 4u)) {
            return -1;
        }
    }
    c->s = s;
    s->dev_mirror = c;
    c->s_pos = s->pos;
    return 0;
}

/* copies the rows written by this call (positions pos0..pos0+n−1) and the SSD states back */
static int state_sync_out(cu_model *c, rt_state *s, int64_t pos0, int64_t n) {
    const rt_model *m = c->m;
    const cu_ops *T = c->T;
    for (int64_t i = 0; i < m->L; i++) {
        const rt_layer *ly = &m->layers[i];
        if (ly->mixer == RT_MIX_ATTN) {
            for (int64_t g = 0; g < m->KV; g++) {
                uint64_t off = (uint64_t)((g * s->cap + pos0) * m->P), bytes = (uint64_t)(n * m->P) * 4u;
                if (T->d2h(s->kc[i] + off, c->kc[i] + off, bytes) || T->d2h(s->vc[i] + off, c->vc[i] + off, bytes))
                    return -1;
            }
            for (int64_t mm = 0; mm < ly->M; mm++)
                if (T->d2h(s->beta[i] + mm * s->cap + pos0, c->beta[i] + mm * s->cap + pos0, (uint64_t)n * 4u)) return -1;
        } else if (T->d2h(s->ssm[i], c->ssm[i], (uint64_t)(m->H * m->P * m->P) * 4u)) {
            return -1;
        }
    }
    return 0;
}

/* ---------------- forward ---------------- */
typedef struct {
    cu_model *c;
    const cu_ops *T;
    rt_model *m;
    uint8_t *base;
    uint64_t used, cap;
    void *opscr; /* op scratch (matmul activations, attention thresholds, sims, gates) */
    const int64_t *dpos; /* the position on the device (graph form) or NULL: pos0 by value */
    /* what the op scratch holds quantized: x, n tokens, as act_type (cu_act_type) */
    const float *act_x;
    int64_t act_n;
    uint32_t act_type;
    char *err;
    const char *fail;
} fw;

static void *take(fw *f, uint64_t bytes) {
    uint64_t at = (f->used + 255u) & ~(uint64_t)255u;
    if (at + bytes > f->cap) return NULL;
    f->used = at + bytes;
    return f->base + at;
}
static float *takef(fw *f, int64_t n) { return take(f, (uint64_t)n * 4u); }

#define GO(e, what)                                                                                    \
    do {                                                                                               \
        if ((e) != 0) {                                                                                \
            f->fail = what;                                                                            \
            return -1;                                                                                 \
        }                                                                                              \
    } while (0)

/* host copy of a device tensor for the observation hooks */
static float *to_host(fw *f, const void *d, uint64_t bytes) {
    float *h = hq_malloc((size_t)(bytes ? bytes : 4));
    if (h && f->T->d2h(h, d, bytes) != 0) {
        hq_free(h);
        return NULL;
    }
    return h;
}

/* y = x·Wᵀ (+ b). same_x: the previous matmul read the same x (q/k/v,
 * gate/up, the SSD projections) and nothing since touched the op scratch,
 * so its quantized activations are reused when the type family matches. */
static int mm_x(fw *f, const rt_weight *hw, const cu_wt *w, const float *x, float *y, int64_t n, const float *bias,
                bool same_x) {
    if (f->m->hooks.on_matmul_input) {
        float *hx = to_host(f, x, (uint64_t)(n * w->n_in) * 4u);
        if (!hx) GO(-1, "hook input copy");
        f->m->hooks.on_matmul_input(f->m->hooks.ud, hw->name, hx, n, w->n_in);
        hq_free(hx);
    }
    uint32_t at = cu_act_type(w->type);
    bool quant = at != GGML_T_F32; /* float weights leave the scratch as it is */
    int ready = same_x && quant && f->act_x == x && f->act_n == n && f->act_type == at;
    GO(f->T->matmul(w, x, y, n, bias, f->opscr, ready), hw->name);
    if (quant) f->act_x = x, f->act_n = n, f->act_type = at;
    return 0;
}
static int mm(fw *f, const rt_weight *hw, const cu_wt *w, const float *x, float *y, int64_t n, const float *bias) {
    return mm_x(f, hw, w, x, y, n, bias, false);
}

static int mixer_attn(fw *f, int64_t li, const float *xn, float *out, int64_t n, int64_t pos0, float base) {
    rt_model *m = f->m;
    const rt_layer *ly = &m->layers[li];
    const cu_layer *cl = &f->c->layers[li];
    const cu_ops *T = f->T;
    int64_t H = m->H, KV = m->KV, P = m->P, cap = f->c->s_cap;
    float *q = takef(f, n * H * P), *k = takef(f, n * KV * P), *v = takef(f, n * KV * P), *dt = takef(f, n * ly->M);
    float *o = takef(f, n * H * P);
    if (mm(f, &ly->q, &cl->q, xn, q, n, cl->bq) || mm_x(f, &ly->k, &cl->k, xn, k, n, cl->bk, true) ||
        mm_x(f, &ly->v, &cl->v, xn, v, n, cl->bv, true))
        return -1;
    if (cl->q_norm) GO(T->rmsnorm(q, cl->q_norm, q, n * H, P, m->eps), "q_norm");
    if (cl->k_norm) GO(T->rmsnorm(k, cl->k_norm, k, n * KV, P, m->eps), "k_norm");
    GO(T->rope(q, n, H, P, pos0, f->dpos, base), "rope q");
    GO(T->rope(k, n, KV, P, pos0, f->dpos, base), "rope k");
    if (mm(f, &ly->dt, &cl->dt, v, dt, n, cl->b_dt)) return -1; /* β from the raw v_proj output */
    GO(T->kv_append(f->c->kc[li], f->c->vc[li], f->c->beta[li], k, v, dt, cl->attn_a, n, KV, P, ly->M, cap, pos0,
                    f->dpos),
       "kv append");
    cu_attn_params ap = {H, KV, P, ly->M, cap, m->window, m->keep_topk ? m->keep_window : 0, 1.0f / sqrtf((float)P),
                         m->keep_hf_call ? 1 : 0}; /* rt_keep_rule: RT_KEEP_HF_CALL or RT_KEEP_TORCH */
    GO(T->attn(&ap, q, f->c->kc[li], f->c->vc[li], f->c->beta[li], pos0, f->dpos, n, o, f->opscr), "attention");
    return mm(f, &ly->o, &cl->o, o, out, n, cl->bo);
}

static int mixer_ssd(fw *f, int64_t li, const float *xn, float *out, int64_t n, int64_t pos0, float base) {
    rt_model *m = f->m;
    const rt_layer *ly = &m->layers[li];
    const cu_layer *cl = &f->c->layers[li];
    const cu_ops *T = f->T;
    int64_t H = m->H, P = m->P;
    float *x = takef(f, n * H * P), *b = takef(f, n * H * P), *c = takef(f, n * H * P), *dt = takef(f, n * H);
    float *y = takef(f, n * H * P);
    if (mm(f, &ly->sx, &cl->sx, xn, x, n, cl->b_sx) || mm_x(f, &ly->sb, &cl->sb, xn, b, n, cl->b_sb, true) ||
        mm_x(f, &ly->sc, &cl->sc, xn, c, n, cl->b_sc, true) || mm_x(f, &ly->sdt, &cl->sdt, xn, dt, n, cl->b_sdt, true))
        return -1;
    GO(T->softplus_bias(dt, cl->ssm_dt_bias, n, H), "ssd dt"); /* Δ = softplus(W_dt x̂ (+ dt_bias)) */
    GO(T->rope(c, n, H, P, pos0, f->dpos, base), "rope C");
    GO(T->rope(b, n, H, P, pos0, f->dpos, base), "rope B");
    cu_ssd_dims dm = {H, P, H, P};
    GO(T->ssd_scan(&dm, n, x, b, c, dt, cl->ssm_a, cl->ssm_d, f->c->ssm[li], y), "ssd scan");
    return mm(f, &ly->sout, &cl->sout, y, out, n, cl->b_sout);
}

static int ffn(fw *f, int64_t li, const float *xn, float *out, int64_t n) {
    rt_model *m = f->m;
    const rt_layer *ly = &m->layers[li];
    const cu_layer *cl = &f->c->layers[li];
    const cu_ops *T = f->T;
    int64_t I = m->I;
    float *g = takef(f, n * I), *u = takef(f, n * I);
    if (mm(f, &ly->gate, &cl->gate, xn, g, n, cl->b_gate) || mm_x(f, &ly->up, &cl->up, xn, u, n, cl->b_up, true))
        return -1;
    GO(T->swiglu(g, u, n * I), "swiglu");
    if (mm(f, &ly->down, &cl->down, g, out, n, cl->b_down)) return -1;
    if (ly->ffn == RT_FFN_MLP) return 0;
    int64_t kt = ly->Hr * ly->topk;
    int32_t *ids = take(f, (uint64_t)(n * kt) * 4u);
    float *w = takef(f, n * kt);
    if (ly->ffn == RT_FFN_ROUTER) {
        float *lg = takef(f, n * 2 * ly->Kk);
        if (mm(f, &ly->router, &cl->router, xn, lg, n, cl->b_router)) return -1;
        if (m->router_quirk && n > 1) { /* HF: router_logits.view(2, N, Kk) over the flat [N, 2Kk] buffer */
            float *q2 = takef(f, n * 2 * ly->Kk);
            uint64_t kb = (uint64_t)ly->Kk * 4u;
            for (int64_t t = 0; t < n; t++) {
                GO(T->d2d(q2 + t * 2 * ly->Kk, lg + t * ly->Kk, kb), "router quirk");
                GO(T->d2d(q2 + t * 2 * ly->Kk + ly->Kk, lg + (n + t) * ly->Kk, kb), "router quirk");
            }
            lg = q2;
        }
        GO(T->route_router(lg, n, ly->Kk, ly->topk, ids, w), "routing");
    } else {
        float *q = takef(f, n * ly->Hr * ly->R);
        if (mm(f, &ly->pk_query, &cl->pk_query, xn, q, n, NULL)) return -1;
        GO(T->route_pk(q, cl->pk_keys, n, ly->Hr, ly->R, ly->Kk, ly->topk, ids, w, f->opscr), "product-key routing");
    }
    if (m->hooks.on_experts) {
        int32_t *hi = (int32_t *)to_host(f, ids, (uint64_t)(n * kt) * 4u);
        float *hx = to_host(f, xn, (uint64_t)(n * m->d) * 4u);
        if (hi && hx) m->hooks.on_experts(m->hooks.ud, (int32_t)li, ly->ex_down.name, hi, kt, hx, n, m->d);
        hq_free(hi);
        hq_free(hx);
        if (!hi || !hx) GO(-1, "hook copy");
    }
    GO(T->experts(&cl->ex_down, &cl->ex_up, xn, n, ids, w, kt, out, f->opscr), "experts");
    return 0;
}

static int hidden_hook(fw *f, int64_t li, const char *where, const float *h, int64_t n) {
    if (!f->m->hooks.on_hidden) return 0;
    float *hh = to_host(f, h, (uint64_t)(n * f->m->d) * 4u);
    if (!hh) GO(-1, "hook copy");
    f->m->hooks.on_hidden(f->m->hooks.ud, (int32_t)li, where, hh, n, f->m->d);
    hq_free(hh);
    return 0;
}

/* bytes of device scratch for n tokens (an upper bound of what forward takes) */
static uint64_t arena_bytes(const cu_model *c, int64_t n, int64_t cap, uint64_t *op_out) {
    const rt_model *m = c->m;
    const cu_ops *T = c->T;
    int64_t d = m->d, HP = m->H * m->P, KVP = m->KV * m->P, mix = 0, ff = 0;
    uint64_t op = 0;
#define OPMAX(x) do { uint64_t v_ = (x); if (v_ > op) op = v_; } while (0)
    OPMAX(T->matmul_scratch(&c->output, n));
    for (int64_t i = 0; i < m->L; i++) {
        const rt_layer *ly = &m->layers[i];
        const cu_layer *cl = &c->layers[i];
        int64_t a = ly->mixer == RT_MIX_ATTN ? n * (2 * HP + 2 * KVP + ly->M) : n * (4 * HP + m->H);
        int64_t kt = ly->Hr * ly->topk;
        int64_t b = 2 * n * m->I + 2 * n * kt + n * (4 * ly->Kk + ly->Hr * ly->R);
        if (a > mix) mix = a;
        if (b > ff) ff = b;
        const cu_wt *ws[] = {&cl->q, &cl->k, &cl->v, &cl->o, &cl->dt, &cl->sx, &cl->sb, &cl->sc, &cl->sdt, &cl->sout,
                             &cl->gate, &cl->up, &cl->down, &cl->router, &cl->pk_query};
        for (size_t j = 0; j < sizeof ws / sizeof ws[0]; j++)
            if (ws[j]->data) OPMAX(T->matmul_scratch(ws[j], n));
        if (ly->mixer == RT_MIX_ATTN) {
            cu_attn_params ap = {m->H, m->KV, m->P, ly->M, cap, m->window, m->keep_topk ? m->keep_window : 0, 1, 0};
            OPMAX(T->attn_scratch(&ap, n));
        }
        if (ly->ffn == RT_FFN_PK) OPMAX(T->route_pk_scratch(n, ly->Hr, ly->Kk));
        if (ly->ffn != RT_FFN_MLP) OPMAX(T->experts_scratch(&cl->ex_down, n, kt));
    }
#undef OPMAX
    *op_out = op;
    return (uint64_t)(3 * n * d + (mix > ff ? mix : ff) + n * m->V) * 4u + (uint64_t)n * 4u + op + 64u * 256u;
}

/* The layers and the output head on the device: token ids at dtok, logits
 * rows r0.. into lg (device) — the part of a forward a graph captures. */
static int forward_body(fw *f, const int32_t *dtok, int64_t n, int64_t pos0, float base, float *h, float *xn,
                        float *br, float *lg, int64_t r0) {
    rt_model *m = f->m;
    cu_model *c = f->c;
    const cu_ops *T = f->T;
    int64_t d = m->d;
    uint64_t mark = f->used;
    int rc = T->embed(&c->tok_embd, dtok, n, h);
    if (rc != 0) f->fail = "embedding";
    for (int64_t li = 0; li < m->L && rc == 0; li++) {
        const rt_layer *ly = &m->layers[li];
        const cu_layer *cl = &c->layers[li];
        f->used = mark;
        if ((rc = T->rmsnorm(h, cl->attn_norm, xn, n, d, m->eps)) != 0) {
            f->fail = "rmsnorm";
            break;
        }
        rc = ly->mixer == RT_MIX_ATTN ? mixer_attn(f, li, xn, br, n, pos0, base) : mixer_ssd(f, li, xn, br, n, pos0, base);
        if (rc == 0 && (rc = T->residual(h, cl->attn_res, br, n, d)) != 0) f->fail = "residual";
        if (rc == 0) rc = hidden_hook(f, li, "mixer", h, n);
        if (rc != 0) break;
        f->used = mark;
        if ((rc = T->rmsnorm(h, cl->ffn_norm, xn, n, d, m->eps)) != 0) {
            f->fail = "rmsnorm";
            break;
        }
        rc = ffn(f, li, xn, br, n);
        if (rc == 0 && (rc = T->residual(h, cl->ffn_res, br, n, d)) != 0) f->fail = "residual";
        if (rc == 0) rc = hidden_hook(f, li, "ffn", h, n);
    }
    if (rc == 0 && lg) {
        int64_t nr = n - r0;
        if ((rc = T->rmsnorm(h + r0 * d, c->out_norm, xn, nr, d, m->eps)) != 0) f->fail = "output norm";
        if (rc == 0) rc = mm(f, &m->output, &c->output, xn, lg, nr, NULL);
    }
    return rc;
}

/* Decode steps run as one CUDA graph: the first captures the step with the
 * token and position read from page-locked host memory by copies inside the
 * graph, later ones write those two numbers and replay it. Valid while the
 * arena and the cache buffers stay where they were (graph_arena, graph_gen).
 * Not for hooks (host copies), dynamic RoPE (the base changes with the
 * position) or HQ_CUDA_GRAPH=0. On the emulator graph_begin fails and the
 * same graph-form step runs eagerly, so the device-position path is tested. */
static bool graph_form(const cu_model *c, const rt_model *m, int64_t n, int64_t r0, const float *logits) {
    if (c->graph_off || n != 1 || r0 != 0 || !logits || m->has_hooks || m->rope_dynamic) return false;
    const char *e = getenv("HQ_CUDA_GRAPH");
    return !(e && !strcmp(e, "0"));
}

static int decode_step(fw *f, const int32_t *token, int64_t pos0, float base, float *logits) {
    cu_model *c = f->c;
    const cu_ops *T = f->T;
    int64_t V = f->m->V, d = f->m->d;
    if (!c->tok_host) {
        c->tok_host = T->host_alloc(4);
        c->pos_host = T->host_alloc(8);
        c->lg_host = T->host_alloc((uint64_t)V * 4u);
        c->pos_dev = T->alloc(8);
        if (!c->tok_host || !c->pos_host || !c->lg_host || !c->pos_dev) {
            f->fail = "decode buffers";
            return -1;
        }
    }
    *c->tok_host = *token;
    *c->pos_host = pos0;
    if (c->graph && (c->graph_arena != c->arena || c->graph_gen != c->state_gen)) drop_graph(c);
    bool ran = false; /* the step already ran eagerly (emulator, or no stream to capture) */
    if (!c->graph) {
        uint64_t mark = f->used;
        int32_t *dtok = take(f, 4u);
        float *h = takef(f, d), *xn = takef(f, d), *br = takef(f, d), *lg = takef(f, V);
        bool capturing = T->graph_begin() == 0;
        f->dpos = c->pos_dev;
        int rc = T->h2d_async(dtok, c->tok_host, 4u);
        if (rc == 0) rc = T->h2d_async(c->pos_dev, c->pos_host, 8u);
        /* the kernels must take the position from dpos (a replay runs at a new
         * one): the by-value position is poisoned, so a kernel that ignored
         * dpos would fail the emulator tests, not only a GPU's */
        if (rc == 0) rc = forward_body(f, dtok, 1, -1, base, h, xn, br, lg, 0);
        if (rc == 0) rc = T->d2h_async(c->lg_host, lg, (uint64_t)V * 4u);
        f->dpos = NULL;
        if (!capturing) {
            if (rc != 0) return rc;
            ran = true;
        } else {
            void *g = NULL;
            if (T->graph_end(&g) != 0 || rc != 0) {
                /* this step again without a graph; decode stays eager from now on */
                c->graph_off = true;
                f->used = mark;
                return 1;
            }
            c->graph = g;
            c->graph_arena = c->arena;
            c->graph_gen = c->state_gen;
        }
    }
    if (!ran && T->graph_launch(c->graph) != 0) {
        f->fail = "graph launch";
        return -1;
    }
    char msg[256] = "";
    if (T->sync(msg, sizeof msg) != 0) {
        f->fail = "decode step";
        return -1;
    }
    memcpy(logits, c->lg_host, (size_t)V * 4u);
    return 0;
}

hq_status cu_forward(rt_model *m, rt_state *s, const int32_t *tokens, int64_t n, float *logits, int64_t r0,
                     char *err) {
    cu_model *c = find(m);
    if (!c) return hq_fail(err, HQ_ERR_INTERNAL, "cuda: model has no device copy");
    const cu_ops *T = c->T;
    int sr = state_sync_in(c, s);
    if (sr == -2)
        return hq_fail(err, HQ_ERR_INTERNAL, "cuda (%s): this sequence's state was lost with a failed device step; "
                       "reset it", T->name);
    if (sr != 0)
        return hq_fail(err, HQ_ERR_NOMEM, "cuda (%s): out of device memory for the state of %lld tokens", T->name,
                       (long long)s->cap);
    uint64_t op = 0, need = arena_bytes(c, n, s->cap, &op);
    if (need > c->arena_cap) {
        drop_graph(c);
        T->free(c->arena);
        c->arena = T->alloc(need);
        c->arena_cap = c->arena ? need : 0;
        if (!c->arena)
            return hq_fail(err, HQ_ERR_NOMEM, "cuda (%s): out of device memory for %lld tokens (%llu bytes of scratch)",
                           T->name, (long long)n, (unsigned long long)need);
    }
    fw f = {.c = c, .T = T, .m = m, .base = c->arena, .cap = c->arena_cap, .err = err};
    int64_t d = m->d, pos0 = s->pos;
    float base = m->rope_dynamic ? rt_rope_base(m->rope_theta, m->rope_factor, m->ctx_len, m->P, pos0 + n - 1)
                                 : m->rope_theta;
    f.opscr = take(&f, op);
    int rc = 1;
    if (graph_form(c, m, n, r0, logits)) rc = decode_step(&f, tokens, pos0, base, logits);
    if (rc == 1) { /* eager: every op launched from here */
        int32_t *dtok = take(&f, (uint64_t)n * 4u);
        float *h = takef(&f, n * d), *xn = takef(&f, n * d), *br = takef(&f, n * d);
        float *lg = logits ? takef(&f, (n - r0) * m->V) : NULL;
        rc = T->h2d(dtok, tokens, (uint64_t)n * 4u);
        if (rc == 0) rc = forward_body(&f, dtok, n, pos0, base, h, xn, br, lg, r0);
        if (rc == 0 && lg && (rc = T->d2h(logits, lg, (uint64_t)((n - r0) * m->V) * 4u)) != 0) f.fail = "logits copy";
    }
    char msg[256] = "";
    if (T->sync(msg, sizeof msg) != 0 || rc != 0) {
        c->s = NULL; /* device state unknown: the sequence must be reset (or was host-newest: re-uploaded) */
        s->dev_mirror = NULL;
        if (msg[0])
            return hq_fail(err, HQ_ERR_INTERNAL, "cuda (%s): %s%s%s", T->name, msg, f.fail ? " in " : "",
                           f.fail ? f.fail : "");
        return hq_fail(err, HQ_ERR_INTERNAL, "cuda (%s): %s failed (kernel launch or scratch)", T->name,
                       f.fail ? f.fail : "forward");
    }
    s->pos += n;
    s->dev_newer = true; /* the new rows stay on the device until the host needs them */
    c->s_pos = s->pos;
    return HQ_OK;
}

hq_status cu_state_pull(rt_state *s, char *err) {
    cu_model *c = s->dev_mirror;
    if (!s->dev_newer) return HQ_OK;
    if (!c || c->s != s || pull_mirror(c) != 0)
        return hq_fail(err, HQ_ERR_INTERNAL, "cuda (%s): copying the sequence state back from the device failed",
                       c ? c->T->name : "?");
    return HQ_OK;
}

void cu_state_forget(rt_state *s) {
    cu_model *c = s->dev_mirror;
    if (c && c->s == s) c->s = NULL;
    s->dev_mirror = NULL;
    s->dev_newer = false;
}

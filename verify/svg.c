/* verify/svg.c — a small self-contained SVG of the per-layer drift: one slot
 * per sub-block (layer l's mixer, then its FFN), a bar for the error the
 * sub-block adds (coloured by module kind, may be negative) and a line for
 * the mean relative error of the hidden state after it; the first slot is
 * the embedding (h⁰). */
#include "verify.h" // defines: vf_write_svg

#include <math.h>
#include <stdarg.h>
#include <string.h>

typedef struct {
    hq_out o;
    hq_status st;
    char *err;
} svg_out;

static void out(svg_out *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void out(svg_out *s, const char *fmt, ...) {
    if (s->st != HQ_OK) return;
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n < 0) n = 0;
    if ((size_t)n >= sizeof line) n = sizeof line - 1;
    s->st = hq_out_write(&s->o, line, (size_t)n, s->err);
}

/* text with &, <, >, " escaped, at most cap−1 bytes */
static const char *xml_escape(const char *in, char *buf, size_t cap) {
    size_t j = 0;
    for (const char *p = in ? in : ""; *p && j + 7 < cap; p++) {
        const char *r = *p == '&' ? "&amp;" : *p == '<' ? "&lt;" : *p == '>' ? "&gt;" : *p == '"' ? "&quot;" : NULL;
        if (r) {
            size_t n = strlen(r);
            memcpy(buf + j, r, n);
            j += n;
        } else {
            buf[j++] = *p;
        }
    }
    buf[j] = 0;
    return buf;
}

/* a "nice" tick step (1, 2 or 5 × 10^k) for about n ticks over range */
static double nice_step(double range, int n) {
    if (!(range > 0)) return 1;
    double raw = range / n, p = pow(10, floor(log10(raw))), f = raw / p;
    return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * p;
}

static const char *kind_color(int k) {
    static const char *const c[VF_KIND_COUNT] = {"#4477aa", "#ee7733", "#228833", "#aa3377", "#999999"};
    return k >= 0 && k < VF_KIND_COUNT ? c[k] : "#999999";
}

hq_status vf_write_svg(const char *path, const vf_result *r, const vf_report_ctx *c, char *err) {
    svg_out s = {.st = HQ_OK, .err = err};
    hq_status st = hq_out_open(&s.o, path, err);
    if (st != HQ_OK) return st;
    const int W = 960, H = 480, ml = 80, mr = 24, mt = 70, mb = 70;
    const int pw = W - ml - mr, ph = H - mt - mb;
    int64_t n = 2 * r->n_layers + 1; /* slot 0: embedding, then mixer/ffn per layer */
    double ymax = r->err_embd, ymin = 0;
    for (int64_t l = 0; l < r->n_layers; l++) {
        const vf_layer *y = &r->layers[l];
        double v[4] = {y->err_mixer, y->err_ffn, y->add_mixer, y->add_ffn};
        for (int i = 0; i < 4; i++) {
            if (v[i] > ymax) ymax = v[i];
            if (v[i] < ymin) ymin = v[i];
        }
    }
    if (ymax <= 0 && ymin >= 0) ymax = 1e-6; /* identical models: a flat plot at 0 */
    double step = nice_step(ymax - ymin, 5);
    ymax = ceil(ymax / step) * step;
    /* a small negative part (a sub-block that reduces the error) gets a
     * quarter-step margin, not a whole empty step */
    ymin = floor(ymin / (step / 4)) * (step / 4);
    char b1[512], b2[512];
    out(&s, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    out(&s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
        "font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\" font-size=\"12\">\n",
        W, H, W, H);
    out(&s, "<rect width=\"%d\" height=\"%d\" fill=\"white\"/>\n", W, H);
    out(&s, "<text x=\"%d\" y=\"24\" font-size=\"16\" font-weight=\"bold\">Hidden-state drift per sub-block: %s vs %s</text>\n",
        ml, xml_escape(c->quant, b1, 160), xml_escape(c->base, b2, 160));
    out(&s,
        "<text x=\"%d\" y=\"44\" fill=\"#444\">PPL ratio %.4f ± %.4f · mean KLD %.5f · top-1 agreement %.2f%% · "
        "%lld chunks × %lld tokens (hidden states over %lld)</text>\n",
        ml, r->sum.ppl_ratio.val, r->sum.ppl_ratio.err, r->sum.kld.val, 100 * r->sum.top1.val,
        (long long)r->n_chunks, (long long)r->ctx, (long long)r->drift_chunks);
#define YPIX(v) (mt + ph - ((v) - ymin) / (ymax - ymin) * ph)
    /* grid and y axis */
    for (double v = ceil(ymin / step - 1e-9) * step; v <= ymax + step * 0.5; v += step) {
        double y = YPIX(v);
        out(&s, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"1\"/>\n", ml, y,
            ml + pw, y, fabs(v) < step * 1e-6 ? "#555" : "#e4e4e4");
        out(&s, "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\" fill=\"#333\">%.3g</text>\n", ml - 6, y + 4,
            fabs(v) < step * 1e-6 ? 0.0 : v);
    }
    out(&s,
        "<text transform=\"translate(18,%d) rotate(-90)\" text-anchor=\"middle\" fill=\"#333\">relative error "
        "‖h_q − h_b‖ / ‖h_b‖</text>\n",
        mt + ph / 2);
    out(&s, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" stroke=\"#555\"/>\n", ml, mt, pw, ph);
    if (n > 0) {
        double slot = (double)pw / (double)n, bw = slot * 0.7;
        int every = r->n_layers <= 32 ? 1 : (int)((r->n_layers + 31) / 32);
        for (int64_t i = 0; i < n; i++) {
            double add, after;
            int kind;
            const char *what, *name;
            if (i == 0) {
                add = after = r->err_embd, kind = VF_KIND_OTHER, what = "embedding", name = "token_embd";
            } else {
                const vf_layer *y = &r->layers[(i - 1) / 2];
                bool mix = i % 2 == 1;
                add = mix ? y->add_mixer : y->add_ffn;
                after = mix ? y->err_mixer : y->err_ffn;
                kind = mix ? y->mixer_kind : y->ffn_kind;
                what = mix ? "mixer" : "ffn";
                name = mix ? y->mixer : y->ffn;
            }
            double x = ml + slot * (double)i + (slot - bw) / 2;
            double y0 = YPIX(0.0), y1 = YPIX(add);
            out(&s,
                "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\" opacity=\"0.85\"><title>layer "
                "%lld %s (%s): adds %.6f, error after %.6f</title></rect>\n",
                x, y1 < y0 ? y1 : y0, bw, fabs(y0 - y1), kind_color(kind), (long long)(i == 0 ? -1 : (i - 1) / 2), what,
                xml_escape(name, b1, 64), add, after);
            if (i == 0)
                out(&s, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\" fill=\"#333\">emb</text>\n",
                    ml + slot * 0.5, mt + ph + 18);
            else if (i % 2 == 1 && ((i - 1) / 2) % every == 0)
                out(&s, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\" fill=\"#333\">%lld</text>\n",
                    ml + slot * ((double)i + 1.0), mt + ph + 18, (long long)((i - 1) / 2));
        }
        /* the error after each sub-block: a line with dots */
        out(&s, "<polyline fill=\"none\" stroke=\"black\" stroke-width=\"2\" points=\"");
        for (int64_t i = 0; i < n; i++) {
            const vf_layer *y = i ? &r->layers[(i - 1) / 2] : NULL;
            out(&s, "%.1f,%.1f ", ml + slot * ((double)i + 0.5),
                YPIX(i == 0 ? r->err_embd : i % 2 == 1 ? y->err_mixer : y->err_ffn));
        }
        out(&s, "\"/>\n");
        for (int64_t i = 0; i < n; i++) {
            const vf_layer *y = i ? &r->layers[(i - 1) / 2] : NULL;
            out(&s, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"black\"/>\n", ml + slot * ((double)i + 0.5),
                YPIX(i == 0 ? r->err_embd : i % 2 == 1 ? y->err_mixer : y->err_ffn));
        }
    }
    out(&s, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\" fill=\"#333\">embedding, then per layer: mixer, FFN</text>\n",
        ml + pw / 2, mt + ph + 40);
    /* legend */
    int lx = ml, ly = H - 16;
    out(&s, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"black\" stroke-width=\"2\"/>", lx, ly - 4, lx + 22,
        ly - 4);
    out(&s, "<text x=\"%d\" y=\"%d\">error after the sub-block</text>\n", lx + 28, ly);
    lx += 210;
    for (int k = 0; k < VF_KIND_COUNT; k++) {
        if (!r->kinds[k].n_layers) continue;
        out(&s, "<rect x=\"%d\" y=\"%d\" width=\"14\" height=\"10\" fill=\"%s\"/>", lx, ly - 9, kind_color(k));
        out(&s, "<text x=\"%d\" y=\"%d\">added by %s</text>\n", lx + 20, ly,
            k == VF_KIND_OTHER ? "the embedding" : vf_kind_name(k));
        lx += 150;
    }
    out(&s, "</svg>\n");
#undef YPIX
    if (s.st != HQ_OK) {
        hq_out_abort(&s.o);
        return s.st;
    }
    return hq_out_commit(&s.o, err);
}

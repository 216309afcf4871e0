/* core/opts.c — see opts.h */
#include "opts.h" // defines: hq_opts_parse, hq_opts_usage, hq_cmd_start, hq_cmd_error
#include "par.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const hq_opt *find_long(const hq_opt *o, const char *name, size_t len) {
    for (; o->long_name; o++)
        if (strlen(o->long_name) == len && memcmp(o->long_name, name, len) == 0) return o;
    return NULL;
}
static const hq_opt *find_short(const hq_opt *o, char c) {
    for (; o->long_name; o++)
        if (o->short_name && o->short_name == c) return o;
    return NULL;
}

static hq_status set_value(const hq_opt *o, const char *v, char *err) {
    switch (o->type) {
    case HQ_OPT_INT: {
        char *end;
        errno = 0;
        long long x = strtoll(v, &end, 10);
        if (errno || end == v || *end)
            return hq_fail(err, HQ_ERR_ARG, "--%s: '%s' is not an integer", o->long_name, v);
        if ((double)x < o->min || (double)x > o->max)
            return hq_fail(err, HQ_ERR_ARG, "--%s: %lld must be in [%.0f, %.0f]", o->long_name, x, o->min, o->max);
        *(int64_t *)o->dst = x;
        return HQ_OK;
    }
    case HQ_OPT_FLOAT: {
        char *end;
        errno = 0;
        double x = strtod(v, &end);
        if (errno || end == v || *end || !isfinite(x))
            return hq_fail(err, HQ_ERR_ARG, "--%s: '%s' is not a number", o->long_name, v);
        if (x < o->min || x > o->max)
            return hq_fail(err, HQ_ERR_ARG, "--%s: %g must be in [%g, %g]", o->long_name, x, o->min, o->max);
        *(double *)o->dst = x;
        return HQ_OK;
    }
    case HQ_OPT_STR:
    case HQ_OPT_IN:
    case HQ_OPT_OUT: *(const char **)o->dst = v; return HQ_OK;
    case HQ_OPT_STR_LIST: {
        hq_str_list *l = o->dst;
        const char **nv = hq_realloc(l->v, sizeof(char *) * (size_t)(l->n + 1));
        if (!nv) return hq_fail(err, HQ_ERR_NOMEM, "out of memory");
        l->v = nv;
        l->v[l->n++] = v;
        return HQ_OK;
    }
    case HQ_OPT_FLAG: *(bool *)o->dst = true; return HQ_OK;
    }
    return HQ_ERR_INTERNAL;
}

hq_status hq_opts_parse(const hq_opt *opts, int argc, char **argv, const char **pos, int max_pos, int *n_pos,
                        bool *help, char *err) {
    *n_pos = 0;
    *help = false;
    bool only_pos = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (only_pos || a[0] != '-' || a[1] == 0) {
            if (*n_pos >= max_pos) return hq_fail(err, HQ_ERR_ARG, "unexpected argument '%s'", a);
            pos[(*n_pos)++] = a;
            continue;
        }
        if (strcmp(a, "--") == 0) {
            only_pos = true;
            continue;
        }
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            *help = true;
            return HQ_OK;
        }
        const hq_opt *o;
        const char *val = NULL;
        if (a[1] == '-') {
            const char *name = a + 2, *eq = strchr(name, '=');
            size_t len = eq ? (size_t)(eq - name) : strlen(name);
            o = find_long(opts, name, len);
            if (!o) return hq_fail(err, HQ_ERR_ARG, "unknown option '%.*s' (see --help)", (int)(len + 2), a);
            if (eq) val = eq + 1;
        } else {
            if (a[2] != 0) return hq_fail(err, HQ_ERR_ARG, "unknown option '%s' (see --help)", a);
            o = find_short(opts, a[1]);
            if (!o) return hq_fail(err, HQ_ERR_ARG, "unknown option '%s' (see --help)", a);
        }
        if (o->type == HQ_OPT_FLAG) {
            if (val) return hq_fail(err, HQ_ERR_ARG, "--%s takes no value", o->long_name);
        } else if (!val) {
            if (i + 1 >= argc) return hq_fail(err, HQ_ERR_ARG, "--%s needs a value", o->long_name);
            val = argv[++i];
        }
        hq_status st = set_value(o, val, err);
        if (st) return st;
    }
    return HQ_OK;
}

void hq_opts_usage(FILE *f, const char *cmd, const char *synopsis, const hq_opt *opts) {
    fprintf(f, "usage: hyquant %s %s\n\noptions:\n", cmd, synopsis);
    for (const hq_opt *o = opts; o->long_name; o++) {
        char left[64];
        if (o->short_name)
            snprintf(left, sizeof left, "-%c, --%s%s%s", o->short_name, o->long_name, o->meta ? " " : "",
                     o->meta ? o->meta : "");
        else
            snprintf(left, sizeof left, "    --%s%s%s", o->long_name, o->meta ? " " : "", o->meta ? o->meta : "");
        fprintf(f, "  %-28s %s\n", left, o->help ? o->help : "");
    }
    fprintf(f, "  %-28s %s\n", "-h, --help", "show this help");
}

/* the name of output/input k in messages: "--json" or "argument 2" */
static void path_label(char *buf, size_t cap, const hq_opt *o, int k) {
    if (o) snprintf(buf, cap, "--%s", o->long_name);
    else snprintf(buf, cap, "argument %d", k + 1);
}

hq_status hq_opts_check_paths(const hq_opt *opts, const char *const *pos, int n_pos, unsigned out_pos, char *err) {
    /* every path with its option (NULL for a positional) and direction */
    enum { MAX_PATHS = 64 };
    const char *path[MAX_PATHS];
    const hq_opt *opt[MAX_PATHS];
    int idx[MAX_PATHS];
    bool out[MAX_PATHS];
    int n = 0;
    for (int k = 0; k < n_pos && n < MAX_PATHS; k++, n++)
        path[n] = pos[k], opt[n] = NULL, idx[n] = k, out[n] = k < 32 && ((out_pos >> k) & 1u);
    for (const hq_opt *o = opts; o->long_name && n < MAX_PATHS; o++) {
        if (o->type != HQ_OPT_IN && o->type != HQ_OPT_OUT) continue; /* dst is not a const char ** */
        const char *v = *(const char **)o->dst;
        if (v) path[n] = v, opt[n] = o, idx[n] = 0, out[n] = o->type == HQ_OPT_OUT, n++;
    }
    for (int a = 0; a < n; a++) {
        if (!out[a]) continue;
        for (int b = 0; b < n; b++) {
            if (b == a || (out[b] && b < a)) continue;
            /* two outputs: the same existing file, or the same new name */
            bool same = hq_path_same_file(path[a], path[b]) ||
                        (out[b] && !strcmp(path[a], path[b]) && access(path[a], F_OK) != 0);
            if (!same) continue;
            char la[80], lb[80];
            path_label(la, sizeof la, opt[a], idx[a]);
            path_label(lb, sizeof lb, opt[b], idx[b]);
            if (out[b])
                return hq_fail(err, HQ_ERR_ARG, "%s: given as two outputs (%s and %s)", path[a], la, lb);
            return hq_fail(err, HQ_ERR_ARG, "%s: the output (%s) is the same file as %s %s (%s); refusing to overwrite it",
                           path[a], la, hq_is_dir(path[b]) ? "a file in the input directory" : "the input", path[b], lb);
        }
    }
    return HQ_OK;
}

void hq_str_list_free(hq_str_list *l) {
    hq_free(l->v);
    l->v = NULL;
    l->n = 0;
}

int hq_cmd_error(const char *cmd, hq_status st, const char *msg) {
    if (hq_par_active() && hq_par_rank() != 0) /* a rank's own failure, before the ranks agree on one (par.h) */
        fprintf(stderr, "hyquant %s (rank %d): %s\n", cmd, hq_par_rank(), msg && *msg ? msg : hq_status_name(st));
    else
        fprintf(stderr, "hyquant %s: %s\n", cmd, msg && *msg ? msg : hq_status_name(st));
    return st == HQ_ERR_ARG ? 2 : 1;
}

int hq_cmd_start(const hq_cmd_def *d, int argc, char **argv, const char **pos) {
    char err[HQ_ERR_LEN] = "";
    bool help = false;
    int n = 0;
    hq_status st = hq_opts_parse(d->opts, argc, argv, pos, d->n_pos + 1, &n, &help, err);
    if (help) {
        hq_opts_usage(stdout, d->cmd, d->synopsis, d->opts);
        return 0;
    }
    if (st != HQ_OK) {
        if (d->usage_on_error) hq_opts_usage(stderr, d->cmd, d->synopsis, d->opts);
        return hq_cmd_error(d->cmd, st, err);
    }
    if (n != d->n_pos) return hq_cmd_error(d->cmd, HQ_ERR_ARG, d->pos_msg);
    if ((st = hq_opts_check_paths(d->opts, pos, n, d->out_pos, err)) != HQ_OK) return hq_cmd_error(d->cmd, st, err);
    return -1;
}

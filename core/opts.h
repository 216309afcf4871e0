/* core/opts.h — table-driven command-line options (style.md §15).
 * Each subcommand declares its options once; parsing and --help come from the
 * table. Numbers are checked with strtoll/strtod and a range; bad values are
 * refused with "must be in [a, b]", never clamped. */
#ifndef HQ_OPTS_H
#define HQ_OPTS_H
#include "hq.h"

/* HQ_OPT_IN / HQ_OPT_OUT are file paths (const char *): declaring which
 * options name inputs and which name outputs lets hq_opts_check_paths refuse,
 * before any work, an output that would overwrite an input. */
typedef enum { HQ_OPT_FLAG, HQ_OPT_INT, HQ_OPT_FLOAT, HQ_OPT_STR, HQ_OPT_STR_LIST, HQ_OPT_IN, HQ_OPT_OUT } hq_opt_type;

typedef struct {
    char short_name;        /* 0 if none */
    const char *long_name;  /* without leading dashes */
    hq_opt_type type;
    void *dst;              /* bool* | int64_t* | double* | const char** (STR, IN, OUT) | hq_str_list* */
    const char *meta;       /* e.g. "N", "FILE" */
    const char *help;       /* with the default in it */
    double min, max;        /* for INT/FLOAT */
} hq_opt;

typedef struct {
    const char **v;
    int n;
} hq_str_list;

/* Parses argv[1..argc-1] (argv[0] = subcommand name). Positional arguments are
 * collected in pos (at most max_pos). Returns HQ_ERR_ARG with a message for an
 * unknown option, a missing value or an out-of-range number. *help is set when
 * -h/--help was given (the caller prints usage and exits 0). */
hq_status hq_opts_parse(const hq_opt *opts, int argc, char **argv, const char **pos, int max_pos, int *n_pos,
                        bool *help, char *err);
void hq_opts_usage(FILE *f, const char *cmd, const char *synopsis, const hq_opt *opts);
/* Refuses (HQ_ERR_ARG) an output path that is the same file as an input (or
 * as a file directly inside an input directory) or as another output.
 * Outputs: the HQ_OPT_OUT options and the positionals whose bit is set in
 * out_pos; inputs: the HQ_OPT_IN options and the other positionals. Run
 * before any work: hq_cmd_start does it; commands that parse with
 * hq_opts_parse call it themselves. */
hq_status hq_opts_check_paths(const hq_opt *opts, const char *const *pos, int n_pos, unsigned out_pos, char *err);

/* A subcommand's fixed start: its option table and the positional arguments
 * it takes. */
typedef struct {
    const char *cmd, *synopsis;
    const hq_opt *opts;
    int n_pos;            /* positional arguments required (pos has room for n_pos + 1) */
    const char *pos_msg;  /* the error for any other count */
    bool usage_on_error;  /* also print the usage on stderr after a parse error */
    unsigned out_pos;     /* bit i set: positional i is an output path */
} hq_cmd_def;

/* Prints "hyquant <cmd>: <msg>" on stderr (msg empty: the status name) and
 * returns the exit status for st: 2 for HQ_ERR_ARG, else 1. */
int hq_cmd_error(const char *cmd, hq_status st, const char *msg);

/* Parses argv. Returns -1 when the command goes on (positionals in pos),
 * otherwise its exit status: 0 after printing the usage for -h/--help, 2
 * after printing "hyquant <cmd>: <msg>" for a parse error or a wrong count. */
int hq_cmd_start(const hq_cmd_def *d, int argc, char **argv, const char **pos);
void hq_str_list_free(hq_str_list *l);
#endif

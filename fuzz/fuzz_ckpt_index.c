/* fuzz/fuzz_ckpt_index.c — whole-checkpoint loading through a sharded index
 * (fmt_ckpt_open on "<dir>/<name>.index.json": index JSON, shard-name checks,
 * weight_map <-> shard cross-checks) with arbitrary index bytes. The first
 * input byte picks the shard set (even: the safetensors shards of
 * tests/fixtures/formats/sharded, odd: the torch shards of .../sharded_torch),
 * copied once into a private temp dir; the rest is written as the index. */
#include "fuzz_common.h"

#include <dirent.h>

static char ci_dir[2][256];

static void ci_copy_dir(const char *src, const char *dst) {
    DIR *dd = opendir(src);
    if (!dd) return;
    struct dirent *de;
    while ((de = readdir(dd))) {
        if (de->d_name[0] == '.' || strstr(de->d_name, ".index.json")) continue;
        char a[1024], b[1024];
        snprintf(a, sizeof a, "%s/%s", src, de->d_name);
        snprintf(b, sizeof b, "%s/%s", dst, de->d_name);
        FILE *in = fopen(a, "rb"), *out = fopen(b, "wb");
        char buf[8192];
        size_t k;
        while (in && out && (k = fread(buf, 1, sizeof buf, in)) > 0) fwrite(buf, 1, k, out);
        if (in) fclose(in);
        if (out) fclose(out);
    }
    closedir(dd);
}

static void ci_cleanup(void) {
    for (int i = 0; i < 2; i++) fz_rm_flat_dir(ci_dir[i]);
}

static void ci_init(void) {
    static int registered;
    if (!registered) registered = 1, atexit(ci_cleanup);
    static const char *const src[2] = {"tests/fixtures/formats/sharded", "tests/fixtures/formats/sharded_torch"};
    for (int i = 0; i < 2; i++) {
        if (ci_dir[i][0]) continue;
        fz_tmp_template(ci_dir[i], sizeof ci_dir[i], "index");
        if (!mkdtemp(ci_dir[i])) {
            ci_dir[i][0] = 0;
            continue;
        }
        ci_copy_dir(src[i], ci_dir[i]);
    }
}

int fuzz_ckpt_index(const uint8_t *d, size_t n) {
    ci_init();
    if (n < 1) return 0;
    int which = d[0] & 1;
    if (!ci_dir[which][0]) return 0;
    char path[320];
    snprintf(path, sizeof path, "%s/%s", ci_dir[which],
             which ? "pytorch_model.bin.index.json" : "model.safetensors.index.json");
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    size_t wrote = fwrite(d + 1, 1, n - 1, f);
    fclose(f);
    if (wrote != n - 1) return 0;
    fmt_ckpt *ck = NULL;
    char err[HQ_ERR_LEN] = "";
    hq_status st = fmt_ckpt_open(path, &ck, err);
    if (st) {
        fz_check_err(st, err);
        FZ_ASSERT(ck == NULL, "checkpoint returned on failure");
    } else {
        fz_check_ckpt(ck, NULL, 0);
        fmt_ckpt_close(ck);
    }
    unlink(path);
    return 0;
}

#ifndef FUZZ_NO_ENTRY
int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);
int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { return fuzz_ckpt_index(d, n); }
#endif

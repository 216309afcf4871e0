/* tests/test_fuzz_replay.c — replays every fuzz corpus and regression input
 * (every file under fuzz/corpus/<h>/ and fuzz/regressions/<h>/) through its harness
 * (fuzz/fuzz_<h>.c, linked here without libFuzzer). make test runs it in the
 * normal and the ASan+UBSan build, so every input that ever crashed a reader
 * stays fixed. A harness aborts on a crash or a broken contract (fuzz_common.h),
 * which fails this test.
 * Second pass, allocation failure: for each input, the run is repeated with
 * the N-th hq_* allocation failing for up to 200 N spread over the run's
 * allocations (60 under HQ_SANITIZED; fewer per file for big corpora, at most
 * 6000 / 1500 failing runs per corpus) — every error path must free what it
 * allocated (LeakSanitizer) and report a one-line error.
 *   build/tests/test_fuzz_replay                 all harnesses
 *   build/tests/test_fuzz_replay <h> FILE...     one harness on given files */
#include "../fuzz/harnesses.h"
#include "test.h"

#include <dirent.h>

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* sorted regular files of dir (caller frees) */
static char **list_dir(const char *dir, size_t *n) {
    *n = 0;
    DIR *d = opendir(dir);
    if (!d) return NULL;
    size_t cap = 64;
    char **v = malloc(cap * sizeof *v);
    struct dirent *de;
    while (v && (de = readdir(d))) {
        if (de->d_name[0] == '.') continue;
        char *p = malloc(strlen(dir) + strlen(de->d_name) + 2);
        sprintf(p, "%s/%s", dir, de->d_name);
        if (!hq_file_exists(p)) {
            free(p);
            continue;
        }
        if (*n == cap) v = realloc(v, (cap *= 2) * sizeof *v);
        v[(*n)++] = p;
    }
    closedir(d);
    if (v) qsort(v, *n, sizeof *v, cmp_str);
    return v;
}

static uint8_t *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc(sz > 0 ? (size_t)sz : 1);
    *n = sz > 0 && b ? fread(b, 1, (size_t)sz, f) : 0;
    fclose(f);
    return b;
}

static void run_file(const fuzz_harness *h, const char *path, int fault_points) {
    size_t n = 0;
    uint8_t *d = slurp(path, &n);
    CHECK(d != NULL, "%s: cannot read", path);
    if (!d) return;
    if (getenv("HQ_FUZZ_VERBOSE")) fprintf(stderr, "%s: %s\n", h->name, path);
    hq_alloc_fail_at(0);
    h->fn(d, n);
    int64_t allocs = hq_alloc_count();
    CHECK(1, "replayed");
    if (fault_points > 0 && allocs > 0) {
        int64_t step = allocs / fault_points + 1;
        for (int64_t k = 1; k <= allocs; k += step) {
            if (getenv("HQ_FUZZ_VERBOSE")) fprintf(stderr, "  allocation %lld fails\n", (long long)k);
            hq_alloc_fail_at(k);
            h->fn(d, n);
        }
        hq_alloc_fail_at(0);
        CHECK(1, "fault-injected");
    }
    free(d);
}

int main(int argc, char **argv) {
    bool san = getenv("HQ_SANITIZED") != NULL;
    int fault_points = san ? 60 : 200, fault_budget = san ? 1500 : 6000; /* failing runs per corpus */
    /* one warm-up call per harness loads its fixed fixtures outside the
     * fault-injection window (harness state that lives for the process) */
    for (size_t i = 0; i < FUZZ_N_HARNESSES; i++) k_fuzz_harnesses[i].fn((const uint8_t *)"", 0);
    if (argc >= 2) {
        for (size_t i = 0; i < FUZZ_N_HARNESSES; i++)
            if (!strcmp(argv[1], k_fuzz_harnesses[i].name)) {
                for (int a = 2; a < argc; a++) {
                    fprintf(stderr, "%s: %s\n", argv[1], argv[a]);
                    run_file(&k_fuzz_harnesses[i], argv[a], 0);
                }
                TEST_END();
            }
        fprintf(stderr, "unknown harness '%s'\n", argv[1]);
        return 2;
    }
    for (size_t i = 0; i < FUZZ_N_HARNESSES; i++) {
        const fuzz_harness *h = &k_fuzz_harnesses[i];
        size_t total = 0;
        double t0 = hq_now();
        for (int kind = 0; kind < 2; kind++) {
            char dir[256];
            snprintf(dir, sizeof dir, "fuzz/%s/%s", kind ? "regressions" : "corpus", h->name);
            size_t nf = 0;
            char **files = list_dir(dir, &nf);
            if (kind == 0) CHECK(nf > 0, "%s: empty or missing corpus", dir);
            /* spread a fixed budget of failing runs over the corpus; every
             * regression input gets the full count */
            int fp = fault_points;
            if (kind == 0 && nf > 0 && (size_t)fault_budget / nf < (size_t)fp) fp = (int)((size_t)fault_budget / nf);
            if (fp < 4) fp = 4;
            for (size_t k = 0; k < nf; k++) {
                run_file(h, files[k], fp);
                free(files[k]);
            }
            free(files);
            total += nf;
        }
        printf("%-15s %4zu inputs replayed (+ allocation failures) in %.1f s\n", h->name, total, hq_now() - t0);
    }
    TEST_END();
}

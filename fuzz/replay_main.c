/* fuzz/replay_main.c — a main() for a harness built without libFuzzer (plain
 * gcc, `make fuzz-replay`): feeds every file named on the command line, or
 * every file inside a named directory, to LLVMFuzzerTestOneInput once.
 * Exits 0 when all inputs ran (a crash or broken contract aborts). */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);

static int run_one(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "replay: cannot open %s\n", path);
        return 1;
    }
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc(sz > 0 ? (size_t)sz : 1);
    size_t n = sz > 0 && b ? fread(b, 1, (size_t)sz, f) : 0;
    fclose(f);
    LLVMFuzzerTestOneInput(b, n);
    free(b);
    return 0;
}

int main(int argc, char **argv) {
    int bad = 0, count = 0;
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) != 0) continue; /* a harness without regressions yet */
        if (!S_ISDIR(st.st_mode)) {
            bad |= run_one(argv[i]);
            count++;
            continue;
        }
        DIR *d = opendir(argv[i]);
        struct dirent *de;
        while (d && (de = readdir(d))) {
            if (de->d_name[0] == '.') continue;
            char p[4096];
            snprintf(p, sizeof p, "%s/%s", argv[i], de->d_name);
            if (stat(p, &st) == 0 && S_ISREG(st.st_mode)) {
                bad |= run_one(p);
                count++;
            }
        }
        if (d) closedir(d);
    }
    printf("replayed %d inputs\n", count);
    return bad;
}

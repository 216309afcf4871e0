/* fuzz/fuzz_zip.c — the torch zip directory reader (formats/zip.h) on
 * arbitrary bytes: open, look up the records torch.c reads, read every entry
 * (CRC checked, deflate inflated). Contracts: see fuzz_common.h; stored data
 * points inside the input, inflated data has exactly usize bytes. */
#include "fuzz_common.h"
#include "../formats/zip.h"

int fuzz_zip(const uint8_t *d, size_t n) {
    char err[HQ_ERR_LEN] = "";
    fmt_zip z;
    hq_status st = fmt_zip_open_from_buffer(d, n, "fuzz.zip", &z, err);
    if (st) {
        fz_check_err(st, err);
        fmt_zip_free(&z);
        return 0;
    }
    FZ_ASSERT(z.n_entries <= HQ_MAX_ZIP_ENTRIES, "too many entries");
    (void)fmt_zip_find(&z, "data.pkl");
    (void)fmt_zip_find(&z, "byteorder");
    (void)fmt_zip_find(&z, "data/0");
    for (uint64_t i = 0; i < z.n_entries && i < 64; i++) {
        const fmt_zip_entry *e = &z.entries[i];
        FZ_ASSERT(e->data_off <= n && e->csize <= n - e->data_off, "entry %llu: data outside the input",
                  (unsigned long long)i);
        const uint8_t *data = NULL;
        uint8_t *owned = NULL;
        err[0] = 0;
        st = fmt_zip_read(&z, e, true, "fuzz.zip", &data, &owned, err);
        if (st) {
            fz_check_err(st, err);
            continue;
        }
        if (!owned) {
            FZ_ASSERT(e->usize == 0 || (data >= d && (uint64_t)(data - d) + e->usize <= n),
                      "stored entry outside the input");
        } else {
            volatile uint8_t acc = 0; /* touch every inflated byte (ASan checks the size) */
            for (uint64_t k = 0; k < e->usize; k += 4096) acc ^= owned[k];
            if (e->usize) acc ^= owned[e->usize - 1];
            (void)acc;
        }
        hq_free(owned);
    }
    fmt_zip_free(&z);
    return 0;
}

#ifndef FUZZ_NO_ENTRY
int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);
int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { return fuzz_zip(d, n); }
#endif

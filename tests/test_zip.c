/* tests/test_zip.c — the strict zip reader (formats/zip.h) on archives built in
 * memory: classic and ZIP64 encodings (saturated 32-bit fields + 0x0001 extra,
 * i.e. the > 4 GiB layout on a tiny file), torch-style padding, deflate, and
 * one hostile variant per rule in zip.h. */
#include "../formats/zip.h"
#include "test.h"
#include "torch_build.h"

static const uint8_t k_pkl[] = "pickle bytes";
static const uint8_t k_dat[] = "0123456789abcdef0123456789abcdef";

static int make(zw_out *z, int flags) {
    zw_ent e[3] = {
        {"arch/data.pkl", k_pkl, sizeof k_pkl - 1, 0, 0, 0, false},
        {"arch/data/0", k_dat, sizeof k_dat - 1, 0, 0, 0, false},
        {"arch/version", (const uint8_t *)"3\n", 2, 0, 0, 0, false},
    };
    zw_write(z, e, 3, flags);
    return 3;
}

/* expect open to fail with status st and a message containing frag */
static void expect_fail(const uint8_t *p, size_t n, hq_status st, const char *frag, const char *what) {
    fmt_zip z;
    char err[HQ_ERR_LEN] = "";
    hq_status r = fmt_zip_open_from_buffer(p, n, "t.pt", &z, err);
    CHECK(r == st, "%s: status %s (want %s): %s", what, hq_status_name(r), hq_status_name(st), err);
    CHECK(strstr(err, frag) != NULL, "%s: message '%s' lacks '%s'", what, err, frag);
    CHECK(z.entries == NULL && z.n_entries == 0, "%s: failed open leaves entries", what);
    fmt_zip_free(&z);
}

static void check_valid(int flags, const char *what) {
    zw_out z;
    make(&z, flags);
    fmt_zip a;
    char err[HQ_ERR_LEN] = "";
    hq_status r = fmt_zip_open_from_buffer(z.b.p, z.b.n, "t.pt", &a, err);
    CHECK(r == HQ_OK, "%s: open failed: %s", what, err);
    if (r == HQ_OK) {
        CHECK(a.n_entries == 3, "%s: %llu entries", what, (unsigned long long)a.n_entries);
        CHECK(a.prefix_len == 5, "%s: prefix_len %u", what, a.prefix_len);
        CHECK(a.zip64 == !!(flags & ZW_ZIP64), "%s: zip64 flag", what);
        const fmt_zip_entry *e = fmt_zip_find(&a, "data/0");
        CHECK(e && e->usize == sizeof k_dat - 1 && e->data_off == z.data[1], "%s: data/0 located", what);
        if (flags & ZW_PAD) CHECK(e && e->data_off % 64 == 0, "%s: padded data is 64-aligned", what);
        const uint8_t *d = NULL;
        uint8_t *own = NULL;
        if (e) {
            r = fmt_zip_read(&a, e, true, "t.pt", &d, &own, err);
            CHECK(r == HQ_OK && own == NULL && d && !memcmp(d, k_dat, sizeof k_dat - 1), "%s: read data/0: %s", what,
                  err);
        }
        CHECK(fmt_zip_find(&a, "data.pkl") != NULL, "%s: find data.pkl", what);
        CHECK(fmt_zip_find(&a, "version") != NULL, "%s: find version", what);
        CHECK(fmt_zip_find(&a, "data/1") == NULL, "%s: data/1 absent", what);
        CHECK(fmt_zip_find(&a, "data") == NULL, "%s: prefix of a name is not a match", what);
        CHECK(fmt_zip_find(&a, "arch/data.pkl") == NULL, "%s: find takes names below the prefix", what);
    }
    fmt_zip_free(&a);
    tb_free(&z.b);
}

int main(void) {
    /* ---- valid encodings ---- */
    check_valid(0, "classic");
    check_valid(ZW_ZIP64, "zip64 eocd");
    check_valid(ZW_ZIP64 | ZW_PAD, "zip64 + torch padding");
    check_valid(ZW_ZIP64 | ZW_SAT_SIZES, "zip64 saturated sizes");
    check_valid(ZW_ZIP64 | ZW_SAT_LHO, "zip64 saturated offsets");
    check_valid(ZW_ZIP64 | ZW_SAT_SIZES | ZW_SAT_LHO | ZW_SAT_EOCD | ZW_PAD, "zip64 everything saturated");

    zw_out z;
    /* ---- end records ---- */
    make(&z, 0);
    expect_fail(z.b.p, 10, HQ_ERR_FORMAT, "too short", "tiny buffer");
    expect_fail(z.b.p, z.b.n - 1, HQ_ERR_FORMAT, "end-of-central-directory", "EOCD cut");
    {
        tb_buf c = {0};
        tb_put(&c, z.b.p, z.b.n);
        tb_set32(c.p + z.eocd + 16, (uint32_t)(z.b.n + 1000)); /* cd_offset beyond EOF */
        expect_fail(c.p, c.n, HQ_ERR_FORMAT, "central directory", "EOCD cd_offset beyond EOF");
        memcpy(c.p, z.b.p, z.b.n);
        tb_set32(c.p + z.eocd + 12, 0xFFFFFF00u); /* cd_size huge */
        expect_fail(c.p, c.n, HQ_ERR_FORMAT, "central directory", "EOCD cd_size huge");
        memcpy(c.p, z.b.p, z.b.n);
        tb_set16(c.p + z.eocd + 4, 1); /* disk 1 */
        expect_fail(c.p, c.n, HQ_ERR_UNSUPPORTED, "multi-disk", "multi-disk EOCD");
        memcpy(c.p, z.b.p, z.b.n);
        tb_set16(c.p + z.eocd + 8, 2); /* 2 on this disk, 3 total */
        expect_fail(c.p, c.n, HQ_ERR_UNSUPPORTED, "multi-disk", "split entry counts");
        memcpy(c.p, z.b.p, z.b.n);
        tb_set16(c.p + z.eocd + 8, 200), tb_set16(c.p + z.eocd + 10, 200); /* more entries than CD bytes allow */
        expect_fail(c.p, c.n, HQ_ERR_FORMAT, "cannot fit", "entry count vs cd size");
        memcpy(c.p, z.b.p, z.b.n);
        tb_set16(c.p + z.eocd + 8, 2), tb_set16(c.p + z.eocd + 10, 2); /* fewer entries: CD bytes left over */
        expect_fail(c.p, c.n, HQ_ERR_FORMAT, "unused bytes", "entry count too small");
        memcpy(c.p, z.b.p, z.b.n);
        tb_set16(c.p + z.eocd + 20, 5); /* comment length past EOF */
        expect_fail(c.p, c.n, HQ_ERR_FORMAT, "end-of-central-directory", "comment past EOF");
        memcpy(c.p, z.b.p, z.b.n);
        tb_set32(c.p + z.eocd + 16, 0xFFFFFFFFu); /* saturated without ZIP64 */
        expect_fail(c.p, c.n, HQ_ERR_FORMAT, "no ZIP64 locator", "saturated classic EOCD");
        tb_free(&c);
    }
    tb_free(&z.b);

    make(&z, ZW_ZIP64);
    {
        tb_buf c = {0};
        tb_put(&c, z.b.p, z.b.n);
        tb_set64(c.p + z.eocd64 + 48, z.cd_off + 1); /* ZIP64 and classic disagree */
        expect_fail(c.p, c.n, HQ_ERR_FORMAT, "disagree", "EOCD vs ZIP64 EOCD");
        memcpy(c.p, z.b.p, z.b.n);
        tb_set64(c.p + z.loc64 + 8, UINT64_MAX - 3); /* locator offset overflows */
        expect_fail(c.p, c.n, HQ_ERR_FORMAT, "ZIP64 locator", "locator offset overflow");
        memcpy(c.p, z.b.p, z.b.n);
        tb_set64(c.p + z.loc64 + 8, z.b.n + 100);
        expect_fail(c.p, c.n, HQ_ERR_FORMAT, "ZIP64 locator", "locator beyond EOF");
        memcpy(c.p, z.b.p, z.b.n);
        tb_set64(c.p + z.eocd64 + 4, UINT64_MAX - 5); /* record size overflows */
        expect_fail(c.p, c.n, HQ_ERR_FORMAT, "record size", "ZIP64 record size overflow");
        memcpy(c.p, z.b.p, z.b.n);
        tb_set32(c.p + z.loc64 + 16, 3);
        expect_fail(c.p, c.n, HQ_ERR_UNSUPPORTED, "multi-disk", "ZIP64 locator disks");
        tb_free(&c);
    }
    tb_free(&z.b);

    /* entry count above HQ_MAX_ZIP_ENTRIES (ZIP64 counts are 64-bit) */
    make(&z, ZW_ZIP64 | ZW_SAT_EOCD);
    tb_set64(z.b.p + z.eocd64 + 24, (uint64_t)HQ_MAX_ZIP_ENTRIES + 1);
    tb_set64(z.b.p + z.eocd64 + 32, (uint64_t)HQ_MAX_ZIP_ENTRIES + 1);
    expect_fail(z.b.p, z.b.n, HQ_ERR_LIMIT, "HQ_MAX_ZIP_ENTRIES", "too many entries");
    tb_set64(z.b.p + z.eocd64 + 24, UINT64_MAX), tb_set64(z.b.p + z.eocd64 + 32, UINT64_MAX);
    expect_fail(z.b.p, z.b.n, HQ_ERR_LIMIT, "HQ_MAX_ZIP_ENTRIES", "2^64-1 entries");
    tb_free(&z.b);

    /* ---- ZIP64 extra consistency ---- */
    make(&z, ZW_ZIP64 | ZW_SAT_SIZES | ZW_SAT_LHO);
    {
        tb_buf c = {0};
        tb_put(&c, z.b.p, z.b.n);
        size_t h = z.cdh[1], x = h + 46 + strlen("arch/data/0"); /* extra of data/0 */
        tb_set64(c.p + x + 4 + 16, UINT64_MAX - 10); /* lho overflows */
        expect_fail(c.p, c.n, HQ_ERR_FORMAT, "local header", "ZIP64 lho overflow");
        memcpy(c.p, z.b.p, z.b.n);
        tb_set64(c.p + x + 4, UINT64_MAX), tb_set64(c.p + x + 12, UINT64_MAX); /* sizes 2^64-1 */
        expect_fail(c.p, c.n, HQ_ERR_FORMAT, "runs past", "ZIP64 sizes overflow");
        memcpy(c.p, z.b.p, z.b.n);
        tb_set64(c.p + x + 4, 5), tb_set64(c.p + x + 12, 5 + (1ull << 33)); /* stored csize != usize */
        expect_fail(c.p, c.n, HQ_ERR_FORMAT, "csize", "ZIP64 stored sizes differ");
        memcpy(c.p, z.b.p, z.b.n);
        tb_set32(c.p + h + 20, 32); /* csize no longer saturated: extra holds too much */
        expect_fail(c.p, c.n, HQ_ERR_FORMAT, "ZIP64 extra holds", "extra has more fields than saturated");
        memcpy(c.p, z.b.p, z.b.n);
        tb_set16(c.p + x, 0x9999); /* extra id changed: saturated fields without ZIP64 extra */
        expect_fail(c.p, c.n, HQ_ERR_FORMAT, "no ZIP64 extra", "saturated without extra");
        memcpy(c.p, z.b.p, z.b.n);
        tb_set16(c.p + x + 2, 60); /* extra block overruns the extra area */
        expect_fail(c.p, c.n, HQ_ERR_FORMAT, "overruns", "extra overrun");
        memcpy(c.p, z.b.p, z.b.n);
        tb_set16(c.p + h + 34, 0xFFFF); /* disk saturated, but the extra has no disk field */
        expect_fail(c.p, c.n, HQ_ERR_FORMAT, "ZIP64 extra holds", "saturated disk");
        tb_free(&c);
    }
    tb_free(&z.b);

    /* ---- entry rules ---- */
    make(&z, ZW_ZIP64 | ZW_PAD);
    {
        tb_buf c = {0};
        tb_put(&c, z.b.p, z.b.n);
        size_t h = z.cdh[1];
        tb_set16(c.p + h + 8, 0x0809); /* encrypted */
        expect_fail(c.p, c.n, HQ_ERR_UNSUPPORTED, "encrypted", "encrypted entry");
        memcpy(c.p, z.b.p, z.b.n);
        tb_set16(c.p + h + 10, 12); /* bzip2 */
        expect_fail(c.p, c.n, HQ_ERR_UNSUPPORTED, "method 12", "bzip2 entry");
        memcpy(c.p, z.b.p, z.b.n);
        c.p[h + 46 + 5] = 'X'; /* central name differs from the local one */
        expect_fail(c.p, c.n, HQ_ERR_FORMAT, "different name", "name mismatch");
        memcpy(c.p, z.b.p, z.b.n);
        tb_set32(c.p + h + 42, (uint32_t)z.lho[1] + 1); /* lho off by one */
        expect_fail(c.p, c.n, HQ_ERR_FORMAT, "not a local header", "bad lho");
        memcpy(c.p, z.b.p, z.b.n);
        tb_set32(c.p + h + 42, (uint32_t)z.cd_off + 4); /* lho inside the central directory */
        expect_fail(c.p, c.n, HQ_ERR_FORMAT, "not a local header", "lho in CD");
        memcpy(c.p, z.b.p, z.b.n);
        tb_set32(c.p + h + 20, 4000), tb_set32(c.p + h + 24, 4000); /* data runs into the CD */
        expect_fail(c.p, c.n, HQ_ERR_FORMAT, "runs past", "data beyond CD");
        memcpy(c.p, z.b.p, z.b.n);
        /* data.pkl grown so it covers data/0's local header: overlap */
        uint32_t grow = (uint32_t)(z.lho[1] - z.data[0] + 1);
        tb_set32(c.p + z.cdh[0] + 20, grow), tb_set32(c.p + z.cdh[0] + 24, grow);
        expect_fail(c.p, c.n, HQ_ERR_FORMAT, "overlap", "overlapping entries");
        memcpy(c.p, z.b.p, z.b.n);
        tb_set16(c.p + z.lho[1] + 8, 8); /* local method differs */
        expect_fail(c.p, c.n, HQ_ERR_FORMAT, "disagrees", "local method");
        memcpy(c.p, z.b.p, z.b.n);
        tb_set16(c.p + z.lho[1] + 28, 0xF000); /* local extra runs far */
        expect_fail(c.p, c.n, HQ_ERR_FORMAT, "local header overruns", "local extra overrun");
        tb_free(&c);
    }
    tb_free(&z.b);

    /* names: traversal, absolute, duplicates, prefix */
    static const struct { const char *a, *b; const char *frag; } names[] = {
        {"arch/data.pkl", "arch/../etc/passwd", "'..'"},
        {"arch/data.pkl", "/arch/data/0", "absolute"},
        {"arch/data.pkl", "arch/data\\0", "backslash"},
        {"arch/data.pkl", "arch//data", "empty path"},
        {"arch/data.pkl", "arch/./x", "'.'"},
        {"arch/data.pkl", "C:/x", "drive"},
        {"arch/data.pkl", "arch/a\nb", "control"},
        {"arch/data.pkl", "arch/data.pkl", "duplicate"},
        {"arch/data.pkl", "other/data/0", "outside the archive folder"},
        {"data.pkl", "data/0", "top-level folder"},
        {"arch/data.pkl", "arch/", "outside the archive folder"},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        zw_ent e[2] = {{names[i].a, k_pkl, 3, 0, 0, 0, false}, {names[i].b, k_dat, 4, 0, 0, 0, false}};
        zw_write(&z, e, 2, ZW_ZIP64);
        char what[96];
        snprintf(what, sizeof what, "names '%s'", names[i].frag);
        expect_fail(z.b.p, z.b.n, HQ_ERR_FORMAT, names[i].frag, what);
        tb_free(&z.b);
    }

    /* ---- CRC policy: stored entries checked only when asked, 0 = absent ---- */
    {
        zw_ent e[2] = {{"a/x", k_dat, 8, 0, 0, 0, false}, {"a/y", k_dat, 8, 0, 0, 0, true}};
        zw_write(&z, e, 2, ZW_ZIP64);
        z.b.p[z.data[0]] ^= 1; /* corrupt x's data */
        fmt_zip a;
        char err[HQ_ERR_LEN] = "";
        CHECK(fmt_zip_open_from_buffer(z.b.p, z.b.n, "t", &a, err) == HQ_OK, "crc archive opens: %s", err);
        const uint8_t *d;
        uint8_t *own;
        CHECK(fmt_zip_read(&a, fmt_zip_find(&a, "x"), false, "t", &d, &own, err) == HQ_OK, "no crc check requested");
        hq_status r = fmt_zip_read(&a, fmt_zip_find(&a, "x"), true, "t", &d, &own, err);
        CHECK(r == HQ_ERR_FORMAT && strstr(err, "CRC32"), "crc mismatch detected: %s", err);
        CHECK(fmt_zip_read(&a, fmt_zip_find(&a, "y"), true, "t", &d, &own, err) == HQ_OK, "crc 0 = not recorded");
        fmt_zip_free(&a);
        tb_free(&z.b);
    }

    /* ---- deflate: valid, corrupt, bomb ---- */
    {
        uint8_t plain[3000];
        for (size_t i = 0; i < sizeof plain; i++) plain[i] = (uint8_t)("abcab"[i % 5] + (i % 7 == 0));
        size_t cn;
        uint8_t *comp = zw_deflate(plain, sizeof plain, &cn);
        uint32_t crc = (uint32_t)crc32(0, plain, sizeof plain);
        zw_ent e[1] = {{"a/z", comp, cn, 8, sizeof plain, crc, false}};
        zw_write(&z, e, 1, ZW_ZIP64);
        fmt_zip a;
        char err[HQ_ERR_LEN] = "";
        hq_status r = fmt_zip_open_from_buffer(z.b.p, z.b.n, "t", &a, err);
        CHECK(r == HQ_OK, "deflate archive opens: %s", err);
        const uint8_t *d = NULL;
        uint8_t *own = NULL;
        if (!r) {
            r = fmt_zip_read(&a, fmt_zip_find(&a, "z"), false, "t", &d, &own, err);
            CHECK(r == HQ_OK && own && d == own && !memcmp(d, plain, sizeof plain), "inflate: %s", err);
            hq_free(own);
            fmt_zip_free(&a);
        }
        /* wrong CRC, corrupt stream, wrong usize */
        tb_set32(z.b.p + z.cdh[0] + 16, crc ^ 1);
        CHECK(fmt_zip_open_from_buffer(z.b.p, z.b.n, "t", &a, err) == HQ_OK, "opens");
        r = fmt_zip_read(&a, fmt_zip_find(&a, "z"), false, "t", &d, &own, err);
        CHECK(r == HQ_ERR_FORMAT && strstr(err, "CRC32") && !own, "deflate crc: %s", err);
        fmt_zip_free(&a);
        tb_set32(z.b.p + z.cdh[0] + 16, crc);
        z.b.p[z.data[0] + cn / 2] ^= 0x55;
        CHECK(fmt_zip_open_from_buffer(z.b.p, z.b.n, "t", &a, err) == HQ_OK, "opens");
        r = fmt_zip_read(&a, fmt_zip_find(&a, "z"), false, "t", &d, &own, err);
        CHECK(r == HQ_ERR_FORMAT && !own, "corrupt deflate stream: %s", err);
        fmt_zip_free(&a);
        z.b.p[z.data[0] + cn / 2] ^= 0x55;
        tb_set32(z.b.p + z.cdh[0] + 24, sizeof plain + 1);
        CHECK(fmt_zip_open_from_buffer(z.b.p, z.b.n, "t", &a, err) == HQ_OK, "opens");
        r = fmt_zip_read(&a, fmt_zip_find(&a, "z"), false, "t", &d, &own, err);
        CHECK(r == HQ_ERR_FORMAT && strstr(err, "size"), "deflate usize mismatch: %s", err);
        fmt_zip_free(&a);
        /* bomb: claims far more than HQ_MAX_DEFLATE_RATIO x csize */
        tb_set32(z.b.p + z.cdh[0] + 24, (uint32_t)(cn * HQ_MAX_DEFLATE_RATIO + 1));
        expect_fail(z.b.p, z.b.n, HQ_ERR_LIMIT, "HQ_MAX_DEFLATE_RATIO", "deflate bomb");
        tb_free(&z.b);
        free(comp);
        /* a real high-ratio stream: 4 MB of zeros compress ~1000:1 or better */
        size_t big = 4u << 20;
        uint8_t *zeros = calloc(1, big);
        comp = zw_deflate(zeros, big, &cn);
        zw_ent e2[1] = {{"a/z", comp, cn, 8, big, (uint32_t)crc32(0, zeros, (uInt)big), false}};
        zw_write(&z, e2, 1, ZW_ZIP64);
        expect_fail(z.b.p, z.b.n, HQ_ERR_LIMIT, "HQ_MAX_DEFLATE_RATIO", "real zero bomb");
        tb_free(&z.b);
        free(comp);
        free(zeros);
    }

    /* ---- every truncation and a few hundred byte flips: clean result ---- */
    make(&z, ZW_ZIP64 | ZW_PAD | ZW_SAT_LHO);
    int bad = 0;
    for (size_t n = 0; n < z.b.n; n++) {
        fmt_zip a;
        char err[HQ_ERR_LEN] = "";
        uint8_t *cp = malloc(n ? n : 1); /* exact-size copy so ASan sees overreads */
        memcpy(cp, z.b.p, n);
        hq_status r = fmt_zip_open_from_buffer(cp, n, "t", &a, err);
        if (r == HQ_OK || !err[0]) bad++;
        fmt_zip_free(&a);
        free(cp);
    }
    CHECK(bad == 0, "%d truncations opened or failed without a message", bad);
    uint64_t seed = 0x9e3779b97f4a7c15ull;
    int ok_flips = 0;
    bad = 0;
    for (int i = 0; i < 400; i++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        uint8_t *cp = malloc(z.b.n);
        memcpy(cp, z.b.p, z.b.n);
        cp[(seed >> 33) % z.b.n] ^= (uint8_t)(1u << ((seed >> 20) & 7));
        fmt_zip a;
        char err[HQ_ERR_LEN] = "";
        hq_status r = fmt_zip_open_from_buffer(cp, z.b.n, "t", &a, err);
        if (r == HQ_OK) {
            ok_flips++;
            for (uint64_t k = 0; k < a.n_entries; k++) { /* everything it reports is in range */
                const fmt_zip_entry *e = &a.entries[k];
                if (e->data_off + e->csize > a.cd_offset) bad++;
                const uint8_t *d;
                uint8_t *own = NULL;
                (void)fmt_zip_read(&a, e, true, "t", &d, &own, err);
                hq_free(own);
            }
        } else if (!err[0] || (r != HQ_ERR_FORMAT && r != HQ_ERR_LIMIT && r != HQ_ERR_UNSUPPORTED)) {
            bad++;
        }
        fmt_zip_free(&a);
        free(cp);
    }
    CHECK(bad == 0, "%d byte flips gave an unclean result", bad);
    printf("byte flips: %d of 400 still open (flips in data/padding)\n", ok_flips);
    tb_free(&z.b);

    /* ---- allocation failures ---- */
    make(&z, ZW_ZIP64);
    for (int64_t k = 1; k <= 4; k++) {
        fmt_zip a;
        char err[HQ_ERR_LEN] = "";
        hq_alloc_fail_at(k);
        hq_status r = fmt_zip_open_from_buffer(z.b.p, z.b.n, "t", &a, err);
        hq_alloc_fail_at(0);
        CHECK(r == HQ_OK || r == HQ_ERR_NOMEM, "alloc failure %lld: %s", (long long)k, err);
        fmt_zip_free(&a);
    }
    tb_free(&z.b);
    TEST_END();
}

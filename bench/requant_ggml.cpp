// bench/requant_ggml.cpp — "the same file, quantized by ggml": reads hyquant's
// F32 GGUF (the base) and a GGUF that `hyquant quantize` wrote from it, and
// writes a copy of the quantized file (header, metadata, float tensors byte
// for byte) in which every quantized tensor's bytes are replaced in place by
// ggml_quantize_chunk's (llama.cpp's quantizer) output for the base's F32
// values, same type, same importance matrix when one is given. Same types,
// same sizes, same offsets: `hyquant verify` on both files compares the two
// quantizers at exactly equal bits per weight. (Patching in place rather than
// gguf_write_to_file: ggml would rewrite shapes like [128, 1] as 1-D.)
//
// Built by bench/bench_quality_peers.py against ggml from llama.cpp's sources
// under bench/work/ (not committed); never part of `make`.
//
// usage: requant_ggml BASE_F32.gguf HQ_QUANT.gguf OUT.gguf [IMATRIX.gguf]
// imatrix (llama-imatrix layout, quant/imatrix.h): importance of a column =
// in_sum2 / counts, per matrix; expert tables (n_mat = rows) per row; a slice
// that saw no tokens gets uniform importance (as hyquant does).
#include "ggml.h"
#include "gguf.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

static void die(const char *m, const char *a = "") {
    fprintf(stderr, "requant_ggml: %s %s\n", m, a);
    exit(1);
}

// read tensor `id` of a file opened with no_alloc into a byte vector
static std::vector<uint8_t> read_tensor(FILE *f, const gguf_context *g, int64_t id) {
    std::vector<uint8_t> v(gguf_get_tensor_size(g, id));
    if (fseeko(f, (off_t)(gguf_get_data_offset(g) + gguf_get_tensor_offset(g, id)), SEEK_SET) != 0 ||
        fread(v.data(), 1, v.size(), f) != v.size())
        die("short read of tensor", gguf_get_tensor_name(g, id));
    return v;
}

static gguf_context *open_meta(const char *path) {
    gguf_init_params p = {true, nullptr};
    gguf_context *g = gguf_init_from_file(path, p);
    if (!g) die("cannot read GGUF", path);
    return g;
}

int main(int argc, char **argv) {
    if (argc != 4 && argc != 5) {
        fprintf(stderr, "usage: %s BASE_F32.gguf HQ_QUANT.gguf OUT.gguf [IMATRIX.gguf]\n", argv[0]);
        return 2;
    }
    gguf_context *base = open_meta(argv[1]), *hq = open_meta(argv[2]);
    gguf_context *im = argc == 5 ? open_meta(argv[4]) : nullptr;
    FILE *fb = fopen(argv[1], "rb"), *fh = fopen(argv[2], "rb"), *fi = im ? fopen(argv[4], "rb") : nullptr;
    if (!fb || !fh || (im && !fi)) die("cannot open inputs");

    // out = byte copy of the quantized file, then patched
    {
        FILE *fo = fopen(argv[3], "wb");
        if (!fo) die("cannot create", argv[3]);
        std::vector<char> buf(1 << 20);
        rewind(fh);
        size_t n;
        while ((n = fread(buf.data(), 1, buf.size(), fh)) > 0)
            if (fwrite(buf.data(), 1, n, fo) != n) die("write failed", argv[3]);
        if (fclose(fo) != 0) die("write failed", argv[3]);
    }
    FILE *fo = fopen(argv[3], "r+b");
    if (!fo) die("cannot reopen", argv[3]);
    int n_q = 0, n_im = 0;
    for (int64_t i = 0; i < gguf_get_n_tensors(hq); i++) {
        const char *name = gguf_get_tensor_name(hq, i);
        const ggml_type type = gguf_get_tensor_type(hq, i);
        const int64_t *ne = gguf_get_tensor_ne(hq, i);
        if (!ggml_is_quantized(type)) continue;
        {
            const int64_t bi = gguf_find_tensor(base, name);
            if (bi < 0) die("tensor missing from the base:", name);
            const ggml_type bt = gguf_get_tensor_type(base, bi);
            const int64_t n_per_row = ne[0], nrows = ne[1] * ne[2] * ne[3];
            std::vector<uint8_t> raw = read_tensor(fb, base, bi);
            std::vector<float> x((size_t)(n_per_row * nrows));
            if (bt == GGML_TYPE_F32) memcpy(x.data(), raw.data(), x.size() * 4);
            else if (bt == GGML_TYPE_F16) ggml_fp16_to_fp32_row((const ggml_fp16_t *)raw.data(), x.data(), (int64_t)x.size());
            else if (bt == GGML_TYPE_BF16) ggml_bf16_to_fp32_row((const ggml_bf16_t *)raw.data(), x.data(), (int64_t)x.size());
            else die("base tensor is not float:", name);
            // importance: <name>.in_sum2 {ncols, n_mat}, <name>.counts {1, n_mat}
            std::vector<float> imp;
            int64_t n_mat = 0;
            if (im) {
                const int64_t s2 = gguf_find_tensor(im, (std::string(name) + ".in_sum2").c_str());
                const int64_t cn = gguf_find_tensor(im, (std::string(name) + ".counts").c_str());
                if (s2 >= 0 && cn >= 0) {
                    std::vector<uint8_t> a = read_tensor(fi, im, s2), c = read_tensor(fi, im, cn);
                    const int64_t *sne = gguf_get_tensor_ne(im, s2);
                    n_mat = sne[1];
                    if (sne[0] != n_per_row || (n_mat != 1 && n_mat != nrows)) die("imatrix shape mismatch:", name);
                    const float *sum2 = (const float *)a.data(), *cnt = (const float *)c.data();
                    imp.resize((size_t)(n_mat * n_per_row));
                    for (int64_t m = 0; m < n_mat; m++) {
                        bool ok = cnt[m] > 0;
                        double energy = 0;
                        for (int64_t j = 0; ok && j < n_per_row; j++) energy += sum2[m * n_per_row + j];
                        ok = ok && energy > 0;
                        for (int64_t j = 0; j < n_per_row; j++)
                            imp[m * n_per_row + j] = ok ? sum2[m * n_per_row + j] / cnt[m] : 1.0f;
                    }
                    n_im++;
                }
            }
            std::vector<uint8_t> q(gguf_get_tensor_size(hq, i));
            const size_t row = ggml_row_size(type, n_per_row);
            if (n_mat > 1) {  // expert table: one importance vector per row
                for (int64_t r = 0; r < nrows; r++)
                    ggml_quantize_chunk(type, x.data() + r * n_per_row, q.data() + r * row, 0, 1, n_per_row,
                                        imp.data() + r * n_per_row);
            } else {
                size_t got = ggml_quantize_chunk(type, x.data(), q.data(), 0, nrows, n_per_row,
                                                 imp.empty() ? nullptr : imp.data());
                if (got != q.size()) die("size mismatch for", name);
            }
            if (fseeko(fo, (off_t)(gguf_get_data_offset(hq) + gguf_get_tensor_offset(hq, i)), SEEK_SET) != 0 ||
                fwrite(q.data(), 1, q.size(), fo) != q.size())
                die("write failed for", name);
            n_q++;
        }
    }
    if (fclose(fo) != 0) die("write failed", argv[3]);
    fprintf(stderr, "requant_ggml: %d tensors quantized by ggml (%d with imatrix), %lld kept -> %s\n", n_q, n_im,
            (long long)gguf_get_n_tensors(hq) - n_q, argv[3]);
    gguf_free(base), gguf_free(hq);
    if (im) gguf_free(im), fclose(fi);
    fclose(fb), fclose(fh);
    return 0;
}

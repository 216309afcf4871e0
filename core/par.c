/* core/par.c — MPI when built with it and started by a launcher; a world of
 * one otherwise (core/par.h). MPI calls use MPI_BYTE / MPI_DOUBLE with
 * counts split below INT_MAX, so sizes stay 64-bit here. */
#include "par.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifdef HQ_MPI
#include <mpi.h>
#endif

static int g_rank = 0, g_size = 1, g_local = 1;
static bool g_mpi = false; /* MPI_Init was called */

void hq_par_split(int64_t n, int r, int size, int64_t *lo, int64_t *hi) {
    int64_t base = n / size, extra = n % size;
    *lo = (int64_t)r * base + (r < extra ? r : extra);
    *hi = *lo + base + (r < extra ? 1 : 0);
}

int hq_par_rank(void) { return g_rank; }
int hq_par_size(void) { return g_size; }
int hq_par_local_size(void) { return g_local; }
bool hq_par_active(void) { return g_size > 1; }
bool hq_par_launched(void) { return g_mpi; }
#ifdef HQ_MPI
bool hq_par_built(void) { return true; }
#else
bool hq_par_built(void) { return false; }
#endif
int hq_par_default_threads(void) {
    if (g_local <= 1) return 0;
    long n = sysconf(_SC_NPROCESSORS_ONLN) / g_local;
    return n < 1 ? 1 : (int)n;
}

#ifndef HQ_MPI
hq_status hq_par_init(char *err) {
    (void)err;
    return HQ_OK;
}
void hq_par_finalize(void) {}
hq_status hq_par_agree(hq_status st, char *err) {
    (void)err;
    return st;
}
hq_status hq_par_check_same(const void *data, uint64_t len, const char *what, char *err) {
    (void)data, (void)len, (void)what, (void)err;
    return HQ_OK;
}
hq_status hq_par_gather_f64(const double *v, int64_t n, double *all, char *err) {
    (void)err;
    if (n > 0 && all != v) memcpy(all, v, (size_t)n * sizeof(double));
    return HQ_OK;
}
hq_status hq_par_sum_f64(double *v, int64_t n, char *err) {
    (void)v, (void)n, (void)err;
    return HQ_OK;
}
hq_status hq_par_send(const void *buf, uint64_t bytes, int to, int tag, char *err) {
    (void)buf, (void)bytes, (void)to, (void)tag;
    return hq_fail(err, HQ_ERR_INTERNAL, "send to rank %d in a world of one", to);
}
hq_status hq_par_recv(void *buf, uint64_t bytes, int from, int tag, char *err) {
    (void)buf, (void)bytes, (void)from, (void)tag;
    return hq_fail(err, HQ_ERR_INTERNAL, "receive from rank %d in a world of one", from);
}
hq_status hq_par_bcast(void *buf, uint64_t bytes, int root, char *err) {
    (void)buf, (void)bytes, (void)root, (void)err;
    return HQ_OK;
}
#else
/* a launcher's environment: Open MPI's mpirun, PMIx (srun, prte), PMI-1/2 */
static bool launched(void) {
    static const char *const vars[] = {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
        if (getenv(vars[i])) return true;
    return false;
}

static hq_status mpi_fail(char *err, int rc, const char *what) {
    char s[MPI_MAX_ERROR_STRING] = "";
    int len = 0;
    MPI_Error_string(rc, s, &len);
    return hq_fail(err, HQ_ERR_IO, "MPI %s failed: %s", what, s);
}
#define MPI_TRY(call, what)                                 \
    do {                                                    \
        int rc_ = (call);                                   \
        if (rc_ != MPI_SUCCESS) return mpi_fail(err, rc_, what); \
    } while (0)

hq_status hq_par_init(char *err) {
    if (!launched()) return HQ_OK;
    int argc = 0;
    char **argv = NULL;
    MPI_TRY(MPI_Init(&argc, &argv), "init");
    g_mpi = true;
    /* errors come back as codes (we report them), not as an abort */
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_size);
    MPI_Comm local;
    if (MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &local) == MPI_SUCCESS) {
        MPI_Comm_size(local, &g_local);
        MPI_Comm_free(&local);
    }
    return HQ_OK;
}

void hq_par_finalize(void) {
    if (g_mpi) MPI_Finalize();
    g_mpi = false;
}

/* bytes in pieces below INT_MAX */
#define PIECE (1 << 30)

hq_status hq_par_send(const void *buf, uint64_t bytes, int to, int tag, char *err) {
    const char *p = buf;
    for (uint64_t o = 0; o < bytes || o == 0; o += PIECE) {
        int k = (int)(bytes - o < PIECE ? bytes - o : PIECE);
        MPI_TRY(MPI_Send(p + o, k, MPI_BYTE, to, tag, MPI_COMM_WORLD), "send");
        if (bytes == 0) break;
    }
    return HQ_OK;
}

hq_status hq_par_recv(void *buf, uint64_t bytes, int from, int tag, char *err) {
    char *p = buf;
    for (uint64_t o = 0; o < bytes || o == 0; o += PIECE) {
        int k = (int)(bytes - o < PIECE ? bytes - o : PIECE);
        MPI_TRY(MPI_Recv(p + o, k, MPI_BYTE, from, tag, MPI_COMM_WORLD, MPI_STATUS_IGNORE), "receive");
        if (bytes == 0) break;
    }
    return HQ_OK;
}

hq_status hq_par_bcast(void *buf, uint64_t bytes, int root, char *err) {
    if (!g_mpi) return HQ_OK;
    char *p = buf;
    for (uint64_t o = 0; o < bytes; o += PIECE) {
        int k = (int)(bytes - o < PIECE ? bytes - o : PIECE);
        MPI_TRY(MPI_Bcast(p + o, k, MPI_BYTE, root, MPI_COMM_WORLD), "broadcast");
    }
    return HQ_OK;
}

hq_status hq_par_agree(hq_status st, char *err) {
    if (!g_mpi) return st;
    int mine = st != HQ_OK ? g_rank : g_size, first = g_size;
    if (MPI_Allreduce(&mine, &first, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD) != MPI_SUCCESS) return st;
    if (first == g_size) return HQ_OK;
    /* the failing rank's status and message, for every rank to report */
    struct {
        int st;
        char msg[HQ_ERR_LEN];
    } m = {(int)st, ""};
    if (g_rank == first) snprintf(m.msg, sizeof m.msg, "%s", err ? err : "");
    if (MPI_Bcast(&m, (int)sizeof m, MPI_BYTE, first, MPI_COMM_WORLD) != MPI_SUCCESS) return st != HQ_OK ? st : HQ_ERR_IO;
    if (err && g_rank != first) snprintf(err, HQ_ERR_LEN, "rank %d: %s", first, m.msg);
    return (hq_status)m.st;
}

hq_status hq_par_check_same(const void *data, uint64_t len, const char *what, char *err) {
    if (!g_mpi) return HQ_OK;
    /* FNV-1a of the bytes, compared with rank 0's */
    uint64_t h = 1469598103934665603ull, h0;
    const unsigned char *p = data;
    for (uint64_t i = 0; i < len; i++) h = (h ^ p[i]) * 1099511628211ull;
    h0 = h;
    MPI_TRY(MPI_Bcast(&h0, 1, MPI_UINT64_T, 0, MPI_COMM_WORLD), "broadcast");
    int bad = h != h0 ? g_rank : g_size, first = g_size;
    MPI_TRY(MPI_Allreduce(&bad, &first, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD), "allreduce");
    if (first < g_size)
        return hq_fail(err, HQ_ERR_ARG, "%s differs on rank %d from rank 0 (each rank must run the same binary on the "
                       "same files with the same options)", what, first);
    return HQ_OK;
}

hq_status hq_par_gather_f64(const double *v, int64_t n, double *all, char *err) {
    if (!g_mpi) {
        if (n > 0 && all != v) memcpy(all, v, (size_t)n * sizeof(double));
        return HQ_OK;
    }
    if (n < 0 || n > INT32_MAX) return hq_fail(err, HQ_ERR_LIMIT, "gather of %lld values", (long long)n);
    MPI_TRY(MPI_Gather(v, (int)n, MPI_DOUBLE, all, (int)n, MPI_DOUBLE, 0, MPI_COMM_WORLD), "gather");
    return HQ_OK;
}

hq_status hq_par_sum_f64(double *v, int64_t n, char *err) {
    if (!g_mpi || n <= 0) return HQ_OK;
    uint64_t bytes;
    if (!hq_mul_u64((uint64_t)n, (uint64_t)g_size * sizeof(double), &bytes))
        return hq_fail(err, HQ_ERR_LIMIT, "sum of %lld values over %d ranks", (long long)n, g_size);
    double *all = g_rank == 0 ? hq_malloc(bytes) : NULL;
    int ok = g_rank != 0 || all != NULL, all_ok = 0;
    MPI_TRY(MPI_Allreduce(&ok, &all_ok, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD), "allreduce");
    if (!all_ok) {
        hq_free(all);
        return hq_fail(err, HQ_ERR_NOMEM, "out of memory gathering %lld values on rank 0", (long long)n);
    }
    hq_status st = hq_par_gather_f64(v, n, all, err);
    if (st == HQ_OK && g_rank == 0)
        for (int64_t i = 0; i < n; i++) { /* rank order: the same sum on every run */
            double s = 0;
            for (int r = 0; r < g_size; r++) s += all[(int64_t)r * n + i];
            v[i] = s;
        }
    hq_free(all);
    if (st != HQ_OK) return st;
    return hq_par_bcast(v, (uint64_t)n * sizeof(double), 0, err);
}
#endif

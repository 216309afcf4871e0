/* core/par.h — scale-out over processes with MPI (docs/scale-out.md).
 *
 * One binary for both worlds: built with MPI when the Makefile finds mpicc
 * (HQ_MPI), and MPI is initialised only when a launcher started the process
 * (mpirun / srun set OMPI_COMM_WORLD_SIZE, PMIX_RANK or PMI_RANK). Otherwise
 * — no MPI in the build, or a plain `hyquant …` — this is a world of one rank
 * and every call below is a no-op that returns at once, so single-process
 * behaviour and output bytes are exactly those of a build without MPI.
 *
 * Collectives are deterministic: reductions gather to rank 0 and add in rank
 * order (and callers add per-item values in item order), so the answer of N
 * ranks equals the answer of one process bit for bit where the work is split
 * by whole items. */
#ifndef HQ_PAR_H
#define HQ_PAR_H
#include "hq.h"

/* Called once from main before the command runs (argv is not touched). */
hq_status hq_par_init(char *err);
void hq_par_finalize(void);
int hq_par_rank(void);        /* 0 in a world of one */
int hq_par_size(void);        /* 1 without a launcher */
int hq_par_local_size(void);  /* ranks on this host (threads are shared among them) */
bool hq_par_active(void);     /* size > 1 */
bool hq_par_launched(void);
bool hq_par_built(void);      /* this binary has MPI (HQ_MPI) */   /* MPI_Init ran (a launcher started us, even with one rank) */
/* threads for this rank when the user chose none: the cores shared among the
 * ranks on this host (0 = all cores when this host runs one rank) */
int hq_par_default_threads(void);

/* Every rank learns whether any rank failed: st/err are this rank's outcome;
 * on return they hold the lowest failing rank's status and message (prefixed
 * "rank R: " when R ≠ this rank), HQ_OK everywhere if none failed. A
 * collective: every rank must call it at the same point. */
hq_status hq_par_agree(hq_status st, char *err);

/* All ranks must have the same bytes (hash of the model header + options):
 * refuses with "what differs on rank R" before any work. Collective. */
hq_status hq_par_check_same(const void *data, uint64_t len, const char *what, char *err);

/* rank 0 gathers: all[r·n .. r·n+n) = rank r's v[0..n) (all: size·n doubles
 * on rank 0, ignored elsewhere). Collective. */
hq_status hq_par_gather_f64(const double *v, int64_t n, double *all, char *err);
/* v[0..n) summed over ranks in rank order (gathered to rank 0, added there,
 * broadcast). Collective. */
hq_status hq_par_sum_f64(double *v, int64_t n, char *err);
/* point to point (rank 0 collecting pieces in order): tag distinguishes streams */
hq_status hq_par_send(const void *buf, uint64_t bytes, int to, int tag, char *err);
hq_status hq_par_recv(void *buf, uint64_t bytes, int from, int tag, char *err);
hq_status hq_par_bcast(void *buf, uint64_t bytes, int root, char *err);

/* items [0, n) split into contiguous runs, one per rank: rank r gets
 * [*lo, *hi); the first n % size ranks one item more */
void hq_par_split(int64_t n, int r, int size, int64_t *lo, int64_t *hi);
#endif

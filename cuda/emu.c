/* cuda/emu.c — a strict CPU SIMT emulator for kernels written against
 * cuda/hq_cuda.h (see there for the rules it enforces).
 *
 * Model: blocks run one at a time; every CUDA thread of the block is a
 * ucontext with its own stack. A thread runs until it reaches __syncthreads,
 * a warp operation or its end, then yields to the scheduler. The scheduler
 * sweeps the runnable threads in the configured order; when none is runnable
 * it completes warp operations whose lanes have all arrived, then releases a
 * barrier that every live thread reached, and otherwise reports the
 * violation (divergence, lanes missing from a mask, deadlock).
 * Cost: glibc swapcontext makes a syscall per switch (~0.5 µs): keep test
 * grids to tens of thousands of threads.
 */
#include "hq_cuda.h" // defines: cu_emu_launch, __syncthreads, cu_emu_warp_op

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ucontext.h>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/common_interface_defs.h>
#define EMU_ASAN 1
#else
#define EMU_ASAN 0
#endif

#define EMU_STACK (128u * 1024u)
#define EMU_SHARED_CAP (256u * 1024u)
#define EMU_MAX_SLOTS 64
#define EMU_MAX_THREADS 1024

typedef enum { TS_READY, TS_BARRIER, TS_WARP, TS_DONE } emu_tstate;
enum { WOP_SYNCWARP = 100 };

typedef struct {
    ucontext_t ctx;
    uint3 tid;
    int linear;
    emu_tstate st;
    int shared_k;
    int wop, warg, wwidth;
    unsigned wmask;
    uint32_t wbits, wresult;
    void *fake_stack; /* ASan fiber bookkeeping */
} emu_thread;

static struct {
    emu_thread th[EMU_MAX_THREADS];
    int nth, cur;
    ucontext_t sched;
    dim3 grid, block;
    uint3 bidx;
    unsigned char *stacks;
    unsigned char *shared;
    size_t shared_used;
    struct { size_t off, size; } slots[EMU_MAX_SLOTS];
    int nslots;
    cu_emu_kernel_fn fn;
    const void *args;
    const char *name;
    int order;
    unsigned seed;
    int error;
    unsigned long long switches;
    const void *sched_stack_bottom;
    size_t sched_stack_size;
} E;

uint3 cu_emu_thread_idx(void) { return E.th[E.cur].tid; }
uint3 cu_emu_block_idx(void) { return E.bidx; }
dim3 cu_emu_block_dim(void) { return E.block; }
dim3 cu_emu_grid_dim(void) { return E.grid; }
unsigned long long cu_emu_switches(void) { return E.switches; }
void cu_emu_set_order(int order, unsigned seed) {
    E.order = order;
    E.seed = seed ? seed : 1u;
}

__attribute__((format(printf, 1, 2))) static void emu_error(const char *fmt, ...) {
    if (E.error) return;
    E.error = 1;
    fprintf(stderr, "cuda-emu: kernel %s block (%u,%u,%u): ", E.name ? E.name : "?", E.bidx.x, E.bidx.y,
            E.bidx.z);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

/* thread -> scheduler */
static void emu_yield(void) {
    emu_thread *t = &E.th[E.cur];
    E.switches++;
#if EMU_ASAN
    __sanitizer_start_switch_fiber(&t->fake_stack, E.sched_stack_bottom, E.sched_stack_size);
#endif
    swapcontext(&t->ctx, &E.sched);
#if EMU_ASAN
    __sanitizer_finish_switch_fiber(t->fake_stack, NULL, NULL);
#endif
}

static void emu_entry(void) {
#if EMU_ASAN
    __sanitizer_finish_switch_fiber(NULL, &E.sched_stack_bottom, &E.sched_stack_size);
#endif
    E.fn(E.args);
    emu_thread *t = &E.th[E.cur];
    t->st = TS_DONE;
#if EMU_ASAN
    __sanitizer_start_switch_fiber(NULL, E.sched_stack_bottom, E.sched_stack_size);
#endif
    /* never resumed after this */
    swapcontext(&t->ctx, &E.sched);
}

void __syncthreads(void) {
    emu_thread *t = &E.th[E.cur];
    t->st = TS_BARRIER;
    emu_yield();
}

uint32_t cu_emu_warp_op(int op, unsigned mask, uint32_t bits, int arg, int width) {
    emu_thread *t = &E.th[E.cur];
    int lane = t->linear & 31;
    if (!(mask >> lane & 1u)) {
        emu_error("thread %d calls a warp op with mask 0x%x that excludes itself", t->linear, mask);
        t->st = TS_DONE;
        emu_yield();
        return 0;
    }
    t->st = TS_WARP;
    t->wop = op;
    t->wmask = mask;
    t->wbits = bits;
    t->warg = arg;
    t->wwidth = width;
    emu_yield();
    return t->wresult;
}

void __syncwarp(unsigned mask) { (void)cu_emu_warp_op(WOP_SYNCWARP, mask, 0, 0, 32); }

void *cu_emu_shared(unsigned long long bytes, const char *name) {
    emu_thread *t = &E.th[E.cur];
    int k = t->shared_k++;
    if (k < E.nslots) {
        if (E.slots[k].size != bytes) {
            emu_error("shared array %s: requested with %llu bytes but %zu elsewhere in the block", name, bytes,
                      E.slots[k].size);
            return E.shared;
        }
        return E.shared + E.slots[k].off;
    }
    size_t off = (E.shared_used + 15u) & ~(size_t)15u;
    if (k >= EMU_MAX_SLOTS || bytes > EMU_SHARED_CAP || off + bytes > EMU_SHARED_CAP) {
        emu_error("shared array %s: %llu bytes exceed the emulator's %u-byte shared memory (or > %d arrays)",
                  name, bytes, EMU_SHARED_CAP, EMU_MAX_SLOTS);
        return E.shared;
    }
    E.slots[k].off = off;
    E.slots[k].size = bytes;
    E.nslots = k + 1;
    E.shared_used = off + bytes;
    /* poison (NaN floats, -1 ints) when the block first declares the array:
     * same effect as poisoning all shared memory per block, at the cost of
     * what the kernel uses instead of the 256 KiB capacity */
    memset(E.shared + off, 0xFF, (size_t)bytes);
    return E.shared + off;
}

static unsigned emu_rand(void) {
    E.seed = E.seed * 1103515245u + 12345u;
    return E.seed >> 8;
}

static void sweep_order(int *idx, int n) {
    for (int i = 0; i < n; i++) idx[i] = E.order == CU_EMU_ORDER_REVERSE ? n - 1 - i : i;
    if (E.order == CU_EMU_ORDER_RANDOM)
        for (int i = n - 1; i > 0; i--) {
            int j = (int)(emu_rand() % (unsigned)(i + 1));
            int tmp = idx[i];
            idx[i] = idx[j];
            idx[j] = tmp;
        }
}

/* Completes warp operations whose named lanes have all arrived with the same
 * op and mask. Returns the number of lanes released. */
static int resolve_warps(void) {
    int released = 0;
    for (int w0 = 0; w0 < E.nth; w0 += 32) {
        int nl = E.nth - w0 < 32 ? E.nth - w0 : 32;
        for (int l = 0; l < nl; l++) {
            emu_thread *t = &E.th[w0 + l];
            if (t->st != TS_WARP) continue;
            unsigned m = t->wmask;
            int ok = 1;
            for (int j = 0; j < 32 && ok; j++) {
                if (!(m >> j & 1u)) continue;
                if (j >= nl) { ok = 0; break; }
                emu_thread *u = &E.th[w0 + j];
                if (u->st != TS_WARP || u->wmask != m || u->wop != t->wop) ok = 0;
            }
            if (!ok) continue;
            uint32_t ballot = 0;
            for (int j = 0; j < nl; j++)
                if ((m >> j & 1u) && E.th[w0 + j].wbits) ballot |= 1u << j;
            for (int j = 0; j < nl; j++) {
                if (!(m >> j & 1u)) continue;
                emu_thread *u = &E.th[w0 + j];
                int width = u->wwidth > 0 && u->wwidth <= 32 ? u->wwidth : 32;
                int seg = j & ~(width - 1), src = j;
                switch (u->wop) {
                case CU_EMU_SHFL_IDX: src = seg + (u->warg & (width - 1)); break;
                case CU_EMU_SHFL_DOWN: src = j + u->warg < seg + width ? j + u->warg : j; break;
                case CU_EMU_SHFL_UP: src = j - u->warg >= seg ? j - u->warg : j; break;
                case CU_EMU_SHFL_XOR: src = (j ^ u->warg) < seg + width ? (j ^ u->warg) : j; break;
                default: break;
                }
                if (u->wop == CU_EMU_BALLOT) u->wresult = ballot;
                else if (u->wop == WOP_SYNCWARP) u->wresult = 0;
                else {
                    if (src >= nl || !(m >> src & 1u)) {
                        emu_error("shuffle: lane %d of warp %d reads lane %d, which is not in the mask 0x%x", j, w0 / 32, src, m);
                        return 0;
                    }
                    u->wresult = E.th[w0 + src].wbits;
                }
            }
            for (int j = 0; j < nl; j++)
                if (m >> j & 1u) E.th[w0 + j].st = TS_READY, released++;
        }
    }
    return released;
}

static void report_stuck(void) {
    for (int i = 0; i < E.nth; i++) {
        emu_thread *t = &E.th[i];
        if (t->st != TS_WARP) continue;
        int w0 = i & ~31;
        for (int j = 0; j < 32; j++) {
            if (!(t->wmask >> j & 1u)) continue;
            int k = w0 + j;
            const char *why = k >= E.nth                    ? "does not exist in this block"
                              : E.th[k].st == TS_DONE        ? "has exited"
                              : E.th[k].st == TS_BARRIER     ? "waits at __syncthreads"
                              : E.th[k].wmask != t->wmask    ? "is in a warp op with a different mask"
                              : E.th[k].wop != t->wop        ? "is in a different warp op"
                                                             : NULL;
            if (why) {
                emu_error("warp op of thread %d (mask 0x%x) names lane %d, which %s", i, t->wmask, j, why);
                return;
            }
        }
    }
    emu_error("deadlock: no thread can make progress (%d threads)", E.nth);
}

/* getcontext "returns twice": keep it out of run_block's frame so no local
 * there can be clobbered (gcc -Wclobbered under ASan). */
__attribute__((noinline)) static void init_thread(int i) {
    emu_thread *t = &E.th[i];
    memset(t, 0, sizeof *t);
    t->linear = i;
    t->tid.x = (unsigned)i % E.block.x;
    t->tid.y = ((unsigned)i / E.block.x) % E.block.y;
    t->tid.z = (unsigned)i / (E.block.x * E.block.y);
    t->st = TS_READY;
    getcontext(&t->ctx);
    t->ctx.uc_stack.ss_sp = E.stacks + (size_t)i * EMU_STACK;
    t->ctx.uc_stack.ss_size = EMU_STACK;
    t->ctx.uc_link = NULL;
    makecontext(&t->ctx, emu_entry, 0);
}

static int run_block(void) {
    int idx[EMU_MAX_THREADS];
    E.shared_used = 0;
    E.nslots = 0;
    for (int i = 0; i < E.nth; i++) init_thread(i);
    for (;;) {
        sweep_order(idx, E.nth);
        for (int k = 0; k < E.nth; k++) {
            emu_thread *t = &E.th[idx[k]];
            if (t->st != TS_READY) continue;
            E.cur = idx[k];
            E.switches++;
#if EMU_ASAN
            void *fake = NULL;
            __sanitizer_start_switch_fiber(&fake, E.stacks + (size_t)E.cur * EMU_STACK, EMU_STACK);
#endif
            swapcontext(&E.sched, &t->ctx);
#if EMU_ASAN
            __sanitizer_finish_switch_fiber(fake, NULL, NULL);
#endif
            if (E.error) return -1;
        }
        int done = 0, bar = 0, warp = 0, first_done = -1, first_bar = -1;
        for (int i = 0; i < E.nth; i++) {
            emu_tstate s = E.th[i].st;
            if (s == TS_DONE) { done++; if (first_done < 0) first_done = i; }
            else if (s == TS_BARRIER) { bar++; if (first_bar < 0) first_bar = i; }
            else if (s == TS_WARP) warp++;
        }
        if (done == E.nth) return 0;
        if (warp && resolve_warps()) continue;
        if (E.error) return -1;
        if (warp) {
            report_stuck();
            return -1;
        }
        if (bar) {
            if (done) {
                emu_error("barrier divergence: thread %d exited while thread %d waits at __syncthreads", first_done,
                          first_bar);
                return -1;
            }
            for (int i = 0; i < E.nth; i++) E.th[i].st = TS_READY;
            continue;
        }
        emu_error("scheduler stuck (%d live threads)", E.nth - done);
        return -1;
    }
}

int cu_emu_launch(cu_emu_kernel_fn fn, const char *name, dim3 grid, dim3 block, const void *args) {
    unsigned long long nth = (unsigned long long)block.x * block.y * block.z;
    E.name = name;
    E.error = 0;
    if (nth == 0 || nth > EMU_MAX_THREADS || grid.x == 0 || grid.y == 0 || grid.z == 0) {
        emu_error("bad launch configuration: %llu threads per block (max %d), grid (%u,%u,%u)", nth,
                  EMU_MAX_THREADS, grid.x, grid.y, grid.z);
        return -1;
    }
    if (!E.stacks) {
        E.stacks = malloc((size_t)EMU_MAX_THREADS * EMU_STACK);
        E.shared = malloc(EMU_SHARED_CAP);
        if (!E.stacks || !E.shared) {
            free(E.stacks);
            free(E.shared);
            E.stacks = NULL;
            E.shared = NULL;
            fprintf(stderr, "cuda-emu: out of memory for thread stacks\n");
            return -1;
        }
        if (!E.seed) E.seed = 1;
    }
    E.fn = fn;
    E.args = args;
    E.grid = grid;
    E.block = block;
    E.nth = (int)nth;
    for (unsigned z = 0; z < grid.z; z++)
        for (unsigned y = 0; y < grid.y; y++)
            for (unsigned x = 0; x < grid.x; x++) {
                E.bidx.x = x;
                E.bidx.y = y;
                E.bidx.z = z;
                if (run_block() != 0) return -1;
            }
    return 0;
}

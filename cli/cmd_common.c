/* cli/cmd_common.c — helpers shared by the subcommands that run the model.
 *
 * libgomp's default barrier wait spins for a long time (~300k iterations)
 * before sleeping. On a shared 2-core machine that is already busy, a
 * spinning thread steals the core of the thread doing the work, and the many
 * short parallel regions of a forward pass become 5–10× slower than one
 * thread. libgomp reads GOMP_SPINCOUNT only at program start, so a command
 * that will run the model re-executes itself once with a short spin
 * (GOMP_SPINCOUNT=10000, then futex sleep) unless the user set
 * OMP_WAIT_POLICY or GOMP_SPINCOUNT. */
#include "commands.h" // defines: hq_cmd_tame_openmp

#include <stdlib.h>
#include <unistd.h>

void hq_cmd_tame_openmp(int argc, char **argv) {
#ifdef _OPENMP
    (void)argc;
    if (getenv("OMP_WAIT_POLICY") || getenv("GOMP_SPINCOUNT") || getenv("HQ_NO_REEXEC")) return;
    if (setenv("GOMP_SPINCOUNT", "10000", 1) != 0) return;
    /* argv is the subcommand's view (argv[0] = command name); main's array
     * starts one slot earlier with the program path */
    execv("/proc/self/exe", argv - 1);
    unsetenv("GOMP_SPINCOUNT"); /* exec failed: carry on with the default */
#else
    (void)argc;
    (void)argv;
#endif
}

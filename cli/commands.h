/* cli/commands.h — the subcommands of `hyquant`. Each returns the process
 * exit status: 0 success, 1 failure (bad input, I/O), 2 usage error,
 * 3 a verify threshold was exceeded. argv[0] is the subcommand name.
 * One file per command, cli/cmd_<name>.c; they parse options, call the
 * library (convert/, quant/, runtime/, verify/) and print. Library code never
 * includes this header. */
#ifndef HQ_COMMANDS_H
#define HQ_COMMANDS_H
#include "../core/hq.h"

int hq_cmd_inspect(int argc, char **argv);
int hq_cmd_convert(int argc, char **argv);
int hq_cmd_perplexity(int argc, char **argv);
int hq_cmd_generate(int argc, char **argv);
int hq_cmd_calibrate(int argc, char **argv);
int hq_cmd_quantize(int argc, char **argv);
int hq_cmd_verify(int argc, char **argv);

/* argv as the subcommand receives it (argv[-1] being the program path):
 * re-executes the process once with a short OpenMP spin (GOMP_SPINCOUNT)
 * unless the user chose OMP_WAIT_POLICY/GOMP_SPINCOUNT; see cli/cmd_common.c.
 * Returns only when no re-exec happened. */
#endif

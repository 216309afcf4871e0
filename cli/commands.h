/* cli/commands.h — the subcommands of `hyquant`. Each returns the process
 * exit status: 0 success, 1 failure (bad input, I/O), 2 usage error,
 * 3 a verify threshold was exceeded. argv[0] is the subcommand name.
 * Implementations live with their module (convert/cmd_*.c, runtime/cmd_*.c,
 * quant/cmd_*.c, verify/cmd_*.c); cli/stubs.c has weak placeholders that say
 * "not available in this build" until a module provides the real one. */
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

/* Prints "hyquant <cmd>: <msg>" on stderr and returns the exit status for st. */
int hq_cmd_error(const char *cmd, hq_status st, const char *msg);
#endif

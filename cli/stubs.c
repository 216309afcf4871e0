/* cli/stubs.c — weak placeholders for subcommands and hooks whose module has
 * not been built yet. A real definition anywhere in the link overrides them. */
#include "commands.h" // defines: weak hq_cmd_*
#include "../quant/quant.h"

#include <stdio.h>

static int not_available(const char *cmd) {
    fprintf(stderr, "hyquant %s: not available in this build yet\n", cmd);
    return 2;
}

#define HQ_STUB(name) \
    __attribute__((weak)) int hq_cmd_##name(int argc, char **argv) { (void)argc; (void)argv; return not_available(#name); }
HQ_STUB(inspect)
HQ_STUB(convert)
HQ_STUB(perplexity)
HQ_STUB(generate)
HQ_STUB(calibrate)
HQ_STUB(quantize)
HQ_STUB(verify)

__attribute__((weak)) const q_type_traits *q_traits(uint32_t type) {
    (void)type;
    return NULL;
}

/* tests link the library without cli/main.c; the real one lives there */
__attribute__((weak)) int hq_cmd_error(const char *cmd, hq_status st, const char *msg) {
    fprintf(stderr, "hyquant %s: %s\n", cmd, msg && *msg ? msg : hq_status_name(st));
    return st == HQ_ERR_ARG ? 2 : 1;
}

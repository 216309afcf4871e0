/* cli/main.c — the `hyquant` binary: subcommand dispatch. */
#include "commands.h" // defines: hq_cmd_*
#include "../core/par.h" // defines: hq_par_init, hq_par_rank
#include "../core/cpu.h" // defines: hq_cpu_check_env, hq_cpu_describe

#include <stdio.h>
#include <string.h>

#define HQ_VERSION "0.1.0"

typedef struct {
    const char *name;
    int (*fn)(int, char **);
    const char *help;
    bool splits; /* splits its work over MPI ranks (docs/scale-out.md); else rank 0 runs it alone */
} hq_command;

static const hq_command k_commands[] = {
    {"inspect", hq_cmd_inspect, "show variant, hyper-parameters and tensors of a checkpoint or GGUF", false},
    {"convert", hq_cmd_convert, "convert a PyTorch/safetensors checkpoint to GGUF", false},
    {"perplexity", hq_cmd_perplexity, "perplexity of a GGUF model on a text (llama-perplexity protocol)", true},
    {"generate", hq_cmd_generate, "generate text from a prompt", false},
    {"calibrate", hq_cmd_calibrate, "collect importance statistics (imatrix) on calibration text", true},
    {"quantize", hq_cmd_quantize, "quantize a GGUF model to int8/int4 block formats", false},
    {"verify", hq_cmd_verify, "compare a quantized model with its base: PPL, KLD, top-1, per-layer drift", false},
};

static void usage(FILE *f) {
    fprintf(f, "hyquant %s — convert, quantize and verify Cheems/Doge hybrid SSM+attention+MoE models\n\n"
               "usage: hyquant <command> [options]   (hyquant <command> --help for details)\n\ncommands:\n",
            HQ_VERSION);
    for (size_t i = 0; i < sizeof k_commands / sizeof *k_commands; i++)
        fprintf(f, "  %-11s %s\n", k_commands[i].name, k_commands[i].help);
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    hq_install_signal_cleanup();
    char cerr[HQ_ERR_LEN];
    if (hq_cpu_check_env(cerr) != HQ_OK) { /* HQ_CPU: core/cpu.h */
        fprintf(stderr, "hyquant: %s\n", cerr);
        return 2;
    }
    const char *alias = hq_cpu_info_get()->env_alias;
    if (alias) fprintf(stderr, "hyquant: note: %s is deprecated, use HQ_CPU=scalar\n", alias);
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *c = argv[1];
    if (!strcmp(c, "-h") || !strcmp(c, "--help") || !strcmp(c, "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(c, "--version") || !strcmp(c, "version")) {
        char cpu[160];
        hq_cpu_describe(cpu, sizeof cpu);
        printf("hyquant %s\n%s\n", HQ_VERSION, cpu);
        printf("mpi: %s\n", hq_par_built() ? "yes (mpirun/srun split perplexity and calibrate)" : "no");
        return 0;
    }
    for (size_t i = 0; i < sizeof k_commands / sizeof *k_commands; i++)
        if (!strcmp(c, k_commands[i].name)) {
            hq_set_command_name(c);
            char err[HQ_ERR_LEN] = "";
            if (hq_par_init(err) != HQ_OK) {
                fprintf(stderr, "hyquant %s: %s\n", c, err);
                return 1;
            }
            int rc = 0;
            if (k_commands[i].splits || !hq_par_active() || hq_par_rank() == 0) rc = k_commands[i].fn(argc - 1, argv + 1);
            /* a command that does not split its work runs once, on rank 0;
             * every rank exits with its status */
            if (!k_commands[i].splits && hq_par_active()) {
                int32_t r = rc;
                hq_par_bcast(&r, sizeof r, 0, err);
                rc = r;
            }
            hq_par_finalize();
            return rc;
        }
    fprintf(stderr, "hyquant: unknown command '%s'\n", c);
    usage(stderr);
    return 2;
}

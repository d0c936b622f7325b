/* main.c — the one sluice binary: `sluice serve` (the daemon), the client commands, and the
 * internal `__launch` mode that confines native handlers (SANDBOX.md decision 3). */
#include <stdio.h>
#include <string.h>

#include "runtime/cli.h"
#include "runtime/daemon.h"
#include "sandbox/jail.h"
#include "runtime/version.h"

static int usage(FILE *f)
{
    fprintf(f, "usage: sluice <command> [options]\n"
               "  serve        run the daemon (sluice serve --help for its options)\n"
               "  version      print the version\n");
    cli_print_commands(f);
    return f == stderr ? 2 : 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) return usage(stderr);
    const char *cmd = argv[1];
    if (!strcmp(cmd, "serve")) return rt_serve_main(argc - 1, argv + 1);
    /* internal: confine a native handler and execve it (SANDBOX.md decision 3) */
    if (!strcmp(cmd, "__launch")) return sbx_launcher_main(argc, argv);
    if (!strcmp(cmd, "version") || !strcmp(cmd, "--version")) {
        printf("sluice %s\n", SLUICE_VERSION);
        return 0;
    }
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "help") || !strcmp(cmd, "-h")) return usage(stdout);
    return cli_main(argc - 1, argv + 1);
}

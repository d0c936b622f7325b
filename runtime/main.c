/* main.c — the one sluice binary: `sluice serve` (the daemon) and the client commands. */
#include <stdio.h>
#include <string.h>

#include "runtime/version.h"

static int usage(FILE *f)
{
    fprintf(f, "usage: sluice <command> [options]\n"
               "  serve        run the daemon\n"
               "  version      print the version\n");
    return f == stderr ? 2 : 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) return usage(stderr);
    if (!strcmp(argv[1], "version") || !strcmp(argv[1], "--version")) {
        printf("sluice %s\n", SLUICE_VERSION);
        return 0;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) return usage(stdout);
    fprintf(stderr, "sluice: unknown command '%s'\n", argv[1]);
    return usage(stderr);
}

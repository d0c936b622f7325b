/* config.h — daemon options: one table drives the command line, the environment
 * (SLUICE_<NAME>, e.g. SLUICE_LISTEN) and --help (STYLE.md 10). */
#ifndef RT_CONFIG_H
#define RT_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#include "broker/broker.h"

typedef struct rt_config {
    char listen_host[64];
    int listen_port;
    char data_dir[1024];
    enum brk_fsync fsync;
    bool throttle;
    char region[64];
    char account[16];
    char auth_file[1024];         /* "" = parse signatures, do not verify */
    int64_t transition_ms;        /* CREATING/UPDATING/DELETING delay */
    uint64_t max_body;            /* request body cap (bytes) */
    uint32_t idle_timeout_ms;
    bool check_only;              /* --check-config: validate and exit */
    bool quiet;
} rt_config;

/* Defaults, then environment, then argv (argv[0] is the subcommand). On error prints a one-line
 * message to stderr and returns 2 (usage); returns 1 after printing --help; 0 to proceed. */
int rt_config_parse(rt_config *c, int argc, char **argv);
void rt_config_help(void);  /* prints the generated option list to stdout */

#endif

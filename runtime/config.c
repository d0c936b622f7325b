/* config.c — one option table drives the command line, the environment and --help
 * (STYLE.md 10, after Redis standardConfig). Precedence: defaults < SLUICE_* env < argv. */
#include "runtime/config.h"

#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum opt_kind { OPT_STR, OPT_ADDR, OPT_FSYNC, OPT_BOOL, OPT_INT, OPT_SIZE };

typedef struct opt {
    const char *name;     /* --name and SLUICE_NAME (upper case, '-' -> '_') */
    enum opt_kind kind;
    const char *def;
    size_t off;           /* offset of the field in rt_config */
    size_t len;           /* buffer size for strings */
    int64_t min, max;     /* OPT_INT / OPT_SIZE range */
    const char *help;
} opt;

#define F(field) offsetof(rt_config, field), sizeof(((rt_config *)0)->field)

static const opt opts[] = {
    {"listen", OPT_ADDR, "127.0.0.1:4566", F(listen_host), 0, 0,
     "address to bind, HOST:PORT (port 0 = any free port)"},
    {"data-dir", OPT_STR, "./.sluice", F(data_dir), 0, 0, "data directory"},
    {"fsync", OPT_FSYNC, "everysec", F(fsync), 0, 0, "durability: always|everysec|no"},
    {"throttle", OPT_BOOL, "false", F(throttle), 0, 0,
     "emulate per-shard throughput limits (ProvisionedThroughputExceededException)"},
    {"region", OPT_STR, "us-east-1", F(region), 0, 0, "region used in ARNs"},
    {"account", OPT_STR, "000000000000", F(account), 0, 0, "12-digit account id used in ARNs"},
    {"auth", OPT_STR, "", F(auth_file), 0, 0,
     "file of 'ACCESS_KEY SECRET' lines: verify SigV4 signatures (default: parse only)"},
    {"transition-ms", OPT_INT, "500", F(transition_ms), 0, 600000,
     "CREATING/UPDATING/DELETING duration in ms"},
    {"max-body", OPT_SIZE, "7340032", F(max_body), 1024, 1LL << 31, "request body cap in bytes"},
    {"idle-timeout-ms", OPT_INT, "60000", F(idle_timeout_ms), 100, 3600000,
     "close connections idle this long"},
    {"check-config", OPT_BOOL, "false", F(check_only), 0, 0, "validate the options and exit"},
    {"quiet", OPT_BOOL, "false", F(quiet), 0, 0, "log warnings and errors only"},
    {NULL, 0, NULL, 0, 0, 0, 0, NULL},
};

static int set_opt(rt_config *c, const opt *o, const char *val, const char *origin)
{
    char *field = (char *)c + o->off;
    char *end;

    switch (o->kind) {
    case OPT_STR:
        if (strlen(val) >= o->len) goto bad;
        strcpy(field, val);
        return 0;
    case OPT_ADDR: {
        const char *colon = strrchr(val, ':');
        long port;
        if (!colon || colon == val || (size_t)(colon - val) >= sizeof c->listen_host) goto bad;
        errno = 0;
        port = strtol(colon + 1, &end, 10);
        if (errno || *end || end == colon + 1 || port < 0 || port > 65535) goto bad;
        memcpy(c->listen_host, val, (size_t)(colon - val));
        c->listen_host[colon - val] = '\0';
        c->listen_port = (int)port;
        return 0;
    }
    case OPT_FSYNC:
        if (!strcmp(val, "everysec")) c->fsync = BRK_FSYNC_EVERYSEC;
        else if (!strcmp(val, "always")) c->fsync = BRK_FSYNC_ALWAYS;
        else if (!strcmp(val, "no")) c->fsync = BRK_FSYNC_NO;
        else goto bad;
        return 0;
    case OPT_BOOL:
        if (!strcmp(val, "true") || !strcmp(val, "1") || !strcmp(val, "yes")) *(bool *)field = true;
        else if (!strcmp(val, "false") || !strcmp(val, "0") || !strcmp(val, "no"))
            *(bool *)field = false;
        else goto bad;
        return 0;
    case OPT_INT:
    case OPT_SIZE: {
        long long v;
        errno = 0;
        v = strtoll(val, &end, 10);
        if (errno || *end || end == val || v < o->min || v > o->max) goto bad;
        if (o->len == sizeof(int64_t)) *(int64_t *)field = v;
        else if (o->len == sizeof(uint32_t)) *(uint32_t *)field = (uint32_t)v;
        else goto bad;
        return 0;
    }
    }
bad:
    fprintf(stderr, "sluice: invalid value '%s' for %s%s\n", val, origin, o->name);
    return 2;
}

static const opt *find_opt(const char *name, size_t len)
{
    for (const opt *o = opts; o->name; o++)
        if (strlen(o->name) == len && !strncmp(o->name, name, len)) return o;
    return NULL;
}

void rt_config_help(void)
{
    printf("usage: sluice serve [options]\n\noptions (also settable as SLUICE_<NAME> "
           "environment variables):\n");
    for (const opt *o = opts; o->name; o++) {
        char flag[64];
        snprintf(flag, sizeof flag, "--%s%s", o->name, o->kind == OPT_BOOL ? "" : " VALUE");
        printf("  %-28s %s (default: %s)\n", flag, o->help, o->def[0] ? o->def : "none");
    }
}

int rt_config_parse(rt_config *c, int argc, char **argv)
{
    int rc;

    memset(c, 0, sizeof *c);
    for (const opt *o = opts; o->name; o++)
        if ((rc = set_opt(c, o, o->def, "default of --")) != 0) return rc;

    for (const opt *o = opts; o->name; o++) {
        char env[64] = "SLUICE_";
        size_t n = strlen(env);
        for (const char *p = o->name; *p && n < sizeof env - 1; p++)
            env[n++] = *p == '-' ? '_' : (char)toupper((unsigned char)*p);
        env[n] = '\0';
        const char *v = getenv(env);
        if (v && (rc = set_opt(c, o, v, "environment variable for --")) != 0) return rc;
    }

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            rt_config_help();
            return 1;
        }
        if (strncmp(a, "--", 2) != 0) {
            fprintf(stderr, "sluice: unexpected argument '%s' (see sluice serve --help)\n", a);
            return 2;
        }
        const char *name = a + 2;
        const char *eq = strchr(name, '=');
        size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
        const opt *o = find_opt(name, nlen);
        if (!o) {
            fprintf(stderr, "sluice: unknown option '%s' (see sluice serve --help)\n", a);
            return 2;
        }
        const char *val = eq ? eq + 1 : NULL;
        if (!val) {
            if (o->kind == OPT_BOOL) val = "true";
            else if (i + 1 < argc) val = argv[++i];
            else {
                fprintf(stderr, "sluice: option --%s needs a value\n", o->name);
                return 2;
            }
        }
        if ((rc = set_opt(c, o, val, "--")) != 0) return rc;
    }

    if (strlen(c->account) != 12 || strspn(c->account, "0123456789") != 12) {
        fprintf(stderr, "sluice: --account must be 12 digits, got '%s'\n", c->account);
        return 2;
    }
    return 0;
}

/* cli.h — the `sluice` client commands (stream, put, tail, fn, invoke, logs, map, dlq, up, top).
 * They talk to a running daemon only over HTTP (libcurl), exactly as aws-cli does: the Kinesis
 * JSON protocol, the Lambda REST API and the daemon's admin endpoints (runtime/admin.h).
 *
 * Common options of every command: --endpoint URL (env SLUICE_ENDPOINT, default
 * http://127.0.0.1:4566), --json (machine-readable output), --help. With SLUICE_ACCESS_KEY_ID and
 * SLUICE_SECRET_ACCESS_KEY set, requests are signed with SigV4 (for a daemon run with --auth);
 * otherwise a syntactically valid, unverified Authorization header is sent.
 *
 * Exit status: 0 ok, 1 failed (API error, daemon unreachable, function error), 2 usage error.
 */
#ifndef RT_CLI_H
#define RT_CLI_H

#include <stdio.h>

/* Runs one client command; argv[0] is the command name ("stream", "put", ...), as main() passes
 * argv + 1 for everything other than serve/version/__launch. Returns the exit status. */
int cli_main(int argc, char **argv);

/* Writes one line per client command ("  stream create   Create a stream ...") for the usage
 * text of `sluice --help`. */
void cli_print_commands(FILE *f);

#endif

/* launcher_main.c — `sluice-launch`, a stand-alone build of the trusted launcher (the same code
 * as `sluice __launch`, sandbox/launcher.c) linked only against libc and libseccomp.
 *
 * Why a second binary: the launcher runs once per cold start, and the dynamic loader's work is
 * most of its cost. Started as the full `sluice` binary (~40 shared libraries: libcurl, libuv,
 * SQLite, ...) a cold start measured ~5 ms here; as this binary ~1.7 ms. The daemon can point
 * its launcher path at either: both accept the same command line (jail.h). */
#include "sandbox/jail.h"

int main(int argc, char **argv)
{
    return sbx_launcher_main(argc, argv);
}

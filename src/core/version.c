/* The one place the version lives in the code: CMake's project version, passed in as
 * SLUICE_VERSION, for the CLI's --version, the WebSocket connect reply, the metrics' build info and
 * the benchmark client's CONNECT. */
#include <sluice/sluice.h>

#ifndef SLUICE_VERSION
#error "SLUICE_VERSION is set by CMakeLists.txt (the project's version)"
#endif

const char *sl_version(void)
{
    return SLUICE_VERSION;
}

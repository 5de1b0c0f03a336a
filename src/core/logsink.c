/* The log sink of core/logsink.h: format once, then the owner's function or stderr. */
#include "core/logsink.h"

#include <stdarg.h>
#include <stdio.h>

void sl__logsink_printf(const sl__logsink *s, int level, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (s != NULL && s->fn != NULL)
        s->fn(s->ud, level, line);
    else
        fprintf(stderr, "sluice: %s\n", line);
}

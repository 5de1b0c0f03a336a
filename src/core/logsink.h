/* Where the layers below the server (the stores, the Redis links) send their messages for the
 * operator. They cannot know sluiced's log (server/log.c sits above them), so whoever creates them
 * lends a sink: one function that takes a finished line. Without one (NULL, as in the CLI and the
 * tests) a line goes to stderr as "sluice: ...". A sink may be called from the store's commit
 * thread: its function must be safe there (sluiced's writes each line with one write(2) on a
 * descriptor that reopening replaces in place). */
#ifndef SLUICE_CORE_LOGSINK_H
#define SLUICE_CORE_LOGSINK_H

/* Levels, the same numbers as sluiced's log levels (server/log.h). */
enum { SL__SINK_DEBUG = 0, SL__SINK_INFO = 1, SL__SINK_WARN = 2, SL__SINK_ERROR = 3 };

typedef struct sl__logsink {
    void (*fn)(void *ud, int level, const char *msg); /* msg: one line, no newline */
    void *ud;
} sl__logsink;

/* Formats one line (cut at 1 KiB) and hands it to s, or to stderr when s or s->fn is NULL. Lines
 * carry codes, names and counts only: never data or secrets. */
void sl__logsink_printf(const sl__logsink *s, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif

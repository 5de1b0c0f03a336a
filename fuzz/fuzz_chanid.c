/* Fuzz target: channel ids and patterns (src/core/chanid.c) and the pattern set compiled into a
 * trie (src/security/patset.c), which ACLs and token scopes use to decide access. Each input line
 * is tried as an id and as a pattern. Checked: a valid id is a valid pattern matching itself; and
 * for every valid id among the lines, the set of every valid pattern among them matches exactly
 * when sl_pattern_match says one of them does, and exactly when the naive matcher below does. The
 * naive matcher is the documented rule written the slow way: ids and patterns are segments split at
 * '.' or ':' (either), "*" is one segment, a final "**" is any number of segments (none too), and
 * anything else (a leading '$' included) is compared byte for byte; a '#' user list is part of the
 * segment it ends, even when a user id holds a '.'. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sluice/sluice.h>

#include "security/patset.h"

#define MAX_LINES 48
#define MAX_SEGS (SL_CHANNEL_ID_MAX + 1)

typedef struct segs {
    const char *s[MAX_SEGS];
    size_t n[MAX_SEGS];
    size_t count;
} segs;

static void split(const char *p, segs *out)
{
    out->count = 0;
    const char *start = p;
    for (;; p++) {
        if (*p == '#') /* a user list belongs to the segment it ends (user-limited channels) */
            p += strlen(p);
        if (*p == '.' || *p == ':' || *p == '\0') {
            out->s[out->count] = start;
            out->n[out->count] = (size_t)(p - start);
            out->count++;
            if (*p == '\0')
                return;
            start = p + 1;
        }
    }
}

static int naive(const segs *pat, size_t i, const segs *ch, size_t j)
{
    if (i == pat->count)
        return j == ch->count;
    if (pat->n[i] == 2 && memcmp(pat->s[i], "**", 2) == 0)
        return 1; /* only ever last (sl_pattern_valid) */
    if (j == ch->count)
        return 0;
    int one = (pat->n[i] == 1 && pat->s[i][0] == '*') ||
              (pat->n[i] == ch->n[j] && memcmp(pat->s[i], ch->s[j], ch->n[j]) == 0);
    return one && naive(pat, i + 1, ch, j + 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (text == NULL)
        abort();
    memcpy(text, data, size);
    text[size] = '\0';
    char *line[MAX_LINES];
    size_t len[MAX_LINES], n = 0;
    for (char *p = text; n < MAX_LINES;) {
        char *nl = memchr(p, '\n', (size_t)(text + size - p));
        line[n] = p;
        len[n] = nl ? (size_t)(nl - p) : (size_t)(text + size - p);
        n++;
        if (nl == NULL)
            break;
        *nl = '\0';
        p = nl + 1;
    }

    sl__patset *ps;
    if (sl__patset_new(&ps) != SL_OK)
        abort();
    int pat_ok[MAX_LINES], id_ok[MAX_LINES], all = 0;
    size_t added = 0;
    for (size_t i = 0; i < n; i++) {
        /* The validators take a length: a NUL inside must not pass as the end of a shorter id.
         * From here on the line is the C string the set takes. */
        size_t cl = strlen(line[i]);
        if (cl != len[i] &&
            (sl_pattern_valid(line[i], len[i]) || sl_channel_id_valid(line[i], len[i])))
            abort();
        len[i] = cl;
        pat_ok[i] = sl_pattern_valid(line[i], len[i]);
        id_ok[i] = sl_channel_id_valid(line[i], len[i]);
        if (id_ok[i] && (!pat_ok[i] || !sl_pattern_match(line[i], line[i])))
            abort();
        int rc = sl__patset_add(ps, line[i]);
        if ((rc == SL_OK) != (pat_ok[i] != 0))
            abort();
        if (rc == SL_OK) {
            added++;
            all |= len[i] == 2 && memcmp(line[i], "**", 2) == 0;
        }
    }
    if (sl__patset_size(ps) != added || sl__patset_matches_all(ps) != all)
        abort();

    static segs ps_segs, ch_segs;
    for (size_t c = 0; c < n; c++) {
        if (!id_ok[c])
            continue;
        split(line[c], &ch_segs);
        int lib = 0;
        for (size_t p = 0; p < n; p++) {
            if (!pat_ok[p])
                continue;
            split(line[p], &ps_segs);
            int a = sl_pattern_match(line[p], line[c]), b = naive(&ps_segs, 0, &ch_segs, 0);
            if (a != b)
                abort();
            lib |= a;
        }
        if (sl__patset_match(ps, line[c]) != lib)
            abort();
    }
    sl__patset_free(ps);
    free(text);
    return 0;
}

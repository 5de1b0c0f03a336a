/* Fuzz target: the tail of an audit log as GET /audit reads it
 * (sl__audit_tail_lines in src/security/audit.c). The first byte chooses the limit (0..31) and
 * whether the bytes are the whole file or only its end; the rest is the file's end. The lines
 * found must be exactly what a naive split says: complete lines only (an unterminated last line
 * is being written), not the first line of a buffer that is only the file's end (it may be the
 * end of a longer line), the last `limit` of them, oldest first, each inside the buffer and
 * followed by its newline; `cut` set exactly when older lines exist or may. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "security/audit_internal.h"

#define CAP 32

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t limit = data[0] & 31;
    int whole = (data[0] >> 5) & 1;
    const char *buf = (const char *)data + 1;
    size_t n = size - 1;
    size_t starts[CAP], lens[CAP];
    int cut = -1;
    size_t k = sl__audit_tail_lines(buf, n, whole, limit, starts, lens, CAP, &cut);
    if (k > limit || (cut != 0 && cut != 1))
        abort();
    /* the naive split: every complete line, with its start */
    size_t *ns = malloc((n + 1) * sizeof *ns), *nl = malloc((n + 1) * sizeof *nl);
    if (ns == NULL || nl == NULL)
        abort();
    size_t nterm = 0, s = 0;
    for (size_t i = 0; i < n; i++)
        if (buf[i] == '\n') {
            ns[nterm] = s;
            nl[nterm++] = i - s;
            s = i + 1;
        }
    size_t first = whole ? 0 : (nterm > 0 ? 1 : 0); /* the first line of an end is not trusted */
    size_t elig = nterm - first;
    size_t want = elig < limit ? elig : limit;
    if (k != want)
        abort();
    for (size_t i = 0; i < k; i++) {
        size_t j = nterm - k + i;
        if (starts[i] != ns[j] || lens[i] != nl[j] || starts[i] + lens[i] >= n ||
            buf[starts[i] + lens[i]] != '\n' || memchr(buf + starts[i], '\n', lens[i]))
            abort();
    }
    int cut_naive = elig > limit || (!whole && nterm > 0) || (whole && elig > k);
    if (cut != cut_naive)
        abort();
    free(ns);
    free(nl);
    return 0;
}

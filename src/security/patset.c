/* Segment trie of channel patterns. Each node has sorted exact children (binary search), one "*"
 * child, and flags for "a pattern ends here" and "** follows here". Because a trie node sits at a
 * fixed depth, matching visits each node at most once: even adversarial channel names cannot make
 * it backtrack more than the trie is large. */
#include "security/patset.h"

#include <sluice/sluice.h>

#include <stdlib.h>
#include <string.h>

typedef struct node node;
struct node {
    char *seg; /* exact segment (NULL for the root and the star child) */
    size_t seglen;
    node **kids; /* exact children, sorted by segment */
    size_t nkids, cap;
    node *star;         /* child for "*" */
    unsigned char end;  /* a pattern ends at this node */
    unsigned char rest; /* a pattern continues with "**" here: matches anything below */
};

struct sl__patset {
    node root;
    size_t count;
};

static int is_sep(char c)
{
    return c == '.' || c == ':';
}

/* A '#' user list (user-limited channels) is part of the segment it ends: it may hold a '.'. */
static size_t seglen(const char *s)
{
    size_t n = 0;
    while (s[n] && !is_sep(s[n]))
        if (s[n++] == '#')
            return n + strlen(s + n);
    return n;
}

static int segcmp(const char *a, size_t an, const char *b, size_t bn)
{
    int c = memcmp(a, b, an < bn ? an : bn);
    if (c)
        return c;
    return an < bn ? -1 : an > bn;
}

/* Index of seg in n->kids, or -(insertion point) - 1. */
static long find_kid(const node *n, const char *seg, size_t len)
{
    size_t lo = 0, hi = n->nkids;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = segcmp(n->kids[mid]->seg, n->kids[mid]->seglen, seg, len);
        if (c == 0)
            return (long)mid;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -(long)lo - 1;
}

static void node_free(node *n)
{
    for (size_t i = 0; i < n->nkids; i++) {
        node_free(n->kids[i]);
        free(n->kids[i]);
    }
    free(n->kids);
    if (n->star) {
        node_free(n->star);
        free(n->star);
    }
    free(n->seg);
}

int sl__patset_new(sl__patset **out)
{
    *out = calloc(1, sizeof **out);
    return *out ? SL_OK : SL_ENOMEM;
}

void sl__patset_free(sl__patset *ps)
{
    if (ps == NULL)
        return;
    node_free(&ps->root);
    free(ps);
}

static node *exact_child(node *n, const char *seg, size_t len)
{
    long i = find_kid(n, seg, len);
    if (i >= 0)
        return n->kids[i];
    size_t at = (size_t)(-i - 1);
    if (n->nkids == n->cap) {
        size_t cap = n->cap ? n->cap * 2 : 2;
        node **k = realloc(n->kids, cap * sizeof *k);
        if (k == NULL)
            return NULL;
        n->kids = k;
        n->cap = cap;
    }
    node *c = calloc(1, sizeof *c);
    if (c == NULL || (c->seg = malloc(len + 1)) == NULL) {
        free(c);
        return NULL;
    }
    memcpy(c->seg, seg, len);
    c->seg[len] = '\0';
    c->seglen = len;
    memmove(n->kids + at + 1, n->kids + at, (n->nkids - at) * sizeof *n->kids);
    n->kids[at] = c;
    n->nkids++;
    return c;
}

int sl__patset_add(sl__patset *ps, const char *pattern)
{
    if (pattern == NULL || !sl_pattern_valid(pattern, strlen(pattern)))
        return SL_EINVAL;
    node *n = &ps->root;
    const char *p = pattern;
    for (;;) {
        size_t len = seglen(p);
        if (len == 2 && p[0] == '*' && p[1] == '*') {
            n->rest = 1;
            break;
        }
        node *next;
        if (len == 1 && p[0] == '*') {
            if (n->star == NULL && (n->star = calloc(1, sizeof *n->star)) == NULL)
                return SL_ENOMEM;
            next = n->star;
        } else if ((next = exact_child(n, p, len)) == NULL) {
            return SL_ENOMEM;
        }
        n = next;
        p += len;
        if (*p == '\0') {
            n->end = 1;
            break;
        }
        p++;
    }
    ps->count++;
    return SL_OK;
}

static int match_node(const node *n, const char *ch)
{
    if (n->rest)
        return 1;
    if (*ch == '\0')
        return n->end;
    size_t len = seglen(ch);
    const char *next = ch + len;
    if (*next)
        next++;
    else if (len == 0)
        return 0;
    long i = find_kid(n, ch, len);
    if (i >= 0 && match_node(n->kids[i], next))
        return 1;
    return n->star && match_node(n->star, next);
}

int sl__patset_match(const sl__patset *ps, const char *channel)
{
    if (ps == NULL || channel == NULL || *channel == '\0')
        return 0;
    return match_node(&ps->root, channel);
}

int sl__patset_matches_all(const sl__patset *ps)
{
    return ps != NULL && ps->root.rest;
}

size_t sl__patset_size(const sl__patset *ps)
{
    return ps ? ps->count : 0;
}

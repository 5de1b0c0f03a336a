/* SipHash-2-4 over two pieces (siphash.h). The pieces are fed through one 8-byte buffer, so the
 * result is the hash of their concatenation; the message words are read little-endian whatever
 * the host's byte order. */
#include "security/siphash.h"

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))

/* inline: called for every word, and each call costs about what the word's work does */
static inline uint64_t le64(const unsigned char *p)
{
    return (uint64_t)p[0] | (uint64_t)p[1] << 8 | (uint64_t)p[2] << 16 | (uint64_t)p[3] << 24 |
           (uint64_t)p[4] << 32 | (uint64_t)p[5] << 40 | (uint64_t)p[6] << 48 |
           (uint64_t)p[7] << 56;
}

typedef struct sip {
    uint64_t v0, v1, v2, v3;
} sip;

static inline void round_(sip *s)
{
    s->v0 += s->v1;
    s->v1 = ROTL(s->v1, 13);
    s->v1 ^= s->v0;
    s->v0 = ROTL(s->v0, 32);
    s->v2 += s->v3;
    s->v3 = ROTL(s->v3, 16);
    s->v3 ^= s->v2;
    s->v0 += s->v3;
    s->v3 = ROTL(s->v3, 21);
    s->v3 ^= s->v0;
    s->v2 += s->v1;
    s->v1 = ROTL(s->v1, 17);
    s->v1 ^= s->v2;
    s->v2 = ROTL(s->v2, 32);
}

static inline void absorb(sip *s, uint64_t m)
{
    s->v3 ^= m;
    round_(s);
    round_(s);
    s->v0 ^= m;
}

uint64_t sl__siphash24_2(const unsigned char key[SL__SIPHASH_KEY_LEN], const void *a, size_t alen,
                         const void *b, size_t blen)
{
    uint64_t k0 = le64(key), k1 = le64(key + 8);
    sip s = {k0 ^ 0x736f6d6570736575ULL, k1 ^ 0x646f72616e646f6dULL, k0 ^ 0x6c7967656e657261ULL,
             k1 ^ 0x7465646279746573ULL};
    unsigned char buf[8];
    size_t n = 0; /* bytes in buf */
    const unsigned char *pieces[2] = {a, b};
    size_t lens[2] = {alen, blen};
    for (int i = 0; i < 2; i++) {
        const unsigned char *p = pieces[i];
        size_t len = lens[i];
        while (len > 0 && n > 0 && n < 8) { /* top up what the last piece left */
            buf[n++] = *p++;
            len--;
        }
        if (n == 8) {
            absorb(&s, le64(buf));
            n = 0;
        }
        for (; len >= 8; p += 8, len -= 8)
            absorb(&s, le64(p));
        for (; len > 0; len--)
            buf[n++] = *p++;
    }
    uint64_t last = (uint64_t)((alen + blen) & 0xff) << 56;
    for (size_t i = 0; i < n; i++)
        last |= (uint64_t)buf[i] << (8 * i);
    absorb(&s, last);
    s.v2 ^= 0xff;
    round_(&s);
    round_(&s);
    round_(&s);
    round_(&s);
    return s.v0 ^ s.v1 ^ s.v2 ^ s.v3;
}

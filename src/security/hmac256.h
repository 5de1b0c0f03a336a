/* HMAC-SHA256 with a key prepared once, and SHA-256, without an allocation per call: what the
 * hot paths (JWT verification, signed requests, their nonces and Content-Digest) hash with.
 * OpenSSL 3's EVP one-shots look the algorithm up under a lock and allocate a provider context
 * on every call; here the key's inner and outer SHA-256 states are computed once and each MAC
 * resumes from copies of them. Where OpenSSL is built without its deprecated SHA-256 calls, a
 * keyed EVP_MAC context is restarted instead (one context per key: not for concurrent use). */
#ifndef SLUICE_SECURITY_HMAC256_H
#define SLUICE_SECURITY_HMAC256_H

#include <stddef.h>

#define SL__SHA256_LEN 32

typedef struct sl__hmac256_key sl__hmac256_key;

/* *out: release with sl__hmac256_free (which wipes it). SL_OK, SL_ENOMEM or SL_EINTERNAL. */
int sl__hmac256_new(sl__hmac256_key **out, const void *secret, size_t len);
void sl__hmac256_free(sl__hmac256_key *k);
/* 0, or -1 when OpenSSL failed. */
int sl__hmac256(sl__hmac256_key *k, const void *data, size_t len,
                unsigned char out[SL__SHA256_LEN]);
int sl__sha256(const void *data, size_t len, unsigned char out[SL__SHA256_LEN]);
/* The same over two pieces (a, then b), as if concatenated. */
int sl__sha256_2(const void *a, size_t alen, const void *b, size_t blen,
                 unsigned char out[SL__SHA256_LEN]);

#endif

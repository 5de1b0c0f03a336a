/* SipHash-2-4 (Aumasson and Bernstein, 2012): a keyed 64-bit hash for tables whose keys a client
 * chooses. The one-node nonce store files each nonce under its SipHash with a key drawn when the
 * store is made, so no one can aim nonces at one stretch of a table. Written here rather than
 * taken from OpenSSL's EVP_MAC "SIPHASH", which costs several times as much per call through
 * its provider dispatch (docs/BENCHMARKS.md, "The nonce store"); tests/unit/test_httpsig.c
 * checks it against the paper's vector and against OpenSSL's. */
#ifndef SLUICE_SECURITY_SIPHASH_H
#define SLUICE_SECURITY_SIPHASH_H

#include <stddef.h>
#include <stdint.h>

#define SL__SIPHASH_KEY_LEN 16

/* SipHash-2-4 of the concatenation of a and b under key, as the reference implementation's
 * 64-bit output read little-endian. */
uint64_t sl__siphash24_2(const unsigned char key[SL__SIPHASH_KEY_LEN], const void *a, size_t alen,
                         const void *b, size_t blen);

#endif

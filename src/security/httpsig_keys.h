/* The signature keyring's insides, shared by the parts of the HTTP Message Signatures module:
 * security/httpsig_keys.c (the keyring, its key file), security/httpsig.c (verifying) and
 * security/httpsig_sign.c (signing). Nothing here is public API. */
#ifndef SLUICE_SECURITY_HTTPSIG_KEYS_H
#define SLUICE_SECURITY_HTTPSIG_KEYS_H

#include <sluice/httpsig.h>

#include <openssl/evp.h>

#include "security/hmac256.h"

typedef struct key {
    /* o.keyid again, in the key itself: the lookup every signed request makes reads no other
     * memory (after the system calls of a request the heap behind a pointer is a cache miss) */
    char id[SL_HTTPSIG_KEYID_MAX + 1];
    sl_httpsig_key_opts o; /* strings and arrays below are owned copies */
    EVP_PKEY *pkey;        /* public key algorithms */
    sl__hmac256_key *mac;  /* hmac-sha256: keyed once (security/hmac256.h) */
} key;

struct sl_httpsig_keyring {
    key *k;
    size_t n, cap;
};

/* The key of that keyid, or NULL. Borrowed from kr. */
const key *sl__httpsig_find_key(const sl_httpsig_keyring *kr, const char *keyid);
/* 1 when s can be a keyid: 1..SL_HTTPSIG_KEYID_MAX bytes of printable ASCII without '"' or '\\'. */
int sl__httpsig_keyid_valid(const char *s);
/* 1 when the verifier (httpsig.c) can build component c: a derived one it knows, or a lowercase
 * field name. */
int sl__httpsig_component_valid(const char *c);

#endif

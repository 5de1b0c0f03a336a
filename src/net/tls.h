/* TLS for the HTTP transport (OpenSSL 3), with no I/O of its own: a server context built from
 * certificate, key and (for mutual TLS) client CA files, and one session per connection over
 * memory BIOs. The transport feeds it the bytes it read from the socket, takes plaintext out,
 * hands it plaintext to encrypt and sends whatever ciphertext is waiting; the handshake happens
 * inside those calls, so it never blocks the event loop. TLS 1.2 and 1.3 only, AEAD ciphers with
 * forward secrecy, ALPN http/1.1, no compression, no renegotiation. */
#ifndef SLUICE_NET_TLS_H
#define SLUICE_NET_TLS_H

#include <stddef.h>

#include <sluice/authn.h>
#include <sluice/error.h>

/* A server context: certificate chain, private key, client CA. Reference counted: every session
 * holds one, so a reloaded context replaces the old one for new connections while open ones keep
 * theirs. */
typedef struct sl__tls_ctx sl__tls_ctx;

typedef struct sl__tls_files {
    const char *cert;      /* PEM: the certificate, then its chain */
    const char *key;       /* PEM: the private key (unencrypted) */
    const char *client_ca; /* PEM: CAs client certificates must chain to; NULL: no mutual TLS */
} sl__tls_files;

/* Reads the files and checks that key and certificate belong together. *out is owned by the
 * caller (one reference: sl__tls_ctx_unref). On error SL_ECONFIG with st->message naming the file
 * and what is wrong (never key material). */
int sl__tls_ctx_new(sl__tls_ctx **out, const sl__tls_files *files, sl_status *st);
sl__tls_ctx *sl__tls_ctx_ref(sl__tls_ctx *c);
void sl__tls_ctx_unref(sl__tls_ctx *c);
/* One line about the server certificate for the log: "subject CN=...; expires Jan 1 ... GMT". */
const char *sl__tls_ctx_describe(const sl__tls_ctx *c);
/* 1 when the context verifies client certificates (it was given a client CA). */
int sl__tls_ctx_has_client_ca(const sl__tls_ctx *c);

/* What a listener asks of clients. */
enum {
    SL__TLS_CLIENT_NONE = 0, /* no certificate requested */
    SL__TLS_CLIENT_OPTIONAL, /* requested; one that does not verify fails the handshake */
    SL__TLS_CLIENT_REQUIRED, /* the handshake fails without a verified certificate */
};

typedef struct sl__tls sl__tls;

/* A server session on ctx (which it references). client: SL__TLS_CLIENT_*; anything but NONE
 * needs a context with a client CA (SL_EINVAL otherwise). *out: sl__tls_free. */
int sl__tls_new(sl__tls **out, sl__tls_ctx *ctx, int client);
void sl__tls_free(sl__tls *t);

/* Bytes received from the peer. SL_OK or SL_ENOMEM. */
int sl__tls_feed(sl__tls *t, const char *data, size_t len);

#define SL__TLS_EOF (-1000) /* the peer closed the session (close_notify) */
/* Advances the handshake and decrypts what was fed: returns the number of plaintext bytes put in
 * buf (> 0), 0 when more input is needed, SL__TLS_EOF, or SL_EIO when the handshake or a record
 * failed (an alert may be waiting in the output: send it, then close). Call it until it returns
 * 0 or less, then send the output. */
long sl__tls_read(sl__tls *t, char *buf, size_t cap);

/* 0 when a call of sl__tls_read could only answer 0 (the handshake is done and nothing fed is
 * left to decrypt), so the caller may skip it: a read that finds nothing costs as much as one
 * that decrypts a record. */
int sl__tls_has_input(const sl__tls *t);

/* Encrypts all of data into the output. SL_OK; SL_EINVAL before the handshake completed; SL_EIO
 * after a failure. */
int sl__tls_write(sl__tls *t, const char *data, size_t len);

/* Queues a close_notify alert (once). */
void sl__tls_close_notify(sl__tls *t);

/* Ciphertext waiting to be sent: its size, and taking up to cap bytes of it (returns how many). */
size_t sl__tls_pending(const sl__tls *t);
size_t sl__tls_take(sl__tls *t, char *buf, size_t cap);

/* 1 once the handshake has completed. */
int sl__tls_established(const sl__tls *t);
/* The verified client certificate once established, or NULL (none asked for or none given).
 * Owned by t, valid until sl__tls_free. */
const sl_authn_peer *sl__tls_peer(const sl__tls *t);
/* The negotiated protocol ("TLSv1.3") and ALPN protocol ("http/1.1", "" when none). */
const char *sl__tls_version(const sl__tls *t);
const char *sl__tls_alpn(const sl__tls *t);

#endif

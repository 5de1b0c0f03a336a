/* TLS sessions over memory BIOs (tls.h). A session's SSL reads from one memory BIO the transport
 * fills with what arrived on the socket and writes to another that the transport empties onto
 * it, so OpenSSL never touches a descriptor and never waits: the handshake advances a step each
 * time bytes arrive. The context is OpenSSL's SSL_CTX plus what the log needs, behind a reference
 * count of its own (each SSL also holds one on the SSL_CTX). Everything a handshake or a file
 * error reports is OpenSSL's reason text, which never contains key material. */
#include "net/tls.h"

#include <arpa/inet.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

struct sl__tls_ctx {
    SSL_CTX *ssl;
    int refs;
    int client_ca;
    char describe[512];
};

struct sl__tls {
    SSL *ssl;
    BIO *in, *out; /* owned by ssl */
    sl__tls_ctx *ctx;
    int failed, closed, peer_done;
    sl_authn_peer peer;
    int has_peer;
    char *subject;
    char **sans;
};

/* Mozilla's "intermediate" TLS 1.2 list: ECDHE only (forward secrecy), AEAD only. TLS 1.3's
 * suites are OpenSSL's defaults, which are all of that kind. */
static const char CIPHERS_TLS12[] = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
                                    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
                                    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";
static const char GROUPS[] = "X25519:P-256:P-384";
static const unsigned char ALPN[] = "\x08http/1.1";

static const char *ssl_reason(void)
{
    unsigned long e = ERR_peek_last_error();
    const char *r = e ? ERR_reason_error_string(e) : NULL;
    return r ? r : "unknown error";
}

/* ALPN: http/1.1 when the client offers it. A client that offers only other protocols (h2 alone)
 * is refused with no_application_protocol (RFC 7301) rather than talked to in a protocol it did
 * not ask for. */
static int select_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned int inlen, void *arg)
{
    (void)ssl;
    (void)arg;
    unsigned char *o;
    if (SSL_select_next_proto(&o, outlen, ALPN, sizeof ALPN - 1, in, inlen) !=
        OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_ALERT_FATAL;
    *out = o;
    return SSL_TLSEXT_ERR_OK;
}

static void describe_cert(sl__tls_ctx *c)
{
    X509 *x = SSL_CTX_get0_certificate(c->ssl);
    BIO *b = BIO_new(BIO_s_mem());
    if (x == NULL || b == NULL) {
        BIO_free(b);
        return;
    }
    BIO_puts(b, "subject ");
    X509_NAME_print_ex(b, X509_get_subject_name(x), 0, XN_FLAG_RFC2253);
    BIO_puts(b, "; expires ");
    ASN1_TIME_print(b, X509_get0_notAfter(x));
    int n = BIO_read(b, c->describe, (int)sizeof c->describe - 1);
    c->describe[n > 0 ? n : 0] = '\0';
    BIO_free(b);
}

int sl__tls_ctx_new(sl__tls_ctx **out, const sl__tls_files *f, sl_status *st)
{
    if (out == NULL || f == NULL || f->cert == NULL || f->key == NULL)
        return sl_status_set(st, SL_EINVAL, "tls_cert and tls_key are both needed");
    *out = NULL;
    ERR_clear_error();
    sl__tls_ctx *c = calloc(1, sizeof *c);
    if (c == NULL || (c->ssl = SSL_CTX_new(TLS_server_method())) == NULL) {
        free(c);
        return sl_status_set(st, SL_ENOMEM, NULL);
    }
    c->refs = 1;
    SSL_CTX *s = c->ssl;
    int rc = SL_OK;
    SSL_CTX_set_min_proto_version(s, TLS1_2_VERSION);
    SSL_CTX_set_max_proto_version(s, TLS1_3_VERSION);
    SSL_CTX_set_options(s, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
                               SSL_OP_CIPHER_SERVER_PREFERENCE);
    /* Idle connections (most WebSocket ones) give their record buffers back. */
    SSL_CTX_set_mode(s, SSL_MODE_RELEASE_BUFFERS);
    /* Resumption (session cache and tickets) needs a context id once clients are verified. */
    SSL_CTX_set_session_id_context(s, (const unsigned char *)"sluice", 6);
    SSL_CTX_set_alpn_select_cb(s, select_alpn, NULL);
    if (!SSL_CTX_set_cipher_list(s, CIPHERS_TLS12) || !SSL_CTX_set1_groups_list(s, GROUPS))
        rc = sl_status_set(st, SL_EINTERNAL, "TLS: cannot set ciphers: %s", ssl_reason());
    else if (SSL_CTX_use_certificate_chain_file(s, f->cert) != 1)
        rc = sl_status_set(st, SL_ECONFIG, "tls_cert %s: %s", f->cert, ssl_reason());
    else if (SSL_CTX_use_PrivateKey_file(s, f->key, SSL_FILETYPE_PEM) != 1)
        rc = sl_status_set(st, SL_ECONFIG, "tls_key %s: %s", f->key, ssl_reason());
    else if (SSL_CTX_check_private_key(s) != 1)
        rc = sl_status_set(st, SL_ECONFIG, "tls_key %s does not belong to the certificate in %s",
                           f->key, f->cert);
    if (rc == SL_OK && f->client_ca != NULL) {
        STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(f->client_ca);
        if (names == NULL || SSL_CTX_load_verify_locations(s, f->client_ca, NULL) != 1) {
            sk_X509_NAME_pop_free(names, X509_NAME_free);
            rc = sl_status_set(st, SL_ECONFIG, "tls_client_ca %s: no CA certificate could be read",
                               f->client_ca);
        } else {
            SSL_CTX_set_client_CA_list(s, names); /* the CertificateRequest's hint; takes names */
            SSL_CTX_set_purpose(s, X509_PURPOSE_SSL_CLIENT);
            c->client_ca = 1;
        }
    }
    ERR_clear_error();
    if (rc != SL_OK) {
        sl__tls_ctx_unref(c);
        return rc;
    }
    describe_cert(c);
    *out = c;
    return SL_OK;
}

sl__tls_ctx *sl__tls_ctx_ref(sl__tls_ctx *c)
{
    if (c != NULL)
        c->refs++;
    return c;
}

void sl__tls_ctx_unref(sl__tls_ctx *c)
{
    if (c == NULL || --c->refs > 0)
        return;
    SSL_CTX_free(c->ssl);
    free(c);
}

const char *sl__tls_ctx_describe(const sl__tls_ctx *c)
{
    return c ? c->describe : "";
}

int sl__tls_ctx_has_client_ca(const sl__tls_ctx *c)
{
    return c != NULL && c->client_ca;
}

/* ---- sessions ---------------------------------------------------------------------------------
 */

int sl__tls_new(sl__tls **out, sl__tls_ctx *ctx, int client)
{
    if (out == NULL || ctx == NULL || client < SL__TLS_CLIENT_NONE ||
        client > SL__TLS_CLIENT_REQUIRED || (client != SL__TLS_CLIENT_NONE && !ctx->client_ca))
        return SL_EINVAL;
    *out = NULL;
    sl__tls *t = calloc(1, sizeof *t);
    if (t == NULL)
        return SL_ENOMEM;
    t->ssl = SSL_new(ctx->ssl);
    t->in = BIO_new(BIO_s_mem());
    t->out = BIO_new(BIO_s_mem());
    if (t->ssl == NULL || t->in == NULL || t->out == NULL) {
        BIO_free(t->in);
        BIO_free(t->out);
        SSL_free(t->ssl);
        free(t);
        ERR_clear_error();
        return SL_ENOMEM;
    }
    BIO_set_mem_eof_return(t->in, -1); /* empty means "not yet", not end of stream */
    SSL_set_bio(t->ssl, t->in, t->out);
    SSL_set_accept_state(t->ssl);
    /* Sessions resume only where they were made with the same demand for client certificates:
     * a session from a listener that asked for none must not skip a required certificate on
     * another (OpenSSL compares this id before resuming, tickets included). */
    static const char *const sid[] = {"sluice/none", "sluice/optional", "sluice/required"};
    SSL_set_session_id_context(t->ssl, (const unsigned char *)sid[client],
                               (unsigned)strlen(sid[client]));
    if (client != SL__TLS_CLIENT_NONE)
        SSL_set_verify(
            t->ssl,
            SSL_VERIFY_PEER | SSL_VERIFY_CLIENT_ONCE |
                (client == SL__TLS_CLIENT_REQUIRED ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0),
            NULL);
    t->ctx = sl__tls_ctx_ref(ctx);
    *out = t;
    return SL_OK;
}

static void peer_clear(sl__tls *t)
{
    free(t->subject);
    for (size_t i = 0; i < t->peer.nsans; i++)
        free(t->sans[i]);
    free(t->sans);
}

void sl__tls_free(sl__tls *t)
{
    if (t == NULL)
        return;
    /* A connection that ends without close_notify (the client just went, or a timeout) would
     * have its session dropped from the cache; its messages were length-delimited, so nothing
     * was truncated unnoticed: keep the session resumable, as nginx does. */
    if (!t->failed && SSL_is_init_finished(t->ssl))
        SSL_set_shutdown(t->ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
    SSL_free(t->ssl); /* and both BIOs */
    sl__tls_ctx_unref(t->ctx);
    peer_clear(t);
    free(t);
}

int sl__tls_feed(sl__tls *t, const char *data, size_t len)
{
    while (len > 0) {
        int n = len > INT_MAX ? INT_MAX : (int)len;
        if (BIO_write(t->in, data, n) != n)
            return SL_ENOMEM;
        data += n;
        len -= (size_t)n;
    }
    return SL_OK;
}

/* A SAN as text, only when it is printable ASCII: anything else cannot be matched safely. */
static char *san_text(const char *prefix, const unsigned char *v, int len)
{
    if (len <= 0)
        return NULL;
    for (int i = 0; i < len; i++)
        if (v[i] < 0x21 || v[i] > 0x7e)
            return NULL;
    size_t pl = strlen(prefix);
    char *s = malloc(pl + (size_t)len + 1);
    if (s != NULL) {
        memcpy(s, prefix, pl);
        memcpy(s + pl, v, (size_t)len);
        s[pl + (size_t)len] = '\0';
    }
    return s;
}

static char *ip_text(const ASN1_OCTET_STRING *ip)
{
    char buf[INET6_ADDRSTRLEN + 3] = "IP:";
    int len = ASN1_STRING_length(ip);
    const unsigned char *d = ASN1_STRING_get0_data(ip);
    if ((len != 4 && len != 16) ||
        inet_ntop(len == 4 ? AF_INET : AF_INET6, d, buf + 3, sizeof buf - 3) == NULL)
        return NULL;
    return strdup(buf);
}

/* The verified client certificate's subject and SANs, once, after the handshake. */
static void peer_load(sl__tls *t)
{
    t->peer_done = 1;
    X509 *x = SSL_get0_peer_certificate(t->ssl);
    if (x == NULL || SSL_get_verify_result(t->ssl) != X509_V_OK)
        return;
    BIO *b = BIO_new(BIO_s_mem());
    if (b == NULL)
        return;
    X509_NAME_print_ex(b, X509_get_subject_name(x), 0, XN_FLAG_RFC2253);
    size_t n = BIO_ctrl_pending(b);
    t->subject = malloc(n + 1);
    if (t->subject == NULL) {
        BIO_free(b);
        return;
    }
    int got = BIO_read(b, t->subject, (int)n);
    t->subject[got > 0 ? got : 0] = '\0';
    BIO_free(b);
    GENERAL_NAMES *names = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    int count = names ? sk_GENERAL_NAME_num(names) : 0;
    if (count > 0)
        t->sans = calloc((size_t)count, sizeof *t->sans);
    for (int i = 0; t->sans != NULL && i < count; i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(names, i);
        char *s = NULL;
        if (g->type == GEN_DNS)
            s = san_text("DNS:", ASN1_STRING_get0_data(g->d.dNSName),
                         ASN1_STRING_length(g->d.dNSName));
        else if (g->type == GEN_URI)
            s = san_text("URI:", ASN1_STRING_get0_data(g->d.uniformResourceIdentifier),
                         ASN1_STRING_length(g->d.uniformResourceIdentifier));
        else if (g->type == GEN_EMAIL)
            s = san_text("email:", ASN1_STRING_get0_data(g->d.rfc822Name),
                         ASN1_STRING_length(g->d.rfc822Name));
        else if (g->type == GEN_IPADD)
            s = ip_text(g->d.iPAddress);
        if (s != NULL)
            t->sans[t->peer.nsans++] = s;
    }
    GENERAL_NAMES_free(names);
    t->peer.subject = t->subject;
    t->peer.sans = (const char *const *)t->sans;
    t->has_peer = 1;
}

long sl__tls_read(sl__tls *t, char *buf, size_t cap)
{
    if (t->failed)
        return SL_EIO;
    if (t->closed)
        return SL__TLS_EOF;
    ERR_clear_error(); /* SSL_get_error reads the thread's queue: start from an empty one */
    int n = SSL_read(t->ssl, buf, cap > INT_MAX ? INT_MAX : (int)cap);
    if (n > 0) {
        if (!t->peer_done)
            peer_load(t);
        return n;
    }
    int e = SSL_get_error(t->ssl, n);
    if (!t->peer_done && SSL_is_init_finished(t->ssl))
        peer_load(t);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
        return 0;
    if (e == SSL_ERROR_ZERO_RETURN) {
        t->closed = 1;
        return SL__TLS_EOF;
    }
    t->failed = 1;
    ERR_clear_error();
    return SL_EIO;
}

int sl__tls_write(sl__tls *t, const char *data, size_t len)
{
    if (t->failed)
        return SL_EIO;
    if (!SSL_is_init_finished(t->ssl))
        return SL_EINVAL;
    ERR_clear_error();
    while (len > 0) {
        int n = SSL_write(t->ssl, data, len > INT_MAX ? INT_MAX : (int)len);
        if (n <= 0) { /* a memory BIO never fills up: this is a failure */
            t->failed = 1;
            ERR_clear_error();
            return SL_EIO;
        }
        data += n;
        len -= (size_t)n;
    }
    return SL_OK;
}

void sl__tls_close_notify(sl__tls *t)
{
    if (t->failed || !SSL_is_init_finished(t->ssl) ||
        (SSL_get_shutdown(t->ssl) & SSL_SENT_SHUTDOWN))
        return;
    ERR_clear_error();
    SSL_shutdown(t->ssl);
    ERR_clear_error();
}

int sl__tls_has_input(const sl__tls *t)
{
    return !SSL_is_init_finished(t->ssl) || SSL_has_pending(t->ssl) || BIO_ctrl_pending(t->in) > 0;
}

size_t sl__tls_pending(const sl__tls *t)
{
    return BIO_ctrl_pending(t->out);
}

size_t sl__tls_take(sl__tls *t, char *buf, size_t cap)
{
    int n = BIO_read(t->out, buf, cap > INT_MAX ? INT_MAX : (int)cap);
    return n > 0 ? (size_t)n : 0;
}

int sl__tls_established(const sl__tls *t)
{
    return !t->failed && SSL_is_init_finished(t->ssl);
}

const sl_authn_peer *sl__tls_peer(const sl__tls *t)
{
    return t->has_peer ? &t->peer : NULL;
}

const char *sl__tls_version(const sl__tls *t)
{
    return SSL_get_version(t->ssl);
}

const char *sl__tls_alpn(const sl__tls *t)
{
    static char none[] = "";
    const unsigned char *p;
    unsigned int len;
    SSL_get0_alpn_selected(t->ssl, &p, &len);
    return len == 8 && memcmp(p, "http/1.1", 8) == 0 ? "http/1.1" : none;
}

/* TLS sessions (src/net/tls.c) without sockets: an OpenSSL client on memory BIOs talks to the
 * server side through a pump that carries bytes both ways. Certificates (a CA, a server, a client
 * and an untrusted client) are made here with the OpenSSL API. Also the certificate
 * authenticator's naming (src/security/cert_authn.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <sluice/certauth.h>

#include "net/tls.h"
#include "server/config.h"

static char dir[64];

static void path(char *out, size_t cap, const char *name)
{
    snprintf(out, cap, "%s/%s", dir, name);
}

static void add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX v;
    X509V3_set_ctx(&v, issuer, x, NULL, NULL, 0);
    X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, &v, nid, value);
    assert_non_null(e);
    X509_add_ext(x, e, -1);
    X509_EXTENSION_free(e);
}

/* A P-256 key and a certificate for subject (/-separated "CN=a/O=b"), signed by ca (or itself),
 * written as NAME.crt and NAME.key. Returns the key and *cert (caller frees both). */
static EVP_PKEY *make_cert(const char *name, const char *cn, const char *org, EVP_PKEY *ca_key,
                           X509 *ca, const char *san, int is_ca, int days, X509 **cert)
{
    EVP_PKEY *k = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    X509_set_version(x, 2);
    static long serial = 1;
    ASN1_INTEGER_set(X509_get_serialNumber(x), serial++);
    X509_gmtime_adj(X509_getm_notBefore(x), days < 0 ? 2L * days * 86400 : -60);
    X509_gmtime_adj(X509_getm_notAfter(x), (long)days * 86400);
    X509_set_pubkey(x, k);
    X509_NAME *n = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
    if (org)
        X509_NAME_add_entry_by_txt(n, "O", MBSTRING_ASC, (const unsigned char *)org, -1, -1, 0);
    X509_set_issuer_name(x, ca ? X509_get_subject_name(ca) : n);
    if (is_ca) {
        add_ext(x, x, NID_basic_constraints, "critical,CA:TRUE");
        add_ext(x, x, NID_key_usage, "critical,keyCertSign,cRLSign");
    }
    if (san)
        add_ext(x, ca ? ca : x, NID_subject_alt_name, san);
    X509_sign(x, ca_key ? ca_key : k, EVP_sha256());
    char p[128];
    snprintf(p, sizeof p, "%s/%s.crt", dir, name);
    FILE *f = fopen(p, "w");
    PEM_write_X509(f, x);
    fclose(f);
    snprintf(p, sizeof p, "%s/%s.key", dir, name);
    f = fopen(p, "w");
    PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL);
    fclose(f);
    *cert = x;
    return k;
}

static X509 *ca_cert, *other_ca_cert;
static EVP_PKEY *ca_key, *other_ca_key;

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/sluice-tls-XXXXXX");
    assert_non_null(mkdtemp(dir));
    ca_key = make_cert("ca", "test CA", NULL, NULL, NULL, NULL, 1, 2, &ca_cert);
    other_ca_key = make_cert("other", "other CA", NULL, NULL, NULL, NULL, 1, 2, &other_ca_cert);
    X509 *x;
    EVP_PKEY *k = make_cert("srv", "localhost", NULL, ca_key, ca_cert, "DNS:localhost", 0, 1, &x);
    X509_free(x);
    EVP_PKEY_free(k);
    k = make_cert("cli", "worker-1", "Example", ca_key, ca_cert,
                  "DNS:worker.example,URI:urn:svc:worker,email:w@example.com,IP:10.0.0.1", 0, 1,
                  &x);
    X509_free(x);
    EVP_PKEY_free(k);
    k = make_cert("rogue", "worker-1", NULL, other_ca_key, other_ca_cert, NULL, 0, 1, &x);
    X509_free(x);
    EVP_PKEY_free(k);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    X509_free(ca_cert);
    X509_free(other_ca_cert);
    EVP_PKEY_free(ca_key);
    EVP_PKEY_free(other_ca_key);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static sl__tls_ctx *server_ctx(int with_client_ca)
{
    char cert[128], key[128], ca[128];
    path(cert, sizeof cert, "srv.crt");
    path(key, sizeof key, "srv.key");
    path(ca, sizeof ca, "ca.crt");
    sl__tls_files f = {cert, key, with_client_ca ? ca : NULL};
    sl__tls_ctx *c;
    sl_status st;
    sl_status_clear(&st);
    if (sl__tls_ctx_new(&c, &f, &st) != SL_OK)
        fail_msg("%s", st.message);
    return c;
}

typedef struct client {
    SSL_CTX *ctx;
    SSL *ssl;
    BIO *in, *out;
} client;

/* A client trusting the test CA; cert: NULL or the NAME of a certificate to present. */
static void client_new(client *c, int max_version, const char *cert)
{
    c->ctx = SSL_CTX_new(TLS_client_method());
    char ca[128];
    path(ca, sizeof ca, "ca.crt");
    assert_int_equal(SSL_CTX_load_verify_locations(c->ctx, ca, NULL), 1);
    SSL_CTX_set_verify(c->ctx, SSL_VERIFY_PEER, NULL);
    if (max_version) {
        SSL_CTX_set_min_proto_version(c->ctx, TLS1_VERSION);
        SSL_CTX_set_max_proto_version(c->ctx, max_version);
        SSL_CTX_set_security_level(c->ctx, 0);
    }
    if (cert) {
        char p[128];
        snprintf(p, sizeof p, "%s/%s.crt", dir, cert);
        assert_int_equal(SSL_CTX_use_certificate_file(c->ctx, p, SSL_FILETYPE_PEM), 1);
        snprintf(p, sizeof p, "%s/%s.key", dir, cert);
        assert_int_equal(SSL_CTX_use_PrivateKey_file(c->ctx, p, SSL_FILETYPE_PEM), 1);
    }
    SSL_CTX_set_alpn_protos(c->ctx, (const unsigned char *)"\x02h2\x08http/1.1", 12);
    c->ssl = SSL_new(c->ctx);
    c->in = BIO_new(BIO_s_mem());
    c->out = BIO_new(BIO_s_mem());
    BIO_set_mem_eof_return(c->in, -1);
    SSL_set_bio(c->ssl, c->in, c->out);
    SSL_set_tlsext_host_name(c->ssl, "localhost");
    SSL_set1_host(c->ssl, "localhost");
    SSL_set_connect_state(c->ssl);
}

static void client_free(client *c)
{
    SSL_free(c->ssl);
    SSL_CTX_free(c->ctx);
}

/* Carries bytes both ways until neither side has anything to say. Plaintext the server decrypts
 * is appended to got. Returns the server's last read status (<0: failed). */
static long pump(client *c, sl__tls *t, char *got, size_t *got_len)
{
    long last = 0;
    for (int round = 0; round < 50; round++) {
        int moved = 0;
        char buf[16384];
        if (!SSL_is_init_finished(c->ssl))
            SSL_do_handshake(c->ssl);
        int n;
        while ((n = BIO_read(c->out, buf, sizeof buf)) > 0) {
            assert_int_equal(sl__tls_feed(t, buf, (size_t)n), SL_OK);
            moved = 1;
        }
        long r;
        while ((r = sl__tls_read(t, buf, sizeof buf)) > 0) {
            if (got) {
                memcpy(got + *got_len, buf, (size_t)r);
                *got_len += (size_t)r;
            }
        }
        last = r;
        size_t k;
        while ((k = sl__tls_take(t, buf, sizeof buf)) > 0) {
            BIO_write(c->in, buf, (int)k);
            moved = 1;
        }
        if (!moved)
            break;
    }
    return last;
}

static void test_handshake_and_data(void **state)
{
    (void)state;
    sl__tls_ctx *ctx = server_ctx(0);
    assert_non_null(strstr(sl__tls_ctx_describe(ctx), "CN=localhost"));
    sl__tls *t;
    assert_int_equal(sl__tls_new(&t, ctx, SL__TLS_CLIENT_NONE), SL_OK);
    sl__tls_ctx_unref(ctx); /* the session keeps it */
    /* Nothing can be written before the handshake. */
    assert_int_equal(sl__tls_write(t, "x", 1), SL_EINVAL);
    client c;
    client_new(&c, 0, NULL);
    assert_true(pump(&c, t, NULL, NULL) >= 0);
    assert_true(SSL_is_init_finished(c.ssl));
    assert_int_equal(SSL_get_verify_result(c.ssl), X509_V_OK);
    assert_true(sl__tls_established(t));
    assert_string_equal(sl__tls_version(t), "TLSv1.3");
    assert_string_equal(sl__tls_alpn(t), "http/1.1");
    assert_null(sl__tls_peer(t));
    /* Request in, answer out. */
    static const char req[] = "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n";
    assert_int_equal(SSL_write(c.ssl, req, sizeof req - 1), (int)sizeof req - 1);
    char got[256];
    size_t got_len = 0;
    pump(&c, t, got, &got_len);
    assert_int_equal(got_len, sizeof req - 1);
    assert_memory_equal(got, req, got_len);
    assert_int_equal(sl__tls_write(t, "HTTP/1.1 200 OK\r\n\r\n", 19), SL_OK);
    assert_true(sl__tls_pending(t) > 19);
    pump(&c, t, NULL, NULL);
    char ans[64];
    assert_int_equal(SSL_read(c.ssl, ans, sizeof ans), 19);
    assert_memory_equal(ans, "HTTP/1.1 200 OK\r\n\r\n", 19);
    /* close_notify both ways. */
    sl__tls_close_notify(t);
    pump(&c, t, NULL, NULL);
    assert_int_equal(SSL_read(c.ssl, ans, sizeof ans), 0);
    assert_int_equal(SSL_get_error(c.ssl, 0), SSL_ERROR_ZERO_RETURN);
    SSL_shutdown(c.ssl);
    assert_int_equal(pump(&c, t, NULL, NULL), SL__TLS_EOF);
    client_free(&c);
    sl__tls_free(t);
}

static void test_old_protocols_refused(void **state)
{
    (void)state;
    sl__tls_ctx *ctx = server_ctx(0);
    int versions[] = {TLS1_VERSION, TLS1_1_VERSION};
    for (int i = 0; i < 2; i++) {
        sl__tls *t;
        assert_int_equal(sl__tls_new(&t, ctx, SL__TLS_CLIENT_NONE), SL_OK);
        client c;
        client_new(&c, versions[i], NULL);
        assert_int_equal(pump(&c, t, NULL, NULL), SL_EIO);
        assert_false(sl__tls_established(t));
        assert_false(SSL_is_init_finished(c.ssl));
        client_free(&c);
        sl__tls_free(t);
    }
    /* TLS 1.2 is still fine. */
    sl__tls *t;
    assert_int_equal(sl__tls_new(&t, ctx, SL__TLS_CLIENT_NONE), SL_OK);
    client c;
    client_new(&c, TLS1_2_VERSION, NULL);
    assert_true(pump(&c, t, NULL, NULL) >= 0);
    assert_string_equal(sl__tls_version(t), "TLSv1.2");
    client_free(&c);
    sl__tls_free(t);
    sl__tls_ctx_unref(ctx);
}

static void test_client_certificates(void **state)
{
    (void)state;
    sl__tls_ctx *plain = server_ctx(0), *ctx = server_ctx(1);
    sl__tls *t;
    /* Asking for certificates needs a client CA. */
    assert_int_equal(sl__tls_new(&t, plain, SL__TLS_CLIENT_OPTIONAL), SL_EINVAL);
    sl__tls_ctx_unref(plain);
    assert_true(sl__tls_ctx_has_client_ca(ctx));
    struct {
        int mode;
        const char *cert;
        int ok;
    } cases[] = {
        {SL__TLS_CLIENT_REQUIRED, "cli", 1},   {SL__TLS_CLIENT_REQUIRED, NULL, 0},
        {SL__TLS_CLIENT_REQUIRED, "rogue", 0}, {SL__TLS_CLIENT_OPTIONAL, NULL, 1},
        {SL__TLS_CLIENT_OPTIONAL, "rogue", 0}, {SL__TLS_CLIENT_OPTIONAL, "cli", 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        assert_int_equal(sl__tls_new(&t, ctx, cases[i].mode), SL_OK);
        client c;
        client_new(&c, 0, cases[i].cert);
        /* TLS 1.3: the client finishes before the server has judged its certificate; the
         * server's verdict arrives with the first record it reads. */
        long r = pump(&c, t, NULL, NULL);
        SSL_write(c.ssl, "x", 1);
        char got[8];
        size_t got_len = 0;
        if (r >= 0)
            r = pump(&c, t, got, &got_len);
        if (!cases[i].ok) {
            assert_true(r < 0 || got_len == 0);
            assert_false(sl__tls_established(t) && got_len > 0);
        } else {
            assert_int_equal(got_len, 1);
            const sl_authn_peer *p = sl__tls_peer(t);
            if (cases[i].cert == NULL) {
                assert_null(p);
            } else {
                assert_non_null(p);
                assert_string_equal(p->subject, "O=Example,CN=worker-1");
                assert_int_equal(p->nsans, 4);
                assert_string_equal(p->sans[0], "DNS:worker.example");
                assert_string_equal(p->sans[1], "URI:urn:svc:worker");
                assert_string_equal(p->sans[2], "email:w@example.com");
                assert_string_equal(p->sans[3], "IP:10.0.0.1");
            }
        }
        client_free(&c);
        sl__tls_free(t);
    }
    sl__tls_ctx_unref(ctx);
}

/* A session made where no certificate was asked for does not resume where one is required (it
 * would skip the certificate); where the demand is the same it does resume. TLS 1.2 session ids
 * and TLS 1.3 tickets alike. */
static void test_resumption_keeps_client_certificate_demand(void **state)
{
    (void)state;
    sl__tls_ctx *ctx = server_ctx(1);
    int versions[] = {TLS1_2_VERSION, TLS1_3_VERSION};
    for (int v = 0; v < 2; v++) {
        sl__tls *t;
        assert_int_equal(sl__tls_new(&t, ctx, SL__TLS_CLIENT_NONE), SL_OK);
        client c;
        client_new(&c, versions[v], NULL);
        SSL_CTX_set_min_proto_version(c.ctx, versions[v]);
        SSL_CTX_set_session_cache_mode(c.ctx, SSL_SESS_CACHE_CLIENT);
        assert_true(pump(&c, t, NULL, NULL) >= 0);
        char b[16];
        SSL_read(c.ssl, b, sizeof b); /* takes in TLS 1.3's tickets */
        SSL_SESSION *sess = SSL_get1_session(c.ssl);
        assert_non_null(sess);
        assert_true(SSL_SESSION_is_resumable(sess));
        sl__tls_free(t);
        SSL_set_shutdown(c.ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN); /* keep it resumable */
        SSL_free(c.ssl);
        int modes[] = {SL__TLS_CLIENT_NONE, SL__TLS_CLIENT_REQUIRED};
        for (int m = 0; m < 2; m++) {
            assert_int_equal(sl__tls_new(&t, ctx, modes[m]), SL_OK);
            c.ssl = SSL_new(c.ctx);
            c.in = BIO_new(BIO_s_mem());
            c.out = BIO_new(BIO_s_mem());
            BIO_set_mem_eof_return(c.in, -1);
            SSL_set_bio(c.ssl, c.in, c.out);
            SSL_set_tlsext_host_name(c.ssl, "localhost");
            SSL_set_connect_state(c.ssl);
            SSL_set_session(c.ssl, sess);
            long r = pump(&c, t, NULL, NULL);
            SSL_write(c.ssl, "x", 1);
            char got[8];
            size_t got_len = 0;
            if (r >= 0)
                r = pump(&c, t, got, &got_len);
            if (modes[m] == SL__TLS_CLIENT_NONE) {
                assert_int_equal(got_len, 1);
                assert_true(SSL_session_reused(c.ssl));
            } else { /* no resumption, and without a certificate no session at all */
                assert_false(SSL_session_reused(c.ssl));
                assert_int_equal(got_len, 0);
            }
            sl__tls_free(t);
            SSL_set_shutdown(c.ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
            SSL_free(c.ssl);
        }
        c.ssl = NULL;
        SSL_SESSION_free(sess);
        client_free(&c);
    }
    sl__tls_ctx_unref(ctx);
}

static void test_context_errors(void **state)
{
    (void)state;
    char cert[128], key[128], other[128], missing[128];
    path(cert, sizeof cert, "srv.crt");
    path(key, sizeof key, "srv.key");
    path(other, sizeof other, "cli.key");
    path(missing, sizeof missing, "missing.pem");
    sl__tls_ctx *c = NULL;
    sl_status st;
    sl__tls_files wrong_key = {cert, other, NULL};
    assert_int_equal(sl__tls_ctx_new(&c, &wrong_key, &st), SL_ECONFIG);
    assert_null(c);
    assert_non_null(strstr(st.message, "tls_key"));
    assert_null(strstr(st.message, "PRIVATE"));
    sl__tls_files no_cert = {missing, key, NULL};
    assert_int_equal(sl__tls_ctx_new(&c, &no_cert, &st), SL_ECONFIG);
    assert_non_null(strstr(st.message, "tls_cert"));
    sl__tls_files key_as_cert = {key, key, NULL};
    assert_int_equal(sl__tls_ctx_new(&c, &key_as_cert, &st), SL_ECONFIG);
    assert_null(strstr(st.message, "BEGIN"));
    sl__tls_files bad_ca = {cert, key, key};
    assert_int_equal(sl__tls_ctx_new(&c, &bad_ca, &st), SL_ECONFIG);
    assert_non_null(strstr(st.message, "tls_client_ca"));
}

/* The authenticator's names: CN out of RFC 2253 text (escapes undone), the first SAN of a type,
 * names that are not valid principals refused, no certificate is "not mine". */
static void done_cb(void *ud, int status, const sl_identity *who, const char *reason)
{
    (void)reason;
    sl_identity *out = ud;
    out->role = (sl_role)status; /* the status, smuggled */
    if (who)
        memcpy(out->principal, who->principal, sizeof out->principal), out->source = who->source;
}

static void test_cert_principal(void **state)
{
    (void)state;
    const char *sans[] = {"IP:10.0.0.1", "DNS:a.example", "URI:urn:x:y", "DNS:b.example",
                          "email:w@example.com"};
    sl_authn_peer p = {"O=Example\\, Inc.,CN=svc\\2Done", sans, 5};
    char out[SL_PRINCIPAL_MAX + 1];
    assert_int_equal(sl_cert_principal_of(&p, SL_CERT_PRINCIPAL_CN, out), SL_OK);
    assert_string_equal(out, "svc-one");
    assert_int_equal(sl_cert_principal_of(&p, SL_CERT_PRINCIPAL_DNS, out), SL_OK);
    assert_string_equal(out, "a.example");
    assert_int_equal(sl_cert_principal_of(&p, SL_CERT_PRINCIPAL_URI, out), SL_OK);
    assert_string_equal(out, "urn:x:y");
    assert_int_equal(sl_cert_principal_of(&p, SL_CERT_PRINCIPAL_EMAIL, out), SL_OK);
    assert_string_equal(out, "w@example.com");
    sl_authn_peer spaced = {"CN=Alice Smith", NULL, 0};
    assert_int_equal(sl_cert_principal_of(&spaced, SL_CERT_PRINCIPAL_CN, out), SL_ETOKEN);
    assert_int_equal(sl_cert_principal_of(&spaced, SL_CERT_PRINCIPAL_DNS, out), SL_ENOENT);
    sl_authn_peer no_cn = {"O=x+OU=CN\\=y", NULL, 0};
    assert_int_equal(sl_cert_principal_of(&no_cn, SL_CERT_PRINCIPAL_CN, out), SL_ENOENT);
    sl_authn_peer multi = {"OU=a+CN=bob,O=x", NULL, 0};
    assert_int_equal(sl_cert_principal_of(&multi, SL_CERT_PRINCIPAL_CN, out), SL_OK);
    assert_string_equal(out, "bob");
    const char *slash[] = {"URI:spiffe://example.org/svc"};
    sl_authn_peer spiffe = {"CN=x", slash, 1};
    assert_int_equal(sl_cert_principal_of(&spiffe, SL_CERT_PRINCIPAL_URI, out), SL_ETOKEN);
    assert_int_equal(sl_cert_principal_parse("email"), SL_CERT_PRINCIPAL_EMAIL);
    assert_int_equal(sl_cert_principal_parse("subject"), -1);

    sl_authenticator *a;
    assert_int_equal(sl_cert_authenticator_new(SL_CERT_PRINCIPAL_CN, &a), SL_OK);
    assert_string_equal(a->name, "cert");
    assert_int_equal(a->kind, SL_AUTHN_KIND_CERT);
    sl_authn_request req = {.method = "GET", .path = "/", .query = "", .body = ""};
    sl_identity got;
    memset(&got, 0, sizeof got);
    a->authenticate_request(a, &req, 0, done_cb, &got);
    assert_int_equal((int)got.role, SL_EUNAUTH);
    req.peer = &p;
    a->authenticate_request(a, &req, 0, done_cb, &got);
    assert_int_equal((int)got.role, SL_OK);
    assert_string_equal(got.principal, "svc-one");
    assert_int_equal(got.source, SL_SOURCE_CERT);
    req.peer = &spaced;
    a->authenticate_request(a, &req, 0, done_cb, &got);
    assert_int_equal((int)got.role, SL_ETOKEN);
    a->free(a);
}

/* Listeners as configured: options, errors, several of them (the first is also host:port). */
static void test_listen_config(void **state)
{
    (void)state;
    sl__cfg_listener l;
    sl_status st;
    assert_int_equal(sl__config_parse_listener(&l, "127.0.0.1:0", &st), SL_OK);
    assert_string_equal(l.host, "127.0.0.1");
    assert_int_equal(l.port, 0);
    assert_int_equal(l.tls, 0);
    assert_int_equal(l.accept, 0);
    free(l.text);
    assert_int_equal(sl__config_parse_listener(&l, "[::]:8443,mtls=required,auth=cert+bearer", &st),
                     SL_OK);
    assert_string_equal(l.host, "::");
    assert_int_equal(l.port, 8443);
    assert_int_equal(l.tls, 1);
    assert_int_equal(l.mtls, SL__TLS_CLIENT_REQUIRED);
    assert_int_equal(l.accept, SL_AUTHN_KIND_CERT | SL_AUTHN_KIND_BEARER);
    free(l.text);
    assert_int_equal(sl__config_parse_listener(&l, "0.0.0.0:1,mtls", &st), SL_OK);
    assert_int_equal(l.mtls, SL__TLS_CLIENT_OPTIONAL);
    assert_int_equal(l.tls, 1);
    free(l.text);
    assert_int_equal(sl__config_parse_listener(&l, "localhost:80,auth=none,tls", &st), SL_OK);
    assert_int_equal(l.accept, SL_AUTHN_ANONYMOUS);
    free(l.text);
    const char *bad[] = {"127.0.0.1:0,",
                         "127.0.0.1:0,ssl",
                         "127.0.0.1:0,auth=root",
                         "127.0.0.1:0,mtls=maybe",
                         "127.0.0.1,tls",
                         "127.0.0.1:99999,tls",
                         "a b:80,tls",
                         ":80,tls"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (sl__config_parse_listener(&l, bad[i], &st) != SL_EINVAL)
            fail_msg("'%s' accepted", bad[i]);
    sl__config c;
    sl__config_init(&c);
    assert_int_equal(sl__config_set(&c, "listen", "127.0.0.1:0,tls,bogus", &st), SL_ECONFIG);
    assert_non_null(strstr(st.message, "unknown option 'bogus'"));
    assert_int_equal(sl__config_set(&c, "listen", "nowhere", &st), SL_ECONFIG);
    assert_string_equal(st.message, "listen must be HOST:PORT");
    assert_int_equal(c.nlisteners, 0);
    assert_int_equal(sl__config_set(&c, "listen", "127.0.0.2:81", &st), SL_OK);
    assert_int_equal(sl__config_set(&c, "listen", "0.0.0.0:443,tls", &st), SL_OK);
    assert_int_equal(c.nlisteners, 2);
    assert_string_equal(c.host, "127.0.0.2");
    assert_int_equal(c.port, 81);
    char *v = sl__config_format(&c, "listen");
    assert_string_equal(v, "127.0.0.2:81, 0.0.0.0:443,tls");
    free(v);
    assert_int_equal(sl__config_set(&c, "tls_client_principal", "uri", &st), SL_OK);
    assert_int_equal(c.tls_client_principal, SL_CERT_PRINCIPAL_URI);
    assert_int_equal(sl__config_set(&c, "tls_client_principal", "subject", &st), SL_ECONFIG);
    assert_int_equal(sl__config_set(&c, "tls_cert", "", &st), SL_ECONFIG);
    sl__config_free(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_handshake_and_data),
        cmocka_unit_test(test_old_protocols_refused),
        cmocka_unit_test(test_client_certificates),
        cmocka_unit_test(test_resumption_keeps_client_certificate_demand),
        cmocka_unit_test(test_context_errors),
        cmocka_unit_test(test_cert_principal),
        cmocka_unit_test(test_listen_config),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

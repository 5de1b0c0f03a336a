/* libcurl's multi interface driven by a libuv loop, shared by the clients that talk HTTP to other
 * services from the server's loop (token introspection, identity providers' key sets): one
 * uv_poll_t per socket curl asks us to watch, one uv_timer_t for curl's timeout, and the rules for
 * the URLs they may be pointed at. Transfers are curl easy handles the caller sets up and owns;
 * this module only runs them and says when each is done. */
#ifndef SLUICE_NET_CURL_UV_H
#define SLUICE_NET_CURL_UV_H

#include <curl/curl.h>
#include <uv.h>

typedef struct sl__curl_uv sl__curl_uv;

/* Called once per finished transfer, never from inside a curl callback (after
 * curl_multi_socket_action has returned), with the easy handle already removed from the multi:
 * the callee owns it again (curl_easy_cleanup). It may add transfers, or free the sl__curl_uv. */
typedef void (*sl__curl_uv_done_fn)(void *ud, CURL *easy, CURLcode result);

/* *out owned by the caller; release with sl__curl_uv_free. SL_EINTERNAL when curl cannot start. */
int sl__curl_uv_new(sl__curl_uv **out, uv_loop_t *loop, sl__curl_uv_done_fn done, void *ud);
/* Starts easy (the caller's, borrowed until done is called or it is removed). SL_EINTERNAL when
 * curl refuses it. The loop is kept alive while transfers are under way, not otherwise. */
int sl__curl_uv_add(sl__curl_uv *c, CURL *easy);
/* Abandons a transfer without calling done; easy is the caller's again. */
void sl__curl_uv_remove(sl__curl_uv *c, CURL *easy);
/* Transfers under way. */
size_t sl__curl_uv_active(const sl__curl_uv *c);
/* Closes the handles; the struct goes with the last of them (so loop callbacks already queued
 * still find it). The caller removes its transfers first. Safe to call from done. */
void sl__curl_uv_free(sl__curl_uv *c);

/* A response body collected by CURLOPT_WRITEFUNCTION = sl__curl_body_write, CURLOPT_WRITEDATA =
 * the struct: kept NUL-terminated, at most max bytes (past that the write fails, and so does the
 * transfer). Zero-initialise and set max; release p with free. */
typedef struct sl__curl_body {
    char *p;
    size_t len, cap, max;
} sl__curl_body;
size_t sl__curl_body_write(char *data, size_t size, size_t n, void *body);

/* curl_global_init, once per process (never undone: other users may share it). 1 when ready. */
int sl__curl_ready(void);
/* 1 when url is http(s) without credentials in it, and plain http only to a loopback host
 * (localhost, 127/8, ::1) unless allow_http: where nothing travels over a network. */
int sl__curl_url_acceptable(const char *url, int allow_http);
/* 1 for "localhost", an IPv4 address in 127/8 or "[::1]" (as curl gives the host of a URL). */
int sl__curl_host_is_loopback(const char *host);

#endif

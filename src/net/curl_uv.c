/* libcurl's multi interface on the libuv loop (see curl_uv.h). curl tells us which sockets to
 * watch (on_socket) and when to call it back (on_curl_timer); we turn those into uv_poll_t and a
 * uv_timer_t, and after every curl_multi_socket_action we read curl's queue of finished transfers
 * and hand each to the owner's done callback. A timeout of 0 from curl is run on the next loop
 * iteration, never re-entering curl from its own callback.
 *
 * Lifetime: sl__curl_uv_free marks the struct closing and closes every handle; the struct is
 * released by the close callback of the last one, so loop callbacks that are already queued
 * always find it, and a done callback that frees it stops the reading of curl's queue. */
#include "net/curl_uv.h"

#include <sluice/sluice.h>

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef struct sock_ctx {
    uv_poll_t poll;
    curl_socket_t fd;
    sl__curl_uv *c;
    struct sock_ctx *prev, *next;
} sock_ctx;

struct sl__curl_uv {
    uv_loop_t *loop;
    CURLM *multi;
    uv_timer_t timer;
    size_t handles_open; /* the timer and every poll: the struct goes with the last one */
    size_t active;       /* transfers added and not yet done or removed */
    int closing;
    sl__curl_uv_done_fn done;
    void *ud;
    sock_ctx *socks;
};

static void update_ref(sl__curl_uv *c)
{
    /* curl's timer must keep the loop alive while a transfer waits on it (connect, resolve), but
     * not an idle client's loop. */
    if (c->active > 0)
        uv_ref((uv_handle_t *)&c->timer);
    else
        uv_unref((uv_handle_t *)&c->timer);
}

static void check_done(sl__curl_uv *c)
{
    CURLMsg *msg;
    int left;
    /* A callback may free us: stop reading curl's queue the moment it has. */
    while (!c->closing && (msg = curl_multi_info_read(c->multi, &left)) != NULL) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        CURL *e = msg->easy_handle;
        CURLcode res = msg->data.result; /* msg dies with the handle's removal */
        curl_multi_remove_handle(c->multi, e);
        c->active--;
        update_ref(c);
        c->done(c->ud, e, res);
    }
}

static void handle_closed(uv_handle_t *h)
{
    sl__curl_uv *c;
    if (h->type == UV_POLL) {
        sock_ctx *sc = h->data;
        c = sc->c;
        free(sc);
    } else {
        c = h->data;
    }
    if (--c->handles_open == 0 && c->closing)
        free(c);
}

static void sock_close(sl__curl_uv *c, sock_ctx *sc)
{
    if (sc->prev)
        sc->prev->next = sc->next;
    else
        c->socks = sc->next;
    if (sc->next)
        sc->next->prev = sc->prev;
    uv_close((uv_handle_t *)&sc->poll, handle_closed);
}

static void on_poll(uv_poll_t *h, int status, int events)
{
    sock_ctx *sc = h->data;
    sl__curl_uv *c = sc->c;
    int flags = 0;
    if (status < 0)
        flags = CURL_CSELECT_ERR;
    else
        flags = ((events & UV_READABLE) ? CURL_CSELECT_IN : 0) |
                ((events & UV_WRITABLE) ? CURL_CSELECT_OUT : 0);
    int running;
    curl_multi_socket_action(c->multi, sc->fd, flags, &running);
    check_done(c);
}

static int on_socket(CURL *e, curl_socket_t s, int what, void *userp, void *socketp)
{
    (void)e;
    sl__curl_uv *c = userp;
    sock_ctx *sc = socketp;
    if (what == CURL_POLL_REMOVE) {
        if (sc != NULL) {
            curl_multi_assign(c->multi, s, NULL);
            sock_close(c, sc);
        }
        return 0;
    }
    if (sc == NULL) {
        if ((sc = calloc(1, sizeof *sc)) == NULL)
            return -1;
        if (uv_poll_init_socket(c->loop, &sc->poll, s) != 0) {
            free(sc);
            return -1; /* curl fails the transfer: its owner fails closed */
        }
        sc->fd = s;
        sc->c = c;
        sc->poll.data = sc;
        sc->next = c->socks;
        if (c->socks)
            c->socks->prev = sc;
        c->socks = sc;
        c->handles_open++;
        curl_multi_assign(c->multi, s, sc);
    }
    int events =
        ((what & CURL_POLL_IN) ? UV_READABLE : 0) | ((what & CURL_POLL_OUT) ? UV_WRITABLE : 0);
    uv_poll_start(&sc->poll, events, on_poll);
    return 0;
}

static void on_timer(uv_timer_t *t)
{
    sl__curl_uv *c = t->data;
    int running;
    curl_multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_done(c);
}

static int on_curl_timer(CURLM *m, long timeout_ms, void *userp)
{
    (void)m;
    sl__curl_uv *c = userp;
    if (c->closing)
        return 0; /* the timer is about to close; curl_multi_cleanup may still call */
    if (timeout_ms < 0)
        uv_timer_stop(&c->timer);
    else /* 0 ("now") becomes the next loop iteration: never re-enter curl from its callback */
        uv_timer_start(&c->timer, on_timer, (uint64_t)timeout_ms, 0);
    return 0;
}

int sl__curl_ready(void)
{
    static int done;
    if (!done)
        done = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK;
    return done;
}

int sl__curl_uv_new(sl__curl_uv **out, uv_loop_t *loop, sl__curl_uv_done_fn done, void *ud)
{
    if (out == NULL)
        return SL_EINVAL;
    *out = NULL;
    if (loop == NULL || done == NULL)
        return SL_EINVAL;
    if (!sl__curl_ready())
        return SL_EINTERNAL;
    sl__curl_uv *c = calloc(1, sizeof *c);
    if (c == NULL)
        return SL_ENOMEM;
    if ((c->multi = curl_multi_init()) == NULL) {
        free(c);
        return SL_EINTERNAL;
    }
    c->loop = loop;
    c->done = done;
    c->ud = ud;
    curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
    curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c);
    curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
    curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, c);
    uv_timer_init(loop, &c->timer);
    c->timer.data = c;
    c->handles_open = 1;
    update_ref(c);
    *out = c;
    return SL_OK;
}

int sl__curl_uv_add(sl__curl_uv *c, CURL *easy)
{
    if (c == NULL || c->closing || easy == NULL)
        return SL_EINVAL;
    /* Adding arms curl's timer (our timer function): the transfer starts from the loop. */
    if (curl_multi_add_handle(c->multi, easy) != CURLM_OK)
        return SL_EINTERNAL;
    c->active++;
    update_ref(c);
    return SL_OK;
}

void sl__curl_uv_remove(sl__curl_uv *c, CURL *easy)
{
    if (c == NULL || easy == NULL || c->multi == NULL)
        return;
    if (curl_multi_remove_handle(c->multi, easy) == CURLM_OK && c->active > 0)
        c->active--;
    update_ref(c);
}

size_t sl__curl_uv_active(const sl__curl_uv *c)
{
    return c ? c->active : 0;
}

void sl__curl_uv_free(sl__curl_uv *c)
{
    if (c == NULL || c->closing)
        return;
    c->closing = 1;
    /* Cleanup closes cached connections, which reports their sockets removed (closing polls). */
    curl_multi_cleanup(c->multi);
    c->multi = NULL;
    while (c->socks != NULL)
        sock_close(c, c->socks);
    uv_close((uv_handle_t *)&c->timer, handle_closed);
}

int sl__curl_host_is_loopback(const char *host)
{
    char buf[64];
    size_t n = strlen(host);
    if (strcasecmp(host, "localhost") == 0)
        return 1;
    if (n >= 2 && n < sizeof buf && host[0] == '[' && host[n - 1] == ']') {
        memcpy(buf, host + 1, n - 2);
        buf[n - 2] = '\0';
        struct in6_addr a6;
        return inet_pton(AF_INET6, buf, &a6) == 1 && IN6_IS_ADDR_LOOPBACK(&a6);
    }
    struct in_addr a4;
    return inet_pton(AF_INET, host, &a4) == 1 && (ntohl(a4.s_addr) >> 24) == 127;
}

int sl__curl_url_acceptable(const char *url, int allow_http)
{
    CURLU *u = curl_url();
    if (u == NULL)
        return 0;
    char *scheme = NULL, *host = NULL, *user = NULL;
    int ok = curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
             curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
             curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK &&
             curl_url_get(u, CURLUPART_USER, &user, 0) == CURLUE_NO_USER;
    if (ok) {
        if (strcasecmp(scheme, "https") == 0)
            ok = 1;
        else if (strcasecmp(scheme, "http") == 0)
            ok = allow_http || sl__curl_host_is_loopback(host);
        else
            ok = 0;
    }
    curl_free(scheme);
    curl_free(host);
    curl_free(user);
    curl_url_cleanup(u);
    return ok;
}

size_t sl__curl_body_write(char *data, size_t size, size_t n, void *ud)
{
    sl__curl_body *b = ud;
    size_t len = size * n;
    if (len > b->max - b->len)
        return 0; /* too big: curl fails the transfer */
    if (b->len + len + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        while (cap < b->len + len + 1)
            cap *= 2;
        char *r = realloc(b->p, cap);
        if (r == NULL)
            return 0;
        b->p = r;
        b->cap = cap;
    }
    memcpy(b->p + b->len, data, len);
    b->len += len;
    b->p[b->len] = '\0';
    return len;
}

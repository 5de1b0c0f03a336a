/* The admin console's static files (server/routes_console.c) through the router, as sluiced serves
 * them: every embedded file is found under its name with its media type and the security headers
 * (which must fit the response's header buffer), /admin is index.html, ETags give 304, unknown and
 * hostile names are errors in JSON (and no longer carry a file's content type), and none of it
 * needs or reads a credential. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sluice/sluice.h>

#include "server/console.h"
#include "server/router.h"

typedef struct fake {
    sl_http_request req;
    sl_http_header hdr[2];
    char path[6000];
} fake;

static void make(fake *fk, const char *method, const char *path, const char *h1, const char *v1)
{
    memset(fk, 0, sizeof *fk);
    snprintf(fk->path, sizeof fk->path, "%s", path);
    fk->req.method = method;
    fk->req.target = fk->path;
    fk->req.target_len = strlen(fk->path);
    fk->req.path = fk->path;
    fk->req.path_len = strlen(fk->path);
    fk->req.query = "";
    fk->req.body = "";
    if (h1) {
        fk->hdr[0] = (sl_http_header){h1, strlen(h1), v1, strlen(v1)};
        fk->req.headers = fk->hdr;
        fk->req.nheaders = 1;
    }
}

static int setup(void **state)
{
    sl__router *r = calloc(1, sizeof *r);
    sl_ctx_options o = {.mode = SL_MODE_ACL};
    assert_int_equal(sl_ctx_new(&r->ctx, &o), SL_OK);
    sl_jwt_verify_opts_init(&r->authn.jwt);
    *state = r;
    return 0;
}

static int teardown(void **state)
{
    sl__router *r = *state;
    sl__router_clear(r);
    sl_ctx_free(r->ctx);
    free(r);
    return 0;
}

static int get(sl__router *r, const char *path, const char *h, const char *v, sl__response *resp)
{
    fake fk;
    make(&fk, "GET", path, h, v);
    sl__router_handle(r, &fk.req, resp);
    return resp->status;
}

static void test_the_bundle(void **state)
{
    (void)state;
    /* What the page needs is there; names are plain segments; every file has a type and an
     * ETag, and the headers of the longest ETag still fit. */
    assert_non_null(sl__console_find("index.html"));
    assert_non_null(sl__console_find("app.js"));
    assert_non_null(sl__console_find("app.css"));
    assert_null(sl__console_find(""));
    assert_null(sl__console_find("../index.html"));
    assert_true(sl__console_nfiles >= 3);
    for (size_t i = 0; i < sl__console_nfiles; i++) {
        const sl__console_file *f = &sl__console_files[i];
        assert_null(strchr(f->name, '/'));
        assert_non_null(f->type);
        assert_true(f->len > 0);
        assert_int_equal(f->data[f->len], 0); /* the generator NUL-terminates */
        assert_true(strlen(f->etag) > 2 && f->etag[0] == '"');
        assert_true(strlen(sl__console_headers) + strlen(f->etag) + 16 <
                    sizeof(((sl__response *)0)->headers));
    }
}

static void test_files_and_headers(void **state)
{
    sl__router *r = *state;
    sl__response resp;
    const sl__console_file *index = sl__console_find("index.html");
    assert_int_equal(get(r, "/admin", NULL, NULL, &resp), 200);
    assert_string_equal(resp.content_type, "text/html; charset=utf-8");
    assert_int_equal(resp.body_len, index->len);
    assert_memory_equal(resp.body, index->data, index->len);
    assert_non_null(strstr(resp.headers, "Content-Security-Policy: default-src 'none'; "
                                         "script-src 'self'; style-src 'self'; "));
    assert_non_null(strstr(resp.headers, "frame-ancestors 'none'"));
    assert_non_null(strstr(resp.headers, "X-Content-Type-Options: nosniff\r\n"));
    assert_non_null(strstr(resp.headers, "Cache-Control: no-cache\r\n"));
    assert_non_null(strstr(resp.headers, index->etag));
    sl__response_clear(&resp);

    for (size_t i = 0; i < sl__console_nfiles; i++) {
        const sl__console_file *f = &sl__console_files[i];
        char path[128];
        snprintf(path, sizeof path, "/admin/%s", f->name);
        assert_int_equal(get(r, path, NULL, NULL, &resp), 200);
        assert_string_equal(resp.content_type, f->type);
        assert_int_equal(resp.body_len, f->len);
        sl__response_clear(&resp);
    }
    assert_int_equal(get(r, "/admin/app.js", NULL, NULL, &resp), 200);
    assert_string_equal(resp.content_type, "text/javascript; charset=utf-8");
    sl__response_clear(&resp);
    assert_int_equal(get(r, "/admin/app.css", NULL, NULL, &resp), 200);
    assert_string_equal(resp.content_type, "text/css; charset=utf-8");
    sl__response_clear(&resp);
    /* A credential is neither needed nor looked at, even a broken one. */
    assert_int_equal(get(r, "/admin/app.js", "Authorization", "Bearer x.y.z", &resp), 200);
    sl__response_clear(&resp);
}

static void test_etag(void **state)
{
    sl__router *r = *state;
    sl__response resp;
    const sl__console_file *js = sl__console_find("app.js");
    char list[256];
    assert_int_equal(get(r, "/admin/app.js", "If-None-Match", js->etag, &resp), 304);
    assert_null(resp.body);
    assert_non_null(strstr(resp.headers, js->etag));
    sl__response_clear(&resp);
    snprintf(list, sizeof list, "\"a\", W/%s , \"b\"", js->etag);
    assert_int_equal(get(r, "/admin/app.js", "If-None-Match", list, &resp), 304);
    sl__response_clear(&resp);
    assert_int_equal(get(r, "/admin/app.js", "If-None-Match", "*", &resp), 304);
    sl__response_clear(&resp);
    /* Another file's tag, a prefix of this one's, garbage: the file again. */
    const char *others[] = {sl__console_find("index.html")->etag, "\"", "", ",,,", "W/", "\"x\""};
    for (size_t i = 0; i < sizeof others / sizeof others[0]; i++) {
        assert_int_equal(get(r, "/admin/app.js", "If-None-Match", others[i], &resp), 200);
        assert_int_equal(resp.body_len, js->len);
        sl__response_clear(&resp);
    }
    char prefix[64];
    snprintf(prefix, sizeof prefix, "%.*s", (int)strlen(js->etag) - 2, js->etag);
    assert_int_equal(get(r, "/admin/app.js", "If-None-Match", prefix, &resp), 200);
    sl__response_clear(&resp);
}

static void test_unknown_and_hostile(void **state)
{
    sl__router *r = *state;
    sl__response resp;
    char huge[5000];
    memset(huge, 'a', sizeof huge - 1);
    huge[sizeof huge - 1] = '\0';
    memcpy(huge, "/admin/", 7);
    const char *bad[] = {"/admin/nope.js",
                         "/admin/app.js.map",
                         "/admin/APP.JS",
                         "/admin/%2e%2e",
                         "/admin/..%2fsrc",
                         "/admin/%00",
                         "/admin/app.js/x",
                         "/admin/",
                         "/admin//app.js",
                         "/admin/index.htm",
                         huge};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int status = get(r, bad[i], NULL, NULL, &resp);
        if (status != 404 && status != 400)
            fail_msg("GET %.40s: %d", bad[i], status);
        assert_null(resp.content_type); /* JSON, not the type of a file */
        assert_null(strstr(resp.headers, "ETag"));
        sl__response_clear(&resp);
    }
    assert_int_equal(get(r, "/admin/nope.js", NULL, NULL, &resp), 404);
    assert_non_null(strstr(resp.body, "no such console file"));
    sl__response_clear(&resp);
    /* Only GET. */
    fake fk;
    make(&fk, "POST", "/admin", NULL, NULL);
    sl__router_handle(r, &fk.req, &resp);
    assert_int_equal(resp.status, 405);
    sl__response_clear(&resp);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_the_bundle),
        cmocka_unit_test_setup_teardown(test_files_and_headers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_etag, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_and_hostile, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* Pre-signed requests for bench/signed.sh: wrk's Lua has no cryptography, so every request a run
 * sends is signed here beforehand (RFC 9421 through sl_httpsig_sign, as the C client signs:
 * @method,
 * @target-uri, content-digest, a fresh nonce each), one per line:
 * "<Content-Digest>\t<Signature-Input>\t<Signature>". bench/signed_put.lua sends them in order.
 * Request i is created at now + i / PER_SECOND (whole seconds), as a client signing PER_SECOND
 * requests a second just before sending each would date them; without PER_SECOND every request
 * is created now.
 * Usage: bench_sign ALG KEYID KEYFILE AUTHORITY PATH BODYFILE COUNT [PER_SECOND] > requests.tsv
 * (ALG hmac-sha256 | ed25519 | ecdsa-p256-sha256; KEYFILE the secret or PEM private key). */
#include <sluice/httpsig.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    char *buf = malloc(1 << 20);
    *len = buf ? fread(buf, 1, (1 << 20) - 1, f) : 0;
    fclose(f);
    if (buf)
        buf[*len] = '\0';
    return buf;
}

int main(int argc, char **argv)
{
    if (argc != 8 && argc != 9) {
        fprintf(stderr,
                "usage: bench_sign ALG KEYID KEYFILE AUTHORITY PATH BODYFILE COUNT [PER_SECOND]\n");
        return 2;
    }
    size_t klen, blen;
    char *key = slurp(argv[3], &klen), *body = slurp(argv[6], &blen);
    long count = strtol(argv[7], NULL, 10);
    long per = argc > 8 ? strtol(argv[8], NULL, 10) : count;
    sl_httpsig_alg alg = sl_httpsig_alg_parse(argv[1]);
    if (key == NULL || body == NULL || count <= 0 || per <= 0 || alg == 0) {
        fprintf(stderr, "bench_sign: bad key file, body file, count or algorithm\n");
        return 2;
    }
    while (alg == SL_HTTPSIG_HMAC_SHA256 && klen > 0 &&
           (key[klen - 1] == '\n' || key[klen - 1] == '\r'))
        klen--; /* the secret-file rule */
    sl_httpsig_signer s = {.keyid = argv[2], .alg = alg, .key = key, .key_len = klen};
    sl_status lst;
    sl_status_clear(&lst);
    if (sl_httpsig_signer_load(&s, &lst) != SL_OK) {
        fprintf(stderr, "bench_sign: %s\n", lst.message);
        return 2;
    }
    double now = (double)time(NULL);
    for (long i = 0; i < count; i++) {
        sl_httpsig_headers h;
        sl_status st;
        sl_status_clear(&st);
        if (sl_httpsig_sign(&s, "PUT", "http", argv[4], argv[5], NULL, body, blen,
                            now + (double)(i / per), &h, &st) != SL_OK) {
            fprintf(stderr, "bench_sign: %s\n", st.message);
            return 1;
        }
        printf("%s\t%s\t%s\n", h.content_digest, h.signature_input, h.signature);
        sl_httpsig_headers_clear(&h);
    }
    sl_httpsig_signer_clear(&s);
    free(key);
    free(body);
    return fflush(stdout) == 0 ? 0 : 1;
}

/*
 * test_tls.c - the TLS module: contexts from the test CA's files (and the
 * errors naming them), the transport over a socketpair with a plain
 * OpenSSL client on the other end (handshake, ALPN, SNI, versions, garbage,
 * partial writes and their retries, close_notify, PROXY before TLS, records
 * split across reads and read ahead), the
 * shared ticket keys (resumption, rotation, a forked reader), and the heap
 * an idle session keeps.
 *
 * The certificates come from scripts/test-ca.sh, run once into a temporary
 * directory (make unit runs from the top of the tree).
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>

#include "run_suite.h"
#include "tls.h"

static char dir[64];
static char errbuf[WSE_TLS_ERR_MAX];

static const char *path(const char *name)
{
    static char p[4][256];
    static int i;
    i = (i + 1) % 4;
    snprintf(p[i], sizeof p[i], "%s/%s", dir, name);
    return p[i];
}

static void make_ca(void)
{
    char cmd[256];
    strcpy(dir, "/tmp/wse-tls-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(cmd, sizeof cmd, "sh scripts/test-ca.sh %s", dir);
    ck_assert_msg(system(cmd) == 0, "scripts/test-ca.sh failed");
}

static void remove_ca(void)
{
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    (void)!system(cmd);
}

static struct wse_tls *load(const char *const *names, unsigned n, struct wse_tls_keys *keys)
{
    struct wse_tls_opts o = {.npairs = n, .ticket_lifetime = 3600};
    for (unsigned i = 0; i < n; i++) {
        char c[64], k[64];
        snprintf(c, sizeof c, "%s.pem", names[i]);
        snprintf(k, sizeof k, "%s.key", names[i]);
        o.cert[i] = strdup(path(c));
        o.key[i] = strdup(path(k));
    }
    struct wse_tls *t = wse_tls_new(&o, keys, errbuf, sizeof errbuf);
    for (unsigned i = 0; i < n; i++) {
        free((void *)o.cert[i]);
        free((void *)o.key[i]);
    }
    return t;
}

/* ---- a connection: our transport on sfd, OpenSSL's client on cfd ------- */

struct pair {
    int sfd, cfd;
    SSL *c;
};

static SSL_CTX *client_ctx(int max_version)
{
    SSL_CTX *c = SSL_CTX_new(TLS_client_method());
    ck_assert_ptr_nonnull(c);
    SSL_CTX_set_min_proto_version(c, TLS1_VERSION);
    SSL_CTX_set_max_proto_version(c, max_version);
    SSL_CTX_set_security_level(c, 0);   /* let it offer TLS 1.0/1.1 */
    ck_assert_int_eq(SSL_CTX_load_verify_locations(c, path("ca.pem"), NULL), 1);
    SSL_CTX_set_verify(c, SSL_VERIFY_PEER, NULL);
    SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    return c;
}

static void pair_open(struct pair *p, struct wse_tls *t, SSL_CTX *cctx, bool plain_first)
{
    int fds[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds), 0);
    p->sfd = fds[0];
    p->cfd = fds[1];
    ck_assert_int_eq(wse_tls_attach(t, p->sfd, plain_first), 0);
    p->c = SSL_new(cctx);
    ck_assert_ptr_nonnull(p->c);
    SSL_set_fd(p->c, p->cfd);
    SSL_set_connect_state(p->c);
    SSL_set1_host(p->c, "localhost");
}

/* The client says close_notify first: OpenSSL marks the session of an SSL
 * freed without it not resumable. */
static void pair_close(struct pair *p)
{
    if (SSL_is_init_finished(p->c))
        SSL_shutdown(p->c);
    wse_transport_tls.forget(p->sfd);
    close(p->sfd);
    SSL_free(p->c);
    close(p->cfd);
}

static bool client_wait(SSL *c, int r)
{
    int e = SSL_get_error(c, r);
    return e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE;
}

/* Steps both sides until both are through (0), or either fails (-1).  The
 * server side is driven as a connection drives it: read, and wants(). */
static int handshake(struct pair *p)
{
    char buf[64];
    bool cdone = false;

    for (int i = 0; i < 200; i++) {
        if (!cdone) {
            int r = SSL_do_handshake(p->c);
            if (r == 1)
                cdone = true;
            else if (!client_wait(p->c, r))
                return -1;
        }
        ssize_t n = wse_transport_tls.read(p->sfd, buf, sizeof buf);
        if (n == 0 || (n < 0 && errno != EAGAIN))
            return -1;
        ck_assert_int_le(n, 0);  /* no application data in this test's handshakes */
        wse_transport_tls.wants(p->sfd);
        if (cdone && wse_tls_established(p->sfd))
            return 0;
    }
    return -1;
}

static void client_write(struct pair *p, const void *b, size_t n)
{
    size_t w;
    ck_assert_int_eq(SSL_write_ex(p->c, b, n, &w), 1);
    ck_assert_uint_eq(w, n);
}

/* Reads exactly n bytes on the client, the server side idle. */
static void client_read(struct pair *p, void *b, size_t n)
{
    size_t got = 0;
    for (int i = 0; got < n && i < 100000; i++) {
        size_t k;
        int r = SSL_read_ex(p->c, (char *)b + got, n - got, &k);
        if (r == 1)
            got += k;
        else
            ck_assert_msg(client_wait(p->c, r), "client read failed");
    }
    ck_assert_uint_eq(got, n);
}

static ssize_t server_read(struct pair *p, void *b, size_t cap)
{
    for (int i = 0; i < 1000; i++) {
        ssize_t n = wse_transport_tls.read(p->sfd, b, cap);
        if (n >= 0 || errno != EAGAIN)
            return n;
    }
    return -1;
}

/* ---- contexts ---------------------------------------------------------- */

START_TEST(rsa_and_ecdsa_together_by_signature_algorithm)
{
    const char *names[] = {"rsa", "ec"};
    struct wse_tls *t = load(names, 2, NULL);
    ck_assert_msg(t != NULL, "%s", errbuf);
    const char *sigalgs[] = {"ECDSA+SHA256", "rsa_pss_rsae_sha256"};
    int want[] = {EVP_PKEY_EC, EVP_PKEY_RSA};
    for (int i = 0; i < 2; i++) {
        SSL_CTX *cc = client_ctx(TLS1_3_VERSION);
        struct pair p;
        pair_open(&p, t, cc, false);
        ck_assert_int_eq(SSL_set1_sigalgs_list(p.c, sigalgs[i]), 1);
        ck_assert_int_eq(handshake(&p), 0);
        X509 *peer = SSL_get1_peer_certificate(p.c);
        ck_assert_int_eq(EVP_PKEY_get_base_id(X509_get0_pubkey(peer)), want[i]);
        ck_assert_int_eq(SSL_get_verify_result(p.c), X509_V_OK);
        X509_free(peer);
        pair_close(&p);
        SSL_CTX_free(cc);
    }
    wse_tls_free(t);
}
END_TEST

static void expect_error(const char *cert, const char *key, const char *const *parts)
{
    struct wse_tls_opts o = {.npairs = 1, .cert = {path(cert)}, .key = {path(key)}};
    ck_assert_ptr_null(wse_tls_new(&o, NULL, errbuf, sizeof errbuf));
    for (; *parts; parts++)
        ck_assert_msg(strstr(errbuf, *parts), "'%s' lacks '%s'", errbuf, *parts);
}

START_TEST(bad_pairs_name_the_file)
{
    expect_error("rsa.pem", "mismatch.key",
                 (const char *[]){"mismatch.key", "does not match", "rsa.pem", NULL});
    expect_error("rsa.pem", "ec.key", (const char *[]){"ec.key", "does not match", NULL});
    expect_error("expired.pem", "expired.key", (const char *[]){"expired.pem", "expired", NULL});
    expect_error("absent.pem", "rsa.key",
                 (const char *[]){"absent.pem", "No such file or directory", NULL});
    expect_error("rsa.pem", "absent.key", (const char *[]){"absent.key", "No such file", NULL});
    expect_error("rsa.key", "rsa.key", (const char *[]){"rsa.key", "no PEM certificate", NULL});
    expect_error("rsa.pem", "rsa.pem", (const char *[]){"rsa.pem", "no unencrypted PEM", NULL});
}
END_TEST

START_TEST(bad_cipher_options_are_named)
{
    struct wse_tls_opts o = {.npairs = 1, .cert = {path("ec.pem")}, .key = {path("ec.key")}};
    o.ciphers = "NOT-A-CIPHER";
    ck_assert_ptr_null(wse_tls_new(&o, NULL, errbuf, sizeof errbuf));
    ck_assert_ptr_nonnull(strstr(errbuf, "tls-ciphers 'NOT-A-CIPHER'"));
    o.ciphers = NULL;
    o.ciphersuites = "TLS_NOPE";
    ck_assert_ptr_null(wse_tls_new(&o, NULL, errbuf, sizeof errbuf));
    ck_assert_ptr_nonnull(strstr(errbuf, "tls-ciphersuites"));
    o.ciphersuites = NULL;
    o.groups = "P-999";
    ck_assert_ptr_null(wse_tls_new(&o, NULL, errbuf, sizeof errbuf));
    ck_assert_ptr_nonnull(strstr(errbuf, "tls-groups"));
    o.groups = "X25519:P-256";
    o.ciphersuites = "TLS_CHACHA20_POLY1305_SHA256";
    struct wse_tls *t = wse_tls_new(&o, NULL, errbuf, sizeof errbuf);
    ck_assert_msg(t != NULL, "%s", errbuf);
    SSL_CTX *cc = client_ctx(TLS1_3_VERSION);
    struct pair p;
    pair_open(&p, t, cc, false);
    ck_assert_int_eq(handshake(&p), 0);
    ck_assert_str_eq(SSL_CIPHER_get_name(SSL_get_current_cipher(p.c)),
                     "TLS_CHACHA20_POLY1305_SHA256");
    pair_close(&p);
    SSL_CTX_free(cc);
    wse_tls_free(t);
}
END_TEST

START_TEST(sni_picks_the_pair_covering_the_name)
{
    const char *names[] = {"rsa", "sni"};
    struct wse_tls *t = load(names, 2, NULL);
    ck_assert_msg(t != NULL, "%s", errbuf);
    const char *sni[] = {"other.test", "localhost", NULL, "unknown.test"};
    const char *cn[] = {"other.test", "localhost", "localhost", "localhost"};
    for (int i = 0; i < 4; i++) {
        SSL_CTX *cc = client_ctx(TLS1_3_VERSION);
        SSL_CTX_set_verify(cc, SSL_VERIFY_NONE, NULL);
        struct pair p;
        pair_open(&p, t, cc, false);
        if (sni[i])
            SSL_set_tlsext_host_name(p.c, sni[i]);
        ck_assert_int_eq(handshake(&p), 0);
        X509 *peer = SSL_get1_peer_certificate(p.c);
        char got[64];
        X509_NAME_get_text_by_NID(X509_get_subject_name(peer), NID_commonName, got, sizeof got);
        ck_assert_str_eq(got, cn[i]);
        X509_free(peer);
        pair_close(&p);
        SSL_CTX_free(cc);
    }
    wse_tls_free(t);
}
END_TEST

/* A renewal renames a new pair over the served files while a reload reads
 * them.  This suite links with --wrap=BIO_new_file: armed with a path, the
 * wrapper renames ec.pem's bytes over that file just after opening it, as
 * a renewal landing right after the first read began.  A loader opening the
 * certificate twice (the leaf, then the chain) would hold the RSA key
 * beside an ECDSA certificate: a context that fails every handshake. */
BIO *__real_BIO_new_file(const char *file, const char *mode);
static char renew_on_open[256];

static void copy_file(const char *from, const char *to)
{
    char buf[8192];
    FILE *in = fopen(from, "r"), *out = fopen(to, "w");
    ck_assert(in && out);
    size_t n = fread(buf, 1, sizeof buf, in);
    ck_assert_uint_eq(fwrite(buf, 1, n, out), n);
    fclose(in);
    ck_assert_int_eq(fclose(out), 0);
}

BIO *__wrap_BIO_new_file(const char *file, const char *mode)
{
    BIO *b = __real_BIO_new_file(file, mode);
    if (renew_on_open[0] && strcmp(file, renew_on_open) == 0) {
        renew_on_open[0] = 0;
        copy_file(path("ec.pem"), path("renewed.tmp"));
        ck_assert_int_eq(rename(path("renewed.tmp"), file), 0);
    }
    return b;
}

START_TEST(a_certificate_renamed_over_while_loading_is_not_mixed_in)
{
    char cert[256];
    snprintf(cert, sizeof cert, "%s", path("renewing.pem"));  /* path() rotates */
    copy_file(path("rsa.pem"), cert);
    snprintf(renew_on_open, sizeof renew_on_open, "%s", cert);
    struct wse_tls_opts o = {.npairs = 1, .cert = {cert}, .key = {path("rsa.key")}};
    struct wse_tls *t = wse_tls_new(&o, NULL, errbuf, sizeof errbuf);
    ck_assert_msg(t != NULL, "%s", errbuf);
    ck_assert_msg(renew_on_open[0] == 0, "the certificate was never opened");
    SSL_CTX *cc = client_ctx(TLS1_3_VERSION);
    struct pair p;
    pair_open(&p, t, cc, false);
    ck_assert_int_eq(handshake(&p), 0);
    X509 *peer = SSL_get1_peer_certificate(p.c);
    ck_assert_int_eq(EVP_PKEY_get_base_id(X509_get0_pubkey(peer)), EVP_PKEY_RSA);
    ck_assert_int_eq(SSL_get_verify_result(p.c), X509_V_OK);
    X509_free(peer);
    pair_close(&p);
    SSL_CTX_free(cc);
    wse_tls_free(t);
    unlink(cert);
}
END_TEST

/* ---- the transport ----------------------------------------------------- */

static struct wse_tls *ec_ctx(struct wse_tls_keys *keys)
{
    const char *names[] = {"ec"};
    struct wse_tls *t = load(names, 1, keys);
    ck_assert_msg(t != NULL, "%s", errbuf);
    return t;
}

START_TEST(echo_both_ways_with_alpn)
{
    struct wse_tls *t = ec_ctx(NULL);
    SSL_CTX *cc = client_ctx(TLS1_3_VERSION);
    struct pair p;
    pair_open(&p, t, cc, false);
    ck_assert_int_eq(SSL_set_alpn_protos(p.c, (const unsigned char *)"\x02h2\x08http/1.1", 12), 0);
    ck_assert_int_eq(handshake(&p), 0);
    const unsigned char *alpn;
    unsigned alen;
    SSL_get0_alpn_selected(p.c, &alpn, &alen);
    ck_assert_uint_eq(alen, 8);
    ck_assert_int_eq(memcmp(alpn, "http/1.1", 8), 0);
    ck_assert_str_eq(wse_tls_version(p.sfd), "TLSv1.3");

    client_write(&p, "hello", 5);
    char buf[64];
    ck_assert_int_eq(server_read(&p, buf, sizeof buf), 5);
    ck_assert_int_eq(memcmp(buf, "hello", 5), 0);
    struct iovec iov[3] = {{"ab", 2}, {"cde", 3}, {"f", 1}};
    ck_assert_int_eq(wse_transport_tls.writev(p.sfd, iov, 3), 6);
    client_read(&p, buf, 6);
    ck_assert_int_eq(memcmp(buf, "abcdef", 6), 0);
    pair_close(&p);
    SSL_CTX_free(cc);
    wse_tls_free(t);
}
END_TEST

START_TEST(alpn_without_http11_is_refused_and_none_is_served)
{
    struct wse_tls *t = ec_ctx(NULL);
    SSL_CTX *cc = client_ctx(TLS1_3_VERSION);
    struct pair p;
    pair_open(&p, t, cc, false);
    SSL_set_alpn_protos(p.c, (const unsigned char *)"\x02h2", 3);
    ck_assert_int_eq(handshake(&p), -1);
    ck_assert_ptr_nonnull(wse_tls_failure(p.sfd));
    ck_assert_ptr_nonnull(strstr(wse_tls_failure(p.sfd), "application protocol"));
    pair_close(&p);
    pair_open(&p, t, cc, false);        /* no ALPN at all */
    ck_assert_int_eq(handshake(&p), 0);
    pair_close(&p);
    SSL_CTX_free(cc);
    wse_tls_free(t);
}
END_TEST

START_TEST(tls12_served_and_tls11_refused)
{
    struct wse_tls *t = ec_ctx(NULL);
    SSL_CTX *c12 = client_ctx(TLS1_2_VERSION), *c11 = client_ctx(TLS1_1_VERSION);
    struct pair p;
    pair_open(&p, t, c12, false);
    ck_assert_int_eq(handshake(&p), 0);
    ck_assert_str_eq(wse_tls_version(p.sfd), "TLSv1.2");
    ck_assert_int_eq(SSL_version(p.c), TLS1_2_VERSION);
    pair_close(&p);
    pair_open(&p, t, c11, false);
    ck_assert_int_eq(handshake(&p), -1);
    ck_assert_msg(wse_tls_failure(p.sfd) && strstr(wse_tls_failure(p.sfd), "protocol"), "%s",
                  wse_tls_failure(p.sfd));
    ck_assert(!wse_tls_established(p.sfd));
    pair_close(&p);
    SSL_CTX_free(c12);
    SSL_CTX_free(c11);
    wse_tls_free(t);
}
END_TEST

/* Plain HTTP or random bytes on a TLS socket: EPROTO and a reason. */
static void garbage(struct wse_tls *t, const void *bytes, size_t n, const char *reason)
{
    int fds[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds), 0);
    ck_assert_int_eq(wse_tls_attach(t, fds[0], false), 0);
    ck_assert_int_eq(write(fds[1], bytes, n), (ssize_t)n);
    char buf[256];
    errno = 0;
    ck_assert_int_eq(wse_transport_tls.read(fds[0], buf, sizeof buf), -1);
    ck_assert_int_eq(errno, EPROTO);
    ck_assert_msg(wse_tls_failure(fds[0]) && strstr(wse_tls_failure(fds[0]), reason),
                  "reason '%s', wanted '%s'", wse_tls_failure(fds[0]), reason);
    /* A failed session sends no close_notify, only the FIN. */
    ck_assert_int_eq(wse_transport_tls.shutdown(fds[0]), 0);
    wse_transport_tls.forget(fds[0]);
    close(fds[0]);
    close(fds[1]);
}

START_TEST(garbage_fails_with_a_reason)
{
    struct wse_tls *t = ec_ctx(NULL);
    static const char http[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    garbage(t, http, sizeof http - 1, "http request");
    unsigned char rnd[200];
    for (unsigned i = 0; i < sizeof rnd; i++)
        rnd[i] = (unsigned char)(i * 37 + 11);
    garbage(t, rnd, sizeof rnd, "wrong version number");
    /* A ClientHello record cut short, then the peer's EOF. */
    static const unsigned char cut[] = {0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc};
    int fds[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds), 0);
    ck_assert_int_eq(wse_tls_attach(t, fds[0], false), 0);
    ck_assert_int_eq(write(fds[1], cut, sizeof cut), (ssize_t)sizeof cut);
    char buf[64];
    ck_assert_int_eq(wse_transport_tls.read(fds[0], buf, sizeof buf), -1);
    ck_assert_int_eq(errno, EAGAIN);    /* waits for the rest ... */
    ck_assert_uint_eq(wse_transport_tls.wants(fds[0]), 0);
    close(fds[1]);
    ssize_t n = wse_transport_tls.read(fds[0], buf, sizeof buf);
    ck_assert_int_le(n, 0);             /* ... which never comes: EOF, not established */
    ck_assert(!wse_tls_established(fds[0]));
    wse_transport_tls.forget(fds[0]);
    close(fds[0]);
    wse_tls_free(t);
}
END_TEST

/* A megabyte of mixed small and large pieces through a small socket buffer:
 * every partial count and EAGAIN is handled as conn does (the unsent rest
 * copied into a buffer of its own and offered again from there), and the
 * client must see exactly the bytes, in order.  Two socket buffers: smaller
 * than a record (every record ends in a retry, OpenSSL resuming inside the
 * offered bytes) and a few records large (writes end part-way through a
 * batch). */
START_TEST(partial_writes_retry_from_a_moved_buffer)
{
    static const int sndbuf[] = {4096, 100000};
    struct wse_tls *t = ec_ctx(NULL);
    SSL_CTX *cc = client_ctx(TLS1_3_VERSION);
    struct pair p;
    pair_open(&p, t, cc, false);
    ck_assert_int_eq(handshake(&p), 0);
    setsockopt(p.sfd, SOL_SOCKET, SO_SNDBUF, &sndbuf[_i], sizeof sndbuf[_i]);

    enum { TOTAL = 1 << 20 };
    unsigned char *src = malloc(TOTAL), *got = malloc(TOTAL), *out = malloc(TOTAL);
    for (size_t i = 0; i < TOTAL; i++)
        src[i] = (unsigned char)(i * 131 + (i >> 9));
    /* The batch: pieces of 3, 100, 9000, 20000, 1 ... bytes. */
    struct iovec iov[64];
    static const size_t sizes[] = {3, 100, 9000, 20000, 1, 700, 40000, 5};
    size_t off = 0, out_len = 0, out_pos = 0, received = 0;
    int eagain = 0, partial = 0;
    while (off < TOTAL || out_pos < out_len) {
        ssize_t n;
        if (out_pos < out_len) {        /* conn's on_writable: its own buffer */
            struct iovec one = {out + out_pos, out_len - out_pos};
            n = wse_transport_tls.writev(p.sfd, &one, 1);
            if (n > 0)
                out_pos += (size_t)n;
            partial += n > 0 && (size_t)n < one.iov_len;
        } else {                        /* conn's send_iov: a fresh batch */
            int niov = 0;
            size_t start = off;
            for (; niov < 64 && off < TOTAL; niov++) {
                size_t len = sizes[niov % 8];
                if (len > TOTAL - off)
                    len = TOTAL - off;
                iov[niov] = (struct iovec){src + off, len};
                off += len;
            }
            n = wse_transport_tls.writev(p.sfd, iov, niov);
            size_t sent = n > 0 ? (size_t)n : 0;
            partial += n > 0 && (size_t)n < off - start;
            /* keep_unsent: the rest moves to another buffer */
            memcpy(out, src + start + sent, off - start - sent);
            out_len = off - start - sent;
            out_pos = 0;
        }
        if (n < 0) {
            ck_assert_int_eq(errno, EAGAIN);
            eagain++;
        }
        ck_assert_uint_eq(wse_transport_tls.wants(p.sfd) & WSE_WANT_READ, 0);
        /* The peer takes a record: slower than the writer, so the buffer fills. */
        size_t k;
        for (int j = 0; j < 1 && received < TOTAL; j++) {
            int r = SSL_read_ex(p.c, got + received, TOTAL - received, &k);
            if (r != 1) {
                ck_assert(client_wait(p.c, r));
                break;
            }
            received += k;
        }
    }
    client_read(&p, got + received, TOTAL - received);
    ck_assert_int_eq(memcmp(got, src, TOTAL), 0);
    ck_assert_int_gt(eagain, 0);    /* the small buffer really pushed back */
    if (_i == 1)
        ck_assert_int_gt(partial, 0);
    free(src);
    free(got);
    free(out);
    pair_close(&p);
    SSL_CTX_free(cc);
    wse_tls_free(t);
}
END_TEST

START_TEST(close_notify_goes_before_the_fin)
{
    struct wse_tls *t = ec_ctx(NULL);
    SSL_CTX *cc = client_ctx(TLS1_3_VERSION);
    struct pair p;
    pair_open(&p, t, cc, false);
    ck_assert_int_eq(handshake(&p), 0);
    struct iovec iov = {"bye", 3};
    ck_assert_int_eq(wse_transport_tls.writev(p.sfd, &iov, 1), 3);
    ck_assert_int_eq(wse_transport_tls.shutdown(p.sfd), 0);
    ck_assert_uint_eq(wse_transport_tls.wants(p.sfd), 0);
    char buf[16];
    client_read(&p, buf, 3);
    size_t k;
    ck_assert_int_eq(SSL_read_ex(p.c, buf, sizeof buf, &k), 0);
    ck_assert_int_eq(SSL_get_error(p.c, 0), SSL_ERROR_ZERO_RETURN);
    ck_assert(SSL_get_shutdown(p.c) & SSL_RECEIVED_SHUTDOWN);
    ck_assert_int_eq(read(p.cfd, buf, sizeof buf), 0);  /* then the FIN */
    /* The client's close_notify is the server's EOF. */
    SSL_shutdown(p.c);
    ck_assert_int_eq(server_read(&p, buf, sizeof buf), 0);
    pair_close(&p);
    SSL_CTX_free(cc);
    wse_tls_free(t);
}
END_TEST

/* A peer that said close_notify (and left) while the server still had
 * output: the write fails (EPIPE), never "0 bytes written", which the
 * connection would retry forever on a socket that stays writable. */
START_TEST(a_write_after_the_peers_close_notify_fails)
{
    struct wse_tls *t = ec_ctx(NULL);
    SSL_CTX *cc = client_ctx(TLS1_3_VERSION);
    struct pair p;
    signal(SIGPIPE, SIG_IGN);   /* as a worker does */
    pair_open(&p, t, cc, false);
    ck_assert_int_eq(handshake(&p), 0);
    SSL_shutdown(p.c);
    close(p.cfd);
    p.cfd = -1;
    char big[4096];
    memset(big, 'x', sizeof big);
    struct iovec iov = {big, sizeof big};
    for (int i = 0; i < 64; i++) {
        errno = 0;
        ssize_t n = wse_transport_tls.writev(p.sfd, &iov, 1);
        ck_assert_msg(n != 0, "write %d: 0 bytes written, no error", i);
        if (n < 0) {
            ck_assert_msg(errno != EAGAIN, "write %d: EAGAIN from a closed peer", i);
            break;
        }
    }
    wse_transport_tls.forget(p.sfd);
    close(p.sfd);
    SSL_free(p.c);
    SSL_CTX_free(cc);
    wse_tls_free(t);
}
END_TEST

/* A PROXY header in the clear, then TLS, the ClientHello arriving in the
 * same read as the header. */
START_TEST(proxy_header_then_tls)
{
    struct wse_tls *t = ec_ctx(NULL);
    SSL_CTX *cc = client_ctx(TLS1_3_VERSION);
    struct pair p;
    pair_open(&p, t, cc, true);
    static const char hdr[] = "PROXY TCP4 192.0.2.1 192.0.2.2 1234 443\r\n";
    ck_assert_int_eq(write(p.cfd, hdr, sizeof hdr - 1), (ssize_t)sizeof hdr - 1);
    ck_assert_int_eq(SSL_do_handshake(p.c), -1);    /* the ClientHello goes */
    char buf[4096];
    ssize_t n = wse_transport_tls.read(p.sfd, buf, sizeof buf);
    ck_assert_int_gt(n, (ssize_t)sizeof hdr);
    ck_assert_int_eq(memcmp(buf, hdr, sizeof hdr - 1), 0);
    ck_assert(!wse_tls_has_pending(p.sfd));
    ck_assert_int_eq(wse_tls_begin(p.sfd, buf + sizeof hdr - 1, (size_t)n - (sizeof hdr - 1)), 0);
    /* The socket is quiet now; the session holds the ClientHello. */
    ck_assert(wse_tls_has_pending(p.sfd));
    ck_assert_int_eq(handshake(&p), 0);
    client_write(&p, "x", 1);
    ck_assert_int_eq(server_read(&p, buf, sizeof buf), 1);
    ck_assert_int_eq(buf[0], 'x');
    pair_close(&p);
    SSL_CTX_free(cc);
    wse_tls_free(t);
}
END_TEST

/* ---- reading ahead ------------------------------------------------------ */

/* The client's records for msgs as bytes, not sent: its output goes to a
 * memory BIO for the call, so a test cuts and joins records at will. */
static size_t client_records(struct pair *p, const char *const *msgs, int n, unsigned char *out,
                             size_t cap)
{
    BIO *mem = BIO_new(BIO_s_mem());
    ck_assert_ptr_nonnull(mem);
    SSL_set0_wbio(p->c, mem);
    for (int i = 0; i < n; i++)
        client_write(p, msgs[i], strlen(msgs[i]));
    int len = BIO_read(mem, out, (int)cap);
    ck_assert_int_gt(len, 0);
    ck_assert_int_eq(BIO_ctrl_pending(mem), 0);
    BIO *sock = BIO_new_socket(p->cfd, BIO_NOCLOSE);
    ck_assert_ptr_nonnull(sock);
    SSL_set0_wbio(p->c, sock);
    return (size_t)len;
}

static bool socket_readable(int fd)
{
    struct pollfd pf = {.fd = fd, .events = POLLIN};
    return poll(&pf, 1, 0) == 1;
}

/* A record arriving in pieces: each read before the last finds no whole
 * record, says EAGAIN and reports nothing pending (the socket wakes the
 * connection; "pending" would make it read again at once, in a loop). */
START_TEST(a_record_split_across_reads_waits_for_the_socket)
{
    struct wse_tls *t = ec_ctx(NULL);
    SSL_CTX *cc = client_ctx(TLS1_3_VERSION);
    struct pair p;
    pair_open(&p, t, cc, false);
    ck_assert_int_eq(handshake(&p), 0);
    static const char *const msg[] = {"split across three reads"};
    unsigned char rec[256];
    size_t len = client_records(&p, msg, 1, rec, sizeof rec);
    const size_t cuts[] = {3, 11, len};     /* inside the header, the body, the end */
    char buf[64 * 1024];
    size_t at = 0;
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(write(p.cfd, rec + at, cuts[i] - at), (ssize_t)(cuts[i] - at));
        at = cuts[i];
        errno = 0;
        ssize_t n = wse_transport_tls.read(p.sfd, buf, sizeof buf);
        if (i < 2) {
            ck_assert_int_eq(n, -1);
            ck_assert_int_eq(errno, EAGAIN);
            ck_assert(!wse_tls_has_pending(p.sfd));
        } else {
            ck_assert_int_eq(n, (ssize_t)strlen(msg[0]));
            ck_assert_int_eq(memcmp(buf, msg[0], (size_t)n), 0);
        }
    }
    ck_assert(!wse_tls_has_pending(p.sfd));
    pair_close(&p);
    SSL_CTX_free(cc);
    wse_tls_free(t);
}
END_TEST

/* Several records in one segment come out of one read call: the first
 * read() of the session takes them all (read ahead), so none is left for
 * another wake-up or another system call. */
START_TEST(several_records_in_one_segment_come_out_of_one_read)
{
    struct wse_tls *t = ec_ctx(NULL);
    SSL_CTX *cc = client_ctx(TLS1_3_VERSION);
    struct pair p;
    pair_open(&p, t, cc, false);
    ck_assert_int_eq(handshake(&p), 0);
    static const char *const msgs[] = {"one,", "two,", "three,", "four"};
    unsigned char rec[1024];
    size_t len = client_records(&p, msgs, 4, rec, sizeof rec);
    ck_assert_int_eq(write(p.cfd, rec, len), (ssize_t)len);
    char buf[64 * 1024];
    ssize_t n = wse_transport_tls.read(p.sfd, buf, sizeof buf);
    ck_assert_int_eq(n, 18);
    ck_assert_int_eq(memcmp(buf, "one,two,three,four", 18), 0);
    ck_assert(!wse_tls_has_pending(p.sfd));
    ck_assert(!socket_readable(p.sfd));
    pair_close(&p);
    SSL_CTX_free(cc);
    wse_tls_free(t);
}
END_TEST

/* Records read ahead beyond what the connection's buffer takes stay inside
 * OpenSSL, the socket quiet: reading as the event loop does (when the
 * socket is readable or the session says pending), every byte comes out,
 * and "pending" never promises a read that gives nothing. */
START_TEST(records_read_ahead_past_a_full_buffer_are_reported_pending)
{
    struct wse_tls *t = ec_ctx(NULL);
    SSL_CTX *cc = client_ctx(TLS1_3_VERSION);
    struct pair p;
    pair_open(&p, t, cc, false);
    ck_assert_int_eq(handshake(&p), 0);
    enum { N = 40, SIZE = 1000 };
    static char text[N][SIZE + 1];
    const char *msgs[N];
    for (int i = 0; i < N; i++) {
        memset(text[i], 'a' + i % 26, SIZE);
        msgs[i] = text[i];
    }
    static unsigned char rec[N * (SIZE + 64)];
    size_t len = client_records(&p, msgs, N, rec, sizeof rec);
    ck_assert_int_eq(write(p.cfd, rec, len), (ssize_t)len);
    /* Room for one whole record and a little: the loop stops early. */
    static char buf[SSL3_RT_MAX_PLAIN_LENGTH + 2 * SIZE];
    static char got[N * SIZE];
    size_t total = 0;
    int pending_reads = 0;
    while (wse_tls_has_pending(p.sfd) || socket_readable(p.sfd)) {
        bool promised = wse_tls_has_pending(p.sfd);
        pending_reads += promised && !socket_readable(p.sfd);
        ssize_t n = wse_transport_tls.read(p.sfd, buf, sizeof buf);
        if (promised)
            ck_assert_int_gt(n, 0);
        if (n > 0) {
            ck_assert_uint_le(total + (size_t)n, sizeof got);
            memcpy(got + total, buf, (size_t)n);
            total += (size_t)n;
        }
    }
    ck_assert_uint_eq(total, N * SIZE);
    for (int i = 0; i < N; i++)
        ck_assert_int_eq(memcmp(got + i * SIZE, text[i], SIZE), 0);
    ck_assert_int_gt(pending_reads, 0);     /* the case this test is about happened */
    pair_close(&p);
    SSL_CTX_free(cc);
    wse_tls_free(t);
}
END_TEST

/* A batch of pipelined echoes, one region each and shorter than a record,
 * leaves in full records (each record costs the server a write()), in
 * order; the client, reading without read ahead, gets one record a call. */
START_TEST(pipelined_echoes_share_full_records)
{
    struct wse_tls *t = ec_ctx(NULL);
    SSL_CTX *cc = client_ctx(TLS1_3_VERSION);
    struct pair p;
    pair_open(&p, t, cc, false);
    ck_assert_int_eq(handshake(&p), 0);
    enum { N = 5, SIZE = 4100 };
    static unsigned char echo[N][SIZE + 8];     /* apart, as regions of a read buffer are */
    struct iovec iov[N];
    for (int i = 0; i < N; i++) {
        memset(echo[i], 'A' + i, SIZE);
        iov[i] = (struct iovec){echo[i], SIZE};
    }
    ck_assert_int_eq(wse_transport_tls.writev(p.sfd, iov, N), N * SIZE);
    static unsigned char got[N * SIZE];
    size_t k, total = 0;
    ck_assert_int_eq(SSL_read_ex(p.c, got, sizeof got, &k), 1);
    ck_assert_uint_eq(k, SSL3_RT_MAX_PLAIN_LENGTH);
    total = k;
    client_read(&p, got + total, sizeof got - total);
    for (int i = 0; i < N; i++)
        ck_assert_int_eq(memcmp(got + i * SIZE, echo[i], SIZE), 0);
    pair_close(&p);
    SSL_CTX_free(cc);
    wse_tls_free(t);
}
END_TEST

/* ---- tickets ----------------------------------------------------------- */

/* A full handshake, a byte each way (the TLS 1.3 ticket comes after the
 * handshake), and the client's session to resume with. */
static SSL_SESSION *connect_once(struct wse_tls *t, SSL_CTX *cc, SSL_SESSION *resume,
                                 bool *resumed)
{
    struct pair p;
    char b;
    pair_open(&p, t, cc, false);
    if (resume)
        SSL_set_session(p.c, resume);
    ck_assert_int_eq(handshake(&p), 0);
    *resumed = SSL_session_reused(p.c);
    ck_assert_int_eq(*resumed, wse_tls_resumed(p.sfd));
    struct iovec iov = {"k", 1};
    ck_assert_int_eq(wse_transport_tls.writev(p.sfd, &iov, 1), 1);
    client_read(&p, &b, 1);
    SSL_SESSION *s = SSL_get1_session(p.c);
    pair_close(&p);
    return s;
}

START_TEST(tickets_resume_across_contexts_and_one_rotation)
{
    struct wse_tls_keys *keys = wse_tls_keys_create(errbuf, sizeof errbuf);
    ck_assert_msg(keys != NULL, "%s", errbuf);
    /* Two contexts on the same keys: two workers, or two generations. */
    struct wse_tls *a = ec_ctx(keys), *b = ec_ctx(keys);
    SSL_CTX *cc = client_ctx(TLS1_3_VERSION);
    bool resumed;
    SSL_SESSION *s1 = connect_once(a, cc, NULL, &resumed);
    ck_assert(!resumed);
    ck_assert(SSL_SESSION_has_ticket(s1));
    SSL_SESSION *s2 = connect_once(b, cc, s1, &resumed);
    ck_assert(resumed);
    ck_assert_int_eq(wse_tls_keys_rotate(keys), 0);
    ck_assert_uint_eq(wse_tls_keys_serial(keys), 1);
    SSL_SESSION *s3 = connect_once(a, cc, s2, &resumed);     /* the previous key */
    ck_assert(resumed);
    ck_assert_int_eq(wse_tls_keys_rotate(keys), 0);
    ck_assert_int_eq(wse_tls_keys_rotate(keys), 0);
    /* The client would offer s3 (a fresh ticket, under the key now two
     * rotations old), and the server no longer opens it. */
    ck_assert(SSL_SESSION_is_resumable(s3));
    SSL_SESSION *s4 = connect_once(b, cc, s3, &resumed);
    ck_assert(!resumed);
    SSL_SESSION_free(s1);
    SSL_SESSION_free(s2);
    SSL_SESSION_free(s3);
    SSL_SESSION_free(s4);
    SSL_CTX_free(cc);
    wse_tls_free(a);
    wse_tls_free(b);
    wse_tls_keys_destroy(keys);
}
END_TEST

/* A worker forked before a rotation resumes a ticket issued by the new key:
 * the page is shared, not copied at fork. */
START_TEST(a_forked_worker_sees_later_rotations)
{
    struct wse_tls_keys *keys = wse_tls_keys_create(errbuf, sizeof errbuf);
    ck_assert_ptr_nonnull(keys);
    struct wse_tls *t = ec_ctx(keys);
    int go[2];
    ck_assert_int_eq(pipe(go), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        char c;
        wse_tls_keys_seal(keys);
        close(go[1]);
        if (read(go[0], &c, 1) != 1)
            _exit(3);
        SSL_CTX *cc = client_ctx(TLS1_3_VERSION);
        bool resumed;
        SSL_SESSION *s = connect_once(t, cc, NULL, &resumed);   /* the worker issues */
        FILE *f = fopen(path("ticket.pem"), "w");
        if (!f || !PEM_write_SSL_SESSION(f, s))
            _exit(4);
        fclose(f);
        int status = wse_tls_keys_serial(keys) == 1 ? 0 : 5;
        /* Freed before _exit: valgrind checks the child for leaks too. */
        SSL_SESSION_free(s);
        SSL_CTX_free(cc);
        wse_tls_free(t);
        _exit(status);
    }
    close(go[0]);
    ck_assert_int_eq(wse_tls_keys_rotate(keys), 0);     /* after the fork */
    ck_assert_int_eq(write(go[1], "g", 1), 1);
    int st;
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status %d", st);
    /* The master's side resumes the child's ticket: same current key. */
    FILE *f = fopen(path("ticket.pem"), "r");
    ck_assert_ptr_nonnull(f);
    SSL_SESSION *s = PEM_read_SSL_SESSION(f, NULL, NULL, NULL);
    fclose(f);
    ck_assert_ptr_nonnull(s);
    SSL_CTX *cc = client_ctx(TLS1_3_VERSION);
    bool resumed;
    SSL_SESSION *s2 = connect_once(t, cc, s, &resumed);
    ck_assert(resumed);
    SSL_SESSION_free(s);
    SSL_SESSION_free(s2);
    SSL_CTX_free(cc);
    wse_tls_free(t);
    wse_tls_keys_destroy(keys);
}
END_TEST

/* ---- memory ------------------------------------------------------------ */

/* The heap an established, idle session keeps on the server side: with
 * SSL_MODE_RELEASE_BUFFERS no record buffer (16 KiB + each way) stays.
 * Under ASan malloc statistics are not glibc's: skipped there. */
START_TEST(an_idle_session_keeps_no_record_buffers)
{
#if defined(__SANITIZE_ADDRESS__)
    return;
#endif
    enum { N = 32 };
    struct wse_tls *t = ec_ctx(NULL);
    SSL_CTX *cc = client_ctx(TLS1_3_VERSION);
    struct pair p[N];
    SSL_CTX *ccs[N];
    size_t server_heap = 0;
    for (int i = 0; i < N; i++) {
        ccs[i] = cc;
        pair_open(&p[i], t, cc, false);
        /* The client side's heap is not the server's: measure around the
         * server's calls only, the client's steps between them excluded. */
        char buf[64];
        bool cdone = false;
        for (int k = 0; k < 200 && !(cdone && wse_tls_established(p[i].sfd)); k++) {
            if (!cdone) {
                int r = SSL_do_handshake(p[i].c);
                cdone = r == 1;
                ck_assert(cdone || client_wait(p[i].c, r));
            }
            size_t before = mallinfo2().uordblks;
            (void)wse_transport_tls.read(p[i].sfd, buf, sizeof buf);
            server_heap += mallinfo2().uordblks - before;
        }
        struct iovec iov = {"m", 1};
        size_t before = mallinfo2().uordblks;
        ck_assert_int_eq(wse_transport_tls.writev(p[i].sfd, &iov, 1), 1);
        server_heap += mallinfo2().uordblks - before;
        client_read(&p[i], buf, 1);
    }
    /* SSL_new's share (made in pair_open) is counted apart: */
    size_t before = mallinfo2().uordblks;
    int fd = dup(p[0].sfd);
    ck_assert_int_eq(wse_tls_attach(t, fd, false), 0);
    size_t attach = mallinfo2().uordblks - before;
    wse_transport_tls.forget(fd);
    close(fd);
    size_t per = attach + server_heap / N;
    fprintf(stderr, "test_tls: heap per idle TLS 1.3 session: %zu bytes (SSL_new %zu)\n", per,
            attach);
    ck_assert_uint_lt(per, 16384);
    for (int i = 0; i < N; i++)
        pair_close(&p[i]);
    (void)ccs;
    SSL_CTX_free(cc);
    wse_tls_free(t);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("tls");
    TCase *tc = tcase_create("tls");
    tcase_add_unchecked_fixture(tc, make_ca, remove_ca);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, rsa_and_ecdsa_together_by_signature_algorithm);
    tcase_add_test(tc, bad_pairs_name_the_file);
    tcase_add_test(tc, bad_cipher_options_are_named);
    tcase_add_test(tc, sni_picks_the_pair_covering_the_name);
    tcase_add_test(tc, a_certificate_renamed_over_while_loading_is_not_mixed_in);
    tcase_add_test(tc, echo_both_ways_with_alpn);
    tcase_add_test(tc, alpn_without_http11_is_refused_and_none_is_served);
    tcase_add_test(tc, tls12_served_and_tls11_refused);
    tcase_add_test(tc, garbage_fails_with_a_reason);
    tcase_add_loop_test(tc, partial_writes_retry_from_a_moved_buffer, 0, 2);
    tcase_add_test(tc, close_notify_goes_before_the_fin);
    tcase_add_test(tc, a_write_after_the_peers_close_notify_fails);
    tcase_add_test(tc, proxy_header_then_tls);
    tcase_add_test(tc, a_record_split_across_reads_waits_for_the_socket);
    tcase_add_test(tc, several_records_in_one_segment_come_out_of_one_read);
    tcase_add_test(tc, records_read_ahead_past_a_full_buffer_are_reported_pending);
    tcase_add_test(tc, pipelined_echoes_share_full_records);
    tcase_add_test(tc, tickets_resume_across_contexts_and_one_rotation);
    tcase_add_test(tc, a_forked_worker_sees_later_rotations);
    tcase_add_test(tc, an_idle_session_keeps_no_record_buffers);
    suite_add_tcase(s, tc);
    return wse_run_suite(s);
}

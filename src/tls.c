/*
 * tls.c - TLS contexts, shared ticket keys, and the TLS transport.
 *
 * OpenSSL 3.  The context follows OpenSSL's secure defaults and narrows
 * them: TLS 1.2 and 1.3 only, the server's cipher order, no renegotiation,
 * no compression, no server-side session cache (tickets alone resume), one
 * TLS 1.3 ticket per handshake, and record buffers released whenever they
 * are empty (an idle connection keeps only the SSL object).
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "tls.h"

/* ---- errors ------------------------------------------------------------ */

/* The innermost OpenSSL reason of the queue, which is then cleared. */
static const char *ossl_reason(void)
{
    unsigned long e = ERR_peek_last_error();
    const char *r = e ? ERR_reason_error_string(e) : NULL;

    ERR_clear_error();
    return r ? r : "unknown error";
}

static void set_err(char *err, size_t n, const char *fmt, const char *a, const char *b,
                    const char *c)
{
    if (err && n)
        snprintf(err, n, fmt, a, b, c);
}

/* ---- ticket keys ------------------------------------------------------- */

struct ticket_key {
    unsigned char name[16];
    unsigned char aes[32];
    unsigned char hmac[32];
};

/* The shared page.  A seqlock: the master makes seq odd, writes, makes it
 * even; a reader copies both keys and retries while seq was odd or moved.
 * Only the master writes (workers seal their view read-only). */
struct wse_tls_keys {
    _Atomic uint32_t seq;
    uint32_t pad;
    uint64_t serial;            /* rotations so far */
    struct ticket_key cur, prev;
};

#define KEYS_MAP_SIZE 4096
_Static_assert(sizeof(struct wse_tls_keys) <= KEYS_MAP_SIZE, "ticket keys fit one page");

static int new_key(struct ticket_key *k)
{
    return RAND_bytes((unsigned char *)k, (int)sizeof *k) == 1 ? 0 : -1;
}

struct wse_tls_keys *wse_tls_keys_create(char *err, size_t errlen)
{
    struct ticket_key cur, prev;

    if (new_key(&cur) < 0 || new_key(&prev) < 0) {
        set_err(err, errlen, "ticket keys: no randomness (%s)%s%s", ossl_reason(), "", "");
        return NULL;
    }
    /* Anonymous: no name another user could open; shared: rotations reach
     * workers already forked. */
    void *p = mmap(NULL, KEYS_MAP_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        set_err(err, errlen, "ticket keys: mmap: %s%s%s", strerror(errno), "", "");
        OPENSSL_cleanse(&cur, sizeof cur);
        OPENSSL_cleanse(&prev, sizeof prev);
        return NULL;
    }
    /* Keys never reach a core file or swap. */
    (void)madvise(p, KEYS_MAP_SIZE, MADV_DONTDUMP);
    (void)mlock(p, KEYS_MAP_SIZE);
    struct wse_tls_keys *k = p;
    k->cur = cur;
    k->prev = prev;
    OPENSSL_cleanse(&cur, sizeof cur);
    OPENSSL_cleanse(&prev, sizeof prev);
    return k;
}

int wse_tls_keys_rotate(struct wse_tls_keys *k)
{
    struct ticket_key fresh;

    if (new_key(&fresh) < 0) {
        ERR_clear_error();
        return -1;
    }
    uint32_t s = atomic_load_explicit(&k->seq, memory_order_relaxed);
    atomic_store_explicit(&k->seq, s + 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
    k->prev = k->cur;
    k->cur = fresh;
    k->serial++;
    atomic_store_explicit(&k->seq, s + 2, memory_order_release);
    OPENSSL_cleanse(&fresh, sizeof fresh);
    return 0;
}

uint64_t wse_tls_keys_serial(const struct wse_tls_keys *k)
{
    return k->serial;
}

void wse_tls_keys_seal(struct wse_tls_keys *k)
{
    (void)mprotect(k, KEYS_MAP_SIZE, PROT_READ);
}

void wse_tls_keys_destroy(struct wse_tls_keys *k)
{
    if (!k)
        return;
    if (mprotect(k, KEYS_MAP_SIZE, PROT_READ | PROT_WRITE) == 0)
        OPENSSL_cleanse(k, sizeof *k);
    munmap(k, KEYS_MAP_SIZE);
}

/* Both keys as one consistent pair; false if the master kept writing (the
 * handshake then goes without a ticket, never with a torn key). */
static bool keys_snapshot(const struct wse_tls_keys *k, struct ticket_key out[2])
{
    for (int tries = 0; tries < 64; tries++) {
        uint32_t s1 = atomic_load_explicit(&k->seq, memory_order_acquire);
        if (s1 & 1)
            continue;
        memcpy(&out[0], (const void *)&k->cur, sizeof out[0]);
        memcpy(&out[1], (const void *)&k->prev, sizeof out[1]);
        atomic_thread_fence(memory_order_acquire);
        if (atomic_load_explicit(&k->seq, memory_order_relaxed) == s1)
            return true;
    }
    return false;
}

/* The context's keys: the SSL_CTX's ex-data slot would do, but one context
 * family shares one page, so a static per process is as exact. */
static struct wse_tls_keys *ticket_keys;

static int key_into(const struct ticket_key *k, unsigned char *iv, EVP_CIPHER_CTX *cctx,
                    EVP_MAC_CTX *hctx, int enc)
{
    OSSL_PARAM params[3];

    params[0] = OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, (void *)k->hmac,
                                                  sizeof k->hmac);
    params[1] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, "sha256", 0);
    params[2] = OSSL_PARAM_construct_end();
    int ok = enc ? EVP_EncryptInit_ex(cctx, EVP_aes_256_cbc(), NULL, k->aes, iv)
                 : EVP_DecryptInit_ex(cctx, EVP_aes_256_cbc(), NULL, k->aes, iv);
    return ok == 1 && EVP_MAC_CTX_set_params(hctx, params) == 1;
}

/* OpenSSL's ticket callback: encrypt with the current key; decrypt with
 * either, asking for a new ticket (2) when the previous key opened it, and
 * always in TLS 1.3, whose tickets are for one use (RFC 8446 C.4): a client
 * that resumes leaves with a fresh one. */
static int ticket_cb(SSL *s, unsigned char name[16], unsigned char *iv, EVP_CIPHER_CTX *cctx,
                     EVP_MAC_CTX *hctx, int enc)
{
    struct ticket_key keys[2];
    int rc = 0;
    if (!ticket_keys || !keys_snapshot(ticket_keys, keys))
        return 0;                   /* no ticket / full handshake */
    if (enc) {
        if (RAND_bytes(iv, EVP_CIPHER_get_iv_length(EVP_aes_256_cbc())) == 1 &&
            key_into(&keys[0], iv, cctx, hctx, 1)) {
            memcpy(name, keys[0].name, 16);
            rc = 1;
        } else {
            rc = -1;
        }
    } else {
        for (int i = 0; i < 2; i++) {
            if (CRYPTO_memcmp(name, keys[i].name, 16) == 0) {
                bool renew = i > 0 || SSL_version(s) >= TLS1_3_VERSION;
                rc = key_into(&keys[i], iv, cctx, hctx, 0) ? (renew ? 2 : 1) : -1;
                break;
            }
        }
    }
    OPENSSL_cleanse(keys, sizeof keys);
    return rc;
}

/* ---- the context ------------------------------------------------------- */

struct wse_tls {
    SSL_CTX *ctx[WSE_TLS_MAX_PAIRS];    /* [0] serves by default; others by SNI */
    unsigned nctx;
    X509 *leaf[WSE_TLS_MAX_PAIRS];      /* each pair's certificate ... */
    unsigned leaf_ctx[WSE_TLS_MAX_PAIRS];   /* ... and the context holding it */
    int leaf_type[WSE_TLS_MAX_PAIRS];
    unsigned npairs;
};

static const unsigned char alpn_http11[] = "\x08http/1.1";

/* ALPN: http/1.1 or nothing.  A client offering only other protocols gets
 * no_application_protocol (RFC 7301 3.2); one sending no ALPN never gets
 * here and is served. */
static int alpn_cb(SSL *s, const unsigned char **out, unsigned char *outlen,
                   const unsigned char *in, unsigned inlen, void *arg)
{
    unsigned char *sel;
    (void)s;
    (void)arg;

    if (SSL_select_next_proto(&sel, outlen, alpn_http11, sizeof alpn_http11 - 1, in, inlen) !=
        OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_ALERT_FATAL;
    *out = sel;
    return SSL_TLSEXT_ERR_OK;
}

/* SNI: any name is accepted; a name another pair's certificate covers
 * switches the connection to that pair's context. */
static int sni_cb(SSL *s, int *alert, void *arg)
{
    const struct wse_tls *t = arg;
    const char *name = SSL_get_servername(s, TLSEXT_NAMETYPE_host_name);
    (void)alert;

    if (!name || t->nctx < 2)
        return SSL_TLSEXT_ERR_OK;
    for (unsigned i = 0; i < t->npairs; i++) {
        if (X509_check_host(t->leaf[i], name, 0, 0, NULL) == 1) {
            if (t->leaf_ctx[i] != 0)
                SSL_set_SSL_CTX(s, t->ctx[t->leaf_ctx[i]]);
            break;
        }
    }
    return SSL_TLSEXT_ERR_OK;
}

static SSL_CTX *ctx_new(const struct wse_tls_opts *o, struct wse_tls *t, bool tickets,
                        char *err, size_t errlen)
{
    SSL_CTX *c = SSL_CTX_new(TLS_server_method());
    const char *what = NULL, *val = NULL;

    if (!c) {
        set_err(err, errlen, "TLS: cannot create a context (%s)%s%s", ossl_reason(), "", "");
        return NULL;
    }
    SSL_CTX_set_min_proto_version(c, TLS1_2_VERSION);
    SSL_CTX_set_options(c, SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_RENEGOTIATION |
                               SSL_OP_NO_COMPRESSION | SSL_OP_IGNORE_UNEXPECTED_EOF |
                               (tickets ? 0 : SSL_OP_NO_TICKET));
    SSL_CTX_set_mode(c, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE |
                            SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    /* One read() takes what the socket holds, not a record header then its
     * body: tls_read() and wse_tls_has_pending() account for the records
     * this leaves inside OpenSSL. */
    SSL_CTX_set_read_ahead(c, 1);
    SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_session_id_context(c, (const unsigned char *)"wsechod", 7);
    SSL_CTX_set_num_tickets(c, tickets ? 1 : 0);
    if (tickets) {
        SSL_CTX_set_timeout(c, (long)o->ticket_lifetime);
        SSL_CTX_set_tlsext_ticket_key_evp_cb(c, ticket_cb);
    }
    SSL_CTX_set_alpn_select_cb(c, alpn_cb, NULL);
    SSL_CTX_set_tlsext_servername_callback(c, sni_cb);
    SSL_CTX_set_tlsext_servername_arg(c, t);
    if (o->ciphers && SSL_CTX_set_cipher_list(c, o->ciphers) != 1)
        what = "tls-ciphers", val = o->ciphers;
    else if (o->ciphersuites && SSL_CTX_set_ciphersuites(c, o->ciphersuites) != 1)
        what = "tls-ciphersuites", val = o->ciphersuites;
    else if (o->groups && SSL_CTX_set1_groups_list(c, o->groups) != 1)
        what = "tls-groups", val = o->groups;
    if (what) {
        set_err(err, errlen, "%s '%s': %s", what, val, ossl_reason());
        SSL_CTX_free(c);
        return NULL;
    }
    return c;
}

/* Refuses a certificate outside its validity dates, naming the file and
 * which certificate of the chain (0 = the leaf). */
static int check_dates(X509 *x, const char *file, int depth, char *err, size_t errlen)
{
    char where[64];

    snprintf(where, sizeof where, depth ? "chain certificate %d" : "certificate", depth);
    if (X509_cmp_current_time(X509_get0_notAfter(x)) <= 0) {
        set_err(err, errlen, "%s: %s has expired%s", file, where, "");
        return -1;
    }
    if (X509_cmp_current_time(X509_get0_notBefore(x)) >= 0) {
        set_err(err, errlen, "%s: %s is not valid yet%s", file, where, "");
        return -1;
    }
    return 0;
}

/* The certificate file read once, the leaf and its chain from the same
 * bytes: a renewal renaming new files over the old ones between two reads
 * of one path could otherwise pair one leaf with another leaf's key, and a
 * context holding a certificate without its key fails every handshake. */
struct cert_file {
    X509 *leaf;
    STACK_OF(X509) *chain;
};

static void cert_file_free(struct cert_file *f)
{
    X509_free(f->leaf);
    sk_X509_pop_free(f->chain, X509_free);
    f->leaf = NULL;
    f->chain = NULL;
}

static int read_chain(BIO *b, STACK_OF(X509) *chain)
{
    X509 *x;

    while ((x = PEM_read_bio_X509(b, NULL, NULL, NULL)))
        if (!sk_X509_push(chain, x)) {
            X509_free(x);
            return -1;
        }
    /* The end of the file reads as "no start line"; anything else is a
     * broken certificate after the leaf. */
    unsigned long e = ERR_peek_last_error();
    if (ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE) {
        ERR_clear_error();
        return 0;
    }
    return -1;
}

static int read_cert_file(const char *file, struct cert_file *f, char *err, size_t errlen)
{
    BIO *b = BIO_new_file(file, "r");

    if (!b) {
        ERR_clear_error();
        set_err(err, errlen, "certificate %s: %s%s", file, strerror(errno ? errno : EIO), "");
        return -1;
    }
    f->leaf = PEM_read_bio_X509_AUX(b, NULL, NULL, NULL);
    if (!f->leaf) {
        set_err(err, errlen, "certificate %s: no PEM certificate (%s)%s", file, ossl_reason(), "");
    } else if (!(f->chain = sk_X509_new_null()) || read_chain(b, f->chain) < 0) {
        set_err(err, errlen, "certificate chain %s: %s%s", file, ossl_reason(), "");
        cert_file_free(f);
    }
    BIO_free(b);
    return f->leaf ? 0 : -1;
}

/* No passphrase prompt, ever: a daemon has no terminal. */
static int no_passphrase(char *buf, int size, int rw, void *u)
{
    (void)buf, (void)size, (void)rw, (void)u;
    return -1;
}

static EVP_PKEY *read_key(const char *file, char *err, size_t errlen)
{
    BIO *b = BIO_new_file(file, "r");

    if (!b) {
        ERR_clear_error();
        set_err(err, errlen, "key %s: %s%s", file, strerror(errno ? errno : EIO), "");
        return NULL;
    }
    EVP_PKEY *k = PEM_read_bio_PrivateKey(b, NULL, no_passphrase, NULL);
    BIO_free(b);
    if (!k)
        set_err(err, errlen, "key %s: no unencrypted PEM private key (%s)%s", file, ossl_reason(),
                "");
    return k;
}

/* One pair into context c: the chain as the file gives it, the key, the
 * match between them, the dates of every certificate. */
static int load_pair(SSL_CTX *c, const struct cert_file *f, const char *cert, const char *key,
                     char *err, size_t errlen)
{
    if (check_dates(f->leaf, cert, 0, err, errlen) < 0)
        return -1;
    for (int i = 0; i < sk_X509_num(f->chain); i++)
        if (check_dates(sk_X509_value(f->chain, i), cert, i + 1, err, errlen) < 0)
            return -1;
    EVP_PKEY *pk = read_key(key, err, errlen);
    if (!pk)
        return -1;
    if (X509_check_private_key(f->leaf, pk) != 1) {
        ERR_clear_error();
        set_err(err, errlen, "key %s does not match certificate %s%s", key, cert, "");
        EVP_PKEY_free(pk);
        return -1;
    }
    int ok = SSL_CTX_use_certificate(c, f->leaf) == 1 && SSL_CTX_set1_chain(c, f->chain) == 1 &&
             SSL_CTX_use_PrivateKey(c, pk) == 1;
    EVP_PKEY_free(pk);
    if (!ok) {
        set_err(err, errlen, "certificate %s with key %s: %s", cert, key, ossl_reason());
        return -1;
    }
    return 0;
}

void wse_tls_free(struct wse_tls *t)
{
    if (!t)
        return;
    for (unsigned i = 0; i < t->nctx; i++)
        SSL_CTX_free(t->ctx[i]);
    for (unsigned i = 0; i < t->npairs; i++)
        X509_free(t->leaf[i]);
    free(t);
}

/* The context a pair goes in: the first without a certificate of its key
 * type (one context serves RSA and ECDSA together, OpenSSL choosing by the
 * client's signature algorithms); -1 when a new one is needed. */
static int ctx_for(const struct wse_tls *t, int type)
{
    for (unsigned j = 0; j < t->nctx; j++) {
        bool taken = false;
        for (unsigned i = 0; i < t->npairs; i++)
            taken |= t->leaf_ctx[i] == j && t->leaf_type[i] == type;
        if (!taken)
            return (int)j;
    }
    return -1;
}

struct wse_tls *wse_tls_new(const struct wse_tls_opts *o, struct wse_tls_keys *keys, char *err,
                            size_t errlen)
{
    if (!o->npairs || o->npairs > WSE_TLS_MAX_PAIRS) {
        set_err(err, errlen, "TLS: %s certificate/key pairs (1 to %s)%s",
                o->npairs ? "too many" : "no", "4", "");
        return NULL;
    }
    struct wse_tls *t = calloc(1, sizeof *t);
    if (!t) {
        set_err(err, errlen, "TLS: %s%s%s", strerror(ENOMEM), "", "");
        return NULL;
    }
    bool tickets = keys && o->ticket_lifetime;
    for (unsigned i = 0; i < o->npairs; i++) {
        struct cert_file f = {0};
        if (read_cert_file(o->cert[i], &f, err, errlen) < 0)
            goto fail;
        t->leaf_type[i] = EVP_PKEY_get_base_id(X509_get0_pubkey(f.leaf));
        int j = ctx_for(t, t->leaf_type[i]);    /* among the pairs before this one */
        t->leaf[i] = f.leaf;
        X509_up_ref(f.leaf);
        t->npairs = i + 1;
        if (j < 0) {
            j = (int)t->nctx;
            if (!(t->ctx[j] = ctx_new(o, t, tickets, err, errlen))) {
                cert_file_free(&f);
                goto fail;
            }
            t->nctx++;
        }
        t->leaf_ctx[i] = (unsigned)j;
        int loaded = load_pair(t->ctx[j], &f, o->cert[i], o->key[i], err, errlen);
        cert_file_free(&f);
        if (loaded < 0)
            goto fail;
    }
    if (tickets)
        ticket_keys = keys;
    return t;
fail:
    ERR_clear_error();
    wse_tls_free(t);
    return NULL;
}

/* ---- the transport ----------------------------------------------------- */

enum {
    S_PLAIN = 1,        /* before wse_tls_begin(): a PROXY header in the clear */
    S_PREFIX = 2,       /* the read BIO still holds bytes read before TLS began */
    S_SHUT_PENDING = 4, /* close_notify not all written yet */
    S_SHUT_DONE = 8,
    S_MORE = 16,        /* whole records read ahead wait inside OpenSSL */
};

/* One descriptor's session.  The table grows to the highest descriptor
 * attached; a slot costs 24 bytes, a plain connection's slot stays empty. */
struct sess {
    SSL *ssl;
    const char *fail;           /* why the session failed (a static string) */
    uint8_t want;               /* enum wse_want the record layer waits for */
    uint8_t flags;
};

static struct sess *sessions;
static size_t nsessions;

static struct sess *sess_of(int fd)
{
    return fd >= 0 && (size_t)fd < nsessions && sessions[fd].ssl ? &sessions[fd] : NULL;
}

static int grow_to(int fd)
{
    if ((size_t)fd < nsessions)
        return 0;
    size_t n = nsessions ? nsessions : 64;
    while (n <= (size_t)fd)
        n *= 2;
    struct sess *s = realloc(sessions, n * sizeof *s);
    if (!s)
        return -1;
    memset(s + nsessions, 0, (n - nsessions) * sizeof *s);
    sessions = s;
    nsessions = n;
    return 0;
}

int wse_tls_attach(struct wse_tls *t, int fd, bool plain_first)
{
    if (fd < 0 || !t) {
        errno = EBADF;
        return -1;
    }
    if (grow_to(fd) < 0) {
        errno = ENOMEM;
        return -1;
    }
    SSL *s = SSL_new(t->ctx[0]);
    if (!s || (!plain_first && SSL_set_fd(s, fd) != 1)) {
        SSL_free(s);
        ERR_clear_error();
        errno = ENOMEM;
        return -1;
    }
    SSL_set_accept_state(s);
    sessions[fd] = (struct sess){.ssl = s, .flags = plain_first ? S_PLAIN : 0};
    return 0;
}

int wse_tls_begin(int fd, const void *rest, size_t len)
{
    struct sess *x = sess_of(fd);

    if (!x || !(x->flags & S_PLAIN)) {
        errno = EINVAL;
        return -1;
    }
    BIO *w = BIO_new_socket(fd, BIO_NOCLOSE);
    BIO *r = len ? BIO_new(BIO_s_mem()) : BIO_new_socket(fd, BIO_NOCLOSE);
    if (!w || !r || (len && BIO_write(r, rest, (int)len) != (int)len)) {
        BIO_free(w);
        BIO_free(r);
        ERR_clear_error();
        errno = ENOMEM;
        return -1;
    }
    if (len)
        BIO_set_mem_eof_return(r, -1);  /* empty = "retry", not EOF */
    SSL_set0_rbio(x->ssl, r);
    SSL_set0_wbio(x->ssl, w);
    x->flags = (uint8_t)((x->flags & ~S_PLAIN) | (len ? S_PREFIX : 0));
    return 0;
}

/* The bytes read before TLS began are used up: the socket is read now. */
static bool leave_prefix(struct sess *x, int fd)
{
    if (!(x->flags & S_PREFIX) || BIO_ctrl_pending(SSL_get_rbio(x->ssl)) > 0)
        return false;
    BIO *r = BIO_new_socket(fd, BIO_NOCLOSE);
    if (!r)
        return false;
    SSL_set0_rbio(x->ssl, r);
    x->flags &= (uint8_t)~S_PREFIX;
    return true;
}

/* An OpenSSL failure as the system calls report one: EAGAIN with the
 * record layer's wait noted, 0 at the peer's close_notify, EPROTO with the
 * reason kept for wse_tls_failure(). */
static ssize_t fail_as_errno(struct sess *x, int e, bool reading)
{
    switch (e) {
    case SSL_ERROR_WANT_READ:
        /* A read waiting for input is the connection's own wait. */
        x->want = reading ? 0 : WSE_WANT_READ;
        errno = EAGAIN;
        return -1;
    case SSL_ERROR_WANT_WRITE:
        x->want = WSE_WANT_WRITE;
        errno = EAGAIN;
        return -1;
    case SSL_ERROR_ZERO_RETURN:
        if (reading)
            return 0;
        /* A write that met the peer's close_notify (OpenSSL reads while it
         * finishes a handshake step): "0 bytes written" would be retried
         * forever on a socket that stays writable. */
        if (!x->fail)
            x->fail = "closed by the peer";
        errno = EPIPE;
        return -1;
    case SSL_ERROR_SYSCALL:
        if (!x->fail)
            x->fail = "connection reset";
        if (!errno || errno == EAGAIN)
            errno = ECONNRESET;
        ERR_clear_error();
        return -1;
    default:
        if (!x->fail)
            x->fail = ossl_reason();
        ERR_clear_error();
        errno = EPROTO;
        return -1;
    }
}

/* SSL_get_error() reads the thread's error queue, so the queue must be
 * empty before each call it judges.  Every failure here clears what it
 * left; a look is enough, and far cheaper than ERR_clear_error(), which
 * rewrites all sixteen slots each time (a third of the difference in
 * instructions per 64-byte echo against bench/tlsecho, callgrind). */
static void errors_cleared(void)
{
    if (ERR_peek_error())
        ERR_clear_error();
    errno = 0;
}

/*
 * Reads records while the buffer can hold another whole one: a record's
 * plaintext left inside OpenSSL would not wake the event loop.  With read
 * ahead, one read() brings all the socket holds; the loop stops once
 * OpenSSL holds nothing more (the next input is the socket's, which wakes
 * the loop) rather than paying a read() that says EAGAIN.  Whole records
 * still held when the buffer is full are S_MORE, which
 * wse_tls_has_pending() reports.
 */
static ssize_t tls_read(int fd, void *buf, size_t cap)
{
    struct sess *x = sess_of(fd);
    size_t got = 0;

    if (!x) {
        errno = EBADF;
        return -1;
    }
    if (x->flags & S_PLAIN)
        return read(fd, buf, cap);
    x->want = 0;
    x->flags &= (uint8_t)~S_MORE;
    while (got < cap) {
        size_t n = 0;
        errors_cleared();
        int r = SSL_read_ex(x->ssl, (char *)buf + got, cap - got, &n);
        if (r == 1) {
            got += n;
            bool held = SSL_has_pending(x->ssl) || (x->flags & S_PREFIX);
            if (!held)
                break;
            if (cap - got < SSL3_RT_MAX_PLAIN_LENGTH) {
                x->flags |= S_MORE;
                break;
            }
            continue;
        }
        int e = SSL_get_error(x->ssl, r);
        if (e == SSL_ERROR_WANT_READ && leave_prefix(x, fd))
            continue;
        if (got) {
            /* Data first; the condition recurs on the next call. */
            if (e == SSL_ERROR_WANT_WRITE) {
                x->want = WSE_WANT_WRITE;
                if (SSL_has_pending(x->ssl))
                    x->flags |= S_MORE;
            }
            ERR_clear_error();
            break;
        }
        return fail_as_errno(x, e, true);
    }
    return (ssize_t)got;
}

/* Each record costs a write(): pieces shorter than a full record share
 * one, copied together as writev() would join them in one segment.  (A
 * batch of pipelined 4 KiB echoes, one region each, went out one record
 * and one write() per message at 4096.) */
#define COALESCE_BELOW SSL3_RT_MAX_PLAIN_LENGTH

static unsigned char scratch[SSL3_RT_MAX_PLAIN_LENGTH];

/* The next run to hand SSL_write_ex from logical offset `at` of the batch:
 * a piece filling a record as it is, shorter ones copied together into one
 * record; a batch of one piece is never copied. */
static size_t next_run(const struct iovec *iov, int niov, size_t at, const void **p)
{
    int i = 0;

    while (i < niov && at >= iov[i].iov_len)
        at -= iov[i++].iov_len;
    size_t left = iov[i].iov_len - at;
    if (left >= COALESCE_BELOW || i == niov - 1) {
        *p = (const char *)iov[i].iov_base + at;
        return left;
    }
    size_t n = 0;
    for (; i < niov && n < sizeof scratch; i++, at = 0) {
        size_t take = iov[i].iov_len - at;
        if (take > sizeof scratch - n)
            take = sizeof scratch - n;
        memcpy(scratch + n, (const char *)iov[i].iov_base + at, take);
        n += take;
    }
    *p = scratch;
    return n;
}

/* Writes the batch as records.  With partial writes on, each SSL_write_ex
 * completes at most a record; on a wait the count so far is returned, and
 * the connection keeps the rest and offers it again from that same offset
 * (moving buffers accepted), which is what OpenSSL requires of a retry. */
static ssize_t tls_writev(int fd, const struct iovec *iov, int niov)
{
    struct sess *x = sess_of(fd);
    size_t total = 0, done = 0;

    if (!x) {
        errno = EBADF;
        return -1;
    }
    if (x->flags & S_PLAIN)
        return writev(fd, iov, niov);
    for (int i = 0; i < niov; i++)
        total += iov[i].iov_len;
    x->want = 0;
    while (done < total) {
        const void *p;
        size_t len = next_run(iov, niov, done, &p), n = 0;
        errors_cleared();
        int r = SSL_write_ex(x->ssl, p, len, &n);
        if (r == 1) {
            done += n;
            continue;
        }
        int e = SSL_get_error(x->ssl, r);
        if (done && (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ)) {
            x->want = e == SSL_ERROR_WANT_READ ? WSE_WANT_READ : WSE_WANT_WRITE;
            ERR_clear_error();
            break;
        }
        return fail_as_errno(x, e, false);
    }
    return (ssize_t)done;
}

/* close_notify, then the FIN.  The alert that does not fit the socket now is
 * finished by wants(), which the connection calls when it is writable. */
static int finish_shutdown(struct sess *x, int fd)
{
    ERR_clear_error();
    int r = SSL_shutdown(x->ssl);
    if (r < 0) {
        int e = SSL_get_error(x->ssl, r);
        ERR_clear_error();
        if (e == SSL_ERROR_WANT_WRITE) {
            x->flags |= S_SHUT_PENDING;
            return 0;
        }
        /* A failed session sends no alert; the FIN still goes. */
    }
    x->flags = (uint8_t)((x->flags & ~S_SHUT_PENDING) | S_SHUT_DONE);
    return shutdown(fd, SHUT_WR);
}

static int tls_shutdown(int fd)
{
    struct sess *x = sess_of(fd);

    if (!x || (x->flags & S_PLAIN) || !SSL_is_init_finished(x->ssl) || x->fail)
        return shutdown(fd, SHUT_WR);
    if (x->flags & (S_SHUT_DONE | S_SHUT_PENDING))
        return 0;
    return finish_shutdown(x, fd);
}

/* What the record layer waits for beyond the connection's own wishes.  A
 * handshake flight or close_notify held up by a full socket is pushed on
 * here: the connection asks after every writable event. */
static unsigned tls_wants(int fd)
{
    struct sess *x = sess_of(fd);

    if (!x || (x->flags & S_PLAIN))
        return 0;
    if (x->flags & S_SHUT_PENDING) {
        finish_shutdown(x, fd);
        return (x->flags & S_SHUT_PENDING) ? WSE_WANT_WRITE : 0;
    }
    if (x->want == WSE_WANT_WRITE && !SSL_is_init_finished(x->ssl)) {
        ERR_clear_error();
        int r = SSL_do_handshake(x->ssl);
        int e = r == 1 ? SSL_ERROR_NONE : SSL_get_error(x->ssl, r);
        ERR_clear_error();
        x->want = e == SSL_ERROR_WANT_WRITE ? WSE_WANT_WRITE : 0;
    }
    return x->want;
}

static void tls_forget(int fd)
{
    struct sess *x = sess_of(fd);

    if (x) {
        SSL_free(x->ssl);
        *x = (struct sess){0};
    }
}

bool wse_tls_is_tls(int fd)
{
    return sess_of(fd) != NULL;
}

bool wse_tls_established(int fd)
{
    struct sess *x = sess_of(fd);
    return x && !(x->flags & S_PLAIN) && SSL_is_init_finished(x->ssl);
}

bool wse_tls_has_pending(int fd)
{
    struct sess *x = sess_of(fd);

    if (!x || (x->flags & S_PLAIN))
        return false;
    return SSL_pending(x->ssl) > 0 || (x->flags & S_MORE) ||
           ((x->flags & S_PREFIX) && BIO_ctrl_pending(SSL_get_rbio(x->ssl)) > 0);
}

const char *wse_tls_failure(int fd)
{
    struct sess *x = sess_of(fd);
    return x ? x->fail : NULL;
}

const char *wse_tls_version(int fd)
{
    return wse_tls_established(fd) ? SSL_get_version(sessions[fd].ssl) : NULL;
}

bool wse_tls_resumed(int fd)
{
    return wse_tls_established(fd) && SSL_session_reused(sessions[fd].ssl);
}

const struct wse_transport wse_transport_tls = {
    .name = "tls",
    .read = tls_read,
    .writev = tls_writev,
    .shutdown = tls_shutdown,
    .wants = tls_wants,
    .forget = tls_forget,
};

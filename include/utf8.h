/*
 * utf8.h - streaming UTF-8 validator (RFC 3629), fail-fast.
 *
 * A message's bytes may arrive split anywhere (across frames and reads), so
 * the validator keeps its state between calls.  It rejects, at the first byte
 * that makes the input invalid: overlong forms, UTF-16 surrogates
 * (U+D800..U+DFFF), code points above U+10FFFF, the bytes C0, C1 and F5..FF,
 * and continuation bytes where none is expected.  wse_utf8_end() rejects a
 * sequence left unfinished at the end of a message.
 *
 * The state is one small integer so that it can live in every connection.
 */
#ifndef WSE_UTF8_H
#define WSE_UTF8_H

#include <stddef.h>
#include <stdint.h>

/* Zero-initialised state means "between code points". */
struct wse_utf8 {
    uint32_t state;
};

static inline void wse_utf8_init(struct wse_utf8 *u) { u->state = 0; }

/*
 * Feed n bytes.  Returns WSE_OK if every byte so far can begin or continue a
 * valid UTF-8 text (possibly stopping inside a sequence), WSE_FAIL at the
 * first invalid byte; then *bad (if not NULL) is its offset in p, and the
 * state is left failed: further calls keep returning WSE_FAIL.
 */
int wse_utf8_feed(struct wse_utf8 *u, const uint8_t *p, size_t n, size_t *bad);

/* WSE_OK if the text fed so far ends on a code point boundary, else WSE_FAIL. */
int wse_utf8_end(const struct wse_utf8 *u);

/* Whole-buffer convenience: WSE_OK if p[0..n) is complete valid UTF-8. */
int wse_utf8_valid(const uint8_t *p, size_t n);

#endif

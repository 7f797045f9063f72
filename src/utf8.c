/*
 * utf8.c - streaming, fail-fast UTF-8 validation (RFC 3629).
 *
 * Two speeds.  Text that is ASCII between code points is skipped eight bytes
 * at a time with one AND per word.  Everything else runs through a "shift
 * DFA": each DFA state is a bit offset (a multiple of 6) into a 64-bit row
 * chosen by the input byte, and the 6 bits found there are the next state:
 *
 *     s = row[byte] >> s          (only the low 6 bits of s are meaningful)
 *
 * The row load does not depend on s, so the loop-carried dependency is a
 * single shift per byte instead of a chain of two table loads; that is what
 * makes multi-byte text (CJK, emoji) cheap.
 *
 * The automaton encodes how many continuation bytes are still expected and,
 * for the four lead bytes that narrow the next byte (E0, ED, F0, F4), the
 * allowed range of that byte.  Range checks on the second byte are enough:
 * overlongs, surrogates and values above U+10FFFF are all decided by the
 * lead byte plus its first continuation, which is why the rejection offset
 * can be exact without decoding code points.
 */
#include <string.h>

#include "common.h"
#include "utf8.h"

/*
 * State offsets.  REJECT is 0 so that any transition a row does not mention
 * is a rejection, and so that REJECT is sticky: bits 0..5 of every row are
 * zero.  Rows therefore list only the legal transitions.
 */
enum {
    S_REJECT = 0,
    S_ACCEPT = 6,   /* between code points */
    S_CONT1 = 12,   /* 1 more continuation byte, 80..BF */
    S_CONT2 = 18,   /* 2 more, next 80..BF */
    S_CONT3 = 24,   /* 3 more, next 80..BF */
    S_E0 = 30,      /* after E0: next A0..BF (below is overlong) */
    S_ED = 36,      /* after ED: next 80..9F (above is a surrogate) */
    S_F0 = 42,      /* after F0: next 90..BF (below is overlong) */
    S_F4 = 48,      /* after F4: next 80..8F (above is > U+10FFFF) */
};

#define T(from, to) ((uint64_t)(to) << (from))

/* Continuation bytes, split where E0/ED/F0/F4 draw their lines. */
#define ROW_CONT_80_8F \
    (T(S_CONT1, S_ACCEPT) | T(S_CONT2, S_CONT1) | T(S_CONT3, S_CONT2) | \
     T(S_ED, S_CONT1) | T(S_F4, S_CONT2))
#define ROW_CONT_90_9F \
    (T(S_CONT1, S_ACCEPT) | T(S_CONT2, S_CONT1) | T(S_CONT3, S_CONT2) | \
     T(S_ED, S_CONT1) | T(S_F0, S_CONT2))
#define ROW_CONT_A0_BF \
    (T(S_CONT1, S_ACCEPT) | T(S_CONT2, S_CONT1) | T(S_CONT3, S_CONT2) | \
     T(S_E0, S_CONT1) | T(S_F0, S_CONT2))

/*
 * C0, C1 (always overlong) and F5..FF (beyond U+10FFFF or not UTF-8 at all)
 * are left zero: rejected in every state.
 */
static const uint64_t dfa[256] = {
    [0x00 ... 0x7F] = T(S_ACCEPT, S_ACCEPT),
    [0x80 ... 0x8F] = ROW_CONT_80_8F,
    [0x90 ... 0x9F] = ROW_CONT_90_9F,
    [0xA0 ... 0xBF] = ROW_CONT_A0_BF,
    [0xC2 ... 0xDF] = T(S_ACCEPT, S_CONT1),
    [0xE0]          = T(S_ACCEPT, S_E0),
    [0xE1 ... 0xEC] = T(S_ACCEPT, S_CONT2),
    [0xED]          = T(S_ACCEPT, S_ED),
    [0xEE ... 0xEF] = T(S_ACCEPT, S_CONT2),
    [0xF0]          = T(S_ACCEPT, S_F0),
    [0xF1 ... 0xF3] = T(S_ACCEPT, S_CONT3),
    [0xF4]          = T(S_ACCEPT, S_F4),
};

#undef T

/*
 * The public state is stored XORed with S_ACCEPT so that the zeroed struct
 * the header promises ("between code points") is S_ACCEPT here.
 */
static inline uint64_t load_state(const struct wse_utf8 *u)
{
    return (uint64_t)(u->state ^ S_ACCEPT);
}

static inline void store_state(struct wse_utf8 *u, uint64_t s)
{
    u->state = (uint32_t)(s & 63) ^ S_ACCEPT;
}

#define HIGH_BITS UINT64_C(0x8080808080808080)

static inline uint64_t load64(const uint8_t *p)
{
    uint64_t w;

    memcpy(&w, p, sizeof(w));   /* compiles to one unaligned load */
    return w;
}

/* Index of the first byte in memory order whose high bit is set in m != 0. */
static inline size_t first_high(uint64_t m)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    return (size_t)__builtin_clzll(m) >> 3;
#else
    return (size_t)__builtin_ctzll(m) >> 3;
#endif
}

/* Return the index of the first non-ASCII byte in p[i..n), or n. */
static inline size_t skip_ascii(const uint8_t *p, size_t i, size_t n)
{
    /* Two words per test halves the branches on long ASCII runs. */
    while (n - i >= 16) {
        if ((load64(p + i) | load64(p + i + 8)) & HIGH_BITS)
            break;
        i += 16;
    }
    while (n - i >= 8) {
        uint64_t m = load64(p + i) & HIGH_BITS;

        if (m)
            return i + first_high(m);
        i += 8;
    }
    while (i < n && p[i] < 0x80)
        i++;
    return i;
}

/*
 * Bytes run through the DFA per check for rejection.  REJECT is sticky, so
 * the block can be run without a branch per byte and the exact offset
 * recovered by a rescan only when it failed.  Kept short so that text which
 * returns to ASCII (an accent in English, say) gets back to the
 * word-at-a-time path soon; 8 measured best across ASCII-heavy, Cyrillic,
 * CJK and emoji text.
 */
#define DFA_BLOCK 8
_Static_assert(DFA_BLOCK % 4 == 0, "the block loop is unrolled by four");

int wse_utf8_feed(struct wse_utf8 *u, const uint8_t *p, size_t n, size_t *bad)
{
    uint64_t s = load_state(u);
    size_t i = 0;

    if (unlikely(s == S_REJECT)) {
        /* Nothing after a failure can make the text valid again. */
        if (bad)
            *bad = 0;
        return WSE_FAIL;
    }

    while (i < n) {
        /*
         * Only detour through the word loop when it can win: right after a
         * multi-byte sequence in CJK or emoji text the next byte is rarely
         * ASCII, and a failed word test per block would cost more than it saves.
         */
        if (s == S_ACCEPT && p[i] < 0x80) {
            i = skip_ascii(p, i, n);
            if (i == n)
                break;
        }

        size_t end;
        uint64_t t = s;

        if (n - i >= DFA_BLOCK) {
            end = i + DFA_BLOCK;
            /* Unrolled by hand: gcc -O2 leaves the loop overhead per byte. */
            for (size_t j = i; j < end; j += 4) {
                t = dfa[p[j]] >> (t & 63);
                t = dfa[p[j + 1]] >> (t & 63);
                t = dfa[p[j + 2]] >> (t & 63);
                t = dfa[p[j + 3]] >> (t & 63);
            }
        } else {
            end = n;
            for (size_t j = i; j < end; j++)
                t = dfa[p[j]] >> (t & 63);
        }

        if (unlikely((t & 63) == S_REJECT)) {
            /* Rare: replay the block from its start to find the exact byte. */
            for (t = s; i < end; i++) {
                t = dfa[p[i]] >> (t & 63);
                if ((t & 63) == S_REJECT)
                    break;
            }
            store_state(u, S_REJECT);
            if (bad)
                *bad = i;
            return WSE_FAIL;
        }
        s = t & 63;
        i = end;
    }

    store_state(u, s);
    return WSE_OK;
}

int wse_utf8_end(const struct wse_utf8 *u)
{
    return load_state(u) == S_ACCEPT ? WSE_OK : WSE_FAIL;
}

int wse_utf8_valid(const uint8_t *p, size_t n)
{
    struct wse_utf8 u;

    wse_utf8_init(&u);
    if (wse_utf8_feed(&u, p, n, NULL) != WSE_OK)
        return WSE_FAIL;
    return wse_utf8_end(&u);
}

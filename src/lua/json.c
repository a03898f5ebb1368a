/*
 * json.c - the `json` module: RFC 8259 text to Lua values and back.
 *
 * Scripts use it on every HTTP body and WebSocket message, so both directions
 * are single pass and allocate little. decode() reads the Lua string in place:
 * a string without escapes is pushed straight from the input with
 * lua_pushlstring, and only strings with escapes are unescaped, into a scratch
 * buffer reused for the whole call. encode() appends to one growable output
 * buffer and copies it into a Lua string once at the end.
 *
 * What it deliberately does not do: no comments, trailing commas, NaN,
 * single quotes or other JSON5 leniency; no __tojson hooks, no __pairs or
 * __index (tables are read raw); no int64 cdata. The only leniency is that a
 * leading UTF-8 byte order mark is skipped, which RFC 8259 section 8.1 allows.
 *
 * Invariants a reader needs:
 *  - No buffer here comes from malloc. Every one (decode scratch, encode output,
 *    encode key stack) is a Lua userdata anchored in a fixed stack slot of the
 *    running json_* call and replaced by a bigger one when it fills, so a Lua
 *    error (out of memory) at any point leaks nothing and nothing needs
 *    freeing on the failure paths. Because a buffer can move when it grows,
 *    code that recurses keeps offsets into it, never pointers.
 *  - Expected failures (bad input, unencodable values) never raise: the
 *    recursive functions return -1 after recording the reason, the stack is
 *    reset to the fixed slots, and the entry point returns nil, err.
 *  - Nesting is capped at JSON_MAX_DEPTH containers in both directions, so the
 *    C recursion is bounded (about 2,000 small frames) whatever the input.
 *  - Numbers never go through the C locale unguarded: the number grammar is
 *    validated here before strtod sees a bounded, NUL-terminated copy, and
 *    printf output has the locale's decimal comma turned back into '.'.
 *  - json.null is a light userdata pointing at null_tag; decoded arrays carry
 *    the metatable registered as ARRAY_MT so that [] survives a round trip.
 */
#include "json.h"
#include "lua/class.h"
#include "lua/error.h"
#include "lua/modules.h"
#include "lua/options.h"
#include "core/error.h"

#include <lauxlib.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define JSON_MAX_DEPTH 1000
#define JSON_MAX_INDENT 64
#define ARRAY_MT "lurk.json.array"

/* json.null is &null_tag; only its address matters. */
static char null_tag;

struct decoder {
    lua_State *L;
    const unsigned char *start, *p, *end;
    unsigned char *scratch; /* unescaped bytes of the current string */
    size_t scratch_cap;
    int scratch_idx;        /* stack slot anchoring the scratch userdata */
    int array_mt_idx;       /* stack slot holding the array metatable */
    char decimal_point;     /* the C locale's, found on first use */
    const unsigned char *err_at;
    char numbuf[64];        /* short number tokens, NUL-terminated for strtod */
    char found[16];
    char what[128];
};

/* A string key of a table being encoded, on the encoder's key stack. */
struct keyref {
    const char *s;
    size_t len;
    int slot; /* anchor[slot] is the key, anchor[slot + 1] its value */
};

struct encoder {
    lua_State *L;
    char *buf;
    size_t len, cap;
    int buf_idx;             /* stack slot anchoring the output userdata */
    struct keyref *keys;
    size_t nkeys, keys_cap;
    int keys_idx;            /* stack slot anchoring the key stack userdata */
    int anchor_idx;          /* stack slot of the table pinning keys and values */
    int array_mt_idx;
    int indent;
    int depth;
    char decimal_point;      /* the C locale's, found on first use */
    const void *path[JSON_MAX_DEPTH]; /* tables being encoded, for cycles */
    char numbuf[40];
    char what[128];
};

/* ---- shared helpers ---------------------------------------------------- */

/* Returns the length (1 to 4) of the well-formed UTF-8 sequence at p, or 0 if
 * it is malformed or cut short by end. Follows Unicode table 3-7, so overlong
 * forms, encoded surrogates and code points above U+10FFFF are rejected.
 * Requires p < end. */
static size_t measure_utf8(const unsigned char *p, const unsigned char *end)
{
    size_t avail = (size_t)(end - p);
    unsigned char c = p[0], lo = 0x80, hi = 0xBF;

    if (c < 0x80)
        return 1;
    if (c < 0xC2)
        return 0;
    if (c < 0xE0)
        return avail >= 2 && (p[1] & 0xC0) == 0x80 ? 2 : 0;
    if (c < 0xF0) {
        if (c == 0xE0)
            lo = 0xA0;
        else if (c == 0xED)
            hi = 0x9F;
        return avail >= 3 && p[1] >= lo && p[1] <= hi && (p[2] & 0xC0) == 0x80 ? 3 : 0;
    }
    if (c < 0xF5) {
        if (c == 0xF0)
            lo = 0x90;
        else if (c == 0xF4)
            hi = 0x8F;
        if (avail < 4 || p[1] < lo || p[1] > hi || (p[2] & 0xC0) != 0x80 ||
            (p[3] & 0xC0) != 0x80)
            return 0;
        return 4;
    }
    return 0;
}

/* Replaces the userdata in stack slot idx by a new one of cap bytes that
 * starts with the used bytes of old, and returns it. old stays anchored in
 * the slot until the copy is done, so a GC step inside lua_newuserdata cannot
 * free it. */
static void *regrow(lua_State *L, int idx, const void *old, size_t used, size_t cap)
{
    void *p = lua_newuserdata(L, cap);

    if (used)
        memcpy(p, old, used);
    lua_replace(L, idx);
    return p;
}

/* Returns the next capacity of at least need bytes, doubling from cap. */
static size_t next_capacity(lua_State *L, size_t cap, size_t need)
{
    if (cap < 256)
        cap = 256;
    while (cap < need) {
        if (cap > SIZE_MAX / 2)
            luaL_error(L, "json: buffer too large");
        cap *= 2;
    }
    return cap;
}

/* __tostring of an err table: its message. */

/* nil, err of kind protocol whose message says where in the text the
 * problem is. */
static int push_failure(lua_State *L, const char *phase, const char *message)
{
    return lurk_lua_errorf(L, -LURK_EPROTO, phase, "%s", message);
}

/* Pushes the array metatable, creating and registering it on first use. */
static void push_array_mt(lua_State *L)
{
    luaL_newmetatable(L, ARRAY_MT);
}

/* Returns the decimal point printf and strtod use in the current locale.
 * lurk never calls setlocale, but an embedding host may have. */
static char find_decimal_point(void)
{
    char b[8];

    snprintf(b, sizeof b, "%.1f", 0.5);
    return b[1];
}

/* ---- decoding ---------------------------------------------------------- */

/* Records why decoding failed and where, and returns -1. */
__attribute__((format(printf, 3, 4))) static int
fail(struct decoder *d, const unsigned char *at, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(d->what, sizeof d->what, fmt, ap);
    va_end(ap);
    d->err_at = at;
    return -1;
}

/* Returns a short description of the byte at p for messages. */
static const char *describe(struct decoder *d, const unsigned char *p)
{
    if (p >= d->end)
        return "end of input";
    if (*p >= 0x20 && *p < 0x7F)
        snprintf(d->found, sizeof d->found, "'%c'", *p);
    else
        snprintf(d->found, sizeof d->found, "byte 0x%02X", *p);
    return d->found;
}

/* Fails with "expected <what>, found <byte at p>". */
static int fail_expected(struct decoder *d, const unsigned char *p, const char *what)
{
    if (p >= d->end)
        return fail(d, p, "unexpected end of input");
    return fail(d, p, "expected %s, found %s", what, describe(d, p));
}

static void skip_space(struct decoder *d)
{
    const unsigned char *p = d->p, *end = d->end;

    while (p < end && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t'))
        p++;
    d->p = p;
}

/* Makes room for n more bytes after the first used bytes of the scratch. */
static void reserve_scratch(struct decoder *d, size_t used, size_t n)
{
    if (d->scratch_cap - used >= n)
        return;
    if (n > SIZE_MAX - used)
        luaL_error(d->L, "json: buffer too large");
    d->scratch_cap = next_capacity(d->L, d->scratch_cap, used + n);
    d->scratch = regrow(d->L, d->scratch_idx, d->scratch, used, d->scratch_cap);
}

static void append_scratch(struct decoder *d, size_t *used, const unsigned char *s, size_t n)
{
    reserve_scratch(d, *used, n);
    if (n)
        memcpy(d->scratch + *used, s, n);
    *used += n;
}

/* Reads the four hex digits of the "\u" escape at p (the backslash) into
 * *cp. Returns 0, or -1 after failing. */
static int read_hex4(struct decoder *d, const unsigned char *p, const unsigned char *quote,
                     unsigned *cp)
{
    size_t avail = (size_t)(d->end - p), i;
    unsigned v = 0;

    for (i = 2; i < 6; i++) {
        unsigned char c;

        if (i >= avail)
            return fail(d, quote, "unterminated string");
        c = p[i];
        if (c >= '0' && c <= '9')
            v = v * 16 + (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v = v * 16 + (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v = v * 16 + (unsigned)(c - 'A' + 10);
        else
            return fail(d, p, "invalid \\u escape");
    }
    *cp = v;
    return 0;
}

/* Decodes the "\u" escape at p (the backslash), or the surrogate pair that
 * starts there, as UTF-8 onto the scratch. Returns the byte after it, or NULL
 * after failing. */
static const unsigned char *read_unicode_escape(struct decoder *d, const unsigned char *p,
                                                const unsigned char *quote, size_t *used)
{
    unsigned char out[4];
    unsigned cp, lo;
    size_t n;

    if (read_hex4(d, p, quote, &cp) < 0)
        return NULL;
    if (cp >= 0xDC00 && cp <= 0xDFFF) {
        fail(d, p, "lone surrogate \\u%04X", cp);
        return NULL;
    }
    if (cp >= 0xD800 && cp <= 0xDBFF) {
        /* A high surrogate counts only with a low one right after it. */
        if (d->end - p < 8 || p[6] != '\\' || p[7] != 'u') {
            fail(d, p, "lone surrogate \\u%04X", cp);
            return NULL;
        }
        if (read_hex4(d, p + 6, quote, &lo) < 0)
            return NULL;
        if (lo < 0xDC00 || lo > 0xDFFF) {
            fail(d, p, "lone surrogate \\u%04X", cp);
            return NULL;
        }
        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
        p += 6;
    }
    if (cp < 0x80) {
        out[0] = (unsigned char)cp;
        n = 1;
    } else if (cp < 0x800) {
        out[0] = (unsigned char)(0xC0 | cp >> 6);
        out[1] = (unsigned char)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        out[0] = (unsigned char)(0xE0 | cp >> 12);
        out[1] = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
        out[2] = (unsigned char)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        out[0] = (unsigned char)(0xF0 | cp >> 18);
        out[1] = (unsigned char)(0x80 | (cp >> 12 & 0x3F));
        out[2] = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
        out[3] = (unsigned char)(0x80 | (cp & 0x3F));
        n = 4;
    }
    append_scratch(d, used, out, n);
    return p + 6;
}

/* Decodes the escape at p (a backslash) onto the scratch. Returns the byte
 * after it, or NULL after failing. */
static const unsigned char *read_escape(struct decoder *d, const unsigned char *p,
                                        const unsigned char *quote, size_t *used)
{
    unsigned char c;

    if (d->end - p < 2) {
        fail(d, quote, "unterminated string");
        return NULL;
    }
    switch (p[1]) {
    case '"': c = '"'; break;
    case '\\': c = '\\'; break;
    case '/': c = '/'; break;
    case 'b': c = '\b'; break;
    case 'f': c = '\f'; break;
    case 'n': c = '\n'; break;
    case 'r': c = '\r'; break;
    case 't': c = '\t'; break;
    case 'u':
        return read_unicode_escape(d, p, quote, used);
    default:
        fail(d, p, "invalid escape character %s", describe(d, p + 1));
        return NULL;
    }
    append_scratch(d, used, &c, 1);
    return p + 2;
}

/* Pushes the string whose opening quote is at d->p. */
static int parse_string(struct decoder *d)
{
    const unsigned char *quote = d->p, *p = d->p + 1, *end = d->end, *run = p;
    size_t used = 0, n;
    int escaped = 0;

    for (;;) {
        /* Plain ASCII is the common case: scan it without copying. */
        while (p < end && *p >= 0x20 && *p < 0x80 && *p != '"' && *p != '\\')
            p++;
        if (p == end)
            return fail(d, quote, "unterminated string");
        if (*p == '"')
            break;
        if (*p >= 0x80) {
            n = measure_utf8(p, end);
            if (n == 0)
                return fail(d, p, "invalid UTF-8 in string");
            p += n;
        } else if (*p < 0x20) {
            return fail(d, p, "unescaped control character 0x%02X in string", *p);
        } else {
            /* A backslash: from here on the string is assembled in scratch. */
            escaped = 1;
            append_scratch(d, &used, run, (size_t)(p - run));
            p = read_escape(d, p, quote, &used);
            if (p == NULL)
                return -1;
            run = p;
        }
    }
    if (escaped) {
        append_scratch(d, &used, run, (size_t)(p - run));
        lua_pushlstring(d->L, (const char *)d->scratch, used);
    } else {
        lua_pushlstring(d->L, (const char *)run, (size_t)(p - run));
    }
    d->p = p + 1;
    return 0;
}

static int is_digit(const unsigned char *p, const unsigned char *end)
{
    return p < end && *p >= '0' && *p <= '9';
}

/* Pushes the number at d->p after checking it against the RFC 8259 grammar. */
static int parse_number(struct decoder *d)
{
    const unsigned char *s = d->p, *p = s, *end = d->end, *digits;
    int negative = 0, integral = 1;
    size_t len;
    char *copy, *stop;
    double v;

    if (*p == '-') {
        negative = 1;
        p++;
    }
    digits = p;
    if (is_digit(p, end) && *p == '0') {
        p++;
        if (is_digit(p, end))
            return fail(d, s, "leading zero in number");
    } else if (is_digit(p, end)) {
        while (is_digit(p, end))
            p++;
    } else {
        return fail_expected(d, p, "a digit after '-'");
    }
    if (p < end && *p == '.') {
        p++;
        if (!is_digit(p, end))
            return fail_expected(d, p, "a digit after '.'");
        while (is_digit(p, end))
            p++;
        integral = 0;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < end && (*p == '+' || *p == '-'))
            p++;
        if (!is_digit(p, end))
            return fail_expected(d, p, "a digit in the exponent");
        while (is_digit(p, end))
            p++;
        integral = 0;
    }
    d->p = p;

    /* Up to 15 digits are below 2^53, so the sum is exact without strtod. */
    if (integral && p - digits <= 15) {
        int64_t m = 0;

        for (; digits < p; digits++)
            m = m * 10 + (*digits - '0');
        v = (double)m;
        lua_pushnumber(d->L, negative ? -v : v);
        return 0;
    }

    /* strtod needs a NUL-terminated copy: the input is only bounded by len. */
    len = (size_t)(p - s);
    if (len < sizeof d->numbuf) {
        copy = d->numbuf;
    } else {
        reserve_scratch(d, 0, len + 1);
        copy = (char *)d->scratch;
    }
    memcpy(copy, s, len);
    copy[len] = '\0';
    if (d->decimal_point == 0)
        d->decimal_point = find_decimal_point();
    if (d->decimal_point != '.') {
        char *dot = memchr(copy, '.', len);

        if (dot)
            *dot = d->decimal_point;
    }
    v = strtod(copy, &stop);
    if (stop != copy + len)
        return fail(d, s, "number not readable in this locale");
    if (isinf(v))
        return fail(d, s, "number out of range");
    lua_pushnumber(d->L, v);
    return 0;
}

/* Pushes true, false or json.null for the literal word at d->p. */
static int parse_literal(struct decoder *d, const char *word, size_t n)
{
    const unsigned char *p = d->p;
    size_t i;

    for (i = 0; i < n; i++) {
        if (p + i >= d->end)
            return fail(d, p + i, "unexpected end of input");
        if (p[i] != (unsigned char)word[i])
            return fail(d, p, "invalid literal, expected '%s'", word);
    }
    d->p = p + n;
    if (word[0] == 'n')
        lua_pushlightuserdata(d->L, &null_tag);
    else
        lua_pushboolean(d->L, word[0] == 't');
    return 0;
}

static int parse_value(struct decoder *d, int depth);

/* Pushes the array whose '[' is at d->p; depth counts it. */
static int parse_array(struct decoder *d, int depth)
{
    lua_State *L = d->L;
    int n = 0;

    if (depth > JSON_MAX_DEPTH)
        return fail(d, d->p, "nesting deeper than %d levels", JSON_MAX_DEPTH);
    if (!lua_checkstack(L, 4))
        return fail(d, d->p, "out of Lua stack space");
    d->p++;
    lua_createtable(L, 0, 0);
    lua_pushvalue(L, d->array_mt_idx);
    lua_setmetatable(L, -2);
    skip_space(d);
    if (d->p < d->end && *d->p == ']') {
        d->p++;
        return 0;
    }
    for (;;) {
        if (parse_value(d, depth) < 0)
            return -1;
        lua_rawseti(L, -2, ++n);
        skip_space(d);
        if (d->p < d->end && *d->p == ']') {
            d->p++;
            return 0;
        }
        if (d->p >= d->end || *d->p != ',')
            return fail_expected(d, d->p, "',' or ']' after an array element");
        d->p++;
        skip_space(d);
        if (d->p < d->end && *d->p == ']')
            return fail(d, d->p, "trailing comma in array");
    }
}

/* Pushes the object whose '{' is at d->p; depth counts it. */
static int parse_object(struct decoder *d, int depth)
{
    lua_State *L = d->L;

    if (depth > JSON_MAX_DEPTH)
        return fail(d, d->p, "nesting deeper than %d levels", JSON_MAX_DEPTH);
    if (!lua_checkstack(L, 4))
        return fail(d, d->p, "out of Lua stack space");
    d->p++;
    lua_createtable(L, 0, 0);
    skip_space(d);
    if (d->p < d->end && *d->p == '}') {
        d->p++;
        return 0;
    }
    for (;;) {
        if (d->p >= d->end || *d->p != '"')
            return fail_expected(d, d->p, "a string key");
        if (parse_string(d) < 0)
            return -1;
        skip_space(d);
        if (d->p >= d->end || *d->p != ':')
            return fail_expected(d, d->p, "':' after an object key");
        d->p++;
        if (parse_value(d, depth) < 0)
            return -1;
        /* obj key value: a repeated key overwrites, so the last one wins */
        lua_rawset(L, -3);
        skip_space(d);
        if (d->p < d->end && *d->p == '}') {
            d->p++;
            return 0;
        }
        if (d->p >= d->end || *d->p != ',')
            return fail_expected(d, d->p, "',' or '}' after an object member");
        d->p++;
        skip_space(d);
        if (d->p < d->end && *d->p == '}')
            return fail(d, d->p, "trailing comma in object");
    }
}

/* Pushes the value starting at d->p, after optional whitespace. depth is the
 * number of containers already open around it. */
static int parse_value(struct decoder *d, int depth)
{
    skip_space(d);
    if (d->p >= d->end)
        return fail(d, d->p, "unexpected end of input");
    switch (*d->p) {
    case '{':
        return parse_object(d, depth + 1);
    case '[':
        return parse_array(d, depth + 1);
    case '"':
        return parse_string(d);
    case 't':
        return parse_literal(d, "true", 4);
    case 'f':
        return parse_literal(d, "false", 5);
    case 'n':
        return parse_literal(d, "null", 4);
    case '-': case '0': case '1': case '2': case '3': case '4':
    case '5': case '6': case '7': case '8': case '9':
        return parse_number(d);
    default:
        return fail_expected(d, d->p, "a value");
    }
}

/* Pushes nil, err for the failure recorded in d, with its line and column. */
static int push_decode_failure(struct decoder *d)
{
    const unsigned char *q, *line_start = d->start;
    size_t line = 1;
    char msg[256];

    for (q = d->start; q < d->err_at; q++) {
        if (*q == '\n') {
            line++;
            line_start = q + 1;
        }
    }
    snprintf(msg, sizeof msg, "json: %s at line %zu column %zu (byte %zu)", d->what, line,
             (size_t)(d->err_at - line_start) + 1, (size_t)(d->err_at - d->start) + 1);
    return push_failure(d->L, "read", msg);
}

/* json.decode(text) -> value | nil, err */
static int json_decode(lua_State *L)
{
    struct decoder d;
    size_t len;
    const char *s;

    lurk_lua_checktype(L, 1, "json.decode", LUA_TSTRING);
    /* An options table would be ignored: say so. (Other extra values pass:
     * json.decode(s:gsub(...)) gives it gsub's count.) */
    if (lua_istable(L, 2))
        return lurk_lua_raise(L, "json.decode", "takes no options (json.decode(text))");
    s = lua_tolstring(L, 1, &len);
    lua_settop(L, 1);
    push_array_mt(L); /* 2: array metatable */
    lua_pushnil(L);   /* 3: scratch userdata, once a string has escapes */

    memset(&d, 0, sizeof d);
    d.L = L;
    d.start = d.p = (const unsigned char *)s;
    d.end = d.start + len;
    d.array_mt_idx = 2;
    d.scratch_idx = 3;

    if (len >= 3 && memcmp(s, "\xEF\xBB\xBF", 3) == 0)
        d.p += 3;
    if (parse_value(&d, 0) == 0) {
        skip_space(&d);
        if (d.p == d.end)
            return 1;
        fail(&d, d.p, "unexpected %s after the value", describe(&d, d.p));
    }
    lua_settop(L, 3);
    return push_decode_failure(&d);
}

/* ---- encoding ---------------------------------------------------------- */

/* Records why encoding failed and returns -1. */
__attribute__((format(printf, 2, 3))) static int efail(struct encoder *e, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(e->what, sizeof e->what, fmt, ap);
    va_end(ap);
    return -1;
}

static void grow_output(struct encoder *e, size_t n)
{
    if (n > SIZE_MAX - e->len)
        luaL_error(e->L, "json: buffer too large");
    e->cap = next_capacity(e->L, e->cap, e->len + n);
    e->buf = regrow(e->L, e->buf_idx, e->buf, e->len, e->cap);
}

/* Makes room for n more output bytes. Inline check, out-of-line growth. */
static inline void reserve(struct encoder *e, size_t n)
{
    if (e->cap - e->len < n)
        grow_output(e, n);
}

static void put(struct encoder *e, const void *s, size_t n)
{
    reserve(e, n);
    if (n)
        memcpy(e->buf + e->len, s, n);
    e->len += n;
}

static void put_char(struct encoder *e, char c)
{
    reserve(e, 1);
    e->buf[e->len++] = c;
}

#define put_literal(e, s) put((e), (s), sizeof(s) - 1)

/* With indent set, starts a new line indented for the given nesting level. */
static void put_newline(struct encoder *e, int level)
{
    size_t n;

    if (e->indent == 0)
        return;
    n = (size_t)e->indent * (size_t)level;
    reserve(e, n + 1);
    e->buf[e->len++] = '\n';
    memset(e->buf + e->len, ' ', n);
    e->len += n;
}

/* Writes str as a quoted JSON string. Fails on invalid UTF-8 rather than
 * passing bytes through that a strict peer would reject. */
static int encode_string(struct encoder *e, const char *str, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *s = (const unsigned char *)str, *p = s, *end = s + len, *run;
    char u[6] = { '\\', 'u', '0', '0', 0, 0 };
    size_t n;

    reserve(e, len + 2);
    e->buf[e->len++] = '"';
    for (;;) {
        /* Printable ASCII and well-formed UTF-8 are copied in one run. */
        run = p;
        while (p < end) {
            if (*p >= 0x20 && *p < 0x80 && *p != '"' && *p != '\\') {
                p++;
            } else if (*p >= 0x80) {
                n = measure_utf8(p, end);
                if (n == 0)
                    break;
                p += n;
            } else {
                break;
            }
        }
        put(e, run, (size_t)(p - run));
        if (p == end)
            break;
        switch (*p) {
        case '"': put_literal(e, "\\\""); break;
        case '\\': put_literal(e, "\\\\"); break;
        case '\b': put_literal(e, "\\b"); break;
        case '\f': put_literal(e, "\\f"); break;
        case '\n': put_literal(e, "\\n"); break;
        case '\r': put_literal(e, "\\r"); break;
        case '\t': put_literal(e, "\\t"); break;
        default:
            if (*p >= 0x80)
                return efail(e, "invalid UTF-8 in string at byte %zu", (size_t)(p - s) + 1);
            u[4] = hex[*p >> 4];
            u[5] = hex[*p & 15];
            put(e, u, sizeof u);
        }
        p++;
    }
    put_char(e, '"');
    return 0;
}

/* Formats an integral x with |x| < 2^53 into b and returns the length. */
static int format_integer(char *b, double x)
{
    int64_t i = (int64_t)x;
    uint64_t u = i < 0 ? (uint64_t)-i : (uint64_t)i;
    char digits[24];
    int n = 0, k = 0;

    if (signbit(x)) /* keeps -0, which decodes back to -0 */
        b[n++] = '-';
    do {
        digits[k++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    while (k)
        b[n++] = digits[--k];
    return n;
}

/* Formats a non-integral x with at most 8 fraction digits and 15 significant
 * digits when that is exact enough (prices, coordinates), without printf or
 * strtod: for m and 10^k exact doubles, IEEE division rounds m / 10^k the way
 * strtod rounds the decimal text, so m / 10^k == x proves the text reads back
 * as x. The text is then what "%.15g" prints. Returns the length, or 0 when x
 * needs the general path. */
static int format_fixed(char *b, double x)
{
    static const double powers[] = { 1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8 };
    double a = fabs(x), m = 0;
    uint64_t whole, frac;
    char digits[24];
    int k, i, n = 0;

    if (!(a >= 1e-4 && a < 1e9))
        return 0; /* %g would switch to exponent notation */
    for (k = 1; k <= 8; k++) {
        if (a * powers[k] >= 1e15)
            return 0; /* past 15 digits printf may pick another last digit */
        m = floor(a * powers[k] + 0.5);
        if (m / powers[k] == a)
            break;
    }
    if (k > 8)
        return 0;
    whole = (uint64_t)m / (uint64_t)powers[k];
    frac = (uint64_t)m % (uint64_t)powers[k];
    while (k > 1 && frac % 10 == 0) {
        frac /= 10;
        k--;
    }
    if (x < 0)
        b[n++] = '-';
    n += format_integer(b + n, (double)whole);
    b[n++] = '.';
    for (i = k - 1; i >= 0; i--) {
        digits[i] = (char)('0' + frac % 10);
        frac /= 10;
    }
    memcpy(b + n, digits, (size_t)k);
    return n + k;
}

static int encode_number(struct encoder *e, double x)
{
    char *b = e->numbuf;
    int n, prec, i;

    if (isnan(x))
        return efail(e, "cannot encode NaN");
    if (isinf(x))
        return efail(e, "cannot encode %s", x > 0 ? "inf" : "-inf");
    if (fabs(x) < 9007199254740992.0 && x == floor(x)) {
        put(e, b, (size_t)format_integer(b, x));
        return 0;
    }
    n = format_fixed(b, x);
    if (n > 0) {
        put(e, b, (size_t)n);
        return 0;
    }
    /* The shortest of 15, 16 and 17 significant digits that reads back as
     * the same double: 17 always does, 15 keeps 0.1 from printing as
     * 0.10000000000000001. strtod reads what snprintf wrote in the same
     * locale, so the check holds whatever the decimal point is. */
    for (prec = 15;; prec++) {
        n = snprintf(b, sizeof e->numbuf, "%.*g", prec, x);
        if (prec == 17 || strtod(b, NULL) == x)
            break;
    }
    if (e->decimal_point == 0)
        e->decimal_point = find_decimal_point();
    if (e->decimal_point != '.') {
        for (i = 0; i < n; i++)
            if (b[i] == e->decimal_point)
                b[i] = '.';
    }
    put(e, b, (size_t)n);
    return 0;
}

/* Orders keys bytewise, which for UTF-8 is code point order. */
static int compare_keys(const void *a, const void *b)
{
    const struct keyref *x = a, *y = b;
    size_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->s, y->s, n);

    if (c != 0)
        return c;
    return (x->len > y->len) - (x->len < y->len);
}

/* Adds the string key at -2 (with its value at -1) to the key stack. Both
 * are pinned in the anchor table: the keyref keeps a pointer into the key,
 * and a __gc metamethod running during the encode could otherwise remove it
 * from the table being encoded and let it be collected. */
static void push_key(struct encoder *e)
{
    lua_State *L = e->L;
    struct keyref *k;

    if (e->nkeys == e->keys_cap) {
        size_t cap = e->keys_cap ? e->keys_cap * 2 : 32;

        if (cap > SIZE_MAX / sizeof *k || cap > INT_MAX / 2 - 1)
            luaL_error(L, "json: too many keys");
        e->keys = regrow(L, e->keys_idx, e->keys, e->nkeys * sizeof *k, cap * sizeof *k);
        e->keys_cap = cap;
    }
    if (lua_isnil(L, e->anchor_idx)) {
        lua_createtable(L, 64, 0);
        lua_replace(L, e->anchor_idx);
    }
    k = &e->keys[e->nkeys++];
    k->s = lua_tolstring(L, -2, &k->len);
    k->slot = (int)(2 * (e->nkeys - 1) + 1);
    lua_pushvalue(L, -2);
    lua_rawseti(L, e->anchor_idx, k->slot);
    lua_pushvalue(L, -1);
    lua_rawseti(L, e->anchor_idx, k->slot + 1);
}

static int encode_value(struct encoder *e, int idx);

/* Writes the array t[1..n] of the table at idx; nil holes become null. */
static int encode_array(struct encoder *e, int idx, int n)
{
    lua_State *L = e->L;
    int i;

    put_char(e, '[');
    for (i = 1; i <= n; i++) {
        if (i > 1)
            put_char(e, ',');
        put_newline(e, e->depth);
        lua_rawgeti(L, idx, i);
        if (encode_value(e, lua_gettop(L)) < 0)
            return -1;
        lua_pop(L, 1);
    }
    if (n > 0)
        put_newline(e, e->depth - 1);
    put_char(e, ']');
    return 0;
}

/* Writes the n keys on the key stack from base, sorted, with their values. */
static int encode_object(struct encoder *e, size_t base, size_t n)
{
    lua_State *L = e->L;
    size_t i;

    if (n > 1)
        qsort(e->keys + base, n, sizeof *e->keys, compare_keys);
    put_char(e, '{');
    for (i = 0; i < n; i++) {
        /* A copy: nested tables may grow, and so move, the key stack. */
        struct keyref k = e->keys[base + i];

        if (i > 0)
            put_char(e, ',');
        put_newline(e, e->depth);
        if (encode_string(e, k.s, k.len) < 0)
            return -1;
        put(e, ": ", e->indent ? 2 : 1);
        lua_rawgeti(L, e->anchor_idx, k.slot + 1);
        if (encode_value(e, lua_gettop(L)) < 0)
            return -1;
        lua_pop(L, 1);
    }
    if (n > 0)
        put_newline(e, e->depth - 1);
    put_char(e, '}');
    return 0;
}

/* Writes the table at idx as an array or an object. One lua_next pass
 * classifies it and collects its string keys; then it is written from the
 * array part (arrays) or from the sorted keys (objects). */
static int encode_table(struct encoder *e, int idx)
{
    lua_State *L = e->L;
    const void *self = lua_topointer(L, idx);
    size_t base = e->nkeys, nstr = 0, nint = 0;
    double max = 0;
    int i, marked = 0, rc;

    /* Checking the open tables is cheap at real depths, and names the
     * problem better than running into the depth limit. */
    for (i = 0; i < e->depth; i++)
        if (e->path[i] == self)
            return efail(e, "cannot encode a table that contains itself");
    if (e->depth >= JSON_MAX_DEPTH)
        return efail(e, "nesting deeper than %d levels", JSON_MAX_DEPTH);
    if (!lua_checkstack(L, 6))
        return efail(e, "out of Lua stack space");
    if (lua_getmetatable(L, idx)) {
        marked = lua_rawequal(L, -1, e->array_mt_idx);
        lua_pop(L, 1);
    }

    lua_pushnil(L);
    while (lua_next(L, idx)) {
        /* t ... key value */
        int type = lua_type(L, -2);

        if (type == LUA_TSTRING) {
            push_key(e);
            nstr++;
        } else if (type == LUA_TNUMBER) {
            double k = lua_tonumber(L, -2);

            if (!(k >= 1 && k <= INT_MAX && k == floor(k)))
                return efail(e, "cannot encode number key %.14g (not an array index)", k);
            nint++;
            if (k > max)
                max = k;
        } else {
            return efail(e, "cannot encode a table key of type %s", luaL_typename(L, -2));
        }
        if (nint && nstr)
            return efail(e, "cannot encode a table mixing integer and string keys");
        lua_pop(L, 1);
    }

    e->path[e->depth++] = self;
    if (nstr) {
        if (marked)
            rc = efail(e, "cannot encode string keys in a table marked as array");
        else
            rc = encode_object(e, base, nstr);
    } else if (nint || marked) {
        if (max > 2.0 * (double)nint && max > 10)
            rc = efail(e, "cannot encode a sparse array (highest index %.0f, %zu elements)", max,
                       nint);
        else
            rc = encode_array(e, idx, (int)max);
    } else {
        put_literal(e, "{}");
        rc = 0;
    }
    e->depth--;
    e->nkeys = base;
    return rc;
}

/* Writes the value at the absolute stack index idx. */
static int encode_value(struct encoder *e, int idx)
{
    lua_State *L = e->L;
    const char *s;
    size_t len;

    switch (lua_type(L, idx)) {
    case LUA_TNIL:
        put_literal(e, "null");
        return 0;
    case LUA_TBOOLEAN:
        if (lua_toboolean(L, idx))
            put_literal(e, "true");
        else
            put_literal(e, "false");
        return 0;
    case LUA_TNUMBER:
        return encode_number(e, lua_tonumber(L, idx));
    case LUA_TSTRING:
        s = lua_tolstring(L, idx, &len);
        return encode_string(e, s, len);
    case LUA_TTABLE:
        return encode_table(e, idx);
    case LUA_TLIGHTUSERDATA:
        if (lua_touserdata(L, idx) == &null_tag) {
            put_literal(e, "null");
            return 0;
        }
        break;
    default:
        break;
    }
    return efail(e, "cannot encode a %s value", luaL_typename(L, idx));
}

/* Returns opts.indent from the options table at arg, 0 when absent. */
static int check_indent(lua_State *L, int arg)
{
    static const char *const known[] = { "indent", NULL };
    lua_Number n;

    if (lua_isnoneornil(L, arg))
        return 0;
    lurk_lua_checktype(L, arg, "json.encode", LUA_TTABLE);
    lurk_lua_check_options(L, arg, "json.encode", known);
    lua_getfield(L, arg, "indent");
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        return 0;
    }
    n = lua_tonumber(L, -1);
    if (lua_type(L, -1) != LUA_TNUMBER || n != floor(n) || n < 0 || n > JSON_MAX_INDENT)
        return lurk_lua_raise(L, "json.encode", "indent must be an integer from 0 to 64");
    lua_pop(L, 1);
    return (int)n;
}

/* json.encode(value [, opts]) -> text | nil, err
 * opts.indent = n pretty-prints with n spaces per level; default compact. */
static int json_encode(lua_State *L)
{
    struct encoder e;
    int indent;

    if (lua_isnone(L, 1))
        return lurk_lua_argerror(L, 1, "json.encode", "value expected");
    indent = check_indent(L, 2);
    lua_settop(L, 2);
    push_array_mt(L); /* 3: array metatable */
    lua_settop(L, 6); /* 4: output, 5: key stack, 6: key/value anchor */

    /* Field by field: path[] (8 KB) needs no clearing. */
    e.L = L;
    e.buf = NULL;
    e.len = e.cap = 0;
    e.buf_idx = 4;
    e.keys = NULL;
    e.nkeys = e.keys_cap = 0;
    e.keys_idx = 5;
    e.anchor_idx = 6;
    e.array_mt_idx = 3;
    e.indent = indent;
    e.depth = 0;
    e.decimal_point = 0;

    if (encode_value(&e, 1) == 0) {
        lua_pushlstring(L, e.buf, e.len);
        return 1;
    }
    lua_settop(L, 6);
    {
        char msg[160];

        snprintf(msg, sizeof msg, "json: %s", e.what);
        return push_failure(L, "send", msg);
    }
}

/* json.array([t]) -> t
 * Marks t (a new table when nil) as an array, so it encodes as [] even when
 * empty. Raises if t already has another metatable, rather than dropping it. */
static int json_array(lua_State *L)
{
    if (lua_isnoneornil(L, 1)) {
        lua_settop(L, 0);
        lua_newtable(L);
    } else {
        lurk_lua_checktype(L, 1, "json.array", LUA_TTABLE);
        lua_settop(L, 1);
    }
    push_array_mt(L);
    if (lua_getmetatable(L, 1)) {
        if (!lua_rawequal(L, -1, -2))
            return lurk_lua_argerror(L, 1, "json.array", "table already has a metatable");
        lua_pop(L, 1);
    }
    lua_setmetatable(L, 1);
    return 1;
}

/* json.object([t]) -> t
 * Returns t (a new table when nil) to be encoded as an object. Plain tables
 * already are, so this only drops the array mark, e.g. from a decoded []. */
static int json_object(lua_State *L)
{
    if (lua_isnoneornil(L, 1)) {
        lua_settop(L, 0);
        lua_newtable(L);
        return 1;
    }
    lurk_lua_checktype(L, 1, "json.object", LUA_TTABLE);
    lua_settop(L, 1);
    push_array_mt(L);
    if (lua_getmetatable(L, 1)) {
        if (lua_rawequal(L, -1, -2)) {
            lua_pushnil(L);
            lua_setmetatable(L, 1);
        }
    }
    lua_settop(L, 1);
    return 1;
}

int lurk_lua_open_json(lua_State *L)
{
    static const luaL_Reg functions[] = {
        { "encode", json_encode },
        { "decode", json_decode },
        { "array", json_array },
        { "object", json_object },
        { NULL, NULL },
    };

    lua_createtable(L, 0, 6);
    luaL_setfuncs(L, functions, 0);
    lua_pushlightuserdata(L, &null_tag);
    lua_setfield(L, -2, "null");
    push_array_mt(L);
    lua_setfield(L, -2, "array_mt");
    return 1;
}

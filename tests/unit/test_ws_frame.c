/* test_ws_frame: WebSocket header encoding, masking, UTF-8 validation, and frame decoding fed at every split point against a PROT_NONE guard page. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "core/error.h"
#include "ws/frame.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* Copies s so that its last byte sits right before an unmapped page. */
static unsigned char *guarded(const unsigned char *s, size_t len, void **map, size_t *maplen)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE), n = (len + page - 1) / page + 1;
    unsigned char *m = mmap(NULL, n * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

    assert_true(m != MAP_FAILED);
    assert_int_equal(mprotect(m + (n - 1) * page, page, PROT_NONE), 0);
    *map = m;
    *maplen = n * page;
    if (len > 0)
        memcpy(m + (n - 1) * page - len, s, len);
    return m + (n - 1) * page - len;
}

/* ---- encoding and masking ---- */

static void test_header_lengths(void **state)
{
    static const unsigned char mask[4] = { 0xA1, 0xB2, 0xC3, 0xD4 };
    unsigned char h[14];
    size_t n;

    (void)state;
    n = lurk_ws_header(h, LURK_WS_TEXT, true, 0, mask);
    assert_int_equal(n, 6);
    assert_memory_equal(h, "\x81\x80\xA1\xB2\xC3\xD4", 6);

    n = lurk_ws_header(h, LURK_WS_BINARY, false, 125, mask);
    assert_int_equal(n, 6);
    assert_memory_equal(h, "\x02\xFD\xA1\xB2\xC3\xD4", 6);

    n = lurk_ws_header(h, LURK_WS_CONT, true, 126, mask);
    assert_int_equal(n, 8);
    assert_memory_equal(h, "\x80\xFE\x00\x7E\xA1\xB2\xC3\xD4", 8);

    n = lurk_ws_header(h, LURK_WS_PING, true, 65535, mask);
    assert_int_equal(n, 8);
    assert_memory_equal(h, "\x89\xFE\xFF\xFF\xA1\xB2\xC3\xD4", 8);

    n = lurk_ws_header(h, LURK_WS_BINARY, true, 65536, mask);
    assert_int_equal(n, 14);
    assert_memory_equal(h, "\x82\xFF\x00\x00\x00\x00\x00\x01\x00\x00\xA1\xB2\xC3\xD4", 14);

    n = lurk_ws_header(h, LURK_WS_CLOSE, true, UINT64_C(1) << 32, mask);
    assert_int_equal(n, 14);
    assert_memory_equal(h, "\x88\xFF\x00\x00\x00\x01\x00\x00\x00\x00\xA1\xB2\xC3\xD4", 14);
}

static void fill(unsigned char *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)(seed * 31 + i * 7 + (i >> 3));
}

static void mask_slow(unsigned char *p, size_t n, const unsigned char mask[4], uint64_t offset)
{
    for (size_t i = 0; i < n; i++)
        p[i] ^= mask[(offset + i) % 4];
}

/* Every offset 0..7, every start alignment 0..7 and lengths around the 8-byte steps. */
static void test_mask_offsets_and_lengths(void **state)
{
    static const unsigned char mask[4] = { 0x12, 0x34, 0x56, 0x78 };
    unsigned char orig[300], buf[308], want[300];

    (void)state;
    for (uint64_t off = 0; off < 8; off++)
        for (size_t align = 0; align < 8; align++)
            for (size_t len = 0; len < 300; len += (len < 40 ? 1 : 37)) {
                fill(orig, len, (unsigned)(off + len));
                memcpy(want, orig, len);
                mask_slow(want, len, mask, off);
                memcpy(buf + align, orig, len);
                lurk_ws_mask(buf + align, len, mask, off);
                assert_memory_equal(buf + align, want, len);
                lurk_ws_mask(buf + align, len, mask, off);
                assert_memory_equal(buf + align, orig, len);
            }
    /* a huge offset only matters modulo 4 */
    fill(orig, 33, 9);
    memcpy(buf, orig, 33);
    memcpy(want, orig, 33);
    lurk_ws_mask(buf, 33, mask, UINT64_MAX);
    mask_slow(want, 33, mask, 3);
    assert_memory_equal(buf, want, 33);
}

static void test_mask_in_pieces(void **state)
{
    static const unsigned char mask[4] = { 0xDE, 0xAD, 0xBE, 0xEF };
    unsigned char whole[1001], pieces[1001];

    (void)state;
    fill(whole, sizeof whole, 3);
    memcpy(pieces, whole, sizeof whole);
    lurk_ws_mask(whole, sizeof whole, mask, 0);
    for (unsigned step = 1; step < 40; step++) {
        unsigned char p[1001];
        size_t off = 0, n = step;

        memcpy(p, pieces, sizeof p);
        while (off < sizeof p) {
            if (n > sizeof p - off)
                n = sizeof p - off;
            lurk_ws_mask(p + off, n, mask, off);
            off += n;
            n = (n * 7 + step) % 23 + 1;   /* varied piece sizes */
        }
        assert_memory_equal(p, whole, sizeof p);
    }
}

/* ---- UTF-8 ---- */

struct sample {
    const char *s;
    size_t len;
};
#define S(lit) { lit, sizeof lit - 1 }

static const struct sample utf8_valid[] = {
    S(""), S("hello, world"), S("ASCII long enough for the 8-byte fast path, twice over."),
    S("\xC2\x80"), S("\xDF\xBF"), S("caf\xC3\xA9"),
    S("\xE0\xA0\x80"), S("\xED\x9F\xBF"), S("\xEE\x80\x80"), S("\xEF\xBF\xBF"),
    S("\xE2\x82\xAC euro"), S("\xF0\x90\x80\x80"), S("\xF0\x9F\x98\x80 smile"),
    S("\xF3\xBF\xBF\xBF"), S("\xF4\x8F\xBF\xBF"),
    S("\xCE\xBA\xE1\xBD\xB9\xCF\x83\xCE\xBC\xCE\xB5 0123456789abcdef \xF4\x8F\xBF\xBF"),
};

static const struct sample utf8_invalid[] = {
    S("\x80"), S("abc\xBF"), S("\xC3\xA9\x80"),                 /* stray continuation */
    S("\xC0\x80"), S("\xC1\xBF"),                                /* 2-byte overlong */
    S("\xE0\x80\x80"), S("\xE0\x9F\xBF"),                        /* 3-byte overlong */
    S("\xF0\x80\x80\x80"), S("\xF0\x8F\xBF\xBF"),                /* 4-byte overlong */
    S("\xED\xA0\x80"), S("\xED\xBF\xBF"),                        /* surrogates */
    S("\xF4\x90\x80\x80"), S("\xF5\x80\x80\x80"), S("\xF7\xBF\xBF\xBF"), /* > U+10FFFF */
    S("\xF8\x88\x80\x80\x80"), S("\xFE"), S("\xFF"),
    S("\xE2\x82\x41"), S("\xC3 "), S("\xF0\x9F\x98"),           /* cut short by another byte... */
};

/* Feeds p in two pieces at split; returns false if either piece fails. */
static bool utf8_split(const char *p, size_t len, size_t split, uint32_t *st)
{
    void *map;
    size_t maplen;
    unsigned char *g;
    bool ok;

    *st = 0;
    g = guarded((const unsigned char *)p, split, &map, &maplen);
    ok = lurk_utf8_feed(st, g, split);
    munmap(map, maplen);
    if (!ok)
        return false;
    g = guarded((const unsigned char *)p + split, len - split, &map, &maplen);
    ok = lurk_utf8_feed(st, g, len - split);
    munmap(map, maplen);
    return ok;
}

static void test_utf8_valid(void **state)
{
    uint32_t st;

    (void)state;
    for (size_t k = 0; k < sizeof utf8_valid / sizeof *utf8_valid; k++) {
        const struct sample *v = &utf8_valid[k];

        for (size_t split = 0; split <= v->len; split++) {
            assert_true(utf8_split(v->s, v->len, split, &st));
            assert_int_equal(st, 0);
        }
        st = 0;
        for (size_t i = 0; i < v->len; i++)
            assert_true(lurk_utf8_feed(&st, (const unsigned char *)v->s + i, 1));
        assert_int_equal(st, 0);
        /* every proper prefix that cuts a character is valid so far but unfinished */
        for (size_t cut = 1; cut < v->len; cut++) {
            st = 0;
            assert_true(lurk_utf8_feed(&st, (const unsigned char *)v->s, cut));
            if (((unsigned char)v->s[cut] & 0xC0) == 0x80)
                assert_int_not_equal(st, 0);
            else
                assert_int_equal(st, 0);
        }
    }
}

static void test_utf8_invalid(void **state)
{
    uint32_t st;

    (void)state;
    for (size_t k = 0; k < sizeof utf8_invalid / sizeof *utf8_invalid; k++) {
        const struct sample *v = &utf8_invalid[k];
        bool ok = true;
        bool complete;

        for (size_t split = 0; split <= v->len; split++) {
            /* the last one (F0 9F 98) is only incomplete: valid so far, state != 0 */
            complete = utf8_split(v->s, v->len, split, &st) && st == 0;
            assert_false(complete);
        }
        st = 0;
        for (size_t i = 0; i < v->len && ok; i++)
            ok = lurk_utf8_feed(&st, (const unsigned char *)v->s + i, 1);
        assert_false(ok && st == 0);
    }
    /* the first bad byte fails the call even with valid text after it */
    st = 0;
    assert_false(lurk_utf8_feed(&st, (const unsigned char *)"0123456789\xC0\x80 more ASCII text", 29));
    st = 0;
    assert_true(lurk_utf8_feed(&st, (const unsigned char *)"\xF0\x9F\x98", 3));
    assert_int_not_equal(st, 0);
}

/* ---- decoding ---- */

static unsigned char stream[1 << 18];

/* Writes a server frame header: b0 is FIN|RSV|opcode; form 0 picks the
 * shortest length encoding, 2 forces 16-bit and 8 forces 64-bit. */
static size_t put_header(unsigned char *out, unsigned b0, uint64_t len, int form)
{
    out[0] = (unsigned char)b0;
    if (form == 0)
        form = len < 126 ? 1 : len <= 0xFFFF ? 2 : 8;
    if (form == 1) {
        out[1] = (unsigned char)len;
        return 2;
    }
    if (form == 2) {
        out[1] = 126;
        out[2] = (unsigned char)(len >> 8);
        out[3] = (unsigned char)len;
        return 4;
    }
    out[1] = 127;
    for (int i = 0; i < 8; i++)
        out[2 + i] = (unsigned char)(len >> (56 - 8 * i));
    return 10;
}

/* Appends a whole frame to out at *n. */
static void put(unsigned char *out, size_t *n, unsigned b0, const void *payload, size_t len)
{
    *n += put_header(out + *n, b0, len, 0);
    if (len > 0)
        memcpy(out + *n, payload, len);
    *n += len;
}

#define FIN 0x80u

struct result {
    struct lurk_ws_decoder d;
    int rc;                           /* 0, or the error */
    int close_code;                   /* the decoder's, on error */
    char log[8192];                   /* "T:text|B:bin|P:ping|A:pong|C1000:reason|" */
    unsigned char msg[1 << 18];       /* the message being reassembled */
    size_t msg_len;
    enum lurk_ws_opcode msg_op;
    bool in_msg;
};

/* Formats one log item: kind, close code if any, then the payload (escaped,
 * or as <length#FNV-1a hash> past 64 bytes) and a '|'. */
static void format_item(char *one, size_t cap, char kind, int code, const unsigned char *p, size_t len)
{
    size_t o;

    if (code)
        o = (size_t)snprintf(one, cap, "%c%d:", kind, code);
    else
        o = (size_t)snprintf(one, cap, "%c:", kind);
    if (len > 64) {
        unsigned h = 2166136261u;

        for (size_t i = 0; i < len; i++)
            h = (h ^ p[i]) * 16777619u;
        o += (size_t)snprintf(one + o, cap - o, "<%zu#%08x>", len, h);
    } else {
        for (size_t i = 0; i < len; i++)
            o += (size_t)snprintf(one + o, cap - o, p[i] >= 0x20 && p[i] < 0x7F ? "%c" : "\\x%02X", p[i]);
    }
    snprintf(one + o, cap - o, "|");
}

static void log_item(struct result *r, char kind, int code, const unsigned char *p, size_t len)
{
    char one[300];

    format_item(one, sizeof one, kind, code, p, len);
    assert_true(strlen(r->log) + strlen(one) < sizeof r->log);
    strcat(r->log, one);
}

/* The log item for len bytes all equal to c, into one of a few static buffers. */
static const char *run_item(char kind, int code, unsigned char c, size_t len)
{
    static char bufs[4][64];
    static int next;
    unsigned char p[1000];
    char *out = bufs[next++ % 4];

    assert_true(len <= sizeof p);
    memset(p, c, len);
    format_item(out, sizeof bufs[0], kind, code, p, len);
    return out;
}

/* Feeds one guarded piece, collecting events until it is used up. */
static void feed(struct result *r, const unsigned char *p, size_t n)
{
    void *map;
    size_t maplen, pos = 0, used;
    const unsigned char *in;

    if (r->rc != 0)
        return;
    in = guarded(p, n, &map, &maplen);
    while (pos < n) {
        struct lurk_ws_event ev;
        int rc = lurk_ws_decode(&r->d, in + pos, n - pos, &used, &ev);

        assert_true(used <= n - pos);
        if (rc < 0) {
            assert_int_equal(rc, -LURK_EWS);
            assert_non_null(r->d.error);
            r->rc = rc;
            r->close_code = r->d.close_code;
            break;
        }
        assert_int_equal(rc, 0);
        assert_true(used > 0);        /* an event always consumes its last byte */
        if (ev.kind == LURK_WS_NEED_MORE) {
            assert_int_equal(used, n - pos);
        } else if (ev.kind == LURK_WS_DATA) {
            /* the slice is exactly the tail of what was consumed */
            assert_ptr_equal(ev.data + ev.len, in + pos + used);
            assert_true(ev.opcode == LURK_WS_TEXT || ev.opcode == LURK_WS_BINARY);
            if (r->in_msg)
                assert_int_equal(ev.opcode, r->msg_op);
            r->in_msg = true;
            r->msg_op = ev.opcode;
            assert_true(r->msg_len + ev.len <= sizeof r->msg);
            if (ev.len > 0)
                memcpy(r->msg + r->msg_len, ev.data, ev.len);
            r->msg_len += ev.len;
            if (ev.message_end) {
                log_item(r, ev.opcode == LURK_WS_TEXT ? 'T' : 'B', 0, r->msg, r->msg_len);
                r->in_msg = false;
                r->msg_len = 0;
            }
        } else {
            assert_int_equal(ev.kind, LURK_WS_CONTROL);
            assert_true(ev.data >= r->d.ctl && ev.data + ev.len <= r->d.ctl + sizeof r->d.ctl);
            if (ev.opcode == LURK_WS_CLOSE)
                log_item(r, 'C', ev.close_code, ev.data, ev.len);
            else
                log_item(r, ev.opcode == LURK_WS_PING ? 'P' : 'A', 0, ev.data, ev.len);
        }
        pos += used;
    }
    munmap(map, maplen);
}

static void begin(struct result *r, uint64_t max)
{
    lurk_ws_decoder_init(&r->d, max);
    r->rc = 0;
    r->close_code = 0;
    r->log[0] = '\0';
    r->msg_len = 0;
    r->in_msg = false;
}

/* After the input: marks a message left unfinished (not after an error: how
 * much of it was delivered depends on the split); an empty call consumes
 * nothing, and a dead decoder stays dead. */
static void end(struct result *r)
{
    struct lurk_ws_event ev;
    size_t used = 1;
    int rc = lurk_ws_decode(&r->d, NULL, 0, &used, &ev);

    assert_int_equal(used, 0);
    if (r->rc == 0) {
        assert_int_equal(rc, 0);
        assert_int_equal(ev.kind, LURK_WS_NEED_MORE);
        if (r->in_msg)
            strcat(r->log, "(partial)");
    } else {
        assert_int_equal(rc, -LURK_EWS);
        assert_int_equal(r->d.close_code, r->close_code);
    }
}

static struct result want_r, got_r;

static void same(const struct result *a, const struct result *b, const char *how, size_t at)
{
    if (a->rc != b->rc || a->close_code != b->close_code || strcmp(a->log, b->log) != 0)
        fail_msg("%s %zu differs: rc %d/%d code %d/%d\n  %s\n  %s", how, at, b->rc, a->rc,
                 b->close_code, a->close_code, b->log, a->log);
}

/* Decodes s whole, then at every split (a sample of them for long input),
 * then one byte at a time; all must agree. Returns the whole-input result. */
static const struct result *decode_all(const unsigned char *s, size_t n, uint64_t max)
{
    begin(&want_r, max);
    feed(&want_r, s, n);
    end(&want_r);
    for (size_t split = 0; split <= n; split++) {
        if (n > 2048 && split > 64 && split + 64 < n && split % 1021 != 0)
            continue;
        begin(&got_r, max);
        feed(&got_r, s, split);
        feed(&got_r, s + split, n - split);
        end(&got_r);
        same(&want_r, &got_r, "split", split);
    }
    begin(&got_r, max);
    for (size_t i = 0; i < n; i++)
        feed(&got_r, s + i, 1);
    end(&got_r);
    same(&want_r, &got_r, "bytewise", 0);
    return &want_r;
}

static void expect_log(const unsigned char *s, size_t n, uint64_t max, const char *log)
{
    const struct result *r = decode_all(s, n, max);

    if (r->rc != 0)
        fail_msg("error %d (%d: %s) where %s was expected", r->rc, r->close_code, r->d.error, log);
    assert_string_equal(r->log, log);
}

static void expect_error(const unsigned char *s, size_t n, uint64_t max, int code, const char *log)
{
    const struct result *r = decode_all(s, n, max);

    assert_int_equal(r->rc, -LURK_EWS);
    assert_int_equal(r->close_code, code);
    assert_string_equal(r->log, log);
}

static void test_decode_messages(void **state)
{
    static const size_t lens[] = { 125, 126, 65535, 65536, 70000 };
    static unsigned char big[70000];
    size_t n = 0;
    char want[300];

    (void)state;
    put(stream, &n, FIN | LURK_WS_TEXT, "hello", 5);
    expect_log(stream, n, 1 << 20, "T:hello|");

    n = 0;
    put(stream, &n, FIN | LURK_WS_BINARY, "\x00\x01\xFF", 3);
    put(stream, &n, FIN | LURK_WS_TEXT, "caf\xC3\xA9", 5);
    put(stream, &n, FIN | LURK_WS_PING, "are you there", 13);
    put(stream, &n, FIN | LURK_WS_PONG, "", 0);
    put(stream, &n, FIN | LURK_WS_PONG, "p", 1);
    expect_log(stream, n, 1 << 20, "B:\\x00\\x01\\xFF|T:caf\\xC3\\xA9|P:are you there|A:|A:p|");

    /* fragmented binary: continuation frames report the message's opcode */
    n = 0;
    put(stream, &n, LURK_WS_BINARY, "one,", 4);
    put(stream, &n, LURK_WS_CONT, "two,", 4);
    put(stream, &n, FIN | LURK_WS_CONT, "three", 5);
    put(stream, &n, FIN | LURK_WS_TEXT, "next", 4);
    expect_log(stream, n, 1 << 20, "B:one,two,three|T:next|");

    /* fragmented text with a ping and a pong in the middle, a character split across frames */
    n = 0;
    put(stream, &n, LURK_WS_TEXT, "price: \xE2", 8);
    put(stream, &n, FIN | LURK_WS_PING, "hi", 2);
    put(stream, &n, LURK_WS_CONT, "\x82", 1);
    put(stream, &n, FIN | LURK_WS_PONG, "yo", 2);
    put(stream, &n, FIN | LURK_WS_CONT, "\xAC" "5", 2);
    expect_log(stream, n, 1 << 20, "P:hi|A:yo|T:price: \\xE2\\x82\\xAC5|");

    /* 126, 65535 and 70000-byte payloads; non-minimal length encodings are accepted */
    for (size_t k = 0; k < sizeof lens / sizeof *lens; k++) {

        fill(big, lens[k], (unsigned)lens[k]);
        n = 0;
        put(stream, &n, FIN | LURK_WS_BINARY, big, lens[k]);
        format_item(want, sizeof want, 'B', 0, big, lens[k]);
        expect_log(stream, n, 1 << 20, want);
    }
    n = put_header(stream, FIN | LURK_WS_TEXT, 3, 2);
    memcpy(stream + n, "abc", 3);
    n += 3;
    n += put_header(stream + n, FIN | LURK_WS_PING, 1, 1);
    stream[n++] = 'x';
    n += put_header(stream + n, FIN | LURK_WS_TEXT, 2, 8);
    memcpy(stream + n, "de", 2);
    n += 2;
    expect_log(stream, n, 1 << 20, "T:abc|P:x|T:de|");

    /* a message exactly at the limit is fine */
    n = 0;
    put(stream, &n, LURK_WS_TEXT, "12345", 5);
    put(stream, &n, FIN | LURK_WS_CONT, "67890", 5);
    expect_log(stream, n, 10, "T:1234567890|");

    /* a control frame of exactly 125 bytes */
    memset(big, 'c', 125);
    n = 0;
    put(stream, &n, FIN | LURK_WS_PING, big, 125);
    expect_log(stream, n, 0, run_item('P', 0, 'c', 125));
}

static void test_zero_length(void **state)
{
    size_t n = 0;

    (void)state;
    put(stream, &n, FIN | LURK_WS_TEXT, "", 0);
    expect_log(stream, n, 1 << 20, "T:|");

    n = 0;
    put(stream, &n, FIN | LURK_WS_BINARY, "", 0);
    put(stream, &n, FIN | LURK_WS_TEXT, "", 0);
    expect_log(stream, n, 0, "B:|T:|");

    /* empty fragments, and an empty final frame ending a message */
    n = 0;
    put(stream, &n, LURK_WS_TEXT, "", 0);
    put(stream, &n, LURK_WS_CONT, "ab", 2);
    put(stream, &n, LURK_WS_CONT, "", 0);
    put(stream, &n, FIN | LURK_WS_PING, "", 0);
    put(stream, &n, FIN | LURK_WS_CONT, "", 0);
    expect_log(stream, n, 1 << 20, "P:|T:ab|");

    /* an unfinished message is reported as such, not as ended */
    n = 0;
    put(stream, &n, LURK_WS_BINARY, "ab", 2);
    expect_log(stream, n, 1 << 20, "(partial)");
}

static void test_close_frames(void **state)
{
    static const int good[] = { 1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999 };
    static const int bad[] = { 0, 1, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535 };
    unsigned char p[125];
    size_t n = 0;
    char want[64];

    (void)state;
    put(stream, &n, FIN | LURK_WS_CLOSE, "\x03\xE8" "bye", 5);
    expect_log(stream, n, 1 << 20, "C1000:bye|");

    n = 0;
    put(stream, &n, FIN | LURK_WS_CLOSE, "", 0);
    expect_log(stream, n, 1 << 20, "C1005:|");

    n = 0;
    put(stream, &n, FIN | LURK_WS_CLOSE, "\x0F\xA0" "\xC3\xA9t\xC3\xA9", 7);
    expect_log(stream, n, 1 << 20, "C4000:\\xC3\\xA9t\\xC3\\xA9|");

    /* a close between fragments of a message */
    n = 0;
    put(stream, &n, LURK_WS_TEXT, "part", 4);
    put(stream, &n, FIN | LURK_WS_CLOSE, "\x03\xE9", 2);
    expect_log(stream, n, 1 << 20, "C1001:|(partial)");

    /* 125-byte close: code + 123-byte reason */
    p[0] = 0x03, p[1] = 0xE8;
    memset(p + 2, 'r', 123);
    n = 0;
    put(stream, &n, FIN | LURK_WS_CLOSE, p, 125);
    expect_log(stream, n, 1 << 20, run_item('C', 1000, 'r', 123));

    for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
        p[0] = (unsigned char)(good[i] >> 8), p[1] = (unsigned char)good[i];
        n = 0;
        put(stream, &n, FIN | LURK_WS_CLOSE, p, 2);
        snprintf(want, sizeof want, "C%d:|", good[i]);
        expect_log(stream, n, 1 << 20, want);
    }
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        p[0] = (unsigned char)(bad[i] >> 8), p[1] = (unsigned char)bad[i];
        n = 0;
        put(stream, &n, FIN | LURK_WS_CLOSE, p, 2);
        expect_error(stream, n, 1 << 20, 1002, "");
    }

    n = 0;
    put(stream, &n, FIN | LURK_WS_CLOSE, "\x03", 1);
    expect_error(stream, n, 1 << 20, 1002, "");

    n = 0;
    put(stream, &n, FIN | LURK_WS_CLOSE, "\x03\xE8" "ok\xFF", 5);
    expect_error(stream, n, 1 << 20, 1007, "");

    n = 0;
    put(stream, &n, FIN | LURK_WS_CLOSE, "\x03\xE8" "cut\xE2\x82", 7);
    expect_error(stream, n, 1 << 20, 1007, "");
}

static void test_protocol_errors(void **state)
{
    unsigned char payload[200];
    size_t n;

    (void)state;
    memset(payload, 'x', sizeof payload);
    for (unsigned rsv = 0x10; rsv <= 0x40; rsv <<= 1) {
        n = 0;
        put(stream, &n, FIN | rsv | LURK_WS_TEXT, "a", 1);
        expect_error(stream, n, 1 << 20, 1002, "");
        n = 0;
        put(stream, &n, FIN | rsv | LURK_WS_PING, "", 0);
        expect_error(stream, n, 1 << 20, 1002, "");
    }
    for (unsigned op = 0; op < 16; op++) {
        if (op <= 2 || (op >= 8 && op <= 10))
            continue;
        n = 0;
        put(stream, &n, FIN | LURK_WS_TEXT, "ok", 2);
        put(stream, &n, FIN | op, "", 0);
        expect_error(stream, n, 1 << 20, 1002, "T:ok|");
    }

    /* masked frame from the server */
    n = 0;
    put(stream, &n, FIN | LURK_WS_TEXT, "abcdefgh", 8);
    stream[1] |= 0x80;
    expect_error(stream, n, 1 << 20, 1002, "");

    /* control frames: too long (16-bit form, and even at 126 bytes), fragmented */
    n = 0;
    put(stream, &n, FIN | LURK_WS_PING, payload, 126);
    expect_error(stream, n, 1 << 20, 1002, "");
    n = put_header(stream, FIN | LURK_WS_CLOSE, 2, 8);
    memcpy(stream + n, "\x03\xE8", 2);
    n += 2;
    expect_error(stream, n, 1 << 20, 1002, "");
    n = 0;
    put(stream, &n, LURK_WS_PING, "a", 1);
    expect_error(stream, n, 1 << 20, 1002, "");
    n = 0;
    put(stream, &n, LURK_WS_CLOSE, "", 0);
    expect_error(stream, n, 1 << 20, 1002, "");

    /* continuation with no message, also right after a finished one */
    n = 0;
    put(stream, &n, FIN | LURK_WS_CONT, "a", 1);
    expect_error(stream, n, 1 << 20, 1002, "");
    n = 0;
    put(stream, &n, FIN | LURK_WS_TEXT, "a", 1);
    put(stream, &n, LURK_WS_CONT, "b", 1);
    expect_error(stream, n, 1 << 20, 1002, "T:a|");

    /* a new message while one is in progress */
    n = 0;
    put(stream, &n, LURK_WS_TEXT, "a", 1);
    put(stream, &n, FIN | LURK_WS_TEXT, "b", 1);
    expect_error(stream, n, 1 << 20, 1002, "");
    n = 0;
    put(stream, &n, LURK_WS_BINARY, "a", 1);
    put(stream, &n, FIN | LURK_WS_PING, "", 0);
    put(stream, &n, FIN | LURK_WS_BINARY, "b", 1);
    expect_error(stream, n, 1 << 20, 1002, "P:|");

    /* 64-bit length with the most significant bit set */
    n = put_header(stream, FIN | LURK_WS_BINARY, UINT64_C(1) << 63, 8);
    expect_error(stream, n, UINT64_MAX, 1002, "");
    n = put_header(stream, FIN | LURK_WS_BINARY, UINT64_MAX, 8);
    expect_error(stream, n, UINT64_MAX, 1002, "");

    /* invalid UTF-8 in a text message, in one frame or across fragments */
    n = 0;
    put(stream, &n, FIN | LURK_WS_TEXT, "ab\xC0\xAF", 4);
    expect_error(stream, n, 1 << 20, 1007, "");
    n = 0;
    put(stream, &n, LURK_WS_TEXT, "\xED", 1);
    put(stream, &n, FIN | LURK_WS_CONT, "\xA0\x80", 2);
    expect_error(stream, n, 1 << 20, 1007, "");
    /* a message ending inside a character */
    n = 0;
    put(stream, &n, LURK_WS_TEXT, "ok ", 3);
    put(stream, &n, FIN | LURK_WS_CONT, "\xF0\x9F\x98", 3);
    expect_error(stream, n, 1 << 20, 1007, "");
    /* binary messages are not checked */
    n = 0;
    put(stream, &n, FIN | LURK_WS_BINARY, "\xC0\xAF\xFF", 3);
    expect_log(stream, n, 1 << 20, "B:\\xC0\\xAF\\xFF|");
}

/* Feeds exactly s[0..n) to a fresh decoder, one byte at a time, and returns
 * how many bytes were consumed before the error, or n + 1 without one. */
static size_t error_at(const unsigned char *s, size_t n, uint64_t max, int code)
{
    struct result *r = &got_r;

    begin(r, max);
    for (size_t i = 0; i < n; i++) {
        feed(r, s + i, 1);
        if (r->rc != 0) {
            assert_int_equal(r->close_code, code);
            return i + 1;
        }
    }
    return n + 1;
}

static void test_oversize_before_payload(void **state)
{
    unsigned char p[100];
    size_t n, h;
    char want[300];

    (void)state;
    memset(p, 'z', sizeof p);
    /* the header alone is enough, in all three length forms */
    n = put_header(stream, FIN | LURK_WS_BINARY, 11, 1);
    assert_int_equal(error_at(stream, n, 10, 1009), n);
    n = put_header(stream, FIN | LURK_WS_BINARY, 1000, 2);
    assert_int_equal(error_at(stream, n, 999, 1009), n);
    n = put_header(stream, FIN | LURK_WS_TEXT, UINT64_C(1) << 40, 8);
    assert_int_equal(error_at(stream, n, 1 << 20, 1009), n);
    n = put_header(stream, FIN | LURK_WS_TEXT, (UINT64_C(1) << 63) - 1, 8);
    assert_int_equal(error_at(stream, n, UINT64_MAX - 1, 1009) , n + 1);   /* fits: no error */

    /* the sum of fragments: fails at the header of the fragment that overflows */
    n = 0;
    put(stream, &n, LURK_WS_TEXT, p, 60);
    put(stream, &n, FIN | LURK_WS_PING, p, 50);  /* control frames don't count */
    h = n;
    put(stream, &n, LURK_WS_CONT, p, 40);
    put(stream, &n, FIN | LURK_WS_CONT, p, 1);
    assert_int_equal(error_at(stream, n, 100, 1009), n - 1);
    snprintf(want, sizeof want, "%s", run_item('P', 0, 'z', 50));
    expect_error(stream, n, 100, 1009, want);
    snprintf(want, sizeof want, "%s%s", run_item('P', 0, 'z', 50), run_item('T', 0, 'z', 101));
    expect_log(stream, n, 101, want);
    n = h;
    put(stream, &n, FIN | LURK_WS_CONT, p, 41);
    assert_int_equal(error_at(stream, n, 100, 1009), h + 2);
    /* a new message starts counting from zero */
    n = 0;
    put(stream, &n, FIN | LURK_WS_BINARY, p, 100);
    put(stream, &n, FIN | LURK_WS_BINARY, p, 100);
    snprintf(want, sizeof want, "%s%s", run_item('B', 0, 'z', 100), run_item('B', 0, 'z', 100));
    expect_log(stream, n, 100, want);
    n = 0;
    put(stream, &n, FIN | LURK_WS_BINARY, "", 0);
    put(stream, &n, FIN | LURK_WS_BINARY, "a", 1);
    expect_error(stream, n, 0, 1009, "B:|");
}

static void test_utf8_checked_as_it_arrives(void **state)
{
    size_t n;

    (void)state;
    /* the frame announces 100 bytes; the bad byte is the third, and nothing more has arrived */
    n = put_header(stream, FIN | LURK_WS_TEXT, 100, 0);
    memcpy(stream + n, "ab\xFF", 3);
    n += 3;
    assert_int_equal(error_at(stream, n, 1 << 20, 1007), n);
    expect_error(stream, n, 1 << 20, 1007, "");
    /* likewise in a later fragment */
    n = 0;
    put(stream, &n, LURK_WS_TEXT, "fine", 4);
    n += put_header(stream + n, LURK_WS_CONT, 50, 0);
    memcpy(stream + n, "\xE0\x80", 2);
    n += 2;
    assert_int_equal(error_at(stream, n, 1 << 20, 1007), n);
    /* but a character split across reads is fine so far */
    n = put_header(stream, FIN | LURK_WS_TEXT, 100, 0);
    memcpy(stream + n, "ab\xF0\x9F", 4);
    n += 4;
    expect_log(stream, n, 1 << 20, "(partial)");
}

static void test_leftover_untouched(void **state)
{
    struct lurk_ws_decoder d;
    struct lurk_ws_event ev;
    size_t n = 0, used;

    (void)state;
    put(stream, &n, FIN | LURK_WS_PING, "a", 1);
    put(stream, &n, FIN | LURK_WS_TEXT, "bc", 2);
    lurk_ws_decoder_init(&d, 100);
    assert_int_equal(lurk_ws_decode(&d, stream, n, &used, &ev), 0);
    assert_int_equal(ev.kind, LURK_WS_CONTROL);
    assert_int_equal(ev.opcode, LURK_WS_PING);
    assert_int_equal(used, 3);
    assert_int_equal(lurk_ws_decode(&d, stream + used, n - used, &used, &ev), 0);
    assert_int_equal(ev.kind, LURK_WS_DATA);
    assert_int_equal(used, 4);
    assert_int_equal(ev.len, 2);
    assert_true(ev.message_end);
    assert_int_equal(lurk_ws_decode(&d, stream + n, 0, &used, &ev), 0);
    assert_int_equal(ev.kind, LURK_WS_NEED_MORE);
}

/* RSV1 (permessage-deflate): refused unless allowed; then only on the first
 * frame of a data message, which is then reported compressed and exempt
 * from the UTF-8 check (the caller checks the inflated text). */
static void test_rsv1_rules(void **state)
{
    static const unsigned char compressed_text[] = { 0xC1, 0x02, 0xff, 0xfe };   /* RSV1|FIN|text */
    static const unsigned char rsv1_cont[] = { 0x41, 0x01, 0x61, 0xC0, 0x01, 0x62 }; /* RSV1 on CONT */
    static const unsigned char rsv1_ping[] = { 0xC9, 0x00 };
    struct lurk_ws_decoder d;
    struct lurk_ws_event ev;
    size_t used;

    (void)state;
    lurk_ws_decoder_init(&d, 1024);
    assert_int_equal(lurk_ws_decode(&d, compressed_text, sizeof compressed_text, &used, &ev), -LURK_EWS);
    assert_int_equal(d.close_code, 1002);

    lurk_ws_decoder_init(&d, 1024);
    d.allow_rsv1 = true;
    assert_int_equal(lurk_ws_decode(&d, compressed_text, sizeof compressed_text, &used, &ev), 0);
    assert_int_equal(ev.kind, LURK_WS_DATA);
    assert_true(ev.compressed);
    assert_true(ev.message_end);

    lurk_ws_decoder_init(&d, 1024);
    d.allow_rsv1 = true;
    assert_int_equal(lurk_ws_decode(&d, rsv1_cont, sizeof rsv1_cont, &used, &ev), 0);
    assert_true(ev.compressed);
    assert_false(ev.message_end);
    assert_int_equal(lurk_ws_decode(&d, rsv1_cont + used, sizeof rsv1_cont - used, &used, &ev), -LURK_EWS);
    assert_int_equal(d.close_code, 1002);

    lurk_ws_decoder_init(&d, 1024);
    d.allow_rsv1 = true;
    assert_int_equal(lurk_ws_decode(&d, rsv1_ping, sizeof rsv1_ping, &used, &ev), -LURK_EWS);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_header_lengths),
        cmocka_unit_test(test_mask_offsets_and_lengths),
        cmocka_unit_test(test_mask_in_pieces),
        cmocka_unit_test(test_utf8_valid),
        cmocka_unit_test(test_utf8_invalid),
        cmocka_unit_test(test_decode_messages),
        cmocka_unit_test(test_zero_length),
        cmocka_unit_test(test_close_frames),
        cmocka_unit_test(test_protocol_errors),
        cmocka_unit_test(test_oversize_before_payload),
        cmocka_unit_test(test_utf8_checked_as_it_arrives),
        cmocka_unit_test(test_leftover_untouched),
        cmocka_unit_test(test_rsv1_rules),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}

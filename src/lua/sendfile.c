/*
 * sendfile.c - what http.file needs from C: a file opened once (its size
 * and its bytes come from the same descriptor, whatever happens to the
 * path meanwhile) and the zero-copy transfer of net/sendfile.c.
 *
 *   P.file_open(path) -> file, size | nil, message, errno   (regular files only)
 *   file:pread(offset, n) -> string ("" at the end) | nil, message
 *   file:close()
 *   P.send_file(sock, file, offset, length) -> true            (all sent by splice)
 *                                            | false, sent     (cannot splice here: the
 *                                                               caller sends from offset + sent)
 *                                            | nil, err, sent  (the connection is unusable)
 *   P.sendfile_stats() -> bytes, splices   (this thread's splice totals)
 *
 * send_file splices on plain TCP and on TLS whose TX the kernel carries;
 * on userspace TLS it answers false, 0 at once. It takes the socket's
 * reader and writer slots for the transfer (as ws and http bindings do),
 * and each splice gets the socket's timeout.
 */
#include "lua/class.h"
#include "lua/error.h"
#include "lua/modules.h"
#include "lua/rt.h"
#include "lua/task.h"
#include "lua/tcp.h"
#include "core/error.h"
#include "net/sendfile.h"
#include "tls/tls.h"

#include <errno.h>
#include <fcntl.h>
#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define ROFILE_MT "lurk.rofile"

struct rofile {
    int fd;
    char *buf;                        /* pread's buffer, kept: see rofile_pread */
    size_t cap;
};

static struct rofile *check_rofile(lua_State *L, int idx, const char *fname)
{
    struct rofile *f = luaL_checkudata(L, idx, ROFILE_MT);

    if (f->fd < 0)
        lurk_lua_raise(L, fname, "attempt to use a closed file");
    return f;
}

/* P.file_open(path) -> file, size | nil, message, errno */
static int l_file_open(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    struct rofile *f;
    struct stat st;
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        int e = fd < 0 ? errno : (S_ISDIR(st.st_mode) ? EISDIR : errno ? errno : EINVAL);

        if (fd >= 0 && !S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode))
            e = EINVAL;               /* a device or a FIFO: not a file to serve */
        if (fd >= 0)
            close(fd);
        lua_pushnil(L);
        lua_pushfstring(L, "%s: %s", path, strerror(e));
        lua_pushinteger(L, e);
        return 3;
    }
    f = lua_newuserdata(L, sizeof *f);
    f->fd = fd;
    f->buf = NULL;
    f->cap = 0;
    luaL_getmetatable(L, ROFILE_MT);
    lua_setmetatable(L, -2);
    lua_pushnumber(L, (lua_Number)st.st_size);
    return 2;
}

/* file:pread(offset, n) -> string | nil, message. A plain pread: the
 * fallback path for userspace TLS, which copies anyway. The buffer lives
 * as long as the file: a fresh one per piece (over malloc's mmap threshold)
 * cost a page fault per 4 KiB, more than the AEAD sealing the piece, and
 * luaL_Buffer copied it byte by byte in 8 KiB pieces and concatenated them. */
static int rofile_pread(lua_State *L)
{
    struct rofile *f = check_rofile(L, 1, "file:pread");
    lua_Number off = lurk_lua_checknumber(L, 2, "file:pread");
    lua_Integer n = lurk_lua_checkinteger(L, 3, "file:pread");
    ssize_t got;

    if (n < 0 || n > LUAL_BUFFERSIZE * 64)
        n = LUAL_BUFFERSIZE * 64;
    if ((size_t)n > f->cap || !f->buf) {
        char *p = realloc(f->buf, (size_t)n ? (size_t)n : 1);

        if (!p)
            return luaL_error(L, "out of memory");
        f->buf = p;
        f->cap = (size_t)n;
    }
    do
        got = pread(f->fd, f->buf, (size_t)n, (off_t)off);
    while (got < 0 && errno == EINTR);
    if (got < 0) {
        lua_pushnil(L);
        lua_pushstring(L, strerror(errno));
        return 2;
    }
    lua_pushlstring(L, f->buf, (size_t)got);
    return 1;
}

static int rofile_close(lua_State *L)
{
    struct rofile *f = luaL_checkudata(L, 1, ROFILE_MT);

    if (f->fd >= 0)
        close(f->fd);
    f->fd = -1;
    free(f->buf);
    f->buf = NULL;
    f->cap = 0;
    return 0;
}

/* ---- P.send_file ---- */

struct wait {
    struct lurk_rt *rt;
    struct lurk_sendfile *f;
    struct lurk_lua_sock *k;
    struct lurk_task *t;
    size_t len;
    int file_pin;
};

static int send_results(lua_State *L, void *ud, int res)
{
    struct wait *w = ud;
    size_t sent = lurk_sendfile_sent(w->f);

    if (res == 0) {
        lua_pushboolean(L, 1);
        return 1;
    }
    if ((res == -EINVAL || res == -EOPNOTSUPP) && lurk_lua_sock_stream(w->k)->open) {
        lua_pushboolean(L, 0);        /* the kernel will not splice these: send the rest another way */
        lua_pushnumber(L, (lua_Number)sent);
        return 2;
    }
    lurk_stream_close(lurk_lua_sock_stream(w->k));   /* part of the body may be out */
    if (res == -LURK_EHTTP)
        lurk_lua_errorf(L, res, "send", "the file ended %.0f bytes before the length announced",
                        (double)(w->len - sent));
    else
        lurk_lua_sock_error(L, w->k, res, "send");
    lua_pushnumber(L, (lua_Number)sent);
    return 3;
}

static void send_cancel(void *ud)
{
    struct wait *w = ud;

    lurk_sendfile_cancel(w->f);
}

static void send_release(void *ud)
{
    struct wait *w = ud;

    lurk_lua_sock_give(w->k);
    lurk_unpin(w->rt, w->file_pin);
    lurk_sendfile_free(w->f);
    free(w);
}

static const struct lurk_waiter send_waiter = { send_results, send_cancel, send_release };

/* P.send_file(sock, file, offset, length) */
static int l_send_file(lua_State *L)
{
    static const char fname[] = "http.file";
    struct lurk_lua_sock *k = lurk_lua_sock_check(L, 1);
    struct rofile *f = check_rofile(L, 2, fname);
    lua_Number off = lurk_lua_checknumber(L, 3, fname);
    lua_Number len = lurk_lua_checknumber(L, 4, fname);
    struct lurk_task *t = lurk_lua_task(L, fname);
    struct lurk_tls *tls = lurk_lua_sock_tls(k);
    double timeout = lurk_lua_sock_timeout(k);
    struct wait *w;
    int rc;

    if (tls) {
        struct lurk_tls_info i;

        lurk_tls_get_info(tls, &i);
        if (!i.ktls_tx) {             /* mbedTLS encrypts in userspace: it must see the bytes */
            lua_pushboolean(L, 0);
            lua_pushnumber(L, 0);
            return 2;
        }
    }
    rc = lurk_task_check(t);
    if (rc < 0)
        return lurk_lua_sock_error(L, k, rc, "send");
    w = calloc(1, sizeof *w);
    if (!w)
        return luaL_error(L, "out of memory");
    w->rt = lurk_rt_get(L);
    w->k = k;
    w->t = t;
    w->len = (size_t)len;
    lurk_lua_sock_take(L, k, 1, t);   /* raises if another task uses the socket */
    w->file_pin = lurk_pin(w->rt, L, 2);
    rc = lurk_sendfile_start(&w->f, lurk_lua_sock_tcp(k), f->fd, (int64_t)off, (size_t)len,
                             timeout > 0 ? (int64_t)(timeout * 1e9) : 0, lurk_task_deadline(t, 0),
                             lurk_task_wake, t);
    if (rc < 0) {
        lurk_lua_sock_give(k);
        lurk_unpin(w->rt, w->file_pin);
        free(w);
        return lurk_lua_sock_error(L, k, rc, "send");
    }
    return lurk_task_wait(L, t, &send_waiter, w);
}

/* P.sendfile_stats() -> bytes, splices */
static int l_sendfile_stats(lua_State *L)
{
    uint64_t bytes, splices;

    lurk_sendfile_stats(&bytes, &splices);
    lua_pushnumber(L, (lua_Number)bytes);
    lua_pushnumber(L, (lua_Number)splices);
    return 2;
}

void lurk_lua_open_sendfile(lua_State *L, int priv)
{
    static const luaL_Reg methods[] = {
        { "pread", rofile_pread },
        { "close", rofile_close },
        { NULL, NULL },
    };
    static const luaL_Reg meta[] = {
        { "__gc", rofile_close },
        { NULL, NULL },
    };

    lurk_lua_class(L, ROFILE_MT, methods, meta);
    lua_pushcfunction(L, l_file_open);
    lua_setfield(L, priv, "file_open");
    lua_pushcfunction(L, l_send_file);
    lua_setfield(L, priv, "send_file");
    lua_pushcfunction(L, l_sendfile_stats);
    lua_setfield(L, priv, "sendfile_stats");
}

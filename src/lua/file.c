/*
 * file.c - files written through the ring, for downloads: the loop never
 * blocks on the disk.
 *
 *   f = open_write(path [, append]) -> file | nil, err (created or truncated, 0644;
 *                                   append: kept, written from its end)
 *   f:write(data)                -> true | nil, err   (all of it; yields)
 *   f:close()                    -> true
 *
 * The open and close are plain syscalls (cheap, once per file); each write
 * is an IORING_OP_WRITE at the file's offset, continued on short writes.
 * The string being written is pinned in the registry until it is done.
 */
#include "lua/error.h"
#include "lua/modules.h"
#include "lua/class.h"
#include "lua/task.h"
#include "core/error.h"
#include "core/loop.h"

#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <lauxlib.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define FILE_MT "lurk.file"

struct file {
    struct lurk_rt *rt;
    int fd;
    char path[256];                   /* for messages (cut if longer) */
    int64_t off;
    struct lurk_task *writer;
    struct lurk_op *op;
    const char *p;
    size_t len, done;
    int data_ref, self_ref;
};

static struct file *check_file(lua_State *L)
{
    return luaL_checkudata(L, 1, FILE_MT);
}

static void write_done(struct lurk_op *op, int res)
{
    struct file *f = op->arg;

    f->op = NULL;
    /* No writer: the runtime is being torn down, and released the wait
     * (write_release) before it drained the ring. */
    if (f->writer)
        lurk_task_wake(f->writer, res);
}

static int submit(struct file *f)
{
    struct io_uring_sqe *sqe = lurk_loop_sqe(lurk_rt_loop(f->rt));
    size_t n = f->len - f->done;

    if (n > 1u << 30)
        n = 1u << 30;
    io_uring_prep_write(sqe, f->fd, f->p + f->done, (unsigned)n, (uint64_t)f->off);
    f->op = lurk_op_new(lurk_rt_loop(f->rt), write_done, f);
    lurk_op_arm(lurk_rt_loop(f->rt), f->op, sqe, 0);
    return 0;
}

static int write_results(lua_State *L, void *ud, int res)
{
    struct file *f = ud;

    if (res < 0 && (res == -ECANCELED || res == -ETIMEDOUT))
        return lurk_lua_error(L, res, "io", f->path);
    if (res <= 0)                     /* the disk failed: kind io */
        return lurk_lua_error(L, res < 0 ? res : -EIO, "io", f->path);
    f->done += (size_t)res;
    f->off += res;
    if (f->done < f->len) {
        submit(f);                    /* a short write: the rest next */
        return LURK_AGAIN;
    }
    lua_pushboolean(L, 1);
    return 1;
}

static void write_cancel(void *ud)
{
    struct file *f = ud;

    if (f->op)
        lurk_op_cancel(lurk_rt_loop(f->rt), f->op);
}

static void write_release(void *ud)
{
    struct file *f = ud;
    f->writer = NULL;
    lurk_unpin(f->rt, f->data_ref);
    lurk_unpin(f->rt, f->self_ref);
    f->data_ref = f->self_ref = LUA_NOREF;
}

static const struct lurk_waiter write_waiter = { write_results, write_cancel, write_release };

/* f:write(data) -> true | nil, err */
static int file_write(lua_State *L)
{
    struct file *f = check_file(L);
    size_t len;
    const char *p = luaL_checklstring(L, 2, &len);
    struct lurk_task *t = lurk_lua_task(L, "file:write");
    int rc;

    if (f->fd < 0)
        return luaL_error(L, "attempt to write a closed file");
    if (f->writer)
        return luaL_error(L, "another task is already writing this file");
    if (len == 0) {
        lua_pushboolean(L, 1);
        return 1;
    }
    rc = lurk_task_check(t);
    if (rc < 0)
        return lurk_lua_error(L, rc, "io", f->path);
    f->p = p;
    f->len = len;
    f->done = 0;
    f->writer = t;
    f->data_ref = lurk_pin(f->rt, L, 2);
    f->self_ref = lurk_pin(f->rt, L, 1);
    submit(f);
    return lurk_task_wait(L, t, &write_waiter, f);
}

/* f:close() -> true */
static int file_close(lua_State *L)
{
    struct file *f = check_file(L);

    if (f->writer)
        return luaL_error(L, "file:close while a write is in flight");
    if (f->fd >= 0) {
        close(f->fd);
        f->fd = -1;
    }
    lua_pushboolean(L, 1);
    return 1;
}

static int file_gc(lua_State *L)
{
    struct file *f = check_file(L);

    /* A write in flight anchors the object, so none is pending here. */
    if (f->fd >= 0)
        close(f->fd);
    f->fd = -1;
    return 0;
}

/* open_write(path [, append]) -> file | nil, err (internal: lua/http.lua's
 * downloads; append continues a resumed download's part file) */
static int l_open_write(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    bool append = lua_toboolean(L, 2);
    struct file *f;

    /* The object first, closed (liolib's rule): if making it raises (out of
     * memory), no descriptor is open yet to leak. */
    f = lua_newuserdata(L, sizeof *f);
    memset(f, 0, sizeof *f);
    f->rt = lurk_rt_get(L);
    f->fd = -1;
    f->data_ref = f->self_ref = LUA_NOREF;
    snprintf(f->path, sizeof f->path, "%s", path);
    luaL_getmetatable(L, FILE_MT);
    lua_setmetatable(L, -2);
    f->fd = open(path, O_WRONLY | O_CREAT | (append ? 0 : O_TRUNC) | O_CLOEXEC, 0644);
    if (f->fd < 0)
        return lurk_lua_error(L, -errno, "io", path);   /* a local failure: kind io */
    if (append) {
        /* Writes carry their own offset (no O_APPEND): start at the end. */
        off_t end = lseek(f->fd, 0, SEEK_END);

        if (end < 0)
            return lurk_lua_error(L, -errno, "io", path);
        f->off = end;
    }
    return 1;
}

/* ---- reading a pipe or terminal (stdin) through the ring ---- */

struct fdread {
    struct lurk_rt *rt;
    struct lurk_op *op;
    int self_ref;
    size_t cap;
    char buf[];
};

static void read_done(struct lurk_op *op, int res)
{
    struct lurk_task *t = op->arg;

    lurk_task_wake(t, res);
}

static int read_results(lua_State *L, void *ud, int res)
{
    struct fdread *r = ud;

    r->op = NULL;
    if (res < 0)
        return lurk_lua_error(L, res, "read", "stdin");
    lua_pushlstring(L, r->buf, (size_t)res);   /* "" at end of input */
    return 1;
}

static void read_cancel(void *ud)
{
    struct fdread *r = ud;

    if (r->op)
        lurk_op_cancel(lurk_rt_loop(r->rt), r->op);
}

static void read_release(void *ud)
{
    struct fdread *r = ud;

    lurk_unpin(r->rt, r->self_ref);
}

static const struct lurk_waiter read_waiter = { read_results, read_cancel, read_release };

/* read_fd(fd [, max]) -> data | "" at end | nil, err: one read(2)
 * through the ring, for pipes and terminals (never blocks the loop). */
static int l_read_fd(lua_State *L)
{
    int fd = (int)luaL_checkinteger(L, 1);
    lua_Integer max = luaL_optinteger(L, 2, 65536);
    struct lurk_task *t = lurk_lua_task(L, "lurk.lines");
    struct io_uring_sqe *sqe;
    struct fdread *r;
    int rc;

    luaL_argcheck(L, max > 0 && max <= (1 << 24), 2, "max out of range");
    rc = lurk_task_check(t);
    if (rc < 0)
        return lurk_lua_error(L, rc, "read", "stdin");
    r = lua_newuserdata(L, sizeof *r + (size_t)max);
    r->rt = lurk_rt_get(L);
    r->cap = (size_t)max;
    r->self_ref = lurk_pin(r->rt, L, -1);   /* the buffer outlives this call */
    lua_pop(L, 1);
    sqe = lurk_loop_sqe(lurk_rt_loop(r->rt));
    /* offset -1: read at the file position, as read(2) does on pipes/ttys */
    io_uring_prep_read(sqe, fd, r->buf, (unsigned)r->cap, (uint64_t)-1);
    r->op = lurk_op_new(lurk_rt_loop(r->rt), read_done, t);
    lurk_op_arm(lurk_rt_loop(r->rt), r->op, sqe, lurk_task_deadline(t, 0));
    return lurk_task_wait(L, t, &read_waiter, r);
}

/* isatty(fd) -> boolean */
static int l_isatty(lua_State *L)
{
    lua_pushboolean(L, isatty((int)luaL_checkinteger(L, 1)));
    return 1;
}

void lurk_lua_open_file(lua_State *L, int priv)
{
    static const luaL_Reg methods[] = {
        { "write", file_write },
        { "close", file_close },
        { NULL, NULL },
    };
    static const luaL_Reg meta[] = {
        { "__gc", file_gc },
        { NULL, NULL },
    };

    lurk_lua_class(L, FILE_MT, methods, meta);
    lua_pushcfunction(L, l_open_write);
    lua_setfield(L, priv, "open_write");
    lua_pushcfunction(L, l_isatty);
    lua_setfield(L, priv, "isatty");
    lua_pushcfunction(L, l_read_fd);
    lua_setfield(L, priv, "read_fd");
}

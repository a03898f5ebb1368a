/*
 * lurk.c - the lurk.* functions written in C (spawn, run, sleep, now,
 * current, stats) and the task object (join, cancel, status), over the
 * scheduler in task.c; and, in the private table, the primitives
 * lua/lurk.lua builds the rest on (park, unpark, deadline, yield).
 *
 * Every function finds its runtime in one upvalue, a box the runtime
 * clears when it goes (a host's Lua state may outlive it): calling one
 * then raises "the lurk runtime is closed".
 */
#include "lua/task_int.h"
#include "lua/class.h"
#include "lua/error.h"
#include "lua/modules.h"
#include "lua/rt.h"
#include "core/error.h"
#include "core/loop.h"

#include <errno.h>
#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The runtime of a lurk.* function, from the box in its upvalue
 * (lurk_lua_open_task; emptied when the runtime is freed): no registry
 * lookup on calls made per request. */
static struct lurk_rt *upvalue_rt(lua_State *L)
{
    struct lurk_rt *rt = *(struct lurk_rt **)lua_touserdata(L, lua_upvalueindex(1));

    if (!rt)
        luaL_error(L, "the lurk runtime is closed");
    return rt;
}

/* The task a method (fname, "task:join") was called on. */
static struct lurk_task *self_task(lua_State *L, const char *fname)
{
    return *(struct lurk_task **)lurk_lua_checkself(L, TASK_MT, fname);
}

/* nil, err for a wait that cannot start (lurk_task_check's rc) */
static int cannot_wait(lua_State *L, struct lurk_task *t, int rc, const char *what)
{
    if (rc == -ETIMEDOUT && lurk_task_timeout_error(L, t, "wait", what, t->deadline, 0))
        return 2;
    return lurk_lua_error(L, rc, "wait", NULL);
}

/* lurk.sleep(s) -> true | nil, err */
static int l_sleep(lua_State *L)
{
    double s = lurk_lua_checknumber(L, 1, "lurk.sleep");
    struct lurk_task *t = lurk_rt_task(L, upvalue_rt(L), "lurk.sleep");
    int64_t end, d;
    int rc = lurk_task_check(t);

    if (rc < 0)
        return cannot_wait(L, t, rc, "lurk.sleep");
    if (s <= 0) {
        /* Yield to every other ready task, without touching the ring. */
        t->w = &lurk_sleep_waiter;
        t->wud = t;
        t->res = 0;
        lurk_task_queue(t);
        lua_pushlightuserdata(L, &lurk_yield_key);
        return lua_yield(L, 1);
    }
    end = lurk_now_ns() + (int64_t)(s * 1e9);
    d = t->deadline;
    if (d && d < end)
        return lurk_task_park(L, t, PARK_SLEEP, d, false, &lurk_sleep_waiter);
    return lurk_task_park(L, t, PARK_SLEEP, end, true, &lurk_sleep_waiter);
}

/* park([timeout [, what]]) -> values given to unpark | nil, err (private
 * table). what names the wait in a timeout's message ("channel:recv"). */
static int l_park(lua_State *L)
{
    struct lurk_task *t = lurk_rt_task(L, upvalue_rt(L), "park");
    double timeout = luaL_optnumber(L, 1, 0);
    size_t len;
    const char *what = luaL_optlstring(L, 2, "wait", &len);
    int rc = lurk_task_check(t);

    /* Kept for a timeout's message, cut to fit (no snprintf: one per wait). */
    len = len < sizeof t->park_what ? len : sizeof t->park_what - 1;
    memcpy(t->park_what, what, len);
    t->park_what[len] = '\0';
    t->park_timeout = timeout;
    if (rc < 0)
        return cannot_wait(L, t, rc, t->park_what);
    return lurk_task_park(L, t, PARK_LUA, lurk_task_deadline(t, timeout), false, &lurk_park_waiter);
}

/* unpark(task, ...) -> true if the task was parked by park (private table) */
static int l_unpark(lua_State *L)
{
    struct lurk_task *t = self_task(L, "unpark");
    int n = lua_gettop(L) - 1;

    if (t->parked != PARK_LUA) {
        lua_pushboolean(L, 0);
        return 1;
    }
    lua_xmove(L, t->co, n);
    t->nret = n;
    lurk_task_unpark(t, 0);
    lua_pushboolean(L, 1);
    return 1;
}

/* lurk.spawn(fn, ...) -> task */
static int l_spawn(lua_State *L)
{
    lurk_lua_checktype(L, 1, "lurk.spawn", LUA_TFUNCTION);
    lurk_rt_spawn(upvalue_rt(L), L, lua_gettop(L) - 1, false);
    return 1;
}

/*
 * lurk.run([fn, ...]) -> fn's results: for code outside tasks (a stock
 * luajit that did require "lurk", or a host's state). Starts fn as a task,
 * runs the loop until every task has finished, and returns what fn returned;
 * an error in fn is raised here with its traceback.
 */
static int l_run(lua_State *L)
{
    struct lurk_rt *rt = upvalue_rt(L);
    struct lurk_task *t = NULL;
    int rc, n;

    if (SCHED(rt)->current)
        return luaL_error(L, "lurk.run drives the loop from outside tasks; "
                          "inside a task, call the function directly (or lurk.spawn it)");
    if (!lua_isnoneornil(L, 1)) {
        lurk_lua_checktype(L, 1, "lurk.run", LUA_TFUNCTION);
        t = lurk_rt_spawn(rt, L, lua_gettop(L) - 1, true);
    }
    rc = lurk_rt_run(rt, LURK_RT_DEFAULT);
    if (rc < 0) {
        const char *msg = rc == -LURK_EDEADLK || rc == -LURK_ESCRIPT ? lurk_rt_errmsg(rt) : NULL;

        lurk_rt_clear_failure(rt);    /* the runtime stays usable */
        lua_pushstring(L, msg ? msg : lurk_strerror(rc));
        return lua_error(L);
    }
    if (!t)
        return 0;
    n = lurk_task_push_results(L, t);           /* true, fn's results */
    lua_remove(L, -n);
    return n - 1;
}

/* lurk.current() -> the running task (the object lurk.spawn returned for
 * it: the same one every time), or nil outside tasks */
static int l_current(lua_State *L)
{
    struct lurk_rt *rt = upvalue_rt(L);
    struct lurk_task *t = SCHED(rt)->current;

    if (!t)
        return 0;
    lurk_pinned(rt, L, t->self_ref);
    return 1;
}

/* lurk.stats() -> { enters, ops, cqes, in_flight, tasks, files, ring }:
 * io_uring_enter calls, ops submitted and completions reaped since the
 * runtime started; files: sockets in the ring's file table now; ring: the
 * ring's setup and features, as `lurk --version` names them. */
static int l_stats(lua_State *L)
{
    struct lurk_rt *rt = upvalue_rt(L);
    struct lurk_loop_stats st;

    lurk_loop_stats(lurk_rt_loop(rt), &st);
    lua_createtable(L, 0, 7);
    lua_pushnumber(L, (lua_Number)st.enters);
    lua_setfield(L, -2, "enters");
    lua_pushnumber(L, (lua_Number)st.ops);
    lua_setfield(L, -2, "ops");
    lua_pushnumber(L, (lua_Number)st.cqes);
    lua_setfield(L, -2, "cqes");
    lua_pushinteger(L, lurk_loop_in_flight(lurk_rt_loop(rt)));
    lua_setfield(L, -2, "in_flight");
    lua_pushinteger(L, SCHED(rt)->live);
    lua_setfield(L, -2, "tasks");
    lua_pushinteger(L, st.files);
    lua_setfield(L, -2, "files");
    lua_pushstring(L, lurk_loop_features(lurk_rt_loop(rt)));
    lua_setfield(L, -2, "ring");
    return 1;
}

/* lurk.now() -> monotonic seconds */
static int l_now(lua_State *L)
{
    lua_pushnumber(L, (double)lurk_now_ns() / 1e9);
    return 1;
}

/* deadline([abs_seconds | false [, seconds]]) -> previous deadline or nil,
 * and its length when lurk.timeout set it (private table). Without an
 * argument only reads it. seconds marks the deadline as lurk.timeout's, of
 * that length, for the messages of the waits it ends; a deadline set
 * without it (http.lua's total timeout) leaves the mark alone, so restoring
 * lurk.timeout's deadline afterwards restores its description too. */
static int l_deadline(lua_State *L)
{
    struct lurk_rt *rt = upvalue_rt(L);
    struct lurk_task *t = SCHED(rt)->current;   /* not lurk_rt_task: this never waits */
    int64_t old;

    if (!t)
        return luaL_error(L, "lurk.timeout must be called from a task (the main chunk is one; "
                          "see lurk.spawn)");
    old = t->deadline;

    if (lua_gettop(L) >= 1) {
        t->deadline = lua_toboolean(L, 1) ? (int64_t)(luaL_checknumber(L, 1) * 1e9) : 0;
        if (t->deadline && lua_isnumber(L, 2)) {
            t->label_at = t->deadline;
            t->label_s = lua_tonumber(L, 2);
        }
    }
    if (!old) {
        lua_pushnil(L);
        return 1;
    }
    lua_pushnumber(L, (double)old / 1e9);
    if (t->label_at != old)
        return 1;
    lua_pushnumber(L, t->label_s);
    return 2;
}

/* task:join([timeout]) -> true, ... | false, err | nil, err (timeout/cancel) */
static int task_join(lua_State *L)
{
    struct lurk_task *target = self_task(L, "task:join"), *t;
    double timeout = lurk_lua_optnumber(L, 2, "task:join", 0);
    int rc;

    if (target->state == T_DONE)
        return lurk_task_push_results(L, target);
    t = lurk_lua_task(L, "task:join");
    if (t == target)
        return luaL_error(L, "a task cannot join itself");
    rc = lurk_task_check(t);
    if (rc < 0)
        return cannot_wait(L, t, rc, "task:join");
    snprintf(t->park_what, sizeof t->park_what, "task:join");
    t->park_timeout = timeout;
    lurk_task_join(t, target);
    return lurk_task_park(L, t, PARK_JOIN, lurk_task_deadline(t, timeout), false, &lurk_park_waiter);
}


/* task:cancel() -> true */
static int task_cancel(lua_State *L)
{
    lurk_task_cancel(self_task(L, "task:cancel"));
    lua_pushboolean(L, 1);
    return 1;
}

/* task:status() -> "ready" | "running" | "waiting" | "done" */
static int task_status(lua_State *L)
{
    static const char *const names[] = { "ready", "running", "waiting", "done" };

    lua_pushstring(L, names[self_task(L, "task:status")->state]);
    return 1;
}

static int task_gc(lua_State *L)
{
    struct lurk_task **box = luaL_checkudata(L, 1, TASK_MT);
    struct lurk_task *t = *box;

    if (!t)
        return 0;
    *box = NULL;
    t->box = NULL;                    /* its one object (lurk.current() returns it too) */
    if (t->result_ref != LUA_NOREF && !lurk_rt_closing(t->rt)) {
        lurk_unpin(t->rt, t->result_ref);
        t->result_ref = LUA_NOREF;
    }
    lurk_task_unref(t);
    return 0;
}

static int task_tostring(lua_State *L)
{
    struct lurk_task *t = lurk_check_task(L, 1);

    lua_pushfstring(L, "lurk.task (%p)", (void *)t);
    return 1;
}

static int task_eq(lua_State *L)
{
    lua_pushboolean(L, lurk_check_task(L, 1) == lurk_check_task(L, 2));
    return 1;
}

void lurk_lua_open_task(lua_State *L, int priv)
{
    static const luaL_Reg methods[] = {
        { "join", task_join },
        { "cancel", task_cancel },
        { "status", task_status },
        { NULL, NULL },
    };
    static const luaL_Reg meta[] = {
        { "__gc", task_gc },
        { "__tostring", task_tostring },
        { "__eq", task_eq },
        { NULL, NULL },
    };
    static const luaL_Reg funcs[] = {
        { "spawn", l_spawn },
        { "run", l_run },
        { "sleep", l_sleep },
        { "now", l_now },
        { "current", l_current },
        { "stats", l_stats },
        { NULL, NULL },
    };
    static const luaL_Reg internals[] = {
        { "park", l_park },
        { "unpark", l_unpark },
        { "deadline", l_deadline },
        { NULL, NULL },
    };
    struct lurk_rt *rt, **upbox;

    lurk_lua_class(L, TASK_MT, methods, meta);

    rt = lurk_rt_get(L);
    upbox = lua_newuserdata(L, sizeof *upbox);
    *upbox = rt;
    lurk_rt_set_upbox(rt, upbox);
    lua_pushvalue(L, priv);           /* lurk, upbox, private */
    lua_pushvalue(L, -2);             /* lurk, upbox, private, upbox */
    luaL_openlib(L, NULL, internals, 1);
    lua_pushlightuserdata(L, &lurk_yield_key);
    lua_setfield(L, -2, "yield");
    lua_pop(L, 1);                    /* lurk, upbox */
    luaL_openlib(L, NULL, funcs, 1);  /* lurk */
}


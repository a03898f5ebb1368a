/*
 * task.c - the scheduler: tasks as coroutines, waits, wake-ups, parking,
 * joins and deadlines. The lurk.* functions and the task object that scripts
 * use are lurk.c's, over this.
 *
 * A task's life: lurk_rt_spawn() creates the coroutine and runs it at once
 * until it first waits. A wait records a struct lurk_waiter and yields a
 * sentinel; the operation's completion calls lurk_task_wake(), which only
 * queues the task. After the loop has reaped a batch of completions,
 * run_ready() resumes each queued task: the waiter's results function pushes
 * the call's return values onto the coroutine, then lua_resume() hands them
 * to the script. A yield that does not carry the sentinel (a script calling
 * coroutine.yield() in a task) just puts the task at the back of the queue.
 *
 * LuaJIT cannot yield from inside a C call and resume into it (no
 * lua_yieldk), so every yielding C function yields as its tail; calls that
 * need several completions re-arm from their results function (LURK_AGAIN)
 * or loop in Lua.
 *
 * Parking is the primitive under join, sleep and the Lua-side channels and
 * semaphores: a parked task waits for an unpark (lurk.c), its deadline, or
 * cancellation. Its timer is a ring timeout owned by the task (refcounted:
 * the timer's completion may arrive after the task has finished).
 *
 * References on struct lurk_task: one while it has not finished, one for its
 * Lua object, one per timer in flight and one per task joining it.
 */
#include "lua/task_int.h"
#include "lua/error.h"
#include "core/error.h"
#include "core/loop.h"

#include <errno.h>
#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char lurk_yield_key;                  /* address is the yield sentinel */

void lurk_task_unref(struct lurk_task *t)
{
    struct lurk_rt *rt = t->rt;

    if (--t->refs > 0)
        return;
    if (t->prev)
        t->prev->next = t->next;
    else
        SCHED(rt)->tasks = t->next;
    if (t->next)
        t->next->prev = t->prev;
    free(t);
}

void lurk_task_wake(void *task, int res)
{
    struct lurk_task *t = task;

    if (lurk_rt_closing(t->rt))
        return;
    t->res = res;
    if (t->state == T_RUNNING)
        t->early = true;              /* completed before the task yielded */
    else
        lurk_task_queue(t);
}

int lurk_task_wait(lua_State *L, struct lurk_task *t, const struct lurk_waiter *w, void *ud)
{
    t->w = w;
    t->wud = ud;
    while (t->early) {
        int n;

        t->early = false;
        n = w->results(L, ud, t->res);
        if (n != LURK_AGAIN) {
            t->w = NULL;
            if (w->release)
                w->release(ud);
            return n;
        }
    }
    t->state = T_WAITING;
    lua_pushlightuserdata(L, &lurk_yield_key);
    return lua_yield(L, 1);
}

int lurk_task_check_at(struct lurk_task *t, int64_t now)
{
    if (t->cancelled)
        return -ECANCELED;
    if (t->deadline && now >= t->deadline)
        return -ETIMEDOUT;
    return 0;
}

int lurk_task_check(struct lurk_task *t)
{
    return lurk_task_check_at(t, t->deadline ? lurk_now_ns() : 0);
}

int64_t lurk_task_deadline_at(struct lurk_task *t, double timeout_s, int64_t now)
{
    int64_t d = t->deadline;

    if (timeout_s > 0) {
        int64_t x = now + (int64_t)(timeout_s * 1e9);

        if (!d || x < d)
            d = x;
    }
    return d;
}

int64_t lurk_task_deadline(struct lurk_task *t, double timeout_s)
{
    return lurk_task_deadline_at(t, timeout_s, timeout_s > 0 ? lurk_now_ns() : 0);
}

int lurk_task_timeout_error(lua_State *L, struct lurk_task *t, const char *phase, const char *what,
                            int64_t deadline, double timeout_s)
{
    char secs[32] = "";
    double limit = 0;

    if (!t || !deadline || lurk_now_ns() < deadline)
        return 0;
    if (t->deadline && deadline == t->deadline) {
        /* The task's deadline came first (ties go to it, as in lurk_task_deadline). */
        if (t->label_at == t->deadline) {
            limit = t->label_s;
            snprintf(secs, sizeof secs, "%g", limit);
            lurk_lua_errorf(L, -ETIMEDOUT, phase, "%s timed out: the lurk.timeout deadline of %s s passed",
                            what, secs);
        } else {
            lurk_lua_errorf(L, -ETIMEDOUT, phase, "%s timed out: the task's deadline passed", what);
        }
    } else {
        limit = timeout_s;
        snprintf(secs, sizeof secs, "%g", limit);
        lurk_lua_errorf(L, -ETIMEDOUT, phase, "%s timed out after %s s", what, secs);
    }
    if (limit > 0) {
        lua_pushnumber(L, limit);
        lua_setfield(L, -2, "timeout");
    }
    return 2;
}

struct lurk_task *lurk_rt_task(lua_State *L, struct lurk_rt *rt, const char *fn)
{
    if (!rt || !SCHED(rt)->current)
        luaL_error(L, "%s must be called from a task (the main chunk is one; see lurk.spawn)", fn);
    /* Checked before the call starts anything: LuaJIT's own error would come
     * from lua_yield, with the operation already in flight. */
    if (!lua_isyieldable(L))
        luaL_error(L, "%s: attempt to yield across C-call boundary: a lurk call that waits was "
                   "made from a C function (a host function, a table.sort comparator, a "
                   "string.gsub callback) or a metamethod or iterator lurk cannot suspend; "
                   "make the call from the task's own code", fn);
    return SCHED(rt)->current;
}

struct lurk_task *lurk_lua_task(lua_State *L, const char *fn)
{
    return lurk_rt_task(L, lurk_rt_get(L), fn);
}

/* ---- finishing and joining ---- */

/* Pushes the results table's values (ok, ...) onto L; returns how many. */
int lurk_task_push_results(lua_State *L, struct lurk_task *t)
{
    int n;

    lurk_pinned(t->rt, L, t->result_ref);
    lua_getfield(L, -1, "n");
    n = (int)lua_tointeger(L, -1);
    lua_pop(L, 1);
    luaL_checkstack(L, n, "too many task results");
    for (int i = 1; i <= n; i++)
        lua_rawgeti(L, -i, i);        /* the table sinks as values pile up */
    lua_remove(L, -(n + 1));
    return n;
}

void lurk_task_join(struct lurk_task *t, struct lurk_task *target)
{
    t->join_target = target;
    t->join_prev = NULL;
    t->join_next = target->joiners;
    if (target->joiners)
        target->joiners->join_prev = t;
    target->joiners = t;
    target->refs++;
}

void lurk_task_unjoin(struct lurk_task *t)
{
    struct lurk_task *target = t->join_target;

    if (!target)
        return;
    if (t->join_prev)
        t->join_prev->join_next = t->join_next;
    else
        target->joiners = t->join_next;
    if (t->join_next)
        t->join_next->join_prev = t->join_prev;
    t->join_target = t->join_prev = t->join_next = NULL;
    lurk_task_unref(target);
}

void lurk_task_unpark(struct lurk_task *t, int res)
{
    t->parked = PARK_NONE;
    if (t->timer) {
        lurk_op_cancel(lurk_rt_loop(t->rt), t->timer);
        t->timer = NULL;              /* its completion finds itself stale */
    }
    lurk_task_wake(t, res);
}

static bool is_cancel_error(lua_State *L, int idx)
{
    bool yes = false;

    if (lua_istable(L, idx)) {
        lua_getfield(L, idx, "kind");
        yes = lua_isstring(L, -1) && strcmp(lua_tostring(L, -1), "cancelled") == 0;
        lua_pop(L, 1);
    }
    return yes;
}

/* Turns the error value on top of L into a traceback of co, pushed on L. */
static void push_traceback(lua_State *L, lua_State *co)
{
    const char *msg;

    if (luaL_callmeta(L, -1, "__tostring")) {
        if (!lua_isstring(L, -1)) {
            lua_pop(L, 1);
            lua_pushliteral(L, "(error object's __tostring returned no string)");
        }
        msg = lua_tostring(L, -1);
    } else if (lua_isstring(L, -1)) {
        lua_pushvalue(L, -1);
        msg = lua_tostring(L, -1);
    } else {
        lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, -1));
        msg = lua_tostring(L, -1);
    }
    luaL_traceback(L, co, msg, 0);
    lua_remove(L, -2);
}

static void finish(struct lurk_task *t, int status)
{
    struct lurk_rt *rt = t->rt;
    lua_State *L = lurk_rt_lua(rt), *co = t->co;
    int n = status == 0 ? lua_gettop(co) : 1;

    luaL_checkstack(L, 4, NULL);
    lua_createtable(L, n + 1, 1);
    lua_pushboolean(L, status == 0);
    lua_rawseti(L, -2, 1);
    if (status == 0) {
        for (int i = 1; i <= n; i++) {
            lua_pushvalue(co, i);
            lua_xmove(co, L, 1);
            lua_rawseti(L, -2, i + 1);
        }
    } else {
        lua_xmove(co, L, 1);          /* the error value */
        if (t->fatal || !is_cancel_error(L, -1)) {
            push_traceback(L, co);
            if (t->fatal) {
                lurk_rt_fail(rt, lua_tostring(L, -1));
            } else {
                lurk_rt_task_error(rt, lua_tostring(L, -1));
            }
            lua_pop(L, 1);
        }
        lua_rawseti(L, -2, 2);
    }
    lua_pushinteger(L, n + 1);
    lua_setfield(L, -2, "n");
    t->result_ref = lurk_pin(rt, L, -1);
    lua_pop(L, 1);
    lurk_unpin(rt, t->co_ref);
    t->co_ref = LUA_NOREF;
    lurk_unpin(rt, t->self_ref);
    t->self_ref = LUA_NOREF;
    t->co = NULL;
    t->state = T_DONE;
    SCHED(rt)->live--;

    while (t->joiners) {
        struct lurk_task *j = t->joiners;

        j->nret = lurk_task_push_results(j->co, t);
        lurk_task_unjoin(j);
        lurk_task_unpark(j, 0);
    }
    lurk_task_unref(t);                    /* the "not finished" reference */
}

/* ---- running ---- */

static void resume(struct lurk_task *t)
{
    struct lurk_rt *rt = t->rt;
    struct lurk_task *prev = SCHED(rt)->current;
    lua_State *co = t->co;
    int n, status;

    t->state = T_RUNNING;
    if (t->w) {
        const struct lurk_waiter *w = t->w;

        for (;;) {
            n = w->results(co, t->wud, t->res);
            if (n != LURK_AGAIN)
                break;
            if (!t->early) {
                t->state = T_WAITING;  /* the new operation will wake us */
                return;
            }
            t->early = false;
        }
        t->w = NULL;
        if (w->release)
            w->release(t->wud);
    } else {
        n = t->nargs;
        t->nargs = 0;
    }
    SCHED(rt)->current = t;
    status = lua_resume(co, n);
    SCHED(rt)->current = prev;
    if (status == LUA_YIELD) {
        bool ours = lua_gettop(co) > 0 && lua_touserdata(co, -1) == &lurk_yield_key;

        lua_settop(co, 0);
        if (!ours) {                  /* a plain coroutine.yield(): run later */
            t->w = NULL;
            lurk_task_queue(t);
        }
        return;
    }
    finish(t, status);
}

static void run_ready(struct lurk_rt *rt)
{
    struct lurk_task *last = SCHED(rt)->runq_tail;

    /* Only the tasks queued now: one that re-queues itself waits a turn. */
    while (SCHED(rt)->runq && !lurk_rt_failed(rt)) {
        struct lurk_task *t = SCHED(rt)->runq;

        SCHED(rt)->runq = t->next_run;
        if (!SCHED(rt)->runq)
            SCHED(rt)->runq_tail = NULL;
        t->queued = false;
        t->next_run = NULL;
        resume(t);
        if (t == last)
            break;
    }
}

struct lurk_task *lurk_check_task(lua_State *L, int idx)
{
    struct lurk_task **p = luaL_checkudata(L, idx, TASK_MT);

    return *p;
}

struct lurk_task *lurk_rt_spawn(struct lurk_rt *rt, lua_State *L, int nargs, bool fatal)
{
    struct lurk_task *t = calloc(1, sizeof *t), **box;
    lua_State *co;

    if (!t)
        luaL_error(L, "out of memory");
    co = lua_newthread(L);
    lua_insert(L, -(nargs + 2));      /* the thread goes under function and args */
    lua_xmove(L, co, nargs + 1);
    t->rt = rt;
    t->co_ref = lurk_pin(rt, L, -1);
    lua_pop(L, 1);
    t->result_ref = LUA_NOREF;
    t->co = co;
    t->nargs = nargs;
    t->fatal = fatal;
    t->refs = 2;                      /* not finished + its Lua object */
    t->state = T_READY;
    t->next = SCHED(rt)->tasks;
    if (SCHED(rt)->tasks)
        SCHED(rt)->tasks->prev = t;
    SCHED(rt)->tasks = t;
    SCHED(rt)->live++;

    box = lua_newuserdata(L, sizeof *box);
    *box = t;
    luaL_getmetatable(L, TASK_MT);
    lua_setmetatable(L, -2);
    t->box = box;
    t->self_ref = lurk_pin(rt, L, -1);   /* lurk.current() gives it back */
    resume(t);
    return t;
}

int lurk_rt_run(struct lurk_rt *rt, int mode)
{
    for (;;) {
        bool block;
        int rc;

        /* Tasks woken by tasks (a channel, a join) run before the kernel is
         * entered again: a WebSocket reader handing a message to the script
         * must not cost an io_uring_enter of its own. A few passes at most,
         * so tasks that keep waking each other still let I/O in. */
        for (int pass = 0; pass < 4; pass++) {
            run_ready(rt);
            if (!SCHED(rt)->runq || lurk_rt_failed(rt))
                break;
        }
        if (lurk_rt_failed(rt))
            return -LURK_ESCRIPT;
        if (mode == LURK_RT_DEFAULT && SCHED(rt)->live == 0)
            return 0;
        block = SCHED(rt)->runq == NULL && mode != LURK_RT_NOWAIT;
        if (block && lurk_loop_in_flight(lurk_rt_loop(rt)) == 0) {
            if (mode != LURK_RT_DEFAULT)
                return SCHED(rt)->live;
            char msg[160];

            snprintf(msg, sizeof msg, "deadlock: %d task(s) wait on joins, channels or "
                     "semaphores that nothing can complete", SCHED(rt)->live);
            lurk_rt_note(rt, msg);
            return -LURK_EDEADLK;
        }
        rc = lurk_loop_turn(lurk_rt_loop(rt), block);
        if (rc < 0 && rc != -EINTR)
            return rc;
        if (mode != LURK_RT_DEFAULT) {
            run_ready(rt);
            lurk_loop_flush(lurk_rt_loop(rt));   /* the host polls next: submit what ran */
            return lurk_rt_failed(rt) ? -LURK_ESCRIPT : SCHED(rt)->live;
        }
    }
}

/* ---- waits built on parking ---- */

static int park_results(lua_State *L, void *ud, int res)
{
    struct lurk_task *t = ud;

    t->parked = PARK_NONE;
    lurk_task_unjoin(t);              /* a join that timed out or was cancelled */
    if (res < 0) {
        lua_pop(L, t->nret);
        t->nret = 0;
        if (res == -ETIMEDOUT && lurk_task_timeout_error(L, t, "wait", t->park_what, t->park_deadline,
                                                         t->park_timeout))
            return 2;
        return lurk_lua_error(L, res, "wait", NULL);
    }
    res = t->nret;
    t->nret = 0;
    return res;
}

static int sleep_results(lua_State *L, void *ud, int res)
{
    struct lurk_task *t = ud;

    if (res == -ETIMEDOUT && lurk_task_timeout_error(L, t, "wait", "lurk.sleep", t->deadline, 0))
        return 2;
    if (res < 0)
        return lurk_lua_error(L, res, "wait", NULL);
    lua_pushboolean(L, 1);
    return 1;
}

static void park_cancel(void *ud)
{
    struct lurk_task *t = ud;

    if (t->parked != PARK_NONE)
        lurk_task_unpark(t, -ECANCELED);
}

const struct lurk_waiter lurk_park_waiter = { park_results, park_cancel, NULL };
const struct lurk_waiter lurk_sleep_waiter = { sleep_results, park_cancel, NULL };

static void timer_done(struct lurk_op *op, int res)
{
    struct lurk_task *t = op->arg;

    if (t->timer == op) {
        t->timer = NULL;
        if (res == -ETIME && t->parked != PARK_NONE) {
            t->parked = PARK_NONE;
            lurk_task_wake(t, t->timer_ok ? 0 : -ETIMEDOUT);
        }
    }
    lurk_task_unref(t);
}

/* Parks t until unparked, cancelled, or `when` (0: never), which counts as
 * success if when_ok and as a timeout otherwise. */
int lurk_task_park(lua_State *L, struct lurk_task *t, enum park kind, int64_t when, bool when_ok,
                   const struct lurk_waiter *w)
{
    t->parked = kind;
    t->nret = 0;
    t->timer_ok = when_ok;
    t->park_deadline = when;
    if (when) {
        t->timer = lurk_op_new(lurk_rt_loop(t->rt), timer_done, t);
        t->refs++;
        lurk_op_timer(lurk_rt_loop(t->rt), t->timer, when);
    }
    return lurk_task_wait(L, t, w, t);
}

void lurk_task_cancel(struct lurk_task *t)
{
    if (t->state == T_DONE)
        return;
    t->cancelled = true;
    if (t->state == T_WAITING && t->w && t->w->cancel)
        t->w->cancel(t->wud);
}

bool lurk_rt_ready(const struct lurk_rt *rt)
{
    return SCHED(rt)->runq != NULL || lurk_loop_unsubmitted(lurk_rt_loop(rt)) > 0;
}

/* ---- runtime lifetime helpers used by runtime.c ---- */

struct lurk_sched *lurk_sched_new(void)
{
    return calloc(1, sizeof(struct lurk_sched));
}

void lurk_rt_release_tasks(struct lurk_rt *rt)
{
    if (!SCHED(rt))
        return;
    for (struct lurk_task *t = SCHED(rt)->tasks; t; t = t->next) {
        if (t->w && t->state != T_DONE) {
            const struct lurk_waiter *w = t->w;

            t->w = NULL;
            if (w->release)
                w->release(t->wud);
        }
    }
}

void lurk_sched_free(struct lurk_sched *s)
{
    if (!s)
        return;
    while (s->tasks) {
        struct lurk_task *t = s->tasks;

        s->tasks = t->next;
        /* A host's state may outlive the runtime, and the task's object
         * with it: its finalizer must find nothing to release. */
        if (t->box)
            *t->box = NULL;
        free(t);
    }
    free(s);
}

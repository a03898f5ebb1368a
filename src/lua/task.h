/*
 * task.h - the task scheduler (the runtime object itself is rt.h's).
 *
 * A task is a Lua coroutine plus a struct lurk_task. A yielding C function
 * starts an asynchronous operation whose callback is lurk_task_wake, then
 * returns lurk_task_wait(): the coroutine yields, and once the completion
 * arrives the scheduler calls the waiter's results function on the coroutine
 * and resumes it with what that function pushed. Completions never resume Lua
 * directly; the scheduler resumes tasks only from its top level.
 */
#ifndef LURK_LUA_TASK_H
#define LURK_LUA_TASK_H

#include "lua/rt.h"

#include <lua.h>
#include <stdbool.h>
#include <stdint.h>

struct lurk_task;

/* How a C function waits: what to push on wake-up, how to stop early, what
 * to release afterwards. */
struct lurk_waiter {
    /* Pushes the call's results onto L and returns how many, or LURK_AGAIN
     * after starting another operation on the same task (keeps waiting). */
    int (*results)(lua_State *L, void *ud, int res);
    /* Asks the pending operation to end; it then completes with -ECANCELED. */
    void (*cancel)(void *ud);
    /* Drops what the wait pinned (may be NULL). Runs once, after results or
     * when the runtime is torn down with the task still waiting. */
    void (*release)(void *ud);
};

#define LURK_AGAIN (-1)

/* Seconds an operation may take unless the script says otherwise (tcp,
 * http and ws alike; the Lua modules read it as the private table's options.timeout). */
#define LURK_DEFAULT_TIMEOUT 30.0

/* The running task, for a call that may wait; raises a Lua error naming fn
 * when called outside one, or where the task cannot be suspended (from
 * inside a C function such as a host's or table.sort's comparator).
 * lurk_rt_task is the same for a runtime already at hand (a socket's). */
struct lurk_task *lurk_lua_task(lua_State *L, const char *fn);
struct lurk_task *lurk_rt_task(lua_State *L, struct lurk_rt *rt, const char *fn);

/*
 * Spawns the function at L's index -(nargs + 1) with the nargs values above
 * it (popping them all) and runs it until its first wait. Pushes the task
 * object. fatal: an error in it stops lurk_rt_run() (the main chunk).
 */
struct lurk_task *lurk_rt_spawn(struct lurk_rt *rt, lua_State *L, int nargs, bool fatal);

enum { LURK_RT_DEFAULT = 0, LURK_RT_ONCE = 1, LURK_RT_NOWAIT = 2 };

/*
 * Runs the loop. DEFAULT: until every task has finished (or a fatal task
 * failed: returns -LURK_ESCRIPT with rt->errmsg set). ONCE: one turn, blocking if
 * nothing is ready. NOWAIT: one turn without blocking. Returns the number of
 * tasks still alive, or a negative code.
 */
int lurk_rt_run(struct lurk_rt *rt, int mode);

/* Yields the running task until its operation calls lurk_task_wake(). Must
 * be the tail of a lua_CFunction: `return lurk_task_wait(...)`. If the
 * operation already completed, returns the results without yielding. */
int lurk_task_wait(lua_State *L, struct lurk_task *t, const struct lurk_waiter *w, void *ud);

/* Completion callback for task waits (arg is the task). */
void lurk_task_wake(void *task, int res);

/* 0, or -ECANCELED / -ETIMEDOUT when the task may not start another wait. */
int lurk_task_check(struct lurk_task *t);

/* The deadline for an operation of the task: the task's own (set by
 * lurk.timeout) or now + timeout_s if that is sooner (timeout_s <= 0: none). */
int64_t lurk_task_deadline(struct lurk_task *t, double timeout_s);

/* The same two, for a caller that has just read the clock (now:
 * lurk_now_ns()) and starts more than one operation at once. */
int lurk_task_check_at(struct lurk_task *t, int64_t now);
int64_t lurk_task_deadline_at(struct lurk_task *t, double timeout_s, int64_t now);

/*
 * For a wait of t that ended with -ETIMEDOUT: pushes nil and an error of
 * kind timeout whose message says what timed out and which deadline ended
 * it, and returns 2. what names the operation ("sock:receive from
 * host:port"); deadline is the one the wait had (lurk_task_deadline's
 * answer) and timeout_s the operation's own limit: "sock:receive from
 * host:port timed out after 0.3 s", or "... timed out: the lurk.timeout
 * deadline of 1 s passed" when the task's deadline came first. err.timeout
 * is the limit in seconds. Returns 0 and pushes nothing when the deadline
 * has not passed (the -ETIMEDOUT came from the kernel, not from lurk).
 */
int lurk_task_timeout_error(lua_State *L, struct lurk_task *t, const char *phase, const char *what,
                            int64_t deadline, double timeout_s);

/* Requests cancellation: the pending wait ends with -ECANCELED, later waits
 * fail at once. */
void lurk_task_cancel(struct lurk_task *t);

/* Tasks ready to run, or operations not yet submitted: a host polling
 * lurk_fd must not block before running the loop once more. */
bool lurk_rt_ready(const struct lurk_rt *rt);

/*
 * For rt.c: the scheduler's state of one runtime (NULL when out of memory);
 * releasing what waiting tasks pinned (before the ring is drained); freeing
 * the state and the task records (after).
 */
struct lurk_sched *lurk_sched_new(void);
void lurk_rt_release_tasks(struct lurk_rt *rt);
void lurk_sched_free(struct lurk_sched *s);

#endif

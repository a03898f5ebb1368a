/*
 * task.h - the runtime and its task scheduler.
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

#include <lua.h>
#include <stdbool.h>
#include <stdint.h>

struct lurk_loop;
struct lurk_resolver;
struct lurk_task;
struct lurk_tls_ctx;

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
 * http and ws alike; the Lua modules read it as lurk._options.timeout). */
#define LURK_DEFAULT_TIMEOUT 30.0

struct lurk_rt {
    lua_State *L;
    struct lurk_loop *loop;
    struct lurk_resolver *resolver;
    struct lurk_tls_ctx *tls;         /* RNG and CA bundle, set up lazily */
    struct lurk_task *current;        /* the task whose coroutine runs now */
    struct lurk_task *runq, *runq_tail;
    struct lurk_task *tasks;          /* every task not yet freed */
    int live;                         /* tasks not finished */
    bool closing;
    bool failed;                      /* a task marked fatal raised an error */
    char *errmsg;                     /* its message and traceback */
    bool owns_L;                      /* false: a host's state (require "lurk") */
    int ktls;                         /* default enum lurk_ktls_policy */
    struct lurk_rt **upbox;           /* the lurk.* functions' upvalue */
    int pins_ref;                     /* the pins table (lurk_pin) */
    int *free_pins, nfree_pins, cap_free_pins, npins;
};

struct lurk_rt_opts {
    bool globals;                     /* modules also as globals (lurk, http, ...) */
    int ktls;                         /* enum lurk_ktls_policy; < 0: from LURK_KTLS */
    const char *ca_file;              /* trust store; NULL: SSL_CERT_FILE or the system's */
    const char *trace;                /* LURK_TRACE-style flags; NULL: from LURK_TRACE */
};

/* Creates a runtime: ring, resolver, and lurk's modules in L (NULL: a new
 * Lua state that the runtime owns). On a script error during set-up,
 * *errmsg (to free()) says what failed. */
int lurk_rt_new(struct lurk_rt **out, lua_State *L, const struct lurk_rt_opts *o, char **errmsg);

/* Cancels every operation, closes the Lua state if it owns it and frees
 * everything. */
void lurk_rt_free(struct lurk_rt *rt);

/* The runtime of a Lua state set up by lurk_rt_new, or NULL. */
struct lurk_rt *lurk_rt_get(lua_State *L);

/*
 * Pins keep a Lua value alive while C needs it (a string the kernel is
 * sending, a socket with an operation in flight), like luaL_ref but cheaper
 * on the request path: slots of one array, free slots on a C stack.
 * lurk_pin pins the value at idx and returns the pin (> 0); lurk_pinned
 * pushes a pinned value; lurk_unpin lets it go (pins <= 0, LUA_NOREF, are
 * ignored).
 */
int lurk_pin(struct lurk_rt *rt, lua_State *L, int idx);
void lurk_pinned(struct lurk_rt *rt, lua_State *L, int pin);
void lurk_unpin(struct lurk_rt *rt, int pin);

/* The running task; raises a Lua error naming fn when called outside one.
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

/* Requests cancellation: the pending wait ends with -ECANCELED, later waits
 * fail at once. */
void lurk_task_cancel(struct lurk_task *t);

/* Tasks ready to run, or operations not yet submitted: a host polling
 * lurk_fd must not block before running the loop once more. */
bool lurk_rt_ready(const struct lurk_rt *rt);

/* For runtime.c: binds rt to L (NULL unbinds); releases what waiting tasks
 * pinned (before the ring is drained); frees the task records (after). */
void lurk_rt_set_key(lua_State *L, struct lurk_rt *rt);
void lurk_rt_release_tasks(struct lurk_rt *rt);
void lurk_rt_free_tasks(struct lurk_rt *rt);

#endif

/*
 * task_int.h - the scheduler's records, shared by task.c (the scheduler)
 * and lurk.c (the lurk.* functions and the task object built on it).
 * Nothing else includes it.
 */
#ifndef LURK_LUA_TASK_INT_H
#define LURK_LUA_TASK_INT_H

#include "lua/task.h"

#include <lua.h>
#include <stdbool.h>
#include <stdint.h>

struct lurk_op;

enum state { T_READY, T_RUNNING, T_WAITING, T_DONE };
enum park { PARK_NONE, PARK_LUA, PARK_SLEEP, PARK_JOIN };

/* The scheduler's state of one runtime (rt.c holds it, opaque). */
struct lurk_sched {
    struct lurk_task *current;        /* the task whose coroutine runs now */
    struct lurk_task *runq, *runq_tail;
    struct lurk_task *tasks;          /* every task not yet freed */
    int live;                         /* tasks not finished */
};

struct lurk_task {
    struct lurk_rt *rt;
    lua_State *co;
    int co_ref, result_ref;
    int self_ref;                     /* its Lua object (lurk.spawn's), pinned until it finishes */
    struct lurk_task **box;           /* that object's pointer here; NULL once it is collected */
    int refs;
    enum state state;
    enum park parked;
    bool queued, fatal, cancelled, early, timer_ok;
    const struct lurk_waiter *w;
    void *wud;
    int res;                          /* result handed to lurk_task_wake */
    int nargs;                        /* values on co for its first resume */
    int nret;                         /* values an unparker left on co */
    int64_t deadline;
    int64_t label_at;                 /* the deadline lurk.timeout set last, */
    double label_s;                   /* and its length, for messages */
    int64_t park_deadline;            /* the current park's end, */
    double park_timeout;              /* its own timeout (0: none), */
    char park_what[24];               /* and what waits ("semaphore:acquire") */
    struct lurk_op *timer;
    struct lurk_task *join_target;    /* the task this one is joining, */
    struct lurk_task *join_prev, *join_next;   /* in its joiners list */
    struct lurk_task *joiners;        /* tasks joining this one (unlinked in O(1)) */
    struct lurk_task *next_run;
    struct lurk_task *prev, *next;    /* sched->tasks */
};

#define TASK_MT "lurk.task"
#define SCHED(rt) lurk_rt_sched(rt)

/* The address the yields of lurk's waiting calls carry (task.c). */
extern char lurk_yield_key;

/* A reference on t dropped; the last frees it. */
void lurk_task_unref(struct lurk_task *t);

/* t goes to the back of the run queue (inline: every wake-up does it). */
static inline void lurk_task_queue(struct lurk_task *t)
{
    struct lurk_rt *rt = t->rt;

    t->state = T_READY;
    if (t->queued)
        return;
    t->queued = true;
    t->next_run = NULL;
    if (SCHED(rt)->runq_tail)
        SCHED(rt)->runq_tail->next_run = t;
    else
        SCHED(rt)->runq = t;
    SCHED(rt)->runq_tail = t;
}

/* Pushes a finished task's results (true, values | false, err); returns how many. */
int lurk_task_push_results(lua_State *L, struct lurk_task *t);

/* Links t (running) into target's joiners, holding a reference on target
 * until the join ends; lurk_task_unjoin ends it (either side may). */
void lurk_task_join(struct lurk_task *t, struct lurk_task *target);
void lurk_task_unjoin(struct lurk_task *t);

/* Ends t's park with res (0: values were left on its coroutine). */
void lurk_task_unpark(struct lurk_task *t, int res);

/* The task object at idx (raises otherwise). */
struct lurk_task *lurk_check_task(lua_State *L, int idx);

/*
 * Parks the running task t: kind says why, when its absolute deadline
 * (when_ok: reaching it is the wait's normal end, as for sleep). The tail
 * of a lua_CFunction, like lurk_task_wait.
 */
int lurk_task_park(lua_State *L, struct lurk_task *t, enum park kind, int64_t when, bool when_ok,
                   const struct lurk_waiter *w);
extern const struct lurk_waiter lurk_park_waiter, lurk_sleep_waiter;

#endif

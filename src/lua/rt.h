/*
 * rt.h - the runtime: one ring, one resolver, one TLS context and one Lua
 * state, with lurk's modules loaded in it. Opaque: the bindings reach what
 * they need through the accessors below, the scheduler keeps its own state
 * (task.c's struct lurk_sched) and a fatal task's failure is handed over
 * through the error functions.
 */
#ifndef LURK_LUA_RT_H
#define LURK_LUA_RT_H

#include <lua.h>
#include <stdbool.h>

struct lurk_loop;
struct lurk_resolver;
struct lurk_rt;
struct lurk_sched;
struct lurk_tls_ctx;

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
 * What the scheduler reads on every wake-up and resume: the first member of
 * rt.c's struct lurk_rt (as struct lurk_stream is of a socket), so these
 * accessors inline; the rest of the runtime is rt.c's alone.
 */
struct lurk_rt_head {
    lua_State *L;
    struct lurk_loop *loop;
    struct lurk_sched *sched;         /* task.c's */
    bool closing;                     /* being torn down: wake nothing */
};

static inline lua_State *lurk_rt_lua(const struct lurk_rt *rt)
{
    return ((const struct lurk_rt_head *)rt)->L;
}

static inline struct lurk_loop *lurk_rt_loop(const struct lurk_rt *rt)
{
    return ((const struct lurk_rt_head *)rt)->loop;
}

static inline struct lurk_sched *lurk_rt_sched(const struct lurk_rt *rt)
{
    return ((const struct lurk_rt_head *)rt)->sched;
}

static inline bool lurk_rt_closing(const struct lurk_rt *rt)
{
    return ((const struct lurk_rt_head *)rt)->closing;
}

/* What else the runtime is made of. */
struct lurk_resolver *lurk_rt_resolver(const struct lurk_rt *rt);
struct lurk_tls_ctx *lurk_rt_tls(const struct lurk_rt *rt);
int lurk_rt_ktls(const struct lurk_rt *rt);      /* the default enum lurk_ktls_policy */

/* The lurk.* functions' shared upvalue, cleared when the runtime goes (the
 * functions may outlive it in a host's Lua state). */
void lurk_rt_set_upbox(struct lurk_rt *rt, struct lurk_rt **box);

/*
 * Error hand-off. lurk_rt_fail() records that a fatal task (the main chunk)
 * failed, with its message and traceback; lurk_rt_note() records a message
 * without failing (the deadlock report). lurk_rt_failed()/lurk_rt_errmsg()
 * read them; lurk_rt_clear_failure() forgets the failure once reported (the
 * runtime stays usable).
 */
void lurk_rt_fail(struct lurk_rt *rt, const char *msg);
void lurk_rt_note(struct lurk_rt *rt, const char *msg);
bool lurk_rt_failed(const struct lurk_rt *rt);
const char *lurk_rt_errmsg(const struct lurk_rt *rt);
void lurk_rt_clear_failure(struct lurk_rt *rt);

/*
 * Uncaught errors of tasks that are not fatal (spawned ones): the scheduler
 * hands their message and traceback to lurk_rt_task_error(), which calls the
 * handler set with lurk_rt_set_error_handler() (fn NULL: print to stderr,
 * the default). The handler runs inside the scheduler, on no Lua stack of
 * its own; msg is valid only during the call.
 */
typedef void lurk_rt_error_cb(void *ud, const char *msg);
void lurk_rt_set_error_handler(struct lurk_rt *rt, lurk_rt_error_cb *fn, void *ud);
void lurk_rt_task_error(struct lurk_rt *rt, const char *msg);

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

#endif

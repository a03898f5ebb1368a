/*
 * lurk.h - the embedding API of lurk, a Lua-scriptable networking runtime.
 *
 * A struct lurk is one runtime: an io_uring loop, a LuaJIT state with lurk's
 * modules, and the tasks running in it. Use a runtime from one thread only;
 * several runtimes, each in its own thread, may run in one process.
 *
 * Every function that can fail returns an int: >= 0 on success, a negative
 * code on failure (-errno, or one of lurk's own codes); lurk_errmsg() then
 * says what happened, with a Lua traceback for script errors.
 */
#ifndef LURK_H
#define LURK_H

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define LURK_API __attribute__((visibility("default")))
#else
#define LURK_API
#endif

struct lurk;
struct lua_State;

#define LURK_VERSION "0.1.0"

/*
 * lurk's own error codes, returned negated (-LURK_ESCRIPT) like -errno
 * values, which they never collide with; lurk_strerror() gives the message.
 * The functions below return ESCRIPT, EDEADLK and -errno values; the others
 * reach scripts as err.name and are listed so every code has a name here.
 * (lurk's own sources get the same enum from src/core/error.h.)
 */
#ifndef LURK_CORE_ERROR_H
enum {
    LURK_ECLOSED = 4097,              /* the object was closed while the operation waited */
    LURK_EEOF = 4098,                 /* the peer closed the stream before the data asked for */
    LURK_ELIMIT = 4099,               /* a configured size limit was exceeded */
    LURK_EDNS_NOTFOUND = 4100,        /* the name does not exist, or has no address */
    LURK_EDNS_TIMEOUT = 4101,         /* no DNS server answered in time */
    LURK_EDNS_FAIL = 4102,            /* the DNS server failed or refused */
    LURK_EDNS_NOSERVER = 4103,        /* no usable DNS server is configured */
    LURK_ETLS = 4104,                 /* TLS failure */
    LURK_EHTTP = 4105,                /* HTTP protocol violation by the peer */
    LURK_EWS = 4106,                  /* WebSocket protocol violation by the peer */
    LURK_EPROTO = 4107,               /* other protocol violation */
    LURK_ESCRIPT = 4108,              /* a script failed to load or raised an error */
    LURK_EDEADLK = 4109,              /* every task waits on something no task can provide */
};
#endif

/* Options for lurk_new(); a zeroed struct (or NULL) gives the defaults. */
struct lurk_options {
    unsigned flags;                   /* LURK_OPT_* */
    int ktls;                         /* LURK_KTLS_*: kTLS policy for TLS connections */
    const char *ca_file;              /* PEM trust store; NULL: SSL_CERT_FILE, SSL_CERT_DIR
                                         or the system bundle */
    const char *trace;                /* e.g. "http": trace requests to stderr; NULL: the
                                         LURK_TRACE environment variable */
};

/* Also expose the modules as globals (lurk, tcp, http, https, ws, json), as
 * the lurk program does. Without it scripts use require "lurk",
 * require "lurk.http", ... (always available). */
#define LURK_OPT_GLOBALS 1u

#define LURK_KTLS_ENV 0               /* from LURK_KTLS (auto when unset) */
#define LURK_KTLS_AUTO 1              /* kTLS when the kernel can, else userspace */
#define LURK_KTLS_OFF 2               /* always userspace TLS */
#define LURK_KTLS_REQUIRE 3           /* fail connections kTLS cannot carry */

/* Creates a runtime. On failure *out is NULL and the code says why; see
 * lurk_strerror_setup() for a sentence to show users. */
LURK_API int lurk_new(struct lurk **out, const struct lurk_options *opts);

/* Cancels everything still running and frees the runtime. NULL is a no-op. */
LURK_API void lurk_free(struct lurk *l);

/* A sentence explaining why lurk_new() failed with rc (e.g. io_uring off). */
LURK_API const char *lurk_strerror_setup(int rc);

/*
 * Loads a Lua file (path NULL: standard input) and starts it as a task with
 * the argc strings of argv as its arguments (`...`), running it until it
 * first waits. An error in that task makes lurk_run() fail. Returns 0, or a
 * negative code if the file cannot be loaded (syntax error, missing file).
 */
LURK_API int lurk_do_file(struct lurk *l, const char *path, int argc, char **argv);

/* The same for a string of code; name appears in error messages. */
LURK_API int lurk_do_string(struct lurk *l, const char *code, const char *name);

#define LURK_RUN_DEFAULT 0            /* until every task has finished */
#define LURK_RUN_ONCE 1               /* one turn, waiting if nothing is ready */
#define LURK_RUN_NOWAIT 2             /* one turn, never waiting */

/*
 * Runs the loop. DEFAULT returns 0 when every task has finished; ONCE and
 * NOWAIT return the number of tasks still alive. A failed main task (one
 * started by lurk_do_file/lurk_do_string) makes it return -LURK_ESCRIPT,
 * with lurk_errmsg() holding the error and its traceback; DEFAULT returns
 * -LURK_EDEADLK when every remaining task waits on something no task can
 * provide. Called from inside Lua code the runtime is running (a host
 * function), it does nothing and returns -EBUSY.
 */
LURK_API int lurk_run(struct lurk *l, int mode);

/*
 * Uncaught errors in tasks that scripts spawn (lurk.spawn) do not fail
 * lurk_run; by default lurk prints them to stderr. A handler set here gets
 * them instead: msg is the error message with its traceback, valid during
 * the call only. The handler runs inside lurk_run (or lurk_do_file/
 * lurk_do_string): it may record, log or schedule work, but not call
 * lurk_run (which returns -EBUSY there). fn NULL restores the default.
 * Errors of main tasks are reported by lurk_run as before.
 */
typedef void lurk_error_cb(struct lurk *l, const char *msg, void *ud);
LURK_API void lurk_set_error_handler(struct lurk *l, lurk_error_cb *fn, void *ud);

/* The runtime's Lua state, to register host functions and modules. */
LURK_API struct lua_State *lurk_lua(struct lurk *l);

/*
 * For hosts that drive lurk from their own poll loop: lurk_fd() becomes
 * readable when lurk has completions to process (I/O, timers, DNS), and
 * lurk_timeout() is how long, in milliseconds, the host may wait on it before
 * calling lurk_run(l, LURK_RUN_NOWAIT): 0 when tasks are ready to run or
 * work started from Lua outside lurk_run is not yet submitted, -1 when only
 * the descriptor matters. The host never reads the descriptor.
 *
 *     struct epoll_event ev = { .events = EPOLLIN };
 *     epoll_ctl(ep, EPOLL_CTL_ADD, lurk_fd(l), &ev);
 *     while (lurk_run(l, LURK_RUN_NOWAIT) > 0)
 *         epoll_wait(ep, &ev, 1, lurk_timeout(l));
 */
LURK_API int lurk_fd(struct lurk *l);
LURK_API int lurk_timeout(struct lurk *l);

/* How the io_uring ring was set up, e.g. "single-issuer+defer-taskrun". */
LURK_API const char *lurk_features(struct lurk *l);

/* The last error's message (never NULL; "" when there was none). */
LURK_API const char *lurk_errmsg(struct lurk *l);

/* A readable message for any negative code returned by lurk. */
LURK_API const char *lurk_strerror(int rc);

/*
 * The C module entry point: a stock luajit that finds lurk.so on its
 * package.cpath can `require "lurk"` (and "lurk.http", "lurk.ws", ...). The
 * runtime then lives in that Lua state, created with the default options,
 * and Lua code drives it with lurk.run(fn, ...), which runs fn as a task
 * until every task has finished. It is freed when the state is closed.
 */
LURK_API int luaopen_lurk(struct lua_State *L);

#ifdef __cplusplus
}
#endif

#endif

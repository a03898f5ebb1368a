/*
 * api.c - the embedding API (include/lurk.h) over the runtime in src/lua.
 *
 * Scripts given to lurk_do_file/lurk_do_string run as "fatal" tasks: their
 * error ends lurk_run() with -LURK_ESCRIPT and the traceback in errmsg.
 *
 * Lua code runs only inside lurk_run, lurk_do_file and lurk_do_string, and a
 * host function it calls is on top of the scheduler's C stack: a nested
 * lurk_run would resume tasks under a task that is still running (and reap
 * completions its caller is halfway through), so it is refused.
 */
#include "core/error.h"              /* first: lurk.h defines the codes otherwise */
#include "lurk.h"
#include "lua/task.h"
#include "core/loop.h"
#include "tls/tls.h"

#include <errno.h>
#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct lurk {
    struct lurk_rt *rt;
    char *errmsg;
    int depth;                        /* lurk_run/do_file/do_string calls under way */
    lurk_error_cb *on_error;
    void *on_error_ud;
};

static void set_err(struct lurk *l, const char *msg)
{
    free(l->errmsg);
    l->errmsg = msg ? strdup(msg) : NULL;
}

static const int ktls_policy[] = {
    [LURK_KTLS_AUTO] = LURK_TLS_KTLS_AUTO,
    [LURK_KTLS_OFF] = LURK_TLS_KTLS_OFF,
    [LURK_KTLS_REQUIRE] = LURK_TLS_KTLS_REQUIRE,
};

int lurk_new(struct lurk **out, const struct lurk_options *opts)
{
    struct lurk *l = calloc(1, sizeof *l);
    struct lurk_rt_opts ro = { .ktls = -1 };
    char *msg = NULL;
    int rc;

    *out = NULL;
    if (!l)
        return -ENOMEM;
    if (opts && (opts->ktls < LURK_KTLS_ENV || opts->ktls > LURK_KTLS_REQUIRE)) {
        free(l);
        return -EINVAL;
    }
    if (opts) {
        ro.globals = opts->flags & LURK_OPT_GLOBALS;
        ro.ca_file = opts->ca_file;
        ro.trace = opts->trace;
        if (opts->ktls != LURK_KTLS_ENV)
            ro.ktls = ktls_policy[opts->ktls];
    }
    rc = lurk_rt_new(&l->rt, NULL, &ro, &msg);
    if (rc < 0) {
        /* Only a broken build gets here (lurk's own modules failed to
         * load): the one place the reason can still be shown. */
        if (msg)
            fprintf(stderr, "lurk: setting up lurk's Lua modules failed: %s\n", msg);
        free(msg);
        free(l);
        return rc;
    }
    *out = l;
    return 0;
}

void lurk_free(struct lurk *l)
{
    if (!l)
        return;
    lurk_rt_free(l->rt);
    free(l->errmsg);
    free(l);
}

const char *lurk_strerror_setup(int rc)
{
    return lurk_loop_explain(rc);
}

/* Starts the loaded chunk (with nargs arguments above it) as a fatal task. */
static int start(struct lurk *l, int nargs)
{
    l->depth++;
    lurk_rt_spawn(l->rt, lurk_rt_lua(l->rt), nargs, true);
    l->depth--;
    lua_pop(lurk_rt_lua(l->rt), 1);   /* the task object */
    if (lurk_rt_failed(l->rt)) {
        set_err(l, lurk_rt_errmsg(l->rt));
        lurk_rt_clear_failure(l->rt);
        return -LURK_ESCRIPT;
    }
    return 0;
}

int lurk_do_file(struct lurk *l, const char *path, int argc, char **argv)
{
    lua_State *L = lurk_rt_lua(l->rt);

    if (luaL_loadfile(L, path) != 0) {
        set_err(l, lua_tostring(L, -1));
        lua_pop(L, 1);
        return -LURK_ESCRIPT;
    }
    luaL_checkstack(L, argc, "too many arguments");
    for (int i = 0; i < argc; i++)
        lua_pushstring(L, argv[i]);
    return start(l, argc);
}

int lurk_do_string(struct lurk *l, const char *code, const char *name)
{
    lua_State *L = lurk_rt_lua(l->rt);

    if (luaL_loadbuffer(L, code, strlen(code), name) != 0) {
        set_err(l, lua_tostring(L, -1));
        lua_pop(L, 1);
        return -LURK_ESCRIPT;
    }
    return start(l, 0);
}

int lurk_run(struct lurk *l, int mode)
{
    int rc;

    if (l->depth > 0) {
        set_err(l, "lurk_run called from inside Lua code the runtime is running (a host "
                "function a script called); return to the host's loop and run from there");
        return -EBUSY;
    }
    l->depth++;
    rc = lurk_rt_run(l->rt, mode);
    l->depth--;

    if (rc == -LURK_ESCRIPT) {
        set_err(l, lurk_rt_errmsg(l->rt));
        lurk_rt_clear_failure(l->rt); /* reported once; the runtime goes on */
        return -LURK_ESCRIPT;
    }
    if (rc < 0)
        set_err(l, rc == -LURK_EDEADLK && lurk_rt_errmsg(l->rt) ? lurk_rt_errmsg(l->rt) : lurk_strerror(rc));
    return rc;
}

static void call_error_handler(void *ud, const char *msg)
{
    struct lurk *l = ud;

    l->on_error(l, msg, l->on_error_ud);
}

void lurk_set_error_handler(struct lurk *l, lurk_error_cb *fn, void *ud)
{
    l->on_error = fn;
    l->on_error_ud = ud;
    lurk_rt_set_error_handler(l->rt, fn ? call_error_handler : NULL, l);
}

struct lua_State *lurk_lua(struct lurk *l)
{
    return lurk_rt_lua(l->rt);
}

int lurk_fd(struct lurk *l)
{
    return lurk_loop_fd(lurk_rt_loop(l->rt));
}

int lurk_timeout(struct lurk *l)
{
    return lurk_rt_ready(l->rt) ? 0 : -1;
}

const char *lurk_errmsg(struct lurk *l)
{
    return l->errmsg ? l->errmsg : "";
}

const char *lurk_features(struct lurk *l)
{
    return lurk_loop_features(lurk_rt_loop(l->rt));
}

/*
 * api_test.c - the embedding API's contract, from a host's side: it sees
 * only include/lurk.h (and lua.h), as an installed host would.
 *
 *   - every code a function returns has its name in lurk.h, with the value
 *     lurk_strerror() knows it by;
 *   - uncaught errors of spawned tasks go to the host's handler, not stderr;
 *   - lurk_run from inside a host function is refused and the loop goes on;
 *   - a waiting call made under a C function raises with a hint.
 *
 * No network: lurk.sleep is the only waiting call. Exit 0 when all pass.
 */
#define _GNU_SOURCE
#include <lurk.h>

#include <errno.h>
#include <lauxlib.h>
#include <lua.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int failures;

#define CHECK(cond, ...)                                                                  \
    do {                                                                                  \
        if (!(cond)) {                                                                    \
            fprintf(stderr, "%s:%d: FAIL: %s: ", __FILE__, __LINE__, #cond);              \
            fprintf(stderr, __VA_ARGS__);                                                 \
            fputc('\n', stderr);                                                          \
            failures++;                                                                   \
        }                                                                                 \
    } while (0)

static struct lurk *new_runtime(void)
{
    struct lurk *l;
    int rc = lurk_new(&l, NULL);

    if (rc < 0) {
        fprintf(stderr, "lurk_new: %s: %s\n", lurk_strerror(rc), lurk_strerror_setup(rc));
        exit(77);                     /* no io_uring here: skip */
    }
    return l;
}

/* ---- codes ---- */

static void test_codes(void)
{
    static const struct {
        int code;
        const char *msg;
    } codes[] = {
        { LURK_ECLOSED, "closed" },
        { LURK_EEOF, "connection closed by peer before the expected data" },
        { LURK_ELIMIT, "size limit exceeded" },
        { LURK_EDNS_NOTFOUND, "name not found" },
        { LURK_EDNS_TIMEOUT, "DNS server did not answer" },
        { LURK_EDNS_FAIL, "DNS lookup failed" },
        { LURK_EDNS_NOSERVER, "no DNS server configured" },
        { LURK_ETLS, "TLS error" },
        { LURK_EHTTP, "HTTP protocol error" },
        { LURK_EWS, "WebSocket protocol error" },
        { LURK_EPROTO, "protocol error" },
        { LURK_ESCRIPT, "script error" },
        { LURK_EDEADLK, "deadlock: every task is waiting" },
    };
    struct lurk *l = new_runtime();
    int rc;

    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++)
        CHECK(strcmp(lurk_strerror(-codes[i].code), codes[i].msg) == 0, "%d is \"%s\", lurk.h says \"%s\"",
              codes[i].code, lurk_strerror(-codes[i].code), codes[i].msg);
    CHECK(LURK_ESCRIPT > 4095, "lurk's codes lie above errno values");

    rc = lurk_do_string(l, "error('compile me')", "=codes");
    CHECK(rc == -LURK_ESCRIPT, "a script error is -LURK_ESCRIPT, got %d", rc);
    rc = lurk_do_string(l, "local lurk = require 'lurk' lurk.channel():recv()", "=stuck");
    CHECK(rc == 0, "a stuck script starts: %d %s", rc, lurk_errmsg(l));
    rc = lurk_run(l, LURK_RUN_DEFAULT);
    CHECK(rc == -LURK_EDEADLK, "a deadlock is -LURK_EDEADLK, got %d (%s)", rc, lurk_errmsg(l));
    lurk_free(l);
}

/* ---- the error handler ---- */

struct seen {
    int calls;
    char last[4096];
    struct lurk *l;
    int nested_run;                   /* what lurk_run returned inside the handler */
};

static void on_error(struct lurk *l, const char *msg, void *ud)
{
    struct seen *s = ud;

    s->calls++;
    s->l = l;
    snprintf(s->last, sizeof s->last, "%s", msg);
    s->nested_run = lurk_run(l, LURK_RUN_NOWAIT);
}

/* Runs fn with stderr going to a file; returns what was written there. */
static char *capture_stderr(void (*fn)(void *), void *arg)
{
    FILE *tmp = tmpfile();
    int saved = dup(STDERR_FILENO);
    static char buf[8192];
    size_t n;

    fflush(stderr);
    dup2(fileno(tmp), STDERR_FILENO);
    fn(arg);
    fflush(stderr);
    dup2(saved, STDERR_FILENO);
    close(saved);
    rewind(tmp);
    n = fread(buf, 1, sizeof buf - 1, tmp);
    buf[n] = '\0';
    fclose(tmp);
    return buf;
}

static const char failing_tasks[] =
    "local lurk = require 'lurk'\n"
    "lurk.spawn(function() error('boom at once') end)\n"
    "lurk.spawn(function() lurk.sleep(0.01) error({ kind = 'custom' }) end)\n"
    "lurk.sleep(0.05)\n";

static void run_failing(void *arg)
{
    struct lurk *l = arg;
    int rc = lurk_do_string(l, failing_tasks, "=tasks");

    if (rc == 0)
        rc = lurk_run(l, LURK_RUN_DEFAULT);
    CHECK(rc == 0, "errors in spawned tasks do not fail lurk_run: %d %s", rc, lurk_errmsg(l));
}

static void test_error_handler(void)
{
    struct lurk *l = new_runtime();
    struct seen s = { 0 };
    char *err;

    lurk_set_error_handler(l, on_error, &s);
    err = capture_stderr(run_failing, l);
    CHECK(s.calls == 2, "the handler saw both errors: %d", s.calls);
    CHECK(s.l == l, "the handler is given its runtime");
    CHECK(strstr(s.last, "error object is a table") && strstr(s.last, "stack traceback"),
          "the message has its traceback: %s", s.last);
    CHECK(err[0] == '\0', "nothing on stderr with a handler: %s", err);
    CHECK(s.nested_run == -EBUSY, "lurk_run inside the handler is refused: %d", s.nested_run);

    lurk_set_error_handler(l, NULL, NULL);      /* back to stderr */
    s.calls = 0;
    err = capture_stderr(run_failing, l);
    CHECK(s.calls == 0, "a cleared handler is not called");
    CHECK(strstr(err, "error in task") && strstr(err, "boom at once"), "stderr again: %s", err);
    lurk_free(l);
}

/* ---- lurk_run from a host function ---- */

static struct lurk *current;

/* host.run() -> what lurk_run returned, lurk_errmsg() */
static int host_run(lua_State *L)
{
    int rc = lurk_run(current, LURK_RUN_NOWAIT);

    lua_pushinteger(L, rc);
    lua_pushstring(L, lurk_errmsg(current));
    return 2;
}

/* host.call(fn, ...) -> fn(...), called through lua_call: the task cannot
 * be suspended inside. */
static int host_call(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TFUNCTION);
    lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
    return lua_gettop(L);
}

static void add_host(struct lurk *l)
{
    static const luaL_Reg fns[] = { { "run", host_run }, { "call", host_call }, { NULL, NULL } };
    lua_State *L = lurk_lua(l);

    luaL_register(L, "host", fns);
    lua_pop(L, 1);
}

static const char reentry[] =
    "local lurk = require 'lurk'\n"
    "local ticks = 0\n"
    "local bg = lurk.spawn(function()\n"
    "  for _ = 1, 5 do lurk.sleep(0.002) ticks = ticks + 1 end\n"
    "  return 'bg done'\n"
    "end)\n"
    "lurk.sleep(0.001)\n"
    "local rc, msg = host.run()\n"
    "assert(rc < 0, 'host.run returned ' .. tostring(rc))\n"
    "result_rc, result_msg = rc, msg\n"
    "local ok, v = bg:join(2)\n"
    "assert(ok and v == 'bg done', 'the background task was disturbed: ' .. tostring(v))\n"
    "assert(ticks == 5)\n"
    "return 'main done'\n";

static void test_reentry(void)
{
    struct lurk *l = new_runtime();
    lua_State *L = lurk_lua(l);
    int rc;

    current = l;
    add_host(l);
    rc = lurk_do_string(l, reentry, "=reentry");
    CHECK(rc == 0, "the script starts: %s", lurk_errmsg(l));
    rc = lurk_run(l, LURK_RUN_DEFAULT);
    CHECK(rc == 0, "the loop finishes normally after the refused call: %d %s", rc, lurk_errmsg(l));
    lua_getglobal(L, "result_rc");
    CHECK(lua_tointeger(L, -1) == -EBUSY, "nested lurk_run returns -EBUSY: %d", (int)lua_tointeger(L, -1));
    lua_getglobal(L, "result_msg");
    CHECK(lua_isstring(L, -1) && strstr(lua_tostring(L, -1), "host function"),
          "lurk_errmsg says why: %s", lua_tostring(L, -1));
    lua_pop(L, 2);
    rc = lurk_run(l, LURK_RUN_NOWAIT);
    CHECK(rc == 0, "lurk_run works again from the host's own level: %d", rc);
    lurk_free(l);
}

/* ---- waiting under a C function ---- */

static const char under_c[] =
    "local lurk = require 'lurk'\n"
    "local function check(what, ok, err)\n"
    "  assert(not ok, what .. ' did not fail')\n"
    "  err = tostring(err)\n"
    "  assert(err:find('attempt to yield across C-call boundary', 1, true), what .. ': ' .. err)\n"
    "  assert(err:find('from the task\\'s own code', 1, true), what .. ' has no hint: ' .. err)\n"
    "  assert(err:find('lurk.sleep', 1, true), what .. ' does not name the call: ' .. err)\n"
    "end\n"
    "check('host function', pcall(host.call, function() lurk.sleep(0.01) end))\n"
    "check('table.sort', pcall(table.sort, { 3, 1, 2 }, function(a, b) lurk.sleep(0) return a < b end))\n"
    "check('gsub', pcall(string.gsub, 'ab', '%w', function() lurk.sleep(0.001) end))\n"
    "-- the task goes on normally afterwards (nothing was left in flight)\n"
    "assert(lurk.sleep(0.02) == true)\n"
    "assert(host.call(function(x) return x + 1 end, 41) == 42)\n"
    "done = true\n";

static void test_yield_hint(void)
{
    struct lurk *l = new_runtime();
    lua_State *L = lurk_lua(l);
    int rc;

    current = l;
    add_host(l);
    rc = lurk_do_string(l, under_c, "=under_c");
    if (rc == 0)
        rc = lurk_run(l, LURK_RUN_DEFAULT);
    CHECK(rc == 0, "waiting calls under C raise with a hint: %s", lurk_errmsg(l));
    lua_getglobal(L, "done");
    CHECK(lua_toboolean(L, -1), "the script ran to its end");
    lua_pop(L, 1);
    lurk_free(l);
}

int main(void)
{
    test_codes();
    test_error_handler();
    test_reentry();
    test_yield_hint();
    if (failures) {
        fprintf(stderr, "api_test: %d failure(s)\n", failures);
        return 1;
    }
    puts("api_test: ok");
    return 0;
}

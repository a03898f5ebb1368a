/*
 * repl.c - lurk's interactive prompt: libedit for line editing, lurk_fd()
 * for the loop, lua/repl.lua for reading chunks and showing values.
 *
 * The prompt is a host of the embedding API like any other: it polls
 * standard input and lurk_fd() together, so tasks started at the prompt (a
 * WebSocket reader, a periodic fetch) keep running while the user types.
 * Each complete chunk runs as a task; while it runs the prompt is down and
 * Ctrl-C cancels it (a count hook stops a chunk busy in Lua code; a second
 * Ctrl-C, when the first has not stopped it, ends the program).
 *
 * Without a terminal the same loop reads lines from standard input, with no
 * prompt or colors, one chunk after another; the exit status says whether
 * any failed.
 */
#include "repl.h"

#include <editline/readline.h>
#include <errno.h>
#include <lauxlib.h>
#include <lua.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lua_repl.h"                 /* luaJIT_BC_repl: lua/repl.lua, compiled */

#define HISTORY_MAX 1000
#define STUCK_MS 500                  /* a second Ctrl-C this much later exits */

struct repl {
    struct lurk *l;
    lua_State *L;
    int ref;                          /* the table lua/repl.lua returned */
    bool tty;
    bool prompting;                   /* libedit's line handler is installed */
    bool more;                        /* the chunk so far is incomplete */
    bool eof;
    bool hinted;                      /* said how to quit after a Ctrl-C */
    char *history;                    /* history file, or NULL */
    char *chunk;                      /* the lines of the chunk being read */
    char in[65536];                   /* non-terminal input not yet fed */
    size_t inlen;
    int errors;                       /* failures outside chunks */
};

static struct repl *repl;             /* libedit's callbacks take no context */
static volatile sig_atomic_t interrupted;
static lua_State *chunk_co;           /* the running chunk's coroutine, or NULL */
static int chunk_ref = LUA_NOREF;     /* keeps it alive while chunk_co names it */
static bool line_had_text;            /* Ctrl-C came with text on the line */

/* ---- calling the Lua half ---- */

/* Calls R[name] with nargs arguments on the stack; leaves nres results, or
 * none (and reports the error) if it raised. */
static bool call(struct repl *r, const char *name, int nargs, int nres)
{
    lua_State *L = r->L;

    lua_rawgeti(L, LUA_REGISTRYINDEX, r->ref);
    lua_getfield(L, -1, name);
    lua_remove(L, -2);
    lua_insert(L, -(nargs + 1));
    if (lua_pcall(L, nargs, nres, 0) != 0) {
        fprintf(stderr, "lurk: repl: %s\n", lua_tostring(L, -1));
        lua_pop(L, 1);
        return false;
    }
    return true;
}

static bool busy(struct repl *r)
{
    bool b = false;

    if (call(r, "busy", 0, 1)) {
        b = lua_toboolean(r->L, -1);
        lua_pop(r->L, 1);
    }
    return b;
}

/* ---- output that keeps the prompt intact ---- */

static int l_write(lua_State *L)
{
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);

    if (repl->prompting) {
        fputs("\r\033[K", stdout);    /* over the prompt line, then redraw it */
        fwrite(s, 1, n, stdout);
        fflush(stdout);
        rl_forced_update_display();
    } else {
        fwrite(s, 1, n, stdout);
        fflush(stdout);
    }
    return 0;
}

/* Uncaught errors of background tasks (lurk_set_error_handler): above the
 * prompt, which stays intact, with control characters escaped (the message
 * may quote a server). Without a terminal, on stderr as usual. */
static void on_task_error(struct lurk *l, const char *msg, void *ud)
{
    struct repl *r = ud;

    (void)l;
    if (!r->tty) {
        fprintf(stderr, "lurk: error in task: %s\n", msg);
        return;
    }
    if (r->prompting)
        fputs("\r\033[K", stdout);
    fputs("lurk: error in task: ", stdout);
    for (const unsigned char *p = (const unsigned char *)msg; *p; p++) {
        if ((*p < 0x20 && *p != '\n' && *p != '\t') || *p == 0x7f)
            printf("\\%u", *p);
        else
            putchar(*p);
    }
    putchar('\n');
    fflush(stdout);
    if (r->prompting)
        rl_forced_update_display();
}

/* ---- Ctrl-C ---- */

/* C.chunk(co | nil): lua/repl.lua names the coroutine a chunk runs in, before
 * the chunk starts (a chunk busy in Lua never returns to the loop) and again
 * with nil when it ends. */
static int l_chunk(lua_State *L)
{
    luaL_unref(L, LUA_REGISTRYINDEX, chunk_ref);
    chunk_ref = LUA_NOREF;
    chunk_co = NULL;
    if (lua_isthread(L, 1)) {
        chunk_co = lua_tothread(L, 1);
        lua_settop(L, 1);
        chunk_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    }
    return 0;
}

/* LuaJIT's hook is global: it fires in whatever coroutine runs next. Only
 * the interrupted chunk's coroutine raises; anywhere else (a background
 * task, the REPL's own code) the hook stays armed and returns, until the
 * chunk runs again or the loop handles the interrupt. */
static void stop_hook(lua_State *L, lua_Debug *ar)
{
    if (L != chunk_co)
        return;
    lua_sethook(L, NULL, 0, 0);
    /* Where the chunk was (luaL_error's position would be the hook's). */
    if (lua_getinfo(L, "Sl", ar) && ar->currentline > 0)
        lua_pushfstring(L, "%s:%d: interrupted", ar->short_src, ar->currentline);
    else
        lua_pushliteral(L, "interrupted");
    lua_error(L);
}

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);   /* async-signal-safe */
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void on_sigint(int sig)
{
    static int64_t first;             /* when the pending interrupt came */

    (void)sig;
    /* A Ctrl-C the loop has not handled after a while means the chunk is
     * stuck where no hook runs (a loop the JIT compiled outside the chunk,
     * a blocking C call): a second one ends the program, as lua.c's does. */
    if (interrupted && repl && !repl->prompting && now_ms() - first >= STUCK_MS) {
        static const char msg[] = "\nlurk: the running chunk did not stop at Ctrl-C; exiting\n";

        if (write(STDERR_FILENO, msg, sizeof msg - 1) < 0) {
            /* nothing more to say */
        }
        _exit(130);
    }
    if (!interrupted)
        first = now_ms();
    interrupted = 1;
    /* A chunk computing in Lua never returns to the loop: stop it from
     * inside (lua.c does the same; lua_sethook is signal-safe). Chunks run
     * with the JIT off (lua/repl.lua), so their loops see the hook. */
    if (repl && !repl->prompting)
        lua_sethook(repl->L, stop_hook, LUA_MASKCALL | LUA_MASKRET | LUA_MASKCOUNT, 1);
}

static void handle_interrupt(struct repl *r)
{
    bool cancelled = false;

    interrupted = 0;
    lua_sethook(r->L, NULL, 0, 0);
    if (call(r, "interrupt", 0, 1)) {
        cancelled = lua_toboolean(r->L, -1);
        lua_pop(r->L, 1);
    }
    if (!r->tty)
        return;
    if (r->prompting) {               /* drop the line being typed; a fresh prompt */
        bool empty = !line_had_text && !r->more;

        rl_replace_line("", 0);
        rl_callback_handler_remove();
        r->prompting = false;
        fputs(empty && r->hinted ? "^C\n(to quit: Ctrl-D, or os.exit())\n" : "^C\n", stdout);
        r->hinted = empty;
        r->more = false;
        free(r->chunk);
        r->chunk = NULL;
        line_had_text = false;
    } else if (!cancelled) {
        fputs("^C\n", stdout);
    }
    fflush(stdout);
}

/* Ctrl-C typed at the prompt: libedit reads it as a key, not a signal. */
static int key_interrupt(int count, int key)
{
    (void)count;
    (void)key;
    line_had_text = rl_end > 0;
    interrupted = 1;
    return 0;
}

/* ---- lines ---- */

static void remember(struct repl *r, const char *line)
{
    size_t old = r->chunk ? strlen(r->chunk) : 0, n = strlen(line);
    char *c = realloc(r->chunk, old + n + 2);

    if (!c)
        return;
    if (old)
        c[old++] = '\n';
    memcpy(c + old, line, n + 1);
    r->chunk = c;
}

static void feed(struct repl *r, const char *line)
{
    char status[16] = "";

    remember(r, line);
    lua_pushstring(r->L, line);
    if (call(r, "feed", 1, 1)) {
        const char *s = lua_tostring(r->L, -1);

        snprintf(status, sizeof status, "%s", s ? s : "");
        lua_pop(r->L, 1);
    }
    r->more = strcmp(status, "more") == 0;
    if (r->more)
        return;
    if (r->tty && r->history && r->chunk && strcmp(status, "empty") != 0) {
        add_history(r->chunk);
        write_history(r->history);
    }
    free(r->chunk);
    r->chunk = NULL;
}

static void on_line(char *line)
{
    struct repl *r = repl;

    rl_callback_handler_remove();
    r->prompting = false;
    r->hinted = false;
    if (!line) {                      /* Ctrl-D */
        fputs("\n", stdout);
        r->eof = true;
        return;
    }
    feed(r, line);
    free(line);
}

/* Without a terminal: feeds one buffered line if there is one. */
static bool feed_buffered(struct repl *r)
{
    char *nl = memchr(r->in, '\n', r->inlen);
    size_t n;

    if (!nl && !(r->eof && r->inlen > 0))
        return false;
    n = nl ? (size_t)(nl - r->in) : r->inlen;
    r->in[n] = '\0';
    feed(r, r->in);
    n += nl ? 1 : 0;
    memmove(r->in, r->in + n, r->inlen - n);
    r->inlen -= n;
    return true;
}

static void read_stdin(struct repl *r)
{
    ssize_t n;

    if (r->tty) {
        rl_callback_read_char();
        return;
    }
    if (r->inlen == sizeof r->in - 1) {
        fputs("lurk: an input line is longer than 64 KiB; stopping\n", stderr);
        r->inlen = 0;
        r->errors++;
        r->eof = true;
        return;
    }
    n = read(STDIN_FILENO, r->in + r->inlen, sizeof r->in - 1 - r->inlen);
    if (n > 0)
        r->inlen += (size_t)n;
    else if (n == 0 || (errno != EINTR && errno != EAGAIN))
        r->eof = true;
}

/* ---- completion ---- */

static char **candidates;
static size_t ncandidates, next_candidate;

static char *next_match(const char *text, int state)
{
    (void)text;
    if (state == 0)
        next_candidate = 0;
    return next_candidate < ncandidates ? strdup(candidates[next_candidate++]) : NULL;
}

static char **complete(const char *text, int start, int end)
{
    struct repl *r = repl;

    (void)start;
    (void)end;
    rl_attempted_completion_over = 1;
    for (size_t i = 0; i < ncandidates; i++)
        free(candidates[i]);
    free(candidates);
    candidates = NULL;
    ncandidates = 0;
    lua_pushstring(r->L, text);
    if (!call(r, "complete", 1, 1))
        return NULL;
    size_t n = lua_objlen(r->L, -1);
    candidates = calloc(n ? n : 1, sizeof *candidates);
    for (size_t i = 1; candidates && i <= n; i++) {
        lua_rawgeti(r->L, -1, (int)i);
        candidates[ncandidates++] = strdup(lua_tostring(r->L, -1));
        lua_pop(r->L, 1);
    }
    lua_pop(r->L, 1);
    return rl_completion_matches(text, next_match);
}

/* ---- setting up ---- */

static void setup_history(struct repl *r)
{
    const char *env = getenv("LURK_HISTORY"), *home = getenv("HOME");

    if (env && !*env)
        return;                       /* LURK_HISTORY= : keep none */
    if (env) {
        r->history = strdup(env);
    } else if (home && *home) {
        size_t n = strlen(home) + sizeof "/.lurk_history";

        r->history = malloc(n);
        if (r->history)
            snprintf(r->history, n, "%s/.lurk_history", home);
    }
    if (r->history) {
        stifle_history(HISTORY_MAX);
        read_history(r->history);
    }
}

static int load(struct repl *r)
{
    lua_State *L = r->L;
    const char *no_color = getenv("NO_COLOR");

    if (luaL_loadbuffer(L, (const char *)luaJIT_BC_repl, luaJIT_BC_repl_SIZE, "=repl.lua")) {
        fprintf(stderr, "lurk: repl: %s\n", lua_tostring(L, -1));
        return -1;
    }
    lua_createtable(L, 0, 3);
    lua_pushcfunction(L, l_write);
    lua_setfield(L, -2, "write");
    lua_pushcfunction(L, l_chunk);
    lua_setfield(L, -2, "chunk");
    lua_pushboolean(L, r->tty);
    lua_setfield(L, -2, "tty");
    lua_pushboolean(L, r->tty && !(no_color && *no_color));
    lua_setfield(L, -2, "color");
    if (lua_pcall(L, 1, 1, 0) != 0) {
        fprintf(stderr, "lurk: repl: %s\n", lua_tostring(L, -1));
        return -1;
    }
    r->ref = luaL_ref(L, LUA_REGISTRYINDEX);
    return 0;
}

static void show_prompt(struct repl *r)
{
    r->prompting = true;
    rl_callback_handler_install(r->more ? ">> " : "> ", on_line);
}

int lurk_repl(struct lurk *l)
{
    struct repl *r = calloc(1, sizeof *r);
    struct sigaction sa = { .sa_handler = on_sigint }, old;
    int errors, rc;

    if (!r)
        return 1;
    r->l = l;
    r->L = lurk_lua(l);
    r->tty = isatty(STDIN_FILENO) && isatty(STDOUT_FILENO);
    repl = r;
    if (load(r) < 0) {
        free(r);
        repl = NULL;
        return 1;
    }
    if (r->tty) {
        rl_readline_name = "lurk";
        rl_catch_signals = 0;         /* Ctrl-C is ours */
        rl_initialize();
        rl_attempted_completion_function = complete;
        rl_basic_word_break_characters = " \t\n\"'`<>=;|&{}()[],+-*/%^~#";
        rl_completion_append_character = '\0';
        rl_add_defun("lurk-interrupt", key_interrupt, 3);
        setup_history(r);
        printf("lurk %s (%s) - Ctrl-D quits, Ctrl-C cancels what runs, Tab completes\n",
               LURK_VERSION, lurk_features(l));
        fflush(stdout);
    }
    lurk_set_error_handler(l, on_task_error, r);
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old);     /* no SA_RESTART: poll() returns EINTR */

    for (;;) {
        bool running = busy(r), reading;
        struct pollfd p[2] = { { .fd = lurk_fd(l), .events = POLLIN },
                               { .fd = STDIN_FILENO, .events = POLLIN } };

        if (!running && !r->tty && feed_buffered(r))
            continue;                 /* the next line, without waiting */
        if (!running && r->eof)
            break;
        if (!running && r->tty && !r->prompting)
            show_prompt(r);
        reading = !running && !r->eof;
        rc = poll(p, reading ? 2 : 1, lurk_timeout(l));
        if (interrupted)
            handle_interrupt(r);
        if (rc < 0 && errno != EINTR)
            break;
        rc = lurk_run(l, LURK_RUN_NOWAIT);
        if (rc < 0)
            fprintf(stderr, "lurk: %s\n", lurk_errmsg(l));
        if (reading && (p[1].revents & (POLLIN | POLLHUP | POLLERR)))
            read_stdin(r);
        if (interrupted)
            handle_interrupt(r);
    }

    if (r->prompting && r->tty)
        rl_callback_handler_remove();
    call(r, "finish", 0, 0);
    if (!r->tty && lurk_run(l, LURK_RUN_DEFAULT) < 0) {   /* tasks the input left running */
        fprintf(stderr, "lurk: %s\n", lurk_errmsg(l));
        r->errors++;
    }
    errors = r->tty ? 0 : r->errors;  /* at a terminal, errors were seen */
    lua_rawgeti(r->L, LUA_REGISTRYINDEX, r->ref);
    lua_getfield(r->L, -1, "errors");
    errors += r->tty ? 0 : (int)lua_tointeger(r->L, -1);
    lua_pop(r->L, 2);
    sigaction(SIGINT, &old, NULL);
    lurk_set_error_handler(l, NULL, NULL);
    lua_sethook(r->L, NULL, 0, 0);
    for (size_t i = 0; i < ncandidates; i++)
        free(candidates[i]);
    free(candidates);
    candidates = NULL;
    ncandidates = 0;
    free(r->history);
    free(r->chunk);
    free(r);
    repl = NULL;
    return errors ? 1 : 0;
}

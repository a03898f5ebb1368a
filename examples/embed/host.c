/*
 * host.c - a program with its own epoll loop that embeds lurk.
 *
 *   embed-host [-t THREADS] script.lua [args...]
 *
 * The host waits in epoll_wait() on its own descriptors (here a timerfd that
 * ticks every 20 ms, standing in for a GUI or a server's sockets) and on
 * lurk_fd(); lurk_timeout() bounds the wait, and lurk_run(LURK_RUN_NOWAIT)
 * lets lurk's tasks take their turn. Scripts reach the host through a module
 * it registers, `host`, and lurk's own modules through require.
 *
 * With -t N, N threads each run their own runtime on the script at once:
 * one runtime per thread is the rule, several per process are fine.
 *
 * Runtime options come from the host's environment, as a host would take
 * them from its own configuration: EMBED_CA_FILE (trust store), EMBED_KTLS
 * (auto, off or require), EMBED_TRACE (e.g. http).
 */
#define _GNU_SOURCE
#include <lurk.h>

#include <lauxlib.h>
#include <lua.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

struct host {
    int id;                           /* thread number, from 1 */
    const char *script;
    int argc;
    char **argv;
    uint64_t ticks;                   /* the host's own work, done meanwhile */
    int status;
};

/* host.ticks() -> how many times the host's timer fired so far */
static int host_ticks(lua_State *L)
{
    struct host *h = lua_touserdata(L, lua_upvalueindex(1));

    lua_pushnumber(L, (lua_Number)h->ticks);
    return 1;
}

/* host.id() -> which of the host's threads runs this script */
static int host_id(lua_State *L)
{
    struct host *h = lua_touserdata(L, lua_upvalueindex(1));

    lua_pushinteger(L, h->id);
    return 1;
}

/* package.loaded.host = { ticks, id }: require "host" in scripts. */
static void register_host(lua_State *L, struct host *h)
{
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "loaded");
    lua_createtable(L, 0, 2);
    lua_pushlightuserdata(L, h);
    lua_pushcclosure(L, host_ticks, 1);
    lua_setfield(L, -2, "ticks");
    lua_pushlightuserdata(L, h);
    lua_pushcclosure(L, host_id, 1);
    lua_setfield(L, -2, "id");
    lua_setfield(L, -2, "host");
    lua_pop(L, 2);
}

static int ktls_option(const char *v)
{
    if (!v)
        return LURK_KTLS_ENV;
    if (strcmp(v, "off") == 0)
        return LURK_KTLS_OFF;
    if (strcmp(v, "require") == 0)
        return LURK_KTLS_REQUIRE;
    return LURK_KTLS_AUTO;
}

static int run(struct host *h)
{
    struct itimerspec every = { .it_interval = { 0, 20000000 }, .it_value = { 0, 20000000 } };
    struct epoll_event ev = { .events = EPOLLIN }, got[4];
    struct lurk_options opts = {
        .ktls = ktls_option(getenv("EMBED_KTLS")),
        .ca_file = getenv("EMBED_CA_FILE"),
        .trace = getenv("EMBED_TRACE"),
    };
    struct lurk *l;
    int ep, tfd, rc;

    rc = lurk_new(&l, &opts);
    if (rc < 0) {
        fprintf(stderr, "host %d: lurk_new: %s: %s\n", h->id, lurk_strerror(rc),
                lurk_strerror_setup(rc));
        return 1;
    }
    register_host(lurk_lua(l), h);

    ep = epoll_create1(EPOLL_CLOEXEC);
    tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    timerfd_settime(tfd, 0, &every, NULL);
    ev.data.fd = tfd;
    epoll_ctl(ep, EPOLL_CTL_ADD, tfd, &ev);
    ev.data.fd = lurk_fd(l);
    epoll_ctl(ep, EPOLL_CTL_ADD, lurk_fd(l), &ev);

    rc = lurk_do_file(l, h->script, h->argc, h->argv);
    while (rc >= 0) {
        rc = lurk_run(l, LURK_RUN_NOWAIT);
        if (rc <= 0)
            break;                    /* every task finished, or an error */
        int n = epoll_wait(ep, got, 4, lurk_timeout(l));

        for (int i = 0; i < n; i++) {
            uint64_t fired;

            if (got[i].data.fd == tfd && read(tfd, &fired, sizeof fired) == sizeof fired)
                h->ticks += fired;
        }
    }
    if (rc < 0)
        fprintf(stderr, "host %d: %s\n", h->id, lurk_errmsg(l));
    else
        printf("host %d: script finished, %llu ticks of host work meanwhile\n", h->id,
               (unsigned long long)h->ticks);
    lurk_free(l);
    close(tfd);
    close(ep);
    return rc < 0 ? 1 : 0;
}

static void *thread_main(void *arg)
{
    struct host *h = arg;

    h->status = run(h);
    return NULL;
}

int main(int argc, char **argv)
{
    int threads = 1, first = 1, status = 0;

    if (argc > 2 && strcmp(argv[1], "-t") == 0) {
        threads = atoi(argv[2]);
        first = 3;
    }
    if (first >= argc || threads < 1 || threads > 64) {
        fprintf(stderr, "usage: %s [-t THREADS] script.lua [args...]\n", argv[0]);
        return 2;
    }

    struct host *hosts = calloc((size_t)threads, sizeof *hosts);
    pthread_t *tids = calloc((size_t)threads, sizeof *tids);

    if (!hosts || !tids)
        return 1;
    for (int i = 0; i < threads; i++) {
        hosts[i] = (struct host){ .id = i + 1, .script = argv[first],
                                  .argc = argc - first - 1, .argv = argv + first + 1 };
        if (threads == 1)
            hosts[i].status = run(&hosts[i]);
        else if (pthread_create(&tids[i], NULL, thread_main, &hosts[i]) != 0)
            return 1;
    }
    for (int i = 0; i < threads; i++) {
        if (threads > 1)
            pthread_join(tids[i], NULL);
        status |= hosts[i].status;
    }
    free(hosts);
    free(tids);
    return status;
}

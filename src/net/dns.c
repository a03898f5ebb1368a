/*
 * dns.c - c-ares on the ring.
 *
 * c-ares owns its sockets and reports, through the sock-state callback, which
 * ones it wants to read or write. Each watched socket has at most one poll op
 * in flight; when the wanted events change, that op is cancelled and its
 * completion re-arms with the new mask. One ring timer drives c-ares'
 * retransmissions and timeouts while lookups are outstanding.
 *
 * Lifetime: the resolver holds one reference for its owner and one per op in
 * flight. lurk_resolver_close() destroys the c-ares channel (which ends every
 * query), cancels the ops, and the last completion frees the resolver.
 *
 * Queries are never cancelled in c-ares (it can only cancel all of them); an
 * abandoned query just has its callback suppressed.
 */
#include "net/dns.h"
#include "core/error.h"
#include "core/loop.h"

#include <ares.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct watch {
    int fd;
    unsigned want;                    /* POLLIN / POLLOUT c-ares asked for */
    unsigned armed;                   /* mask of the poll op in flight */
    struct lurk_op *op;
};

struct lurk_resolver {
    struct lurk_loop *loop;
    ares_channel channel;
    bool ready, closing;
    int refs;
    int active;                       /* lookups c-ares still runs */
    struct lurk_op *timer;
    struct watch *watches;
    int nwatches;
};

struct lurk_query {
    struct lurk_resolver *r;
    lurk_resolve_cb *cb;
    void *arg;
    int port;
    bool abandoned;
    bool calling;                     /* inside ares_getaddrinfo() */
    bool done;
};

static void unref(struct lurk_resolver *r)
{
    if (--r->refs == 0) {
        free(r->watches);
        free(r);
    }
}

static void arm_timer(struct lurk_resolver *r);
static void arm_watch(struct lurk_resolver *r, struct watch *w);

static struct watch *find_watch(struct lurk_resolver *r, int fd, bool create)
{
    struct watch *w;

    for (int i = 0; i < r->nwatches; i++)
        if (r->watches[i].fd == fd)
            return &r->watches[i];
    if (!create)
        return NULL;
    for (int i = 0; i < r->nwatches; i++)
        if (r->watches[i].fd < 0 && !r->watches[i].op) {
            r->watches[i].fd = fd;
            return &r->watches[i];
        }
    w = realloc(r->watches, (r->nwatches + 1) * sizeof *w);
    if (!w)
        lurk_panic("out of memory for DNS sockets");
    /* Poll ops point at the resolver and find their watch by index. */
    r->watches = w;
    w = &r->watches[r->nwatches++];
    memset(w, 0, sizeof *w);
    w->fd = fd;
    return w;
}

static void watch_done(struct lurk_op *op, int res)
{
    struct lurk_resolver *r = op->arg;
    struct watch *w = NULL;

    for (int i = 0; i < r->nwatches; i++)
        if (r->watches[i].op == op)
            w = &r->watches[i];
    if (w)
        w->op = NULL;
    if (!r->closing && w && w->fd >= 0 && res != -ECANCELED) {
        int fd = w->fd;
        /* An error on the socket is something c-ares finds out by reading. */
        bool rd = res < 0 || (res & (POLLIN | POLLERR | POLLHUP));
        bool wr = res < 0 || (res & POLLOUT);

        ares_process_fd(r->channel, rd ? fd : ARES_SOCKET_BAD, wr ? fd : ARES_SOCKET_BAD);
        w = find_watch(r, fd, false);  /* c-ares may have closed it */
    }
    if (!r->closing && w && w->fd >= 0 && w->want && !w->op)
        arm_watch(r, w);
    if (!r->closing)
        arm_timer(r);
    unref(r);
}

static void arm_watch(struct lurk_resolver *r, struct watch *w)
{
    struct io_uring_sqe *sqe = lurk_loop_sqe(r->loop);

    w->op = lurk_op_new(r->loop, watch_done, r);
    w->armed = w->want;
    io_uring_prep_poll_add(sqe, w->fd, w->want);
    lurk_op_arm(r->loop, w->op, sqe, 0);
    r->refs++;
}

static void sock_state(void *data, ares_socket_t fd, int readable, int writable)
{
    struct lurk_resolver *r = data;
    unsigned want = (readable ? POLLIN : 0) | (writable ? POLLOUT : 0);
    struct watch *w = find_watch(r, fd, want != 0);

    if (!w)
        return;
    w->want = want;
    if (want == 0)
        w->fd = -1;                   /* c-ares is closing it */
    if (w->op) {
        /* The op in flight watches the wrong events (or a closed socket):
         * its completion re-arms with what is wanted now. */
        if (w->armed != want)
            lurk_op_cancel(r->loop, w->op);
    } else if (want && !r->closing) {
        arm_watch(r, w);
    }
}

static void timer_done(struct lurk_op *op, int res)
{
    struct lurk_resolver *r = op->arg;

    r->timer = NULL;
    if (!r->closing && res == -ETIME) {
        ares_process_fd(r->channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
        arm_timer(r);
    }
    unref(r);
}

static void arm_timer(struct lurk_resolver *r)
{
    struct timeval tv, *tvp;

    if (r->timer || r->active == 0)
        return;
    tvp = ares_timeout(r->channel, NULL, &tv);
    if (!tvp)
        return;
    r->timer = lurk_op_new(r->loop, timer_done, r);
    lurk_op_timer(r->loop, r->timer,
                  lurk_now_ns() + (int64_t)tvp->tv_sec * 1000000000 + tvp->tv_usec * 1000);
    r->refs++;
}

static pthread_once_t ares_once = PTHREAD_ONCE_INIT;
static int ares_init_status;

static void init_library(void)
{
    ares_init_status = ares_library_init(ARES_LIB_INIT_ALL);
}

static int start_channel(struct lurk_resolver *r)
{
    struct ares_options o;
    const char *servers = getenv("LURK_DNS_SERVERS");
    int rc;

    pthread_once(&ares_once, init_library);
    if (ares_init_status != ARES_SUCCESS)
        return -ENOMEM;
    memset(&o, 0, sizeof o);
    o.sock_state_cb = sock_state;
    o.sock_state_cb_data = r;
    o.timeout = 2000;                 /* ms per try; callers' deadlines cap the total */
    o.tries = 3;
    rc = ares_init_options(&r->channel, &o,
                           ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES);
    if (rc != ARES_SUCCESS)
        return rc == ARES_ENOMEM ? -ENOMEM : -LURK_EDNS_NOSERVER;
    if (servers && *servers && ares_set_servers_ports_csv(r->channel, servers) != ARES_SUCCESS) {
        ares_destroy(r->channel);
        return -LURK_EDNS_NOSERVER;
    }
    r->ready = true;
    return 0;
}

int lurk_resolver_new(struct lurk_resolver **out, struct lurk_loop *l)
{
    struct lurk_resolver *r = calloc(1, sizeof *r);

    *out = NULL;
    if (!r)
        return -ENOMEM;
    r->loop = l;
    r->refs = 1;
    *out = r;
    return 0;
}

void lurk_resolver_close(struct lurk_resolver *r)
{
    if (!r)
        return;
    r->closing = true;
    if (r->ready) {
        /* Runs every pending query's callback with ARES_EDESTRUCTION and
         * reports each socket closed through sock_state(). */
        ares_destroy(r->channel);
        r->ready = false;
    }
    for (int i = 0; i < r->nwatches; i++)
        if (r->watches[i].op)
            lurk_op_cancel(r->loop, r->watches[i].op);
    if (r->timer)
        lurk_op_cancel(r->loop, r->timer);
    unref(r);
}

static int map_status(int status)
{
    switch (status) {
    case ARES_ENODATA:
    case ARES_ENOTFOUND:
    case ARES_ENONAME:
    case ARES_EBADNAME:
        return -LURK_EDNS_NOTFOUND;
    case ARES_ETIMEOUT:
        return -LURK_EDNS_TIMEOUT;
    case ARES_ENOMEM:
        return -ENOMEM;
    case ARES_ECANCELLED:
    case ARES_EDESTRUCTION:
        return -ECANCELED;
    default:
        return -LURK_EDNS_FAIL;
    }
}

static void lookup_done(void *arg, int status, int timeouts, struct ares_addrinfo *res)
{
    struct lurk_query *q = arg;
    struct lurk_addrs *addrs = NULL;
    int rc = 0, n = 0;

    (void)timeouts;
    q->r->active--;
    if (status == ARES_SUCCESS && res) {
        for (struct ares_addrinfo_node *p = res->nodes; p; p = p->ai_next)
            if (p->ai_family == AF_INET || p->ai_family == AF_INET6)
                n++;
    }
    if (status != ARES_SUCCESS)
        rc = map_status(status);
    else if (n == 0)
        rc = -LURK_EDNS_NOTFOUND;
    else if (!(addrs = malloc(sizeof *addrs + n * sizeof addrs->addr[0])))
        rc = -ENOMEM;
    if (addrs) {
        addrs->n = 0;
        for (struct ares_addrinfo_node *p = res->nodes; p; p = p->ai_next) {
            struct sockaddr_storage *sa = &addrs->addr[addrs->n];

            if (p->ai_family != AF_INET && p->ai_family != AF_INET6)
                continue;
            memset(sa, 0, sizeof *sa);
            memcpy(sa, p->ai_addr, p->ai_addrlen);
            if (p->ai_family == AF_INET)
                ((struct sockaddr_in *)sa)->sin_port = htons(q->port);
            else
                ((struct sockaddr_in6 *)sa)->sin6_port = htons(q->port);
            addrs->n++;
        }
    }
    if (res)
        ares_freeaddrinfo(res);
    if (!q->abandoned)
        q->cb(q->arg, rc, addrs);
    else
        free(addrs);
    if (q->calling)
        q->done = true;               /* lurk_resolve() frees it */
    else
        free(q);
}

int lurk_resolve(struct lurk_resolver *r, const char *host, int port,
                 lurk_resolve_cb *cb, void *arg, struct lurk_query **out)
{
    struct ares_addrinfo_hints hints;
    struct lurk_query *q;
    int rc;

    if (out)
        *out = NULL;
    if (r->closing)
        return -LURK_ECLOSED;
    if (!r->ready && (rc = start_channel(r)) < 0)
        return rc;
    q = calloc(1, sizeof *q);
    if (!q)
        return -ENOMEM;
    q->r = r;
    q->cb = cb;
    q->arg = arg;
    q->port = port;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    r->active++;
    /* May complete at once (hosts file, bad name), running cb before we
     * return: then there is no query left to hand out. */
    q->calling = true;
    ares_getaddrinfo(r->channel, host, NULL, &hints, lookup_done, q);
    q->calling = false;
    if (q->done) {
        free(q);
        return 0;
    }
    if (out)
        *out = q;
    arm_timer(r);
    return 0;
}

void lurk_query_abandon(struct lurk_query *q)
{
    if (q)
        q->abandoned = true;
}

int lurk_addr_literal(const char *host, int port, struct lurk_addrs **out)
{
    struct sockaddr_storage sa;
    char tmp[64];
    size_t len = strlen(host);

    *out = NULL;
    memset(&sa, 0, sizeof sa);
    if (len >= 2 && host[0] == '[' && host[len - 1] == ']' && len - 2 < sizeof tmp) {
        memcpy(tmp, host + 1, len - 2);
        tmp[len - 2] = '\0';
        host = tmp;
    }
    if (inet_pton(AF_INET, host, &((struct sockaddr_in *)&sa)->sin_addr) == 1) {
        sa.ss_family = AF_INET;
        ((struct sockaddr_in *)&sa)->sin_port = htons(port);
    } else if (inet_pton(AF_INET6, host, &((struct sockaddr_in6 *)&sa)->sin6_addr) == 1) {
        sa.ss_family = AF_INET6;
        ((struct sockaddr_in6 *)&sa)->sin6_port = htons(port);
    } else {
        return 0;
    }
    *out = malloc(sizeof **out + sizeof sa);
    if (!*out)
        return -ENOMEM;
    (*out)->n = 1;
    (*out)->addr[0] = sa;
    return 1;
}

const char *lurk_addr_str(const struct sockaddr_storage *sa, char *buf, size_t len)
{
    const void *a = sa->ss_family == AF_INET6
        ? (const void *)&((const struct sockaddr_in6 *)sa)->sin6_addr
        : (const void *)&((const struct sockaddr_in *)sa)->sin_addr;

    if (!inet_ntop(sa->ss_family, a, buf, (socklen_t)len))
        snprintf(buf, len, "?");
    return buf;
}

/*
 * dns.h - asynchronous name resolution with c-ares, driven by the ring.
 *
 * c-ares tells us which sockets it wants watched; each gets a poll op on the
 * ring, and ares' own retransmission timer is a ring timer. Nothing blocks the
 * loop. /etc/hosts is honoured (c-ares' default "files, then DNS" order).
 * LURK_DNS_SERVERS="127.0.0.1:5353,[::1]:53" replaces the servers of
 * /etc/resolv.conf (used by the tests to talk to a resolver they run).
 */
#ifndef LURK_NET_DNS_H
#define LURK_NET_DNS_H

#include <sys/socket.h>

struct lurk_loop;
struct lurk_resolver;
struct lurk_query;

/* Addresses in the order to try them, each with its port already set. */
struct lurk_addrs {
    int n;
    struct sockaddr_storage addr[];
};

/* rc == 0: addrs holds at least one address and now belongs to the callee
 * (free() it). rc < 0: addrs is NULL; rc is -LURK_EDNS_* or -ENOMEM. */
typedef void lurk_resolve_cb(void *arg, int rc, struct lurk_addrs *addrs);

/* Creates a resolver on l. c-ares itself is set up at the first lookup. */
int lurk_resolver_new(struct lurk_resolver **out, struct lurk_loop *l);

/* Ends every lookup (their callbacks do not run), cancels the resolver's ops
 * and frees it once their completions are reaped. NULL is a no-op. */
void lurk_resolver_close(struct lurk_resolver *r);

/*
 * Starts resolving host (a name or an address literal) for TCP port `port`.
 * Returns 0 and sets *out (unless out is NULL) to the query, or to NULL if cb
 * already ran (answers from /etc/hosts can come at once); otherwise cb runs
 * later, exactly once, unless the query is abandoned first. Returns a negative code if the lookup
 * could not start (cb does not run).
 */
int lurk_resolve(struct lurk_resolver *r, const char *host, int port,
                 lurk_resolve_cb *cb, void *arg, struct lurk_query **out);

/* The query's callback will not run; its memory is released when c-ares is
 * done with it. */
void lurk_query_abandon(struct lurk_query *q);

/* Parses an IPv4 or IPv6 literal (brackets allowed) into addrs without any
 * lookup. Returns 1 and a malloc'd list, 0 if host is not a literal. */
int lurk_addr_literal(const char *host, int port, struct lurk_addrs **out);

/* Formats an address as "1.2.3.4" or "::1" into buf (at least 64 bytes). */
const char *lurk_addr_str(const struct sockaddr_storage *sa, char *buf, size_t len);

#endif

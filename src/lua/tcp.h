/* tcp.h - the Lua tcp module (see tcp.c), and its sockets as other
 * bindings use them to run a protocol (src/lua/http.c). */
#ifndef LURK_LUA_TCP_H
#define LURK_LUA_TCP_H

#include <lua.h>
#include <stdint.h>

struct lurk_lua_sock;
struct lurk_stream;
struct lurk_task;

/* The socket object at idx; raises for another type or a closed socket. */
struct lurk_lua_sock *lurk_lua_sock_check(lua_State *L, int idx);

/* What its reads and writes go through (TCP, TLS or kernel TLS). */
struct lurk_stream *lurk_lua_sock_stream(struct lurk_lua_sock *k);

/* Its per-operation timeout in seconds (0: none); "host:port" for messages. */
double lurk_lua_sock_timeout(const struct lurk_lua_sock *k);
const char *lurk_lua_sock_name(const struct lurk_lua_sock *k);

/*
 * Takes both directions for task t (raises if another task reads or writes
 * it) and keeps the userdata at idx alive until lurk_lua_sock_give().
 */
void lurk_lua_sock_take(lua_State *L, struct lurk_lua_sock *k, int idx, struct lurk_task *t);
void lurk_lua_sock_give(struct lurk_lua_sock *k);

/*
 * Sends the string at idx without waiting for it (see sock:send), when it is
 * 1 byte to 64 KiB and either the socket is plain TCP with no such send in
 * flight (its string and the socket at self are kept until it is done) or
 * the stream takes a copy (write_buffered: TLS with lurk's records): 1,
 * sent or sending; 0 when it must be an ordinary write; rc < 0.
 * Should it fail after all, a read in flight ends with an error (plain TCP:
 * the stream is closed, -LURK_ECLOSED or -ECANCELED; a buffered stream: the
 * send's own error), and lurk_lua_sock_send_failed(k, that error) tells
 * whether the send's failure explains it, and how (0: it does not).
 */
int lurk_lua_sock_send_nowait(lua_State *L, struct lurk_lua_sock *k, int self, int idx, int64_t deadline);
int lurk_lua_sock_send_failed(struct lurk_lua_sock *k, int res);

/* Sends the string at idx on the socket at 1 as sock:send does, within
 * the socket's timeout, the task's deadline and timeout_s (> 0: the send's
 * own limit, a WebSocket frame's send_timeout): bytes | nil, err, or a wait
 * (lurk_task_wait's). fname names the call when the socket is closed or
 * the caller is not a task. */
int lurk_lua_sock_send_within(lua_State *L, int idx, double timeout_s, const char *fname);

/* Pushes nil, err for rc as the socket reports it (its name and address). */
int lurk_lua_sock_error(lua_State *L, struct lurk_lua_sock *k, int rc, const char *phase);

struct lurk_tcp;
struct lurk_tls;
/* The TCP socket underneath, and its TLS session or NULL (sendfile.c
 * splices into the first when the second is absent or kernel TX). */
struct lurk_tcp *lurk_lua_sock_tcp(struct lurk_lua_sock *k);
struct lurk_tls *lurk_lua_sock_tls(struct lurk_lua_sock *k);

/* For tcp.listen (serve.c): a socket object for an accepted connection,
 * taking over the references to s and tls (NULL: plain). */
struct lurk_lua_sock *lurk_lua_sock_push(lua_State *L, struct lurk_tcp *s, struct lurk_tls *tls);

/* Runs the server's TLS handshake on such a socket at idx for task t
 * within timeout seconds; the tail of a lua_CFunction (-> sock | nil, err). */
int lurk_lua_sock_handshake(lua_State *L, int idx, struct lurk_task *t, double timeout);

/* The same in pieces, for a binding that waits itself: start (0 | rc < 0,
 * the socket closed), then from its results function the results (pushes
 * sock | nil, err), or a cancel while it runs. */
int lurk_lua_sock_handshake_start(lua_State *L, int idx, struct lurk_task *t, double timeout);
int lurk_lua_sock_handshake_results(lua_State *L, struct lurk_lua_sock *k, int res);
void lurk_lua_sock_handshake_cancel(struct lurk_lua_sock *k);

#endif

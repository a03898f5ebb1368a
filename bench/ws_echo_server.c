/*
 * ws_echo_server.c - a minimal epoll WebSocket echo server (RFC 6455, plain
 * ws:// only) for lurk's benchmarks: one thread, level-triggered, no
 * extensions, so the client under test is what costs CPU, not the server
 * (Node's ws server bounds a client's figures from above). Each message
 * frame comes back as one unmasked frame with the same opcode; a ping gets
 * its pong, a close its close. Prints "PORT <n>" once listening on
 * 127.0.0.1 (port 0 unless given). Built with nettle (SHA-1, base64) for the
 * handshake's Sec-WebSocket-Accept.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <nettle/base64.h>
#include <nettle/sha1.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_FRAME (1u << 20)

struct conn {
    int fd;
    int upgraded;
    size_t len, cap;
    unsigned char *in;                /* what came and is not handled yet */
};

static void put_all(int fd, const void *p, size_t n)
{
    /* The bench peers never fill the socket: a short write is a dead peer. */
    while (n) {
        ssize_t w = write(fd, p, n);

        if (w <= 0)
            return;
        p = (const char *)p + w;
        n -= (size_t)w;
    }
}

/* The handshake, once its head is in: 0 (need more), 1 (done), -1 (bad). */
static int handshake(struct conn *c)
{
    static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    unsigned char *end = memmem(c->in, c->len, "\r\n\r\n", 4), digest[SHA1_DIGEST_SIZE];
    char *key, *eol, accept[BASE64_ENCODE_RAW_LENGTH(SHA1_DIGEST_SIZE) + 1], out[256];
    struct sha1_ctx h;
    size_t head;
    int n;

    if (!end)
        return c->len > 8192 ? -1 : 0;
    head = (size_t)(end - c->in) + 4;
    end[2] = '\0';
    key = strcasestr((char *)c->in, "\r\nSec-WebSocket-Key:");
    if (!key)
        return -1;
    key += 20;
    while (*key == ' ' || *key == '\t')
        key++;
    eol = strstr(key, "\r\n");
    while (eol > key && (eol[-1] == ' ' || eol[-1] == '\t'))
        eol--;
    sha1_init(&h);
    sha1_update(&h, (size_t)(eol - key), (const uint8_t *)key);
    sha1_update(&h, sizeof guid - 1, (const uint8_t *)guid);
    sha1_digest(&h, sizeof digest, digest);
    base64_encode_raw(accept, sizeof digest, digest);
    accept[BASE64_ENCODE_RAW_LENGTH(SHA1_DIGEST_SIZE)] = '\0';
    n = snprintf(out, sizeof out, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                 "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n", accept);
    put_all(c->fd, out, (size_t)n);
    memmove(c->in, c->in + head, c->len - head);
    c->len -= head;
    c->upgraded = 1;
    return 1;
}

/* Answers every whole frame buffered: 0, or -1 to close the connection. */
static int frames(struct conn *c)
{
    static unsigned char out[MAX_FRAME + 16];
    size_t off = 0, o = 0;

    while (c->len - off >= 2) {
        unsigned char *p = c->in + off;
        unsigned op = p[0] & 15;
        uint64_t plen = p[1] & 127;
        size_t hl = 2;

        if (!(p[1] & 128))
            return -1;                /* a client's frames are masked */
        if (plen == 126) {
            if (c->len - off < 4)
                break;
            plen = (uint64_t)p[2] << 8 | p[3];
            hl = 4;
        } else if (plen == 127) {
            if (c->len - off < 10)
                break;
            plen = 0;
            for (int i = 0; i < 8; i++)
                plen = plen << 8 | p[2 + i];
            hl = 10;
        }
        if (plen > MAX_FRAME)
            return -1;
        if (c->len - off < hl + 4 + plen)
            break;
        /* Flush when the next answer might not fit. */
        if (o + plen + 10 > sizeof out) {
            put_all(c->fd, out, o);
            o = 0;
        }
        out[o++] = (unsigned char)((p[0] & 0x80) | (op == 9 ? 10 : op));   /* FIN kept; ping: pong */
        if (plen < 126) {
            out[o++] = (unsigned char)plen;
        } else if (plen < 65536) {
            out[o++] = 126;
            out[o++] = (unsigned char)(plen >> 8);
            out[o++] = (unsigned char)plen;
        } else {
            out[o++] = 127;
            for (int i = 7; i >= 0; i--)
                out[o++] = (unsigned char)(plen >> (8 * i));
        }
        for (uint64_t i = 0; i < plen; i++)
            out[o++] = p[hl + 4 + i] ^ p[hl + (i & 3)];
        off += hl + 4 + (size_t)plen;
        if (op == 8) {                /* close: echoed, then the end */
            put_all(c->fd, out, o);
            return -1;
        }
        if (op == 10)                 /* an unsolicited pong: no answer */
            o -= (plen < 126 ? 2 : plen < 65536 ? 4 : 10) + (size_t)plen;
    }
    put_all(c->fd, out, o);
    memmove(c->in, c->in + off, c->len - off);
    c->len -= off;
    return 0;
}

int main(int argc, char **argv)
{
    struct sockaddr_in a = { .sin_family = AF_INET };
    socklen_t alen = sizeof a;
    struct epoll_event ev, evs[256];
    int lfd, ep, one = 1;

    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(argc > 1 ? atoi(argv[1]) : 0);
    lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(lfd, (struct sockaddr *)&a, sizeof a) || listen(lfd, 4096)) {
        perror("ws_echo_server");
        return 1;
    }
    getsockname(lfd, (struct sockaddr *)&a, &alen);
    printf("PORT %d\n", ntohs(a.sin_port));
    fflush(stdout);
    ep = epoll_create1(0);
    ev.events = EPOLLIN;
    ev.data.ptr = NULL;
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
    for (;;) {
        int n = epoll_wait(ep, evs, 256, -1);

        for (int i = 0; i < n; i++) {
            struct conn *c = evs[i].data.ptr;
            ssize_t r;
            int fd;

            if (!c) {
                while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                    c = calloc(1, sizeof *c);
                    c->fd = fd;
                    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    ev.events = EPOLLIN;
                    ev.data.ptr = c;
                    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
                }
                continue;
            }
            if (c->cap - c->len < 65536) {
                c->cap = c->cap ? c->cap * 2 : 131072;
                c->in = realloc(c->in, c->cap);
            }
            r = read(c->fd, c->in + c->len, c->cap - c->len);
            if (r > 0) {
                int rc = 0;

                c->len += (size_t)r;
                if (!c->upgraded)
                    rc = handshake(c);
                if (rc >= 0 && c->upgraded)
                    rc = frames(c);
                if (rc >= 0)
                    continue;
            }
            close(c->fd);             /* also leaves the epoll set */
            free(c->in);
            free(c);
        }
    }
}

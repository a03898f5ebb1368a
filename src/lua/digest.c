/*
 * digest.c - SHA-256 and HMAC-SHA256 for scripts (webhook signatures,
 * content hashes), over mbedTLS's md API, which lurk links for TLS anyway.
 *
 *   lurk.sha256(data [, raw]) -> 64 hex digits (raw: the 32 bytes)
 *   lurk.hmac_sha256(key, data [, raw]) -> 64 hex digits (raw: the 32 bytes)
 *
 * Hex is lower case, as GitHub's X-Hub-Signature-256 and most webhook
 * senders write it. Comparing a signature should not leak where it differs:
 * scripts compare with lurk.equal(a, b) (constant time in the length).
 *   lurk.equal(a, b) -> boolean
 */
#include "lua/class.h"
#include "lua/modules.h"

#include <lauxlib.h>
#include <mbedtls/md.h>

static int push_digest(lua_State *L, const unsigned char *d, size_t n, int raw_idx)
{
    static const char hex[] = "0123456789abcdef";
    char out[2 * MBEDTLS_MD_MAX_SIZE];

    if (lua_toboolean(L, raw_idx)) {
        lua_pushlstring(L, (const char *)d, n);
        return 1;
    }
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex[d[i] >> 4];
        out[2 * i + 1] = hex[d[i] & 15];
    }
    lua_pushlstring(L, out, 2 * n);
    return 1;
}

/* lurk.sha256(data [, raw]) */
static int l_sha256(lua_State *L)
{
    size_t len;
    const char *p = lurk_lua_checklstring(L, 1, "lurk.sha256", &len);
    const mbedtls_md_info_t *md = mbedtls_md_info_from_type(MBEDTLS_MD_SHA256);
    unsigned char d[32];

    if (!md || mbedtls_md(md, (const unsigned char *)p, len, d) != 0)
        return lurk_lua_raise(L, "lurk.sha256", "SHA-256 is not available");
    return push_digest(L, d, sizeof d, 2);
}

/* lurk.hmac_sha256(key, data [, raw]) */
static int l_hmac_sha256(lua_State *L)
{
    size_t klen, len;
    const char *k = lurk_lua_checklstring(L, 1, "lurk.hmac_sha256", &klen);
    const char *p = lurk_lua_checklstring(L, 2, "lurk.hmac_sha256", &len);
    const mbedtls_md_info_t *md = mbedtls_md_info_from_type(MBEDTLS_MD_SHA256);
    unsigned char d[32];

    if (!md || mbedtls_md_hmac(md, (const unsigned char *)k, klen, (const unsigned char *)p, len, d) != 0)
        return lurk_lua_raise(L, "lurk.hmac_sha256", "HMAC-SHA256 is not available");
    return push_digest(L, d, sizeof d, 3);
}

/* lurk.equal(a, b): the time depends on the lengths only, not on where the
 * strings differ (a signature check must not tell an attacker how much of
 * a guess was right). */
static int l_equal(lua_State *L)
{
    size_t na, nb;
    const unsigned char *a = (const unsigned char *)lurk_lua_checklstring(L, 1, "lurk.equal", &na);
    const unsigned char *b = (const unsigned char *)lurk_lua_checklstring(L, 2, "lurk.equal", &nb);
    unsigned diff = na != nb;

    for (size_t i = 0; i < na; i++)
        diff |= a[i] ^ (i < nb ? b[i] : 0);
    lua_pushboolean(L, diff == 0);
    return 1;
}

void lurk_lua_open_digest(lua_State *L)
{
    lua_pushcfunction(L, l_sha256);
    lua_setfield(L, -2, "sha256");
    lua_pushcfunction(L, l_hmac_sha256);
    lua_setfield(L, -2, "hmac_sha256");
    lua_pushcfunction(L, l_equal);
    lua_setfield(L, -2, "equal");
}

/*
 * psl.c - the Public Suffix List for the cookie jar (lua/http/cookies.lua),
 * through libpsl. One function goes into the private table:
 *
 *   public_suffix(domain) -> boolean
 *
 * true when domain (lower case, no leading dot) is a public suffix: an
 * ICANN or private entry of the list ("co.uk", "github.io"), or a name the
 * list does not know under its implicit "*" rule ("test", "localhost"), as
 * browsers read it. The jar refuses a Domain attribute that is one, except
 * that the host itself may name it, and then the cookie is host-only
 * (RFC 6265 section 5.3 step 5).
 *
 * The list is loaded once per process, on first use, and never freed: it is
 * read-only after loading, so every runtime's thread shares it. psl_latest
 * takes the newer of the list compiled into libpsl and the distribution's
 * file (Debian's publicsuffix package), so a libpsl older than the system's
 * list does not decide. Without any list, every name counts as a public
 * suffix: a Domain attribute is then refused rather than trusted, as curl
 * does when libpsl fails.
 */
#include "lua/modules.h"

#include <lauxlib.h>
#include <libpsl.h>
#include <pthread.h>

static const psl_ctx_t *list;
static pthread_once_t list_once = PTHREAD_ONCE_INIT;

static void load_list(void)
{
    list = psl_latest(NULL);
    if (!list)
        list = psl_builtin();        /* static data, nothing to free */
}

/* public_suffix(domain) -> boolean */
static int psl_public_suffix(lua_State *L)
{
    const char *domain = luaL_checkstring(L, 1);

    pthread_once(&list_once, load_list);
    lua_pushboolean(L, !list || psl_is_public_suffix2(list, domain, PSL_TYPE_ANY));
    return 1;
}

void lurk_lua_open_psl(lua_State *L, int priv)
{
    lua_pushcfunction(L, psl_public_suffix);
    lua_setfield(L, priv, "public_suffix");
}

/*
 * verify.c - the certificate rules lurk adds to mbedTLS's chain check (see
 * verify.h for the rules and why each is here).
 *
 * mbedTLS calls lurk_tls_verify_cb once per certificate of the chain it
 * built, root first. A pass keeps the nameConstraints of the CAs it has seen
 * (pointers into their DER, which lives as long as the chain) and checks
 * every certificate below against all of them. Extensions are read with
 * mbedTLS's ASN.1 helpers straight from the certificate's DER: mbedTLS does
 * not parse nameConstraints at all.
 */
#include "tls/verify.h"

#include <arpa/inet.h>
#include <errno.h>
#include <mbedtls/asn1.h>
#include <mbedtls/oid.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* GeneralName tags (RFC 5280 section 4.2.1.6), as they appear implicitly
 * tagged inside subjectAltName and GeneralSubtree. */
enum {
    GN_OTHER = 0xa0, GN_EMAIL = 0x81, GN_DNS = 0x82, GN_X400 = 0xa3, GN_DIR = 0xa4,
    GN_EDI = 0xa5, GN_URI = 0x86, GN_IP = 0x87, GN_RID = 0x88,
};

static const char *gn_name(int tag)
{
    switch (tag) {
    case GN_OTHER: return "otherName";
    case GN_EMAIL: return "rfc822Name";
    case GN_DNS: return "dNSName";
    case GN_X400: return "x400Address";
    case GN_DIR: return "directoryName";
    case GN_EDI: return "ediPartyName";
    case GN_URI: return "uniformResourceIdentifier";
    case GN_IP: return "iPAddress";
    case GN_RID: return "registeredID";
    default: return "unknown";
    }
}

static int lower(int c)
{
    return c >= 'A' && c <= 'Z' ? c + 32 : c;
}

static bool same_ci(const char *a, const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (lower((unsigned char)a[i]) != lower((unsigned char)b[i]))
            return false;
    return true;
}

static size_t drop_dot(const char *p, size_t len)
{
    return len > 1 && p[len - 1] == '.' ? len - 1 : len;
}

int lurk_tls_verify_init(struct lurk_tls_verify *v, const char *host)
{
    size_t len = host ? strlen(host) : 0;

    memset(v, 0, sizeof *v);
    if (len == 0 || len >= sizeof v->host)
        return -EINVAL;
    if (inet_pton(AF_INET, host, v->ip) == 1) {
        v->ip_len = 4;
        return 0;
    }
    if (inet_pton(AF_INET6, host, v->ip) == 1) {
        v->ip_len = 16;
        return 0;
    }
    len = drop_dot(host, len);
    for (size_t i = 0; i < len; i++)
        v->host[i] = (char)lower((unsigned char)host[i]);
    v->host[len] = '\0';
    return 0;
}

const char *lurk_tls_verify_sni(const struct lurk_tls_verify *v)
{
    return v->ip_len || !v->host[0] ? NULL : v->host;
}

const char *lurk_tls_verify_reason(const struct lurk_tls_verify *v)
{
    return v->reason;
}

/* ---- host names ---- */

bool lurk_tls_name_match(const char *pattern, size_t plen, const char *host, size_t hlen)
{
    const char *rest, *dot;
    size_t rlen;

    plen = drop_dot(pattern, plen);
    hlen = drop_dot(host, hlen);
    if (plen == 0 || hlen == 0)
        return false;
    if (!memchr(pattern, '*', plen))
        return plen == hlen && same_ci(pattern, host, plen);
    /* A wildcard: "*." then at least two labels, matching one whole label. */
    if (plen < 3 || pattern[0] != '*' || pattern[1] != '.')
        return false;
    rest = pattern + 2;
    rlen = plen - 2;
    dot = memchr(rest, '.', rlen);
    if (memchr(rest, '*', rlen) || !dot || dot == rest || dot == rest + rlen - 1 ||
        memmem(rest, rlen, "..", 2))    /* every label after it non-empty */
        return false;
    dot = memchr(host, '.', hlen);
    if (!dot || dot == host)          /* the wildcard stands for a non-empty label */
        return false;
    return (size_t)(host + hlen - (dot + 1)) == rlen && same_ci(dot + 1, rest, rlen);
}

/* ---- describing certificates ---- */

/* "CN=..." of a certificate, or its whole subject when it has no CN. */
static void subject_of(const mbedtls_x509_crt *crt, char *buf, size_t size)
{
    for (const mbedtls_x509_name *n = &crt->subject; n; n = n->next) {
        if (MBEDTLS_OID_CMP(MBEDTLS_OID_AT_CN, &n->oid) == 0) {
            snprintf(buf, size, "CN=%.*s", (int)n->val.len, (const char *)n->val.p);
            return;
        }
    }
    if (mbedtls_x509_dn_gets(buf, size, &crt->subject) < 0 || !buf[0])
        snprintf(buf, size, "(no subject)");
}

/* "certificate CN=...", "intermediate CN=...", "root CN=..." */
static void who(const struct lurk_tls_verify *v, const mbedtls_x509_crt *crt, int depth,
                uint32_t flags, char *buf, size_t size)
{
    char subj[128];
    const char *role = depth == 0 ? "certificate"
                     : depth == v->top && !(flags & MBEDTLS_X509_BADCERT_NOT_TRUSTED) ? "root"
                     : "intermediate";

    subject_of(crt, subj, sizeof subj);
    snprintf(buf, size, "%s %s", role, subj);
}

static const char *eku_name(const mbedtls_x509_buf *oid, char *buf, size_t size)
{
    static const struct { const char *oid; size_t len; const char *name; } known[] = {
        { MBEDTLS_OID_SERVER_AUTH, sizeof MBEDTLS_OID_SERVER_AUTH - 1, "serverAuth" },
        { MBEDTLS_OID_CLIENT_AUTH, sizeof MBEDTLS_OID_CLIENT_AUTH - 1, "clientAuth" },
        { MBEDTLS_OID_CODE_SIGNING, sizeof MBEDTLS_OID_CODE_SIGNING - 1, "codeSigning" },
        { MBEDTLS_OID_EMAIL_PROTECTION, sizeof MBEDTLS_OID_EMAIL_PROTECTION - 1, "emailProtection" },
        { MBEDTLS_OID_TIME_STAMPING, sizeof MBEDTLS_OID_TIME_STAMPING - 1, "timeStamping" },
        { MBEDTLS_OID_OCSP_SIGNING, sizeof MBEDTLS_OID_OCSP_SIGNING - 1, "OCSPSigning" },
    };

    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (oid->len == known[i].len && memcmp(oid->p, known[i].oid, oid->len) == 0)
            return known[i].name;
    if (mbedtls_oid_get_numeric_string(buf, size, oid) < 0)
        snprintf(buf, size, "?");
    return buf;
}

/* The certificate's extendedKeyUsage list, comma-separated. */
static void eku_list(const mbedtls_x509_crt *crt, char *buf, size_t size)
{
    size_t used = 0;

    buf[0] = '\0';
    for (const mbedtls_x509_sequence *s = &crt->ext_key_usage; s && s->buf.p; s = s->next) {
        char num[64];
        int n = snprintf(buf + used, size - used, "%s%s", used ? ", " : "",
                         eku_name(&s->buf, num, sizeof num));

        if (n < 0 || (size_t)n >= size - used)
            break;
        used += (size_t)n;
    }
}

/* Keeps the first failure of the pass. */
static void fail(struct lurk_tls_verify *v, uint32_t *flags, uint32_t flag, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void fail(struct lurk_tls_verify *v, uint32_t *flags, uint32_t flag, const char *fmt, ...)
{
    va_list ap;

    *flags |= flag;
    if (v->reason[0])
        return;
    va_start(ap, fmt);
    vsnprintf(v->reason, sizeof v->reason, fmt, ap);
    va_end(ap);
}

/* ---- extendedKeyUsage ---- */

static void check_eku(struct lurk_tls_verify *v, const mbedtls_x509_crt *crt, int depth,
                      const char *name, uint32_t *flags)
{
    char list[200];

    if (!mbedtls_x509_crt_has_ext_type(crt, MBEDTLS_X509_EXT_EXTENDED_KEY_USAGE) ||
        mbedtls_x509_crt_check_extended_key_usage(crt, MBEDTLS_OID_SERVER_AUTH,
                                                  MBEDTLS_OID_SIZE(MBEDTLS_OID_SERVER_AUTH)) == 0)
        return;
    eku_list(crt, list, sizeof list);
    if (depth > 0)
        fail(v, flags, MBEDTLS_X509_BADCERT_OTHER,
             "%s may not issue server certificates (extendedKeyUsage: %s)", name, list);
    else
        fail(v, flags, MBEDTLS_X509_BADCERT_EXT_KEY_USAGE,
             "%s is not a server certificate (extendedKeyUsage: %s)", name, list);
}

/* ---- nameConstraints ---- */

/* Finds an extension's value (inside its OCTET STRING) in the certificate's
 * DER; mbedTLS keeps the parsed form of some extensions private and does not
 * parse others at all. */
static bool find_ext(const mbedtls_x509_crt *crt, const char *want, size_t want_len,
                     const unsigned char **val, size_t *vlen)
{
    unsigned char *p = crt->v3_ext.p, *end;
    size_t len;

    if (!p || crt->v3_ext.len == 0)
        return false;
    end = p + crt->v3_ext.len;
    if (mbedtls_asn1_get_tag(&p, end, &len, MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE) != 0)
        return false;
    end = p + len;
    while (p < end) {
        unsigned char *ext_end;
        mbedtls_x509_buf oid;
        int critical = 0;

        if (mbedtls_asn1_get_tag(&p, end, &len, MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE) != 0)
            return false;
        ext_end = p + len;
        if (mbedtls_asn1_get_tag(&p, ext_end, &oid.len, MBEDTLS_ASN1_OID) != 0)
            return false;
        oid.p = p;
        p += oid.len;
        if (mbedtls_asn1_get_bool(&p, ext_end, &critical) != 0)
            critical = 0;             /* absent: DEFAULT FALSE (p has not moved) */
        if (mbedtls_asn1_get_tag(&p, ext_end, &len, MBEDTLS_ASN1_OCTET_STRING) != 0)
            return false;
        if (oid.len == want_len && memcmp(oid.p, want, want_len) == 0) {
            *val = p;
            *vlen = len;
            return true;
        }
        p = ext_end;
    }
    return false;
}

/* RFC 5280: a DNS constraint is satisfied by the name itself and by any
 * name made by adding labels on its left; a leading dot (a common variant)
 * means subdomains only; empty means every name. */
static bool dns_within(const unsigned char *c, size_t clen, const char *n, size_t nlen)
{
    clen = drop_dot((const char *)c, clen);
    nlen = drop_dot(n, nlen);
    if (clen == 0)
        return true;
    if (c[0] == '.')
        return nlen > clen && same_ci(n + nlen - clen, (const char *)c, clen);
    if (nlen == clen)
        return same_ci(n, (const char *)c, clen);
    return nlen > clen && n[nlen - clen - 1] == '.' && same_ci(n + nlen - clen, (const char *)c, clen);
}

/* Whether an excluded DNS subtree catches a name: a wildcard name is caught
 * when any name it stands for would be. */
static bool dns_excluded(const unsigned char *c, size_t clen, const char *n, size_t nlen)
{
    const unsigned char *dot;

    if (dns_within(c, clen, n, nlen))   /* "*.R" as a name under c covers all of *.R */
        return true;
    nlen = drop_dot(n, nlen);
    if (nlen < 3 || n[0] != '*' || n[1] != '.')
        return false;
    /* "*.R" stands for every one-label name in front of R: c, when it is
     * one of them, is excluded and could be presented under the wildcard. */
    clen = drop_dot((const char *)c, clen);
    dot = memchr(c, '.', clen);
    return dot && dot != c && clen - (size_t)(dot + 1 - c) == nlen - 2 &&
           same_ci((const char *)dot + 1, n + 2, nlen - 2);
}

/* An iPAddress constraint is an address and a mask: 8 bytes for IPv4, 32
 * for IPv6. */
static bool ip_within(const unsigned char *c, size_t clen, const unsigned char *ip, size_t ilen)
{
    if (clen != 2 * ilen)
        return false;
    for (size_t i = 0; i < ilen; i++)
        if ((ip[i] & c[ilen + i]) != (c[i] & c[ilen + i]))
            return false;
    return true;
}

struct name {
    int type;                         /* GN_DNS or GN_IP */
    const char *p;
    size_t len;
};

static void show_name(const struct name *n, char *buf, size_t size)
{
    char ip[INET6_ADDRSTRLEN] = "?";

    if (n->type == GN_DNS) {
        snprintf(buf, size, "%.*s", (int)n->len, n->p);
        return;
    }
    if (n->len == 4 || n->len == 16)
        inet_ntop(n->len == 4 ? AF_INET : AF_INET6, n->p, ip, sizeof ip);
    snprintf(buf, size, "%s", ip);
}

enum nc_verdict { NC_OK, NC_EXCLUDED, NC_NOT_PERMITTED, NC_UNCHECKABLE, NC_MALFORMED };

/*
 * Checks one name against one CA's nameConstraints (the extension's value);
 * n NULL checks only that every subtree is one lurk can evaluate. has_email:
 * the certificate carries e-mail names, which rfc822Name subtrees would
 * constrain and lurk does not check. On NC_UNCHECKABLE *form is the
 * GeneralName tag lurk cannot evaluate.
 */
static enum nc_verdict check_nc(const unsigned char *val, size_t vlen, const struct name *n,
                                bool has_email, int *form)
{
    unsigned char *p = (unsigned char *)val, *end = p + vlen;
    size_t len;
    bool permitted_seen = false, permitted_ok = false;

    if (mbedtls_asn1_get_tag(&p, end, &len, MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE) != 0 ||
        p + len != end)
        return NC_MALFORMED;
    while (p < end) {
        int part = *p;                /* [0] permittedSubtrees, [1] excludedSubtrees */
        unsigned char *part_end;

        if ((part != 0xa0 && part != 0xa1) || mbedtls_asn1_get_tag(&p, end, &len, part) != 0 || len == 0)
            return NC_MALFORMED;
        part_end = p + len;
        while (p < part_end) {
            unsigned char *sub_end, *base;
            size_t blen;
            int tag;
            bool hit;

            if (mbedtls_asn1_get_tag(&p, part_end, &len, MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE) != 0)
                return NC_MALFORMED;
            sub_end = p + len;
            if (p >= sub_end)
                return NC_MALFORMED;
            tag = *p;
            if (mbedtls_asn1_get_tag(&p, sub_end, &blen, tag) != 0)
                return NC_MALFORMED;
            base = p;
            p = sub_end;              /* minimum and maximum: unused in this profile */
            if (tag == GN_EMAIL && !has_email)
                continue;             /* constrains e-mail names only: there are none */
            if (tag != GN_DNS && tag != GN_IP) {
                *form = tag;
                return NC_UNCHECKABLE;
            }
            if (!n || n->type != tag)
                continue;             /* a subtree constrains names of its own type only */
            if (tag == GN_DNS)
                hit = part == 0xa1 ? dns_excluded(base, blen, n->p, n->len) : dns_within(base, blen, n->p, n->len);
            else
                hit = ip_within(base, blen, (const unsigned char *)n->p, n->len);
            if (hit && part == 0xa1)
                return NC_EXCLUDED;
            if (part == 0xa0) {
                permitted_seen = true;
                permitted_ok = permitted_ok || hit;
            }
        }
    }
    return permitted_seen && !permitted_ok ? NC_NOT_PERMITTED : NC_OK;
}

/* Whether the certificate carries e-mail names (subjectAltName rfc822Name,
 * or emailAddress in the subject). */
static bool has_email(const mbedtls_x509_crt *crt)
{
    for (const mbedtls_x509_name *dn = &crt->subject; dn; dn = dn->next)
        if (MBEDTLS_OID_CMP(MBEDTLS_OID_PKCS9_EMAIL, &dn->oid) == 0)
            return true;
    for (const mbedtls_x509_sequence *s = &crt->subject_alt_names; s && s->buf.p; s = s->next)
        if (s->buf.tag == GN_EMAIL)
            return true;
    return false;
}

/* Checks n (NULL: the subtrees' forms only) against constraint i and
 * reports a failure; returns false then. */
static bool nc_ok(struct lurk_tls_verify *v, int i, const struct name *n, bool email, const char *name,
                  uint32_t *flags)
{
    char shown[256] = "";
    int form = 0;

    switch (check_nc(v->nc[i].p, v->nc[i].len, n, email, &form)) {
    case NC_OK:
        return true;
    case NC_EXCLUDED:
        show_name(n, shown, sizeof shown);
        fail(v, flags, MBEDTLS_X509_BADCERT_OTHER,
             "%s: the name %s is excluded by the nameConstraints of %s", name, shown, v->nc[i].who);
        break;
    case NC_NOT_PERMITTED:
        show_name(n, shown, sizeof shown);
        fail(v, flags, MBEDTLS_X509_BADCERT_OTHER,
             "%s: the name %s is outside the names permitted by the nameConstraints of %s",
             name, shown, v->nc[i].who);
        break;
    case NC_UNCHECKABLE:
        fail(v, flags, MBEDTLS_X509_BADCERT_OTHER,
             "%s has nameConstraints on %s names, which lurk cannot check: the chain is refused",
             v->nc[i].who, gn_name(form));
        break;
    case NC_MALFORMED:
        fail(v, flags, MBEDTLS_X509_BADCERT_OTHER, "%s has malformed nameConstraints", v->nc[i].who);
        break;
    }
    return false;
}

/* Every constraint of the CAs above applies to every DNS and IP name the
 * certificate is for (all its subjectAltName entries, and the host for the
 * leaf): each is checked on its own, so no number of names is too many. */
static void check_name_constraints(struct lurk_tls_verify *v, const mbedtls_x509_crt *crt,
                                   int depth, const char *name, uint32_t *flags)
{
    bool email = v->n_nc > 0 && has_email(crt);
    struct name host = v->ip_len ? (struct name){ GN_IP, (const char *)v->ip, v->ip_len }
                                 : (struct name){ GN_DNS, v->host, strlen(v->host) };

    for (int i = 0; i < v->n_nc; i++) {
        if (!nc_ok(v, i, NULL, email, name, flags))
            return;
        for (const mbedtls_x509_sequence *s = &crt->subject_alt_names; s && s->buf.p; s = s->next) {
            struct name n = { s->buf.tag, (const char *)s->buf.p, s->buf.len };

            if ((n.type == GN_DNS || n.type == GN_IP) && !nc_ok(v, i, &n, email, name, flags))
                return;
        }
        if (depth == 0 && !nc_ok(v, i, &host, email, name, flags))
            return;
    }
}

/* ---- why a chain does not reach a trusted root ---- */

/* basicConstraints: *ca and *pathlen (-1: no limit); false when absent. */
static bool basic_constraints(const mbedtls_x509_crt *crt, int *ca, int *pathlen)
{
    const unsigned char *val;
    unsigned char *p, *end;
    size_t len, vlen;

    *ca = 0;
    *pathlen = -1;
    if (!find_ext(crt, MBEDTLS_OID_BASIC_CONSTRAINTS, MBEDTLS_OID_SIZE(MBEDTLS_OID_BASIC_CONSTRAINTS), &val, &vlen))
        return false;
    p = (unsigned char *)val;
    end = p + vlen;
    if (mbedtls_asn1_get_tag(&p, end, &len, MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE) != 0)
        return true;
    end = p + len;
    if (p < end && *p == MBEDTLS_ASN1_BOOLEAN && mbedtls_asn1_get_bool(&p, end, ca) != 0)
        return true;
    if (p < end && mbedtls_asn1_get_int(&p, end, pathlen) != 0)
        *pathlen = -1;
    return true;
}

/*
 * The chain mbedTLS built stops at `top`, which no trusted CA signed. Says
 * why in words: the certificate that should have issued it was missing, or
 * was sent but may not issue certificates. leaf heads the list of
 * certificates the server sent; the diagnosis replaces mbedTLS's "not
 * correctly signed by the trusted CA".
 */
static void explain_untrusted(struct lurk_tls_verify *v, const mbedtls_x509_crt *leaf, uint32_t *flags)
{
    const mbedtls_x509_crt *top = v->untrusted, *issuer = NULL;
    char top_name[160], iss_name[160];
    int ca, pathlen;

    who(v, top, v->top, MBEDTLS_X509_BADCERT_NOT_TRUSTED, top_name, sizeof top_name);
    v->reason[0] = '\0';
    if (top->issuer_raw.len == top->subject_raw.len &&
        memcmp(top->issuer_raw.p, top->subject_raw.p, top->subject_raw.len) == 0) {
        fail(v, flags, 0, "%s is self-signed and not in the trust store", top_name);
        return;
    }
    for (const mbedtls_x509_crt *c = leaf; c && c->raw.p; c = c->next)
        if (c != top && c->subject_raw.len == top->issuer_raw.len &&
            memcmp(c->subject_raw.p, top->issuer_raw.p, c->subject_raw.len) == 0)
            issuer = c;
    if (!issuer) {
        if (mbedtls_x509_dn_gets(iss_name, sizeof iss_name, &top->issuer) < 0)
            snprintf(iss_name, sizeof iss_name, "?");
        fail(v, flags, 0, "%s was issued by %s, which is not in the trust store and was not sent by "
             "the server (an unknown CA, or a missing intermediate certificate)", top_name, iss_name);
        return;
    }
    who(v, issuer, v->top + 1, MBEDTLS_X509_BADCERT_NOT_TRUSTED, iss_name, sizeof iss_name);
    if (!basic_constraints(issuer, &ca, &pathlen)) {
        fail(v, flags, 0, "%s, which issued %s, is not a CA (no basicConstraints)", iss_name, top_name);
    } else if (!ca) {
        fail(v, flags, 0, "%s, which issued %s, is not a CA (basicConstraints CA:FALSE)", iss_name, top_name);
    } else if (mbedtls_x509_crt_check_key_usage(issuer, MBEDTLS_X509_KU_KEY_CERT_SIGN) != 0) {
        fail(v, flags, 0, "%s, which issued %s, may not sign certificates (keyUsage without keyCertSign)",
             iss_name, top_name);
    } else if (pathlen >= 0 && pathlen < v->top) {
        fail(v, flags, 0, "%s allows %d intermediate certificate%s below it (pathLenConstraint); "
             "the chain has %d", iss_name, pathlen, pathlen == 1 ? "" : "s", v->top);
    } else {
        fail(v, flags, 0, "%s: the signature of %s does not verify, or %s does not lead to a trusted root",
             iss_name, top_name, iss_name);
    }
}

/* ---- mbedTLS's verdict on one certificate, in words ---- */

static void show_time(const mbedtls_x509_time *t, char *buf, size_t size)
{
    snprintf(buf, size, "%04d-%02d-%02d %02d:%02d:%02d UTC", t->year, t->mon, t->day, t->hour, t->min, t->sec);
}

static void explain_flags(struct lurk_tls_verify *v, const mbedtls_x509_crt *crt, const char *name,
                          uint32_t *flags)
{
    char when[40], info[300], *nl;

    if (*flags & MBEDTLS_X509_BADCERT_EXPIRED) {
        show_time(&crt->valid_to, when, sizeof when);
        fail(v, flags, 0, "%s expired at %s", name, when);
    } else if (*flags & MBEDTLS_X509_BADCERT_FUTURE) {
        show_time(&crt->valid_from, when, sizeof when);
        fail(v, flags, 0, "%s is not valid until %s (in the future)", name, when);
    } else if (*flags & MBEDTLS_X509_BADCERT_BAD_MD) {
        fail(v, flags, 0, "%s is signed with a hash lurk does not accept (SHA-1 or weaker: "
             "SHA-256 or better is needed)", name);
    } else if (*flags & MBEDTLS_X509_BADCERT_BAD_KEY) {
        fail(v, flags, 0, "%s has a key lurk does not accept (RSA under 2048 bits, or an "
             "unsupported curve)", name);
    } else if (*flags & MBEDTLS_X509_BADCERT_BAD_PK) {
        fail(v, flags, 0, "%s uses a public-key algorithm lurk does not accept", name);
    } else {
        mbedtls_x509_crt_verify_info(info, sizeof info, "", *flags);
        while ((nl = strchr(info, '\n')) != NULL)
            *nl = nl[1] ? ';' : '\0';
        fail(v, flags, 0, "%s: %s", name, info);
    }
}

/* ---- the host ---- */

static void check_host(struct lurk_tls_verify *v, const mbedtls_x509_crt *crt, const char *name,
                       uint32_t *flags)
{
    char names[240];
    size_t used = 0;
    int more = 0;                     /* names that did not fit in names[] */
    const char *host = v->host;
    char ip[INET6_ADDRSTRLEN];

    /* lurk's verdict replaces mbedTLS's (which falls back to the CN). */
    *flags &= ~(uint32_t)MBEDTLS_X509_BADCERT_CN_MISMATCH;
    if (v->ip_len) {
        inet_ntop(v->ip_len == 4 ? AF_INET : AF_INET6, v->ip, ip, sizeof ip);
        host = ip;
    }
    if (!mbedtls_x509_crt_has_ext_type(crt, MBEDTLS_X509_EXT_SUBJECT_ALT_NAME)) {
        fail(v, flags, MBEDTLS_X509_BADCERT_CN_MISMATCH,
             "the %s has no subjectAltName; names in CN are not trusted (RFC 9525): "
             "it must be reissued with a subjectAltName for %s", name, host);
        return;
    }
    names[0] = '\0';
    for (const mbedtls_x509_sequence *s = &crt->subject_alt_names; s && s->buf.p; s = s->next) {
        struct name n = { s->buf.tag, (const char *)s->buf.p, s->buf.len };
        char one[128];
        int w;

        if (n.type == GN_DNS && !v->ip_len && lurk_tls_name_match(n.p, n.len, v->host, strlen(v->host)))
            return;
        if (n.type == GN_IP && v->ip_len && n.len == v->ip_len && memcmp(n.p, v->ip, n.len) == 0)
            return;
        if (n.type != GN_DNS && n.type != GN_IP)
            continue;
        show_name(&n, one, sizeof one);
        w = more ? -1 : snprintf(names + used, sizeof names - used, "%s%s:%s", used ? ", " : "",
                                 n.type == GN_DNS ? "DNS" : "IP", one);
        if (w > 0 && (size_t)w < sizeof names - used - 24) {
            used += (size_t)w;
        } else {
            names[used] = '\0';      /* no room: counted, never silently dropped */
            more++;
        }
    }
    if (more)
        snprintf(names + used, sizeof names - used, "%sand %d more", used ? ", " : "", more);
    fail(v, flags, MBEDTLS_X509_BADCERT_CN_MISMATCH,
         "%s does not match host %s: its subjectAltName has %s (the CN is not used)",
         name, host, names[0] ? names : "no DNS name or IP address");
}

/* ---- the callbacks ---- */

int lurk_tls_verify_cb(void *arg, mbedtls_x509_crt *crt, int depth, uint32_t *flags)
{
    struct lurk_tls_verify *v = arg;
    char name[160];
    const unsigned char *nc;
    size_t nc_len;

    v->certs_seen++;
    if (!v->in_pass) {                /* the root (or the chain's top) comes first */
        v->in_pass = true;
        v->top = depth;
        v->n_nc = 0;
        v->untrusted = NULL;
        v->reason[0] = '\0';
    }
    who(v, crt, depth, *flags, name, sizeof name);
    if (depth == 0)
        check_host(v, crt, name, flags);
    if (depth == v->top && (*flags & MBEDTLS_X509_BADCERT_NOT_TRUSTED))
        v->untrusted = crt;           /* explained once the leaf shows what was sent */
    if (*flags && !v->reason[0] && v->untrusted != crt)
        explain_flags(v, crt, name, flags);   /* mbedTLS's own verdict, in words */
    check_eku(v, crt, depth, name, flags);
    check_name_constraints(v, crt, depth, name, flags);
    if (depth > 0 && find_ext(crt, MBEDTLS_OID_NAME_CONSTRAINTS, MBEDTLS_OID_SIZE(MBEDTLS_OID_NAME_CONSTRAINTS),
                              &nc, &nc_len)) {
        if (v->n_nc == LURK_VERIFY_MAX_NC) {
            fail(v, flags, MBEDTLS_X509_BADCERT_OTHER, "more than %d CAs with nameConstraints in the chain",
                 LURK_VERIFY_MAX_NC);
        } else {
            v->nc[v->n_nc].p = nc;
            v->nc[v->n_nc].len = nc_len;
            snprintf(v->nc[v->n_nc].who, sizeof v->nc[v->n_nc].who, "%s", name);
            v->n_nc++;
        }
    }
    if (depth == 0 && v->untrusted)
        explain_untrusted(v, crt, flags);
    if (depth == 0)
        v->in_pass = false;
    return 0;
}

int lurk_tls_crt_ext_cb(void *ctx, mbedtls_x509_crt const *crt, mbedtls_x509_buf const *oid,
                        int critical, const unsigned char *p, const unsigned char *end)
{
    (void)ctx, (void)crt, (void)critical, (void)p, (void)end;
    return MBEDTLS_OID_CMP(MBEDTLS_OID_NAME_CONSTRAINTS, oid) == 0 ? 0 : MBEDTLS_ERR_X509_FEATURE_UNAVAILABLE;
}

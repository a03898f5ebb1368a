#!/bin/sh
# Generates the PKI of certs_test.lua (the certificate matrix) into directory $1.
# Idempotent: a stamp file says it is complete. Keys are EC P-256 except where
# RSA is the point (rsa2048, rsa1024).
#
#   root.pem                "lurk matrix root": the only certificate the clients trust
#   int.pem                 "lurk matrix int", under root: issues the ordinary leaves
#   int.<variant>.pem       intermediates that differ in one way (see the int calls below)
#   pathlen_chain.pem       int.pathlen_sub + int.pathlen0 (pathlen:0), as the server sends them
#   other_root.pem          a root no client is given, and int.other under it
#   nc_root.pem             a root with a critical nameConstraints (permitted
#                           example.test), trusted only by the cases that say so
#   <leaf>.pem, <leaf>.key  the leaves (see the leaf calls below); each leaf's
#                           CN is "leaf <name>" unless the case is about the CN,
#                           so only the subjectAltName can match
set -eu
d=$(mkdir -p "$1" && cd "$1" && pwd)
. "$(dirname "$0")/ca.sh"
cd "$d"
stamp=.pki-done-4
[ -f $stamp ] && exit 0

day() { date -u -d "$1" +%Y%m%d%H%M%SZ; }
past=$(day '-1 day') soon=$(day '+30 days')          # valid: from past to soon
long_ago=$(day '-30 days') later=$(day '+10 days') much_later=$(day '+40 days')

eckey() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1.key" 2>/dev/null; }
rsakey() { openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:"$2" -out "$1.key" 2>/dev/null; }

# Extension sections for `openssl ca -extfile ext.cnf -extensions <section>`.
# The leaf's subjectAltName comes from $SAN (set for every call: OpenSSL
# expands the variable in every section while loading the file).
ca_ext='basicConstraints=critical,CA:TRUE
keyUsage=critical,keyCertSign,cRLSign'
ids='subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid'
cat >ext.cnf <<EOF
[int]
$ca_ext
$ids
[int_eku_server]
$ca_ext
extendedKeyUsage=serverAuth
$ids
[int_eku_email]
$ca_ext
extendedKeyUsage=emailProtection
$ids
[int_nc_permitted_crit]
$ca_ext
nameConstraints=critical,permitted;DNS:example.test
$ids
[int_nc_permitted_ip]
$ca_ext
nameConstraints=critical,permitted;IP:127.0.0.0/255.0.0.0
$ids
[int_nc_permitted_noncrit]
$ca_ext
nameConstraints=permitted;DNS:example.test
$ids
[int_nc_excluded_noncrit]
$ca_ext
nameConstraints=excluded;DNS:good.example.test
$ids
[int_nc_excluded_crit]
$ca_ext
nameConstraints=critical,excluded;DNS:good.example.test
$ids
[int_nc_excluded_ip]
$ca_ext
nameConstraints=critical,excluded;IP:127.0.0.0/255.0.0.0
$ids
[int_nc_dirname]
$ca_ext
nameConstraints=critical,permitted;dirName:nc_dir
$ids
[nc_dir]
CN=leaf nc_dirname
[int_not_ca]
basicConstraints=critical,CA:FALSE
keyUsage=critical,keyCertSign,cRLSign
$ids
[int_no_bc]
keyUsage=critical,keyCertSign,cRLSign
$ids
[int_no_certsign]
basicConstraints=critical,CA:TRUE
keyUsage=critical,digitalSignature
$ids
[int_pathlen0]
basicConstraints=critical,CA:TRUE,pathlen:0
keyUsage=critical,keyCertSign,cRLSign
$ids
[leaf]
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=\${ENV::SAN}
$ids
[leaf_client]
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth
subjectAltName=\${ENV::SAN}
$ids
[leaf_no_san]
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
$ids
EOF
SAN=DNS:unused
export SAN


root() { # name subject [openssl req options]
    n=$1 subj=$2
    shift 2
    eckey "$n"
    openssl req -x509 -new -key "$n.key" -out "$n.pem" -days 3650 -subj "/CN=$subj" \
        -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign "$@" 2>/dev/null
    ca_db "$n"
}

# sign issuer name cn section start end [openssl ca options]: name.pem from name.key
sign() {
    i=$1 n=$2 cn=$3 sect=$4 start=$5 end=$6
    shift 6
    openssl req -new -key "$n.key" -out "$n.csr" -subj "/CN=x" 2>/dev/null
    openssl ca -batch -config "$i.cnf" -in "$n.csr" -out "$n.pem" -subj "/CN=$cn" \
        -extfile ext.cnf -extensions "$sect" -startdate "$start" -enddate "$end" -notext "$@" 2>/dev/null
    rm -f "$n.csr"
}

int() { # name cn section [issuer [start end]]
    eckey "$1"
    sign "${4:-root}" "$1" "$2" "$3" "${5:-$past}" "${6:-$soon}"
    ca_db "$1"
}

# leaf name issuer san [cn [section [start end [openssl ca options]]]]: name.pem,
# with an EC key unless name.key exists already. san "" for none; cn "" for
# "leaf <name>".
leaf() {
    n=$1 i=$2 SAN=${3:-DNS:unused} cn=${4:-leaf $1} sect=${5:-leaf} start=${6:-$past} end=${7:-$soon}
    shift $(($# < 7 ? $# : 7))
    [ -f "$n.key" ] || eckey "$n"
    sign "$i" "$n" "$cn" "$sect" "$start" "$end" "$@"
}

root root "lurk matrix root"
root other_root "lurk matrix other root"
root nc_root "lurk matrix root nc example.test" -addext "nameConstraints=critical,permitted;DNS:example.test"

int int "lurk matrix int" int
int int.other "lurk matrix other int" int other_root
int int.eku_server "lurk matrix int eku serverAuth" int_eku_server
int int.eku_email "lurk matrix int eku emailProtection" int_eku_email
int int.nc_permitted_crit "lurk matrix int nc permitted example.test" int_nc_permitted_crit
int int.nc_permitted_ip "lurk matrix int nc permitted 127.0.0.0 mask 8" int_nc_permitted_ip
int int.nc_permitted_noncrit "lurk matrix int nc permitted example.test (non-critical)" int_nc_permitted_noncrit
int int.nc_excluded_noncrit "lurk matrix int nc excluded good (non-critical)" int_nc_excluded_noncrit
int int.nc_excluded_crit "lurk matrix int nc excluded good" int_nc_excluded_crit
int int.nc_excluded_ip "lurk matrix int nc excluded 127.0.0.0 mask 8" int_nc_excluded_ip
int int.nc_dirname "lurk matrix int nc permitted dirName" int_nc_dirname
int int.not_ca "lurk matrix int CA:FALSE" int_not_ca
int int.no_bc "lurk matrix int no basicConstraints" int_no_bc
int int.no_certsign "lurk matrix int no keyCertSign" int_no_certsign
int int.expired "lurk matrix int expired" int root "$long_ago" "$past"
int int.future "lurk matrix int not yet valid" int root "$later" "$much_later"
int int.pathlen0 "lurk matrix int pathlen 0" int_pathlen0
int int.pathlen_sub "lurk matrix int under pathlen 0" int int.pathlen0
cat int.pathlen_sub.pem int.pathlen0.pem >pathlen_chain.pem

good=DNS:good.example.test
leaf good int $good
leaf wildcard int 'DNS:*.example.test'
leaf ipv4 int IP:127.0.0.1
leaf ipv6 int IP:::1
leaf int_eku_server int.eku_server $good
leaf nc_permitted_crit int.nc_permitted_crit $good
leaf nc_permitted_ip int.nc_permitted_ip IP:127.0.0.1
rsakey rsa2048 2048
leaf rsa2048 int $good
leaf expired_leaf int $good "" leaf "$long_ago" "$past"
leaf future_leaf int $good "" leaf "$later" "$much_later"
leaf expired_int int.expired $good
leaf future_int int.future $good
leaf wrong_host int DNS:other.example.test
leaf wc_partial int 'DNS:f*.example.test'
leaf wc_tld int 'DNS:*.test'
leaf wc_star int 'DNS:*'
leaf ip_as_dns int DNS:127.0.0.1
leaf cn_only int "" good.example.test leaf_no_san
leaf cn_right_san_wrong int DNS:other.example.test good.example.test
eckey self_signed
openssl req -x509 -new -key self_signed.key -out self_signed.pem -days 30 -subj /CN=good.example.test \
    -addext basicConstraints=critical,CA:FALSE -addext "subjectAltName=$good" 2>/dev/null
leaf unknown_root int.other $good
leaf int_not_ca int.not_ca $good
leaf int_no_bc int.no_bc $good
leaf int_no_certsign int.no_certsign $good
leaf pathlen int.pathlen_sub $good
leaf leaf_eku_client int $good "" leaf_client
leaf int_eku_email int.eku_email $good
leaf nc_excluded_noncrit int.nc_excluded_noncrit $good
leaf nc_excluded_crit int.nc_excluded_crit $good
many=$(i=1; while [ $i -le 70 ]; do printf 'DNS:n%d.example.test,' $i; i=$((i + 1)); done)
leaf nc_excluded_many_sans int.nc_excluded_crit "${many}$good"
leaf nc_permitted_outside int.nc_permitted_crit DNS:good.other.test
leaf nc_permitted_noncrit int.nc_permitted_noncrit $good
leaf nc_permitted_noncrit_outside int.nc_permitted_noncrit DNS:good.other.test
leaf nc_excluded_ip int.nc_excluded_ip IP:127.0.0.1
leaf nc_dirname int.nc_dirname $good
leaf nc_root_permitted nc_root $good
leaf nc_root_outside nc_root DNS:good.other.test
leaf sha1 int $good "" leaf "$past" "$soon" -md sha1
rsakey rsa1024 1024
leaf rsa1024 int $good
touch $stamp

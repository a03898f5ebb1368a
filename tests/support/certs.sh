#!/bin/sh
# Generates the certificates lurk's TLS tests use, into directory $1:
#   ca.pem                  the test CA (trusted by the tests through tls.cafile)
#   good.{pem,key}          localhost + 127.0.0.1, valid now
#   expired, future         valid only in the past / only in the future
#   wronghost               for wrong.example only
#   ipmismatch              for IP 127.0.0.2 only
#   selfsigned              not issued by the CA
#   unknownca               issued by a CA the tests do not trust
#   client                  a client certificate from the test CA
# All keys are EC P-256, so the servers offer ECDHE-ECDSA suites.
set -eu
d=$(mkdir -p "$1" && cd "$1" && pwd)
. "$(dirname "$0")/ca.sh"
cd "$d"
[ -f .done-2 ] && exit 0

key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1.key" 2>/dev/null; }

mkca() { # name subject
    key "$1"
    openssl req -x509 -new -key "$1.key" -out "$1.pem" -days 30 -subj "/CN=$2" \
        -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
    ca_db "$1"
}

issue() { # ca name san startdate enddate
    key "$2"
    openssl req -new -key "$2.key" -out "$2.csr" -subj "/CN=$2" -addext "subjectAltName=$3" 2>/dev/null
    openssl ca -batch -config "$1.cnf" -in "$2.csr" -out "$2.pem" -startdate "$4" -enddate "$5" \
        -notext 2>/dev/null
}

now=$(date -u +%y%m%d%H%M%SZ)
soon=$(date -u -d '+30 days' +%y%m%d%H%M%SZ)
mkca ca "lurk test CA"
mkca otherca "some other CA"
issue ca good "DNS:localhost,IP:127.0.0.1" "$(date -u -d '-1 day' +%y%m%d%H%M%SZ)" "$soon"
issue ca expired "DNS:localhost,IP:127.0.0.1" "$(date -u -d '-30 days' +%y%m%d%H%M%SZ)" "$(date -u -d '-1 day' +%y%m%d%H%M%SZ)"
issue ca future "DNS:localhost,IP:127.0.0.1" "$(date -u -d '+10 days' +%y%m%d%H%M%SZ)" "$(date -u -d '+40 days' +%y%m%d%H%M%SZ)"
issue ca wronghost "DNS:wrong.example" "$now" "$soon"
issue ca ipmismatch "IP:127.0.0.2" "$now" "$soon"
issue otherca unknownca "DNS:localhost,IP:127.0.0.1" "$now" "$soon"
key selfsigned
openssl req -x509 -new -key selfsigned.key -out selfsigned.pem -days 30 -subj /CN=localhost \
    -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" 2>/dev/null
issue ca client "DNS:lurk-client" "$now" "$soon"         # a client certificate
touch .done-2

# Sourced by certs.sh and pki.sh: ca_db NAME makes the `openssl ca`
# database and configuration of an issuer whose NAME.pem and NAME.key are
# (or will be) in $d, the directory the caller generates into. The serial
# starts at random, so two runs never issue the same one.
ca_db() { # name
    mkdir -p "$1.db"
    : >"$1.db/index"
    od -An -N8 -tx1 /dev/urandom | tr -d ' \n' >"$1.db/serial"
    cat >"$1.cnf" <<CNF
[ca]
default_ca = this
[this]
dir = $d/$1.db
database = \$dir/index
serial = \$dir/serial
new_certs_dir = \$dir
certificate = $d/$1.pem
private_key = $d/$1.key
default_md = sha256
policy = any
copy_extensions = copy
unique_subject = no
[any]
commonName = supplied
CNF
}

#!/bin/sh
# test-ca.sh DIR - a throwaway certificate authority for the TLS tests.
#
# Writes into DIR (which must exist and be the caller's own temporary
# directory; nothing here is ever committed):
#   ca.pem                the root to trust (ECDSA P-256)
#   int.pem               the intermediate that signs the servers
#   rsa.pem  rsa.key      RSA 2048 server, localhost + 127.0.0.1, full chain
#   ec.pem   ec.key       ECDSA P-256 server, the same names, full chain
#   sni.pem  sni.key      RSA server for other.test only (SNI selection)
#   expired.pem expired.key   RSA server whose validity ended in 2021
#   mismatch.key          an RSA key that belongs to no certificate
# Each *.pem server file is leaf then intermediate (what --tls-cert takes);
# the serial of each leaf is in <name>.serial (hex), for rotation tests.
# Only the openssl command-line tool is used.
set -eu
dir=${1:?usage: test-ca.sh DIR}
[ -d "$dir" ] || { echo "test-ca.sh: $dir is not a directory" >&2; exit 2; }
cd "$dir"
umask 077
mkdir -p newcerts
: > index.txt
# A random first serial: rotation tests tell certificates apart by it.
openssl rand -hex 8 > serial

cat > ca.cnf <<'EOF'
[ ca ]
default_ca = CA_default
[ CA_default ]
dir = .
database = ./index.txt
new_certs_dir = ./newcerts
serial = ./serial
default_md = sha256
policy = policy_any
unique_subject = no
copy_extensions = none
[ policy_any ]
commonName = supplied
[ req ]
distinguished_name = dn
prompt = no
[ dn ]
CN = wsechod test
[ v3_root ]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[ v3_int ]
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[ v3_local ]
basicConstraints = CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1
authorityKeyIdentifier = keyid
[ v3_other ]
basicConstraints = CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:other.test
authorityKeyIdentifier = keyid
EOF

q() { "$@" >/dev/null 2>&1 || { echo "test-ca.sh: failed: $*" >&2; "$@" >&2 || true; exit 1; }; }

rsa_key() { q openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$1"; }
ec_key() { q openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1"; }

# sign NAME CN EXT CA_CERT CA_KEY [startdate enddate]
sign() {
    name=$1 cn=$2 ext=$3 cacert=$4 cakey=$5
    q openssl req -new -config ca.cnf -key "$name.key" -subj "/CN=$cn" -out "$name.csr"
    if [ $# -ge 7 ]; then
        dates="-startdate $6 -enddate $7"
    else
        dates="-days 30"
    fi
    # shellcheck disable=SC2086
    q openssl ca -batch -config ca.cnf -cert "$cacert" -keyfile "$cakey" -extensions "$ext" \
        $dates -notext -in "$name.csr" -out "$name.leaf"
    openssl x509 -in "$name.leaf" -noout -serial | sed 's/^serial=//' > "$name.serial"
    rm -f "$name.csr"
}

ec_key ca.key
q openssl req -new -x509 -config ca.cnf -key ca.key -subj "/CN=wsechod test root" -days 30 \
    -extensions v3_root -out ca.pem
ec_key int.key
sign int "wsechod test intermediate" v3_int ca.pem ca.key
mv int.leaf int.pem

for n in rsa sni expired; do rsa_key "$n.key"; done
ec_key ec.key
rsa_key mismatch.key
sign rsa localhost v3_local int.pem int.key
sign ec localhost v3_local int.pem int.key
sign sni other.test v3_other int.pem int.key
sign expired localhost v3_local int.pem int.key 20200101000000Z 20210101000000Z
for n in rsa ec sni expired; do
    cat "$n.leaf" int.pem > "$n.pem"
    rm -f "$n.leaf"
done
chmod 600 ./*.key

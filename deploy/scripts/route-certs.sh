#!/usr/bin/env bash
# Makes a CA and one route certificate per node for NATS route TLS
# (--nats.cluster.tls.*), with openssl, into the current directory:
#
#   deploy/scripts/route-certs.sh node-a=10.0.0.1 node-b=10.0.0.2 node-c=10.0.0.3
#
# Each argument is a node name, used as the certificate's DNS name and
# file names, and optionally "=" and its IP: put in the certificate every
# host name or IP the other nodes' --nats.cluster.routes use for it. Each
# certificate serves both ways (server and client), as a route presents it
# when it accepts and when it dials. Writes ca.pem and ca-key.pem (keep the
# CA key off the nodes), and <name>.pem and <name>-key.pem per node. An
# existing CA is reused, so a node can be added later.
set -euo pipefail
[ $# -gt 0 ] || { echo "usage: $0 name[=ip] ..." >&2; exit 2; }
umask 077
days=825
if [ ! -f ca.pem ]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days "$days" \
    -subj "/CN=jetmetrics routes CA" -keyout ca-key.pem -out ca.pem 2>/dev/null
fi
for arg in "$@"; do
  name=${arg%%=*}
  san="DNS:$name"
  [ "$arg" = "$name" ] || san="$san,IP:${arg#*=}"
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$name" \
    -keyout "$name-key.pem" -out "$name.csr" 2>/dev/null
  openssl x509 -req -in "$name.csr" -CA ca.pem -CAkey ca-key.pem -CAcreateserial -days "$days" \
    -extfile <(printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth,clientAuth\nkeyUsage=digitalSignature\n' "$san") \
    -out "$name.pem" 2>/dev/null
  rm -f "$name.csr"
  echo "$name.pem ($san)"
done

#!/bin/sh
# Entrypoint of runhost/dind: a Docker daemon inside a container that answers
# only over mutual TLS on 2376 (and on its own unix socket inside the
# container). Like the official docker:dind image, it makes its certificates
# on first start in $DOCKER_TLS_CERTDIR (default /certs):
#
#   ca/key.pem ca/cert.pem                  the CA (its key never leaves ca/)
#   server/key.pem server/cert.pem server/ca.pem   for dockerd
#   client/key.pem client/cert.pem client/ca.pem   for runhost and code-server
#
# The server certificate names DNS:dind, DNS:localhost, DNS:<hostname>,
# IP:127.0.0.1, every IPv4 address of the container's interfaces at start,
# and the comma-separated names in $DOCKER_TLS_SAN (each "IP:..."/"DNS:..."
# as given, a bare address becomes IP:, anything else DNS:). When the
# certificates exist but the server certificate lacks one of these names (a
# new address after a restart, a new DOCKER_TLS_SAN), only the server
# certificate is re-issued from the same CA, so clients keep working.
#
# Modes: ca/ and server/ are 0700 with 0600 keys. client/ is 0755 with 0644
# files, so a host that runs runhost as a non-root user can read the client
# key out of the certificates volume: the volume (or the directory it is
# copied to) is therefore the secret and must be shared only with the host
# and code-server, never with run containers.
#
# Then it runs dockerd with --tlsverify on tcp://0.0.0.0:2376, plus any
# arguments given to the container. It never listens on 2375.
set -eu

CERTS=${DOCKER_TLS_CERTDIR:-/certs}
DAYS=${DOCKER_TLS_DAYS:-825}

log() { echo "dind-entrypoint: $*" >&2; }

# ipv4s prints the IPv4 addresses of this container's interfaces, one a
# line (from the kernel's FIB, so no iproute2 is needed).
ipv4s() {
  awk '/\/32 host LOCAL/ { print prev } { prev = $2 }' /proc/net/fib_trie | sort -u
}

# sans prints the subjectAltName entries the server certificate must hold,
# each once.
sans() {
  {
    printf '%s\n' DNS:dind DNS:localhost "DNS:$(cat /proc/sys/kernel/hostname)" IP:127.0.0.1
    for ip in $(ipv4s); do printf 'IP:%s\n' "$ip"; done
    old_ifs=$IFS
    IFS=,
    for name in ${DOCKER_TLS_SAN:-}; do
      name=$(printf '%s' "$name" | tr -d ' \t')
      case "$name" in
        '') ;;
        IP:* | DNS:*) printf '%s\n' "$name" ;;
        *[!0-9.]*) printf 'DNS:%s\n' "$name" ;;
        *) printf 'IP:%s\n' "$name" ;;
      esac
    done
    IFS=$old_ifs
  } | awk '!seen[$0]++'
}

# covered reports whether server/cert.pem names every entry of sans.
covered() {
  names=$(openssl x509 -in "$CERTS/server/cert.pem" -noout -ext subjectAltName 2>/dev/null \
    | tail -n +2 | tr ',' '\n' | tr -d ' ' | sed 's/^IPAddress:/IP:/')
  for want in $(sans); do
    printf '%s\n' "$names" | grep -qxF "$want" || { log "server certificate lacks $want"; return 1; }
  done
}

# genkey FILE: a new private key. ECDSA P-256 rather than the official
# image's RSA 4096: as strong for this purpose, and made in milliseconds where
# three RSA 4096 keys take 10-25 s on a busy 2-core machine, all of it start-up
# time of the daemon.
genkey() {
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1"
}

make_ca() {
  log "creating the CA in $CERTS/ca"
  mkdir -p "$CERTS/ca"
  chmod 0700 "$CERTS/ca"
  (umask 077 && genkey "$CERTS/ca/key.pem")
  openssl req -new -x509 -sha256 -days "$DAYS" -key "$CERTS/ca/key.pem" \
    -subj '/CN=runhost dind CA' \
    -addext 'basicConstraints=critical,CA:TRUE,pathlen:0' \
    -addext 'keyUsage=critical,keyCertSign,cRLSign' \
    -out "$CERTS/ca/cert.pem"
}

# sign NAME CN EXTENSIONS: a key and a certificate signed by the CA in
# $CERTS/NAME, with the CA's certificate beside them as ca.pem.
sign() {
  dir=$CERTS/$1
  mkdir -p "$dir"
  (umask 077 && genkey "$dir/key.pem")
  openssl req -new -sha256 -key "$dir/key.pem" -subj "/CN=$2" -out "$dir/csr.pem"
  printf '%s\n' "$3" >"$dir/openssl.cnf"
  openssl x509 -req -sha256 -days "$DAYS" -in "$dir/csr.pem" \
    -CA "$CERTS/ca/cert.pem" -CAkey "$CERTS/ca/key.pem" -CAcreateserial -CAserial "$CERTS/ca/cert.srl" \
    -extfile "$dir/openssl.cnf" -out "$dir/cert.pem" 2>/dev/null
  cp "$CERTS/ca/cert.pem" "$dir/ca.pem"
  rm -f "$dir/csr.pem" "$dir/openssl.cnf"
  openssl verify -CAfile "$CERTS/ca/cert.pem" "$dir/cert.pem" >/dev/null
}

make_server() {
  log "creating the server certificate for $(sans | paste -sd, -)"
  sign server docker:dind "basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=$(sans | paste -sd, -)"
  chmod 0700 "$CERTS/server"
  chmod 0600 "$CERTS/server/key.pem"
  chmod 0644 "$CERTS/server/cert.pem" "$CERTS/server/ca.pem"
}

make_client() {
  log "creating the client certificate in $CERTS/client"
  sign client docker:dind-client "basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth"
  # Readable by a non-root host user: see the header.
  chmod 0755 "$CERTS/client"
  chmod 0644 "$CERTS/client/key.pem" "$CERTS/client/cert.pem" "$CERTS/client/ca.pem"
}

for arg in "$@"; do
  case "$arg" in
    *:2375 | *:2375/*) log "refusing $arg: the daemon answers only over TLS on 2376"; exit 2 ;;
  esac
done

umask 022
mkdir -p "$CERTS"
if [ ! -f "$CERTS/server/cert.pem" ]; then
  if [ ! -f "$CERTS/ca/key.pem" ] || [ ! -f "$CERTS/ca/cert.pem" ]; then make_ca; fi
  make_server
  [ -f "$CERTS/client/cert.pem" ] || make_client
elif ! covered; then
  if [ -f "$CERTS/ca/key.pem" ]; then
    make_server
  else
    log "no CA key in $CERTS/ca to re-issue the server certificate; clients must use a name it holds"
  fi
fi

# What the official image's dind script does and a plain container needs:
# mount propagation for the daemon's own mounts, and securityfs for
# AppArmor when the kernel has it. Both are best effort: the container's
# capabilities may not allow them, and dockerd copes without.
mount --make-rshared / 2>/dev/null || true
if [ -d /sys/kernel/security ] && ! mountpoint -q /sys/kernel/security 2>/dev/null; then
  mount -t securityfs none /sys/kernel/security 2>/dev/null || true
fi
# Containers on the inner daemon's bridges (docker0, br-*) can route to this
# container's addresses, so they would reach 2376: mutual TLS refuses them,
# and this rule refuses them before TLS. Only loopback and the container's
# own interfaces (eth*, the outer networks the host and code-server are on)
# may open the API port. Best effort: without iptables, TLS still holds.
guard_api() {
  { iptables -N DIND-API 2>/dev/null || iptables -F DIND-API; } \
    && iptables -A DIND-API -i lo -j RETURN \
    && iptables -A DIND-API -i eth+ -j RETURN \
    && iptables -A DIND-API -p tcp -j REJECT --reject-with tcp-reset \
    && { iptables -C INPUT -p tcp --dport 2376 -j DIND-API 2>/dev/null \
      || iptables -I INPUT -p tcp --dport 2376 -j DIND-API; }
}
if ! guard_api; then
  log "warning: iptables failed; port 2376 is guarded by TLS alone"
fi

# With the host's cgroup v1 hierarchy bound at /sys/fs/cgroup (needed where
# --privileged is not allowed), dockerd would put the runs' cgroups beside
# this container's (/docker/<id>), outside its limits. Nest them under this
# container's own cgroup instead, so a --memory/--cpus/--pids-limit given to
# the DinD container bounds every run too. DIND_CGROUP_NEST=0 or an explicit
# --cgroup-parent turns this off; on cgroup v2 dockerd's default is kept.
cgroup_parent=
case " $* " in *" --cgroup-parent"*) DIND_CGROUP_NEST=0 ;; esac
if [ "${DIND_CGROUP_NEST:-1}" != 0 ] && [ ! -f /sys/fs/cgroup/cgroup.controllers ]; then
  own=$(awk -F: '$2 == "memory" { print $3 }' /proc/self/cgroup)
  if [ -n "$own" ] && [ "$own" != / ] && [ -d "/sys/fs/cgroup/memory$own" ]; then
    cgroup_parent=$own/dind
    log "runs' cgroups go under $cgroup_parent"
  fi
fi
# A stale pid file from an earlier start of this container stops dockerd.
rm -f /var/run/docker.pid /var/run/docker/containerd/containerd.pid

exec dockerd \
  --host=unix:///var/run/docker.sock \
  --host=tcp://0.0.0.0:2376 \
  --tlsverify \
  --tlscacert "$CERTS/server/ca.pem" \
  --tlscert "$CERTS/server/cert.pem" \
  --tlskey "$CERTS/server/key.pem" \
  ${cgroup_parent:+--cgroup-parent="$cgroup_parent"} \
  "$@"

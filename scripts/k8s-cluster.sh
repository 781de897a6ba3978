#!/usr/bin/env bash
# A real single-node Kubernetes cluster for runhost's tests, from Debian packages and the Go
# module proxy only (no cluster image or binary can be downloaded on these machines):
# etcd (Debian etcd-server), kube-apiserver, kube-controller-manager, kube-scheduler and kubelet
# built once from k8s.io/kubernetes, a second containerd instance of its own, the CNI bridge.
#
#   scripts/k8s-cluster.sh up     install, build (once), start everything, wait for the node
#   scripts/k8s-cluster.sh env    print KUBECONFIG=...
#   scripts/k8s-cluster.sh load IMAGE...   docker save | ctr import into the cluster's containerd
#   scripts/k8s-cluster.sh down   stop everything and remove the state (pods, containerd, CNI)
#
# Test only: anonymous kubelet, static admin token, no kube-proxy (services are reached through
# their endpoints' pod IPs on the bridge). See docs/kubernetes.md.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
K8S_VERSION=${K8S_VERSION:-1.34.4}
STAGING_VERSION=0.${K8S_VERSION#1.}
CACHE=${K8S_CACHE:-$ROOT/.cache/k8s}
BIN=$CACHE/bin
STATE=${K8S_STATE:-$CACHE/state}
GO=${GO:-go}
NODE=${K8S_NODE_NAME:-runhost-node}
CTRD_SOCK=$STATE/containerd/containerd.sock
PODS_CIDR=10.244.0.0/24
SERVICE_CIDR=10.96.0.0/24
BRIDGE=runhostk8s0
TEST_REGISTRY=10.244.0.1:5000
COMPONENTS="kube-apiserver kube-controller-manager kube-scheduler kubelet"

log() { printf '[k8s-cluster] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# phase NAME CMD...: runs one step and prints how long it took.
phase() {
	local name=$1 start end
	shift
	start=$(date +%s.%N)
	"$@"
	end=$(date +%s.%N)
	log "$(printf 'phase %-12s %6.1fs' "$name" "$(echo "$end - $start" | bc)")"
}

# --- packages -------------------------------------------------------------------------------
install_packages() {
	local missing=()
	command -v bc >/dev/null || missing+=(bc)
	command -v openssl >/dev/null || missing+=(openssl)
	[ -x /usr/bin/etcd ] || missing+=(etcd-server)
	command -v containerd >/dev/null || missing+=(containerd)
	command -v ctr >/dev/null || missing+=(containerd)
	[ -x /usr/lib/cni/bridge ] || missing+=(containernetworking-plugins)
	command -v iptables >/dev/null || missing+=(iptables)
	command -v conntrack >/dev/null || missing+=(conntrack)
	[ ${#missing[@]} -eq 0 ] && return 0
	log "installing ${missing[*]}"
	apt-get update -qq
	# etcd-server's post-install step tries to start a service and fails without an init
	# system; the binary is all we need, so a failed configure is tolerated and re-checked.
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" ||
		DEBIAN_FRONTEND=noninteractive dpkg --configure -a || true
	[ -x /usr/bin/etcd ] || die "etcd missing after installing etcd-server"
	[ -x /usr/lib/cni/bridge ] || die "CNI plugins missing"
}

# --- binaries -------------------------------------------------------------------------------
# build_binaries builds the components once into $BIN from the Go module proxy: a throw-away
# module requiring k8s.io/kubernetes with each staging module (its go.mod's "=> ./staging/..."
# replacements, which a module download cannot follow) pinned to the matching v0.x release.
build_binaries() {
	local c need=0
	for c in $COMPONENTS; do [ -x "$BIN/$c" ] || need=1; done
	[ -x "$BIN/pause" ] || need=1
	[ $need -eq 0 ] && { log "binaries cached in $BIN"; return 0; }
	local src=$CACHE/src
	mkdir -p "$src" "$BIN"
	local gomod
	gomod=$(cd "$src" && GOFLAGS= $GO mod download -json "k8s.io/kubernetes@v$K8S_VERSION" |
		sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
	[ -f "$gomod" ] || die "cannot download k8s.io/kubernetes@v$K8S_VERSION"
	{
		echo "module runhost.test/k8sbuild"
		echo
		echo "go 1.24"
		echo
		echo "require k8s.io/kubernetes v$K8S_VERSION"
		echo
		echo "replace ("
		sed -n 's#^[[:space:]]*\(k8s.io/[^ ]*\) => ./staging/.*#\t\1 => \1 v'"$STAGING_VERSION"'#p' "$gomod"
		echo ")"
	} >"$src/go.mod"
	# The pause (sandbox) image's program: waits for a signal, reaps nothing else.
	mkdir -p "$src/pause"
	cat >"$src/pause/main.go" <<'GO'
// Command pause holds a pod's namespaces open until it is told to stop.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGTERM, syscall.SIGINT)
	<-c
}
GO
	log "building $COMPONENTS (k8s.io/kubernetes v$K8S_VERSION; several minutes the first time)"
	(cd "$src" && GOFLAGS=-mod=mod $GO build -trimpath -ldflags='-s -w' -o "$BIN/" \
		$(for c in $COMPONENTS; do printf 'k8s.io/kubernetes/cmd/%s ' "$c"; done))
	(cd "$src" && CGO_ENABLED=0 GOFLAGS=-mod=mod $GO build -trimpath -ldflags='-s -w' -o "$BIN/pause" ./pause)
}

# --- configuration --------------------------------------------------------------------------
node_ip() { ip -4 route get 1.1.1.1 2>/dev/null | sed -n 's/.* src \([0-9.]*\).*/\1/p'; }

# write_config generates certificates, tokens and every component's configuration under $STATE.
write_config() {
	local ip
	ip=$(node_ip)
	[ -n "$ip" ] || die "no IPv4 address with a route: the kubelet needs a node IP"
	mkdir -p "$STATE"/{pki,etcd,logs,run,kubelet,cni/net.d,cni/ipam,containerd/root,containerd/state}
	local pki=$STATE/pki
	if [ ! -f "$pki/apiserver.crt" ]; then
		openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj /CN=runhost-test-ca \
			-keyout "$pki/ca.key" -out "$pki/ca.crt" 2>/dev/null
		openssl req -newkey rsa:2048 -nodes -subj /CN=kube-apiserver \
			-keyout "$pki/apiserver.key" -out "$pki/apiserver.csr" 2>/dev/null
		printf 'subjectAltName=IP:127.0.0.1,IP:%s,IP:10.96.0.1,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:localhost\n' "$ip" >"$pki/san.ext"
		openssl x509 -req -in "$pki/apiserver.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial \
			-days 30 -extfile "$pki/san.ext" -out "$pki/apiserver.crt" 2>/dev/null
		openssl genrsa -out "$pki/sa.key" 2048 2>/dev/null
		openssl rsa -in "$pki/sa.key" -pubout -out "$pki/sa.pub" 2>/dev/null
		# Static tokens, one identity per component (test only).
		local u
		: >"$pki/tokens.csv"
		for u in admin controller-manager scheduler kubelet; do
			openssl rand -hex 16 >"$pki/$u.token"
		done
		{
			echo "$(cat "$pki/admin.token"),admin,admin,system:masters"
			echo "$(cat "$pki/controller-manager.token"),system:kube-controller-manager,kcm"
			echo "$(cat "$pki/scheduler.token"),system:kube-scheduler,ksched"
			echo "$(cat "$pki/kubelet.token"),system:node:$NODE,kubelet,system:nodes"
		} >"$pki/tokens.csv"
		chmod 600 "$pki"/*.key "$pki"/*.token "$pki/tokens.csv"
	fi
	local u ca
	ca=$(base64 -w0 "$pki/ca.crt")
	for u in admin controller-manager scheduler kubelet; do
		cat >"$STATE/$u.kubeconfig" <<KC
apiVersion: v1
kind: Config
clusters: [{name: runhost-test, cluster: {server: "https://127.0.0.1:6443", certificate-authority-data: "$ca"}}]
users: [{name: $u, user: {token: "$(cat "$pki/$u.token")"}}]
contexts: [{name: runhost-test, context: {cluster: runhost-test, user: $u}}]
current-context: runhost-test
KC
		chmod 600 "$STATE/$u.kubeconfig"
	done

	cat >"$STATE/containerd/config.toml" <<TOML
version = 2
root = "$STATE/containerd/root"
state = "$STATE/containerd/state"
[grpc]
  address = "$CTRD_SOCK"
[ttrpc]
  address = "$CTRD_SOCK.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "runhost.test/pause:1"
  # CRI asks for a negative oom_score_adj for sandboxes, which needs
  # CAP_SYS_RESOURCE; these VMs lack it, so runc fails without this.
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$STATE/cni/net.d"
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
    runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "$STATE/certs.d"
TOML
	# The test registry Dockerfile builds push to (the k8s suite serves it on the bridge):
	# plain HTTP, which containerd needs to be told.
	mkdir -p "$STATE/certs.d/$TEST_REGISTRY"
	cat >"$STATE/certs.d/$TEST_REGISTRY/hosts.toml" <<HOSTS
server = "http://$TEST_REGISTRY"
[host."http://$TEST_REGISTRY"]
  capabilities = ["pull", "resolve"]
HOSTS
	cat >"$STATE/cni/net.d/10-runhost.conflist" <<CNI
{
  "cniVersion": "1.0.0",
  "name": "runhost-k8s",
  "plugins": [
    {"type": "bridge", "bridge": "$BRIDGE", "isGateway": true, "ipMasq": false, "hairpinMode": true,
     "ipam": {"type": "host-local", "ranges": [[{"subnet": "$PODS_CIDR"}]], "routes": [{"dst": "0.0.0.0/0"}],
              "dataDir": "$STATE/cni/ipam"}}
  ]
}
CNI
	# Localhost seccomp profiles (build pods'), where the kubelet looks for them.
	mkdir -p "$STATE/kubelet/seccomp"
	cp "$ROOT"/deploy/kubernetes/seccomp/*.json "$STATE/kubelet/seccomp/"
	cat >"$STATE/kubelet.yaml" <<KL
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# Test only: the API server reaches the kubelet without credentials.
authentication: {anonymous: {enabled: true}, webhook: {enabled: false}}
authorization: {mode: AlwaysAllow}
cgroupDriver: cgroupfs
failSwapOn: false
failCgroupV1: false
containerRuntimeEndpoint: unix://$CTRD_SOCK
readOnlyPort: 0
evictionHard: {}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
serializeImagePulls: false
podPidsLimit: 4096
maxPods: 110
resolvConf: /etc/resolv.conf
KL
}

# --- processes ------------------------------------------------------------------------------
# start NAME CMD...: runs a component in its own session, its output in $STATE/logs/NAME.log.
start() {
	local name=$1 pidf=$STATE/run/$1.pid
	shift
	if [ -f "$pidf" ] && kill -0 "$(cat "$pidf")" 2>/dev/null; then
		return 0
	fi
	setsid "$@" >>"$STATE/logs/$name.log" 2>&1 </dev/null &
	echo $! >"$pidf"
}

# wait_for WHAT SECONDS CMD...: retries CMD until it succeeds.
wait_for() {
	local what=$1 secs=$2 i
	shift 2
	for ((i = 0; i < secs * 4; i++)); do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.25
	done
	die "$what did not come up within ${secs}s (logs in $STATE/logs)"
}


api_get() {
	curl -fsS --cacert "$STATE/pki/ca.crt" -H "Authorization: Bearer $(cat "$STATE/pki/admin.token")" "https://127.0.0.1:6443$1"
}

start_etcd() {
	start etcd /usr/bin/etcd --name runhost-test --data-dir "$STATE/etcd" \
		--listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
		--listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
		--initial-cluster runhost-test=http://127.0.0.1:2380
	wait_for etcd 60 curl -fsS http://127.0.0.1:2379/health
}

start_apiserver() {
	local pki=$STATE/pki
	start kube-apiserver "$BIN/kube-apiserver" --etcd-servers=http://127.0.0.1:2379 \
		--bind-address=0.0.0.0 --advertise-address="$(node_ip)" --secure-port=6443 \
		--tls-cert-file="$pki/apiserver.crt" --tls-private-key-file="$pki/apiserver.key" \
		--client-ca-file="$pki/ca.crt" --token-auth-file="$pki/tokens.csv" \
		--service-account-issuer=https://kubernetes.default.svc --service-account-key-file="$pki/sa.pub" \
		--service-account-signing-key-file="$pki/sa.key" --authorization-mode=Node,RBAC \
		--service-cluster-ip-range="$SERVICE_CIDR" --kubelet-preferred-address-types=InternalIP \
		--enable-admission-plugins=NodeRestriction --profiling=false
	wait_for kube-apiserver 120 api_get /readyz
}

start_controllers() {
	start kube-controller-manager "$BIN/kube-controller-manager" --kubeconfig="$STATE/controller-manager.kubeconfig" \
		--authentication-kubeconfig="$STATE/controller-manager.kubeconfig" --authorization-kubeconfig="$STATE/controller-manager.kubeconfig" \
		--bind-address=127.0.0.1 --leader-elect=false --use-service-account-credentials=true \
		--service-account-private-key-file="$STATE/pki/sa.key" --root-ca-file="$STATE/pki/ca.crt" \
		--cluster-cidr=10.244.0.0/16 --allocate-node-cidrs=false --profiling=false
	start kube-scheduler "$BIN/kube-scheduler" --kubeconfig="$STATE/scheduler.kubeconfig" \
		--authentication-kubeconfig="$STATE/scheduler.kubeconfig" --authorization-kubeconfig="$STATE/scheduler.kubeconfig" \
		--bind-address=127.0.0.1 --leader-elect=false --profiling=false
}

start_containerd() {
	start containerd containerd --config "$STATE/containerd/config.toml"
	wait_for containerd 60 ctr -a "$CTRD_SOCK" version
	# The sandbox image: the static pause program, alone in a one-file image.
	if ! ctr -a "$CTRD_SOCK" -n k8s.io images ls -q | grep -qx 'runhost.test/pause:1'; then
		local d
		d=$(mktemp -d)
		cp "$BIN/pause" "$d/pause"
		printf 'FROM scratch\nCOPY pause /pause\nENTRYPOINT ["/pause"]\n' >"$d/Dockerfile"
		DOCKER_BUILDKIT=0 docker build -q -t runhost.test/pause:1 "$d" >/dev/null 2>&1
		rm -rf "$d"
		docker save runhost.test/pause:1 | ctr -a "$CTRD_SOCK" -n k8s.io images import - >/dev/null
	fi
}

start_kubelet() {
	start kubelet "$BIN/kubelet" --kubeconfig="$STATE/kubelet.kubeconfig" --config="$STATE/kubelet.yaml" \
		--root-dir="$STATE/kubelet" --cert-dir="$STATE/kubelet/pki" --hostname-override="$NODE" --node-ip="$(node_ip)"
	wait_for "the node $NODE" 180 node_ready
}

node_ready() {
	api_get "/api/v1/nodes/$NODE" | python3 -c '
import json, sys
n = json.load(sys.stdin)
sys.exit(0 if any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"]["conditions"]) else 1)'
}

# The namespace "default" gets its service account from the controller manager; wait for it so
# the first pod is not refused.
controllers_ready() { api_get /api/v1/namespaces/default/serviceaccounts/default; }

# iptables_rules: a stand-in for kube-proxy for one Service, the API server's own
# (10.96.0.1:443), so pods using the in-cluster config reach it. No other Service IP works.
iptables_rules() {
	local rule=(-d 10.96.0.1/32 -p tcp --dport 443 -m comment --comment runhost-k8s -j DNAT --to-destination "$(node_ip):6443")
	iptables -t nat -C PREROUTING "${rule[@]}" 2>/dev/null || iptables -t nat -A PREROUTING "${rule[@]}"
	# Pod to pod on the bridge (install pods to the egress proxy pod): bridged packets go
	# through FORWARD (br_netfilter), whose policy Docker sets to DROP.
	local fwd=(-i "$BRIDGE" -o "$BRIDGE" -m comment --comment runhost-k8s -j ACCEPT)
	iptables -C FORWARD "${fwd[@]}" 2>/dev/null || iptables -I FORWARD 1 "${fwd[@]}"
}

up() {
	phase packages install_packages
	phase binaries build_binaries
	phase config write_config
	phase etcd start_etcd
	phase apiserver start_apiserver
	phase controllers start_controllers
	phase containerd start_containerd
	phase kubelet start_kubelet
	phase accounts wait_for "the default service account" 120 controllers_ready
	iptables_rules
	log "ready: KUBECONFIG=$STATE/admin.kubeconfig"
}

# --- teardown -------------------------------------------------------------------------------
stop_pid() {
	local pidf=$STATE/run/$1.pid pid i
	[ -f "$pidf" ] || return 0
	pid=$(cat "$pidf")
	if kill -0 "$pid" 2>/dev/null; then
		kill "$pid" 2>/dev/null || true
		for ((i = 0; i < 40; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
		kill -9 "$pid" 2>/dev/null || true
	fi
	rm -f "$pidf"
}

down() {
	[ -d "$STATE" ] || { log "nothing to stop"; return 0; }
	stop_pid kubelet
	# Pod containers outlive the kubelet: kill their tasks through our containerd, then stop it.
	if [ -S "$CTRD_SOCK" ]; then
		local id
		for id in $(ctr -a "$CTRD_SOCK" -n k8s.io tasks ls -q 2>/dev/null); do
			ctr -a "$CTRD_SOCK" -n k8s.io tasks kill -s SIGKILL "$id" >/dev/null 2>&1 || true
		done
		sleep 1
		for id in $(ctr -a "$CTRD_SOCK" -n k8s.io tasks ls -q 2>/dev/null); do
			ctr -a "$CTRD_SOCK" -n k8s.io tasks delete -f "$id" >/dev/null 2>&1 || true
		done
	fi
	stop_pid kube-scheduler
	stop_pid kube-controller-manager
	stop_pid kube-apiserver
	stop_pid etcd
	stop_pid containerd
	# Shims of our containerd (their -address names our socket) may linger.
	local p
	for p in $(pgrep -f "containerd-shim-runc-v2 .*-address $CTRD_SOCK" || true); do kill -9 "$p" 2>/dev/null || true; done
	# Network namespaces the CNI set up, the bridge, the iptables rules.
	local ns
	for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep '^cni-' || true); do
		ip netns delete "$ns" 2>/dev/null || true
	done
	ip link delete "$BRIDGE" 2>/dev/null || true
	while iptables -t nat -S PREROUTING 2>/dev/null | grep -q 'runhost-k8s'; do
		iptables -t nat -D PREROUTING $(iptables -t nat -S PREROUTING | grep 'runhost-k8s' | head -1 | sed 's/^-A PREROUTING //') || break
	done
	while iptables -S FORWARD 2>/dev/null | grep -q 'runhost-k8s'; do
		iptables -D FORWARD $(iptables -S FORWARD | grep 'runhost-k8s' | head -1 | sed 's/^-A FORWARD //') || break
	done
	# Mounts of the kubelet (tmpfs emptyDirs, projected volumes) and of containerd (rootfs).
	local m
	for m in $(awk -v s="$STATE/" 'index($2, s) == 1 {print $2}' /proc/mounts | sort -r); do
		umount -l "$m" 2>/dev/null || true
	done
	rm -rf "$STATE"
	# The kubelet keeps container logs at a fixed path; nothing else on these machines runs a
	# kubelet, so what is there is this cluster's.
	rm -rf /var/log/pods /var/log/containers
	log "stopped; state removed"
}

# load IMAGE...: copies images from the Docker engine into the cluster's containerd.
# One archive for all of them, so layers the images share are saved and imported once.
load() {
	[ $# -gt 0 ] || return 0
	docker save "$@" | ctr -a "$CTRD_SOCK" -n k8s.io images import - >/dev/null
}

case ${1:-} in
up) up ;;
down) down ;;
env) echo "KUBECONFIG=$STATE/admin.kubeconfig" ;;
load) shift; load "$@" ;;
build) phase binaries build_binaries ;;
*) echo "usage: $0 up|down|env|load IMAGE...|build" >&2; exit 2 ;;
esac

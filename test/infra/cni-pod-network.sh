#!/usr/bin/env bash
# CNI plugin of the test node (test/infra/kube-node.ts), run by containerd in the node's network
# namespace (node-run.sh). A pod gets a network namespace of its own, as on a real cluster:
#   - a veth whose node end joins the node's bridge: the pod's IP is QUESTA_POD_SUBNET.<n>/24, its
#     default route the bridge's address, so pods reach each other on any port and the kubelet
#     reaches them (probes); the cluster DNS answers at an address of the node's (QUESTA_CLUSTER_DNS)
#   - the test's servers (Kafka, MinIO, kube-apiserver), which live in the machine's network
#     namespace, answer inside the pod on the addresses the pod is configured with: 127.0.0.1:<port>,
#     and 10.96.0.1:443 (the kubernetes Service), over Unix sockets (a path is reachable from every
#     network namespace); node-run.sh keeps the machine's ends (socat UNIX-LISTEN → TCP 127.0.0.1)
# Nothing is added to the machine's own network namespace.
# Settings come from the environment the node's wrapper sets: QUESTA_CNI_STATE (a directory),
# QUESTA_POD_BRIDGE, QUESTA_POD_SUBNET (a.b.c), QUESTA_POD_GATEWAY, QUESTA_CNI_FORWARD
# ("listen-ip:listen-port:target-port" ...).
set -euo pipefail

state="$QUESTA_CNI_STATE"
log() { printf '%s %s %s\n' "$(date +%T)" "${CNI_COMMAND:-?}" "$*" >>"$state/plugin.log"; }

case "${CNI_COMMAND:-}" in
VERSION)
  echo '{"cniVersion":"1.0.0","supportedVersions":["0.4.0","1.0.0"]}'
  ;;
ADD)
  config="$(cat)"
  version="$(sed -n 's/.*"cniVersion" *: *"\([^"]*\)".*/\1/p' <<<"$config" | head -n 1)"
  pod="$state/pods/$CNI_CONTAINERID"
  mkdir -p "$pod"
  # addresses are never reused while the node lives (a deleted pod's IP stays out of DNS answers)
  exec 9>"$state/lock"
  flock 9
  n="$(cat "$state/next" 2>/dev/null || echo 2)"
  ((n < 255)) || { echo '{"code":11,"msg":"test node out of pod addresses"}'; exit 1; }
  echo $((n + 1)) >"$state/next"
  flock -u 9
  ip="$QUESTA_POD_SUBNET.$n"
  ifname="${CNI_IFNAME:-eth0}"
  in_pod() { nsenter --net="$CNI_NETNS" "$@"; }
  # the node's end is named by the address (15 characters at most), the pod's is CNI_IFNAME
  echo "veth$n" >"$pod/veth"
  ip link add "veth$n" type veth peer name "$ifname" netns "$CNI_NETNS"
  ip link set "veth$n" master "$QUESTA_POD_BRIDGE" up
  in_pod ip link set lo up
  in_pod ip addr add "$ip/24" dev "$ifname"
  in_pod ip link set "$ifname" up
  in_pod ip route add default via "$QUESTA_POD_GATEWAY"
  in_pod ip addr add 10.96.0.1/32 dev lo
  # background forwarders must not hold the plugin's stdout: the runtime reads it to the end
  start() { setsid "$@" </dev/null >>"$pod/socat.log" 2>&1 & echo $! >>"$pod/pids"; }
  for forward in $QUESTA_CNI_FORWARD; do
    IFS=: read -r listen_ip listen_port target <<<"$forward"
    start nsenter --net="$CNI_NETNS" socat "TCP-LISTEN:$listen_port,bind=$listen_ip,fork,reuseaddr" \
      "UNIX-CONNECT:$state/out-$target.sock"
  done
  log "$CNI_CONTAINERID $ip"
  printf '{"cniVersion":"%s","interfaces":[{"name":"%s","sandbox":"%s"}],"ips":[{"address":"%s/24","gateway":"%s","interface":0}],"routes":[{"dst":"0.0.0.0/0","gw":"%s"}]}\n' \
    "${version:-1.0.0}" "$ifname" "$CNI_NETNS" "$ip" "$QUESTA_POD_GATEWAY" "$QUESTA_POD_GATEWAY"
  ;;
DEL)
  cat >/dev/null
  pod="$state/pods/${CNI_CONTAINERID:-none}"
  if [[ -f "$pod/pids" ]]; then
    while read -r pid; do kill -KILL "$pid" 2>/dev/null || true; done <"$pod/pids"
  fi
  # gone with the pod's network namespace already, unless that is still there
  if [[ -f "$pod/veth" ]]; then ip link del "$(cat "$pod/veth")" 2>/dev/null || true; fi
  rm -rf "$pod"
  log "${CNI_CONTAINERID:-}"
  ;;
CHECK | GC | STATUS)
  cat >/dev/null || true
  ;;
*)
  echo "{\"code\":4,\"msg\":\"unknown CNI_COMMAND ${CNI_COMMAND:-}\"}"
  exit 1
  ;;
esac

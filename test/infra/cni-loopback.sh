#!/usr/bin/env bash
# CNI plugin of the test node (test/infra/kube-node.ts): a pod gets a network namespace of its own,
# as on a real cluster, but no interface, route or iptables rule is added to the shared machine.
# Instead, over Unix sockets (a path is reachable from every network namespace):
#   - the test's servers (Kafka, MinIO, kube-apiserver) answer inside the pod on the addresses
#     the pod is configured with: 127.0.0.1:<port>, and 10.96.0.1:443 (the kubernetes Service);
#     node-run.sh keeps the host ends (socat UNIX-LISTEN → TCP 127.0.0.1:<port>)
#   - the pod's IP is a loopback address of the host, 127.<a>.<b>.<n>; its container ports
#     (QUESTA_CNI_EXPOSE) are forwarded there, so the kubelet's probes and port-forward reach the pod
# Settings come from the environment the node's wrapper sets: QUESTA_CNI_STATE (a directory),
# QUESTA_CNI_PREFIX (127.a.b), QUESTA_CNI_FORWARD ("listen-ip:listen-port:target-port" ...),
# QUESTA_CNI_EXPOSE (ports).
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
  exec 9>"$state/lock"
  flock 9
  n="$(cat "$state/next" 2>/dev/null || echo 2)"
  ((n < 255)) || { echo '{"code":11,"msg":"test node out of pod addresses"}'; exit 1; }
  echo $((n + 1)) >"$state/next"
  flock -u 9
  ip="$QUESTA_CNI_PREFIX.$n"
  in_pod() { nsenter --net="$CNI_NETNS" "$@"; }
  in_pod ip link set lo up
  in_pod ip addr add 10.96.0.1/32 dev lo
  # background forwarders must not hold the plugin's stdout: the runtime reads it to the end
  start() { setsid "$@" </dev/null >>"$pod/socat.log" 2>&1 & echo $! >>"$pod/pids"; }
  for forward in $QUESTA_CNI_FORWARD; do
    IFS=: read -r listen_ip listen_port target <<<"$forward"
    start nsenter --net="$CNI_NETNS" socat "TCP-LISTEN:$listen_port,bind=$listen_ip,fork,reuseaddr" \
      "UNIX-CONNECT:$state/out-$target.sock"
  done
  # a socket path must fit in 108 bytes: named by the address, not the long container id
  mkdir -p "$state/in"
  for port in $QUESTA_CNI_EXPOSE; do
    socket="$state/in/$n-$port.sock"
    start nsenter --net="$CNI_NETNS" socat "UNIX-LISTEN:$socket,fork,unlink-early" "TCP:127.0.0.1:$port"
    start socat "TCP-LISTEN:$port,bind=$ip,fork,reuseaddr" "UNIX-CONNECT:$socket"
  done
  log "$CNI_CONTAINERID $ip"
  printf '{"cniVersion":"%s","interfaces":[{"name":"%s","sandbox":"%s"}],"ips":[{"address":"%s/32","interface":0}]}\n' \
    "${version:-1.0.0}" "${CNI_IFNAME:-eth0}" "$CNI_NETNS" "$ip"
  ;;
DEL)
  cat >/dev/null
  pod="$state/pods/${CNI_CONTAINERID:-none}"
  if [[ -f "$pod/pids" ]]; then
    while read -r pid; do kill -KILL "$pid" 2>/dev/null || true; done <"$pod/pids"
  fi
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

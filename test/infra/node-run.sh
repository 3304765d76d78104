#!/usr/bin/env bash
# The test node (test/infra/kube-node.ts): containerd and the kubelet in one private mount namespace
# and one PID namespace of their own, and in a network namespace of their own (the node's).
#   - one mount namespace: the kubelet mounts the pods' tmpfs volumes and service-account tokens,
#     and runc (started by containerd's shims) must see them
#   - private: nothing they mount reaches the shared machine, and paths they hard-code (/run,
#     /var/log) are bind mounts of the test's directory here
#   - one PID namespace: killing its first process kills every process in it, containerd's shims
#     and the pods' containers included, so a test run that dies leaves no pod running
#   - the node's network namespace holds the pod network: a bridge (QUESTA_POD_BRIDGE, the pods'
#     gateway QUESTA_POD_GATEWAY/24) that every pod's veth joins (cni-pod-network.sh), the cluster
#     DNS (CoreDNS on QUESTA_CLUSTER_DNS:53), containerd and the kubelet, which reaches the pods'
#     IPs for its probes. The
#     machine's own network namespace gets no interface, route, rule or sysctl: the node reaches the
#     test's servers, and the API server reaches the kubelet, over Unix sockets (socat), and all of it
#     goes away with the namespace
# Usage: node-run.sh DIR CGROUP_ROOT   (the watchdog's TERM stops it; then the pods' cgroups go)
# Environment: QUESTA_KUBELET, QUESTA_COREDNS (binaries), QUESTA_KUBELET_PORT, QUESTA_CNI_TARGETS
# (ports of the test's servers on 127.0.0.1), QUESTA_POD_BRIDGE, QUESTA_POD_GATEWAY, QUESTA_CLUSTER_DNS
set -euo pipefail

dir="$1"
cgroup_root="$2"
stage="${3:-}"

if [[ -z "$stage" ]]; then
  unshare --mount --pid --kill-child --mount-proc --propagation private bash "$0" "$dir" "$cgroup_root" inner &
  ns=$!
  stopping=""
  trap 'stopping=1; kill -KILL "$ns" 2>/dev/null || true' TERM INT
  status=0
  wait "$ns" || status=$?
  wait "$ns" 2>/dev/null || true
  # the pods' cgroups, deepest first, once the processes in them are gone (every hierarchy of v1)
  for hierarchy in /sys/fs/cgroup/*/; do
    cgroup="$hierarchy${cgroup_root#/}"
    [[ -d "$cgroup" && ! -L "${hierarchy%/}" ]] || continue
    for _ in $(seq 50); do
      [[ -z "$(find "$cgroup" -name cgroup.procs -exec cat {} + 2>/dev/null)" ]] && break
      sleep 0.1
    done
    find "$cgroup" -depth -type d -exec rmdir {} + 2>/dev/null || true
  done
  # asked to stop: the node's files go too (the watchdog's clean-up may have been killed with the
  # test run's process group); after a crash they stay, for the log in the error
  if [[ -n "$stopping" ]]; then rm -rf "$dir"; fi
  exit "$status"
fi

# a forward in the background, of this PID namespace: it dies with the node
forward() { setsid socat "$@" </dev/null >>"$dir/forward.log" 2>&1 & }

if [[ "$stage" == inner ]]; then
  # still the machine's network namespace, in the node's mount and PID namespaces
  # the kernel settings the kubelet insists on (protectKernelDefaults) are global on the shared
  # machine: it is shown the values it wants, from files, in this mount namespace only
  for setting in vm/overcommit_memory=1 kernel/panic=10 kernel/panic_on_oops=1; do
    file="$dir/sysctl/${setting%%=*}"
    mkdir -p "$(dirname "$file")"
    echo "${setting#*=}" >"$file"
    mount --bind "$file" "/proc/sys/${setting%%=*}"
  done
  # hard-coded paths: /var/log/{pods,containers} (kubelet), /run/containerd/s (shim sockets)
  mkdir -p "$dir/var-log" "$dir/run"
  mount --bind "$dir/var-log" /var/log
  mount --bind "$dir/run" /run
  # machine ends of the node's and the pods' forwards: a Unix socket per test server, to
  # 127.0.0.1:port here; and the kubelet's port on 127.0.0.1 here, for the API server (logs, exec)
  for target in ${QUESTA_CNI_TARGETS:-}; do
    forward "UNIX-LISTEN:$dir/cni/out-$target.sock,fork,unlink-early" "TCP:127.0.0.1:$target"
  done
  forward "TCP-LISTEN:$QUESTA_KUBELET_PORT,bind=127.0.0.1,fork,reuseaddr" "UNIX-CONNECT:$dir/kubelet.sock"
  # the rest runs in the node's network namespace
  exec unshare --net bash "$0" "$dir" "$cgroup_root" node
fi

# the node's network namespace: loopback, the pods' bridge, the cluster DNS address
ip link set lo up
ip link add "$QUESTA_POD_BRIDGE" type bridge
ip addr add "$QUESTA_POD_GATEWAY/24" dev "$QUESTA_POD_BRIDGE"
ip link set "$QUESTA_POD_BRIDGE" up
ip addr add "$QUESTA_CLUSTER_DNS/32" dev lo
# the test's servers on 127.0.0.1 here too (the API server, for the kubelet and CoreDNS), and the
# kubelet's port reachable from the machine's side
for target in ${QUESTA_CNI_TARGETS:-}; do
  forward "TCP-LISTEN:$target,bind=127.0.0.1,fork,reuseaddr" "UNIX-CONNECT:$dir/cni/out-$target.sock"
done
forward "UNIX-LISTEN:$dir/kubelet.sock,fork,unlink-early" "TCP:127.0.0.1:$QUESTA_KUBELET_PORT"

# the pods' cluster DNS (the kubelet's clusterDNS): CoreDNS's kubernetes plugin, as on a real
# cluster, with the Corefile kube-node.ts wrote
"$QUESTA_COREDNS" -conf "$dir/Corefile" </dev/null >>"$dir/coredns.log" 2>&1 &
dns=$!

containerd --config "$dir/containerd.toml" &
containerd=$!
for _ in $(seq 300); do
  [[ -S "$dir/containerd.sock" ]] && break
  kill -0 "$containerd" || { echo "containerd exited while starting" >&2; exit 1; }
  sleep 0.1
done
echo "node-run: containerd ready" >&2

# the kubelet puts pods under cgroupRoot and wants it to exist in every hierarchy
for hierarchy in /sys/fs/cgroup/*/; do
  [[ -L "${hierarchy%/}" ]] || mkdir -p "$hierarchy${cgroup_root#/}"
done

"$QUESTA_KUBELET" --config="$dir/kubelet.yaml" --kubeconfig="$dir/kubelet.kubeconfig" \
  --root-dir="$dir/kubelet" --hostname-override=127.0.0.1 --v="${QUESTA_KUBELET_V:-1}" &
kubelet=$!

# any of them exiting ends the node (the test sees the node go away, with this log)
status=0
wait -n "$containerd" "$kubelet" "$dns" || status=$?
for process in containerd:$containerd kubelet:$kubelet coredns:$dns; do
  kill -0 "${process#*:}" 2>/dev/null || echo "node-run: ${process%%:*} exited ($status)" >&2
done
exit 1

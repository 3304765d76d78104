#!/usr/bin/env bash
# The test node (test/infra/kube-node.ts): containerd and the kubelet in one private mount namespace
# and one PID namespace of their own.
#   - one mount namespace: the kubelet mounts the pods' tmpfs volumes and service-account tokens,
#     and runc (started by containerd's shims) must see them
#   - private: nothing they mount reaches the shared machine, and paths they hard-code (/run,
#     /var/log) are bind mounts of the test's directory here
#   - one PID namespace: killing its first process kills every process in it, containerd's shims
#     and the pods' containers included, so a test run that dies leaves no pod running
# Usage: node-run.sh DIR CGROUP_ROOT   (the watchdog's TERM stops it; then the pods' cgroups go)
set -euo pipefail

dir="$1"
cgroup_root="$2"

if [[ "${3:-}" != inner ]]; then
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

# host ends of the pods' forwards (cni-loopback.sh): a Unix socket per port, to 127.0.0.1:port
for target in ${QUESTA_CNI_TARGETS:-}; do
  setsid socat "UNIX-LISTEN:$dir/cni/out-$target.sock,fork,unlink-early" "TCP:127.0.0.1:$target" </dev/null &
done

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

# either one exiting ends the node (the test sees the node go away, with this log)
status=0
wait -n "$containerd" "$kubelet" || status=$?
echo "node-run: $(kill -0 "$kubelet" 2>/dev/null && echo containerd || echo kubelet) exited ($status)" >&2
exit 1

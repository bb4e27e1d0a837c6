#!/usr/bin/env bash
# The README's two commands. On a fresh Debian 12 machine (root, Node 20):
#   bash test/run.sh demo   install what is missing, then migrate a real guest between two lab hosts
#   bash test/run.sh test   install what is missing, then run every test
set -euo pipefail
cd "$(dirname "$0")/.."

DEBIAN_PACKAGES=(
  # build: the native libvirt binding
  build-essential pkg-config python3 libvirt-dev
  # lab: private libvirtd hosts, TCG guests, a busybox initramfs, loop-device volumes
  libvirt-daemon-system libvirt-daemon-driver-qemu libvirt-clients qemu-system-x86 qemu-utils
  busybox-static cpio util-linux
  # RPC: the broker, and the reference oslo.messaging for interop tests
  rabbitmq-server python3-oslo.messaging
  # RPC over TLS: a throwaway CA, and a TLS proxy in front of the broker (test/rpc/tls.test.ts)
  openssl socat
)

log() { printf '\n== %s\n' "$*"; }

install_debian_packages() {
  local missing=() p
  for p in "${DEBIAN_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if ((${#missing[@]})); then
    log "installing Debian packages: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
  fi
}

ensure_rabbitmq() {
  if rabbitmqctl -q status >/dev/null 2>&1; then return; fi
  log "starting RabbitMQ"
  rabbitmq-server -detached
  rabbitmqctl -q await_startup --timeout 120 >/dev/null
}

install_node_packages() {
  # node-gyp must build against the installed headers, never download them.
  export npm_config_nodedir=/usr
  # Reinstall when the lock or the libvirt headers the addon was built against
  # changed (switching stacks changes the headers). The stamp lives in
  # node_modules, which is ignored, so the checkout stays clean.
  local stamp=node_modules/.ferry-install want
  want="$(sha256sum package-lock.json | cut -d' ' -f1) libvirt-$(pkg-config --modversion libvirt)"
  if [[ ! -f native/build/Release/virt.node || "$(cat "$stamp" 2>/dev/null)" != "$want" ]]; then
    log "installing npm packages from the lock and building the native binding"
    npm ci --no-audit --no-fund
    printf '%s' "$want" >"$stamp"
  fi
  log "building TypeScript"
  npm run -s build
}

install_debian_packages
ensure_rabbitmq
install_node_packages

case "${1:-}" in
  demo)
    log "demo: two lab hosts, two ferryd agents, one live migration"
    exec npx vite-node test/demo/demo.ts
    ;;
  test)
    log "tests"
    npm run -s typecheck
    mkdir -p .cache
    status=0
    npx vitest run --reporter=default --reporter=json --outputFile.json=.cache/vitest.json || status=$?
    # One plain closing line that any CI reads: N passed, N failed, N skipped.
    node -e 'const r = JSON.parse(require("fs").readFileSync(".cache/vitest.json", "utf8"));
      console.log(`${r.numPassedTests} passed, ${r.numFailedTests} failed, ${r.numPendingTests + r.numTodoTests} skipped`)' || status=1
    exit "$status"
    ;;
  *)
    echo "usage: bash test/run.sh demo|test" >&2
    exit 2
    ;;
esac

#!/usr/bin/env bash
# The README's two commands. On a fresh Debian 12 machine (root, Node 20):
#   bash test/run.sh demo   install what is missing, then migrate a real guest between two lab hosts
#   bash test/run.sh test   install what is missing, then run every test
# FERRY_STACK picks the libvirt/QEMU the lab runs on:
#   stock      (default) Debian 12's libvirt 9.0 / QEMU 7.2
#   backports  bookworm-backports' libvirt 11.3 / QEMU 10.0
# Either one is installed, or switched to, from whichever the machine has.
set -euo pipefail
cd "$(dirname "$0")/.."

STACK="${FERRY_STACK:-stock}"
case "$STACK" in
  stock | backports) ;;
  *) echo "run.sh: FERRY_STACK must be stock or backports, not '$STACK'" >&2; exit 2 ;;
esac
# The libvirt/QEMU stack: the binding's headers, the lab's daemons and emulator.
STACK_PACKAGES=(
  libvirt-dev libvirt0 libvirt-daemon libvirt-daemon-system libvirt-daemon-driver-qemu libvirt-clients
  qemu-system-x86 qemu-system-common qemu-system-data qemu-utils
)
DEBIAN_PACKAGES=(
  # build: the native libvirt binding
  build-essential pkg-config python3
  # lab: a busybox initramfs, loop-device volumes, iso9660 config drives
  busybox-static cpio util-linux genisoimage
  # RPC: the broker, and the reference oslo.messaging for interop tests
  rabbitmq-server python3-oslo.messaging
  # RPC over TLS: a throwaway CA, and a TLS proxy in front of the broker (test/rpc/tls.test.ts)
  openssl socat
  # systemd-notify (ferryd's Type=notify messages) and systemd-analyze (the unit verified): test/cli
  systemd
  # promtool and a Prometheus: contrib/'s alert rules and dashboard queries checked (test/cli/contrib.test.ts)
  prometheus
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

BACKPORTS_SOURCES=/etc/apt/sources.list.d/ferry-bookworm-backports.sources
# What the backports install added or upgraded, so stock can undo exactly that.
BACKPORTS_RECORD=/var/lib/ferry-stack/backports-changed

has_backports_source() {
  apt-get indextargets --format '$(CODENAME)' 'Created-By: Packages' | grep -qx bookworm-backports
}

# bookworm-backports from the Debian mirror apt already uses for bookworm; the
# file is kept only once apt has read it, so a bad one never breaks apt.
add_backports_source() {
  has_backports_source && return
  local uri
  uri=$(apt-get indextargets --format '$(ORIGIN) $(CODENAME) $(REPO_URI)' 'Created-By: Packages' |
    awk '$1 == "Debian" && $2 == "bookworm" && !u {u = $3} END {print u}')
  [[ -n "$uri" ]] || { echo "run.sh: apt has no Debian bookworm source to take the backports mirror from" >&2; exit 1; }
  log "adding bookworm-backports from $uri"
  printf 'Types: deb\nURIs: %s\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' "$uri" >"$BACKPORTS_SOURCES"
  apt-get update -qq || { rm -f "$BACKPORTS_SOURCES"; apt-get update -qq || true; exit 1; }
}

# "name version" of every installed package (not removed ones that kept config files).
installed_packages() {
  dpkg-query -W -f='${db:Status-Abbrev} ${Package} ${Version}\n' | awk '$1 == "ii" {print $2, $3}'
}
installed_version() { installed_packages | awk -v p="$1" '$1 == p {print $2}'; }

# The newest version of a binary package in bookworm itself (never backports);
# empty when bookworm does not have it. awk reads all of madison's output, so
# apt-cache never dies of SIGPIPE under pipefail.
stock_version() {
  apt-cache madison "$1" | awk -F'|' '!v && $3 !~ /backports/ && $3 ~ / Packages *$/ {v = $2; gsub(/ /, "", v)} END {print v}'
}

apt_install() { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@"; }

install_backports_stack() {
  local p want=()
  for p in "${STACK_PACKAGES[@]}"; do
    [[ "$(installed_version "$p")" == *bpo* ]] || want+=("$p")
  done
  ((${#want[@]})) || return 0
  add_backports_source
  local before
  before=$(mktemp)
  installed_packages | sort >"$before"
  log "installing the backports stack: ${want[*]}"
  apt_install -t bookworm-backports "${STACK_PACKAGES[@]}"
  mkdir -p "$(dirname "$BACKPORTS_RECORD")"
  # Names the install added or changed, merged with an earlier record.
  { comm -13 "$before" <(installed_packages | sort) | awk '{print $1}'; cat "$BACKPORTS_RECORD" 2>/dev/null || true; } |
    sort -u >"$BACKPORTS_RECORD.new"
  mv "$BACKPORTS_RECORD.new" "$BACKPORTS_RECORD"
  rm -f "$before"
}

# Back from backports: what the backports install changed (or, on a machine
# switched by hand, every libvirt/QEMU package from backports) returns to
# bookworm's version, or goes when bookworm has no such package; everything
# returned is reinstalled, since files shared between the two package layouts
# (libvirt's CPU maps, virtlogd.conf) vanish otherwise.
install_stock_stack() {
  local p v back=() gone=() want=()
  local -A seen=()
  while read -r p v; do
    [[ "$v" == *bpo* && "$p" =~ ^(libvirt|qemu) ]] && seen[$p]=1
  done < <(installed_packages)
  if [[ -f "$BACKPORTS_RECORD" ]]; then
    # Everything the backports install added or upgraded that is still installed.
    while read -r p; do
      [[ -n "$(installed_version "$p")" ]] && seen[$p]=1
    done <"$BACKPORTS_RECORD"
  fi
  for p in "${STACK_PACKAGES[@]}"; do
    [[ -n "$(installed_version "$p")" ]] || want+=("$p")
  done
  if ((${#seen[@]})); then
    apt-get update -qq
    for p in "${!seen[@]}" "${want[@]}"; do
      v=$(stock_version "$p")
      if [[ -n "$v" ]]; then back+=("$p=$v"); else gone+=("$p"); fi
    done
    log "returning to the stock stack: ${back[*]}${gone[*]:+; purging ${gone[*]}}"
    apt_install --allow-downgrades --purge "${back[@]}" "${gone[@]/%/-}"
    apt_install --reinstall "${back[@]}"
    rm -f "$BACKPORTS_RECORD"
  elif ((${#want[@]})); then
    log "installing the stock stack: ${want[*]}"
    apt-get update -qq
    apt_install "${want[@]}"
  fi
  if installed_packages | grep -E '^(libvirt|qemu)[^ ]* .*bpo' >&2; then
    echo "run.sh: the packages above are still from backports" >&2
    exit 1
  fi
}

ensure_stack() {
  case "$STACK" in
    backports) install_backports_stack ;;
    stock) install_stock_stack ;;
  esac
  log "stack: $STACK, libvirt $(pkg-config --modversion libvirt) (daemon $(installed_version libvirt-daemon)), QEMU $(installed_version qemu-system-x86)"
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
  # Reinstall when the lock, the addon's sources or the libvirt headers it is
  # built against changed (switching stacks changes the headers). The stamp lives in
  # node_modules, which is ignored, so the checkout stays clean.
  local stamp=node_modules/.ferry-install want
  want="$(cat package-lock.json native/binding.gyp native/src/* | sha256sum | cut -d' ' -f1) libvirt-$(pkg-config --modversion libvirt)"
  if [[ ! -f native/build/Release/virt.node || "$(cat "$stamp" 2>/dev/null)" != "$want" ]]; then
    log "installing npm packages from the lock and building the native binding"
    npm ci --no-audit --no-fund
    printf '%s' "$want" >"$stamp"
  fi
  log "building TypeScript"
  npm run -s build
}

install_debian_packages
ensure_stack
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

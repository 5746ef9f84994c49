# Sourced by the other scripts: installs the Debian packages a step needs, when missing.
# Usage: ensure_packages pkg...

# What every build needs.
BUILD_PACKAGES=(gcc cmake ninja-build pkg-config libuv1-dev libhttp-parser-dev libjansson-dev
  libsqlite3-dev libssl-dev libpcre2-dev)
# What the test suites need on top.
TEST_PACKAGES=(libcmocka-dev)
# What the end-to-end tests need (tests/e2e: real npm clients against the server): Node.js,
# when the machine has none of its own, and headless Chromium for browser.test.js.
E2E_NODE_PACKAGES=(nodejs npm)
E2E_BROWSER_PACKAGES=(chromium)

ensure_packages() {
  local missing=()
  local pkg
  for pkg in "$@"; do
    # dpkg-query answers "install ok installed" only for a package that is fully there.
    if [ "$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null)" != "install ok installed" ]; then
      missing+=("$pkg")
    fi
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "flagwire: installing ${missing[*]}" >&2
  local sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
      sudo=(sudo)
    else
      echo "flagwire: these Debian packages are missing and this is not root: ${missing[*]}" >&2
      return 1
    fi
  fi
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends \
    "${missing[@]}"
}

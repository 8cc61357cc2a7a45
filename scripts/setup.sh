#!/usr/bin/env bash
# Installs the system packages LeadsCaller and its tests need on Debian/Ubuntu (idempotent).
set -euo pipefail
PACKAGES=(
  pkg-config libopus-dev   # Opus codec (media core)
  curl jq                  # docs/api.md walkthrough test runs its curl commands
  sip-tester               # sipp: SIP load and interop peer
  baresip                  # a real SIP user agent for interop tests
  kamailio                 # a real SIP proxy/registrar for carrier tests
  tshark                   # packet captures in media tests
  sox libsox-fmt-mp3 lame  # prompt tests: encode FLAC/MP3/Ogg tone files
  opus-tools               # recorder tests: opusdec checks Ogg/Opus recordings
  libpocketsphinx-dev pocketsphinx-en-us  # embedded offline STT (BSD) and its US English model
  flite1-dev               # embedded offline TTS (Flite, BSD-style): kal 8 kHz, slt 16 kHz voices
  python3-websockets       # stream tests: a real WebSocket client playing Twilio
  postgresql               # store/API tests run on a real PostgreSQL server too
  wrk                      # HTTP load generator: benches/load/api-read.sh
)
# schemathesis: property-based tests of the API against its OpenAPI document (tests/schemathesis.rs).
SCHEMATHESIS_VERSION=4.32.5
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # tshark asks whether non-root users may capture; answer no without a prompt.
  echo "wireshark-common wireshark-common/install-setuid boolean false" | $SUDO debconf-set-selections
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if ! command -v schemathesis >/dev/null ||
  [ "$(schemathesis --version 2>/dev/null | awk '{print $NF}')" != "$SCHEMATHESIS_VERSION" ]; then
  echo "setup: installing schemathesis $SCHEMATHESIS_VERSION (PyPI)"
  python3 -m pip install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi
if ! command -v cargo >/dev/null; then
  echo "setup: cargo not found; install Rust >= 1.94 (https://rustup.rs) and re-run" >&2
  exit 1
fi
echo "setup: ok"

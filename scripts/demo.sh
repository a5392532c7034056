#!/usr/bin/env bash
# The no-account demo: the emulator with the demo drive, mounted with adrivefs.
#   scripts/demo.sh [MOUNTPOINT]      (default ./mnt; `make demo-stop` undoes it)
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${BIN:-.build/debug}
PORT=${DEMO_PORT:-8787}
MNT=${1:-${DEMO_MNT:-./mnt}}
DATA=.build/demo-data
STATE=.build/demo-state
mkdir -p "$DATA" "$STATE/adrivefs" "$MNT"

# Leftovers of an earlier demo.
if grep -q " $(realpath "$MNT") " /proc/self/mountinfo; then fusermount3 -u -z "$MNT" || true; fi
if [ -f .build/demo-emulator.pid ]; then kill "$(cat .build/demo-emulator.pid)" 2>/dev/null || true; sleep 0.5; fi

"$BIN/adrivefs-emulator" --port "$PORT" --seed demo --data-dir "$DATA" > .build/demo-emulator.log 2>&1 &
echo $! > .build/demo-emulator.pid
for _ in $(seq 100); do grep -q "^listening on" .build/demo-emulator.log && break; sleep 0.1; done
grep -q "^listening on" .build/demo-emulator.log || { cat .build/demo-emulator.log; echo "the emulator did not start"; exit 1; }
ENDPOINT=$(sed -n 's/^listening on //p' .build/demo-emulator.log)

# A login of its own for the mount (as a QR login would give), stored with mode 0600.
curl -s -X POST "$ENDPOINT/__emulator/tokens" | sed -n 's/.*"refresh_token":"\([0-9a-f]*\)".*/\1/p' \
  | XDG_CONFIG_HOME="$STATE" "$BIN/adrivefs" auth import

XDG_CONFIG_HOME="$STATE" "$BIN/adrivefs" adrive "$MNT" -o "endpoint=$ENDPOINT"

echo
echo "The demo drive (served by adrivefs-emulator at $ENDPOINT) is mounted on $MNT:"
echo
ls -l "$MNT"
echo
ls -l "$MNT/Documents"
echo
echo "Try: find $MNT | head; sha1sum $MNT/Videos/sample.mp4; df -h $MNT"
echo "Unmount and stop the emulator with: make demo-stop"
echo "  (or: fusermount3 -u $MNT; kill \$(cat .build/demo-emulator.pid))"

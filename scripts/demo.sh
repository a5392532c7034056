#!/usr/bin/env bash
# The no-account demo: the emulator with the demo drive, mounted with adrivefs.
#   scripts/demo.sh [MOUNTPOINT]      (default ./mnt; `make demo-stop` undoes it)
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${BIN:-.build/debug}
PORT=${DEMO_PORT:-8787}
MNT=${1:-${DEMO_MNT:-./mnt}}
SHARE_MNT=${DEMO_SHARE_MNT:-$MNT-share}
DATA=.build/demo-data
STATE=.build/demo-state
mkdir -p "$DATA" "$STATE/adrivefs" "$MNT" "$SHARE_MNT"

# Leftovers of an earlier demo.
for dir in "$MNT" "$SHARE_MNT"; do
  if grep -q " $(realpath "$dir") " /proc/self/mountinfo; then fusermount3 -u -z "$dir" || true; fi
done
if [ -f .build/demo-emulator.pid ]; then kill "$(cat .build/demo-emulator.pid)" 2>/dev/null || true; sleep 0.5; fi

"$BIN/adrivefs-emulator" --port "$PORT" --seed demo --data-dir "$DATA" > .build/demo-emulator.log 2>&1 &
echo $! > .build/demo-emulator.pid
for _ in $(seq 100); do grep -q "^listening on" .build/demo-emulator.log && break; sleep 0.1; done
grep -q "^listening on" .build/demo-emulator.log || { cat .build/demo-emulator.log; echo "the emulator did not start"; exit 1; }
ENDPOINT=$(sed -n 's/^listening on //p' .build/demo-emulator.log)

# A login of its own for the mount (as a QR login would give), stored with mode 0600.
curl -s -X POST "$ENDPOINT/__emulator/tokens" | sed -n 's/.*"refresh_token":"\([0-9a-f]*\)".*/\1/p' \
  | XDG_CONFIG_HOME="$STATE" "$BIN/adrivefs" auth import

# One of the demo drive's share links (the emulator prints them at start): the public one
# when there is one, else the password-protected one with its password. The drive's mount
# shows it under .shares/ (cp from there saves server-side); it is also mounted on its own.
SHARE_LINE=$(grep '^share: .*no password' .build/demo-emulator.log | head -1)
[ -n "$SHARE_LINE" ] || SHARE_LINE=$(grep '^share: ' .build/demo-emulator.log | head -1)
SHARE=$(echo "$SHARE_LINE" | sed -n 's/^share: \(share:[A-Za-z0-9]*\).*/\1/p')
SHARE_PWD=$(echo "$SHARE_LINE" | sed -n 's/.*, password \(.*\)$/\1/p')

ADRIVEFS_SHARE_PWD="$SHARE_PWD" XDG_CONFIG_HOME="$STATE" "$BIN/adrivefs" adrive "$MNT" \
  -o "endpoint=$ENDPOINT${SHARE:+,share=${SHARE#share:}}"

if [ -n "$SHARE" ]; then
  ADRIVEFS_SHARE_PWD="$SHARE_PWD" XDG_CONFIG_HOME="$STATE" "$BIN/adrivefs" "$SHARE" "$SHARE_MNT" -o "endpoint=$ENDPOINT"
fi

echo
echo "The demo drive (served by adrivefs-emulator at $ENDPOINT) is mounted on $MNT:"
echo
ls -l "$MNT"
echo
ls -l "$MNT/Documents"
echo
if [ -n "$SHARE" ]; then
  echo "The demo share $SHARE is mounted read-only on $SHARE_MNT (its files are read"
  echo "through temporary copies in the demo drive, as with the real service):"
  echo
  ls -l "$SHARE_MNT"
  echo
fi
echo "Try: find $MNT | head; sha1sum $MNT/Videos/sample.mp4; df -h $MNT"
echo "     cp $MNT/Documents/notes.md $MNT/copy.md; ls -R $SHARE_MNT"
if [ -n "$SHARE" ]; then
  echo "     ls $MNT/.shares; cp -r \"$MNT/.shares/\"*/Documents $MNT/Saved   (a server-side save: 0 bytes moved)"
fi
echo "Unmount and stop the emulator with: make demo-stop"
echo "  (or: fusermount3 -u $MNT; fusermount3 -u $SHARE_MNT; kill \$(cat .build/demo-emulator.pid))"

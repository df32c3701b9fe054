#!/usr/bin/env bash
# Prints, as the last lines of `make test`, which XCTest cases failed and the assertion
# that failed in each, so a CI log that keeps only its tail still names them.
# Usage: test-summary.sh SWIFT_TEST_LOG EXIT_STATUS
set -uo pipefail
log="$1"; status="$2"
if [ ! -f "$log" ]; then echo "test summary: no swift test log at $log"; exit 0; fi
failed="$(grep -E "^Test Case '.*' failed" "$log" | sed -E "s/^Test Case '([^']*)' failed.*/\1/" | sort -u)"
if [ -z "$failed" ]; then
  if grep -qE "^Test Suite 'All tests' passed" "$log"; then
    echo "test summary: every XCTest case passed (exit status $status)"
  else
    # A crash ends the process mid-case: name the last case that started without ending.
    last="$(grep -E "^Test Case '.*' started" "$log" | tail -n 1 | sed -E "s/^Test Case '([^']*)'.*/\1/")"
    echo "test summary: swift test did not finish normally (last case started: ${last:-none}); its last lines:"
    tail -n 8 "$log" | cut -c1-300
  fi
  exit 0
fi
echo "test summary: XCTest cases that failed (exit status $status):"
while IFS= read -r name; do
  echo "  $name"
  # The assertion lines XCTest printed for this case (file:line: error: -[Case test] : ...).
  method="${name##*.}"; method="${method#*\[}"; method="${method%]}"; method="${method##* }"
  grep -F "error: " "$log" | grep -F "$method" | head -n 3 | cut -c1-400 | sed 's/^/    /'
done <<< "$failed"

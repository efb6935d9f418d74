#!/usr/bin/env bash
# scripts/expect_failure.sh CODE PATTERN COMMAND [ARGS...]
# For ctest: passes when COMMAND exits with status CODE and its output (stdout + stderr) contains PATTERN
# (a fixed string). Prints what it saw either way.
set -u
expected_code=$1 pattern=$2
shift 2
output=$("$@" 2>&1)
code=$?
echo "$output"
echo "exit status: $code (expected $expected_code)"
[[ $code -eq $expected_code ]] || { echo "FAIL: wrong exit status"; exit 1; }
grep -qF -- "$pattern" <<<"$output" || { echo "FAIL: output lacks: $pattern"; exit 1; }
echo "PASS"

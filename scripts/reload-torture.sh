#!/bin/sh
# reload-torture.sh [--clients N] [--reloads N] [--duration S] [--workers N] ...
# Live traffic through a wsechod it starts on 127.0.0.1 while its master gets
# SIGHUPs; prints connects, failures, messages and losses.  See
# scripts/reload_torture.py --help.  Debian's python3 (no packages needed).
here=$(dirname "$0")
exec /usr/bin/python3 "$here/reload_torture.py" "$@"

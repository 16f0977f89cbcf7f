"""The broker flags the fleet's commands share (``--host``, ``--port``, ``--prefix``),
checked the same way in each: a bad one is a one-line usage error, never a traceback."""

from __future__ import annotations

import argparse


def add_broker_flags(p: argparse.ArgumentParser, prefix: str) -> None:
    """``--host``, ``--port`` and ``--prefix`` (default ``prefix``)."""
    p.add_argument("--host", default="localhost", help="the fleet's broker (default localhost)")
    p.add_argument("--port", type=int, default=1883)
    p.add_argument("--prefix", default=prefix,
                   help=f"the devices' sinks.mqtt.topic_prefix (default {prefix})")


def check_broker_flags(p: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Exit 2 with one line naming the flag when one of them cannot work."""
    if not 1 <= args.port <= 65535:
        p.error(f"--port: must be in 1..65535, got {args.port}")
    if not args.prefix or any(c in args.prefix for c in "/+#") or not args.prefix.isprintable():
        p.error(f"--prefix: one topic level without '/', '+' or '#', got {args.prefix!r}")
    if not args.host.strip():
        p.error("--host: give the broker's host name or address")
    try:  # what the socket layer would refuse later with a traceback
        args.host.encode("idna")
    except UnicodeError:
        p.error(f"--host: not a host name or address: {args.host[:80]!r}")

"""Secrets (the MQTT password, the web token) read from a file or an environment variable.

Never from the YAML itself, so the config file can be shared and committed. One rule for
every secret: surrounding whitespace is stripped (a file written by ``echo`` ends in a
newline), and an empty value, a missing file or an unset variable is a config error.
"""

from __future__ import annotations

import os
from pathlib import Path

from edge.config.checks import ConfigError

#: Longest secret file read: a password or token is a line, and a device file such as
#: /dev/zero must not be read forever.
MAX_SECRET_BYTES = 4096


def read_secret(key: str, file: str | None, env: str | None) -> str | None:
    """The secret named by ``<key>_file`` or ``<key>_env``; ``None`` when neither is set.

    Args:
        key: the config key without its suffix, e.g. ``sinks.mqtt.password``.
        file: the value of ``<key>_file``.
        env: the value of ``<key>_env``.

    Raises:
        ConfigError: naming ``<key>_file`` or ``<key>_env``: unreadable, too long, or empty.
    """
    if file:
        try:
            with Path(file).open("rb") as fh:
                raw = fh.read(MAX_SECRET_BYTES + 1)
        except OSError as exc:
            raise ConfigError(f"{key}_file: cannot read {file} ({exc.strerror})") from None
        if len(raw) > MAX_SECRET_BYTES:
            raise ConfigError(f"{key}_file: {file} is longer than {MAX_SECRET_BYTES} bytes; "
                              "it should hold one line")
        value = raw.decode("utf-8", errors="replace").strip()
        if not value:
            raise ConfigError(f"{key}_file: {file} is empty")
        return value
    if env:
        value = os.environ.get(env, "").strip()
        if not value:
            raise ConfigError(f"{key}_env: environment variable {env} is not set or empty")
        return value
    return None

"""Secrets come from environment variables whose NAMES the config holds.

A resolved secret is remembered (in memory only) so that `scrub()` can blank it out of
any text on its way to a log line, a run dir or an error message.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Mapping
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from vision_core.errors import ConfigError, SecretError

_known: set[str] = set()
_lock = threading.Lock()
MASK = "***"

_DSN_PASSWORD_URL = re.compile(
    r"(?P<head>[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]*:)(?P<pw>[^@\s]*)(?P<at>@)"
)
# an unquoted value ends at white space, or at a double quote or backslash: scrub() also
# runs over JSON text (a log line), where the value is followed by `",`
_DSN_PASSWORD_KV = re.compile(
    r"(?P<head>\bpassword\s*=\s*)(?P<pw>'[^']*'|[^\s\"\\]+)", re.IGNORECASE
)


class Secret:
    """A secret value that does not print itself."""

    __slots__ = ("_value", "env_name")

    def __init__(self, value: str, env_name: str) -> None:
        self._value = value
        self.env_name = env_name

    def reveal(self) -> str:
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __repr__(self) -> str:
        return f"Secret(env={self.env_name!r}, value={MASK if self._value else ''!r})"

    __str__ = __repr__


def register(value: str) -> None:
    """Remember a secret value so that scrub() removes it (values under 4 chars are ignored)."""
    if value and len(value) >= 4:
        with _lock:
            _known.add(value)


def resolve_secret(
    env_name: str,
    *,
    key_path: str,
    required: bool = False,
    environ: Mapping[str, str] | None = None,
) -> Secret:
    """Read the secret held by environment variable `env_name` (named at config `key_path`).

    Missing and required: SecretError naming the variable and the key, never a value.
    """
    env = os.environ if environ is None else environ
    value = env.get(env_name, "") if env_name else ""
    if required and not value:
        raise SecretError(
            f"{key_path}: environment variable {env_name!r} is not set or empty "
            f"(export {env_name}=... before starting)"
        )
    register(value)
    return Secret(value, env_name)


def redact_dsn(text: str) -> str:
    """Blank the password of a database URL or libpq key=value DSN."""
    text = _DSN_PASSWORD_URL.sub(lambda m: f"{m['head']}{MASK}{m['at']}", text)
    return _DSN_PASSWORD_KV.sub(lambda m: f"{m['head']}{MASK}", text)


def scrub(text: str) -> str:
    """Remove every registered secret and any DSN password from `text`."""
    with _lock:
        known = sorted(_known, key=len, reverse=True)
    for value in known:
        if value in text:
            text = text.replace(value, MASK)
    if "://" in text or "password" in text.lower():
        text = redact_dsn(text)
    return text


def camera_url(
    camera: str,
    credentials_env: str = "",
    *,
    key_path: str = "deploy.edge.camera_credentials_env",
    environ: Mapping[str, str] | None = None,
) -> str:
    """The camera to open: a device index, or a URL with its credentials.

    `credentials_env` names an environment variable holding `user:password` for a camera
    URL (`rtsp://host/stream`): they are put into the URL here, at the last moment, so the
    config file, config.json and every log line only ever see the URL without them. A
    password written in the URL itself works too; either way it is registered for scrub().
    """
    parts = urlsplit(camera) if "://" in camera else None
    if not credentials_env:
        if parts is not None and parts.password:
            register(unquote(parts.password))
            register(parts.password)
        return camera
    if parts is None or not parts.hostname:
        raise ConfigError(
            f"{key_path} is set, but deploy.edge.camera is not a URL ({camera!r}): credentials "
            "are for network cameras (rtsp://, http://)"
        )
    if parts.username or parts.password:
        raise ConfigError(
            f"{key_path} is set and deploy.edge.camera carries credentials too: keep them only "
            f"in the environment variable {credentials_env!r}"
        )
    secret = resolve_secret(credentials_env, key_path=key_path, required=True, environ=environ)
    user, sep, password = secret.reveal().partition(":")
    if not sep:
        raise SecretError(
            f"{key_path}: environment variable {credentials_env!r} must hold user:password"
        )
    register(password)
    register(quote(password, safe=""))
    host = parts.netloc
    netloc = f"{quote(user, safe='')}:{quote(password, safe='')}@{host}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def redact_url(text: str) -> str:
    """`text` with the password of any URL in it blanked (the user name stays)."""
    return _DSN_PASSWORD_URL.sub(lambda m: f"{m['head']}{MASK}{m['at']}", text)

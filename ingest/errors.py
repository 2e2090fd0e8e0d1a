"""One error root for the whole project, split by whose fault it is.

::

    IngestError
    ├── UserError                 our user's input: settings, CLI arguments, files named on the CLI
    │   ├── SettingsError         settings.toml: names the file and the key
    │   └── InputError            an unreadable or malformed file given to a command
    └── RemoteError               something outside us misbehaved
        ├── DecodeError           an exchange frame we cannot decode (bad JSON, missing field, wrong type)
        ├── SequenceError         an exchange's sequence is broken beyond what the sync rules repair
        └── ConnectionLost        a feed connection died or went silent

`is_retryable` is the one place that decides retry or give up.
"""

from __future__ import annotations


class IngestError(Exception):
    """Root of every error this project raises on purpose."""


class UserError(IngestError):
    """The user's input is wrong; retrying cannot help. Printed as one line, never a traceback."""


class SettingsError(UserError):
    def __init__(self, path: str, key: str, problem: str) -> None:
        self.path = path
        self.key = key
        self.problem = problem
        where = f"{path}: {key}" if key else path
        super().__init__(f"{where}: {problem}")


class InputError(UserError):
    """A file or argument given to a command cannot be used."""


class RemoteError(IngestError):
    """Something outside the project (an exchange, the network, a server) misbehaved."""


class DecodeError(RemoteError):
    """An exchange frame that cannot be decoded. Carries a short excerpt of the frame for the log."""

    def __init__(self, message: str, frame: bytes | str = b"") -> None:
        excerpt = frame[:200] if isinstance(frame, bytes | str) else b""
        self.excerpt = excerpt.decode("utf-8", "replace") if isinstance(excerpt, bytes) else excerpt
        super().__init__(f"{message}: {self.excerpt!r}" if excerpt else message)


class SequenceError(RemoteError):
    """An exchange's sequence broke in a way the sync rules cannot absorb."""


class ConnectionLost(RemoteError):
    """A feed connection closed, failed or went silent."""


def is_retryable(exc: BaseException) -> bool:
    """Decide retry (True) or give up (False) for an error raised while running a feed.

    Whatever the exchange or the network did is retried (with backoff by the caller); a mistake in
    our own configuration is not, and neither is a bug (any non-project exception except OS-level
    network errors and timeouts, which are the network's fault).
    """
    if isinstance(exc, UserError):
        return False
    if isinstance(exc, RemoteError):
        return True
    return isinstance(exc, OSError | TimeoutError | EOFError)

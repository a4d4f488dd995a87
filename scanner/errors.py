"""The exception tree: everything cos-scanner raises on purpose.

```
ScannerError                  base
├── ConfigError               bad file, flag or environment          -> exit 2
├── ScanBusyError             a live scan holds the target's lease   -> exit 75
├── AbandonedError            not sent (or not retried) after a stop: objects stay pending
├── StoreError                SQLite failure
│   └── MigrationError        a migration failed (rolled back)
└── RemoteError               .service ("cos"|"audit"), .request_id, .retryable
    ├── TransportError        connect/read failure, timeout          retryable
    ├── ThrottledError        429 / 503 / SlowDown; .retry_after     retryable
    ├── AuthError             401/403 signature, key or permission   fatal
    ├── ServiceError          other non-2xx; .status, .code          5xx retryable
    └── ProtocolError         a body we cannot parse or accept       fatal
```

Per-object outcomes (an image the API could not read) are data, not exceptions.
This module is a leaf: it imports nothing from `scanner`.
"""

from __future__ import annotations

from collections.abc import Callable


class ScannerError(Exception):
    """Base of every error cos-scanner raises on purpose."""


def echo(value: object) -> str:
    """A value as an error line shows it: its repr, cut to 80 characters."""
    shown = repr(value)
    return shown if len(shown) <= 80 else shown[:77] + "..."


class ConfigError(ScannerError):
    """The configuration (file, environment or flags) is invalid."""

    kind = "config error"  # how the one line on stderr names it

    def __init__(self, problems: list[str] | str) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("; ".join(self.problems))


class SkippedInputError(ConfigError):
    """An input a scan would skip, refused before anything is sent (`check`)."""

    kind = "not sent"


class StoreError(ScannerError):
    """The SQLite store failed or is not usable."""


class MigrationError(StoreError):
    """A schema migration failed and was rolled back."""


class RemoteError(ScannerError):
    """A call to COS or CI failed."""

    retryable = False

    def __init__(
        self,
        service: str,
        message: str,
        *,
        request_id: str = "",
        status: int = 0,
        code: str = "",
    ) -> None:
        self.service = service
        self.message = message
        self.request_id = request_id
        self.status = status
        self.code = code
        detail = f"{service}: {message}"
        if status:
            detail += f" (HTTP {status}{', ' + code if code else ''})"
        elif code:  # an API 3.0 error: HTTP 200 with the code in the body
            detail += f" ({code})"
        if request_id:
            detail += f" [request id {request_id}]"
        super().__init__(detail)


class TransportError(RemoteError):
    """The connection failed or timed out before a complete answer arrived.

    `maybe_sent`: the request had left (a timeout or reset while waiting for the answer), so
    the service may have done the work; False when it never left (connect failed, refused).
    """

    retryable = True

    def __init__(self, service: str, message: str, *, maybe_sent: bool = False) -> None:
        super().__init__(service, message)
        self.maybe_sent = maybe_sent


class ThrottledError(RemoteError):
    """The service asked us to slow down (429, 503, SlowDown)."""

    retryable = True

    def __init__(
        self,
        service: str,
        message: str,
        *,
        retry_after: float | None = None,
        request_id: str = "",
        status: int = 0,
        code: str = "",
    ) -> None:
        super().__init__(service, message, request_id=request_id, status=status, code=code)
        self.retry_after = retry_after


class AuthError(RemoteError):
    """The service refused our credentials, signature or permissions."""


class ServiceError(RemoteError):
    """The service answered with an error status; 5xx ones are worth retrying."""

    def __init__(
        self,
        service: str,
        message: str,
        *,
        request_id: str = "",
        status: int = 0,
        code: str = "",
        retryable: bool = False,
    ) -> None:
        super().__init__(service, message, request_id=request_id, status=status, code=code)
        self.retryable = retryable


class ProtocolError(RemoteError):
    """The service answered with a body we cannot parse or must not accept."""


class AbandonedError(ScannerError):
    """A request given up after the first stop signal, before it was sent (or with an error
    answer, not retried): its objects stay pending for the next run."""


class ScanBusyError(ScannerError):
    """Another live process holds the target's lease."""


#: Told of each retry: the error, the attempt that failed, the wait before the next.
OnRetry = Callable[[RemoteError, int, float], None]


def leaf_error(exc: BaseException) -> BaseException:
    """The first real error inside (nested) exception groups."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


def first_error(exc: BaseException) -> str:
    """`leaf_error` as a line: its message, or its type's name."""
    leaf = leaf_error(exc)
    return str(leaf) or type(leaf).__name__

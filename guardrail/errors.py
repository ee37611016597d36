"""The exception tree. Every error guardrail raises derives from ``GuardrailError``.

::

    GuardrailError
    ├── ConfigError (ValueError)          bad configuration or user input; says what, where and how to fix
    │   ├── PolicyError                   an invalid policy file: file, YAML path (and line), reason
    │   ├── InputFormatError              an unreadable input record: file:line and reason, never the content
    │   └── SubjectNotFound               a subject report would be empty; names where their events are
    ├── DataErased                        the data asked for was erased (Art. 17, retention): nothing kept
    ├── DetectorUnavailable               the spaCy model (or another detector dependency) is not installed
    ├── DetectionError                    detection failed on a text; nothing is released (fail closed)
    ├── KeyUnavailable                    a key the operation needs is missing (e.g. for ``hash``)
    └── OutputExistsError (FileExistsError)  an output exists and ``force`` was not given

Messages never carry raw PII or key material: they name records by position or id, entities by type.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "DataErased",
    "DetectionError",
    "DetectorUnavailable",
    "GuardrailError",
    "InputFormatError",
    "KeyUnavailable",
    "OutputExistsError",
    "PolicyError",
    "SubjectNotFound",
]


class GuardrailError(Exception):
    """Root of every error raised by guardrail."""


class ConfigError(GuardrailError, ValueError):
    """Invalid configuration or user input."""


class PolicyError(ConfigError):
    """A policy file is invalid.

    Attributes:
        source: the file (or pack name) the policy came from.
        path: the YAML path of the offending value, e.g. ``redaction.operators.US_SSN.keep_last``.
        line: 1-based line of that value in the file, when known.
    """

    def __init__(self, source: str, reason: str, *, path: str = "", line: int | None = None) -> None:
        where = source if line is None else f"{source}:{line}"
        at = f" at {path}" if path else ""
        super().__init__(f"{where}: invalid policy{at}: {reason}")
        self.source = source
        self.path = path
        self.line = line
        self.reason = reason

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild_policy_error, (self.source, self.reason, self.path, self.line))


class InputFormatError(ConfigError):
    """An input record cannot be read. Names the file and line, never the record's content."""

    def __init__(self, source: str, line: int | None, reason: str) -> None:
        where = source if line is None else f"{source}:{line}"
        super().__init__(f"{where}: {reason}")
        self.source = source
        self.line = line
        self.reason = reason

    def __reduce__(self) -> tuple[object, ...]:
        return (InputFormatError, (self.source, self.line, self.reason))


def _rebuild_policy_error(source: str, reason: str, path: str, line: int | None) -> PolicyError:
    return PolicyError(source, reason, path=path, line=line)


class DetectorUnavailable(GuardrailError):
    """The detector cannot be built: a model or dependency is missing. The message says what to install."""


class DetectionError(GuardrailError):
    """Detection failed; callers must not release the text."""


class KeyUnavailable(GuardrailError):
    """A key needed by the operation is not configured."""


class OutputExistsError(GuardrailError, FileExistsError):
    """The output path exists and ``force`` was not given."""


class DataErased(GuardrailError):
    """The data asked for was erased (a GDPR Art. 17 erasure or a retention deletion): nothing is kept to
    return. Raised, for example, when re-identifying an erased vault token (the attempt is audited)."""


class SubjectNotFound(ConfigError):
    """A report about one data subject would be empty under the tenant asked for; the message names the
    tenants where the subject does have events (by keyed reference) and the option that writes it anyway."""

"""LlamaIndex's log lines carry content: :func:`protect_logs` rewrites them as they are created.

LlamaIndex formats chunk text (``> Adding chunk: ...``, the retriever's per-node ``> [Node ...]`` lines),
prompts, responses, chat history and file paths into the DEBUG and INFO records of its ``llama_index.*``
loggers, guarded or not. :func:`protect_logs` (installed by every ``Guardrail``) wraps the log record
factory so that those records, whichever handler prints them, keep only a static part: a ``%``-style
format string with its arguments withheld, or the short prefix of a preformatted message
(``> Adding chunk: [withheld by guardrail] (50 chars)``). Other loggers are untouched. This module does
not import LlamaIndex.
"""

from __future__ import annotations

import logging
import re
import threading
from typing import Any

__all__ = ["WITHHELD", "LlamaIndexLogFilter", "protect_logs", "scrub"]

WITHHELD = "[withheld by guardrail]"

_PREFIX_MAX = 60
_PLACEHOLDER = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(?:\*|\d+)?(?:\.(?:\*|\d+))?[diouxXeEfFgGcrsa%]")
_install_lock = threading.Lock()
_state = {"installed": False}


def scrub(record: logging.LogRecord) -> None:
    """Rewrite a ``llama_index.*`` record in place so that it carries no content."""
    if not record.name.startswith("llama_index") or getattr(record, "_gr_scrubbed", False):
        return
    record._gr_scrubbed = True
    if record.args:
        # a %-style format string is static; its arguments are the data
        record.msg, record.args = _PLACEHOLDER.sub(WITHHELD, str(record.msg)), ()
        return
    message = str(record.msg)
    head, sep, rest = message.partition(":")
    if sep and rest.strip() and 0 < len(head) <= _PREFIX_MAX and "\n" not in head:
        record.msg = f"{head}: {WITHHELD} ({len(rest.strip())} chars)"
    else:
        record.msg = f"{WITHHELD} ({len(message)} chars)"


class LlamaIndexLogFilter(logging.Filter):
    """A filter for your own handlers: the same rewriting :func:`protect_logs` installs globally."""

    def filter(self, record: logging.LogRecord) -> bool:
        scrub(record)
        return True


def protect_logs() -> None:
    """Rewrite every ``llama_index.*`` log record as it is created (idempotent, process-wide)."""
    with _install_lock:
        if _state["installed"]:
            return
        previous = logging.getLogRecordFactory()

        def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = previous(*args, **kwargs)
            scrub(record)
            return record

        logging.setLogRecordFactory(factory)
        _state["installed"] = True

"""Dataset formats for fine-tuning and RAG data: detect, stream, redact selected fields, write back.

Runs: :func:`scan_file` (counts per entity type), :func:`redact_file` (a redacted copy with a re-scan, a
signed manifest and a dataset card) and :func:`text_redactor` (a batch function for
:func:`redact_dataset` on a Hugging Face ``Dataset``); ``keyring=`` takes a keyring or its directory.

pyarrow and datasets (for Parquet and Hugging Face data) are optional:
``pip install 'guardrail-privacy[datasets]'``. :func:`redact_ray_dataset` (Ray Data) needs
``pip install 'guardrail-privacy[ray]'``. The runs and the Ray engine are imported on first use.
"""

from typing import TYPE_CHECKING, Any

from guardrail.datasets.formats import (
    DatasetFormat,
    DatasetReader,
    DatasetRecord,
    DatasetWriter,
    FieldRules,
    detect_format,
    iter_records,
    open_writer,
    redact_dataset,
)

if TYPE_CHECKING:
    from guardrail.datasets.ray_engine import redact_ray_dataset
    from guardrail.datasets.run import (
        GateFailed,
        RunResult,
        ScanResult,
        redact_file,
        scan_file,
        text_redactor,
    )

__all__ = [
    "DatasetFormat",
    "DatasetReader",
    "DatasetRecord",
    "DatasetWriter",
    "FieldRules",
    "GateFailed",
    "RunResult",
    "ScanResult",
    "detect_format",
    "iter_records",
    "open_writer",
    "redact_dataset",
    "redact_file",
    "redact_ray_dataset",
    "scan_file",
    "text_redactor",
]

# name -> module: the runs pull in the whole redaction pipeline, the Ray engine Ray itself; loaded when
# asked for, not with the formats
_LAZY = {
    "GateFailed": "guardrail.datasets.run",
    "RunResult": "guardrail.datasets.run",
    "ScanResult": "guardrail.datasets.run",
    "redact_file": "guardrail.datasets.run",
    "scan_file": "guardrail.datasets.run",
    "text_redactor": "guardrail.datasets.run",
    "redact_ray_dataset": "guardrail.datasets.ray_engine",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

"""Dataset formats for fine-tuning and RAG data: detect, stream, redact selected fields, write back.

pyarrow and datasets (for Parquet and Hugging Face data) are optional: ``pip install 'guardrail[datasets]'``.
:func:`redact_ray_dataset` (Ray Data) needs ``pip install 'guardrail[ray]'`` and is imported on first use.
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

__all__ = [
    "DatasetFormat",
    "DatasetReader",
    "DatasetRecord",
    "DatasetWriter",
    "FieldRules",
    "detect_format",
    "iter_records",
    "open_writer",
    "redact_dataset",
    "redact_ray_dataset",
]


def __getattr__(name: str) -> Any:
    # the Ray engine pulls in the whole redaction pipeline: loaded when asked for, not with the formats
    if name == "redact_ray_dataset":
        from guardrail.datasets.ray_engine import redact_ray_dataset

        return redact_ray_dataset
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

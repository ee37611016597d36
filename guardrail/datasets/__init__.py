"""Dataset formats for fine-tuning and RAG data: detect, stream, redact selected fields, write back.

pyarrow and datasets (for Parquet and Hugging Face data) are optional: ``pip install 'guardrail[datasets]'``.
"""

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
]

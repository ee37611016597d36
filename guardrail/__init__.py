"""guardrail: encryption, PII redaction, access policies and tamper-evident audit for RAG and fine-tuning.

Quickstart::

    from guardrail import Guardrail
    gr = Guardrail(policy="hipaa-safe-harbor")
    gr.redact("Patient Megan Murphy, MRN 204-18-179").text
"""

from guardrail.access import AccessDenied, Principal
from guardrail.core import Guardrail
from guardrail.errors import (
    ConfigError,
    DataErased,
    DetectionError,
    DetectorUnavailable,
    GuardrailError,
    InputFormatError,
    KeyUnavailable,
    OutputExistsError,
    PolicyError,
    SubjectNotFound,
)
from guardrail.findings import Finding, RedactionResult
from guardrail.policy import Policy, load_policy
from guardrail.redaction import PseudonymScope

__version__ = "0.1.0"

__all__ = [
    "AccessDenied",
    "ConfigError",
    "DataErased",
    "DetectionError",
    "DetectorUnavailable",
    "Finding",
    "Guardrail",
    "GuardrailError",
    "InputFormatError",
    "KeyUnavailable",
    "OutputExistsError",
    "Policy",
    "PolicyError",
    "Principal",
    "PseudonymScope",
    "RedactionResult",
    "SubjectNotFound",
    "__version__",
    "load_policy",
]

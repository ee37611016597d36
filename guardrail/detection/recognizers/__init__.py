"""guardrail's recognizers, one module per family."""

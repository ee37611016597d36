"""``python -m guardrail``: the ``guardrail`` command."""

from guardrail.cli import main

main()

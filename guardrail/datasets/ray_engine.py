"""The Ray engine: dataset redaction on Ray actors, with output identical to the local engine's.

Two entry points, both running :class:`~guardrail.datasets.run.RecordProcessor` (detect, redact with
dataset-wide pseudonyms, re-scan) inside Ray actors, each of which loads the spaCy model once:

- :func:`ray_processor` is ``redact_file(..., engine="ray", jobs=N)``. The driver reads the input as a
  stream and sends chunks of records to ``N`` actors, at most two chunks queued per actor, and takes the
  results back in input order; the output, manifest and rejects are the local engine's, byte for byte.
- :func:`redact_ray_dataset` redacts a :class:`ray.data.Dataset` with ``map_batches`` on an actor pool,
  selecting texts with the same :class:`~guardrail.datasets.formats.FieldRules` as the file readers.

Neither a keyring nor a token source can be pickled, on purpose: every actor opens the keyring itself
from its directory, and the token vault from its path. Keyed tokens are deterministic, so every actor
computes the same ones; vault tokens are shared through the vault file (SQLite, safe across processes).
On a multi-node cluster both paths must be reachable, at the same path, from every node (shared
storage), or use keyed tokens. The KEK must open there too: the key file beside the keyring, the
``GUARDRAIL_KEYRING_PASSPHRASE`` environment variable of the workers (never sent by guardrail), or the
HSM. Ray itself is optional: ``pip install 'guardrail-privacy[ray]'``.
"""

from __future__ import annotations

import logging
import os
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from guardrail.datasets.formats import (
    DatasetRecord,
    FieldRules,
    _BadRecord,
    _check_columns,
    _columnar_shape,
    _select,
)
from guardrail.datasets.run import (
    ChunkProcessor,
    Processed,
    RecordProcessor,
    _pseudonymizes,
    default_vault_path,
    rules_for,
    tokens_for,
)
from guardrail.errors import ConfigError, DetectionError, InputFormatError
from guardrail.policy import Policy, load_policy

if TYPE_CHECKING:
    import ray.data

    from guardrail.keys import KeyringLike

__all__ = ["ray_processor", "redact_ray_dataset"]

_QUEUED_PER_ACTOR = 2  # one chunk running and one waiting keeps an actor busy; more only costs memory
_DATASET = "<ray dataset>"


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ConfigError("the Ray engine needs Ray: pip install 'guardrail-privacy[ray]'") from None
    return ray


def _connect(ray: Any, num_cpus: int) -> None:
    """Use the Ray instance this process is connected to, the cluster at ``RAY_ADDRESS``, or a local one."""
    if ray.is_initialized():
        return
    # workers' output is not forwarded: their logs are no place for records (and errors come back anyway)
    if os.environ.get("RAY_ADDRESS"):
        ray.init(log_to_driver=False, logging_level=logging.WARNING)
    else:
        ray.init(
            num_cpus=num_cpus, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING
        )


@dataclass(frozen=True, slots=True)
class _Setup:
    """What an actor needs to build its processor: the policy and paths, never key material."""

    policy: Policy
    keyring: str
    tenant: str
    vault: str | None

    def processor(self) -> RecordProcessor:
        from guardrail.keys import Keyring

        keyring = Keyring.open(self.keyring)
        tokens = (
            tokens_for(self.policy, keyring, self.tenant, vault=self.vault)
            if _pseudonymizes(self.policy)
            else None
        )
        processor = RecordProcessor(
            self.policy, tokens, hmac_key=keyring.hmac_key(f"redaction-hash\0{self.tenant}")
        )
        _ = processor.detector  # the model loads now, once per actor, before the first batch
        return processor


def _setup(policy: Policy, keyring: KeyringLike, tenant: str, vault: str | Path | None) -> _Setup:
    """Paths made absolute (workers may run elsewhere); the token source opened once here, to fail early."""
    from guardrail.keys import as_keyring

    keyring = as_keyring(keyring)
    vault_path: str | None = None
    if _pseudonymizes(policy):
        if policy.datasets.tokens == "vault":
            from guardrail.db import is_postgres_url, parse_location

            if vault is not None and is_postgres_url(vault):
                parse_location(vault)  # a bad location fails here, not in every actor
                vault_path = os.fspath(vault)  # the actors connect to the same database
            else:
                path = Path(vault) if vault is not None else default_vault_path(keyring, tenant)
                vault_path = str(path.resolve())
            # the tenant's key seals every new vault row: made here once, not raced for by the actors
            keyring.prepare(tenant, [])
        tokens = tokens_for(policy, keyring, tenant, vault=vault_path)
        close = getattr(tokens, "close", None)
        if close is not None:
            close()
    return _Setup(policy, str(keyring.directory.resolve()), tenant, vault_path)


class _Worker:
    """The actor behind :func:`ray_processor`: one processor, built once."""

    def __init__(self, setup: _Setup) -> None:
        # an error here would come back as an opaque "actor died": kept and raised by ready() instead
        self._error: Exception | None = None
        try:
            self._processor = setup.processor()
        except Exception as exc:  # noqa: BLE001 - re-raised by ready(), in the driver
            self._error = exc

    def ready(self) -> None:
        if self._error is not None:
            raise self._error

    def process(self, records: list[DatasetRecord]) -> list[Processed]:
        self.ready()
        return self._processor.process(records)


def _result(ray: Any, ref: Any) -> Any:
    """``ray.get`` that raises the worker's own exception (a DetectionError, a KeyringError...)."""
    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as exc:
        cause = exc.cause
        if isinstance(cause, Exception) and not isinstance(cause, ray.exceptions.RayError):
            raise cause from exc
        raise DetectionError(f"a Ray worker failed: {type(cause).__name__}") from exc
    except ray.exceptions.RayActorError as exc:
        raise DetectionError(
            "a Ray worker stopped (killed, out of memory or its node lost); nothing was published"
        ) from exc


def ray_processor(
    policy: Policy,
    keyring: KeyringLike,
    tenant: str = "default",
    *,
    vault: str | Path | None = None,
    jobs: int = 1,
) -> ChunkProcessor:
    """The Ray engine of :func:`~guardrail.datasets.run.redact_file`: chunks processed by ``jobs`` actors.

    Chunks go to the least busy actor, at most two queued per actor, and come back in input order, so
    memory stays bounded and the output is the local engine's. Ray is started locally with
    ``max(jobs, 2)`` CPUs unless this process is already connected, or ``RAY_ADDRESS`` names a cluster.
    Actors are created when the returned processor is first iterated and killed when it finishes.

    Raises:
        ConfigError: Ray is not installed, or the cluster has fewer CPUs than ``jobs``.
        VaultError: the vault belongs to another keyring or tenant.
    """
    ray = _ray()
    if jobs < 1:
        raise ConfigError(f"jobs must be at least 1, not {jobs}")
    setup = _setup(policy, keyring, tenant, vault)
    _connect(ray, max(jobs, 2))
    cpus = ray.cluster_resources().get("CPU", 0)
    if cpus < jobs:
        raise ConfigError(f"--jobs {jobs}: the Ray cluster has {cpus:g} CPUs; ask for at most {int(cpus)}")

    def run(chunks: Iterator[list[DatasetRecord]]) -> Iterator[list[Processed]]:
        worker = ray.remote(num_cpus=1, max_restarts=0)(_Worker)
        actors = [worker.remote(setup) for _ in range(jobs)]
        try:
            for ready in [a.ready.remote() for a in actors]:
                _result(ray, ready)  # a keyring, vault or model error surfaces before any input is read
            yield from _ordered(ray, actors, chunks)
        finally:
            for actor in actors:
                ray.kill(actor)

    return run


def _ordered(ray: Any, actors: list[Any], chunks: Iterator[list[DatasetRecord]]) -> Iterator[list[Processed]]:
    # Not Ray Data: it would need the whole input up front (from_items) or to read the file on the
    # workers, where the reader's rejects, positions and resume cannot follow. The driver feeds the actors.
    pending: deque[tuple[Any, int]] = deque()  # (result, actor) in input order; (None, -1): an empty chunk
    queued = 0
    limit = len(actors) * _QUEUED_PER_ACTOR

    def head() -> list[Processed]:
        nonlocal queued
        ref, _ = pending.popleft()
        if ref is None:
            return []
        queued -= 1
        return list(_result(ray, ref))

    def least_busy() -> int:
        refs = [ref for ref, _ in pending if ref is not None]
        done = set(ray.wait(refs, num_returns=len(refs), timeout=0)[0]) if refs else set()
        busy = [0] * len(actors)
        for ref, actor in pending:
            if ref is not None and ref not in done:
                busy[actor] += 1
        return min(range(len(actors)), key=busy.__getitem__)

    for chunk in chunks:
        if not chunk:
            pending.append((None, -1))
        else:
            while queued >= limit:
                yield head()
            actor = least_busy()
            pending.append((actors[actor].process.remote(chunk), actor))
            queued += 1
        while pending and (pending[0][0] is None or _done(ray, pending[0][0])):
            yield head()
    while pending:
        yield head()


def _done(ray: Any, ref: Any) -> bool:
    ready, _ = ray.wait([ref], timeout=0)
    return bool(ready)


# --------------------------------------------------------------------------- Ray Data


class _RedactBatches:
    """The ``map_batches`` callable class: one processor per actor, Arrow tables in and out."""

    def __init__(self, setup: _Setup, rules: FieldRules) -> None:
        self._processor = setup.processor()
        self._rules = rules

    def __call__(self, batch: Any) -> Any:
        import pyarrow as pa

        shape = _columnar_shape(batch.schema)
        _check_columns(_DATASET, list(batch.schema.names), shape, self._rules)
        records: list[DatasetRecord] = []
        for i, row in enumerate(batch.to_pylist()):
            try:
                texts = _select(row, shape, self._rules)
            except _BadRecord as exc:
                # a batch does not know its rows' positions in the dataset: the reason only
                raise InputFormatError(_DATASET, None, exc.reason) from None
            records.append(DatasetRecord(i, i + 1, row, texts))
        processed = self._processor.process(records) if records else []
        return pa.Table.from_pylist([p.data for p in processed], schema=batch.schema)


def redact_ray_dataset(
    ds: ray.data.Dataset,
    *,
    policy: str | Path | Policy,
    keyring: KeyringLike,
    tenant: str = "default",
    rules: FieldRules | None = None,
    vault: str | Path | None = None,
    concurrency: int = 2,
) -> ray.data.Dataset:
    """A lazy copy of ``ds`` with the selected texts redacted, on a pool of ``concurrency`` actors.

    The same rows give the same values as :func:`~guardrail.datasets.run.redact_file`: same field rules
    (chat ``messages`` by role, Alpaca fields, ``text``, or ``rules.fields``), same detection, same
    dataset-wide pseudonyms (keyed, or from the vault). Other columns and the schema are kept. Row order
    follows Ray Data's ``DataContext.execution_options.preserve_order``. The residual re-scan runs as
    well, but its counts are not returned: use ``redact_file`` where a manifest or a gate is needed.

    Args:
        ds: the dataset; rows are read as Arrow batches.
        policy: a pack name, YAML path or :class:`~guardrail.policy.Policy`.
        keyring: keys the pseudonyms and the ``hash`` operator (a keyring or its directory); each actor
            opens it from its directory.
        tenant: the tenant whose tokens (and vault) are used.
        rules: which texts to redact (default: the policy's ``datasets`` section).
        vault: the token vault, for policies with vault tokens (default: beside the keyring).
        concurrency: actors, each with one CPU and its own model.

    Raises:
        ConfigError: Ray is not installed, or ``concurrency`` is below 1.
        VaultError: the vault belongs to another keyring or tenant.
        InputFormatError: (when the dataset is consumed, wrapped by Ray) a row does not fit the rules.
    """
    _ray()
    if concurrency < 1:
        raise ConfigError(f"concurrency must be at least 1, not {concurrency}")
    pol = load_policy(policy)
    setup = _setup(pol, keyring, tenant, vault)
    return ds.map_batches(
        _RedactBatches,
        fn_constructor_kwargs={"setup": setup, "rules": rules if rules is not None else rules_for(pol)},
        batch_format="pyarrow",
        batch_size=64,
        concurrency=concurrency,
        num_cpus=1,
    )

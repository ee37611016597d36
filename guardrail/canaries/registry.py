"""The canary registry: which fake identifiers were planted, kept so that they can be recognised and
never read back in clear by accident.

A registry lives in the keyring directory (``canaries.json``, mode 0600, written atomically under a
file lock). Per canary it holds an opaque id (``cn-`` and 10 hex digits), its kind, tenant and time of
creation, and per planted value: the entity type, a keyed digest of the value's normalised form (for
look-up) and the value sealed with the keyring's envelope under the tenant's key (for an operator who
must see it again). Never a value in clear.

Digests are HMAC-SHA256 with a purpose key derived from the keyring
(``keyring.hmac_key(CANARY_KEY_PURPOSE)``), truncated to 16 bytes, over the value's *compact form*:
Unicode NFKC, case-folded, letters and digits only (``"912-48-3306"`` and ``"912 48 3306"`` are both
``912483306``; ``Orla Quillomere`` is ``orlaquillomere``). Without the keyring nobody can test a guess
against the file.

A :class:`CanaryMatcher` holds only the digests: it tokenises a text into runs of letters and digits,
computes one HMAC per token, and only where a token's digest is the first token of some planted value
does it try the longer n-grams. Cost: about one HMAC per word of released text.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import hmac
import json
import os
import re
import secrets
import unicodedata
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from guardrail.errors import ConfigError

if TYPE_CHECKING:
    from guardrail.keys import Keyring, KeyringLike

__all__ = [
    "CANARY_KEY_PURPOSE",
    "REGISTRY_FILE",
    "CanaryHit",
    "CanaryMatcher",
    "CanaryRegistry",
    "CanaryRegistryError",
    "compact",
    "strings_of",
]

#: the keyring purpose whose derived key makes the canary digests (``Keyring.hmac_key``)
CANARY_KEY_PURPOSE = "canary-digest"
REGISTRY_FILE = "canaries.json"
_FORMAT = "guardrail.canaries/1"
_DIGEST_BYTES = 16
_TOKEN = re.compile(r"[^\W_]+")
_ID = re.compile(r"cn-[0-9a-f]{10}")
#: longest planted value, in tokens, that a matcher tries (an e-mail address is 4 to 6)
MAX_TOKENS = 8
#: the shortest first word of a planted value (an SSN's area number): shorter words are not looked up
MIN_CHARS = 3


class CanaryRegistryError(ConfigError):
    """The canary registry cannot be used: unreadable, or made with another keyring."""


def _tokens(text: str) -> list[str]:
    return _TOKEN.findall(unicodedata.normalize("NFKC", text).casefold())


def strings_of(value: Any) -> Iterator[str]:
    """Every string in a JSON-like value (a record, a row), depth first."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from strings_of(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from strings_of(item)


def compact(value: str) -> str:
    """The form a value is digested in: NFKC, case-folded, letters and digits only."""
    return "".join(_tokens(value))


@dataclass(frozen=True, slots=True)
class CanaryHit:
    """A planted value found in a text: which canary, which entity type, where (never the value).

    Attributes:
        canary: the canary id (``cn-...``).
        entity: the entity type of the planted value (``PERSON``, ``US_SSN``, ...).
        start: offset of the first character of the match in the scanned text.
        end: offset after its last character.
    """

    canary: str
    entity: str
    start: int
    end: int


class CanaryMatcher:
    """Finds planted values in texts by keyed digests (a set look-up per token).

    Holds the digest key and the digests, never a planted value.
    """

    def __init__(self, key: bytes, values: dict[bytes, tuple[str, str, int]], firsts: set[bytes]) -> None:
        self.__mac = hmac.new(key, digestmod=hashlib.sha256)  # pads computed once; copied per token
        self._values = values  # digest -> (canary id, entity, tokens)
        self._firsts = firsts  # digests of first tokens of multi-token values
        self._longest = min(MAX_TOKENS, max((n for _, _, n in values.values()), default=1))

    def __repr__(self) -> str:
        return f"CanaryMatcher(values={len(self._values)})"

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("a CanaryMatcher holds a key and cannot be pickled")

    def __len__(self) -> int:
        return len(self._values)

    def _digest(self, text: str) -> bytes:
        mac = self.__mac.copy()
        mac.update(text.encode("utf-8"))
        return mac.digest()[:_DIGEST_BYTES]

    def scan(self, text: str) -> list[CanaryHit]:
        """Every planted value in ``text`` (overlapping matches included: a name inside an e-mail).

        Offsets are those of the normalised text: the input's own for ASCII text.
        """
        if not self._values or not text:
            return []
        lowered = text.lower() if text.isascii() else unicodedata.normalize("NFKC", text).casefold()
        tokens = _TOKEN.findall(lowered)
        found: list[tuple[int, int, tuple[str, str, int]]] = []  # first token, last token, value
        digests: dict[str, bytes] = {}  # this call's words ("the", "patient" repeat): dropped on return
        for i, token in enumerate(tokens):
            if len(token) < MIN_CHARS:
                continue  # no planted value starts with a word this short
            digest = digests.get(token)
            if digest is None:
                digest = digests[token] = self._digest(token)
            value = self._values.get(digest)
            if value is not None:
                found.append((i, i, value))
            if digest not in self._firsts:
                continue
            joined = token
            for j in range(i + 1, min(len(tokens), i + self._longest)):
                joined += tokens[j]
                value = self._values.get(self._digest(joined))
                if value is not None:
                    found.append((i, j, value))
        if not found:
            return []
        spans = [m.span() for m in _TOKEN.finditer(lowered)]  # offsets, only when something matched
        return [CanaryHit(v[0], v[1], spans[i][0], spans[j][1]) for i, j, v in found]

    def canaries_in(self, texts: Iterable[str]) -> dict[str, list[str]]:
        """``{canary id: [entity types found]}`` over ``texts`` (sorted, without repeats)."""
        found: dict[str, set[str]] = {}
        for text in texts:
            for hit in self.scan(text):
                found.setdefault(hit.canary, set()).add(hit.entity)
        return {c: sorted(e) for c, e in sorted(found.items())}


def _now() -> str:
    moment = datetime.now(UTC)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{moment.microsecond // 1000:03d}Z"


class CanaryRegistry:
    """The canaries planted with one keyring (``KEYRING/canaries.json``).

    Args:
        keyring: the keyring (or its directory) whose purpose key digests and whose tenant keys seal.

    Raises:
        CanaryRegistryError: the file is unreadable or belongs to another keyring.
    """

    def __init__(self, keyring: KeyringLike) -> None:
        from guardrail.keys import as_keyring

        self.keyring: Keyring = as_keyring(keyring)
        self.path = self.keyring.directory / REGISTRY_FILE
        self.__key = self.keyring.hmac_key(CANARY_KEY_PURPOSE)
        self._check = hmac.digest(self.__key, b"guardrail canary registry check", "sha256").hex()[:32]
        self._data = self._load()

    def __repr__(self) -> str:
        return f"CanaryRegistry({str(self.path)!r}, canaries={len(self._data['canaries'])})"

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("a CanaryRegistry holds key material and cannot be pickled")

    @classmethod
    def exists_for(cls, keyring: KeyringLike) -> bool:
        """Whether canaries were ever registered with this keyring."""
        from guardrail.keys import as_keyring

        return (as_keyring(keyring).directory / REGISTRY_FILE).exists()

    # ------------------------------------------------------------------ file

    def _load(self) -> dict[str, Any]:
        with contextlib.suppress(FileNotFoundError):
            mode = self.path.stat().st_mode & 0o777
            if mode & 0o022:
                # whoever may write it could replace the digests and blind every watch
                raise CanaryRegistryError(
                    f"{self.path}: is group- or world-writable (mode {mode:04o}); fix it with: "
                    f"chmod 600 {self.path}"
                )
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {"format": _FORMAT, "check": self._check, "canaries": []}
        except (OSError, ValueError):
            raise CanaryRegistryError(
                f"{self.path}: unreadable canary registry (restore it from a backup of the keyring)"
            ) from None
        if (
            not isinstance(data, dict)
            or data.get("format") != _FORMAT
            or not isinstance(data.get("canaries"), list)
        ):
            raise CanaryRegistryError(f"{self.path}: not a {_FORMAT} canary registry")
        if not hmac.compare_digest(str(data.get("check")), self._check):
            raise CanaryRegistryError(
                f"{self.path}: this canary registry belongs to another keyring (open it with the keyring "
                "that made the canaries)"
            )
        if not hmac.compare_digest(str(data.get("mac")), self._mac(data)):
            # a canary removed, or a digest changed, would blind every check and watch without a word
            raise CanaryRegistryError(
                f"{self.path}: the canary registry was edited (its MAC under the keyring does not verify); "
                "restore it from a backup of the keyring"
            )
        return data

    def _mac(self, data: Mapping[str, Any]) -> str:
        """The registry's MAC under the canary key, over everything but the MAC itself."""
        fields = {k: v for k, v in data.items() if k != "mac"}
        text = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
        return hmac.digest(self.__key, b"guardrail canary registry mac\x00" + text.encode(), "sha256").hex()

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        fd = os.open(self.keyring.directory / ".canaries.lock", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "a", encoding="utf-8") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                self._data = self._load()
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _save(self) -> None:
        from guardrail.io import atomic_output  # temporary file, fsync, rename; 0600 for a new file

        self._data["mac"] = self._mac(self._data)
        with atomic_output(self.path, force=True) as f:
            json.dump(self._data, f, indent=1, sort_keys=True)

    # ------------------------------------------------------------------ canaries

    def _digest(self, text: str) -> bytes:
        return hmac.digest(self.__key, text.encode("utf-8"), "sha256")[:_DIGEST_BYTES]

    def new_id(self) -> str:
        """A fresh canary id, not used in this registry."""
        taken = self.ids()
        while True:
            candidate = f"cn-{secrets.token_hex(5)}"
            if candidate not in taken:
                return candidate

    def ids(self) -> set[str]:
        """The ids of every registered canary."""
        return {str(c["id"]) for c in self._data["canaries"]}

    def known(self, value: str) -> bool:
        """Whether ``value`` (any spelling with the same compact form) is already planted."""
        digest = self._digest(compact(value)).hex()
        return any(v["digest"] == digest for c in self._data["canaries"] for v in c["values"])

    def register(self, entries: Sequence[tuple[str, str, Sequence[tuple[str, str]]]], *, tenant: str) -> None:
        """Register canaries: ``(id, kind, [(entity, value), ...])`` each; one atomic write for all.

        Values are sealed under ``tenant``'s key and digested; the values themselves are not kept.

        Raises:
            CanaryRegistryError: an id is taken or malformed, or a value has no letters or digits.
        """
        from guardrail.crypto import Context, Sealer

        sealer = Sealer(self.keyring)
        with self._locked():
            taken = self.ids()
            for canary_id, kind, values in entries:
                if not _ID.fullmatch(canary_id) or canary_id in taken:
                    raise CanaryRegistryError(f"canary id {canary_id!r} is malformed or already registered")
                stored = []
                for index, (entity, value) in enumerate(values):
                    form = compact(value)
                    if not form or len(_tokens(value)[0]) < MIN_CHARS:
                        raise CanaryRegistryError(
                            f"{canary_id}: a {entity} value must start with a word of {MIN_CHARS} or more "
                            "letters or digits"
                        )
                    context = Context(store="canary", namespace=canary_id, key=str(index), tenant=tenant)
                    stored.append(
                        {
                            "entity": entity,
                            "digest": self._digest(form).hex(),
                            "first": self._digest(_tokens(value)[0]).hex(),
                            "tokens": len(_tokens(value)),
                            "sealed": sealer.seal_text(value.encode("utf-8"), context=context),
                        }
                    )
                self._data["canaries"].append(
                    {"id": canary_id, "kind": kind, "tenant": tenant, "created_at": _now(), "values": stored}
                )
                taken.add(canary_id)
            self._save()

    def describe(self) -> list[dict[str, Any]]:
        """Per canary: id, kind, tenant, created_at and its entity types (never values)."""
        return [
            {
                "id": c["id"],
                "kind": c["kind"],
                "tenant": c["tenant"],
                "created_at": c["created_at"],
                "entities": sorted({v["entity"] for v in c["values"]}),
            }
            for c in self._data["canaries"]
        ]

    def reveal(self, canary_id: str) -> list[tuple[str, str]]:
        """The planted values of one canary, opened (for an operator; treat the result as secret).

        Raises:
            CanaryRegistryError: unknown id.
            DecryptionError: a sealed value does not open (its tenant key was destroyed, or tampering).
        """
        from guardrail.crypto import Context, Sealer

        entry = next((c for c in self._data["canaries"] if c["id"] == canary_id), None)
        if entry is None:
            raise CanaryRegistryError(f"no canary {canary_id!r} in {self.path}")
        sealer = Sealer(self.keyring)
        out = []
        for index, value in enumerate(entry["values"]):
            context = Context(store="canary", namespace=canary_id, key=str(index), tenant=entry["tenant"])
            out.append((str(value["entity"]), sealer.open_text(value["sealed"], context=context).decode()))
        return out

    def matcher(self) -> CanaryMatcher:
        """A matcher over every registered canary (digests only)."""
        values: dict[bytes, tuple[str, str, int]] = {}
        firsts: set[bytes] = set()
        for canary in self._data["canaries"]:
            for value in canary["values"]:
                n = int(value["tokens"])
                values[bytes.fromhex(value["digest"])] = (str(canary["id"]), str(value["entity"]), n)
                if n > 1:
                    firsts.add(bytes.fromhex(value["first"]))
        return CanaryMatcher(self.__key, values, firsts)

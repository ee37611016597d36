"""RFC 8785 JSON Canonicalization Scheme (JCS) for the values audit records are made of.

Supported: ``dict`` (string keys), ``list``/``tuple``, ``str``, ``bool``, ``None``, ``int`` and finite
``float`` (written as ECMAScript's ``Number.prototype.toString`` writes the double, RFC 8785 §3.2.2.3).
JCS numbers are IEEE-754 doubles, so an integer beyond +/-2**53 is accepted only if a double holds it
exactly, or if it is already the text JCS writes for a double; it is then written as that double is. Any
other integer is refused rather than silently rounded. Anything else, NaN, infinities and lone
surrogates raise :class:`CanonicalizationError`.

Members are sorted by the UTF-16 code units of their names (§3.2.3); strings are escaped the JCS way
(only ``"``, ``\\`` and the C0 controls; ``\\b \\f \\n \\r \\t`` in short form, the others as lower-case
``\\u00xx``; everything else literal UTF-8), which is exactly what :func:`json.encoder.encode_basestring`
does, so the C implementation is used.
"""

from __future__ import annotations

import json
import json.encoder
import math
from collections.abc import Callable, Mapping
from json.encoder import encode_basestring  # C-accelerated; escapes strings exactly as JCS does

from guardrail.errors import ConfigError

__all__ = [
    "MAX_SAFE_INTEGER",
    "CanonicalizationError",
    "RefusedKeyError",
    "canonical_text",
    "canonicalize",
    "format_number",
]

MAX_SAFE_INTEGER = 2**53


class CanonicalizationError(ConfigError):
    """A value cannot be canonicalised: not a JSON type, NaN/infinity, an unsafe integer, a lone surrogate."""


def canonicalize(value: object) -> bytes:
    """The RFC 8785 canonical UTF-8 bytes of ``value``.

    Raises:
        CanonicalizationError: ``value`` holds something JCS cannot represent identically.
    """
    text = canonical_text(value)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        raise CanonicalizationError("a string holds a lone surrogate (not valid Unicode)") from None


def canonical_text(value: object, *, refuse_keys: frozenset[str] = frozenset()) -> str:
    """The canonical JSON text of ``value`` (not yet encoded; lone surrogates surface when encoding).

    Args:
        value: the value.
        refuse_keys: lower-case member names refused at any depth (:class:`RefusedKeyError`).

    Raises:
        CanonicalizationError: ``value`` holds something JCS cannot represent identically.
    """
    try:
        exact = _scan(value, refuse_keys)
    except RecursionError:
        raise CanonicalizationError("the value is nested too deeply (or refers to itself)") from None
    if not exact:
        # only dicts with str keys that sort the same by code point as by UTF-16 unit, lists, tuples,
        # str, bool, None and safe ints: json's encoder writes them exactly as JCS does
        if _C_ENCODE is not None:
            return "".join(_C_ENCODE(value, 0))
        return _ENCODER.encode(value)
    parts: list[str] = []
    try:
        _emit(value, parts, "$")
    except RecursionError:
        raise CanonicalizationError("the value is nested too deeply (or refers to itself)") from None
    return "".join(parts)


class RefusedKeyError(CanonicalizationError):
    """A member name listed in ``refuse_keys`` was found."""

    def __init__(self, key: str) -> None:
        super().__init__(f"member name {key!r} is not allowed here")
        self.key = key


_ENCODER = json.JSONEncoder(
    ensure_ascii=False, separators=(",", ":"), sort_keys=True, allow_nan=False, check_circular=False
)
_c_make_encoder = getattr(json.encoder, "c_make_encoder", None)
# json's C encoder called directly (no per-call set-up: ~2x faster on small members); None without it
_C_ENCODE: Callable[[object, int], list[str]] | None = (
    _c_make_encoder(None, None, encode_basestring, None, ":", ",", True, False, False)
    if _c_make_encoder is not None
    else None
)
_LAST_BMP = "\uffff"


def _scan(value: object, refuse: frozenset[str]) -> bool:
    """Check types and refused names; True when the value needs the exact (slower) encoder: floats, keys
    beyond the BMP (code-point and UTF-16 order differ), subclasses and other mappings."""
    t = type(value)
    if t is dict:
        exact = False
        for key, item in value.items():  # type: ignore[attr-defined]
            if type(key) is not str:
                raise CanonicalizationError(f"member names must be strings, not {type(key).__name__}")
            if key.lower() in refuse:
                raise RefusedKeyError(key)
            if not key.isascii() and max(key) > _LAST_BMP:
                exact = True
            ti = type(item)
            if ti is str or ti is bool or item is None:
                continue
            if ti is int and -MAX_SAFE_INTEGER <= item <= MAX_SAFE_INTEGER:
                continue
            if _scan(item, refuse):
                exact = True
        return exact
    if t is list or t is tuple:
        exact = False
        for item in value:  # type: ignore[attr-defined]
            ti = type(item)
            if ti is str or ti is bool or item is None:
                continue
            if _scan(item, refuse):
                exact = True
        return exact
    if t is str or t is bool or value is None:
        return False
    if t is int:
        if -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:  # type: ignore[operator]
            return False
        _big_int(value)  # type: ignore[arg-type]
        return True
    if isinstance(value, float):
        if not math.isfinite(value):
            raise CanonicalizationError("NaN and infinities are not JSON numbers")
        return True
    if isinstance(value, str | int):  # subclasses (enums): the exact encoder uses their plain value
        return True
    if isinstance(value, Mapping):
        for key, item in value.items():
            if isinstance(key, str) and key.lower() in refuse:
                raise RefusedKeyError(key)
            _scan(item, refuse)
        return True
    if isinstance(value, list | tuple):
        for item in value:
            _scan(item, refuse)
        return True
    raise CanonicalizationError(f"{type(value).__name__} is not a JSON value")


def _sort_key(name: str) -> bytes:
    # UTF-16 code-unit order; big-endian bytes compare in that order. surrogatepass keeps lone
    # surrogates sortable here; they are refused when the text is encoded.
    return name.encode("utf-16-be", "surrogatepass")


def _emit(value: object, parts: list[str], path: str) -> None:
    if isinstance(value, str):
        parts.append(encode_basestring(value))
    elif value is None:
        parts.append("null")
    elif value is True:
        parts.append("true")
    elif value is False:
        parts.append("false")
    elif isinstance(value, int):
        number = int(value)
        if -MAX_SAFE_INTEGER <= number <= MAX_SAFE_INTEGER:
            parts.append(str(number))
        else:
            parts.append(format_number(_big_int(number, path), path=path))
    elif isinstance(value, float):
        parts.append(format_number(value, path=path))
    elif isinstance(value, Mapping):
        for key in value:
            if not isinstance(key, str):
                raise CanonicalizationError(f"{path}: member names must be strings, not {type(key).__name__}")
        parts.append("{")
        first = True
        for key in sorted(value, key=_sort_key):
            if not first:
                parts.append(",")
            first = False
            parts.append(encode_basestring(key))
            parts.append(":")
            _emit(value[key], parts, f"{path}.{key}")
        parts.append("}")
    elif isinstance(value, list | tuple):
        parts.append("[")
        for i, item in enumerate(value):
            if i:
                parts.append(",")
            _emit(item, parts, f"{path}[{i}]")
        parts.append("]")
    else:
        raise CanonicalizationError(f"{path}: {type(value).__name__} is not a JSON value")


def _big_int(value: int, path: str = "$") -> float:
    """The double equal to an integer beyond +/-2**53, if there is one."""
    try:
        as_float = float(value)
    except OverflowError:
        as_float = math.nan
    # exactly a double, or the very text JCS writes for the double nearest to it (what a JSON reader
    # that parses numbers as doubles sees): anything else would be silently rounded
    if as_float != value and not (math.isfinite(as_float) and format_number(as_float) == str(value)):
        raise CanonicalizationError(
            f"{path}: integer {value} is not exactly an IEEE-754 double (JCS numbers are doubles)"
        )
    return as_float


def format_number(value: float, *, path: str = "$") -> str:
    """ECMAScript ``Number.prototype.toString`` of a finite double (RFC 8785 §3.2.2.3).

    Python's ``repr`` yields the shortest digit string that round-trips (the same digits ECMAScript
    picks); only the layout differs, and is rebuilt here from the digits and the decimal exponent.

    Raises:
        CanonicalizationError: NaN or an infinity.
    """
    if not math.isfinite(value):
        raise CanonicalizationError(f"{path}: NaN and infinities are not JSON numbers")
    if value == 0:
        return "0"  # also -0
    text = repr(value)
    sign = ""
    if text[0] == "-":
        sign, text = "-", text[1:]
    mantissa, _, exponent = text.partition("e")
    integral, _, fraction = mantissa.partition(".")
    all_digits = integral + fraction
    stripped = all_digits.lstrip("0")
    # value = 0.<digits> x 10**n, ECMAScript's n
    n = len(integral) + (int(exponent) if exponent else 0) - (len(all_digits) - len(stripped))
    digits = stripped.rstrip("0")
    k = len(digits)
    if k <= n <= 21:
        body = digits + "0" * (n - k)
    elif 0 < n <= 21:
        body = f"{digits[:n]}.{digits[n:]}"
    elif -6 < n <= 0:
        body = "0." + "0" * -n + digits
    else:
        e = n - 1
        exp = f"e{'+' if e > 0 else '-'}{abs(e)}"
        body = (digits if k == 1 else f"{digits[0]}.{digits[1:]}") + exp
    return sign + body

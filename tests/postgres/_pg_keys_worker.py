"""A child process for the keyring-state and vault tests (run as a script, never collected).

python _pg_keys_worker.py watch KEYRING KEY_ID      open the key every 20 ms; print "ready", then
                                                     "erased <monotonic>" once it is refused
python _pg_keys_worker.py rotate KEYRING TENANT N   rotate N times, print "done"
python _pg_keys_worker.py tokens KEYRING URL N      tokenise N values, print their tokens as JSON
"""

from __future__ import annotations

import json
import sys
import time

from guardrail.crypto import RecordErased
from guardrail.keys import Keyring, KeyringError


def watch(keyring: str, key_id: str) -> None:
    ring = Keyring.open(keyring)
    ring.decryption_key(bytes.fromhex(key_id))
    print("ready", flush=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            ring.decryption_key(bytes.fromhex(key_id))
        except (RecordErased, KeyError):
            print(f"erased {time.monotonic()}", flush=True)
            return
        time.sleep(0.02)
    print("still released", flush=True)


def rotate(keyring: str, tenant: str, count: int) -> None:
    ring = Keyring.open(keyring)
    print("ready", flush=True)
    sys.stdin.readline()  # go
    for _ in range(count):
        ring.rotate(tenant)
    print("done", flush=True)


def tokens(keyring: str, url: str, count: int) -> None:
    from guardrail.datasets.tokens import TokenVault

    vault = TokenVault(url, keyring=Keyring.open(keyring), tenant="acme")
    print("ready", flush=True)
    sys.stdin.readline()
    out = {f"value {i}": vault.token("PERSON", f"Person Number{i}") for i in range(count)}
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    mode = sys.argv[1]
    try:
        if mode == "watch":
            watch(sys.argv[2], sys.argv[3])
        elif mode == "rotate":
            rotate(sys.argv[2], sys.argv[3], int(sys.argv[4]))
        elif mode == "tokens":
            tokens(sys.argv[2], sys.argv[3], int(sys.argv[4]))
        else:
            raise SystemExit(f"unknown mode {mode}")
    except KeyringError as exc:
        print(f"keyring error: {exc}", flush=True)
        raise SystemExit(3) from None

"""guardrail's PostgreSQL schema, its versioned migrations, the roles' grants (``guardrail db``).

Tables (in the location's schema, ``guardrail`` by default; the full description and the threat model
are in ``docs/postgres.md``):

* ``schema_version``: the migrations applied;
* ``audit_meta`` (the verifier key), ``audit_head`` (the next ``seq``: the single row every appender
  locks), ``audit_records`` (``seq``, stored line), ``audit_checkpoints`` (signed notes),
  ``audit_state`` (the writers' MACed tail cache), ``audit_flush`` (one row per writer, touched by its
  durability barrier);
* ``keyring_state`` (the keyring document: wrapped DEKs, versions, primaries, tombstones);
* ``vault_meta``, ``vault_tokens``, ``vault_token_subjects``, ``vault_erased`` (token vaults).

Audit rows are append-only for everyone but a superuser: the writer role has no UPDATE, DELETE or
TRUNCATE grant, and triggers refuse those statements for the table owner too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from guardrail.db import Database, DatabaseError
from guardrail.errors import ConfigError

__all__ = [
    "CURRENT_VERSION",
    "MIGRATIONS",
    "SchemaStatus",
    "check_version",
    "grant",
    "init",
    "status",
    "upgrade",
]


_V1 = """
CREATE TABLE {s}.audit_meta (
    id integer PRIMARY KEY CHECK (id = 1),
    verifier_key text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE {s}.audit_head (
    id integer PRIMARY KEY CHECK (id = 1),
    next_seq bigint NOT NULL CHECK (next_seq >= 0)
);
INSERT INTO {s}.audit_head VALUES (1, 0);
CREATE TABLE {s}.audit_records (
    seq bigint PRIMARY KEY CHECK (seq >= 0),
    line text NOT NULL,
    written_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE {s}.audit_checkpoints (
    id bigserial PRIMARY KEY,
    size bigint NOT NULL CHECK (size >= 0),
    note text NOT NULL,
    written_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE {s}.audit_flush (
    writer text PRIMARY KEY,
    at timestamptz NOT NULL
);
CREATE TABLE {s}.audit_state (
    id integer PRIMARY KEY CHECK (id = 1),
    data text NOT NULL
);
CREATE FUNCTION {s}.refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'guardrail: % on %.% is refused: audit rows are append-only', TG_OP, TG_TABLE_SCHEMA,
        TG_TABLE_NAME USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE FUNCTION {s}.head_forward() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.next_seq < OLD.next_seq THEN
        RAISE EXCEPTION 'guardrail: the audit sequence only moves forward' USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END $$;
CREATE FUNCTION {s}.record_allocated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.seq >= (SELECT next_seq FROM {s}.audit_head WHERE id = 1) THEN
        RAISE EXCEPTION 'guardrail: audit seq % was not allocated from audit_head', NEW.seq
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER append_only BEFORE UPDATE OR DELETE ON {s}.audit_records
    FOR EACH ROW EXECUTE FUNCTION {s}.refuse_change();
CREATE TRIGGER append_only_truncate BEFORE TRUNCATE ON {s}.audit_records
    FOR EACH STATEMENT EXECUTE FUNCTION {s}.refuse_change();
CREATE TRIGGER allocated BEFORE INSERT ON {s}.audit_records
    FOR EACH ROW EXECUTE FUNCTION {s}.record_allocated();
CREATE TRIGGER append_only BEFORE UPDATE OR DELETE ON {s}.audit_checkpoints
    FOR EACH ROW EXECUTE FUNCTION {s}.refuse_change();
CREATE TRIGGER append_only_truncate BEFORE TRUNCATE ON {s}.audit_checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION {s}.refuse_change();
CREATE TRIGGER append_only BEFORE UPDATE OR DELETE ON {s}.audit_meta
    FOR EACH ROW EXECUTE FUNCTION {s}.refuse_change();
CREATE TRIGGER forward BEFORE UPDATE ON {s}.audit_head
    FOR EACH ROW EXECUTE FUNCTION {s}.head_forward();
CREATE TRIGGER append_only BEFORE DELETE ON {s}.audit_head
    FOR EACH ROW EXECUTE FUNCTION {s}.refuse_change();
CREATE TRIGGER append_only_truncate BEFORE TRUNCATE ON {s}.audit_head
    FOR EACH STATEMENT EXECUTE FUNCTION {s}.refuse_change();

CREATE TABLE {s}.keyring_state (
    name text PRIMARY KEY,
    version bigint NOT NULL,
    data text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE {s}.vault_meta (
    vault text PRIMARY KEY,
    format text NOT NULL,
    check_mac text NOT NULL
);
CREATE TABLE {s}.vault_tokens (
    vault text NOT NULL REFERENCES {s}.vault_meta (vault),
    mac bytea NOT NULL,
    entity text NOT NULL,
    token text NOT NULL,
    sealed bytea NOT NULL,
    created_at text NOT NULL,
    PRIMARY KEY (vault, mac),
    UNIQUE (vault, token)
);
CREATE TABLE {s}.vault_token_subjects (
    vault text NOT NULL,
    token text NOT NULL,
    subject text NOT NULL,
    PRIMARY KEY (vault, token, subject)
);
CREATE INDEX vault_token_subjects_subject ON {s}.vault_token_subjects (vault, subject);
CREATE TABLE {s}.vault_erased (
    vault text NOT NULL,
    token text NOT NULL,
    erased_at text NOT NULL,
    PRIMARY KEY (vault, token)
);
"""

#: (version, description, SQL with ``{s}`` for the quoted schema name), applied in order
MIGRATIONS: Sequence[tuple[int, str, str]] = ((1, "audit log, keyring state, token vaults", _V1),)
CURRENT_VERSION = MIGRATIONS[-1][0]

_WRITER_GRANTS = (
    "GRANT USAGE ON SCHEMA {s} TO {r}",
    "GRANT SELECT ON {s}.schema_version TO {r}",
    "GRANT SELECT, INSERT ON {s}.audit_records, {s}.audit_checkpoints, {s}.audit_meta TO {r}",
    "GRANT SELECT, UPDATE ON {s}.audit_head TO {r}",
    "GRANT SELECT, INSERT, UPDATE ON {s}.audit_state, {s}.audit_flush, {s}.keyring_state TO {r}",
    "GRANT USAGE ON SEQUENCE {s}.audit_checkpoints_id_seq TO {r}",
    "GRANT SELECT, INSERT ON {s}.vault_meta TO {r}",
    "GRANT SELECT, INSERT, DELETE ON {s}.vault_tokens, {s}.vault_token_subjects TO {r}",
    "GRANT SELECT, INSERT, UPDATE ON {s}.vault_erased TO {r}",
)
_READER_GRANTS = (
    "GRANT USAGE ON SCHEMA {s} TO {r}",
    "GRANT SELECT ON {s}.schema_version, {s}.audit_meta, {s}.audit_head, {s}.audit_records, "
    "{s}.audit_checkpoints TO {r}",
)


@dataclass(frozen=True, slots=True)
class SchemaStatus:
    """What ``guardrail db status`` prints."""

    location: str
    schema: str
    version: int | None  # None: no guardrail schema there
    current: int
    records: int = 0
    checkpoints: int = 0
    keyrings: int = 0
    vault_tokens: int = 0


def _quote_role(role: str) -> str:
    import re

    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,62}", role):
        raise ConfigError(f"role {role!r}: use letters, digits and '_'")
    return f'"{role}"'


def _version(conn: object, schema: str) -> int | None:
    cur = conn.execute(  # type: ignore[attr-defined]
        "SELECT to_regclass(%s)", (f"{schema}.schema_version",)
    )
    if cur.fetchone()[0] is None:
        return None
    row = conn.execute(f"SELECT max(version) FROM {schema}.schema_version").fetchone()  # type: ignore[attr-defined]
    return int(row[0]) if row and row[0] is not None else 0


def _apply(db: Database) -> tuple[int | None, int]:
    s = db.schema
    with db.connection("applying guardrail's schema migrations") as conn, conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('guardrail.db.migrate'))")
        before = _version(conn, s)
        if before is None:
            conn.execute(f"CREATE SCHEMA IF NOT EXISTS {s}")
            conn.execute(
                f"CREATE TABLE {s}.schema_version (version integer PRIMARY KEY, description text NOT NULL, "
                "applied_at timestamptz NOT NULL DEFAULT now())"
            )
        start = before or 0
        if start > CURRENT_VERSION:
            raise DatabaseError(
                f"{db.location.display}: schema {db.location.schema} is at version {start}, newer than this "
                f"guardrail ({CURRENT_VERSION}): upgrade guardrail"
            )
        for version, description, sql in MIGRATIONS:
            if version > start:
                conn.execute(sql.replace("{s}", s))
                conn.execute(
                    f"INSERT INTO {s}.schema_version (version, description) VALUES (%s, %s)",
                    (version, description),
                )
    return before, CURRENT_VERSION


def init(location: str, *, writer: str | None = None, reader: str | None = None) -> tuple[int | None, int]:
    """Create the schema (or bring it to the current version) and grant the roles; returns
    (version before, version now). Run it as the schema's owner (not as the writer role).

    Raises:
        DatabaseUnavailable: the server cannot be reached, or the role may not create the schema.
    """
    db = Database(location)
    try:
        result = _apply(db)
        grant(db, writer=writer, reader=reader)
        return result
    finally:
        db.close()


def upgrade(location: str) -> tuple[int | None, int]:
    """Apply the pending migrations.

    Raises:
        ConfigError: there is no guardrail schema there (run ``guardrail db init``).
    """
    db = Database(location)
    try:
        with db.connection("reading the schema version") as conn:
            if _version(conn, db.schema) is None:
                raise ConfigError(
                    f"{db.location.display}: no guardrail schema {db.location.schema!r}; create it with "
                    "`guardrail db init`"
                )
        return _apply(db)
    finally:
        db.close()


def grant(db: Database, *, writer: str | None = None, reader: str | None = None) -> None:
    """Grant the least privileges to an application (writer) role and an auditor (reader) role."""
    s = db.schema
    with db.connection("granting privileges") as conn, conn.transaction():
        for role, grants in ((writer, _WRITER_GRANTS), (reader, _READER_GRANTS)):
            if role is None:
                continue
            quoted = _quote_role(role)
            for statement in grants:
                conn.execute(statement.replace("{s}", s).replace("{r}", quoted))


def check_version(db: Database, conn: object) -> None:
    """Refuse a schema this guardrail does not know (missing, older or newer).

    Raises:
        ConfigError: missing or older (run ``guardrail db init`` / ``upgrade``), or newer.
    """
    version = _version(conn, db.schema)
    where = f"{db.location.display} (schema {db.location.schema})"
    if version is None:
        raise ConfigError(f"{where}: no guardrail schema; create it with `guardrail db init URL`")
    if version < CURRENT_VERSION:
        raise ConfigError(
            f"{where}: schema version {version}, needs {CURRENT_VERSION}: run `guardrail db upgrade URL`"
        )
    if version > CURRENT_VERSION:
        raise ConfigError(
            f"{where}: schema version {version} is newer than this guardrail: upgrade guardrail"
        )


def status(location: str) -> SchemaStatus:
    """The schema version and row counts."""
    db = Database(location)
    try:
        with db.connection("reading the schema status") as conn:
            s = db.schema
            version = _version(conn, s)
            base = SchemaStatus(db.location.display, db.location.schema, version, CURRENT_VERSION)
            if version is None:
                return base
            counts = conn.execute(
                f"SELECT (SELECT next_seq FROM {s}.audit_head), "
                f"(SELECT count(*) FROM {s}.audit_checkpoints), "
                f"(SELECT count(*) FROM {s}.keyring_state), (SELECT count(*) FROM {s}.vault_tokens)"
            ).fetchone() or (0, 0, 0, 0)
            return SchemaStatus(
                base.location, base.schema, version, CURRENT_VERSION, *(int(c or 0) for c in counts)
            )
    finally:
        db.close()

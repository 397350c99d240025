"""Search (issue 14): full-text index over streams (SQLite FTS5 / PostgreSQL tsvector), categories.

The index is derived data, kept in sync by triggers in the database (any writer, any
process, stays consistent without going through the store): a stream's title, tags,
category and its streamer's username and display name (empty once the account is
deleted). It is not in `_tables.metadata`: the two dialects need different objects, so
`storage.is_search_index(name)` tells schema comparisons to leave them out.

- SQLite: `stream_search`, an FTS5 table (unicode61, diacritics removed, prefix indexes
  for 2 and 3 characters) whose rowid is the stream row's rowid (a match joins the
  stream without reading the index's own copy of the id: 5x faster for a broad word at
  100,000 streams), and `stream_search_vocab` (fts5vocab) for typo candidates. SQLite
  documents that VACUUM may renumber the rowids of a table without an INTEGER PRIMARY
  KEY (3.40 keeps them): the store checks every page it answers against the stream_id
  kept beside each entry and rebuilds the index if they ever disagree.
- PostgreSQL: `stream_search` (stream_id, weighted tsvector of the 'simple' config, GIN
  index), `stream_search_terms` (every lexeme ever indexed, "C" collation, for typo
  candidates), and trigger functions. pg_trgm is not used: CREATE EXTENSION is per
  database, not per schema, and needs a privilege a schema owner may lack.

A later migration that rebuilds `streams` or `users` on SQLite (batch mode copies the
table) drops these triggers and must create them again.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# PostgreSQL folds these as SQLite's unicode61 (remove_diacritics 2) does; the query side
# folds with the same table (`_interface_search.FOLD_FROM`).
_FOLD_FROM = ("àáâãäåāăąçćĉċčďđèéêëēĕėęěĝğġģĥħìíîïĩīĭįıĵķĺļ"
              "ľŀłñńņňòóôõöøōŏőŕŗřśŝşšţťŧùúûüũūŭůűųŵýÿŷźżž")
_FOLD_TO = ("aaaaaaaaacccccddeeeeeeeeegggghhiiiiiiiiijkll"
            "lllnnnnooooooooorrrsssstttuuuuuuuuuuwyyyzzz")

_STREAMER = "CASE WHEN u.deleted_at IS NULL THEN u.username || ' ' || u.display_name ELSE '' END"

# Filling the index from the tables (`_sql_search` has a copy, for a rebuild).
SQLITE_FILL = f"""INSERT INTO stream_search (rowid, stream_id, title, tags, category, streamer)
        SELECT s.rowid, s.id, s.title, s.tags, s.category, {_STREAMER}
        FROM streams AS s JOIN users AS u ON u.id = s.user_id"""

_SQLITE_UP = [
    """CREATE VIRTUAL TABLE stream_search USING fts5(
        stream_id UNINDEXED, title, tags, category, streamer,
        tokenize = "unicode61 remove_diacritics 2 separators '¹²³¼½¾'", prefix = '2 3')""",
    "CREATE VIRTUAL TABLE stream_search_vocab USING fts5vocab(stream_search, 'row')",
    f"""CREATE TRIGGER stream_search_insert AFTER INSERT ON streams BEGIN
        INSERT INTO stream_search (rowid, stream_id, title, tags, category, streamer)
        SELECT new.rowid, new.id, new.title, new.tags, new.category, {_STREAMER}
        FROM users AS u WHERE u.id = new.user_id;
    END""",
    f"""CREATE TRIGGER stream_search_update AFTER UPDATE OF title, tags, category, user_id
        ON streams BEGIN
        DELETE FROM stream_search WHERE rowid = old.rowid;
        INSERT INTO stream_search (rowid, stream_id, title, tags, category, streamer)
        SELECT new.rowid, new.id, new.title, new.tags, new.category, {_STREAMER}
        FROM users AS u WHERE u.id = new.user_id;
    END""",
    """CREATE TRIGGER stream_search_delete AFTER DELETE ON streams BEGIN
        DELETE FROM stream_search WHERE rowid = old.rowid;
    END""",
    f"""CREATE TRIGGER stream_search_user AFTER UPDATE OF username, display_name, deleted_at
        ON users
        WHEN old.username IS NOT new.username OR old.display_name IS NOT new.display_name
             OR old.deleted_at IS NOT new.deleted_at
        BEGIN
        DELETE FROM stream_search
            WHERE rowid IN (SELECT rowid FROM streams WHERE user_id = new.id);
        INSERT INTO stream_search (rowid, stream_id, title, tags, category, streamer)
        SELECT s.rowid, s.id, s.title, s.tags, s.category, {_STREAMER}
        FROM streams AS s JOIN users AS u ON u.id = s.user_id WHERE s.user_id = new.id;
    END""",
    SQLITE_FILL,
]

_SQLITE_DOWN = [
    "DROP TRIGGER IF EXISTS stream_search_user",
    "DROP TRIGGER IF EXISTS stream_search_delete",
    "DROP TRIGGER IF EXISTS stream_search_update",
    "DROP TRIGGER IF EXISTS stream_search_insert",
    "DROP TABLE IF EXISTS stream_search_vocab",
    "DROP TABLE IF EXISTS stream_search",
]

_PG_UP = [
    f"""CREATE FUNCTION stream_search_fold(value text) RETURNS text
        LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
        SELECT regexp_replace(translate(lower(value), '{_FOLD_FROM}', '{_FOLD_TO}'),
                              '[^[:alnum:]]+', ' ', 'g')
    $$""",
    """CREATE FUNCTION stream_search_document(
            title text, tags text, category text, streamer text) RETURNS tsvector
        LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
        SELECT setweight(to_tsvector('simple', stream_search_fold(title)), 'A')
            || setweight(to_tsvector('simple', stream_search_fold(streamer)), 'B')
            || setweight(to_tsvector('simple', stream_search_fold(tags)), 'C')
            || setweight(to_tsvector('simple', stream_search_fold(category)), 'D')
    $$""",
    """CREATE TABLE stream_search (
        stream_id text NOT NULL,
        document tsvector NOT NULL,
        CONSTRAINT pk_stream_search PRIMARY KEY (stream_id),
        CONSTRAINT fk_stream_search_stream_id_streams FOREIGN KEY (stream_id)
            REFERENCES streams (id) ON DELETE CASCADE
    )""",
    "CREATE INDEX ix_stream_search_document ON stream_search USING gin (document)",
    """CREATE TABLE stream_search_terms (
        term text COLLATE "C" NOT NULL,
        CONSTRAINT pk_stream_search_terms PRIMARY KEY (term)
    )""",
    f"""CREATE FUNCTION stream_search_index_streams() RETURNS trigger
        LANGUAGE plpgsql AS $$
        DECLARE doc tsvector;
        BEGIN
            SELECT stream_search_document(NEW.title, NEW.tags, NEW.category, {_STREAMER})
                INTO doc FROM users AS u WHERE u.id = NEW.user_id;
            IF doc IS NULL THEN RETURN NULL; END IF;
            INSERT INTO stream_search (stream_id, document) VALUES (NEW.id, doc)
                ON CONFLICT (stream_id) DO UPDATE SET document = EXCLUDED.document;
            INSERT INTO stream_search_terms (term)
                SELECT unnest(tsvector_to_array(doc)) ON CONFLICT DO NOTHING;
            RETURN NULL;
        END
    $$""",
    """CREATE TRIGGER stream_search_streams
        AFTER INSERT OR UPDATE OF title, tags, category, user_id ON streams
        FOR EACH ROW EXECUTE FUNCTION stream_search_index_streams()""",
    f"""CREATE FUNCTION stream_search_index_user() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            UPDATE stream_search AS ss
                SET document = stream_search_document(s.title, s.tags, s.category,
                                                      {_STREAMER})
                FROM streams AS s, users AS u
                WHERE s.id = ss.stream_id AND s.user_id = NEW.id AND u.id = NEW.id;
            INSERT INTO stream_search_terms (term)
                SELECT unnest(tsvector_to_array(to_tsvector('simple',
                    stream_search_fold(NEW.username || ' ' || NEW.display_name))))
                WHERE NEW.deleted_at IS NULL
                ON CONFLICT DO NOTHING;
            RETURN NULL;
        END
    $$""",
    """CREATE TRIGGER stream_search_users
        AFTER UPDATE OF username, display_name, deleted_at ON users
        FOR EACH ROW
        WHEN (OLD.username IS DISTINCT FROM NEW.username
              OR OLD.display_name IS DISTINCT FROM NEW.display_name
              OR OLD.deleted_at IS DISTINCT FROM NEW.deleted_at)
        EXECUTE FUNCTION stream_search_index_user()""",
    f"""INSERT INTO stream_search (stream_id, document)
        SELECT s.id, stream_search_document(s.title, s.tags, s.category, {_STREAMER})
        FROM streams AS s JOIN users AS u ON u.id = s.user_id""",
    """INSERT INTO stream_search_terms (term)
        SELECT DISTINCT unnest(tsvector_to_array(document)) FROM stream_search
        ON CONFLICT DO NOTHING""",
]

_PG_DOWN = [
    "DROP TRIGGER IF EXISTS stream_search_users ON users",
    "DROP TRIGGER IF EXISTS stream_search_streams ON streams",
    "DROP FUNCTION IF EXISTS stream_search_index_user()",
    "DROP FUNCTION IF EXISTS stream_search_index_streams()",
    "DROP TABLE IF EXISTS stream_search_terms",
    "DROP TABLE IF EXISTS stream_search",
    "DROP FUNCTION IF EXISTS stream_search_document(text, text, text, text)",
    "DROP FUNCTION IF EXISTS stream_search_fold(text)",
]


def _run(statements: list[str]) -> None:
    for statement in statements:
        op.execute(statement)


def upgrade() -> None:
    # A broad word matches thousands of streams: walking the sort order and probing the
    # index for each stream beats sorting every match (PostgreSQL picks it by itself).
    op.create_index("ix_streams_viewer_count_id", "streams", ["viewer_count", "id"])
    op.create_index("ix_streams_created_at_id", "streams", ["created_at", "id"])
    _run(_SQLITE_UP if op.get_bind().dialect.name == "sqlite" else _PG_UP)


def downgrade() -> None:
    _run(_SQLITE_DOWN if op.get_bind().dialect.name == "sqlite" else _PG_DOWN)
    op.drop_index("ix_streams_created_at_id", "streams")
    op.drop_index("ix_streams_viewer_count_id", "streams")

// The catalog's schema as a list of migrations. Migration i brings a database
// from user_version i to i + 1; each runs in one transaction together with the
// user_version bump, so a crash leaves the database at one version or the next.
// Never edit a migration that has shipped: append a new one.
#include <string>

#include "catalog/catalog.h"
#include "catalog/sqlite_util.h"

namespace scisearch::catalog {
namespace {

constexpr const char* kMigrations[] = {
    // 1: datasets, files, signals, metadata, tags, thumbnails, runs, errors,
    //    and the facility tables later issues fill (users, proposals, sessions).
    R"sql(
CREATE TABLE datasets (
  id INTEGER PRIMARY KEY,
  path TEXT NOT NULL UNIQUE,
  root TEXT NOT NULL,
  format TEXT,
  state TEXT NOT NULL CHECK (state IN ('ok', 'error', 'gone')),
  error TEXT,
  fingerprint TEXT NOT NULL,
  size_bytes INTEGER NOT NULL DEFAULT 0,
  mtime TEXT,
  first_seen TEXT NOT NULL,
  last_seen TEXT NOT NULL,
  ingest_run_id INTEGER REFERENCES ingest_runs(id),
  acquired TEXT,
  instrument TEXT,
  mode TEXT,
  beam_energy_kev REAL,
  magnification REAL,
  pixel_size REAL,
  pixel_size_units TEXT,
  detector TEXT,
  proposal_id TEXT REFERENCES proposals(id),
  session_id TEXT REFERENCES sessions(id),
  embargo_until TEXT
);
CREATE INDEX datasets_state ON datasets(state);
CREATE INDEX datasets_acquired ON datasets(acquired);
CREATE INDEX datasets_instrument ON datasets(instrument);
CREATE INDEX datasets_mode ON datasets(mode);
CREATE INDEX datasets_run ON datasets(ingest_run_id);

CREATE TABLE dataset_files (
  dataset_id INTEGER NOT NULL REFERENCES datasets(id) ON DELETE CASCADE,
  path TEXT NOT NULL UNIQUE,
  size INTEGER NOT NULL,
  mtime_ns INTEGER NOT NULL
);
CREATE INDEX dataset_files_dataset ON dataset_files(dataset_id);

CREATE TABLE signals (
  id INTEGER PRIMARY KEY,
  dataset_id INTEGER NOT NULL REFERENCES datasets(id) ON DELETE CASCADE,
  idx INTEGER NOT NULL,
  name TEXT NOT NULL,
  dtype TEXT NOT NULL,
  shape TEXT NOT NULL,
  axes TEXT NOT NULL,
  acquired TEXT,
  instrument TEXT,
  mode TEXT,
  beam_energy_kev REAL,
  magnification REAL,
  pixel_size REAL,
  pixel_size_units TEXT,
  detector TEXT,
  metadata_json TEXT NOT NULL,
  UNIQUE (dataset_id, idx)
);

-- Flattened metadata leaves. Key paths are stored once in metadata_keys, so that
-- the rows and their index stay small (a DM file has hundreds of leaves).
-- `value` holds the leaf with its own type (INTEGER, REAL or TEXT; NULL for
-- null), so one index serves range queries on numbers and look-ups of text.
CREATE TABLE metadata_keys (
  id INTEGER PRIMARY KEY,
  key_path TEXT NOT NULL UNIQUE
);
-- Rows are clustered by signal (WITHOUT ROWID, keyed by the leaf's position in the
-- tree), so a signal's leaves are one range to write, read or delete. Ingest writes
-- hundreds of rows per file, so the table has no per-row constraint checks: keys are
-- never deleted, value_type is written from one enum by the catalog code, and the rows
-- of a deleted signal go with it through the trigger below (once per signal, not per row).
CREATE TABLE metadata (
  signal_id INTEGER NOT NULL,
  position INTEGER NOT NULL,
  key_id INTEGER NOT NULL,
  value_type TEXT NOT NULL,  -- 'int', 'real', 'text', 'bool' or 'null'
  value,
  PRIMARY KEY (signal_id, position)
) WITHOUT ROWID;
CREATE INDEX metadata_key_value ON metadata(key_id, value);
CREATE TRIGGER signals_delete_metadata AFTER DELETE ON signals BEGIN
  DELETE FROM metadata WHERE signal_id = OLD.id;
END;
-- The rows with their key paths, for people and ad-hoc queries.
CREATE VIEW metadata_entries AS
  SELECT m.signal_id, k.key_path, m.value_type, m.value
  FROM metadata m JOIN metadata_keys k ON k.id = m.key_id;

CREATE TABLE tags (
  id INTEGER PRIMARY KEY,
  dataset_id INTEGER NOT NULL REFERENCES datasets(id) ON DELETE CASCADE,
  value TEXT NOT NULL,
  source TEXT NOT NULL CHECK (source IN ('path', 'metadata', 'text', 'image', 'expert', 'log',
                                         'proposal', 'publication')),
  confidence REAL,
  evidence TEXT,
  created_at TEXT NOT NULL,
  created_by TEXT,
  validated_by TEXT,
  validated_at TEXT,
  state TEXT NOT NULL DEFAULT 'suggested' CHECK (state IN ('suggested', 'accepted', 'rejected')),
  UNIQUE (dataset_id, value, source)
);
CREATE INDEX tags_value ON tags(value);

CREATE TABLE thumbnails (
  dataset_id INTEGER NOT NULL REFERENCES datasets(id) ON DELETE CASCADE,
  signal_idx INTEGER NOT NULL,
  png BLOB NOT NULL,
  width INTEGER NOT NULL,
  height INTEGER NOT NULL,
  PRIMARY KEY (dataset_id, signal_idx)
);

CREATE TABLE ingest_runs (
  id INTEGER PRIMARY KEY,
  root TEXT NOT NULL,
  started_at TEXT NOT NULL,
  finished_at TEXT,
  status TEXT NOT NULL CHECK (status IN ('running', 'finished', 'interrupted')),
  files_seen INTEGER NOT NULL DEFAULT 0,
  datasets_new INTEGER NOT NULL DEFAULT 0,
  datasets_changed INTEGER NOT NULL DEFAULT 0,
  datasets_unchanged INTEGER NOT NULL DEFAULT 0,
  datasets_gone INTEGER NOT NULL DEFAULT 0,
  errors INTEGER NOT NULL DEFAULT 0,
  bytes_read INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE ingest_errors (
  id INTEGER PRIMARY KEY,
  run_id INTEGER NOT NULL REFERENCES ingest_runs(id) ON DELETE CASCADE,
  path TEXT NOT NULL,
  reason TEXT NOT NULL,
  at TEXT NOT NULL
);
CREATE INDEX ingest_errors_run ON ingest_errors(run_id);

CREATE TABLE users (
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL,
  email TEXT UNIQUE,
  role TEXT NOT NULL DEFAULT 'user'
);

CREATE TABLE proposals (
  id TEXT PRIMARY KEY,
  title TEXT,
  pi TEXT,
  team TEXT NOT NULL DEFAULT '[]',
  start_date TEXT,
  end_date TEXT,
  release_date TEXT
);

CREATE TABLE sessions (
  id TEXT PRIMARY KEY,
  instrument TEXT,
  user TEXT,
  pi TEXT,
  proposal_id TEXT REFERENCES proposals(id),
  start TEXT,
  "end" TEXT
);
)sql",
    // 2: thumbnails are made in a second pass after the metadata of a whole tree
    //    is stored; a dataset's thumbnail_state records whether that pass is done
    //    for its current version (NULL = still to do).
    //    Metadata leaves are served from each signal's metadata_json by SQLite's
    //    json_tree instead of a table of rows: writing ~250 rows per file was half
    //    of all ingest work, and fast look-ups by metadata value belong to the
    //    search index, which is derived from the catalog.
    //    Documents: proposal abstracts, log notes, publications.
    R"sql(
ALTER TABLE datasets ADD COLUMN thumbnail_state TEXT
  CHECK (thumbnail_state IN ('made', 'none', 'failed'));
UPDATE datasets SET thumbnail_state = 'made'
  WHERE state = 'ok' AND EXISTS (SELECT 1 FROM thumbnails t WHERE t.dataset_id = datasets.id);
CREATE INDEX datasets_thumbnail_pending ON datasets(path)
  WHERE state = 'ok' AND thumbnail_state IS NULL;
ALTER TABLE signals ADD COLUMN metadata_leaves INTEGER NOT NULL DEFAULT 0;
UPDATE signals SET metadata_leaves = (SELECT COUNT(*) FROM json_tree(signals.metadata_json)
                                      WHERE type NOT IN ('object', 'array'));
DROP VIEW metadata_entries;
DROP TRIGGER signals_delete_metadata;
DROP TABLE metadata;
DROP TABLE metadata_keys;
-- Every leaf of every signal's metadata: key_path in JSON path syntax
-- ('$.ImageTags."Microscope Info".Voltage'), value with its own type.
CREATE VIEW metadata_entries AS
  SELECT s.id AS signal_id, s.dataset_id AS dataset_id, t.fullkey AS key_path,
         CASE t.type WHEN 'integer' THEN 'int' WHEN 'true' THEN 'bool' WHEN 'false' THEN 'bool'
                     ELSE t.type END AS value_type,
         t.atom AS value
  FROM signals s, json_tree(s.metadata_json) t
  WHERE t.type NOT IN ('object', 'array');

-- The facility's documents around its data: proposal abstracts, the notes of
-- the user log, and publications (which acknowledge proposals).
ALTER TABLE proposals ADD COLUMN abstract TEXT;
ALTER TABLE sessions ADD COLUMN notes TEXT;
CREATE INDEX sessions_instrument_start ON sessions(instrument, start);
CREATE TABLE publications (
  doi TEXT PRIMARY KEY,
  title TEXT NOT NULL,
  abstract TEXT,
  authors TEXT NOT NULL DEFAULT '[]',    -- JSON array of display names
  date TEXT,
  proposals TEXT NOT NULL DEFAULT '[]'   -- JSON array of acknowledged proposal ids
);
CREATE INDEX datasets_proposal ON datasets(proposal_id);
CREATE INDEX datasets_session ON datasets(session_id);
)sql",
    R"sql(
-- The facility's text documents, one searchable table for every kind: proposals,
-- publications and log entries, whether loaded by add-docs or written as
-- structured records (PutProposal, PutPublication, PutSession also write here).
-- `fields` keeps the source's other fields as a JSON object.
CREATE TABLE documents (
  id TEXT PRIMARY KEY,
  kind TEXT NOT NULL CHECK (kind IN ('proposal', 'publication', 'log')),
  title TEXT NOT NULL DEFAULT '',
  text TEXT NOT NULL DEFAULT '',
  authors TEXT NOT NULL DEFAULT '[]',
  date TEXT,
  doi TEXT,
  pi TEXT,
  fields TEXT NOT NULL DEFAULT '{}',
  added_at TEXT NOT NULL
);
-- The proposals a document belongs to or acknowledges.
CREATE TABLE document_proposals (
  document_id TEXT NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
  proposal_id TEXT NOT NULL,
  PRIMARY KEY (proposal_id, document_id)
) WITHOUT ROWID;
CREATE INDEX document_proposals_document ON document_proposals(document_id);

INSERT INTO documents (id, kind, title, text, date, pi, fields, added_at)
  SELECT id, 'proposal', IFNULL(title, ''), IFNULL(abstract, ''), start_date, pi,
         json_object('team', json(team), 'end_date', end_date, 'release_date', release_date),
         strftime('%Y-%m-%dT%H:%M:%SZ', 'now')
  FROM proposals;
INSERT INTO document_proposals SELECT id, id FROM proposals;
INSERT OR IGNORE INTO documents (id, kind, title, text, authors, date, doi, added_at)
  SELECT doi, 'publication', title, IFNULL(abstract, ''), authors, date, doi,
         strftime('%Y-%m-%dT%H:%M:%SZ', 'now')
  FROM publications;
INSERT OR IGNORE INTO document_proposals
  SELECT p.doi, j.value FROM publications p, json_each(p.proposals) j;
INSERT OR IGNORE INTO documents (id, kind, title, text, date, pi, fields, added_at)
  SELECT id, 'log', IFNULL(instrument, '') || ' session of ' || IFNULL(user, ''),
         IFNULL(notes, ''), start, pi,
         json_object('instrument', instrument, 'user', user, 'start', start, 'end', "end"),
         strftime('%Y-%m-%dT%H:%M:%SZ', 'now')
  FROM sessions;
INSERT OR IGNORE INTO document_proposals
  SELECT id, proposal_id FROM sessions WHERE proposal_id IS NOT NULL;

-- Change tracking for the search index, which is derived from this catalog: every
-- change to what an item shows advances the item's seq past the largest (in two
-- statements: a trigger's INSERT OR REPLACE would give way to the outer statement's
-- conflict clause).
-- Rows are never deleted, so the largest seq only grows and a rebuild reads every
-- item from here. Items: 'dataset:<id>', 'document:<id>'.
CREATE TABLE index_changes (
  item TEXT PRIMARY KEY,
  seq INTEGER NOT NULL
);
CREATE INDEX index_changes_seq ON index_changes(seq);
INSERT INTO index_changes (item, seq)
  SELECT 'dataset:' || id, 1 FROM datasets
  UNION ALL SELECT 'document:' || id, 1 FROM documents;

CREATE TRIGGER datasets_index_insert AFTER INSERT ON datasets BEGIN
  UPDATE index_changes SET seq = (SELECT MAX(seq) + 1 FROM index_changes)
    WHERE item = 'dataset:' || NEW.id;
  INSERT INTO index_changes SELECT 'dataset:' || NEW.id, (SELECT IFNULL(MAX(seq), 0) + 1 FROM index_changes)
    WHERE NOT EXISTS (SELECT 1 FROM index_changes WHERE item = 'dataset:' || NEW.id);
END;
-- last_seen and thumbnail_state are not searchable: touching them changes nothing.
CREATE TRIGGER datasets_index_update AFTER UPDATE OF path, format, state, fingerprint, acquired,
    instrument, mode, beam_energy_kev, magnification, pixel_size, pixel_size_units, detector,
    proposal_id, session_id, embargo_until ON datasets BEGIN
  UPDATE index_changes SET seq = (SELECT MAX(seq) + 1 FROM index_changes)
    WHERE item = 'dataset:' || NEW.id;
  INSERT INTO index_changes SELECT 'dataset:' || NEW.id, (SELECT IFNULL(MAX(seq), 0) + 1 FROM index_changes)
    WHERE NOT EXISTS (SELECT 1 FROM index_changes WHERE item = 'dataset:' || NEW.id);
END;
CREATE TRIGGER datasets_index_delete AFTER DELETE ON datasets BEGIN
  UPDATE index_changes SET seq = (SELECT MAX(seq) + 1 FROM index_changes)
    WHERE item = 'dataset:' || OLD.id;
  INSERT INTO index_changes SELECT 'dataset:' || OLD.id, (SELECT IFNULL(MAX(seq), 0) + 1 FROM index_changes)
    WHERE NOT EXISTS (SELECT 1 FROM index_changes WHERE item = 'dataset:' || OLD.id);
END;
CREATE TRIGGER tags_index_insert AFTER INSERT ON tags BEGIN
  UPDATE index_changes SET seq = (SELECT MAX(seq) + 1 FROM index_changes)
    WHERE item = 'dataset:' || NEW.dataset_id;
  INSERT INTO index_changes SELECT 'dataset:' || NEW.dataset_id, (SELECT IFNULL(MAX(seq), 0) + 1 FROM index_changes)
    WHERE NOT EXISTS (SELECT 1 FROM index_changes WHERE item = 'dataset:' || NEW.dataset_id);
END;
CREATE TRIGGER tags_index_update AFTER UPDATE ON tags BEGIN
  UPDATE index_changes SET seq = (SELECT MAX(seq) + 1 FROM index_changes)
    WHERE item = 'dataset:' || NEW.dataset_id;
  INSERT INTO index_changes SELECT 'dataset:' || NEW.dataset_id, (SELECT IFNULL(MAX(seq), 0) + 1 FROM index_changes)
    WHERE NOT EXISTS (SELECT 1 FROM index_changes WHERE item = 'dataset:' || NEW.dataset_id);
END;
CREATE TRIGGER tags_index_delete AFTER DELETE ON tags BEGIN
  UPDATE index_changes SET seq = (SELECT MAX(seq) + 1 FROM index_changes)
    WHERE item = 'dataset:' || OLD.dataset_id;
  INSERT INTO index_changes SELECT 'dataset:' || OLD.dataset_id, (SELECT IFNULL(MAX(seq), 0) + 1 FROM index_changes)
    WHERE NOT EXISTS (SELECT 1 FROM index_changes WHERE item = 'dataset:' || OLD.dataset_id);
END;
CREATE TRIGGER documents_index_insert AFTER INSERT ON documents BEGIN
  UPDATE index_changes SET seq = (SELECT MAX(seq) + 1 FROM index_changes)
    WHERE item = 'document:' || NEW.id;
  INSERT INTO index_changes SELECT 'document:' || NEW.id, (SELECT IFNULL(MAX(seq), 0) + 1 FROM index_changes)
    WHERE NOT EXISTS (SELECT 1 FROM index_changes WHERE item = 'document:' || NEW.id);
END;
CREATE TRIGGER documents_index_update AFTER UPDATE ON documents BEGIN
  UPDATE index_changes SET seq = (SELECT MAX(seq) + 1 FROM index_changes)
    WHERE item = 'document:' || NEW.id;
  INSERT INTO index_changes SELECT 'document:' || NEW.id, (SELECT IFNULL(MAX(seq), 0) + 1 FROM index_changes)
    WHERE NOT EXISTS (SELECT 1 FROM index_changes WHERE item = 'document:' || NEW.id);
END;
CREATE TRIGGER documents_index_delete AFTER DELETE ON documents BEGIN
  UPDATE index_changes SET seq = (SELECT MAX(seq) + 1 FROM index_changes)
    WHERE item = 'document:' || OLD.id;
  INSERT INTO index_changes SELECT 'document:' || OLD.id, (SELECT IFNULL(MAX(seq), 0) + 1 FROM index_changes)
    WHERE NOT EXISTS (SELECT 1 FROM index_changes WHERE item = 'document:' || OLD.id);
END;
-- A dataset shows the text of its proposal's documents: re-index it when they change.
CREATE TRIGGER document_proposals_index_insert AFTER INSERT ON document_proposals BEGIN
  UPDATE index_changes SET seq = (SELECT MAX(seq) + 1 FROM index_changes)
    WHERE item IN (SELECT 'dataset:' || id FROM datasets WHERE proposal_id = NEW.proposal_id);
END;
CREATE TRIGGER document_proposals_index_delete AFTER DELETE ON document_proposals BEGIN
  UPDATE index_changes SET seq = (SELECT MAX(seq) + 1 FROM index_changes)
    WHERE item IN (SELECT 'dataset:' || id FROM datasets WHERE proposal_id = OLD.proposal_id);
END;
)sql",
    R"sql(
-- Who the catalog is: derived data (the search index) checks it is derived from
-- this catalog and not from an earlier one at the same place.
CREATE TABLE catalog_info (
  key TEXT PRIMARY KEY,
  value TEXT NOT NULL
);
INSERT INTO catalog_info VALUES ('catalog_id', lower(hex(randomblob(16))));

-- A dataset shows its session's log entry (notes, PI): re-index it when that changes.
CREATE TRIGGER documents_log_index_insert AFTER INSERT ON documents WHEN NEW.kind = 'log' BEGIN
  UPDATE index_changes SET seq = (SELECT MAX(seq) + 1 FROM index_changes)
    WHERE item IN (SELECT 'dataset:' || id FROM datasets WHERE session_id = NEW.id);
END;
CREATE TRIGGER documents_log_index_update AFTER UPDATE ON documents WHEN NEW.kind = 'log' OR OLD.kind = 'log' BEGIN
  UPDATE index_changes SET seq = (SELECT MAX(seq) + 1 FROM index_changes)
    WHERE item IN (SELECT 'dataset:' || id FROM datasets WHERE session_id = NEW.id);
END;
CREATE TRIGGER documents_log_index_delete AFTER DELETE ON documents WHEN OLD.kind = 'log' BEGIN
  UPDATE index_changes SET seq = (SELECT MAX(seq) + 1 FROM index_changes)
    WHERE item IN (SELECT 'dataset:' || id FROM datasets WHERE session_id = OLD.id);
END;
)sql",
    // 5: the context of each dataset (issue 5). People of the facility (users, PIs,
    //    authors), whom logs name by id and folders and papers by name. Each link of a
    //    dataset to a session, proposal or publication keeps its confidence and the
    //    evidence for it; datasets.session_id and proposal_id hold the best ones.
    R"sql(
CREATE TABLE people (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL DEFAULT '',
  institution TEXT NOT NULL DEFAULT ''
);
CREATE TABLE dataset_links (
  dataset_id INTEGER NOT NULL REFERENCES datasets(id) ON DELETE CASCADE,
  kind TEXT NOT NULL CHECK (kind IN ('session', 'proposal', 'publication')),
  target_id TEXT NOT NULL,
  confidence REAL NOT NULL,
  evidence TEXT NOT NULL DEFAULT '',
  PRIMARY KEY (dataset_id, kind, target_id)
) WITHOUT ROWID;
CREATE INDEX dataset_links_target ON dataset_links(kind, target_id);
-- A log may name a proposal the catalog does not know yet: the session keeps it here
-- until the proposal arrives (sessions.proposal_id must name a known proposal).
-- What the context stage last wrote of a dataset (a hash), so that re-linking
-- rewrites, and re-indexes, only the datasets whose context changed. A new version
-- of the files clears it.
ALTER TABLE datasets ADD COLUMN context_fingerprint TEXT;
ALTER TABLE sessions ADD COLUMN proposal_named TEXT;
UPDATE sessions SET proposal_named = proposal_id;
)sql",
    // 6: the web application (issue 6). The query log and the clicks on its results
    //    (what people look for and open: the facility's evidence for judging ranking),
    //    and every change people make to tags, with who and when (tag_events: an
    //    expert tag that is removed is deleted from tags but keeps its history here).
    //    Indexes for the tagging queue (datasets in state ok by path) and for tag
    //    completion (values by prefix, ignoring case).
    R"sql(
CREATE TABLE queries (
  id INTEGER PRIMARY KEY,
  text TEXT NOT NULL,
  filters TEXT NOT NULL DEFAULT '{}',  -- JSON object: facet filters, kind, sort, paging
  user TEXT,
  at TEXT NOT NULL,
  total INTEGER NOT NULL DEFAULT 0,
  took_ms REAL NOT NULL DEFAULT 0
);
CREATE INDEX queries_at ON queries(at);
CREATE TABLE clicks (
  id INTEGER PRIMARY KEY,
  query_id INTEGER NOT NULL REFERENCES queries(id) ON DELETE CASCADE,
  item TEXT NOT NULL,
  rank INTEGER NOT NULL,
  user TEXT,
  at TEXT NOT NULL
);
CREATE INDEX clicks_query ON clicks(query_id);
CREATE TABLE tag_events (
  id INTEGER PRIMARY KEY,
  tag_id INTEGER NOT NULL,  -- no foreign key: a deleted tag keeps its history
  dataset_id INTEGER NOT NULL REFERENCES datasets(id) ON DELETE CASCADE,
  value TEXT NOT NULL,
  source TEXT NOT NULL,
  action TEXT NOT NULL CHECK (action IN ('add', 'accept', 'reject', 'remove')),
  user TEXT NOT NULL,
  at TEXT NOT NULL
);
CREATE INDEX tag_events_user ON tag_events(user, dataset_id);
CREATE INDEX tag_events_dataset ON tag_events(dataset_id);
CREATE INDEX datasets_state_path ON datasets(state, path);
CREATE INDEX tags_value_nocase ON tags(value COLLATE NOCASE);
)sql",
    // 7: the vision stage's embedding of each dataset's image (issue 7), for "more like
    // this" and duplicate finding. One per dataset: the latest model's. Ingest drops it
    // with the dataset's other derived rows when the file changes.
    R"sql(
CREATE TABLE image_embeddings (
  dataset_id INTEGER PRIMARY KEY REFERENCES datasets(id) ON DELETE CASCADE,
  model_id TEXT NOT NULL,
  signal_index INTEGER NOT NULL,
  vector BLOB NOT NULL,  -- float32 little-endian, unit length
  created_at TEXT NOT NULL
);
CREATE INDEX image_embeddings_model ON image_embeddings(model_id);
)sql",
    // 8: the same index_changes triggers in one statement each. Their UPDATE followed by
    // INSERT ... SELECT ... WHERE NOT EXISTS made SQLite copy the SELECT into a temporary
    // b-tree (it reads the table it inserts into) for every row written. The upsert gives
    // the item the next seq whether or not it was there, as the pair did. (Not INSERT OR
    // REPLACE: a trigger's conflict clause yields to that of the statement firing it, and
    // the catalog's own writes are upserts.)
    R"sql(
DROP TRIGGER datasets_index_insert;
CREATE TRIGGER datasets_index_insert AFTER INSERT ON datasets BEGIN
  INSERT INTO index_changes (item, seq)
    VALUES ('dataset:' || NEW.id, (SELECT IFNULL(MAX(seq), 0) + 1 FROM index_changes))
    ON CONFLICT(item) DO UPDATE SET seq = excluded.seq;
END;
DROP TRIGGER datasets_index_update;
CREATE TRIGGER datasets_index_update AFTER UPDATE OF path, format, state, fingerprint, acquired,
    instrument, mode, beam_energy_kev, magnification, pixel_size, pixel_size_units, detector,
    proposal_id, session_id, embargo_until ON datasets BEGIN
  INSERT INTO index_changes (item, seq)
    VALUES ('dataset:' || NEW.id, (SELECT IFNULL(MAX(seq), 0) + 1 FROM index_changes))
    ON CONFLICT(item) DO UPDATE SET seq = excluded.seq;
END;
DROP TRIGGER datasets_index_delete;
CREATE TRIGGER datasets_index_delete AFTER DELETE ON datasets BEGIN
  INSERT INTO index_changes (item, seq)
    VALUES ('dataset:' || OLD.id, (SELECT IFNULL(MAX(seq), 0) + 1 FROM index_changes))
    ON CONFLICT(item) DO UPDATE SET seq = excluded.seq;
END;
DROP TRIGGER tags_index_insert;
CREATE TRIGGER tags_index_insert AFTER INSERT ON tags BEGIN
  INSERT INTO index_changes (item, seq)
    VALUES ('dataset:' || NEW.dataset_id, (SELECT IFNULL(MAX(seq), 0) + 1 FROM index_changes))
    ON CONFLICT(item) DO UPDATE SET seq = excluded.seq;
END;
DROP TRIGGER tags_index_update;
CREATE TRIGGER tags_index_update AFTER UPDATE ON tags BEGIN
  INSERT INTO index_changes (item, seq)
    VALUES ('dataset:' || NEW.dataset_id, (SELECT IFNULL(MAX(seq), 0) + 1 FROM index_changes))
    ON CONFLICT(item) DO UPDATE SET seq = excluded.seq;
END;
DROP TRIGGER tags_index_delete;
CREATE TRIGGER tags_index_delete AFTER DELETE ON tags BEGIN
  INSERT INTO index_changes (item, seq)
    VALUES ('dataset:' || OLD.dataset_id, (SELECT IFNULL(MAX(seq), 0) + 1 FROM index_changes))
    ON CONFLICT(item) DO UPDATE SET seq = excluded.seq;
END;
DROP TRIGGER documents_index_insert;
CREATE TRIGGER documents_index_insert AFTER INSERT ON documents BEGIN
  INSERT INTO index_changes (item, seq)
    VALUES ('document:' || NEW.id, (SELECT IFNULL(MAX(seq), 0) + 1 FROM index_changes))
    ON CONFLICT(item) DO UPDATE SET seq = excluded.seq;
END;
DROP TRIGGER documents_index_update;
CREATE TRIGGER documents_index_update AFTER UPDATE ON documents BEGIN
  INSERT INTO index_changes (item, seq)
    VALUES ('document:' || NEW.id, (SELECT IFNULL(MAX(seq), 0) + 1 FROM index_changes))
    ON CONFLICT(item) DO UPDATE SET seq = excluded.seq;
END;
DROP TRIGGER documents_index_delete;
CREATE TRIGGER documents_index_delete AFTER DELETE ON documents BEGIN
  INSERT INTO index_changes (item, seq)
    VALUES ('document:' || OLD.id, (SELECT IFNULL(MAX(seq), 0) + 1 FROM index_changes))
    ON CONFLICT(item) DO UPDATE SET seq = excluded.seq;
END;
)sql",
    // 9: fewer indexes on datasets. Ingest writes one row per dataset, and each index
    //    cost it about 7 us (a fresh b-tree cursor and a seek per statement run): the
    //    nine secondary indexes were two thirds of the row's cost. No query of the
    //    catalog filters by acquired, instrument, mode or ingest run (the search index
    //    serves those filters), and datasets_state_path covers datasets_state. Proposal
    //    and session are NULL until the linker sets them, so their indexes skip NULL;
    //    the triggers' "proposal_id = ?" and "session_id = ?" still use them.
    R"sql(
DROP INDEX IF EXISTS datasets_state;
DROP INDEX IF EXISTS datasets_acquired;
DROP INDEX IF EXISTS datasets_instrument;
DROP INDEX IF EXISTS datasets_mode;
DROP INDEX IF EXISTS datasets_run;
DROP INDEX IF EXISTS datasets_proposal;
CREATE INDEX datasets_proposal ON datasets(proposal_id) WHERE proposal_id IS NOT NULL;
DROP INDEX IF EXISTS datasets_session;
CREATE INDEX datasets_session ON datasets(session_id) WHERE session_id IS NOT NULL;
)sql",
};

constexpr int kVersion = static_cast<int>(sizeof(kMigrations) / sizeof(kMigrations[0]));

}  // namespace

int SchemaVersion() { return kVersion; }

namespace internal {
namespace {

Result<int> ReadUserVersion(sqlite3* db) {
  SCISEARCH_ASSIGN_OR_RETURN(Statement version, Statement::Prepare(db, "PRAGMA user_version"));
  SCISEARCH_ASSIGN_OR_RETURN(bool has_row, version.Step());
  return has_row ? static_cast<int>(version.Int(0)) : 0;
}

}  // namespace

Status Migrate(sqlite3* db, const std::string& where) {
  for (int attempt = 0;; ++attempt) {
    SCISEARCH_ASSIGN_OR_RETURN(const int current, ReadUserVersion(db));
    if (current > kVersion) {
      return Status::Unsupported(where + ": catalog schema version " + std::to_string(current) +
                                 " is newer than this program knows (" + std::to_string(kVersion) +
                                 "); upgrade scisearch");
    }
    if (current == kVersion) return Status::Ok();
    // BEGIN IMMEDIATE takes the write lock, then the version is read again: two
    // processes opening a fresh catalog at once must not both migrate.
    SCISEARCH_RETURN_IF_ERROR(ExecSql(db, "BEGIN IMMEDIATE"));
    auto locked = ReadUserVersion(db);
    if (!locked.ok()) {
      (void)ExecSql(db, "ROLLBACK");
      return locked.status();
    }
    const int locked_version = *locked;
    if (locked_version != current) {
      SCISEARCH_RETURN_IF_ERROR(ExecSql(db, "ROLLBACK"));
      if (attempt > kVersion + 2)
        return Status::Internal(where + ": schema version keeps changing");
      continue;
    }
    Status applied = ExecSql(db, kMigrations[current]);
    if (applied.ok()) {
      const std::string bump = "PRAGMA user_version = " + std::to_string(current + 1);
      applied = ExecSql(db, bump.c_str());
    }
    if (applied.ok()) applied = ExecSql(db, "COMMIT");
    if (!applied.ok()) {
      (void)ExecSql(db, "ROLLBACK");
      return applied.WithContext(where + ": migration to schema version " +
                                 std::to_string(current + 1) + " failed");
    }
  }
}

}  // namespace internal
}  // namespace scisearch::catalog

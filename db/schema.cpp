// Schema migrations, keyed on PRAGMA user_version. Migration N takes a database at
// version N-1 to N; each runs with its version bump in one transaction.
//
// Version 1 is split by stage so each stage's tables sit together; every derived row
// carries its provenance (the detector or tagger row that records name, model SHA-256
// and parameters).
#include <string>
#include <vector>

#include "db/db.h"

namespace moeforge::db {

namespace {

const char* kV1Core = R"SQL(
CREATE TABLE stage_runs(
  id INTEGER PRIMARY KEY,
  stage TEXT NOT NULL,                 -- crawl|detect|tag|tag-train|train|export|...
  started_at TEXT NOT NULL,
  finished_at TEXT,
  params_json TEXT NOT NULL DEFAULT '{}',
  done INTEGER NOT NULL DEFAULT 0,
  skipped INTEGER NOT NULL DEFAULT 0,
  failed INTEGER NOT NULL DEFAULT 0,
  failures_json TEXT NOT NULL DEFAULT '{}',  -- {"reason": count}
  seconds REAL
);
CREATE TABLE views(
  name TEXT PRIMARY KEY,
  where_sql TEXT NOT NULL,             -- an expression over v_dataset's columns
  tagger TEXT,                         -- which tagger's tags the view uses (NULL: newest)
  created_at TEXT NOT NULL
);
)SQL";

const char* kV1Crawl = R"SQL(
CREATE TABLE sources(
  id INTEGER PRIMARY KEY,
  kind TEXT NOT NULL,                  -- danbooru|moebooru|gelbooru|urls|html|dir
  url TEXT NOT NULL,                   -- API base URL, list file, start page or folder
  UNIQUE(kind, url)
);
CREATE TABLE images(                   -- every distinct file content the crawler kept or linked
  sha256 TEXT PRIMARY KEY,             -- content address of the original bytes
  bytes INTEGER NOT NULL,
  width INTEGER,
  height INTEGER,
  format TEXT,                         -- png|jpeg|gif|webp|bmp, sniffed from magic bytes
  phash INTEGER,                       -- 64-bit dHash (crawler/near_dup.h), as a signed integer
  near_dup_of TEXT REFERENCES images(sha256),  -- set: a near duplicate, NOT stored (blob_path NULL)
  blob_path TEXT,                      -- relative to the workspace; set exactly when the blob exists
  added_at TEXT NOT NULL
);
CREATE INDEX images_phash ON images(phash);
CREATE TABLE posts(
  id INTEGER PRIMARY KEY,
  source_id INTEGER NOT NULL REFERENCES sources(id),
  remote_id TEXT NOT NULL,             -- the site's post id; the URL (urls/html) or file path (dir)
  md5 TEXT,
  file_url TEXT,
  page_url TEXT,
  rating TEXT,                         -- general|sensitive|safe|questionable|explicit
  width INTEGER,
  height INTEGER,
  file_ext TEXT,
  created_at TEXT,
  image_sha256 TEXT REFERENCES images(sha256),  -- the stored original (for a near duplicate: its original's)
  content_sha256 TEXT,                          -- SHA-256 of the bytes this post served
  dup_distance INTEGER,                         -- duplicates: 0 exact, else dHash Hamming distance
  state TEXT NOT NULL DEFAULT 'pending',        -- pending|stored|duplicate|failed|skipped
  error TEXT,                                   -- reason when failed or skipped
  meta_json TEXT,
  updated_at TEXT NOT NULL,
  UNIQUE(source_id, remote_id)
);
CREATE INDEX posts_image ON posts(image_sha256);
CREATE INDEX posts_state ON posts(state);
CREATE TABLE source_tags(
  post_id INTEGER NOT NULL REFERENCES posts(id) ON DELETE CASCADE,
  tag TEXT NOT NULL,
  category TEXT,                       -- general|character|copyright|artist|meta
  PRIMARY KEY(post_id, tag)
) WITHOUT ROWID;
CREATE INDEX source_tags_tag ON source_tags(tag);
CREATE TABLE frontier(
  id INTEGER PRIMARY KEY,
  source_id INTEGER NOT NULL REFERENCES sources(id),
  url TEXT NOT NULL,
  kind TEXT NOT NULL,                  -- page|image
  post_id INTEGER NOT NULL DEFAULT 0,  -- the post an image row fetches for (posts.id); 0 for pages
  depth INTEGER NOT NULL DEFAULT 0,
  state TEXT NOT NULL DEFAULT 'queued',  -- queued|done|failed|skipped
  attempts INTEGER NOT NULL DEFAULT 0,
  next_try REAL NOT NULL DEFAULT 0,    -- unix seconds
  http_status INTEGER,
  error TEXT,
  etag TEXT,
  last_modified TEXT,
  updated_at TEXT NOT NULL,
  UNIQUE(source_id, url, post_id)      -- two posts may serve one URL (identical files)
);
CREATE INDEX frontier_post ON frontier(post_id);
CREATE INDEX frontier_state ON frontier(source_id, state, next_try);
CREATE TABLE crawl_cursors(            -- where paging of one API query stands
  source_id INTEGER NOT NULL REFERENCES sources(id),
  query TEXT NOT NULL,                 -- the tag query, '' for all posts
  state TEXT NOT NULL DEFAULT 'paging',  -- paging: a pass is under way | done
  next_page INTEGER NOT NULL DEFAULT 1,  -- the page the current pass asks for next
  taken INTEGER NOT NULL DEFAULT 0,    -- posts taken in the current pass (for --limit)
  pass_newest INTEGER,                 -- newest remote id seen in the current pass
  stop_at INTEGER,                     -- the current pass stops at ids <= this (the last pass's newest)
  updated_at TEXT NOT NULL,
  PRIMARY KEY(source_id, query)
);
CREATE TABLE robots_cache(
  origin TEXT PRIMARY KEY,             -- scheme://host:port
  fetched_at REAL NOT NULL,            -- unix seconds; entries older than 24 h are refetched
  http_status INTEGER,                 -- 0: unreachable
  body TEXT
);
)SQL";

const char* kV1Detect = R"SQL(
CREATE TABLE detectors(
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL,                  -- e.g. cascade:lbpcascade_animeface
  model_sha256 TEXT NOT NULL,
  params_json TEXT NOT NULL,
  created_at TEXT NOT NULL,
  UNIQUE(name, model_sha256, params_json)
);
CREATE TABLE detections_done(          -- one row per (detector, image) seen, faces or not
  detector_id INTEGER NOT NULL REFERENCES detectors(id),
  image_sha256 TEXT NOT NULL REFERENCES images(sha256),
  n_faces INTEGER NOT NULL,
  state TEXT NOT NULL,                 -- done|failed
  error TEXT,
  PRIMARY KEY(detector_id, image_sha256)
) WITHOUT ROWID;
CREATE TABLE faces(
  id INTEGER PRIMARY KEY,
  detector_id INTEGER NOT NULL REFERENCES detectors(id),
  image_sha256 TEXT NOT NULL REFERENCES images(sha256),
  idx INTEGER NOT NULL,                -- order within the image
  x REAL NOT NULL, y REAL NOT NULL, w REAL NOT NULL, h REAL NOT NULL,  -- face box, original pixels
  score REAL,                          -- detector confidence 0..1
  crop_x REAL, crop_y REAL, crop_side REAL,  -- the square cropped, original pixels
  crop_path TEXT,                      -- relative to the workspace
  crop_size INTEGER,
  pad_frac REAL,                       -- fraction of the crop outside the image
  sharpness REAL,                      -- variance of the Laplacian
  mono_score REAL,                     -- 0 colourful .. 1 monochrome
  backend TEXT,                        -- which backend(s) found it, e.g. cascade or cascade+yunet
  UNIQUE(detector_id, image_sha256, idx)
);
CREATE INDEX faces_image ON faces(image_sha256);
CREATE TABLE face_crops(               -- every crop size of a face (faces.crop_path: the first)
  face_id INTEGER NOT NULL REFERENCES faces(id) ON DELETE CASCADE,
  size INTEGER NOT NULL,
  path TEXT NOT NULL,                  -- relative to the workspace, PNG
  PRIMARY KEY(face_id, size)
) WITHOUT ROWID;
)SQL";

const char* kV1Tag = R"SQL(
CREATE TABLE taggers(
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL,                  -- e.g. builtin:demo-tagger
  model_sha256 TEXT NOT NULL,
  params_json TEXT NOT NULL,
  schema_toml TEXT NOT NULL,
  created_at TEXT NOT NULL,
  UNIQUE(name, model_sha256, params_json)
);
CREATE TABLE face_tags(
  tagger_id INTEGER NOT NULL REFERENCES taggers(id),
  face_id INTEGER NOT NULL REFERENCES faces(id) ON DELETE CASCADE,
  tag TEXT NOT NULL,
  score REAL NOT NULL,
  PRIMARY KEY(tagger_id, face_id, tag)
) WITHOUT ROWID;
CREATE INDEX face_tags_face ON face_tags(face_id);
)SQL";

const char* kV1Train = R"SQL(
CREATE TABLE runs(
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  view TEXT,
  tagger TEXT,
  config_json TEXT NOT NULL,
  dir TEXT NOT NULL,                   -- relative to the workspace
  state TEXT NOT NULL,                 -- running|done|failed
  step INTEGER NOT NULL DEFAULT 0,
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL
);
CREATE TABLE metrics(
  run_id INTEGER NOT NULL REFERENCES runs(id),
  step INTEGER NOT NULL,
  key TEXT NOT NULL,
  value REAL NOT NULL,
  PRIMARY KEY(run_id, key, step)
) WITHOUT ROWID;
)SQL";

// The stable views of DESIGN.md: keep these names and columns.
const char* kV1Views = R"SQL(
CREATE VIEW v_faces AS
SELECT f.id AS face_id, p.id AS post_id, s.kind AS source, p.remote_id AS remote_id,
       f.image_sha256 AS image_sha256, f.x AS x, f.y AS y, f.w AS w, f.h AS h,
       f.score AS score, d.name AS detector, f.crop_path AS crop_path, f.crop_size AS crop_size
FROM faces f
JOIN detectors d ON d.id = f.detector_id
LEFT JOIN posts p ON p.id = (SELECT min(p2.id) FROM posts p2 WHERE p2.image_sha256 = f.image_sha256)
LEFT JOIN sources s ON s.id = p.source_id;

CREATE VIEW v_face_tags AS
SELECT ft.face_id AS face_id, t.name AS tagger, ft.tag AS tag, ft.score AS score
FROM face_tags ft JOIN taggers t ON t.id = ft.tagger_id;

CREATE VIEW v_source_tags AS
SELECT st.post_id AS post_id, s.kind AS source, p.remote_id AS remote_id, st.tag AS tag
FROM source_tags st JOIN posts p ON p.id = st.post_id JOIN sources s ON s.id = p.source_id;

)SQL";

// What view filters (db/filter.h) select from: v_faces plus quality columns. Created by
// version 1 and again by version 3 over the new v_faces (vf.* picks up its columns).
const char* kDatasetView = R"SQL(
CREATE VIEW v_dataset AS
SELECT vf.*, f.sharpness AS sharpness, f.mono_score AS mono_score, f.pad_frac AS pad_frac,
       p.rating AS rating, i.width AS image_width, i.height AS image_height,
       (SELECT count(*) FROM faces f2 WHERE f2.image_sha256 = f.image_sha256
          AND f2.detector_id = f.detector_id) AS faces_in_image
FROM v_faces vf
JOIN faces f ON f.id = vf.face_id
LEFT JOIN posts p ON p.id = vf.post_id
LEFT JOIN images i ON i.sha256 = f.image_sha256;
)SQL";

// Version 2: the tagger's decisions become visible beside its scores. A binary tag is
// present when its score reaches the tagger's threshold for it (recorded per tagger in
// tagger_thresholds); an exclusive group's tag when it is the group's argmax (threshold
// NULL). face_tags.present is the tagger's own decision, written with the score; rows
// written before version 2 keep it NULL until the face is tagged again. v_face_tags keeps
// its four stable columns first and names the tagger's version (id, model SHA-256).
const char* kV2TaggerDecisions = R"SQL(
CREATE TABLE tagger_thresholds(
  tagger_id INTEGER NOT NULL REFERENCES taggers(id),
  tag TEXT NOT NULL,
  threshold REAL,                      -- NULL: decided by argmax within an exclusive group
  PRIMARY KEY(tagger_id, tag)
) WITHOUT ROWID;
ALTER TABLE face_tags ADD COLUMN present INTEGER;  -- 1/0, the tagger's decision
DROP VIEW v_face_tags;
CREATE VIEW v_face_tags AS
SELECT ft.face_id AS face_id, t.name AS tagger, ft.tag AS tag, ft.score AS score,
       th.threshold AS threshold, ft.present AS present,
       t.id AS tagger_id, t.model_sha256 AS tagger_sha256
FROM face_tags ft JOIN taggers t ON t.id = ft.tagger_id
LEFT JOIN tagger_thresholds th ON th.tagger_id = ft.tagger_id AND th.tag = ft.tag;
)SQL";

// Version 3: views speak the filter language (db/filter.h) instead of SQL, and pin the
// detector and tagger version they were made with, so two detect runs do not put a face
// in a dataset twice and a re-tag does not silently change a view. v_faces gains the
// detector's row id and model hash at its end (the stable columns stay first) so a view
// can name one detector version; v_dataset is rebuilt over it.
const char* kV3PinnedViews = R"SQL(
ALTER TABLE views RENAME COLUMN where_sql TO filter_text;  -- the filter language, not SQL
ALTER TABLE views ADD COLUMN detector_id INTEGER REFERENCES detectors(id);  -- NULL: newest at load
ALTER TABLE views ADD COLUMN tagger_id INTEGER REFERENCES taggers(id);      -- NULL: newest at load
DROP VIEW v_dataset;
DROP VIEW v_faces;
CREATE VIEW v_faces AS
SELECT f.id AS face_id, p.id AS post_id, s.kind AS source, p.remote_id AS remote_id,
       f.image_sha256 AS image_sha256, f.x AS x, f.y AS y, f.w AS w, f.h AS h,
       f.score AS score, d.name AS detector, f.crop_path AS crop_path, f.crop_size AS crop_size,
       d.id AS detector_id, d.model_sha256 AS detector_sha256
FROM faces f
JOIN detectors d ON d.id = f.detector_id
LEFT JOIN posts p ON p.id = (SELECT min(p2.id) FROM posts p2 WHERE p2.image_sha256 = f.image_sha256)
LEFT JOIN sources s ON s.id = p.source_id;
)SQL";

// Version 4 (issue 19): deep paging by id cursor, filters decided before download, and
// the rendition fetched. crawl_cursors.next_before: the current pass asks next for ids
// below this (Danbooru page=b<ID>, Moebooru/Gelbooru id:<ID), so a pass of any length
// resumes where it stopped; filter_sig: the filters the last pass decided with (a change
// makes the next pass list the query again and decide its posts anew); passed: posts of
// the current pass that passed the filters (--max-posts-per-query). posts.variant:
// original|sample|jpeg|<Danbooru variant type>, the rendition fetched for the post.
// Filtered posts are state 'skipped' with error 'filtered:<reason>'.
const char* kV4CrawlSites = R"SQL(
ALTER TABLE crawl_cursors ADD COLUMN next_before INTEGER;
ALTER TABLE crawl_cursors ADD COLUMN filter_sig TEXT;
ALTER TABLE crawl_cursors ADD COLUMN passed INTEGER NOT NULL DEFAULT 0;
ALTER TABLE posts ADD COLUMN variant TEXT;
)SQL";

// Version 5: a near duplicate that a better copy replaced (crawler: the copy with the
// most pixels is kept) keeps the faces detect found on it while it was the kept copy;
// they are not the dataset's any more. v_faces lists faces of kept images only.
const char* kV5KeptCopiesOnly = R"SQL(
DROP VIEW v_dataset;
DROP VIEW v_faces;
CREATE VIEW v_faces AS
SELECT f.id AS face_id, p.id AS post_id, s.kind AS source, p.remote_id AS remote_id,
       f.image_sha256 AS image_sha256, f.x AS x, f.y AS y, f.w AS w, f.h AS h,
       f.score AS score, d.name AS detector, f.crop_path AS crop_path, f.crop_size AS crop_size,
       d.id AS detector_id, d.model_sha256 AS detector_sha256
FROM faces f
JOIN detectors d ON d.id = f.detector_id
JOIN images i ON i.sha256 = f.image_sha256 AND i.near_dup_of IS NULL
LEFT JOIN posts p ON p.id = (SELECT min(p2.id) FROM posts p2 WHERE p2.image_sha256 = f.image_sha256)
LEFT JOIN sources s ON s.id = p.source_id;
)SQL";

std::vector<std::string> Migrations() {
  return {
      std::string(kV1Core) + kV1Crawl + kV1Detect + kV1Tag + kV1Train + kV1Views + kDatasetView,
      kV2TaggerDecisions,
      std::string(kV3PinnedViews) + kDatasetView,
      kV4CrawlSites,
      std::string(kV5KeptCopiesOnly) + kDatasetView,
  };
}

}  // namespace

int CurrentSchemaVersion() { return static_cast<int>(Migrations().size()); }

Status Migrate(Database& db) {
  auto migrations = Migrations();
  while (true) {
    // Read the version inside the write transaction so two processes opening a new
    // workspace at once do not both run migration 1.
    MF_RETURN_IF_ERROR(db.Begin());
    auto v = db.QueryInt("PRAGMA user_version");
    if (!v.ok()) {
      db.Rollback();
      return v.status();
    }
    int version = static_cast<int>(*v);
    if (version > static_cast<int>(migrations.size())) {
      db.Rollback();
      return Status::Unsupported("database " + db.path() + " has schema version " + std::to_string(version) +
                                 ", newer than this moeforge (" + std::to_string(migrations.size()) +
                                 "): upgrade moeforge");
    }
    if (version == static_cast<int>(migrations.size())) return db.Commit();
    Status s = db.Exec(migrations[static_cast<size_t>(version)]);
    if (s.ok()) s = db.Exec("PRAGMA user_version = " + std::to_string(version + 1));
    if (!s.ok()) {
      db.Rollback();
      return s.WithContext("migrating to schema version " + std::to_string(version + 1));
    }
    MF_RETURN_IF_ERROR(db.Commit());
  }
}

}  // namespace moeforge::db

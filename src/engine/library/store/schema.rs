//! The tables of a library, the same for both engines but for two type names.

/// The schema's statements, with the engine's names of a 64-bit integer and a byte string.
pub(super) fn schema(int: &str, blob: &str) -> String {
    format!(
        "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS images (
    path TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    need_image {int} NOT NULL,
    claimed_by TEXT,
    size_bytes {int} NOT NULL,
    modified_ns {int} NOT NULL,
    pixel_hash TEXT,
    width {int},
    height {int},
    data_bar_rows {int},
    error TEXT
);
CREATE INDEX IF NOT EXISTS images_state ON images (state);
CREATE TABLE IF NOT EXISTS descriptors (
    path TEXT PRIMARY KEY REFERENCES images (path) ON DELETE CASCADE,
    raw {blob}, sketch_raw {blob}, edge_raw {blob},
    image_vec {blob}, sketch_vec {blob}, edge_vec {blob}
);
CREATE TABLE IF NOT EXISTS records (
    path TEXT PRIMARY KEY REFERENCES images (path) ON DELETE CASCADE,
    cells TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS particles (
    path TEXT PRIMARY KEY REFERENCES images (path) ON DELETE CASCADE,
    summary TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS thumbnails (
    path TEXT PRIMARY KEY REFERENCES images (path) ON DELETE CASCADE,
    jpeg {blob} NOT NULL
);
CREATE TABLE IF NOT EXISTS projections (
    space TEXT PRIMARY KEY,
    projection TEXT NOT NULL,
    dims {int} NOT NULL
);
"
    )
}

//! The thumbnail loader: a thread of its own that decodes and shrinks the images the UI has
//! on screen, latest request first; when an image file cannot be read (the folder unmounted,
//! a shared library opened on another machine) it shows the thumbnail stored in the library.

use std::path::PathBuf;
use std::sync::mpsc::Sender;
use std::sync::{Arc, Condvar, Mutex};

use crate::app::worker::Event;
use crate::engine::imaging::preprocess::load_image;
use crate::engine::library::store::{Location, Store};

/// Longest side of a thumbnail, px.
pub const THUMB_SIZE: u32 = 160;

/// One thumbnail to make: the entry, its image file, and where its stored thumbnail is (the
/// library, and the image's path in it) for when the file cannot be read.
#[derive(Debug, Clone, PartialEq)]
pub struct ThumbnailRequest {
    pub entry: usize,
    pub path: PathBuf,
    pub stored: Option<(PathBuf, String)>,
}

/// The open library the stored thumbnails come from (kept between requests).
#[derive(Default)]
struct StoredThumbnails {
    open: Option<(PathBuf, Store)>,
}

impl StoredThumbnails {
    /// The stored thumbnail of `rel` in `library`, decoded.
    fn get(&mut self, library: &std::path::Path, rel: &str) -> Result<image::RgbaImage, String> {
        if self.open.as_ref().is_none_or(|(p, _)| p != library) {
            let store = Store::open(&Location::of(library), false).map_err(|e| e.to_string())?;
            self.open = Some((library.to_path_buf(), store));
        }
        let (_, store) = self.open.as_mut().ok_or("no library")?;
        let jpeg = store
            .thumbnail(rel)
            .map_err(|e| e.to_string())?
            .filter(|b| !b.is_empty())
            .ok_or("the library holds no thumbnail of it")?;
        image::load_from_memory(&jpeg)
            .map(|img| img.to_rgba8())
            .map_err(|e| format!("its stored thumbnail cannot be decoded: {e}"))
    }
}

/// The thumbnail of `request`: from its file, else from the library.
fn make(
    request: &ThumbnailRequest,
    stored: &mut StoredThumbnails,
) -> Result<image::RgbaImage, String> {
    let from_file = load_image(&request.path)
        .map(|img| img.thumbnail(THUMB_SIZE, THUMB_SIZE).to_rgba8())
        .map_err(|e| e.to_string());
    match (from_file, &request.stored) {
        (Ok(img), _) => Ok(img),
        (Err(e), Some((library, rel))) => stored
            .get(library, rel)
            .map_err(|why| format!("{e}; {why}")),
        (Err(e), None) => Err(e),
    }
}

#[derive(Default)]
struct ThumbnailQueue {
    generation: u64,
    pending: Vec<ThumbnailRequest>,
    closed: bool,
}

/// Thumbnails are decoded on a thread of their own, so scrolling never waits behind a search
/// or indexing, and only for what is on screen: each request replaces what is still queued
/// (latest wins), so after a fast scroll through 10,000 images the loader works on the rows
/// in view, not on the thousands that flew past.
pub struct ThumbnailLoader {
    queue: Arc<(Mutex<ThumbnailQueue>, Condvar)>,
}

impl ThumbnailLoader {
    pub(crate) fn spawn(
        events: Sender<Event>,
        repaint: Arc<dyn Fn() + Send + Sync>,
    ) -> std::io::Result<Self> {
        let queue = Arc::new((Mutex::new(ThumbnailQueue::default()), Condvar::new()));
        let shared = queue.clone();
        std::thread::Builder::new()
            .name("morphosearch-thumbnails".into())
            .spawn(move || {
                let mut stored = StoredThumbnails::default();
                loop {
                    let (generation, request) = {
                        let (lock, ready) = &*shared;
                        let Ok(mut q) = lock.lock() else { return };
                        while q.pending.is_empty() && !q.closed {
                            q = match ready.wait(q) {
                                Ok(q) => q,
                                Err(_) => return,
                            };
                        }
                        if q.closed {
                            return;
                        }
                        (q.generation, q.pending.remove(0))
                    };
                    let image = make(&request, &mut stored);
                    if events
                        .send(Event::Thumbnail {
                            generation,
                            entry: request.entry,
                            image,
                        })
                        .is_err()
                    {
                        return;
                    }
                    repaint();
                }
            })?;
        Ok(Self { queue })
    }

    /// Replaces the queue with `requests`, in order (what is on screen now).
    pub fn request(&self, generation: u64, requests: Vec<ThumbnailRequest>) {
        let (lock, ready) = &*self.queue;
        if let Ok(mut q) = lock.lock() {
            q.generation = generation;
            q.pending = requests;
            ready.notify_one();
        }
    }
}

impl Drop for ThumbnailLoader {
    fn drop(&mut self) {
        let (lock, ready) = &*self.queue;
        if let Ok(mut q) = lock.lock() {
            q.closed = true;
            ready.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::sync::mpsc::Receiver;

    fn thumbnail_events(rx: &Receiver<Event>, n: usize) -> Vec<(u64, usize, bool)> {
        (0..n)
            .map(
                |_| match rx.recv_timeout(std::time::Duration::from_secs(20)) {
                    Ok(Event::Thumbnail {
                        generation,
                        entry,
                        image,
                    }) => (generation, entry, image.is_ok()),
                    other => panic!("expected a thumbnail, got {other:?}"),
                },
            )
            .collect()
    }

    /// The latest request replaces what is still queued; results carry their generation, an
    /// unreadable file is an error result (not a lost request), and thumbnails are small.
    #[test]
    fn thumbnail_loader_serves_the_latest_request_and_reports_failures() {
        let tmp = tempfile::tempdir().expect("tmp");
        let mut paths = Vec::new();
        for i in 0..6 {
            let p = tmp.path().join(format!("{i}.png"));
            image::GrayImage::from_pixel(400, 300, image::Luma([40 * i as u8]))
                .save(&p)
                .expect("png");
            paths.push(p);
        }
        let (tx, rx) = std::sync::mpsc::channel();
        let loader = ThumbnailLoader::spawn(tx, Arc::new(|| {})).expect("spawn");
        let req = |e: usize| ThumbnailRequest {
            entry: e,
            path: paths[e].clone(),
            stored: None,
        };
        // Hold the loader's lock while queueing twice, so the first queue is surely replaced.
        {
            let (lock, _) = &*loader.queue;
            let mut q = lock.lock().expect("lock");
            q.generation = 1;
            q.pending = (0..5).map(req).collect();
        }
        loader.request(
            2,
            vec![
                req(5),
                ThumbnailRequest {
                    entry: 9,
                    path: tmp.path().join("missing.png"),
                    stored: None,
                },
            ],
        );
        let got = thumbnail_events(&rx, 2);
        assert_eq!(got, vec![(2, 5, true), (2, 9, false)]);
        assert!(
            rx.recv_timeout(std::time::Duration::from_millis(300))
                .is_err(),
            "nothing else was made"
        );
        loader.request(3, vec![req(1)]);
        match rx.recv_timeout(std::time::Duration::from_secs(20)) {
            Ok(Event::Thumbnail { image: Ok(img), .. }) => {
                assert!(img.width() <= THUMB_SIZE && img.height() <= THUMB_SIZE);
            }
            other => panic!("{other:?}"),
        }
    }
}

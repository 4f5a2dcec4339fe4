//! The app as a new user meets it, driven headless with egui_kittest: what a new query
//! replaces, the query bar, errors shown where they happen, the top-k limit, searches
//! restricted by recipe, the app idle after every action, a small window.

mod common;

use std::sync::Arc;

use common::app::{drag, harness, harness_sized, idle, step_until, DroppedPath};
use egui::accesskit::Role;
use egui_kittest::kittest::Queryable;
use morphosearch::app::{MorphoApp, QueryKind, QueryState, View};
use morphosearch::engine::library::index::conditions::Conditions;

type H = egui_kittest::Harness<'static, MorphoApp>;

fn indexed(tmp: &std::path::Path) -> H {
    let mut h = harness(tmp);
    step_until(&mut h, 600, "the demo library to be indexed", |a| {
        a.index.is_some()
    });
    h
}

fn drop_file(h: &mut H, path: std::path::PathBuf) {
    h.input_mut()
        .dropped_files
        .push(Arc::new(DroppedPath(path)));
}

/// Draws a closed loop on the canvas.
fn draw_circle(h: &mut H) {
    let top = h.get_by_label("Clear").rect().bottom() + 40.0;
    let points: Vec<(f32, f32)> = (0..=16)
        .map(|k| {
            let a = k as f32 / 16.0 * std::f32::consts::TAU;
            (40.0 * a.cos() - 40.0, 40.0 * a.sin())
        })
        .collect();
    drag(h, egui::pos2(120.0, top + 50.0), &points);
}

fn kind(a: &MorphoApp) -> Option<QueryKind> {
    a.query.as_ref().map(|q| q.kind)
}

fn done(a: &MorphoApp) -> bool {
    a.busy() == 0
        && a.query
            .as_ref()
            .is_some_and(|q| matches!(q.state, QueryState::Done { .. }))
}

/// Drags over the middle of the query image (below the element labelled `above`).
fn drag_region(h: &mut H, above: &str) {
    let top = h.get_by_label_contains(above).rect().bottom() + 12.0;
    drag(
        h,
        egui::pos2(40.0, top + 20.0),
        &[(30.0, 30.0), (90.0, 80.0)],
    );
}

/// Steps for `secs` with the pointer gone, then says whether the app asks for no repaint.
fn idle_after(h: &mut H, secs: f32) -> bool {
    h.remove_cursor();
    let start = std::time::Instant::now();
    while start.elapsed().as_secs_f32() < secs {
        h.step();
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    h.step();
    idle(h)
}

#[test]
fn a_region_search_after_a_sketch_searches_the_image_and_the_bar_names_each_query() {
    let tmp = tempfile::tempdir().expect("tmp");
    let mut h = indexed(tmp.path());
    drop_file(&mut h, tmp.path().join("demo/demo_003.png"));
    step_until(&mut h, 120, "image results", |a| {
        done(a) && kind(a) == Some(QueryKind::Image)
    });
    h.get_by_label("Image query: demo_003.png");
    // The query is a library sample: the summary leaves it out.
    assert!(h.state().query.as_ref().and_then(|q| q.entry).is_some());
    h.get_by_label_contains("the query's own sample left out");

    draw_circle(&mut h);
    step_until(&mut h, 120, "sketch results", |a| {
        done(a) && kind(a) == Some(QueryKind::Sketch) && a.hits_are_sketch
    });
    h.get_by_label_contains("Sketch query: your drawing");
    assert!(
        h.query_by_label("Image query: demo_003.png").is_none(),
        "the old query is not named above sketch results"
    );

    // A region dragged on the (still shown) query image searches that region of the image.
    drag_region(&mut h, "Search this image");
    step_until(&mut h, 120, "region results", |a| {
        done(a) && kind(a) == Some(QueryKind::Image)
    });
    {
        let a = h.state();
        assert!(
            !a.hits_are_sketch,
            "a region search answers with image results"
        );
        assert!(a.query.as_ref().is_some_and(|q| q.crop.is_some()));
    }
    h.get_by_label_contains("Image query: demo_003.png, region");
    h.get_by_label("Whole image").click();
    step_until(&mut h, 120, "whole-image results", |a| {
        done(a) && a.query.as_ref().is_some_and(|q| q.crop.is_none())
    });
    assert!(!h.state().hits_are_sketch);

    // Clear ends a sketch query; a region drag then still searches the image.
    draw_circle(&mut h);
    step_until(&mut h, 120, "sketch results again", |a| {
        done(a) && kind(a) == Some(QueryKind::Sketch)
    });
    h.get_by_label("Clear").click();
    h.step();
    h.step();
    assert!(h.state().query.is_none(), "Clear removes the sketch query");
    assert!(h.state().hits.is_empty(), "and its results");
    h.get_by_label("No query yet");
    drag_region(&mut h, "Search this image");
    step_until(&mut h, 120, "region results after Clear", |a| {
        done(a) && kind(a) == Some(QueryKind::Image) && !a.hits.is_empty()
    });
    assert!(idle_after(&mut h, 2.0), "idle 2 s after the last search");
}

#[test]
fn the_app_is_idle_after_fast_slider_drags_and_reindexing() {
    let tmp = tempfile::tempdir().expect("tmp");
    let mut h = indexed(tmp.path());
    assert!(idle_after(&mut h, 2.0), "idle 2 s after the library opened");
    h.state_mut().apply(morphosearch::ui::Action::Select(2));
    h.get_by_label("Contours").click();
    step_until(&mut h, 60, "the first preview", |a| {
        a.preview_entry == Some(2)
    });
    // Fast drags: many previews queued before the worker takes the first.
    for i in 0..40 {
        h.get_by_role_and_label(Role::SpinButton, "Blur sigma")
            .set_value_accesskit(1.0 + 0.1 * i as f64);
        if i % 3 == 0 {
            h.step();
        }
    }
    step_until(&mut h, 60, "the worker to finish the previews", |a| {
        a.busy() == 0
    });
    assert!(idle_after(&mut h, 2.0), "idle 2 s after fast slider drags");

    // Apply to library asks first, then redraws; the selection stays.
    h.get_by_label("Apply to library…").click();
    h.step();
    h.step();
    h.get_by_label_contains("Redraw the contour drawings of all 12 samples");
    h.get_by_label("Redraw all 12").click();
    h.step();
    h.step();
    step_until(&mut h, 300, "the library redrawn", |a| {
        a.busy() == 0 && a.progress.is_none()
    });
    assert_eq!(
        h.state().selected,
        Some(2),
        "the selection survives Apply to library"
    );
    assert_eq!(h.state().view, View::Contours);
    assert!(idle_after(&mut h, 2.0), "idle 2 s after re-indexing");
}

#[test]
fn errors_are_shown_where_the_user_acted_and_old_results_go() {
    let tmp = tempfile::tempdir().expect("tmp");
    let mut h = indexed(tmp.path());
    drop_file(&mut h, tmp.path().join("demo/demo_001.png"));
    step_until(&mut h, 120, "image results", done);
    assert!(!h.state().hits.is_empty());

    let missing = tmp.path().join("no such micrograph.png");
    h.get_by_label("Search").click(); // an empty path field does nothing
    h.state_mut().path_field = missing.display().to_string();
    h.get_by_label("Search").click();
    step_until(&mut h, 60, "the failure", |a| {
        a.busy() == 0
            && a.query
                .as_ref()
                .is_some_and(|q| matches!(q.state, QueryState::Failed(_)))
    });
    let banner = h.state().banner.clone().expect("an error banner");
    assert!(banner.contains("does not exist"), "{banner}");
    assert!(!banner.contains("os error"), "{banner}");
    assert!(
        h.state().hits.is_empty(),
        "the old results are not left under a failed query"
    );
    h.get_by_label("Error");
    h.get_by_label_contains("failed:");
    assert!(h
        .state()
        .log
        .iter()
        .any(|l| l.error && l.text.contains("does not exist")));

    // A file that is not an image.
    let bogus = tmp.path().join("notes.png");
    std::fs::write(&bogus, "not an image").expect("write");
    drop_file(&mut h, bogus);
    step_until(&mut h, 60, "the second failure", |a| {
        a.busy() == 0 && a.banner.as_ref().is_some_and(|b| b.contains("notes.png"))
    });
    h.get_by_label("Dismiss").click();
    h.step();
    assert!(h.state().banner.is_none());
    // Each log line has a time of day.
    let line = h.state().log.last().cloned().expect("a log line");
    assert_eq!(line.at.len(), 8, "{line:?}");
}

#[test]
fn top_k_is_limited_to_the_library_and_says_so() {
    let tmp = tempfile::tempdir().expect("tmp");
    let mut h = indexed(tmp.path());
    drop_file(&mut h, tmp.path().join("demo/demo_004.png"));
    step_until(&mut h, 120, "image results", done);
    let row = h.get_by_label("Results (k)").rect();
    h.get_all_by_role(Role::SpinButton)
        .find(|n| (n.rect().center().y - row.center().y).abs() < 8.0)
        .expect("the k field beside its label")
        .set_value_accesskit(100000.0);
    h.step();
    step_until(&mut h, 120, "results for the largest k", |a| {
        done(a) && a.hits.len() == 12
    });
    assert_eq!(h.state().settings.top_k, 12);
    h.get_by_label_contains("asked for 100000, and the library has 12 samples");
}

#[test]
fn a_search_restricted_by_recipe_ranks_only_those_samples() {
    let tmp = tempfile::tempdir().expect("tmp");
    let mut h = indexed(tmp.path());
    let index = h.state().index.clone().expect("index");
    let condition = "Temperature (C) < 50";
    let expected = Conditions::parse_list(&index, condition).expect("parses");
    let allowed: Vec<usize> = (0..index.len())
        .filter(|&i| expected.admits(&index, i))
        .collect();
    assert!(
        !allowed.is_empty() && allowed.len() < index.len(),
        "{allowed:?}"
    );

    drop_file(&mut h, tmp.path().join("demo/demo_005.png"));
    step_until(&mut h, 120, "image results", done);
    let field = |h: &H| {
        h.get_all_by_role(Role::TextInput)
            .find(|n| n.rect().left() > 300.0 && n.rect().top() > 60.0 && n.rect().top() < 220.0)
            .expect("the filter bar's field")
            .rect()
            .center()
    };
    let at = field(&h);
    h.get_all_by_role(Role::TextInput)
        .find(|n| n.rect().contains(at))
        .expect("field")
        .click();
    h.step();
    h.get_all_by_role(Role::TextInput)
        .find(|n| n.rect().contains(at))
        .expect("field")
        .type_text(condition);
    h.step();
    h.key_press(egui::Key::Enter);
    h.step();
    step_until(&mut h, 120, "restricted results", |a| {
        done(a) && !a.conditions.is_empty()
    });
    let hits: Vec<usize> = h.state().hits.iter().map(|x| x.entry).collect();
    assert!(!hits.is_empty());
    assert!(
        hits.iter().all(|e| allowed.contains(e)),
        "{hits:?} not within {allowed:?}"
    );
    h.get_by_label_contains(&format!("searching {} of 12 samples", allowed.len()));

    // A malformed condition is refused under the field; the restriction in force stays.
    h.state_mut().where_field = "Temp < 40".into();
    h.state_mut().apply(morphosearch::ui::Action::SetConditions);
    h.step();
    let why = h.state().where_error.clone().expect("a reason");
    assert!(why.contains("no column \"Temp\""), "{why}");
    h.get_by_label_contains("no column \"Temp\"");
    assert!(!h.state().conditions.is_empty());
}

#[test]
fn a_small_window_keeps_every_tab_reachable() {
    let tmp = tempfile::tempdir().expect("tmp");
    let mut h = harness_sized(tmp.path(), egui::vec2(800.0, 600.0));
    step_until(&mut h, 600, "the demo library to be indexed", |a| {
        a.index.is_some()
    });
    assert_eq!(
        h.state().show_detail_panel,
        Some(false),
        "the details start closed in a small window"
    );
    for (tab, view) in [
        ("Browse", View::Browse),
        ("Map", View::Map),
        ("Contours", View::Contours),
        ("Particles", View::Particles),
        ("Results", View::Results),
    ] {
        let node = h.get_by_label(tab);
        assert!(
            node.rect().right() <= 800.0,
            "{tab} tab off the window: {:?}",
            node.rect()
        );
        node.click();
        h.step();
        assert_eq!(h.state().view, view);
    }
    let dup = h.get_by_label_contains("Duplicates (");
    assert!(dup.rect().right() <= 800.0, "{:?}", dup.rect());
    h.get_by_label("Details panel").click();
    h.step();
    assert_eq!(h.state().show_detail_panel, Some(true));
}

#[test]
fn browse_shows_the_stored_thumbnails_when_the_image_folder_is_gone() {
    let tmp = tempfile::tempdir().expect("tmp");
    let mut h = indexed(tmp.path());
    // The folder goes (unmounted share, library opened elsewhere): the library still has
    // every image's thumbnail.
    std::fs::rename(tmp.path().join("demo"), tmp.path().join("demo-away")).expect("rename");
    h.get_by_label("Browse").click();
    step_until(&mut h, 60, "every thumbnail shown", |a| {
        a.thumbnail_counts().0 == 12
    });
    assert_eq!(h.state().thumbnail_counts().1, 0, "none failed");
}

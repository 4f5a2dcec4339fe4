//! The app driven headless with egui_kittest: real app state, real worker, real model, on a
//! small demo library generated into a temporary folder.

mod common;

use std::sync::Arc;

use common::app::{drag, harness, step_until, DroppedPath};
use egui::accesskit::Role;
use egui_kittest::kittest::Queryable;
use morphosearch::app::View;

#[test]
fn drop_sketch_preview_browse_export() {
    let tmp = tempfile::tempdir().expect("tmp");
    let mut h = harness(tmp.path());
    step_until(&mut h, 600, "the demo library to be indexed", |a| {
        a.index.is_some()
    });
    assert!(h.state().is_demo);
    assert_eq!(h.state().index.as_ref().map(|i| i.len()), Some(12));
    h.get_by_label_contains("Synthetic demo library");

    // A dropped file leads to results listed with parameters.
    let query = tmp.path().join("demo/demo_003.png");
    h.input_mut()
        .dropped_files
        .push(Arc::new(DroppedPath(query)));
    step_until(&mut h, 120, "image results", |a| {
        !a.hits.is_empty() && !a.hits_are_sketch
    });
    let (first, params) = {
        let a = h.state();
        let index = a.index.as_ref().expect("index");
        (
            index.entries[a.hits[0].entry].path.clone(),
            index.params[a.hits[0].entry].len(),
        )
    };
    assert_eq!(
        first, "demo_003.png",
        "the dropped image finds itself first"
    );
    assert_eq!(params, 9, "results carry their synthesis record");
    h.get_by_label("Find similar");
    h.get_by_label("Temperature (C)");

    // A pasted image (Ctrl+V with an image on the clipboard) is a query too.
    let pasted = image::open(tmp.path().join("demo/demo_007.png"))
        .expect("demo image")
        .to_rgba8();
    let color = egui::ColorImage::from_rgba_unmultiplied(
        [pasted.width() as usize, pasted.height() as usize],
        pasted.as_raw(),
    );
    h.input_mut()
        .events
        .push(egui::Event::PasteImage(Arc::new(color)));
    step_until(&mut h, 120, "results of the pasted image", |a| {
        a.query_label.as_deref() == Some("pasted image") && a.busy() == 0
    });
    {
        let a = h.state();
        let index = a.index.as_ref().expect("index");
        assert_eq!(index.entries[a.hits[0].entry].path, "demo_007.png");
    }

    // Strokes on the canvas lead to a sketch search.
    let canvas_top = h.get_by_label("Clear").rect().bottom() + 30.0;
    let left = 40.0;
    let points = [
        (0.0, 0.0),
        (40.0, 10.0),
        (60.0, 50.0),
        (30.0, 80.0),
        (0.0, 40.0),
        (2.0, 2.0),
    ];
    drag(&mut h, egui::pos2(left, canvas_top), &points);
    assert_eq!(h.state().canvas.strokes.len(), 1, "one stroke drawn");
    step_until(&mut h, 120, "sketch results", |a| {
        a.hits_are_sketch && !a.hits.is_empty()
    });
    h.step();
    assert!(
        h.query_by_label_contains("What the network compared")
            .is_some(),
        "the network's view of the drawing is shown"
    );

    // Moving a threshold slider changes the preview.
    h.get_by_label("Contours").click();
    step_until(&mut h, 60, "the first preview", |a| {
        a.preview_fingerprint != 0
    });
    assert_eq!(h.state().view, View::Contours);
    let before = h.state().preview_fingerprint;
    h.get_by_role_and_label(Role::SpinButton, "Blur sigma")
        .set_value_accesskit(5.0);
    step_until(&mut h, 60, "a new preview", |a| {
        a.preview_fingerprint != before
    });
    assert!((h.state().settings.contours.blur_sigma - 5.0).abs() < 1e-3);

    // A browse filter reduces the grid.
    h.get_by_label("Browse").click();
    h.step();
    let row = h.get_by_label("Filter").rect();
    let is_filter = |n: &egui_kittest::Node<'_>| {
        (n.rect().center().y - row.center().y).abs() < 8.0 && n.rect().left() > row.right()
    };
    h.get_all_by_role(Role::TextInput)
        .find(is_filter)
        .expect("the browse filter field")
        .click();
    h.step();
    h.get_all_by_role(Role::TextInput)
        .find(is_filter)
        .expect("the browse filter field")
        .type_text("Cube");
    h.step();
    h.step();
    let shown = h
        .state()
        .browse
        .filtered(h.state().index.as_ref().expect("index"))
        .len();
    assert!(shown > 0 && shown < 12, "{shown} of 12 shown");
    h.get_by_label(&format!("{shown} of 12 samples"));

    // Export writes a CSV with the expected header and rows.
    let out = tmp.path().join("results.csv");
    h.state_mut().export_field = out.display().to_string();
    h.get_by_label("Export results").click_accesskit();
    h.step();
    h.step();
    let text = std::fs::read_to_string(&out)
        .unwrap_or_else(|e| panic!("export not written ({e}); status: {}", h.state().status));
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("rank,path,score,Ca ion (mM),CO3 ion (mM),Polymer,Polymer (% wt),Stirring (rpm),Temperature (C),Synthesis time,Pixel size (nm),label"));
    assert_eq!(lines.count(), h.state().hits.len());

    // The window title names the database and its size, and is sent to the window only when
    // it changes (each send costs a frame: sending it every frame repainted without end).
    let title = h.state_mut().title_update().expect("a first title");
    assert!(
        title.contains("demo") && title.contains("(12 images)"),
        "{title}"
    );
    h.step();
    assert_eq!(
        h.state_mut().title_update(),
        None,
        "unchanged title sent again"
    );
}

#[test]
fn particles_view_measures_the_query_and_compares_it_with_the_matches() {
    let tmp = tempfile::tempdir().expect("tmp");
    let mut h = harness(tmp.path());
    step_until(&mut h, 600, "the demo library to be indexed", |a| {
        a.index.is_some()
    });
    let index = h.state().index.clone().expect("index");
    assert!(
        index.entries.iter().all(|e| e.particles.is_some()),
        "indexing measures every image's particles"
    );
    let query = tmp.path().join("demo/demo_000.png");
    h.input_mut()
        .dropped_files
        .push(Arc::new(DroppedPath(query)));
    step_until(&mut h, 120, "image results", |a| !a.hits.is_empty());
    h.get_by_label("Particles").click();
    h.step();
    h.get_by_label("the query image").click();
    step_until(&mut h, 60, "the query's particles", |a| {
        a.particles.is_some()
    });
    {
        let a = h.state();
        assert_eq!(a.view, View::Particles);
        let view = a.particles.as_ref().expect("analysis");
        assert!(!view.analysis.particles.is_empty());
        assert_eq!(a.busy(), 0, "every job ended in one event");
    }
    h.get_by_label_contains("Query vs the top");
    // The dropped file records no scale of its own, so the comparison is in pixels.
    h.get_by_label("Median ± SD (px)");
    let csv = tmp.path().join("query_particles.csv");
    h.state_mut().particle_fields.csv_path = csv.display().to_string();
    h.get_by_label("Export particles").click_accesskit();
    h.step();
    h.step();
    let text = std::fs::read_to_string(&csv)
        .unwrap_or_else(|e| panic!("not exported ({e}); status: {}", h.state().status));
    let n = h
        .state()
        .particles
        .as_ref()
        .map_or(0, |v| v.analysis.particles.len());
    assert_eq!(text.lines().count(), n + 1);
    assert!(
        h.state().status.contains(&csv.display().to_string()),
        "{}",
        h.state().status
    );

    // A database sample: measured with the table's scale, in nm.
    h.state_mut()
        .apply(morphosearch::ui::Action::AnalyseParticles(
            morphosearch::ui::particles::ParticleTarget::Entry(0),
        ));
    step_until(&mut h, 60, "the sample's particles", |a| {
        a.particles
            .as_ref()
            .is_some_and(|v| v.target == morphosearch::ui::particles::ParticleTarget::Entry(0))
    });
    let view = h.state().particles.as_ref().expect("analysis");
    assert!(
        view.analysis.pixel_size.is_some(),
        "scale from the demo table"
    );
    // A typed pixel size that is not a number is refused with a message.
    h.state_mut().particle_fields.pixel_size_nm = "abc".into();
    h.state_mut()
        .apply(morphosearch::ui::Action::AnalyseParticles(
            morphosearch::ui::particles::ParticleTarget::Query,
        ));
    assert!(
        h.state().status.contains("positive number"),
        "{}",
        h.state().status
    );
}

#[test]
fn the_browse_filter_restricts_searches_when_asked() {
    let tmp = tempfile::tempdir().expect("tmp");
    let mut h = harness(tmp.path());
    step_until(&mut h, 600, "the demo library to be indexed", |a| {
        a.index.is_some()
    });
    // "Main particle shape" is a Browse column like the table's; the text filter sees it.
    let index = h.state().index.clone().expect("index");
    assert!(index
        .all_columns()
        .iter()
        .any(|c| c == "Main particle shape"));
    {
        let b = &mut h.state_mut().browse;
        b.text = "Cube".into();
        b.restrict_search = true;
    }
    let allowed: Vec<usize> = h.state().browse.filtered(&index);
    assert!(!allowed.is_empty() && allowed.len() < index.len());
    let query = tmp.path().join("demo/demo_002.png");
    h.input_mut()
        .dropped_files
        .push(Arc::new(DroppedPath(query)));
    step_until(&mut h, 120, "restricted results", |a| !a.hits.is_empty());
    let hits: Vec<usize> = h.state().hits.iter().map(|x| x.entry).collect();
    assert!(
        hits.iter().all(|e| allowed.contains(e)),
        "{hits:?} not within {allowed:?}"
    );
    h.get_by_label_contains("the Browse filter");
    // Off again: the whole library is ranked.
    h.state_mut().browse.restrict_search = false;
    h.state_mut().apply(morphosearch::ui::Action::Research);
    step_until(&mut h, 60, "unrestricted results", |a| {
        a.hits.iter().any(|x| !allowed.contains(&x.entry))
    });
}

#[test]
fn fast_contour_slider_drags_leave_the_worker_idle() {
    let tmp = tempfile::tempdir().expect("tmp");
    let mut h = harness(tmp.path());
    step_until(&mut h, 600, "the demo library to be indexed", |a| {
        a.index.is_some()
    });
    h.state_mut().apply(morphosearch::ui::Action::Select(2));
    h.state_mut().view = View::Contours;
    // A fast drag: many previews queued before the worker takes the first; all but the newest
    // are dropped, and each dropped one must still end in an event.
    for i in 0..30 {
        h.state_mut().settings.contours.blur_sigma = 1.0 + 0.05 * i as f32;
        h.state_mut().apply(morphosearch::ui::Action::Preview);
    }
    step_until(&mut h, 60, "the worker to be idle again", |a| {
        a.busy() == 0 && a.preview_entry == Some(2)
    });
    assert!(h.state().progress.is_none());
}

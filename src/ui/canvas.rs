//! The sketch canvas, after egui's painting demo: strokes kept in normalised 0..1 coordinates,
//! a `RectTransform` between screen and canvas; pen, eraser, shape stamps sized by dragging,
//! undo/redo. Rasterising happens in the engine, not here.

use egui::emath::RectTransform;
use egui::{Color32, Event, PointerButton, Pos2, Rect, Sense, Stroke as PaintStroke, Vec2};

use crate::engine::sketch::Stroke;

/// Drawing tools.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    Pen,
    Eraser,
    Circle,
    Square,
    Rod,
}

/// Canvas contents and history.
#[derive(Debug, Clone)]
pub struct CanvasState {
    pub strokes: Vec<Stroke>,
    pub redo: Vec<Vec<Stroke>>,
    pub undo: Vec<Vec<Stroke>>,
    pub tool: Tool,
    /// Pen width on screen, in points.
    pub pen_width: f32,
    current: Vec<[f32; 2]>,
    stamp_start: Option<[f32; 2]>,
    /// The pen was put down on the canvas and not lifted yet.
    pen_down: bool,
}

impl Default for CanvasState {
    fn default() -> Self {
        Self {
            strokes: Vec::new(),
            redo: Vec::new(),
            undo: Vec::new(),
            tool: Tool::Pen,
            pen_width: 2.5,
            current: Vec::new(),
            stamp_start: None,
            pen_down: false,
        }
    }
}

/// Points of a stamp from its centre `c` to the drag point `p` (normalised coordinates).
pub fn stamp(tool: Tool, c: [f32; 2], p: [f32; 2]) -> Vec<[f32; 2]> {
    let (dx, dy) = (p[0] - c[0], p[1] - c[1]);
    let r = (dx * dx + dy * dy).sqrt().max(0.005);
    let angle = dy.atan2(dx);
    let at = |u: f32, v: f32| -> [f32; 2] {
        let (s, co) = angle.sin_cos();
        [c[0] + co * u - s * v, c[1] + s * u + co * v]
    };
    match tool {
        Tool::Circle => (0..=32)
            .map(|i| {
                let t = i as f32 / 32.0 * std::f32::consts::TAU;
                [c[0] + r * t.cos(), c[1] + r * t.sin()]
            })
            .collect(),
        Tool::Square => [
            (-1.0, -1.0),
            (1.0, -1.0),
            (1.0, 1.0),
            (-1.0, 1.0),
            (-1.0, -1.0),
        ]
        .iter()
        .map(|&(u, v)| {
            at(
                u * r * std::f32::consts::FRAC_1_SQRT_2,
                v * r * std::f32::consts::FRAC_1_SQRT_2,
            )
        })
        .collect(),
        // A rod spans the drag, start to end, with round ends and a width of a sixth of its
        // length (nanorods' aspect ratios are mostly 3-10).
        Tool::Rod => {
            let half = r / 2.0;
            let w = (r / 12.0).max(0.004);
            let mid = [(c[0] + p[0]) / 2.0, (c[1] + p[1]) / 2.0];
            let at_mid = |u: f32, v: f32| -> [f32; 2] {
                let (s, co) = angle.sin_cos();
                [mid[0] + co * u - s * v, mid[1] + s * u + co * v]
            };
            let cap = |centre: f32, from: f32| {
                (0..=8).map(move |k| {
                    let a = from + std::f32::consts::PI * k as f32 / 8.0;
                    (centre + w * a.cos(), w * a.sin())
                })
            };
            let straight = half - w;
            cap(straight, -std::f32::consts::FRAC_PI_2)
                .chain(cap(-straight, std::f32::consts::FRAC_PI_2))
                .chain(std::iter::once((straight, -w)))
                .map(|(u, v)| at_mid(u, v))
                .collect()
        }
        Tool::Pen | Tool::Eraser => vec![c, p],
    }
}

fn near_stroke(s: &Stroke, p: [f32; 2], radius: f32) -> bool {
    s.points.windows(2).any(|w| {
        let (a, b) = (Vec2::new(w[0][0], w[0][1]), Vec2::new(w[1][0], w[1][1]));
        let q = Vec2::new(p[0], p[1]);
        let ab = b - a;
        let t = if ab.length_sq() > 0.0 {
            ((q - a).dot(ab) / ab.length_sq()).clamp(0.0, 1.0)
        } else {
            0.0
        };
        (a + ab * t - q).length() < radius
    }) || s.points.len() == 1
        && (Vec2::new(s.points[0][0], s.points[0][1]) - Vec2::new(p[0], p[1])).length() < radius
}

impl CanvasState {
    fn push_undo(&mut self) {
        self.undo.push(self.strokes.clone());
        self.redo.clear();
    }

    /// Adds a finished stroke (with history).
    pub fn add_stroke(&mut self, s: Stroke) {
        self.push_undo();
        self.strokes.push(s);
    }

    /// Removes everything (undoable).
    pub fn clear(&mut self) {
        if !self.strokes.is_empty() {
            self.push_undo();
            self.strokes.clear();
        }
    }

    /// Undo the last change; true when something changed.
    pub fn undo(&mut self) -> bool {
        match self.undo.pop() {
            Some(prev) => {
                self.redo.push(std::mem::replace(&mut self.strokes, prev));
                true
            }
            None => false,
        }
    }

    /// Redo the last undone change; true when something changed.
    pub fn redo(&mut self) -> bool {
        match self.redo.pop() {
            Some(next) => {
                self.undo.push(std::mem::replace(&mut self.strokes, next));
                true
            }
            None => false,
        }
    }

    /// Tool bar: returns true when the drawing changed.
    pub fn toolbar_ui(&mut self, ui: &mut egui::Ui) -> bool {
        let mut changed = false;
        ui.horizontal_wrapped(|ui| {
            for (tool, label) in [
                (Tool::Pen, "Pen"),
                (Tool::Eraser, "Eraser"),
                (Tool::Circle, "Circle"),
                (Tool::Square, "Square"),
                (Tool::Rod, "Rod"),
            ] {
                ui.selectable_value(&mut self.tool, tool, label);
            }
        });
        ui.horizontal_wrapped(|ui| {
            ui.add(egui::Slider::new(&mut self.pen_width, 1.0..=8.0).text("Width"));
            if ui
                .add_enabled(!self.undo.is_empty(), egui::Button::new("Undo"))
                .clicked()
            {
                changed |= self.undo();
            }
            if ui
                .add_enabled(!self.redo.is_empty(), egui::Button::new("Redo"))
                .clicked()
            {
                changed |= self.redo();
            }
            if ui.button("Clear").clicked() {
                self.clear();
                changed = true;
            }
        });
        changed
    }

    /// The square canvas; returns true when a stroke ended or strokes were erased.
    pub fn canvas_ui(&mut self, ui: &mut egui::Ui, side: f32) -> bool {
        let (response, painter) = ui.allocate_painter(Vec2::splat(side), Sense::drag());
        let screen_from_canvas = RectTransform::from_to(
            Rect::from_min_size(Pos2::ZERO, Vec2::splat(1.0)),
            response.rect,
        );
        let canvas_from_screen = screen_from_canvas.inverse();
        painter.rect_filled(response.rect, 2.0, Color32::WHITE);
        let mut changed = false;
        if self.tool == Tool::Pen {
            changed |= self.pen_events(ui, &response, canvas_from_screen);
        } else if let Some(pointer) = response.interact_pointer_pos() {
            let p = canvas_from_screen * pointer;
            let p = [p.x.clamp(0.0, 1.0), p.y.clamp(0.0, 1.0)];
            match self.tool {
                Tool::Eraser => {
                    let radius = 0.02;
                    if self.strokes.iter().any(|s| near_stroke(s, p, radius)) {
                        self.push_undo();
                        self.strokes.retain(|s| !near_stroke(s, p, radius));
                        changed = true;
                    }
                }
                stamp_tool => {
                    let start = *self.stamp_start.get_or_insert(p);
                    self.current = stamp(stamp_tool, start, p);
                }
            }
        }
        if self.tool != Tool::Pen
            && (response.drag_stopped() || (response.clicked() && !self.current.is_empty()))
        {
            if !self.current.is_empty() && self.tool != Tool::Eraser {
                let points = std::mem::take(&mut self.current);
                self.add_stroke(Stroke { points });
                changed = true;
            }
            self.stamp_start = None;
        }
        let paint = PaintStroke::new(self.pen_width, Color32::BLACK);
        for s in self
            .strokes
            .iter()
            .map(|s| &s.points)
            .chain(std::iter::once(&self.current))
        {
            let pts: Vec<Pos2> = s
                .iter()
                .map(|p| screen_from_canvas * Pos2::new(p[0], p[1]))
                .collect();
            if pts.len() == 1 {
                painter.circle_filled(pts[0], self.pen_width / 2.0, Color32::BLACK);
            } else if pts.len() > 1 {
                painter.add(egui::Shape::line(pts, paint));
            }
        }
        changed
    }

    /// The pen follows every pointer event of the frame rather than one position per frame, so
    /// a slow frame (software rendering, a busy machine) neither cuts a stroke's corners nor
    /// joins it to the next one when the pen is lifted and put down again within that frame.
    fn pen_events(
        &mut self,
        ui: &egui::Ui,
        response: &egui::Response,
        canvas_from_screen: RectTransform,
    ) -> bool {
        let to_canvas = |pos: Pos2| {
            let p = canvas_from_screen * pos;
            [p.x.clamp(0.0, 1.0), p.y.clamp(0.0, 1.0)]
        };
        // Pressed on the canvas itself, not on a window or menu drawn over it.
        let on_canvas = |pos: Pos2| {
            response.rect.contains(pos) && ui.ctx().layer_id_at(pos) == Some(response.layer_id)
        };
        let mut changed = false;
        for event in ui.input(|i| i.events.clone()) {
            let (pos, lift) = match event {
                Event::PointerButton {
                    pos,
                    button: PointerButton::Primary,
                    pressed,
                    ..
                } => {
                    if pressed && on_canvas(pos) {
                        self.pen_down = true;
                        self.current.clear();
                    }
                    (Some(pos), !pressed)
                }
                Event::PointerMoved(pos) => (Some(pos), false),
                Event::PointerGone => (None, true),
                _ => continue,
            };
            if !self.pen_down {
                continue;
            }
            if let Some(p) = pos.map(to_canvas) {
                if self.current.last() != Some(&p) {
                    self.current.push(p);
                }
            }
            if lift {
                self.pen_down = false;
                let points = std::mem::take(&mut self.current);
                if !points.is_empty() {
                    self.add_stroke(Stroke { points });
                    changed = true;
                }
            }
        }
        changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn undo_redo_round_trip() {
        let mut c = CanvasState::default();
        c.add_stroke(Stroke {
            points: vec![[0.1, 0.1], [0.2, 0.2]],
        });
        c.add_stroke(Stroke {
            points: vec![[0.5, 0.5]],
        });
        assert!(c.undo());
        assert_eq!(c.strokes.len(), 1);
        assert!(c.redo());
        assert_eq!(c.strokes.len(), 2);
        c.clear();
        assert!(c.strokes.is_empty());
        assert!(c.undo());
        assert_eq!(c.strokes.len(), 2);
    }

    #[test]
    fn pen_strokes_lifted_and_put_down_within_one_frame_stay_apart() {
        // State: the canvas and where it was placed.
        let mut h = egui_kittest::Harness::new_ui_state(
            |ui, (c, origin): &mut (CanvasState, Pos2)| {
                *origin = ui.cursor().min;
                c.canvas_ui(ui, 200.0);
            },
            (CanvasState::default(), Pos2::ZERO),
        );
        h.run();
        let origin = h.state().1;
        let at = |x: f32, y: f32| origin + Vec2::new(x, y);
        let button = |pos: Pos2, pressed: bool| Event::PointerButton {
            pos,
            button: PointerButton::Primary,
            pressed,
            modifiers: egui::Modifiers::NONE,
        };
        // Two strokes, all in one frame, as a slow frame receives them.
        let events = [
            Event::PointerMoved(at(20.0, 20.0)),
            button(at(20.0, 20.0), true),
            Event::PointerMoved(at(40.0, 20.0)),
            Event::PointerMoved(at(60.0, 40.0)),
            button(at(60.0, 40.0), false),
            Event::PointerMoved(at(150.0, 150.0)),
            button(at(150.0, 150.0), true),
            Event::PointerMoved(at(160.0, 180.0)),
            button(at(160.0, 180.0), false),
        ];
        h.input_mut().events.extend(events);
        h.step();
        let strokes = &h.state().0.strokes;
        assert_eq!(strokes.len(), 2, "{strokes:?}");
        assert_eq!(strokes[0].points.len(), 3, "every move is a point");
        assert_eq!(strokes[1].points.len(), 2);
        assert!(strokes[0].points.iter().all(|p| p[0] < 0.4 && p[1] < 0.4));
        assert!(strokes[1].points.iter().all(|p| p[0] > 0.7 && p[1] > 0.7));
        // A press outside the canvas draws nothing.
        h.input_mut().events.extend([
            Event::PointerMoved(at(300.0, 20.0)),
            button(at(300.0, 20.0), true),
            Event::PointerMoved(at(100.0, 100.0)),
            button(at(100.0, 100.0), false),
        ]);
        h.step();
        assert_eq!(h.state().0.strokes.len(), 2);
    }

    #[test]
    fn stamps_are_closed_shapes_of_the_dragged_size() {
        for tool in [Tool::Circle, Tool::Square, Tool::Rod] {
            let pts = stamp(tool, [0.5, 0.5], [0.6, 0.5]);
            assert_eq!(
                pts.first().map(|p| (p[0] * 1e4).round()),
                pts.last().map(|p| (p[0] * 1e4).round())
            );
            let max_r = pts
                .iter()
                .map(|p| ((p[0] - 0.5).powi(2) + (p[1] - 0.5).powi(2)).sqrt())
                .fold(0.0, f32::max);
            assert!((0.05..=0.11).contains(&max_r), "{tool:?}: {max_r}");
        }
    }

    #[test]
    fn a_rod_spans_the_drag_and_is_slender() {
        let pts = stamp(Tool::Rod, [0.2, 0.5], [0.6, 0.5]);
        let (xs, ys): (Vec<f32>, Vec<f32>) = pts.iter().map(|p| (p[0], p[1])).unzip();
        let lo = xs.iter().copied().fold(f32::MAX, f32::min);
        let hi = xs.iter().copied().fold(f32::MIN, f32::max);
        assert!(
            (lo - 0.2).abs() < 1e-3 && (hi - 0.6).abs() < 1e-3,
            "{lo}..{hi}"
        );
        let width = ys.iter().copied().fold(f32::MIN, f32::max)
            - ys.iter().copied().fold(f32::MAX, f32::min);
        assert!(
            width > 0.0 && width <= 0.4 / 5.0,
            "width {width} of a 0.4 rod"
        );
    }
}

//! The page's charts, drawn with plotters' SVG backend: grouped bars on a linear or
//! logarithmic value axis, and lines over log-log axes.
//!
//! Plotters lays out the axes, ticks, grid and scales; this module chooses the ranges (whole
//! decades, or zero to a round number), the colours, where labels go and the legend. No fonts
//! are measured: text widths are estimated, so label areas are sized with room to spare.

use std::io;

use plotters::coord::Shift;
use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

const WIDTH: u32 = 760;
/// Height of a chart whose groups stand side by side.
const HEIGHT: u32 = 380;
/// More groups than this and the bars lie down, one row per group, so that every group's
/// label reads horizontally (plotters rotates text by right angles only).
const UPRIGHT_GROUPS: usize = 8;
/// Height of one lying bar, and the gap between groups of them.
const ROW: u32 = 11;
const ROW_GAP: u32 = 9;
/// The strip below the plot that holds the legend.
const LEGEND: u32 = 34;
/// A generous width per character of 12 px sans-serif, for sizing label areas.
const CHAR_WIDTH: i32 = 7;
const FONT: &str = "sans-serif";
/// One colour per series, in order (colour-blind safe: Okabe and Ito).
const COLOURS: [RGBColor; 6] = [
    RGBColor(0x00, 0x72, 0xB2),
    RGBColor(0xE6, 0x9F, 0x00),
    RGBColor(0x00, 0x9E, 0x73),
    RGBColor(0xCC, 0x79, 0xA7),
    RGBColor(0x56, 0xB4, 0xE9),
    RGBColor(0xD5, 0x5E, 0x00),
];
const LIMIT_COLOUR: RGBColor = RGBColor(0xCC, 0x00, 0x00);
const NA_COLOUR: RGBColor = RGBColor(0x88, 0x88, 0x88);

type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;
type Drawn = Result<(), DrawingAreaErrorKind<io::Error>>;

/// Draw a chart into an SVG document of `height`, titled for screen readers too.
///
/// Drawing into a `String` cannot fail: the SVG backend's only error is writing its file, and
/// the layout is fixed here. A failure is a bug in this module, so it panics.
fn document(title: &str, height: u32, draw: impl FnOnce(&Area<'_>) -> Drawn) -> String {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, height)).into_drawing_area();
        root.fill(&WHITE)
            .and_then(|()| draw(&root))
            .and_then(|()| root.present())
            .unwrap_or_else(|e| panic!("drawing the chart {title:?}: {e}"));
    }
    // The visible caption is drawn text; a `<title>` names the image for assistive technology.
    if let Some(end) = svg.find('>') {
        svg.insert_str(end + 1, &format!("\n<title>{}</title>", escape(title)));
    }
    svg
}

/// A value range: zero to a round number, or whole decades on a logarithmic scale.
fn fit(values: impl Iterator<Item = f64>, log: bool) -> (f64, f64) {
    let values: Vec<f64> = values.filter(|v| v.is_finite() && *v > 0.0).collect();
    let max = values.iter().copied().fold(f64::MIN, f64::max);
    let min = values.iter().copied().fold(f64::MAX, f64::min);
    match (values.is_empty(), log) {
        (true, true) => (1.0, 10.0),
        (true, false) => (0.0, 10.0),
        (false, true) => {
            let low = min.log10().floor();
            (
                10f64.powf(low),
                10f64.powf(max.log10().ceil().max(low + 1.0)),
            )
        }
        (false, false) => (0.0, nice_ceiling(max)),
    }
}

/// A logarithmic range of whole decades, widened by a hair: plotters finds its decade ticks
/// by rounding logarithms and multiplying, and without this the rounding drops the first or
/// last decade's tick (0.1 and 10 came out missing).
fn decades((low, high): (f64, f64)) -> std::ops::Range<f64> {
    low * (1.0 - 1e-9)..high * (1.0 + 1e-9)
}

/// The smallest of 1, 2 or 5 times a power of ten at or above `x`.
fn nice_ceiling(x: f64) -> f64 {
    if x <= 0.0 {
        return 1.0;
    }
    let decade = 10f64.powf(x.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * decade)
        .find(|v| *v >= x)
        .unwrap_or(10.0 * decade)
}

/// A number for a label: 1.2M, 350k, 4.5, 0.012.
pub fn short(value: f64) -> String {
    let a = value.abs();
    let (scaled, decimals, suffix) = if a >= 1e9 {
        (value / 1e9, 2, "G")
    } else if a >= 1e6 {
        (value / 1e6, 2, "M")
    } else if a >= 1e4 {
        (value / 1e3, 0, "k")
    } else if a >= 1e3 {
        (value / 1e3, 1, "k")
    } else if a >= 10.0 {
        (value, 0, "")
    } else if a >= 1.0 {
        (value, 1, "")
    } else {
        (value, 2, "")
    };
    let mut text = format!("{scaled:.decimals$}");
    if text.contains('.') {
        text = text.trim_end_matches('0').trim_end_matches('.').to_owned();
    }
    text + suffix
}

/// A tick label on a logarithmic axis: only the decades are named, the lines between them
/// stay unlabelled.
fn decade_label(value: f64) -> String {
    let exponent = value.log10();
    if (exponent - exponent.round()).abs() < 1e-9 {
        short(value)
    } else {
        String::new()
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Text of `size` pixels. Plotters' SVG backend writes a font's size divided by 1.24 (its
/// ratio of line height to font size), so the size asked of it is scaled up by as much.
fn text_style(size: f64) -> TextStyle<'static> {
    (FONT, size * 1.24).into_font().color(&BLACK)
}

fn title_style() -> TextStyle<'static> {
    (FONT, 15.0 * 1.24)
        .into_font()
        .style(FontStyle::Bold)
        .color(&BLACK)
}

/// One swatch and name per series, left to right from the plot's left edge.
fn legend(area: &Area<'_>, names: &[&str], left: i32) -> Drawn {
    let mut x = left;
    for (i, name) in names.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        area.draw(&Rectangle::new([(x, 10), (x + 12, 22)], colour.filled()))?;
        area.draw(&Text::new(
            name.to_string(),
            (x + 16, 16),
            text_style(12.0).pos(Pos::new(HPos::Left, VPos::Center)),
        ))?;
        x += 28 + CHAR_WIDTH * i32::try_from(name.chars().count()).unwrap_or(0);
    }
    Ok(())
}

/// Where a group's label goes on the group axis: groups sit at 0, 1, 2… and the axis runs
/// from -0.5, so plotters' whole-number ticks fall on them.
fn group_label(groups: &[String], at: f64) -> String {
    let i = at.round();
    if (at - i).abs() > 1e-6 || i < 0.0 {
        return String::new();
    }
    groups.get(i as usize).cloned().unwrap_or_default()
}

/// Series of values over the same groups, drawn as bars side by side.
#[derive(Debug, Clone)]
pub struct Bars<'a> {
    /// The chart's title.
    pub title: &'a str,
    /// The value axis's label.
    pub unit: &'a str,
    /// Group labels, along the group axis.
    pub groups: Vec<String>,
    /// (name, one value per group; `None` where nothing was measured).
    pub series: Vec<(&'a str, Vec<Option<f64>>)>,
    /// Logarithmic value axis.
    pub log: bool,
}

impl Bars<'_> {
    /// The chart as an SVG document.
    pub fn svg(&self) -> String {
        let (low, high) = fit(
            self.series
                .iter()
                .flat_map(|(_, v)| v.iter().flatten().copied()),
            self.log,
        );
        let upright = self.groups.len() <= UPRIGHT_GROUPS;
        let height = if upright {
            HEIGHT
        } else {
            let rows = u32::try_from(self.groups.len() * self.series.len().max(1)).unwrap_or(0);
            let groups = u32::try_from(self.groups.len()).unwrap_or(0);
            110 + LEGEND + rows * ROW + groups * ROW_GAP
        };
        document(self.title, height, |root| {
            let (plot, key) = root.split_vertically(height - LEGEND);
            let names: Vec<&str> = self.series.iter().map(|(n, _)| *n).collect();
            match (upright, self.log) {
                (true, true) => self.upright(&plot, decades((low, high)).log_scale(), low)?,
                (true, false) => self.upright(&plot, low..high, low)?,
                (false, true) => self.lying(&plot, decades((low, high)).log_scale(), low)?,
                (false, false) => self.lying(&plot, low..high, low)?,
            }
            // Swatches start under the plot's left edge.
            let left = if upright {
                76
            } else {
                self.group_label_width()
            };
            legend(&key, &names, left)
        })
    }

    fn group_label_width(&self) -> i32 {
        let longest = self.groups.iter().map(|g| g.chars().count()).max();
        i32::try_from(longest.unwrap_or(0)).unwrap_or(0) * CHAR_WIDTH + 12
    }

    /// The extent of series `series`'s bar across the group centred at `centre`: the bars
    /// share 80 % of the group's width, with a sliver between neighbours.
    fn across(&self, centre: f64, series: usize) -> (f64, f64) {
        let width = 0.8 / self.series.len().max(1) as f64;
        let start = centre - 0.4 + width * series as f64;
        (start, start + width * 0.92)
    }

    /// Groups along the bottom, bars standing up, each value written above its bar.
    fn upright<V>(&self, area: &Area<'_>, values: V, base: f64) -> Drawn
    where
        V: AsRangedCoord<Value = f64>,
        V::CoordDescType: ValueFormatter<f64>,
    {
        let log = self.log;
        let mut chart = ChartBuilder::on(area)
            .caption(self.title, title_style())
            .margin_left(6)
            .margin_right(20)
            .margin_top(6)
            .x_label_area_size(34)
            .y_label_area_size(70)
            .build_cartesian_2d(-0.5..self.groups.len() as f64 - 0.5, values)?;
        let groups = |x: &f64| group_label(&self.groups, *x);
        let ticks = |y: &f64| if log { decade_label(*y) } else { short(*y) };
        chart
            .configure_mesh()
            .disable_x_mesh()
            .max_light_lines(0)
            .x_labels(self.groups.len())
            .x_label_formatter(&groups)
            .y_label_formatter(&ticks)
            .y_desc(self.unit)
            .label_style(text_style(12.0))
            .axis_desc_style(text_style(12.0))
            .draw()?;
        let label = text_style(10.0).pos(Pos::new(HPos::Center, VPos::Bottom));
        for (s, (_, values)) in self.series.iter().enumerate() {
            let colour = COLOURS[s % COLOURS.len()];
            for (g, value) in values.iter().enumerate() {
                let (x0, x1) = self.across(g as f64, s);
                let middle = (x0 + x1) / 2.0;
                match value {
                    Some(v) => {
                        chart.draw_series([Rectangle::new(
                            [(x0, base), (x1, *v)],
                            colour.filled(),
                        )])?;
                        chart.draw_series([EmptyElement::at((middle, *v))
                            + Text::new(short(*v), (0, -3), label.clone())])?;
                    }
                    None => {
                        chart.draw_series([EmptyElement::at((middle, base))
                            + Text::new("n/a", (0, -3), label.color(&NA_COLOUR))])?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Groups down the left, one row per bar, each value written after its bar.
    fn lying<V>(&self, area: &Area<'_>, values: V, base: f64) -> Drawn
    where
        V: AsRangedCoord<Value = f64>,
        V::CoordDescType: ValueFormatter<f64>,
    {
        let log = self.log;
        let n = self.groups.len();
        // Plotters' y grows upwards; the first group goes at the top.
        let top_down: Vec<String> = self.groups.iter().rev().cloned().collect();
        let flip = |g: usize| (n - 1 - g) as f64;
        let mut chart = ChartBuilder::on(area)
            .caption(self.title, title_style())
            .margin_right(40)
            .margin_top(6)
            .x_label_area_size(40)
            .y_label_area_size(self.group_label_width())
            .build_cartesian_2d(values, -0.5..n as f64 - 0.5)?;
        let groups = |y: &f64| group_label(&top_down, *y);
        let ticks = |x: &f64| if log { decade_label(*x) } else { short(*x) };
        chart
            .configure_mesh()
            .disable_y_mesh()
            .max_light_lines(0)
            .y_labels(n)
            .y_label_formatter(&groups)
            .x_label_formatter(&ticks)
            .x_desc(self.unit)
            .label_style(text_style(12.0))
            .axis_desc_style(text_style(12.0))
            .draw()?;
        let label = text_style(10.0).pos(Pos::new(HPos::Left, VPos::Center));
        for (s, (_, values)) in self.series.iter().enumerate() {
            let colour = COLOURS[s % COLOURS.len()];
            for (g, value) in values.iter().enumerate() {
                // Within the group, the first series sits on top.
                let (y0, y1) = self.across(flip(g), self.series.len() - 1 - s);
                let middle = (y0 + y1) / 2.0;
                match value {
                    Some(v) => {
                        chart.draw_series([Rectangle::new(
                            [(base, y0), (*v, y1)],
                            colour.filled(),
                        )])?;
                        chart.draw_series([EmptyElement::at((*v, middle))
                            + Text::new(short(*v), (4, 0), label.clone())])?;
                    }
                    None => {
                        chart.draw_series([EmptyElement::at((base, middle))
                            + Text::new("n/a", (4, 0), label.color(&NA_COLOUR))])?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// Series of (x, y) points joined by lines, over logarithmic axes.
#[derive(Debug, Clone)]
pub struct Lines<'a> {
    /// The chart's title.
    pub title: &'a str,
    /// The x axis's label.
    pub x_unit: &'a str,
    /// The y axis's label.
    pub y_unit: &'a str,
    /// (name, points).
    pub series: Vec<(&'a str, Vec<(f64, f64)>)>,
    /// A dashed horizontal line: (y, label).
    pub limit: Option<(f64, &'a str)>,
}

impl Lines<'_> {
    /// The chart as an SVG document.
    pub fn svg(&self) -> String {
        let points = || self.series.iter().flat_map(|(_, p)| p.iter());
        let x = decades(fit(points().map(|p| p.0), true));
        let y = decades(fit(
            points().map(|p| p.1).chain(self.limit.map(|(y, _)| y)),
            true,
        ));
        let (x_low, x_high) = (x.start, x.end);
        document(self.title, HEIGHT, |root| {
            let (plot, key) = root.split_vertically(HEIGHT - LEGEND);
            let mut chart = ChartBuilder::on(&plot)
                .caption(self.title, title_style())
                .margin_left(6)
                .margin_right(20)
                .margin_top(6)
                .x_label_area_size(40)
                .y_label_area_size(70)
                .build_cartesian_2d(x.log_scale(), y.log_scale())?;
            let ticks = |v: &f64| decade_label(*v);
            chart
                .configure_mesh()
                .x_label_formatter(&ticks)
                .y_label_formatter(&ticks)
                .x_desc(self.x_unit)
                .y_desc(self.y_unit)
                .label_style(text_style(12.0))
                .axis_desc_style(text_style(12.0))
                .draw()?;
            if let Some((y, label)) = self.limit {
                let style = LIMIT_COLOUR.stroke_width(1);
                chart.draw_series(DashedLineSeries::new(
                    [(x_low, y), (x_high, y)],
                    6,
                    4,
                    style,
                ))?;
                chart.draw_series([EmptyElement::at((x_high, y))
                    + Text::new(
                        label.to_owned(),
                        (-4, -4),
                        text_style(12.0)
                            .color(&LIMIT_COLOUR)
                            .pos(Pos::new(HPos::Right, VPos::Bottom)),
                    )])?;
            }
            for (s, (_, points)) in self.series.iter().enumerate() {
                let colour = COLOURS[s % COLOURS.len()];
                let mut sorted = points.clone();
                sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
                chart.draw_series(LineSeries::new(
                    sorted.iter().copied(),
                    colour.stroke_width(2),
                ))?;
                chart.draw_series(sorted.iter().map(|&p| Circle::new(p, 3, colour.filled())))?;
            }
            let names: Vec<&str> = self.series.iter().map(|(n, _)| *n).collect();
            legend(&key, &names, 76)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_cover_their_values() {
        assert_eq!(fit([3.0, 4_500.0].into_iter(), true), (1.0, 10_000.0));
        assert_eq!(fit([3.0, 4_500.0].into_iter(), false), (0.0, 5_000.0));
        assert_eq!(fit(std::iter::empty(), true), (1.0, 10.0));
    }

    #[test]
    fn short_numbers() {
        assert_eq!(short(1_500_000.0), "1.5M");
        assert_eq!(short(0.5), "0.5");
        assert_eq!(short(2_000_000.0), "2M");
        assert_eq!(short(320_000.0), "320k");
        assert_eq!(short(4.56), "4.6");
    }

    /// Each `<text>` element's opening tag and content, in document order.
    fn texts(svg: &str) -> Vec<(&str, &str)> {
        svg.split("<text")
            .skip(1)
            .filter_map(|rest| {
                let (tag, rest) = rest.split_once('>')?;
                let (content, _) = rest.split_once("</text>")?;
                Some((tag, content.trim()))
            })
            .collect()
    }

    /// The opening tag of the text that reads `label`.
    fn text<'a>(svg: &'a str, label: &str) -> &'a str {
        texts(svg)
            .into_iter()
            .find(|(_, content)| *content == label)
            .unwrap_or_else(|| panic!("no text {label:?} in {svg}"))
            .0
    }

    fn attribute(tag: &str, name: &str) -> f64 {
        let (_, rest) = tag
            .split_once(&format!(" {name}=\""))
            .unwrap_or_else(|| panic!("no {name} in {tag}"));
        rest.split('"').next().and_then(|v| v.parse().ok()).unwrap()
    }

    #[test]
    fn charts_are_svg_with_every_value() {
        let bars = Bars {
            title: "a <title>",
            unit: "per second",
            groups: vec!["N = 100".into(), "N = 1000".into()],
            series: vec![
                ("chorus", vec![Some(1e6), None]),
                ("ws", vec![Some(1e5), Some(2e4)]),
            ],
            log: true,
        }
        .svg();
        assert!(bars.starts_with("<svg") && bars.trim_end().ends_with("</svg>"));
        assert!(bars.contains("<title>a &lt;title&gt;</title>"));
        for label in [
            "n/a",
            "1M",
            "100k",
            "20k",
            "10k",
            "chorus",
            "ws",
            "per second",
        ] {
            text(&bars, label);
        }
        // Groups read left to right, under their bars.
        assert!(attribute(text(&bars, "N = 100"), "x") < attribute(text(&bars, "N = 1000"), "x"));
        let lines = Lines {
            title: "p99",
            x_unit: "asked",
            y_unit: "ms",
            series: vec![("chorus", vec![(1e4, 1.0), (2e4, 3.0)])],
            limit: Some((50.0, "p99 limit")),
        }
        .svg();
        assert_eq!(lines.matches("<circle").count(), 2);
        // Plotters draws the dashed limit as one short red segment per dash.
        assert!(
            lines.matches(r##"stroke="#CC0000""##).count() > 10,
            "{lines}"
        );
        for label in ["p99 limit", "1", "10", "100", "10k", "100k", "asked", "ms"] {
            text(&lines, label);
        }
    }

    #[test]
    fn charts_of_nothing_measured_still_draw() {
        for log in [true, false] {
            let empty = Bars {
                title: "nothing",
                unit: "ms",
                groups: Vec::new(),
                series: vec![("chorus", Vec::new())],
                log,
            }
            .svg();
            text(&empty, "chorus");
            let missing = Bars {
                title: "missing",
                unit: "ms",
                groups: vec!["1 × 32 B".into()],
                series: vec![("chorus", vec![None])],
                log,
            }
            .svg();
            text(&missing, "n/a");
        }
        let lines = Lines {
            title: "no steps",
            x_unit: "asked",
            y_unit: "ms",
            series: vec![("chorus", Vec::new())],
            limit: None,
        }
        .svg();
        text(&lines, "chorus");
    }

    #[test]
    fn log_axes_name_their_first_and_last_decades() {
        let bars = Bars {
            title: "echo",
            unit: "ms",
            groups: vec!["1 × 32 B".into()],
            series: vec![("chorus", vec![Some(0.13)]), ("ws", vec![Some(7.6)])],
            log: true,
        }
        .svg();
        for tick in ["0.1", "1", "10"] {
            text(&bars, tick);
        }
    }

    #[test]
    fn many_groups_lie_down_with_every_label_level() {
        let groups: Vec<String> = (0..12).map(|i| format!("message kind {i}")).collect();
        let bars = Bars {
            title: "decode",
            unit: "ns",
            series: vec![(
                "postcard",
                (0..12).map(|i| Some(f64::from(i) * 10.0 + 3.0)).collect(),
            )],
            groups,
            log: false,
        }
        .svg();
        let mut above = f64::MIN;
        for i in 0..12 {
            let label = text(&bars, &format!("message kind {i}"));
            assert!(!label.contains("rotate"), "{label}");
            // The first group at the top, each next one below it.
            let y = attribute(label, "y");
            assert!(y > above, "{i}: {y} after {above}");
            above = y;
            // Each bar's value in its group's row.
            let value = attribute(text(&bars, &short(f64::from(i) * 10.0 + 3.0)), "y");
            assert!(
                (value - y).abs() < 8.0,
                "{i}: value at {value}, group at {y}"
            );
        }
    }
}

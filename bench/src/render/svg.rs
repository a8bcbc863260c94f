//! Two kinds of chart, written as plain SVG: grouped bars and lines, each on a linear or
//! logarithmic scale. No fonts are measured; labels are placed, not fitted.

use std::fmt::Write as _;

const WIDTH: f64 = 760.0;
/// Height of a chart whose labels lie flat; the plot is this minus `TOP` and `BOTTOM`.
const HEIGHT: f64 = 380.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 44.0;
const BOTTOM: f64 = 70.0;
/// Room added below the plot for slanted group labels.
const SLANT_ROOM: f64 = 110.0;
/// More groups than this and their labels are slanted.
const FLAT_GROUPS: usize = 8;
/// One colour per series, in order (colour-blind safe: Okabe and Ito).
const COLOURS: [&str; 6] = [
    "#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00",
];

/// A value axis: linear from zero, or logarithmic over whole decades.
#[derive(Debug, Clone, Copy)]
struct Axis {
    log: bool,
    low: f64,
    high: f64,
}

impl Axis {
    fn fit(values: impl Iterator<Item = f64>, log: bool) -> Axis {
        let values: Vec<f64> = values.filter(|v| v.is_finite() && *v > 0.0).collect();
        let max = values.iter().copied().fold(f64::MIN, f64::max);
        let min = values.iter().copied().fold(f64::MAX, f64::min);
        if values.is_empty() {
            return Axis {
                log,
                low: if log { 1.0 } else { 0.0 },
                high: 10.0,
            };
        }
        if log {
            Axis {
                log,
                low: 10f64.powf(min.log10().floor()),
                high: 10f64.powf(max.log10().ceil().max(min.log10().floor() + 1.0)),
            }
        } else {
            Axis {
                log,
                low: 0.0,
                high: nice_ceiling(max),
            }
        }
    }

    /// Where `value` falls, from 0 (low) to 1 (high).
    fn fraction(&self, value: f64) -> f64 {
        let f = if self.log {
            (value.max(self.low).log10() - self.low.log10())
                / (self.high.log10() - self.low.log10())
        } else {
            (value - self.low) / (self.high - self.low)
        };
        f.clamp(0.0, 1.0)
    }

    fn ticks(&self) -> Vec<f64> {
        if self.log {
            let (from, to) = (self.low.log10() as i32, self.high.log10() as i32);
            (from..=to).map(|e| 10f64.powi(e)).collect()
        } else {
            (0..=5).map(|i| self.high * f64::from(i) / 5.0).collect()
        }
    }
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

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn open(svg: &mut String, title: &str, height: f64) {
    let _ = write!(
        svg,
        r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" height="{height}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="#ffffff"/>
<text x="{}" y="24" text-anchor="middle" font-size="15" font-weight="bold">{}</text>
"##,
        WIDTH / 2.0,
        escape(title)
    );
}

fn value_axis(svg: &mut String, axis: &Axis, label: &str) {
    let plot_h = HEIGHT - TOP - BOTTOM;

    for tick in axis.ticks() {
        let y = TOP + plot_h * (1.0 - axis.fraction(tick));
        let _ = writeln!(
            svg,
            r##"<line x1="{LEFT}" x2="{}" y1="{y:.1}" y2="{y:.1}" stroke="#dddddd"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
            WIDTH - RIGHT,
            LEFT - 6.0,
            y + 4.0,
            short(tick)
        );
    }
    let _ = writeln!(
        svg,
        r##"<text transform="translate(16 {:.1}) rotate(-90)" text-anchor="middle">{}</text>"##,
        TOP + plot_h / 2.0,
        escape(label)
    );
}

fn legend(svg: &mut String, names: &[&str], height: f64) {
    let mut x = LEFT;
    let y = height - 16.0;
    for (i, name) in names.iter().enumerate() {
        let _ = writeln!(
            svg,
            r##"<rect x="{x:.1}" y="{:.1}" width="12" height="12" fill="{}"/><text x="{:.1}" y="{y:.1}">{}</text>"##,
            y - 10.0,
            COLOURS[i % COLOURS.len()],
            x + 16.0,
            escape(name)
        );
        x += 28.0 + 7.0 * name.len() as f64;
    }
}

/// Series of values over the same groups, drawn as bars side by side.
#[derive(Debug, Clone)]
pub struct Bars<'a> {
    /// The chart's title.
    pub title: &'a str,
    /// The value axis's label.
    pub unit: &'a str,
    /// Group labels, along the bottom.
    pub groups: Vec<String>,
    /// (name, one value per group; `None` where nothing was measured).
    pub series: Vec<(&'a str, Vec<Option<f64>>)>,
    /// Logarithmic value axis.
    pub log: bool,
}

impl Bars<'_> {
    /// The chart as an SVG document.
    pub fn svg(&self) -> String {
        let axis = Axis::fit(
            self.series
                .iter()
                .flat_map(|(_, v)| v.iter().flatten().copied()),
            self.log,
        );
        let slanted = self.groups.len() > FLAT_GROUPS;
        let height = if slanted { HEIGHT + SLANT_ROOM } else { HEIGHT };
        let mut svg = String::new();
        open(&mut svg, self.title, height);
        value_axis(&mut svg, &axis, self.unit);
        let plot_w = WIDTH - LEFT - RIGHT;
        let plot_h = HEIGHT - TOP - BOTTOM;
        let group_w = plot_w / self.groups.len().max(1) as f64;
        let bar_w = (group_w * 0.8) / self.series.len().max(1) as f64;
        for (g, group) in self.groups.iter().enumerate() {
            let x0 = LEFT + group_w * g as f64 + group_w * 0.1;
            for (s, (_, values)) in self.series.iter().enumerate() {
                let x = x0 + bar_w * s as f64;
                match values.get(g).copied().flatten() {
                    Some(value) => {
                        let h = plot_h * axis.fraction(value);
                        let _ = writeln!(
                            svg,
                            r##"<rect x="{x:.1}" y="{:.1}" width="{:.1}" height="{h:.1}" fill="{}"><title>{}</title></rect><text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="10">{}</text>"##,
                            TOP + plot_h - h,
                            bar_w - 2.0,
                            COLOURS[s % COLOURS.len()],
                            short(value),
                            x + bar_w / 2.0 - 1.0,
                            TOP + plot_h - h - 3.0,
                            short(value)
                        );
                    }
                    None => {
                        let _ = writeln!(
                            svg,
                            r##"<text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="10" fill="#888888">n/a</text>"##,
                            x + bar_w / 2.0 - 1.0,
                            TOP + plot_h - 3.0
                        );
                    }
                }
            }
            let (x, y) = (x0 + group_w * 0.4, TOP + plot_h + 18.0);
            let _ = if slanted {
                writeln!(
                    svg,
                    r##"<text x="{x:.1}" y="{y:.1}" text-anchor="end" transform="rotate(-40 {x:.1} {y:.1})">{}</text>"##,
                    escape(group)
                )
            } else {
                writeln!(
                    svg,
                    r##"<text x="{x:.1}" y="{y:.1}" text-anchor="middle">{}</text>"##,
                    escape(group)
                )
            };
        }
        let names: Vec<&str> = self.series.iter().map(|(n, _)| *n).collect();
        legend(&mut svg, &names, height);
        svg.push_str("</svg>\n");
        svg
    }
}

/// Series of (x, y) points joined by lines, over a logarithmic x axis.
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
        let x_axis = Axis::fit(points().map(|p| p.0), true);
        let y_axis = Axis::fit(
            points().map(|p| p.1).chain(self.limit.map(|(y, _)| y)),
            true,
        );
        let mut svg = String::new();
        open(&mut svg, self.title, HEIGHT);
        value_axis(&mut svg, &y_axis, self.y_unit);
        let plot_w = WIDTH - LEFT - RIGHT;
        let plot_h = HEIGHT - TOP - BOTTOM;
        let at = |x: f64, y: f64| {
            (
                LEFT + plot_w * x_axis.fraction(x),
                TOP + plot_h * (1.0 - y_axis.fraction(y)),
            )
        };
        for tick in x_axis.ticks() {
            let (x, _) = at(tick, y_axis.low);
            let _ = writeln!(
                svg,
                r##"<line x1="{x:.1}" x2="{x:.1}" y1="{TOP}" y2="{:.1}" stroke="#eeeeee"/><text x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
                TOP + plot_h,
                TOP + plot_h + 16.0,
                short(tick)
            );
        }
        let _ = writeln!(
            svg,
            r##"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
            LEFT + plot_w / 2.0,
            TOP + plot_h + 34.0,
            escape(self.x_unit)
        );
        if let Some((y, label)) = self.limit {
            let (_, py) = at(x_axis.low, y);
            let _ = writeln!(
                svg,
                r##"<line x1="{LEFT}" x2="{:.1}" y1="{py:.1}" y2="{py:.1}" stroke="#cc0000" stroke-dasharray="6 4"/><text x="{:.1}" y="{:.1}" text-anchor="end" fill="#cc0000">{}</text>"##,
                WIDTH - RIGHT,
                WIDTH - RIGHT - 4.0,
                py - 5.0,
                escape(label)
            );
        }
        for (s, (_, points)) in self.series.iter().enumerate() {
            let colour = COLOURS[s % COLOURS.len()];
            let mut sorted = points.clone();
            sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
            let path: Vec<String> = sorted
                .iter()
                .map(|&(x, y)| {
                    let (px, py) = at(x, y);
                    format!("{px:.1},{py:.1}")
                })
                .collect();
            let _ = writeln!(
                svg,
                r##"<polyline points="{}" fill="none" stroke="{colour}" stroke-width="2"/>"##,
                path.join(" ")
            );
            for &(x, y) in &sorted {
                let (px, py) = at(x, y);
                let _ = writeln!(
                    svg,
                    r##"<circle cx="{px:.1}" cy="{py:.1}" r="3" fill="{colour}"><title>{} at {}</title></circle>"##,
                    short(y),
                    short(x)
                );
            }
        }
        let names: Vec<&str> = self.series.iter().map(|(n, _)| *n).collect();
        legend(&mut svg, &names, HEIGHT);
        svg.push_str("</svg>\n");
        svg
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axes_cover_their_values() {
        let log = Axis::fit([3.0, 4_500.0].into_iter(), true);
        assert_eq!((log.low, log.high), (1.0, 10_000.0));
        assert_eq!(log.ticks().len(), 5);
        let linear = Axis::fit([3.0, 4_500.0].into_iter(), false);
        assert_eq!((linear.low, linear.high), (0.0, 5_000.0));
        assert!((linear.fraction(2_500.0) - 0.5).abs() < 1e-9);
    }

    #[test]
    fn short_numbers() {
        assert_eq!(short(1_500_000.0), "1.5M");
        assert_eq!(short(0.5), "0.5");
        assert_eq!(short(2_000_000.0), "2M");
        assert_eq!(short(320_000.0), "320k");
        assert_eq!(short(4.56), "4.6");
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
        assert!(bars.starts_with("<svg") && bars.ends_with("</svg>\n"));
        assert!(bars.contains("a &lt;title&gt;") && bars.contains("n/a") && bars.contains("20k"));
        let lines = Lines {
            title: "p99",
            x_unit: "asked",
            y_unit: "ms",
            series: vec![("chorus", vec![(1e4, 1.0), (2e4, 3.0)])],
            limit: Some((50.0, "p99 limit")),
        }
        .svg();
        assert_eq!(lines.matches("<circle").count(), 2);
        assert!(lines.contains("p99 limit"));
    }
}

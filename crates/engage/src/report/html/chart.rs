//! The SVG charts of `report.html`: the top-N bars, and the line charts of a time series with their
//! axes, hourly and daily views, and the size-saving path encoding (see the design notes in
//! `html.rs`).

use std::fmt::Write as _;

use time::{Date, OffsetDateTime};

use super::super::summary::tweet_url;
use super::text::{day_label, escape, num, utc, w, F};

/// Lines with more points than this are reduced (per-bucket min and max) before drawing.
pub const MAX_POINTS: usize = 1000;

/// One UTC day of the series: hours `first..first + len`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Day {
    pub(super) date: Date,
    pub(super) first: usize,
    pub(super) len: usize,
}

pub(super) fn days_of(hours: &[OffsetDateTime]) -> Vec<Day> {
    let mut days: Vec<Day> = Vec::new();
    for (i, h) in hours.iter().enumerate() {
        let date = utc(*h).date();
        match days.last_mut() {
            Some(d) if d.date == date => d.len += 1,
            _ => days.push(Day {
                date,
                first: i,
                len: 1,
            }),
        }
    }
    days
}

/// Per-day sums; hours missing from a short vector count as zero.
pub(super) fn daily(values: &[u64], days: &[Day]) -> Vec<u64> {
    days.iter()
        .map(|d| {
            values
                .iter()
                .skip(d.first)
                .take(d.len)
                .fold(0u64, |a, v| a.saturating_add(*v))
        })
        .collect()
}

/// The points to draw: all of them, or for long lines each bucket's min and max in time order.
fn downsample(values: &[u64], max_points: usize) -> Vec<(usize, u64)> {
    if values.len() <= max_points {
        return values.iter().copied().enumerate().collect();
    }
    let buckets = (max_points / 2).max(1);
    let size = values.len().div_ceil(buckets);
    let mut out = Vec::with_capacity(buckets * 2);
    for (b, chunk) in values.chunks(size).enumerate() {
        let base = b * size;
        let (mut lo, mut hi) = (0, 0);
        for (j, v) in chunk.iter().enumerate() {
            if *v < chunk[lo] {
                lo = j;
            }
            if *v > chunk[hi] {
                hi = j;
            }
        }
        let (a, b) = (lo.min(hi), lo.max(hi));
        out.push((base + a, chunk[a]));
        if b != a {
            out.push((base + b, chunk[b]));
        }
    }
    out
}

/// A "nice" axis for values up to `max`: (axis maximum, tick values). At most four steps of 1, 2,
/// 2.5 or 5 × 10^k (2.5 only where it stays an integer), so tick labels are round numbers.
fn nice_axis(max: u64) -> (u64, Vec<u64>) {
    if max == 0 {
        return (1, vec![0]);
    }
    let raw = max.div_ceil(4);
    let mut mag = 1u64;
    while mag.saturating_mul(10) <= raw {
        mag *= 10;
    }
    let tenths: &[u64] = if mag >= 10 {
        &[10, 20, 25, 50, 100]
    } else {
        &[10, 20, 50, 100]
    };
    let step = tenths
        .iter()
        .map(|m| m.saturating_mul(mag) / 10)
        .find(|s| s.saturating_mul(4) >= max)
        .unwrap_or(mag.saturating_mul(10));
    let top = max.div_ceil(step).saturating_mul(step);
    let ticks = (0..=top / step).map(|k| k * step).collect();
    (top, ticks)
}

/// Where `v` sits on a 0..=1000 scale up from the baseline. Up, not down from the top, because
/// most points of a Tweet's curve are zero and `0` is the shortest coordinate.
fn per_mille(v: u64, axis_max: u64) -> u64 {
    let axis_max = axis_max.max(1) as u128;
    let v = (v as u128).min(axis_max);
    ((v * 1000 + axis_max / 2) / axis_max) as u64
}

/// Opens a chart's `<svg>` with its accessible title.
fn chart_open(out: &mut String, metric: &str, kind: &str, w: u32, h: u32, title: &str) {
    w!(
        out,
        "<svg class=\"chart\" data-metric=\"{}\" data-kind=\"{kind}\" role=\"img\" viewBox=\"0 0 {w} {h}\">\
         <title>{}</title>\n",
        escape(metric),
        escape(title)
    );
}

/// A chart with nothing to draw still gets its `<svg>`, so every metric has the same charts.
fn empty_chart(out: &mut String, metric: &str, kind: &str, w: u32) {
    let title = format!("{metric}: No Tweet has a non-zero value");
    chart_open(out, metric, kind, w, 56, &title);
    w!(
        out,
        "<rect x=\"0\" y=\"4\" width=\"{w}\" height=\"48\" rx=\"8\" class=\"track\"/>\
         <text class=\"empty\" x=\"{}\" y=\"33\" text-anchor=\"middle\">No Tweet has a non-zero value</text></svg>\n",
        w / 2
    );
}

/// The top-N as horizontal bars scaled to the first (largest) value, each ID linking to the Tweet.
pub(super) fn top_bars(out: &mut String, metric: &str, top: &[(u64, u64)]) {
    const W: u32 = 1000;
    const ROW: u32 = 26;
    const BAR_X: f64 = 200.0;
    const BAR_W: f64 = 680.0;
    if top.is_empty() {
        empty_chart(out, metric, "top", W);
        return;
    }
    let h = ROW * top.len() as u32 + 4;
    chart_open(
        out,
        metric,
        "top",
        W,
        h,
        &format!("{metric}: top {} Tweets", top.len()),
    );
    let max = top.iter().map(|(_, v)| *v).max().unwrap_or(0).max(1);
    for (rank, (id, v)) in top.iter().enumerate() {
        let y = 2 + ROW * rank as u32;
        let text_y = y + 17;
        let width = (*v as f64 * BAR_W / max as f64).max(2.0);
        w!(
            out,
            "<g class=\"row\"><rect class=\"track\" x=\"{BAR_X}\" y=\"{}\" width=\"{BAR_W}\" height=\"18\" rx=\"4\"/>\
             <rect class=\"bar\" x=\"{BAR_X}\" y=\"{}\" width=\"{}\" height=\"18\" rx=\"4\"><title>#{} · {id} · {}</title></rect>\
             <text x=\"30\" y=\"{text_y}\" text-anchor=\"end\">{}</text>\
             <a href=\"{}\" target=\"_blank\" rel=\"noopener\"><text class=\"id\" x=\"40\" y=\"{text_y}\">{id}</text></a>\
             <text class=\"val\" x=\"{W}\" y=\"{text_y}\" text-anchor=\"end\">{}</text></g>\n",
            y + 4,
            y + 4,
            F(width),
            rank + 1,
            num(*v),
            rank + 1,
            tweet_url(*id),
            num(*v)
        );
    }
    out.push_str("</svg>\n");
}

/// One group's row in a comparison chart: two bars, each with its value and label.
pub(super) struct GroupRow {
    /// The group's name.
    pub(super) name: String,
    /// The left bar's value and its label.
    pub(super) left: (f64, String),
    /// The right bar's value and its label.
    pub(super) right: (f64, String),
}

/// Groups side by side: one row per group (its colour `c0`…), a bar on the left and one on the
/// right, each scaled to its column's largest value, under the two columns' headings.
pub(super) fn group_bars(
    out: &mut String,
    metric: &str,
    kind: &str,
    headings: [&str; 2],
    rows: &[GroupRow],
) {
    const W: u32 = 1000;
    const ROW: u32 = 28;
    const HEAD: u32 = 22;
    const NAME_W: f64 = 170.0;
    const COL: [f64; 2] = [180.0, 640.0];
    const BAR_W: f64 = 280.0;
    let h = HEAD + ROW * rows.len() as u32 + 4;
    let title = format!(
        "{metric} by group: {}",
        rows.iter()
            .map(|r| format!("{} {} / {}", r.name, r.left.1, r.right.1))
            .collect::<Vec<_>>()
            .join("; ")
    );
    chart_open(out, metric, kind, W, h, &title);
    for (x, heading) in COL.iter().zip(headings) {
        w!(
            out,
            "<text class=\"head\" x=\"{x}\" y=\"14\">{}</text>",
            escape(heading)
        );
    }
    out.push('\n');
    let max = |f: fn(&GroupRow) -> f64| {
        rows.iter()
            .map(f)
            .fold(0.0, f64::max)
            .max(f64::MIN_POSITIVE)
    };
    let maxima = [max(|r| r.left.0), max(|r| r.right.0)];
    for (k, r) in rows.iter().enumerate() {
        let y = HEAD + ROW * k as u32;
        let text_y = y + 17;
        w!(
            out,
            "<g class=\"row c{}\"><text class=\"gname\" x=\"{NAME_W}\" y=\"{text_y}\" text-anchor=\"end\">{}</text>",
            k % 10,
            escape(&r.name)
        );
        for ((x, (v, label)), max) in COL.iter().zip([&r.left, &r.right]).zip(maxima) {
            let width = if *v > 0.0 {
                (v * BAR_W / max).max(2.0)
            } else {
                0.0
            };
            w!(
                out,
                "<rect class=\"track\" x=\"{x}\" y=\"{}\" width=\"{BAR_W}\" height=\"18\" rx=\"4\"/>\
                 <rect class=\"gbar\" x=\"{x}\" y=\"{}\" width=\"{}\" height=\"18\" rx=\"4\"><title>{} · {}</title></rect>\
                 <text class=\"val\" x=\"{}\" y=\"{text_y}\">{}</text>",
                y + 4,
                y + 4,
                F(width),
                escape(&r.name),
                escape(label),
                F(x + BAR_W + 8.0),
                escape(label)
            );
        }
        out.push_str("</g>\n");
    }
    out.push_str("</svg>\n");
}

/// One line of a line chart.
struct Line<'a> {
    /// Values per hour.
    hourly: &'a [u64],
    /// Values per day of the series.
    daily: Vec<u64>,
    /// CSS classes for the colour (`tot`, `c0`…).
    class: String,
    /// Hover text; empty for none.
    label: String,
}

/// The frame shared by the line charts: the plot area in viewBox units.
struct Frame {
    left: f64,
    top: f64,
    width: f64,
    height: f64,
    /// Hours on the x axis.
    n: usize,
}

const LINE_W: u32 = 520;
const LINE_H: u32 = 240;

impl Frame {
    fn new(n: usize, axes: [&[u64]; 2]) -> Frame {
        // Room for the widest tick label of either view, so switching views does not move the plot.
        let widest = axes
            .iter()
            .flat_map(|t| t.iter())
            .map(|t| num(*t).len())
            .max()
            .unwrap_or(1);
        let left = (widest as f64 * 6.8 + 12.0).max(34.0);
        Frame {
            left,
            top: 12.0,
            width: LINE_W as f64 - left - 18.0,
            height: LINE_H as f64 - 12.0 - 26.0,
            n,
        }
    }

    /// X of hour index `i` (fractional for day midpoints).
    fn x(&self, i: f64) -> f64 {
        if self.n > 1 {
            self.left + i * self.width / (self.n - 1) as f64
        } else {
            self.left + self.width / 2.0
        }
    }

    fn y(&self, v: u64, axis_max: u64) -> f64 {
        self.top + self.height * (1000 - per_mille(v, axis_max)) as f64 / 1000.0
    }

    /// The transform that maps (hour index, per-mille up from the baseline) onto the plot.
    fn data_transform(&self) -> String {
        let (x, sx) = if self.n > 1 {
            (self.left, self.width / (self.n - 1) as f64)
        } else {
            (self.left + self.width / 2.0, 1.0)
        };
        format!(
            "translate({} {}) scale({sx} {})",
            F(x),
            F(self.top + self.height),
            -self.height / 1000.0
        )
    }

    /// Vertical grid lines and time labels, shared by both views.
    fn x_axis(&self, out: &mut String, hours: &[OffsetDateTime]) {
        let max_ticks = ((self.width / 58.0) as usize).max(2);
        // Hours between ticks; from 24 on, ticks sit on UTC midnights.
        const STEPS: [i64; 12] = [1, 2, 3, 6, 12, 24, 48, 72, 96, 168, 336, 672];
        let hour_no = |t: &OffsetDateTime| utc(*t).unix_timestamp().div_euclid(3600);
        let count = |step: i64| hours.iter().filter(|t| hour_no(t) % step == 0).count();
        let step = STEPS
            .iter()
            .copied()
            .find(|s| count(*s) <= max_ticks)
            .unwrap_or(672);
        out.push_str("<g>");
        for (i, t) in hours.iter().enumerate() {
            if hour_no(t) % step != 0 {
                continue;
            }
            let x = self.x(i as f64);
            let t = utc(*t);
            let label = if t.hour() == 0 {
                day_label(t.date())
            } else {
                format!("{:02}:00", t.hour())
            };
            w!(
                out,
                "<line class=\"grid\" x1=\"{0}\" x2=\"{0}\" y1=\"{1}\" y2=\"{2}\"/>\
                 <text x=\"{0}\" y=\"{3}\" text-anchor=\"middle\">{4}</text>",
                F(x),
                F(self.top),
                F(self.top + self.height),
                F(self.top + self.height + 18.0),
                escape(&label)
            );
        }
        out.push_str("</g>\n");
    }

    /// Horizontal grid lines and value labels for one view.
    fn y_axis(&self, out: &mut String, axis_max: u64, ticks: &[u64]) {
        for t in ticks {
            let y = self.y(*t, axis_max);
            w!(
                out,
                "<line class=\"{class}\" x1=\"{x1}\" x2=\"{x2}\" y1=\"{y}\" y2=\"{y}\"/>\
                 <text x=\"{tx}\" y=\"{ty}\" text-anchor=\"end\">{label}</text>",
                class = if *t == 0 { "base" } else { "grid" },
                x1 = F(self.left),
                x2 = F(self.left + self.width),
                y = F(y),
                tx = F(self.left - 8.0),
                ty = F(y + 4.0),
                label = num(*t)
            );
        }
    }
}

/// An hourly line in data coordinates: hour index, per-mille up from the baseline. Inside a run of
/// equal heights only the run's ends are kept: the line is the same, and a Tweet's curve is mostly
/// a run of zeros before it was posted.
fn hourly_points(values: &[u64], axis_max: u64) -> Vec<(f64, i64)> {
    let points: Vec<(f64, i64)> = downsample(values, MAX_POINTS)
        .into_iter()
        .map(|(i, v)| (i as f64, per_mille(v, axis_max) as i64))
        .collect();
    (0..points.len())
        .filter(|&k| {
            let y = points[k].1;
            let inside_run =
                k > 0 && points[k - 1].1 == y && points.get(k + 1).is_some_and(|n| n.1 == y);
            !inside_run
        })
        .map(|k| points[k])
        .collect()
}

/// Day midpoints in the same data coordinates as the hours, so both views share the time axis.
fn day_x(d: &Day) -> f64 {
    d.first as f64 + (d.len - 1) as f64 / 2.0
}

fn daily_points(values: &[u64], days: &[Day], axis_max: u64) -> Vec<(f64, i64)> {
    days.iter()
        .zip(values)
        .map(|(d, v)| (day_x(d), per_mille(*v, axis_max) as i64))
        .collect()
}

/// SVG path data through `points`: one absolute move, then relative line-tos, which are a step of
/// one hour and a few per-mille, about half the bytes of absolute points. With `area` the path
/// starts and ends on the baseline, so it can be filled.
fn path_data(out: &mut String, points: &[(f64, i64)], area: bool) {
    let Some(&(x0, y0)) = points.first() else {
        return;
    };
    if area {
        w!(out, "M{} 0V{y0}", F(x0));
    } else {
        w!(out, "M{} {y0}", F(x0));
    }
    if points.len() > 1 {
        out.push('l');
    }
    for (k, pair) in points.windows(2).enumerate() {
        let (dx, dy) = (pair[1].0 - pair[0].0, pair[1].1 - pair[0].1);
        if k > 0 {
            out.push(' ');
        }
        // A minus sign separates numbers by itself.
        if dy < 0 {
            w!(out, "{}{dy}", F(dx));
        } else {
            w!(out, "{} {dy}", F(dx));
        }
    }
    if area {
        out.push_str("V0Z");
    }
}

/// Draws both views of a line chart; `annotate` adds the totals chart's area, peak and day points.
fn line_chart(
    out: &mut String,
    hours: &[OffsetDateTime],
    days: &[Day],
    lines: &[Line<'_>],
    annotate: bool,
    daily_only: bool,
) {
    let hmax = lines
        .iter()
        .flat_map(|l| l.hourly.iter().take(hours.len()))
        .copied()
        .max()
        .unwrap_or(0);
    let dmax = lines
        .iter()
        .flat_map(|l| l.daily.iter())
        .copied()
        .max()
        .unwrap_or(0);
    let (h_axis, h_ticks) = nice_axis(hmax);
    let (d_axis, d_ticks) = nice_axis(dmax);
    let f = Frame::new(hours.len(), [&h_ticks, &d_ticks]);
    f.x_axis(out, hours);
    let transform = f.data_transform();

    let views: &[bool] = if daily_only { &[true] } else { &[false, true] };
    for &daily_view in views {
        let (axis, ticks) = if daily_view {
            (d_axis, &d_ticks)
        } else {
            (h_axis, &h_ticks)
        };
        w!(
            out,
            "<g class=\"{}\">",
            match (daily_only, daily_view) {
                (true, _) => "both",
                (false, true) => "daily",
                (false, false) => "hourly",
            }
        );
        f.y_axis(out, axis, ticks);
        if ticks.len() < 2 {
            // A flat line on the baseline reads as "no data"; say that it is zeros.
            w!(
                out,
                "<text class=\"empty\" x=\"{}\" y=\"{}\" text-anchor=\"middle\">Zero {}</text>",
                F(f.left + f.width / 2.0),
                F(f.top + f.height / 2.0),
                if daily_view {
                    "on every day"
                } else {
                    "in every hour"
                }
            );
        }
        w!(out, "\n<g transform=\"{transform}\">");
        for line in lines {
            let hourly = &line.hourly[..line.hourly.len().min(hours.len())];
            let points = if daily_view {
                daily_points(&line.daily, days, axis)
            } else {
                hourly_points(hourly, axis)
            };
            if annotate {
                w!(out, "<path class=\"area {}\" d=\"", line.class);
                path_data(out, &points, true);
                out.push_str("\"/>");
            }
            w!(out, "<path class=\"ln {}\" d=\"", line.class);
            path_data(out, &points, false);
            if line.label.is_empty() {
                out.push_str("\"/>");
            } else {
                w!(out, "\"><title>{}</title></path>", escape(&line.label));
            }
        }
        out.push_str("</g>\n");
        if annotate {
            if let Some(line) = lines.first() {
                if daily_view {
                    day_points(out, &f, days, &line.daily, axis);
                } else {
                    peak(out, &f, hours, line.hourly, axis);
                }
            }
        }
        out.push_str("</g>\n");
    }
}

/// A dot and a label at the busiest hour.
fn peak(out: &mut String, f: &Frame, hours: &[OffsetDateTime], values: &[u64], axis_max: u64) {
    let Some((i, v)) = values
        .iter()
        .take(hours.len())
        .enumerate()
        .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(&a.0)))
    else {
        return;
    };
    if *v == 0 {
        return;
    }
    let (x, y) = (f.x(i as f64), f.y(*v, axis_max));
    let t = utc(hours[i]);
    let label = format!(
        "peak {} · {} {:02}:00",
        num(*v),
        day_label(t.date()),
        t.hour()
    );
    // Keep the label inside the plot: right of the dot on the left half, left of it otherwise.
    let (tx, anchor) = if x < f.left + f.width / 2.0 {
        (x + 8.0, "start")
    } else {
        (x - 8.0, "end")
    };
    w!(
        out,
        "<circle class=\"pt\" cx=\"{}\" cy=\"{}\" r=\"4\"/>\
         <text class=\"peak\" x=\"{}\" y=\"{}\" text-anchor=\"{anchor}\">{}</text>",
        F(x),
        F(y),
        F(tx),
        F(y + 12.0),
        escape(&label)
    );
}

/// One marker per day with its value on hover; partial days are hollow.
fn day_points(out: &mut String, f: &Frame, days: &[Day], values: &[u64], axis_max: u64) {
    // Markers would hide the line when there are many days.
    let r = if days.len() > 40 { 2.5 } else { 3.5 };
    for (d, v) in days.iter().zip(values) {
        let partial = d.len < 24;
        w!(
            out,
            "<circle class=\"pt{}\" cx=\"{}\" cy=\"{}\" r=\"{r}\"><title>{}: {}{}</title></circle>",
            if partial { " partial" } else { "" },
            F(f.x(day_x(d))),
            F(f.y(*v, axis_max)),
            escape(&day_label(d.date)),
            num(*v),
            if partial {
                format!(" (partial day: {} of 24 hours)", d.len)
            } else {
                String::new()
            }
        );
    }
}

pub(super) fn totals_chart(
    out: &mut String,
    metric: &str,
    hours: &[OffsetDateTime],
    days: &[Day],
    totals: &[u64],
) {
    chart_open(
        out,
        metric,
        "totals",
        LINE_W,
        LINE_H,
        &format!("{metric}: total over all fetched Tweets per hour and per day"),
    );
    let line = Line {
        hourly: totals,
        daily: daily(totals, days),
        class: "tot".into(),
        label: String::new(),
    };
    line_chart(out, hours, days, &[line], true, false);
    out.push_str("</svg>\n");
}

pub(super) fn curves_chart(
    out: &mut String,
    metric: &str,
    hours: &[OffsetDateTime],
    days: &[Day],
    curves: &[(u64, Vec<u64>)],
    by_day: bool,
) {
    if curves.is_empty() {
        empty_chart(out, metric, "curves", LINE_W);
        return;
    }
    let title = format!(
        "{metric}: the top {} Tweets {}",
        curves.len(),
        if by_day {
            "per day"
        } else {
            "per hour and per day"
        }
    );
    chart_open(out, metric, "curves", LINE_W, LINE_H, &title);
    // Drawn lowest rank first so the top Tweet's line ends up on top.
    let lines: Vec<Line<'_>> = curves
        .iter()
        .enumerate()
        .rev()
        .map(|(rank, (id, values))| Line {
            hourly: values,
            daily: daily(values, days),
            class: format!("c{}", rank % 10),
            label: format!(
                "#{} · {id} · {}",
                rank + 1,
                num(values.iter().fold(0u64, |a, v| a.saturating_add(*v)))
            ),
        })
        .collect();
    out.push_str("<g class=\"curves\">");
    line_chart(out, hours, days, &lines, false, by_day);
    out.push_str("</g></svg>\n");
}

/// One line per group: each group's sum over its Tweets (colour `c0`… in the groups' order).
pub(super) fn group_curves_chart(
    out: &mut String,
    metric: &str,
    hours: &[OffsetDateTime],
    days: &[Day],
    groups: &[(&str, &[u64])],
    by_day: bool,
) {
    if groups.iter().all(|(_, v)| v.iter().all(|x| *x == 0)) {
        empty_chart(out, metric, "group-curves", LINE_W);
        return;
    }
    let title = format!(
        "{metric}: {} groups {}",
        groups.len(),
        if by_day {
            "per day"
        } else {
            "per hour and per day"
        }
    );
    chart_open(out, metric, "group-curves", LINE_W, LINE_H, &title);
    let lines: Vec<Line<'_>> = groups
        .iter()
        .enumerate()
        .rev()
        .map(|(k, (name, values))| Line {
            hourly: values,
            daily: daily(values, days),
            class: format!("c{}", k % 10),
            label: format!(
                "{name} · {}",
                num(values.iter().fold(0u64, |a, v| a.saturating_add(*v)))
            ),
        })
        .collect();
    out.push_str("<g class=\"curves\">");
    line_chart(out, hours, days, &lines, false, by_day);
    out.push_str("</g></svg>\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn axes_are_round() {
        assert_eq!(nice_axis(0), (1, vec![0]));
        assert_eq!(nice_axis(7), (8, vec![0, 2, 4, 6, 8]));
        assert_eq!(nice_axis(1), (1, vec![0, 1]));
        assert_eq!(
            nice_axis(97_000),
            (100_000, vec![0, 25_000, 50_000, 75_000, 100_000])
        );
        assert_eq!(nice_axis(1_100), (1_500, vec![0, 500, 1_000, 1_500]));
        let (top, ticks) = nice_axis(u64::MAX / 3);
        assert!(top >= u64::MAX / 3 && ticks.len() >= 2);
    }

    #[test]
    fn downsampling_keeps_extremes_in_order() {
        let values: Vec<u64> = (0..5000u64).map(|i| (i * 37) % 101).collect();
        let pts = downsample(&values, MAX_POINTS);
        assert!(pts.len() <= MAX_POINTS);
        assert!(pts.windows(2).all(|w| w[0].0 < w[1].0));
        let max = *values.iter().max().unwrap();
        assert!(pts.iter().any(|(_, v)| *v == max));
        assert!(pts.iter().all(|(i, v)| values[*i] == *v));
        assert_eq!(downsample(&[3, 1], MAX_POINTS), vec![(0, 3), (1, 1)]);
    }

    #[test]
    fn paths_use_relative_steps_and_skip_flat_runs() {
        let mut d = String::new();
        path_data(&mut d, &[(0.0, 0), (1.0, 5), (2.0, 3), (4.0, 3)], false);
        assert_eq!(d, "M0 0l1 5 1-2 2 0");
        d.clear();
        path_data(&mut d, &[(11.5, 7), (35.5, 2)], true);
        assert_eq!(d, "M11.5 0V7l24-5V0Z");
        d.clear();
        path_data(&mut d, &[], false);
        assert_eq!(d, "");
        let kept: Vec<f64> = hourly_points(&[0, 0, 0, 0, 5, 5, 5, 1], 10)
            .iter()
            .map(|p| p.0)
            .collect();
        assert_eq!(kept, vec![0.0, 3.0, 4.0, 6.0, 7.0]);
    }

    #[test]
    fn days_split_on_utc_midnight() {
        let start = datetime!(2026-11-19 20:00 UTC);
        let hours: Vec<_> = (0..28).map(|h| start + time::Duration::hours(h)).collect();
        let d = days_of(&hours);
        assert_eq!(
            d.iter().map(|d| (d.first, d.len)).collect::<Vec<_>>(),
            vec![(0, 4), (4, 24)]
        );
        assert_eq!(daily(&[1; 28], &d), vec![4, 24]);
        assert_eq!(
            daily(&[1; 5], &d),
            vec![4, 1],
            "short vectors count as zeros"
        );
    }

    #[test]
    fn markup_in_names_is_escaped() {
        // Metric names are fixed, but the renderer must not trust that.
        let mut out = String::new();
        chart_open(&mut out, "a\"<b>", "top", 10, 10, "x & y");
        assert!(out.contains("data-metric=\"a&quot;&lt;b&gt;\""));
        assert!(out.contains("<title>x &amp; y</title>"));
    }
}

//! `history.html`: the history's report as one self-contained page, like `report.html`: the run
//! report's style sheet and its two scripts inline (the first records script errors into
//! `data-errors`, the last sets `data-ready="1"`), every chart SVG drawn here, and a
//! Content-Security-Policy that forbids every fetch.
//!
//! Charts, each `<svg class="chart" data-metric="<metric>" data-kind="…">`, per metric the history
//! holds: `nights` (the grand total per run), `movers` (base and gain of the top movers),
//! `trajectories` (the top movers' values across the snapshots) and, when the history holds time
//! series, `hourly` (the whole history's curve). Empty data still draws its chart with a message, so
//! the count depends only on the metrics and whether there are time series.

use std::fmt::Write as _;

use time::OffsetDateTime;

use super::Movers;
use crate::report::tweet_url;

const CSS: &str = include_str!("../report/report.css");
const ERRORS_JS: &str = include_str!("../report/errors.js").trim_ascii_end();
const READY_JS: &str = include_str!("../report/ready.js").trim_ascii_end();

/// What this page adds to the run report's style sheet.
const EXTRA_CSS: &str = ".chart .gain{fill:#2563eb}.chart .loss{fill:#dc2626}.chart .basebar{fill:#cbd5e1}\
.chart polyline{fill:none;stroke-width:2;vector-effect:non-scaling-stroke}\
.chart .l0{stroke:#2563eb}.chart .l1{stroke:#16a34a}.chart .l2{stroke:#ea580c}.chart .l3{stroke:#9333ea}.chart .l4{stroke:#0891b2}\
.chart .axis{stroke:#94a3b8;stroke-width:1}\
.chart .d0{fill:#2563eb}.chart .d1{fill:#16a34a}.chart .d2{fill:#ea580c}.chart .d3{fill:#9333ea}.chart .d4{fill:#0891b2}";

const W: f64 = 1000.0;
/// The most points of the hourly curve.
const MAX_POINTS: usize = 1000;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn stamp(t: OffsetDateTime) -> String {
    engagement_api::timefmt::date_hhmm_utc(t)
}

fn open(out: &mut String, metric: &str, kind: &str, h: f64, title: &str) {
    let _ = writeln!(
        out,
        "<svg class=\"chart\" data-metric=\"{metric}\" data-kind=\"{kind}\" role=\"img\" viewBox=\"0 0 {W} {h}\" \
         preserveAspectRatio=\"xMidYMid meet\"><title>{}</title>",
        esc(title)
    );
}

fn empty(out: &mut String, metric: &str, kind: &str, what: &str) {
    open(out, metric, kind, 60.0, what);
    let _ = writeln!(
        out,
        "<text class=\"empty\" x=\"{}\" y=\"34\" text-anchor=\"middle\">{}</text></svg>",
        W / 2.0,
        esc(what)
    );
}

/// A line chart of `lines` (label, values; `None` leaves a gap) over `labels` on the x axis.
fn lines_chart(
    out: &mut String,
    metric: &str,
    kind: &str,
    title: &str,
    labels: &[String],
    lines: &[(String, Vec<Option<u64>>)],
) {
    let max = lines
        .iter()
        .flat_map(|(_, v)| v.iter().flatten())
        .copied()
        .max();
    let Some(max) = max.filter(|_| !labels.is_empty()) else {
        empty(out, metric, kind, &format!("{title}: nothing to draw yet"));
        return;
    };
    let (left, top, width, height) = (90.0, 12.0, W - 110.0, 200.0);
    open(out, metric, kind, height + 50.0, title);
    let max = max.max(1) as f64;
    let n = labels.len();
    let x = |i: usize| {
        if n <= 1 {
            left + width / 2.0
        } else {
            left + width * i as f64 / (n - 1) as f64
        }
    };
    let y = |v: u64| top + height - height * v as f64 / max;
    let _ = writeln!(
        out,
        "<line class=\"axis\" x1=\"{left}\" y1=\"{b}\" x2=\"{r}\" y2=\"{b}\"/>\
         <text x=\"{l2}\" y=\"{t2}\" text-anchor=\"end\">{max}</text><text x=\"{l2}\" y=\"{b}\" text-anchor=\"end\">0</text>\
         <text x=\"{left}\" y=\"{lb}\">{first}</text><text x=\"{r}\" y=\"{lb}\" text-anchor=\"end\">{last}</text>",
        b = top + height,
        r = left + width,
        l2 = left - 8.0,
        t2 = top + 10.0,
        max = max as u64,
        lb = top + height + 30.0,
        first = esc(&labels[0]),
        last = esc(&labels[n - 1]),
    );
    for (k, (label, values)) in lines.iter().enumerate() {
        // A gap (no value) starts a new polyline.
        let mut seg: Vec<String> = Vec::new();
        let flush = |seg: &mut Vec<String>, out: &mut String| {
            if let [point] = seg.as_slice() {
                // A single point (a Tweet seen on one night only) shows as a dot.
                let (cx, cy) = point.split_once(',').unwrap_or(("0", "0"));
                let _ = writeln!(
                    out,
                    "<circle class=\"d{}\" cx=\"{cx}\" cy=\"{cy}\" r=\"4\"><title>{}</title></circle>",
                    k % 5,
                    esc(label)
                );
                seg.clear();
            } else if !seg.is_empty() {
                let _ = writeln!(
                    out,
                    "<polyline class=\"l{}\" points=\"{}\"><title>{}</title></polyline>",
                    k % 5,
                    seg.join(" "),
                    esc(label)
                );
                seg.clear();
            }
        };
        for (i, v) in values.iter().enumerate() {
            match v {
                Some(v) => seg.push(format!("{:.1},{:.1}", x(i), y(*v))),
                None => flush(&mut seg, out),
            }
        }
        flush(&mut seg, out);
    }
    out.push_str("</svg>\n");
}

/// Bars of the movers: the base in grey, the gain in blue (a loss in red) beside it.
fn movers_chart(out: &mut String, metric: &str, m: &Movers, i: usize) {
    let gains = &m.gains[i];
    if gains.is_empty() {
        empty(out, metric, "movers", &format!("{metric}: no Tweet moved"));
        return;
    }
    const ROW: f64 = 26.0;
    let (bar_x, bar_w) = (200.0, 640.0);
    open(
        out,
        metric,
        "movers",
        ROW * gains.len() as f64 + 4.0,
        &format!("{metric}: top {} movers", gains.len()),
    );
    let max = gains
        .iter()
        .map(|g| g.latest.max(g.base.unwrap_or(0)))
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let scale = |v: u64| v as f64 * bar_w / max;
    for (r, g) in gains.iter().enumerate() {
        let y = 2.0 + ROW * r as f64;
        let base = g.base.unwrap_or(0);
        let (lo, hi, class) = if g.gain >= 0 {
            (base, g.latest, "gain")
        } else {
            (g.latest, base, "loss")
        };
        let _ = writeln!(
            out,
            "<g class=\"row\"><rect class=\"basebar\" x=\"{bar_x}\" y=\"{y1}\" width=\"{bw:.1}\" height=\"18\"/>\
             <rect class=\"{class}\" x=\"{gx:.1}\" y=\"{y1}\" width=\"{gw:.1}\" height=\"18\"><title>{id}: {b} → {l} ({gain:+})</title></rect>\
             <text x=\"30\" y=\"{ty}\" text-anchor=\"end\">{rank}</text>\
             <a href=\"{url}\" target=\"_blank\" rel=\"noopener\"><text class=\"id\" x=\"40\" y=\"{ty}\">{id}</text></a>\
             <text class=\"val\" x=\"{W}\" y=\"{ty}\" text-anchor=\"end\">{gain:+}{new}</text></g>",
            y1 = y + 4.0,
            bw = scale(lo),
            gx = bar_x + scale(lo),
            gw = (scale(hi) - scale(lo)).max(2.0),
            id = g.id,
            b = g.base.map_or("new".into(), |b| b.to_string()),
            l = g.latest,
            gain = g.gain,
            ty = y + 17.0,
            rank = r + 1,
            url = tweet_url(g.id),
            new = if g.new { " new" } else { "" },
        );
    }
    out.push_str("</svg>\n");
}

/// Renders `history.html` from what [`Movers::compute`] found.
pub fn render(m: &Movers, generated: OffsetDateTime) -> String {
    let mut out = String::with_capacity(64 * 1024);
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; \
         script-src 'unsafe-inline'; base-uri 'none'; form-action 'none'\">\n\
         <title>Movers and nights — engage history</title>\n<script>{ERRORS_JS}</script>\n\
         <style>\n{CSS}{EXTRA_CSS}</style>\n</head>\n<body>\n"
    );
    let _ = writeln!(
        out,
        "<header class=\"wrap page\"><div class=\"eyebrow\">engage history</div><h1>What moved</h1>\
         <p class=\"meta\">Latest snapshot <b>{}</b>, base <b>{}</b>, {} runs held; top {} per metric. Generated {}.</p></header>",
        m.latest.map_or("none".into(), stamp),
        m.base.map_or("none (every Tweet counts from 0)".into(), stamp),
        {
            let mut runs: Vec<_> = m.nights.iter().map(|n| (n.as_of, n.endpoint.clone())).collect();
            runs.dedup();
            runs.len()
        },
        m.top,
        stamp(generated)
    );
    out.push_str("<main class=\"wrap\">\n");
    if !m.gone.is_empty() {
        let _ = writeln!(
            out,
            "<section class=\"card\"><h2>Gone</h2><p>{} Tweets were ok at base and are unavailable at latest (listed in movers.json).</p></section>",
            m.gone.len()
        );
    }
    let series = m.hourly.iter().any(|h| !h.is_empty());
    for (i, metric) in m.metrics.iter().enumerate() {
        let name = metric.as_str();
        let _ = writeln!(
            out,
            "<section class=\"card\" id=\"m-{name}\"><div class=\"card-head\"><h2>{name}</h2></div>"
        );
        // Grand totals per run, oldest first.
        let nights: Vec<_> = m.nights.iter().filter(|n| n.metric == *metric).collect();
        out.push_str("<figure><figcaption>Grand total per night</figcaption>\n");
        lines_chart(
            &mut out,
            name,
            "nights",
            &format!("{name}: grand total per night"),
            &nights.iter().map(|n| stamp(n.as_of)).collect::<Vec<_>>(),
            &[(
                "grand total".to_string(),
                nights.iter().map(|n| Some(n.total)).collect(),
            )],
        );
        out.push_str(
            "</figure>\n<figure><figcaption>Top movers: base (grey) and gain since base (a loss in red)</figcaption>\n",
        );
        movers_chart(&mut out, name, m, i);
        out.push_str(
            "</figure>\n<figure><figcaption>The top movers across the snapshots (hover a line for its Tweet)</figcaption>\n",
        );
        lines_chart(
            &mut out,
            name,
            "trajectories",
            &format!("{name}: the top movers across the snapshots"),
            &m.snapshots.iter().map(|t| stamp(*t)).collect::<Vec<_>>(),
            &m.trajectories[i]
                .iter()
                .map(|(id, v)| (id.to_string(), v.clone()))
                .collect::<Vec<_>>(),
        );
        out.push_str("</figure>\n");
        if series {
            let unit = if m.by_day { "day" } else { "hour" };
            // At most MAX_POINTS points: a year of hours is summed into groups of consecutive buckets.
            let h = &m.hourly[i];
            let group = h.len().div_ceil(MAX_POINTS).max(1);
            let points: Vec<(i64, u64)> = h
                .chunks(group)
                .map(|c| (c[0].0, c.iter().map(|(_, v)| v).sum()))
                .collect();
            let _ = writeln!(
                out,
                "<figure><figcaption>The whole history per {unit}{}</figcaption>",
                if group > 1 {
                    format!(" (each point the sum of {group} {unit}s)")
                } else {
                    String::new()
                }
            );
            lines_chart(
                &mut out,
                name,
                "hourly",
                &format!("{name}: the whole history per {unit}"),
                &points
                    .iter()
                    .map(|(b, _)| {
                        stamp(
                            OffsetDateTime::from_unix_timestamp(*b)
                                .unwrap_or(OffsetDateTime::UNIX_EPOCH),
                        )
                    })
                    .collect::<Vec<_>>(),
                &[(
                    "total".to_string(),
                    points.iter().map(|(_, v)| Some(*v)).collect(),
                )],
            );
            out.push_str("</figure>\n");
        }
        out.push_str("</section>\n");
    }
    out.push_str(
        "</main>\n<footer class=\"wrap\">Generated by engage from the history store. This page is self-contained: \
         it loads nothing from the network; Tweet IDs link to x.com.</footer>\n",
    );
    let _ = write!(out, "<script>{READY_JS}</script>\n</body>\n</html>\n");
    out
}

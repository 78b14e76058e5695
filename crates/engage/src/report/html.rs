//! `report.html`: the run's report as one self-contained page.
//!
//! Design notes:
//! - Self-contained by construction: the CSS and the two scripts are written inline and every chart
//!   is SVG drawn here, so nothing needs a script, a font or an image from elsewhere. A
//!   Content-Security-Policy `<meta>` forbids every fetch, so a stray external reference fails in
//!   the browser instead of leaking a request. The only URLs in the page are the
//!   `https://x.com/i/web/status/<id>` links.
//! - The style sheet is `report.css` and the scripts `errors.js` and `ready.js`, next to this file
//!   and compiled in with `include_str!`: they are edited as CSS and JavaScript, not as Rust
//!   string literals, and the page still holds them inline.
//! - The first script records errors into `data-errors` on `<html>`, the last sets
//!   `data-ready="1"` at the end of the page; that is what the headless-browser test reads. The
//!   hourly/daily switch is CSS-only (two radio inputs ahead of `<main>`), so it works with scripts
//!   off.
//! - Size: an hourly line is a path in data coordinates (hour index, per-mille of the plot height)
//!   under one scale transform, with strokes that do not scale, and relative steps: about 6 bytes a
//!   point, so 18 metrics × 12 lines (area, total, 10 Tweets) × 672 hours stay under 1.3 MB. Lines
//!   longer than [`MAX_POINTS`] keep each bucket's minimum and maximum, so spikes survive the
//!   reduction. At most [`MAX_CURVES`] Tweets are drawn per curve chart: more lines are unreadable
//!   and would blow the size budget.
//! - Every per-metric chart is `<svg class="chart" data-metric="<metric>" data-kind="…" role="img">`
//!   with a `<title>`: one `top` bar chart per metric and, for a time series with at least one
//!   hour, a `totals` and a `curves` line chart per metric. Empty data still draws its chart (with
//!   a message), so the count of charts depends only on the metrics and the kind of job.
//!
//! This file lays out the page and its sections; `chart` draws the SVG charts and `text` formats
//! numbers, times and escapes. The page depends on the [`Summary`] only, never on the store.

use std::fmt::Write as _;

use time::OffsetDateTime;

use super::summary::Summary;
use crate::store::StatusCounts;

mod chart;
mod text;

use super::markdown::{percent, share};
use super::summary::tweet_url;
pub use chart::MAX_POINTS;
use chart::{
    curves_chart, daily, days_of, group_bars, group_curves_chart, top_bars, totals_chart, Day,
    GroupRow,
};
use text::{day_label, escape, hour_label, machine_time, num, pct, stamp, utc, w, F};

/// The most Tweets drawn in one curve chart (the highest of the top N).
pub const MAX_CURVES: usize = 10;

/// The page's style sheet, written inline into its `<style>`.
const CSS: &str = include_str!("report.css");

// Each script file is one line; its final newline is not part of the page.
/// Records script errors into `data-errors` on `<html>`.
const ERRORS_JS: &str = include_str!("errors.js").trim_ascii_end();
/// Sets `data-ready="1"` on `<html>`.
const READY_JS: &str = include_str!("ready.js").trim_ascii_end();

/// Hourly series for time-series jobs (`/28hr`, `/historical`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeSeries {
    /// Start of each hourly bucket (UTC), ascending, contiguous.
    pub hours: Vec<OffsetDateTime>,
    /// Per metric (run order, same length as Summary.metrics): the sum over all ok Tweets per hour.
    pub totals: Vec<Vec<u64>>,
    /// Per metric: the top Tweets' own hourly curves, (tweet_id, values per hour), at most top_n.
    pub top: Vec<Vec<(u64, Vec<u64>)>>,
    /// The per-Tweet series were kept by day (each day's value sits at its first hour in `top`): the
    /// top Tweets' curves are then drawn per day only.
    pub top_by_day: bool,
    /// Per group (the summary's order): its name and, per metric, the sum of its Tweets' series,
    /// kept like `top` (by day when `top_by_day`). Empty for a run without groups.
    pub groups: Vec<(String, Vec<Vec<u64>>)>,
}

/// Renders `report.html`. A series with no hours draws no line charts; missing per-metric entries
/// (shorter vectors than `summary.metrics`) draw as empty rather than panic, because a report
/// should still come out of a partial run.
pub fn render(
    summary: &Summary,
    series: Option<&TimeSeries>,
    generated_at: OffsetDateTime,
) -> String {
    let series = series.filter(|s| !s.hours.is_empty());
    let days = series.map(|s| days_of(&s.hours)).unwrap_or_default();
    let mut out = String::with_capacity(256 * 1024);

    head(&mut out, summary);
    page_header(&mut out, summary, series, generated_at);
    if series.is_some() {
        // Ahead of <main> and its siblings, so `:checked ~ main` can switch the views.
        out.push_str(
            "<input type=\"radio\" name=\"view\" id=\"v-hourly\" class=\"vis-hidden\" checked>\
             <input type=\"radio\" name=\"view\" id=\"v-daily\" class=\"vis-hidden\">\n",
        );
    }
    out.push_str("<main class=\"wrap\">\n");
    if series.is_some() {
        out.push_str(
            "<div class=\"toolbar\"><span class=\"muted\">Time series by</span>\
             <span class=\"seg\"><label for=\"v-hourly\">Hour</label><label for=\"v-daily\">Day (UTC)</label></span>\
             <a class=\"muted\" href=\"#totals\">Totals</a></div>\n",
        );
    }
    outcomes(&mut out, summary);
    totals_table(&mut out, summary, series);
    rate_section(&mut out, summary);
    groups_section(&mut out, summary);
    messages(&mut out, summary);
    apps(&mut out, summary);
    for (i, metric) in summary.metrics.iter().enumerate() {
        metric_section(&mut out, summary, i, metric.as_str(), series, &days);
    }
    out.push_str("</main>\n");
    out.push_str(
        "<footer class=\"wrap\">Generated by engage from the run's checkpoint store. \
         This page is self-contained: it loads nothing from the network; Tweet IDs link to x.com.</footer>\n",
    );
    // Last in the page, so "ready" means everything above was parsed without a script error.
    w!(out, "<script>{READY_JS}</script>\n</body>\n</html>\n");
    out
}

fn head(out: &mut String, s: &Summary) {
    w!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; \
         script-src 'unsafe-inline'; base-uri 'none'; form-action 'none'\">\n\
         <meta name=\"color-scheme\" content=\"light\">\n\
         <title>{}Top {} per metric — /{} — engage report</title>\n",
        if s.complete() { "" } else { "Partial: " },
        s.top_n,
        escape(s.endpoint.as_str())
    );
    // First script in the page, so it sees errors from everything after it.
    w!(out, "<script>{ERRORS_JS}</script>\n");
    w!(out, "<style>\n{CSS}</style>\n</head>\n<body>\n");
}

fn page_header(
    out: &mut String,
    s: &Summary,
    series: Option<&TimeSeries>,
    generated_at: OffsetDateTime,
) {
    w!(
        out,
        "<header class=\"page\"><div class=\"wrap\">\
         <p class=\"eyebrow\">engage · X Enterprise Engagement API</p>\
         <h1>Top {} per metric<span class=\"badge mono\">/{}</span>{}</h1>\
         <p class=\"meta\"><span>Generated <time datetime=\"{}\"><b>{}</b></time></span>\
         <span><b>{}</b> unique Tweet IDs</span><span><b>{}</b> metric{}</span>",
        s.top_n,
        escape(s.endpoint.as_str()),
        if s.complete() {
            ""
        } else {
            "<span class=\"badge partial\">partial</span>"
        },
        machine_time(generated_at),
        stamp(generated_at),
        num(s.status.unique()),
        s.metrics.len(),
        if s.metrics.len() == 1 { "" } else { "s" },
    );
    if let (Some(first), Some(last)) = (
        series.and_then(|t| t.hours.first()),
        series.and_then(|t| t.hours.last()),
    ) {
        let n = series.map_or(0, |t| t.hours.len());
        w!(
            out,
            "<span>Window <b>{}</b> → <b>{}</b> UTC ({} hour{})</span>",
            escape(&hour_label(*first)),
            escape(&hour_label(*last + time::Duration::HOUR)),
            num(n as u64),
            if n == 1 { "" } else { "s" }
        );
    }
    out.push_str("</p></div></header>\n");
}

/// Outcome kinds in display order: (name, count, what it means).
fn outcome_kinds(c: &StatusCounts) -> [(&'static str, u64, &'static str); 5] {
    [
        ("ok", c.ok, "fetched"),
        (
            "unavailable",
            c.unavailable,
            "deleted, not public or protected",
        ),
        (
            "forbidden",
            c.forbidden,
            "not readable with these credentials",
        ),
        ("failed", c.failed, "retries exhausted"),
        ("pending", c.pending, "not fetched yet"),
    ]
}

fn outcomes(out: &mut String, s: &Summary) {
    let c = &s.status;
    let unique = c.unique();
    if let Some(what) = s.unfinished() {
        w!(
            out,
            "<p class=\"warn\"><b>Partial report:</b> the run is not finished: {}; \
             the numbers below cover the Tweets fetched so far.</p>\n",
            escape(&what)
        );
    }
    for d in &s.damaged_inputs {
        w!(
            out,
            "<p class=\"warn\"><b>Input not read to its end:</b> {}: {}; the IDs after that were \
             not read, so the numbers below leave them out.</p>\n",
            escape(&d.source),
            escape(&d.reason)
        );
    }
    w!(
        out,
        "<section class=\"card\" id=\"outcomes\"><div class=\"card-head\"><h2>Outcomes</h2>\
         <span class=\"aside\"><b>{}</b> of {} IDs fetched</span></div>\n<div class=\"tiles\">",
        pct(c.ok, unique),
        num(unique)
    );
    for (k, v) in [
        ("Unique Tweet IDs", unique),
        ("Input lines", s.ingest.input_lines),
        ("Rejected lines", s.ingest.rejected_lines),
        ("Duplicate IDs", s.ingest.duplicate_ids),
    ] {
        w!(
            out,
            "<div class=\"tile\"><span class=\"k\">{k}</span><span class=\"v\">{}</span></div>",
            num(v)
        );
    }
    out.push_str("</div>\n");

    let kinds = outcome_kinds(c);
    let summary_text = kinds
        .iter()
        .map(|(k, v, _)| format!("{} {k}", num(*v)))
        .collect::<Vec<_>>()
        .join(", ");
    w!(
        out,
        "<svg class=\"outcomes\" viewBox=\"0 0 1000 22\" preserveAspectRatio=\"none\" role=\"img\">\
         <title>Outcomes of {} unique IDs: {}</title>",
        num(unique),
        escape(&summary_text)
    );
    if unique > 0 {
        let mut x = 0.0;
        for (k, v, _) in kinds.iter().filter(|(_, v, _)| *v > 0) {
            // A sliver stays visible: one failed ID out of a million still deserves a mark.
            let width = (*v as f64 * 1000.0 / unique as f64).max(2.0);
            w!(
                out,
                "<rect class=\"o-{k}\" x=\"{}\" y=\"0\" width=\"{}\" height=\"22\"><title>{k}: {} ({})</title></rect>",
                F(x),
                F(width),
                num(*v),
                pct(*v, unique)
            );
            x += width;
        }
    }
    out.push_str("</svg>\n<ul class=\"olegend\">");
    for (k, v, what) in kinds {
        w!(
            out,
            "<li><span class=\"sw o-{k}\"></span><b>{k}</b> <span class=\"num\">{}</span>\
             <small>{} · {what}</small></li>",
            num(v),
            pct(v, unique)
        );
    }
    out.push_str("</ul></section>\n");
}

fn totals_table(out: &mut String, s: &Summary, series: Option<&TimeSeries>) {
    // Over every fetched Tweet, unless the API withheld some values: then each total says how
    // many Tweets it is over, and one sentence says why.
    let over = s.any_not_served();
    w!(
        out,
        "<section class=\"card\" id=\"totals\"><div class=\"card-head\"><h2>Totals</h2>\
         <span class=\"aside\">{}</span></div>\n",
        if over {
            "over the Tweets each metric was served for"
        } else {
            "over every fetched Tweet"
        }
    );
    if let Some(line) = s.not_served_sentence() {
        w!(
            out,
            "<p class=\"note\" id=\"not-served\">{}</p>\n",
            escape(&line)
        );
    }
    out.push_str("<table class=\"totals\"><thead><tr><th>Metric</th><th class=\"num\">Total</th>");
    if over {
        out.push_str("<th class=\"num\">Over Tweets</th>");
    }
    out.push_str("<th>Top Tweet</th><th class=\"num\">Its value</th>");
    if series.is_some() {
        out.push_str("<th>Per hour</th>");
    }
    out.push_str("</tr></thead><tbody>\n");
    for (i, m) in s.metrics.iter().enumerate() {
        let name = escape(m.as_str());
        let total = s.totals.get(i).copied().unwrap_or(0);
        w!(
            out,
            "<tr><td><a href=\"#m-{name}\">{name}</a></td><td class=\"num\">{}</td>",
            num(total)
        );
        if over {
            w!(
                out,
                "<td class=\"num\">{}</td>",
                num(s.served.get(i).copied().unwrap_or(0))
            );
        }
        match s.top.get(i).and_then(|t| t.first()) {
            Some((id, v)) => w!(
                out,
                "<td><a class=\"mono\" href=\"{}\" target=\"_blank\" rel=\"noopener\">{id}</a></td><td class=\"num\">{}</td>",
                tweet_url(*id),
                num(*v)
            ),
            None => out.push_str("<td class=\"muted\">—</td><td class=\"num muted\">—</td>"),
        }
        if let Some(t) = series {
            out.push_str("<td>");
            sparkline(out, t.totals.get(i).map_or(&[][..], |v| &v[..]));
            out.push_str("</td>");
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody></table></section>\n");
}

/// Engagement rate: the overall ratio and the best Tweets (as a bar chart of percentages).
fn rate_section(out: &mut String, s: &Summary) {
    let Some(r) = &s.rate else {
        return;
    };
    w!(
        out,
        "<section class=\"card\" id=\"rate\"><div class=\"card-head\"><h2>Engagement rate</h2>\
         <span class=\"aside\">engagements / impressions: <b>{}</b> over {} Tweets</span></div>\n\
         <p class=\"note\">Per Tweet where both are served; Tweets are ranked with at least {} \
         impressions, so a handful of impressions cannot top the list.</p>\n",
        r.overall().map_or("—".to_string(), percent),
        num(r.tweets),
        num(r.min_impressions)
    );
    if r.top.is_empty() {
        out.push_str("<p class=\"muted\">No Tweet has enough impressions to be ranked.</p>");
    } else {
        out.push_str("<table class=\"totals\"><thead><tr><th class=\"num\">#</th><th>Tweet</th><th class=\"num\">Rate</th></tr></thead><tbody>\n");
        for (rank, (id, v)) in r.top.iter().enumerate() {
            w!(
                out,
                "<tr><td class=\"num\">{}</td><td><a class=\"mono\" href=\"{}\" target=\"_blank\" rel=\"noopener\">{id}</a></td><td class=\"num\">{}</td></tr>\n",
                rank + 1,
                tweet_url(*id),
                percent(*v as f64 / crate::groups::RATE_SCALE as f64)
            );
        }
        out.push_str("</tbody></table>");
    }
    out.push_str("</section>\n");
}

/// The groups side by side: a table of their counts, what each lacks, and per metric one bar per
/// group, absolute (with its share of the groups' sum) and per Tweet.
fn groups_section(out: &mut String, s: &Summary) {
    if s.groups.is_empty() {
        return;
    }
    w!(
        out,
        "<section class=\"card\" id=\"groups\"><div class=\"card-head\"><h2>Groups compared</h2>\
         <span class=\"aside\"><b>{}</b> groups</span></div>\n<p class=\"note\" id=\"several\">{}</p>\n",
        s.groups.len(),
        escape(&s.several_sentence())
    );
    out.push_str("<table class=\"totals\"><thead><tr><th>Group</th><th class=\"num\">Unique IDs</th><th class=\"num\">ok</th><th class=\"num\">Not ok</th><th class=\"num\">Pending</th>");
    if s.rate.is_some() {
        out.push_str("<th class=\"num\">Engagement rate</th>");
    }
    out.push_str("</tr></thead><tbody>\n");
    for (k, g) in s.groups.iter().enumerate() {
        let c = &g.status;
        w!(
            out,
            "<tr><td><span class=\"sw c{}\"></span>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>",
            k % 10,
            escape(&g.name),
            num(c.unique()),
            num(c.ok),
            num(c.unavailable + c.forbidden + c.failed),
            num(c.pending)
        );
        match &g.rate {
            Some(r) => w!(
                out,
                "<td class=\"num\">{}</td>",
                r.overall().map_or("—".to_string(), percent)
            ),
            None if s.rate.is_some() => out.push_str("<td class=\"num muted\">—</td>"),
            None => {}
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody></table>\n");
    let lacks = s.groups_lacking();
    if !lacks.is_empty() {
        out.push_str("<ul class=\"note\" id=\"lacks\">");
        for line in lacks {
            w!(out, "<li>{}</li>", escape(&line));
        }
        out.push_str("</ul>\n");
    }
    out.push_str("<div class=\"groups-grid\">\n");
    if s.groups.iter().any(|g| g.rate.is_some()) {
        let rows: Vec<GroupRow> = s
            .groups
            .iter()
            .map(|g| {
                let r = g.rate.as_ref();
                let rate = r.and_then(|r| r.overall()).unwrap_or(0.0);
                let tweets = r.map_or(0, |r| r.tweets);
                GroupRow {
                    name: g.name.clone(),
                    left: (
                        rate,
                        r.and_then(|r| r.overall()).map_or("—".to_string(), percent),
                    ),
                    right: (tweets as f64, num(tweets)),
                }
            })
            .collect();
        out.push_str("<figure><figcaption>engagement rate <span class=\"muted\">engagements / impressions, and the Tweets it is over</span></figcaption>\n");
        group_bars(out, "engagement_rate", "groups", ["rate", "Tweets"], &rows);
        out.push_str("</figure>\n");
    }
    for (i, m) in s.metrics.iter().enumerate() {
        let sum: u64 = s.groups.iter().map(|g| g.totals[i]).sum();
        let rows: Vec<GroupRow> = s
            .groups
            .iter()
            .map(|g| {
                let total = g.totals[i];
                let mean = g.mean(i);
                GroupRow {
                    name: g.name.clone(),
                    left: (
                        total as f64,
                        format!("{} · {}", num(total), share(total, sum)),
                    ),
                    right: (
                        mean.unwrap_or(0.0),
                        mean.map_or("—".to_string(), |x| format!("{x:.1}")),
                    ),
                }
            })
            .collect();
        w!(
            out,
            "<figure><figcaption>{} <span class=\"muted\">total · share, and per Tweet</span></figcaption>\n",
            escape(m.as_str())
        );
        group_bars(
            out,
            m.as_str(),
            "groups",
            ["total · share", "per Tweet"],
            &rows,
        );
        out.push_str("</figure>\n");
    }
    out.push_str("</div></section>\n");
}

/// Requests, 429s and the share of each app's budget used, over every life of the run.
fn apps(out: &mut String, s: &Summary) {
    if s.apps.is_empty() {
        return;
    }
    out.push_str(
        "<section class=\"card\" id=\"apps\"><div class=\"card-head\"><h2>Apps</h2>\
         <span class=\"aside\">each app's requests and rate budget, every life of the run</span></div>\n\
         <table class=\"totals apps\"><thead><tr><th>App</th><th class=\"num\">Requests</th>\
         <th class=\"num\">Answered 429</th><th class=\"num\">Budget used</th></tr></thead><tbody>\n",
    );
    for a in &s.apps {
        let used = a
            .used()
            .map_or("unknown".to_string(), |u| format!("{:.1} %", u * 100.0));
        w!(
            out,
            "<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{used}</td></tr>\n",
            escape(&a.name),
            num(a.requests),
            num(a.rate_limited)
        );
    }
    out.push_str("</tbody></table></section>\n");
}

/// The messages that came with the answers, word for word, with how often and for how many IDs.
fn messages(out: &mut String, s: &Summary) {
    if s.messages.is_empty() {
        return;
    }
    out.push_str(
        "<section class=\"card\" id=\"messages\"><div class=\"card-head\"><h2>Messages</h2>\
         <span class=\"aside\">that came with the answers; outcomes.csv names the IDs</span></div>\n\
         <table class=\"totals messages\"><thead><tr><th>Message</th><th>From</th>\
         <th class=\"num\">Responses</th><th class=\"num\">IDs</th></tr></thead><tbody>\n",
    );
    for m in &s.messages {
        w!(
            out,
            "<tr><td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>\n",
            escape(&m.shown()),
            m.source.as_str(),
            num(m.responses),
            num(m.ids)
        );
    }
    out.push_str("</tbody></table></section>\n");
}

/// A decorative trend in the totals table; the metric's own chart carries the accessible version.
fn sparkline(out: &mut String, values: &[u64]) {
    const W: f64 = 120.0;
    const H: f64 = 24.0;
    // Bucket maxima keep peaks visible at 120 pixels.
    let size = values.len().div_ceil(120).max(1);
    let maxima: Vec<u64> = values
        .chunks(size)
        .map(|c| c.iter().copied().max().unwrap_or(0))
        .collect();
    let top = maxima.iter().copied().max().unwrap_or(0).max(1);
    out.push_str(
        "<svg class=\"spark\" viewBox=\"0 0 120 24\" preserveAspectRatio=\"none\" aria-hidden=\"true\"><polyline points=\"",
    );
    let last = maxima.len().saturating_sub(1).max(1) as f64;
    for (i, v) in maxima.iter().enumerate() {
        let x = i as f64 * W / last;
        let y = 1.0 + (H - 2.0) * (1.0 - *v as f64 / top as f64);
        w!(out, "{},{} ", F(x), F(y));
    }
    out.push_str("\"/></svg>");
}

fn metric_section(
    out: &mut String,
    s: &Summary,
    i: usize,
    metric: &str,
    series: Option<&TimeSeries>,
    days: &[Day],
) {
    let name = escape(metric);
    let top: &[(u64, u64)] = s.top.get(i).map_or(&[], |t| &t[..]);
    w!(
        out,
        "<section class=\"card metric\" id=\"m-{name}\"><div class=\"card-head\"><h2>{name}</h2>\
         <span class=\"aside\">total <b>{}</b></span></div>\n",
        num(s.totals.get(i).copied().unwrap_or(0))
    );
    let over = if series.is_some() {
        "by their total over the window"
    } else {
        "by value"
    };
    w!(
        out,
        "<figure><figcaption>Top {} Tweets <span class=\"muted\">{over}</span></figcaption>\n",
        s.top_n
    );
    top_bars(out, metric, top);
    out.push_str("</figure>\n");

    if let Some(t) = series {
        let totals: &[u64] = t.totals.get(i).map_or(&[], |v| &v[..]);
        let curves: &[(u64, Vec<u64>)] = t.top.get(i).map_or(&[], |v| &v[..]);
        out.push_str(
            "<div class=\"pair\"><figure><figcaption>All fetched Tweets \
             <span class=\"muted hourly\">per hour</span><span class=\"muted daily\">per day (UTC)</span></figcaption>\n",
        );
        totals_chart(out, metric, &t.hours, days, totals);
        totals_stats(out, &t.hours, days, totals);
        let shown = curves.len().min(MAX_CURVES);
        let top_count = if shown > 0 {
            format!("Top {shown} Tweets")
        } else {
            "Top Tweets".into()
        };
        w!(
            out,
            "</figure>\n<figure><figcaption>{top_count} {}",
            if t.top_by_day {
                "<span class=\"muted\">per day (UTC)</span>"
            } else {
                "<span class=\"muted hourly\">per hour</span><span class=\"muted daily\">per day (UTC)</span>"
            }
        );
        if curves.len() > MAX_CURVES {
            w!(
                out,
                " <span class=\"muted\">(of the top {})</span>",
                curves.len()
            );
        }
        out.push_str("</figcaption>\n");
        curves_chart(out, metric, &t.hours, days, &curves[..shown], t.top_by_day);
        if shown > 0 {
            out.push_str("<ol class=\"legend\">");
            for (rank, (id, values)) in curves[..shown].iter().enumerate() {
                // The value is in the bar chart above; here it is only a hover, to keep the
                // legend to two columns.
                let sum = values.iter().fold(0u64, |a, v| a.saturating_add(*v));
                w!(
                    out,
                    "<li title=\"{} over the window\"><span class=\"sw c{}\"></span><span class=\"rank\">{}.</span>\
                     <a class=\"mono\" href=\"{}\" target=\"_blank\" rel=\"noopener\">{id}</a></li>",
                    num(sum),
                    rank % 10,
                    rank + 1,
                    tweet_url(*id)
                );
            }
            out.push_str("</ol>");
        }
        out.push_str("</figure></div>\n");
        if !t.groups.is_empty() {
            let lines: Vec<(&str, &[u64])> = t
                .groups
                .iter()
                .map(|(name, per_metric)| {
                    (name.as_str(), per_metric.get(i).map_or(&[][..], |v| &v[..]))
                })
                .collect();
            w!(
                out,
                "<figure class=\"by-group\"><figcaption>By group {}</figcaption>\n",
                if t.top_by_day {
                    "<span class=\"muted\">per day (UTC)</span>"
                } else {
                    "<span class=\"muted hourly\">per hour</span><span class=\"muted daily\">per day (UTC)</span>"
                }
            );
            group_curves_chart(out, metric, &t.hours, days, &lines, t.top_by_day);
            out.push_str("<ul class=\"legend\">");
            for (k, (name, values)) in lines.iter().enumerate() {
                let sum = values.iter().fold(0u64, |a, v| a.saturating_add(*v));
                w!(
                    out,
                    "<li title=\"{} over the window\"><span class=\"sw c{}\"></span>{}</li>",
                    num(sum),
                    k % 10,
                    escape(name)
                );
            }
            out.push_str("</ul></figure>\n");
        }
    }
    out.push_str("</section>\n");
}

/// Busiest, average and quietest hour (or day) under the totals chart: the numbers a reader would
/// otherwise hover for.
fn totals_stats(out: &mut String, hours: &[OffsetDateTime], days: &[Day], totals: &[u64]) {
    let hourly = &totals[..totals.len().min(hours.len())];
    if hourly.iter().all(|v| *v == 0) {
        // "Busiest hour: 0" says nothing the chart's "zero in every hour" does not.
        return;
    }
    let stat = |out: &mut String, class: &str, k: &str, v: String, when: String| {
        w!(
            out,
            "<div class=\"stat {class}\"><span class=\"k\">{k}</span><span class=\"v\">{v}</span>\
             <span class=\"when\">{}</span></div>",
            escape(&when)
        );
    };
    let hour_at = |i: usize| {
        let t = utc(hours[i]);
        format!("{} {:02}:00 UTC", day_label(t.date()), t.hour())
    };
    out.push_str("<div class=\"stats\">");
    // Ties go to the earliest hour.
    let busiest = (0..hourly.len()).max_by(|a, b| hourly[*a].cmp(&hourly[*b]).then(b.cmp(a)));
    let quietest = (0..hourly.len()).min_by(|a, b| hourly[*a].cmp(&hourly[*b]).then(a.cmp(b)));
    let sum = hourly.iter().fold(0u128, |a, v| a + *v as u128);
    let avg = if hours.is_empty() {
        0
    } else {
        (sum / hours.len() as u128) as u64
    };
    if let (Some(b), Some(q)) = (busiest, quietest) {
        stat(out, "hourly", "Busiest hour", num(hourly[b]), hour_at(b));
        stat(
            out,
            "hourly",
            "Average per hour",
            num(avg),
            format!("over {} hours", num(hours.len() as u64)),
        );
        stat(out, "hourly", "Quietest hour", num(hourly[q]), hour_at(q));
    }
    // Partial days would drag the daily numbers down, so they count only when there is no full day.
    let per_day = daily(totals, days);
    let full: Vec<usize> = (0..days.len()).filter(|d| days[*d].len == 24).collect();
    let pool: Vec<usize> = if full.is_empty() {
        (0..days.len()).collect()
    } else {
        full.clone()
    };
    if let Some(b) = pool
        .iter()
        .copied()
        .max_by(|a, b| per_day[*a].cmp(&per_day[*b]).then(b.cmp(a)))
    {
        let d = &days[b];
        let when = if d.len < 24 {
            format!("{} (partial: {} h)", day_label(d.date), d.len)
        } else {
            day_label(d.date)
        };
        stat(out, "daily", "Busiest day", num(per_day[b]), when);
    }
    if !full.is_empty() {
        let sum = full.iter().fold(0u128, |a, d| a + per_day[*d] as u128);
        stat(
            out,
            "daily",
            "Average per full day",
            num((sum / full.len() as u128) as u64),
            format!("over {} full days", full.len()),
        );
    }
    let partial = days.len() - full.len();
    if partial > 0 {
        stat(
            out,
            "daily",
            "Partial days",
            partial.to_string(),
            "hollow points: the window cuts them".into(),
        );
    }
    out.push_str("</div>");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::IngestCounts;
    use engagement_api::{Endpoint, Metric};
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-11-20 12:34 UTC);

    fn summary(endpoint: Endpoint, metrics: &[Metric], top_n: usize) -> Summary {
        let top: Vec<Vec<(u64, u64)>> = (0..metrics.len())
            .map(|m| {
                (0..top_n as u64)
                    .map(|r| {
                        (
                            1_800_000_000_000_000_000 + m as u64 * 1000 + r,
                            90_000 / (r + 1) + 5,
                        )
                    })
                    .collect()
            })
            .collect();
        Summary {
            endpoint,
            top_n,
            metrics: metrics.to_vec(),
            ingest: IngestCounts {
                input_lines: 12_345,
                rejected_lines: 12,
                duplicate_ids: 33,
            },
            status: StatusCounts {
                pending: 0,
                ok: 12_000,
                unavailable: 250,
                forbidden: 40,
                failed: 10,
            },
            damaged_inputs: Vec::new(),
            totals: (0..metrics.len() as u64)
                .map(|i| 1_234_567 * (i + 1))
                .collect(),
            top,
            served: vec![12_000; metrics.len()],
            withheld: vec![[0; 3]; metrics.len()],
            messages: Vec::new(),
            groups: Vec::new(),
            in_several_groups: 0,
            rate: None,
            apps: Vec::new(),
            accounts_used: vec!["brand".into()],
            ingest_done: true,
        }
    }

    fn series(s: &Summary, hours: usize) -> TimeSeries {
        let start = datetime!(2026-10-23 05:00 UTC);
        let curve = |seed: u64, scale: u64| -> Vec<u64> {
            (0..hours as u64)
                .map(|h| scale * (1 + (h * 7 + seed * 13) % 24) + (h * seed) % 11)
                .collect()
        };
        TimeSeries {
            hours: (0..hours as i64)
                .map(|h| start + time::Duration::hours(h))
                .collect(),
            totals: (0..s.metrics.len() as u64)
                .map(|m| curve(m, 1_000))
                .collect(),
            top: s
                .top
                .iter()
                .map(|t| t.iter().map(|(id, _)| (*id, curve(*id % 97, 10))).collect())
                .collect(),
            top_by_day: false,
            groups: Vec::new(),
        }
    }

    fn count(hay: &str, needle: &str) -> usize {
        hay.matches(needle).count()
    }

    /// Every URL in the page is a Tweet link, and nothing is loaded from anywhere.
    fn assert_self_contained(html: &str) {
        assert!(!html.contains("http://"), "no http:// at all");
        for (at, _) in html.match_indices("https://") {
            assert!(
                html[at..].starts_with("https://x.com/i/web/status/"),
                "unexpected URL at {at}: {}",
                &html[at..(at + 60).min(html.len())]
            );
        }
        for banned in ["<script src", "<link", "url(", "@import", "<img", "<iframe"] {
            assert!(!html.contains(banned), "found {banned}");
        }
    }

    #[test]
    fn a_damaged_input_is_a_warning_naming_it() {
        let mut s = summary(Endpoint::Totals, &[Metric::Impressions], 3);
        let html = render(&s, None, NOW);
        assert!(!html.contains("not read to its end"));
        s.damaged_inputs.push(crate::store::RejectRow {
            source_idx: 0,
            source: "exports/<night>.txt.gz".into(),
            line: 41,
            content: String::new(),
            reason: "truncated or corrupt gzip stream after line 40".into(),
        });
        let html = render(&s, None, NOW);
        assert_eq!(count(&html, "Input not read to its end"), 1);
        assert!(html.contains(
            "exports/&lt;night&gt;.txt.gz: truncated or corrupt gzip stream after line 40"
        ));
    }

    #[test]
    fn totals_page_has_a_linked_bar_chart_per_metric() {
        let metrics = Endpoint::Totals.allowed_metrics(engagement_api::AuthKind::User);
        let s = summary(Endpoint::Totals, &metrics, 5);
        let html = render(&s, None, NOW);
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert_eq!(count(&html, "<svg class=\"chart\""), metrics.len());
        for m in &metrics {
            let tag =
                format!("<svg class=\"chart\" data-metric=\"{m}\" data-kind=\"top\" role=\"img\"");
            let at = html
                .find(&tag)
                .unwrap_or_else(|| panic!("no chart for {m}"));
            assert!(html[at..]
                .split("</svg>")
                .next()
                .unwrap()
                .contains("<title>"));
        }
        for (id, v) in s.top.iter().flatten() {
            assert!(html.contains(&format!("<a href=\"https://x.com/i/web/status/{id}\"")));
            assert!(html.contains(&num(*v)));
        }
        assert!(html.contains("Top 5 per metric"));
        assert!(html.contains("/totals"));
        assert!(html.contains("2026-11-20 12:34 UTC"));
        assert!(html.contains("12,345"), "input lines");
        assert!(html.contains("1,234,567"), "a grand total");
        assert!(!html.contains("data-kind=\"totals\"") && !html.contains("id=\"v-daily\""));
        assert!(html.contains("window.onerror") && html.contains("dataset.ready=\"1\""));
        assert_self_contained(&html);
    }

    #[test]
    fn empty_top_lists_render_the_empty_message() {
        let mut s = summary(Endpoint::Hr28, &[Metric::Impressions, Metric::Replies], 3);
        s.top[1].clear();
        let mut t = series(&s, 28);
        t.top[1].clear();
        let html = render(&s, Some(&t), NOW);
        assert_eq!(
            count(&html, "No Tweet has a non-zero value"),
            2 * 2,
            "svg title and text, twice"
        );
        assert_eq!(count(&html, "<svg class=\"chart\""), 2 * 3);
        assert_self_contained(&html);
    }

    #[test]
    fn time_series_page_has_line_charts_and_both_views() {
        let metrics = [Metric::Impressions, Metric::Engagements, Metric::UrlClicks];
        let s = summary(Endpoint::Hr28, &metrics, 4);
        let t = series(&s, 28);
        let html = render(&s, Some(&t), NOW);
        for m in &metrics {
            for kind in ["top", "totals", "curves"] {
                assert!(
                    html.contains(&format!(
                        "data-metric=\"{m}\" data-kind=\"{kind}\" role=\"img\""
                    )),
                    "{m} {kind}"
                );
            }
        }
        assert_eq!(count(&html, "<svg class=\"chart\""), metrics.len() * 3);
        assert!(html.contains("id=\"v-hourly\"") && html.contains("id=\"v-daily\""));
        assert!(count(&html, "<g class=\"daily\">") >= metrics.len() * 2);
        assert!(
            html.contains("partial day"),
            "a 28-hour window has partial days"
        );
        assert!(html.contains("class=\"legend\""));
        // Curve legends link every top Tweet.
        for (id, _) in t.top.iter().flatten() {
            assert!(html.contains(&format!("href=\"https://x.com/i/web/status/{id}\" target")));
        }
        assert_self_contained(&html);
    }

    #[test]
    fn a_partial_report_says_so_in_the_title_the_header_and_the_outcomes() {
        let metrics = [Metric::Favorites];
        let whole = summary(Endpoint::Totals, &metrics, 3);
        let html = render(&whole, None, NOW);
        assert!(
            !html.contains(">partial<") && !html.contains("Partial"),
            "a complete report is not partial"
        );
        let mut pending = whole.clone();
        pending.status.pending = 1_500;
        let mut unread = whole.clone();
        unread.ingest_done = false;
        for (s, what) in [
            (&pending, "1500 of 13800 IDs are still pending"),
            (&unread, "the inputs have not been read to the end"),
        ] {
            let html = render(s, None, NOW);
            assert!(html.contains("<title>Partial: Top 3"), "{html}");
            assert_eq!(
                count(&html, "<span class=\"badge partial\">partial</span>"),
                1
            );
            assert!(html.contains(&format!(
                "<b>Partial report:</b> the run is not finished: {what};"
            )));
        }
    }

    #[test]
    fn a_full_historical_report_stays_under_two_megabytes() {
        let s = summary(Endpoint::Historical, &Metric::ALL, 10);
        let t = series(&s, 672);
        let html = render(&s, Some(&t), NOW);
        assert!(html.len() < 2_000_000, "{} bytes", html.len());
        assert_eq!(count(&html, "<svg class=\"chart\""), 18 * 3);
        assert_self_contained(&html);

        // More than MAX_CURVES top Tweets draw only MAX_CURVES lines.
        let s = summary(Endpoint::Historical, &[Metric::Impressions], 25);
        let t = series(&s, 672);
        let html = render(&s, Some(&t), NOW);
        let curves = html.split("data-kind=\"curves\"").nth(1).unwrap();
        let curves = curves.split("</svg>").next().unwrap();
        assert_eq!(
            count(curves, "class=\"ln "),
            MAX_CURVES * 2,
            "hourly and daily"
        );
        assert!(html.contains("(of the top 25)"));
    }

    #[test]
    fn mismatched_lengths_do_not_panic() {
        let mut s = summary(Endpoint::Hr28, &[Metric::Impressions, Metric::Replies], 2);
        s.totals.pop();
        s.top.pop();
        let mut t = series(&s, 3);
        t.totals = vec![vec![1]];
        t.top.clear();
        let html = render(&s, Some(&t), NOW);
        assert_eq!(count(&html, "<svg class=\"chart\""), 6);
        let one_hour = TimeSeries {
            hours: vec![NOW],
            totals: vec![vec![5], vec![0]],
            top: vec![vec![(1, vec![5])], vec![]],
            top_by_day: true,
            groups: Vec::new(),
        };
        let html = render(&s, Some(&one_hour), NOW);
        assert_eq!(count(&html, "<svg class=\"chart\""), 6);
        let none = TimeSeries {
            hours: vec![],
            totals: vec![],
            top: vec![],
            top_by_day: false,
            groups: Vec::new(),
        };
        assert_eq!(
            count(&render(&s, Some(&none), NOW), "<svg class=\"chart\""),
            2
        );
    }
}

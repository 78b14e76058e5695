//! `report.html` in a real browser: headless Chromium loads the page from disk and must finish the
//! inline script without an error and keep every chart in the DOM.
//!
//! Skipped (with a note) when Chromium is not installed, except under `CI`, where it must be.
//! With `ENGAGE_SCREENSHOT=<path>` it also writes a 1280×2400 screenshot there (`docs/report.png`).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use engage::report::html::{render, TimeSeries};
use engage::report::{GroupFigures, RateFigures, Summary};
use engage::store::{IngestCounts, StatusCounts};
use engagement_api::{Endpoint, Metric};
use time::macros::datetime;
use time::OffsetDateTime;

const GENERATED: OffsetDateTime = datetime!(2026-11-20 06:12 UTC);
const START: OffsetDateTime = datetime!(2026-11-13 09:00 UTC);
const HOURS: usize = 168;
const TOP_N: usize = 10;

/// The run's metrics and how large each one is relative to impressions. None of the Tweets has a
/// video, so `video_views` is all zeros and the page also shows the empty state.
const METRICS: [(Metric, f64); 8] = [
    (Metric::Impressions, 1.0),
    (Metric::Engagements, 0.061),
    (Metric::Favorites, 0.024),
    (Metric::Retweets, 0.0062),
    (Metric::Replies, 0.0031),
    (Metric::VideoViews, 0.0),
    (Metric::UrlClicks, 0.0093),
    (Metric::UserProfileClicks, 0.0041),
];

/// A small deterministic generator, so the page (and the screenshot) is the same on every run.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Engagement with one Tweet: nothing before it is posted, then a decay, with a daily rhythm.
fn tweet_curve(rng: &mut Lcg, posted: usize, peak: f64, half_life: f64) -> Vec<f64> {
    (0..HOURS)
        .map(|h| {
            if h < posted {
                return 0.0;
            }
            let age = (h - posted) as f64;
            let rhythm =
                1.0 + 0.55 * ((h as f64 + 9.0 - 15.0) / 24.0 * std::f64::consts::TAU).cos();
            peak * 0.5f64.powf(age / half_life) * rhythm * (0.85 + 0.3 * rng.next())
        })
        .collect()
}

/// A made-up `/historical` run: a week of hourly data for [`METRICS`].
fn made_up_report() -> (Summary, TimeSeries) {
    let mut rng = Lcg(42);
    // The same Tweets lead every metric, in an order that varies a little per metric.
    let tweets: Vec<(u64, Vec<f64>)> = (0..40u64)
        .map(|k| {
            // Snowflake-shaped: a creation time in the high bits, noise below.
            let created_ms = 505_000_000_000 + ((rng.next() * 600_000_000.0) as u64 + k);
            let id = (created_ms << 22) | (rng.next() * (1u64 << 22) as f64) as u64;
            let posted = (rng.next() * (HOURS as f64 - 12.0)) as usize;
            let peak = 40_000.0 * (0.3 + rng.next()) / (1.0 + k as f64 * 0.15);
            let half_life = 3.0 + rng.next() * 20.0;
            (id, tweet_curve(&mut rng, posted, peak, half_life))
        })
        .collect();
    // Everything else: many small Tweets, which only show in the totals.
    let background = tweet_curve(&mut rng, 0, 90_000.0, 1e9);

    let mut top = Vec::new();
    let mut totals = Vec::new();
    let mut series_totals = Vec::new();
    let mut series_top = Vec::new();
    for (_, scale) in METRICS {
        let jitter: Vec<f64> = (0..tweets.len()).map(|_| 0.3 + 1.4 * rng.next()).collect();
        let mut per_tweet: Vec<(u64, Vec<u64>, u64)> = tweets
            .iter()
            .zip(&jitter)
            .map(|((id, curve), j)| {
                let values: Vec<u64> = curve
                    .iter()
                    .map(|v| (v * scale * j).round() as u64)
                    .collect();
                let sum = values.iter().sum();
                (*id, values, sum)
            })
            .filter(|(_, _, sum)| *sum > 0)
            .collect();
        let hourly: Vec<u64> = (0..HOURS)
            .map(|h| {
                let bg = (background[h] * scale).round() as u64;
                bg + per_tweet.iter().map(|(_, v, _)| v[h]).sum::<u64>()
            })
            .collect();
        per_tweet.sort_by(|a, b| b.2.cmp(&a.2).then(a.0.cmp(&b.0)));
        per_tweet.truncate(TOP_N);
        assert!(scale > 0.0 || per_tweet.is_empty());
        totals.push(hourly.iter().sum());
        series_totals.push(hourly);
        top.push(per_tweet.iter().map(|(id, _, sum)| (*id, *sum)).collect());
        series_top.push(per_tweet.into_iter().map(|(id, v, _)| (id, v)).collect());
    }
    let summary = Summary {
        endpoint: Endpoint::Historical,
        top_n: TOP_N,
        metrics: METRICS.iter().map(|(m, _)| *m).collect(),
        ingest: IngestCounts {
            input_lines: 48_212,
            rejected_lines: 37,
            duplicate_ids: 1_164,
        },
        status: StatusCounts {
            pending: 0,
            ok: 44_873,
            unavailable: 1_702,
            forbidden: 398,
            failed: 38,
        },
        served: vec![44_873; totals.len()],
        withheld: vec![[0; 3]; totals.len()],
        messages: Vec::new(),
        totals,
        top,
        accounts_used: vec!["brand".into(), "support".into()],
        damaged_inputs: Vec::new(),
        ingest_done: true,
        groups: Vec::new(),
        in_several_groups: 0,
        rate: None,
        apps: Vec::new(),
    };
    let series = TimeSeries {
        hours: (0..HOURS as i64)
            .map(|h| START + time::Duration::hours(h))
            .collect(),
        totals: series_totals,
        top: series_top,
        top_by_day: false,
        groups: Vec::new(),
    };
    (summary, series)
}

/// `s` with four groups (a brand, a rival read with public metrics only, two campaigns that
/// overlap the brand) and engagement rates.
fn with_groups(s: &Summary) -> Summary {
    let at = |m: Metric| s.metrics.iter().position(|x| *x == m).unwrap();
    let (imp, eng) = (at(Metric::Impressions), at(Metric::Engagements));
    let groups: Vec<GroupFigures> = [
        ("brand", 21_400u64, 1.0, true),
        ("rival", 9_120, 0.8, false),
        ("spring-sale", 6_310, 1.6, true),
        ("fall-launch", 3_870, 0.7, true),
    ]
    .iter()
    .enumerate()
    .map(|(k, &(name, ok, strength, owned))| {
        let share = ok as f64 / s.status.ok as f64 * strength;
        let owned_only = |i: usize| !owned && (i == imp || i == eng);
        let totals: Vec<u64> = (0..s.metrics.len())
            .map(|i| {
                if owned_only(i) {
                    0
                } else {
                    (s.totals[i] as f64 * share) as u64
                }
            })
            .collect();
        let served: Vec<u64> = (0..s.metrics.len())
            .map(|i| if owned_only(i) { 0 } else { ok })
            .collect();
        let rate = owned.then(|| RateFigures {
            min_impressions: 100,
            tweets: ok,
            // Campaigns engage differently: the rates differ.
            engagements: (totals[eng] as f64 * [1.0, 1.0, 1.35, 0.8][k]) as u64,
            impressions: totals[imp],
            top: s.top[eng]
                .iter()
                .skip(k)
                .take(5)
                .enumerate()
                .map(|(r, (id, _))| (*id, 90_000 - 7_000 * r as u64 - 3_000 * k as u64))
                .collect(),
        });
        GroupFigures {
            name: name.into(),
            status: StatusCounts {
                pending: 0,
                ok,
                unavailable: ok / 25,
                forbidden: 0,
                failed: k as u64,
            },
            served: served.clone(),
            withheld: served
                .iter()
                .map(|n| if *n == 0 { [0, 0, ok] } else { [0; 3] })
                .collect(),
            top: (0..s.metrics.len())
                .map(|i| {
                    if owned_only(i) {
                        vec![]
                    } else {
                        s.top[i].iter().skip(k).take(5).copied().collect()
                    }
                })
                .collect(),
            median: totals
                .iter()
                .zip(&served)
                .map(|(t, n)| (*n > 0).then(|| t / n / 2))
                .collect(),
            p90: totals
                .iter()
                .zip(&served)
                .map(|(t, n)| (*n > 0).then(|| t / n * 3))
                .collect(),
            max: (0..s.metrics.len())
                .map(|i| s.top[i].first().map_or(0, |(_, v)| *v))
                .collect(),
            totals,
            rate,
        }
    })
    .collect();
    Summary {
        rate: Some(RateFigures {
            min_impressions: 100,
            tweets: s.status.ok,
            engagements: s.totals[eng],
            impressions: s.totals[imp],
            top: s.top[eng]
                .iter()
                .take(10)
                .enumerate()
                .map(|(r, (id, _))| (*id, 95_000 - 4_000 * r as u64))
                .collect(),
        }),
        groups,
        in_several_groups: 1_180,
        ..s.clone()
    }
}

/// A screenshot of `page` at `size` (`W,H`).
fn screenshot(bin: &Path, page: &Path, shot: &Path, size: &str) {
    let shot = std::path::absolute(shot).unwrap();
    let _ = std::fs::remove_file(&shot);
    chromium(
        bin,
        page,
        &[
            format!("--screenshot={}", shot.display()),
            format!("--window-size={size}"),
            "--hide-scrollbars".to_string(),
        ],
    );
    let len = std::fs::metadata(&shot).map(|m| m.len()).unwrap_or(0);
    assert!(len > 10_000, "no screenshot at {}", shot.display());
    eprintln!("screenshot: {}", shot.display());
}

fn find_chromium() -> Option<PathBuf> {
    let fixed = Path::new("/usr/bin/chromium");
    if fixed.is_file() {
        return Some(fixed.to_path_buf());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| ["chromium", "chromium-browser"].map(|name| dir.join(name)))
        .find(|p| p.is_file())
}

/// Runs Chromium headless on `page` with `extra` arguments; returns stdout. A fresh profile per
/// run, and every background feature off, so the browser makes no network request of its own.
fn chromium(bin: &Path, page: &Path, extra: &[String]) -> String {
    let profile = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(bin);
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
    ])
    .arg(format!("--user-data-dir={}", profile.path().display()))
    .arg("--virtual-time-budget=2000")
    .args(extra)
    .arg(format!("file://{}", page.display()))
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("starting chromium");
    // Read both pipes on threads so a chatty browser cannot block on a full pipe.
    let mut out_pipe = child.stdout.take().unwrap();
    let mut err_pipe = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out_pipe.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err_pipe.read_to_string(&mut s);
        s
    });
    // A hung browser must fail the test, not hang CI.
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish in 120 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let (out, err) = (out.join().unwrap(), err.join().unwrap());
    assert!(status.success(), "chromium failed: {status}\n{err}");
    out
}

/// Loads `html` in Chromium and checks the page ran to its end without a script error and kept
/// `charts` charts. Returns the page's path (inside `dir`).
fn check_in_browser(bin: &Path, dir: &Path, name: &str, html: &str, charts: usize) -> PathBuf {
    let page = dir.join(name);
    std::fs::write(&page, html).unwrap();
    let dom = chromium(bin, &page, &["--dump-dom".to_string()]);
    let root = dom
        .find("<html")
        .map(|at| &dom[at..at + dom[at..].find('>').unwrap_or(0)])
        .unwrap_or_else(|| {
            panic!(
                "no <html> in the dumped DOM of {name}:\n{}",
                &dom[..dom.len().min(2000)]
            )
        });
    assert!(
        !root.contains("data-errors"),
        "script errors in {name}: {root}"
    );
    assert!(
        root.contains("data-ready=\"1\""),
        "{name} did not finish: {root}"
    );
    assert_eq!(
        dom.matches("<svg class=\"chart\"").count(),
        charts,
        "charts in {name}"
    );
    assert!(
        dom.contains("No Tweet has a non-zero value"),
        "{name} shows the empty state"
    );
    page
}

#[test]
fn report_loads_in_headless_chromium() {
    let Some(bin) = find_chromium() else {
        if std::env::var_os("CI").is_some() {
            panic!("chromium is not installed, and CI must run the browser test (apt-get install chromium)");
        }
        eprintln!("note: chromium not found; skipping the browser test of report.html");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (summary, series) = made_up_report();

    // A time-series job: a bar chart, a totals chart and a curves chart per metric.
    let html = render(&summary, Some(&series), GENERATED);
    let page = check_in_browser(
        &bin,
        dir.path(),
        "report.html",
        &html,
        summary.metrics.len() * 3,
    );

    // A `/totals` job: bar charts only.
    let keep: Vec<usize> = (0..summary.metrics.len())
        .filter(|i| Endpoint::Totals.knows_metric(summary.metrics[*i]))
        .collect();
    let totals_only = Summary {
        endpoint: Endpoint::Totals,
        metrics: keep.iter().map(|i| summary.metrics[*i]).collect(),
        totals: keep.iter().map(|i| summary.totals[*i]).collect(),
        top: keep.iter().map(|i| summary.top[*i].clone()).collect(),
        // Values the API withheld, and messages that came with the answers: the sentence, the
        // "Over Tweets" column and the messages table must lay out like the rest.
        served: keep
            .iter()
            .map(|i| summary.status.ok - 120 * u64::from(summary.metrics[*i] == Metric::VideoViews))
            .collect(),
        withheld: keep
            .iter()
            .map(|i| if summary.metrics[*i] == Metric::VideoViews { [0, 120, 0] } else { [0; 3] })
            .collect(),
        messages: vec![engage::store::MessageRow {
            mid: 1,
            text: "Impressions & engagements for tweets older than 90 days (2026-08-22T00:00:00Z - 2026-11-20T00:00:00Z) are not supported; a long message that has to wrap inside its cell without widening the page".into(),
            source: engage::outcome::MessageSource::Api,
            responses: 41,
            varies: true,
            ids: 3_977,
        }],
        // Three apps, one whose budget is unknown.
        apps: ["brand-main", "brand-backup", "agency"]
            .iter()
            .enumerate()
            .map(|(i, name)| engage::apps::AppFigures {
                name: name.to_string(),
                requests: 41_000 / (i as u64 + 1),
                rate_limited: i as u64,
                active_secs: 3_600.0,
                capacity: (i < 2).then_some(42_000.0 / (i as f64 + 1.0)),
            })
            .collect(),
        ..summary.clone()
    };
    let html = render(&totals_only, None, GENERATED);
    // The apps card: each app's figures, "unknown" where its budget is.
    assert!(html.contains("<td>brand-backup</td><td class=\"num\">20,500</td>"));
    assert!(html.contains("97.6 %") && html.contains("unknown"));
    check_in_browser(
        &bin,
        dir.path(),
        "totals.html",
        &html,
        totals_only.metrics.len(),
    );

    // Groups compared: a rate chart and one chart per metric, one bar per group.
    let grouped = with_groups(&totals_only);
    let groups_html = render(&grouped, None, GENERATED);
    let groups_page = check_in_browser(
        &bin,
        dir.path(),
        "groups.html",
        &groups_html,
        grouped.metrics.len() * 2 + 1,
    );
    let dom = chromium(&bin, &groups_page, &["--dump-dom".to_string()]);
    let section = &dom[dom.find("id=\"groups\"").expect("the groups section")..];
    assert_eq!(
        section.matches("data-kind=\"groups\"").count(),
        grouped.metrics.len() + 1
    );
    for g in &grouped.groups {
        // One bar per group in every chart of the section.
        assert_eq!(
            section.matches(&format!("<title>{} · ", g.name)).count(),
            2 * (grouped.metrics.len() + 1),
            "{}",
            g.name
        );
    }
    assert!(section.contains("1180 Tweets are in two groups or more"));
    assert!(section.contains("rival lacks impressions and engagements for 9120 of its 9120 Tweets"));
    assert!(dom.contains("id=\"rate\""));

    // A time series with groups: besides the above, one line per group for every metric.
    let grouped_series_summary = with_groups(&summary);
    let mut grouped_series = series.clone();
    grouped_series.groups = grouped_series_summary
        .groups
        .iter()
        .enumerate()
        .map(|(k, g)| {
            let curves = series
                .totals
                .iter()
                .map(|hourly| {
                    // Each group's share of the hour, rising and falling at its own pace.
                    hourly
                        .iter()
                        .enumerate()
                        .map(|(h, v)| {
                            let phase = (h as f64 / 24.0 + k as f64).sin() * 0.5 + 0.6;
                            (*v as f64 * phase / (k + 2) as f64) as u64
                        })
                        .collect()
                })
                .collect();
            (g.name.clone(), curves)
        })
        .collect();
    let html = render(&grouped_series_summary, Some(&grouped_series), GENERATED);
    let m = grouped_series_summary.metrics.len();
    let series_page =
        check_in_browser(&bin, dir.path(), "groups-series.html", &html, m * 4 + m + 1);
    let dom = chromium(&bin, &series_page, &["--dump-dom".to_string()]);
    assert_eq!(dom.matches("data-kind=\"group-curves\"").count(), m);
    for g in &grouped_series_summary.groups {
        assert!(
            dom.matches(&format!("{} · ", g.name)).count() >= m,
            "{}: a line per metric",
            g.name
        );
    }

    if let Some(shot) = std::env::var_os("ENGAGE_GROUPS_SCREENSHOT") {
        // The same page with the sections above the comparison hidden, so it shows at the top.
        let only = groups_html.replace(
            "</head>",
            "<style>#outcomes,#totals,#rate,.metric{display:none}</style></head>",
        );
        let page = dir.path().join("groups-only.html");
        std::fs::write(&page, only).unwrap();
        screenshot(&bin, &page, &PathBuf::from(shot), "1280,1360");
    }

    if let Some(shot) = std::env::var_os("ENGAGE_SCREENSHOT") {
        let shot = std::path::absolute(PathBuf::from(shot)).unwrap();
        let _ = std::fs::remove_file(&shot);
        chromium(
            &bin,
            &page,
            &[
                format!("--screenshot={}", shot.display()),
                "--window-size=1280,2400".to_string(),
                "--hide-scrollbars".to_string(),
            ],
        );
        let len = std::fs::metadata(&shot).map(|m| m.len()).unwrap_or(0);
        assert!(len > 10_000, "no screenshot at {}", shot.display());
        eprintln!("screenshot: {}", shot.display());
    }
}

/// A made-up history: `nights` snapshots of three metrics (the last with no mover, so the page
/// shows its empty state) and, with `series`, two days of hourly totals.
fn made_up_history(nights: usize, series: bool) -> engage::history::Movers {
    use engage::history::{Gain, Movers, Night};
    let metrics = vec![Metric::Impressions, Metric::Favorites, Metric::VideoViews];
    let snapshots: Vec<OffsetDateTime> = (0..nights)
        .map(|k| GENERATED - time::Duration::days((nights - 1 - k) as i64))
        .collect();
    let mut rng = Lcg(7);
    let gains: Vec<Vec<Gain>> = metrics
        .iter()
        .enumerate()
        .map(|(i, _)| {
            if i == 2 {
                return Vec::new();
            }
            (0..TOP_N as u64)
                .map(|k| {
                    let base = (rng.next() * 50_000.0) as u64;
                    let gain =
                        (20_000.0 / (1.0 + k as f64)) as i64 - if k == 9 { 30_000 } else { 0 };
                    let new = k == 3;
                    Gain {
                        id: 1_790_000_000_000_000_000 + k * 7919,
                        base: (!new).then_some(base),
                        latest: (if new { 0 } else { base } as i64 + gain.max(-(base as i64)))
                            as u64,
                        gain,
                        new,
                    }
                })
                .collect()
        })
        .collect();
    let trajectories = gains
        .iter()
        .map(|g| {
            g.iter()
                .take(5)
                .map(|g| {
                    let v = (0..nights)
                        .map(|k| {
                            (k > 0 || !g.new).then(|| g.latest * (k as u64 + 1) / nights as u64)
                        })
                        .collect();
                    (g.id, v)
                })
                .collect()
        })
        .collect();
    let nights_rows = snapshots
        .iter()
        .flat_map(|t| {
            metrics.iter().map(move |m| Night {
                as_of: *t,
                endpoint: "totals".into(),
                metric: *m,
                total: 1_000_000 + (t.unix_timestamp() as u64 % 977) * 1000,
                tweets: 5000,
            })
        })
        .collect();
    let hourly = metrics
        .iter()
        .map(|_| {
            if !series {
                return Vec::new();
            }
            (0..48)
                .map(|h| {
                    (
                        START.unix_timestamp() + h * 3600,
                        (rng.next() * 1000.0) as u64,
                    )
                })
                .collect()
        })
        .collect();
    Movers {
        latest: snapshots.last().copied(),
        base: snapshots.len().checked_sub(2).map(|b| snapshots[b]),
        top: TOP_N,
        metrics: metrics.clone(),
        gains,
        entered: vec![vec![1_790_000_000_000_000_000]; 3],
        left: vec![Vec::new(); 3],
        gone: vec![1_790_000_000_000_000_001],
        tally: vec![Vec::new(); 3],
        hourly,
        by_day: false,
        nights: nights_rows,
        snapshots,
        trajectories,
        groups: Vec::new(),
    }
}

#[test]
fn history_loads_in_headless_chromium() {
    let Some(bin) = find_chromium() else {
        if std::env::var_os("CI").is_some() {
            panic!("chromium is not installed, and CI must run the browser test (apt-get install chromium)");
        }
        eprintln!("note: chromium not found; skipping the browser test of history.html");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // Per metric: nights, movers, trajectories, and with time series the hourly curve. A single
    // night draws as well as many.
    for (name, nights, series, charts) in [
        ("history.html", 6, true, 12),
        ("totals-only.html", 6, false, 9),
        ("one-night.html", 1, false, 9),
    ] {
        let m = made_up_history(nights, series);
        let html = engage::history::render_html(&m, GENERATED);
        let page = dir.path().join(name);
        std::fs::write(&page, &html).unwrap();
        let dom = chromium(&bin, &page, &["--dump-dom".to_string()]);
        let root = dom
            .find("<html")
            .map(|at| &dom[at..at + dom[at..].find('>').unwrap_or(0)])
            .unwrap_or_else(|| panic!("no <html> in the dumped DOM of {name}"));
        assert!(
            !root.contains("data-errors"),
            "script errors in {name}: {root}"
        );
        assert!(
            root.contains("data-ready=\"1\""),
            "{name} did not finish: {root}"
        );
        assert_eq!(
            dom.matches("<svg class=\"chart\"").count(),
            charts,
            "charts in {name}"
        );
        for kind in ["nights", "movers", "trajectories"] {
            assert_eq!(
                dom.matches(&format!("data-kind=\"{kind}\"")).count(),
                3,
                "{kind} charts in {name}"
            );
        }
        assert!(
            dom.contains("video_views: no Tweet moved"),
            "{name} shows the empty state"
        );
        // Every mover of a metric with movers is drawn, the loss as a loss.
        assert_eq!(dom.matches("class=\"loss\"").count(), 2, "{name}");
        assert!(
            !html.contains("http://") && !html.contains("src="),
            "{name} loads nothing"
        );
    }
}

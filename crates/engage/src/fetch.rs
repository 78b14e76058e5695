//! The fetcher: one batch of IDs in, exactly one outcome per ID out.
//!
//! All retry policy lives here, in [`Fetcher::fetch_batch`], so the rest of the pipeline never guesses
//! from an error string. Per response:
//! - success / partial: `ok` with metrics, or `unavailable` for `unavailable_tweet_ids`;
//! - 429: wait for the gate (the reset time, or a backoff when no header says when); does not use an attempt;
//! - 5xx, timeout, connection reset, undecodable body: back off exponentially with jitter and retry, at most
//!   `max_attempts` attempts, then every ID of the batch ends `failed` with the last error;
//! - no connection at all (refused, DNS, TLS, connect timeout): back off and retry without using an
//!   attempt; such failures in a row open the breaker ([`crate::health`]), which holds every batch
//!   during an outage and probes until the API answers, or stops the run as interrupted after the limit;
//! - 403 `Forbidden to access tweets: <ids>`: those IDs end `forbidden`, the rest is sent again; a 403
//!   that names no ID and not metrics (a body that is not JSON, or JSON without that text) refuses
//!   every ID of the request alike, with the body's first line as the note (not retried);
//! - 400 `Tweet ID(s) are unavailable` (protected Tweets): the batch is split in halves until the
//!   protected IDs stand alone, so only they end `unavailable`;
//! - anything that would fail every batch the same way (401, 404, 406, other 400s, 403 about metrics)
//!   aborts the run with the server's words; the batch's IDs stay pending for a resume.
//!
//! Every attempt is built and signed afresh (new OAuth nonce and timestamp), and the response of the
//! last attempt is the one used.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use engagement_api::client::{Client, Fatal, Outcome, Retryable};
use engagement_api::response::EngagementResponse;
use engagement_api::{AuthKind, Endpoint, GroupBy, Metric, RequestBuilder, Window};
use rand::Rng;
use tokio_util::sync::CancellationToken;

use crate::apps::Lane;
use crate::concurrency::{Concurrency, Feedback};
use crate::gate::{Admit, WallClock};
use crate::health::{Halt, Health, Signal};
use crate::outcome::{AgeRule, IdOutcome, Message, MessageSource, NotServed, Settled, Status};
use crate::route::{Route, Routes};
use crate::series::{bucket, Granularity};

/// What one request settled: an outcome per ID it ended, and for a 200 its hourly sums
/// (metric index, hour start as Unix seconds, value) and the messages that came with it.
#[derive(Debug, Default)]
struct Answer {
    outcomes: Vec<IdOutcome>,
    hourly: Vec<(usize, i64, u64)>,
    messages: Vec<Message>,
}

impl Answer {
    /// Every ID of `ids` ends with `status` for the same reason.
    fn all(ids: &[u64], status: Status, note: &str) -> Answer {
        Answer {
            outcomes: ids
                .iter()
                .map(|&id| IdOutcome::final_status(id, status, note))
                .collect(),
            ..Answer::default()
        }
    }
}

/// The grouping every job asks for: one value per Tweet and metric.
pub const BY_TWEET: &str = "by_tweet";

/// Retry settings.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts per batch before its IDs end `failed` (429s do not count).
    pub max_attempts: u32,
    /// First backoff delay; doubles each attempt.
    pub base: Duration,
    /// Longest backoff delay.
    pub cap: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 10,
            base: Duration::from_millis(250),
            cap: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// The delay before attempt `attempt + 1` (attempt ≥ 1): exponential, capped, with "equal jitter"
    /// (half fixed, half random) so that concurrent batches do not retry in lockstep.
    pub fn delay(&self, attempt: u32) -> Duration {
        let exp = self
            .base
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(20))
            .min(self.cap);
        let half = exp / 2;
        half + rand::rng().random_range(Duration::ZERO..=half)
    }
}

/// Counters for the progress line and the final summary.
#[derive(Debug, Default)]
pub struct FetchStats {
    /// HTTP requests sent.
    pub requests: AtomicU64,
    /// Attempts after a retryable error.
    pub retries: AtomicU64,
    /// 429 answers.
    pub rate_limited: AtomicU64,
    /// Batches split because of protected Tweets or forbidden IDs.
    pub splits: AtomicU64,
    /// Attempts that could not connect (not charged to their batch).
    pub unreachable: AtomicU64,
}

/// What the fetcher needs to know about the job.
#[derive(Debug, Clone)]
pub struct Job {
    /// The endpoint.
    pub endpoint: Endpoint,
    /// The metrics, in report order.
    pub metrics: Vec<Metric>,
    /// The windows to fetch, in order: one `None` for `/totals` and `/28hr` (the server's window),
    /// consecutive windows of at most 28 days for `/historical`.
    pub windows: Vec<Option<Window>>,
    /// Time-series jobs: the granularity of the per-Tweet series kept.
    pub series: Option<Granularity>,
}

/// The grouping with each Tweet's series (time-series jobs).
pub const SERIES: &str = "series";
/// The grouping with hourly sums over the request's Tweets (time-series jobs).
pub const HOURLY: &str = "hourly";

/// A problem that would fail every batch alike: the run stops and says why.
#[derive(Debug, Clone, thiserror::Error)]
#[error("the API refused the request ({what}); nothing was marked failed, fix this and run again to resume")]
pub struct Abort {
    /// The server's answer, in short.
    pub what: String,
}

/// How a batch ended.
#[derive(Debug)]
pub enum BatchEnd {
    /// Every ID has an outcome (already sent to the sink).
    Done,
    /// Shutdown was asked during a wait; IDs without an outcome stay pending.
    Interrupted,
    /// A problem that affects every request.
    Abort(Abort),
    /// The API was unreachable for longer than the outage limit (the text says where and why);
    /// IDs without an outcome stay pending and the run stops as interrupted.
    Outage(String),
}

/// Sends batches, with each app's pace and gate.
pub struct Fetcher {
    /// The HTTP client.
    pub client: Client,
    /// Which credentials serve which IDs.
    pub routes: Arc<Routes>,
    /// One lane per app (its gate, pace and counters), in the order of the run's apps.
    pub lanes: Vec<Lane>,
    /// The in-flight limit: told every answer's round-trip time and back-pressure.
    pub concurrency: Arc<Concurrency>,
    /// Where the next bearer request starts looking for an open lane (so they take turns).
    pub next_lane: AtomicUsize,
    /// The breaker that holds every batch while the API cannot be reached.
    pub health: Arc<Health>,
    /// Retry settings.
    pub retry: RetryPolicy,
    /// The job.
    pub job: Job,
    /// Counters.
    pub stats: Arc<FetchStats>,
    /// The wall clock the gate is read with (see [`WallClock`]).
    pub clock: WallClock,
    /// Cancelled when the run stops (a signal, or another stage that failed): no new request starts.
    pub stop: CancellationToken,
}

impl Fetcher {
    /// Fetches one batch through the windows from `first_window` on; each response's outcomes go to
    /// `sink` as one [`Settled`], so the store commits per response. An ID that ends anything but `ok`
    /// in a window is final and leaves the batch; the others go on to the next window.
    pub async fn fetch_batch(
        &self,
        ids: Vec<u64>,
        first_window: usize,
        route: Route,
        sink: &tokio::sync::mpsc::Sender<Settled>,
    ) -> BatchEnd {
        let windows = self.job.windows.len().max(1);
        let origin = ids.first().copied().unwrap_or(0);
        // IDs move on to the next window with the route that served them.
        let mut live = vec![(ids, route)];
        for w in first_window..windows {
            let mut queue = std::mem::take(&mut live);
            while let Some((batch, route)) = queue.pop() {
                match self.fetch_one(w, &batch, route, &mut queue).await {
                    Ok(Answer {
                        outcomes,
                        hourly,
                        messages,
                    }) => {
                        let ok: Vec<u64> = outcomes
                            .iter()
                            .filter(|o| o.status == Status::Ok)
                            .map(|o| o.id)
                            .collect();
                        if !ok.is_empty() {
                            live.push((ok, route));
                        }
                        let settled = Settled {
                            window: w,
                            windows,
                            outcomes,
                            hourly,
                            via: Some(self.routes.via(route).to_string()),
                            origin,
                            messages,
                        };
                        if !settled.outcomes.is_empty() && sink.send(settled).await.is_err() {
                            return BatchEnd::Interrupted;
                        }
                    }
                    Err(end) => return end,
                }
            }
            if live.is_empty() {
                break;
            }
        }
        BatchEnd::Done
    }

    /// Sends one request (with retries) for `batch`; sub-batches still to send go to `queue`.
    async fn fetch_one(
        &self,
        window: usize,
        batch: &[u64],
        route: Route,
        queue: &mut Vec<(Vec<u64>, Route)>,
    ) -> Result<Answer, BatchEnd> {
        if !self.routes.serves(route) {
            let note = format!(
                "no configured account owns it; /{} needs the owner's user context",
                self.job.endpoint
            );
            return Ok(Answer::all(batch, Status::Forbidden, &note));
        }
        let apps = self.routes.apps(route);
        let mut attempt = 0u32;
        // Failures to connect in a row of this batch while the breaker was closed: its backoff only.
        let mut unreachable = 0u32;
        loop {
            let ticket = self.health.pass(&self.stop).await.map_err(|h| match h {
                Halt::Shutdown => BatchEnd::Interrupted,
                Halt::GaveUp(what) => BatchEnd::Outage(what),
            })?;
            let app = self.admit(&apps).await?;
            let lane = &self.lanes[app];
            let credentials = self
                .routes
                .credentials(route, app)
                .expect("an admitted app serves the route");
            let request = self.build(window, batch, credentials.kind()).map_err(|e| {
                lane.gate.release();
                BatchEnd::Abort(Abort {
                    what: format!("invalid request: {e}"),
                })
            })?;
            self.stats.requests.fetch_add(1, Ordering::Relaxed);
            let sent = tokio::time::Instant::now();
            lane.counters.sent(sent);
            self.concurrency.sending();
            let reply = self.client.send(&request, credentials).await;
            let answered = tokio::time::Instant::now();
            // Inside the batch's span (first and last ID, route, window): one event per attempt.
            tracing::debug!(
                attempts_used = attempt,
                window,
                ids = batch.len(),
                app = %lane.spec.name,
                status = ?reply.status,
                "attempt answered"
            );
            let now = self.clock.now();
            let limited = matches!(
                reply.outcome,
                Outcome::Retryable(Retryable::RateLimited { .. })
            );
            lane.gate.observe(&reply.rate, limited, now);
            lane.counters.answered(answered, limited);
            let free = ticket.observe(&Signal::of(&reply));
            // Back-pressure is what asks for less in flight; an attempt that never reached a
            // server says nothing about the API's latency.
            let feedback = match &reply.outcome {
                Outcome::Retryable(
                    Retryable::RateLimited { .. } | Retryable::Server { .. } | Retryable::Timeout,
                ) => Feedback::BackPressure,
                _ if free => Feedback::Unmeasured,
                _ => Feedback::Fine,
            };
            self.concurrency
                .answered(answered - sent, feedback, answered);
            if !free {
                unreachable = 0;
            }
            match reply.outcome {
                Outcome::Success(resp) | Outcome::Partial(resp) => {
                    return Ok(self.outcomes(batch, &resp));
                }
                Outcome::Retryable(Retryable::RateLimited { .. }) => {
                    self.stats.rate_limited.fetch_add(1, Ordering::Relaxed);
                    if reply.rate.reset.is_none() {
                        // No header says when: back off like any transient error, but spend no attempt.
                        let wait = self.retry.delay(attempt.max(1) + 1);
                        lane.gate.close_until(now + wait);
                    }
                }
                Outcome::Retryable(err) if free => {
                    // The service could not be reached: not this batch's fault. While the breaker is
                    // open it does the waiting; before that, back off as for any failure.
                    self.stats.unreachable.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(error = %err, ids = batch.len(), "no connection; retrying batch without using an attempt");
                    if self.health.outage().is_none() {
                        unreachable += 1;
                        self.sleep(self.retry.delay(unreachable)).await?;
                    }
                }
                Outcome::Retryable(err) => {
                    attempt += 1;
                    if attempt >= self.retry.max_attempts {
                        let note = format!("failed after {attempt} attempts: {err}");
                        return Ok(Answer::all(batch, Status::Failed, &note));
                    }
                    self.stats.retries.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(attempt, error = %err, ids = batch.len(), "retrying batch");
                    self.sleep(self.retry.delay(attempt)).await?;
                }
                Outcome::Fatal(Fatal::Forbidden { ids, errors, named }) if !ids.is_empty() => {
                    // A 403 that named no ID refused the whole request: its own words are the note.
                    let why = if named {
                        "forbidden to access this Tweet with these credentials".to_string()
                    } else {
                        Fatal::Forbidden {
                            ids: Vec::new(),
                            errors: errors.clone(),
                            named,
                        }
                        .to_string()
                    };
                    let listed: std::collections::HashSet<u64> = ids.into_iter().collect();
                    let note = errors.join("; ");
                    let (forbidden, rest): (Vec<u64>, Vec<u64>) =
                        batch.iter().partition(|id| listed.contains(id));
                    if forbidden.is_empty() {
                        return Err(BatchEnd::Abort(Abort {
                            what: format!("HTTP 403 naming none of the IDs sent: {note}"),
                        }));
                    }
                    self.stats.splits.fetch_add(1, Ordering::Relaxed);
                    if !rest.is_empty() {
                        queue.push((rest, route));
                    }
                    if let Some(next) = self.routes.after_forbidden(route) {
                        // Public metrics of a Tweet we do not own: the bearer token can serve them.
                        queue.push((forbidden, next));
                        return Ok(Answer::default());
                    }
                    return Ok(Answer::all(&forbidden, Status::Forbidden, &why));
                }
                Outcome::Fatal(Fatal::BadRequest {
                    protected: true, ..
                }) => {
                    if batch.len() == 1 {
                        return Ok(Answer::all(batch, Status::Unavailable, "protected"));
                    }
                    self.stats.splits.fetch_add(1, Ordering::Relaxed);
                    let (a, b) = batch.split_at(batch.len() / 2);
                    queue.push((b.to_vec(), route));
                    queue.push((a.to_vec(), route));
                    return Ok(Answer::default());
                }
                Outcome::Fatal(fatal) => {
                    return Err(BatchEnd::Abort(Abort {
                        what: fatal.to_string(),
                    }));
                }
            }
        }
    }

    fn build(
        &self,
        window: usize,
        batch: &[u64],
        auth: AuthKind,
    ) -> Result<engagement_api::EngagementRequest, engagement_api::RequestError> {
        use GroupBy::*;
        // A bearer token asks for the public metrics of the run only; the others stay empty.
        let allowed = self.job.endpoint.allowed_metrics(auth);
        let mut b = RequestBuilder::new(self.job.endpoint, auth)
            .tweet_ids(batch.iter().copied())
            .metrics(
                self.job
                    .metrics
                    .iter()
                    .copied()
                    .filter(|m| allowed.contains(m)),
            );
        b = match self.job.series {
            None => b.grouping(BY_TWEET, &[TweetId, EngagementType]),
            Some(Granularity::Day) => b.grouping(SERIES, &[TweetId, EngagementType, EngagementDay]),
            Some(Granularity::Hour) => b.grouping(
                SERIES,
                &[TweetId, EngagementType, EngagementDay, EngagementHour],
            ),
        };
        if self.job.series.is_some() {
            b = b.grouping(HOURLY, &[EngagementType, EngagementDay, EngagementHour]);
        }
        if let Some(Some(w)) = self.job.windows.get(window) {
            b = b.start(w.start).end(w.end);
        }
        b.build()
    }

    /// Turns a 200 into one outcome per requested ID, the hourly sums (time series) and the
    /// messages that came with it.
    ///
    /// The partial-result lists are read as the documentation says: `unavailable_tweet_ids` end
    /// `unavailable`; a Tweet in `unsupported_for_impressions_engagements_tweet_ids` (90 days) or
    /// `unsupported_for_video_views_tweet_ids` (1800 days) is `ok` with those metrics not served,
    /// whatever the grouping says for them (the documented answer still lists `"video_views": "0"`,
    /// a zero that is not a count). Metrics the answer carries that the run did not ask for are
    /// not kept, and a message says so.
    fn outcomes(&self, batch: &[u64], resp: &EngagementResponse) -> Answer {
        // Batches are cut from IDs in ascending order, so an ID's place is a binary search; the
        // cells of one Tweet come together, so most lookups are the previous one again.
        let sorted = batch.is_sorted();
        let index: HashMap<u64, usize> = if sorted {
            HashMap::new()
        } else {
            batch.iter().enumerate().map(|(i, id)| (*id, i)).collect()
        };
        let find = |id: u64| -> Option<usize> {
            if sorted {
                batch.binary_search(&id).ok()
            } else {
                index.get(&id).copied()
            }
        };
        let mut last: Option<(u64, usize)> = None;
        let mut place = |id: u64| -> Option<usize> {
            match last {
                Some((l, i)) if l == id => Some(i),
                _ => {
                    let i = find(id)?;
                    last = Some((id, i));
                    Some(i)
                }
            }
        };
        let n = self.job.metrics.len();
        let mut values: Vec<Option<Vec<Option<u64>>>> = vec![None; batch.len()];
        let mut series: Vec<Vec<(usize, i64, u64)>> = vec![Vec::new(); batch.len()];
        let mut positions = [None; Metric::ALL.len()];
        for (k, m) in self.job.metrics.iter().enumerate() {
            positions[*m as usize] = Some(k);
        }
        let metric_pos = |m: Metric| positions[m as usize];
        // Per metric not asked for: the Tweets it came with.
        let mut unrequested: Vec<(Metric, Vec<u64>)> = Vec::new();
        let name = if self.job.series.is_some() {
            SERIES
        } else {
            BY_TWEET
        };
        if let Some(g) = resp.grouping(name) {
            for cell in &g.cells {
                let (Some(id), Some(m)) = (cell.tweet_id, cell.metric) else {
                    continue;
                };
                let Some(i) = place(id) else {
                    continue;
                };
                let Some(k) = metric_pos(m) else {
                    note_unrequested(&mut unrequested, m, id);
                    continue;
                };
                let row = values[i].get_or_insert_with(|| vec![None; n]);
                row[k] = Some(row[k].unwrap_or(0) + cell.value);
                if let (Some(day), true) = (cell.day, cell.value > 0) {
                    series[i].push((k, bucket(day, cell.hour), cell.value));
                }
            }
        }
        let mut hourly = Vec::new();
        if let Some(g) = resp.grouping(HOURLY) {
            for cell in &g.cells {
                if let (Some(m), Some(day), true) = (cell.metric, cell.day, cell.value > 0) {
                    if let Some(k) = metric_pos(m) {
                        hourly.push((k, bucket(day, cell.hour), cell.value));
                    }
                }
            }
        }
        // The age rules that apply to each ID, for the metrics this run asked for.
        let mut rules = vec![NotServed::NONE; batch.len()];
        for (rule, list) in [
            (
                AgeRule::Days90,
                &resp.unsupported_for_impressions_engagements_tweet_ids,
            ),
            (
                AgeRule::Days1800,
                &resp.unsupported_for_video_views_tweet_ids,
            ),
        ] {
            if !self.job.metrics.iter().any(|m| rule.covers(*m)) {
                continue;
            }
            for i in list.iter().filter_map(|&id| find(id)) {
                rules[i] = rules[i].with(rule);
            }
        }
        let unavailable: std::collections::HashSet<u64> =
            resp.unavailable_tweet_ids.iter().copied().collect();
        let metrics = &self.job.metrics;
        let outcomes = batch
            .iter()
            .zip(values)
            .zip(series)
            .zip(rules)
            .map(|(((&id, v), mut series), not_served)| match v {
                _ if unavailable.contains(&id) => {
                    IdOutcome::final_status(id, Status::Unavailable, "deleted or no longer public")
                }
                // A Tweet too old for every metric asked may have no cell at all.
                None if !not_served.is_empty() => IdOutcome {
                    id,
                    status: Status::Ok,
                    values: vec![None; n],
                    note: None,
                    series: Vec::new(),
                    not_served,
                },
                Some(mut values) => {
                    if !not_served.is_empty() {
                        for (k, m) in metrics.iter().enumerate() {
                            if not_served.rule_for(*m).is_some() {
                                values[k] = None;
                            }
                        }
                        series.retain(|(k, _, _)| not_served.rule_for(metrics[*k]).is_none());
                    }
                    IdOutcome {
                        id,
                        status: Status::Ok,
                        values,
                        note: None,
                        series,
                        not_served,
                    }
                }
                None => {
                    IdOutcome::final_status(id, Status::Failed, "absent from a successful response")
                }
            })
            .collect();
        let mut messages = api_messages(batch, resp, find);
        for (m, ids) in unrequested {
            messages.push(Message {
                text: format!(
                    "the API returned {m}, which this run did not ask for; not kept (add it to --metrics to keep it)"
                ),
                source: MessageSource::Engage,
                ids,
            });
        }
        Answer {
            outcomes,
            hourly,
            messages,
        }
    }

    /// Waits until one of `apps` (indexes of lanes) admits a request under its gate and its pace;
    /// returns that app. One app waits as it always did: for its gate, then for its pace. Several
    /// take turns in where they start looking, so bearer batches spread over every budget.
    async fn admit(&self, apps: &[usize]) -> Result<usize, BatchEnd> {
        if let [app] = apps {
            let lane = &self.lanes[*app];
            loop {
                if self.stop.is_cancelled() {
                    return Err(BatchEnd::Interrupted);
                }
                match lane.gate.try_admit(self.clock.now()) {
                    Admit::Go => break,
                    Admit::WaitUntil(t) => {
                        let d = t.duration_since(self.clock.now()).unwrap_or_default();
                        self.sleep(d).await?;
                    }
                }
            }
            if let Some(pace) = &lane.pace {
                tokio::select! {
                    _ = pace.until_ready() => {}
                    _ = self.stop.cancelled() => { lane.gate.release(); return Err(BatchEnd::Interrupted) }
                }
            }
            return Ok(*app);
        }
        use governor::clock::Clock;
        let clock = governor::clock::DefaultClock::default();
        loop {
            if self.stop.is_cancelled() {
                return Err(BatchEnd::Interrupted);
            }
            let first = self.next_lane.fetch_add(1, Ordering::Relaxed);
            let now = self.clock.now();
            // Looked at again after at most this long, whatever the lanes say.
            let mut wait = Duration::from_millis(250);
            for k in 0..apps.len() {
                let app = apps[(first + k) % apps.len()];
                let lane = &self.lanes[app];
                match lane.gate.try_admit(now) {
                    Admit::Go => match lane.pace.as_ref().map(|p| p.check()) {
                        None | Some(Ok(())) => return Ok(app),
                        Some(Err(later)) => {
                            lane.gate.release();
                            wait = wait.min(later.wait_time_from(clock.now()));
                        }
                    },
                    Admit::WaitUntil(t) => {
                        wait = wait.min(t.duration_since(now).unwrap_or_default());
                    }
                }
            }
            self.sleep(wait.max(Duration::from_millis(1))).await?;
        }
    }

    async fn sleep(&self, d: Duration) -> Result<(), BatchEnd> {
        tokio::select! {
            _ = tokio::time::sleep(d) => Ok(()),
            _ = self.stop.cancelled() => Err(BatchEnd::Interrupted),
        }
    }
}

/// Adds `id` to the Tweets that came with the unrequested metric `m` (cells of one Tweet come
/// together, so a repeat is the last one pushed).
fn note_unrequested(unrequested: &mut Vec<(Metric, Vec<u64>)>, m: Metric, id: u64) {
    let at = match unrequested.iter().position(|(x, _)| *x == m) {
        Some(at) => at,
        None => {
            unrequested.push((m, Vec::new()));
            unrequested.len() - 1
        }
    };
    let ids = &mut unrequested[at].1;
    if ids.last() != Some(&id) && !ids.contains(&id) {
        ids.push(id);
    }
}

/// The `errors` strings of a 200, each once, with the IDs of the request it is about: the list it
/// goes with for the documented messages (unavailable, 90 days, video views), else the request's
/// IDs its text names, else every ID of the request.
fn api_messages(
    batch: &[u64],
    resp: &EngagementResponse,
    find: impl Fn(u64) -> Option<usize>,
) -> Vec<Message> {
    let mut out: Vec<Message> = Vec::new();
    for text in &resp.errors {
        if out.iter().any(|m| &m.text == text) {
            continue;
        }
        let lower = text.to_ascii_lowercase();
        let list = if lower.contains("unavailable") {
            Some(&resp.unavailable_tweet_ids)
        } else if lower.contains("impressions") && lower.contains("90 days") {
            Some(&resp.unsupported_for_impressions_engagements_tweet_ids)
        } else if lower.contains("video") {
            Some(&resp.unsupported_for_video_views_tweet_ids)
        } else {
            None
        };
        let mut ids: Vec<u64> = match list {
            Some(list) if !list.is_empty() => list
                .iter()
                .copied()
                .filter(|id| find(*id).is_some())
                .collect(),
            _ => text
                .split(|c: char| !c.is_ascii_digit())
                .filter_map(engagement_api::request::parse_id)
                .filter(|id| find(*id).is_some())
                .collect(),
        };
        if ids.is_empty() {
            ids = batch.to_vec();
        }
        ids.sort_unstable();
        ids.dedup();
        out.push(Message {
            text: text.clone(),
            source: MessageSource::Api,
            ids,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gate::Gate;

    /// A fetcher that never reaches a server: enough to drive its waits.
    fn idle_fetcher(gate: Arc<Gate>, stop: CancellationToken) -> Fetcher {
        use engagement_api::auth::BearerToken;
        use engagement_api::client::ClientConfig;
        let client = Client::new(ClientConfig {
            base_url: "http://127.0.0.1:9".into(),
            ..ClientConfig::default()
        })
        .unwrap();
        Fetcher {
            client,
            routes: Arc::new(Routes::bearer_only(
                Endpoint::Totals,
                BearerToken("t".to_string()),
            )),
            lanes: vec![Lane {
                spec: crate::apps::AppSpec::single(None).remove(0),
                gate,
                pace: None,
                counters: Arc::default(),
            }],
            concurrency: Concurrency::fixed(1),
            next_lane: AtomicUsize::new(0),
            health: Arc::new(crate::health::Health::default()),
            retry: RetryPolicy::default(),
            job: Job {
                endpoint: Endpoint::Totals,
                metrics: vec![],
                windows: vec![None],
                series: None,
            },
            stats: Arc::default(),
            clock: WallClock::new(),
            stop,
        }
    }

    /// The documentation's partial answers, read as it says: a Tweet in an unsupported list is
    /// `ok` with those metrics not served (the documented `"video_views": "0"` is not kept as a
    /// count), a Tweet too old for every metric asked is `ok` without values, an unrequested metric
    /// is not kept but said, and each `errors` string is kept with the IDs it is about.
    #[test]
    fn partial_answers_keep_what_was_not_served_and_every_message() {
        use engagement_api::request::Grouping;
        let mut f = idle_fetcher(Arc::new(Gate::new()), CancellationToken::new());
        f.job.metrics = vec![
            Metric::Impressions,
            Metric::Engagements,
            Metric::Favorites,
            Metric::VideoViews,
        ];
        let body = br#"{
          "errors": ["Impressions & engagements for tweets older than 90 days (2026-09-02 - 2026-12-01) are not supported",
                     "1 Tweet ID(s) are unavailable",
                     "Some numbers are being recomputed"],
          "unsupported_for_impressions_engagements_tweet_ids": ["20", "30", "40"],
          "unsupported_for_video_views_tweet_ids": ["30"],
          "unavailable_tweet_ids": ["50"],
          "by_tweet": {
            "10": {"impressions": "5310", "engagements": 233, "favorites": "57", "video_views": "9", "quote_tweets": "4"},
            "20": {"favorites": "18", "video_views": "12", "quote_tweets": "1"},
            "30": {"favorites": 6, "video_views": "0"}
          }
        }"#;
        let groupings = [Grouping {
            name: BY_TWEET.into(),
            group_by: vec![GroupBy::TweetId, GroupBy::EngagementType],
        }];
        let resp = engagement_api::response::parse_response(body, &groupings).unwrap();
        let a = f.outcomes(&[10, 20, 30, 40, 50], &resp);
        let by_id = |id: u64| a.outcomes.iter().find(|o| o.id == id).unwrap();
        assert_eq!(
            by_id(10).values,
            vec![Some(5310), Some(233), Some(57), Some(9)]
        );
        assert!(by_id(10).not_served.is_empty());
        assert_eq!(by_id(20).values, vec![None, None, Some(18), Some(12)]);
        assert_eq!(by_id(20).not_served, NotServed::NONE.with(AgeRule::Days90));
        assert_eq!(
            by_id(30).values,
            vec![None, None, Some(6), None],
            "the documented video_views 0 is not a count"
        );
        assert!(
            by_id(30).not_served.has(AgeRule::Days90)
                && by_id(30).not_served.has(AgeRule::Days1800)
        );
        assert_eq!(
            (by_id(40).status, by_id(40).values.clone()),
            (Status::Ok, vec![None; 4])
        );
        assert_eq!(by_id(50).status, Status::Unavailable);
        let said: Vec<(&str, MessageSource, Vec<u64>)> = a
            .messages
            .iter()
            .map(|m| (m.text.as_str(), m.source, m.ids.clone()))
            .collect();
        assert_eq!(
            said,
            vec![
                ("Impressions & engagements for tweets older than 90 days (2026-09-02 - 2026-12-01) are not supported", MessageSource::Api, vec![20, 30, 40]),
                ("1 Tweet ID(s) are unavailable", MessageSource::Api, vec![50]),
                ("Some numbers are being recomputed", MessageSource::Api, vec![10, 20, 30, 40, 50]),
                ("the API returned quote_tweets, which this run did not ask for; not kept (add it to --metrics to keep it)", MessageSource::Engage, vec![10, 20]),
            ]
        );
        // Without the lists, a Tweet with no cell is still what it was: absent from the answer.
        let plain = engagement_api::response::parse_response(
            br#"{"by_tweet": {"10": {"favorites": "1"}}}"#,
            &groupings,
        )
        .unwrap();
        let b = f.outcomes(&[10, 40], &plain);
        assert_eq!(b.outcomes[1].status, Status::Failed);
        assert!(b.messages.is_empty());
    }

    /// A gate closed until a reset half a minute away holds every batch exactly that long (plus the
    /// reset margin), in tokio's paused time: no wall-clock sleep in the test.
    #[tokio::test(start_paused = true)]
    async fn a_closed_gate_holds_a_batch_until_its_reset() {
        let gate = Arc::new(Gate::new());
        let f = idle_fetcher(gate.clone(), CancellationToken::new());
        gate.close_until(f.clock.now() + Duration::from_secs(30));
        let t0 = tokio::time::Instant::now();
        f.admit(&[0]).await.expect("admitted after the reset");
        let waited = t0.elapsed();
        assert!(
            waited >= Duration::from_secs(30) && waited <= Duration::from_millis(30_100),
            "{waited:?}"
        );
        // Open now: the next batch goes at once.
        let t1 = tokio::time::Instant::now();
        f.admit(&[0]).await.unwrap();
        assert_eq!(t1.elapsed(), Duration::ZERO);
    }

    /// A stop during the wait ends it at once, with the batch interrupted (its IDs stay pending).
    #[tokio::test(start_paused = true)]
    async fn a_stop_ends_the_wait_for_the_gate() {
        let gate = Arc::new(Gate::new());
        let stop = CancellationToken::new();
        let f = Arc::new(idle_fetcher(gate.clone(), stop.clone()));
        gate.close_until(f.clock.now() + Duration::from_secs(3600));
        let waiter = {
            let f = f.clone();
            tokio::spawn(async move { f.admit(&[0]).await })
        };
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert!(!waiter.is_finished());
        let t0 = tokio::time::Instant::now();
        stop.cancel();
        assert!(matches!(waiter.await.unwrap(), Err(BatchEnd::Interrupted)));
        assert_eq!(t0.elapsed(), Duration::ZERO);
    }

    /// The backoff between attempts is slept in tokio time: attempt n waits between half and all of
    /// base·2^(n-1), capped.
    #[tokio::test(start_paused = true)]
    async fn backoff_sleeps_are_the_policys_delays() {
        let f = idle_fetcher(Arc::new(Gate::new()), CancellationToken::new());
        for attempt in 1..=4u32 {
            let t0 = tokio::time::Instant::now();
            f.sleep(f.retry.delay(attempt)).await.unwrap();
            let full = f.retry.base * (1 << (attempt - 1));
            let slept = t0.elapsed();
            assert!(
                slept >= full / 2 && slept <= full,
                "attempt {attempt}: {slept:?}"
            );
        }
    }

    #[test]
    fn backoff_doubles_with_jitter_and_caps() {
        let p = RetryPolicy {
            max_attempts: 5,
            base: Duration::from_millis(100),
            cap: Duration::from_secs(1),
        };
        for _ in 0..50 {
            let d1 = p.delay(1);
            assert!(
                d1 >= Duration::from_millis(50) && d1 <= Duration::from_millis(100),
                "{d1:?}"
            );
            let d3 = p.delay(3);
            assert!(
                d3 >= Duration::from_millis(200) && d3 <= Duration::from_millis(400),
                "{d3:?}"
            );
            let d30 = p.delay(30);
            assert!(
                d30 >= Duration::from_millis(500) && d30 <= Duration::from_secs(1),
                "{d30:?}"
            );
        }
    }
}

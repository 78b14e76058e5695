//! The fetch stage: batches in flight up to the run's limit (fixed, or adaptive: see
//! [`crate::concurrency`]), each through [`Fetcher::fetch_batch`] (the paces, the gates and every
//! retry rule live there), each response's [`Settled`] handed to the writer.

use std::sync::Arc;

use futures::StreamExt;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::fetch::{Abort, BatchEnd, Fetcher};
use crate::outcome::Settled;
use crate::route::Route;

/// IDs to fetch together, from the batcher.
#[derive(Debug)]
pub struct Batch {
    /// Ascending Tweet IDs, at most the endpoint's batch size.
    pub ids: Vec<u64>,
    /// The window they start at (IDs of a resumed multi-window run may have done some).
    pub window: usize,
    /// The credentials that serve them.
    pub route: Route,
}

/// How the fetch stage ended.
#[derive(Debug)]
pub enum FetchEnd {
    /// Every batch the batcher sent has its outcomes.
    Complete,
    /// The run was stopped; the batches not fetched stay pending.
    Stopped,
    /// A problem that would fail every request alike; the run is stopped.
    Abort(Abort),
}

/// Fetches every batch from `batches`, as many at a time as the limit allows, until the batcher is
/// done or the run stops. An abort cancels `stop`, so the other stages stop too.
pub async fn run(
    fetcher: Arc<Fetcher>,
    batches: mpsc::Receiver<Batch>,
    settled: mpsc::Sender<Settled>,
    stop: CancellationToken,
) -> FetchEnd {
    let limit = fetcher.concurrency.clone();
    let most = limit.max();
    // A batch is taken from the batcher only with a permit in hand, which its task holds to the end.
    let batches = futures::stream::unfold(batches, move |mut rx| {
        let limit = limit.clone();
        async move {
            let permit = limit.acquire().await;
            rx.recv().await.map(|b| ((b, permit), rx))
        }
    });
    let ends = batches
        .map(|(batch, permit)| {
            let (f, tx) = (fetcher.clone(), settled.clone());
            let span = tracing::debug_span!(
                "batch",
                first = batch.ids.first().copied().unwrap_or(0),
                last = batch.ids.last().copied().unwrap_or(0),
                ids = batch.ids.len(),
                window = batch.window,
                route = ?batch.route,
            );
            // Spawned, so that answers are decoded and parsed on every worker thread rather than all
            // on the thread that drives this loop.
            let task = tokio::spawn(
                async move {
                    let end = f
                        .fetch_batch(batch.ids, batch.window, batch.route, &tx)
                        .await;
                    drop(permit);
                    end
                }
                .instrument(span),
            );
            async move {
                task.await.unwrap_or_else(|e| {
                    BatchEnd::Abort(Abort {
                        what: format!("internal error: a fetch task failed: {e}"),
                    })
                })
            }
        })
        .buffer_unordered(most);
    let mut ends = std::pin::pin!(ends);
    let mut end = FetchEnd::Complete;
    while let Some(e) = ends.next().await {
        match e {
            BatchEnd::Done => {}
            BatchEnd::Interrupted => {
                if matches!(end, FetchEnd::Complete) {
                    end = FetchEnd::Stopped;
                }
            }
            // Unreachable for longer than the limit: stop as a shutdown does, IDs left pending (the
            // breaker keeps why, for the message).
            BatchEnd::Outage(_) => {
                if matches!(end, FetchEnd::Complete) {
                    end = FetchEnd::Stopped;
                }
                stop.cancel();
            }
            BatchEnd::Abort(a) => {
                tracing::error!("{a}");
                if !matches!(end, FetchEnd::Abort(_)) {
                    end = FetchEnd::Abort(a);
                }
                stop.cancel();
            }
        }
    }
    if stop.is_cancelled() && matches!(end, FetchEnd::Complete) {
        end = FetchEnd::Stopped;
    }
    end
}

//! What a fetch settles about each Tweet ID: the vocabulary the fetcher produces and the store keeps.
//!
//! Neither side owns it: the fetcher (`crate::fetch`) turns API responses into [`Settled`] records
//! without knowing how they are stored, and the store (`crate::store`) writes them without knowing how
//! they were fetched.

/// The final (or pending) state of one unique Tweet ID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// Not fetched yet (or its batch was in flight when the process stopped).
    Pending,
    /// Fetched; metrics stored.
    Ok,
    /// Deleted, no longer public, or protected.
    Unavailable,
    /// The credentials used may not read it (`Forbidden to access tweets`).
    Forbidden,
    /// Retries exhausted; the last error is kept.
    Failed,
}

impl Status {
    /// Every final status, in report order.
    pub const FINAL: [Status; 4] = [
        Status::Ok,
        Status::Unavailable,
        Status::Forbidden,
        Status::Failed,
    ];

    /// The value stored in the `status` column.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Ok => "ok",
            Status::Unavailable => "unavailable",
            Status::Forbidden => "forbidden",
            Status::Failed => "failed",
        }
    }

    /// The status of a stored `outcomes` row (the table's CHECK allows only final ones).
    pub(crate) fn stored(s: &str) -> Status {
        match s {
            "ok" => Status::Ok,
            other => Status::parse(other).unwrap_or(Status::Failed),
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Status> {
        [
            Status::Pending,
            Status::Ok,
            Status::Unavailable,
            Status::Forbidden,
            Status::Failed,
        ]
        .into_iter()
        .find(|x| x.as_str() == s)
    }
}

/// One outcome to record.
#[derive(Debug, Clone, PartialEq)]
pub struct IdOutcome {
    /// The Tweet.
    pub id: u64,
    /// Its final status (never `Pending`).
    pub status: Status,
    /// Metric values in the run's metric order (`Ok` only; `None` where the API gave none).
    pub values: Vec<Option<u64>>,
    /// Why, for anything but `Ok` (the last error for `Failed`).
    pub note: Option<String>,
    /// Time-series jobs: this window's non-zero buckets, (metric index in run order, bucket start as
    /// Unix seconds, value).
    pub series: Vec<(usize, i64, u64)>,
}

impl IdOutcome {
    /// A final outcome other than `Ok`.
    pub fn final_status(id: u64, status: Status, note: impl Into<String>) -> IdOutcome {
        IdOutcome {
            id,
            status,
            values: Vec::new(),
            note: Some(note.into()),
            series: Vec::new(),
        }
    }
}

/// What one API response settled: the fetcher's result, which the store writes in one transaction.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Settled {
    /// Index of the window the response covers (0 for single-window jobs).
    pub window: usize,
    /// Number of windows of the run: an `Ok` becomes final with the last one.
    pub windows: usize,
    /// One outcome per ID settled by the response.
    pub outcomes: Vec<IdOutcome>,
    /// Sums over the response's Tweets per hour: (metric index, hour start as Unix seconds, value).
    pub hourly: Vec<(usize, i64, u64)>,
    /// Which credentials answered: an account's name, or `bearer` (kept for `ok` IDs).
    pub via: Option<String>,
    /// The lowest ID of the batch the response belongs to (its sub-batches and later windows
    /// included): what the resume watermark is counted by.
    pub origin: u64,
}

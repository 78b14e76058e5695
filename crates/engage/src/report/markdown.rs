//! `top.md`: the Markdown report, also what the terminal shows at the end of a run.

use super::summary::{RateFigures, Summary};
use crate::groups::RATE_SCALE;

impl Summary {
    /// The Markdown report (also what the terminal shows).
    pub fn to_markdown(&self) -> String {
        let mut s = String::new();
        s.push_str(&format!(
            "# Top {} per metric — /{}\n\n",
            self.top_n, self.endpoint
        ));
        if let Some(what) = self.unfinished() {
            s.push_str(&format!(
                "**Partial report:** the run is not finished: {what}. The numbers cover the IDs \
                 fetched so far.\n\n"
            ));
        }
        s.push_str(&self.counts_sentence());
        s.push_str("\n\n");
        for d in &self.damaged_inputs {
            s.push_str(&format!(
                "**Not read to its end:** `{}`: {}; the rest of it was not read.\n\n",
                d.source, d.reason
            ));
        }
        if !self.accounts_used.is_empty() {
            let n = self.accounts_used.len();
            s.push_str(&format!(
                "{n} owner account{} used ({}).\n\n",
                if n == 1 { "" } else { "s" },
                self.accounts_used.join(", ")
            ));
        }
        if let Some(line) = self.not_served_sentence() {
            s.push_str(&line);
            s.push_str("\n\n");
        }
        s.push_str("## Totals\n\n| metric | total | over Tweets |\n|---|---:|---:|\n");
        for (i, m) in self.metrics.iter().enumerate() {
            s.push_str(&format!(
                "| {} | {} | {} |\n",
                m, self.totals[i], self.served[i]
            ));
        }
        if let Some(r) = &self.rate {
            s.push_str(&rate_markdown(r));
        }
        if !self.groups.is_empty() {
            s.push_str(&self.groups_markdown());
        }
        if !self.messages.is_empty() {
            s.push_str(
                "\n## Messages that came with the answers\n\n| message | from | responses | IDs |\n|---|---|---:|---:|\n",
            );
            for m in &self.messages {
                s.push_str(&format!(
                    "| {} | {} | {} | {} |\n",
                    m.shown().replace('|', "\\|"),
                    m.source.as_str(),
                    m.responses,
                    m.ids
                ));
            }
        }
        for (i, m) in self.metrics.iter().enumerate() {
            s.push_str(&format!("\n## {m}\n\n"));
            if self.top[i].is_empty() {
                s.push_str("No Tweet has a non-zero value.\n");
                continue;
            }
            s.push_str("| rank | tweet | value |\n|---:|---|---:|\n");
            for (rank, (id, v)) in self.top[i].iter().enumerate() {
                s.push_str(&format!(
                    "| {} | [{id}]({}) | {v} |\n",
                    rank + 1,
                    super::summary::tweet_url(*id)
                ));
            }
        }
        s
    }
}

/// A rate as a percentage with two decimals.
pub(super) fn percent(rate: f64) -> String {
    format!("{:.2} %", rate * 100.0)
}

/// The engagement rate section: the overall rate and the best Tweets.
fn rate_markdown(r: &RateFigures) -> String {
    let mut s = format!(
        "\n## Engagement rate\n\nEngagements / impressions over the {} Tweets with both served: {}. \
         Tweets are ranked with at least {} impressions.\n\n",
        r.tweets,
        r.overall().map_or("—".to_string(), percent),
        r.min_impressions
    );
    if r.top.is_empty() {
        s.push_str("No Tweet has enough impressions to be ranked.\n");
        return s;
    }
    s.push_str("| rank | tweet | rate |\n|---:|---|---:|\n");
    for (rank, (id, v)) in r.top.iter().enumerate() {
        s.push_str(&format!(
            "| {} | [{id}]({}) | {} |\n",
            rank + 1,
            super::summary::tweet_url(*id),
            percent(*v as f64 / RATE_SCALE as f64)
        ));
    }
    s
}

impl Summary {
    /// The comparison of the groups: their counts and rates, what each lacks, and per metric each
    /// group's total, per Tweet and share.
    fn groups_markdown(&self) -> String {
        let mut s = format!(
            "\n## Groups compared\n\n{} groups. {}\n\n",
            self.groups.len(),
            self.several_sentence()
        );
        let rate = self.rate.is_some();
        s.push_str("| group | unique IDs | ok | unavailable | forbidden | failed | pending |");
        s.push_str(if rate { " engagement rate |\n" } else { "\n" });
        s.push_str("|---|---:|---:|---:|---:|---:|---:|");
        s.push_str(if rate { "---:|\n" } else { "\n" });
        for g in &self.groups {
            let c = &g.status;
            s.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} | {} |",
                g.name.replace('|', "\\|"),
                c.unique(),
                c.ok,
                c.unavailable,
                c.forbidden,
                c.failed,
                c.pending
            ));
            if let Some(r) = &g.rate {
                s.push_str(&format!(
                    " {} |",
                    r.overall().map_or("—".to_string(), percent)
                ));
            }
            s.push('\n');
        }
        let lacks = self.groups_lacking();
        if !lacks.is_empty() {
            s.push('\n');
            for line in lacks {
                s.push_str(&format!("- {line}\n"));
            }
        }
        for (i, m) in self.metrics.iter().enumerate() {
            let sum: u64 = self.groups.iter().map(|g| g.totals[i]).sum();
            s.push_str(&format!(
                "\n### {m} by group\n\n| group | total | over Tweets | per Tweet | share |\n|---|---:|---:|---:|---:|\n"
            ));
            for g in &self.groups {
                s.push_str(&format!(
                    "| {} | {} | {} | {} | {} |\n",
                    g.name.replace('|', "\\|"),
                    g.totals[i],
                    g.served[i],
                    g.mean(i).map_or("—".to_string(), |x| format!("{x:.2}")),
                    share(g.totals[i], sum)
                ));
            }
        }
        s
    }
}

/// `part` as a share of `whole`, in percent with one decimal (`—` when there is nothing).
pub(super) fn share(part: u64, whole: u64) -> String {
    if whole == 0 {
        return "—".to_string();
    }
    format!("{:.1} %", part as f64 * 100.0 / whole as f64)
}

#[cfg(test)]
mod tests {
    use engagement_api::Endpoint;

    use super::*;
    use crate::report::fixture::{grouped_store, store_with, METRICS};
    use crate::report::write_reports;
    use crate::store::IngestCounts;

    /// Snapshots compare without trailing newlines; the file ends with exactly one.
    fn assert_one_final_newline(md: &str) {
        assert!(
            md.ends_with('\n') && !md.ends_with("\n\n"),
            "{:?}",
            &md[md.len().saturating_sub(20)..]
        );
    }

    /// A run with groups: the comparison section lists each group's counts and, per metric, its
    /// total, the Tweets it is over, per Tweet and share; the shares add up to 100 %.
    #[test]
    fn top_md_compares_the_groups() {
        let d = tempfile::tempdir().unwrap();
        let s = grouped_store(d.path(), 300, false);
        let out = d.path().join("out");
        let (summary, _) = write_reports(&out, &s, Endpoint::Totals, &METRICS, 5, None).unwrap();
        let md = std::fs::read_to_string(out.join("top.md")).unwrap();
        let section = &md[md.find("\n## Groups compared\n").expect("the section")..];
        let several = (1..=300u64).filter(|k| k % 2 == 0 || k % 3 == 0).count();
        assert!(
            section.contains(&format!("{several} Tweets are in two groups or more")),
            "{section}"
        );
        for (i, m) in METRICS.iter().enumerate() {
            let table = &section[section.find(&format!("### {m} by group")).unwrap()..];
            let mut shares = 0.0;
            for g in &summary.groups {
                let row = table
                    .lines()
                    .find(|l| l.starts_with(&format!("| {} |", g.name)))
                    .unwrap_or_else(|| panic!("{} in {table}", g.name));
                let cells: Vec<&str> = row.split('|').map(str::trim).collect();
                assert_eq!(cells[2], g.totals[i].to_string(), "{row}");
                assert_eq!(cells[3], g.served[i].to_string(), "{row}");
                assert_eq!(cells[4], format!("{:.2}", g.mean(i).unwrap()), "{row}");
                shares += cells[5].trim_end_matches(" %").parse::<f64>().unwrap();
            }
            assert!((shares - 100.0).abs() < 0.2, "{m}: {shares}");
        }
        assert_one_final_newline(&md);
    }

    /// `top.md` of a run cut short: a tenth of the IDs still pending (so the page opens with the
    /// partial-report line), some unavailable or failed, lines rejected and duplicated, and two
    /// owner accounts besides the bearer token. The file the run writes is the same text.
    #[test]
    fn top_md_of_an_unfinished_run() {
        let d = tempfile::tempdir().unwrap();
        let ingest = IngestCounts {
            input_lines: 640,
            rejected_lines: 25,
            duplicate_ids: 15,
        };
        let s = store_with(
            d.path(),
            600,
            true,
            Some(ingest),
            &["bearer", "brand", "support"],
            false,
        );
        let md = Summary::from_store(&s, Endpoint::Totals, &METRICS, 5)
            .unwrap()
            .to_markdown();
        insta::assert_snapshot!("top_md_unfinished", md);
        assert_one_final_newline(&md);

        let out = d.path().join("out");
        write_reports(&out, &s, Endpoint::Totals, &METRICS, 5, None).unwrap();
        assert_eq!(std::fs::read_to_string(out.join("top.md")).unwrap(), md);
    }

    /// `top.md` of a finished run answered by the bearer token only: no partial-report line, no
    /// pending count, no accounts line.
    #[test]
    fn top_md_of_a_finished_run() {
        let d = tempfile::tempdir().unwrap();
        let ingest = IngestCounts {
            input_lines: 41,
            rejected_lines: 1,
            duplicate_ids: 0,
        };
        let s = store_with(d.path(), 40, false, Some(ingest), &["bearer"], false);
        let md = Summary::from_store(&s, Endpoint::Totals, &METRICS, 3)
            .unwrap()
            .to_markdown();
        insta::assert_snapshot!("top_md_finished", md);
        assert_one_final_newline(&md);
    }
}

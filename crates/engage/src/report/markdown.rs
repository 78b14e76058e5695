//! `top.md`: the Markdown report, also what the terminal shows at the end of a run.

use super::summary::Summary;

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
        s.push_str("## Totals\n\n| metric | total |\n|---|---:|\n");
        for (i, m) in self.metrics.iter().enumerate() {
            s.push_str(&format!("| {} | {} |\n", m, self.totals[i]));
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
                    "| {} | [{id}](https://x.com/i/web/status/{id}) | {v} |\n",
                    rank + 1
                ));
            }
        }
        s
    }
}

//! Scenario results: a small aligned table for people, then one JSON line
//! (`{"scenario": ..., ...}`) for scripts.

use serde_json::{Map, Value};

use crate::proc_stats::Usage;

/// The numbers one scenario run produced, in insertion order.
#[derive(Debug)]
pub(crate) struct Report {
    scenario: &'static str,
    rows: Vec<(String, Value)>,
}

impl Report {
    /// An empty report for `scenario`.
    pub(crate) fn new(scenario: &'static str) -> Report {
        Report {
            scenario,
            rows: Vec::new(),
        }
    }

    /// Add (or replace) one number or string.
    pub(crate) fn add(&mut self, key: &str, value: impl Into<Value>) -> &mut Report {
        let value = value.into();
        match self.rows.iter_mut().find(|(k, _)| k == key) {
            Some(row) => row.1 = value,
            None => self.rows.push((key.to_owned(), value)),
        }
        self
    }

    /// Add a float rounded to `digits` decimals.
    pub(crate) fn add_f(&mut self, key: &str, value: f64, digits: i32) -> &mut Report {
        let scale = 10f64.powi(digits);
        let rounded = (value * scale).round() / scale;
        match serde_json::Number::from_f64(rounded) {
            Some(n) => self.add(key, Value::Number(n)),
            None => self.add(key, Value::Null),
        }
    }

    /// Add a server's CPU and RSS usage under `prefix` (`server`/`client`),
    /// plus `per_cpu_key` = `count / cpu_s` when a count is given.
    pub(crate) fn add_usage(
        &mut self,
        prefix: &str,
        usage: Option<Usage>,
        wall_s: f64,
    ) -> &mut Report {
        let Some(usage) = usage else {
            return self;
        };
        self.add_f(&format!("{prefix}_cpu_s"), usage.cpu_s, 2);
        self.add_f(&format!("{prefix}_sys_s"), usage.sys_s, 2);
        if wall_s > 0.0 {
            self.add_f(
                &format!("{prefix}_cpu_pct"),
                100.0 * usage.cpu_s / wall_s,
                1,
            );
        }
        self.add(&format!("{prefix}_rss_before_kib"), usage.rss_before_kib);
        self.add(&format!("{prefix}_rss_after_kib"), usage.rss_after_kib)
    }

    /// The value under `key`.
    #[cfg(test)]
    pub(crate) fn get(&self, key: &str) -> Option<&Value> {
        self.rows.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// The table, one `key  value` line per row.
    pub(crate) fn table(&self) -> String {
        let width = self.rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
        let mut out = format!("== {} ==\n", self.scenario);
        for (key, value) in &self.rows {
            let shown = match value {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            out.push_str(&format!("{key:<width$}  {shown}\n"));
        }
        out
    }

    /// The machine-readable line.
    pub(crate) fn json_line(&self) -> String {
        let mut map = Map::new();
        map.insert("scenario".into(), Value::String(self.scenario.into()));
        for (key, value) in &self.rows {
            map.insert(key.clone(), value.clone());
        }
        Value::Object(map).to_string()
    }

    /// Print the table, then the JSON line, to stdout.
    pub(crate) fn print(&self) {
        print!("{}", self.table());
        println!("{}", self.json_line());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_and_json_line() {
        let mut report = Report::new("fanout");
        report
            .add("subs", 5000)
            .add_f("p99_ms", 12.3456, 2)
            .add("subs", 4999);
        assert_eq!(report.get("subs"), Some(&Value::from(4999)));
        assert_eq!(
            report.table(),
            "== fanout ==\nsubs    4999\np99_ms  12.35\n"
        );
        let line: Value = serde_json::from_str(&report.json_line()).unwrap();
        assert_eq!(line["scenario"], "fanout");
        assert_eq!(line["p99_ms"], 12.35);
    }
}

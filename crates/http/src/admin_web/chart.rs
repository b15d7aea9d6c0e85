//! Throughput charts drawn on the server as SVG: no chart library to ship,
//! nothing for the CSP to allow, readable without script.

use bizcontacts_queue::monitor::Bucket;
use chrono::{DateTime, Duration, DurationRound, Utc};
use maud::{html, Markup};

const W: f64 = 216.0;
const H: f64 = 36.0;

/// Bars of finished jobs per bucket (succeeded, with failures stacked on
/// top in red) over the `n` buckets of `bucket` ending now.
pub fn bars(buckets: &[&Bucket], bucket: Duration, n: usize, now: DateTime<Utc>) -> Markup {
    let last = now.duration_trunc(bucket).unwrap_or(now);
    let starts: Vec<DateTime<Utc>> = (0..n).rev().map(|i| last - bucket * i as i32).collect();
    let value = |start: &DateTime<Utc>| {
        buckets
            .iter()
            .filter(|b| b.start == *start)
            .fold((0i64, 0i64), |(s, f), b| (s + b.succeeded, f + b.failed))
    };
    let values: Vec<(i64, i64)> = starts.iter().map(value).collect();
    let max = values.iter().map(|(s, f)| s + f).max().unwrap_or(0).max(1) as f64;
    let step = W / n as f64;
    let total: (i64, i64) = values.iter().fold((0, 0), |(a, b), (s, f)| (a + s, b + f));
    html! {
        svg.chart viewBox={ "0 0 " (W) " " (H) } width=(W) height=(H) role="img"
            aria-label={ (total.0) " succeeded, " (total.1) " failed" } {
            @for (i, (s, f)) in values.iter().enumerate() {
                @let x = i as f64 * step + 1.0;
                @let hs = *s as f64 / max * (H - 2.0);
                @let hf = *f as f64 / max * (H - 2.0);
                @if *s > 0 {
                    rect.ok x=(x) y=(H - hs) width=(step - 2.0) height=(hs) {
                        title { (starts[i].format("%H:%M")) ": " (s) " succeeded" }
                    }
                }
                @if *f > 0 {
                    rect.fail x=(x) y=(H - hs - hf) width=(step - 2.0) height=(hf) {
                        title { (starts[i].format("%H:%M")) ": " (f) " failed" }
                    }
                }
            }
            line.axis x1="0" y1=(H - 0.5) x2=(W) y2=(H - 0.5) {}
        }
    }
}

//! The picture of a run: one panel of bars per workload (median throughput at the compared
//! thread count), one for memory per entry, and the targets, as a self-contained SVG.

use std::fmt::Write;

use crate::memory::Footprint;
use crate::{paired_ratio, Results, Target};

const WIDTH: f64 = 900.0;
const LABEL: f64 = 170.0;
const BAR_AREA: f64 = 440.0;
const BAR: f64 = 16.0;
const GAP: f64 = 5.0;
const CASCACHE: &str = "#d9480f";
const PEER: &str = "#868e96";

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

struct Bar {
    label: String,
    value: f64,
    text: String,
    cascache: bool,
}

fn panel(out: &mut String, y: &mut f64, title: &str, bars: &[Bar]) {
    *y += 28.0;
    let _ = writeln!(
        out,
        r#"<text x="10" y="{y}" font-weight="bold" font-size="14">{}</text>"#,
        escape(title)
    );
    *y += 8.0;
    let max = bars.iter().map(|b| b.value).fold(0.0, f64::max).max(1e-9);
    for bar in bars {
        let length = (bar.value / max * BAR_AREA).max(1.0);
        let color = if bar.cascache { CASCACHE } else { PEER };
        let weight = if bar.cascache { "bold" } else { "normal" };
        let _ = writeln!(
            out,
            r#"<text x="{}" y="{}" text-anchor="end" font-weight="{weight}">{}</text>"#,
            LABEL - 8.0,
            *y + BAR - 4.0,
            escape(&bar.label)
        );
        let _ = writeln!(
            out,
            r#"<rect x="{LABEL}" y="{y}" width="{length:.1}" height="{BAR}" fill="{color}"/>"#
        );
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{}" font-weight="{weight}">{}</text>"#,
            LABEL + length + 6.0,
            *y + BAR - 4.0,
            escape(&bar.text)
        );
        *y += BAR + GAP;
    }
}

pub fn render(
    context: &str,
    threads: usize,
    results: &[Results],
    footprints: &[Footprint],
    targets: &[Target],
) -> String {
    let mut body = String::new();
    let mut y = 24.0;
    let _ = writeln!(
        body,
        r#"<text x="10" y="{y}" font-weight="bold" font-size="16">cascache vs peers, {threads} threads — {}</text>"#,
        escape(context)
    );
    y += 18.0;
    let _ = writeln!(
        body,
        r##"<text x="10" y="{y}" fill="#495057">Zipf(0.99) keys; median Mops/s over interleaved rounds; × is cascache's throughput over the peer's, round by round (medians)</text>"##
    );
    for r in results {
        let Some(cascache) = r.get("cascache", threads) else {
            continue;
        };
        let bars: Vec<Bar> = r
            .series
            .iter()
            .filter(|s| s.threads == threads)
            .map(|s| {
                let mut text = format!("{:.2}", s.median());
                if s.peer != "cascache" {
                    let _ = write!(text, "  (cascache {:.2}×)", paired_ratio(cascache, s));
                }
                if r.workload == crate::Workload::Churn {
                    let _ = write!(text, "  hit {:.1}%", 100.0 * s.hit_ratio());
                }
                Bar {
                    label: s.peer.clone(),
                    value: s.median(),
                    text,
                    cascache: s.peer == "cascache",
                }
            })
            .collect();
        panel(
            &mut body,
            &mut y,
            &format!("{} — {} (Mops/s)", r.workload.name(), r.workload.about()),
            &bars,
        );
    }
    if !footprints.is_empty() {
        let bars: Vec<Bar> = footprints
            .iter()
            .map(|f| Bar {
                label: f.peer.clone(),
                value: f.bytes_per_entry,
                text: format!("{:.0} B", f.bytes_per_entry),
                cascache: f.peer.starts_with("cascache"),
            })
            .collect();
        panel(
            &mut body,
            &mut y,
            "memory — resident bytes per u64 → u64 entry at 1M entries (lower is better)",
            &bars,
        );
    }
    if !targets.is_empty() {
        y += 28.0;
        let _ = writeln!(
            body,
            r#"<text x="10" y="{y}" font-weight="bold" font-size="14">targets</text>"#
        );
        for t in targets {
            y += 19.0;
            let (mark, color) = if t.met {
                ("met", "#2b8a3e")
            } else {
                ("missed", "#c92a2a")
            };
            let _ = writeln!(
                body,
                r#"<text x="10" y="{y}"><tspan fill="{color}" font-weight="bold">{mark}</tspan>  {}: {} (target {})</text>"#,
                escape(&t.what),
                escape(&t.measured),
                escape(&t.wanted)
            );
        }
    }
    let height = y + 20.0;
    format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
{body}</svg>
"#
    )
}

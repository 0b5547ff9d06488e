//! SVG plots drawn by hand (no plotting dependency): bar charts, histograms and scatter plots,
//! for the evaluation report and the scaling-law fit alike.

use std::fmt::Write as _;

const W: f64 = 640.0;
const H: f64 = 260.0;
const LEFT: f64 = 150.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 30.0;
const BOTTOM: f64 = 40.0;
const PALETTE: [&str; 6] = [
    "#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#b07aa1",
];

/// Text made safe for SVG and HTML.
pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Horizontal bars, one per label; `limit` draws a dashed line (a compliance threshold).
pub fn bar_chart(title: &str, bars: &[(String, f64)], unit: &str, limit: Option<f64>) -> String {
    let height = TOP + BOTTOM + 22.0 * bars.len().max(1) as f64;
    let max = bars
        .iter()
        .map(|b| b.1)
        .chain(limit)
        .fold(0.0f64, f64::max)
        .max(1e-9);
    let scale = (W - LEFT - RIGHT - 60.0) / max;
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = write!(
        svg,
        r#"<text x="{}" y="18" font-size="14" font-weight="bold">{}</text>"#,
        10,
        escape(title)
    );
    for (i, (label, value)) in bars.iter().enumerate() {
        let y = TOP + 22.0 * i as f64;
        let over = limit.is_some_and(|l| *value > l);
        let color = if over { "#e15759" } else { PALETTE[0] };
        let _ = write!(
            svg,
            r#"<text x="{}" y="{}" text-anchor="end">{}</text><rect x="{LEFT}" y="{}" width="{:.1}" height="16" fill="{color}"/><text x="{:.1}" y="{}">{} {}</text>"#,
            LEFT - 6.0,
            y + 12.0,
            escape(label),
            y,
            (value * scale).max(0.5),
            LEFT + value * scale + 4.0,
            y + 12.0,
            format_number(*value),
            escape(unit)
        );
    }
    if let Some(l) = limit {
        let x = LEFT + l * scale;
        let _ = write!(
            svg,
            r##"<line x1="{x:.1}" y1="{}" x2="{x:.1}" y2="{}" stroke="#333" stroke-dasharray="4 3"/><text x="{x:.1}" y="{}" font-size="11">limit {}</text>"##,
            TOP - 4.0,
            height - BOTTOM + 4.0,
            height - BOTTOM + 18.0,
            format_number(l)
        );
    }
    svg.push_str("</svg>");
    svg
}

/// A histogram of `series` (name, values), on a log10 axis when `log` (values ≤ 0 dropped).
/// A histogram of each series over 30 shared bins; `why_empty` is drawn instead where there is
/// no value, so an empty plot says why it is empty.
// Kept as one function: bins, axes and bars of one SVG, drawn in document order.
pub fn histogram(
    title: &str,
    series: &[(String, Vec<f64>)],
    x_label: &str,
    log: bool,
    why_empty: &str,
) -> String {
    let bins = 30usize;
    let tf = |v: f64| if log { v.log10() } else { v };
    let all: Vec<f64> = series
        .iter()
        .flat_map(|(_, v)| v.iter().copied())
        .filter(|v| v.is_finite() && (!log || *v > 0.0))
        .map(tf)
        .collect();
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">"#
    );
    let _ = write!(
        svg,
        r#"<text x="10" y="18" font-size="14" font-weight="bold">{}</text>"#,
        escape(title)
    );
    if all.is_empty() {
        // Wrapped by hand: SVG text does not wrap.
        let mut y = 60;
        let mut line = String::new();
        for word in why_empty.split_whitespace() {
            if line.len() + word.len() > 90 {
                let _ = write!(svg, r#"<text x="20" y="{y}">{}</text>"#, escape(&line));
                y += 18;
                line.clear();
            }
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(word);
        }
        let _ = write!(
            svg,
            r#"<text x="20" y="{y}">{}</text></svg>"#,
            escape(&line)
        );
        return svg;
    }
    let lo = all.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = all.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let width = ((hi - lo) / bins as f64).max(1e-9);
    let counts: Vec<Vec<usize>> = series
        .iter()
        .map(|(_, values)| {
            let mut c = vec![0usize; bins];
            for v in values
                .iter()
                .filter(|v| v.is_finite() && (!log || **v > 0.0))
            {
                let b = (((tf(*v) - lo) / width) as usize).min(bins - 1);
                c[b] += 1;
            }
            c
        })
        .collect();
    let peak = counts.iter().flatten().copied().max().unwrap_or(1).max(1) as f64;
    let (x0, plot_w, plot_h) = (60.0, W - 60.0 - RIGHT, H - TOP - BOTTOM);
    let bar_w = plot_w / bins as f64 / series.len().max(1) as f64;
    for (s, c) in counts.iter().enumerate() {
        for (b, &n) in c.iter().enumerate() {
            let h = plot_h * n as f64 / peak;
            let x = x0 + plot_w * b as f64 / bins as f64 + bar_w * s as f64;
            let _ = write!(
                svg,
                r#"<rect x="{x:.1}" y="{:.1}" width="{:.1}" height="{h:.1}" fill="{}" fill-opacity="0.85"/>"#,
                TOP + plot_h - h,
                bar_w.max(0.5),
                PALETTE[s % PALETTE.len()]
            );
        }
    }
    let axis_y = TOP + plot_h;
    let shown = |v: f64| format_number(if log { 10f64.powf(v) } else { v });
    let _ = write!(
        svg,
        r##"<line x1="{x0}" y1="{axis_y}" x2="{}" y2="{axis_y}" stroke="#333"/><text x="{x0}" y="{}">{}</text><text x="{}" y="{}" text-anchor="end">{}</text><text x="{}" y="{}" text-anchor="middle">{}</text><text x="{}" y="{}" text-anchor="end">{}</text>"##,
        x0 + plot_w,
        axis_y + 16.0,
        shown(lo),
        x0 + plot_w,
        axis_y + 16.0,
        shown(hi),
        x0 + plot_w / 2.0,
        axis_y + 32.0,
        escape(&format!(
            "{x_label}{}",
            if log { " (log scale)" } else { "" }
        )),
        x0 - 6.0,
        TOP + 10.0,
        peak as usize
    );
    for (s, (name, values)) in series.iter().enumerate() {
        let _ = write!(
            svg,
            r#"<rect x="{}" y="{}" width="10" height="10" fill="{}"/><text x="{}" y="{}">{} ({})</text>"#,
            W - 170.0,
            TOP + 16.0 * s as f64,
            PALETTE[s % PALETTE.len()],
            W - 155.0,
            TOP + 9.0 + 16.0 * s as f64,
            escape(name),
            values.len()
        );
    }
    svg.push_str("</svg>");
    svg
}

fn format_number(v: f64) -> String {
    if v.abs() >= 100.0 || v == v.trunc() {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// Points against the diagonal (`y = x`), on one shared scale: how close predictions are to
/// what was observed.
pub fn scatter(title: &str, points: &[(f64, f64)], x_label: &str, y_label: &str) -> String {
    let (w, h, m) = (480.0, 480.0, 50.0);
    let lo = points
        .iter()
        .flat_map(|p| [p.0, p.1])
        .fold(f64::INFINITY, f64::min);
    let hi = points
        .iter()
        .flat_map(|p| [p.0, p.1])
        .fold(f64::NEG_INFINITY, f64::max);
    let span = (hi - lo).max(1e-9);
    let x = |v: f64| m + (w - 2.0 * m) * (v - lo) / span;
    let y = |v: f64| h - m - (h - 2.0 * m) * (v - lo) / span;
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12"><text x="10" y="20" font-size="14" font-weight="bold">{}</text>"#,
        escape(title)
    );
    let _ = write!(
        svg,
        r##"<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="#999" stroke-dasharray="4 3"/>"##,
        x(lo),
        y(lo),
        x(hi),
        y(hi)
    );
    for (o, p) in points {
        let _ = write!(
            svg,
            r##"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{}"/>"##,
            x(*o),
            y(*p),
            PALETTE[0]
        );
    }
    let _ = write!(
        svg,
        r#"<text x="{}" y="{}" text-anchor="middle">{} ({lo:.3} to {hi:.3})</text><text x="14" y="{}" transform="rotate(-90 14 {})" text-anchor="middle">{}</text></svg>"#,
        w / 2.0,
        h - 12.0,
        escape(x_label),
        h / 2.0,
        h / 2.0,
        escape(y_label)
    );
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plots_are_well_formed_svg_and_escape_labels() {
        let svg = bar_chart(
            "a < b",
            &[("x&y".into(), 2.0), ("z".into(), 0.5)],
            "‰",
            Some(1.0),
        );
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert!(svg.contains("a &lt; b") && svg.contains("x&amp;y"));
        assert!(svg.contains("#e15759"), "the bar over the limit is red");
        let hist = histogram(
            "h",
            &[("en".into(), vec![1.0, 10.0, 100.0])],
            "ppl",
            true,
            "none",
        );
        assert_eq!(hist.matches("<rect").count(), 30 + 1);
        let empty = histogram("h", &[], "x", false, "no model for en, so no <values>");
        assert!(
            empty.contains("no model for en, so no &lt;values&gt;"),
            "{empty}"
        );
    }
}

//! The comparison's SVG plot: per workload, req/s against server cores (one
//! line per server) and the latency percentiles at the largest core count
//! (log scale). Written by hand: two kinds of small line charts need
//! a few dozen lines of SVG, not a plotting crate and its font stack.

use std::fmt::Write;

/// One server's medians for one workload at one core count.
pub(crate) struct Point {
    pub(crate) server: String,
    pub(crate) workload: String,
    pub(crate) cores: usize,
    pub(crate) requests_per_second: f64,
    /// p50, p90, p99, p99.9.
    pub(crate) percentiles_us: [f64; 4],
}

const COLORS: [&str; 6] = ["#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#8c564b", "#ff7f0e"];
const PANEL_W: f64 = 420.0;
const PANEL_H: f64 = 220.0;
const MARGIN: f64 = 60.0;

/// A chart area: maps data to pixels.
struct Area {
    x0: f64,
    y0: f64,
}

impl Area {
    fn px(&self, fx: f64, fy: f64) -> (f64, f64) {
        (self.x0 + fx * PANEL_W, self.y0 + PANEL_H - fy * PANEL_H)
    }

    fn frame(&self, out: &mut String, title: &str) {
        let _ = write!(
            out,
            r##"<rect x="{}" y="{}" width="{PANEL_W}" height="{PANEL_H}" fill="none" stroke="#888"/><text x="{}" y="{}" font-size="13">{}</text>"##,
            self.x0,
            self.y0,
            self.x0,
            self.y0 - 8.0,
            escape(title)
        );
    }

    fn polyline(&self, out: &mut String, points: &[(f64, f64)], color: &str) {
        let coords: Vec<String> = points
            .iter()
            .map(|&(fx, fy)| {
                let (x, y) = self.px(fx, fy);
                format!("{x:.1},{y:.1}")
            })
            .collect();
        let _ =
            write!(out, r#"<polyline points="{}" fill="none" stroke="{color}" stroke-width="2"/>"#, coords.join(" "));
        for &(fx, fy) in points {
            let (x, y) = self.px(fx, fy);
            let _ = write!(out, r#"<circle cx="{x:.1}" cy="{y:.1}" r="3.5" fill="{color}"/>"#);
        }
    }

    fn y_label(&self, out: &mut String, fy: f64, text: &str) {
        let (x, y) = self.px(0.0, fy);
        let _ = write!(
            out,
            r#"<text x="{:.1}" y="{:.1}" font-size="10" text-anchor="end">{text}</text>"#,
            x - 4.0,
            y + 3.0
        );
    }

    fn x_label(&self, out: &mut String, fx: f64, text: &str) {
        let (x, y) = self.px(fx, 0.0);
        let _ =
            write!(out, r#"<text x="{x:.1}" y="{:.1}" font-size="10" text-anchor="middle">{text}</text>"#, y + 14.0);
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// x position of item `i` of `n`, spread across the panel with a margin.
fn spread(i: usize, n: usize) -> f64 {
    if n <= 1 {
        0.5
    } else {
        0.08 + 0.84 * i as f64 / (n - 1) as f64
    }
}

/// The whole SVG document.
pub(crate) fn svg(points: &[Point]) -> String {
    let mut workloads: Vec<&str> = Vec::new();
    let mut servers: Vec<&str> = Vec::new();
    let mut cores: Vec<usize> = Vec::new();
    for p in points {
        if !workloads.contains(&p.workload.as_str()) {
            workloads.push(&p.workload);
        }
        if !servers.contains(&p.server.as_str()) {
            servers.push(&p.server);
        }
        if !cores.contains(&p.cores) {
            cores.push(p.cores);
        }
    }
    cores.sort_unstable();
    let max_cores = cores.last().copied().unwrap_or(1);
    let color = |server: &str| COLORS[servers.iter().position(|s| *s == server).unwrap_or(0) % COLORS.len()];
    let width = 2.0 * (PANEL_W + 2.0 * MARGIN);
    let height = workloads.len() as f64 * (PANEL_H + 2.0 * MARGIN) + 40.0;
    let mut out = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif"><rect width="100%" height="100%" fill="white"/>"#
    );
    // Legend.
    for (i, server) in servers.iter().enumerate() {
        let x = MARGIN + i as f64 * 130.0;
        let _ = write!(
            out,
            r#"<rect x="{x}" y="12" width="14" height="14" fill="{}"/><text x="{}" y="24" font-size="13">{}</text>"#,
            color(server),
            x + 20.0,
            escape(server)
        );
    }
    for (w, workload) in workloads.iter().enumerate() {
        let y0 = 40.0 + w as f64 * (PANEL_H + 2.0 * MARGIN) + MARGIN;
        // Left: req/s against server cores, linear from zero.
        let left = Area { x0: MARGIN, y0 };
        left.frame(&mut out, &format!("{workload}: req/s by server cores"));
        let top =
            points.iter().filter(|p| p.workload == *workload).map(|p| p.requests_per_second).fold(1.0, f64::max) * 1.1;
        for k in 0..=4 {
            let fy = k as f64 / 4.0;
            left.y_label(&mut out, fy, &format!("{:.0}k", top * fy / 1000.0));
        }
        for (i, c) in cores.iter().enumerate() {
            left.x_label(&mut out, spread(i, cores.len()), &c.to_string());
        }
        for server in &servers {
            let line: Vec<(f64, f64)> = points
                .iter()
                .filter(|p| p.workload == *workload && p.server == *server)
                .map(|p| {
                    let i = cores.iter().position(|c| *c == p.cores).unwrap_or(0);
                    (spread(i, cores.len()), p.requests_per_second / top)
                })
                .collect();
            left.polyline(&mut out, &line, color(server));
        }
        // Right: latency percentiles at the largest core count, log scale.
        let right = Area { x0: 3.0 * MARGIN + PANEL_W, y0 };
        right.frame(&mut out, &format!("{workload}: latency µs at {max_cores} server core(s), log scale"));
        let at_max: Vec<&Point> = points.iter().filter(|p| p.workload == *workload && p.cores == max_cores).collect();
        let lo = at_max.iter().flat_map(|p| p.percentiles_us).fold(f64::INFINITY, f64::min).max(1.0);
        let hi = at_max.iter().flat_map(|p| p.percentiles_us).fold(1.0, f64::max);
        let (llo, lhi) = (lo.log10().floor(), hi.log10().ceil().max(lo.log10().floor() + 1.0));
        let fy = |v: f64| (v.max(1.0).log10() - llo) / (lhi - llo);
        let mut decade = llo;
        while decade <= lhi {
            right.y_label(&mut out, fy(10f64.powf(decade)), &format!("{}", 10f64.powf(decade)));
            decade += 1.0;
        }
        for (i, name) in ["p50", "p90", "p99", "p99.9"].iter().enumerate() {
            right.x_label(&mut out, spread(i, 4), name);
        }
        for p in at_max {
            let line: Vec<(f64, f64)> =
                p.percentiles_us.iter().enumerate().map(|(i, v)| (spread(i, 4), fy(*v))).collect();
            right.polyline(&mut out, &line, color(&p.server));
        }
    }
    out.push_str("</svg>\n");
    out
}

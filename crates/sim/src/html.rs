//! The HTML report: one section per variant with SVG plots drawn by `plotters`
//! (replicas against the load's need, nodes and cost over time, pending pods).

use crate::report::{Summary, VariantResult, VerticalSummary, terminal_table};
use plotters::prelude::*;
use std::fmt::Write as _;

const W: u32 = 900;
const H: u32 = 260;
const COLORS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

/// One line of a plot.
struct Line {
    label: String,
    color: RGBColor,
    points: Vec<(f64, f64)>,
    dashed: bool,
}

fn plot(title: &str, y_label: &str, lines: &[Line]) -> String {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (W, H)).into_drawing_area();
        let _ = root.fill(&WHITE);
        let x_max = lines
            .iter()
            .flat_map(|l| l.points.iter().map(|p| p.0))
            .fold(1.0, f64::max);
        let y_max = lines
            .iter()
            .flat_map(|l| l.points.iter().map(|p| p.1))
            .fold(1.0, f64::max)
            * 1.1;
        let chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 16))
            .margin(8)
            .x_label_area_size(30)
            .y_label_area_size(50)
            .build_cartesian_2d(0.0..x_max, 0.0..y_max);
        let Ok(mut chart) = chart else {
            return svg_error(title);
        };
        let _ = chart
            .configure_mesh()
            .x_desc("hours")
            .y_desc(y_label)
            .light_line_style(WHITE.mix(0.0))
            .draw();
        for l in lines {
            let style = ShapeStyle::from(&l.color).stroke_width(if l.dashed { 1 } else { 2 });
            let series = chart.draw_series(LineSeries::new(l.points.iter().copied(), style));
            if let Ok(s) = series {
                let c = l.color;
                s.label(l.label.clone())
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], c));
            }
        }
        let _ = chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw();
        let _ = root.present();
    }
    svg
}

fn svg_error(title: &str) -> String {
    format!("<p>could not draw {title}</p>")
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The whole page.
pub fn page(results: &[VariantResult]) -> String {
    let name = results
        .first()
        .map(|r| r.summary.scenario.as_str())
        .unwrap_or("scenario");
    let mut out = String::new();
    let _ = write!(
        out,
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Ballast simulation: {n}</title>\
         <style>body{{font-family:sans-serif;max-width:960px;margin:auto}}pre{{background:#f4f4f4;padding:8px}}\
         h2{{border-bottom:1px solid #ccc}}</style></head><body><h1>Ballast simulation: {n}</h1>\
         <pre>{t}</pre>",
        n = escape(name),
        t = escape(&terminal_table(results))
    );
    if let Some(trouble) = crate::outcome::trouble(results) {
        let _ = write!(
            out,
            "<div class=\"trouble\" style=\"background:#fde8e8;border:2px solid #c00;padding:8px\">\
             <strong>These results are not to be trusted:</strong><pre>{}</pre></div>",
            escape(&trouble)
        );
    }
    for v in results {
        let s = &v.summary;
        let _ = write!(
            out,
            "<h2>{}</h2><p>{}</p>",
            escape(&s.variant),
            escape(&s.description)
        );
        let _ = write!(
            out,
            "<p>cost ${:.2} (lower bound ${:.2}, ×{:.3}); peak {} nodes; CPU allocation mean {:.1}% (p95 {:.1}%); \
             pod wait p95 {:.1}s, max {:.1}s; under-provisioned {:.1} min; {} scale events; {} evictions.</p>",
            s.cost,
            s.lower_bound_cost,
            s.cost_over_lower_bound,
            s.peak_nodes,
            s.cpu_allocation_mean,
            s.cpu_allocation_p95,
            s.pod_wait_p95_seconds,
            s.pod_wait_max_seconds,
            s.under_provision_minutes,
            s.scale_events,
            s.evictions
        );
        out.push_str(&vertical_table(
            &s.vertical,
            s.vertical_comparison.is_some(),
        ));
        out.push_str(&applied_table(s));
        out.push_str(&crate::prediction_report::html(&s.workloads, escape));
        let hours = |t: f64| t / 3600.0;
        for (w, name) in v.workload_names.iter().enumerate() {
            let lines = vec![
                Line {
                    label: "needed (load ÷ pod capacity)".into(),
                    color: COLORS[1],
                    points: v
                        .series
                        .iter()
                        .map(|r| (hours(r.t_seconds), r.workloads[w].needed))
                        .collect(),
                    dashed: true,
                },
                Line {
                    label: "desired".into(),
                    color: COLORS[0],
                    points: v
                        .series
                        .iter()
                        .map(|r| (hours(r.t_seconds), r.workloads[w].desired as f64))
                        .collect(),
                    dashed: false,
                },
                Line {
                    label: "ready".into(),
                    color: COLORS[2],
                    points: v
                        .series
                        .iter()
                        .map(|r| (hours(r.t_seconds), r.workloads[w].ready as f64))
                        .collect(),
                    dashed: false,
                },
            ];
            out.push_str(&plot(
                &format!("{name}: replicas vs load"),
                "replicas",
                &lines,
            ));
        }
        let nodes = vec![
            Line {
                label: "nodes".into(),
                color: COLORS[0],
                points: v
                    .series
                    .iter()
                    .map(|r| (hours(r.t_seconds), r.nodes as f64))
                    .collect(),
                dashed: false,
            },
            Line {
                label: "cost $/h ×10".into(),
                color: COLORS[3],
                points: v
                    .series
                    .iter()
                    .map(|r| (hours(r.t_seconds), r.cost_per_hour * 10.0))
                    .collect(),
                dashed: false,
            },
            Line {
                label: "lower bound $/h ×10".into(),
                color: COLORS[4],
                points: v
                    .series
                    .iter()
                    .map(|r| (hours(r.t_seconds), r.lower_bound_per_hour * 10.0))
                    .collect(),
                dashed: true,
            },
        ];
        out.push_str(&plot("nodes and cost", "nodes, $/h ×10", &nodes));
        let pending = vec![
            Line {
                label: "pending pods".into(),
                color: COLORS[3],
                points: v
                    .series
                    .iter()
                    .map(|r| (hours(r.t_seconds), r.pending_pods as f64))
                    .collect(),
                dashed: false,
            },
            Line {
                label: "CPU allocation %".into(),
                color: COLORS[2],
                points: v
                    .series
                    .iter()
                    .map(|r| (hours(r.t_seconds), r.cpu_allocation))
                    .collect(),
                dashed: true,
            },
        ];
        out.push_str(&plot(
            "pending pods and CPU allocation",
            "pods, %",
            &pending,
        ));
    }
    out.push_str("</body></html>\n");
    out
}

/// Cores as millicores, bytes as mebibytes.
fn cpu_cell(cores: f64) -> String {
    format!("{:.0}m", cores * 1000.0)
}
fn memory_cell(bytes: f64) -> String {
    format!("{:.0}Mi", bytes / (1024.0 * 1024.0))
}

/// The variant's `VerticalAutoscaler` recommendations against the requests (empty without any);
/// `applied`: some object applies them (the request shown is the template's).
fn vertical_table(verticals: &[VerticalSummary], applied: bool) -> String {
    if verticals.is_empty() {
        return String::new();
    }
    let mut out = String::from(if applied {
        "<h3>Vertical recommendations (request: the pod template's)</h3>"
    } else {
        "<h3>Vertical recommendations (requests are not changed)</h3>"
    });
    out.push_str(
        "\
         <table border=\"1\" cellpadding=\"4\" style=\"border-collapse:collapse\">\
         <tr><th>workload</th><th>container</th><th>CPU request</th><th>CPU target [lower, upper]</th>\
         <th>memory request</th><th>memory target [lower, upper]</th><th>mean pods</th>\
         <th>$/h requested</th><th>$/h at target</th></tr>",
    );
    for v in verticals {
        let bounds = |r: Option<&crate::report::ResourceSizing>, unit: fn(f64) -> String| {
            r.map_or("-".to_string(), |r| {
                format!(
                    "{} [{}, {}]",
                    unit(r.target),
                    unit(r.lower_bound),
                    unit(r.upper_bound)
                )
            })
        };
        let rows: Vec<(String, String, String)> = if v.containers.is_empty() {
            vec![("-".into(), "-".into(), "-".into())]
        } else {
            v.containers
                .iter()
                .map(|c| {
                    (
                        c.container.clone(),
                        bounds(c.cpu.as_ref(), cpu_cell),
                        bounds(c.memory.as_ref(), memory_cell),
                    )
                })
                .collect()
        };
        for (container, cpu, memory) in rows {
            let _ = write!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{cpu}</td><td>{}</td><td>{memory}</td>\
                 <td>{:.1}</td><td>{:.3}</td><td>{:.3}</td></tr>",
                escape(&v.workload),
                escape(&container),
                cpu_cell(v.requested_cpu),
                memory_cell(v.requested_memory),
                v.mean_ready,
                v.cost_per_hour_requested,
                v.cost_per_hour_recommended
            );
        }
    }
    out.push_str("</table>");
    out
}

/// What applying the vertical recommendations did, against the same variant with every object
/// `Off` (empty when no object applies them).
fn applied_table(s: &Summary) -> String {
    let Some(c) = &s.vertical_comparison else {
        return String::new();
    };
    let mut out = format!(
        "<h3>Vertical autoscaling applied vs off</h3><p>cost ${:.2} applied, ${:.2} with every \
         VerticalAutoscaler Off (saved ${:.2}); node-hours {:.1} vs {:.1}; pending pod time {:.0}s vs \
         {:.0}s; under-provisioned {:.1} vs {:.1} min; {} evictions by the updater, {} pods created \
         with recommended requests.</p>\
         <table border=\"1\" cellpadding=\"4\" style=\"border-collapse:collapse\">\
         <tr><th>workload</th><th>mode</th><th>evictions</th><th>pods sized</th>\
         <th>mean CPU request</th><th>mean memory request</th><th>$/h applied</th><th>$/h off</th></tr>",
        c.cost_with,
        c.cost_without,
        c.cost_saved,
        c.node_hours_with,
        c.node_hours_without,
        c.pending_pod_seconds_with,
        c.pending_pod_seconds_without,
        c.under_provision_minutes_with,
        c.under_provision_minutes_without,
        c.evictions,
        c.pods_sized
    );
    for v in &s.vertical {
        let Some(a) = &v.applied else { continue };
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
             <td>{:.3}</td><td>{}</td></tr>",
            escape(&v.workload),
            escape(&a.mode),
            a.evictions,
            a.pods_sized,
            cpu_cell(a.mean_requested_cpu),
            memory_cell(a.mean_requested_memory),
            a.cost_per_hour_applied,
            a.cost_per_hour_without
                .map_or("-".to_string(), |x| format!("{x:.3}"))
        );
    }
    out.push_str("</table>");
    out
}

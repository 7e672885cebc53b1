//! The report's pictures, as SVG drawn by `plotters`: every table's phases on one time axis, each
//! table's rates against its capacity, and when each segment of a phase finished.

use jiff::Timestamp;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

use super::{ExecutionReport, Report};
use crate::error::{Error, Result};
use crate::journal::Phase;

const WIDTH: u32 = 960;
const FONT: &str = "sans-serif";

/// A phase's colour: the same in every chart.
fn colour(phase: &str) -> RGBColor {
    match phase {
        "backup-and-restore" => RGBColor(0x4e, 0x79, 0xa7),
        "delete" => RGBColor(0xe1, 0x57, 0x59),
        "copy" => RGBColor(0x59, 0xa1, 0x4f),
        "check" => RGBColor(0xed, 0xc9, 0x48),
        "clean-up" => RGBColor(0x9c, 0x75, 0x5f),
        _ => RGBColor(0x79, 0x70, 0x6e),
    }
}

const RECOVERY_MODE: RGBColor = RGBColor(0xb0, 0x7a, 0xa1);
const READS: RGBColor = RGBColor(0x76, 0xb7, 0xb2);
const THROTTLED: RGBColor = RGBColor(0xd6, 0x27, 0x28);

fn failed(what: &str, e: impl std::fmt::Display) -> Error {
    Error::BadState {
        what: format!("the report's {what} chart"),
        state: e.to_string(),
        hint: "this is a bug in dynamo-dr; the Markdown and JSON reports are complete".into(),
    }
}

fn offset(from: Timestamp, t: Timestamp) -> f64 {
    t.duration_since(from).as_secs_f64().max(0.0)
}

/// The first instant anything in the report happened.
pub fn origin(report: &Report) -> Option<Timestamp> {
    let phases = report
        .executions
        .iter()
        .flat_map(|e| e.phases.iter().map(|p| p.started_at));
    let windows = report.recovery_mode.iter().filter_map(|w| w.started_at);
    phases.chain(windows).min()
}

/// Seconds from `origin` to the last thing the report shows: every chart's time axis.
pub fn span(report: &Report, origin: Timestamp) -> f64 {
    let now = report.generated_at;
    let ends = report.executions.iter().flat_map(|e| {
        e.phases
            .iter()
            .filter(|p| p.phase != Phase::Done.as_str())
            .map(|p| p.finished_at.unwrap_or(now))
    });
    let windows = report
        .recovery_mode
        .iter()
        .filter(|w| w.started_at.is_some())
        .map(|w| w.ended_at.unwrap_or(now));
    ends.chain(windows)
        .map(|t| offset(origin, t))
        .fold(1.0, f64::max)
        * 1.02
}

/// One row per table (its phases as bars, one series each) and one per recovery-mode window.
pub fn timeline(report: &Report, origin: Timestamp) -> Result<String> {
    let now = report.generated_at;
    let mut rows: Vec<Row> = Vec::new();
    for e in &report.executions {
        let bars = e
            .phases
            .iter()
            .filter(|p| p.phase != Phase::Done.as_str())
            .map(|p| {
                let end = p.finished_at.unwrap_or(now);
                (
                    p.phase.clone(),
                    offset(origin, p.started_at),
                    offset(origin, end),
                )
            })
            .collect();
        rows.push((e.table.clone(), bars));
    }
    for w in &report.recovery_mode {
        if let Some(start) = w.started_at {
            let end = offset(origin, w.ended_at.unwrap_or(now));
            let bar = ("recovery mode".to_string(), offset(origin, start), end);
            rows.push((format!("recovery mode: {}", w.environment), vec![bar]));
        }
    }
    let end = span(report, origin);
    let mut svg = String::new();
    draw_timeline(&mut svg, end, &rows).map_err(|e| failed("timeline", e))?;
    Ok(svg)
}

/// The end of a long name (a CloudFormation table name's tail tells it apart): at most `most`
/// characters, the cut marked.
fn tail(name: &str, most: usize) -> String {
    let count = name.chars().count();
    if count <= most {
        return name.to_string();
    }
    let kept: String = name.chars().skip(count - (most - 1)).collect();
    format!("…{kept}")
}

/// Pixels per row of bars, and per line of the legend below them.
const ROW: u32 = 40;
const LEGEND_LINE: u32 = 18;

/// A timeline row: its name and its bars (what, from, to, in seconds).
type Row = (String, Vec<(String, f64, f64)>);
type Rows = [Row];

fn draw_timeline(
    svg: &mut String,
    end: f64,
    rows: &Rows,
) -> std::result::Result<(), Box<dyn std::error::Error>> {
    let series: usize = rows.iter().map(|(_, bars)| bars.len()).sum();
    // The legend (one line per table and phase) goes below the bars, in rows left empty.
    let key_rows = (LEGEND_LINE * series as u32 + 24).div_ceil(ROW);
    let height = 100 + ROW * (rows.len() as u32 + key_rows);
    let root = SVGBackend::with_string(svg, (WIDTH, height)).into_drawing_area();
    root.fill(&WHITE)?;
    let n = rows.len().max(1) as f64;
    let bottom = -f64::from(key_rows);
    let mut chart = ChartBuilder::on(&root)
        .caption("Timeline", (FONT, 20))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(220)
        .build_cartesian_2d(0.0..end, bottom..n)?;
    let names: Vec<&str> = rows.iter().map(|(name, _)| name.as_str()).collect();
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels((rows.len() + key_rows as usize).max(1) * 2 + 1)
        .y_label_formatter(&|y| {
            let i = (n - y - 0.5).round();
            let centred = ((n - y) - i - 0.5).abs() < 0.01 && i >= 0.0;
            centred
                .then(|| names.get(i as usize).map(|s| tail(s, 30)))
                .flatten()
                .unwrap_or_default()
        })
        .x_desc("seconds from the first phase")
        .draw()?;
    for (row, (table, bars)) in rows.iter().enumerate() {
        let top = n - row as f64 - 0.15;
        for (phase, from, to) in bars {
            let style = if phase == "recovery mode" {
                RECOVERY_MODE
            } else {
                colour(phase)
            };
            // A phase of a moment still shows: at least a hundredth of the axis.
            let to = to.max(from + end * 0.01);
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    [(*from, top - 0.7), (to, top)],
                    style.filled(),
                )))?
                .label(format!("{table} {phase}"))
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 14, y + 5)], style.filled())
                });
        }
    }
    legend(&mut chart, SeriesLabelPosition::LowerLeft)?;
    root.present()?;
    Ok(())
}

type Chart<'a> = ChartContext<'a, SVGBackend<'a>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// The key of a chart's series, where it hides the least.
fn legend(
    chart: &mut Chart<'_>,
    at: SeriesLabelPosition,
) -> std::result::Result<(), Box<dyn std::error::Error>> {
    chart
        .configure_series_labels()
        .position(at)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font((FONT, 12))
        .draw()?;
    Ok(())
}

/// A table's write units per second (each sync phase), read units per second, its stated
/// capacity and the seconds in which DynamoDB throttled a request.
pub fn rates(e: &ExecutionReport, (origin, end): (Timestamp, f64)) -> Result<Option<String>> {
    let mut series: Vec<Series> = Vec::new();
    let mut reads: Vec<(f64, f64)> = Vec::new();
    let mut throttled: Vec<(f64, f64)> = Vec::new();
    let mut capacity = None;
    for a in e.activity.iter().filter(|a| !a.trace.is_empty()) {
        let step = f64::from(a.trace.bucket_seconds.max(1));
        let mut writes = Vec::new();
        // Each bucket as a step over the seconds it covers.
        for (at, b) in a.trace.points() {
            let x = offset(origin, at);
            let (w, r) = (b.write_units() / step, b.read_units() / step);
            writes.extend([(x, w), (x + step, w)]);
            reads.extend([(x, r), (x + step, r)]);
            if b.throttled() > 0 {
                throttled.push((x + step / 2.0, w));
            }
        }
        capacity = capacity.or(a.trace.write_capacity);
        series.push((
            format!("{} write units/s", a.phase),
            colour(&a.phase),
            writes,
        ));
    }
    if series.is_empty() {
        return Ok(None);
    }
    series.push(("read units/s".into(), READS, reads));
    let mut svg = String::new();
    let title = format!("{}: capacity used per second", e.table);
    draw_rates(&mut svg, (&title, end), &series, &throttled, capacity)
        .map_err(|err| failed("rate", err))?;
    Ok(Some(svg))
}

type Series = (String, RGBColor, Vec<(f64, f64)>);

fn draw_rates(
    svg: &mut String,
    (title, end): (&str, f64),
    series: &[Series],
    throttled: &[(f64, f64)],
    capacity: Option<f64>,
) -> std::result::Result<(), Box<dyn std::error::Error>> {
    let points = || series.iter().flat_map(|s| s.2.iter());
    let end = points().map(|p| p.0).fold(end, f64::max);
    let top = points().map(|p| p.1).chain(capacity).fold(1.0, f64::max) * 1.15;
    let root = SVGBackend::with_string(svg, (WIDTH, 340)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, (FONT, 18))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(64)
        .build_cartesian_2d(0.0..end, 0.0..top)?;
    chart
        .configure_mesh()
        .x_desc("seconds from the first phase")
        .y_desc("capacity units per second")
        .draw()?;
    for (label, colour, points) in series {
        let colour = *colour;
        chart
            .draw_series(LineSeries::new(
                points.iter().copied(),
                colour.stroke_width(2),
            ))?
            .label(label.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], colour));
    }
    if let Some(c) = capacity {
        chart
            .draw_series(LineSeries::new([(0.0, c), (end, c)], BLACK.stroke_width(1)))?
            .label(format!("stated write capacity: {c:.0} units/s"))
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], BLACK));
    }
    chart
        .draw_series(
            throttled
                .iter()
                .map(|p| Circle::new(*p, 4, THROTTLED.filled())),
        )?
        .label("a second with throttled requests")
        .legend(|(x, y)| Circle::new((x + 9, y), 4, THROTTLED.filled()));
    legend(&mut chart, SeriesLabelPosition::UpperRight)?;
    root.present()?;
    Ok(())
}

/// When each segment of a phase finished, from the phase's start: which key ranges took longest.
pub fn segments(e: &ExecutionReport, (origin, end): (Timestamp, f64)) -> Result<Vec<String>> {
    let mut charts = Vec::new();
    for a in &e.activity {
        let Some(start) = a.started_at else { continue };
        let done: Vec<(usize, f64)> = a
            .finished
            .iter()
            .enumerate()
            .filter_map(|(i, f)| f.map(|f| (i, offset(origin, f))))
            .collect();
        if done.is_empty() {
            continue;
        }
        let title = format!(
            "{} {}: when each of {} segments finished",
            e.table,
            a.phase,
            a.finished.len()
        );
        let mut svg = String::new();
        let bars = ((offset(origin, start), end), a.finished.len(), done);
        draw_segments(&mut svg, &title, colour(&a.phase), bars)
            .map_err(|err| failed("segment", err))?;
        charts.push(svg);
    }
    Ok(charts)
}

fn draw_segments(
    svg: &mut String,
    title: &str,
    colour: RGBColor,
    ((start, end), count, done): ((f64, f64), usize, Vec<(usize, f64)>),
) -> std::result::Result<(), Box<dyn std::error::Error>> {
    let end = done.iter().map(|d| d.1).fold(end, f64::max);
    let height = (160 + 8 * count as u32).min(600);
    let root = SVGBackend::with_string(svg, (WIDTH, height)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, (FONT, 16))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(64)
        .build_cartesian_2d(0.0..end, 0.0..count.max(1) as f64)?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(count.clamp(2, 16))
        .y_label_formatter(&|y| format!("{y:.0}"))
        .label_style((FONT, 12))
        .x_desc("seconds from the first phase")
        .y_desc("segment")
        .draw()?;
    chart.draw_series(done.iter().map(|(i, f)| {
        let y = *i as f64;
        Rectangle::new([(start, y + 0.15), (*f, y + 0.85)], colour.filled())
    }))?;
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_long_table_name_keeps_its_end() {
        assert_eq!(super::tail("Orders", 30), "Orders");
        let long = "Prod-PersistentStack-ProviderTable0D2A4B1C-1XK2Q8ZL5M3N";
        let shown = super::tail(long, 30);
        assert_eq!(shown.chars().count(), 30);
        assert!(
            shown.starts_with('…') && shown.ends_with("1XK2Q8ZL5M3N"),
            "{shown}"
        );
    }
}

//! The HTML incident report of a real restore, opened in a real browser: headless Chromium
//! (Debian's `chromium`, installed by `scripts/test`) renders it to a PNG.

use std::process::Command;

use dynamo_dr_testkit::*;

use crate::support::dr;

const ITEMS: u64 = 1500;
/// The browser window, and so the screenshot: the timeline and the first rate chart fit in it.
const SIZE: (u32, u32) = (1100, 1500);

/// The pixels of a PNG screenshot, as RGB triples, with its size.
fn pixels(png: &[u8]) -> ((u32, u32), Vec<[u8; 3]>) {
    let mut reader = png::Decoder::new(std::io::Cursor::new(png))
        .read_info()
        .expect("a PNG");
    let mut buf = vec![0; reader.output_buffer_size().expect("size")];
    let info = reader.next_frame(&mut buf).expect("a frame");
    let step = info.color_type.samples();
    let rgb = buf[..info.buffer_size()]
        .chunks(step)
        .map(|p| [p[0], p[1], p[2]])
        .collect();
    ((info.width, info.height), rgb)
}

/// Headless Chromium renders `page` to `shot`, with a profile of its own, within two minutes.
fn screenshot(page: &std::path::Path, shot: &std::path::Path, dir: &std::path::Path) {
    let browser = std::env::var("DYNAMO_DR_CHROMIUM").unwrap_or_else(|_| "chromium".into());
    let mut child = Command::new(&browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--hide-scrollbars",
            &format!("--user-data-dir={}", dir.join("profile").display()),
            &format!("--window-size={},{}", SIZE.0, SIZE.1),
            &format!("--screenshot={}", shot.display()),
            &format!("file://{}", page.display()),
        ])
        .env("HOME", dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{browser} (scripts/setup-chromium installs it): {e}"));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let status = loop {
        match child.try_wait().expect("chromium's status") {
            Some(status) => break status,
            None if std::time::Instant::now() > deadline => {
                let _ = child.kill();
                panic!("{browser} did not finish the screenshot within two minutes");
            }
            None => std::thread::sleep(std::time::Duration::from_millis(50)),
        }
    };
    assert!(status.success(), "{browser}: {status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restores_html_report_shows_its_timeline_and_rates_in_chromium() {
    let moto = Emulator::start(Kind::Moto).await;
    let client = moto.client();
    let spec = TableSpec::seed_like("Prod-Orders");
    create_table(&client, &spec).await;
    put_all(
        &client,
        &spec.name,
        (0..ITEMS).map(|i| mixed_item(&spec, i)),
    )
    .await;
    let good = create_backup(&client, &spec.name, "known-good").await;
    corrupt(&client, &spec, ITEMS, 40).await;
    let reports = tempfile::tempdir().expect("dir");
    let dir = reports.path().display().to_string();
    let run = dr(
        &moto,
        // Capped and in small pages, so that the rate chart has seconds to show.
        &[
            "--max-write-rate",
            "500",
            "restore",
            "--table",
            &spec.name,
            "--incident-id",
            "inc-html",
            "--backup-arn",
            &good,
            "--confirm",
            &spec.name,
            "--segments",
            "4",
            "--scan-page-limit",
            "50",
            "--yes",
            "--report-dir",
            &dir,
        ],
        None,
    );
    run.assert_code(0);
    let page = reports.path().join("dynamo-dr-report-inc-html.html");
    assert!(
        run.stdout.contains(&page.display().to_string()),
        "the run names its HTML report: {}",
        run.stdout
    );
    let html = std::fs::read_to_string(&page).expect("the HTML report");
    for chart in ["timeline", "rates Prod-Orders", "segments Prod-Orders"] {
        assert!(
            html.contains(&format!("<figure data-chart=\"{chart}\">")),
            "{chart} chart"
        );
    }

    let shot = reports.path().join("report.png");
    screenshot(&page, &shot, reports.path());
    let png = std::fs::read(&shot).expect("a screenshot");
    let (size, rgb) = pixels(&png);
    assert_eq!(size, SIZE);
    // Not blank: a good share of the page is drawn, in the phases' own colours.
    let white = rgb.iter().filter(|p| **p == [255, 255, 255]).count();
    assert!(
        white < rgb.len() * 95 / 100,
        "{white} of {} white",
        rgb.len()
    );
    // More than a legend's swatch (about 150 pixels): the bars themselves. The sync phases fill
    // their timeline bars and segment charts; a phase of a moment is a hundredth of the axis.
    for (phase, colour, least) in [
        ("backup-and-restore", [0x4e, 0x79, 0xa7], 250),
        ("delete", [0xe1, 0x57, 0x59], 1_000),
        ("copy", [0x59, 0xa1, 0x4f], 1_000),
    ] {
        let drawn = rgb.iter().filter(|p| **p == colour).count();
        assert!(drawn > least, "{phase}: {drawn} pixels of its colour");
    }
    if std::env::var_os("DYNAMO_DR_UPDATE_DOCS").is_some() {
        let docs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/report.png");
        std::fs::write(docs, &png).expect("docs/report.png");
    }
}

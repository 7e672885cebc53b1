//! The report as one self-contained HTML page: the charts inline as SVG, then the Markdown report
//! rendered, with no script, no network and nothing but inline CSS, so it opens anywhere and
//! prints.

use pulldown_cmark::{Event, Options, Parser, Tag, TagEnd};

use super::{Report, charts};
use crate::error::Result;

const STYLE: &str = "body{font-family:sans-serif;max-width:1000px;margin:2em auto;padding:0 1em;\
color:#222}table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #bbb;padding:2px 6px;\
font-size:13px;vertical-align:top}h1{font-size:26px}h2{font-size:21px;margin-top:1.6em}\
figure{margin:1em 0;break-inside:avoid}svg{max-width:100%;height:auto}\
code{font-size:12px}@media print{body{margin:0}}";

/// The whole page.
pub fn page(report: &Report) -> Result<String> {
    let mut body = String::new();
    if let Some(origin) = charts::origin(report) {
        body.push_str(&format!(
            "<p>Times are seconds from {} (UTC).</p>",
            escape(&crate::validate::time_text(origin))
        ));
        figure(&mut body, "timeline", charts::timeline(report, origin)?);
        let axis = (origin, charts::span(report, origin));
        for e in &report.executions {
            if let Some(svg) = charts::rates(e, axis)? {
                figure(&mut body, &format!("rates {}", e.table), svg);
            }
            for svg in charts::segments(e, axis)? {
                figure(&mut body, &format!("segments {}", e.table), svg);
            }
        }
    }
    Ok(format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; \
         style-src 'unsafe-inline'\"><title>dynamo-dr report {}</title><style>{STYLE}</style></head><body>\n{body}\n{}\
         </body></html>\n",
        escape(&report.subject),
        markdown_html(&report.markdown())
    ))
}

fn figure(body: &mut String, name: &str, svg: String) {
    body.push_str(&format!(
        "<figure data-chart=\"{}\">{svg}</figure>\n",
        escape(name)
    ));
}

/// The Markdown report as HTML. Journal text (an error message, an event, a key) is shown as
/// text, never as markup: raw HTML in it is escaped, and a link or image it forms is dropped to
/// its text, so the page neither runs nor fetches anything.
fn markdown_html(md: &str) -> String {
    let parser = Parser::new_ext(md, Options::ENABLE_TABLES).filter_map(|event| match event {
        Event::Html(raw) | Event::InlineHtml(raw) => Some(Event::Text(raw)),
        Event::Start(Tag::Link { .. } | Tag::Image { .. })
        | Event::End(TagEnd::Link | TagEnd::Image) => None,
        other => Some(other),
    });
    let mut html = String::new();
    pulldown_cmark::html::push_html(&mut html, parser);
    html
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_text_is_shown_never_run() {
        let html = markdown_html(
            "| a |\n|---|\n| <script>alert(1)</script> |\n\n<img src=x>\n\n\
             [click](javascript:alert(1)) ![pic](https://example.com/x.png)\n",
        );
        assert!(!html.contains("<script>"), "{html}");
        assert!(!html.contains("<img"), "{html}");
        assert!(!html.contains("href"), "{html}");
        assert!(html.contains("click"), "{html}");
        assert!(html.contains("&lt;script&gt;"), "{html}");
        assert!(html.contains("<table>"), "{html}");
    }
}

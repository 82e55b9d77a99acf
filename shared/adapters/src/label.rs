//! The printable return label: a 4×6 inch PDF page with the RMA number as a Code 128 barcode.
//!
//! `barcoders` encodes the symbol (start code, data, checksum, stop code) into modules; the page is
//! written with `pdf-writer`, each run of dark modules a filled rectangle, so the bars stay sharp at
//! any printer resolution. Text uses the standard Helvetica fonts every PDF reader has, in
//! WinAnsiEncoding, which covers the Western European letters of addresses.

use barcoders::sym::code128::Code128;
use oms_domain::contact::Address;
use oms_domain::order::returns::{Return, ReturnStatus};
use oms_domain::order::Order;
use pdf_writer::{Content, Finish, Name, Pdf, Rect, Ref, Str, TextStr};

/// 4 × 6 inches, in points: the common thermal label size.
const WIDTH: f32 = 288.0;
const HEIGHT: f32 = 432.0;
const MARGIN: f32 = 14.0;
/// Light margins either side of the bars, in modules, as Code 128 asks (at least 10).
const QUIET_ZONE: usize = 10;
const BARCODE_HEIGHT: f32 = 64.0;
/// The most item lines printed; more are summarised.
const MAX_ITEM_LINES: usize = 8;

const REGULAR: Name = Name(b"F1");
const BOLD: Name = Name(b"F2");

/// Whether a return has its label: issued once it is approved, kept after receipt for records.
pub fn is_issued(rma: &Return) -> bool {
    matches!(rma.status, ReturnStatus::Approved | ReturnStatus::Received)
}

#[derive(Debug, thiserror::Error)]
#[error("the RMA number cannot be encoded as Code 128: {0}")]
pub struct LabelError(String);

/// Text in WinAnsiEncoding: Latin-1 letters keep their code, `€` and the typographic dash have
/// theirs, anything else becomes `?` rather than a wrong glyph.
fn win_ansi(text: &str) -> Vec<u8> {
    text.chars()
        .map(|c| match c {
            ' '..='~' => c as u8,
            '\u{a0}'..='\u{ff}' => c as u32 as u8,
            '€' => 0x80,
            '–' => 0x96,
            '—' => 0x97,
            '‘' | '’' => b'\'',
            '“' | '”' => b'"',
            _ => b'?',
        })
        .collect()
}

/// Cuts `text` to about what fits in `width` points at `size` (Helvetica averages ~0.55 em).
fn fit(text: &str, size: f32, width: f32) -> String {
    let max = (width / (size * 0.55)) as usize;
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        let cut: String = text.chars().take(max.saturating_sub(1)).collect();
        format!("{cut}…").replace('…', "...")
    }
}

struct Page {
    content: Content,
    /// The baseline of the next line, from the top.
    y: f32,
}

impl Page {
    fn line(&mut self, font: Name, size: f32, text: &str) {
        self.y += size * 1.25;
        let text = fit(text, size, WIDTH - 2.0 * MARGIN);
        self.content
            .begin_text()
            .set_font(font, size)
            .next_line(MARGIN, HEIGHT - self.y)
            .show(Str(&win_ansi(&text)))
            .end_text();
    }

    fn gap(&mut self, points: f32) {
        self.y += points;
    }

    fn rule(&mut self) {
        self.gap(6.0);
        self.content
            .rect(MARGIN, HEIGHT - self.y, WIDTH - 2.0 * MARGIN, 0.8)
            .fill_nonzero();
        self.gap(4.0);
    }

    fn address(&mut self, heading: &str, address: &Address, size: f32) {
        self.line(BOLD, 8.0, heading);
        for line in address.postal_lines() {
            self.line(REGULAR, size, &line);
        }
    }

    /// The bars, centred, as wide as the page allows.
    fn barcode(&mut self, modules: &[u8]) {
        let total = modules.len() + 2 * QUIET_ZONE;
        let module = (WIDTH - 2.0 * MARGIN) / total as f32;
        let left = MARGIN + QUIET_ZONE as f32 * module;
        self.gap(8.0);
        let bottom = HEIGHT - self.y - BARCODE_HEIGHT;
        let mut index = 0;
        while index < modules.len() {
            if modules[index] == 1 {
                let start = index;
                while index < modules.len() && modules[index] == 1 {
                    index += 1;
                }
                let x = left + start as f32 * module;
                let width = (index - start) as f32 * module;
                self.content.rect(x, bottom, width, BARCODE_HEIGHT);
            } else {
                index += 1;
            }
        }
        self.content.fill_nonzero();
        self.y += BARCODE_HEIGHT;
    }
}

/// The label of `rma`, a return of `order`, sent to `to`.
pub fn render(order: &Order, rma: &Return, to: &Address) -> Result<Vec<u8>, LabelError> {
    let number = rma.return_id.to_string();
    // Character set B holds upper- and lower-case letters, digits and '-'.
    let modules = Code128::new(format!("\u{0181}{number}"))
        .map_err(|e| LabelError(e.to_string()))?
        .encode();

    let mut page = Page {
        content: Content::new(),
        y: MARGIN,
    };
    page.content.set_fill_gray(0.0);
    page.line(BOLD, 20.0, "RETURN");
    page.line(REGULAR, 9.0, &format!("Order {}", order.id));
    page.rule();
    page.address("FROM", &order.shipping.address, 9.0);
    page.rule();
    page.address("TO", to, 13.0);
    page.rule();
    page.barcode(&modules);
    page.line(BOLD, 11.0, &number);
    page.rule();
    page.line(BOLD, 8.0, "ITEMS");
    for line in rma.lines.iter().take(MAX_ITEM_LINES) {
        page.line(
            REGULAR,
            8.5,
            &format!("{} × {} ({})", line.quantity.get(), line.name, line.sku),
        );
    }
    if rma.lines.len() > MAX_ITEM_LINES {
        page.line(
            REGULAR,
            8.5,
            &format!("and {} more lines", rma.lines.len() - MAX_ITEM_LINES),
        );
    }

    let (catalog, pages, page_id, content_id, regular, bold, info) = (
        Ref::new(1),
        Ref::new(2),
        Ref::new(3),
        Ref::new(4),
        Ref::new(5),
        Ref::new(6),
        Ref::new(7),
    );
    let mut pdf = Pdf::new();
    pdf.catalog(catalog).pages(pages);
    pdf.pages(pages).kids([page_id]).count(1);
    let mut pdf_page = pdf.page(page_id);
    pdf_page
        .parent(pages)
        .media_box(Rect::new(0.0, 0.0, WIDTH, HEIGHT))
        .contents(content_id);
    let mut resources = pdf_page.resources();
    let mut fonts = resources.fonts();
    fonts.pair(REGULAR, regular);
    fonts.pair(BOLD, bold);
    fonts.finish();
    resources.finish();
    pdf_page.finish();
    for (id, name) in [(regular, "Helvetica"), (bold, "Helvetica-Bold")] {
        pdf.type1_font(id)
            .base_font(Name(name.as_bytes()))
            .encoding_predefined(Name(b"WinAnsiEncoding"));
    }
    pdf.document_info(info)
        .title(TextStr(&format!("Return label {number}")));
    let content = page.content.finish();
    pdf.stream(content_id, &content);
    Ok(pdf.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_encoded_for_the_standard_fonts() {
        assert_eq!(win_ansi("Straße 5 – €"), b"Stra\xdfe 5 \x96 \x80");
        assert_eq!(win_ansi("东京"), b"??");
    }

    #[test]
    fn long_lines_are_cut_to_the_page() {
        let long = "x".repeat(200);
        assert!(fit(&long, 9.0, 260.0).len() < 60);
        assert_eq!(fit("short", 9.0, 260.0), "short");
    }
}

//! `.odt` documents (OpenDocument Text).
//!
//! ```text
//!  .odt (zip) ──▶ content.xml (body), styles.xml (headers and footers of master pages)
//!             ──▶ blocks: one per text:p / text:h, runs: each character-data node
//!             ──▶ translated together ──▶ each node's text replaced ──▶ .odt (zip)
//! ```
//!
//! A block is a `text:p` or `text:h`; its runs are its character-data nodes in order, directly
//! inside it or at any depth of `text:span`, `text:a`, `text:meta`, `text:ruby-base`. Nested
//! paragraphs (frames' text boxes, notes' bodies, annotations) are their own blocks.
//! `text:s`, `text:tab`, `text:line-break` and every other element are copied as they are
//! (and separate runs); character data of any other element (a field's computed value, a
//! heading's number, an image's title) is not text to translate.
//!
//! In `styles.xml` only paragraphs are read, so style names and other attributes are never
//! touched. `meta.xml`, `settings.xml`, the manifest, pictures and the `mimetype` entry
//! (stored and first, as ODF requires) are copied raw.
//!
//! Not translated, and reported: note numbers (`text:note-citation`, generated), tracked
//! deletions (`text:deletion`), images and embedded objects. The work itself (limits, the two
//! passes, the raw copy) is [`super::xml::translate_package`].

use valise_protocol::translate::DocumentReport;

use super::xml::{DELETIONS, EMBEDDED, Format, Note, Role, translate_package};
use super::{DocLimits, RunTranslator};
use crate::TranslateError;

const TEXT: &str = "urn:oasis:names:tc:opendocument:xmlns:text:1.0";
const DRAW: &str = "urn:oasis:names:tc:opendocument:xmlns:drawing:1.0";

const NOTE_NUMBERS: Note = Note {
    what: "footnote numbers",
    why: "note numbers are generated, left as they are",
};

const FORMAT: Format = Format {
    label: "an .odt document",
    required: &["content.xml"],
    wanted: is_text_part,
    classify,
};

/// Translates an `.odt`; see the module documentation.
pub fn translate(
    input: &[u8],
    limits: &DocLimits,
    tr: &mut dyn RunTranslator,
    report: &mut DocumentReport,
) -> Result<Vec<u8>, TranslateError> {
    translate_package(input, &FORMAT, limits, tr, report)
}

fn is_text_part(name: &str) -> bool {
    matches!(name, "content.xml" | "styles.xml")
}

fn classify(ns: Option<&str>, local: &str) -> Role {
    match (ns, local) {
        (Some(TEXT), "p" | "h") => Role::Paragraph { holds_text: true },
        (Some(TEXT), "span" | "a" | "meta" | "ruby-base") => Role::Text { space_attr: false },
        (Some(TEXT), "note-citation") => Role::Opaque(NOTE_NUMBERS),
        (Some(TEXT), "deletion") => Role::Opaque(DELETIONS),
        (Some(DRAW), "image" | "object" | "object-ole") => Role::Counted(EMBEDDED),
        _ => Role::Other,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::super::Block;
    use super::super::testing::{Merge, Same, Upper};
    use super::super::zipio::tests::{build_zip, entries};
    use super::*;
    use zip::CompressionMethod;

    const MIMETYPE: &[u8] = b"application/vnd.oasis.opendocument.text";
    const MANIFEST: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<manifest:manifest xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0" manifest:version="1.3"><manifest:file-entry manifest:full-path="/" manifest:media-type="application/vnd.oasis.opendocument.text"/><manifest:file-entry manifest:full-path="content.xml" manifest:media-type="text/xml"/><manifest:file-entry manifest:full-path="styles.xml" manifest:media-type="text/xml"/></manifest:manifest>"#;
    const NAMESPACES: &str = r#"xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" xmlns:style="urn:oasis:names:tc:opendocument:xmlns:style:1.0" xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" xmlns:draw="urn:oasis:names:tc:opendocument:xmlns:drawing:1.0" xmlns:xlink="http://www.w3.org/1999/xlink" xmlns:svg="urn:oasis:names:tc:opendocument:xmlns:svg-compatible:1.0" xmlns:dc="http://purl.org/dc/elements/1.1/" office:version="1.3""#;
    const PNG: &[u8] = b"\x89PNG\r\n\x1a\n fake picture";

    fn content(body: &str) -> String {
        format!(
            r#"<?xml version="1.0" encoding="UTF-8"?>
<office:document-content {NAMESPACES}><office:automatic-styles><style:style style:name="T1" style:family="text"/></office:automatic-styles><office:body><office:text>{body}</office:text></office:body></office:document-content>"#
        )
    }

    fn styles(header: &str) -> String {
        format!(
            r#"<?xml version="1.0" encoding="UTF-8"?>
<office:document-styles {NAMESPACES}><office:styles><style:style style:name="Standard" style:display-name="Default Paragraph Style" style:family="paragraph"/></office:styles><office:master-styles><style:master-page style:name="Standard" style:page-layout-name="pm1"><style:header><text:p text:style-name="Header">{header}</text:p></style:header></style:master-page></office:master-styles></office:document-styles>"#
        )
    }

    const META: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<office:document-meta xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" xmlns:dc="http://purl.org/dc/elements/1.1/"><office:meta><dc:title>Secret title</dc:title></office:meta></office:document-meta>"#;

    /// A minimal valid .odt: mimetype (stored, first), manifest, content, styles, meta and
    /// a picture.
    fn odt(body: &str, header: &str) -> Vec<u8> {
        let content = content(body);
        let styles = styles(header);
        build_zip(&[
            ("mimetype", MIMETYPE, true),
            ("META-INF/manifest.xml", MANIFEST.as_bytes(), false),
            ("content.xml", content.as_bytes(), false),
            ("styles.xml", styles.as_bytes(), false),
            ("meta.xml", META.as_bytes(), false),
            ("Pictures/p.png", PNG, false),
        ])
    }

    fn entry(zip: &[u8], name: &str) -> String {
        let (_, bytes, _) = entries(zip).into_iter().find(|e| e.0 == name).unwrap();
        String::from_utf8(bytes).unwrap()
    }

    fn run(input: &[u8], tr: &mut dyn RunTranslator) -> (Vec<u8>, DocumentReport) {
        let mut report = DocumentReport::default();
        let out = translate(input, &DocLimits::default(), tr, &mut report).unwrap();
        (out, report)
    }

    fn error(input: &[u8], limits: &DocLimits) -> TranslateError {
        let mut report = DocumentReport::default();
        translate(input, limits, &mut Upper::default(), &mut report).unwrap_err()
    }

    const BOLD_PLAIN: &str = r#"<text:p text:style-name="P1"><text:span text:style-name="T1">Hello </text:span>world</text:p>"#;

    #[test]
    fn a_span_and_plain_text_are_one_block_of_two_runs() {
        let mut up = Upper::default();
        let (_, report) = run(&odt(BOLD_PLAIN, ""), &mut up);
        assert_eq!(up.seen, [Block::new(vec!["Hello ".into(), "world".into()])]);
        assert_eq!(report.blocks, 1);
    }

    #[test]
    fn translated_runs_land_in_their_span() {
        let (out, _) = run(&odt(BOLD_PLAIN, ""), &mut Upper::default());
        let expected = BOLD_PLAIN
            .replace("Hello", "HELLO")
            .replace("world", "WORLD");
        assert_eq!(entry(&out, "content.xml"), content(&expected));
    }

    #[test]
    fn merged_text_goes_to_the_first_run_and_the_span_stays() {
        let (out, _) = run(&odt(BOLD_PLAIN, ""), &mut Merge);
        let expected = r#"<text:p text:style-name="P1"><text:span text:style-name="T1">HELLO WORLD</text:span></text:p>"#;
        assert_eq!(entry(&out, "content.xml"), content(expected));
    }

    #[test]
    fn spaces_tabs_breaks_and_links_keep_their_place() {
        let body = r#"<text:h text:outline-level="1"><text:number>1.</text:number>Title</text:h><text:p>a<text:s text:c="3"/>b<text:tab/>c<text:line-break/><text:a xlink:href="https://x"><text:span>link</text:span></text:a> &amp; more</text:p>"#;
        let mut up = Upper::default();
        let (out, _) = run(&odt(body, ""), &mut up);
        assert_eq!(up.seen[0].runs, ["Title"]);
        assert_eq!(up.seen[1].runs, ["a", "b", "c", "link", " & more"]);
        let expected = body
            .replace("Title", "TITLE")
            .replace(">a<", ">A<")
            .replace("/>b<", "/>B<")
            .replace("/>c<", "/>C<")
            .replace(">link<", ">LINK<")
            .replace(" &amp; more", " &amp; MORE");
        assert_eq!(entry(&out, "content.xml"), content(&expected));
    }

    #[test]
    fn identity_keeps_every_part_byte_identical() {
        let body = format!("{BOLD_PLAIN}<text:p>x &lt; y &#233;\n  z</text:p><text:p/>");
        let input = odt(&body, "Page header");
        let (out, _) = run(&input, &mut Same);
        assert_eq!(entries(&out), entries(&input));
    }

    #[test]
    fn headers_in_styles_are_translated_but_not_style_names() {
        let (out, report) = run(&odt(BOLD_PLAIN, "Confidential"), &mut Upper::default());
        assert_eq!(report.blocks, 2);
        let styles = entry(&out, "styles.xml");
        assert!(styles.contains(">CONFIDENTIAL</text:p>"));
        assert!(styles.contains(r#"style:display-name="Default Paragraph Style""#));
        assert_eq!(entry(&out, "meta.xml"), META);
    }

    #[test]
    fn note_numbers_deletions_and_images_are_untouched_and_reported() {
        let body = r#"<text:tracked-changes><text:changed-region text:id="c1"><text:deletion><office:change-info><dc:creator>Ann</dc:creator></office:change-info><text:p>removed words</text:p></text:deletion></text:changed-region></text:tracked-changes><text:p>Text<text:note text:note-class="footnote"><text:note-citation>1</text:note-citation><text:note-body><text:p>The note</text:p></text:note-body></text:note> after<draw:frame draw:name="Image1"><svg:title>photo title</svg:title><draw:image xlink:href="Pictures/p.png"/></draw:frame></text:p>"#;
        let mut up = Upper::default();
        let (out, report) = run(&odt(body, ""), &mut up);
        assert_eq!(
            up.seen,
            [
                Block::new(vec!["Text".into(), " after".into()]),
                Block::new(vec!["The note".into()])
            ]
        );
        let doc = entry(&out, "content.xml");
        assert!(doc.contains("<text:p>removed words</text:p>"));
        assert!(doc.contains("<text:note-citation>1</text:note-citation>"));
        assert!(doc.contains("<svg:title>photo title</svg:title>"));
        let lines: Vec<_> = report
            .skipped
            .iter()
            .map(|s| (s.what.as_str(), s.count))
            .collect();
        assert_eq!(
            lines,
            [
                ("tracked deletions", 1),
                ("footnote numbers", 1),
                ("images and embedded objects", 1)
            ]
        );
        let png = entries(&out)
            .into_iter()
            .find(|e| e.0 == "Pictures/p.png")
            .unwrap();
        assert_eq!(png.1, PNG);
    }

    #[test]
    fn a_frame_paragraph_is_its_own_block() {
        let body = r#"<text:p>Outer <draw:frame><draw:text-box><text:p>boxed</text:p></draw:text-box></draw:frame>end</text:p>"#;
        let mut up = Upper::default();
        run(&odt(body, ""), &mut up);
        assert_eq!(
            up.seen,
            [
                Block::new(vec!["Outer ".into(), "end".into()]),
                Block::new(vec!["boxed".into()])
            ]
        );
    }

    #[test]
    fn the_mimetype_stays_first_and_stored() {
        let (out, _) = run(&odt(BOLD_PLAIN, "Header"), &mut Upper::default());
        let all = entries(&out);
        assert_eq!(all[0].0, "mimetype");
        assert_eq!(all[0].1, MIMETYPE);
        assert_eq!(all[0].2, CompressionMethod::Stored);
        // ODF readers check the magic at a fixed offset: name at 30, content right after
        // (no extra field).
        assert_eq!(&out[30..38], b"mimetype");
        assert_eq!(&out[38..38 + MIMETYPE.len()], MIMETYPE);
        let names: Vec<_> = all.iter().map(|e| e.0.as_str()).collect();
        assert_eq!(
            names,
            [
                "mimetype",
                "META-INF/manifest.xml",
                "content.xml",
                "styles.xml",
                "meta.xml",
                "Pictures/p.png"
            ]
        );
    }

    #[test]
    fn the_output_parses_again() {
        let (out, _) = run(&odt(BOLD_PLAIN, "Header"), &mut Upper::default());
        let mut up = Upper::default();
        run(&out, &mut up);
        assert_eq!(up.seen[0].runs, ["HELLO ", "WORLD"]);
        assert_eq!(up.seen[1].runs, ["HEADER"]);
    }

    #[test]
    fn unsafe_and_broken_inputs_are_refused() {
        let good = odt(BOLD_PLAIN, "");
        let traversal = build_zip(&[
            ("mimetype", MIMETYPE, true),
            ("content.xml", content(BOLD_PLAIN).as_bytes(), false),
            ("../evil.xml", b"x", false),
        ]);
        let malformed = build_zip(&[
            ("mimetype", MIMETYPE, true),
            (
                "content.xml",
                content("<text:p>open</text:span>").as_bytes(),
                false,
            ),
        ]);
        let doctype = build_zip(&[(
            "content.xml",
            b"<!DOCTYPE x SYSTEM \"file:///etc/passwd\"><x/>",
            false,
        )]);
        let missing = build_zip(&[("mimetype", MIMETYPE, true)]);
        let cases: [(&str, &[u8]); 6] = [
            ("traversal", &traversal),
            ("malformed", &malformed),
            ("doctype", &doctype),
            ("missing content", &missing),
            ("truncated", &good[..good.len() / 2]),
            ("not a zip", b"just text"),
        ];
        for (what, input) in cases {
            let e = error(input, &DocLimits::default());
            assert!(matches!(e, TranslateError::BadDocument(_)), "{what}: {e:?}");
        }
    }

    #[test]
    fn limits_are_enforced() {
        let zeros = vec![0u8; 20 * 1024 * 1024];
        let bomb = build_zip(&[("mimetype", MIMETYPE, true), ("content.xml", &zeros, false)]);
        let small = DocLimits {
            max_entry_bytes: 1024 * 1024,
            ..DocLimits::default()
        };
        assert!(matches!(error(&bomb, &small), TranslateError::TooLarge(_)));
        let few = DocLimits {
            max_entries: 2,
            ..DocLimits::default()
        };
        assert!(matches!(
            error(&odt(BOLD_PLAIN, ""), &few),
            TranslateError::TooLarge(_)
        ));
        let deep = format!(
            "<text:p>{}x{}</text:p>",
            "<text:span>".repeat(30),
            "</text:span>".repeat(30)
        );
        let shallow = DocLimits {
            max_depth: 16,
            ..DocLimits::default()
        };
        let e = error(&odt(&deep, ""), &shallow);
        assert!(matches!(e, TranslateError::BadDocument(_)), "{e:?}");
    }
}

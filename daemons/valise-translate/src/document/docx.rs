//! `.docx` documents (Office Open XML, WordprocessingML).
//!
//! ```text
//!  .docx (zip) ──▶ word/document.xml, header*.xml, footer*.xml, footnotes.xml,
//!                  endnotes.xml, comments.xml ──▶ blocks: one per w:p, runs: each w:t
//!              ──▶ translated together ──▶ each w:t's text replaced ──▶ .docx (zip)
//! ```
//!
//! A block is a `w:p` paragraph; its runs are the texts of its `w:t` elements in order,
//! wherever they sit (`w:r`, `w:hyperlink`, `w:ins`, `w:smartTag`, `w:sdt` content…), so a
//! sentence split by bold or a link is translated as one. Paragraphs of text boxes
//! (`w:txbxContent`, inside a run of another paragraph) are their own blocks. `w:tab`,
//! `w:br` and every other element are copied as they are, and separate runs.
//!
//! A shape saved twice (`mc:AlternateContent`: a DrawingML choice and its VML fallback) has
//! its text box translated in both copies, so that every reader shows the translation; its
//! image is then counted twice in the report.
//!
//! Not translated, and reported: tracked deletions (`w:delText`: translating them would
//! put text in the document that the author removed), field codes (`w:instrText`: `PAGE`,
//! `HYPERLINK "…"`, instructions to Word, not text), images and embedded objects.
//!
//! Word drops leading and trailing spaces of a `w:t` unless it says
//! `xml:space="preserve"`, so a new text with such spaces gets the attribute.
//! The work itself (limits, the two passes, the raw copy of every other entry) is
//! [`super::xml::translate_package`].

use valise_protocol::translate::DocumentReport;

use super::xml::{DELETIONS, EMBEDDED, Format, Note, Role, translate_package};
use super::{DocLimits, RunTranslator};
use crate::TranslateError;

/// WordprocessingML, transitional (what Word writes) and strict.
const W: &str = "http://schemas.openxmlformats.org/wordprocessingml/2006/main";
const W_STRICT: &str = "http://purl.oclc.org/ooxml/wordprocessingml/main";

const MAIN_PART: &str = "word/document.xml";

const FIELD_CODES: Note = Note {
    what: "field codes",
    why: "field instructions (page numbers, links, references) are not text, left as they are",
};

const FORMAT: Format = Format {
    label: "a .docx document",
    required: &[MAIN_PART],
    wanted: is_text_part,
    classify,
};

/// Translates a `.docx`; see the module documentation.
pub fn translate(
    input: &[u8],
    limits: &DocLimits,
    tr: &mut dyn RunTranslator,
    report: &mut DocumentReport,
) -> Result<Vec<u8>, TranslateError> {
    translate_package(input, &FORMAT, limits, tr, report)
}

/// The parts whose text a reader sees: the body, headers, footers, notes and comments,
/// directly under `word/` (not the glossary of building blocks, `word/glossary/`).
fn is_text_part(name: &str) -> bool {
    let Some(file) = name.strip_prefix("word/") else {
        return false;
    };
    if file.contains('/') || !file.ends_with(".xml") {
        return false;
    }
    matches!(
        file,
        "document.xml" | "footnotes.xml" | "endnotes.xml" | "comments.xml"
    ) || file.starts_with("header")
        || file.starts_with("footer")
}

fn classify(ns: Option<&str>, local: &str) -> Role {
    if !matches!(ns, Some(W | W_STRICT)) {
        return Role::Other;
    }
    match local {
        "p" => Role::Paragraph { holds_text: false },
        "t" => Role::Text { space_attr: true },
        "delText" => Role::Opaque(DELETIONS),
        "instrText" | "delInstrText" => Role::Opaque(FIELD_CODES),
        "drawing" | "object" | "pict" => Role::Counted(EMBEDDED),
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

    const CONTENT_TYPES: &str = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Default Extension="png" ContentType="image/png"/><Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>"#;
    const RELS: &str = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="word/document.xml"/></Relationships>"#;
    const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR fake image bytes";

    /// A WordprocessingML part: `root` element holding `body`.
    fn part(root: &str, body: &str) -> String {
        format!(
            r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<w:{root} xmlns:w="{W}" xmlns:wp="http://schemas.openxmlformats.org/drawingml/2006/wordprocessingDrawing">{body}</w:{root}>"#
        )
    }

    fn document(body: &str) -> String {
        part("document", &format!("<w:body>{body}<w:sectPr/></w:body>"))
    }

    /// A minimal valid .docx with `body` in its document, plus `extra` entries.
    fn docx(body: &str, extra: &[(&str, &[u8])]) -> Vec<u8> {
        let doc = document(body);
        let mut list: Vec<(&str, &[u8], bool)> = vec![
            ("[Content_Types].xml", CONTENT_TYPES.as_bytes(), false),
            ("_rels/.rels", RELS.as_bytes(), false),
            ("word/document.xml", doc.as_bytes(), false),
        ];
        list.extend(extra.iter().map(|(n, b)| (*n, *b, false)));
        build_zip(&list)
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

    fn is_bad(e: &TranslateError) -> bool {
        matches!(e, TranslateError::BadDocument(_))
    }

    const BOLD_PLAIN: &str = r#"<w:p><w:r><w:rPr><w:b/></w:rPr><w:t xml:space="preserve">Hello </w:t></w:r><w:r><w:t>world</w:t></w:r></w:p>"#;

    #[test]
    fn bold_and_plain_runs_are_one_block_of_two_runs() {
        let mut up = Upper::default();
        let (_, report) = run(&docx(BOLD_PLAIN, &[]), &mut up);
        assert_eq!(up.seen, [Block::new(vec!["Hello ".into(), "world".into()])]);
        assert_eq!(report.blocks, 1);
    }

    #[test]
    fn translated_runs_land_in_their_own_w_t() {
        let (out, _) = run(&docx(BOLD_PLAIN, &[]), &mut Upper::default());
        let expected = BOLD_PLAIN
            .replace("Hello", "HELLO")
            .replace("world", "WORLD");
        assert_eq!(entry(&out, MAIN_PART), document(&expected));
    }

    #[test]
    fn merged_text_goes_to_the_first_run_and_the_others_stay_empty() {
        let (out, _) = run(&docx(BOLD_PLAIN, &[]), &mut Merge);
        let expected = r#"<w:p><w:r><w:rPr><w:b/></w:rPr><w:t xml:space="preserve">HELLO WORLD</w:t></w:r><w:r><w:t></w:t></w:r></w:p>"#;
        assert_eq!(entry(&out, MAIN_PART), document(expected));
    }

    #[test]
    fn hyperlinks_insertions_tabs_and_breaks_keep_their_place() {
        let body = r#"<w:p><w:hyperlink w:history="1"><w:r><w:t>Link</w:t></w:r></w:hyperlink><w:ins w:id="1"><w:r><w:tab/><w:t>new</w:t><w:br/><w:t>line</w:t></w:r></w:ins><w:sdt><w:sdtContent><w:r><w:t>sdt</w:t></w:r></w:sdtContent></w:sdt></w:p>"#;
        let mut up = Upper::default();
        let (out, _) = run(&docx(body, &[]), &mut up);
        assert_eq!(up.seen[0].runs, ["Link", "new", "line", "sdt"]);
        let expected = body
            .replace("Link", "LINK")
            .replace(">new<", ">NEW<")
            .replace("line", "LINE")
            .replace(">sdt<", ">SDT<");
        assert_eq!(entry(&out, MAIN_PART), document(&expected));
    }

    #[test]
    fn identity_keeps_every_part_byte_identical() {
        let body = format!(
            r#"{BOLD_PLAIN}<w:p><w:r><w:t>a &amp; b &lt;c&gt; &#233;</w:t></w:r></w:p>
<w:p><w:pPr><w:pStyle w:val="Heading1"/></w:pPr><w:r><w:t>  spaced  </w:t></w:r></w:p>"#
        );
        let header = part("hdr", "<w:p><w:r><w:t>Header</w:t></w:r></w:p>");
        let input = docx(
            &body,
            &[
                ("word/header1.xml", header.as_bytes()),
                ("word/media/image1.png", PNG),
            ],
        );
        let (out, _) = run(&input, &mut Same);
        assert_eq!(entries(&out), entries(&input));
    }

    #[test]
    fn headers_footers_notes_and_comments_are_translated() {
        let p = |t: &str| format!("<w:p><w:r><w:t>{t}</w:t></w:r></w:p>");
        let header = part("hdr", &p("head"));
        let footer = part("ftr", &p("foot"));
        let notes = part(
            "footnotes",
            &format!("<w:footnote w:id=\"1\">{}</w:footnote>", p("note")),
        );
        let comments = part(
            "comments",
            &format!("<w:comment w:id=\"0\">{}</w:comment>", p("remark")),
        );
        let glossary = part("glossaryDocument", &p("building block"));
        let input = docx(
            &p("body"),
            &[
                ("word/header1.xml", header.as_bytes()),
                ("word/footer2.xml", footer.as_bytes()),
                ("word/footnotes.xml", notes.as_bytes()),
                ("word/comments.xml", comments.as_bytes()),
                ("word/glossary/document.xml", glossary.as_bytes()),
            ],
        );
        let mut up = Upper::default();
        let (out, report) = run(&input, &mut up);
        assert_eq!(report.blocks, 5);
        assert!(entry(&out, "word/header1.xml").contains(">HEAD<"));
        assert!(entry(&out, "word/footer2.xml").contains(">FOOT<"));
        assert!(entry(&out, "word/footnotes.xml").contains(">NOTE<"));
        assert!(entry(&out, "word/comments.xml").contains(">REMARK<"));
        assert_eq!(entry(&out, "word/glossary/document.xml"), glossary);
    }

    #[test]
    fn deletions_and_field_codes_are_untouched_and_reported() {
        let body = r#"<w:p><w:del w:id="1"><w:r><w:delText>old words</w:delText></w:r></w:del><w:r><w:fldChar w:fldCharType="begin"/></w:r><w:r><w:instrText xml:space="preserve"> PAGE </w:instrText></w:r><w:r><w:fldChar w:fldCharType="separate"/></w:r><w:r><w:t>page one</w:t></w:r><w:r><w:fldChar w:fldCharType="end"/></w:r></w:p>"#;
        let mut up = Upper::default();
        let (out, report) = run(&docx(body, &[]), &mut up);
        assert_eq!(up.seen[0].runs, ["page one"]);
        let doc = entry(&out, MAIN_PART);
        assert!(doc.contains("<w:delText>old words</w:delText>"));
        assert!(doc.contains("> PAGE </w:instrText>"));
        assert!(doc.contains(">PAGE ONE<"));
        let lines: Vec<_> = report
            .skipped
            .iter()
            .map(|s| (s.what.as_str(), s.count))
            .collect();
        assert_eq!(lines, [("tracked deletions", 1), ("field codes", 1)]);
    }

    #[test]
    fn images_stay_byte_identical_and_are_reported() {
        let body = r#"<w:p><w:r><w:drawing><wp:inline><wp:docPr id="1" name="Picture 1" descr="a photo"/></wp:inline></w:drawing></w:r><w:r><w:t>caption</w:t></w:r></w:p>"#;
        let input = docx(body, &[("word/media/image1.png", PNG)]);
        let (out, report) = run(&input, &mut Upper::default());
        let image = entries(&out)
            .into_iter()
            .find(|e| e.0 == "word/media/image1.png");
        assert_eq!(image.unwrap().1, PNG);
        assert!(entry(&out, MAIN_PART).contains(r#"descr="a photo""#));
        assert_eq!(report.skipped.len(), 1);
        assert_eq!(report.skipped[0].what, "images and embedded objects");
        assert_eq!(report.skipped[0].count, 1);
    }

    #[test]
    fn a_text_box_paragraph_is_its_own_block() {
        let body = r#"<w:p><w:r><w:t>Outer </w:t></w:r><w:r><w:pict><w:txbxContent><w:p><w:r><w:t>boxed</w:t></w:r></w:p></w:txbxContent></w:pict></w:r><w:r><w:t>end</w:t></w:r></w:p>"#;
        let mut up = Upper::default();
        let (out, _) = run(&docx(body, &[]), &mut up);
        assert_eq!(
            up.seen,
            [
                Block::new(vec!["Outer ".into(), "end".into()]),
                Block::new(vec!["boxed".into()])
            ]
        );
        assert!(entry(&out, MAIN_PART).contains("<w:t>BOXED</w:t>"));
    }

    #[test]
    fn edge_spaces_add_xml_space_preserve() {
        struct Pad;
        impl RunTranslator for Pad {
            fn translate_blocks(
                &mut self,
                b: &[Block],
            ) -> Result<Vec<Vec<String>>, TranslateError> {
                Ok(b.iter()
                    .map(|b| b.runs.iter().map(|r| format!("{r} ")).collect())
                    .collect())
            }
        }
        let (out, _) = run(&docx("<w:p><w:r><w:t>one</w:t></w:r></w:p>", &[]), &mut Pad);
        assert!(entry(&out, MAIN_PART).contains(r#"<w:t xml:space="preserve">one </w:t>"#));
    }

    #[test]
    fn text_is_escaped_on_output() {
        struct Markup;
        impl RunTranslator for Markup {
            fn translate_blocks(
                &mut self,
                b: &[Block],
            ) -> Result<Vec<Vec<String>>, TranslateError> {
                Ok(b.iter().map(|_| vec!["<b>&amp;</b>".to_owned()]).collect())
            }
        }
        let (out, _) = run(
            &docx("<w:p><w:r><w:t>x</w:t></w:r></w:p>", &[]),
            &mut Markup,
        );
        assert!(entry(&out, MAIN_PART).contains("<w:t>&lt;b&gt;&amp;amp;&lt;/b&gt;</w:t>"));
    }

    #[test]
    fn the_output_is_a_valid_zip_that_parses_again() {
        let input = docx(BOLD_PLAIN, &[("word/media/image1.png", PNG)]);
        let (out, _) = run(&input, &mut Upper::default());
        let names: Vec<_> = entries(&out).into_iter().map(|e| e.0).collect();
        let original: Vec<_> = entries(&input).into_iter().map(|e| e.0).collect();
        assert_eq!(names, original);
        let mut up = Upper::default();
        run(&out, &mut up);
        assert_eq!(up.seen[0].runs, ["HELLO ", "WORLD"]);
    }

    #[test]
    fn unsafe_entry_names_are_rejected() {
        for name in ["../evil.xml", "/abs.xml"] {
            let e = error(&docx(BOLD_PLAIN, &[(name, b"x")]), &DocLimits::default());
            assert!(is_bad(&e), "{name}: {e:?}");
            assert!(e.to_string().contains(name), "{e}");
        }
    }

    #[test]
    fn a_zip_bomb_is_too_large() {
        let zeros = vec![0u8; 20 * 1024 * 1024];
        let input = build_zip(&[
            ("[Content_Types].xml", CONTENT_TYPES.as_bytes(), false),
            ("word/document.xml", &zeros, false),
        ]);
        let limits = DocLimits {
            max_entry_bytes: 1024 * 1024,
            ..DocLimits::default()
        };
        assert!(matches!(
            error(&input, &limits),
            TranslateError::TooLarge(_)
        ));
    }

    #[test]
    fn too_many_entries_are_too_large() {
        let limits = DocLimits {
            max_entries: 3,
            ..DocLimits::default()
        };
        let input = docx(BOLD_PLAIN, &[("word/media/image1.png", PNG)]);
        assert!(matches!(
            error(&input, &limits),
            TranslateError::TooLarge(_)
        ));
    }

    #[test]
    fn broken_inputs_are_bad_documents() {
        let good = docx(BOLD_PLAIN, &[]);
        let malformed = docx("<w:p><w:r><w:t>open</w:r></w:p>", &[]);
        let doctype = build_zip(&[(
            "word/document.xml",
            br#"<?xml version="1.0"?><!DOCTYPE lol [<!ENTITY lol "lol">]><w:document xmlns:w="x">&lol;</w:document>"#,
            false,
        )]);
        let missing = build_zip(&[("[Content_Types].xml", CONTENT_TYPES.as_bytes(), false)]);
        let cases: [(&str, &[u8]); 5] = [
            ("malformed", &malformed),
            ("truncated zip", &good[..good.len() - 30]),
            ("not a zip", b"PK but not really a zip file"),
            ("doctype", &doctype),
            ("missing document", &missing),
        ];
        for (what, input) in cases {
            let e = error(input, &DocLimits::default());
            assert!(is_bad(&e), "{what}: {e:?}");
        }
        let e = error(&doctype, &DocLimits::default());
        assert!(e.to_string().contains("DTDs are not accepted"), "{e}");
        let e = error(&malformed, &DocLimits::default());
        assert!(e.to_string().contains(MAIN_PART), "{e}");
    }

    #[test]
    fn a_corrupted_zip_never_panics() {
        let input = docx(BOLD_PLAIN, &[("word/media/image1.png", PNG)]);
        for i in 0..input.len() {
            for byte in [0x00, 0xff, input[i] ^ 0x01] {
                let mut bad = input.clone();
                bad[i] = byte;
                let mut report = DocumentReport::default();
                let _ = translate(
                    &bad,
                    &DocLimits::default(),
                    &mut Upper::default(),
                    &mut report,
                );
            }
        }
    }

    #[test]
    fn nesting_deeper_than_the_limit_is_a_bad_document() {
        let deep = format!("<w:p>{}{}</w:p>", "<w:r>".repeat(40), "</w:r>".repeat(40));
        let limits = DocLimits {
            max_depth: 32,
            ..DocLimits::default()
        };
        let e = error(&docx(&deep, &[]), &limits);
        assert!(is_bad(&e) && e.to_string().contains("deeper"), "{e:?}");
    }

    #[test]
    fn too_many_characters_are_refused_before_translation() {
        let limits = DocLimits {
            max_chars: 5,
            ..DocLimits::default()
        };
        let e = error(&docx(BOLD_PLAIN, &[]), &limits);
        assert!(matches!(e, TranslateError::TooLong { .. }), "{e:?}");
    }
}

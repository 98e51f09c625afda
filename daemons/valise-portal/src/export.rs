//! Exports a transcript as a Word document: one paragraph per segment, its time range in
//! bold, then the text. Written with the `zip` crate from four fixed XML parts; only the
//! text is variable, and it is XML-escaped.

use std::io::Write;

use valise_protocol::transcript::Transcript;

use crate::error::{PortalError, Result};

const CONTENT_TYPES: &str = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>"#;

const RELS: &str = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="word/document.xml"/></Relationships>"#;

pub const DOCX_TYPE: &str =
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document";

fn escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            c if c.is_control() => {}
            c => o.push(c),
        }
    }
    o
}

fn clock(secs: f64) -> String {
    let t = secs.max(0.0).round() as u64;
    format!("{:02}:{:02}:{:02}", t / 3600, t / 60 % 60, t % 60)
}

pub fn docx(t: &Transcript, title: &str) -> Result<Vec<u8>> {
    let mut body = String::new();
    body.push_str(&format!(
        r#"<w:p><w:pPr><w:pStyle w:val="Title"/></w:pPr><w:r><w:rPr><w:b/><w:sz w:val="32"/></w:rPr><w:t xml:space="preserve">{}</w:t></w:r></w:p>"#,
        escape(title)
    ));
    for s in &t.segments {
        body.push_str(&format!(
            r#"<w:p><w:r><w:rPr><w:b/></w:rPr><w:t xml:space="preserve">[{} – {}] </w:t></w:r><w:r><w:t xml:space="preserve">{}</w:t></w:r></w:p>"#,
            clock(s.start),
            clock(s.end),
            escape(s.text.trim())
        ));
    }
    let document = format!(
        r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body>{body}</w:body></w:document>"#
    );
    let mut out = std::io::Cursor::new(Vec::new());
    {
        let mut zip = zip::ZipWriter::new(&mut out);
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        for (name, data) in [
            ("[Content_Types].xml", CONTENT_TYPES),
            ("_rels/.rels", RELS),
            ("word/document.xml", document.as_str()),
        ] {
            zip.start_file(name, opts)
                .map_err(|e| PortalError::Internal(e.to_string()))?;
            zip.write_all(data.as_bytes())?;
        }
        zip.finish()
            .map_err(|e| PortalError::Internal(e.to_string()))?;
    }
    Ok(out.into_inner())
}

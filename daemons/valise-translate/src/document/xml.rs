//! The two-pass "collect blocks, rewrite runs" driver shared by `.docx` and `.odt`.
//!
//! ```text
//!  zip ──Package──▶ parts (XML) ──collect──▶ Parsed { blocks of runs (text + byte span) }
//!                                                 │ all parts' blocks, one call
//!                                                 ▼
//!                                     RunTranslator::translate_blocks
//!                                                 │ new text per run
//!  zip ◀──Package::write── parts ◀──splice──────┘ (each changed run's byte span replaced)
//! ```
//!
//! A format says only which elements mean what ([`Role`], via a [`Classify`] function on the
//! namespace URI and local name, so prefixes do not matter): paragraphs (blocks, nested ones
//! are their own), text-bearing elements (their character data is a run), opaque elements
//! (nothing inside is translated: tracked deletions, field codes), and counted elements
//! (reported, walked as usual: images, which may hold text boxes).
//!
//! The first pass reads every event with quick-xml (whitespace kept) and records, for each
//! run, its decoded text and the byte range it occupies in the part. The second pass is a
//! splice: the part's bytes are copied as they are, except the ranges of runs whose text
//! changed, which get the new text escaped. So whatever was not translated (markup, styles,
//! comments, the original escaping of unchanged text) stays byte for byte.
//!
//! Untrusted input: a DTD is refused (no entity expansion ever), an unknown entity is an
//! error, nesting is capped at `max_depth`, attributes are checked for well-formedness, and
//! a part that ends inside an element is refused as truncated.

use std::ops::Range;

use quick_xml::NsReader;
use quick_xml::events::{BytesRef, BytesStart, Event};
use quick_xml::name::ResolveResult;
use valise_protocol::translate::DocumentReport;

use super::zipio::Package;
use super::{Block, DocLimits, RunTranslator, check_chars, skip};
use crate::TranslateError;

/// A line of the report: what was left untranslated and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Note {
    pub what: &'static str,
    pub why: &'static str,
}

/// Kept as they are in both formats, and reported.
pub(crate) const DELETIONS: Note = Note {
    what: "tracked deletions",
    why: "text deleted with changes tracked is not translated, left as it is",
};
pub(crate) const EMBEDDED: Note = Note {
    what: "images and embedded objects",
    why: "images and embedded objects — not text, left as they are",
};

/// What an element means to the translation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// Starts a block. `holds_text`: character data directly inside it is text (ODF), or
    /// only layout whitespace (OOXML, where text lives in `w:t` only).
    Paragraph { holds_text: bool },
    /// Its character data is text of the enclosing block. `space_attr`: leading or trailing
    /// spaces are kept only with `xml:space="preserve"` (OOXML `w:t`), so a new text that has
    /// them gets the attribute.
    Text { space_attr: bool },
    /// Nothing inside is translated (no runs, no blocks); counted in the report.
    Opaque(Note),
    /// Counted in the report; its content is walked as usual (a text box in an image).
    Counted(Note),
    /// Markup: kept, its own character data is not text.
    Other,
}

/// Classifies an element by namespace URI (`None` when unbound) and local name.
pub(crate) type Classify = fn(Option<&str>, &str) -> Role;

/// A zip package of XML parts, as a format module describes it.
#[derive(Debug)]
pub(crate) struct Format {
    /// Format name for messages ("a .docx document").
    pub label: &'static str,
    /// Entries without which the package is not of this format.
    pub required: &'static [&'static str],
    /// Entries whose text is translated.
    pub wanted: fn(&str) -> bool,
    pub classify: Classify,
}

/// Translates a whole package: opens it with limits, reads the wanted parts, translates all
/// their blocks in one call, and writes the package back (untouched entries copied raw).
pub(crate) fn translate_package(
    input: &[u8],
    format: &Format,
    limits: &DocLimits,
    tr: &mut dyn RunTranslator,
    report: &mut DocumentReport,
) -> Result<Vec<u8>, TranslateError> {
    let mut package = Package::open(input, limits)?;
    if let Some(missing) = format.required.iter().find(|r| !package.contains(r)) {
        return Err(TranslateError::BadDocument(format!(
            "not {}: the {missing} part is missing",
            format.label
        )));
    }
    let wanted: Vec<String> = package
        .names()
        .iter()
        .filter(|n| (format.wanted)(n))
        .cloned()
        .collect();
    let mut parts = Vec::with_capacity(wanted.len());
    for name in wanted {
        let bytes = package.read(&name)?;
        let xml = String::from_utf8(bytes)
            .map_err(|_| TranslateError::BadDocument(format!("{name}: the XML is not UTF-8")))?;
        parts.push((name, xml));
    }
    let new = translate_parts(&parts, format.classify, limits, tr, report)?;
    let replaced: Vec<(String, Vec<u8>)> = parts
        .into_iter()
        .zip(new)
        .filter_map(|((name, _), xml)| xml.map(|x| (name, x.into_bytes())))
        .collect();
    package.write(&replaced)
}

/// Translates the `(name, xml)` parts together, with one call to the translator (none when
/// there is no text); returns each part's new XML, `None` where nothing changed. Blank
/// blocks (no letter or digit) are not sent and stay as they were.
pub(crate) fn translate_parts(
    parts: &[(String, String)],
    classify: Classify,
    limits: &DocLimits,
    tr: &mut dyn RunTranslator,
    report: &mut DocumentReport,
) -> Result<Vec<Option<String>>, TranslateError> {
    let parsed = parts
        .iter()
        .map(|(name, xml)| collect(name, xml, classify, limits.max_depth))
        .collect::<Result<Vec<_>, _>>()?;
    let mut blocks = Vec::new();
    let mut origin = Vec::new();
    for (p, part) in parsed.iter().enumerate() {
        for (b, runs) in part.blocks.iter().enumerate() {
            let block = Block::new(runs.iter().map(|r| r.text.clone()).collect());
            if !block.runs.is_empty() && !block.is_blank() {
                blocks.push(block);
                origin.push((p, b));
            }
        }
        for (note, count) in &part.notes {
            skip(report, note.what, *count, note.why);
        }
    }
    check_chars(&blocks, limits)?;
    report.blocks = blocks.len();
    if blocks.is_empty() {
        // Nothing to translate: the translator is not asked (it would have no text to
        // detect a language from) and the document comes back as it was.
        return Ok(vec![None; parts.len()]);
    }
    let translated = tr.translate_blocks(&blocks)?;

    let mut new_runs: Vec<Vec<Option<&[String]>>> =
        parsed.iter().map(|p| vec![None; p.blocks.len()]).collect();
    for (&(p, b), runs) in origin.iter().zip(&translated) {
        new_runs[p][b] = Some(runs);
    }
    Ok(parts
        .iter()
        .zip(&parsed)
        .zip(&new_runs)
        .map(|(((_, xml), part), new)| {
            let out = rewrite(xml, part, new);
            (out != *xml).then_some(out)
        })
        .collect())
}

// ---- First pass: collect -------------------------------------------------------------------

/// What the first pass found in one part.
#[derive(Debug, Default)]
pub(crate) struct Parsed {
    /// Blocks in document order of their opening tag; each holds its runs in order.
    pub blocks: Vec<Vec<Run>>,
    /// Start tags of `space_attr` text elements, for adding `xml:space="preserve"`.
    tags: Vec<TextTag>,
    /// Report lines, with their counts.
    pub notes: Vec<(Note, usize)>,
}

/// One run: contiguous character data (text, references, CDATA) of a text-bearing element.
#[derive(Debug)]
pub(crate) struct Run {
    /// Where the run's raw (escaped) text lies in the part.
    span: Range<usize>,
    /// The decoded text, as the translator sees it.
    pub text: String,
    /// The `space_attr` element holding it, an index into `Parsed::tags`.
    tag: Option<usize>,
}

#[derive(Debug)]
struct TextTag {
    span: Range<usize>,
    name_len: usize,
    space: Space,
}

/// The `xml:space` attribute of a text element's start tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Space {
    Preserve,
    Absent,
    Other,
}

#[derive(Debug)]
struct Frame {
    role: Role,
    /// This element opened the innermost block (popped with it).
    opens_block: bool,
    tag: Option<usize>,
}

/// State of the first pass over one part.
struct Collector<'a> {
    part: &'a str,
    classify: Classify,
    max_depth: usize,
    out: Parsed,
    stack: Vec<Frame>,
    /// Indices (into `out.blocks`) of the paragraphs open now, innermost last.
    open_blocks: Vec<usize>,
    /// Stack depth of the opaque element being skipped, if any.
    opaque_at: Option<usize>,
    /// The run being extended by contiguous character data: (block, run).
    run: Option<(usize, usize)>,
    seen_root: bool,
}

/// First pass over one part: its blocks, runs and report lines.
pub(crate) fn collect(
    part: &str,
    xml: &str,
    classify: Classify,
    max_depth: usize,
) -> Result<Parsed, TranslateError> {
    let mut c = Collector {
        part,
        classify,
        max_depth,
        out: Parsed::default(),
        stack: Vec::new(),
        open_blocks: Vec::new(),
        opaque_at: None,
        run: None,
        seen_root: false,
    };
    // quick-xml skips a byte order mark without counting it in its positions; strip it here
    // so that spans are offsets into `xml` once `bom` is added.
    let body = xml.strip_prefix('\u{feff}').unwrap_or(xml);
    let bom = xml.len() - body.len();
    let mut reader = NsReader::from_str(body);
    // Whitespace is content in runs and must survive byte for byte (the default, made
    // explicit because the rewrite depends on it).
    reader.config_mut().trim_text(false);
    loop {
        let start = bom + position(&reader);
        let event = reader
            .read_event()
            .map_err(|e| c.malformed(bom as u64 + reader.error_position(), &e))?;
        let span = start..bom + position(&reader);
        match event {
            Event::Start(e) => {
                c.run = None;
                let role = c.role(&reader, &e)?;
                c.open(role, span, &e)?;
            }
            Event::Empty(e) => {
                c.run = None;
                let role = c.role(&reader, &e)?;
                c.empty(role)?;
            }
            Event::End(_) => {
                c.run = None;
                c.close();
            }
            Event::Text(t) => c.text(span, &t.xml10_content()),
            Event::CData(t) => c.text(span, &t.xml10_content()),
            Event::GeneralRef(r) => {
                let resolved = c.entity(&r, span.start)?;
                c.text(span, &resolved);
            }
            Event::DocType(_) => {
                return Err(c.bad("DTDs are not accepted (<!DOCTYPE> found)".into()));
            }
            Event::Comment(_) | Event::PI(_) | Event::Decl(_) => c.run = None,
            Event::Eof => break,
        }
    }
    c.finish()
}

fn position(reader: &NsReader<&[u8]>) -> usize {
    usize::try_from(reader.buffer_position()).unwrap_or(usize::MAX)
}

impl Collector<'_> {
    fn bad(&self, message: String) -> TranslateError {
        TranslateError::BadDocument(format!("{}: {message}", self.part))
    }

    fn malformed(&self, at: u64, e: &quick_xml::Error) -> TranslateError {
        self.bad(format!("malformed XML at byte {at}: {e}"))
    }

    /// The element's role; also checks its attributes (duplicates, syntax), which quick-xml
    /// only parses on demand, so that a malformed tag is refused even where it is copied.
    fn role(&self, reader: &NsReader<&[u8]>, e: &BytesStart<'_>) -> Result<Role, TranslateError> {
        for attr in e.attributes() {
            attr.map_err(|err| {
                self.bad(format!("malformed attribute in <{}>: {err}", e.name().0))
            })?;
        }
        let (ns, local) = reader.resolver().resolve_element(e.name());
        let ns = match ns {
            ResolveResult::Bound(ns) => Some(ns.into_inner()),
            ResolveResult::Unbound => None,
            ResolveResult::Unknown(prefix) => {
                return Err(self.bad(format!("undeclared namespace prefix {prefix:?}")));
            }
        };
        Ok((self.classify)(ns, local.into_inner()))
    }

    fn open(
        &mut self,
        role: Role,
        span: Range<usize>,
        e: &BytesStart<'_>,
    ) -> Result<(), TranslateError> {
        self.seen_root = true;
        if self.stack.len() >= self.max_depth {
            return Err(self.too_deep());
        }
        let mut frame = Frame {
            role,
            opens_block: false,
            tag: None,
        };
        if self.opaque_at.is_none() {
            match role {
                Role::Paragraph { .. } => {
                    self.open_blocks.push(self.out.blocks.len());
                    self.out.blocks.push(Vec::new());
                    frame.opens_block = true;
                }
                Role::Text { space_attr: true } => frame.tag = Some(self.text_tag(span, e)?),
                Role::Opaque(note) => {
                    self.note(note);
                    self.opaque_at = Some(self.stack.len());
                }
                Role::Counted(note) => self.note(note),
                Role::Text { .. } | Role::Other => {}
            }
        }
        self.stack.push(frame);
        Ok(())
    }

    /// A self-closing element has no text: only what it counts for matters.
    fn empty(&mut self, role: Role) -> Result<(), TranslateError> {
        self.seen_root = true;
        if self.stack.len() >= self.max_depth {
            return Err(self.too_deep());
        }
        if let (None, Role::Opaque(note) | Role::Counted(note)) = (self.opaque_at, role) {
            self.note(note);
        }
        Ok(())
    }

    fn close(&mut self) {
        // quick-xml has checked that the end tag matches the open one.
        if let Some(frame) = self.stack.pop() {
            if self.opaque_at == Some(self.stack.len()) {
                self.opaque_at = None;
            }
            if frame.opens_block {
                self.open_blocks.pop();
            }
        }
    }

    fn too_deep(&self) -> TranslateError {
        self.bad(format!(
            "elements nest deeper than {} levels",
            self.max_depth
        ))
    }

    fn note(&mut self, note: Note) {
        match self.out.notes.iter_mut().find(|(n, _)| *n == note) {
            Some((_, count)) => *count += 1,
            None => self.out.notes.push((note, 1)),
        }
    }

    fn text_tag(
        &mut self,
        span: Range<usize>,
        e: &BytesStart<'_>,
    ) -> Result<usize, TranslateError> {
        let space = match e.try_get_attribute("xml:space") {
            Ok(Some(a)) if a.value == "preserve" => Space::Preserve,
            Ok(Some(_)) => Space::Other,
            Ok(None) => Space::Absent,
            Err(err) => return Err(self.bad(format!("malformed attribute: {err}"))),
        };
        self.out.tags.push(TextTag {
            span,
            name_len: e.name().0.len(),
            space,
        });
        Ok(self.out.tags.len() - 1)
    }

    /// Character data: part of a run when its element bears text and a block is open;
    /// otherwise (layout whitespace, alt text, opaque content) it is only copied.
    fn text(&mut self, span: Range<usize>, text: &str) {
        if self.opaque_at.is_some() {
            return;
        }
        let Some(frame) = self.stack.last() else {
            return;
        };
        let bears_text = match frame.role {
            Role::Paragraph { holds_text } => holds_text,
            Role::Text { .. } => true,
            Role::Opaque(_) | Role::Counted(_) | Role::Other => false,
        };
        let Some(&block) = self.open_blocks.last().filter(|_| bears_text) else {
            return;
        };
        let tag = frame.tag;
        match self.run {
            Some((b, r)) => {
                let run = &mut self.out.blocks[b][r];
                run.span.end = span.end;
                run.text.push_str(text);
            }
            None => {
                let runs = &mut self.out.blocks[block];
                runs.push(Run {
                    span,
                    text: text.to_owned(),
                    tag,
                });
                self.run = Some((block, runs.len() - 1));
            }
        }
    }

    /// `&amp;`, `&#233;`…: the five predefined entities and character references only. There
    /// is no DTD, so any other name is an error (never a lookup).
    fn entity(&self, r: &BytesRef<'_>, at: usize) -> Result<String, TranslateError> {
        match r.resolve_char_ref() {
            Ok(Some(c)) => return Ok(c.to_string()),
            Ok(None) => {}
            Err(e) => return Err(self.bad(format!("bad character reference at byte {at}: {e}"))),
        }
        quick_xml::escape::resolve_predefined_entity(r)
            .map(str::to_owned)
            .ok_or_else(|| self.bad(format!("unknown entity &{};", &**r)))
    }

    fn finish(self) -> Result<Parsed, TranslateError> {
        if !self.stack.is_empty() {
            return Err(self.bad("the XML ends inside an element (truncated)".into()));
        }
        if !self.seen_root {
            return Err(self.bad("no root element".into()));
        }
        Ok(self.out)
    }
}

// ---- Second pass: splice -------------------------------------------------------------------

/// `xml` with the text of every changed run replaced (`new[block]`: the block's new runs, or
/// `None` for a block not sent). Unchanged runs keep their original bytes (and escaping).
fn rewrite(xml: &str, parsed: &Parsed, new: &[Option<&[String]>]) -> String {
    let mut edits: Vec<(Range<usize>, String)> = Vec::new();
    let mut needs_preserve = vec![false; parsed.tags.len()];
    for (runs, new) in parsed.blocks.iter().zip(new) {
        let Some(new) = new else { continue };
        for (run, text) in runs.iter().zip(new.iter()) {
            if *text == run.text {
                continue;
            }
            edits.push((run.span.clone(), escape_text(text)));
            if let Some(tag) = run.tag {
                needs_preserve[tag] |= has_edge_space(text);
            }
        }
    }
    for (tag, needed) in parsed.tags.iter().zip(needs_preserve) {
        if needed && tag.space != Space::Preserve {
            edits.push((tag.span.clone(), preserve_tag(&xml[tag.span.clone()], tag)));
        }
    }
    edits.sort_by_key(|(span, _)| span.start);
    splice(xml, &edits)
}

/// Copies `xml`, replacing each (sorted, disjoint) range by its new text.
fn splice(xml: &str, edits: &[(Range<usize>, String)]) -> String {
    let mut out = String::with_capacity(xml.len() + xml.len() / 8);
    let mut at = 0;
    for (span, text) in edits {
        out.push_str(&xml[at..span.start]);
        out.push_str(text);
        at = span.end;
    }
    out.push_str(&xml[at..]);
    out
}

/// Whitespace as XML (and `xml:space`) understands it.
fn is_xml_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r')
}

fn has_edge_space(text: &str) -> bool {
    text.starts_with(is_xml_space) || text.ends_with(is_xml_space)
}

/// The start tag `raw` with `xml:space="preserve"`: inserted after the name when absent
/// (the rest of the tag untouched), or replacing another value.
fn preserve_tag(raw: &str, tag: &TextTag) -> String {
    const ATTR: &str = " xml:space=\"preserve\"";
    let name_end = 1 + tag.name_len;
    if tag.space == Space::Absent {
        return format!("{}{ATTR}{}", &raw[..name_end], &raw[name_end..]);
    }
    let inner = raw
        .strip_prefix('<')
        .and_then(|r| r.strip_suffix('>'))
        .unwrap_or(raw);
    let start = BytesStart::from_content(inner, tag.name_len);
    let mut out = format!("<{}", &raw[1..name_end]);
    for attr in start.attributes().flatten() {
        let key = attr.key.0;
        if key == "xml:space" {
            out.push_str(ATTR);
        } else {
            let quote = if attr.value.contains('"') { '\'' } else { '"' };
            out.push_str(&format!(" {key}={quote}{}{quote}", attr.value));
        }
    }
    out.push('>');
    out
}

/// Text escaped for element content. Characters XML 1.0 cannot hold (control characters a
/// model might emit) are dropped, and CR is written as a reference so that it survives
/// end-of-line normalisation.
fn escape_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\r' => out.push_str("&#13;"),
            '\t' | '\n' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'.. => {
                out.push(c)
            }
            _ => {}
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::super::testing::{Merge, Same, Upper};
    use super::*;

    const NS: &str = "urn:test";

    /// `p` paragraphs (text directly inside), `t` text with xml:space, `s` span, `del`
    /// opaque, `img` counted.
    fn classify(ns: Option<&str>, local: &str) -> Role {
        if ns != Some(NS) {
            return Role::Other;
        }
        match local {
            "p" => Role::Paragraph { holds_text: true },
            "t" => Role::Text { space_attr: true },
            "s" => Role::Text { space_attr: false },
            "del" => Role::Opaque(Note {
                what: "deleted",
                why: "test",
            }),
            "img" => Role::Counted(Note {
                what: "images",
                why: "test",
            }),
            _ => Role::Other,
        }
    }

    fn doc(body: &str) -> String {
        format!(r#"<?xml version="1.0"?><r xmlns="{NS}" xmlns:o="urn:other">{body}</r>"#)
    }

    fn runs(xml: &str) -> Vec<Vec<String>> {
        collect("part.xml", xml, classify, 64)
            .unwrap()
            .blocks
            .into_iter()
            .map(|b| b.into_iter().map(|r| r.text).collect())
            .collect()
    }

    fn run_with(xml: &str, tr: &mut dyn RunTranslator) -> Result<String, TranslateError> {
        let parts = [("part.xml".to_owned(), xml.to_owned())];
        let mut report = DocumentReport::default();
        let out = translate_parts(&parts, classify, &DocLimits::default(), tr, &mut report)?;
        Ok(out
            .into_iter()
            .next()
            .unwrap()
            .unwrap_or_else(|| xml.to_owned()))
    }

    fn bad(xml: &str) -> String {
        match collect("part.xml", xml, classify, 8) {
            Err(TranslateError::BadDocument(m)) => m,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn runs_are_character_data_of_text_elements_decoded() {
        let xml = doc("<p>a &amp; <s>b&#233;<![CDATA[<c>]]></s><o:x>alt</o:x> d</p>");
        assert_eq!(runs(&xml), [vec!["a & ", "bé<c>", " d"]]);
    }

    #[test]
    fn nested_paragraphs_are_their_own_blocks() {
        let xml = doc("<p>before <o:box><p>inner</p></o:box> after</p>");
        assert_eq!(runs(&xml), [vec!["before ", " after"], vec!["inner"]]);
    }

    #[test]
    fn opaque_content_is_skipped_even_its_paragraphs() {
        let xml = doc("<p>kept<del>gone<p>gone too</p></del></p><p>x<del/></p>");
        let parsed = collect("part.xml", &xml, classify, 64).unwrap();
        assert_eq!(parsed.blocks.len(), 2);
        assert_eq!(parsed.notes[0].1, 2);
    }

    #[test]
    fn identity_leaves_bytes_identical() {
        let xml = doc("<p>a &amp;&#x41; <t>b&gt;</t><!-- c --><s> d </s></p>\n<p> </p>");
        assert_eq!(run_with(&xml, &mut Same).unwrap(), xml);
    }

    #[test]
    fn a_byte_order_mark_is_kept() {
        let xml = format!("\u{feff}{}", doc("<p>bom</p>"));
        assert_eq!(runs(&xml), [vec!["bom"]]);
        assert_eq!(run_with(&xml, &mut Same).unwrap(), xml);
        let out = run_with(&xml, &mut Upper::default()).unwrap();
        assert_eq!(out, format!("\u{feff}{}", doc("<p>BOM</p>")));
    }

    #[test]
    fn changed_runs_are_escaped_in_place() {
        let xml = doc("<p>a &amp; b<s x=\"1\">c</s></p>");
        let out = run_with(&xml, &mut Upper::default()).unwrap();
        assert_eq!(out, doc("<p>A &amp; B<s x=\"1\">C</s></p>"));
        let out = run_with(&xml, &mut Merge).unwrap();
        assert_eq!(out, doc("<p>A &amp; BC<s x=\"1\"></s></p>"));
    }

    #[test]
    fn edge_spaces_get_xml_space_preserve() {
        struct Pad;
        impl RunTranslator for Pad {
            fn translate_blocks(
                &mut self,
                b: &[Block],
            ) -> Result<Vec<Vec<String>>, TranslateError> {
                Ok(b.iter()
                    .map(|b| b.runs.iter().map(|r| format!(" {r}")).collect())
                    .collect())
            }
        }
        let xml = doc(
            r#"<p><t>a</t><t xml:space="preserve">b</t><t xml:space="default" k='"'>c</t></p>"#,
        );
        let out = run_with(&xml, &mut Pad).unwrap();
        assert_eq!(
            out,
            doc(
                r#"<p><t xml:space="preserve"> a</t><t xml:space="preserve"> b</t><t xml:space="preserve" k='"'> c</t></p>"#
            )
        );
    }

    #[test]
    fn escape_drops_what_xml_cannot_hold() {
        assert_eq!(escape_text("a<b>&\r\u{1}c"), "a&lt;b&gt;&amp;&#13;c");
    }

    #[test]
    fn blank_blocks_are_not_sent() {
        let xml = doc("<p> - </p><p>x</p>");
        let mut up = Upper::default();
        run_with(&xml, &mut up).unwrap();
        assert_eq!(up.seen, [Block::new(vec!["x".into()])]);
    }

    #[test]
    fn unsafe_or_broken_xml_is_a_bad_document() {
        assert!(bad(r#"<!DOCTYPE r [<!ENTITY e "x">]><r/>"#).contains("DTD"));
        assert!(bad(&doc("<p>&e;</p>")).contains("unknown entity"));
        assert!(bad(&doc("<p></q>")).contains("malformed"));
        assert!(bad("<r><p>cut").contains("truncated"));
        assert!(bad("").contains("no root"));
        assert!(bad(r#"<r a="1" a="2"/>"#).contains("attribute"));
        assert!(bad("<x:r/>").contains("prefix"));
        assert!(bad("<r>&#0;</r>").contains("reference"));
        let deep = format!("{}{}", "<a>".repeat(9), "</a>".repeat(9));
        assert!(bad(&deep).contains("deeper"));
        let deep_empty = format!("{}<a/>{}", "<a>".repeat(8), "</a>".repeat(8));
        assert!(bad(&deep_empty).contains("deeper"));
        assert!(bad("<r>a & b</r>").contains("part.xml"));
    }

    #[test]
    fn all_parts_go_in_one_call_and_none_without_text() {
        #[derive(Default)]
        struct Calls(Vec<usize>);
        impl RunTranslator for Calls {
            fn translate_blocks(
                &mut self,
                b: &[Block],
            ) -> Result<Vec<Vec<String>>, TranslateError> {
                self.0.push(b.len());
                Ok(b.iter().map(|b| b.runs.clone()).collect())
            }
        }
        let two = [
            ("a.xml".to_owned(), doc("<p>one</p><p>two</p>")),
            ("b.xml".to_owned(), doc("<p>three</p>")),
        ];
        let none = [("a.xml".to_owned(), doc("<p> </p><o:x>not text</o:x>"))];
        let limits = DocLimits::default();
        let mut report = DocumentReport::default();
        let mut calls = Calls::default();
        translate_parts(&two, classify, &limits, &mut calls, &mut report).unwrap();
        let out = translate_parts(&none, classify, &limits, &mut calls, &mut report).unwrap();
        assert_eq!(calls.0, [3]);
        assert_eq!(out, [None]);
        assert_eq!(report.blocks, 0);
    }

    #[test]
    fn mangled_xml_never_panics() {
        let xml = doc(r#"<p>a &amp; <t xml:space="x">b</t><s>c<![CDATA[d]]></s><del>e</del></p>"#);
        for i in 0..xml.len() {
            for with in ["<", ">", "&", "\"", "/", "", "<p>", "</p>"] {
                let mut mangled = xml.clone();
                mangled.replace_range(i..i + 1, with);
                let _ = run_with(&mangled, &mut Upper::default());
                let _ = run_with(&mangled, &mut Merge);
            }
        }
    }
}

//! `.md` documents: the text of paragraphs, headings, list items, table cells, footnotes and
//! image descriptions is translated; every other byte is copied as it was.
//!
//! Data flow:
//!
//! ```text
//!  source ─pulldown-cmark (offset iterator)─▶ events with source byte ranges
//!         ─Collector─▶ runs (source span + text) grouped in blocks, inline containers
//!         ─RunTranslator─▶ new runs ─edits─▶ the source with each changed run's span
//!                                             replaced by its new text, escaped
//! ```
//!
//! Nothing is re-rendered: list markers, `#`, `>`, table pipes, indentation, link targets and
//! everything else outside a changed run's span stays byte for byte, and a run that comes
//! back unchanged keeps its source bytes (escapes and entity references included), so a
//! document whose runs all come back unchanged is returned as it was.
//!
//! Blocks: each paragraph, heading, table cell, tight list item, footnote paragraph and
//! blockquote paragraph; a hard line break ends a block too (as `<br>` does in HTML); an
//! image's description is a block of its own (were it a run of the paragraph, the engine could
//! move the paragraph's sentence into it, out of sight). Runs: the text between two formatting
//! changes; emphasis, strong, strikethrough and links do not cut blocks, so
//! `*the embassy* is closed` is one block with the runs `["the embassy", " is closed"]`.
//!
//! Soft line breaks (a paragraph wrapped over several source lines) belong to the run they are
//! in and read as one space: a sentence wrapped over two lines reaches the translator as one
//! sentence (a newline would make the engine cut it). When such a run changes, its span,
//! which covers the line break and the next line's container prefix (`> `, indentation), is
//! replaced by the new text on one line: the paragraph comes back unwrapped, with the same
//! structure (joining the lines of a paragraph never changes what it is).
//!
//! Never translated, kept as written and reported with [`skip`]: code blocks, inline code,
//! HTML (blocks and inline tags), math, front matter (YAML `---` or TOML `+++`). Link and
//! image targets and titles are not text events, so they are never touched; the text of an
//! autolink (`<https://…>`) is its address and is kept too.
//!
//! Writing a changed run (the engine may move a sentence to another run and empty the others,
//! so every rule below keeps the structure whatever text lands where):
//! - newlines become spaces; Markdown's inline syntax characters are backslash-escaped
//!   (`\ ` * _ [ ] < ~ $`, `&` when it would read as an entity, `|` in table cells, `#` in
//!   headings, `!` before a link);
//! - text that starts a line (first in its block, or everything before it on the line came
//!   back empty) loses its leading spaces (one more would change a list item's indentation,
//!   four make a code block) and has a leading block marker escaped (`#`, `>`, `-`, `+`,
//!   `=`, `1.`);
//! - a span (emphasis, strong, strikethrough) whose text all comes back empty is removed with
//!   its delimiters (`****` would show literally); a space at its inner edge moves outside
//!   (`*word *` is not emphasis) — except at the edge of a nested span (`***a** b*`), where
//!   the outer delimiters may then show as written;
//! - a link written `[label]` or `[label][]` gets its label explicitly (`[new text][label]`):
//!   its text was its label;
//! - a run that comes back empty keeps one space if it separated two things (two code spans
//!   must not touch).

use std::ops::Range;

use pulldown_cmark::{Event, LinkType, Options, Parser, Tag, TagEnd};
use valise_protocol::translate::DocumentReport;

use super::utf8_body;
use super::{Block, DocLimits, RunTranslator, check_chars, skip};
use crate::TranslateError;

/// Translates a Markdown document (see the module doc).
pub fn translate(
    input: &[u8],
    limits: &DocLimits,
    tr: &mut dyn RunTranslator,
    report: &mut DocumentReport,
) -> Result<Vec<u8>, TranslateError> {
    let (bom, src) = utf8_body(input).map_err(TranslateError::BadDocument)?;
    let doc = Collector::new(src).collect();
    doc.report(report);
    let (sent, blocks): (Vec<&Vec<usize>>, Vec<Block>) = doc
        .blocks
        .iter()
        .map(|ids| (ids, doc.block(ids)))
        .filter(|(_, block)| !block.is_blank())
        .unzip();
    check_chars(&blocks, limits)?;
    report.blocks = blocks.len();
    if blocks.is_empty() {
        return Ok(input.to_vec());
    }
    let translated = tr.translate_blocks(&blocks)?;
    let edits = doc.edits(&sent, &translated);
    if edits.is_empty() {
        return Ok(input.to_vec());
    }
    let mut out = Vec::with_capacity(input.len() + input.len() / 4);
    out.extend_from_slice(bom);
    out.extend_from_slice(splice(src, edits).as_bytes());
    Ok(out)
}

/// The extensions read: GitHub's tables, strikethrough, footnotes and task lists, plus math
/// and front matter so that they are recognised (and left alone) rather than read as text.
fn options() -> Options {
    Options::ENABLE_TABLES
        | Options::ENABLE_STRIKETHROUGH
        | Options::ENABLE_FOOTNOTES
        | Options::ENABLE_TASKLISTS
        | Options::ENABLE_MATH
        | Options::ENABLE_YAML_STYLE_METADATA_BLOCKS
        | Options::ENABLE_PLUSES_DELIMITED_METADATA_BLOCKS
}

/// Where a run sits, for escaping its new text.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Place {
    /// Nothing precedes the run in its block: it starts a line.
    block_start: bool,
    cell: bool,
    heading: bool,
}

/// Consecutive text (and soft breaks) between two formatting changes.
#[derive(Debug, Clone)]
struct Run {
    /// Source bytes the run's new text replaces.
    span: Range<usize>,
    /// The text as the translator sees it (escapes and entities decoded, soft breaks as
    /// spaces).
    text: String,
    place: Place,
}

/// An emphasis, strong, strikethrough, superscript or subscript span.
#[derive(Debug, Clone, Default)]
struct Container {
    /// The whole span, delimiters included.
    span: Range<usize>,
    /// Ids of the runs inside (nested spans' and links' runs included).
    runs: Range<usize>,
    /// The run right after the opening delimiter / before the closing one, if a run is there
    /// (and not a nested span, a link, code…).
    first_run: Option<usize>,
    last_run: Option<usize>,
    /// Something is already inside (for `first_run`).
    has_items: bool,
    /// Holds something that is not a run (code, HTML, a link, an image, a line break): its
    /// delimiters are never removed.
    opaque: bool,
}

/// An open inline element that holds text.
#[derive(Debug, Clone, Copy)]
enum Inline {
    Container(usize),
    /// A link or image, with its [`RefLink`] if it is written `[label]` or `[label][]`.
    Link(Option<usize>),
}

/// A link or image written `[label]` or `[label][]`: its text is also its reference label,
/// so a translated text must name the label explicitly (`[new text][label]`).
#[derive(Debug, Clone)]
struct RefLink {
    span: Range<usize>,
    runs: Range<usize>,
    label: String,
    /// `[label][]`: the `[]` after `span` becomes `[label]`.
    collapsed: bool,
}

/// Things left as written, counted for the report.
#[derive(Debug, Default)]
struct Kept {
    code_blocks: usize,
    inline_code: usize,
    html: usize,
    math: usize,
    front_matter: usize,
}

/// The block being read.
#[derive(Debug, Default)]
struct Open {
    runs: Vec<usize>,
    /// Something (text, code, a formatting delimiter) is already in the block.
    has_content: bool,
}

/// What the collector found.
#[derive(Debug, Default)]
struct Doc {
    runs: Vec<Run>,
    containers: Vec<Container>,
    ref_links: Vec<RefLink>,
    /// Run ids per block, in document order (blank blocks included; the caller filters).
    blocks: Vec<Vec<usize>>,
    kept: Kept,
}

/// Turns pulldown-cmark's events into runs and blocks (one pass, no recursion: nesting costs
/// a few bytes of stack per level of inline formatting, never a call frame).
#[derive(Debug)]
struct Collector<'a> {
    src: &'a str,
    doc: Doc,
    current: Option<Open>,
    /// Blocks interrupted by an image description (read as a block of its own).
    stash: Vec<Option<Open>>,
    /// The run being extended by the next text or soft break.
    open_run: Option<usize>,
    /// Open spans, links and images, innermost last.
    inline: Vec<Inline>,
    /// Inside a code block, front matter or autolink: the text is not translated.
    verbatim: usize,
    autolink: bool,
    cell: bool,
    heading: bool,
}

impl<'a> Collector<'a> {
    fn new(src: &'a str) -> Self {
        Self {
            src,
            doc: Doc::default(),
            current: None,
            stash: Vec::new(),
            open_run: None,
            inline: Vec::new(),
            verbatim: 0,
            autolink: false,
            cell: false,
            heading: false,
        }
    }

    fn collect(mut self) -> Doc {
        for (event, range) in Parser::new_ext(self.src, options()).into_offset_iter() {
            self.event(event, range);
        }
        self.cut();
        self.doc
    }

    fn event(&mut self, event: Event<'_>, range: Range<usize>) {
        match event {
            Event::Text(text) => self.text(&text, range),
            Event::SoftBreak => self.soft_break(range),
            Event::Start(tag) => self.start(tag, range),
            Event::End(tag) => self.end(tag),
            Event::Code(_) => {
                self.doc.kept.inline_code += 1;
                self.inline_kept();
            }
            Event::InlineMath(_) | Event::DisplayMath(_) => {
                self.doc.kept.math += 1;
                self.inline_kept();
            }
            Event::InlineHtml(_) => {
                self.doc.kept.html += 1;
                self.inline_kept();
            }
            Event::FootnoteReference(_) | Event::TaskListMarker(_) => self.inline_kept(),
            Event::HardBreak => {
                self.inline_kept();
                self.cut();
            }
            // Inside an HTML block (counted at its start) / a thematic break.
            Event::Html(_) | Event::Rule => {}
        }
    }

    fn start(&mut self, tag: Tag<'_>, range: Range<usize>) {
        match tag {
            Tag::Emphasis
            | Tag::Strong
            | Tag::Strikethrough
            | Tag::Superscript
            | Tag::Subscript => {
                self.open_container(range);
            }
            Tag::Link { link_type, id, .. } => {
                self.inline_kept();
                self.open_link(link_type, &id, range);
                if matches!(link_type, LinkType::Autolink | LinkType::Email) {
                    self.autolink = true;
                    self.verbatim += 1;
                }
            }
            Tag::Image { link_type, id, .. } => {
                self.inline_kept();
                self.open_link(link_type, &id, range);
                let interrupted = self.current.take();
                self.stash.push(interrupted);
                // The description follows `![`: it does not start a line.
                self.current = Some(Open {
                    runs: Vec::new(),
                    has_content: true,
                });
            }
            Tag::CodeBlock(_) => {
                self.cut();
                self.doc.kept.code_blocks += 1;
                self.verbatim += 1;
            }
            Tag::MetadataBlock(_) => {
                self.cut();
                self.doc.kept.front_matter += 1;
                self.verbatim += 1;
            }
            Tag::HtmlBlock => {
                self.cut();
                self.doc.kept.html += 1;
            }
            Tag::Heading { .. } => {
                self.cut();
                self.heading = true;
            }
            Tag::TableCell => {
                self.cut();
                self.cell = true;
            }
            Tag::Paragraph
            | Tag::BlockQuote(_)
            | Tag::List(_)
            | Tag::Item
            | Tag::FootnoteDefinition(_)
            | Tag::DefinitionList
            | Tag::DefinitionListTitle
            | Tag::DefinitionListDefinition
            | Tag::Table(_)
            | Tag::TableHead
            | Tag::TableRow => self.cut(),
        }
    }

    fn end(&mut self, tag: TagEnd) {
        match tag {
            TagEnd::Emphasis
            | TagEnd::Strong
            | TagEnd::Strikethrough
            | TagEnd::Superscript
            | TagEnd::Subscript => self.close_inline(),
            TagEnd::Link => {
                self.close_inline();
                if self.autolink {
                    self.autolink = false;
                    self.verbatim = self.verbatim.saturating_sub(1);
                }
            }
            TagEnd::Image => {
                self.close_inline();
                // The description is a block; the paragraph it interrupted goes on.
                self.cut();
                self.current = self.stash.pop().flatten();
            }
            TagEnd::CodeBlock | TagEnd::MetadataBlock(_) => {
                self.cut();
                self.verbatim = self.verbatim.saturating_sub(1);
            }
            TagEnd::Heading(_) => {
                self.cut();
                self.heading = false;
            }
            TagEnd::TableCell => {
                self.cut();
                self.cell = false;
            }
            TagEnd::Paragraph
            | TagEnd::BlockQuote(_)
            | TagEnd::HtmlBlock
            | TagEnd::List(_)
            | TagEnd::Item
            | TagEnd::FootnoteDefinition
            | TagEnd::DefinitionList
            | TagEnd::DefinitionListTitle
            | TagEnd::DefinitionListDefinition
            | TagEnd::Table
            | TagEnd::TableHead
            | TagEnd::TableRow => self.cut(),
        }
    }

    /// The block being read, opened on first use (a tight list item has no paragraph).
    fn block(&mut self) -> &mut Open {
        self.current.get_or_insert_with(Open::default)
    }

    /// Ends the block being read.
    fn cut(&mut self) {
        self.open_run = None;
        if let Some(open) = self.current.take()
            && !open.runs.is_empty()
        {
            self.doc.blocks.push(open.runs);
        }
    }

    /// Something that is kept as written sits here: it ends the run, and the spans around
    /// it can no longer be removed.
    fn inline_kept(&mut self) {
        self.open_run = None;
        self.block().has_content = true;
        self.note_item(None);
        // The innermost span only: it passes it on when it closes (marking every open span
        // here would cost the nesting depth at each code span).
        if let Some(c) = self.innermost_container() {
            self.doc.containers[c].opaque = true;
        }
    }

    fn innermost_container(&self) -> Option<usize> {
        self.inline.iter().rev().find_map(|open| match open {
            Inline::Container(c) => Some(*c),
            Inline::Link(_) => None,
        })
    }

    /// Records what comes next inside the innermost span: the run `run`, or something else.
    fn note_item(&mut self, run: Option<usize>) {
        if let Some(&Inline::Container(c)) = self.inline.last() {
            let c = &mut self.doc.containers[c];
            if !c.has_items {
                c.first_run = run;
                c.has_items = true;
            }
            c.last_run = run;
        }
    }

    fn open_container(&mut self, span: Range<usize>) {
        self.open_run = None;
        self.block().has_content = true;
        self.note_item(None);
        let first = self.doc.runs.len();
        self.inline
            .push(Inline::Container(self.doc.containers.len()));
        self.doc.containers.push(Container {
            span,
            runs: first..first,
            ..Container::default()
        });
    }

    fn open_link(&mut self, link_type: LinkType, label: &str, span: Range<usize>) {
        let collapsed = match link_type {
            LinkType::Shortcut | LinkType::ShortcutUnknown => false,
            LinkType::Collapsed | LinkType::CollapsedUnknown => true,
            _ => {
                self.inline.push(Inline::Link(None));
                return;
            }
        };
        let first = self.doc.runs.len();
        self.inline
            .push(Inline::Link(Some(self.doc.ref_links.len())));
        self.doc.ref_links.push(RefLink {
            span,
            runs: first..first,
            label: label.to_owned(),
            collapsed,
        });
    }

    /// The end of a span, link or image: its runs are known.
    fn close_inline(&mut self) {
        self.open_run = None;
        let end = self.doc.runs.len();
        match self.inline.pop() {
            Some(Inline::Container(c)) => {
                self.doc.containers[c].runs.end = end;
                if self.doc.containers[c].opaque
                    && let Some(outer) = self.innermost_container()
                {
                    self.doc.containers[outer].opaque = true;
                }
            }
            Some(Inline::Link(Some(l))) => self.doc.ref_links[l].runs.end = end,
            Some(Inline::Link(None)) | None => {}
        }
    }

    fn text(&mut self, text: &str, range: Range<usize>) {
        if self.verbatim > 0 || text.is_empty() {
            return;
        }
        self.add(text, range);
    }

    /// A soft break reads as a space; its span reaches over the next line's container prefix
    /// (`> `, indentation) so that a replaced run never leaves a prefix mid-line.
    fn soft_break(&mut self, range: Range<usize>) {
        if self.verbatim > 0 {
            return;
        }
        let prefix = self.src[range.end..]
            .bytes()
            .take_while(|b| matches!(b, b' ' | b'\t' | b'>'))
            .count();
        self.add(" ", range.start..range.end + prefix);
    }

    /// Extends the open run with a piece of text, or opens a run.
    fn add(&mut self, text: &str, span: Range<usize>) {
        if let Some(id) = self.open_run {
            let run = &mut self.doc.runs[id];
            // Between two pieces of one run: nothing, the `\` of an escape, or (after a soft
            // break) whitespace. Anything else is kept, so it must not fall inside a span.
            let gap = self.src.get(run.span.end..span.start).unwrap_or("x");
            if gap.bytes().all(|b| matches!(b, b'\\' | b' ' | b'\t')) {
                run.text.push_str(text);
                run.span.end = span.end;
                return;
            }
        }
        // pulldown-cmark starts `\[` at the `[`: the backslash belongs to the run, or a
        // replaced run would leave it escaping the new text's first character.
        let mut span = span;
        if span.start > 0
            && self.src.as_bytes()[span.start - 1] == b'\\'
            && text.starts_with(|c: char| c.is_ascii_punctuation())
        {
            span.start -= 1;
        }
        let place = Place {
            block_start: !self.block().has_content,
            cell: self.cell,
            heading: self.heading,
        };
        let id = self.doc.runs.len();
        self.doc.runs.push(Run {
            span,
            text: text.to_owned(),
            place,
        });
        let block = self.block();
        block.has_content = true;
        block.runs.push(id);
        self.open_run = Some(id);
        self.note_item(Some(id));
    }
}

// ---------------------------------------------------------------------------------------
// Writing back.

/// Replace `span` of the source by `text`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Edit {
    span: Range<usize>,
    text: String,
}

impl Doc {
    fn block(&self, ids: &[usize]) -> Block {
        Block::new(ids.iter().map(|&id| self.runs[id].text.clone()).collect())
    }

    fn report(&self, report: &mut DocumentReport) {
        let k = &self.kept;
        skip(
            report,
            "code blocks",
            k.code_blocks,
            "code is left as written",
        );
        skip(
            report,
            "inline code",
            k.inline_code,
            "code is left as written",
        );
        skip(
            report,
            "HTML",
            k.html,
            "HTML inside Markdown is left as written",
        );
        skip(report, "math", k.math, "formulas are left as written");
        skip(
            report,
            "front matter",
            k.front_matter,
            "metadata is left as written",
        );
    }

    /// The edits that write the translation: changed runs, and the delimiters of spans whose
    /// text came back empty.
    fn edits(&self, sent: &[&Vec<usize>], translated: &[Vec<String>]) -> Vec<Edit> {
        let mut new: Vec<Option<String>> = vec![None; self.runs.len()];
        for (ids, texts) in sent.iter().zip(translated) {
            for (&id, text) in ids.iter().zip(texts) {
                if *text != self.runs[id].text {
                    new[id] = Some(self.normalized(id, text));
                }
            }
        }
        let counts = RunCounts::new(&self.runs, &new);
        let mut edits = Vec::new();
        for c in &self.containers {
            self.fix_container(c, &counts, &mut new, &mut edits);
        }
        for link in &self.ref_links {
            if counts.changed(&link.runs) {
                edits.push(self.label_edit(link));
            }
        }
        for (id, text) in new.iter().enumerate() {
            if let Some(text) = text {
                let run = &self.runs[id];
                edits.push(Edit {
                    span: run.span.clone(),
                    text: escape(text, run.place),
                });
            }
        }
        edits
    }

    /// The new text of run `id` before escaping: on one line, no leading spaces at the start
    /// of a block, and one space left where an emptied run separated two things.
    fn normalized(&self, id: usize, text: &str) -> String {
        let run = &self.runs[id];
        let mut text = text.replace(['\n', '\r'], " ");
        if run.place.block_start {
            text = text.trim_start().to_owned();
        }
        let separated =
            run.text.starts_with(char::is_whitespace) || run.text.ends_with(char::is_whitespace);
        if text.is_empty() && separated && !run.place.block_start {
            text.push(' ');
        }
        text
    }

    /// `[text]` → `[new text][label]`, `[text][]` → `[new text][label]`: the link keeps its
    /// target whatever its text becomes.
    fn label_edit(&self, link: &RefLink) -> Edit {
        let end = link.span.end;
        let brackets = if link.collapsed { 2 } else { 0 };
        Edit {
            span: end..end + brackets,
            text: format!("[{}]", link.label),
        }
    }

    /// A span whose text came back empty loses its delimiters (`****` would show); a space
    /// at its inner edge moves outside (`*word *` is not emphasis).
    fn fix_container(
        &self,
        c: &Container,
        counts: &RunCounts,
        new: &mut [Option<String>],
        edits: &mut Vec<Edit>,
    ) {
        if !counts.changed(&c.runs) {
            return;
        }
        if !c.opaque && !counts.visible(&c.runs) {
            let text = if counts.empty(&c.runs) { "" } else { " " };
            edits.push(Edit {
                span: c.span.clone(),
                text: text.into(),
            });
            return;
        }
        let starts = |t: &String| t.starts_with(char::is_whitespace);
        if let Some(text) = c
            .first_run
            .and_then(|r| new[r].as_mut())
            .filter(|t| starts(t))
        {
            *text = text.trim_start().to_owned();
            edits.push(Edit {
                span: c.span.start..c.span.start,
                text: " ".into(),
            });
        }
        let ends = |t: &String| t.ends_with(char::is_whitespace);
        if let Some(text) = c.last_run.and_then(|r| new[r].as_mut()).filter(|t| ends(t)) {
            *text = text.trim_end().to_owned();
            edits.push(Edit {
                span: c.span.end..c.span.end,
                text: " ".into(),
            });
        }
    }
}

/// Prefix counts over the runs' new texts, so that a span's state costs O(1) however many
/// spans nest around the same runs.
#[derive(Debug)]
struct RunCounts {
    changed: Vec<usize>,
    /// Runs with a non-whitespace character.
    visible: Vec<usize>,
    nonempty: Vec<usize>,
}

impl RunCounts {
    fn new(runs: &[Run], new: &[Option<String>]) -> Self {
        let mut counts = Self {
            changed: vec![0],
            visible: vec![0],
            nonempty: vec![0],
        };
        for (run, text) in runs.iter().zip(new) {
            let now = text.as_deref().unwrap_or(&run.text);
            let add = |v: &mut Vec<usize>, yes: bool| v.push(v[v.len() - 1] + usize::from(yes));
            add(&mut counts.changed, text.is_some());
            add(&mut counts.visible, !now.trim().is_empty());
            add(&mut counts.nonempty, !now.is_empty());
        }
        counts
    }

    fn count(v: &[usize], runs: &Range<usize>) -> usize {
        v[runs.end] - v[runs.start]
    }

    fn changed(&self, runs: &Range<usize>) -> bool {
        Self::count(&self.changed, runs) > 0
    }

    fn visible(&self, runs: &Range<usize>) -> bool {
        Self::count(&self.visible, runs) > 0
    }

    fn empty(&self, runs: &Range<usize>) -> bool {
        Self::count(&self.nonempty, runs) == 0
    }
}

/// Applies `edits` to `src`. An edit inside one applied before it (a run inside a removed
/// span) is dropped. New text that lands at the start of a line (what came before it on the
/// line was emptied) is adjusted, see [`LineStart`].
fn splice(src: &str, mut edits: Vec<Edit>) -> String {
    edits.sort_by_key(|e| (e.span.start, e.span.end));
    let mut out = Output::default();
    let mut at = 0;
    for e in edits {
        if e.span.start < at {
            continue;
        }
        out.push(&src[at..e.span.start]);
        match out.line_start() {
            LineStart::Markers => out.push(&escape_line_start(e.text.trim_start())),
            LineStart::Opener => out.push(e.text.trim_start()),
            LineStart::No => out.push(&e.text),
        }
        at = e.span.end;
    }
    out.push(&src[at..]);
    out.text
}

/// What precedes new text on its line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LineStart {
    /// Only container prefixes (`>`, indentation, list markers): leading spaces would change
    /// a list item's indentation (or make a code block) and are dropped; a leading `-`, `#`,
    /// `1.`… would start a block and is escaped.
    Markers,
    /// Prefixes then an opening `*`, `_` or `~` delimiter: a space after it would turn `*`
    /// into a list marker (and never reads as emphasis): dropped.
    Opener,
    No,
}

/// The document being written, and where its last line starts.
#[derive(Debug, Default)]
struct Output {
    text: String,
    line_start: usize,
}

impl Output {
    fn push(&mut self, s: &str) {
        // `!` then `[` reads as an image: new text ending with `!` before a link.
        if s.starts_with('[') && self.text.ends_with('!') && !self.text.ends_with("\\!") {
            self.text.insert(self.text.len() - 1, '\\');
        }
        if let Some(nl) = s.rfind('\n') {
            self.line_start = self.text.len() + nl + 1;
        }
        self.text.push_str(s);
    }

    fn line_start(&self) -> LineStart {
        let line = &self.text.as_bytes()[self.line_start..];
        // Prefixes are short; a longer line has content (or is hostile): leave it alone.
        if line.len() > 256 {
            return LineStart::No;
        }
        let mut i = 0;
        while i < line.len() {
            let digits = line[i..].iter().take_while(|b| b.is_ascii_digit()).count();
            let marker = match line[i] {
                b' ' | b'\t' | b'>' => 1,
                b'-' | b'*' | b'+' => 2,
                _ if (1..=9).contains(&digits)
                    && matches!(line.get(i + digits), Some(b'.' | b')')) =>
                {
                    digits + 2
                }
                _ => 0,
            };
            // A marker counts when a space follows it; else this may be an opener.
            if marker == 1 || (marker > 1 && matches!(line.get(i + marker - 1), Some(b' ' | b'\t')))
            {
                i += marker;
                continue;
            }
            let opener = line[i..].iter().all(|b| matches!(b, b'*' | b'_' | b'~'));
            return if opener {
                LineStart::Opener
            } else {
                LineStart::No
            };
        }
        LineStart::Markers
    }
}

/// Escapes a block marker at the start of `text` (which starts a line).
fn escape_line_start(text: &str) -> String {
    if text.starts_with(['#', '>', '-', '+', '=']) {
        return format!("\\{text}");
    }
    match ordered_list_dot(text) {
        Some(dot) => format!("{}\\{}", &text[..dot], &text[dot..]),
        None => text.to_owned(),
    }
}

/// Backslash-escapes what would read as Markdown syntax in new text at `place`.
fn escape(text: &str, place: Place) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    let list_dot = place.block_start.then(|| ordered_list_dot(text)).flatten();
    for (i, c) in text.char_indices() {
        let at_start = place.block_start && i == 0;
        let special = match c {
            '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '~' | '$' => true,
            '|' => place.cell,
            '#' => place.heading || at_start,
            '>' | '-' | '+' | '=' => at_start,
            '&' => reads_as_entity(&text[i + 1..]),
            _ => Some(i) == list_dot,
        };
        if special {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The offset of the `.` or `)` in `12. ` at the start of `text` (an ordered list marker).
fn ordered_list_dot(text: &str) -> Option<usize> {
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    let next = text.as_bytes().get(digits)?;
    ((1..=9).contains(&digits) && matches!(next, b'.' | b')')).then_some(digits)
}

/// Whether `&` followed by `rest` is a character reference (`&amp;`, `&#233;`, `&#xE9;`).
fn reads_as_entity(rest: &str) -> bool {
    let body = rest.strip_prefix('#').unwrap_or(rest);
    let name = body
        .bytes()
        .take_while(u8::is_ascii_alphanumeric)
        .take(32)
        .count();
    name > 0 && body.as_bytes().get(name) == Some(&b';')
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::super::testing::{Merge, Same, Upper};
    use super::*;

    /// Replaces each run by a fixed list of texts, block after block.
    #[derive(Debug)]
    struct Fixed(Vec<Vec<&'static str>>);

    impl RunTranslator for Fixed {
        fn translate_blocks(
            &mut self,
            blocks: &[Block],
        ) -> Result<Vec<Vec<String>>, TranslateError> {
            assert_eq!(blocks.len(), self.0.len(), "{blocks:?}");
            Ok(self
                .0
                .iter()
                .map(|runs| runs.iter().map(|r| (*r).to_owned()).collect())
                .collect())
        }
    }

    fn run(md: &str, tr: &mut dyn RunTranslator) -> (String, DocumentReport) {
        let mut report = DocumentReport::default();
        let out = translate(md.as_bytes(), &DocLimits::default(), tr, &mut report).unwrap();
        (String::from_utf8(out).unwrap(), report)
    }

    fn upper(md: &str) -> (String, Vec<Vec<String>>, DocumentReport) {
        let mut tr = Upper::default();
        let (out, report) = run(md, &mut tr);
        (out, tr.seen.into_iter().map(|b| b.runs).collect(), report)
    }

    fn skipped(report: &DocumentReport, what: &str) -> usize {
        report
            .skipped
            .iter()
            .find(|s| s.what == what)
            .map_or(0, |s| s.count)
    }

    #[test]
    fn inline_formatting_splits_runs_not_blocks() {
        let (out, seen, report) = upper("*the embassy* is closed\n");
        assert_eq!(seen, vec![vec!["the embassy", " is closed"]]);
        assert_eq!(out, "*THE EMBASSY* IS CLOSED\n");
        assert_eq!(report.blocks, 1);
    }

    #[test]
    fn upper_keeps_the_structure() {
        let md = "# Opening *hours*\n\nThe **visa** desk [opens](https://x.y/z \"Title\") at nine.  \nSecond line.\n\n> Quoted text\n\n- one\n- two\n  1. nested\n\n[^n]: A note.\n\n---\n\nText[^n] and ~~old~~.\n";
        let (out, seen, _) = upper(md);
        assert_eq!(
            out,
            "# OPENING *HOURS*\n\nTHE **VISA** DESK [OPENS](https://x.y/z \"Title\") AT NINE.  \nSECOND LINE.\n\n> QUOTED TEXT\n\n- ONE\n- TWO\n  1. NESTED\n\n[^n]: A NOTE.\n\n---\n\nTEXT[^n] AND ~~OLD~~.\n"
        );
        assert_eq!(
            seen,
            vec![
                vec!["Opening ", "hours"],
                vec!["The ", "visa", " desk ", "opens", " at nine."],
                vec!["Second line."],
                vec!["Quoted text"],
                vec!["one"],
                vec!["two"],
                vec!["nested"],
                vec!["A note."],
                vec!["Text", " and ", "old", "."],
            ]
        );
    }

    #[test]
    fn merge_empties_runs_and_drops_empty_spans() {
        let (out, _) = run("The **embassy** is [closed](u) today.\n", &mut Merge);
        assert_eq!(out, "THE EMBASSY IS CLOSED TODAY. [](u) \n");
    }

    #[test]
    fn unchanged_runs_give_the_same_bytes() {
        let md = "\u{feff}---\ntitle: x\n---\n\n# Title #\n\nAT&amp;T \\*not emphasis\\* &copy; caf&eacute;\nwrapped   \n> lazy\n\n| a | b \\| c |\n|---|:-:|\n| `x` | *y* |\n\n* item\n\n  loose\n\n```\ncode\n```\n";
        let (out, report) = run(md, &mut Same);
        assert_eq!(out, md);
        assert!(report.blocks > 0);
    }

    #[test]
    fn code_html_math_and_urls_are_kept_and_reported() {
        let md = "---\ntitle: Front\n---\n\nRun `make all` now, see <https://example.org> or [the site](https://example.org/a_b \"The title\").\n\n```sh\necho hello\n```\n\n    indented code\n\n<div>\nraw html\n</div>\n\nMath $x^2$ here, <b>bold</b> too.\n\n![A map](map.png \"Map title\")\n";
        let (out, seen, report) = upper(md);
        assert_eq!(
            out,
            "---\ntitle: Front\n---\n\nRUN `make all` NOW, SEE <https://example.org> OR [THE SITE](https://example.org/a_b \"The title\").\n\n```sh\necho hello\n```\n\n    indented code\n\n<div>\nraw html\n</div>\n\nMATH $x^2$ HERE, <b>BOLD</b> TOO.\n\n![A MAP](map.png \"Map title\")\n"
        );
        assert_eq!(
            seen,
            vec![
                vec!["Run ", " now, see ", " or ", "the site", "."],
                vec!["Math ", " here, ", "bold", " too."],
                vec!["A map"],
            ]
        );
        assert_eq!(skipped(&report, "code blocks"), 2);
        assert_eq!(skipped(&report, "inline code"), 1);
        assert_eq!(skipped(&report, "HTML"), 3);
        assert_eq!(skipped(&report, "math"), 1);
        assert_eq!(skipped(&report, "front matter"), 1);
    }

    #[test]
    fn image_description_is_a_block_of_its_own() {
        let (out, seen, _) = upper("See ![the *map*](m.png) below.\n");
        assert_eq!(seen, vec![vec!["the ", "map"], vec!["See ", " below."]]);
        assert_eq!(out, "SEE ![THE *MAP*](m.png) BELOW.\n");
    }

    #[test]
    fn entities_and_escapes_decoded_for_the_translator() {
        let (out, seen, _) = upper("AT&amp;T \\*x\\* caf&eacute; R&D a_b\n");
        assert_eq!(seen, vec![vec!["AT&T *x* café R&D a_b"]]);
        assert_eq!(out, "AT&T \\*X\\* CAFÉ R&D A\\_B\n");
    }

    #[test]
    fn new_text_is_escaped() {
        let (out, _) = run(
            "# Title\n\nSome text\n\n| a |\n|---|\n| b |\n",
            &mut Fixed(vec![
                vec!["C# & F# #1"],
                vec!["1. *not* a list <b> [x] `y` &amp; ~z~ $5\nnext"],
                vec!["-"],
                vec!["a | b"],
            ]),
        );
        assert_eq!(
            out,
            "# C\\# & F\\# \\#1\n\n1\\. \\*not\\* a list \\<b> \\[x\\] \\`y\\` \\&amp; \\~z\\~ \\$5 next\n\n| \\- |\n|---|\n| a \\| b |\n"
        );
    }

    #[test]
    fn spaces_move_out_of_emphasis() {
        let (out, _) = run(
            "A **bold** word and *this*.\n",
            &mut Fixed(vec![vec!["Un ", " gras ", "mot et", "  ", "."]]),
        );
        assert_eq!(out, "Un  **gras** mot et .\n");
    }

    #[test]
    fn emptied_run_between_code_spans_keeps_a_space() {
        let (out, _) = run(
            "Use `a` or `b` to stop.\n",
            &mut Fixed(vec![vec!["", "", " Utilisez-les pour arrêter."]]),
        );
        assert_eq!(out, "`a` `b` Utilisez-les pour arrêter.\n");
    }

    #[test]
    fn reference_links_keep_their_label() {
        let md = "See [the embassy] and [Visa office][] or [form][f].\n\n[the embassy]: https://e.org\n[visa office]: https://v.org\n[f]: https://f.org\n";
        let (out, seen, _) = upper(md);
        assert_eq!(
            seen[0],
            vec![
                "See ",
                "the embassy",
                " and ",
                "Visa office",
                " or ",
                "form",
                "."
            ]
        );
        assert_eq!(
            out,
            "SEE [THE EMBASSY][the embassy] AND [VISA OFFICE][Visa office] OR [FORM][f].\n\n[the embassy]: https://e.org\n[visa office]: https://v.org\n[f]: https://f.org\n"
        );
    }

    #[test]
    fn no_image_from_a_translated_exclamation() {
        let (out, _) = run("Thanks to [Ana](https://a.org)!\n", &mut Merge);
        assert_eq!(out, "THANKS TO ANA\\![](https://a.org)\n");
    }

    #[test]
    fn escape_before_a_run_is_part_of_it() {
        let (out, seen, _) = upper("[\\[rust\\] tag](https://x.org)\n");
        assert_eq!(seen, vec![vec!["[rust] tag"]]);
        assert_eq!(out, "[\\[RUST\\] TAG](https://x.org)\n");
    }

    #[test]
    fn emptied_start_of_a_list_item_keeps_its_indentation() {
        // The whole sentence goes to the last run; the item's second paragraph must stay in
        // the item (a space after `- ` would move the item's content column).
        let md = "- **Note:** the embassy *is* closed\n\n  Second paragraph.\n";
        let (out, _) = run(
            md,
            &mut Fixed(vec![
                vec!["", " ", "", "Attention : l'ambassade est fermée"],
                vec!["Deuxième paragraphe."],
            ]),
        );
        assert_eq!(
            out,
            "- Attention : l'ambassade est fermée\n\n  Deuxième paragraphe.\n"
        );
    }

    #[test]
    fn table_cells_are_blocks() {
        let (out, seen, _) =
            upper("| Office | Hours |\n|--------|------:|\n| Visa *desk* | 9-12 |\n");
        assert_eq!(
            seen,
            vec![
                vec!["Office"],
                vec!["Hours"],
                vec!["Visa ", "desk"],
                vec!["9-12"]
            ]
        );
        assert_eq!(
            out,
            "| OFFICE | HOURS |\n|--------|------:|\n| VISA *DESK* | 9-12 |\n"
        );
    }

    #[test]
    fn wrapped_paragraph_is_one_sentence() {
        let (out, seen, _) = upper(
            "A sentence wrapped\nover two lines.\n\n> Quoted and\n> wrapped *too*\n> here.\n",
        );
        assert_eq!(
            seen,
            vec![
                vec!["A sentence wrapped over two lines."],
                vec!["Quoted and wrapped ", "too", " here."],
            ]
        );
        assert_eq!(
            out,
            "A SENTENCE WRAPPED OVER TWO LINES.\n\n> QUOTED AND WRAPPED *TOO* HERE.\n"
        );
    }

    #[test]
    fn wrapped_list_item_stays_an_item() {
        let (out, seen, _) = upper("- first item\n  continues here\n- second\n");
        assert_eq!(
            seen,
            vec![vec!["first item continues here"], vec!["second"]]
        );
        assert_eq!(out, "- FIRST ITEM CONTINUES HERE\n- SECOND\n");
    }

    #[test]
    fn invalid_utf8_is_a_bad_document() {
        let mut report = DocumentReport::default();
        let err = translate(
            b"# caf\xe9\n",
            &DocLimits::default(),
            &mut Upper::default(),
            &mut report,
        )
        .unwrap_err();
        assert!(
            matches!(&err, TranslateError::BadDocument(m) if m.contains("offset 5")),
            "{err}"
        );
    }

    #[test]
    fn empty_document_is_returned_unchanged() {
        for md in ["", "\u{feff}", "\n\n", "```\ncode only\n```\n"] {
            let (out, seen, report) = upper(md);
            assert_eq!(out, md);
            assert!(seen.is_empty());
            assert_eq!(report.blocks, 0);
        }
    }

    #[test]
    fn bom_is_kept() {
        let (out, _, _) = upper("\u{feff}hello\n");
        assert_eq!(out, "\u{feff}HELLO\n");
    }

    #[test]
    fn pathological_inputs_finish() {
        let inputs = [
            "*".repeat(100_000),
            ">".repeat(100_000) + " deep",
            "[".repeat(100_000),
            "a *".repeat(50_000),
            // 20k nested spans around the same runs (once quadratic).
            "*a ".repeat(20_000) + &"b* ".repeat(20_000),
            "[a](".repeat(50_000),
            "- ".repeat(100_000) + "x",
            "`".repeat(100_000),
            (0..2_000).map(|i| "  ".repeat(i) + "- x\n").collect(),
        ];
        for md in inputs {
            let mut report = DocumentReport::default();
            let _ = translate(
                md.as_bytes(),
                &DocLimits::default(),
                &mut Upper::default(),
                &mut report,
            );
        }
    }

    #[test]
    fn too_many_characters() {
        let limits = DocLimits {
            max_chars: 5,
            ..DocLimits::default()
        };
        let mut report = DocumentReport::default();
        let err = translate(
            b"more than five",
            &limits,
            &mut Upper::default(),
            &mut report,
        )
        .unwrap_err();
        assert!(matches!(err, TranslateError::TooLong { .. }), "{err}");
    }
}

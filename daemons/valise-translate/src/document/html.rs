//! `.html` documents: the text of elements and a few attributes is translated, the markup is
//! copied byte for byte.
//!
//! Data flow (two passes of lol_html, a streaming rewriter that never builds a tree, so any
//! nesting depth costs heap, not stack, and its internal buffers are capped by
//! [`MAX_MEMORY`]):
//!
//! ```text
//!  pass 1 (Collector): elements and text nodes in document order
//!        ─▶ [Block]   a block is cut at the start and end of block-level elements
//!                     (p, div, li, td, h1…) and at <br>; inline ones (b, a, span…) do not cut,
//!                     so `<p>The <b>embassy</b> is closed.</p>` is ONE block, three runs
//!  RunTranslator  ─▶ new runs
//!  pass 2 (Applier): the same walk; a changed text node's first chunk gets the new text
//!                    (escaped), its later chunks are removed; changed attributes are set
//! ```
//!
//! Both passes number elements and text nodes the same way ([`walk`]); pass 2 checks that
//! every text node it replaces has the raw length pass 1 saw, so a disagreement is an error,
//! never text written at the wrong place.
//!
//! What is translated: text nodes (`Data`, and the `RCData` of `<title>`), one run per text
//! node; the attributes `alt`, `title`, `placeholder`, `aria-label`, the `value` of
//! submit/reset/button inputs and the `content` of description/title `<meta>` tags, each as
//! its own one-run block.
//!
//! What is not (reported with [`skip`]): script, style, noscript and template; code, pre, kbd,
//! samp and var (translating code or preformatted text breaks it); svg and math; textarea
//! (user-entered text); elements marked `translate="no"` or `class="notranslate"`, and all
//! their descendants (a descendant may say `translate="yes"` again, as in HTML itself);
//! comments, doctype, and every attribute not listed above. An untranslated element inside a
//! paragraph (`<code>` in a sentence) does not cut the paragraph: the sentence around it is
//! still translated as one sentence, and the code is kept where it was.
//!
//! Text for the translator: entities decoded (the common named ones, numeric ones; an unknown
//! entity is kept literally) and runs of HTML whitespace collapsed to one space (outside
//! `pre`, which is never translated, a line break in HTML text is just a space; a raw newline
//! would make the engine cut a sentence in two). A run that comes back unchanged keeps its
//! original bytes, so a document whose runs all come back unchanged is returned byte for
//! byte. A changed run is written escaped (`&`, `<`, `>`, and U+00A0 as `&nbsp;`).
//!
//! Only UTF-8 is read: a document that is not valid UTF-8 is refused with the byte offset (and
//! the charset it declares, if any), a UTF-8 BOM is kept. lol_html's scoping follows its own
//! view of nesting, without HTML's implied end tags: `<p translate="no">a<p>b` keeps `b`
//! untranslated too, which errs on the side of leaving text as it is.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use lol_html::errors::RewritingError;
use lol_html::html_content::{ContentType, Element, TextChunk, TextType};
use lol_html::{
    DocumentContentHandlers, ElementContentHandlers, HandlerResult, HtmlRewriter, MemorySettings,
    Selector, Settings, end_tag,
};
use valise_protocol::translate::DocumentReport;

use super::{Block, DocLimits, RunTranslator, check_chars, skip, utf8_body};
use crate::TranslateError;

/// What lol_html may buffer (a start tag split over input chunks, the selector stack): a
/// hostile document gets an error, not the machine's memory.
const MAX_MEMORY: usize = 64 * 1024 * 1024;

/// Elements whose start and end cut blocks: what a browser lays out as a box of its own
/// (sorted: looked up by binary search).
const BLOCK_ELEMENTS: &[&str] = &[
    "address",
    "article",
    "aside",
    "audio",
    "blockquote",
    "body",
    "br",
    "button",
    "canvas",
    "caption",
    "center",
    "dd",
    "details",
    "dialog",
    "dir",
    "div",
    "dl",
    "dt",
    "fieldset",
    "figcaption",
    "figure",
    "footer",
    "form",
    "frameset",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "head",
    "header",
    "hgroup",
    "hr",
    "html",
    "iframe",
    "legend",
    "li",
    "main",
    "menu",
    "nav",
    "noscript",
    "object",
    "ol",
    "optgroup",
    "option",
    "p",
    "pre",
    "script",
    "section",
    "select",
    "style",
    "summary",
    "table",
    "tbody",
    "td",
    "template",
    "textarea",
    "tfoot",
    "th",
    "thead",
    "title",
    "tr",
    "ul",
    "video",
];

/// Attributes that hold text a reader sees (alternative text, tooltips, hints, labels).
const TEXT_ATTRIBUTES: &[&str] = &["alt", "title", "placeholder", "aria-label"];

/// `<meta name=… content=…>` (or `property=…`) whose content is the page's description or title.
const TEXT_META: &[&str] = &[
    "description",
    "og:title",
    "og:description",
    "twitter:title",
    "twitter:description",
];

/// Why an element's content is left as it is (one report line per kind).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Keep {
    Script,
    Code,
    Foreign,
    Form,
    NoTranslate,
}

impl Keep {
    /// Elements whose content is never text to translate, whatever their attributes say.
    fn of(tag: &str) -> Option<Self> {
        match tag {
            "script" | "style" | "noscript" | "template" => Some(Self::Script),
            "code" | "pre" | "kbd" | "samp" | "var" => Some(Self::Code),
            "svg" | "math" => Some(Self::Foreign),
            "textarea" => Some(Self::Form),
            _ => None,
        }
    }

    fn report(self, report: &mut DocumentReport, count: usize) {
        let (what, why) = match self {
            Self::Script => (
                "scripts and styles",
                "program code and style sheets are not text; left as they are",
            ),
            Self::Code => (
                "code",
                "code and preformatted text are left as written (translating breaks them)",
            ),
            Self::Foreign => (
                "SVG and MathML",
                "drawings and formulas are left as they are",
            ),
            Self::Form => ("form fields", "the text of form fields is left as entered"),
            Self::NoTranslate => (
                "marked translate=\"no\"",
                "the author marked them not to be translated",
            ),
        };
        skip(report, what, count, why);
    }
}

/// Whether the text inside an element is translated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    Translate,
    /// `translate="no"` (or `notranslate`): a descendant may switch translation back on.
    No,
    /// Script, code…: nothing inside is ever translated.
    Never,
}

/// Where a run's text lives, so that pass 2 finds it again.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Slot {
    /// The `id`-th text node of the document; `raw_len` is its length in the source.
    Node { id: usize, raw_len: usize },
    /// An attribute of the `element`-th element.
    Attr { element: usize, name: &'static str },
}

/// One run: its place and its text as the translator sees it.
#[derive(Debug, Clone)]
struct Run {
    slot: Slot,
    text: String,
}

/// Translates an HTML document (see the module doc).
pub fn translate(
    input: &[u8],
    limits: &DocLimits,
    target: Option<&str>,
    tr: &mut dyn RunTranslator,
    report: &mut DocumentReport,
) -> Result<Vec<u8>, TranslateError> {
    let (bom, html) = utf8_body(input).map_err(|e| charset_error(input, &e))?;
    let collected = collect(html)?;
    for (keep, count) in &collected.kept {
        keep.report(report, *count);
    }
    let (sent, blocks): (Vec<&Vec<Run>>, Vec<Block>) = collected
        .blocks
        .iter()
        .map(|runs| (runs, block_of(runs)))
        .filter(|(_, block)| !block.is_blank())
        .unzip();
    check_chars(&blocks, limits)?;
    report.blocks = blocks.len();
    if blocks.is_empty() {
        return Ok(input.to_vec());
    }
    let translated = tr.translate_blocks(&blocks)?;
    let mut plan = Plan::new(&sent, &translated);
    if plan.is_empty() {
        return Ok(input.to_vec());
    }
    // The document's declared language becomes the target's (screen readers pick their voice
    // from it); a document that declares none is left so.
    if let Some(lang) = target {
        for &(element, name) in &collected.languages {
            plan.attrs
                .entry(element)
                .or_default()
                .push((name, escape(lang, true)));
        }
    }
    let mut out = Vec::with_capacity(input.len() + input.len() / 4);
    out.extend_from_slice(bom);
    out.extend_from_slice(&apply(html, plan)?);
    Ok(out)
}

fn block_of(runs: &[Run]) -> Block {
    Block::new(runs.iter().map(|r| r.text.clone()).collect())
}

// ---------------------------------------------------------------------------------------
// Shared with the other text formats.

/// A UTF-8 error, with the charset the document declares (if any) so the user knows why.
fn charset_error(input: &[u8], utf8: &str) -> TranslateError {
    match declared_charset(input) {
        Some(cs) if !cs.eq_ignore_ascii_case("utf-8") && !cs.eq_ignore_ascii_case("utf8") => {
            TranslateError::BadDocument(format!(
                "{utf8}; the document declares charset \"{cs}\": save it as UTF-8"
            ))
        }
        _ => TranslateError::BadDocument(utf8.to_owned()),
    }
}

/// The `charset=` of a `<meta>` in the first KiB (where HTML requires it to be).
fn declared_charset(input: &[u8]) -> Option<String> {
    let head = &input[..input.len().min(1024)];
    let lower = head.to_ascii_lowercase();
    let at = lower.windows(8).position(|w| w == b"charset=")? + 8;
    let value: String = lower[at..]
        .iter()
        .skip_while(|&&b| b == b'"' || b == b'\'')
        .take_while(|&&b| b.is_ascii_alphanumeric() || b"-_:.".contains(&b))
        .map(|&b| char::from(b))
        .collect();
    (!value.is_empty()).then_some(value)
}

// ---------------------------------------------------------------------------------------
// The walk both passes share.

/// What a pass does with each element start, element end and text chunk.
trait Pass {
    fn start(&mut self, id: usize, el: &mut Element<'_, '_>) -> HandlerResult;
    fn end(&mut self, id: usize);
    fn text(&mut self, node: usize, first: bool, chunk: &mut TextChunk<'_>);
}

/// Runs lol_html over `html` with `pass`, numbering elements and text nodes in document order
/// (the same numbers in both passes: that is how pass 2 finds pass 1's runs).
fn walk<P: Pass + 'static>(html: &str, pass: &Rc<RefCell<P>>) -> Result<Vec<u8>, TranslateError> {
    let selector: Selector = "*"
        .parse()
        .map_err(|e| TranslateError::Internal(format!("HTML selector: {e}")))?;
    let on_element = {
        let pass = Rc::clone(pass);
        let mut elements = 0usize;
        move |el: &mut Element<'_, '_>| -> HandlerResult {
            let id = elements;
            elements += 1;
            pass.borrow_mut().start(id, el)?;
            // Void elements (<br>, <img>) have no end tag and take no handler.
            if el.can_have_content() {
                let pass = Rc::clone(&pass);
                el.on_end_tag(end_tag!(move |_| {
                    pass.borrow_mut().end(id);
                    Ok(())
                }))?;
            }
            Ok(())
        }
    };
    let on_text = {
        let pass = Rc::clone(pass);
        let mut node = 0usize;
        let mut first = true;
        move |chunk: &mut TextChunk<'_>| -> HandlerResult {
            pass.borrow_mut().text(node, first, chunk);
            // lol_html ends every text node with a chunk marked last (often empty).
            first = chunk.last_in_text_node();
            if first {
                node += 1;
            }
            Ok(())
        }
    };
    let settings = Settings::new()
        .with_memory_settings(MemorySettings::new().with_max_allowed_memory_usage(MAX_MEMORY))
        .append_element_content_handler((
            Cow::Owned(selector),
            ElementContentHandlers::default().element(on_element),
        ))
        .append_document_content_handler(DocumentContentHandlers::default().text(on_text));
    let mut out = Vec::with_capacity(html.len());
    let mut rewriter = HtmlRewriter::new(settings, |bytes: &[u8]| out.extend_from_slice(bytes));
    // After a failed write the rewriter must not be ended (lol_html panics).
    rewriter.write(html.as_bytes()).map_err(rewrite_error)?;
    rewriter.end().map_err(rewrite_error)?;
    Ok(out)
}

fn rewrite_error(e: RewritingError) -> TranslateError {
    match e {
        RewritingError::ContentHandlerError(e) => {
            TranslateError::Internal(format!("HTML rewriting: {e}"))
        }
        // Memory limit, or markup a streaming parser cannot read safely (`<select><xmp>`).
        other => TranslateError::BadDocument(format!("HTML: {other}")),
    }
}

// ---------------------------------------------------------------------------------------
// Pass 1: blocks.

#[derive(Debug, Clone, Copy)]
struct Frame {
    id: usize,
    block: bool,
    scope: Scope,
}

/// What pass 1 found.
#[derive(Debug, Default)]
struct Collected {
    /// Every block in document order (blank ones included; the caller filters).
    blocks: Vec<Vec<Run>>,
    /// Elements left untranslated, per kind, for the report.
    kept: Vec<(Keep, usize)>,
    /// The `lang` / `xml:lang` attributes that `<html>` declares: (element, name).
    languages: Vec<(usize, &'static str)>,
}

#[derive(Debug, Default)]
struct Collector {
    found: Collected,
    /// Open elements, as lol_html sees them.
    frames: Vec<Frame>,
    /// Runs of the block being read.
    current: Vec<Run>,
    /// Raw text of the text node being read, when it is translated.
    node_raw: Option<String>,
}

fn collect(html: &str) -> Result<Collected, TranslateError> {
    let pass = Rc::new(RefCell::new(Collector::default()));
    walk(html, &pass)?;
    let mut collector = pass.take();
    collector.cut();
    Ok(collector.found)
}

impl Collector {
    fn scope(&self) -> Scope {
        self.frames.last().map_or(Scope::Translate, |f| f.scope)
    }

    /// Ends the block being read.
    fn cut(&mut self) {
        if !self.current.is_empty() {
            self.found.blocks.push(std::mem::take(&mut self.current));
        }
    }

    fn count(&mut self, keep: Keep) {
        match self.found.kept.iter_mut().find(|(k, _)| *k == keep) {
            Some((_, n)) => *n += 1,
            None => self.found.kept.push((keep, 1)),
        }
    }

    /// The scope inside `el`, counting the elements that start an untranslated part.
    fn scope_of(&mut self, tag: &str, el: &Element<'_, '_>) -> Scope {
        let parent = self.scope();
        if parent == Scope::Never {
            return Scope::Never;
        }
        if let Some(keep) = Keep::of(tag) {
            self.count(keep);
            return Scope::Never;
        }
        match translate_attribute(el) {
            Some(false) => {
                if parent == Scope::Translate {
                    self.count(Keep::NoTranslate);
                }
                Scope::No
            }
            Some(true) => Scope::Translate,
            None => parent,
        }
    }

    /// Each translatable attribute of `el` becomes a block of its own.
    fn collect_attributes(&mut self, id: usize, tag: &str, el: &Element<'_, '_>) {
        for name in text_attributes(tag, el) {
            if let Some(raw) = el.get_attribute(name) {
                self.found.blocks.push(vec![Run {
                    slot: Slot::Attr { element: id, name },
                    text: collapse_whitespace(&decode_entities(&raw)),
                }]);
            }
        }
    }
}

impl Pass for Collector {
    fn start(&mut self, id: usize, el: &mut Element<'_, '_>) -> HandlerResult {
        let tag = el.tag_name();
        if tag.eq_ignore_ascii_case("html") {
            for name in ["lang", "xml:lang"] {
                if el.has_attribute(name) {
                    self.found.languages.push((id, name));
                }
            }
        }
        let scope = self.scope_of(&tag, el);
        if scope == Scope::Translate {
            self.collect_attributes(id, &tag, el);
        }
        let block = BLOCK_ELEMENTS.binary_search(&tag.as_str()).is_ok();
        if block {
            self.cut();
        }
        if el.can_have_content() {
            self.frames.push(Frame { id, block, scope });
        }
        Ok(())
    }

    fn end(&mut self, id: usize) {
        // Elements opened after `id` and still open were closed implicitly by this end tag.
        let mut block = false;
        while let Some(top) = self.frames.last().copied() {
            if top.id < id {
                break;
            }
            block |= top.block;
            self.frames.pop();
        }
        if block {
            self.cut();
        }
    }

    fn text(&mut self, node: usize, first: bool, chunk: &mut TextChunk<'_>) {
        if first {
            // Script and style text has its own types; `RCData` is <title> here (the
            // other RCData element, textarea, is never translated).
            let readable = matches!(chunk.text_type(), TextType::Data | TextType::RCData);
            self.node_raw = (readable && self.scope() == Scope::Translate).then(String::new);
        }
        let Some(raw) = self.node_raw.as_mut() else {
            return;
        };
        raw.push_str(chunk.as_str());
        if chunk.last_in_text_node() {
            let raw = self.node_raw.take().unwrap_or_default();
            if !raw.is_empty() {
                self.current.push(Run {
                    slot: Slot::Node {
                        id: node,
                        raw_len: raw.len(),
                    },
                    text: collapse_whitespace(&decode_entities(&raw)),
                });
            }
        }
    }
}

/// `translate="yes|no"` (HTML's own switch) or the `notranslate` class (Google's).
fn translate_attribute(el: &Element<'_, '_>) -> Option<bool> {
    if let Some(v) = el.get_attribute("translate") {
        match v.trim().to_ascii_lowercase().as_str() {
            "no" => return Some(false),
            "" | "yes" => return Some(true),
            _ => {}
        }
    }
    let class = el.get_attribute("class")?;
    class
        .split_ascii_whitespace()
        .any(|c| c == "notranslate")
        .then_some(false)
}

/// The attributes of `el` that hold visible text.
fn text_attributes(tag: &str, el: &Element<'_, '_>) -> Vec<&'static str> {
    let mut names: Vec<&'static str> = TEXT_ATTRIBUTES
        .iter()
        .copied()
        .filter(|a| el.has_attribute(a))
        .collect();
    if tag == "meta" {
        let kind = el
            .get_attribute("name")
            .or_else(|| el.get_attribute("property"))
            .unwrap_or_default()
            .to_ascii_lowercase();
        if TEXT_META.contains(&kind.trim()) {
            names.push("content");
        }
    }
    if tag == "input" {
        let kind = el.get_attribute("type").unwrap_or_default();
        if ["submit", "reset", "button"].contains(&kind.trim().to_ascii_lowercase().as_str()) {
            names.push("value");
        }
    }
    names
}

// ---------------------------------------------------------------------------------------
// Pass 2: the new text in place.

#[derive(Debug)]
struct NodeEdit {
    /// Escaped HTML that replaces the node.
    html: String,
    raw_len: usize,
}

/// The changed runs, by place.
#[derive(Debug, Default)]
struct Plan {
    nodes: HashMap<usize, NodeEdit>,
    attrs: HashMap<usize, Vec<(&'static str, String)>>,
}

impl Plan {
    /// Only runs whose text changed are edited: the others keep their source bytes.
    fn new(sent: &[&Vec<Run>], translated: &[Vec<String>]) -> Self {
        let mut plan = Self::default();
        for (runs, new) in sent.iter().zip(translated) {
            for (run, text) in runs.iter().zip(new) {
                if *text == run.text {
                    continue;
                }
                match run.slot {
                    Slot::Node { id, raw_len } => {
                        let html = escape(text, false);
                        plan.nodes.insert(id, NodeEdit { html, raw_len });
                    }
                    Slot::Attr { element, name } => {
                        let value = escape(text, true);
                        plan.attrs.entry(element).or_default().push((name, value));
                    }
                }
            }
        }
        plan
    }

    fn is_empty(&self) -> bool {
        self.nodes.is_empty() && self.attrs.is_empty()
    }
}

#[derive(Debug)]
struct Applier {
    plan: Plan,
    /// Raw bytes seen of the node being replaced.
    seen: usize,
    replaced: usize,
    /// A node whose length differs from pass 1's: the passes disagree.
    mismatch: bool,
}

fn apply(html: &str, plan: Plan) -> Result<Vec<u8>, TranslateError> {
    let nodes = plan.nodes.len();
    let pass = Rc::new(RefCell::new(Applier {
        plan,
        seen: 0,
        replaced: 0,
        mismatch: false,
    }));
    let out = walk(html, &pass)?;
    let a = pass.borrow();
    if a.mismatch || a.replaced != nodes || !a.plan.attrs.is_empty() {
        return Err(TranslateError::Internal(
            "the two HTML passes did not see the same document".into(),
        ));
    }
    Ok(out)
}

impl Pass for Applier {
    fn start(&mut self, id: usize, el: &mut Element<'_, '_>) -> HandlerResult {
        for (name, value) in self.plan.attrs.remove(&id).unwrap_or_default() {
            el.set_attribute(name, &value)?;
        }
        Ok(())
    }

    fn end(&mut self, _id: usize) {}

    fn text(&mut self, node: usize, first: bool, chunk: &mut TextChunk<'_>) {
        let Some(edit) = self.plan.nodes.get(&node) else {
            return;
        };
        if first {
            chunk.replace(&edit.html, ContentType::Html);
            self.seen = 0;
        } else {
            chunk.remove();
        }
        self.seen += chunk.as_str().len();
        if chunk.last_in_text_node() {
            self.mismatch |= self.seen != edit.raw_len;
            self.replaced += 1;
        }
    }
}

// ---------------------------------------------------------------------------------------
// Text: entities, whitespace, escaping.

/// Named entities decoded for the translator: the XML five, spaces, Latin letters with
/// accents, typographic punctuation and common symbols. Any other is kept literally (it still
/// renders: only the translator sees it as is).
const ENTITIES: &[(&str, char)] = &[
    ("amp", '&'),
    ("lt", '<'),
    ("gt", '>'),
    ("quot", '"'),
    ("apos", '\''),
    ("nbsp", '\u{a0}'),
    ("ensp", '\u{2002}'),
    ("emsp", '\u{2003}'),
    ("thinsp", '\u{2009}'),
    ("shy", '\u{ad}'),
    ("zwnj", '\u{200c}'),
    ("zwj", '\u{200d}'),
    ("lrm", '\u{200e}'),
    ("rlm", '\u{200f}'),
    ("laquo", '«'),
    ("raquo", '»'),
    ("lsaquo", '‹'),
    ("rsaquo", '›'),
    ("lsquo", '‘'),
    ("rsquo", '’'),
    ("sbquo", '‚'),
    ("ldquo", '“'),
    ("rdquo", '”'),
    ("bdquo", '„'),
    ("hellip", '…'),
    ("mdash", '—'),
    ("ndash", '–'),
    ("minus", '−'),
    ("bull", '•'),
    ("middot", '·'),
    ("iexcl", '¡'),
    ("iquest", '¿'),
    ("euro", '€'),
    ("pound", '£'),
    ("yen", '¥'),
    ("cent", '¢'),
    ("copy", '©'),
    ("reg", '®'),
    ("trade", '™'),
    ("deg", '°'),
    ("plusmn", '±'),
    ("times", '×'),
    ("divide", '÷'),
    ("para", '¶'),
    ("sect", '§'),
    ("ordf", 'ª'),
    ("ordm", 'º'),
    ("sup1", '¹'),
    ("sup2", '²'),
    ("sup3", '³'),
    ("frac12", '½'),
    ("frac14", '¼'),
    ("frac34", '¾'),
    ("micro", 'µ'),
    ("szlig", 'ß'),
    ("aacute", 'á'),
    ("Aacute", 'Á'),
    ("agrave", 'à'),
    ("Agrave", 'À'),
    ("acirc", 'â'),
    ("Acirc", 'Â'),
    ("auml", 'ä'),
    ("Auml", 'Ä'),
    ("atilde", 'ã'),
    ("Atilde", 'Ã'),
    ("aring", 'å'),
    ("Aring", 'Å'),
    ("aelig", 'æ'),
    ("AElig", 'Æ'),
    ("ccedil", 'ç'),
    ("Ccedil", 'Ç'),
    ("eacute", 'é'),
    ("Eacute", 'É'),
    ("egrave", 'è'),
    ("Egrave", 'È'),
    ("ecirc", 'ê'),
    ("Ecirc", 'Ê'),
    ("euml", 'ë'),
    ("Euml", 'Ë'),
    ("iacute", 'í'),
    ("Iacute", 'Í'),
    ("igrave", 'ì'),
    ("Igrave", 'Ì'),
    ("icirc", 'î'),
    ("Icirc", 'Î'),
    ("iuml", 'ï'),
    ("Iuml", 'Ï'),
    ("ntilde", 'ñ'),
    ("Ntilde", 'Ñ'),
    ("oacute", 'ó'),
    ("Oacute", 'Ó'),
    ("ograve", 'ò'),
    ("Ograve", 'Ò'),
    ("ocirc", 'ô'),
    ("Ocirc", 'Ô'),
    ("ouml", 'ö'),
    ("Ouml", 'Ö'),
    ("otilde", 'õ'),
    ("Otilde", 'Õ'),
    ("oslash", 'ø'),
    ("Oslash", 'Ø'),
    ("oelig", 'œ'),
    ("OElig", 'Œ'),
    ("uacute", 'ú'),
    ("Uacute", 'Ú'),
    ("ugrave", 'ù'),
    ("Ugrave", 'Ù'),
    ("ucirc", 'û'),
    ("Ucirc", 'Û'),
    ("uuml", 'ü'),
    ("Uuml", 'Ü'),
    ("yacute", 'ý'),
    ("Yacute", 'Ý'),
    ("yuml", 'ÿ'),
    ("Yuml", 'Ÿ'),
];

/// Decodes character references in HTML text or an attribute value.
fn decode_entities(raw: &str) -> Cow<'_, str> {
    if !raw.contains('&') {
        return Cow::Borrowed(raw);
    }
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        match entity(rest) {
            Some((c, len)) => {
                out.push(c);
                rest = &rest[len..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    Cow::Owned(out)
}

/// The character `s` (starting with `&`) refers to and the reference's length in bytes.
/// Only terminated (`;`) references are read: `a&b` in a URL stays as it is.
fn entity(s: &str) -> Option<(char, usize)> {
    let body = s.get(1..)?;
    // Bounded look-ahead: a text full of `&` without `;` stays linear.
    let end = body
        .bytes()
        .take(33)
        .position(|b| b == b';')
        .filter(|&e| e > 0)?;
    let name = body.get(..end)?;
    let c = match name.strip_prefix('#') {
        Some(num) => numeric_reference(num)?,
        None => ENTITIES.iter().find(|(n, _)| *n == name)?.1,
    };
    Some((c, end + 2))
}

/// `&#123;` or `&#x7B;`; a code point that is no character (0, surrogate, too large) reads
/// as U+FFFD, as in a browser.
fn numeric_reference(num: &str) -> Option<char> {
    let (digits, radix) = match num.strip_prefix(['x', 'X']) {
        Some(hex) => (hex, 16),
        None => (num, 10),
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let code = u32::from_str_radix(digits, radix).unwrap_or(u32::MAX);
    Some(
        char::from_u32(code)
            .filter(|&c| c != '\0')
            .unwrap_or('\u{fffd}'),
    )
}

/// Collapses runs of HTML whitespace to one space: how a browser shows them, and no line
/// break reaches the translator as a sentence boundary.
fn collapse_whitespace(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut space = false;
    for c in text.chars() {
        if matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0c') {
            if !space {
                out.push(' ');
            }
            space = true;
        } else {
            out.push(c);
            space = false;
        }
    }
    out
}

/// Escapes translated text for HTML text (`attribute`: for a double-quoted attribute value).
fn escape(text: &str, attribute: bool) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' if attribute => out.push_str("&quot;"),
            '\u{a0}' => out.push_str("&nbsp;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::super::testing::{Merge, Same, Upper};
    use super::*;

    fn run(html: &str, tr: &mut dyn RunTranslator) -> (String, DocumentReport) {
        run_into(html, None, tr)
    }

    fn run_into(
        html: &str,
        target: Option<&str>,
        tr: &mut dyn RunTranslator,
    ) -> (String, DocumentReport) {
        let mut report = DocumentReport::default();
        let out = translate(
            html.as_bytes(),
            &DocLimits::default(),
            target,
            tr,
            &mut report,
        )
        .unwrap();
        (String::from_utf8(out).unwrap(), report)
    }

    fn upper(html: &str) -> (String, Vec<Block>, DocumentReport) {
        let mut tr = Upper::default();
        let (out, report) = run(html, &mut tr);
        (out, tr.seen, report)
    }

    fn runs(blocks: &[Block]) -> Vec<Vec<&str>> {
        blocks
            .iter()
            .map(|b| b.runs.iter().map(String::as_str).collect())
            .collect()
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
        let (out, seen, report) = upper("<p>The <b>embassy</b> is closed.</p>");
        assert_eq!(runs(&seen), vec![vec!["The ", "embassy", " is closed."]]);
        assert_eq!(out, "<p>THE <b>EMBASSY</b> IS CLOSED.</p>");
        assert_eq!(report.blocks, 1);
    }

    #[test]
    fn the_declared_language_becomes_the_target() {
        let html = "<html lang=\"en\" xml:lang=\"en\"><body><p lang=\"en\">Hello</p></body></html>";
        assert_eq!(
            run_into(html, Some("pt"), &mut Upper::default()).0,
            "<html lang=\"pt\" xml:lang=\"pt\"><body><p lang=\"en\">HELLO</p></body></html>",
            "the root's language follows the translation; inner marks are the author's"
        );
        let bare = "<html><body><p>Hello</p></body></html>";
        assert_eq!(
            run_into(bare, Some("pt"), &mut Upper::default()).0,
            "<html><body><p>HELLO</p></body></html>"
        );
    }

    #[test]
    fn upper_keeps_all_markup() {
        let html = "<!DOCTYPE html>\n<html lang=\"en\"><head><title>Visa &amp; passports</title></head>\n<body class=\"x\">\n<h1 id=\"t\">Opening hours</h1>\n<!-- note -->\n<ul>\n  <li>Monday<li>Tuesday</li>\n</ul>\n<p>Line one<br>line two</p>\n</body></html>\n";
        let (out, seen, _) = upper(html);
        assert_eq!(
            out,
            "<!DOCTYPE html>\n<html lang=\"en\"><head><title>VISA &amp; PASSPORTS</title></head>\n<body class=\"x\">\n<h1 id=\"t\">OPENING HOURS</h1>\n<!-- note -->\n<ul>\n  <li>MONDAY<li>TUESDAY</li>\n</ul>\n<p>LINE ONE<br>LINE TWO</p>\n</body></html>\n"
        );
        assert_eq!(
            runs(&seen),
            vec![
                vec!["Visa & passports"],
                vec!["Opening hours"],
                vec!["Monday"],
                vec!["Tuesday"],
                vec!["Line one"],
                vec!["line two"],
            ]
        );
    }

    #[test]
    fn merge_puts_the_text_in_the_first_run() {
        let (out, _) = run(
            "<p>The <b>embassy</b> is <a href=\"/x\">closed</a>.</p>",
            &mut Merge,
        );
        assert_eq!(
            out,
            "<p>THE EMBASSY IS CLOSED.<b></b><a href=\"/x\"></a></p>"
        );
    }

    #[test]
    fn unchanged_runs_give_the_same_bytes() {
        let html = "\u{feff}<!doctype html><HTML><Body>\n<P CLASS=a>Caf&eacute; &amp; <I>cr&egrave;me</I>\n   br&ucirc;l&eacute;e &unknown; &#233;</P>\n<img alt='A  map' src=m.png><input type=submit value=\"Send\"></Body></HTML>";
        let (out, report) = run(html, &mut Same);
        assert_eq!(out, html);
        assert_eq!(report.blocks, 3);
    }

    #[test]
    fn one_changed_run_leaves_the_rest_byte_for_byte() {
        struct Second;
        impl RunTranslator for Second {
            fn translate_blocks(
                &mut self,
                blocks: &[Block],
            ) -> Result<Vec<Vec<String>>, TranslateError> {
                Ok(blocks
                    .iter()
                    .enumerate()
                    .map(|(i, b)| {
                        let mut runs = b.runs.clone();
                        if i == 1 {
                            runs[0] = "Changed".into();
                        }
                        runs
                    })
                    .collect())
            }
        }
        let html = "<P>Caf&eacute;\n  here</P><div  data-x='1'>two &amp;</DIV><p>three</p>";
        let (out, _) = run(html, &mut Second);
        assert_eq!(
            out,
            "<P>Caf&eacute;\n  here</P><div  data-x='1'>Changed</DIV><p>three</p>"
        );
    }

    #[test]
    fn code_script_style_and_translate_no_are_kept_and_reported() {
        let html = "<head><style>p { color: red }</style><script>var s = \"hello\";</script></head>\n<p>Run <code>make all</code> now.</p>\n<pre>keep this</pre>\n<p translate=\"no\">Valise <b>AG</b></p>\n<div class=\"a notranslate\">Brand <span translate=\"yes\">but this</span></div>\n<svg><text>label</text></svg><textarea>typed</textarea><noscript>enable js</noscript>";
        let (out, seen, report) = upper(html);
        assert_eq!(
            out,
            "<head><style>p { color: red }</style><script>var s = \"hello\";</script></head>\n<p>RUN <code>make all</code> NOW.</p>\n<pre>keep this</pre>\n<p translate=\"no\">Valise <b>AG</b></p>\n<div class=\"a notranslate\">Brand <span translate=\"yes\">BUT THIS</span></div>\n<svg><text>label</text></svg><textarea>typed</textarea><noscript>enable js</noscript>"
        );
        assert_eq!(runs(&seen), vec![vec!["Run ", " now."], vec!["but this"]]);
        assert_eq!(skipped(&report, "scripts and styles"), 3);
        assert_eq!(skipped(&report, "code"), 2);
        assert_eq!(skipped(&report, "marked translate=\"no\""), 2);
        assert_eq!(skipped(&report, "SVG and MathML"), 1);
        assert_eq!(skipped(&report, "form fields"), 1);
    }

    #[test]
    fn entities_decoded_for_the_translator_and_escaped_on_write() {
        let (out, seen, _) =
            upper("<p>AT&amp;T &lt;b&gt; caf&eacute;&nbsp;&#x41;&#66; &bogus; a&b</p>");
        assert_eq!(runs(&seen), vec![vec!["AT&T <b> café\u{a0}AB &bogus; a&b"]]);
        assert_eq!(
            out,
            "<p>AT&amp;T &lt;B&gt; CAFÉ&nbsp;AB &amp;BOGUS; A&amp;B</p>"
        );
    }

    #[test]
    fn attributes_are_blocks_of_their_own() {
        let html = "<head><meta name=\"description\" content=\"The embassy&apos;s site\"><meta name=\"viewport\" content=\"width=device-width\"></head><p>See <img src=\"map.png\" alt=\"A &quot;map&quot;\" title='Map'> and <a href=\"x\" aria-label=\"next\">go</a></p><input placeholder=\"Name\" value=\"typed\"><input type=\"submit\" value=\"Send\">";
        let (out, seen, _) = upper(html);
        assert_eq!(
            runs(&seen),
            vec![
                vec!["The embassy's site"],
                vec!["A \"map\""],
                vec!["Map"],
                vec!["next"],
                vec!["See ", " and ", "go"],
                vec!["Name"],
                vec!["Send"],
            ]
        );
        assert_eq!(
            out,
            "<head><meta name=\"description\" content=\"THE EMBASSY'S SITE\"><meta name=\"viewport\" content=\"width=device-width\"></head><p>SEE <img src=\"map.png\" alt=\"A &quot;MAP&quot;\" title=\"MAP\"> AND <a href=\"x\" aria-label=\"NEXT\">GO</a></p><input placeholder=\"NAME\" value=\"typed\"><input type=\"submit\" value=\"SEND\">"
        );
    }

    #[test]
    fn attributes_inside_untranslated_parts_are_kept() {
        let (out, seen, _) =
            upper("<code title=\"x\">a</code><p translate=no><img alt=\"no\"></p>");
        assert!(seen.is_empty());
        assert_eq!(
            out,
            "<code title=\"x\">a</code><p translate=no><img alt=\"no\"></p>"
        );
    }

    #[test]
    fn table_cells_are_blocks() {
        let (out, seen, _) = upper(
            "<table><tr><th>Office</th><th>Hours</th></tr><tr><td>Visa <i>desk</i><td>9-12</table>",
        );
        assert_eq!(
            runs(&seen),
            vec![
                vec!["Office"],
                vec!["Hours"],
                vec!["Visa ", "desk"],
                vec!["9-12"]
            ]
        );
        assert_eq!(
            out,
            "<table><tr><th>OFFICE</th><th>HOURS</th></tr><tr><td>VISA <i>DESK</i><td>9-12</table>"
        );
    }

    #[test]
    fn whitespace_collapsed_for_the_translator() {
        let (out, seen, _) = upper("<p>\n  A sentence\n  over two lines.\n</p>");
        assert_eq!(runs(&seen), vec![vec![" A sentence over two lines. "]]);
        assert_eq!(out, "<p> A SENTENCE OVER TWO LINES. </p>");
    }

    #[test]
    fn invalid_utf8_is_a_bad_document() {
        let mut report = DocumentReport::default();
        let err = translate(
            b"<p>caf\xe9</p>",
            &DocLimits::default(),
            None,
            &mut Upper::default(),
            &mut report,
        )
        .unwrap_err();
        assert!(
            matches!(&err, TranslateError::BadDocument(m) if m.contains("offset 6")),
            "{err}"
        );
        let err = translate(
            b"<meta charset=\"windows-1252\"><p>caf\xe9</p>",
            &DocLimits::default(),
            None,
            &mut Upper::default(),
            &mut report,
        )
        .unwrap_err();
        assert!(
            matches!(&err, TranslateError::BadDocument(m) if m.contains("windows-1252")),
            "{err}"
        );
    }

    #[test]
    fn declared_charset_is_fine_when_the_bytes_are_utf8() {
        let (out, _, _) = upper("<meta charset=\"iso-8859-1\"><p>ok</p>");
        assert_eq!(out, "<meta charset=\"iso-8859-1\"><p>OK</p>");
    }

    #[test]
    fn bom_is_kept() {
        let (out, seen, _) = upper("\u{feff}<p>hello</p>");
        assert_eq!(out, "\u{feff}<p>HELLO</p>");
        assert_eq!(runs(&seen), vec![vec!["hello"]]);
    }

    #[test]
    fn empty_document_is_returned_unchanged() {
        for html in ["", "\u{feff}", "<html><body>\n</body></html>"] {
            let (out, seen, report) = upper(html);
            assert_eq!(out, html);
            assert!(seen.is_empty());
            assert_eq!(report.blocks, 0);
        }
    }

    #[test]
    fn long_text_nodes_in_several_chunks() {
        let text = "word &amp; caf&eacute; ".repeat(20_000);
        let (out, seen, _) = upper(&format!("<p>{text}<b>x</b></p>"));
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].runs[0], "word & café ".repeat(20_000));
        let want = "WORD &amp; CAFÉ ".repeat(20_000);
        assert_eq!(out, format!("<p>{want}<b>X</b></p>"));
    }

    #[test]
    fn deep_nesting_finishes() {
        let html = "<div>".repeat(100_000) + "deep" + &"</div>".repeat(100_000);
        let mut report = DocumentReport::default();
        let out = translate(
            html.as_bytes(),
            &DocLimits::default(),
            None,
            &mut Upper::default(),
            &mut report,
        );
        if let Ok(out) = out {
            assert!(String::from_utf8(out).unwrap().contains(">DEEP<"));
        }
        let html = "<b>".repeat(100_000) + "x";
        let _ = translate(
            html.as_bytes(),
            &DocLimits::default(),
            None,
            &mut Upper::default(),
            &mut report,
        );
    }

    #[test]
    fn ambiguous_markup_is_a_bad_document() {
        let mut report = DocumentReport::default();
        let err = translate(
            b"<select><xmp><script>x</script></select>",
            &DocLimits::default(),
            None,
            &mut Upper::default(),
            &mut report,
        )
        .unwrap_err();
        assert!(matches!(err, TranslateError::BadDocument(_)), "{err}");
    }

    #[test]
    fn too_many_characters() {
        let limits = DocLimits {
            max_chars: 5,
            ..DocLimits::default()
        };
        let mut report = DocumentReport::default();
        let err = translate(
            b"<p>more than five</p>",
            &limits,
            None,
            &mut Upper::default(),
            &mut report,
        )
        .unwrap_err();
        assert!(matches!(err, TranslateError::TooLong { .. }), "{err}");
    }

    #[test]
    fn block_elements_are_sorted() {
        assert!(BLOCK_ELEMENTS.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn decode_and_escape() {
        assert_eq!(
            decode_entities("&#0; &#xD800; &#99999999999; &#x;"),
            "\u{fffd} \u{fffd} \u{fffd} &#x;"
        );
        assert_eq!(decode_entities("&amp"), "&amp");
        assert_eq!(
            escape("a\"b<c>&\u{a0}", true),
            "a&quot;b&lt;c&gt;&amp;&nbsp;"
        );
        assert_eq!(escape("a\"b", false), "a\"b");
    }
}

//! Email HTML without quadratic surprises. The sanitiser (ammonia, on html5ever's tree builder)
//! costs time in proportion to the number of tags times how deep the tree is — every tag checks
//! the stack of open elements — and html5ever's duplicate-attribute check costs the square of a
//! tag's attribute count: a 1 MB mail of 100,000 nested `<div>` kept a thread busy for 23 s.
//! So before anything hands HTML to the sanitiser, [`fits_the_sanitiser`] measures it in one
//! linear pass; HTML beyond the limits is not displayed (its text is), and the text of an HTML
//! body always comes from [`to_text`], linear and under a time budget.

use std::time::{Duration, Instant};

/// Deepest element nesting handed to the sanitiser; deeper HTML is dropped and only its text is
/// kept. Real mail nests a few dozen levels (Outlook's tables of tables included).
pub const MAX_HTML_DEPTH: usize = 256;
/// Most attributes on one tag handed to the sanitiser (its duplicate check is quadratic in them).
pub const MAX_HTML_ATTRIBUTES: usize = 256;
/// Wall-clock budget of one HTML-to-text conversion; what is left after it is cut with a note.
/// Linear work over at most 25 MiB takes a fraction of it: the budget is for a starved machine.
pub const TEXT_BUDGET: Duration = Duration::from_secs(2);

/// How often (in input bytes) [`to_text`] looks at the clock.
const CLOCK_EVERY: usize = 64 * 1024;
/// Longest entity name or number looked for after `&`.
const MAX_ENTITY: usize = 32;

/// Elements that never have content: no end tag, no nesting.
const VOID: &[&str] = &[
    "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param", "source", "track", "wbr",
    "basefont", "bgsound", "frame", "keygen",
];
/// Elements whose content is raw text up to their own end tag.
const RAW_TEXT: &[&str] =
    &["script", "style", "textarea", "title", "xmp", "iframe", "noembed", "noframes", "noscript", "template"];
/// Elements an end tag for an element outside them does not close (the tree builder's scope).
const SCOPE: &[&str] =
    &["html", "table", "td", "th", "caption", "applet", "object", "marquee", "template", "svg", "math"];
/// Formatting elements: the tree builder reopens them after a block closes them.
const FORMATTING: &[&str] =
    &["a", "b", "big", "code", "em", "font", "i", "nobr", "s", "small", "strike", "strong", "tt", "u"];
/// Start tags that close an open `p` (HTML's implied end tags, the common part).
const CLOSES_P: &[&str] = &[
    "address",
    "article",
    "aside",
    "blockquote",
    "center",
    "details",
    "div",
    "dl",
    "fieldset",
    "figure",
    "footer",
    "form",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "header",
    "hr",
    "main",
    "menu",
    "nav",
    "ol",
    "p",
    "pre",
    "section",
    "table",
    "ul",
];
/// Elements that start on a line of their own in the text.
const BLOCK: &[&str] = &[
    "address",
    "article",
    "aside",
    "blockquote",
    "center",
    "div",
    "dl",
    "dt",
    "dd",
    "fieldset",
    "figure",
    "footer",
    "form",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "header",
    "hr",
    "main",
    "nav",
    "ol",
    "p",
    "pre",
    "section",
    "table",
    "tr",
    "ul",
    "li",
    "caption",
];

fn is_in(name: &str, set: &[&str]) -> bool {
    set.iter().any(|s| s.eq_ignore_ascii_case(name))
}

/// One piece of HTML.
#[derive(Debug, PartialEq)]
enum Token<'a> {
    Text(&'a str),
    Start {
        name: &'a str,
        attributes: usize,
        self_closing: bool,
    },
    End {
        name: &'a str,
    },
    /// The content of a raw-text element (`<script>`, `<style>`…), never markup.
    RawText(&'a str),
}

/// A forgiving HTML tokenizer: one forward pass, every byte looked at a bounded number of times.
/// Comments, doctypes and processing instructions are skipped.
struct Tokens<'a> {
    html: &'a str,
    at: usize,
    /// Set after the start tag of a raw-text element: its content comes next.
    raw_until: Option<&'a str>,
}

impl<'a> Tokens<'a> {
    fn new(html: &'a str) -> Self {
        Self { html, at: 0, raw_until: None }
    }

    /// Where the first `</name` (any case) at or after `from` starts, or the end.
    fn end_tag_from(&self, from: usize, name: &str) -> usize {
        let b = self.html.as_bytes();
        let mut i = from;
        while let Some(off) = b[i..].windows(2).position(|w| w == b"</") {
            let start = i + off;
            let after = start + 2;
            if b.get(after..after + name.len()).is_some_and(|n| n.eq_ignore_ascii_case(name.as_bytes())) {
                return start;
            }
            i = after;
        }
        b.len()
    }

    /// Parses a tag at `self.at` (a `<` followed by a letter or `/letter`).
    fn tag(&mut self, end: bool) -> Token<'a> {
        let b = self.html.as_bytes();
        let name_start = self.at + if end { 2 } else { 1 };
        let mut i = name_start;
        while i < b.len() && !b[i].is_ascii_whitespace() && b[i] != b'/' && b[i] != b'>' {
            i += 1;
        }
        let name = &self.html[name_start..i];
        // Attributes up to the closing `>`; quoted values may hold `>`.
        let (mut attributes, mut in_name, mut self_closing) = (0usize, false, false);
        while i < b.len() {
            match b[i] {
                b'>' => {
                    i += 1;
                    break;
                }
                q @ (b'"' | b'\'') => {
                    i = b[i + 1..].iter().position(|&c| c == q).map_or(b.len(), |p| i + 1 + p + 1);
                    in_name = false;
                    continue;
                }
                b'/' => {
                    self_closing = b.get(i + 1) == Some(&b'>');
                    in_name = false;
                }
                b'=' => in_name = false,
                c if c.is_ascii_whitespace() => in_name = false,
                _ => {
                    if !in_name {
                        attributes += 1;
                    }
                    in_name = true;
                }
            }
            i += 1;
        }
        self.at = i.min(b.len());
        if end {
            Token::End { name }
        } else {
            if !self_closing && is_in(name, RAW_TEXT) {
                self.raw_until = Some(name);
            }
            Token::Start { name, attributes, self_closing }
        }
    }
}

impl<'a> Iterator for Tokens<'a> {
    type Item = Token<'a>;

    fn next(&mut self) -> Option<Token<'a>> {
        let b = self.html.as_bytes();
        if let Some(name) = self.raw_until.take() {
            let end = self.end_tag_from(self.at, name);
            let raw = &self.html[self.at..end];
            self.at = end;
            if !raw.is_empty() {
                return Some(Token::RawText(raw));
            }
        }
        loop {
            if self.at >= b.len() {
                return None;
            }
            let start = self.at;
            if b[start] != b'<' {
                let len = b[start..].iter().position(|&c| c == b'<').unwrap_or(b.len() - start);
                self.at = start + len;
                return Some(Token::Text(&self.html[start..start + len]));
            }
            match (b.get(start + 1), b.get(start + 2)) {
                (Some(c), _) if c.is_ascii_alphabetic() => return Some(self.tag(false)),
                (Some(b'/'), Some(c)) if c.is_ascii_alphabetic() => return Some(self.tag(true)),
                (Some(b'!'), _) if b[start..].starts_with(b"<!--") => {
                    self.at =
                        b[start + 4..].windows(3).position(|w| w == b"-->").map_or(b.len(), |p| start + 4 + p + 3);
                }
                (Some(b'!' | b'?' | b'/'), _) => {
                    self.at = b[start..].iter().position(|&c| c == b'>').map_or(b.len(), |p| start + p + 1);
                }
                // A `<` that starts no tag is text.
                _ => {
                    let len = 1 + b[start + 1..].iter().position(|&c| c == b'<').unwrap_or(b.len() - start - 1);
                    self.at = start + len;
                    return Some(Token::Text(&self.html[start..start + len]));
                }
            }
        }
    }
}

/// Whether the sanitiser may take this HTML: its tree nests at most [`MAX_HTML_DEPTH`] deep and
/// no tag has more than [`MAX_HTML_ATTRIBUTES`] attributes. One linear pass; the stack it keeps
/// never exceeds the limit, so each end tag costs at most [`MAX_HTML_DEPTH`] comparisons.
///
/// The nesting is estimated the way a tree builder would see it, erring deep: an end tag closes
/// only an element open inside the nearest table-like scope (else it is ignored, as html5ever
/// ignores it), and formatting elements (`<b>`, `<font>`…) count until their own end tag even
/// when a block closed them, because the tree builder reopens them.
pub fn fits_the_sanitiser(html: &str) -> bool {
    let mut open: Vec<&str> = Vec::new();
    let mut formatting = 0usize;
    for token in Tokens::new(html) {
        match token {
            Token::Start { attributes, .. } if attributes > MAX_HTML_ATTRIBUTES => return false,
            Token::Start { name, self_closing, .. } => {
                if is_in(name, FORMATTING) {
                    formatting += 1;
                }
                if open.last().is_some_and(|top| top.eq_ignore_ascii_case("p")) && is_in(name, CLOSES_P) {
                    open.pop();
                }
                if ["li", "dt", "dd", "option", "tr", "td", "th"].iter().any(|n| n.eq_ignore_ascii_case(name))
                    && open.last().is_some_and(|top| top.eq_ignore_ascii_case(name))
                {
                    open.pop();
                }
                if !self_closing && !is_in(name, VOID) {
                    open.push(name);
                }
                if open.len() > MAX_HTML_DEPTH || formatting > MAX_HTML_DEPTH {
                    return false;
                }
            }
            Token::End { name } => {
                if is_in(name, FORMATTING) {
                    formatting = formatting.saturating_sub(1);
                }
                for i in (0..open.len()).rev() {
                    if open[i].eq_ignore_ascii_case(name) {
                        open.truncate(i);
                        break;
                    }
                    if is_in(open[i], SCOPE) {
                        break;
                    }
                }
            }
            Token::Text(_) | Token::RawText(_) => {}
        }
    }
    true
}

/// The readable text of an HTML body: tags dropped, `<br>` and block elements (`<p>`, `<div>`,
/// `<li>`, headings, table rows) on lines of their own, runs of spaces collapsed, the common
/// entities decoded, `<script>`/`<style>`/`<title>` content skipped. Linear in the input and
/// never longer than it; after `budget` the rest is cut with a note.
pub fn to_text(html: &str, budget: Duration) -> String {
    let started = Instant::now();
    let mut out = Text { s: String::with_capacity(html.len().min(1 << 20)), space: false };
    let mut next_clock = CLOCK_EVERY;
    let mut tokens = Tokens::new(html);
    while let Some(token) = tokens.next() {
        if tokens.at >= next_clock {
            next_clock = tokens.at + CLOCK_EVERY;
            if started.elapsed() > budget {
                out.line();
                out.s.push_str("[…]");
                return out.s;
            }
        }
        match token {
            Token::Text(t) => out.text(t),
            Token::Start { name, .. } if name.eq_ignore_ascii_case("br") => out.s.push('\n'),
            Token::Start { name, .. } if name.eq_ignore_ascii_case("li") => {
                out.line();
                out.s.push_str("- ");
            }
            Token::Start { name, .. } | Token::End { name } if is_in(name, BLOCK) => out.line(),
            Token::Start { name, .. } if name.eq_ignore_ascii_case("td") || name.eq_ignore_ascii_case("th") => {
                out.space = true
            }
            Token::Start { .. } | Token::End { .. } | Token::RawText(_) => {}
        }
    }
    let end = out.s.trim_end().len();
    out.s.truncate(end);
    out.s
}

/// The text being built, with a pending space between words.
struct Text {
    s: String,
    /// Whitespace was seen since the last word: one space goes before the next, unless a line
    /// starts there.
    space: bool,
}

impl Text {
    /// Starts a new line unless one just started.
    fn line(&mut self) {
        if !self.s.is_empty() && !self.s.ends_with('\n') {
            self.s.push('\n');
        }
        self.space = false;
    }

    fn word(&mut self, w: &str) {
        if self.space && !self.s.is_empty() && !self.s.ends_with('\n') {
            self.s.push(' ');
        }
        self.space = false;
        self.s.push_str(w);
    }

    /// Text between tags: whitespace collapsed, entities decoded.
    fn text(&mut self, t: &str) {
        let b = t.as_bytes();
        let mut i = 0;
        while i < b.len() {
            if b[i].is_ascii_whitespace() {
                self.space = true;
                i += 1;
                continue;
            }
            if b[i] == b'&'
                && let Some((decoded, len)) = entity(&t[i..])
            {
                if decoded.is_whitespace() {
                    self.space = true;
                } else {
                    self.word(decoded.encode_utf8(&mut [0; 4]));
                }
                i += len;
                continue;
            }
            // A run up to the next whitespace or `&` (both ASCII: the cut is a char boundary).
            let run =
                1 + b[i + 1..].iter().position(|c| c.is_ascii_whitespace() || *c == b'&').unwrap_or(b.len() - i - 1);
            self.word(&t[i..i + run]);
            i += run;
        }
    }
}

/// The character an entity at the start of `s` stands for and the entity's length, for numeric
/// references and the named ones mail uses; anything else stays as written.
fn entity(s: &str) -> Option<(char, usize)> {
    let b = s.as_bytes();
    let semi = b.iter().take(MAX_ENTITY + 2).position(|&c| c == b';')?;
    let body = &s[1..semi];
    let c = if let Some(num) = body.strip_prefix('#') {
        let code = match num.strip_prefix(['x', 'X']) {
            Some(hex) => u32::from_str_radix(hex, 16).ok()?,
            None => num.parse::<u32>().ok()?,
        };
        // NUL and surrogates become the replacement character, as in HTML.
        char::from_u32(code).filter(|c| *c != '\0').unwrap_or('\u{FFFD}')
    } else {
        named(body)?
    };
    Some((c, semi + 1))
}

fn named(name: &str) -> Option<char> {
    Some(match name {
        "amp" => '&',
        "lt" => '<',
        "gt" => '>',
        "quot" => '"',
        "apos" => '\'',
        "nbsp" | "ensp" | "emsp" | "thinsp" => ' ',
        "copy" => '©',
        "reg" => '®',
        "trade" => '™',
        "euro" => '€',
        "pound" => '£',
        "cent" => '¢',
        "yen" => '¥',
        "sect" => '§',
        "deg" => '°',
        "ordm" => 'º',
        "ordf" => 'ª',
        "middot" => '·',
        "bull" => '•',
        "hellip" => '…',
        "ndash" => '–',
        "mdash" => '—',
        "lsquo" => '‘',
        "rsquo" => '’',
        "ldquo" => '“',
        "rdquo" => '”',
        "laquo" => '«',
        "raquo" => '»',
        "times" => '×',
        "divide" => '÷',
        "iexcl" => '¡',
        "iquest" => '¿',
        _ => return accented(name),
    })
}

/// `&aacute;`, `&Ccedil;`, `&otilde;`…: Latin letters with a diacritic, as Portuguese and
/// Spanish mail writes them.
fn accented(name: &str) -> Option<char> {
    let mut chars = name.chars();
    let letter = chars.next()?;
    let mark = chars.as_str();
    let table: &[(char, &str)] = match mark {
        "acute" => &[('a', "á"), ('e', "é"), ('i', "í"), ('o', "ó"), ('u', "ú"), ('y', "ý")],
        "grave" => &[('a', "à"), ('e', "è"), ('i', "ì"), ('o', "ò"), ('u', "ù")],
        "circ" => &[('a', "â"), ('e', "ê"), ('i', "î"), ('o', "ô"), ('u', "û")],
        "tilde" => &[('a', "ã"), ('o', "õ"), ('n', "ñ")],
        "uml" => &[('a', "ä"), ('e', "ë"), ('i', "ï"), ('o', "ö"), ('u', "ü"), ('y', "ÿ")],
        "cedil" => &[('c', "ç")],
        _ => return None,
    };
    let (_, lower) = table.iter().find(|(l, _)| *l == letter.to_ascii_lowercase())?;
    let c = lower.chars().next()?;
    if letter.is_ascii_uppercase() { c.to_uppercase().next() } else { Some(c) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(html: &str) -> String {
        to_text(html, TEXT_BUDGET)
    }

    #[test]
    fn text_keeps_lines_words_and_entities() {
        assert_eq!(
            text(
                "<div><h1>Problema</h1><p>O site <i>n&atilde;o</i>   abre.</p><ul><li>um<li>dois</ul>linha<br>outra</div>"
            ),
            "Problema\nO site não abre.\n- um\n- dois\nlinha\noutra"
        );
        assert_eq!(text("a &amp; b &lt;c&gt; &#233;&#xE9; &bogus; &amp"), "a & b <c> éé &bogus; &amp");
        assert_eq!(text("<style>p{x:1}</style><script>if (a<b) x()</script>oi<!-- <p>no</p> -->!"), "oi!");
        assert_eq!(text("1 < 2 <3 <a href=\"x>y\">link</a>"), "1 < 2 <3 link");
        assert_eq!(text("<table><tr><td>a</td><td>b</td></tr><tr><td>c</td></tr></table>"), "a b\nc");
    }

    #[test]
    fn ordinary_html_fits_and_deep_or_crowded_html_does_not() {
        assert!(fits_the_sanitiser("<div><p>a<p>b<p>c</div><ul><li>x<li>y</ul>"));
        // Unclosed paragraphs and list items close each other, as in a browser.
        assert!(fits_the_sanitiser(&"<p>para".repeat(10_000)));
        assert!(fits_the_sanitiser(&"<li>item".repeat(10_000)));
        assert!(fits_the_sanitiser(&"<div>x</div>".repeat(10_000)));
        let deep = |n: usize| "<div>".repeat(n) + &"</div>".repeat(n);
        assert!(fits_the_sanitiser(&deep(MAX_HTML_DEPTH)));
        assert!(!fits_the_sanitiser(&deep(MAX_HTML_DEPTH + 1)));
        // An end tag outside a table does not close what the table holds.
        assert!(!fits_the_sanitiser(&"<div><table></div>".repeat(MAX_HTML_DEPTH)));
        // Formatting elements a block closed count: the tree builder reopens them.
        assert!(!fits_the_sanitiser(&"<p><b id=1></p>x".repeat(MAX_HTML_DEPTH + 1)));
        let attrs: String = (0..=MAX_HTML_ATTRIBUTES).map(|i| format!(" a{i}=1")).collect();
        assert!(!fits_the_sanitiser(&format!("<p{attrs}>x</p>")));
        assert!(fits_the_sanitiser(&format!("<p title=\"{}\">x</p>", "a b c ".repeat(1000))));
    }

    /// Pieces hostile HTML is made of: nesting, unclosed and misnested tags, tables that keep
    /// end tags out, formatting the tree builder reopens, crowded tags, entity floods.
    fn piece() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        prop_oneof![
            Just("<div>".to_owned()),
            Just("</div>".to_owned()),
            Just("<p>".to_owned()),
            Just("<li>".to_owned()),
            Just("<table>".to_owned()),
            Just("<td>".to_owned()),
            Just("<b>".to_owned()),
            Just("</b>".to_owned()),
            Just("<font color=red>".to_owned()),
            Just("<a href='x'>".to_owned()),
            Just("<script>".to_owned()),
            Just("<!--".to_owned()),
            Just("<".to_owned()),
            Just("&".to_owned()),
            Just("\"".to_owned()),
            Just("&amp;&#x41;&#99999999;&eacute;&nbsp;".to_owned()),
            "[a-z ]{1,12}",
            (1usize..1000).prop_map(|n| format!("<span{}>", " x=1".repeat(n))),
            (1usize..1000).prop_map(|n| "<div>".repeat(n)),
            (1usize..1000).prop_map(|n| "<i id=1>".repeat(n)),
            (1usize..300).prop_map(|n| "<div><table></div>".repeat(n)),
            (1usize..300).prop_map(|n| "<p><b id=2></p>x".repeat(n)),
            (1usize..1000).prop_map(|n| "&lt;".repeat(n)),
        ]
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 48, ..Default::default() })]

        /// Any HTML up to a few hundred KB: the text comes quickly and is never longer than the
        /// HTML, and HTML the check lets through the sanitiser is sanitised quickly too.
        #[test]
        fn hostile_html_costs_linear_time(pieces in proptest::collection::vec(piece(), 1..400)) {
            let html: String = pieces.concat();
            let started = Instant::now();
            let text = to_text(&html, TEXT_BUDGET);
            proptest::prop_assert!(text.len() <= html.len(), "{} bytes of text from {}", text.len(), html.len());
            if fits_the_sanitiser(&html) {
                ammonia::clean(&html);
            }
            // Generous for an unoptimised build on a shared machine: quadratic work on this much
            // HTML takes minutes.
            let took = started.elapsed();
            proptest::prop_assert!(took < Duration::from_secs(3), "{took:?} for {} bytes", html.len());
        }
    }
}

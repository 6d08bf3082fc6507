//! Tests that every error code and every text key of the desk and the webchat widget has a
//! pt-BR and an English text, so neither ever shows a bare key or the server's English message.
//!
//! The dictionaries are read from `web/static/` as text: each is an object literal of
//! `key: 'text'` entries, and anything else in one fails the test rather than being skipped.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::error::Code;

fn static_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("static")
}

fn read(rel: &str) -> String {
    let path = static_dir().join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A cursor over JavaScript source that knows strings and comments, enough to read dictionaries.
struct Js<'a> {
    src: &'a str,
    at: usize,
}

impl<'a> Js<'a> {
    fn new(src: &'a str) -> Self {
        Self { src, at: 0 }
    }

    fn rest(&self) -> &'a str {
        &self.src[self.at..]
    }

    fn skip_space_and_comments(&mut self) {
        loop {
            let rest = self.rest();
            let trimmed = rest.trim_start();
            self.at += rest.len() - trimmed.len();
            if trimmed.starts_with("//") {
                self.at += trimmed.find('\n').unwrap_or(trimmed.len());
            } else if let Some(body) = trimmed.strip_prefix("/*") {
                self.at += 2 + body.find("*/").map_or(body.len(), |end| end + 2);
            } else {
                return;
            }
        }
    }

    /// A string literal at the cursor: `Some(Ok(text))`, `Some(Err(()))` for a template literal
    /// with `${…}` (its value is not known here), `None` when there is no string.
    fn string(&mut self) -> Option<Result<String, ()>> {
        let quote = self.rest().chars().next().filter(|c| matches!(c, '\'' | '"' | '`'))?;
        let mut text = String::new();
        let mut chars = self.rest().char_indices().skip(1);
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, escaped)) = chars.next() {
                        text.push(if escaped == 'n' { '\n' } else { escaped });
                    }
                }
                c if c == quote => {
                    self.at += i + c.len_utf8();
                    return Some(if quote == '`' && text.contains("${") { Err(()) } else { Ok(text) });
                }
                c => text.push(c),
            }
        }
        panic!("a string that never ends at {:?}", &self.rest()[..self.rest().len().min(40)])
    }

    fn identifier(&mut self) -> Option<String> {
        let len = self.rest().find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '$')).unwrap_or(0);
        let id = self.rest()[..len].to_owned();
        self.at += len;
        (!id.is_empty()).then_some(id)
    }

    fn eat(&mut self, c: char) -> bool {
        let found = self.rest().starts_with(c);
        if found {
            self.at += c.len_utf8();
        }
        found
    }
}

/// The inside of the `{…}` that `marker` (ending in `{`) opens in `src`.
fn braced<'a>(src: &'a str, marker: &str, file: &str) -> &'a str {
    assert!(marker.ends_with('{'));
    let start = src.find(marker).unwrap_or_else(|| panic!("{file}: no `{marker}`")) + marker.len();
    let mut js = Js::new(&src[start..]);
    let mut depth = 1;
    loop {
        js.skip_space_and_comments();
        if js.string().is_some() {
            continue;
        }
        match js.rest().chars().next() {
            Some('{') => depth += 1,
            Some('}') if depth == 1 => return &src[start..start + js.at],
            Some('}') => depth -= 1,
            Some(_) => {}
            None => panic!("{file}: `{marker}` is never closed"),
        }
        js.at += js.rest().chars().next().map_or(1, char::len_utf8);
    }
}

/// The keys of a dictionary's body, in order (a key twice is kept twice, so it can be reported).
fn keys(body: &str, what: &str) -> Vec<String> {
    let mut js = Js::new(body);
    let mut keys = Vec::new();
    loop {
        js.skip_space_and_comments();
        if js.rest().is_empty() {
            return keys;
        }
        let near = js.rest().chars().take(50).collect::<String>();
        let key = match js.string() {
            Some(Ok(k)) => k,
            _ => js.identifier().unwrap_or_else(|| panic!("{what}: not a `key: 'text'` entry at {near:?}")),
        };
        js.skip_space_and_comments();
        assert!(js.eat(':'), "{what}: not a `key: 'text'` entry at {near:?}");
        js.skip_space_and_comments();
        match js.string() {
            Some(Ok(text)) => assert!(!text.trim().is_empty(), "{what}: {key} has an empty text"),
            _ => panic!("{what}: the text of {key} is not a plain string literal"),
        }
        keys.push(key);
        js.skip_space_and_comments();
        js.eat(',');
    }
}

/// A dictionary's keys, checked to appear once each.
fn dictionary(body: &str, what: &str) -> BTreeSet<String> {
    let all = keys(body, what);
    let set: BTreeSet<String> = all.iter().cloned().collect();
    let mut twice: Vec<&String> = all.iter().filter(|k| all.iter().filter(|o| o == k).count() > 1).collect();
    twice.dedup();
    assert!(twice.is_empty(), "{what}: keys given twice (the last one wins): {twice:?}");
    set
}

/// The keys of every `t('…')` call with a literal key in a script (`t(`err.${code}`)` is skipped).
fn literal_t_keys(src: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (i, _) in src.match_indices("t(") {
        let before = src[..i].chars().next_back();
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '$' | '.')) {
            continue;
        }
        let mut js = Js::new(&src[i + 2..]);
        if let Some(Ok(key)) = js.string() {
            out.push(key);
        }
    }
    out
}

/// The `.js` files under a folder of `web/static`, recursively.
fn scripts(rel: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut dirs = vec![static_dir().join(rel)];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.expect("a readable folder entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "js") {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

fn missing<'a>(wanted: impl IntoIterator<Item = &'a String>, dict: &BTreeSet<String>) -> Vec<&'a String> {
    wanted.into_iter().filter(|k| !dict.contains(*k)).collect()
}

fn desk_dictionaries() -> (BTreeSet<String>, BTreeSet<String>) {
    let src = read("desk/i18n.js");
    (
        dictionary(braced(&src, "const pt = {", "desk/i18n.js"), "desk pt-BR"),
        dictionary(braced(&src, "const en = {", "desk/i18n.js"), "desk en"),
    )
}

fn widget_dictionaries() -> (BTreeSet<String>, BTreeSet<String>) {
    let src = read("webchat/chat.js");
    let texts = braced(&src, "const TEXTS = {", "webchat/chat.js");
    (
        dictionary(braced(texts, "pt: {", "webchat/chat.js"), "webchat pt"),
        dictionary(braced(texts, "en: {", "webchat/chat.js"), "webchat en"),
    )
}

fn widget_errors() -> (BTreeSet<String>, BTreeSet<String>) {
    let src = read("webchat/errors.js");
    let errors = braced(&src, "const ERRORS = {", "webchat/errors.js");
    (
        dictionary(braced(errors, "pt: {", "webchat/errors.js"), "webchat errors pt"),
        dictionary(braced(errors, "en: {", "webchat/errors.js"), "webchat errors en"),
    )
}

#[test]
fn every_error_code_has_a_desk_text_in_both_languages() {
    let (pt, en) = desk_dictionaries();
    let wanted: Vec<String> = Code::ALL.iter().map(|c| format!("err.{}", c.as_str())).collect();
    let (no_pt, no_en) = (missing(&wanted, &pt), missing(&wanted, &en));
    assert!(
        no_pt.is_empty() && no_en.is_empty(),
        "web/static/desk/i18n.js lacks texts for error codes: pt-BR {no_pt:?}, en {no_en:?}"
    );
}

#[test]
fn every_error_code_has_a_webchat_text_in_both_languages() {
    let (pt, en) = widget_errors();
    let wanted: Vec<String> = Code::ALL.iter().map(|c| c.as_str().to_owned()).collect();
    let (no_pt, no_en) = (missing(&wanted, &pt), missing(&wanted, &en));
    assert!(
        no_pt.is_empty() && no_en.is_empty(),
        "web/static/webchat/errors.js lacks texts for error codes: pt {no_pt:?}, en {no_en:?}"
    );
    let stale: Vec<&String> = pt.iter().chain(&en).filter(|k| Code::parse(k).is_none()).collect();
    assert!(stale.is_empty(), "web/static/webchat/errors.js has texts for codes the server no longer has: {stale:?}");
}

#[test]
fn the_desk_says_everything_in_both_languages() {
    let (pt, en) = desk_dictionaries();
    let (only_pt, only_en) = (missing(&pt, &en), missing(&en, &pt));
    assert!(
        only_pt.is_empty() && only_en.is_empty(),
        "desk/i18n.js: keys without an English text {only_pt:?}, keys without a pt-BR text {only_en:?}"
    );
    let mut unknown = Vec::new();
    for path in scripts("desk") {
        for key in literal_t_keys(&std::fs::read_to_string(&path).expect("a readable script")) {
            if !pt.contains(&key) || !en.contains(&key) {
                unknown.push(format!("{}: {key}", path.strip_prefix(static_dir()).unwrap_or(&path).display()));
            }
        }
    }
    assert!(unknown.is_empty(), "t() keys with no text in desk/i18n.js: {unknown:?}");
}

#[test]
fn the_widget_says_everything_in_both_languages() {
    let (pt, en) = widget_dictionaries();
    let (only_pt, only_en) = (missing(&pt, &en), missing(&en, &pt));
    assert!(
        only_pt.is_empty() && only_en.is_empty(),
        "webchat/chat.js TEXTS: keys without an English text {only_pt:?}, keys without a pt text {only_en:?}"
    );
    let (errors_pt, errors_en) = widget_errors();
    let (only_pt, only_en) = (missing(&errors_pt, &errors_en), missing(&errors_en, &errors_pt));
    assert!(
        only_pt.is_empty() && only_en.is_empty(),
        "webchat/errors.js: codes without an English text {only_pt:?}, codes without a pt text {only_en:?}"
    );
    let mut used = literal_t_keys(&read("webchat/chat.js"));
    let page = read("webchat/index.html");
    for attribute in ["data-i18n=\"", "data-i18n-label=\"", "data-i18n-placeholder=\""] {
        for (i, _) in page.match_indices(attribute) {
            let value = &page[i + attribute.len()..];
            used.push(value[..value.find('"').unwrap_or(value.len())].to_owned());
        }
    }
    let unknown: Vec<&String> = used.iter().filter(|k| !pt.contains(*k) || !en.contains(*k)).collect();
    assert!(unknown.is_empty(), "keys the widget shows with no text in chat.js TEXTS: {unknown:?}");
}

#[test]
fn the_reader_sees_what_it_must() {
    let src = "const d = {\n  'a.b': 'x', // note\n  c: \"it's\",\n  'd': `y`,\n};\nt('a.b'); at('no'); x.t('no'); t(`e.${k}`); t(\"c\")";
    assert_eq!(keys(braced(src, "const d = {", "test"), "test"), ["a.b", "c", "d"]);
    assert_eq!(literal_t_keys(src), ["a.b", "c"]);
}

#[test]
#[should_panic(expected = "not a `key: 'text'` entry")]
fn an_entry_the_reader_cannot_read_fails() {
    keys("'a': 'x',\n  ...other,\n", "test");
}

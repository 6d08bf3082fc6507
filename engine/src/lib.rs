//! The routing engine (SPEC.md R1-R18): one actor per logged-in agent and per queue, a
//! distributor that assigns, timers as actor messages, and an event feed of typed events the web
//! layer subscribes to. It persists through `schema` and knows nothing of HTTP or JSON.
//!
//! The rules live in [`book::RoutingBook`], a deterministic state machine over plain data; the
//! choice of agent is the pure function [`policy::choose_agent`]. The actors are the concurrency
//! shell around them: [`distributor`] owns the book, [`journal`] commits its events, [`agent`]
//! and [`queue`] are the per-entity actors, [`timers`] the deadlines (a conversation's timers
//! become the distributor's commands). What is sent the distributor is declared in [`messages`],
//! so the modules that send it need not know the distributor: no module imports one that imports
//! it back (checked by a test below).

pub mod agent;
pub mod book;
pub mod clock;
pub mod distributor;
pub mod engine;
pub mod error;
pub mod feed;
pub mod hours;
mod inbox;
pub mod ingest;
pub mod journal;
pub mod messages;
pub mod model;
pub mod policy;
pub mod queue;
pub mod restore;
pub mod stats;
pub mod timers;

pub use book::{By, Command, LogoffReason, PresenceRequest, Reply};
pub use clock::Clock;
pub use engine::{Engine, NewConversation};
pub use error::EngineError;
pub use feed::{EngineEvent, Feed, PublishedMessage};
pub use model::{AgentProfile, ConversationFacts, Presence, ServiceSettings, TransferTarget};
pub use stats::{EngineStats, Gauges, ServiceGauges};

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    /// The modules of `src/` and the modules each names through `crate::`, comments left out; a
    /// name the crate root re-exports (`crate::Engine`) counts as the module it comes from.
    fn module_graph() -> BTreeMap<String, BTreeSet<String>> {
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let code = |name: &str| {
            let text = std::fs::read_to_string(src.join(name)).unwrap_or_else(|e| panic!("reading {name}: {e}"));
            text.lines().map(|l| l.split("//").next().unwrap_or("")).collect::<Vec<_>>().join("\n")
        };
        let lib = code("lib.rs");
        let mut modules = BTreeSet::new();
        let mut reexports = BTreeMap::new();
        for line in lib.lines().map(str::trim) {
            if let Some(m) = line.strip_prefix("pub mod ").or_else(|| line.strip_prefix("mod ")) {
                // `mod name;` is a file of `src/`; `mod name {` is inline (these tests).
                modules.extend(m.strip_suffix(';').map(str::to_owned));
            }
            if let Some((m, names)) = line.strip_prefix("pub use ").and_then(|u| u.split_once("::")) {
                for name in names.trim_matches(|c| "{};".contains(c)).split(',') {
                    reexports.insert(name.trim().to_owned(), m.to_owned());
                }
            }
        }
        let ident = |s: &str| s.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect::<String>();
        let mut graph = BTreeMap::new();
        for module in &modules {
            let text = code(&format!("{module}.rs"));
            let mut named = BTreeSet::new();
            for (at, _) in text.match_indices("crate::") {
                let rest = &text[at + "crate::".len()..];
                // `crate::{a::X, b}`: every path at the group's top level.
                let first: Vec<String> = match rest.strip_prefix('{') {
                    Some(group) => {
                        let (mut depth, mut items, mut item) = (0, Vec::new(), String::new());
                        for c in group.chars() {
                            match c {
                                '{' => depth += 1,
                                '}' if depth == 0 => break,
                                '}' => depth -= 1,
                                ',' if depth == 0 => items.push(std::mem::take(&mut item)),
                                _ => {}
                            }
                            if depth == 0 && c != ',' {
                                item.push(c);
                            }
                        }
                        items.push(item);
                        items.iter().map(|i| ident(i.trim())).collect()
                    }
                    None => vec![ident(rest)],
                };
                for name in first {
                    let target = if modules.contains(&name) { Some(name) } else { reexports.get(&name).cloned() };
                    named.extend(target.filter(|t| t != module));
                }
            }
            graph.insert(module.clone(), named);
        }
        graph
    }

    /// A cycle in `graph`, as the modules around it.
    fn cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
        fn visit(
            m: &str,
            graph: &BTreeMap<String, BTreeSet<String>>,
            path: &mut Vec<String>,
            done: &mut BTreeSet<String>,
        ) -> Option<Vec<String>> {
            if let Some(i) = path.iter().position(|p| p == m) {
                let mut around = path[i..].to_vec();
                around.push(m.to_owned());
                return Some(around);
            }
            if done.contains(m) {
                return None;
            }
            path.push(m.to_owned());
            for next in graph.get(m).into_iter().flatten() {
                if let Some(c) = visit(next, graph, path, done) {
                    return Some(c);
                }
            }
            path.pop();
            done.insert(m.to_owned());
            None
        }
        let mut done = BTreeSet::new();
        graph.keys().find_map(|m| visit(m, graph, &mut Vec::new(), &mut done))
    }

    #[test]
    fn no_module_imports_one_that_imports_it_back() {
        let graph = module_graph();
        assert!(graph["distributor"].contains("messages") && graph["engine"].contains("distributor"), "{graph:?}");
        if let Some(around) = cycle(&graph) {
            panic!("import circle in engine/src: {}", around.join(" -> "));
        }
    }

    #[test]
    fn a_circle_is_found() {
        let graph = BTreeMap::from([
            ("a".to_owned(), BTreeSet::from(["b".to_owned()])),
            ("b".to_owned(), BTreeSet::from(["c".to_owned()])),
            ("c".to_owned(), BTreeSet::from(["a".to_owned()])),
        ]);
        assert_eq!(cycle(&graph).map(|c| c.join(" -> ")).as_deref(), Some("a -> b -> c -> a"));
    }
}

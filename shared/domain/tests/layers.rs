//! The domain crate's layers point one way: values, then commands and the aggregate, then the
//! reader that turns JSON into commands, then the application layer. No top-level module uses
//! one that uses it back, directly or through others (tests and doc links aside).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The top-level modules each top-level module names in its code (`crate::<module>`).
fn uses() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut uses: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut stack = vec![src.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("the source folder") {
            let path = entry.expect("a source entry").path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let relative = path.strip_prefix(&src).expect("below src");
            let first = relative.components().next().expect("a component");
            let module = first
                .as_os_str()
                .to_string_lossy()
                .trim_end_matches(".rs")
                .to_owned();
            if module == "lib" {
                continue;
            }
            let text = std::fs::read_to_string(&path).expect("a source file");
            // Test modules may reach anywhere.
            let code = text.split("#[cfg(test)]\nmod ").next().unwrap_or_default();
            for line in code.lines().filter(|l| !l.trim_start().starts_with("//")) {
                for (at, _) in line.match_indices("crate::") {
                    let name: String = line[at + 7..]
                        .chars()
                        .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                        .collect();
                    if !name.is_empty() && name != module {
                        uses.entry(module.clone()).or_default().insert(name);
                    }
                }
            }
        }
    }
    uses
}

/// Whether `from` reaches `to` through the modules it uses.
fn reaches(uses: &BTreeMap<String, BTreeSet<String>>, from: &str, to: &str) -> bool {
    let mut seen = BTreeSet::new();
    let mut next = vec![from.to_owned()];
    while let Some(module) = next.pop() {
        for used in uses.get(&module).into_iter().flatten() {
            if used == to {
                return true;
            }
            if seen.insert(used.clone()) {
                next.push(used.clone());
            }
        }
    }
    false
}

#[test]
fn no_top_level_module_uses_one_that_uses_it_back() {
    let uses = uses();
    assert!(
        uses.contains_key("order") && uses.contains_key("request"),
        "{uses:?}"
    );
    let circles: Vec<String> = uses
        .iter()
        .flat_map(|(module, used)| used.iter().map(move |u| (module, u)))
        .filter(|(module, used)| reaches(&uses, used, module))
        .map(|(module, used)| format!("{module} → {used} → … → {module}"))
        .collect();
    assert!(circles.is_empty(), "module circles: {circles:#?}");
}

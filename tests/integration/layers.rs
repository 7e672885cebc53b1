//! The library's shape, as docs/ARCHITECTURE.md draws it: every module of `src/` has a layer and
//! imports (`crate::…`) only its own layer or lower ones, the imports form no cycle, no file is
//! over 800 lines, and only the interface and the binary print, prompt or parse arguments.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// docs/ARCHITECTURE.md's table. A new module must be placed here.
const LAYERS: &[(&str, u8)] = &[
    // 0 values
    ("pages", 0),
    ("error", 0),
    ("validate", 0),
    ("config", 0),
    ("input", 0),
    ("item", 0),
    ("digest", 0),
    ("rate", 0),
    ("backoff", 0),
    ("estimate", 0),
    ("emf", 0),
    ("progress", 0),
    ("private", 0),
    // 1 AWS
    ("aws", 1),
    ("table", 1),
    ("calls", 1),
    ("watchers", 1),
    ("mappings", 1),
    ("objects", 1),
    ("export", 1),
    ("warm", 1),
    // 2 storage
    ("journal", 2),
    // 3 data plane
    ("sync", 3),
    ("verify", 3),
    ("targeted", 3),
    // 4 orchestration
    ("session", 4),
    ("options", 4),
    ("execution", 4),
    ("lifecycle", 4),
    ("machine", 4),
    ("restore", 4),
    ("table_sync", 4),
    ("recovery_mode", 4),
    ("check", 4),
    ("report", 4),
    ("iam", 4),
    ("stack", 4),
    ("worker", 4),
    // 5 interface
    ("commands", 5),
    ("output", 5),
    ("prompt", 5),
    // 6 binary
    ("cli", 6),
    ("lambda", 6),
];

/// What only layers 5 and 6 may do.
const INTERFACE_ONLY: &[&str] = &[
    "println!",
    "eprintln!",
    "print!(",
    "eprint!(",
    "clap::",
    "use clap",
    // Prompting; reading the seed's payload from stdin (`--input -`) is input, layer 0.
    ".read_line(",
];

const MAX_LINES: usize = 800;
/// A function a newcomer reads at once.
const MAX_FUNCTION_LINES: usize = 80;
/// Written above a function that is a table of data, which may be longer.
const DATA_TABLE: &str = "// A table of data";

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs")
            && path.file_name().is_some_and(|n| n != "tests.rs")
        {
            // A module's unit tests in a file of their own, as inline ones, may reach anywhere.
            out.push(path);
        }
    }
}

/// The top-level module a file of `src/` belongs to (`restore/job.rs`: `restore`).
fn module_of(path: &Path) -> String {
    let rel = path.strip_prefix(src_dir()).expect("under src");
    let first = rel.components().next().expect("a component");
    first
        .as_os_str()
        .to_string_lossy()
        .trim_end_matches(".rs")
        .to_string()
}

/// The code of a file without its unit tests and comments: tests may reach anywhere.
fn code(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(i) => &text[..i],
        None => text,
    };
    text.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The top-level modules a piece of code names through `crate::`, including every name of a
/// `use crate::{a, b::{c, d}}` group.
fn references(code: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        rest = &rest[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 1;
            let mut current = String::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    _ => {}
                }
                if depth == 0 || (depth == 1 && c == ',') {
                    found.insert(first_name(&current));
                    current.clear();
                    if depth == 0 {
                        break;
                    }
                } else {
                    current.push(c);
                }
            }
        } else {
            found.insert(first_name(rest));
        }
    }
    // `crate::Error` and friends are the error module's, re-exported at the root.
    let renamed = found.into_iter().map(|n| match n.as_str() {
        "Error" | "Result" | "ExitStatus" => "error".to_string(),
        _ => n,
    });
    renamed.filter(|n| !n.is_empty() && n != "self").collect()
}

fn first_name(path: &str) -> String {
    path.trim()
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect()
}

/// A cycle in `graph`, as the modules along it, if there is one.
fn cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|n| n == node) {
            let mut found = path[i..].to_vec();
            found.push(node.to_string());
            return Some(found);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(c) = visit(next, graph, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|n| visit(n, graph, &mut Vec::new(), &mut done))
}

struct Tree {
    /// By module: the modules it imports.
    imports: BTreeMap<String, BTreeSet<String>>,
    files: Vec<(PathBuf, String)>,
}

fn tree() -> Tree {
    let mut paths = Vec::new();
    rust_files(&src_dir(), &mut paths);
    paths.sort();
    let mut imports: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut files = Vec::new();
    for path in paths {
        let text = std::fs::read_to_string(&path).expect("read");
        let module = module_of(&path);
        if module != "lib" && module != "main" {
            let refs = references(&code(&text));
            imports
                .entry(module.clone())
                .or_default()
                .extend(refs.into_iter().filter(|r| *r != module));
        }
        files.push((path, text));
    }
    Tree { imports, files }
}

fn layer(module: &str) -> Option<u8> {
    LAYERS.iter().find(|(m, _)| *m == module).map(|(_, l)| *l)
}

#[test]
fn every_module_imports_only_its_own_layer_or_lower_ones() {
    let tree = tree();
    let mut wrong = Vec::new();
    for (module, refs) in &tree.imports {
        let Some(own) = layer(module) else {
            wrong.push(format!(
                "{module} has no layer: add it to LAYERS and docs/ARCHITECTURE.md"
            ));
            continue;
        };
        for r in refs {
            match layer(r) {
                Some(l) if l > own => {
                    wrong.push(format!("{module} (layer {own}) imports {r} (layer {l})"))
                }
                Some(_) => {}
                None => wrong.push(format!("{module} imports {r}, which has no layer")),
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "upward imports:\n  {}",
        wrong.join("\n  ")
    );
}

#[test]
fn the_modules_import_each_other_in_no_cycle() {
    let tree = tree();
    assert_eq!(cycle(&tree.imports), None);
}

#[test]
fn no_source_file_is_over_800_lines() {
    let long: Vec<String> = tree()
        .files
        .iter()
        .filter(|(_, text)| text.lines().count() > MAX_LINES)
        .map(|(p, text)| format!("{} ({} lines)", p.display(), text.lines().count()))
        .collect();
    assert!(long.is_empty(), "over {MAX_LINES} lines: {long:?}");
}

/// The functions of `text` (outside its test module) over [`MAX_FUNCTION_LINES`], as
/// `name (lines)`: from the `fn` line to the line that closes its body, counting braces.
fn long_functions(text: &str) -> Vec<String> {
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(i) => &text[..i],
        None => text,
    };
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let Some(at) = line.find("fn ") else { continue };
        let head = line[..at].trim();
        let is_fn = [
            "",
            "pub",
            "pub(crate)",
            "pub(super)",
            "async",
            "pub async",
            "pub(crate) async",
            "const",
            "pub const",
            "unsafe",
        ]
        .contains(&head);
        let exempt = i > 0
            && lines[..i]
                .iter()
                .rev()
                .take(3)
                .any(|l| l.contains(DATA_TABLE));
        if !is_fn || exempt || line.trim_end().ends_with(';') {
            continue;
        }
        let name: String = line[at + 3..]
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        let (mut depth, mut opened) = (0i64, false);
        for (j, l) in lines[i..].iter().enumerate() {
            depth += l.matches('{').count() as i64 - l.matches('}').count() as i64;
            opened |= l.contains('{');
            if opened && depth <= 0 {
                if j + 1 > MAX_FUNCTION_LINES {
                    out.push(format!("{name} ({} lines)", j + 1));
                }
                break;
            }
        }
    }
    out
}

#[test]
fn no_function_is_over_80_lines() {
    let mut long = BTreeSet::new();
    for (p, text) in &tree().files {
        let rel = p
            .strip_prefix(src_dir())
            .expect("under src")
            .display()
            .to_string();
        for f in long_functions(text) {
            long.insert(format!("{rel} {f}"));
        }
    }
    assert!(
        long.is_empty(),
        "functions over {MAX_FUNCTION_LINES} lines (split them, or mark a table of data with \
         `{DATA_TABLE}`): {long:#?}"
    );
    let sample = format!(
        "fn short() {{\n}}\nfn long() {{\n{}}}\n",
        "    x();\n".repeat(80)
    );
    assert_eq!(long_functions(&sample), ["long (82 lines)"]);
}

#[test]
fn only_the_interface_prints_prompts_or_parses_arguments() {
    let mut wrong = Vec::new();
    for (path, text) in &tree().files {
        let module = module_of(path);
        if matches!(layer(&module), Some(5..)) || module == "lib" || module == "main" {
            continue;
        }
        for needle in INTERFACE_ONLY {
            if code(text).contains(needle) {
                wrong.push(format!("{} uses {needle}", path.display()));
            }
        }
    }
    assert!(wrong.is_empty(), "{wrong:?}");
}

#[test]
fn no_function_takes_too_many_arguments() {
    let wrong: Vec<String> = tree()
        .files
        .iter()
        .filter(|(_, text)| text.contains("clippy::too_many_arguments"))
        .map(|(p, _)| p.display().to_string())
        .collect();
    assert!(
        wrong.is_empty(),
        "pass the resolved options instead: {wrong:?}"
    );
}

#[test]
fn the_checker_sees_groups_upward_imports_and_cycles() {
    let refs = references(
        "use crate::{aws, journal::{self, Execution}, Error};\nuse crate::sync::Item;\n\
         let x = crate::verify::check();",
    );
    let want: BTreeSet<String> = ["aws", "journal", "error", "sync", "verify"]
        .map(String::from)
        .into();
    assert_eq!(refs, want);
    assert!(code("use crate::a;\n#[cfg(test)]\nmod tests { use crate::b; }").contains("crate::a"));
    assert!(!code("// crate::b\nuse crate::a;").contains("crate::b"));
    let graph: BTreeMap<String, BTreeSet<String>> = [
        ("a".to_string(), ["b".to_string()].into()),
        ("b".to_string(), ["c".to_string()].into()),
        ("c".to_string(), ["a".to_string()].into()),
    ]
    .into();
    assert_eq!(
        cycle(&graph),
        Some(["a", "b", "c", "a"].map(String::from).to_vec())
    );
    let acyclic: BTreeMap<String, BTreeSet<String>> =
        [("a".to_string(), ["b".to_string()].into())].into();
    assert_eq!(cycle(&acyclic), None);
}

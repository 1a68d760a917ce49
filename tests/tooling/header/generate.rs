//! Generates `include/rrpc.h`: cbindgen (configured by `cbindgen.toml`) reads the
//! doc-commented declarations of `src/ffi/`, and this module puts its output in
//! the reader's order.
//!
//! cbindgen emits by kind (constants, enums, structs, functions). Here every item
//! is assigned to a family by its name ([`FAMILIES`]) and the header becomes: the
//! opening comment, a contents block, then one Doxygen group per family, in
//! reading order, holding that family's constants, enums, opaque types, structs
//! and callback types (in cbindgen's order, which declares a type before the
//! types that use it) and then its functions. The whole body is one `extern "C"`
//! block. An item that no family claims, a type used before the header declares
//! it (other than through a pointer to a struct, which gets a forward
//! declaration), or a main function of the contents that does not exist, is an
//! error of the generator.

use std::collections::{HashMap, HashSet};
use std::path::Path;

/// One section of the header.
struct Family {
    /// The Doxygen group (`@defgroup`), the target of the contents' links.
    group: &'static str,
    title: &'static str,
    /// One line: what the family is for.
    brief: &'static str,
    /// What the section says before its items: how the family is used, and for a
    /// family without an opaque type, its thread rules (the others state them on
    /// their opaque type).
    intro: &'static str,
    /// Names the family claims: an item belongs to the family with the longest
    /// matching prefix (a macro's name is compared in lower case).
    prefixes: &'static [&'static str],
    /// What the contents block lists for the family, its main functions: names,
    /// or `prefix{a, b}` for `prefixa` and `prefixb`.
    main: &'static [&'static str],
}

/// The families in reading order.
const FAMILIES: &[Family] = &[
    Family {
        group: "library",
        title: "Library-wide",
        brief: "Version, features, statuses, the last error, logging, the clock, dialects (names, registering your own).",
        intro: "Every function of this section may be called from any thread, at any time.",
        prefixes: &[
            "rrpc_version",
            "rrpc_nodiscard",
            "rrpc_has_field",
            "rrpc_feature",
            "rrpc_status",
            "rrpc_last_error_message",
            "rrpc_log_",
            "rrpc_set_log_handler",
            "rrpc_monotonic_ms",
            "rrpc_dialect",
        ],
        main: &["rrpc_{version, features, status_str, last_error_message}"],
    },
    Family {
        group: "mqtt",
        title: "MQTT settings and connection events",
        brief: "How the device client and the caller reach their broker, and what they report \
                about the connection.",
        intro: "`rrpc_mqtt_config` is shared by `rrpc_client_config.mqtt` and \
                `rrpc_caller_config.mqtt`; connection events go to the callback each of them \
                registers. `rrpc_mqtt_config_init` may be called from any thread.",
        prefixes: &["rrpc_mqtt_", "rrpc_connection_", "rrpc_disconnect_"],
        main: &["rrpc_mqtt_config_init", "rrpc_connection_cb"],
    },
    Family {
        group: "client",
        title: "Device client",
        brief: "One MQTT connection serving one or more devices: receive requests, send replies.",
        intro: "`rrpc_request`, the request a device receives, is shared with the router. \
                Threads: see `rrpc_client`.",
        prefixes: &["rrpc_client", "rrpc_request"],
        main: &["rrpc_client_{new, add_device, set_request_callback, start, reply}"],
    },
    Family {
        group: "router",
        title: "Router",
        brief: "The RRPC core for applications with their own MQTT stack: no I/O, no threads, \
                no clock.",
        intro: "Threads: see `rrpc_router`.",
        prefixes: &["rrpc_router", "rrpc_message_kind", "rrpc_filter_mode"],
        main: &["rrpc_router_{new, set_publish, add_device, handle_message, reply, tick}"],
    },
    Family {
        group: "credentials",
        title: "Credentials",
        brief: "Signed MQTT credentials of the clouds (Alibaba device secret, Tencent PSK).",
        intro: "Pure functions: no state, no I/O; any thread, at any time. Their output, \
                `rrpc_credentials`, is also what the sign callback of `rrpc_mqtt_config` fills.",
        prefixes: &["rrpc_credentials", "rrpc_sign_method"],
        main: &["rrpc_credentials_{alibaba, tencent}"],
    },
    Family {
        group: "caller",
        title: "Caller and responses",
        brief: "The cloud side: call devices and read the RRpc API's responses.",
        intro: "Threads: see `rrpc_caller`. An `rrpc_response` belongs to the thread that \
                received it until it passes it on or frees it.",
        prefixes: &["rrpc_caller", "rrpc_response", "rrpc_code"],
        main: &[
            "rrpc_caller_{new, call, call_async}",
            "rrpc_response_to_json",
        ],
    },
    Family {
        group: "jt808_codec",
        title: "JT/T 808 codec",
        brief: "JT/T 808 frames: a streaming decoder for a TCP connection, and an encoder.",
        intro: "`rrpc_jt808_encode` and `rrpc_jt808_phone_from_digits` are pure: any thread, at \
                any time. Threads of a decoder: see `rrpc_jt808_decoder`.",
        prefixes: &["rrpc_jt808_"],
        main: &["rrpc_jt808_decoder_{new, push, next}", "rrpc_jt808_encode"],
    },
    Family {
        group: "jt808_adapter",
        title: "JT/T 808 adapter",
        brief: "Pass-through RRPC for JT/T 808 terminals: cloud requests become 0x8900 frames, \
                0x0900 frames become replies.",
        intro: "Threads: see `rrpc_jt808_adapter`.",
        prefixes: &[
            "rrpc_jt808_adapter",
            "rrpc_jt808_event",
            "rrpc_jt808_completion",
            "rrpc_jt808_busy",
            "rrpc_jt808_reply_kind",
            "rrpc_jt808_reassembly",
        ],
        main: &["rrpc_jt808_adapter_{new, submit, on_bytes, tick}"],
    },
];

/// The Doxygen group of every section, in reading order.
pub fn groups() -> Vec<&'static str> {
    FAMILIES.iter().map(|f| f.group).collect()
}

/// The version macros and the macros the declarations use: the first items of
/// the library-wide section.
fn prologue() -> String {
    format!(
        r#"/**
 * The version of this header, as "major.minor.patch"; `rrpc_version()` is the
 * library's.
 */
#define RRPC_VERSION "{version}"

/**
 * The major version of this header: the `N` of the soname `librrpc.so.N`.
 */
#define RRPC_VERSION_MAJOR {major}

/**
 * The minor version of this header.
 */
#define RRPC_VERSION_MINOR {minor}

/**
 * The patch version of this header.
 */
#define RRPC_VERSION_PATCH {patch}

/**
 * Marks every function that returns an rrpc_status: ignoring the status is a
 * compiler warning. To drop one on purpose, test it:
 * `if (rrpc_client_free(client) != RRPC_STATUS_OK) {{ ... }}`.
 */
#if defined(__cplusplus) && __cplusplus >= 201703L
#define RRPC_NODISCARD [[nodiscard]]
#elif !defined(__cplusplus) && defined(__STDC_VERSION__) && __STDC_VERSION__ >= 202311L
#define RRPC_NODISCARD [[nodiscard]]
#elif defined(__GNUC__) || defined(__clang__)
#define RRPC_NODISCARD __attribute__((warn_unused_result))
#else
#define RRPC_NODISCARD
#endif

/**
 * Whether a struct the library handed over (`rrpc_request`,
 * `rrpc_connection_event`, `rrpc_jt808_event`: they start with `struct_size`)
 * has `field`: true when the library that made it knows the field.
 *
 * @param ptr   the struct (a pointer).
 * @param type  its type, such as `rrpc_request`.
 * @param field the field asked about.
 */
#define RRPC_HAS_FIELD(ptr, type, field) \
    ((size_t)(ptr)->struct_size >= offsetof(type, field) + sizeof(((type *)0)->field))"#,
        version = env!("CARGO_PKG_VERSION"),
        major = env!("CARGO_PKG_VERSION_MAJOR"),
        minor = env!("CARGO_PKG_VERSION_MINOR"),
        patch = env!("CARGO_PKG_VERSION_PATCH"),
    )
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Constant,
    Enum,
    Opaque,
    /// A struct or a callback typedef: cbindgen orders them together, a type
    /// before the types that use it.
    Type,
    Function,
}

struct Item {
    kind: Kind,
    name: String,
    /// The item as cbindgen wrote it, its doc comment included.
    text: String,
}

/// The header, generated from the crate in `crate_dir`.
pub fn generate(crate_dir: &Path) -> Result<String, String> {
    let config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml"))
        .map_err(|e| format!("cbindgen.toml: {e}"))?;
    let bindings = cbindgen::Builder::new()
        .with_crate(crate_dir)
        .with_config(config)
        .generate()
        .map_err(|e| format!("cbindgen: {e}"))?;
    let mut raw = Vec::new();
    bindings.write(&mut raw);
    let raw = String::from_utf8(raw).map_err(|e| format!("cbindgen wrote non-UTF-8: {e}"))?;
    arrange(&raw)
}

/// cbindgen's output (opening comment, include guard, includes, items, closing
/// guard) rearranged into sections.
pub fn arrange(raw: &str) -> Result<String, String> {
    let lines: Vec<&str> = raw.lines().collect();
    let last_include = lines
        .iter()
        .rposition(|l| l.starts_with("#include "))
        .ok_or("cbindgen's output has no #include")?;
    let guard_end = lines
        .iter()
        .rposition(|l| l.starts_with("#endif"))
        .ok_or("cbindgen's output has no closing #endif")?;
    let prefix = lines[..=last_include].join("\n");
    // Without cbindgen's own extern "C" block around the functions.
    let mut body_lines: Vec<&str> = Vec::new();
    for line in &lines[last_include + 1..guard_end] {
        let t = line.trim();
        if t == "extern \"C\" {" || t.starts_with("}  // extern \"C\"") {
            match body_lines.pop() {
                Some(l) if l.trim() == "#ifdef __cplusplus" => {}
                _ => return Err("cbindgen's extern \"C\" is not inside #ifdef __cplusplus".into()),
            }
            body_lines.push("#ifdef __cplusplus_extern_c");
        } else if body_lines.last() == Some(&"#ifdef __cplusplus_extern_c") {
            if !t.starts_with("#endif") {
                return Err("cbindgen's extern \"C\" is not followed by #endif".into());
            }
            body_lines.pop();
        } else {
            body_lines.push(line);
        }
    }
    let body = body_lines.join("\n");
    let trailer = lines[guard_end..].join("\n");

    let mut items = vec![Item {
        kind: Kind::Constant,
        name: "RRPC_VERSION".into(),
        text: prologue(),
    }];
    for chunk in chunks(&body)? {
        let mut item = classify(&chunk)?;
        if item.kind == Kind::Enum {
            item.text = document_enum_typedef(&item)?;
        }
        items.push(item);
    }

    // Family of every item, by the longest matching prefix.
    let mut sections: Vec<Vec<&Item>> = FAMILIES.iter().map(|_| Vec::new()).collect();
    let mut unknown = Vec::new();
    for item in &items {
        let lower = item.name.to_lowercase();
        let family = FAMILIES
            .iter()
            .enumerate()
            .flat_map(|(i, f)| f.prefixes.iter().map(move |p| (i, *p)))
            .filter(|(_, p)| lower.starts_with(p))
            .max_by_key(|(_, p)| p.len())
            .map(|(i, _)| i);
        match family {
            Some(i) => sections[i].push(item),
            None => unknown.push(item.name.clone()),
        }
    }
    if !unknown.is_empty() {
        return Err(format!(
            "no family of tests/tooling/header/generate.rs (FAMILIES) claims {unknown:?}: add a prefix \
             to the family the item belongs to"
        ));
    }
    for section in &mut sections {
        section.sort_by_key(|item| item.kind); // stable: cbindgen's order within a kind
    }

    // Forward declarations go at the top of the section whose item needs them.
    let order: Vec<(usize, &Item)> = sections
        .iter()
        .enumerate()
        .flat_map(|(s, items)| items.iter().map(move |i| (s, *i)))
        .collect();
    let mut forward: Vec<Vec<String>> = FAMILIES.iter().map(|_| Vec::new()).collect();
    for (n, name) in forward_declarations(&order.iter().map(|(_, i)| *i).collect::<Vec<_>>())? {
        forward[order[n].0].push(name);
    }

    let declared: HashSet<&str> = items.iter().map(|i| i.name.as_str()).collect();
    for f in FAMILIES {
        for m in f.main.iter().flat_map(|m| expand(m)) {
            if !declared.contains(m.as_str()) {
                return Err(format!(
                    "the contents list {m} under \"{}\", but the header declares no such name",
                    f.title
                ));
            }
        }
    }

    let mut out = String::new();
    out.push_str(&prefix);
    out.push_str("\n\n");
    out.push_str(&contents()?);
    out.push_str("\n\n#ifdef __cplusplus\nextern \"C\" {\n#endif\n");
    for (i, (family, section)) in FAMILIES.iter().zip(&sections).enumerate() {
        out.push('\n');
        out.push_str(&group_open(i + 1, family));
        if !forward[i].is_empty() {
            out.push_str("\n\n/* Defined in a later section; used here only through pointers. */");
            for name in &forward[i] {
                out.push_str(&format!("\nstruct {name};"));
            }
        }
        for item in section {
            out.push_str("\n\n");
            out.push_str(&item.text);
        }
        out.push_str("\n\n/** @} */\n");
    }
    out.push_str("\n#ifdef __cplusplus\n}  /* extern \"C\" */\n#endif\n\n");
    out.push_str(&trailer);
    out.push('\n');
    Ok(out)
}

/// Splits cbindgen's body into items: blank lines outside braces, comments and
/// preprocessor conditionals separate them.
fn chunks(body: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut current: Vec<&str> = Vec::new();
    let mut braces = 0i32;
    let mut conditionals = 0i32;
    let mut in_comment = false;
    for line in body.lines() {
        if line.trim().is_empty() && braces == 0 && conditionals == 0 && !in_comment {
            if !current.is_empty() {
                out.push(current.join("\n"));
                current.clear();
            }
            continue;
        }
        current.push(line);
        let code = strip_comments(line, &mut in_comment);
        let t = code.trim_start();
        if t.starts_with("#if") {
            conditionals += 1;
        } else if t.starts_with("#endif") {
            conditionals -= 1;
        }
        braces += code.matches('{').count() as i32 - code.matches('}').count() as i32;
    }
    if !current.is_empty() {
        out.push(current.join("\n"));
    }
    if braces != 0 || conditionals != 0 || in_comment {
        return Err("cbindgen's output has unbalanced braces, #if or comments".into());
    }
    Ok(out)
}

/// The code of one line without its comments; `in_comment` carries a `/* */`
/// comment over to the next line.
fn strip_comments(line: &str, in_comment: &mut bool) -> String {
    let mut out = String::new();
    let mut rest = line;
    loop {
        if *in_comment {
            match rest.find("*/") {
                Some(end) => {
                    rest = &rest[end + 2..];
                    *in_comment = false;
                }
                None => return out,
            }
        } else {
            let block = rest.find("/*");
            let line_comment = rest.find("//");
            match (block, line_comment) {
                (Some(b), l) if !matches!(l, Some(l) if l < b) => {
                    out.push_str(&rest[..b]);
                    rest = &rest[b + 2..];
                    *in_comment = true;
                }
                (_, Some(l)) => {
                    out.push_str(&rest[..l]);
                    return out;
                }
                _ => {
                    out.push_str(rest);
                    return out;
                }
            }
        }
    }
}

/// The code of an item without its comments.
fn code_of(text: &str) -> String {
    let mut in_comment = false;
    text.lines()
        .map(|l| strip_comments(l, &mut in_comment))
        .collect::<Vec<_>>()
        .join("\n")
}

fn identifiers(code: &str) -> Vec<&str> {
    code.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '*'))
        .flat_map(|w| {
            // `*` separates too, but is kept as its own token (pointer or not).
            let mut parts = Vec::new();
            let mut rest = w;
            while let Some(star) = rest.find('*') {
                if star > 0 {
                    parts.push(&rest[..star]);
                }
                parts.push("*");
                rest = &rest[star + 1..];
            }
            if !rest.is_empty() {
                parts.push(rest);
            }
            parts
        })
        .filter(|w| !w.is_empty())
        .collect()
}

fn classify(chunk: &str) -> Result<Item, String> {
    let code = code_of(chunk);
    let words = identifiers(&code);
    let decl = code.trim_start();
    let err = || format!("cannot tell what this cbindgen item is:\n{chunk}");
    let (kind, name) = if let Some(rest) = decl.strip_prefix("#define ") {
        let name = rest
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .next()
            .ok_or_else(err)?;
        (Kind::Constant, name.to_owned())
    } else if decl.starts_with("enum ") {
        (Kind::Enum, words.get(1).ok_or_else(err)?.to_string())
    } else if decl.starts_with("typedef struct ") {
        let name = words.get(2).ok_or_else(err)?.to_string();
        if decl.contains('{') {
            (Kind::Type, name)
        } else {
            (Kind::Opaque, name)
        }
    } else if decl.starts_with("typedef ") && decl.contains("(*") {
        let start = decl.find("(*").ok_or_else(err)? + 2;
        let len = decl[start..].find(')').ok_or_else(err)?;
        (Kind::Type, decl[start..start + len].trim().to_owned())
    } else if let Some(open) = decl.find('(') {
        let name = identifiers(&decl[..open])
            .last()
            .ok_or_else(err)?
            .to_string();
        (Kind::Function, name)
    } else {
        return Err(err());
    };
    Ok(Item {
        kind,
        name,
        text: chunk.to_owned(),
    })
}

/// The structs that an item names through a pointer before the item that
/// defines them, each with the position of the first item that does; any other
/// use of a name before its definition is an error.
fn forward_declarations(order: &[&Item]) -> Result<Vec<(usize, String)>, String> {
    let position: HashMap<&str, usize> = order
        .iter()
        .enumerate()
        .filter(|(_, i)| i.kind != Kind::Function)
        .map(|(n, i)| (i.name.as_str(), n))
        .collect();
    let mut forward = Vec::new();
    for (n, item) in order.iter().enumerate() {
        let code = code_of(&item.text);
        let words = identifiers(&code);
        for (w, word) in words.iter().enumerate() {
            let Some(&defined) = position.get(word) else {
                continue;
            };
            if defined <= n || *word == item.name {
                continue;
            }
            let after_struct = w > 0 && words[w - 1] == "struct";
            let pointer = words.get(w + 1) == Some(&"*");
            if after_struct && pointer {
                if !forward.iter().any(|(_, f)| f == word) {
                    forward.push((n, word.to_string()));
                }
            } else {
                return Err(format!(
                    "{} uses {word} before the header declares it (its family comes later): \
                     move one of them in FAMILIES of tests/tooling/header/generate.rs",
                    item.name
                ));
            }
        }
    }
    Ok(forward)
}

/// An enum with a doc comment on the typedef that C uses for it (cbindgen's
/// `#ifndef __cplusplus` block: the enum in C23, a `uint32_t` before).
fn document_enum_typedef(item: &Item) -> Result<String, String> {
    let marker = "#ifndef __cplusplus\n";
    let at = item.text.find(marker).ok_or_else(|| {
        format!(
            "enum {}: no #ifndef __cplusplus typedef after it",
            item.name
        )
    })? + marker.len();
    Ok(format!(
        "{}/** `{name}` in C: the enum in C23 (as in C++), a uint32_t before; the same size. */\n{}",
        &item.text[..at],
        &item.text[at..],
        name = item.name
    ))
}

/// `prefix{a, b}` as `prefixa`, `prefixb`; a plain name as itself.
fn expand(main: &str) -> Vec<String> {
    match main.split_once('{') {
        Some((prefix, rest)) => rest
            .trim_end_matches('}')
            .split(',')
            .map(|s| format!("{prefix}{}", s.trim()))
            .collect(),
        None => vec![main.to_owned()],
    }
}

/// The contents block: the families in reading order, one line each with its
/// main functions.
fn contents() -> Result<String, String> {
    let mut out = format!(
        "/**\n * @file rrpc.h\n * @brief The C API of librrpc {}.\n *\n \
         * Contents, one section each, in reading order:\n",
        env!("CARGO_PKG_VERSION")
    );
    for (i, f) in FAMILIES.iter().enumerate() {
        let line = format!(
            " * {}. @ref {} \"{}\": {}",
            i + 1,
            f.group,
            f.title,
            f.main.join(", ")
        );
        if line.len() > 100 {
            return Err(format!(
                "the contents line of \"{}\" is longer than 100 columns: list fewer functions",
                f.title
            ));
        }
        out.push_str(&line);
        out.push('\n');
    }
    out.push_str(" */");
    Ok(out)
}

fn group_open(number: usize, f: &Family) -> String {
    let mut out = String::from(
        "/* ============================================================================ */\n",
    );
    out.push_str(&format!(
        "/**\n * @defgroup {} {number}. {}\n",
        f.group, f.title
    ));
    out.push_str(&wrap(&format!(" * @brief {}", f.brief), " *        "));
    out.push_str("\n *\n");
    out.push_str(&wrap(&format!(" * {}", f.intro), " * "));
    out.push_str("\n * @{\n */");
    out
}

/// `line` wrapped at 100 columns, continuation lines starting with `indent`
/// (which holds the ` * ` of a comment).
fn wrap(line: &str, indent: &str) -> String {
    const WIDTH: usize = 100;
    let body = line.trim_start();
    let mut out = String::new();
    let mut current = line[..line.len() - body.len()].to_owned();
    let mut first = true;
    for word in body.split(' ') {
        if !first && current.len() + 1 + word.len() > WIDTH {
            out.push_str(current.trim_end());
            out.push('\n');
            current = format!("{indent}{word}");
        } else {
            if !first {
                current.push(' ');
            }
            current.push_str(word);
        }
        first = false;
    }
    out.push_str(&current);
    out
}

//! Flow file → validated [`Flow`]: TOML with spans, then every cross-reference checked,
//! each error as `file:line: reason`.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;

use serde::Deserialize;
use toml::Spanned;

use super::slots::{SLOT_KINDS, SlotKind};
use super::template::Template;
use super::{
    DEFAULT_MAX_REPROMPTS, DEFAULT_MIN_CONFIDENCE, DEFAULT_SENSITIVE_MIN_CONFIDENCE, Flow,
    FlowError, Handlers, Intent, Settings, State, ToolTemplate, Transition, Words,
};
use crate::agent::tools::{ToolCall, tool_names, tool_spec};

/// Keys allowed on DTMF.
const DTMF_KEYS: &str = "0123456789*#ABCD";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    flow: RawSettings,
    #[serde(default)]
    vars: BTreeMap<Spanned<String>, Spanned<String>>,
    #[serde(default)]
    intents: BTreeMap<Spanned<String>, RawIntent>,
    #[serde(default)]
    slots: BTreeMap<Spanned<String>, RawSlot>,
    #[serde(default)]
    global: RawHandlers,
    states: BTreeMap<Spanned<String>, RawState>,
    /// Pipeline stage tables of the agent file, validated by `agent::config`.
    #[serde(default, rename = "stt")]
    _stt: Option<toml::Value>,
    /// See `_stt`.
    #[serde(default, rename = "llm")]
    _llm: Option<toml::Value>,
    /// See `_stt`.
    #[serde(default, rename = "tts")]
    _tts: Option<toml::Value>,
    /// Turn-taking settings of the agent file, validated by `agent::config`.
    #[serde(default, rename = "vad")]
    _vad: Option<toml::Value>,
    /// See `_vad`.
    #[serde(default, rename = "barge_in")]
    _barge_in: Option<toml::Value>,
    /// See `_vad`.
    #[serde(default, rename = "greeting_wait")]
    _greeting_wait: Option<toml::Value>,
    /// See `_vad`.
    #[serde(default, rename = "hello_timeout_ms")]
    _hello_timeout_ms: Option<toml::Value>,
    /// See `_vad`.
    #[serde(default, rename = "no_input_ms")]
    _no_input_ms: Option<toml::Value>,
    /// The transfer settings, validated by `agent::config`.
    #[serde(default, rename = "transfer")]
    _transfer: Option<toml::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSettings {
    name: Option<String>,
    start: Spanned<String>,
    min_confidence: Option<Spanned<f32>>,
    sensitive_min_confidence: Option<Spanned<f32>>,
    max_reprompts: Option<u32>,
    reprompt: Option<Spanned<String>>,
    give_up: Option<RawTransition>,
    transfer_failed: Option<RawTransition>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIntent {
    #[serde(default)]
    phrases: Vec<Spanned<String>>,
    #[serde(default)]
    slots: Vec<Spanned<String>>,
    #[serde(default)]
    sensitive: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSlot {
    kind: Spanned<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawHandlers {
    #[serde(default)]
    on: BTreeMap<Spanned<String>, RawTransition>,
    #[serde(default)]
    dtmf: BTreeMap<Spanned<String>, Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawState {
    say: Spanned<String>,
    reask: Option<Spanned<String>>,
    reprompt: Option<Spanned<String>>,
    max_reprompts: Option<u32>,
    #[serde(default)]
    on: BTreeMap<Spanned<String>, RawTransition>,
    #[serde(default)]
    dtmf: BTreeMap<Spanned<String>, Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTransition {
    say: Option<Spanned<String>>,
    goto: Option<Spanned<String>>,
    #[serde(default)]
    tools: Vec<Spanned<toml::Table>>,
}

/// Turns spans into `file:line: reason` errors.
struct Ctx<'a> {
    src: &'a str,
    file: &'a str,
}

impl Ctx<'_> {
    fn err(&self, span: Range<usize>, reason: impl Into<String>) -> FlowError {
        FlowError::Invalid {
            file: self.file.to_owned(),
            line: line_of(self.src, span.start),
            reason: reason.into(),
        }
    }

    fn template(&self, s: &Spanned<String>) -> Result<Template, FlowError> {
        Template::parse(s.get_ref()).map_err(|reason| self.err(s.span(), reason))
    }
}

/// 1-based line of byte offset `pos`.
fn line_of(src: &str, pos: usize) -> usize {
    let pos = pos.min(src.len());
    src.as_bytes()[..pos]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// Everything a template may name, for validating it.
struct Names<'a> {
    vars: &'a BTreeSet<String>,
    slots: &'a BTreeSet<String>,
}

pub(super) fn parse(src: &str, file: &str) -> Result<Flow, FlowError> {
    let ctx = Ctx { src, file };
    let raw: RawFile = toml::from_str(src).map_err(|e| {
        let span = e.span().unwrap_or(0..0);
        ctx.err(span, e.message().trim_end().to_owned())
    })?;

    let var_names: BTreeSet<String> = raw.vars.keys().map(|k| k.get_ref().clone()).collect();
    let slot_names: BTreeSet<String> = raw.slots.keys().map(|k| k.get_ref().clone()).collect();
    let names = Names {
        vars: &var_names,
        slots: &slot_names,
    };

    let mut vars = BTreeMap::new();
    for (key, value) in &raw.vars {
        let t = ctx.template(value)?;
        check_names(&ctx, value.span(), &t, &names)?;
        vars.insert(key.get_ref().clone(), t);
    }
    check_var_cycles(&ctx, &raw.vars, &vars)?;

    let mut slots = BTreeMap::new();
    for (key, slot) in &raw.slots {
        let kind = SlotKind::from_name(slot.kind.get_ref()).ok_or_else(|| {
            ctx.err(
                slot.kind.span(),
                format!(
                    "slot {:?}: unknown kind {:?} (known: {})",
                    key.get_ref(),
                    slot.kind.get_ref(),
                    SLOT_KINDS.join(", ")
                ),
            )
        })?;
        slots.insert(key.get_ref().clone(), kind);
    }

    let intents = intents(&ctx, &raw.intents, &slot_names)?;
    let state_names: BTreeSet<String> = raw.states.keys().map(|k| k.get_ref().clone()).collect();
    let refs = Refs {
        names: &names,
        intents: &intents,
        states: &state_names,
    };

    let global = handlers(&ctx, &refs, &raw.global.on, &raw.global.dtmf, None)?;
    let mut states = BTreeMap::new();
    for (key, s) in &raw.states {
        let say = ctx.template(&s.say)?;
        check_names(&ctx, s.say.span(), &say, &names)?;
        let optional = |t: &Option<Spanned<String>>| -> Result<Option<Template>, FlowError> {
            t.as_ref()
                .map(|t| {
                    let parsed = ctx.template(t)?;
                    check_names(&ctx, t.span(), &parsed, &names)?;
                    Ok(parsed)
                })
                .transpose()
        };
        let state = State {
            say,
            reask: optional(&s.reask)?,
            reprompt: optional(&s.reprompt)?,
            max_reprompts: s.max_reprompts,
            handlers: handlers(&ctx, &refs, &s.on, &s.dtmf, Some(&global))?,
        };
        if state.handlers.on.is_empty() && global.on.is_empty() {
            return Err(ctx.err(
                key.span(),
                format!(
                    "state {:?} handles no intent; end the call in the transition that leads to it",
                    key.get_ref()
                ),
            ));
        }
        states.insert(key.get_ref().clone(), state);
    }

    let start = &raw.flow.start;
    if !state_names.contains(start.get_ref()) {
        return Err(ctx.err(
            start.span(),
            unknown("state", start.get_ref(), &state_names),
        ));
    }
    let settings = settings(&ctx, &refs, &raw.flow)?;
    Ok(Flow {
        name: raw.flow.name.clone().unwrap_or_else(|| {
            std::path::Path::new(file)
                .file_stem()
                .map_or_else(|| file.to_owned(), |s| s.to_string_lossy().into_owned())
        }),
        start: start.get_ref().clone(),
        settings,
        vars,
        intents,
        slots,
        global,
        states,
    })
}

/// Said when a transfer fails and the flow has no `transfer_failed` of its own (then the
/// state's question is asked again).
pub const DEFAULT_TRANSFER_FAILED: &str = "Sorry, I couldn't connect you right now.";

fn settings(ctx: &Ctx<'_>, refs: &Refs<'_>, raw: &RawSettings) -> Result<Settings, FlowError> {
    let unit = |v: &Option<Spanned<f32>>, default: f32, key: &str| match v {
        None => Ok(default),
        Some(v) if (0.0..=1.0).contains(v.get_ref()) => Ok(*v.get_ref()),
        Some(v) => Err(ctx.err(v.span(), format!("flow.{key} must be between 0 and 1"))),
    };
    let reprompt = match &raw.reprompt {
        Some(t) => {
            let parsed = ctx.template(t)?;
            check_names(ctx, t.span(), &parsed, refs.names)?;
            parsed
        }
        None => Template::parse("Sorry, I didn't catch that.").unwrap_or_default(),
    };
    let mut give_up = match &raw.give_up {
        Some(t) => transition(ctx, refs, t)?,
        None => Transition {
            say: Template::parse("Sorry, I can't hear you well. Goodbye.").ok(),
            ..Transition::default()
        },
    };
    if give_up.goto.is_some() {
        let span = raw
            .give_up
            .as_ref()
            .and_then(|g| g.goto.as_ref())
            .map_or(0..0, Spanned::span);
        return Err(ctx.err(
            span,
            "flow.give_up always ends the call; it cannot have goto",
        ));
    }
    if !give_up.tools.iter().any(|t| t.name == "end_call") {
        give_up.tools.push(ToolTemplate {
            name: "end_call".to_owned(),
            args: BTreeMap::new(),
        });
    }
    let transfer_failed = match &raw.transfer_failed {
        Some(t) => transition(ctx, refs, t)?,
        None => Transition {
            say: Template::parse(DEFAULT_TRANSFER_FAILED).ok(),
            ..Transition::default()
        },
    };
    Ok(Settings {
        min_confidence: unit(
            &raw.min_confidence,
            DEFAULT_MIN_CONFIDENCE,
            "min_confidence",
        )?,
        sensitive_min_confidence: unit(
            &raw.sensitive_min_confidence,
            DEFAULT_SENSITIVE_MIN_CONFIDENCE,
            "sensitive_min_confidence",
        )?,
        max_reprompts: raw.max_reprompts.unwrap_or(DEFAULT_MAX_REPROMPTS),
        reprompt,
        give_up,
        transfer_failed,
    })
}

fn intents(
    ctx: &Ctx<'_>,
    raw: &BTreeMap<Spanned<String>, RawIntent>,
    slot_names: &BTreeSet<String>,
) -> Result<BTreeMap<String, Intent>, FlowError> {
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    let mut out = BTreeMap::new();
    for (key, intent) in raw {
        let name = key.get_ref();
        if intent.phrases.is_empty() && intent.slots.is_empty() {
            return Err(ctx.err(
                key.span(),
                format!("intent {name:?} has no phrases and no slots"),
            ));
        }
        let mut phrases = Vec::new();
        for p in &intent.phrases {
            let words = Words::new(p.get_ref());
            if words.is_empty() {
                return Err(ctx.err(p.span(), format!("intent {name:?}: empty phrase")));
            }
            if let Some(other) = seen.insert(words.joined(), name.clone())
                && &other != name
            {
                return Err(ctx.err(
                    p.span(),
                    format!(
                        "phrase {:?} is in both intents {other:?} and {name:?}",
                        p.get_ref()
                    ),
                ));
            }
            phrases.push(words);
        }
        let mut slots = Vec::new();
        for s in &intent.slots {
            if !slot_names.contains(s.get_ref()) {
                return Err(ctx.err(s.span(), unknown("slot", s.get_ref(), slot_names)));
            }
            slots.push(s.get_ref().clone());
        }
        out.insert(
            name.clone(),
            Intent {
                phrases,
                slots,
                sensitive: intent.sensitive,
            },
        );
    }
    Ok(out)
}

/// Names transitions and handlers may refer to.
struct Refs<'a> {
    names: &'a Names<'a>,
    intents: &'a BTreeMap<String, Intent>,
    states: &'a BTreeSet<String>,
}

fn handlers(
    ctx: &Ctx<'_>,
    refs: &Refs<'_>,
    on: &BTreeMap<Spanned<String>, RawTransition>,
    dtmf: &BTreeMap<Spanned<String>, Spanned<String>>,
    global: Option<&Handlers>,
) -> Result<Handlers, FlowError> {
    let known_intents: BTreeSet<String> = refs.intents.keys().cloned().collect();
    let mut out = Handlers::default();
    for (intent, t) in on {
        if !refs.intents.contains_key(intent.get_ref()) {
            return Err(ctx.err(
                intent.span(),
                unknown("intent", intent.get_ref(), &known_intents),
            ));
        }
        out.on
            .insert(intent.get_ref().clone(), transition(ctx, refs, t)?);
    }
    for (key, intent) in dtmf {
        let mut chars = key.get_ref().chars();
        let digit = match (chars.next(), chars.next()) {
            (Some(c), None) if DTMF_KEYS.contains(c.to_ascii_uppercase()) => c.to_ascii_uppercase(),
            _ => {
                return Err(ctx.err(
                    key.span(),
                    format!("{:?} is not a DTMF key (one of {DTMF_KEYS})", key.get_ref()),
                ));
            }
        };
        if !refs.intents.contains_key(intent.get_ref()) {
            return Err(ctx.err(
                intent.span(),
                unknown("intent", intent.get_ref(), &known_intents),
            ));
        }
        let handled = out.on.contains_key(intent.get_ref())
            || global.is_some_and(|g| g.on.contains_key(intent.get_ref()));
        if !handled {
            return Err(ctx.err(
                intent.span(),
                format!(
                    "DTMF {:?} maps to intent {:?}, which has no transition here",
                    key.get_ref(),
                    intent.get_ref()
                ),
            ));
        }
        out.dtmf.insert(digit, intent.get_ref().clone());
    }
    Ok(out)
}

fn transition(
    ctx: &Ctx<'_>,
    refs: &Refs<'_>,
    raw: &RawTransition,
) -> Result<Transition, FlowError> {
    let say = match &raw.say {
        Some(s) => {
            let t = ctx.template(s)?;
            check_names(ctx, s.span(), &t, refs.names)?;
            Some(t)
        }
        None => None,
    };
    if let Some(goto) = &raw.goto
        && !refs.states.contains(goto.get_ref())
    {
        return Err(ctx.err(goto.span(), unknown("state", goto.get_ref(), refs.states)));
    }
    let mut tools = Vec::new();
    for table in &raw.tools {
        tools.push(tool(ctx, refs, table)?);
    }
    let ends = tools
        .iter()
        .any(|t| t.name == "end_call" || t.name == "transfer");
    if ends && let Some(goto) = &raw.goto {
        return Err(ctx.err(
            goto.span(),
            "a transition that calls end_call or transfer cannot also goto a state",
        ));
    }
    Ok(Transition {
        say,
        tools,
        goto: raw.goto.as_ref().map(|g| g.get_ref().clone()),
    })
}

fn tool(
    ctx: &Ctx<'_>,
    refs: &Refs<'_>,
    table: &Spanned<toml::Table>,
) -> Result<ToolTemplate, FlowError> {
    let span = table.span();
    let t = table.get_ref();
    let name = match t.get("name") {
        Some(toml::Value::String(n)) => n,
        Some(_) => return Err(ctx.err(span, "tool `name` must be a string")),
        None => return Err(ctx.err(span, "tool call without `name`")),
    };
    let spec = tool_spec(name).ok_or_else(|| {
        ctx.err(
            span.clone(),
            format!("unknown tool {name:?} (known: {})", tool_names().join(", ")),
        )
    })?;
    let mut args = BTreeMap::new();
    let mut literal = BTreeMap::new();
    for (key, value) in t.iter().filter(|(k, _)| *k != "name") {
        let toml::Value::String(text) = value else {
            return Err(ctx.err(
                span,
                format!("tool {name}: argument {key:?} must be a string"),
            ));
        };
        let template = Template::parse(text)
            .map_err(|r| ctx.err(span.clone(), format!("tool {name}: argument {key:?}: {r}")))?;
        check_names(ctx, span.clone(), &template, refs.names)?;
        if template.is_literal() {
            literal.insert(key.clone(), text.clone());
        }
        args.insert(key.clone(), template);
    }
    spec.check_argument_names(args.keys().map(String::as_str))
        .map_err(|e| ctx.err(span.clone(), e.to_string()))?;
    // Fully literal calls are built now, so a bad value (DTMF "12x") fails at load.
    if literal.len() == args.len() {
        ToolCall::from_fields(name, &literal).map_err(|e| ctx.err(span.clone(), e.to_string()))?;
    }
    Ok(ToolTemplate {
        name: spec.name.to_owned(),
        args,
    })
}

fn check_names(
    ctx: &Ctx<'_>,
    span: Range<usize>,
    t: &Template,
    names: &Names<'_>,
) -> Result<(), FlowError> {
    for name in t.names() {
        let known =
            name.starts_with("lead.") || names.vars.contains(name) || names.slots.contains(name);
        if !known {
            return Err(ctx.err(
                span,
                format!(
                    "unknown placeholder {{{name}}}: not a var, a slot or lead.<field> (vars: {}; slots: {})",
                    list(names.vars),
                    list(names.slots)
                ),
            ));
        }
    }
    Ok(())
}

/// Rejects variables that refer to themselves, directly or not.
fn check_var_cycles(
    ctx: &Ctx<'_>,
    raw: &BTreeMap<Spanned<String>, Spanned<String>>,
    vars: &BTreeMap<String, Template>,
) -> Result<(), FlowError> {
    fn reaches(vars: &BTreeMap<String, Template>, from: &str, target: &str, depth: usize) -> bool {
        depth < 32
            && vars.get(from).is_some_and(|t| {
                t.names()
                    .any(|n| n == target || reaches(vars, n, target, depth + 1))
            })
    }
    for (key, value) in raw {
        if reaches(vars, key.get_ref(), key.get_ref(), 0) {
            return Err(ctx.err(
                value.span(),
                format!("var {:?} refers to itself", key.get_ref()),
            ));
        }
    }
    Ok(())
}

fn unknown(what: &str, name: &str, known: &BTreeSet<String>) -> String {
    format!("unknown {what} {name:?} (known: {})", list(known))
}

fn list(names: &BTreeSet<String>) -> String {
    if names.is_empty() {
        "none".to_owned()
    } else {
        names.iter().cloned().collect::<Vec<_>>().join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[flow]
start = "ask"

[vars]
company = "Acme"

[intents.yes]
phrases = ["yes"]

[slots.when]
kind = "day_time"

[states.ask]
say = "Hi from {company}. OK?"
[states.ask.on.yes]
say = "Good."
tools = [{ name = "end_call" }]
"#;

    fn err(src: &str) -> String {
        parse(src, "f.toml").unwrap_err().to_string()
    }

    /// `GOOD` with `from` replaced by `to` (which must occur).
    fn edit(from: &str, to: &str) -> String {
        assert!(GOOD.contains(from), "{from}");
        GOOD.replacen(from, to, 1)
    }

    #[test]
    fn good_file_loads() {
        let flow = parse(GOOD, "dir/f.toml").unwrap();
        assert_eq!(flow.name, "f");
        assert_eq!(flow.start_state(), "ask");
    }

    #[test]
    fn errors_name_file_line_and_reason() {
        let cases: &[(String, &str)] = &[
            (
                edit("start = \"ask\"", "start = \"nope\""),
                "f.toml:3: unknown state \"nope\" (known: ask)",
            ),
            (
                edit("[states.ask.on.yes]", "[states.ask.on.maybe]"),
                "f.toml:16: unknown intent \"maybe\" (known: yes)",
            ),
            (
                edit(
                    "tools = [{ name = \"end_call\" }]",
                    "tools = [{ name = \"hang_up\" }]",
                ),
                "f.toml:18: unknown tool \"hang_up\" (known: end_call, transfer, mark_do_not_call",
            ),
            (
                edit(
                    "tools = [{ name = \"end_call\" }]",
                    "tools = [{ name = \"transfer\" }]",
                ),
                "f.toml:18: transfer: missing argument \"target\"",
            ),
            (
                edit(
                    "tools = [{ name = \"end_call\" }]",
                    "tools = [{ name = \"end_call\", why = \"x\" }]",
                ),
                "f.toml:18: end_call: unknown argument \"why\"",
            ),
            (
                edit(
                    "tools = [{ name = \"end_call\" }]",
                    "tools = [{ name = \"send_dtmf\", digits = \"12x\" }]",
                ),
                "f.toml:18: send_dtmf: bad argument \"digits\": 'x' is not a DTMF key",
            ),
            (
                edit("say = \"Good.\"", "say = \"Good {whenever}.\""),
                "f.toml:17: unknown placeholder {whenever}: not a var, a slot or lead.<field> (vars: company; slots: when)",
            ),
            (
                edit("say = \"Good.\"", "say = \"Good {when.\""),
                "f.toml:17: unclosed '{'",
            ),
            (
                edit("say = \"Good.\"", "goto = \"elsewhere\""),
                "f.toml:17: unknown state \"elsewhere\" (known: ask)",
            ),
            (
                edit("say = \"Good.\"", "goto = \"ask\""),
                "f.toml:17: a transition that calls end_call or transfer cannot also goto a state",
            ),
            (
                edit("kind = \"day_time\"", "kind = \"date\""),
                "f.toml:12: slot \"when\": unknown kind \"date\" (known: day_time)",
            ),
            (
                edit("phrases = [\"yes\"]", "slots = [\"then\"]"),
                "f.toml:9: unknown slot \"then\" (known: when)",
            ),
            (
                edit("phrases = [\"yes\"]", "phrases = [\"?!\"]"),
                "f.toml:9: intent \"yes\": empty phrase",
            ),
            (
                edit("company = \"Acme\"", "company = \"{company}\""),
                "f.toml:6: var \"company\" refers to itself",
            ),
            (
                edit("say = \"Good.\"", "sya = \"Good.\""),
                "f.toml:17: unknown field `sya`",
            ),
            (
                edit("[flow]", "[flow]\nmin_confidence = 2.0"),
                "f.toml:3: flow.min_confidence must be between 0 and 1",
            ),
            (
                edit("[flow]", "[flow]\nstart = \"ask\""),
                "f.toml:4: duplicate key",
            ),
            (
                edit(
                    "[states.ask.on.yes]",
                    "[states.ask.dtmf]\n\"x\" = \"yes\"\n[states.ask.on.yes]",
                ),
                "f.toml:17: \"x\" is not a DTMF key",
            ),
            (
                edit(
                    "[intents.yes]",
                    "[intents.no]\nsensitive = true\n[intents.yes]",
                ),
                "f.toml:8: intent \"no\" has no phrases and no slots",
            ),
            (
                edit(
                    "[intents.yes]",
                    "[intents.no]\nphrases = [\"Yes!\"]\n[intents.yes]",
                ),
                "f.toml:11: phrase \"yes\" is in both intents \"no\" and \"yes\"",
            ),
        ];
        let wrong: Vec<String> = cases
            .iter()
            .map(|(src, want)| (err(src), want))
            .filter(|(got, want)| !got.starts_with(**want))
            .map(|(got, want)| format!("got:  {got}\nwant: {want}"))
            .collect();
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    }

    #[test]
    fn dtmf_must_map_to_a_handled_intent() {
        let src = edit(
            "[intents.yes]",
            "[intents.no]\nphrases = [\"no\"]\n[intents.yes]",
        )
        .replacen(
            "[states.ask.on.yes]",
            "[states.ask.dtmf]\n2 = \"no\"\n[states.ask.on.yes]",
            1,
        );
        assert!(
            err(&src).contains("DTMF \"2\" maps to intent \"no\", which has no transition here")
        );
    }
}

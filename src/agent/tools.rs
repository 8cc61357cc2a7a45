//! The tool vocabulary shared by the LLM agent and the scripted flow.
//!
//! One table ([`TOOLS`]) drives the OpenAI-style `tools` array sent to an LLM, the checks a
//! flow file's tool calls get at load time, and the parsing of the arguments an LLM sends back.
//! Every argument is a string: it keeps the schema small for weak models and lets the flow
//! fill arguments from `{slot}` templates.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

/// Longest DTMF string `send_dtmf` accepts.
pub const MAX_DTMF_DIGITS: usize = 32;

/// A tool call the agent asked for, with validated arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ToolCall {
    /// Hang up once the queued speech has played.
    EndCall,
    /// Hand the caller over to `target` (a SIP URI or an E.164 number).
    Transfer {
        /// Where to send the caller.
        target: String,
    },
    /// Put the lead's number on the do-not-call list.
    MarkDoNotCall,
    /// Send DTMF digits on the call (IVR navigation).
    SendDtmf {
        /// Digits from `0-9 * # A-D`.
        digits: String,
    },
    /// Record the call's disposition.
    SetOutcome {
        /// A short lowercase identifier such as `booked` or `not_interested`.
        disposition: String,
        /// Free-text notes, if any.
        notes: Option<String>,
    },
    /// Ask for a callback at the time the lead gave.
    ScheduleCallback {
        /// The time as the lead said it ("tomorrow morning").
        when: String,
        /// Free-text note for whoever calls back, if any.
        note: Option<String>,
    },
}

/// What a tool is and which arguments it takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ToolSpec {
    /// The function name the LLM calls.
    pub name: &'static str,
    /// The description the LLM reads.
    pub description: &'static str,
    /// The arguments, all strings.
    pub params: &'static [ParamSpec],
}

/// One string argument of a tool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParamSpec {
    /// The argument name.
    pub name: &'static str,
    /// The description the LLM reads.
    pub description: &'static str,
    /// Whether a call without it is rejected.
    pub required: bool,
}

/// Why a tool call could not be accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ToolError {
    /// No tool has this name.
    #[error("unknown tool {0:?} (known: {known})", known = tool_names().join(", "))]
    UnknownTool(String),
    /// The arguments are not a JSON object.
    #[error("{tool}: arguments are not a JSON object: {reason}")]
    BadJson {
        /// The tool called.
        tool: &'static str,
        /// What the JSON parser said.
        reason: String,
    },
    /// A required argument is absent or empty.
    #[error("{tool}: missing argument {arg:?}")]
    MissingArgument {
        /// The tool called.
        tool: &'static str,
        /// The argument that is missing.
        arg: &'static str,
    },
    /// The tool takes no argument of this name.
    #[error("{tool}: unknown argument {arg:?}")]
    UnknownArgument {
        /// The tool called.
        tool: &'static str,
        /// The argument given.
        arg: String,
    },
    /// An argument has a value the tool cannot use.
    #[error("{tool}: bad argument {arg:?}: {reason}")]
    BadArgument {
        /// The tool called.
        tool: &'static str,
        /// The argument at fault.
        arg: &'static str,
        /// Why it was rejected.
        reason: String,
    },
}

/// Every tool, in the order they are offered to the LLM.
pub static TOOLS: &[ToolSpec] = &[
    ToolSpec {
        name: "end_call",
        description: "Hang up after your last sentence has been spoken. Say goodbye first.",
        params: &[],
    },
    ToolSpec {
        name: "transfer",
        description: "Transfer the caller to a human or another number.",
        params: &[ParamSpec {
            name: "target",
            description: "SIP URI or E.164 phone number to transfer to.",
            required: true,
        }],
    },
    ToolSpec {
        name: "mark_do_not_call",
        description: "The person asked not to be called again: put the number on the do-not-call list.",
        params: &[],
    },
    ToolSpec {
        name: "send_dtmf",
        description: "Press keys on the phone keypad (for example to navigate a phone menu).",
        params: &[ParamSpec {
            name: "digits",
            description: "Keys to press: 0-9, *, #, A-D.",
            required: true,
        }],
    },
    ToolSpec {
        name: "set_outcome",
        description: "Record the result of the call.",
        params: &[
            ParamSpec {
                name: "disposition",
                description: "One lowercase word or snake_case phrase, e.g. booked, not_interested, wrong_number, do_not_call.",
                required: true,
            },
            ParamSpec {
                name: "notes",
                description: "Short free-text notes for the record.",
                required: false,
            },
        ],
    },
    ToolSpec {
        name: "schedule_callback",
        description: "Schedule a callback at the time the person asked for.",
        params: &[
            ParamSpec {
                name: "when",
                description: "The day and time as the person said it, e.g. 'tomorrow morning'.",
                required: true,
            },
            ParamSpec {
                name: "note",
                description: "Short note for whoever calls back.",
                required: false,
            },
        ],
    },
];

/// The spec of the tool called `name`, if there is one.
pub fn tool_spec(name: &str) -> Option<&'static ToolSpec> {
    TOOLS.iter().find(|t| t.name == name)
}

/// The names of all tools.
pub fn tool_names() -> Vec<&'static str> {
    TOOLS.iter().map(|t| t.name).collect()
}

/// The OpenAI Chat Completions `tools` array describing every tool.
pub fn tool_definitions() -> Value {
    Value::Array(TOOLS.iter().map(ToolSpec::definition).collect())
}

impl ToolSpec {
    /// This tool as one `{"type": "function", "function": {...}}` entry.
    pub fn definition(&self) -> Value {
        let properties: Map<String, Value> = self
            .params
            .iter()
            .map(|p| {
                let schema = json!({"type": "string", "description": p.description});
                (p.name.to_owned(), schema)
            })
            .collect();
        let required: Vec<&str> = self
            .params
            .iter()
            .filter(|p| p.required)
            .map(|p| p.name)
            .collect();
        json!({
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": {
                    "type": "object",
                    "properties": properties,
                    "required": required,
                    "additionalProperties": false,
                },
            },
        })
    }

    /// Checks that `names` are all known arguments and that every required one is present.
    pub fn check_argument_names<'a>(
        &self,
        names: impl IntoIterator<Item = &'a str>,
    ) -> Result<(), ToolError> {
        let names: Vec<&str> = names.into_iter().collect();
        if let Some(unknown) = names
            .iter()
            .find(|n| !self.params.iter().any(|p| p.name == **n))
        {
            return Err(ToolError::UnknownArgument {
                tool: self.name,
                arg: (*unknown).to_owned(),
            });
        }
        match self
            .params
            .iter()
            .find(|p| p.required && !names.contains(&p.name))
        {
            Some(p) => Err(ToolError::MissingArgument {
                tool: self.name,
                arg: p.name,
            }),
            None => Ok(()),
        }
    }
}

impl ToolCall {
    /// Parses an LLM tool call: the function name and its JSON-encoded arguments.
    ///
    /// Empty `arguments` count as `{}` (some servers send that for argument-less tools);
    /// numbers are accepted where a string is expected (`"digits": 123`).
    pub fn from_json(name: &str, arguments: &str) -> Result<Self, ToolError> {
        let spec = tool_spec(name).ok_or_else(|| ToolError::UnknownTool(name.to_owned()))?;
        let trimmed = arguments.trim();
        let value: Value = if trimmed.is_empty() {
            Value::Object(Map::new())
        } else {
            serde_json::from_str(trimmed).map_err(|e| ToolError::BadJson {
                tool: spec.name,
                reason: e.to_string(),
            })?
        };
        let Value::Object(map) = value else {
            return Err(ToolError::BadJson {
                tool: spec.name,
                reason: "expected an object".to_owned(),
            });
        };
        let mut fields = BTreeMap::new();
        for (key, value) in map {
            let text = match value {
                Value::String(s) => s,
                Value::Number(n) => n.to_string(),
                // A model that sends `"notes": null` means "no notes".
                Value::Null => continue,
                other => {
                    let arg = spec
                        .params
                        .iter()
                        .find(|p| p.name == key)
                        .map_or("?", |p| p.name);
                    return Err(ToolError::BadArgument {
                        tool: spec.name,
                        arg,
                        reason: format!("expected a string, got {}", json_kind(&other)),
                    });
                }
            };
            fields.insert(key, text);
        }
        Self::from_fields(name, &fields)
    }

    /// Builds a call from its name and string arguments (as a flow file gives them).
    pub fn from_fields(name: &str, fields: &BTreeMap<String, String>) -> Result<Self, ToolError> {
        let spec = tool_spec(name).ok_or_else(|| ToolError::UnknownTool(name.to_owned()))?;
        spec.check_argument_names(
            fields
                .iter()
                .filter(|(_, v)| !v.trim().is_empty())
                .map(|(k, _)| k.as_str()),
        )?;
        let optional = |key: &str| {
            fields
                .get(key)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        // Presence of required arguments was checked above.
        let required = |key: &str| optional(key).unwrap_or_default();
        let call = match spec.name {
            "end_call" => Self::EndCall,
            "mark_do_not_call" => Self::MarkDoNotCall,
            "transfer" => Self::Transfer {
                target: required("target"),
            },
            "send_dtmf" => {
                let digits: String = required("digits")
                    .chars()
                    .filter(|c| !c.is_whitespace())
                    .collect();
                check_dtmf(&digits)?;
                Self::SendDtmf { digits }
            }
            "set_outcome" => {
                let disposition = required("disposition");
                check_disposition(&disposition)?;
                Self::SetOutcome {
                    disposition,
                    notes: optional("notes"),
                }
            }
            "schedule_callback" => Self::ScheduleCallback {
                when: required("when"),
                note: optional("note"),
            },
            other => return Err(ToolError::UnknownTool(other.to_owned())),
        };
        Ok(call)
    }

    /// The tool's function name.
    pub fn name(&self) -> &'static str {
        match self {
            Self::EndCall => "end_call",
            Self::Transfer { .. } => "transfer",
            Self::MarkDoNotCall => "mark_do_not_call",
            Self::SendDtmf { .. } => "send_dtmf",
            Self::SetOutcome { .. } => "set_outcome",
            Self::ScheduleCallback { .. } => "schedule_callback",
        }
    }

    /// The arguments as the JSON object an LLM would have sent.
    pub fn arguments(&self) -> Value {
        let mut map = Map::new();
        let mut put = |k: &str, v: &str| {
            map.insert(k.to_owned(), Value::String(v.to_owned()));
        };
        match self {
            Self::EndCall | Self::MarkDoNotCall => {}
            Self::Transfer { target } => put("target", target),
            Self::SendDtmf { digits } => put("digits", digits),
            Self::SetOutcome { disposition, notes } => {
                put("disposition", disposition);
                if let Some(n) = notes {
                    put("notes", n);
                }
            }
            Self::ScheduleCallback { when, note } => {
                put("when", when);
                if let Some(n) = note {
                    put("note", n);
                }
            }
        }
        Value::Object(map)
    }

    /// The `tool` message content reporting that this call was carried out.
    pub fn result_text(&self) -> String {
        match self {
            Self::EndCall => "The call will end after your last sentence is spoken.".to_owned(),
            Self::Transfer { target } => format!("The caller is being transferred to {target}."),
            Self::MarkDoNotCall => {
                "The number is on the do-not-call list; it will not be called again.".to_owned()
            }
            Self::SendDtmf { digits } => format!("Sent the keys {digits}."),
            Self::SetOutcome { disposition, .. } => {
                format!("The call outcome is recorded as {disposition}.")
            }
            Self::ScheduleCallback { when, .. } => format!("A callback is scheduled for {when}."),
        }
    }
}

/// The `tool` message content reporting that a call failed, so the model can recover.
pub fn failure_text(tool: &str, reason: &str) -> String {
    format!("The tool {tool} failed: {reason}. Do not claim it succeeded.")
}

fn check_dtmf(digits: &str) -> Result<(), ToolError> {
    let bad = |reason: String| ToolError::BadArgument {
        tool: "send_dtmf",
        arg: "digits",
        reason,
    };
    if digits.chars().count() > MAX_DTMF_DIGITS {
        return Err(bad(format!("more than {MAX_DTMF_DIGITS} digits")));
    }
    match digits
        .chars()
        .find(|c| !matches!(c, '0'..='9' | '*' | '#' | 'A'..='D' | 'a'..='d'))
    {
        Some(c) => Err(bad(format!("{c:?} is not a DTMF key"))),
        None => Ok(()),
    }
}

fn check_disposition(d: &str) -> Result<(), ToolError> {
    let ok = d.len() <= 64
        && d.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(ToolError::BadArgument {
            tool: "set_outcome",
            arg: "disposition",
            reason: "use lowercase letters, digits and '_' (at most 64)".to_owned(),
        })
    }
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn definitions_are_openai_function_tools() {
        let defs = tool_definitions();
        let arr = defs.as_array().unwrap();
        assert_eq!(arr.len(), 6);
        let sched = arr
            .iter()
            .find(|d| d["function"]["name"] == "schedule_callback")
            .unwrap();
        assert_eq!(sched["type"], "function");
        let params = &sched["function"]["parameters"];
        assert_eq!(params["type"], "object");
        assert_eq!(params["required"], json!(["when"]));
        assert_eq!(params["properties"]["note"]["type"], "string");
        assert_eq!(params["additionalProperties"], false);
        let end = &arr[0]["function"]["parameters"];
        assert_eq!(end["properties"], json!({}));
    }

    #[test]
    fn parses_each_tool() {
        let cases: &[(&str, &str, ToolCall)] = &[
            ("end_call", "", ToolCall::EndCall),
            ("end_call", "{}", ToolCall::EndCall),
            ("mark_do_not_call", " {} ", ToolCall::MarkDoNotCall),
            (
                "transfer",
                r#"{"target":"sip:sales@example.com"}"#,
                ToolCall::Transfer {
                    target: "sip:sales@example.com".into(),
                },
            ),
            (
                "send_dtmf",
                r#"{"digits": 1234}"#,
                ToolCall::SendDtmf {
                    digits: "1234".into(),
                },
            ),
            (
                "send_dtmf",
                r#"{"digits": "1 2 #"}"#,
                ToolCall::SendDtmf {
                    digits: "12#".into(),
                },
            ),
            (
                "set_outcome",
                r#"{"disposition":"booked","notes":null}"#,
                ToolCall::SetOutcome {
                    disposition: "booked".into(),
                    notes: None,
                },
            ),
            (
                "schedule_callback",
                r#"{"when":"tomorrow morning","note":"wants a quote"}"#,
                ToolCall::ScheduleCallback {
                    when: "tomorrow morning".into(),
                    note: Some("wants a quote".into()),
                },
            ),
        ];
        for (name, args, want) in cases {
            let got = ToolCall::from_json(name, args).unwrap();
            assert_eq!(&got, want, "{name} {args}");
            assert_eq!(got.name(), *name);
            // The arguments round-trip.
            let again = ToolCall::from_json(name, &got.arguments().to_string()).unwrap();
            assert_eq!(&again, want);
        }
    }

    #[test]
    fn rejects_bad_calls() {
        let cases: &[(&str, &str, &str)] = &[
            (
                "hang_up",
                "{}",
                "unknown tool \"hang_up\" (known: end_call, transfer",
            ),
            ("transfer", "{}", "transfer: missing argument \"target\""),
            ("transfer", r#"{"target":"  "}"#, "missing argument"),
            (
                "transfer",
                r#"{"target":"x","to":"y"}"#,
                "unknown argument \"to\"",
            ),
            ("send_dtmf", r#"{"digits":"12x"}"#, "'x' is not a DTMF key"),
            ("send_dtmf", r#"{"digits":"{"#, "not a JSON object"),
            ("send_dtmf", "[1]", "expected an object"),
            (
                "send_dtmf",
                r#"{"digits":["1"]}"#,
                "expected a string, got an array",
            ),
            (
                "set_outcome",
                r#"{"disposition":"Not Interested"}"#,
                "lowercase",
            ),
            (
                "end_call",
                r#"{"reason":"bye"}"#,
                "unknown argument \"reason\"",
            ),
        ];
        for (name, args, want) in cases {
            let err = ToolCall::from_json(name, args).unwrap_err().to_string();
            assert!(err.contains(want), "{name} {args}: {err}");
        }
        let long = format!(r#"{{"digits":"{}"}}"#, "1".repeat(33));
        assert!(ToolCall::from_json("send_dtmf", &long).is_err());
    }

    #[test]
    fn result_texts_name_the_effect() {
        let call = ToolCall::ScheduleCallback {
            when: "Friday at 3".into(),
            note: None,
        };
        assert_eq!(
            call.result_text(),
            "A callback is scheduled for Friday at 3."
        );
        assert!(
            ToolCall::MarkDoNotCall
                .result_text()
                .contains("do-not-call")
        );
        assert!(failure_text("transfer", "busy").contains("transfer failed: busy"));
    }
}

//! End-to-end runs of the shipped `sip-config/agents/appointment-setter.toml` through
//! [`FlowSession`], one scripted conversation per path.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::matcher::recognize;
use super::{Action, Flow, FlowSession, Recognition, Unsure};
use crate::agent::tools::ToolCall;

const EXAMPLE: &str = include_str!("../../../sip-config/agents/appointment-setter.toml");

/// Every utterance of the shared telephone-audio set (`../shared/audio/phrases.tsv`).
const SHARED_UTTERANCES: &[&str] = &[
    "Hello?",
    "Yes, I am interested.",
    "Sure, go ahead.",
    "No thank you, I am not interested.",
    "Please stop calling me.",
    "Take me off your list.",
    "Can you call me back tomorrow?",
    "I am busy right now.",
    "Who is this?",
    "Am I talking to a robot?",
    "Uh-huh.",
    "Okay.",
    "Tomorrow morning works for me.",
    "Goodbye.",
];

fn flow() -> Arc<Flow> {
    Arc::new(Flow::parse(EXAMPLE, "appointment-setter.toml").unwrap())
}

fn session() -> FlowSession {
    let lead = BTreeMap::from([("first_name".to_owned(), "Jane".to_owned())]);
    FlowSession::new(flow(), lead)
}

fn says(actions: &[Action]) -> String {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Say(t) => Some(t.as_str()),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join(" | ")
}

fn tools(actions: &[Action]) -> Vec<ToolCall> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Tool(t) => Some(t.clone()),
            _ => None,
        })
        .collect()
}

fn outcome(disposition: &str) -> ToolCall {
    ToolCall::SetOutcome {
        disposition: disposition.into(),
        notes: None,
    }
}

fn listens(actions: &[Action]) -> bool {
    matches!(actions.last(), Some(Action::Listen { .. }))
}

fn hangs_up(actions: &[Action]) -> bool {
    matches!(actions.last(), Some(Action::Hangup))
}

#[test]
fn greeting_discloses_the_assistant_and_listens() {
    let mut s = session();
    let a = s.start();
    assert_eq!(
        says(&a),
        "Hi, this is an automated assistant calling on behalf of Bright Home Solar. Am I speaking with Jane?"
    );
    let Some(Action::Listen { expected_phrases }) = a.last() else {
        panic!("{a:?}")
    };
    for phrase in ["yes", "stop calling me", "are you a robot", "wrong number"] {
        assert!(expected_phrases.iter().any(|p| p == phrase), "{phrase}");
    }
    // `callback` captures a day/time, so its words are expected too.
    assert!(expected_phrases.iter().any(|p| p == "tomorrow"));

    let mut anonymous = FlowSession::new(flow(), BTreeMap::new());
    assert!(says(&anonymous.start()).ends_with("Am I speaking with the homeowner?"));
}

#[test]
fn books_a_callback() {
    let mut s = session();
    s.start();
    let a = s.on_user_text("Hello?", 0.9);
    assert_eq!(says(&a), "Hi there. Am I speaking with Jane?");
    let a = s.on_user_text("Yes, speaking.", 0.9);
    assert_eq!(s.state(), "qualify");
    assert!(says(&a).contains("free home energy assessments"), "{a:?}");
    let a = s.on_user_text("Sure, go ahead.", 0.9);
    assert_eq!(s.state(), "book");
    let Some(Action::Listen { expected_phrases }) = a.last() else {
        panic!("{a:?}")
    };
    assert!(expected_phrases.iter().any(|p| p == "tomorrow"));
    let a = s.on_user_text("Tomorrow morning works for me.", 0.8);
    assert_eq!(
        tools(&a),
        [
            ToolCall::ScheduleCallback {
                when: "tomorrow morning".into(),
                note: Some("Booked by the automated assistant".into()),
            },
            ToolCall::SetOutcome {
                disposition: "booked".into(),
                notes: Some("callback tomorrow morning".into()),
            },
        ]
    );
    assert_eq!(
        says(&a),
        "Perfect. An advisor from Bright Home Solar will call you tomorrow morning. Thank you, and goodbye."
    );
    assert!(hangs_up(&a));
    assert!(s.is_finished());
    assert!(s.on_user_text("Wait!", 1.0).is_empty());
}

#[test]
fn callback_request_then_time() {
    let mut s = session();
    s.start();
    s.on_user_text("Yes.", 0.9);
    let a = s.on_user_text("I am busy right now.", 0.9);
    assert_eq!(s.state(), "book");
    assert!(
        says(&a).starts_with("I understand. When would be a good time"),
        "{a:?}"
    );
    let a = s.on_user_text("Can you call me back on Friday at 3 pm?", 0.9);
    assert!(hangs_up(&a));
    assert!(tools(&a).contains(&ToolCall::ScheduleCallback {
        when: "friday at 3 pm".into(),
        note: Some("Booked by the automated assistant".into()),
    }));
}

#[test]
fn not_interested_ends_politely() {
    let mut s = session();
    s.start();
    s.on_user_text("Yes, this is she.", 0.9);
    let a = s.on_user_text("No thank you, I am not interested.", 0.9);
    assert_eq!(tools(&a), [outcome("not_interested")]);
    assert!(says(&a).contains("Thank you for your time"));
    assert!(hangs_up(&a));
}

#[test]
fn please_stop_calling_me_marks_do_not_call_and_hangs_up() {
    for state_path in [&[][..], &["Yes."][..], &["Yes.", "Sure."][..]] {
        let mut s = session();
        s.start();
        for text in state_path {
            s.on_user_text(text, 0.9);
        }
        let a = s.on_user_text("Please stop calling me.", 0.9);
        assert_eq!(
            a,
            [
                Action::Tool(ToolCall::MarkDoNotCall),
                Action::Tool(outcome("do_not_call")),
                Action::Say("Understood. I've removed your number from our list, and Bright Home Solar won't call you again. Goodbye.".into()),
                Action::Hangup,
            ],
            "after {state_path:?}"
        );
    }
    let mut s = session();
    s.start();
    let a = s.on_user_text("Take me off your list.", 0.8);
    assert!(tools(&a).contains(&ToolCall::MarkDoNotCall) && hangs_up(&a));
    let mut s = session();
    s.start();
    let a = s.on_dtmf('9');
    assert!(tools(&a).contains(&ToolCall::MarkDoNotCall) && hangs_up(&a));
}

#[test]
fn opt_out_needs_a_confident_match() {
    let unsure = [
        ("Please stop calling me.", 0.6), // recognizer not sure enough
        ("Please don't take me off your list.", 0.95), // negated
        ("Yes, stop calling me.", 0.95),  // contradicts another intent
        ("I am busy, stop calling me.", 0.95), // mixed with another intent
        (
            "Well I was wondering whether you could maybe possibly stop calling me at some point",
            0.95,
        ), // too little of the reply
    ];
    for (text, confidence) in unsure {
        let mut s = session();
        s.start();
        let a = s.on_user_text(text, confidence);
        assert!(
            !tools(&a).contains(&ToolCall::MarkDoNotCall),
            "{text}: {a:?}"
        );
        assert!(listens(&a), "{text}: asks again: {a:?}");
        assert!(
            says(&a).starts_with("Sorry, I didn't catch that."),
            "{text}: {a:?}"
        );
    }
}

#[test]
fn no_other_phrase_ever_triggers_do_not_call() {
    let flow = flow();
    let mut texts: Vec<String> = SHARED_UTTERANCES.iter().map(|s| (*s).to_owned()).collect();
    for (name, intent) in &flow.intents {
        if !intent.sensitive {
            texts.extend(intent.phrases.iter().map(|p| p.joined()));
        } else {
            assert_eq!(name, "opt_out");
        }
    }
    let mut opt_out_texts = 0;
    for state in flow.states.keys() {
        for text in &texts {
            let is_opt_out = ["stop calling", "off your list"]
                .iter()
                .any(|p| text.to_lowercase().contains(p));
            for confidence in [0.5, 0.8, 1.0] {
                let r = recognize(&flow, state, text, confidence);
                let intent = match &r {
                    Recognition::Intent { intent, .. } => intent.as_str(),
                    Recognition::Unsure(_) => continue,
                };
                if is_opt_out {
                    opt_out_texts += 1;
                    continue;
                }
                assert_ne!(intent, "opt_out", "{state}: {text:?}");
                let t = flow.transition(state, intent).unwrap();
                assert!(
                    !t.tools.iter().any(|t| t.name == "mark_do_not_call"),
                    "{state}: {text:?} -> {intent}"
                );
            }
        }
    }
    assert!(opt_out_texts > 0);
}

#[test]
fn shared_utterances_map_to_their_intents() {
    let flow = flow();
    // (text, state it is answered in, intent expected).
    let cases = [
        ("Hello?", "greeting", "hello"),
        ("Yes, I am interested.", "qualify", "yes"),
        ("Sure, go ahead.", "greeting", "yes"),
        (
            "No thank you, I am not interested.",
            "qualify",
            "not_interested",
        ),
        ("Please stop calling me.", "book", "opt_out"),
        ("Take me off your list.", "qualify", "opt_out"),
        ("Can you call me back tomorrow?", "qualify", "callback"),
        ("I am busy right now.", "greeting", "busy"),
        ("Who is this?", "greeting", "who"),
        ("Am I talking to a robot?", "qualify", "robot"),
        ("Uh-huh.", "qualify", "ack"),
        ("Okay.", "greeting", "ack"),
        ("Tomorrow morning works for me.", "book", "give_time"),
        ("Goodbye.", "book", "goodbye"),
    ];
    for (text, state, want) in cases {
        match recognize(&flow, state, text, 0.9) {
            Recognition::Intent { intent, .. } => assert_eq!(intent, want, "{text}"),
            other => panic!("{text}: {other:?}"),
        }
    }
}

#[test]
fn robot_question_is_answered_honestly_and_the_question_repeated() {
    let mut s = session();
    s.start();
    let a = s.on_user_text("Wait, am I talking to a robot?", 0.9);
    assert_eq!(
        says(&a),
        "Yes, I'm an automated assistant, not a person, calling on behalf of Bright Home Solar. I can book a call with a human advisor for you. Am I speaking with Jane?"
    );
    assert_eq!(s.state(), "greeting");
    assert!(listens(&a));
}

#[test]
fn wrong_number() {
    let mut s = session();
    s.start();
    let a = s.on_user_text("Sorry, you have the wrong number.", 0.9);
    assert_eq!(tools(&a), [outcome("wrong_number")]);
    assert!(hangs_up(&a));
    let mut s = session();
    s.start();
    let a = s.on_user_text("No.", 0.9);
    assert_eq!(tools(&a), [outcome("wrong_number")]);
    assert!(hangs_up(&a));
}

#[test]
fn silence_and_mumbles_reprompt_then_give_up() {
    let mut s = session();
    s.start();
    let a = s.on_no_input();
    assert_eq!(
        says(&a),
        "Sorry, I didn't catch that. Am I speaking with Jane?"
    );
    let a = s.on_user_text("purple elephant", 0.9);
    assert!(listens(&a));
    assert_eq!(
        s.last_recognition(),
        Some(&Recognition::Unsure(Unsure::NoMatch))
    );
    let a = s.on_user_text("yes", 0.1);
    assert_eq!(tools(&a), [outcome("no_response")]);
    assert!(says(&a).contains("trouble hearing you"));
    assert!(hangs_up(&a));
    assert!(s.on_no_input().is_empty());
}

#[test]
fn reprompts_reset_on_a_new_state_and_dtmf_works() {
    let mut s = session();
    s.start();
    s.on_no_input();
    s.on_no_input();
    s.on_user_text("yes", 0.9);
    assert_eq!(s.state(), "qualify");
    assert!(listens(&s.on_no_input()));
    let a = s.on_dtmf('7');
    assert!(says(&a).contains("press 1 for yes"), "{a:?}");
    let a = s.on_dtmf('1');
    assert_eq!(s.state(), "book");
    assert!(listens(&a));
}

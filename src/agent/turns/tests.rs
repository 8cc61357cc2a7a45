//! Scenario tests of the turn engine: events in, actions out, no clock and no I/O.

use super::*;
use crate::agent::stages::LlmToolCall;

fn settings() -> LlmMode {
    LlmMode {
        llm: crate::agent::StageConfig::named("scripted"),
        system_prompt: "You book appointments.".into(),
        greeting: Some("Hi, this is an automated assistant.".into()),
        tools: vec!["end_call", "set_outcome", "send_dtmf"],
        fallback_line: "Sorry, one moment.".into(),
        max_tool_rounds: 4,
        no_input_ms: 6000,
        reprompt: "Are you still there?".into(),
        max_reprompts: 2,
        silence_hangup: "Goodbye.".into(),
    }
}

fn text(t: &str) -> TurnEvent {
    TurnEvent::Llm(LlmDelta::Text(t.into()))
}

fn done(reason: &str) -> TurnEvent {
    TurnEvent::Llm(LlmDelta::Done {
        reason: reason.into(),
    })
}

fn tool(index: usize, id: &str, name: &str, args: &str) -> TurnEvent {
    TurnEvent::Llm(LlmDelta::ToolCall {
        index,
        id: Some(id.into()),
        name: Some(name.into()),
        arguments: args.into(),
    })
}

fn audio(text_done: Option<usize>) -> TurnEvent {
    TurnEvent::TtsAudio(TtsAudio {
        samples: vec![100; 160],
        text_done,
    })
}

fn pushes(actions: &[TurnAction]) -> Vec<String> {
    actions
        .iter()
        .filter_map(|a| match a {
            TurnAction::PushTts(t) => Some(t.trim().to_owned()),
            _ => None,
        })
        .collect()
}

fn marks(actions: &[TurnAction]) -> Vec<Mark> {
    actions
        .iter()
        .filter_map(|a| match a {
            TurnAction::Play { mark, .. } => Some(*mark),
            _ => None,
        })
        .collect()
}

/// An engine past its greeting (fully played), with the caller's first words sent.
fn in_turn(user: &str) -> TurnEngine {
    in_turn_with(settings(), user)
}

fn in_turn_with(settings: LlmMode, user: &str) -> TurnEngine {
    let mut e = TurnEngine::new(settings, 1);
    e.handle(TurnEvent::Start);
    let m = marks(&e.handle(audio(None)));
    e.handle(TurnEvent::TtsEnded);
    e.handle(TurnEvent::MarkPlayed(m[0]));
    let a = e.handle(TurnEvent::UserText(user.into()));
    assert!(matches!(a.as_slice(), [TurnAction::StartLlm(_)]), "{a:?}");
    e
}

#[test]
fn greeting_is_spoken_and_recorded_first() {
    let mut e = TurnEngine::new(settings(), 1);
    let a = e.handle(TurnEvent::Start);
    assert_eq!(
        a,
        [
            TurnAction::StartTts,
            TurnAction::PushTts("Hi, this is an automated assistant. ".into()),
            TurnAction::FinishTts,
        ]
    );
    assert_eq!(e.history()[0].role, Role::System);
    assert_eq!(
        e.history()[1].content,
        "Hi, this is an automated assistant."
    );
}

#[test]
fn each_sentence_goes_to_tts_as_soon_as_it_forms() {
    let mut e = in_turn("Can you call me back tomorrow?");
    let a = e.handle(text("Sure, I can"));
    assert!(pushes(&a).is_empty(), "no sentence yet: {a:?}");
    let a = e.handle(text(" do that. What"));
    assert_eq!(
        a[0],
        TurnAction::StartTts,
        "a session opens with the first sentence"
    );
    assert_eq!(pushes(&a), ["Sure, I can do that."]);
    // Audio of the first sentence plays while the model is still writing.
    let a = e.handle(audio(Some(21)));
    assert_eq!(marks(&a).len(), 1);
    let a = e.handle(text(" time suits you? Morning"));
    assert_eq!(pushes(&a), ["What time suits you?"]);
    let a = e.handle(text(" or afternoon"));
    assert!(pushes(&a).is_empty());
    let a = e.handle(done("stop"));
    assert_eq!(pushes(&a), ["Morning or afternoon"]);
    assert_eq!(a.last(), Some(&TurnAction::FinishTts));
    let last = e.history().last().unwrap();
    assert_eq!(last.role, Role::Assistant);
    assert_eq!(
        last.content,
        "Sure, I can do that. What time suits you? Morning or afternoon"
    );
    assert!(e.handle(TurnEvent::TtsEnded).is_empty());
}

#[test]
fn end_call_hangs_up_after_the_last_words_with_the_outcome() {
    let mut e = in_turn("Yes, book me for Friday.");
    e.handle(text("You're booked. Goodbye!"));
    e.handle(tool(
        0,
        "call_1",
        "set_outcome",
        "{\"disposition\":\"booked\"}",
    ));
    e.handle(tool(1, "call_2", "end_call", "{}"));
    let a = e.handle(done("tool_calls"));
    assert!(a.contains(&TurnAction::Tool(ToolCall::SetOutcome {
        disposition: "booked".into(),
        notes: None
    })));
    assert!(a.contains(&TurnAction::Tool(ToolCall::EndCall)));
    assert!(
        !a.iter()
            .any(|x| matches!(x, TurnAction::StartLlm(_) | TurnAction::Hangup { .. })),
        "no new completion, and no hang-up while speech is still being synthesized: {a:?}"
    );
    let tools: Vec<_> = e
        .history()
        .iter()
        .filter(|m| m.role == Role::Tool)
        .map(|m| m.tool_call_id.clone().unwrap())
        .collect();
    assert_eq!(tools, ["call_1", "call_2"]);
    // The caller speaking now changes nothing: the call is ending.
    assert!(e.handle(TurnEvent::UserText("wait".into())).is_empty());
    e.handle(audio(None));
    let a = e.handle(TurnEvent::TtsEnded);
    assert_eq!(
        a,
        [TurnAction::Hangup {
            outcome: "booked".into()
        }]
    );
    assert_eq!(e.ending(), Some("booked"));
}

#[test]
fn tool_results_go_back_to_the_model() {
    let mut e = in_turn("Press one for sales.");
    e.handle(tool(0, "c1", "send_dtmf", "{\"digits\":\"1\"}"));
    e.handle(tool(1, "c2", "transfer", "{\"target\":\"sip:a@b\"}"));
    let a = e.handle(done("tool_calls"));
    assert_eq!(
        a[0],
        TurnAction::Tool(ToolCall::SendDtmf { digits: "1".into() })
    );
    let TurnAction::StartLlm(req) = a.last().unwrap() else {
        panic!("the model is called again: {a:?}")
    };
    let n = req.messages.len();
    assert_eq!(req.messages[n - 3].tool_calls.len(), 2);
    assert_eq!(req.messages[n - 2].content, "Sent the keys 1.");
    assert!(
        req.messages[n - 1].content.contains("transfer failed")
            && req.messages[n - 1].content.contains("not available"),
        "a tool not enabled is refused: {}",
        req.messages[n - 1].content
    );
    assert_eq!(req.tools.as_array().unwrap().len(), 3);
}

#[test]
fn barge_in_keeps_only_what_the_caller_heard() {
    let mut e = in_turn("What do you offer?");
    let a = e.handle(text("We offer free assessments. They take an hour. "));
    assert_eq!(pushes(&a).len(), 2);
    // Two chunks: the first completes sentence one ("We offer free assessments. " = 27 bytes).
    let m1 = marks(&e.handle(audio(Some(27))))[0];
    let _m2 = marks(&e.handle(audio(Some(49))))[0];
    e.handle(text("Would you like one?"));
    e.handle(TurnEvent::MarkPlayed(m1));
    // The caller talks over the second sentence while the model is still writing.
    let a = e.handle(TurnEvent::BargeIn {
        last_played: Some(m1),
    });
    assert_eq!(a, [TurnAction::CancelLlm, TurnAction::CancelTts]);
    let last = e.history().last().unwrap();
    assert_eq!(
        (last.role, last.content.as_str()),
        (Role::Assistant, "We offer free assessments.")
    );
    // Late deltas of the cancelled completion are ignored; the next turn starts clean.
    assert!(e.handle(text("ignored. ")).is_empty());
    let a = e.handle(TurnEvent::UserText("How long?".into()));
    let TurnAction::StartLlm(req) = &a[0] else {
        panic!("{a:?}")
    };
    let n = req.messages.len();
    assert_eq!(req.messages[n - 2].content, "We offer free assessments.");
    assert_eq!(req.messages[n - 1].content, "How long?");
}

#[test]
fn barge_in_after_the_reply_is_committed_truncates_it() {
    let mut e = in_turn("Hello?");
    e.handle(text("Hello there. I am calling about solar."));
    e.handle(audio(Some(13)));
    let a = e.handle(done("stop"));
    assert!(a.contains(&TurnAction::FinishTts));
    e.handle(audio(None));
    e.handle(TurnEvent::TtsEnded);
    // Nothing played yet: the caller heard none of it.
    e.handle(TurnEvent::BargeIn { last_played: None });
    let last = e.history().last().unwrap();
    assert_eq!((last.role, last.content.as_str()), (Role::Assistant, ""));
}

#[test]
fn dtmf_is_user_input() {
    let mut e = in_turn("hi");
    e.handle(done("stop"));
    let a = e.handle(TurnEvent::Dtmf('9'));
    let TurnAction::StartLlm(req) = &a[0] else {
        panic!("{a:?}")
    };
    let last = req.messages.last().unwrap();
    assert_eq!(last.role, Role::User);
    assert!(last.content.contains("key 9"), "{}", last.content);
}

fn failed(stage: StageKind) -> TurnEvent {
    TurnEvent::Failed {
        stage,
        error: StageError::Provider {
            stage: "llm openai".into(),
            reason: "HTTP 500".into(),
        },
    }
}

#[test]
fn provider_failure_says_the_fallback_retries_then_ends_with_agent_error() {
    let mut e = in_turn("Tell me more.");
    e.handle(text("Half a sentence"));
    let a = e.handle(failed(StageKind::Llm));
    assert_eq!(a[0], TurnAction::CancelLlm);
    assert_eq!(a[1], TurnAction::SayFallback("Sorry, one moment.".into()));
    let TurnAction::StartLlm(req) = &a[2] else {
        panic!("the turn is retried: {a:?}")
    };
    assert_eq!(req.messages.last().unwrap().content, "Tell me more.");
    let a = e.handle(failed(StageKind::Llm));
    assert_eq!(
        a,
        [
            TurnAction::CancelLlm,
            TurnAction::Hangup {
                outcome: AGENT_ERROR.into()
            }
        ]
    );
    assert_eq!(e.ending(), Some(AGENT_ERROR));
    assert!(e.handle(TurnEvent::UserText("hello?".into())).is_empty());
}

#[test]
fn a_success_between_failures_resets_the_count() {
    let mut e = in_turn("One.");
    e.handle(failed(StageKind::Llm));
    e.handle(text("Fine."));
    e.handle(done("stop"));
    e.handle(audio(None));
    e.handle(TurnEvent::TtsEnded);
    e.handle(TurnEvent::UserText("Two.".into()));
    let a = e.handle(failed(StageKind::Tts));
    assert!(a.contains(&TurnAction::SayFallback("Sorry, one moment.".into())));
    assert!(e.ending().is_none());
}

#[test]
fn stt_failure_listens_again_and_tts_failure_in_greeting_regreets() {
    let mut e = TurnEngine::new(settings(), 1);
    e.handle(TurnEvent::Start);
    let a = e.handle(failed(StageKind::Tts));
    assert_eq!(a[0], TurnAction::CancelTts);
    assert_eq!(a[1], TurnAction::SayFallback("Sorry, one moment.".into()));
    assert_eq!(pushes(&a), ["Hi, this is an automated assistant."]);
    assert_eq!(e.history().len(), 2, "the greeting is recorded once");

    let mut e = in_turn("hi");
    e.handle(done("stop"));
    let a = e.handle(failed(StageKind::Stt));
    assert_eq!(a, [TurnAction::SayFallback("Sorry, one moment.".into())]);
}

#[test]
fn tool_rounds_are_capped() {
    let mut e = in_turn("go");
    let mut starts = 0;
    for i in 0..10 {
        e.handle(tool(
            0,
            &format!("c{i}"),
            "set_outcome",
            "{\"disposition\":\"x\"}",
        ));
        let a = e.handle(done("tool_calls"));
        starts += a
            .iter()
            .filter(|x| matches!(x, TurnAction::StartLlm(_)))
            .count();
    }
    assert_eq!(starts, 3, "max_tool_rounds = 4 completions per turn");
    let _ = LlmToolCall::default();
}

/// An engine whose greeting has played out.
fn greeted() -> TurnEngine {
    let mut e = TurnEngine::new(settings(), 1);
    e.handle(TurnEvent::Start);
    let m = marks(&e.handle(audio(None)));
    e.handle(TurnEvent::TtsEnded);
    e.handle(TurnEvent::MarkPlayed(m[0]));
    e
}

#[test]
fn silence_reprompts_then_says_the_hang_up_line_and_ends_with_no_response() {
    let mut e = greeted();
    assert_eq!(e.no_input_ms(), 6000);
    for _ in 0..2 {
        let a = e.handle(TurnEvent::NoInput);
        assert_eq!(pushes(&a), ["Are you still there?"], "{a:?}");
        assert!(a.contains(&TurnAction::FinishTts));
        // Busy speaking: a NoInput now is ignored.
        assert!(e.handle(TurnEvent::NoInput).is_empty());
        let m = marks(&e.handle(audio(None)));
        assert!(e.handle(TurnEvent::TtsEnded).is_empty());
        e.handle(TurnEvent::MarkPlayed(m[0]));
    }
    let a = e.handle(TurnEvent::NoInput);
    assert_eq!(pushes(&a), ["Goodbye."]);
    assert_eq!(e.ending(), Some(NO_RESPONSE));
    e.handle(audio(None));
    let a = e.handle(TurnEvent::TtsEnded);
    assert_eq!(
        a,
        [TurnAction::Hangup {
            outcome: NO_RESPONSE.into()
        }]
    );
    let said: Vec<&str> = e
        .history()
        .iter()
        .filter(|m| m.role == Role::Assistant)
        .map(|m| m.content.as_str())
        .collect();
    assert_eq!(
        said,
        [
            "Hi, this is an automated assistant.",
            "Are you still there?",
            "Are you still there?",
            "Goodbye."
        ]
    );
}

#[test]
fn the_caller_speaking_resets_the_reprompt_count() {
    let mut e = greeted();
    e.handle(TurnEvent::NoInput);
    let m = marks(&e.handle(audio(None)));
    e.handle(TurnEvent::TtsEnded);
    e.handle(TurnEvent::MarkPlayed(m[0]));
    // Key 5 is user input: the count starts again.
    e.handle(TurnEvent::Dtmf('5'));
    e.handle(text("Sure."));
    e.handle(done("stop"));
    let m = marks(&e.handle(audio(None)));
    e.handle(TurnEvent::TtsEnded);
    e.handle(TurnEvent::MarkPlayed(m[0]));
    for _ in 0..2 {
        let a = e.handle(TurnEvent::NoInput);
        assert_eq!(pushes(&a), ["Are you still there?"]);
        let m = marks(&e.handle(audio(None)));
        e.handle(TurnEvent::TtsEnded);
        e.handle(TurnEvent::MarkPlayed(m[0]));
    }
    assert!(e.ending().is_none());
    e.handle(TurnEvent::NoInput);
    assert_eq!(e.ending(), Some(NO_RESPONSE));
}

/// An engine whose model said a line and called `transfer`; the actions of that round.
fn transferring() -> (TurnEngine, Vec<TurnAction>) {
    let mut with_transfer = settings();
    with_transfer.tools.push("transfer");
    let mut e = in_turn_with(with_transfer, "Can I talk to a person?");
    e.handle(text("Sure, transferring you now."));
    e.handle(tool(
        0,
        "call_1",
        "transfer",
        "{\"target\":\"sip:desk@pbx.example\"}",
    ));
    let a = e.handle(done("tool_calls"));
    (e, a)
}

#[test]
fn transfer_ends_the_turn_after_its_line_like_end_call() {
    let (mut e, a) = transferring();
    assert!(
        a.contains(&TurnAction::Tool(ToolCall::Transfer {
            target: "sip:desk@pbx.example".into()
        })),
        "{a:?}"
    );
    assert!(
        !a.iter().any(|x| matches!(x, TurnAction::StartLlm(_))),
        "{a:?}"
    );
    let result = e
        .history()
        .iter()
        .find(|m| m.role == Role::Tool)
        .map(|m| m.content.clone())
        .unwrap();
    assert!(result.contains("transferred"), "{result}");
    e.handle(audio(None));
    let a = e.handle(TurnEvent::TtsEnded);
    assert!(
        matches!(a.as_slice(), [TurnAction::Hangup { .. }]),
        "the app transfers when this hang-up's mark is played: {a:?}"
    );
}

#[test]
fn a_failed_transfer_goes_back_to_the_model_with_the_reason() {
    let (mut e, _) = transferring();
    e.handle(audio(None));
    e.handle(TurnEvent::TtsEnded);
    assert!(e.ending().is_some());
    let a = e.handle(TurnEvent::TransferFailed(
        "sip:desk@pbx.example answered 486".into(),
    ));
    assert!(e.ending().is_none(), "the call goes on");
    let Some(TurnAction::StartLlm(request)) = a.first() else {
        panic!("the model speaks next: {a:?}");
    };
    let note = request.messages.last().unwrap();
    assert_eq!(note.role, Role::System);
    assert!(note.content.contains("answered 486"), "{}", note.content);
    // The reply is spoken, and a later end_call still hangs up.
    e.handle(text("Sorry, the desk is busy. Can I book a callback?"));
    let a = e.handle(done("stop"));
    assert!(
        a.iter()
            .any(|x| matches!(x, TurnAction::PushTts(_)) || matches!(x, TurnAction::FinishTts)),
        "{a:?}"
    );
    // Without a transfer under way the event changes nothing.
    let mut idle = in_turn_with(settings(), "Hello?");
    assert!(
        idle.handle(TurnEvent::TransferFailed("x".into()))
            .is_empty()
    );
}

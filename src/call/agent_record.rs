//! Stores what an agent learned on a call (its [`AgentReport`]) with the call's record: the
//! disposition, notes, tool calls and latencies go in the call row; the transcript turns in
//! the transcript table (then `transcript.ready`); a `schedule_callback` request in the
//! callbacks table; an opt-out puts the caller's number on the do-not-call list (which emits
//! `lead.opted_out`).

use serde_json::json;

use crate::agent::report::AgentReport;
use crate::leads::phone::normalize_phone;
use crate::sip::uri::Uri;
use crate::store::callbacks::NewCallback;
use crate::store::calls::{CallRecordRow, TranscriptTurn};
use crate::store::events::EventType;
use crate::store::{AccountId, Store};

/// The reason stored with a do-not-call entry the agent made.
pub const OPT_OUT_REASON: &str = "opted out during call";

/// Fills the agent's columns of a call row.
pub fn fill_row(report: &AgentReport, row: &mut CallRecordRow) {
    row.disposition = report.disposition.clone();
    row.notes = report.notes.clone();
    row.tool_calls = serde_json::to_value(&report.tool_calls).unwrap_or_else(|_| json!([]));
    row.latency = serde_json::to_value(&report.latency).unwrap_or_else(|_| json!([]));
}

/// The transcript as stored: turns numbered from 0 in order.
pub fn transcript(report: &AgentReport) -> Vec<TranscriptTurn> {
    report
        .turns
        .iter()
        .enumerate()
        .map(|(i, t)| TranscriptTurn {
            seq: i as i32,
            speaker: t.speaker.as_str().to_owned(),
            text: t.text.clone(),
            start_ms: t.start_ms as i64,
            end_ms: t.end_ms as i64,
            interrupted: t.interrupted,
        })
        .collect()
}

/// The caller's number in E.164 from a From URI (`sip:+14155550100@host`), if it is one.
pub fn caller_number(from: &str) -> Option<String> {
    let user = Uri::parse(from).ok()?.user?;
    let user = user.split(';').next().unwrap_or_default();
    normalize_phone(user, None)
        .ok()
        .map(|n| n.as_str().to_owned())
}

/// Stores the transcript and the opt-out of the call `call_id` (its row is already stored).
pub async fn store(store: &Store, account: &AccountId, call_id: &str, from: &str, r: &AgentReport) {
    let turns = transcript(r);
    if !turns.is_empty() {
        match store.add_transcript(account, call_id, &turns).await {
            Ok(()) => {
                let payload = json!({"call_id": call_id, "turns": turns.len()});
                let event = EventType::TranscriptReady;
                if let Err(e) = store
                    .emit_event(account, event, Some(call_id), None, payload)
                    .await
                {
                    tracing::error!(call = call_id, error = %e, "transcript.ready event not stored");
                }
            }
            Err(e) => tracing::error!(call = call_id, error = %e, "transcript not stored"),
        }
    }
    if let Some(cb) = &r.callback {
        let new = NewCallback {
            call_id: call_id.to_owned(),
            lead_id: None,
            phone: caller_number(from),
            requested: cb.when.clone(),
            note: cb.note.clone(),
        };
        match store.add_callback(account, &new).await {
            Ok(c) => tracing::info!(call = call_id, callback = %c.id, "callback request stored"),
            Err(e) => tracing::error!(call = call_id, error = %e, "callback request not stored"),
        }
    }
    if !r.opt_out {
        return;
    }
    let Some(number) = caller_number(from) else {
        tracing::warn!(
            call = call_id,
            "caller opted out but the From user is not a phone number; no do-not-call entry"
        );
        return;
    };
    match store
        .add_dnc(
            account,
            &number,
            Some(OPT_OUT_REASON),
            "call",
            Some(call_id),
        )
        .await
    {
        Ok(_) => tracing::info!(
            call = call_id,
            "caller opted out; number on the do-not-call list"
        ),
        Err(e) => tracing::error!(call = call_id, error = %e, "do-not-call entry not stored"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::report::Speaker;

    #[test]
    fn the_caller_number_comes_from_a_phone_from_user_only() {
        assert_eq!(
            caller_number("sip:+14155552671@127.0.0.1").as_deref(),
            Some("+14155552671")
        );
        assert_eq!(caller_number("sip:test@127.0.0.1"), None);
        assert_eq!(caller_number("not a uri"), None);
    }

    #[test]
    fn the_report_fills_the_row_and_numbers_the_transcript() {
        let mut r = AgentReport::new("scripted");
        r.tool(
            &crate::agent::ToolCall::SetOutcome {
                disposition: "booked".into(),
                notes: Some("friday".into()),
            },
            10,
        );
        r.say(Speaker::Agent, "Hello.", (0, 900), false);
        r.say(Speaker::Caller, "hi", (1000, 1400), false);
        let mut row = CallRecordRow {
            id: String::new(),
            direction: crate::store::calls::Direction::Inbound,
            from: String::new(),
            to: String::new(),
            trunk: None,
            campaign_id: None,
            lead_id: None,
            sip_call_id: None,
            status: "ended".into(),
            setup_at: 0,
            ring_at: None,
            answer_at: None,
            end_at: None,
            duration_ms: None,
            outcome: None,
            disposition: None,
            notes: None,
            hangup_cause: None,
            sip_code: None,
            media_stats: json!(null),
            latency: json!([]),
            tool_calls: json!([]),
        };
        fill_row(&r, &mut row);
        assert_eq!(row.disposition.as_deref(), Some("booked"));
        assert_eq!(row.notes.as_deref(), Some("friday"));
        assert_eq!(row.tool_calls[0]["name"], "set_outcome");
        assert_eq!(row.tool_calls[0]["arguments"]["disposition"], "booked");
        let t = transcript(&r);
        assert_eq!((t[0].seq, t[0].speaker.as_str()), (0, "agent"));
        assert_eq!((t[1].seq, t[1].text.as_str(), t[1].end_ms), (1, "hi", 1400));
    }
}

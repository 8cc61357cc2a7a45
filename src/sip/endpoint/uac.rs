//! The UAC half of the endpoint: placing INVITEs, digest retries on 401/407, ACK for 2xx,
//! CANCEL before answer (RFC 3261 §13.2, §22.2, §9.1).

use super::{CallId, CallState, Dialog, EndReason, Endpoint, Event, Peer};
use crate::sip::digest::{Challenge, Credentials, DigestClient, pick_best};
use crate::sip::headers::NameAddr;
use crate::sip::message::{Method, Request, Response};
use crate::sip::uri::Uri;
use crate::sip::validate::ResponseCore;
use bytes::Bytes;
use std::time::Instant;

/// What the call layer asks for when it places a call.
#[derive(Debug, Clone)]
pub struct OutboundCall {
    /// The Request-URI (the callee at the trunk).
    pub target: Uri,
    /// Our identity (From), e.g. `<sip:+15550100@trunk.example>`.
    pub from: NameAddr,
    /// The callee (To), usually the target URI.
    pub to: NameAddr,
    /// Next hop: the trunk or its outbound proxy.
    pub peer: Peer,
    /// SDP offer.
    pub sdp: Bytes,
    /// Digest credentials used when the trunk challenges.
    pub credentials: Option<Credentials>,
    /// Extra headers (e.g. P-Asserted-Identity).
    pub headers: Vec<(String, String)>,
}

/// UAC bookkeeping of a dialog we initiated.
#[derive(Debug)]
pub(super) struct UacState {
    call: OutboundCall,
    digest: DigestClient,
    /// Branch of the INVITE now in flight (CANCEL reuses it).
    branch: String,
    /// Our ACK to the 2xx, resent when the 2xx is retransmitted.
    ack: Option<Bytes>,
    cancelled: bool,
}

impl Endpoint {
    /// Places a call; progress arrives as `CallProgress` / `CallAnswered` / `CallEnded`.
    pub fn invite(&mut self, now: Instant, call: OutboundCall) -> CallId {
        let id = CallId(self.next_call);
        self.next_call += 1;
        let local_tag = self.random_token();
        let call_id = format!("{}@{}", self.random_token(), self.cfg.advertised_host);
        let seq = self.random_seq();
        let dialog = Dialog {
            call_id: call_id.clone(),
            local_tag: local_tag.clone(),
            remote_tag: None,
            local: call.from.clone(),
            remote: call.to.clone(),
            remote_target: call.target.clone(),
            route_set: Vec::new(),
            local_seq: seq,
            remote_seq: 0,
            peer: call.peer,
            state: CallState::Early,
            invite_tx: None,
            ok_bytes: None,
            ok_resend_at: None,
            ok_interval: self.cfg.timers.t1,
            ok_give_up: None,
            ok_cseq: seq,
            uac: Some(UacState {
                call,
                digest: DigestClient::new(),
                branch: String::new(),
                ack: None,
                cancelled: false,
            }),
            session: None,
        };
        self.by_dialog.insert((call_id, local_tag), id);
        self.dialogs.insert(id, dialog);
        self.send_invite(now, id, None);
        id
    }

    fn send_invite(&mut self, now: Instant, id: CallId, auth: Option<(&'static str, String)>) {
        let ua = self.cfg.user_agent.clone();
        let Some(peer) = self.dialogs.get(&id).map(|d| d.peer) else {
            return;
        };
        let via = self.new_via(peer.transport);
        let branch = via_branch(&via);
        let contact = self.contact(peer.transport);
        let Some(d) = self.dialogs.get_mut(&id) else {
            return;
        };
        let Some(uac) = d.uac.as_mut() else { return };
        uac.branch = branch.clone();
        let mut req = Request::new(Method::Invite, uac.call.target.to_string());
        req.headers.push("Via", via);
        req.headers.push("Max-Forwards", "70");
        let mut from = d.local.clone();
        from.params.set("tag", Some(&d.local_tag));
        req.headers.push("From", from.to_string());
        req.headers.push("To", d.remote.to_string());
        req.headers.push("Call-ID", d.call_id.clone());
        req.headers.push("CSeq", format!("{} INVITE", d.local_seq));
        req.headers.push("Contact", contact);
        req.headers.push("Allow", super::ALLOW);
        req.headers.push("Supported", "timer, replaces");
        req.headers.push(
            "Session-Expires",
            super::session_timer::DEFAULT_SE.to_string(),
        );
        req.headers.push("User-Agent", ua);
        for (k, v) in &uac.call.headers {
            req.headers.push(k, v.clone());
        }
        if let Some((name, value)) = auth {
            req.headers.push(name, value);
        }
        req.headers.push("Content-Type", "application/sdp");
        req.body = uac.call.sdp.clone();
        d.ok_cseq = d.local_seq;
        self.start_client_tx(now, req, peer, Some(id), None);
    }

    /// CANCEL for our pending INVITE (§9.1): same branch, Request-URI, Call-ID, From, To.
    pub(super) fn send_cancel(&mut self, now: Instant, id: CallId) {
        let Some(d) = self.dialogs.get_mut(&id) else {
            return;
        };
        let Some(uac) = d.uac.as_mut() else { return };
        if uac.cancelled {
            return;
        }
        uac.cancelled = true;
        let invite_key = format!("{}|INVITE", uac.branch);
        let Some(invite) = self.client.get(&invite_key).and_then(|e| e.request.clone()) else {
            return;
        };
        let mut cancel = Request::new(Method::Cancel, invite.uri.clone());
        for name in ["Via", "From", "To", "Call-ID"] {
            if let Some(v) = invite.headers.get(name) {
                cancel.headers.push(name, v);
            }
        }
        let seq = invite
            .headers
            .get("CSeq")
            .and_then(|c| c.split_whitespace().next())
            .unwrap_or("1")
            .to_string();
        cancel.headers.push("CSeq", format!("{seq} CANCEL"));
        cancel.headers.push("Max-Forwards", "70");
        let peer = d.peer;
        self.start_client_tx(now, cancel, peer, None, None);
    }

    /// A response to one of our INVITE client transactions.
    pub(super) fn on_invite_response(
        &mut self,
        now: Instant,
        key: String,
        resp: Response,
        core: ResponseCore,
    ) {
        let Some(super::Delivered { call: Some(id), .. }) = self.step_client(now, &key, &resp)
        else {
            return;
        };
        match resp.status {
            100 => {}
            101..=199 => {
                if let (Some(d), Some(tag)) = (self.dialogs.get_mut(&id), core.to.tag()) {
                    d.remote_tag.get_or_insert_with(|| tag.to_string());
                }
                self.events.push_back(Event::CallProgress {
                    call: id,
                    status: resp.status,
                    body: resp.body,
                });
            }
            200..=299 => self.on_invite_2xx(now, id, &resp, &core),
            401 | 407 => self.on_challenge(now, id, &resp),
            status => {
                let cancelled = self
                    .dialogs
                    .get(&id)
                    .and_then(|d| d.uac.as_ref())
                    .is_some_and(|u| u.cancelled);
                let reason = if cancelled && status == 487 {
                    EndReason::Cancelled
                } else {
                    EndReason::Failed(status)
                };
                self.end_call(id, reason);
            }
        }
    }

    fn on_invite_2xx(&mut self, now: Instant, id: CallId, resp: &Response, core: &ResponseCore) {
        let Some(d) = self.dialogs.get_mut(&id) else {
            return;
        };
        d.remote_tag = core.to.tag().map(str::to_string);
        if let Some(c) = core.contacts.first() {
            d.remote_target = c.uri.clone();
        }
        // §12.1.2: the UAC's route set is the Record-Route list in reverse order.
        d.route_set = resp
            .headers
            .values("Record-Route")
            .into_iter()
            .rev()
            .map(str::to_string)
            .collect();
        d.state = CallState::Confirmed;
        let seq = d.ok_cseq;
        let cancelled = d.uac.as_ref().is_some_and(|u| u.cancelled);
        let ack = self.send_ack_2xx(id, seq);
        if let Some(u) = self.dialogs.get_mut(&id).and_then(|d| d.uac.as_mut()) {
            u.ack = ack;
        }
        if cancelled {
            // The 2xx crossed our CANCEL: the call exists now, so end it with BYE.
            self.send_bye(now, id);
            return;
        }
        let offer = self
            .dialogs
            .get(&id)
            .and_then(|d| d.uac.as_ref())
            .map(|u| u.call.sdp.clone())
            .unwrap_or_default();
        self.session_from_2xx(now, id, resp, offer);
        self.events.push_back(Event::CallAnswered {
            call: id,
            body: resp.body.clone(),
        });
    }

    /// A retransmitted 2xx (our ACK was lost): resend the ACK.
    pub(super) fn on_2xx_retransmission(&mut self, core: &ResponseCore) {
        let Some(tag) = core.from.tag() else { return };
        let Some(&id) = self.by_dialog.get(&(core.call_id.clone(), tag.to_string())) else {
            return;
        };
        let Some(d) = self.dialogs.get(&id) else {
            return;
        };
        if let Some(ack) = d.uac.as_ref().and_then(|u| u.ack.clone()) {
            let peer = d.peer;
            self.stats.retransmissions_absorbed += 1;
            self.send(peer, ack);
        }
    }

    fn on_challenge(&mut self, now: Instant, id: CallId, resp: &Response) {
        let (header_in, header_out) = if resp.status == 407 {
            ("Proxy-Authenticate", "Proxy-Authorization")
        } else {
            ("WWW-Authenticate", "Authorization")
        };
        let challenges = Challenge::parse_all(resp.headers.get_all(header_in));
        let Some(d) = self.dialogs.get_mut(&id) else {
            return;
        };
        let Some(uac) = d.uac.as_mut() else { return };
        let authorization = match (pick_best(&challenges), uac.call.credentials.as_ref()) {
            (Some(ch), Some(creds)) if !uac.digest.is_repeat_failure(ch) => uac
                .digest
                .authorize(
                    ch,
                    "INVITE",
                    &uac.call.target.to_string(),
                    &uac.call.sdp,
                    creds,
                )
                .ok(),
            _ => None,
        };
        match authorization {
            Some(value) => {
                d.local_seq += 1;
                self.send_invite(now, id, Some((header_out, value)));
            }
            None => {
                tracing::info!(call = %id, status = resp.status, "authentication failed or no credentials");
                self.end_call(id, EndReason::Failed(resp.status));
            }
        }
    }
}

/// The ACK for a non-2xx final response (§17.1.1.3): same Request-URI, top Via, From,
/// Call-ID and CSeq number as the INVITE; To from the response; Route from the INVITE.
pub(super) fn ack_for_non_2xx(invite: Option<&Request>, resp: &Response) -> Request {
    let Some(invite) = invite else {
        return Request::new(Method::Ack, "sip:invalid");
    };
    let mut ack = Request::new(Method::Ack, invite.uri.clone());
    if let Some(v) = invite.headers.get("Via") {
        ack.headers.push("Via", v);
    }
    ack.headers.push("Max-Forwards", "70");
    for name in ["From", "Call-ID"] {
        if let Some(v) = invite.headers.get(name) {
            ack.headers.push(name, v);
        }
    }
    if let Some(v) = resp.headers.get("To") {
        ack.headers.push("To", v);
    }
    let seq = invite
        .headers
        .get("CSeq")
        .and_then(|c| c.split_whitespace().next())
        .unwrap_or("1");
    ack.headers.push("CSeq", format!("{seq} ACK"));
    for r in invite.headers.get_all("Route") {
        ack.headers.push("Route", r);
    }
    ack
}

/// The branch parameter of a Via value we built.
fn via_branch(via: &str) -> String {
    via.split(";branch=")
        .nth(1)
        .and_then(|b| b.split(';').next())
        .unwrap_or_default()
        .to_string()
}

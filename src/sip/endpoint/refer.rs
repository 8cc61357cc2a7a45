//! Blind transfer as the transferor (RFC 3515, RFC 5589): REFER the remote party to a
//! target, follow the NOTIFY sipfrag progress, report it to the call layer.

use super::{CallId, Endpoint, Event, Other};
use crate::sip::message::{Method, Request, Response};
use crate::sip::uri::Uri;
use std::time::Instant;

/// The status line of a `message/sipfrag` body (`SIP/2.0 200 OK`).
pub fn sipfrag_status(body: &[u8]) -> Option<u16> {
    let text = std::str::from_utf8(body).ok()?;
    let line = text.lines().next()?.trim();
    let mut parts = line.split(' ');
    let version = parts.next()?;
    if !version.eq_ignore_ascii_case("SIP/2.0") {
        return None;
    }
    let code = parts.next()?;
    (code.len() == 3).then(|| code.parse().ok()).flatten()
}

impl Endpoint {
    /// Asks the remote party of `call` to call `target` (REFER with Refer-To). Progress
    /// arrives as `TransferProgress` events: the REFER's own final status, then the status
    /// of the transferee's new call from each NOTIFY.
    pub fn refer(&mut self, now: Instant, call: CallId, target: &Uri) -> bool {
        let Some((mut req, peer)) = self.in_dialog_request(call, Method::Refer) else {
            return false;
        };
        let referred_by = self
            .dialogs
            .get(&call)
            .map(|d| format!("<{}>", d.local.uri))
            .unwrap_or_default();
        req.headers.push("Refer-To", format!("<{target}>"));
        req.headers.push("Referred-By", referred_by);
        req.headers.push("Contact", self.contact(peer.transport));
        self.start_client_tx(now, req, peer, Some(call), Some(Other::Refer(call)));
        true
    }

    /// The final response to our REFER.
    pub(super) fn on_refer_final(&mut self, call: CallId, resp: &Response) {
        self.events.push_back(Event::TransferProgress {
            call,
            status: resp.status,
            from_notify: false,
        });
    }

    /// A NOTIFY inside a dialog: a refer subscription's sipfrag becomes a progress event.
    pub(super) fn on_notify(&mut self, call: CallId, req: &Request) -> u16 {
        let is_refer = req.headers.get("Event").is_some_and(|e| {
            e.split(';')
                .next()
                .is_some_and(|p| p.trim().eq_ignore_ascii_case("refer"))
        });
        if !is_refer {
            return 489;
        }
        if let Some(status) = sipfrag_status(&req.body) {
            self.events.push_back(Event::TransferProgress {
                call,
                status,
                from_notify: true,
            });
        }
        200
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sipfrag_status_line() {
        assert_eq!(sipfrag_status(b"SIP/2.0 100 Trying\r\n"), Some(100));
        assert_eq!(sipfrag_status(b"SIP/2.0 200 OK"), Some(200));
        assert_eq!(sipfrag_status(b"HTTP/1.1 200 OK"), None);
        assert_eq!(sipfrag_status(b"SIP/2.0 20 OK"), None);
        assert_eq!(sipfrag_status(&[0xff, 0xfe]), None);
    }
}

//! DTMF carried in SIP INFO bodies: `application/dtmf-relay` (`Signal=5` / `Duration=160`
//! lines, as Cisco and most PBXes send) and `application/dtmf` (the bare key).

/// The key and duration (ms, 0 when not given) in an INFO body, if it carries one.
pub fn parse(content_type: &str, body: &[u8]) -> Option<(char, u32)> {
    let ctype = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let body = std::str::from_utf8(body).ok()?;
    match ctype.as_str() {
        "application/dtmf-relay" => {
            let mut key = None;
            let mut duration = 0;
            for line in body.lines() {
                let Some((name, value)) = line.split_once('=') else {
                    continue;
                };
                let value = value.trim();
                match name.trim().to_ascii_lowercase().as_str() {
                    "signal" => key = digit(value),
                    "duration" => duration = value.parse().unwrap_or(0),
                    _ => {}
                }
            }
            key.map(|k| (k, duration))
        }
        "application/dtmf" => digit(body.trim()).map(|k| (k, 0)),
        _ => None,
    }
}

/// One key from its text form: `0`-`9`, `*`, `#`, `A`-`D`, or the event codes 10 (`*`)
/// and 11 (`#`) that some devices put in `Signal=`.
fn digit(value: &str) -> Option<char> {
    match value {
        "10" => return Some('*'),
        "11" => return Some('#'),
        _ => {}
    }
    let mut chars = value.chars();
    let c = chars.next()?.to_ascii_uppercase();
    (chars.next().is_none() && matches!(c, '0'..='9' | '*' | '#' | 'A'..='D')).then_some(c)
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn relay_and_plain_bodies() {
        assert_eq!(
            parse("application/dtmf-relay", b"Signal=5\r\nDuration=160\r\n"),
            Some(('5', 160))
        );
        assert_eq!(
            parse("Application/DTMF-Relay; x=y", b"Signal= #\nDuration= 250"),
            Some(('#', 250))
        );
        assert_eq!(
            parse("application/dtmf-relay", b"Signal=11"),
            Some(('#', 0))
        );
        assert_eq!(parse("application/dtmf", b"*\r\n"), Some(('*', 0)));
        assert_eq!(parse("application/dtmf", b"d"), Some(('D', 0)));
    }

    #[test]
    fn rejects_what_is_not_a_key() {
        assert_eq!(parse("application/dtmf-relay", b"Signal=55"), None);
        assert_eq!(parse("application/dtmf-relay", b"Duration=100"), None);
        assert_eq!(parse("application/dtmf", b"E"), None);
        assert_eq!(parse("text/plain", b"5"), None);
        assert_eq!(parse("application/dtmf", &[0xff, 0xfe]), None);
    }
}

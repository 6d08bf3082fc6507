//! Secrets: compared in constant time, and kept out of messages and logs.

/// Compares two secrets in time that depends only on their lengths.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The URL with any password replaced, for messages. The user information ends at the last `@`
/// before the query, not at the first `/`: a password typed with a `/` in it (`smtp://u:p/ss@h`)
/// is not percent-encoded by everyone who writes one, and must not show either.
pub fn redact(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_owned();
    };
    let rest = &url[scheme_end..];
    let before_query = rest.find(['?', '#']).unwrap_or(rest.len());
    match rest[..before_query].rfind('@') {
        Some(at) => match rest[..at].find(':') {
            Some(colon) => format!("{}{}:***{}", &url[..scheme_end], &rest[..colon], &rest[at..]),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn redact_hides_only_the_password() {
        assert_eq!(redact("postgres://u:secret@db:5432/x"), "postgres://u:***@db:5432/x");
        assert_eq!(redact("postgres://u@localhost/x?host=/tmp"), "postgres://u@localhost/x?host=/tmp");
        assert_eq!(redact("postgres://db/x"), "postgres://db/x");
        assert_eq!(redact("smtp://user:p/ss@mail.example:587"), "smtp://user:***@mail.example:587");
        assert_eq!(redact("imaps://u:a@b/c@imap.example/INBOX"), "imaps://u:***@imap.example/INBOX");
        assert_eq!(redact("smtp://u:pass@h?x=@y"), "smtp://u:***@h?x=@y");
    }
}

//! Validation of the `returnTo` target: same-origin relative paths only.

/// Where users land after sign-in when no valid target is given.
pub const DEFAULT_RETURN_TO: &str = "/dashboard";

/// Accepts `/path?query#frag` on this origin; refuses `//host`, `/\host`, absolute URLs,
/// schemes such as `javascript:`, control characters and backslashes anywhere.
pub fn validate_return_to(raw: &str) -> Option<&str> {
    if raw.len() > 2048 || !raw.starts_with('/') {
        return None;
    }
    if raw.starts_with("//") || raw.contains('\\') || raw.chars().any(|c| c.is_control()) {
        return None;
    }
    // Percent-encoded slashes or backslashes at the start can be decoded by a later hop.
    let lower = raw.to_ascii_lowercase();
    if lower.starts_with("/%2f") || lower.starts_with("/%5c") {
        return None;
    }
    let base = url::Url::parse("http://origin.invalid/").ok()?;
    let joined = base.join(raw).ok()?;
    (joined.host_str() == Some("origin.invalid")).then_some(raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_origin_paths_pass() {
        for ok in ["/", "/dashboard", "/chat?thread=1#x", "/a/b/../c"] {
            assert_eq!(validate_return_to(ok), Some(ok), "{ok}");
        }
    }

    #[test]
    fn open_redirects_are_refused() {
        for bad in [
            "//evil.example",
            "/\\evil.example",
            "\\\\evil.example",
            "https://evil.example",
            "javascript:alert(1)",
            "evil.example",
            "",
            "/%2F%2Fevil.example",
            "/%5cevil.example",
            "/\t/evil.example",
            "/x\r\nSet-Cookie: a=b",
        ] {
            assert_eq!(validate_return_to(bad), None, "{bad:?}");
        }
        assert_eq!(validate_return_to(&format!("/{}", "a".repeat(3000))), None);
    }
}

#[cfg(test)]
mod fuzz {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Whatever comes in, an accepted target stays on this origin.
        #[test]
        fn accepted_targets_never_leave_the_origin(raw in "\\PC{0,40}|/[/\\\\%a-zA-Z0-9.:@?#&=-]{0,30}") {
            if let Some(ok) = validate_return_to(&raw) {
                let joined = url::Url::parse("http://origin.invalid/").and_then(|b| b.join(ok)).expect("joins");
                prop_assert_eq!(joined.host_str(), Some("origin.invalid"));
                prop_assert!(ok.starts_with('/') && !ok.starts_with("//") && !ok.contains('\\'));
            }
        }
    }
}

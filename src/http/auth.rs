//! Bearer tokens: whether a request may go where its route leads.

use super::route::Access;
use crate::config::Config;

/// Compares tokens in time independent of where they differ.
fn same_token(given: &str, expected: &str) -> bool {
    let (a, b) = (given.as_bytes(), expected.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Whether a request carrying `bearer` may have `access` under `config`'s
/// tokens (a token that is not set lets anyone in).
pub(crate) fn allowed(config: &Config, bearer: Option<&str>, access: Access) -> bool {
    let matches = |token: &Option<String>| match (token, bearer) {
        (Some(expected), Some(given)) => same_token(given, expected),
        _ => false,
    };
    let write_ok = config.write_token.is_none() || matches(&config.write_token);
    match access {
        Access::Anyone => true,
        Access::Writer => write_ok,
        // A reader needs the read token, or the write token (writers read too).
        Access::Reader => {
            config.read_token.is_none()
                || matches(&config.read_token)
                || (config.write_token.is_some() && matches(&config.write_token))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens() {
        assert!(same_token("abc", "abc"));
        assert!(!same_token("abd", "abc") && !same_token("ab", "abc"));
    }
}

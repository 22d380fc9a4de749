//! Redis's glob patterns (`KEYS`): `*` any run of bytes, `?` one byte, `[abc]`, `[a-z]` and
//! `[^...]` one byte of (or not of) a set, `\x` the byte `x` itself. Bytes, not characters,
//! as in Redis.

/// A compiled pattern.
#[derive(Debug)]
pub(crate) struct Glob {
    tokens: Vec<Token>,
}

#[derive(Debug, PartialEq, Eq)]
enum Token {
    Star,
    Any,
    Byte(u8),
    /// Inclusive ranges (a single byte is a range of one); `negated` for `[^...]`.
    Class {
        negated: bool,
        ranges: Vec<(u8, u8)>,
    },
}

impl Token {
    fn matches(&self, b: u8) -> bool {
        match self {
            Token::Star | Token::Any => true,
            Token::Byte(c) => *c == b,
            Token::Class { negated, ranges } => {
                ranges.iter().any(|&(lo, hi)| lo <= b && b <= hi) != *negated
            }
        }
    }
}

impl Glob {
    /// Compiles `pattern` as Redis reads it: a `[` without its `]` takes the rest of the
    /// pattern as its set, a trailing `\` is itself, and a reversed range (`[z-a]`) is the
    /// same as the right way round.
    pub(crate) fn new(pattern: &[u8]) -> Glob {
        let mut tokens = Vec::new();
        let mut i = 0;
        while i < pattern.len() {
            let t = match pattern[i] {
                // Runs of stars match as one.
                b'*' if tokens.last() == Some(&Token::Star) => {
                    i += 1;
                    continue;
                }
                b'*' => Token::Star,
                b'?' => Token::Any,
                b'\\' if i + 1 < pattern.len() => {
                    i += 1;
                    Token::Byte(pattern[i])
                }
                b'[' => {
                    i += 1;
                    let negated = pattern.get(i) == Some(&b'^');
                    if negated {
                        i += 1;
                    }
                    let mut ranges = Vec::new();
                    while i < pattern.len() && pattern[i] != b']' {
                        if pattern[i] == b'\\' && i + 1 < pattern.len() {
                            i += 1;
                            ranges.push((pattern[i], pattern[i]));
                        } else if i + 2 < pattern.len() && pattern[i + 1] == b'-' {
                            let (a, b) = (pattern[i], pattern[i + 2]);
                            ranges.push((a.min(b), a.max(b)));
                            i += 2;
                        } else {
                            ranges.push((pattern[i], pattern[i]));
                        }
                        i += 1;
                    }
                    Token::Class { negated, ranges }
                }
                b => Token::Byte(b),
            };
            tokens.push(t);
            i += 1;
        }
        Glob { tokens }
    }

    /// The bytes every matching key starts with (the pattern up to its first wildcard):
    /// where a scan for matches may start, and stop once keys no longer begin with it.
    pub(crate) fn literal_prefix(&self) -> Vec<u8> {
        self.tokens
            .iter()
            .map_while(|t| match t {
                Token::Byte(b) => Some(*b),
                _ => None,
            })
            .collect()
    }

    /// Whether `s` matches the whole pattern. Linear in `s` per star: on a mismatch after
    /// a star, only the last star takes one more byte (every other token matches exactly
    /// one byte, so no earlier choice needs revisiting).
    pub(crate) fn matches(&self, s: &[u8]) -> bool {
        let (mut t, mut i) = (0, 0);
        // The token after the last star seen, and where in `s` that star's run ends now.
        let mut star: Option<(usize, usize)> = None;
        while i < s.len() {
            match self.tokens.get(t) {
                Some(Token::Star) => {
                    star = Some((t + 1, i));
                    t += 1;
                }
                Some(tok) if tok.matches(s[i]) => {
                    t += 1;
                    i += 1;
                }
                _ => match star {
                    Some((after, run_end)) => {
                        star = Some((after, run_end + 1));
                        t = after;
                        i = run_end + 1;
                    }
                    None => return false,
                },
            }
        }
        self.tokens[t..].iter().all(|tok| *tok == Token::Star)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pattern: &str, s: &str) -> bool {
        Glob::new(pattern.as_bytes()).matches(s.as_bytes())
    }

    /// The cases of Redis's `stringmatchlen` documentation and tests.
    #[test]
    fn matches_as_redis() {
        assert!(m("*", ""));
        assert!(m("*", "anything"));
        assert!(m("h?llo", "hello") && m("h?llo", "hallo") && !m("h?llo", "hllo"));
        assert!(m("h*llo", "hllo") && m("h*llo", "heeeello"));
        assert!(m("h[ae]llo", "hello") && m("h[ae]llo", "hallo") && !m("h[ae]llo", "hillo"));
        assert!(m("h[^e]llo", "hallo") && !m("h[^e]llo", "hello"));
        assert!(m("h[a-b]llo", "hallo") && m("h[a-b]llo", "hbllo") && !m("h[a-b]llo", "hcllo"));
        assert!(m("h[b-a]llo", "hallo"), "a reversed range");
        assert!(m("h\\*llo", "h*llo") && !m("h\\*llo", "hello"));
        assert!(m("[\\]]", "]") && m("[a\\-z]", "-") && !m("[a\\-z]", "b"));
        assert!(m("a*b*c", "aXXbYYc") && !m("a*b*c", "aXXbYY"));
        assert!(m("*a*a*a*", "banana") && !m("*a*a*a*a*", "banana"));
        assert!(m("user:*:name", "user:42:name") && !m("user:*:name", "user:42:names"));
        assert!(m("ab\\", "ab\\"), "a trailing backslash is itself");
        assert!(m("[abc", "b"), "an unclosed class takes the rest");
        assert!(!m("a", "ab") && !m("ab", "a") && m("", "") && !m("", "a"));
    }

    /// A pattern of many stars against a long key that does not match: a backtracking
    /// matcher would take exponential time here (Redis bounds its recursion for it); this
    /// one does a few hundred thousand steps.
    #[test]
    fn many_stars_do_not_backtrack_exponentially() {
        let pattern = "a*".repeat(30) + "b";
        assert!(!m(&pattern, &"a".repeat(10_000)));
        assert!(m(&pattern, &("a".repeat(10_000) + "b")));
    }

    #[test]
    fn literal_prefix_stops_at_the_first_wildcard() {
        let p = |s: &str| Glob::new(s.as_bytes()).literal_prefix();
        assert_eq!(p("user:*"), b"user:");
        assert_eq!(p("a\\*b?"), b"a*b");
        assert_eq!(p("*x"), b"");
        assert_eq!(p("[ab]c"), b"");
        assert_eq!(p("exact"), b"exact");
    }
}

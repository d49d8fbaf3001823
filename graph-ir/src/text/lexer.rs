//! Splits one `.kir` line into tokens with 1-based character columns.
//!
//! Lines are independent (a statement never spans lines), so the parser can
//! report an error on one line and carry on with the next.

/// A token of one line.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
    /// `%N`
    Value(u32),
    /// A bare word: op names, attribute names, numbers, `true`, `nan`, `-inf`, dtypes.
    Word(String),
    /// A double-quoted string with escapes resolved.
    Str(String),
    Eq,
    Comma,
    Colon,
    LBrack,
    RBrack,
}

impl Tok {
    /// How the token reads in an error message.
    pub(crate) fn describe(&self) -> String {
        match self {
            Tok::Value(n) => format!("`%{n}`"),
            Tok::Word(w) => format!("`{w}`"),
            Tok::Str(s) => format!("string {s:?}"),
            Tok::Eq => "`=`".into(),
            Tok::Comma => "`,`".into(),
            Tok::Colon => "`:`".into(),
            Tok::LBrack => "`[`".into(),
            Tok::RBrack => "`]`".into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Token {
    pub tok: Tok,
    pub col: usize,
}

fn is_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '+' | '-')
}

/// Tokenizes a line; everything from an unquoted `#` on is a comment.
/// Returns the tokens and the column just past the last character (where an
/// "unexpected end of line" points), or the column and text of a lexical error.
pub(crate) fn lex_line(line: &str) -> Result<(Vec<Token>, usize), (usize, String)> {
    let chars: Vec<char> = line.chars().collect();
    let mut toks = Vec::new();
    let mut i = 0;
    let mut end = chars.len() + 1;
    while i < chars.len() {
        let c = chars[i];
        let col = i + 1;
        match c {
            '#' => {
                end = col;
                break;
            }
            c if c.is_whitespace() => i += 1,
            '=' | ',' | ':' | '[' | ']' => {
                let tok = match c {
                    '=' => Tok::Eq,
                    ',' => Tok::Comma,
                    ':' => Tok::Colon,
                    '[' => Tok::LBrack,
                    _ => Tok::RBrack,
                };
                toks.push(Token { tok, col });
                i += 1;
            }
            '%' => {
                let start = i + 1;
                let mut j = start;
                while j < chars.len() && chars[j].is_ascii_digit() {
                    j += 1;
                }
                if j == start {
                    return Err((col, "expected a node id (digits) after `%`".into()));
                }
                if j < chars.len() && is_word_char(chars[j]) {
                    return Err((col, format!("malformed node id `{}`", word_at(&chars, i))));
                }
                let digits: String = chars[start..j].iter().collect();
                let n: u32 = digits
                    .parse()
                    .ok()
                    .filter(|&n| n < MAX_ID)
                    .ok_or_else(|| (col, format!("node id %{digits} is too large (at most %{})", MAX_ID - 1)))?;
                toks.push(Token { tok: Tok::Value(n), col });
                i = j;
            }
            '"' => {
                let (s, next) = lex_string(&chars, i)?;
                toks.push(Token { tok: Tok::Str(s), col });
                i = next;
            }
            c if is_word_char(c) => {
                let w = word_at(&chars, i);
                i += w.chars().count();
                toks.push(Token { tok: Tok::Word(w), col });
            }
            c => return Err((col, format!("unexpected character `{c}`"))),
        }
    }
    Ok((toks, end))
}

/// The parser allocates a slot for every id up to the largest one (to keep
/// the file's ids), so ids are capped to bound that allocation.
pub(crate) const MAX_ID: u32 = 1 << 20;

fn word_at(chars: &[char], i: usize) -> String {
    chars[i..].iter().take_while(|&&c| is_word_char(c) || c == '%').collect()
}

fn lex_string(chars: &[char], open: usize) -> Result<(String, usize), (usize, String)> {
    let mut s = String::new();
    let mut i = open + 1;
    while i < chars.len() {
        match chars[i] {
            '"' => return Ok((s, i + 1)),
            '\\' => {
                let esc = chars.get(i + 1).copied();
                match esc {
                    Some('"') => s.push('"'),
                    Some('\\') => s.push('\\'),
                    Some('n') => s.push('\n'),
                    Some('t') => s.push('\t'),
                    Some('u') => {
                        // \u{HEX}
                        if chars.get(i + 2) != Some(&'{') {
                            return Err((i + 1, "expected `{` after `\\u`".into()));
                        }
                        let close = chars[i + 3..]
                            .iter()
                            .position(|&c| c == '}')
                            .map(|p| p + i + 3)
                            .ok_or((i + 1, "unterminated `\\u{...}` escape".to_string()))?;
                        let hex: String = chars[i + 3..close].iter().collect();
                        let c = u32::from_str_radix(&hex, 16)
                            .ok()
                            .and_then(char::from_u32)
                            .ok_or_else(|| (i + 1, format!("invalid unicode escape `\\u{{{hex}}}`")))?;
                        s.push(c);
                        i = close + 1;
                        continue;
                    }
                    _ => return Err((i + 1, "unknown escape in string (use \\\", \\\\, \\n, \\t or \\u{...})".into())),
                }
                i += 2;
            }
            c => {
                s.push(c);
                i += 1;
            }
        }
    }
    Err((open + 1, "unterminated string".into()))
}

/// Quotes a name for printing so that `lex_string` reads it back unchanged.
pub(crate) fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lexes_a_node_line_with_columns() {
        let (t, end) = lex_line("%7 = add %3, %5 : f32[2] # hi").unwrap();
        let cols: Vec<usize> = t.iter().map(|t| t.col).collect();
        assert_eq!(cols, vec![1, 4, 6, 10, 12, 14, 17, 19, 22, 23, 24]);
        assert_eq!(t[0].tok, Tok::Value(7));
        assert_eq!(end, 26);
    }

    #[test]
    fn strings_round_trip_through_quote() {
        for s in ["plain", "a \"q\" b", "back\\slash", "tab\tnl\n", "bell\u{7}", "ünï"] {
            let q = quote(s);
            let (t, _) = lex_line(&q).unwrap();
            assert_eq!(t, vec![Token { tok: Tok::Str(s.to_string()), col: 1 }], "{q}");
        }
    }

    #[test]
    fn lexical_errors_have_columns() {
        assert_eq!(lex_line("%x").unwrap_err().0, 1);
        assert_eq!(lex_line("  \"open").unwrap_err(), (3, "unterminated string".into()));
        assert_eq!(lex_line("a ; b").unwrap_err(), (3, "unexpected character `;`".into()));
        assert!(lex_line("%99999999999").unwrap_err().1.contains("too large"));
    }
}

//! Rule left-hand sides: a small s-expression pattern language matched
//! against the e-graph.
//!
//! `(relu (add (conv2d@c ?x ?w) ?b))`: a head is an op keyword as printed in
//! `.kir` (`const` for constants, `input` for any graph input); `@name`
//! captures the matched e-node so the rule can read its attributes; `?x`
//! binds an e-class (a repeated variable must bind the same class); `...`
//! as the only operand matches any operands (read them from the capture). Heads
//! match any attributes: the rule's applier checks them. egg's own `Pattern`
//! compares attributes exactly, which is why kiln has its own matcher.

use egg::Id;

use super::lang::{ENode, EG};

#[derive(Debug, Clone)]
enum Pat {
    Var(usize),
    Node { head: String, cap: Option<usize>, args: Vec<Pat>, any_arity: bool },
}

/// A parsed pattern with its variable and capture names.
#[derive(Debug, Clone)]
pub struct Pattern {
    root: Pat,
    vars: Vec<String>,
    caps: Vec<String>,
    pub text: String,
}

/// One match: the root class, the classes bound to variables, the captured
/// e-nodes (with their classes), and every e-node the pattern matched.
#[derive(Debug, Clone)]
pub struct Match {
    pub root: Id,
    vars: Vec<Option<Id>>,
    caps: Vec<Option<(ENode, Id)>>,
    pub nodes: Vec<(ENode, Id)>,
}

impl Pattern {
    /// Parses a pattern; rules are static text, so a malformed one is a bug
    /// reported by the unit tests, not a user error.
    pub fn parse(text: &str) -> Result<Pattern, String> {
        let toks: Vec<String> = text.replace('(', " ( ").replace(')', " ) ").split_whitespace().map(String::from).collect();
        let mut p = Pattern { root: Pat::Var(0), vars: vec![], caps: vec![], text: text.to_string() };
        let mut pos = 0;
        p.root = p.parse_one(&toks, &mut pos)?;
        if pos != toks.len() {
            return Err(format!("trailing tokens in pattern `{text}`"));
        }
        if matches!(p.root, Pat::Var(_)) {
            return Err(format!("pattern `{text}` must start with an op"));
        }
        Ok(p)
    }

    fn parse_one(&mut self, toks: &[String], pos: &mut usize) -> Result<Pat, String> {
        let t = toks.get(*pos).ok_or("unexpected end of pattern")?.clone();
        *pos += 1;
        if let Some(v) = t.strip_prefix('?') {
            let i = match self.vars.iter().position(|n| n == v) {
                Some(i) => i,
                None => {
                    self.vars.push(v.to_string());
                    self.vars.len() - 1
                }
            };
            return Ok(Pat::Var(i));
        }
        if t != "(" {
            return Err(format!("expected `(` or `?var`, got `{t}`"));
        }
        let head_tok = toks.get(*pos).ok_or("missing head")?.clone();
        *pos += 1;
        let (head, cap) = match head_tok.split_once('@') {
            Some((h, c)) => {
                if self.caps.iter().any(|n| n == c) {
                    return Err(format!("capture `{c}` used twice"));
                }
                self.caps.push(c.to_string());
                (h.to_string(), Some(self.caps.len() - 1))
            }
            None => (head_tok, None),
        };
        let mut args = Vec::new();
        let mut any_arity = false;
        loop {
            match toks.get(*pos).map(String::as_str) {
                Some("...") if args.is_empty() => {
                    any_arity = true;
                    *pos += 1;
                }
                Some(")") => {
                    *pos += 1;
                    break;
                }
                Some(_) => args.push(self.parse_one(toks, pos)?),
                None => return Err("unclosed `(`".into()),
            }
        }
        if any_arity && !args.is_empty() {
            return Err("`...` matches the operands; it cannot be mixed with others".into());
        }
        Ok(Pat::Node { head, cap, args, any_arity })
    }

    /// The name of the op at the pattern's root.
    pub fn root_head(&self) -> &str {
        match &self.root {
            Pat::Node { head, .. } => head,
            Pat::Var(_) => "",
        }
    }

    /// All matches rooted at `class`, at most `limit`.
    pub fn search_class(&self, eg: &EG, class: Id, limit: usize, out: &mut Vec<Match>) {
        let start = Match {
            root: eg.find(class),
            vars: vec![None; self.vars.len()],
            caps: vec![None; self.caps.len()],
            nodes: vec![],
        };
        let mut found = Vec::new();
        match_pat(eg, &self.root, class, start, &mut found, limit);
        out.extend(found);
    }

    pub fn var_index(&self, name: &str) -> Option<usize> {
        self.vars.iter().position(|n| n == name)
    }

    pub fn cap_index(&self, name: &str) -> Option<usize> {
        self.caps.iter().position(|n| n == name)
    }
}

impl Match {
    pub fn var_at(&self, i: usize) -> Option<Id> {
        self.vars.get(i).copied().flatten()
    }
    pub fn cap_at(&self, i: usize) -> Option<&(ENode, Id)> {
        self.caps.get(i).and_then(Option::as_ref)
    }
}

fn match_pat(eg: &EG, pat: &Pat, class: Id, m: Match, out: &mut Vec<Match>, limit: usize) {
    if out.len() >= limit {
        return;
    }
    let class = eg.find(class);
    match pat {
        Pat::Var(i) => match m.vars[*i] {
            Some(b) if eg.find(b) != class => {}
            Some(_) => out.push(m),
            None => {
                let mut m = m;
                m.vars[*i] = Some(class);
                out.push(m);
            }
        },
        Pat::Node { head, cap, args, any_arity } => {
            if eg[class].data.ty.is_none() {
                return;
            }
            for node in &eg[class].nodes {
                if (!any_arity && node.children.len() != args.len()) || eg.analysis.ops.name(node.op) != head {
                    continue;
                }
                let mut m2 = m.clone();
                if let Some(c) = cap {
                    m2.caps[*c] = Some((node.clone(), class));
                }
                m2.nodes.push((node.clone(), class));
                let mut partial = vec![m2];
                for (a, &child) in args.iter().zip(&node.children) {
                    let mut next = Vec::new();
                    for pm in partial {
                        match_pat(eg, a, child, pm, &mut next, limit);
                    }
                    partial = next;
                    if partial.is_empty() {
                        break;
                    }
                }
                for pm in partial {
                    if out.len() >= limit {
                        return;
                    }
                    out.push(pm);
                }
            }
        }
    }
}

//! Rule left-hand sides: a small s-expression pattern language matched
//! against the e-graph.
//!
//! `(relu (add (conv2d@c ?x ?w) ?b))`: a head is an op keyword as printed in
//! `.kir` (`const` for constants, `input` for any graph input); `@name`
//! captures the matched e-node so the rule can read its attributes; `?x`
//! binds an e-class (a repeated variable must bind the same class);
//! `?x:splat` binds only a class known to hold one repeated value and
//! `?x:const` only a class with a constant, `?x:scalar` only a
//! one-element class (see [`Guard`]); `...`
//! as the only operand matches any operands (read them from the capture). Heads
//! match any attributes: the rule's applier checks them. egg's own `Pattern`
//! compares attributes exactly, which is why kiln has its own matcher.

use egg::Id;

use super::lang::{ENode, EG};

/// What a guarded variable's class must be, checked while searching, so
/// rules whose appliers need a constant operand (`x + 0`, `x * 1`) do not
/// produce a match for every `add` and `mul` in the graph only for the
/// applier to refuse it. A guard only prunes: the applier still checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Guard {
    /// The class's analysis knows one value for every element.
    Splat,
    /// The class holds a constant.
    Const,
    /// The class's values have one element.
    Scalar,
}

impl Guard {
    fn parse(name: &str) -> Result<Guard, String> {
        match name {
            "splat" => Ok(Guard::Splat),
            "const" => Ok(Guard::Const),
            "scalar" => Ok(Guard::Scalar),
            other => Err(format!("unknown variable guard `:{other}` (expected `splat`, `const` or `scalar`)")),
        }
    }

    fn admits(self, eg: &EG, class: Id) -> bool {
        let d = &eg[class].data;
        match self {
            Guard::Splat => d.splat.is_some(),
            Guard::Const => d.konst.is_some(),
            Guard::Scalar => d.ty.as_ref().is_some_and(|t| t.numel() == 1),
        }
    }
}

#[derive(Debug, Clone)]
enum Pat {
    Var(usize, Option<Guard>),
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
        let mut p = Pattern { root: Pat::Var(0, None), vars: vec![], caps: vec![], text: text.to_string() };
        let mut pos = 0;
        p.root = p.parse_one(&toks, &mut pos)?;
        if pos != toks.len() {
            return Err(format!("trailing tokens in pattern `{text}`"));
        }
        if matches!(p.root, Pat::Var(..)) {
            return Err(format!("pattern `{text}` must start with an op"));
        }
        Ok(p)
    }

    fn parse_one(&mut self, toks: &[String], pos: &mut usize) -> Result<Pat, String> {
        let t = toks.get(*pos).ok_or("unexpected end of pattern")?.clone();
        *pos += 1;
        if let Some(v) = t.strip_prefix('?') {
            let (v, guard) = match v.split_once(':') {
                Some((v, g)) => (v, Some(Guard::parse(g)?)),
                None => (v, None),
            };
            let i = match self.vars.iter().position(|n| n == v) {
                Some(i) => i,
                None => {
                    self.vars.push(v.to_string());
                    self.vars.len() - 1
                }
            };
            return Ok(Pat::Var(i, guard));
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
            Pat::Var(..) => "",
        }
    }

    /// Levels of e-nodes the pattern spans (a bare operator is 1).
    pub fn depth(&self) -> usize {
        fn depth(p: &Pat) -> usize {
            match p {
                Pat::Var(..) => 0,
                Pat::Node { args, .. } => 1 + args.iter().map(depth).max().unwrap_or(0),
            }
        }
        depth(&self.root)
    }

    /// All matches rooted at `class`, at most `limit`.
    pub fn search_class(&self, eg: &EG, class: Id, limit: usize, out: &mut Vec<Match>) {
        self.search_classes(eg, [class], limit, out);
    }

    /// The matches rooted at each of `classes` in turn until `out` has
    /// gained `limit` (as that many `search_class` calls would); one set of
    /// search buffers serves every class (a round searches tens of
    /// thousands).
    pub fn search_classes(&self, eg: &EG, classes: impl IntoIterator<Item = Id>, limit: usize, out: &mut Vec<Match>) {
        let mut st = Search { vars: vec![None; self.vars.len()], caps: vec![None; self.caps.len()], nodes: Vec::new() };
        let mut goals = Vec::new();
        let start = out.len();
        for class in classes {
            if out.len() - start >= limit {
                break;
            }
            // Each class may add up to `limit` (the last one can overshoot).
            let cap = out.len().saturating_add(limit);
            let root = eg.find(class);
            goals.clear();
            goals.push((&self.root, root));
            solve(eg, &mut goals, &mut st, root, out, cap);
        }
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

/// The bindings of a match in progress: e-nodes are borrowed from the
/// e-graph and cloned only into a finished [`Match`], and every choice is
/// undone on the way back, so a failed attempt allocates nothing.
struct Search<'a> {
    vars: Vec<Option<Id>>,
    caps: Vec<Option<(&'a ENode, Id)>>,
    nodes: Vec<(&'a ENode, Id)>,
}

/// Backtracking over the pending `(pattern, class)` goals, last first;
/// operands are pushed in reverse so they are matched left to right and the
/// matched nodes come out in pre-order. Stops once `out` holds `cap`.
fn solve<'a>(eg: &'a EG, goals: &mut Vec<(&'a Pat, Id)>, st: &mut Search<'a>, root: Id, out: &mut Vec<Match>, cap: usize) {
    if out.len() >= cap {
        return;
    }
    let Some((pat, class)) = goals.pop() else {
        out.push(Match {
            root,
            vars: st.vars.clone(),
            caps: st.caps.iter().map(|c| c.map(|(n, id)| (n.clone(), id))).collect(),
            nodes: st.nodes.iter().map(|&(n, id)| (n.clone(), id)).collect(),
        });
        return;
    };
    let class = eg.find(class);
    match pat {
        Pat::Var(_, Some(g)) if !g.admits(eg, class) => {}
        Pat::Var(i, _) => match st.vars[*i] {
            Some(b) if eg.find(b) != class => {}
            Some(_) => solve(eg, goals, st, root, out, cap),
            None => {
                st.vars[*i] = Some(class);
                solve(eg, goals, st, root, out, cap);
                st.vars[*i] = None;
            }
        },
        Pat::Node { head, cap: capture, args, any_arity } => {
            let eclass = &eg[class];
            if eclass.data.ty.is_some() {
                let depth = goals.len();
                for node in &eclass.nodes {
                    if (!any_arity && node.children.len() != args.len()) || eg.analysis.ops.name(node.op) != head {
                        continue;
                    }
                    if let Some(c) = capture {
                        st.caps[*c] = Some((node, class));
                    }
                    st.nodes.push((node, class));
                    goals.extend(args.iter().zip(&node.children).rev().map(|(a, &ch)| (a, ch)));
                    solve(eg, goals, st, root, out, cap);
                    goals.truncate(depth);
                    st.nodes.pop();
                    if let Some(c) = capture {
                        st.caps[*c] = None;
                    }
                    if out.len() >= cap {
                        break;
                    }
                }
            }
        }
    }
    goals.push((pat, class));
}

//! Statements -> graph: resolves `%N` references, infers and checks types,
//! checks names, then builds the graph keeping the file's ids.

use std::collections::HashMap;

use crate::infer::infer_type;
use crate::{GradRequest, Graph, InputRole, IrError, Node, NodeId, Op, TensorType};

use super::lexer::{lex_line, Tok, Token};
use super::print::print_type_list;
use super::syntax::{parse_stmt, Cur, NodeStmt, Stmt};

struct Errors {
    file: String,
    list: Vec<(usize, usize, String)>,
}

impl Errors {
    fn at(&mut self, line: usize, col: usize, msg: impl Into<String>) {
        self.list.push((line, col, msg.into()));
    }
}

/// What is known about a defined id: its line and its type (`None` when the
/// definition itself had an error, so users of it stay quiet).
struct Def {
    line: usize,
    ty: Option<TensorType>,
}

struct Checker<'a> {
    errs: &'a mut Errors,
    first_def: HashMap<u32, usize>,
    done: HashMap<u32, Def>,
    /// Ids of `%N = ...` lines that failed to parse: already reported.
    failed: HashMap<u32, usize>,
}

impl Checker<'_> {
    /// `Some(ty)` for a usable reference; `None` after reporting it, or
    /// silently when it names a node that already failed.
    fn resolve(&mut self, id: u32, line: usize, col: usize) -> Option<TensorType> {
        match self.done.get(&id) {
            Some(d) => d.ty.clone(),
            None if self.failed.contains_key(&id) => None,
            None => {
                let msg = match self.first_def.get(&id) {
                    Some(l) => format!("%{id} is used before its definition on line {l}"),
                    None => format!("unknown node %{id}"),
                };
                self.errs.at(line, col, msg);
                None
            }
        }
    }
}

/// Parses `.kir` text into a verified graph that keeps the file's `%N` ids.
///
/// Every error is an `IrError::Parse` that displays as `file:line:col: message`
/// (1-based; `file` is only used in messages). Errors on different lines are
/// all reported, sorted by position; a node whose definition failed does not
/// cause follow-up errors in its users. Checks: syntax, unknown ops and
/// attributes, `%N` defined before use and only once, operand types (by shape
/// inference), declared types equal to the inferred ones, unique input and
/// output names, `update` targets, and `grad` losses being float scalars.
/// The result has passed `kiln_ir::verify`.
pub fn parse(src: &str, file: &str) -> Result<Graph, Vec<IrError>> {
    parse_with_limits(src, file, &ParseLimits::NONE)
}

/// Bounds on what parsing may allocate that the text's length does not
/// bound by itself, for text from an untrusted source (a `.kiln` file).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParseLimits {
    /// The largest `%N` a definition may use: the graph keeps the file's
    /// ids, so it holds a slot for every id up to the largest.
    pub max_node_id: u32,
    /// Total bytes of all constants (a splat `const 0 : f32[N]` is a few
    /// bytes of text for any N).
    pub max_constant_bytes: usize,
}

impl ParseLimits {
    /// No limit beyond what fits in memory.
    pub const NONE: ParseLimits = ParseLimits { max_node_id: u32::MAX, max_constant_bytes: isize::MAX as usize };
}

/// [`parse`] under `limits`: an id or constant over them is a parse error
/// at its line, raised before anything is allocated for it.
pub fn parse_with_limits(src: &str, file: &str, limits: &ParseLimits) -> Result<Graph, Vec<IrError>> {
    let mut const_budget = limits.max_constant_bytes;
    let mut errs = Errors { file: file.to_string(), list: Vec::new() };
    let mut stmts: Vec<(usize, Stmt)> = Vec::new();
    let mut failed = HashMap::new();
    for (i, text) in src.lines().enumerate() {
        let line = i + 1;
        match lex_line(text) {
            Err((col, msg)) => errs.at(line, col, msg),
            Ok((toks, end)) if !toks.is_empty() => match parse_stmt(&mut Cur::new(&toks, end), &mut const_budget) {
                Ok(s) => stmts.push((line, s)),
                Err((col, msg)) => {
                    if let Some(Token { tok: Tok::Value(id), .. }) = toks.first() {
                        failed.entry(*id).or_insert(line);
                    }
                    errs.at(line, col, msg)
                }
            },
            Ok(_) => {}
        }
    }

    let mut first_def = HashMap::new();
    for (line, s) in &stmts {
        if let Stmt::Node(n) = s {
            first_def.entry(n.id).or_insert(*line);
        }
    }
    let mut ck = Checker { errs: &mut errs, first_def, done: HashMap::new(), failed };
    let mut nodes: Vec<(NodeStmt, TensorType)> = Vec::new();
    let mut input_names: HashMap<String, (u32, InputRole, usize)> = HashMap::new();
    let mut rest = Vec::new();
    for (line, s) in stmts {
        let n = match s {
            Stmt::Node(n) => n,
            other => {
                rest.push((line, other));
                continue;
            }
        };
        if n.id > limits.max_node_id {
            ck.errs.at(line, n.id_col, format!("node id %{} is over the limit of %{}", n.id, limits.max_node_id));
            ck.failed.entry(n.id).or_insert(line);
            continue;
        }
        if let Some(d) = ck.done.get(&n.id) {
            let msg = format!("%{} is defined twice (first on line {})", n.id, d.line);
            ck.errs.at(line, n.id_col, msg);
            continue;
        }
        let mut tys = Vec::with_capacity(n.operands.len());
        for &(o, col) in &n.operands {
            tys.push(ck.resolve(o, line, col));
        }
        let ty = if tys.iter().any(Option::is_none) {
            None
        } else {
            check_node(&n, tys.into_iter().flatten().collect(), line, &mut ck, &mut input_names)
        };
        ck.done.insert(n.id, Def { line, ty: ty.clone() });
        if let Some(ty) = ty {
            nodes.push((n, ty));
        }
    }

    let mut g_outputs = Vec::new();
    let mut g_updates: Vec<(String, NodeId)> = Vec::new();
    let mut g_grads = Vec::new();
    let mut out_lines: HashMap<String, usize> = HashMap::new();
    let mut upd_lines: HashMap<String, usize> = HashMap::new();
    for (line, s) in rest {
        match s {
            Stmt::Node(_) => unreachable!("nodes were handled above"),
            Stmt::Output { name, name_col, id, id_col } => {
                if let Some(l) = out_lines.get(&name) {
                    ck.errs.at(line, name_col, format!("output `{name}` is already defined on line {l}"));
                    continue;
                }
                out_lines.insert(name.clone(), line);
                if ck.resolve(id, line, id_col).is_some() {
                    g_outputs.push((name, NodeId(id)));
                }
            }
            Stmt::Update { name, name_col, id, id_col } => {
                if let Some(l) = upd_lines.get(&name) {
                    ck.errs.at(line, name_col, format!("`{name}` is already updated on line {l}"));
                    continue;
                }
                upd_lines.insert(name.clone(), line);
                let Some(ty) = ck.resolve(id, line, id_col) else { continue };
                let Some(&(input, role, _)) = input_names.get(&name) else {
                    ck.errs.at(line, name_col, format!("update of unknown param/state `{name}`"));
                    continue;
                };
                if !role.is_persistent() {
                    ck.errs.at(line, name_col, format!("`{name}` is a data input; only `param` and `state` inputs can be updated"));
                    continue;
                }
                let Some(want) = ck.done.get(&input).and_then(|d| d.ty.clone()) else { continue };
                if ty != want {
                    ck.errs.at(line, id_col, format!("update of `{name}` (%{input}: {want}) with %{id}: {ty}, types differ"));
                    continue;
                }
                g_updates.push((name, NodeId(id)));
            }
            Stmt::Grad { loss, wrt } => {
                let lt = ck.resolve(loss.0, line, loss.1);
                if let Some(t) = lt.as_ref().filter(|t| t.shape.rank() != 0 || !t.dtype.is_float()) {
                    ck.errs.at(line, loss.1, format!("the loss %{} of a grad request must be a float scalar, got {t}", loss.0));
                }
                let mut ok = lt.is_some();
                for &(w, col) in &wrt {
                    ok &= ck.resolve(w, line, col).is_some();
                }
                if ok {
                    g_grads.push(GradRequest { loss: NodeId(loss.0), wrt: wrt.iter().map(|&(w, _)| NodeId(w)).collect() });
                }
            }
        }
    }

    let def_lines = ck.first_def;
    if !errs.list.is_empty() {
        return Err(into_errors(errs));
    }
    let g = assemble(nodes, g_outputs, g_updates, g_grads);
    if let Err(e) = crate::verify(&g) {
        // The checks above mirror the verifier, so this is a bug guard; point
        // at the node the message names when there is one.
        let line = first_node_line(&e.to_string(), &def_lines).unwrap_or(1);
        errs.at(line, 1, e.to_string());
        return Err(into_errors(errs));
    }
    Ok(g)
}

/// Type-checks one definition; returns its type, or `None` after reporting.
fn check_node(
    n: &NodeStmt,
    operand_tys: Vec<TensorType>,
    line: usize,
    ck: &mut Checker,
    input_names: &mut HashMap<String, (u32, InputRole, usize)>,
) -> Option<TensorType> {
    if let Op::Input { name, role } = &n.op {
        if let Some((other, _, l)) = input_names.get(name) {
            ck.errs.at(line, n.op_col, format!("input name `{name}` is already used by %{other} on line {l}"));
            return None;
        }
        input_names.insert(name.clone(), (n.id, *role, line));
        return n.ty.as_ref().map(|(t, _)| t.clone());
    }
    let inferred = match infer_type(&n.op, &operand_tys) {
        Ok(t) => t,
        Err(reason) => {
            let ops: Vec<(u32, &TensorType)> = n.operands.iter().map(|o| o.0).zip(operand_tys.iter()).collect();
            ck.errs.at(line, n.op_col, format!("{}({}): {reason}", n.op.name(), print_type_list(&ops)));
            return None;
        }
    };
    if let Some((declared, col)) = n.ty.as_ref().filter(|(d, _)| *d != inferred) {
        ck.errs.at(line, *col, format!("declared type {declared} but {} gives {inferred}", n.op.name()));
    }
    Some(inferred)
}

fn assemble(
    nodes: Vec<(NodeStmt, TensorType)>,
    outputs: Vec<(String, NodeId)>,
    updates: Vec<(String, NodeId)>,
    grads: Vec<GradRequest>,
) -> Graph {
    let mut g = Graph::new();
    let Some(max) = nodes.iter().map(|(n, _)| n.id).max() else {
        *g.raw_outputs_mut() = outputs;
        *g.raw_updates_mut() = updates;
        *g.raw_grads_mut() = grads;
        return g;
    };
    // Placeholders for every id up to the largest, so each node lands on the
    // id the file gave it; the unused ones are removed afterwards.
    let placeholder = Node { op: Op::StopGradient, ty: TensorType::f32([]) };
    for _ in 0..=max {
        g.raw_add_node(placeholder.clone());
    }
    let mut used = vec![false; max as usize + 1];
    for (n, ty) in nodes {
        used[n.id as usize] = true;
        let id = NodeId(n.id);
        g.raw_set_node(id, Node { op: n.op, ty });
        for (slot, &(o, _)) in n.operands.iter().enumerate() {
            g.raw_add_edge(NodeId(o), id, slot as u32);
        }
    }
    for (i, u) in used.iter().enumerate() {
        if !u {
            g.remove_node(NodeId(i as u32));
        }
    }
    *g.raw_outputs_mut() = outputs;
    *g.raw_updates_mut() = updates;
    *g.raw_grads_mut() = grads;
    g
}

fn first_node_line(msg: &str, lines: &HashMap<u32, usize>) -> Option<usize> {
    let at = msg.find('%')?;
    let digits: String = msg[at + 1..].chars().take_while(|c| c.is_ascii_digit()).collect();
    lines.get(&digits.parse::<u32>().ok()?).copied()
}

fn into_errors(mut errs: Errors) -> Vec<IrError> {
    errs.list.sort_by_key(|&(l, c, _)| (l, c));
    let file = errs.file;
    errs.list
        .into_iter()
        .map(|(line, col, message)| IrError::Parse { file: file.clone(), line, col, message })
        .collect()
}

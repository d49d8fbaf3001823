//! One line of tokens -> one statement. Nothing here looks at other lines;
//! ids are resolved and types checked in `build.rs`.

use crate::{DType, HostTensor, Op, Shape, TensorType};

use super::attrs::{build_op, is_op_name, AttrVal, Attrs};
use super::lexer::{Tok, Token};
use super::numbers::{parse_float_f32, parse_float_f64};

/// A column and a message; the caller adds file and line.
pub(crate) type E = (usize, String);

pub(crate) struct NodeStmt {
    pub id: u32,
    pub id_col: usize,
    pub op: Op,
    pub op_col: usize,
    pub operands: Vec<(u32, usize)>,
    pub ty: Option<(TensorType, usize)>,
}

pub(crate) enum Stmt {
    Node(NodeStmt),
    Output { name: String, name_col: usize, id: u32, id_col: usize },
    Update { name: String, name_col: usize, id: u32, id_col: usize },
    Grad { loss: (u32, usize), wrt: Vec<(u32, usize)> },
}

pub(crate) struct Cur<'a> {
    toks: &'a [Token],
    i: usize,
    end: usize,
}

impl<'a> Cur<'a> {
    pub fn new(toks: &'a [Token], end: usize) -> Cur<'a> {
        Cur { toks, i: 0, end }
    }

    pub fn peek(&self) -> Option<&'a Tok> {
        self.toks.get(self.i).map(|t| &t.tok)
    }

    pub fn col(&self) -> usize {
        self.toks.get(self.i).map_or(self.end, |t| t.col)
    }

    pub fn at_end(&self) -> bool {
        self.i >= self.toks.len()
    }

    fn bump(&mut self) -> Option<&'a Token> {
        let t = self.toks.get(self.i);
        self.i += 1;
        t
    }

    pub fn unexpected(&self, want: &str) -> E {
        let found = self.peek().map_or("end of line".to_string(), |t| t.describe());
        (self.col(), format!("expected {want}, found {found}"))
    }

    pub fn eat(&mut self, want: &Tok) -> bool {
        if self.peek() == Some(want) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    pub fn expect(&mut self, want: &Tok, what: &str) -> Result<usize, E> {
        let col = self.col();
        if self.eat(want) { Ok(col) } else { Err(self.unexpected(what)) }
    }

    pub fn value(&mut self, what: &str) -> Result<(u32, usize), E> {
        match self.peek() {
            Some(Tok::Value(n)) => {
                let n = *n;
                let col = self.bump().map_or(self.end, |t| t.col);
                Ok((n, col))
            }
            _ => Err(self.unexpected(what)),
        }
    }

    pub fn word(&mut self, what: &str) -> Result<(String, usize), E> {
        match self.peek() {
            Some(Tok::Word(w)) => {
                let w = w.clone();
                let col = self.bump().map_or(self.end, |t| t.col);
                Ok((w, col))
            }
            _ => Err(self.unexpected(what)),
        }
    }

    fn string(&mut self, what: &str) -> Result<(String, usize), E> {
        match self.peek() {
            Some(Tok::Str(s)) => {
                let s = s.clone();
                let col = self.bump().map_or(self.end, |t| t.col);
                Ok((s, col))
            }
            _ => Err(self.unexpected(what)),
        }
    }

    /// `[w, w, ...]` of bare words (possibly empty); the `[` is next.
    pub fn word_list(&mut self, what: &str) -> Result<Vec<(String, usize)>, E> {
        self.expect(&Tok::LBrack, "`[`")?;
        let mut out = Vec::new();
        if self.eat(&Tok::RBrack) {
            return Ok(out);
        }
        loop {
            out.push(self.word(what)?);
            if self.eat(&Tok::RBrack) {
                return Ok(out);
            }
            self.expect(&Tok::Comma, "`,` or `]`")?;
        }
    }
}

/// Parses one non-empty line of tokens.
/// `const_budget`: bytes constants may still take (see [`ParseLimits`](super::ParseLimits)).
pub(crate) fn parse_stmt(cur: &mut Cur, const_budget: &mut usize) -> Result<Stmt, E> {
    let stmt = match cur.peek() {
        Some(Tok::Value(_)) => Stmt::Node(parse_node(cur, const_budget)?),
        Some(Tok::Word(w)) if w == "output" || w == "update" => {
            let is_output = w == "output";
            cur.word("")?;
            let (name, name_col) = cur.string("a quoted name")?;
            cur.expect(&Tok::Eq, "`=`")?;
            let (id, id_col) = cur.value("a node id `%N`")?;
            if is_output {
                Stmt::Output { name, name_col, id, id_col }
            } else {
                Stmt::Update { name, name_col, id, id_col }
            }
        }
        Some(Tok::Word(w)) if w == "grad" => {
            cur.word("")?;
            let loss = cur.value("the loss node `%N`")?;
            match cur.word("`wrt`") {
                Ok((w, _)) if w == "wrt" => {}
                Ok((w, col)) => return Err((col, format!("expected `wrt`, found `{w}`"))),
                Err(e) => return Err(e),
            }
            let mut wrt = vec![cur.value("a node id `%N`")?];
            while cur.eat(&Tok::Comma) {
                wrt.push(cur.value("a node id `%N`")?);
            }
            Stmt::Grad { loss, wrt }
        }
        _ => return Err(cur.unexpected("`%N = ...`, `output`, `update` or `grad`")),
    };
    if !cur.at_end() {
        return Err(cur.unexpected("end of line"));
    }
    Ok(stmt)
}

/// `dtype[d0,d1,...]`
fn parse_type(cur: &mut Cur) -> Result<(TensorType, usize), E> {
    let (name, col) = cur.word("a type such as `f32[2,3]`")?;
    let dtype = DType::from_name(&name).ok_or_else(|| {
        (col, format!("unknown dtype `{name}` (expected one of f32, f64, i64, i32, bool)"))
    })?;
    let mut dims = Vec::new();
    for (w, c) in cur.word_list("a dimension")? {
        dims.push(w.parse::<usize>().map_err(|_| (c, format!("dimension `{w}` is not a non-negative integer")))?);
    }
    Ok((TensorType::new(dtype, Shape(dims)), col))
}

fn parse_node(cur: &mut Cur, const_budget: &mut usize) -> Result<NodeStmt, E> {
    let (id, id_col) = cur.value("a node id")?;
    cur.expect(&Tok::Eq, "`=`")?;
    let (opname, op_col) = cur.word("an op name")?;
    if !is_op_name(&opname) {
        let hint = super::suggest::hint(&opname, &super::attrs::op_names());
        return Err((op_col, format!("unknown op `{opname}`{hint}")));
    }
    let mut input_name = None;
    let mut literal = None;
    let mut operands = Vec::new();
    match opname.as_str() {
        "input" | "param" | "state" => input_name = Some(cur.string("a quoted input name")?.0),
        "const" => {
            let lit_col = cur.col();
            literal = Some(match cur.peek() {
                Some(Tok::LBrack) => (cur.word_list("a number")?, true, lit_col),
                Some(Tok::Word(_)) => (vec![cur.word("a number")?], false, lit_col),
                _ => return Err(cur.unexpected("a constant value (a number or `[...]`)")),
            });
        }
        _ => {
            if let Some(Tok::Value(_)) = cur.peek() {
                operands.push(cur.value("")?);
                while cur.eat(&Tok::Comma) {
                    operands.push(cur.value("an operand `%N`")?);
                }
            }
        }
    }
    let mut attrs = Attrs::default();
    while let Some(Tok::Word(_)) = cur.peek() {
        let (name, col) = cur.word("")?;
        cur.expect(&Tok::Eq, &format!("`=` after attribute `{name}`"))?;
        let val = match cur.peek() {
            Some(Tok::LBrack) => AttrVal::List(cur.word_list("a value")?),
            Some(Tok::Word(_)) => {
                let (w, c) = cur.word("")?;
                AttrVal::Word(w, c)
            }
            _ => return Err(cur.unexpected(&format!("a value for attribute `{name}`"))),
        };
        attrs.insert(name, col, val)?;
    }
    let ty = if cur.eat(&Tok::Colon) { Some(parse_type(cur)?) } else { None };
    if !cur.at_end() {
        return Err(cur.unexpected("an attribute `name=value`, `:` and a type, or end of line"));
    }
    let op = if let Some(name) = input_name {
        let role = match opname.as_str() {
            "input" => crate::InputRole::Input,
            "param" => crate::InputRole::Param,
            _ => crate::InputRole::State,
        };
        if ty.is_none() {
            return Err((cur.col(), format!("`{opname}` needs a type: `{opname} \"{name}\" : f32[...]`")));
        }
        attrs.finish(&opname)?;
        Op::Input { name, role }
    } else if let Some((words, bracketed, lit_col)) = literal {
        let Some((t, _)) = &ty else {
            return Err((cur.col(), "`const` needs a type: `const 1.5 : f32[]`".into()));
        };
        attrs.finish(&opname)?;
        Op::Constant(const_value(&words, bracketed, lit_col, t, const_budget)?)
    } else {
        let op = build_op(&opname, &mut attrs, op_col)?;
        attrs.finish(&opname)?;
        op
    };
    Ok(NodeStmt { id, id_col, op, op_col, operands, ty })
}

/// The literal's elements converted to the declared type. A single bare value
/// with a non-scalar type fills every element (a splat), so a few bytes of
/// text can ask for any size: the size is checked against `budget` (and
/// taken from it) before anything is allocated.
fn const_value(words: &[(String, usize)], bracketed: bool, col: usize, ty: &TensorType, budget: &mut usize) -> Result<HostTensor, E> {
    let Some(bytes) = ty.checked_size_bytes() else {
        return Err((col, format!("constant of type {ty} has more elements than fit in memory")));
    };
    if bytes > *budget {
        return Err((col, format!("constant of type {ty} ({bytes} bytes) is over the parse limit on constants ({budget} bytes left)")));
    }
    *budget -= bytes;
    let n = ty.numel();
    if bracketed && words.len() != n {
        return Err((col, format!("constant of type {ty} needs {n} values, got {}", words.len())));
    }
    if !bracketed && ty.shape.rank() > 0 && n == 0 {
        return Err((col, format!("constant of type {ty} has no elements; write `[]`")));
    }
    let reps = if bracketed { 1 } else { n.max(1) };
    fn conv<T: Clone>(
        words: &[(String, usize)],
        reps: usize,
        f: impl Fn(&str) -> Option<T>,
        what: &str,
    ) -> Result<Vec<T>, E> {
        let mut v = Vec::with_capacity(words.len() * reps);
        for (w, c) in words {
            let x = f(w).ok_or_else(|| (*c, format!("`{w}` is not {what}")))?;
            v.extend(std::iter::repeat_n(x, reps));
        }
        Ok(v)
    }
    use crate::TensorData as D;
    let data = match ty.dtype {
        DType::F32 => D::F32(conv(words, reps, parse_float_f32, "an f32 number")?),
        DType::F64 => D::F64(conv(words, reps, parse_float_f64, "an f64 number")?),
        DType::I64 => D::I64(conv(words, reps, |w| w.parse::<i64>().ok(), "an i64 integer")?),
        DType::I32 => D::I32(conv(words, reps, |w| w.parse::<i32>().ok(), "an i32 integer")?),
        DType::Bool => D::Bool(conv(
            words,
            reps,
            |w| match w {
                "true" => Some(1),
                "false" => Some(0),
                _ => None,
            },
            "`true` or `false`",
        )?),
    };
    HostTensor::new(ty.shape.clone(), data).map_err(|e| (col, e.to_string()))
}

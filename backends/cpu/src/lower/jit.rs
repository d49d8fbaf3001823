//! Lowering loop programs to Cranelift: one function per kernel,
//! `fn(args: *const *mut u8, lo: i64, hi: i64)` running dimension 0 of the
//! collapsed loop nest over `[lo, hi)` (so the runtime can split it across
//! threads). `args` holds one pointer per leaf then one per store.
//!
//! The innermost loop is vectorized by hand: f32x4 over 4 points at a time
//! (Cranelift has no auto-vectorizer and no wider vectors), then a scalar
//! tail. Broadcast leaves (stride 0) are loaded once per inner loop and
//! splatted; one-element constants become immediates; reductions over the
//! innermost dimension accumulate in a vector register and combine lanes at
//! the end. ReLU (`0 > x ? 0 : x`), selects that pick the larger or smaller
//! of their compare's operands, and max/min against a nonzero constant lower
//! to one `maxps`/`minps` (`maxss`/`minss` in tails): the CLIF is written in
//! the exact operand order Cranelift's x64 backend matches, and those ops are
//! defined so that the instruction's NaN and ±0 behaviour is their meaning.
//! General max/min keep `fmax`/`fmin` (a longer sequence with IEEE ±0 and
//! NaN-propagation rules). `select(m, x, 0)` (ReLU's gradient) is one AND.
//! exp, sigmoid and tanh are inlined as f32x4 polynomials (Cephes-style,
//! a few ulp; `lower/vmath.rs`); the other transcendentals (log, erf, sin,
//! cos, pow) and every scalar tail call a scalar Rust function per lane
//! (computed in f64, like the interpreter).
//! Identical programs (up to buffer addresses) share one compiled function.

use std::collections::HashMap;

use cranelift_codegen::ir::condcodes::FloatCC;
use cranelift_codegen::ir::{types, AbiParam, FuncRef, InstBuilder, MemFlagsData as MemFlags, Value};
use cranelift_codegen::settings::{self, Configurable};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext, Variable};
use cranelift_jit::{JITBuilder, JITModule};
use cranelift_codegen::binemit::Reloc;
use cranelift_codegen::control::ControlPlane;
use cranelift_module::{default_libcall_names, FuncId, Linkage, Module, ModuleReloc, ModuleRelocTarget};
use kiln_ir::scalar::{binary, unary};
use kiln_ir::{BinaryOp, CompareOp, DType, Graph, ReduceOp, UnaryOp};

use super::util::{le, pmax, pmin, F32X4};
use super::vmath::{exp_v, tanh_v};
use crate::kernels::program::{reduce_identity, Ins, Program};
use crate::CpuError;

pub type JitFn = unsafe extern "C" fn(*const *mut u8, i64, i64);

/// The Cranelift IR of one compiled kernel (what the dump writes as `.clif`)
/// and, when it can be reinstalled elsewhere, its finished machine code.
#[derive(Debug, Clone, PartialEq)]
pub struct KernelCode {
    pub kernel: usize,
    pub name: String,
    pub clif: String,
    pub machine: Option<MachineCode>,
}

/// A kernel's finished machine code: position independent except for
/// absolute 8-byte helper addresses (`relocs`), patched by helper name when
/// it is installed, so it can be stored and installed without codegen.
#[derive(Debug, Clone, PartialEq)]
pub struct MachineCode {
    /// Target triple and every shared and ISA flag it was compiled with;
    /// code is installed only into a JIT whose key is identical.
    pub isa: String,
    pub align: u64,
    pub bytes: Vec<u8>,
    pub relocs: Vec<CodeReloc>,
}

/// An absolute 8-byte address of helper `symbol` plus `addend` at `offset`.
#[derive(Debug, Clone, PartialEq)]
pub struct CodeReloc {
    pub offset: u32,
    pub symbol: String,
    pub addend: i64,
}

impl MachineCode {
    /// A line-oriented text form (`isa`, `align`, `reloc`, `code` in hex).
    pub fn to_text(&self) -> String {
        use std::fmt::Write;
        let mut s = format!("isa {}\nalign {}\n", self.isa, self.align);
        for r in &self.relocs {
            let _ = writeln!(s, "reloc {} {} {}", r.offset, r.symbol, r.addend);
        }
        s.push_str("code ");
        for b in &self.bytes {
            let _ = write!(s, "{b:02x}");
        }
        s.push('\n');
        s
    }

    /// The inverse of [`MachineCode::to_text`]; every malformed input is an error.
    pub fn from_text(t: &str) -> Result<MachineCode, CpuError> {
        let bad = |l: &str| CpuError::Codegen(format!("malformed machine code line `{}`", l.chars().take(60).collect::<String>()));
        let (mut isa, mut align, mut bytes, mut relocs) = (None, None, None, Vec::new());
        for line in t.lines() {
            let (tag, rest) = line.split_once(' ').ok_or_else(|| bad(line))?;
            match tag {
                "isa" => isa = Some(rest.to_string()),
                "align" => align = Some(rest.parse::<u64>().map_err(|_| bad(line))?),
                "reloc" => {
                    let f: Vec<&str> = rest.split(' ').collect();
                    let [o, sym, a] = f[..] else { return Err(bad(line)) };
                    relocs.push(CodeReloc { offset: o.parse().map_err(|_| bad(line))?, symbol: sym.to_string(), addend: a.parse().map_err(|_| bad(line))? });
                }
                "code" => {
                    let h = rest.as_bytes();
                    if h.len() % 2 != 0 {
                        return Err(bad(line));
                    }
                    let nib = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
                    bytes = Some(h.chunks(2).map(|p| Some(nib(p[0])? << 4 | nib(p[1])?)).collect::<Option<Vec<u8>>>().ok_or_else(|| bad(line))?);
                }
                _ => return Err(bad(line)),
            }
        }
        let (Some(isa), Some(align), Some(bytes)) = (isa, align, bytes) else { return Err(CpuError::Codegen("incomplete machine code entry".into())) };
        if !align.is_power_of_two() || align > 4096 || relocs.iter().any(|r| r.offset as usize + 8 > bytes.len()) {
            return Err(CpuError::Codegen("machine code entry out of range".into()));
        }
        Ok(MachineCode { isa, align, bytes, relocs })
    }
}

extern "C" fn k_exp(x: f32) -> f32 {
    unary(UnaryOp::Exp, x as f64) as f32
}
extern "C" fn k_log(x: f32) -> f32 {
    unary(UnaryOp::Log, x as f64) as f32
}
extern "C" fn k_tanh(x: f32) -> f32 {
    unary(UnaryOp::Tanh, x as f64) as f32
}
extern "C" fn k_sigmoid(x: f32) -> f32 {
    unary(UnaryOp::Sigmoid, x as f64) as f32
}
extern "C" fn k_erf(x: f32) -> f32 {
    unary(UnaryOp::Erf, x as f64) as f32
}
extern "C" fn k_sin(x: f32) -> f32 {
    unary(UnaryOp::Sin, x as f64) as f32
}
extern "C" fn k_cos(x: f32) -> f32 {
    unary(UnaryOp::Cos, x as f64) as f32
}
extern "C" fn k_pow(x: f32, y: f32) -> f32 {
    binary(BinaryOp::Pow, x as f64, y as f64) as f32
}

const UNARY_CALLS: [(&str, UnaryOp); 7] = [
    ("kiln_exp", UnaryOp::Exp),
    ("kiln_log", UnaryOp::Log),
    ("kiln_tanh", UnaryOp::Tanh),
    ("kiln_sigmoid", UnaryOp::Sigmoid),
    ("kiln_erf", UnaryOp::Erf),
    ("kiln_sin", UnaryOp::Sin),
    ("kiln_cos", UnaryOp::Cos),
];

pub struct Jit {
    module: JITModule,
    fctx: FunctionBuilderContext,
    funcs: Vec<FuncId>,
    code: Vec<KernelCode>,
    cache: HashMap<String, usize>,
    unary_ids: HashMap<UnaryOp, FuncId>,
    pow_id: FuncId,
    isa_key: String,
    /// Stored code by kernel id and function name (a kernel may have
    /// several functions: a conv's packing and epilogue), installed when
    /// the function's CLIF matches.
    stored: HashMap<(usize, String), KernelCode>,
    /// Kernels run through Cranelift codegen / installed from stored code.
    pub compiled: usize,
    pub installed: usize,
    /// Keep Cranelift's disassembly of every function it compiles (for the
    /// dump: the proof of which instructions a lowering became).
    pub disasm: bool,
    /// (function name, disassembly) of each function compiled with `disasm` on.
    pub listings: Vec<(String, String)>,
}

/// Every imported helper symbol (relocations are stored by these names).
const HELPERS: [&str; 8] = ["kiln_exp", "kiln_log", "kiln_tanh", "kiln_sigmoid", "kiln_erf", "kiln_sin", "kiln_cos", "kiln_pow"];

fn cg<E: std::fmt::Display>(e: E) -> CpuError {
    CpuError::Codegen(e.to_string())
}

/// Whether the JIT handles this program (f32 data, bool masks inside).
fn supported(p: &Program) -> bool {
    let f = |d: DType| d == DType::F32;
    p.leaves.iter().all(|l| f(l.dtype))
        && p.stores.iter().all(|s| f(s.dtype))
        && p.instrs.iter().all(|i| match i.ins {
            Ins::Leaf(_) | Ins::Unary(..) | Ins::Binary(..) | Ins::Copy(_) => f(i.dtype),
            Ins::Compare(_, a, _) => f(p.instrs[a].dtype),
            Ins::Select(m, _, _) => p.instrs[m].dtype == DType::Bool && f(i.dtype),
            Ins::Cast(a) => {
                let from = p.instrs[a].dtype;
                matches!((from, i.dtype), (DType::F32, DType::F32) | (DType::Bool, DType::F32) | (DType::F32, DType::Bool))
            }
        })
}

/// The program with buffer slots erased: the cache key.
fn shape_key(p: &Program) -> String {
    let mut q = p.clone();
    for l in &mut q.leaves {
        l.slot = 0;
        l.node = kiln_ir::NodeId(0);
    }
    for s in &mut q.stores {
        s.slot = 0;
        s.node = kiln_ir::NodeId(0);
    }
    for i in &mut q.instrs {
        i.node = None;
    }
    format!("{:?}", (q.collapsed(), q.leaves.iter().map(|l| l.constant.map(f64::to_bits)).collect::<Vec<_>>(), q.instrs, q.stores.iter().map(|s| (s.instr, s.reduce)).collect::<Vec<_>>()))
}

impl Jit {
    pub fn new(stored: &[KernelCode]) -> Result<Jit, CpuError> {
        let mut fb = settings::builder();
        fb.set("opt_level", "speed").map_err(cg)?;
        fb.set("use_colocated_libcalls", "false").map_err(cg)?;
        fb.set("is_pic", "false").map_err(cg)?;
        let isa = cranelift_native::builder().map_err(cg)?.finish(settings::Flags::new(fb)).map_err(cg)?;
        let mut jb = JITBuilder::with_isa(isa, default_libcall_names());
        let fns: [(&str, *const u8); 8] = [
            ("kiln_exp", k_exp as *const u8),
            ("kiln_log", k_log as *const u8),
            ("kiln_tanh", k_tanh as *const u8),
            ("kiln_sigmoid", k_sigmoid as *const u8),
            ("kiln_erf", k_erf as *const u8),
            ("kiln_sin", k_sin as *const u8),
            ("kiln_cos", k_cos as *const u8),
            ("kiln_pow", k_pow as *const u8),
        ];
        for (n, p) in fns {
            jb.symbol(n, p);
        }
        let mut module = JITModule::new(jb);
        let mut s1 = module.make_signature();
        s1.params.push(AbiParam::new(types::F32));
        s1.returns.push(AbiParam::new(types::F32));
        let mut unary_ids = HashMap::new();
        for (n, u) in UNARY_CALLS {
            unary_ids.insert(u, module.declare_function(n, Linkage::Import, &s1).map_err(cg)?);
        }
        let mut s2 = module.make_signature();
        s2.params.push(AbiParam::new(types::F32));
        s2.params.push(AbiParam::new(types::F32));
        s2.returns.push(AbiParam::new(types::F32));
        let pow_id = module.declare_function("kiln_pow", Linkage::Import, &s2).map_err(cg)?;
        let isa = module.isa();
        let mut isa_key = isa.triple().to_string();
        for v in isa.flags().iter().chain(isa.isa_flags()) {
            isa_key.push_str(&format!(";{v}"));
        }
        isa_key.retain(|c| c != '\n');
        let stored = stored.iter().map(|k| ((k.kernel, k.name.clone()), k.clone())).collect();
        Ok(Jit {
            module,
            fctx: FunctionBuilderContext::new(),
            funcs: Vec::new(),
            code: Vec::new(),
            cache: HashMap::new(),
            unary_ids,
            pow_id,
            isa_key,
            stored,
            compiled: 0,
            installed: 0,
            disasm: false,
            listings: Vec::new(),
        })
    }

    /// The imported helper called `name`, as stored in a relocation.
    fn helper_id(&self, name: &str) -> Option<FuncId> {
        if name == "kiln_pow" {
            return Some(self.pow_id);
        }
        UNARY_CALLS.iter().find(|(n, _)| *n == name).map(|(_, u)| self.unary_ids[u])
    }

    fn helper_name(&self, id: FuncId) -> Option<&'static str> {
        HELPERS.iter().copied().find(|h| self.helper_id(h) == Some(id))
    }

    /// Installs stored code for `kernel` when it was made from exactly
    /// `clif` for exactly this ISA; `None` when it must be compiled.
    fn install(&mut self, kernel: usize, name: &str, id: FuncId, clif: &str) -> Result<Option<MachineCode>, CpuError> {
        let Some(m) = self.stored.get(&(kernel, name.to_string())).filter(|k| k.clif == clif).and_then(|k| k.machine.clone()) else { return Ok(None) };
        if m.isa != self.isa_key {
            return Ok(None);
        }
        let mut relocs = Vec::with_capacity(m.relocs.len());
        for r in &m.relocs {
            let Some(h) = self.helper_id(&r.symbol) else { return Ok(None) };
            relocs.push(ModuleReloc { offset: r.offset, kind: Reloc::Abs8, name: h.into(), addend: r.addend });
        }
        self.module.define_function_bytes(id, m.align, &m.bytes, &relocs).map_err(|e| CpuError::Codegen(format!("k{kernel}: {e:?}")))?;
        Ok(Some(m))
    }

    /// Compiles `p` for kernel `kernel`; `None` when the program needs the
    /// portable evaluator (non-f32 data). Returns the function index.
    pub fn declare(&mut self, kernel: usize, p: &Program, _g: &Graph) -> Result<Option<usize>, CpuError> {
        if !supported(p) {
            return Ok(None);
        }
        let key = shape_key(p);
        if let Some(&i) = self.cache.get(&key) {
            return Ok(Some(i));
        }
        let ptr = self.module.target_config().pointer_type();
        let mut ctx = self.module.make_context();
        ctx.func.signature.params.push(AbiParam::new(ptr));
        ctx.func.signature.params.push(AbiParam::new(types::I64));
        ctx.func.signature.params.push(AbiParam::new(types::I64));
        let name = if p.reduces() { "reduce" } else { "loop" };
        let fname = format!("k{kernel}_{name}");
        let id = self.module.declare_function(&fname, Linkage::Local, &ctx.func.signature).map_err(cg)?;
        {
            let mut b = FunctionBuilder::new(&mut ctx.func, &mut self.fctx);
            // Import only the helpers this kernel calls, in a fixed order, so
            // the CLIF text is deterministic.
            let mut calls: HashMap<UnaryOp, FuncRef> = HashMap::new();
            for (_, u) in UNARY_CALLS {
                if p.instrs.iter().any(|i| matches!(i.ins, Ins::Unary(v, _) if v == u)) {
                    calls.insert(u, self.module.declare_func_in_func(self.unary_ids[&u], b.func));
                }
            }
            let pow = p
                .instrs
                .iter()
                .any(|i| matches!(i.ins, Ins::Binary(BinaryOp::Pow, _, _)))
                .then(|| self.module.declare_func_in_func(self.pow_id, b.func));
            let entry = b.create_block();
            b.append_block_params_for_function_params(entry);
            b.switch_to_block(entry);
            b.seal_block(entry);
            let args = b.block_params(entry)[0];
            let lo = b.block_params(entry)[1];
            let hi = b.block_params(entry)[2];
            let mut e = Emitter::new(p, calls, pow);
            e.bases = (0..p.leaves.len() + p.stores.len())
                .map(|i| b.ins().load(ptr, MemFlags::trusted(), args, (i * 8) as i32))
                .collect();
            // Row pointers start at the bases and advance per loop level. (Byte
            // offsets starting at `iconst 0` would make `iadd 0, x` nodes,
            // which Cranelift's egraph rematerializes at every use: the whole
            // address chain then landed inside the innermost loop.)
            let rows = e.bases.clone();
            e.level(&mut b, 0, rows, lo, hi);
            b.ins().return_(&[]);
            b.finalize(self.module.target_config());
        }
        self.finish_function(kernel, name, id, key, &mut ctx).map(Some)
    }

    /// Runs Cranelift codegen and defines the function; returns the machine
    /// code in storable form, or `None` when it has relocations other than
    /// absolute helper addresses (then it is not stored).
    /// After a function body is built: installs its stored machine code
    /// when the CLIF matches, else runs codegen; records it under `key`.
    fn finish_function(&mut self, kernel: usize, name: &str, id: FuncId, key: String, ctx: &mut cranelift_codegen::Context) -> Result<usize, CpuError> {
        let clif = ctx.func.display().to_string();
        let machine = match self.install(kernel, name, id, &clif)? {
            Some(m) => {
                self.installed += 1;
                Some(m)
            }
            None => {
                self.compiled += 1;
                self.codegen(kernel, id, ctx)?
            }
        };
        self.module.clear_context(ctx);
        self.funcs.push(id);
        self.code.push(KernelCode { kernel, name: name.to_string(), clif, machine });
        self.cache.insert(key, self.funcs.len() - 1);
        Ok(self.funcs.len() - 1)
    }

    fn codegen(&mut self, kernel: usize, id: FuncId, ctx: &mut cranelift_codegen::Context) -> Result<Option<MachineCode>, CpuError> {
        let err = |e: String| CpuError::Codegen(format!("k{kernel}: {e}"));
        let isa = self.module.isa();
        ctx.set_disasm(self.disasm);
        let alignment = ctx.compile(isa, &mut ControlPlane::default()).map_err(|e| err(format!("{:?}", e.inner)))?.buffer.alignment;
        if let Some(asm) = ctx.compiled_code().and_then(|c| c.vcode.clone()) {
            let name = self.module.declarations().get_function_decl(id).name.clone().unwrap_or_else(|| format!("k{kernel}"));
            self.listings.push((name, asm));
        }
        let align = (alignment as u64).max(isa.function_alignment().minimum as u64).max(isa.symbol_alignment());
        let res = ctx.compiled_code().ok_or_else(|| err("no compiled code".into()))?;
        let bytes = res.code_buffer().to_vec();
        let relocs: Vec<ModuleReloc> = res.buffer.relocs().iter().map(|r| ModuleReloc::from_mach_reloc(r, &ctx.func, id)).collect();
        let mut storable = true;
        let mut stored_relocs = Vec::new();
        for r in &relocs {
            let helper = match (&r.kind, &r.name) {
                (Reloc::Abs8, ModuleRelocTarget::User { namespace: 0, index }) => self.helper_name(FuncId::from_u32(*index)),
                _ => None,
            };
            match helper {
                Some(h) => stored_relocs.push(CodeReloc { offset: r.offset, symbol: h.to_string(), addend: r.addend }),
                None => storable = false,
            }
        }
        self.module.define_function_bytes(id, align, &bytes, &relocs).map_err(|e| err(format!("{e:?}")))?;
        Ok(storable.then(|| MachineCode { isa: self.isa_key.clone(), align, bytes, relocs: stored_relocs }))
    }

    /// Defines function `k{kernel}_{name}` (the `JitFn` signature) whose
    /// body `build(b, [args, lo, hi])` emits, up to the return; functions
    /// with equal `name` and `key` (what the body depends on) are shared.
    /// Stored code is installed as for loop kernels. Returns the function index.
    pub fn define(&mut self, kernel: usize, name: &str, key: &str, build: impl FnOnce(&mut FunctionBuilder, [Value; 3])) -> Result<usize, CpuError> {
        let key = format!("{name}:{key}");
        if let Some(&i) = self.cache.get(&key) {
            return Ok(i);
        }
        let ptr = self.module.target_config().pointer_type();
        let mut ctx = self.module.make_context();
        ctx.func.signature.params.push(AbiParam::new(ptr));
        ctx.func.signature.params.push(AbiParam::new(types::I64));
        ctx.func.signature.params.push(AbiParam::new(types::I64));
        let id = self.module.declare_function(&format!("k{kernel}_{name}"), Linkage::Local, &ctx.func.signature).map_err(cg)?;
        {
            let mut b = FunctionBuilder::new(&mut ctx.func, &mut self.fctx);
            let entry = b.create_block();
            b.append_block_params_for_function_params(entry);
            b.switch_to_block(entry);
            b.seal_block(entry);
            let p = b.block_params(entry);
            let params = [p[0], p[1], p[2]];
            build(&mut b, params);
            b.ins().return_(&[]);
            b.finalize(self.module.target_config());
        }
        self.finish_function(kernel, name, id, key, &mut ctx)
    }

    pub fn finish(mut self) -> Result<(JITModule, Vec<JitFn>, Vec<KernelCode>), CpuError> {
        self.module.finalize_definitions().map_err(cg)?;
        let fns = self
            .funcs
            .iter()
            .map(|&id| {
                let p = self.module.get_finalized_function(id);
                // SAFETY: compiled with exactly this signature above.
                unsafe { std::mem::transmute::<*const u8, JitFn>(p) }
            })
            .collect();
        Ok((self.module, fns, self.code))
    }
}

/// A value in the vector (f32x4 / i32x4 mask) or scalar (f32 / i8) domain.
struct Emitter<'a> {
    p: &'a Program,
    dims: Vec<usize>,
    ls: Vec<Vec<isize>>,
    ss: Vec<Vec<isize>>,
    bases: Vec<Value>,
    calls: HashMap<UnaryOp, FuncRef>,
    pow: Option<FuncRef>,
    /// The collapsed dimension that runs over the function's `[lo, hi)`
    /// ([`Program::split`]); every other dimension runs its full extent.
    split: usize,
}

fn flags() -> MemFlags {
    MemFlags::new().with_notrap()
}

impl<'a> Emitter<'a> {
    fn new(p: &'a Program, calls: HashMap<UnaryOp, FuncRef>, pow: Option<FuncRef>) -> Emitter<'a> {
        let (dims, ls, ss) = p.collapsed();
        Emitter { p, dims, ls, ss, bases: Vec::new(), calls, pow, split: p.split().0 }
    }

    fn nl(&self) -> usize {
        self.p.leaves.len()
    }

    fn stride(&self, i: usize, d: usize) -> isize {
        if i < self.nl() { self.ls[i][d] } else { self.ss[i - self.nl()][d] }
    }

    fn level(&mut self, b: &mut FunctionBuilder, d: usize, rows: Vec<Value>, lo: Value, hi: Value) {
        let r = self.dims.len();
        // `lo`/`hi` (the function's range) travel down to the split dimension.
        let (range_lo, range_hi) = (lo, hi);
        let (lo, hi) = if d == self.split {
            (lo, hi)
        } else {
            (b.ins().iconst(types::I64, 0), b.ins().iconst(types::I64, self.dims[d] as i64))
        };
        if d + 1 == r {
            self.inner(b, d, rows, lo, hi);
            return;
        }
        let strides: Vec<isize> = (0..rows.len()).map(|i| self.stride(i, d)).collect();
        // Row pointers are bumped by their stride each iteration (loop-carried
        // variables). Written as `row + i * stride`, Cranelift's egraph
        // placed those multiplies and adds inside the innermost loop body,
        // recomputing every address chain per vector: it does not hoist an
        // `imul` by a constant out of a loop.
        let vars: Vec<Option<Variable>> = rows
            .iter()
            .zip(&strides)
            .map(|(&p, &s)| {
                (s != 0).then(|| {
                    let v = b.declare_var(types::I64);
                    let start = if d == self.split {
                        let m = b.ins().imul_imm_s(lo, (s * 4) as i64);
                        b.ins().iadd(p, m)
                    } else {
                        p
                    };
                    b.def_var(v, start);
                    v
                })
            })
            .collect();
        // The loop body needs `self` mutably; collect what it needs first.
        let this: *mut Emitter = self;
        crate::lower::util::for_step(b, lo, hi, 1, |b, _i| {
            let cur: Vec<Value> = rows.iter().zip(&vars).map(|(&p, v)| v.map_or(p, |v| b.use_var(v))).collect();
            // SAFETY: `this` is the unique emitter; the closure runs synchronously.
            unsafe { (*this).level(b, d + 1, cur.clone(), range_lo, range_hi) };
            for ((&p, v), &s) in cur.iter().zip(&vars).zip(&strides) {
                if let Some(v) = v {
                    let n = b.ins().iadd_imm_s(p, (s * 4) as i64);
                    b.def_var(*v, n);
                }
            }
        });
    }

    fn inner(&mut self, b: &mut FunctionBuilder, d: usize, rows: Vec<Value>, lo: Value, hi: Value) {
        let n = rows.len();
        let nl = self.nl();
        let strides: Vec<isize> = (0..n).map(|i| self.stride(i, d)).collect();
        let vectorizable = strides.iter().all(|&s| s == 0 || s == 1)
            && self.p.stores.iter().enumerate().all(|(si, st)| st.reduce.is_some() || strides[nl + si] == 1);
        // Loop-invariant row pointers (one per leaf and store): one add per
        // access inside the loop.
        let ptrs: Vec<Value> = rows;
        // Hoisted broadcast leaves and constants.
        let mut hoisted: Vec<Option<(Value, Value)>> = vec![None; nl];
        for (li, leaf) in self.p.leaves.iter().enumerate() {
            if let Some(c) = leaf.constant {
                let s = b.ins().f32const(c as f32);
                let v = b.ins().splat(F32X4, s);
                hoisted[li] = Some((s, v));
            } else if strides[li] == 0 {
                let s = b.ins().load(types::F32, flags(), ptrs[li], 0);
                let v = b.ins().splat(F32X4, s);
                hoisted[li] = Some((s, v));
            }
        }
        // Register accumulators (two vectors for ILP, one scalar) for
        // reductions along this dimension.
        let mut accs: Vec<Option<(ReduceOp, [Variable; 2], Variable)>> = vec![None; self.p.stores.len()];
        for (si, st) in self.p.stores.iter().enumerate() {
            if let Some(op) = st.reduce
                && strides[nl + si] == 0
            {
                let id = b.ins().f32const(reduce_identity(op) as f32);
                let idv = b.ins().splat(F32X4, id);
                let v0 = b.declare_var(F32X4);
                let v1 = b.declare_var(F32X4);
                b.def_var(v0, idv);
                b.def_var(v1, idv);
                let vs = b.declare_var(types::F32);
                b.def_var(vs, id);
                accs[si] = Some((op, [v0, v1], vs));
            }
        }
        let this: *mut Emitter = self;
        // One vector body at element `i` for each sub-block offset in `subs`.
        let vec_body = |b: &mut FunctionBuilder, i: Value, subs: &[i32]| {
            // SAFETY: `this` is the unique emitter; closures run synchronously.
            let me = unsafe { &mut *this };
            let bo = b.ins().ishl_imm_u(i, 2);
            let addrs: Vec<Option<Value>> = (0..n).map(|j| (strides[j] == 1).then(|| b.ins().iadd(ptrs[j], bo))).collect();
            for (u, &so) in subs.iter().enumerate() {
                let vals = me.eval(b, true, &hoisted, &|b, li| b.ins().load(F32X4, flags(), addrs[li].expect("stride-1 leaf"), so));
                for (si, st) in me.p.stores.iter().enumerate() {
                    let v = vals[st.instr];
                    match (st.reduce, accs[si]) {
                        (_, Some((op, vv, _))) => {
                            let acc = b.use_var(vv[u.min(1)]);
                            let nv = combine(b, op, acc, v);
                            b.def_var(vv[u.min(1)], nv);
                        }
                        (Some(op), None) => {
                            let a = addrs[nl + si].expect("stride-1 store");
                            let o = b.ins().load(F32X4, flags(), a, so);
                            let nv = combine(b, op, o, v);
                            b.ins().store(flags(), nv, a, so);
                        }
                        (None, None) => {
                            b.ins().store(flags(), v, addrs[nl + si].expect("stride-1 store"), so);
                        }
                    }
                }
            }
        };
        let mut start = lo;
        if vectorizable {
            let len = b.ins().isub(hi, lo);
            let l8 = b.ins().band_imm_s(len, !7i64);
            let end8 = b.ins().iadd(lo, l8);
            let l4 = b.ins().band_imm_s(len, !3i64);
            let end4 = b.ins().iadd(lo, l4);
            let mid = crate::lower::util::for_step(b, lo, end8, 8, |b, i| vec_body(b, i, &[0, 16]));
            start = crate::lower::util::for_step(b, mid, end4, 4, |b, i| vec_body(b, i, &[0]));
        }
        crate::lower::util::for_step(b, start, hi, 1, |b, i| {
            // SAFETY: as above.
            let me = unsafe { &mut *this };
            let addr = |b: &mut FunctionBuilder, j: usize| -> Value {
                if strides[j] == 0 {
                    ptrs[j]
                } else {
                    let m = b.ins().imul_imm_s(i, (strides[j] * 4) as i64);
                    b.ins().iadd(ptrs[j], m)
                }
            };
            let vals = me.eval(b, false, &hoisted, &|b, li| {
                let a = addr(b, li);
                b.ins().load(types::F32, flags(), a, 0)
            });
            for (si, st) in me.p.stores.iter().enumerate() {
                let v = vals[st.instr];
                match (st.reduce, accs[si]) {
                    (_, Some((op, _, vs))) => {
                        let acc = b.use_var(vs);
                        let nv = combine(b, op, acc, v);
                        b.def_var(vs, nv);
                    }
                    (Some(op), None) => {
                        let a = addr(b, nl + si);
                        let o = b.ins().load(types::F32, flags(), a, 0);
                        let nv = combine(b, op, o, v);
                        b.ins().store(flags(), nv, a, 0);
                    }
                    (None, None) => {
                        let a = addr(b, nl + si);
                        b.ins().store(flags(), v, a, 0);
                    }
                }
            }
        });
        // Fold register accumulators into the output element.
        for (si, acc) in accs.iter().enumerate() {
            if let Some((op, vv, vs)) = *acc {
                let v0 = b.use_var(vv[0]);
                let v1 = b.use_var(vv[1]);
                let v = combine(b, op, v0, v1);
                let mut t = b.use_var(vs);
                for lane in 0..4u8 {
                    let x = b.ins().extractlane(v, lane);
                    t = combine(b, op, t, x);
                }
                let a = ptrs[nl + si];
                let o = b.ins().load(types::F32, flags(), a, 0);
                let nv = combine(b, op, o, t);
                b.ins().store(flags(), nv, a, 0);
            }
        }
    }

    /// Evaluates every instruction at one point (4 lanes when `vec`).
    fn eval(
        &self,
        b: &mut FunctionBuilder,
        vec: bool,
        hoisted: &[Option<(Value, Value)>],
        load: &dyn Fn(&mut FunctionBuilder, usize) -> Value,
    ) -> Vec<Value> {
        let fty = if vec { F32X4 } else { types::F32 };
        let fconst = |b: &mut FunctionBuilder, c: f32| -> Value {
            let s = b.ins().f32const(c);
            if vec { b.ins().splat(F32X4, s) } else { s }
        };
        // A mask as float bits (vector) for bitwise use.
        let mask_bits = |b: &mut FunctionBuilder, m: Value| -> Value { b.ins().bitcast(F32X4, le(), m) };
        let sel = |b: &mut FunctionBuilder, m: Value, x: Value, y: Value| -> Value {
            if vec {
                let mb = b.ins().bitcast(F32X4, le(), m);
                b.ins().bitselect(mb, x, y)
            } else {
                b.ins().select(m, x, y)
            }
        };
        let mut vals: Vec<Value> = Vec::with_capacity(self.p.instrs.len());
        for ins in &self.p.instrs {
            let v = match ins.ins {
                Ins::Leaf(li) => match hoisted[li] {
                    Some((s, v)) => {
                        if vec {
                            v
                        } else {
                            s
                        }
                    }
                    None => load(b, li),
                },
                Ins::Copy(a) => vals[a],
                Ins::Unary(u, a) => {
                    let x = vals[a];
                    match u {
                        UnaryOp::Neg => b.ins().fneg(x),
                        UnaryOp::Abs => b.ins().fabs(x),
                        UnaryOp::Sqrt => b.ins().sqrt(x),
                        UnaryOp::Rsqrt => {
                            let s = b.ins().sqrt(x);
                            let one = fconst(b, 1.0);
                            b.ins().fdiv(one, s)
                        }
                        UnaryOp::Recip => {
                            let one = fconst(b, 1.0);
                            b.ins().fdiv(one, x)
                        }
                        // `0 > x ? 0 : x`: one maxps (NaN and -0 pass through,
                        // as `scalar::relu` defines).
                        UnaryOp::Relu => {
                            let z = fconst(b, 0.0);
                            pmax(b, vec, z, x)
                        }
                        UnaryOp::Sign => {
                            let z = fconst(b, 0.0);
                            let one = fconst(b, 1.0);
                            let mone = fconst(b, -1.0);
                            let gt = b.ins().fcmp(FloatCC::GreaterThan, x, z);
                            let lt = b.ins().fcmp(FloatCC::LessThan, x, z);
                            let t = sel(b, lt, mone, x);
                            sel(b, gt, one, t)
                        }
                        UnaryOp::Exp if vec => exp_v(b, x),
                        UnaryOp::Sigmoid if vec => {
                            // 1/(1+e^-x): exp overflow to inf gives exactly 0.
                            let nx = b.ins().fneg(x);
                            let e = exp_v(b, nx);
                            let one = fconst(b, 1.0);
                            let d = b.ins().fadd(one, e);
                            b.ins().fdiv(one, d)
                        }
                        UnaryOp::Tanh if vec => tanh_v(b, x),
                        _ => {
                            let f = self.calls[&u];
                            self.per_lane(b, vec, &[x], f)
                        }
                    }
                }
                Ins::Binary(op, ins_x, ins_y) => {
                    let (x, y) = (vals[ins_x], vals[ins_y]);
                    match op {
                        BinaryOp::Add => b.ins().fadd(x, y),
                        BinaryOp::Sub => b.ins().fsub(x, y),
                        BinaryOp::Mul => b.ins().fmul(x, y),
                        BinaryOp::Div => b.ins().fdiv(x, y),
                        // Against a nonzero constant `c`, `c > x ? c : x` is
                        // exactly torch.maximum (x NaN gives x) in one maxps;
                        // otherwise fmax's exact NaN and +-0 rules are needed.
                        BinaryOp::Max => match self.nonzero_const(ins_y, ins_x) {
                            Some((c, v)) => pmax(b, vec, vals[c], vals[v]),
                            None => b.ins().fmax(x, y),
                        },
                        BinaryOp::Min => match self.nonzero_const(ins_y, ins_x) {
                            Some((c, v)) => pmin(b, vec, vals[c], vals[v]),
                            None => b.ins().fmin(x, y),
                        },
                        BinaryOp::Pow => self.per_lane(b, vec, &[x, y], self.pow.expect("pow is imported when used")),
                    }
                }
                Ins::Compare(c, x, y) => {
                    let cc = match c {
                        CompareOp::Lt => FloatCC::LessThan,
                        CompareOp::Le => FloatCC::LessThanOrEqual,
                        CompareOp::Gt => FloatCC::GreaterThan,
                        CompareOp::Ge => FloatCC::GreaterThanOrEqual,
                        CompareOp::Eq => FloatCC::Equal,
                        CompareOp::Ne => FloatCC::NotEqual,
                    };
                    b.ins().fcmp(cc, vals[x], vals[y])
                }
                Ins::Select(m, x, y) => match self.select_form(m, x, y) {
                    SelectForm::Max(u, w) => pmax(b, vec, vals[u], vals[w]),
                    SelectForm::Min(u, w) => pmin(b, vec, vals[u], vals[w]),
                    // `m ? x : +0` is `x & m` (relu's gradient), bit for bit.
                    SelectForm::OrZero if vec => {
                        let mb = mask_bits(b, vals[m]);
                        b.ins().band(vals[x], mb)
                    }
                    SelectForm::ZeroOr if vec => {
                        let mb = mask_bits(b, vals[m]);
                        b.ins().band_not(vals[y], mb)
                    }
                    _ => sel(b, vals[m], vals[x], vals[y]),
                },
                Ins::Cast(a) => {
                    let from = self.p.instrs[a].dtype;
                    match (from, ins.dtype) {
                        (DType::Bool, _) => {
                            let one = fconst(b, 1.0);
                            let z = fconst(b, 0.0);
                            sel(b, vals[a], one, z)
                        }
                        (_, DType::Bool) => {
                            let z = fconst(b, 0.0);
                            b.ins().fcmp(FloatCC::NotEqual, vals[a], z)
                        }
                        _ => vals[a],
                    }
                }
            };
            vals.push(v);
        }
        let _ = fty;
        vals
    }

    /// The constant instruction behind `i` (through broadcasts), if any.
    fn constant(&self, mut i: usize) -> Option<f64> {
        loop {
            match self.p.instrs[i].ins {
                Ins::Copy(a) => i = a,
                Ins::Leaf(l) => return self.p.leaves[l].constant,
                _ => return None,
            }
        }
    }

    /// `(c, v)` when one of `a`, `b` is a constant other than zero and NaN
    /// (whichever operand order the graph used).
    fn nonzero_const(&self, a: usize, b: usize) -> Option<(usize, usize)> {
        let ok = |i: usize| self.constant(i).is_some_and(|c| c as f32 != 0.0 && !c.is_nan());
        if ok(a) {
            Some((a, b))
        } else if ok(b) {
            Some((b, a))
        } else {
            None
        }
    }

    /// Which cheaper instruction computes `select(m, x, y)` exactly.
    fn select_form(&self, m: usize, x: usize, y: usize) -> SelectForm {
        if let Ins::Compare(c, a, b) = self.p.instrs[m].ins {
            // `a > b ? a : b` is maxps(a, b): b when they are equal or either
            // is NaN, exactly as the compare decides; likewise for the others.
            match (c, (a, b) == (x, y), (a, b) == (y, x)) {
                (CompareOp::Gt, true, _) => return SelectForm::Max(x, y),
                (CompareOp::Gt, _, true) => return SelectForm::Min(x, y),
                (CompareOp::Lt, true, _) => return SelectForm::Min(x, y),
                (CompareOp::Lt, _, true) => return SelectForm::Max(x, y),
                _ => {}
            }
        }
        let pos_zero = |i: usize| self.constant(i).is_some_and(|c| c.to_bits() == 0);
        if pos_zero(y) {
            SelectForm::OrZero
        } else if pos_zero(x) {
            SelectForm::ZeroOr
        } else {
            SelectForm::Plain
        }
    }

    /// Calls a scalar function on each lane (or once for scalars).
    fn per_lane(&self, b: &mut FunctionBuilder, vec: bool, args: &[Value], f: FuncRef) -> Value {
        if !vec {
            let c = b.ins().call(f, args);
            return b.inst_results(c)[0];
        }
        let mut out = args[0];
        for lane in 0..4u8 {
            let la: Vec<Value> = args.iter().map(|&a| b.ins().extractlane(a, lane)).collect();
            let c = b.ins().call(f, &la);
            let r = b.inst_results(c)[0];
            out = b.ins().insertlane(out, r, lane);
        }
        out
    }
}

/// How a select is lowered ([`Emitter::select_form`]).
enum SelectForm {
    /// `u > w ? u : w`.
    Max(usize, usize),
    /// `u < w ? u : w`.
    Min(usize, usize),
    /// `m ? x : +0`.
    OrZero,
    /// `m ? +0 : y`.
    ZeroOr,
    Plain,
}


fn combine(b: &mut FunctionBuilder, op: ReduceOp, acc: Value, v: Value) -> Value {
    match op {
        ReduceOp::Sum | ReduceOp::Mean => b.ins().fadd(acc, v),
        ReduceOp::Max => b.ins().fmax(acc, v),
        ReduceOp::Min => b.ins().fmin(acc, v),
    }
}

//! The JIT module: compiles each loop kernel's program (`loops.rs` emits
//! the body) and the per-shape conv and pooling functions (`define`) into
//! one Cranelift JIT module, with the Rust helpers generated code calls,
//! and keeps every function's CLIF text and, where it can be reinstalled
//! elsewhere, its machine code (`KernelCode`), so a stored program installs
//! its code without codegen on an identical ISA.
//! Identical programs (up to buffer addresses) share one compiled function.

use std::collections::HashMap;

use cranelift_codegen::ir::{types, AbiParam, FuncRef, InstBuilder, MemFlagsData as MemFlags, Value};
use cranelift_codegen::settings::{self, Configurable};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use cranelift_jit::{JITBuilder, JITModule};
use cranelift_codegen::binemit::Reloc;
use cranelift_codegen::control::ControlPlane;
use cranelift_module::{default_libcall_names, FuncId, Linkage, Module, ModuleReloc, ModuleRelocTarget};
use kiln_ir::scalar::{binary, unary};
use kiln_ir::{BinaryOp, DType, Graph, UnaryOp};

use super::loops::Emitter;
use crate::kernels::program::{Ins, Program};
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

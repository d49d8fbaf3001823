//! [`ProgramFile`]: the decoded sections of a `.kiln` file.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use kiln_ir::{DType, Graph, HostTensor, InputRole, Shape, Signature, SignatureInput, TensorType};
use kiln_passes::{PassRow, PipelineReport};
use serde_json::{json, Value};

use super::container::{self, tag_str};
use super::limits::{self, LoadOptions};
use super::FormatError;

const META: [u8; 4] = *b"META";
const SIGN: [u8; 4] = *b"SIGN";
const GRPH: [u8; 4] = *b"GRPH";
const PLAN: [u8; 4] = *b"PLAN";
const WGTS: [u8; 4] = *b"WGTS";
const PASS: [u8; 4] = *b"pass";

/// One named piece of a backend's compiled plan. The CPU backend stores
/// `partition` (kernel list and dispatch order), `memory` (buffer plan) and
/// one `clif` entry per JIT kernel; a GPU backend stores its `wgsl` kernels
/// and dispatch list the same way, so a new backend needs no format change.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanEntry {
    pub name: String,
    /// What `data` is: `text`, `clif`, `wgsl`, `json`, `bin`, ...
    pub kind: String,
    pub data: Vec<u8>,
}

impl PlanEntry {
    pub fn text(name: &str, kind: &str, text: &str) -> PlanEntry {
        PlanEntry { name: name.into(), kind: kind.into(), data: text.as_bytes().to_vec() }
    }

    /// The data as UTF-8 text (lossy for binary entries).
    pub fn as_text(&self) -> String {
        String::from_utf8_lossy(&self.data).into_owned()
    }
}

/// The content of a `.kiln` file.
#[derive(Debug, Clone)]
pub struct ProgramFile {
    /// `cpu`, `interp`, `interp-f64` (later `wgpu`).
    pub backend: String,
    /// Backend options that affect results (e.g. `threads`), as strings.
    pub options: BTreeMap<String, String>,
    /// Free-form facts about the program (e.g. `kind` = `train-step`).
    pub extra: BTreeMap<String, String>,
    /// The kiln version that wrote the file.
    pub writer: String,
    pub signature: Signature,
    /// The optimized graph, as the backend compiled it.
    pub graph: Graph,
    /// What each pass did when the program was compiled.
    pub report: PipelineReport,
    pub plan: Vec<PlanEntry>,
    /// Params and optimizer state at save time.
    pub state: BTreeMap<String, HostTensor>,
    /// Peak bytes of the backend's memory plan, when it reports one.
    pub peak_bytes: Option<u64>,
}

impl ProgramFile {
    /// Encodes every section into one file image.
    pub fn to_bytes(&self) -> Result<Vec<u8>, FormatError> {
        let meta = json!({
            "writer": self.writer,
            "backend": self.backend,
            "options": self.options,
            "extra": self.extra,
            "peak_bytes": self.peak_bytes,
        });
        let graph = kiln_ir::text::print(&self.graph);
        let weights = kiln_ir::safetensors_to_bytes(&self.state).map_err(|e| FormatError::Encode(e.to_string()))?;
        Ok(container::write(&[
            (META, meta.to_string().into_bytes()),
            (SIGN, signature_to_json(&self.signature).to_string().into_bytes()),
            (GRPH, graph.into_bytes()),
            (PLAN, encode_plan(&self.backend, &self.plan)),
            (WGTS, weights),
            (PASS, report_to_json(&self.report).to_string().into_bytes()),
        ]))
    }

    /// Checks and decodes a file image. Does not compile anything.
    pub fn from_bytes(bytes: &[u8]) -> Result<ProgramFile, FormatError> {
        ProgramFile::from_bytes_with(bytes, &LoadOptions::default())
    }

    /// [`from_bytes`](Self::from_bytes) under `opts.max_memory`: the graph's
    /// constants and values must fit in it (plus the stored weights).
    pub fn from_bytes_with(bytes: &[u8], opts: &LoadOptions) -> Result<ProgramFile, FormatError> {
        let sections = container::read(bytes)?;
        let mut found: BTreeMap<[u8; 4], &[u8]> = BTreeMap::new();
        for s in &sections {
            let known = [META, SIGN, GRPH, PLAN, WGTS, PASS].contains(&s.tag);
            if !known && s.tag[0].is_ascii_uppercase() {
                return Err(FormatError::UnknownSection(tag_str(s.tag)));
            }
            if known && found.insert(s.tag, s.payload).is_some() {
                return Err(FormatError::Corrupt { section: tag_str(s.tag), reason: "appears twice".into() });
            }
        }
        let get = |t: [u8; 4]| found.get(&t).copied().ok_or_else(|| FormatError::MissingSection(tag_str(t)));

        let meta = json_of(META, get(META)?)?;
        let text = |v: &Value, k: &str| -> Result<String, FormatError> {
            v.get(k).and_then(Value::as_str).map(str::to_string).ok_or_else(|| corrupt(META, format!("no string `{k}`")))
        };
        let backend = text(&meta, "backend")?;
        let writer = text(&meta, "writer")?;
        let options = string_map(&meta, "options")?;
        let extra = string_map(&meta, "extra")?;
        let peak_bytes = meta.get("peak_bytes").and_then(Value::as_u64);

        let signature = signature_from_json(&json_of(SIGN, get(SIGN)?)?)?;
        let src = std::str::from_utf8(get(GRPH)?).map_err(|e| corrupt(GRPH, e.to_string()))?;
        let graph = kiln_ir::text::parse_with_limits(src, "<GRPH>", &opts.parse_limits(src)).map_err(|es| {
            corrupt(GRPH, es.iter().take(3).map(|e| e.to_string()).collect::<Vec<_>>().join("; "))
        })?;
        kiln_ir::verify(&graph).map_err(|e| corrupt(GRPH, e.to_string()))?;
        if Signature::of(&graph) != signature {
            return Err(corrupt(SIGN, "the signature does not match the stored graph".into()));
        }
        let (plan_backend, plan) = decode_plan(get(PLAN)?)?;
        if plan_backend != backend {
            return Err(corrupt(PLAN, format!("plan is for backend `{plan_backend}`, the program for `{backend}`")));
        }
        let state = kiln_ir::safetensors_from_bytes(get(WGTS)?).map_err(|e| corrupt(WGTS, e.to_string()))?;
        for (name, t) in &state {
            signature.check_state(name, t).map_err(|e| corrupt(WGTS, e.to_string()))?;
        }
        limits::check_graph(&graph, &state, opts.max_memory)?;
        let report = match found.get(&PASS) {
            Some(p) => report_from_json(&json_of(PASS, p)?)?,
            None => PipelineReport::default(),
        };
        Ok(ProgramFile { backend, options, extra, writer, signature, graph, report, plan, state, peak_bytes })
    }

    pub fn write(&self, path: impl AsRef<Path>) -> Result<(), FormatError> {
        let path = path.as_ref();
        let bytes = self.to_bytes()?;
        let io = |e: std::io::Error| FormatError::Io { path: path.display().to_string(), message: e.to_string() };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        // Write beside and rename, so a crash never leaves a half file
        // under the real name.
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        std::fs::write(&tmp, &bytes).map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)
    }

    pub fn read(path: impl AsRef<Path>) -> Result<ProgramFile, FormatError> {
        ProgramFile::read_with(path, &LoadOptions::default())
    }

    /// [`read`](Self::read) under `opts.max_memory`.
    pub fn read_with(path: impl AsRef<Path>, opts: &LoadOptions) -> Result<ProgramFile, FormatError> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| FormatError::Io { path: path.display().to_string(), message: e.to_string() })?;
        ProgramFile::from_bytes_with(&bytes, opts)
    }

    /// The plan entry called `name`.
    pub fn plan_entry(&self, name: &str) -> Option<&PlanEntry> {
        self.plan.iter().find(|e| e.name == name)
    }

    /// A human-readable summary: what `kiln inspect` prints.
    pub fn summary(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let _ = writeln!(s, "kiln program (format v{}, written by {})", super::VERSION, self.writer);
        let _ = writeln!(s, "backend: {}{}", self.backend, fmt_map(&self.options));
        for (k, v) in &self.extra {
            let _ = writeln!(s, "{k}: {v}");
        }
        let _ = writeln!(s, "inputs:");
        for i in &self.signature.inputs {
            let _ = writeln!(s, "  {:<6} {} : {}", i.role.name(), i.name, i.ty);
        }
        let _ = writeln!(s, "outputs:");
        for (n, t) in &self.signature.outputs {
            let _ = writeln!(s, "  {n} : {t}");
        }
        let _ = writeln!(s, "graph: {} nodes", self.graph.node_count());
        if !self.report.rows.is_empty() {
            let _ = writeln!(s, "passes ({} nodes in):", self.report.nodes_in);
            for r in &self.report.rows {
                let _ = writeln!(s, "  {:<24} {:>6} -> {:<6} {:>9.3} ms", r.pass, r.nodes_before, r.nodes_after, r.duration.as_secs_f64() * 1e3);
            }
        }
        let kernels = self.plan.iter().filter(|e| e.kind == "clif" || e.kind == "wgsl").count();
        let _ = writeln!(s, "plan: {} entries, {kernels} kernels", self.plan.len());
        let code = self.plan.iter().filter(|e| super::seal::EXECUTABLE.contains(&e.kind.as_str())).count();
        if code > 0 {
            // Whether it will be installed depends on the loading user's key.
            let sealed = self.plan.iter().filter(|e| e.kind == super::seal::SEAL).count();
            let _ = writeln!(s, "machine code: {code} kernels, {sealed} sealed (installed only under the key that sealed them, else compiled)");
        }
        if let Some(p) = self.peak_bytes {
            let _ = writeln!(s, "peak memory: {p} bytes ({:.2} MiB)", p as f64 / (1 << 20) as f64);
        }
        let _ = writeln!(s, "weights and state ({}):", self.state.len());
        for (n, t) in &self.state {
            let _ = writeln!(s, "  {n} : {}", t.ty());
        }
        s
    }
}

fn fmt_map(m: &BTreeMap<String, String>) -> String {
    if m.is_empty() {
        return String::new();
    }
    format!(" ({})", m.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(", "))
}

fn corrupt(tag: [u8; 4], reason: String) -> FormatError {
    FormatError::Corrupt { section: tag_str(tag), reason }
}

fn json_of(tag: [u8; 4], bytes: &[u8]) -> Result<Value, FormatError> {
    serde_json::from_slice(bytes).map_err(|e| corrupt(tag, e.to_string()))
}

fn string_map(v: &Value, key: &str) -> Result<BTreeMap<String, String>, FormatError> {
    let Some(obj) = v.get(key).and_then(Value::as_object) else {
        return Err(corrupt(META, format!("no object `{key}`")));
    };
    obj.iter()
        .map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())).ok_or_else(|| corrupt(META, format!("`{key}.{k}` is not a string"))))
        .collect()
}

fn ty_to_json(t: &TensorType) -> Value {
    json!({ "dtype": t.dtype.name(), "shape": t.shape.dims() })
}

fn ty_from_json(v: &Value) -> Result<TensorType, FormatError> {
    let bad = || corrupt(SIGN, format!("bad tensor type {v}"));
    let dtype = v.get("dtype").and_then(Value::as_str).and_then(DType::from_name).ok_or_else(bad)?;
    let dims = v
        .get("shape")
        .and_then(Value::as_array)
        .ok_or_else(bad)?
        .iter()
        .map(|d| d.as_u64().map(|d| d as usize).ok_or_else(bad))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(TensorType::new(dtype, Shape(dims)))
}

fn signature_to_json(s: &Signature) -> Value {
    json!({
        "inputs": s.inputs.iter().map(|i| json!({"name": i.name, "role": i.role.name(), "type": ty_to_json(&i.ty)})).collect::<Vec<_>>(),
        "outputs": s.outputs.iter().map(|(n, t)| json!({"name": n, "type": ty_to_json(t)})).collect::<Vec<_>>(),
    })
}

fn signature_from_json(v: &Value) -> Result<Signature, FormatError> {
    let list = |k: &str| v.get(k).and_then(Value::as_array).ok_or_else(|| corrupt(SIGN, format!("no list `{k}`")));
    let name = |e: &Value| e.get("name").and_then(Value::as_str).map(str::to_string).ok_or_else(|| corrupt(SIGN, format!("entry without a name: {e}")));
    let ty = |e: &Value| e.get("type").ok_or_else(|| corrupt(SIGN, format!("entry without a type: {e}"))).and_then(ty_from_json);
    let mut inputs = Vec::new();
    for e in list("inputs")? {
        let role = match e.get("role").and_then(Value::as_str) {
            Some("input") => InputRole::Input,
            Some("param") => InputRole::Param,
            Some("state") => InputRole::State,
            other => return Err(corrupt(SIGN, format!("bad role {other:?}"))),
        };
        inputs.push(SignatureInput { name: name(e)?, role, ty: ty(e)? });
    }
    let outputs = list("outputs")?.iter().map(|e| Ok((name(e)?, ty(e)?))).collect::<Result<Vec<_>, FormatError>>()?;
    Ok(Signature { inputs, outputs })
}

fn report_to_json(r: &PipelineReport) -> Value {
    json!({
        "nodes_in": r.nodes_in,
        "rows": r.rows.iter().map(|p| json!({
            "pass": p.pass, "nanos": p.duration.as_nanos() as u64,
            "nodes_before": p.nodes_before, "nodes_after": p.nodes_after, "changed": p.changed,
        })).collect::<Vec<_>>(),
    })
}

fn report_from_json(v: &Value) -> Result<PipelineReport, FormatError> {
    let bad = || corrupt(PASS, format!("bad pass report {v}"));
    let num = |e: &Value, k: &str| e.get(k).and_then(Value::as_u64).ok_or_else(bad);
    let rows = v
        .get("rows")
        .and_then(Value::as_array)
        .ok_or_else(bad)?
        .iter()
        .map(|e| {
            Ok(PassRow {
                pass: e.get("pass").and_then(Value::as_str).ok_or_else(bad)?.to_string(),
                duration: Duration::from_nanos(num(e, "nanos")?),
                nodes_before: num(e, "nodes_before")? as usize,
                nodes_after: num(e, "nodes_after")? as usize,
                changed: e.get("changed").and_then(Value::as_bool).ok_or_else(bad)?,
            })
        })
        .collect::<Result<Vec<_>, FormatError>>()?;
    Ok(PipelineReport { nodes_in: num(v, "nodes_in")? as usize, rows })
}

/// PLAN payload: backend name, entry count, then per entry name, kind and
/// data, each length-prefixed (u32 LE for strings, u64 LE for data).
fn encode_plan(backend: &str, entries: &[PlanEntry]) -> Vec<u8> {
    let mut out = Vec::new();
    let s = |out: &mut Vec<u8>, t: &str| {
        out.extend((t.len() as u32).to_le_bytes());
        out.extend(t.as_bytes());
    };
    s(&mut out, backend);
    out.extend((entries.len() as u32).to_le_bytes());
    for e in entries {
        s(&mut out, &e.name);
        s(&mut out, &e.kind);
        out.extend((e.data.len() as u64).to_le_bytes());
        out.extend(&e.data);
    }
    out
}

struct Cursor<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: u64) -> Result<&'a [u8], FormatError> {
        if n > (self.b.len() - self.pos) as u64 {
            return Err(corrupt(PLAN, format!("entry overruns the section at byte {}", self.pos)));
        }
        let s = &self.b[self.pos..self.pos + n as usize];
        self.pos += n as usize;
        Ok(s)
    }

    fn u32(&mut self) -> Result<u32, FormatError> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }

    fn string(&mut self) -> Result<String, FormatError> {
        let n = self.u32()?;
        String::from_utf8(self.take(n as u64)?.to_vec()).map_err(|e| corrupt(PLAN, e.to_string()))
    }
}

fn decode_plan(b: &[u8]) -> Result<(String, Vec<PlanEntry>), FormatError> {
    let mut c = Cursor { b, pos: 0 };
    let backend = c.string()?;
    let count = c.u32()?;
    let mut entries = Vec::new();
    for _ in 0..count {
        let name = c.string()?;
        let kind = c.string()?;
        let n = u64::from_le_bytes(c.take(8)?.try_into().expect("8 bytes"));
        entries.push(PlanEntry { name, kind, data: c.take(n)?.to_vec() });
    }
    if c.pos != b.len() {
        return Err(corrupt(PLAN, format!("{} bytes after the last entry", b.len() - c.pos)));
    }
    Ok((backend, entries))
}

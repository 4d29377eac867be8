#!/usr/bin/env node
// Generates the code that follows from the operator table (native/ops.json) and the tolerance table
// (native/tolerances.json); see the $comment of native/ops.json for the table's language.
//
//   node scripts/gen-ops.mjs           write the generated files (npm run gen:ops)
//   node scripts/gen-ops.mjs --check   exit 1, naming them, when a generated file is stale
//
// Outputs (committed; test/optable.test.ts checks that they are up to date):
//   native/generated/ops_table.h      argument specs and tolerances (C++ data, native/op_spec.h types)
//   native/generated/ops_decl.inc     kernel prototypes, included inside the kernel namespace
//   native/generated/ops_invoke.inc   kernel calls for a kernel namespace aliased as K
//   src/backend/ops.generated.ts      the runtime table, the Backend operator methods, the addon's functions
import { readFileSync, writeFileSync, renameSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const MAX_ELEMENTS = 2 ** 40; // native/op_spec.h kMaxElements
const MAX_FACTORS = 4,
  MAX_ARGS = 16,
  MAX_SLOTS = 12; // native/op_spec.h

class TableError extends Error {}
const bad = (where, msg) => {
  throw new TableError(`native/ops.json: ${where}: ${msg}`);
};

// ---- parsing -----------------------------------------------------------------------------------

const IDENT = /^[A-Za-z_]\w*$/;

/** A product like "B*T*3*C" -> { mult: 3, names: ['B','T','C'], text }. */
function parseProduct(text, where) {
  const factors = text.split('*').map((s) => s.trim());
  let mult = 1;
  const names = [];
  for (const f of factors) {
    if (/^\d+$/.test(f)) mult *= Number(f);
    else if (IDENT.test(f)) names.push(f);
    else bad(where, `'${f}' in '${text}' is neither a size name nor an integer`);
  }
  return { mult, names, text: factors.join('*') };
}

const RE = {
  buf: /^(\w+):\s*(in|out|inout|acc)(\?)?\[([^\];]+)(?:;\s*(\w+)\s*>=\s*(\w+))?\]$/,
  int: /^(\w+):\s*int(?:\s*>=\s*(\d+)|\s+(\d+)\.\.(\d+))?$/,
  derived: /^(\w+):\s*derived$/,
  real: /^(\w+):\s*(f32|f64)(?:\s+(any|>=0|\[0,1\)))?$/,
  ids: /^(\w+):\s*ids\[([^\]]+)\]\s+in\s+\[(-?\d+),\s*(\w+)\)$/,
};
const RULES = { undefined: 'finite', any: 'any', '>=0': 'nonNegative', '[0,1)': 'unitInterval' };

function parseArg(s, where) {
  let m;
  if ((m = RE.buf.exec(s)))
    return { name: m[1], kind: m[2], nullable: m[3] === '?', shape: parseProduct(m[4], where), bound: m[5] ? { name: m[5], rhs: m[6] } : null };
  if ((m = RE.int.exec(s))) {
    const lo = m[2] !== undefined ? Number(m[2]) : m[3] !== undefined ? Number(m[3]) : 0;
    const hi = m[4] !== undefined ? Number(m[4]) : MAX_ELEMENTS;
    if (!(lo <= hi && hi <= MAX_ELEMENTS)) bad(where, `bad bounds in '${s}'`);
    return { name: m[1], kind: 'int', lo, hi };
  }
  if ((m = RE.derived.exec(s))) return { name: m[1], kind: 'derived' };
  if ((m = RE.real.exec(s))) return { name: m[1], kind: m[2], rule: RULES[m[3]] };
  if ((m = RE.ids.exec(s))) return { name: m[1], kind: 'ids', count: parseProduct(m[2], where), lo: Number(m[3]), hi: m[4] };
  return bad(where, `cannot read the argument '${s}'`);
}

/** One table row, resolved: slots numbered, derived sizes attached to the buffers that define them. */
function resolveOp(row, index) {
  const where = `ops[${index}] ${row.name ?? '?'}`;
  for (const k of ['name', 'method', 'group', 'family', 'direction', 'doc', 'args']) if (row[k] === undefined) bad(where, `missing '${k}'`);
  if (!IDENT.test(row.name) || !IDENT.test(row.method)) bad(where, 'name and method must be identifiers');
  if (!['operator', 'helper'].includes(row.group)) bad(where, `group must be operator or helper, got '${row.group}'`);
  if (!['forward', 'backward'].includes(row.direction)) bad(where, `direction must be forward or backward`);
  const returns = row.returns ?? 'void';
  if (!['void', 'f64', 'bool', 'size'].includes(returns)) bad(where, `returns must be void, f64, bool or size`);
  const args = row.args.map((s) => parseArg(s, where));
  if (args.length > MAX_ARGS) bad(where, `more than ${MAX_ARGS} arguments`);
  const names = new Set();
  for (const a of args) {
    if (names.has(a.name)) bad(where, `argument '${a.name}' twice`);
    names.add(a.name);
  }

  // slots: int arguments first, then derived sizes in the order their buffers define them
  const slots = [];
  const slotOf = new Map();
  const definer = new Map(); // derived name -> { arg, alone }
  const addSlot = (name) => {
    slotOf.set(name, slots.length);
    slots.push(name);
  };
  for (const a of args) if (a.kind === 'int') addSlot(a.name);
  const isBuf = (a) => ['in', 'out', 'inout', 'acc'].includes(a.kind);
  for (const a of args.filter(isBuf)) {
    const unknown = a.shape.names.filter((n) => !slotOf.has(n));
    if (unknown.length > 1) bad(where, `${a.name}: more than one unknown size in '${a.shape.text}'`);
    if (unknown.length === 1) {
      if (a.nullable) bad(where, `${a.name}: a nullable buffer cannot define the size '${unknown[0]}'`);
      if (a.shape.names.filter((n) => n === unknown[0]).length > 1) bad(where, `${a.name}: '${unknown[0]}' twice in '${a.shape.text}'`);
      addSlot(unknown[0]);
      a.defines = unknown[0];
      definer.set(unknown[0], { arg: a.name, alone: a.shape.names.length === 1 && a.shape.mult === 1 });
    }
    if (a.bound) {
      if (a.bound.name !== a.defines) bad(where, `${a.name}: the bound must be on the size this buffer defines`);
      if (!/^\d+$/.test(a.bound.rhs) && !slotOf.has(a.bound.rhs)) bad(where, `${a.name}: unknown size '${a.bound.rhs}'`);
    }
  }
  if (slots.length > MAX_SLOTS) bad(where, `more than ${MAX_SLOTS} sizes`);
  const need = (n, what) => {
    if (!slotOf.has(n)) bad(where, `${what}: unknown size '${n}'`);
    return slotOf.get(n);
  };
  for (const a of args) {
    if (a.kind === 'derived' && !definer.has(a.name)) bad(where, `'${a.name}' is declared derived but no buffer defines it`);
    if (a.kind === 'ids') {
      a.count.names.forEach((n) => need(n, a.name));
      need(a.hi, a.name);
    }
  }
  const checks = (row.checks ?? []).map((c) => {
    let m;
    if ((m = /^heads\((\w+),\s*(\w+)\)$/.exec(c))) return { kind: 'heads', a: need(m[1], c), b: need(m[2], c), text: c };
    if ((m = /^(\w+)\s*<\s*(\w+)$/.exec(c))) return { kind: 'less', a: need(m[1], c), b: need(m[2], c), text: c };
    return bad(where, `cannot read the check '${c}'`);
  });
  if (row.alias !== undefined && row.alias !== 'exact') bad(where, `alias must be 'exact'`);
  let value = null;
  if (row.value !== undefined) {
    if (returns !== 'size') bad(where, `an op with a value returns 'size'`);
    value = parseProduct(row.value, where);
    value.names.forEach((n) => need(n, 'value'));
  } else if (returns === 'size') bad(where, `returns 'size' needs a value`);
  for (const p of [...args.filter(isBuf).map((a) => a.shape), ...args.filter((a) => a.kind === 'ids').map((a) => a.count), ...(value ? [value] : [])]) {
    if (p.names.length > MAX_FACTORS) bad(where, `'${p.text}' has more than ${MAX_FACTORS} factors`);
  }
  /** The text of a product for messages: a size derived from one whole buffer reads size(buf). */
  const say = (p) => (p.names.length === 1 && p.mult === 1 && definer.get(p.names[0])?.alone ? `size(${definer.get(p.names[0]).arg})` : p.text);
  return { ...row, returns, args, slots, slotOf, definer, checks, value, say, doc: [].concat(row.doc) };
}

export function loadTables(root = ROOT) {
  const ops = JSON.parse(readFileSync(path.join(root, 'native', 'ops.json'), 'utf8'));
  const tol = JSON.parse(readFileSync(path.join(root, 'native', 'tolerances.json'), 'utf8'));
  const resolved = ops.ops.map(resolveOp);
  const names = new Set(),
    methods = new Set();
  for (const op of resolved) {
    if (names.has(op.name) || methods.has(op.method)) bad(op.name, 'an operator name or method appears twice');
    names.add(op.name);
    methods.add(op.method);
    if (!tol.operators[op.family]) bad(op.name, `no tolerance for the family '${op.family}' in native/tolerances.json`);
  }
  return { ops: resolved, tol };
}

// ---- C++ -------------------------------------------------------------------------------------------

const HEADER = (what) => `// Generated by scripts/gen-ops.mjs from native/ops.json and native/tolerances.json: do not edit.\n// ${what.trimEnd()}\n`;
const KIND = { in: 'kIn', out: 'kOut', inout: 'kInOut', acc: 'kAcc', int: 'kInt', derived: 'kDerived', f32: 'kF32', f64: 'kF64', ids: 'kIds' };
const RULE = { finite: 'kFinite', any: 'kAny', nonNegative: 'kNonNegative', unitInterval: 'kUnitInterval' };
const RET = { void: 'kVoid', f64: 'kF64', bool: 'kBool', size: 'kSize' };
const str = (s) => JSON.stringify(s);
const dbl = (x) => {
  const s = String(x);
  return /[.eE]/.test(s) ? s : `${s}.0`;
};

function cppExpr(op, p, text = op.say(p), skip = null) {
  const slots = p.names.filter((n) => n !== skip).map((n) => op.slotOf.get(n));
  return `{${p.mult}, ${slots.length}, {${slots.join(', ')}}, ${str(text)}}`;
}

function cppArg(op, a) {
  const none = '{1, 0, {}, ""}';
  switch (a.kind) {
    case 'in':
    case 'out':
    case 'inout':
    case 'acc': {
      const defines = a.defines ? op.slotOf.get(a.defines) : -1;
      const shape = a.defines ? cppExpr(op, a.shape, a.shape.text, a.defines) : cppExpr(op, a.shape);
      const boundSlot = a.bound && !/^\d+$/.test(a.bound.rhs) ? op.slotOf.get(a.bound.rhs) : -1;
      const boundLit = a.bound && /^\d+$/.test(a.bound.rhs) ? Number(a.bound.rhs) : 0;
      return `{${str(a.name)}, ArgKind::${KIND[a.kind]}, ${a.nullable}, ${defines}, ${shape}, ${boundSlot}, ${boundLit}, 0, FloatRule::kFinite}`;
    }
    case 'int':
      return `{${str(a.name)}, ArgKind::kInt, false, ${op.slotOf.get(a.name)}, ${none}, -1, ${a.lo}, ${a.hi}, FloatRule::kFinite}`;
    case 'derived':
      return `{${str(a.name)}, ArgKind::kDerived, false, ${op.slotOf.get(a.name)}, ${none}, -1, 0, 0, FloatRule::kFinite}`;
    case 'f32':
    case 'f64':
      return `{${str(a.name)}, ArgKind::${KIND[a.kind]}, false, -1, ${none}, -1, 0, 0, FloatRule::${RULE[a.rule]}}`;
    case 'ids':
      return `{${str(a.name)}, ArgKind::kIds, false, -1, ${cppExpr(op, a.count)}, ${op.slotOf.get(a.hi)}, ${a.lo}, 0, FloatRule::kFinite}`;
  }
  throw new Error(a.kind);
}

function renderTable({ ops, tol }) {
  let s = HEADER('The operator table as C++ data (types: native/op_spec.h).');
  s += '#pragma once\n\n#include "../op_spec.h"\n\nnamespace crate {\nnamespace optable {\n\n';
  for (const op of ops) {
    s += `// ${op.name}(${op.args
      .filter((a) => a.kind !== 'derived')
      .map((a) => a.name)
      .join(', ')})\n`;
    s += `inline constexpr const char* kSlots_${op.name}[] = {${op.slots.map(str).join(', ')}};\n`;
    s += `inline constexpr Arg kArgs_${op.name}[] = {\n${op.args.map((a) => `    ${cppArg(op, a)},\n`).join('')}};\n`;
    if (op.checks.length)
      s += `inline constexpr Check kChecks_${op.name}[] = {${op.checks.map((c) => `{CheckKind::${c.kind === 'heads' ? 'kHeads' : 'kLess'}, ${c.a}, ${c.b}}`).join(', ')}};\n`;
    s += '\n';
  }
  s += 'inline constexpr OpSpec kOps[] = {\n';
  for (const op of ops) {
    const value = op.value ? cppExpr(op, op.value) : '{1, 0, {}, ""}';
    s +=
      `    {${str(op.name)}, Ret::${RET[op.returns]}, ${op.alias === 'exact'}, kArgs_${op.name}, ${op.args.length}, kSlots_${op.name}, ${op.slots.length}, ` +
      `${op.checks.length ? `kChecks_${op.name}` : 'nullptr'}, ${op.checks.length}, ${value}, ${!op.value}, ${str(op.family)}, ${op.direction === 'backward'}},\n`;
  }
  s += '};\ninline constexpr int kOpCount = static_cast<int>(sizeof(kOps) / sizeof(kOps[0]));\n\n';
  s += '// native/tolerances.json "operators": per family, forward and backward {rtol, atolScale}\n';
  s += 'inline constexpr FamilyTolerance kTolerances[] = {\n';
  for (const [fam, t] of Object.entries(tol.operators)) {
    if (fam === 'why') continue;
    s += `    {${str(fam)}, {${dbl(t.forward.rtol)}, ${dbl(t.forward.atolScale)}}, {${dbl(t.backward.rtol)}, ${dbl(t.backward.atolScale)}}},\n`;
  }
  s += '};\ninline constexpr int kToleranceCount = static_cast<int>(sizeof(kTolerances) / sizeof(kTolerances[0]));\n\n';
  s += '}  // namespace optable\n}  // namespace crate\n';
  return s;
}

const CTYPE = {
  in: 'const float*',
  out: 'float*',
  inout: 'float*',
  acc: 'float*',
  int: 'int64_t',
  derived: 'int64_t',
  f32: 'float',
  f64: 'double',
  ids: 'const int32_t*',
};
const CRET = { void: 'void', f64: 'double', bool: 'bool' };

function renderDecl({ ops }) {
  let s = HEADER(
    'The kernel prototypes, included inside the kernel namespace: crate (native/ops.h) and crate::cuda\n' +
      '// (native/cuda/ops_cuda.h, device pointers; ids stay host pointers). Sizes are int64_t, validated by the binding.\n',
  );
  for (const op of ops.filter((o) => !o.value)) {
    s += `\n${op.doc.map((l, i) => `${i === 0 ? '/** ' : ' *  '}${l}`).join('\n')} */\n`;
    s += `${CRET[op.returns]} ${op.name}(${op.args.map((a) => `${CTYPE[a.kind]} ${a.name}`).join(', ')});\n`;
  }
  return s;
}

function renderInvoke({ ops }) {
  let s = HEADER(
    "Every operator's kernel call, for the kernel namespace the includer aliases as K\n" +
      '// (native/binding.cc: namespace K = ::crate; native/cuda/binding_cuda.cc: namespace K = ::crate::cuda).\n',
  );
  for (const op of ops.filter((o) => !o.value)) {
    const call = `K::${op.name}(${op.args
      .map((a, i) => {
        switch (a.kind) {
          case 'in':
          case 'out':
          case 'inout':
          case 'acc':
            return `r.ptr[${i}]`;
          case 'int':
          case 'derived':
            return `r.size[${op.slotOf.get(a.name)}]`;
          case 'f32':
            return `static_cast<float>(r.real[${i}])`;
          case 'f64':
            return `r.real[${i}]`;
          case 'ids':
            return `r.ids[${i}]`;
        }
        throw new Error(a.kind);
      })
      .join(', ')})`;
    const body = op.returns === 'void' ? `  ${call};\n  return 0.0;\n` : op.returns === 'bool' ? `  return ${call} ? 1.0 : 0.0;\n` : `  return ${call};\n`;
    s += `\ninline double invoke_${op.name}(const ::crate::optable::Resolved& r) {\n${body}}\n`;
  }
  s += `\n/** Indexed like ::crate::optable::kOps (nullptr: an op without a kernel). */\ninline constexpr ::crate::optable::Invoker kInvokers[] = {\n`;
  for (const op of ops) s += `    ${op.value ? `nullptr /* ${op.name} */` : `invoke_${op.name}`},\n`;
  s += '};\n';
  return s;
}

// ---- TypeScript ------------------------------------------------------------------------------------

const TSTYPE = { in: 'Buf', out: 'Buf', inout: 'Buf', acc: 'Buf', int: 'number', f32: 'number', f64: 'number', ids: 'Int32Array' };
const TSRET = { void: 'void', f64: 'number', bool: 'boolean', size: 'number' };

function tsArg(op, a) {
  switch (a.kind) {
    case 'in':
    case 'out':
    case 'inout':
    case 'acc':
      return `{ name: '${a.name}', kind: '${a.kind}', nullable: ${a.nullable}, shape: '${op.say(a.shape)}' }`;
    case 'int':
      return `{ name: '${a.name}', kind: 'int', min: ${a.lo}, max: ${a.hi} }`;
    case 'derived':
      return `{ name: '${a.name}', kind: 'derived' }`;
    case 'f32':
    case 'f64':
      return `{ name: '${a.name}', kind: '${a.kind}', rule: '${a.rule}' }`;
    case 'ids':
      return `{ name: '${a.name}', kind: 'ids', count: '${a.count.text}', lo: ${a.lo}, hi: '${a.hi}' }`;
  }
  throw new Error(a.kind);
}

function tsSignature(op, buf, nativeNames) {
  const params = op.args
    .filter((a) => a.kind !== 'derived')
    .map((a) => {
      const t = TSTYPE[a.kind] === 'Buf' ? buf : TSTYPE[a.kind];
      return `${a.name}: ${t}${a.nullable ? ' | null' : ''}`;
    });
  return `${nativeNames ? op.name : op.method}(${params.join(', ')}): ${TSRET[op.returns]};`;
}

const jsdoc = (lines, indent) =>
  lines.length === 1 ? `${indent}/** ${lines[0]} */\n` : `${indent}/**\n${lines.map((l) => `${indent} * ${l}\n`).join('')}${indent} */\n`;

function renderTs({ ops, tol }) {
  let s = HEADER(
    'The operator table at run time (src/backend/op-table.ts describes it), the Backend operator methods\n' +
      "// (src/backend/types.ts extends Operators), the native helpers, the addon's functions and the tolerances.\n",
  );
  s += "import type { OpSpec, NativeBufRef } from './op-table.js';\n\n";
  s += 'export const OPERATORS = [\n';
  for (const op of ops) {
    s += `  {\n    name: '${op.name}', method: '${op.method}', group: '${op.group}', family: '${op.family}', direction: '${op.direction}', returns: '${op.returns}',\n`;
    if (op.alias) s += `    alias: '${op.alias}',\n`;
    if (op.checks.length) s += `    checks: [${op.checks.map((c) => `'${c.text}'`).join(', ')}],\n`;
    if (op.value) s += `    value: '${op.value.text}',\n`;
    s += `    args: [\n${op.args.map((a) => `      ${tsArg(op, a)},\n`).join('')}    ],\n  },\n`;
  }
  s += '] as const satisfies readonly OpSpec[];\n\n';
  s += '/** The operator methods of every backend (the operator list of the Backend interface). */\nexport interface Operators<Buf> {\n';
  for (const op of ops.filter((o) => o.group === 'operator')) s += jsdoc(op.doc, '  ') + `  ${tsSignature(op, 'Buf', false)}\n`;
  s += '}\n\n/** The memory and elementwise helpers the native backends implement from the table. */\nexport interface NativeHelpers<Buf> {\n';
  for (const op of ops.filter((o) => o.group === 'helper')) s += jsdoc(op.doc, '  ') + `  ${tsSignature(op, 'Buf', false)}\n`;
  s += "}\n\n/** The addon's table-driven functions (the CPU addon and exports.cuda alike). */\nexport interface NativeFunctions {\n";
  for (const op of ops) s += `  ${tsSignature(op, 'NativeBufRef', true)}\n`;
  s += '}\n\n';
  const t = (x) => `{ rtol: ${x.rtol}, atolScale: ${x.atolScale} }`;
  s += '/** native/tolerances.json without its explanations (read them there). */\nexport const TOLERANCES = {\n  fixture: {\n';
  for (const [k, v] of Object.entries(tol.fixture)) if (k !== 'why') s += `    ${k}: ${t(v)},\n`;
  s += '  },\n  operators: {\n';
  for (const [k, v] of Object.entries(tol.operators)) if (k !== 'why') s += `    ${k}: { forward: ${t(v.forward)}, backward: ${t(v.backward)} },\n`;
  s += '  },\n} as const;\n';
  return s;
}

// ---- main ------------------------------------------------------------------------------------------

/** Every generated file: path (relative to the repository root) -> contents. */
export function render(root = ROOT) {
  const tables = loadTables(root);
  return {
    'native/generated/ops_table.h': renderTable(tables),
    'native/generated/ops_decl.inc': renderDecl(tables),
    'native/generated/ops_invoke.inc': renderInvoke(tables),
    'src/backend/ops.generated.ts': renderTs(tables),
  };
}

function main() {
  const check = process.argv.includes('--check');
  let files;
  try {
    files = render();
  } catch (e) {
    if (!(e instanceof TableError) && !(e instanceof SyntaxError)) throw e;
    console.error(`gen-ops: ${e.message}`);
    process.exit(1);
  }
  const stale = [];
  for (const [rel, text] of Object.entries(files)) {
    const file = path.join(ROOT, rel);
    let old = null;
    try {
      old = readFileSync(file, 'utf8');
    } catch {
      /* missing */
    }
    if (old === text) continue;
    stale.push(rel);
    if (!check) {
      mkdirSync(path.dirname(file), { recursive: true });
      const tmp = `${file}.tmp-${process.pid}`;
      writeFileSync(tmp, text);
      renameSync(tmp, file);
    }
  }
  if (check) {
    if (stale.length) {
      console.error(`gen-ops: stale (run npm run gen:ops): ${stale.join(', ')}`);
      process.exit(1);
    }
    console.log('gen-ops: the generated files are up to date');
  } else {
    console.log(stale.length ? `gen-ops: wrote ${stale.join(', ')}` : 'gen-ops: nothing to do');
  }
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) main();

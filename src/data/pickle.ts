// A reader for the data-only subset of Python's pickle format, enough for nanoGPT's meta.pkl
// ({'vocab_size': int, 'itos': {int: str}, 'stoi': {str: int}}, written by pickle.dump with the
// default protocol, 4 since Python 3.8). It builds dicts, lists, tuples, strings, numbers, None and
// booleans, and refuses every opcode that would import a name or call anything (GLOBAL,
// STACK_GLOBAL, REDUCE, BUILD, NEWOBJ, INST, OBJ, PERSID, EXT*): a pickle is code for Python's
// unpickler, and this reader executes none of it. Errors name the file, the opcode and its offset.
//
// Opcodes are those of CPython's Lib/pickletools.py; multi-byte arguments are little-endian except
// BINFLOAT (big-endian float64).
import { DataError } from '../errors.js';

/** A Python dict as read: keys are numbers (ints, as JS numbers or bigints), strings, booleans, null or tuples. */
export type PyValue = null | boolean | number | bigint | string | PyValue[] | Map<PyKey, PyValue> | PyTuple;
export type PyKey = null | boolean | number | bigint | string | PyTuple;
/** A tuple, frozen so that it can be told from a list. */
export type PyTuple = readonly PyValue[] & { readonly __tuple: true };

const MARK = Symbol('mark');
type Item = PyValue | typeof MARK;

/** Names of the opcodes this reader refuses, for the message. */
const REFUSED: Record<number, string> = {
  0x63: 'GLOBAL', 0x93: 'STACK_GLOBAL', 0x52: 'REDUCE', 0x62: 'BUILD', 0x81: 'NEWOBJ', 0x92: 'NEWOBJ_EX', 0x69: 'INST',
  0x6f: 'OBJ', 0x50: 'PERSID', 0x51: 'BINPERSID', 0x82: 'EXT1', 0x83: 'EXT2', 0x84: 'EXT4', 0x96: 'BYTEARRAY8',
  0x97: 'NEXT_BUFFER', 0x98: 'READONLY_BUFFER', 0x43: 'SHORT_BINBYTES', 0x42: 'BINBYTES', 0x8e: 'BINBYTES8',
  0x8f: 'EMPTY_SET', 0x90: 'ADDITEMS', 0x91: 'FROZENSET', 0x49: 'INT', 0x4c: 'LONG', 0x46: 'FLOAT', 0x53: 'STRING',
  0x54: 'BINSTRING', 0x55: 'SHORT_BINSTRING', 0x56: 'UNICODE', 0x70: 'PUT', 0x67: 'GET', 0x30: 'POP', 0x31: 'POP_MARK',
  0x32: 'DUP', 0x64: 'DICT', 0x6c: 'LIST', 0x8b: 'LONG4',
};

function tuple(items: PyValue[]): PyTuple {
  return Object.freeze(Object.assign(items, { __tuple: true as const })) as unknown as PyTuple;
}

export function isTuple(v: unknown): v is PyTuple {
  return Array.isArray(v) && (v as { __tuple?: boolean }).__tuple === true;
}

/**
 * Unpickle `bytes` (the contents of `source`, which names errors). Throws a DataError for a
 * truncated or malformed stream and for any opcode outside the data-only subset.
 */
export function readPickle(bytes: Uint8Array, source: string): PyValue {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const stack: Item[] = [];
  const memo = new Map<number, PyValue>();
  const utf8 = new TextDecoder('utf-8', { fatal: true });
  let pos = 0, opAt = 0, op = 0;
  const name = () => `0x${op.toString(16).padStart(2, '0')}${REFUSED[op] ? ` (${REFUSED[op]})` : ''}`;
  const fail = (problem: string): never => { throw new DataError(`${source}: ${problem}`); };
  const need = (n: number) => { if (pos + n > bytes.length) fail(`truncated: opcode ${name()} at byte ${opAt} needs ${n} more bytes, the file ends at ${bytes.length}`); };
  const u8 = () => { need(1); return bytes[pos++]; };
  const u16 = () => { need(2); const v = view.getUint16(pos, true); pos += 2; return v; };
  const u32 = () => { need(4); const v = view.getUint32(pos, true); pos += 4; return v; };
  // a length: more than the file holds is reported as a truncation by need()
  const u64 = () => { need(8); const v = view.getBigUint64(pos, true); pos += 8; return v > BigInt(bytes.length) ? bytes.length + 1 : Number(v); };
  const text = (n: number): string => {
    need(n);
    try {
      return utf8.decode(bytes.subarray(pos, (pos += n)));
    } catch {
      return fail(`string at byte ${pos - n} is not valid UTF-8`);
    }
  };
  const pop = (): Item => (stack.length ? stack.pop()! : fail(`opcode ${name()} at byte ${opAt} pops an empty stack`));
  const popValue = (): PyValue => {
    const v = pop();
    return v === MARK ? fail(`opcode ${name()} at byte ${opAt} found a MARK where a value was expected`) : v;
  };
  const top = (): PyValue => {
    const v = stack[stack.length - 1];
    return v === undefined || v === MARK ? fail(`opcode ${name()} at byte ${opAt} needs a value on the stack`) : v;
  };
  /** Items pushed since the last MARK (which is removed). */
  const popMark = (): PyValue[] => {
    const i = stack.lastIndexOf(MARK);
    if (i < 0) fail(`opcode ${name()} at byte ${opAt} has no MARK before it`);
    return stack.splice(i).slice(1) as PyValue[];
  };
  const setItems = (d: PyValue, kv: PyValue[]) => {
    if (!(d instanceof Map)) fail(`opcode ${name()} at byte ${opAt} sets items on a ${typeName(d)}, not a dict`);
    if (kv.length % 2) fail(`opcode ${name()} at byte ${opAt} has an odd number of keys and values`);
    const m = d as Map<PyKey, PyValue>;
    for (let i = 0; i < kv.length; i += 2) {
      const k = kv[i];
      if (Array.isArray(k) && !isTuple(k)) fail(`opcode ${name()} at byte ${opAt} uses a list as a dict key`);
      if (k instanceof Map) fail(`opcode ${name()} at byte ${opAt} uses a dict as a dict key`);
      m.set(k as PyKey, kv[i + 1]);
    }
  };
  const append = (l: PyValue, items: PyValue[]) => {
    if (!Array.isArray(l) || isTuple(l)) fail(`opcode ${name()} at byte ${opAt} appends to a ${typeName(l)}, not a list`);
    (l as PyValue[]).push(...items);
  };
  const memoGet = (i: number): PyValue => (memo.has(i) ? memo.get(i)! : fail(`opcode ${name()} at byte ${opAt} reads memo entry ${i}, which was never stored`));

  for (;;) {
    opAt = pos;
    if (pos >= bytes.length) fail(`truncated: no STOP opcode before the end of the file (${bytes.length} bytes)`);
    op = bytes[pos++];
    switch (op) {
      case 0x80: { const p = u8(); if (p > 5) fail(`pickle protocol ${p} is newer than 5`); break; } // PROTO
      case 0x95: u64(); break; // FRAME: a length hint only
      case 0x2e: { // STOP
        const v = popValue();
        if (stack.length) fail(`${stack.length} item(s) left on the stack at STOP (byte ${opAt})`);
        return v;
      }
      case 0x7d: stack.push(new Map()); break; // EMPTY_DICT
      case 0x5d: stack.push([]); break; // EMPTY_LIST
      case 0x29: stack.push(tuple([])); break; // EMPTY_TUPLE
      case 0x28: stack.push(MARK); break; // MARK
      case 0x73: { const v = popValue(), k = popValue(); setItems(top(), [k, v]); break; } // SETITEM
      case 0x75: { const kv = popMark(); setItems(top(), kv); break; } // SETITEMS
      case 0x61: { const v = popValue(); append(top(), [v]); break; } // APPEND
      case 0x65: { const items = popMark(); append(top(), items); break; } // APPENDS
      case 0x74: stack.push(tuple(popMark())); break; // TUPLE
      case 0x85: { const a = popValue(); stack.push(tuple([a])); break; } // TUPLE1
      case 0x86: { const b = popValue(), a = popValue(); stack.push(tuple([a, b])); break; } // TUPLE2
      case 0x87: { const c = popValue(), b = popValue(), a = popValue(); stack.push(tuple([a, b, c])); break; } // TUPLE3
      case 0x94: memo.set(memo.size, top()); break; // MEMOIZE
      case 0x71: memo.set(u8(), top()); break; // BINPUT
      case 0x72: memo.set(u32(), top()); break; // LONG_BINPUT
      case 0x68: stack.push(memoGet(u8())); break; // BINGET
      case 0x6a: stack.push(memoGet(u32())); break; // LONG_BINGET
      case 0x4b: stack.push(u8()); break; // BININT1
      case 0x4d: stack.push(u16()); break; // BININT2
      case 0x4a: { need(4); stack.push(view.getInt32(pos, true)); pos += 4; break; } // BININT
      case 0x8a: { // LONG1: n bytes of little-endian two's complement
        const n = u8();
        need(n);
        let v = 0n;
        for (let i = n - 1; i >= 0; i--) v = (v << 8n) | BigInt(bytes[pos + i]);
        if (n > 0 && bytes[pos + n - 1] & 0x80) v -= 1n << BigInt(8 * n);
        pos += n;
        stack.push(v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v);
        break;
      }
      case 0x47: { need(8); stack.push(view.getFloat64(pos, false)); pos += 8; break; } // BINFLOAT
      case 0x8c: stack.push(text(u8())); break; // SHORT_BINUNICODE
      case 0x58: stack.push(text(u32())); break; // BINUNICODE
      case 0x8d: stack.push(text(u64())); break; // BINUNICODE8
      case 0x4e: stack.push(null); break; // NONE
      case 0x88: stack.push(true); break; // NEWTRUE
      case 0x89: stack.push(false); break; // NEWFALSE
      default:
        fail(`pickle opcode ${name()} at byte ${opAt} is not supported: only dicts, lists, tuples, strings, numbers, None and booleans are read (nothing is imported or called)`);
    }
  }
}

function typeName(v: unknown): string {
  if (v === null) return 'None';
  if (v instanceof Map) return 'dict';
  if (isTuple(v)) return 'tuple';
  if (Array.isArray(v)) return 'list';
  return typeof v;
}

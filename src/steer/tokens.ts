// A token id as readable text for listings (steering tables, related tokens): the id decoded on its
// own, except that a piece of a multi-byte character (which decodes to U+FFFD alone) is named by its
// byte (byte tokenizer) or shown with its id (BPE).
import type { Tokenizer } from '../data/tokenizer.js';

export function tokenText(tok: Tokenizer, id: number): string {
  let t: string;
  try {
    t = tok.decode([id]);
  } catch {
    return `<${id}>`;
  }
  if (t.includes('\uFFFD') && tok.name === 'byte') return `<0x${id.toString(16).padStart(2, '0')}>`;
  if (t.includes('\uFFFD')) return `${t} <${id}>`;
  return t;
}

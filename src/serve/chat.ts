// The chat template of `crate-ts serve`. crate-ts models are base language models with no chat
// tuning and no special tokens besides GPT-2's <|endoftext|>, so the template is plain text:
//
//   System: <system content>\n\n        (one block per system message)
//   User: <content>\n\n
//   Assistant: <content>\n\n
//   ...
//   Assistant:                           (the model continues here)
//
// A final assistant message is continued rather than closed (no "\n\n" after it), so a client can
// prefill the start of the reply. The reply ends at "\n\nUser:" (added to the stop strings), at
// <|endoftext|>, or at max_tokens.
import type { ChatMessage } from './validate.js';

const LABEL = { system: 'System', user: 'User', assistant: 'Assistant' } as const;

export const CHAT_STOP = '\n\nUser:';

export function renderChat(messages: readonly ChatMessage[]): string {
  let s = '';
  const last = messages.length - 1;
  messages.forEach((m, i) => {
    if (i === last && m.role === 'assistant') s += `${LABEL.assistant}:${m.content.length ? ' ' + m.content : ''}`;
    else s += `${LABEL[m.role]}: ${m.content}\n\n`;
  });
  if (messages[last].role !== 'assistant') s += `${LABEL.assistant}:`;
  return s;
}

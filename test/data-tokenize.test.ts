import * as rust from '@anush008/tokenizers';
import { toExample, RowError, type PreferenceExample } from '../lib/data/examples';
import { tokenizePair } from '../lib/data/tokenize-pairs';
import { qwen3Files, qwen3Tokenizer } from './support/qwen3';

const src = { file: 'rows.jsonl', line: 3 };
const example = (row: unknown): PreferenceExample => toExample(row, src);

function variedStrings(count: number): string[] {
  const pieces = ['Hello', ' world', '  two  spaces', '\n\n', '\t', 'naïve café', '日本語のテキスト', '😀🚀', 'e\u0301', 'Ω≈ç√',
    'def f(x):\n    return x**2', '<|im_start|>', '<|im_end|>', '<|endoftext|>', '<think>', '</think>', '  ', '1234567890', '3.14e-10',
    'URL https://example.com/a?b=c', '{"json": [1, 2]}', 'ALLCAPS', "don't", '—', '\r\n', 'ﬁ ligature', 'Ωmega', '   leading', 'trailing   '];
  let state = 12345;
  const next = () => (state = (state * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  return Array.from({ length: count }, () => Array.from({ length: 1 + Math.floor(next() * 6) }, () => pieces[Math.floor(next() * pieces.length)]).join(''));
}

describe('Qwen3 tokenizer: the JS implementation against the Rust core', () => {
  it('gives identical ids on 3,000 varied strings (unicode, whitespace, code, special tokens)', async () => {
    const js = qwen3Tokenizer();
    const { json } = qwen3Files();
    const reference = rust.Tokenizer.fromString(JSON.stringify(json));
    const strings = variedStrings(3000);
    let compared = 0;
    for (const text of strings) {
      const expected = (await reference.encode(text, null, { addSpecialTokens: true })).getIds();
      expect(js.encode(text)).toEqual(expected);
      compared += 1;
    }
    expect(compared).toBe(3000);
  });
});

describe('formats', () => {
  it('detects each format and extracts implicit prompts', () => {
    expect(example({ prompt: 'Q: 2+2?', chosen: ' 4', rejected: ' 5' }).format).toBe('standard');
    const implicit = example({ chosen: 'Q: 2+2? A: 4', rejected: 'Q: 2+2? A: 5' });
    expect(implicit).toMatchObject({ format: 'implicit_prompt', prompt: 'Q: 2+2? A:', chosen: ' 4', rejected: ' 5' });
    // Anthropic-HH transcripts: the shared history becomes the prompt, the completion keeps its space.
    const hh = example({ chosen: '\n\nHuman: Hi there\n\nAssistant: Hello friend', rejected: '\n\nHuman: Hi there\n\nAssistant: Go away' });
    expect(hh.prompt).toBe('\n\nHuman: Hi there\n\nAssistant:');
    expect(hh.chosen).toBe(' Hello friend');
    const chat = example({
      chosen: [{ role: 'user', content: 'Hi' }, { role: 'assistant', content: 'Hello!' }],
      rejected: [{ role: 'user', content: 'Hi' }, { role: 'assistant', content: 'Go away.' }],
    });
    expect(chat.format).toBe('conversational_implicit_prompt');
    expect(chat.prompt).toEqual([{ role: 'user', content: 'Hi' }]);
    expect(example({ prompt: [{ role: 'user', content: 'Hi' }], chosen: [{ role: 'assistant', content: 'A' }], rejected: [{ role: 'assistant', content: 'B' }] }).format).toBe('conversational');
  });

  it('renders conversations with the chat template: the think block belongs to the completion', () => {
    const tok = qwen3Tokenizer();
    const pair = tokenizePair(example({ prompt: [{ role: 'user', content: 'Hi' }], chosen: [{ role: 'assistant', content: 'Hello!' }], rejected: [{ role: 'assistant', content: 'Bye.' }] }), tok);
    const promptText = tok.decode(pair.chosen.ids.slice(0, pair.chosen.promptLength));
    const completionText = tok.decode(pair.chosen.ids.slice(pair.chosen.promptLength));
    expect(promptText).toBe('<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n');
    expect(completionText).toBe('<think>\n\n</think>\n\nHello!<|im_end|>\n');
    expect(pair.boundaryMismatch).toBe(false);
  });

  it('passes per-row tools and template kwargs to the template', () => {
    const tok = qwen3Tokenizer();
    const tools = [{ type: 'function', function: { name: 'get_weather', description: 'Weather now', parameters: { type: 'object', properties: {} } } }];
    const pair = tokenizePair(example({ prompt: [{ role: 'user', content: 'Weather?' }], chosen: [{ role: 'assistant', content: 'Sunny' }], rejected: [{ role: 'assistant', content: 'No idea' }], tools }), tok);
    expect(tok.decode(pair.chosen.ids.slice(0, pair.chosen.promptLength))).toContain('get_weather');
  });

  it('appends EOS to text completions once, and flags boundary merges', () => {
    const tok = qwen3Tokenizer();
    const eos = tok.eosId!;
    const pair = tokenizePair(example({ prompt: 'The sky is', chosen: ' blue', rejected: ' green<|im_end|>' }), tok);
    expect(pair.chosen.ids.at(-1)).toBe(eos);
    expect(pair.rejected.ids.filter((id) => id === eos)).toHaveLength(1);
    expect(pair.boundaryMismatch).toBe(false);
    // "Hel" + "lo" tokenizes jointly as "Hello": the joint encoding does not start with the prompt's.
    expect(tokenizePair(example({ prompt: 'Hel', chosen: 'lo there', rejected: 'p me' }), tok).boundaryMismatch).toBe(true);
  });
});

describe('truncation', () => {
  const tok = qwen3Tokenizer();
  const long = example({ prompt: 'one two three four five six', chosen: ' seven eight nine ten eleven twelve', rejected: ' no' });

  it('keeps the head (keep_start) or the tail (keep_end) of each sequence', () => {
    const full = tokenizePair(long, tok, { maxLength: 1000 });
    const head = tokenizePair(long, tok, { maxLength: 9 });
    expect(head.truncated).toBe(true);
    expect(head.chosen.ids).toEqual(full.chosen.ids.slice(0, 9));
    expect(head.chosen.promptLength).toBe(full.chosen.promptLength);
    expect(head.rejected.ids).toEqual(full.rejected.ids);
    const tail = tokenizePair(long, tok, { maxLength: 9, truncationMode: 'keep_end' });
    expect(tail.chosen.ids).toEqual(full.chosen.ids.slice(-9));
    expect(tail.chosen.promptLength).toBe(full.chosen.promptLength - (full.chosen.ids.length - 9));
  });

  it('cuts the prompt to max_prompt_length from the left and drops rows whose prompt fills max_length', () => {
    const full = tokenizePair(long, tok);
    const cut = tokenizePair(long, tok, { maxPromptLength: 2 });
    expect(cut.chosen.promptLength).toBe(2);
    expect(cut.chosen.ids.slice(0, 2)).toEqual(full.chosen.ids.slice(full.chosen.promptLength - 2, full.chosen.promptLength));
    expect(() => tokenizePair(long, tok, { maxLength: full.chosen.promptLength })).toThrow(RowError);
    expect(() => tokenizePair(long, tok, { maxLength: full.chosen.promptLength })).toThrow(/rows.jsonl:3 field "prompt": the prompt has \d+ tokens, max_length is \d+/);
  });
});

import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

// The demo's synthetic task: short product reviews where the preferred completion is the positive
// one. The preference is checkable (positive words vs negative words) and held-out prompts use items
// never seen in training.
const TRAIN_ITEMS = ['movie', 'book', 'album', 'game', 'phone', 'meal', 'hotel', 'show', 'course', 'car', 'song', 'park'];
const HELD_OUT_ITEMS = ['concert', 'camera', 'museum', 'laptop'];
export const POSITIVE = ['great', 'wonderful', 'excellent', 'delightful', 'superb', 'lovely', 'brilliant', 'amazing'];
export const NEGATIVE = ['awful', 'terrible', 'boring', 'dreadful', 'poor', 'bad', 'horrible', 'disappointing'];
const ADVERBS = ['really', 'truly', 'quite', 'very', 'so'];
const EOS = '<eos>';
const VOCAB = [EOS, '<unk>', 'review', 'of', 'the', ':', 'it', 'was', 'and', '.', ...TRAIN_ITEMS, ...HELD_OUT_ITEMS, ...POSITIVE, ...NEGATIVE, ...ADVERBS];

function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), a | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface DemoRow {
  prompt: string;
  chosen: string;
  rejected: string;
}

function rows(items: string[], count: number, seed: number, sentimentOfChosen: 'positive' | 'mixed'): DemoRow[] {
  const next = random(seed);
  const pick = <T>(list: T[]) => list[Math.floor(next() * list.length)];
  const sentence = (words: string[]) => ` it was ${pick(ADVERBS)} ${pick(words)} and ${pick(words)} .`;
  return Array.from({ length: count }, () => {
    const prompt = `review of the ${pick(items)} :`;
    const good = sentence(POSITIVE), bad = sentence(NEGATIVE);
    const positiveFirst = sentimentOfChosen === 'positive' || next() < 0.5;
    return { prompt, chosen: positiveFirst ? good : bad, rejected: positiveFirst ? bad : good };
  });
}

/**
 * Writes the demo workspace: a word-level tokenizer (HF tokenizer.json / tokenizer_config.json), an
 * SFT set whose "chosen" side is positive or negative at random (a neutral start), the DPO training
 * set (positive preferred) and a held-out set on unseen items.
 */
export function writeDemoTask(dir: string): { vocabSize: number; files: { sft: string; train: string; heldOut: string } } {
  mkdirSync(dir, { recursive: true });
  const tokenizer = {
    version: '1.0', truncation: null, padding: null,
    added_tokens: [{ id: 0, content: EOS, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true }],
    normalizer: null, pre_tokenizer: { type: 'Whitespace' }, post_processor: null,
    decoder: { type: 'WordPiece', prefix: '##', cleanup: true },
    model: { type: 'WordLevel', vocab: Object.fromEntries(VOCAB.map((w, i) => [w, i])), unk_token: '<unk>' },
  };
  writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(tokenizer, null, 1));
  writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify({ eos_token: EOS, unk_token: '<unk>', model_max_length: 32 }, null, 1));
  const write = (name: string, data: DemoRow[]) => {
    const file = join(dir, name);
    writeFileSync(file, data.map((r) => JSON.stringify(r)).join('\n'));
    return file;
  };
  return {
    vocabSize: VOCAB.length,
    files: {
      sft: write('sft.jsonl', rows(TRAIN_ITEMS, 512, 1, 'mixed')),
      train: write('train.jsonl', rows(TRAIN_ITEMS, 512, 2, 'positive')),
      heldOut: write('held-out.jsonl', rows(HELD_OUT_ITEMS, 64, 3, 'positive')),
    },
  };
}

/**
 * The frontier experiment's world (torch-dpo demo frontier): reviews whose three sentiment words are
 * each positive or negative at random, so a model fitted to them is neutral on average and every
 * mixture is reachable. The ground-truth reward is the review's sentiment: (positive words − negative
 * words) / 3, in [−1, 1] (clamped when a malformed sample has more than three).
 */
export function sentimentReward(text: string): number {
  // Decoded text glues punctuation to words ("bad."): words are the runs of letters.
  const words = text.match(/[a-z]+/g) ?? [];
  const score = (words.filter((w) => POSITIVE.includes(w)).length - words.filter((w) => NEGATIVE.includes(w)).length) / 3;
  return Math.max(-1, Math.min(1, score));
}

/** `count` prompts "review of the <item> :" over the training items (or the held-out ones), in a seeded order. */
export function reviewPrompts(count: number, seed: number, heldOut = false): string[] {
  const next = random(seed);
  const items = heldOut ? HELD_OUT_ITEMS : TRAIN_ITEMS;
  return Array.from({ length: count }, () => `review of the ${items[Math.floor(next() * items.length)]} :`);
}

/** The frontier's SFT set: reviews of mixed sentiment, word by word (the "rejected" side is unused by SFT). */
export function writeMixedSentimentSft(dir: string, count = 1024, seed = 11): string {
  const next = random(seed);
  const pick = <T>(list: T[]) => list[Math.floor(next() * list.length)];
  const word = () => pick(next() < 0.5 ? POSITIVE : NEGATIVE);
  const sentence = () => ` it was ${pick(ADVERBS)} ${word()} and ${word()} and ${word()} .`;
  const prompts = reviewPrompts(count, seed + 1);
  const file = join(dir, 'sft-mixed.jsonl');
  writeFileSync(file, prompts.map((prompt) => JSON.stringify({ prompt, chosen: sentence(), rejected: sentence() })).join('\n'));
  return file;
}

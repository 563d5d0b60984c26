import { DataError } from '../errors';
import { appendFileSync, mkdirSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';

// TensorBoard event files: TFRecord framing (length, masked CRC32C, data, masked CRC32C) around
// tensorflow.Event protobufs with scalar summaries, encoded by hand (no protobuf dependency).

const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n += 1) {
    let c = n;
    for (let k = 0; k < 8; k += 1) c = c & 1 ? 0x82f63b78 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

/** CRC-32C (Castagnoli), as TFRecord uses. */
export function crc32c(bytes: Uint8Array): number {
  let crc = 0xffffffff;
  for (const b of bytes) crc = CRC_TABLE[(crc ^ b) & 0xff] ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

const maskedCrc = (bytes: Uint8Array) => {
  const crc = crc32c(bytes);
  return (((crc >>> 15) | (crc << 17)) + 0xa282ead8) >>> 0;
};

function varint(value: number | bigint): number[] {
  let v = BigInt(value);
  const out: number[] = [];
  do {
    let byte = Number(v & 0x7fn);
    v >>= 7n;
    if (v > 0n) byte |= 0x80;
    out.push(byte);
  } while (v > 0n);
  return out;
}

const field = (tag: number, payload: Uint8Array) => Uint8Array.from([...varint(tag), ...varint(payload.length), ...payload]);
const utf8 = (s: string) => new TextEncoder().encode(s);

function event(wallTime: number, step: number, body: Uint8Array): Uint8Array {
  const time = new Uint8Array(8);
  new DataView(time.buffer).setFloat64(0, wallTime, true);
  return Uint8Array.from([0x09, ...time, 0x10, ...varint(step), ...body]);
}

function scalars(values: Record<string, number>): Uint8Array {
  const parts: number[] = [];
  for (const [tag, value] of Object.entries(values)) {
    if (!Number.isFinite(value)) continue;
    const simple = new Uint8Array(4);
    new DataView(simple.buffer).setFloat32(0, value, true);
    parts.push(...field(0x0a, Uint8Array.from([...field(0x0a, utf8(tag)), 0x15, ...simple])));
  }
  return field(0x2a, Uint8Array.from(parts));
}

function record(data: Uint8Array): Buffer {
  const header = Buffer.alloc(12);
  header.writeBigUInt64LE(BigInt(data.length), 0);
  header.writeUInt32LE(maskedCrc(header.subarray(0, 8)), 8);
  const footer = Buffer.alloc(4);
  footer.writeUInt32LE(maskedCrc(data), 0);
  return Buffer.concat([header, data, footer]);
}

/** Appends scalar summaries to an events.out.tfevents file that `tensorboard --logdir` reads. */
export class TensorBoardWriter {
  readonly path: string;

  constructor(logDir: string) {
    mkdirSync(logDir, { recursive: true });
    this.path = join(logDir, `events.out.tfevents.${Math.floor(Date.now() / 1000)}.${hostname()}`);
    appendFileSync(this.path, record(Uint8Array.from([0x09, ...new Uint8Array(new Float64Array([Date.now() / 1000]).buffer), ...field(0x1a, utf8('brain.Event:2'))])));
  }

  scalars(step: number, values: Record<string, number>): void {
    appendFileSync(this.path, record(event(Date.now() / 1000, step, scalars(values))));
  }
}

/** Reads the records back, checking every CRC (for tests and tooling). */
export function readTfRecords(bytes: Buffer): Buffer[] {
  const out: Buffer[] = [];
  let offset = 0;
  while (offset < bytes.length) {
    const length = Number(bytes.readBigUInt64LE(offset));
    if (bytes.readUInt32LE(offset + 8) !== maskedCrc(bytes.subarray(offset, offset + 8))) throw new DataError(`bad length CRC at byte ${offset}`);
    const data = bytes.subarray(offset + 12, offset + 12 + length);
    if (bytes.readUInt32LE(offset + 12 + length) !== maskedCrc(data)) throw new DataError(`bad data CRC at byte ${offset}`);
    out.push(Buffer.from(data));
    offset += 16 + length;
  }
  return out;
}

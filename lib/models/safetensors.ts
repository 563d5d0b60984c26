import { closeSync, fstatSync, openSync, readFileSync, readSync } from 'node:fs';
import { DTYPE_BYTES } from '../dtypes';
import { DataError } from '../errors';
import type { DType } from '../native/binding';
import { Tensor } from '../tensor';
import { writeFileAtomic } from '../atomic-file';
import { scope } from '../scope';

// The safetensors format: u64 little-endian header length, a JSON header
// {name: {dtype, shape, data_offsets: [begin, end]}, __metadata__?: {string: string}} padded with
// spaces to a multiple of 8, then the raw little-endian data; offsets are relative to the data start.
const TO_DTYPE: Record<string, DType> = {
  F32: 'float32', F64: 'float64', F16: 'float16', BF16: 'bfloat16', I32: 'int32', I64: 'int64', U8: 'uint8', BOOL: 'bool',
};
const FROM_DTYPE = Object.fromEntries(Object.entries(TO_DTYPE).map(([k, v]) => [v, k])) as Record<DType, string>;

export interface SafetensorsEntry {
  dtype: DType;
  shape: number[];
  /** The raw little-endian bytes. */
  bytes: Uint8Array;
}

export interface SafetensorsFile {
  tensors: Map<string, SafetensorsEntry>;
  metadata: Record<string, string>;
}

/** Where one tensor's bytes are in a safetensors file. */
export interface SafetensorsLocation {
  dtype: DType;
  shape: number[];
  /** Byte offset from the start of the file, and the byte count. */
  offset: number;
  length: number;
}

export interface SafetensorsHeader {
  path: string;
  tensors: Map<string, SafetensorsLocation>;
  metadata: Record<string, string>;
}

function checkedHeader(path: string, fileSize: number, readAt: (position: number, length: number) => Buffer): SafetensorsHeader {
  const fail = (why: string) => new DataError(`${path}: not a valid safetensors file: ${why}`);
  if (fileSize < 8) throw fail('shorter than its 8-byte header length');
  const headerLength = readAt(0, 8).readBigUInt64LE(0);
  if (headerLength > BigInt(fileSize - 8)) throw fail(`header length ${headerLength} exceeds the file size ${fileSize}`);
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(readAt(8, Number(headerLength)).toString('utf8')) as Record<string, unknown>;
  } catch (err) {
    throw fail(`header is not JSON (${(err as Error).message})`);
  }
  const dataStart = 8 + Number(headerLength);
  const dataLength = fileSize - dataStart;
  const tensors = new Map<string, SafetensorsLocation>();
  let metadata: Record<string, string> = {};
  for (const [name, raw] of Object.entries(header)) {
    if (name === '__metadata__') {
      metadata = raw as Record<string, string>;
      continue;
    }
    const info = raw as { dtype?: string; shape?: number[]; data_offsets?: [number, number] };
    const dtype = info.dtype ? TO_DTYPE[info.dtype] : undefined;
    if (!dtype) throw fail(`tensor '${name}': unsupported dtype ${String(info.dtype)}`);
    if (!Array.isArray(info.shape) || !info.shape.every((d) => Number.isInteger(d) && d >= 0)) throw fail(`tensor '${name}': bad shape`);
    const [begin, end] = info.data_offsets ?? [-1, -1];
    const expected = info.shape.reduce((a, b) => a * b, 1) * DTYPE_BYTES[dtype];
    if (!(begin >= 0 && end >= begin && end <= dataLength)) throw fail(`tensor '${name}': data_offsets [${begin}, ${end}] outside the data (${dataLength} bytes)`);
    if (end - begin !== expected) throw fail(`tensor '${name}': ${end - begin} bytes for shape [${info.shape}] ${info.dtype} (needs ${expected}): truncated?`);
    tensors.set(name, { dtype, shape: info.shape, offset: dataStart + begin, length: end - begin });
  }
  return { path, tensors, metadata };
}

/**
 * An open safetensors file read tensor by tensor with positioned reads: loading a checkpoint holds
 * one tensor's bytes at a time, never the whole file. Close it when done.
 */
export class SafetensorsReader {
  readonly header: SafetensorsHeader;
  private fd: number | null;

  constructor(readonly path: string) {
    this.fd = openSync(path, 'r');
    try {
      this.header = checkedHeader(path, fstatSync(this.fd).size, (position, length) => this.readAt(position, length));
    } catch (err) {
      this.close();
      throw err;
    }
  }

  private readAt(position: number, length: number): Buffer {
    const out = Buffer.allocUnsafeSlow(length);
    let done = 0;
    while (done < length) {
      const n = readSync(this.fd!, out, done, length - done, position + done);
      if (n === 0) throw new DataError(`${this.path}: ended after ${position + done} bytes (truncated?)`);
      done += n;
    }
    return out;
  }

  close(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }
}

/** Reads and checks a whole .safetensors file; a DataError names the file and the offending entry. */
export function readSafetensors(path: string): SafetensorsFile {
  const buffer = readFileSync(path);
  const { tensors, metadata } = checkedHeader(path, buffer.length, (position, length) => buffer.subarray(position, position + length));
  const entries = new Map<string, SafetensorsEntry>();
  for (const [name, at] of tensors) entries.set(name, { dtype: at.dtype, shape: at.shape, bytes: new Uint8Array(buffer.buffer, buffer.byteOffset + at.offset, at.length) });
  return { tensors: entries, metadata };
}

/** A CPU tensor holding a copy of an entry's bytes. */
export function entryToTensor(entry: SafetensorsEntry): Tensor {
  // Typed views need aligned bytes: entries inside a whole-file buffer may start at any offset (then
  // they are copied once more); a reader's fresh buffers are used as they are.
  const { bytes } = entry;
  const whole = bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength;
  const aligned = whole ? bytes.buffer : bytes.slice().buffer;
  const view = {
    float32: () => new Float32Array(aligned), float64: () => new Float64Array(aligned), float16: () => new Uint16Array(aligned),
    bfloat16: () => new Uint16Array(aligned), int32: () => new Int32Array(aligned), int64: () => new BigInt64Array(aligned),
    uint8: () => new Uint8Array(aligned), bool: () => new Uint8Array(aligned),
  }[entry.dtype]();
  return Tensor.from(view, { shape: entry.shape, dtype: entry.dtype });
}

/** Writes tensors (in name order) atomically (see writeFileAtomic). */
export async function writeSafetensors(path: string, tensors: Map<string, Tensor>, metadata: Record<string, string> = {}): Promise<void> {
  const names = [...tensors.keys()].sort();
  const header: Record<string, unknown> = Object.keys(metadata).length > 0 ? { __metadata__: metadata } : {};
  const chunks: Uint8Array[] = [];
  let offset = 0;
  for (const name of names) {
    const tensor = tensors.get(name)!;
    // The host copy is made for this read only.
    const data = await scope(async () => (await tensor.to('cpu')).toTypedArray());
    const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    header[name] = { dtype: FROM_DTYPE[tensor.dtype], shape: tensor.shape, data_offsets: [offset, offset + bytes.length] };
    chunks.push(bytes);
    offset += bytes.length;
  }
  let json = Buffer.from(JSON.stringify(header), 'utf8');
  const padded = Math.ceil(json.length / 8) * 8;
  json = Buffer.concat([json, Buffer.alloc(padded - json.length, 0x20)]);
  const lengthBytes = Buffer.alloc(8);
  lengthBytes.writeBigUInt64LE(BigInt(json.length));
  writeFileAtomic(path, [lengthBytes, json, ...chunks]);
}

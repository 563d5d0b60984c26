import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { DataError } from '../errors';
import { noGrad } from '../grad-mode';
import type { ScriptModule } from '../models/script-module';
import { SafetensorsReader, writeSafetensors } from '../models/safetensors';
import { loadSafetensorsInto, readTensorInto } from '../models/weights';
import { ZERO3_REPLICATED_FILE } from '../models/weight-files';
import { scope } from '../scope';
import type { Tensor } from '../tensor';
import { empty } from '../tensor-functions';

/**
 * ZeRO-3 checkpoint files: every rank writes its own slice of every unit (no gather, no traffic: a
 * save costs each rank 1/world size of the weights), rank 0 the weights in no unit (none for the
 * built-in models) with the world size. Like DeepSpeed's checkpoints they are not an HF folder;
 * `torch-dpo export` writes one (launched: unit by unit as every rank gathers; in one process: the
 * slices are joined unit by unit).
 */
export const REPLICATED_FILE = ZERO3_REPLICATED_FILE;
export const zeroShardFile = (rank: number, size: number) => `zero3-rank-${rank}-of-${size}.safetensors`;
const FORMAT = 'torch-dpo-zero3';
const SHARD_FILE = /^zero3-rank-(\d+)-of-(\d+)\.safetensors$/;

/** A unit's parameters (names, shapes) in the order their values lie end to end in the unit. */
export type UnitMembers = { name: string; numel: number; shape: number[] }[];

/** True when `dir` holds ZeRO-3 per-rank shards. */
export function isZeroCheckpoint(dir: string): boolean {
  return existsSync(join(dir, REPLICATED_FILE));
}

const layoutText = (units: UnitMembers[]) => JSON.stringify(units.map((m) => m.map((p) => ({ name: p.name, shape: p.shape }))));
const unitName = (u: number) => `unit.${u}`;

/** Rank 0: the weights every rank holds whole (embeddings, final norm, head). */
export function writeReplicatedWeights(dir: string, tensors: Map<string, Tensor>, worldSize: number): Promise<void> {
  return writeSafetensors(join(dir, REPLICATED_FILE), tensors, { format: FORMAT, world_size: String(worldSize) });
}

/** This rank's slice of each unit (`unit.<u>`), with the units' layout in the metadata. */
export function writeUnitShards(dir: string, shards: Tensor[], units: UnitMembers[], rank: number, size: number): Promise<void> {
  const tensors = new Map(shards.map((s, u) => [unitName(u), s]));
  return writeSafetensors(join(dir, zeroShardFile(rank, size)), tensors, { format: FORMAT, world_size: String(size), rank: String(rank), units: layoutText(units) });
}

/** The world size that wrote a ZeRO-3 checkpoint (from its replicated file). */
function savedWorldSize(dir: string): number {
  const reader = new SafetensorsReader(join(dir, REPLICATED_FILE));
  try {
    const size = Number(reader.header.metadata.world_size);
    if (!Number.isInteger(size) || size < 1) throw new DataError(`${reader.path}: no world_size in its metadata (not written by torch-dpo?)`);
    return size;
  } finally {
    reader.close();
  }
}

function openShard(dir: string, rank: number, size: number, units: UnitMembers[] | null): SafetensorsReader {
  const file = join(dir, zeroShardFile(rank, size));
  if (!existsSync(file)) {
    const present = readdirSync(dir).filter((f) => SHARD_FILE.test(f));
    throw new DataError(`${dir}: no ${zeroShardFile(rank, size)} (the folder has ${present.length ? present.join(', ') : 'no rank shards'}): a ZeRO-3 checkpoint resumes with the world size that wrote it`);
  }
  const reader = new SafetensorsReader(file);
  if (units && reader.header.metadata.units !== layoutText(units)) {
    reader.close();
    throw new DataError(`${file}: its layer units are not this model's (another architecture or config?)`);
  }
  return reader;
}

/** Sharded model, same world size: this rank's slices are read into its units' shards. */
export async function readUnitShards(dir: string, into: Tensor[], units: UnitMembers[], rank: number, size: number): Promise<void> {
  const saved = savedWorldSize(dir);
  if (saved !== size) throw new DataError(`${dir} was written by ${saved} ranks with zero_stage 3; resume it with the same world size (now ${size}), or export it in one process (torch-dpo export)`);
  const reader = openShard(dir, rank, size, units);
  try {
    await noGrad(async () => {
      for (const [u, shard] of into.entries()) {
        const at = reader.header.tensors.get(unitName(u));
        if (!at || at.shape[0] !== shard.numel) throw new DataError(`${reader.path}: '${unitName(u)}' is missing or has another length than this rank's slice (${shard.numel})`);
        await readTensorInto(shard, reader.path, at);
      }
    });
  } finally {
    reader.close();
  }
}

/**
 * An unsharded model (one process) from a ZeRO-3 checkpoint: the replicated file, then unit by unit
 * the ranks' slices joined end to end and split into the layer's parameters.
 */
export async function loadConsolidated(module: ScriptModule, dir: string, covers: (name: string) => boolean = () => true): Promise<void> {
  const size = savedWorldSize(dir);
  const readers: SafetensorsReader[] = [];
  try {
    for (let r = 0; r < size; r += 1) readers.push(openShard(dir, r, size, null));
    const units = JSON.parse(readers[0].header.metadata.units ?? '[]') as { name: string; shape: number[] }[][];
    const inUnits = new Set(units.flat().map((m) => m.name));
    await loadSafetensorsInto(module, join(dir, REPLICATED_FILE), { covers: (n) => !inUnits.has(n) && covers(n), partial: true });
    await scope(async () => {
      const targets = new Map<string, Tensor>();
      for (const p of await module.namedParameters()) for (const name of [p.name, ...p.aliases]) targets.set(name, p.tensor);
      const unknown = [...inUnits].filter((n) => !targets.has(n));
      if (unknown.length > 0) throw new DataError(`${dir} does not fit the model: not in the model: ${unknown.join(', ')}`);
      await noGrad(async () => {
        for (const [u, members] of units.entries()) {
          // One unit's values at a time (each rank's slice read into its place).
          await scope(async () => {
            const slices = readers.map((reader) => reader.header.tensors.get(unitName(u)));
            if (slices.some((at) => !at)) throw new DataError(`${dir}: '${unitName(u)}' is missing from a rank's shard`);
            const chunk = slices[0]!.shape[0];
            const flat = await empty([chunk * size], { dtype: slices[0]!.dtype });
            for (const [r, at] of slices.entries()) await (await flat.narrow(0, r * chunk, chunk)).readFile_(readers[r].path, at!.offset);
            let offset = 0;
            for (const member of members) {
              const numel = member.shape.reduce((a, b) => a * b, 1);
              const target = targets.get(member.name)!;
              if (target.shape.join(',') !== member.shape.join(',')) throw new DataError(`${dir} does not fit the model: ${member.name}: file [${member.shape}] vs model [${target.shape}]`);
              if (covers(member.name)) await target.copy_(await (await flat.narrow(0, offset, numel)).view(member.shape));
              offset += numel;
            }
          });
        }
      });
    });
  } finally {
    for (const reader of readers) reader.close();
  }
}

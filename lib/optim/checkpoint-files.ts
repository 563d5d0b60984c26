/** The optimizer state file of a checkpoint: one for all ranks, or one per rank with optimizer sharding. */
export const optimizerFile = (rank: number | null) => (rank === null ? 'optimizer.safetensors' : `optimizer.rank-${rank}.safetensors`);
